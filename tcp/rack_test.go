package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func sackOf(blocks ...wire.SACKBlock) wire.TCPOptions {
	o := wire.TCPOptions{NumSACK: len(blocks)}
	copy(o.SACK[:], blocks)
	return o
}

// warmRTT makes the SRTT about 10 ms (so that probes wait 20 ms).
func warmRTT(s *script, c *Endpoint, una *uint32) {
	for k := 0; k < 8; k++ {
		c.Write(make([]byte, 1460))
		s.out()
		s.clk.Advance(10 * time.Millisecond)
		*una += 1460
		s.inject(seg{flags: fA, seq: 1001, ack: *una, win: 65535})
	}
}

// rackSetup opens a SACK connection from a script and warms its RTT:
// the script, the endpoint and its snd.una.
func rackSetup(t *testing.T) (*script, *Endpoint, uint32) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	warmRTT(s, c, &una)
	return s, c, una
}

// TestRACKMarksBySendTime: a SACK for a segment marks the segments sent
// before it lost (its RTT has passed for them), not those sent after.
func TestRACKMarksBySendTime(t *testing.T) {
	s, c, una := rackSetup(t)
	const mss = 1460
	c.Write(make([]byte, 5*mss))
	if o := s.out(); len(o) != 5 {
		t.Fatalf("first flight: %d segments", len(o))
	}
	s.clk.Advance(5 * time.Millisecond)
	c.Write(make([]byte, 5*mss))
	if o := s.out(); len(o) != 5 {
		t.Fatalf("second flight: %d segments", len(o))
	}
	s.clk.Advance(12 * time.Millisecond)
	s.out() // perhaps a tail loss probe
	// Segment 7 (second flight) arrives; 1-6 do not.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + 6*mss, Right: una + 7*mss})})
	o := s.out()
	if len(o) == 0 {
		t.Fatal("segments sent 10 ms before the delivered one were not marked lost")
	}
	for _, x := range o {
		if seqGEQ(x.h.Seq, una+5*mss) {
			t.Fatalf("resent a segment of the second flight before its reordering window: %v\n%v", x, o)
		}
	}
	if o[0].h.Seq != una || len(o[0].payload) != mss {
		t.Fatalf("first retransmission %v, want seq %d", o[0], una)
	}
	i := c.Info()
	if i.LostBytes != 5*mss-len(o)*mss {
		t.Fatalf("lost bytes %d after %d retransmissions, want %d", i.LostBytes, len(o), 5*mss-len(o)*mss)
	}
	if len(o) > 3 {
		t.Fatalf("PRR let %d segments out for one delivered", len(o))
	}
	if st := s.p.Stats(); st.SACKRecovery != 1 || st.Timeouts != 0 {
		t.Fatalf("recoveries %d timeouts %d", st.SACKRecovery, st.Timeouts)
	}
	// Segment 6 left with segment 7, just below it: it is lost only when
	// the reordering window (a quarter of the minimum RTT) has passed,
	// which the reordering timer notices.
	s.clk.Advance(time.Millisecond)
	if st := s.p.Stats(); st.RACKReoTimeouts != 1 {
		t.Fatalf("reordering timer expiries %d", st.RACKReoTimeouts)
	}
	o2 := s.out()
	if l := c.Info().LostBytes; l != i.LostBytes+mss-len(o2)*mss {
		t.Fatalf("lost bytes %d after the reordering window and %d retransmissions, want %d", l, len(o2), i.LostBytes+mss-len(o2)*mss)
	}
}

// TestTLPTiming: with the ACKs of a flight lost, a probe retransmits the
// last segment after 2*SRTT (not after the RTO), and for a single
// segment after 2*SRTT plus the peer's delayed-ACK time.
func TestTLPTiming(t *testing.T) {
	s, c, una := rackSetup(t)
	const mss = 1460
	srtt := c.Info().RTT
	if srtt < 5*time.Millisecond {
		t.Fatalf("srtt %v", srtt)
	}
	c.Write(make([]byte, 3*mss))
	if o := s.out(); len(o) != 3 {
		t.Fatalf("%d segments", len(o))
	}
	p, el := s.waitOne(time.Second)
	check(t, "probe", p, fPA, una+2*mss, 1001, mss)
	if want := 2 * srtt; !near(el, want) {
		t.Fatalf("probe after %v, want 2*SRTT = %v", el, want)
	}
	if st := s.p.Stats(); st.TLPProbes != 1 || st.Timeouts != 0 {
		t.Fatalf("probes %d timeouts %d", st.TLPProbes, st.Timeouts)
	}
	// Only one probe per flight: the next thing is the RTO.
	rto := c.Info().RTO
	r, el2 := s.waitOne(2 * time.Second)
	if r.h.Seq != una || !near(el+el2, rto) {
		t.Fatalf("after the probe: %v at %v, want the RTO retransmission of %d at %v", r, el+el2, una, rto)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: una + 3*mss, win: 65535})
	s.out()
	una += 3 * mss

	// Rebuild the RTT, then a single segment: the probe waits for the
	// peer's delayed ACK too, for the worst case a receiver may delay it
	// (RFC 8985 7.2: WCDelAckT = 200 ms, not this stack's own 40 ms), or
	// comes at the RTO's time if that is sooner.
	warmRTT(s, c, &una)
	srtt, rto = c.Info().RTT, c.Info().RTO
	st := s.p.Stats()
	c.Write(make([]byte, 100))
	s.out()
	p, el = s.waitOne(time.Second)
	check(t, "single-segment probe", p, fPA, una, 1001, 100)
	if want := min(2*srtt+200*time.Millisecond, rto); !near(el, want) {
		t.Fatalf("probe after %v, want min(2*SRTT+200ms, RTO) = %v", el, want)
	}
	if st2 := s.p.Stats(); st2.TLPProbes != st.TLPProbes+1 || st2.Timeouts != st.Timeouts {
		t.Fatalf("a probe, not an RTO: probes %d timeouts %d", st2.TLPProbes-st.TLPProbes, st2.Timeouts-st.Timeouts)
	}
	// The RTO follows the probe by one RTO, not at once.
	r, el2 = s.waitOne(2 * time.Second)
	if r.h.Seq != una || !near(el2, rto) {
		t.Fatalf("after the probe: %v after %v, want the RTO retransmission of %d after %v", r, el2, una, rto)
	}
}

// TestRACKLostRetransmission: when a segment sent after a retransmission
// is SACKed and the retransmission is not, the retransmission was lost
// and is sent again at once, without waiting for a timer.
func TestRACKLostRetransmission(t *testing.T) {
	s, c, una := rackSetup(t)
	const mss = 1460
	c.Write(make([]byte, 20*mss))
	if o := s.out(); len(o) != 10 {
		t.Fatalf("initial window %d", len(o))
	}
	s.clk.Advance(5 * time.Millisecond)
	// Segment 1 lost, 2..10 SACKed: segment 1 is resent, with new data.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + mss, Right: una + 10*mss})})
	o := s.out()
	if len(o) < 2 || o[0].h.Seq != una {
		t.Fatalf("fast retransmit: %v", o)
	}
	var newSeg uint32
	for _, x := range o[1:] {
		if x.h.Seq == una {
			t.Fatalf("segment 1 sent twice: %v", o)
		}
		if newSeg == 0 {
			newSeg = x.h.Seq
		}
	}
	if newSeg != una+10*mss {
		t.Fatalf("no new data after the retransmission: %v", o)
	}
	s.clk.Advance(5 * time.Millisecond)
	// The first new segment (sent after the retransmission) is SACKed,
	// the retransmission is not: it was lost too.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(
		wire.SACKBlock{Left: una + 10*mss, Right: una + 11*mss}, wire.SACKBlock{Left: una + mss, Right: una + 10*mss})})
	o = s.out()
	if len(o) == 0 || o[0].h.Seq != una || len(o[0].payload) != mss {
		t.Fatalf("lost retransmission not resent: %v", o)
	}
	st := s.p.Stats()
	if st.LostRetransmit != 1 || st.Timeouts != 0 || st.TLPProbes != 0 {
		t.Fatalf("lost retransmits %d timeouts %d probes %d", st.LostRetransmit, st.Timeouts, st.TLPProbes)
	}
	// The repair completes the stream: a cumulative ACK ends recovery.
	s.inject(seg{flags: fA, seq: 1001, ack: una + 11*mss, win: 65535})
	if i := c.Info(); i.LostBytes != 0 || i.SackedBytes != 0 {
		t.Fatalf("after the ACK: lost %d sacked %d", i.LostBytes, i.SackedBytes)
	}
}
