package stack

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// drain empties e's queue and returns how many datagrams it held.
func drain(t *testing.T, e *DgramEndpoint) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	for {
		if _, _, _, err := e.RecvFrom(buf, false); err != nil {
			return n
		}
		n++
	}
}

// smallCharge is what a datagram of up to 256 bytes costs: Linux charges
// 832 bytes too, so its default queue also holds 256 of them.
const smallCharge = bufSize0 + DgramOverhead

// Zero-length datagrams used to cost nothing: 300,000 of them were all
// queued. Now each is charged its true size and the queue stops at
// SO_RCVBUF, every other one counted as a drop in the socket and the stack.
func TestDgramQueueChargesTruesize(t *testing.T) {
	const sent = 300000
	cases := []struct {
		name    string
		kind    DgramKind
		proto   uint8
		bind    netip.AddrPort
		frame   []byte
		counter func(s *Stats) *Counter
	}{
		{"udp", KindUDP, 17, netip.AddrPortFrom(hostAddr, 5000),
			ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1234, 5000, nil)),
			func(s *Stats) *Counter { return &s.UDP.RcvbufErrors }},
		{"ping", KindPing, 1, netip.AddrPortFrom(hostAddr, 77),
			ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoReply(77, 1)),
			func(s *Stats) *Counter { return &s.ICMP.PingRcvbufErrors }},
		{"raw", KindRaw, 253, netip.AddrPortFrom(hostAddr, 0),
			ipFrame(wire.IPv4Header{Protocol: 253}, nil),
			func(s *Stats) *Counter { return &s.Raw.RcvbufErrors }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			e := h.s.NewDgram(c.kind, c.proto)
			defer e.Close()
			if c.kind != KindRaw {
				if err := e.Bind(c.bind); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < sent; i++ {
				h.ep.inject(c.frame)
			}
			rcvbuf := e.RecvBuf()
			if got := e.QueuedBytes(); got > rcvbuf {
				t.Errorf("queue charged %d bytes, over SO_RCVBUF %d", got, rcvbuf)
			}
			queued := drain(t, e)
			if want := rcvbuf / smallCharge; queued != want {
				t.Errorf("%d of %d empty datagrams queued, want %d (SO_RCVBUF %d / %d bytes each)", queued, sent, want, rcvbuf, smallCharge)
			}
			if d := e.Drops(); d != uint64(sent-queued) {
				t.Errorf("socket drops %d, want %d", d, sent-queued)
			}
			if d := c.counter(h.s.Stats()).Load(); d != uint64(sent-queued) {
				t.Errorf("stack drop counter %d, want %d", d, sent-queued)
			}
			if got := e.QueuedBytes(); got != 0 {
				t.Errorf("drained queue still charged %d bytes", got)
			}
		})
	}
}

func echoReply(id, seq uint16) []byte {
	m := echoPayload(id, seq, nil)
	m[0] = wire.ICMPEchoReply
	m[2], m[3] = 0, 0
	wire.ICMPv4(m).FillChecksum()
	return m
}

// 212,992 one-byte datagrams fitted in one socket (+75 MB of heap). The
// heap a full queue pins is now bounded by SO_RCVBUF.
func TestDgramQueueHeapBounded(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1234, 5000, []byte{'x'}))
	var before, after runtime.MemStats
	// Two collections empty the buffer pools (and their victim caches), so
	// what stays live afterwards is what the queue holds.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	const sent = 212992
	for i := 0; i < sent; i++ {
		h.ep.inject(f)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	queued := drain(t, e)
	t.Logf("%d of %d one-byte datagrams queued, heap +%d bytes", queued, sent, growth)
	if queued != e.RecvBuf()/smallCharge {
		t.Errorf("%d one-byte datagrams queued, want %d", queued, e.RecvBuf()/smallCharge)
	}
	// The queue's buffers take 256 × 256 bytes; allow ten times that.
	if growth > 10*int64(queued*bufSize0) {
		t.Errorf("heap grew %d bytes for %d queued datagrams", growth, queued)
	}
}
