package stack

import (
	"bytes"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// groSeg builds a segment from the peer of flow (sport), with a
// timestamp option.
func groSeg(sport uint16, seq uint32, payload []byte, flags uint8, tsval uint32) []byte {
	th := wire.TCPHeader{SrcPort: sport, DstPort: 80, Seq: seq, Ack: 99, Flags: flags, Window: 1000,
		Options: wire.TCPOptions{HasTS: true, TSVal: tsval, TSEcr: 5}}
	seg := make([]byte, th.Len()+len(payload))
	th.Put(seg)
	copy(seg[th.Len():], payload)
	wire.TCP(seg).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), hostAddr.As4(), wire.ProtoTCP, len(seg)))
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, DF: true}, seg)
}

func groCheck(t *testing.T, h *harness, f []byte, seq uint32, payload []byte, flags uint8) {
	t.Helper()
	ip := parseOut(t, f)
	tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
	if err != nil {
		t.Fatalf("coalesced packet: %v", err)
	}
	gpVerify(t, f)
	if tc.Seq() != seq || tc.Flags() != flags || !bytes.Equal(tc.Payload(), payload) {
		t.Fatalf("coalesced seq %d flags %#x len %d; want %d %#x %d", tc.Seq(), tc.Flags(), len(tc.Payload()), seq, flags, len(payload))
	}
}

// In-order segments of one flow in a batch become one packet with valid
// checksums; a shorter or PSH segment ends it.
func TestGROCoalescesInOrder(t *testing.T) {
	h := newHarness(t, Options{})
	data := randPayload(10*1001 + 7) // odd sizes: sums land at odd offsets
	var frames [][]byte
	for i := 0; i < 10; i++ {
		frames = append(frames, groSeg(1, 1000+uint32(i*1001), data[i*1001:(i+1)*1001], wire.TCPFlagACK, 7))
	}
	frames = append(frames, groSeg(1, 1000+10*1001, data[10*1001:], wire.TCPFlagACK|wire.TCPFlagPSH, 7))
	out := h.nic.groBatch(frames)
	if len(out) != 1 || !h.nic.groValid(0) {
		t.Fatalf("%d packets out, want 1", len(out))
	}
	groCheck(t, h, out[0], 1000, data, wire.TCPFlagACK|wire.TCPFlagPSH)
	if h.s.Stats().Link.InGROSegs.Load() != 11 || h.s.Stats().Link.InGROFrames.Load() != 1 {
		t.Fatalf("GRO counters %d %d", h.s.Stats().Link.InGROSegs.Load(), h.s.Stats().Link.InGROFrames.Load())
	}
}

// What tcp_gro_receive refuses is not merged: a different timestamp, a
// gap, a longer segment, a FIN; two flows interleaved merge each; a bad
// checksum passes alone, not vouched for.
func TestGROFlushRules(t *testing.T) {
	h := newHarness(t, Options{})
	p := randPayload(4000)
	a := p[:1000]
	frames := [][]byte{
		groSeg(1, 0, a, wire.TCPFlagACK, 7),
		groSeg(2, 0, a, wire.TCPFlagACK, 7),
		groSeg(1, 1000, a, wire.TCPFlagACK, 7),
		groSeg(2, 1000, a, wire.TCPFlagACK, 7),
		groSeg(1, 2000, a, wire.TCPFlagACK, 8),                 // new TSval: flow 1 flushed, restarts
		groSeg(1, 3500, a, wire.TCPFlagACK, 8),                 // gap
		groSeg(1, 4500, p[:1200], wire.TCPFlagACK, 8),          // longer than the first
		groSeg(1, 5700, a, wire.TCPFlagACK|wire.TCPFlagFIN, 8), // FIN: not coalescable
	}
	bad := groSeg(2, 2000, a, wire.TCPFlagACK, 7)
	bad[len(bad)-1] ^= 0xff
	frames = append(frames, bad)
	out := h.nic.groBatch(frames)
	// flow 1: [0,2000) merged; 2000 alone; 3500 alone; 4500 alone; FIN.
	// flow 2: [0,2000) merged; the bad one alone.
	type want struct {
		sport uint16
		seq   uint32
		n     int
	}
	var got []want
	for i, f := range out {
		ip := parseOut(t, f)
		tc := wire.TCP(ip.Payload())
		got = append(got, want{tc.SrcPort(), tc.Seq(), len(tc.Payload())})
		switch {
		case tc.SrcPort() == 2 && tc.Seq() == 2000 && h.nic.groValid(i):
			t.Error("a segment with a bad checksum was vouched for")
		case len(tc.Payload()) == 2000 && !h.nic.groValid(i):
			t.Errorf("coalesced packet %d not marked verified", i)
		}
	}
	exp := []want{{1, 0, 2000}, {1, 2000, 1000}, {1, 3500, 1000}, {1, 4500, 1200}, {1, 5700, 1000}, {2, 0, 2000}, {2, 2000, 1000}}
	if len(got) != len(exp) {
		t.Fatalf("got %v, want %v", got, exp)
	}
	// Per flow the order must hold; across flows it may change.
	for _, sp := range []uint16{1, 2} {
		var g, e []want
		for _, x := range got {
			if x.sport == sp {
				g = append(g, x)
			}
		}
		for _, x := range exp {
			if x.sport == sp {
				e = append(e, x)
			}
		}
		if len(g) != len(e) {
			t.Fatalf("flow %d: got %v want %v", sp, g, e)
		}
		for i := range g {
			if g[i] != e[i] {
				t.Fatalf("flow %d: got %v want %v", sp, g, e)
			}
		}
	}
	// The bad segment is dropped and counted by the normal path.
	before := h.s.Stats().IP.InDiscards.Load()
	h.nic.DeliverFrames([][]byte{bad, bad})
	if h.s.Stats().IP.InDiscards.Load() != before+2 {
		t.Fatal("bad checksums not dropped")
	}
}

// A flow whose burst ends (PSH) and starts again within one batch gets
// a second coalesced packet in a buffer of its own: the first, already
// handed on, stays intact.
func TestGROBuffersNotReusedWithinBatch(t *testing.T) {
	h := newHarness(t, Options{})
	p := randPayload(8000)
	var frames [][]byte
	for i := 0; i < 8; i++ {
		f := uint8(wire.TCPFlagACK)
		if i == 3 {
			f |= wire.TCPFlagPSH
		}
		frames = append(frames, groSeg(1, uint32(i*1000), p[i*1000:(i+1)*1000], f, 7))
	}
	out := h.nic.groBatch(frames)
	if len(out) != 2 {
		t.Fatalf("%d packets, want 2", len(out))
	}
	groCheck(t, h, out[0], 0, p[:4000], wire.TCPFlagACK|wire.TCPFlagPSH)
	groCheck(t, h, out[1], 4000, p[4000:], wire.TCPFlagACK)
}
