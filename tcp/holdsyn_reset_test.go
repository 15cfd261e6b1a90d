package tcp

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// segFrom injects a segment from the peer's address on port.
func (s *script) segFrom(port uint16, flags uint8, seq, ack uint32) {
	s.t.Helper()
	h := wire.TCPHeader{SrcPort: port, DstPort: s.local.Port(), Seq: seq, Ack: ack, Flags: flags, Window: 65535}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, b)
}

// The client's in-window reset drops its request while the application
// has not answered it, as Linux drops a SYN_RECV request: a queued one
// leaves the queue (wherever it stands in it), a taken one answers
// ECONNRESET; nothing is sent. A reset out of the window the SYN-ACK
// would offer, or with ACK (nothing was sent to acknowledge), leaves
// the request alone. A retransmitted SYN never makes a second request.
func TestHoldSYNClientReset(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	const a, b, c = 40001, 40002, 40003
	for _, p := range []uint16{a, b, c} {
		s.synFrom(p, 1000, noOpts)
		s.synFrom(p, 1000, noOpts) // retransmitted: absorbed
	}
	s.expectNone("held SYNs")
	// Not resets of b's request: with ACK, and out of the window.
	s.segFrom(b, fR|fA, 1001, 12345)
	s.segFrom(b, fR, 1000, 0)
	s.segFrom(b, fR, 1001+65535, 0)
	if st := s.p.HoldSYNStats(); st.ClientReset != 0 || st.Held != 3 || st.Retrans != 3 {
		t.Fatalf("before the in-window reset: %+v", st)
	}
	// b's, in the middle of the queue, at the window's far edge.
	s.segFrom(b, fR, 1001+65534, 0)
	s.expectNone("resets")
	for _, want := range []uint16{a, c} {
		r := nextReq(t, l)
		if r.Remote().Port() != want {
			t.Fatalf("request from port %d, want %d", r.Remote().Port(), want)
		}
		if err := r.Reject(RejectSilent); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("after the two live requests: %v, want EAGAIN", err)
	}
	if l.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with no request held")
	}

	// A taken request: the application's answer comes too late.
	s.synFrom(a, 5000, noOpts)
	r := nextReq(t, l)
	s.synFrom(a, 5000, noOpts)
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("a SYN retransmitted while taken made a request: %v", err)
	}
	s.segFrom(a, fR, 5001, 0)
	if _, err := r.Complete(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Complete after the client's reset: %v, want ECONNRESET", err)
	}
	if err := r.Reject(RejectReset); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Reject after the client's reset: %v, want ECONNRESET", err)
	}
	s.expectNone("answers to a reset request")
	// The client's next SYN is a new request.
	s.synFrom(a, 9000, noOpts)
	if r := nextReq(t, l); r.Remote().Port() != a {
		t.Fatalf("request from %v", r.Remote())
	}
	if st := s.p.HoldSYNStats(); st.ClientReset != 2 || st.Held != 5 || st.Retrans != 4 || st.SeqMismatch != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A flood of SYNs each followed by its reset, never taken, holds
// nothing: the queue does not grow, and the listener is not readable.
func TestHoldSYNClientResetBounded(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(2, 0)
	s.synFrom(1, 1, noOpts) // stays queued at the head
	for i := range 1000 {
		p := uint16(2 + i)
		s.synFrom(p, 100, noOpts)
		s.segFrom(p, fR, 101, 0)
	}
	if st := s.p.HoldSYNStats(); st.Held != 1001 || st.ClientReset != 1000 || st.Cookies != 0 || st.QueueFull != 0 {
		t.Fatalf("stats %+v", st)
	}
	h := l.ls.hold
	if len(h.ring) > 8 || h.n != 1 || len(h.reqs) != 1 {
		t.Fatalf("ring %d long, %d queued, %d live; want 1 queued", len(h.ring), h.n, len(h.reqs))
	}
	nextReq(t, l)
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("%v, want EAGAIN", err)
	}
}
