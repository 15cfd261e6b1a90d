package tcp

import (
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// TestRACKDSACKIsNotReordering: a D-SACK (here for a duplicate the
// peer got, as after a tail loss probe whose original arrived) widens
// the reordering window for when one is used, but is no sign of
// reordering (RFC 8985 6.2: RACK.reordering_seen is set only when a
// segment never retransmitted is delivered below RACK.fack; Linux's
// reord_seen likewise). So a later hole with three segments SACKed
// above it is lost at once, as before any D-SACK: the reordering window
// stays zero. With the D-SACK taken for reordering, that loss waited a
// quarter of the minimum RTT (times the D-SACK multiplier) for the
// reordering timer, and on a lossy path every hole stayed open that much
// longer at the receiver.
func TestRACKDSACKIsNotReordering(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	const mss = 1460
	warmRTT(s, c, &una)
	// The peer reports a duplicate of data it already had.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una - mss, Right: una})})
	if st := s.p.Stats(); st.DSACKsRecv != 1 {
		t.Fatalf("D-SACKs counted %d, want 1", st.DSACKsRecv)
	}
	c.Write(make([]byte, 6*mss))
	if o := s.out(); len(o) != 6 {
		t.Fatalf("flight: %d segments", len(o))
	}
	// Segments 2-4 arrive, the first does not.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + mss, Right: una + 4*mss})})
	o := s.out()
	if len(o) == 0 || o[0].h.Seq != una || len(o[0].payload) != mss {
		t.Fatalf("after three segments SACKed above a hole, sent %v; want the hole at %d resent at once", o, una)
	}
	if st := s.p.Stats(); st.SACKRecovery != 1 || st.RACKReoTimeouts != 0 {
		t.Fatalf("recoveries %d, reordering timer expiries %d", st.SACKRecovery, st.RACKReoTimeouts)
	}
}
