package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// TestRACKRTTIsTheNewestSegments: RACK.rtt is the RTT of the segment
// that was sent most recently among those delivered (RFC 8985 6.2 step
// 2 walks the delivered segments in send order; Linux's tcp_rack_advance
// takes the RTT only from a segment that advances RACK.xmit_ts). One
// ACK here delivers a retransmission, sent last, and an original
// further up whose SACK was lost, sent first: walked in sequence order,
// the original's longer RTT used to replace the retransmission's, so a
// segment sent between the two (and not delivered) looked younger than
// it is and waited for the reordering timer (on the interop frame-loss
// path, "RACK reordering timeouts" where nothing reorders) instead of
// being marked lost, and resent, at once.
func TestRACKRTTIsTheNewestSegments(t *testing.T) {
	s, c, una := rackSetup(t)
	const mss = 1460
	// t=0: segments 1-5; t=2 ms: segment 6.
	c.Write(make([]byte, 5*mss))
	if o := s.out(); len(o) != 5 {
		t.Fatalf("first flight: %d segments", len(o))
	}
	s.clk.Advance(2 * time.Millisecond)
	c.Write(make([]byte, mss))
	if o := s.out(); len(o) != 1 {
		t.Fatalf("segment 6: %d segments", len(o))
	}
	// t=3 ms: 2-4 SACKed; 1 is lost (three segments above it) and
	// resent at once.
	s.clk.Advance(time.Millisecond)
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + mss, Right: una + 4*mss})})
	if o := s.out(); len(o) != 1 || o[0].h.Seq != una {
		t.Fatalf("after 2-4 SACKed, sent %v; want segment 1 resent", o)
	}
	// t=13 ms: 1 (resent at 3 ms) and 5 (sent at 0, its SACK lost) are
	// acknowledged together. The newest delivered left at 3 ms with an
	// RTT of 10 ms; segment 6 left at 2 ms, more than 10 ms ago: lost.
	s.clk.Advance(10 * time.Millisecond)
	s.inject(seg{flags: fA, seq: 1001, ack: una + 5*mss, win: 65535})
	if c.rk.rtt != 10*time.Millisecond {
		t.Errorf("RACK.rtt %v, want 10ms (the resent segment's)", c.rk.rtt)
	}
	o := s.out()
	if len(o) == 0 || o[0].h.Seq != una+5*mss {
		t.Fatalf("after the ACK of 1-5, sent %v; want segment 6 (seq %d) resent at once", o, una+5*mss)
	}
	if st := s.p.Stats(); st.RACKReoTimeouts != 0 {
		t.Fatalf("reordering timer expiries %d, want none", st.RACKReoTimeouts)
	}
}
