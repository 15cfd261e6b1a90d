package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// reorderPair is a client and a server stack over a hand-moved IP link,
// the client connected to the server's listener on 10.0.0.2:7000.
type reorderPair struct {
	c, p   *Stack
	cw, pw *ipWire
	ce, se *tcp.Endpoint
}

func newReorderPair(t *testing.T) *reorderPair {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	r := &reorderPair{cw: &ipWire{}, pw: &ipWire{}}
	r.c, r.p = New(Options{Clock: clk}), New(Options{Clock: clk})
	t.Cleanup(r.c.Close)
	t.Cleanup(r.p.Close)
	if err := r.c.AddNIC("tun0", r.cw).AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := r.p.AddNIC("tun0", r.pw).AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	l := r.p.TCP.NewEndpoint()
	t.Cleanup(l.Close)
	if err := l.Bind(netip.MustParseAddrPort("10.0.0.2:7000")); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	r.ce = r.c.TCP.NewEndpoint()
	t.Cleanup(r.ce.Close)
	if err := r.ce.Connect(netip.MustParseAddrPort("10.0.0.2:7000")); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	for range 10 {
		a, b := r.cw.take(), r.pw.take()
		if len(a)+len(b) == 0 {
			break
		}
		for _, f := range a {
			r.pw.recv.DeliverFrames([][]byte{f})
		}
		for _, f := range b {
			r.cw.recv.DeliverFrames([][]byte{f})
		}
	}
	se, _, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	r.se = se
	t.Cleanup(se.Close)
	return r
}

// segments has the client send n full segments and returns their frames
// as the client wrote them, with the data.
func (r *reorderPair) segments(t *testing.T, n int) ([][]byte, []byte) {
	t.Helper()
	data := randPayload(n * 1448) // full segments: MSS 1460 less the timestamp option
	if w, err := r.ce.Write(data); err != nil || w != len(data) {
		t.Fatalf("write: %d %v", w, err)
	}
	fs := r.cw.take()
	if len(fs) != n {
		t.Fatalf("the client sent %d frames, want %d", len(fs), n)
	}
	return fs, data
}

func (r *reorderPair) readAll(t *testing.T, want []byte) {
	t.Helper()
	got := make([]byte, len(want)+1)
	k, err := r.se.Read(got, false)
	if err != nil || !bytes.Equal(got[:k], want) {
		t.Fatalf("server read %d bytes (%v), want the %d sent in order", k, err, len(want))
	}
}

// Segments of one flow that a batch holds out of order reach TCP in
// order: nothing is queued out of order and the server sends one ACK,
// for everything, without SACK. Delivered in the same wrong order one
// batch each, they are queued out of order and answered at once: the
// behaviour the sorting spares.
func TestReorderBatchSortsAFlow(t *testing.T) {
	r := newReorderPair(t)
	fs, data := r.segments(t, 3)
	batch := [][]byte{fs[2], fs[0], fs[1]}
	r.pw.recv.DeliverFrames(batch)
	if &batch[0][0] != &fs[2][0] || &batch[1][0] != &fs[0][0] {
		t.Fatal("the link's frame vector was rewritten")
	}
	if st := r.p.TCP.Stats(); st.OFOQueued != 0 {
		t.Fatalf("%d segments queued out of order", st.OFOQueued)
	}
	if n := r.p.Stats().Link.InReordered.Load(); n != 2 {
		t.Fatalf("InReordered %d, want 2", n)
	}
	acks := r.pw.take()
	if len(acks) != 1 {
		t.Fatalf("%d ACKs, want 1", len(acks))
	}
	ack := wire.TCP(wire.IPv4(acks[0]).Payload())
	last := wire.TCP(wire.IPv4(fs[2]).Payload())
	if end := last.Seq() + uint32(len(last)-last.DataOffset()); ack.Ack() != end {
		t.Fatalf("ACK %d, want %d", ack.Ack(), end)
	}
	if ack.DataOffset() != wire.TCPMinHeaderLen+12 {
		t.Fatalf("the ACK has %d option bytes, want the timestamp's 12 only", ack.DataOffset()-wire.TCPMinHeaderLen)
	}
	r.readAll(t, data)

	fs, _ = r.segments(t, 3)
	for _, i := range []int{2, 0, 1} {
		r.pw.recv.DeliverFrames([][]byte{fs[i]})
	}
	if st := r.p.TCP.Stats(); st.OFOQueued == 0 {
		t.Fatal("one batch per segment: nothing queued out of order")
	}
	if n := r.p.Stats().Link.InReordered.Load(); n != 2 {
		t.Fatalf("InReordered %d after single-frame batches, want still 2", n)
	}
}

// Only segments of one flow trade places, and only with a neighbour of
// that flow; pure ACKs, SYNs and other flows keep their places.
func TestReorderBatchKeepsOtherFrames(t *testing.T) {
	h := newHarness(t, Options{})
	a := randPayload(100)
	ack := groSeg(1, 5000, nil, wire.TCPFlagACK, 7)
	syn := groSeg(3, 10, nil, wire.TCPFlagSYN, 7)
	frames := [][]byte{
		groSeg(1, 2000, a, wire.TCPFlagACK, 7), // 0
		groSeg(1, 1000, a, wire.TCPFlagACK, 7), // 1: moves before 0
		groSeg(2, 3000, a, wire.TCPFlagACK, 7), // 2: another flow
		groSeg(1, 500, a, wire.TCPFlagACK, 7),  // 3: behind flow 2's segment, stays
		ack,                                    // 4
		groSeg(2, 1000, a, wire.TCPFlagACK, 7), // 5: behind a pure ACK, stays
		syn,                                    // 6
	}
	out, _ := h.nic.orderBatch(&h.nic.rx, frames, nil)
	want := []int{1, 0, 2, 3, 4, 5, 6}
	for i, w := range want {
		if &out[i][0] != &frames[w][0] {
			t.Fatalf("position %d holds the wrong frame, want frame %d", i, w)
		}
	}
	if n := h.s.Stats().Link.InReordered.Load(); n != 1 {
		t.Fatalf("InReordered %d, want 1", n)
	}
}

// The cost of looking at a batch that is already in order (the common
// case): 32 segments of one flow.
func BenchmarkOrderBatchInOrder(b *testing.B) {
	s := New(Options{DADTransmits: -1})
	defer s.Close()
	nic := s.AddNIC("eth0", &chanEP{mtu: 1500, discard: true})
	var frames [][]byte
	for i := range 32 {
		frames = append(frames, groSeg(1, uint32(i*1448), make([]byte, 1448), wire.TCPFlagACK, 7))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		nic.orderBatch(&nic.rx, frames, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}
