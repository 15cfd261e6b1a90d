package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// tlpEpisode sends three segments, acknowledges the first two, and lets
// the tail loss probe retransmit the third; then the peer answers as
// answer says, and one more segment is sent and acknowledged. It returns
// cwnd and ssthresh in segments.
func tlpEpisode(t *testing.T, answer string) (uint32, uint32) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	const mss = 1460
	warmRTT(s, c, &una)
	cw := c.Info().SndCwnd
	c.Write(make([]byte, 3*mss))
	if o := s.out(); len(o) != 3 {
		t.Fatalf("%d segments", len(o))
	}
	s.clk.Advance(10 * time.Millisecond)
	s.inject(seg{flags: fA, seq: 1001, ack: una + 2*mss, win: 65535})
	p, _ := s.waitOne(time.Second)
	check(t, "probe", p, fPA, una+2*mss, 1001, mss)
	end := una + 3*mss
	switch answer {
	case "probe only": // the original was lost; the probe repaired it
		s.inject(seg{flags: fA, seq: 1001, ack: end, win: 65535})
	case "dsack": // both arrived: the probe is reported by a D-SACK
		s.inject(seg{flags: fA, seq: 1001, ack: end, win: 65535})
		s.inject(seg{flags: fA, seq: 1001, ack: end, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + 2*mss, Right: end})})
	case "dupack": // both arrived, the receiver has no D-SACK
		s.inject(seg{flags: fA, seq: 1001, ack: end, win: 65535})
		s.inject(seg{flags: fA, seq: 1001, ack: end, win: 65535})
	}
	s.out()
	if i := c.Info(); i.SndCwnd != cw {
		t.Fatalf("%s: cwnd %d before the episode ended, was %d", answer, i.SndCwnd, cw)
	}
	c.Write(make([]byte, mss))
	s.out()
	s.inject(seg{flags: fA, seq: 1001, ack: end + mss, win: 65535})
	i := c.Info()
	return i.SndCwnd, i.SndSsthresh
}

// TestTLPRepairedLossReducesCwnd: when the ACK of a probe shows it
// repaired a loss (no D-SACK, no duplicate ACK for the original), cwnd
// is reduced as for a fast recovery (RFC 8985 7.4): CUBIC, 10 -> 7. When
// both copies arrived, it is not.
func TestTLPRepairedLossReducesCwnd(t *testing.T) {
	if cw, ss := tlpEpisode(t, "probe only"); cw != 7 || ss != 7 {
		t.Fatalf("loss repaired by the probe: cwnd %d ssthresh %d, want 7 and 7", cw, ss)
	}
	for _, a := range []string{"dsack", "dupack"} {
		if cw, ss := tlpEpisode(t, a); cw != 10 || ss < 1<<19 {
			t.Fatalf("%s: cwnd %d ssthresh %d, want 10 and unset", a, cw, ss)
		}
	}
}

// slowStartTo40 acknowledges two rounds of slow start (10 then 20
// segments, each by one ACK) so that cwnd is 40 with nothing in flight.
func slowStartTo40(t *testing.T, s *script, c *Endpoint, iss uint32) uint32 {
	const mss = 1460
	c.Write(make([]byte, 30*mss))
	una := iss + 1
	for _, n := range []int{10, 20} {
		if o := s.out(); len(o) != n {
			t.Fatalf("flight of %d, want %d", len(o), n)
		}
		s.clk.Advance(10 * time.Millisecond)
		una += uint32(n * mss) // one stretch ACK: cwnd-limited to the end
		s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535})
	}
	if cw := c.Info().SndCwnd; cw != 40 {
		t.Fatalf("cwnd %d", cw)
	}
	return una
}

// TestSlowStartRestartAfterIdle: after an idle period longer than the
// RTO, cwnd restarts (halved per RTO idle, at least the initial window;
// RFC 5681 4.1, Linux tcp_slow_start_after_idle); a shorter pause keeps
// it.
func TestSlowStartRestartAfterIdle(t *testing.T) {
	for _, tc := range []struct {
		idle time.Duration
		want int
	}{{100 * time.Millisecond, 40}, {300 * time.Millisecond, 20}, {time.Second, 10}} {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(wsOpts)
		slowStartTo40(t, s, c, iss)
		if rto := c.Info().RTO; rto < 200*time.Millisecond || rto > 250*time.Millisecond {
			t.Fatalf("RTO %v", rto)
		}
		s.clk.Advance(tc.idle)
		c.Write(make([]byte, 60*1460))
		if o := s.out(); len(o) != tc.want {
			t.Fatalf("after %v idle: %d segments, want %d", tc.idle, len(o), tc.want)
		}
		if tc.want != 40 {
			if ss := c.Info().SndSsthresh; ss < 30 {
				t.Fatalf("ssthresh %d: 3/4 of the old cwnd not kept", ss)
			}
		}
	}
}

// TestCubicEpochShiftedByIdle: CUBIC's epoch moves by the time the
// sender was idle, so the cubic curve does not jump ahead by it (Linux's
// bictcp_cwnd_event on CA_EVENT_TX_START).
func TestCubicEpochShiftedByIdle(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(wsOpts)
	const mss = 1460
	c.Write(make([]byte, 20*mss))
	s.out()
	s.waitOne(time.Minute) // a timeout: ssthresh 7, congestion avoidance after
	una := iss + 1 + 10*mss
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535})
	for k := 0; k < 3; k++ {
		o := s.out()
		s.clk.Advance(10 * time.Millisecond)
		for _, x := range o {
			s.inject(seg{flags: fA, seq: 1001, ack: x.h.Seq + uint32(len(x.payload)), win: 65535})
		}
	}
	cu := c.cc.(*cubic)
	if cu.epochStart == 0 || c.sndUna != c.sndMax {
		t.Fatalf("epoch %v, in flight %d", cu.epochStart, c.sndMax-c.sndUna)
	}
	epoch, last := cu.epochStart, c.lastDataSent
	s.clk.Advance(150 * time.Millisecond)
	c.Write(make([]byte, mss))
	if got, want := cu.epochStart, epoch+(s.p.now()-last); got != want {
		t.Fatalf("epoch %v after idle, want %v (moved by %v)", got, want, s.p.now()-last)
	}
}

// TestCorkCeiling: TCP_CORK holds a partial segment at most 200 ms when
// nothing is in flight, then sends it.
func TestCorkCeiling(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetCork(true)
	c.Write(make([]byte, 1460+100))
	check(t, "full segment", s.expectOne("full"), fA, iss+1, 1001, 1460)
	s.clk.Advance(300 * time.Millisecond) // no ACK yet: the RTO resends the full one
	s.out()
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1461, win: 65535})
	s.expectNone("corked")
	s.clk.Advance(corkCeiling - time.Millisecond)
	s.expectNone("corked 199 ms")
	s.clk.Advance(time.Millisecond)
	check(t, "after 200 ms", s.expectOne("partial"), fPA, iss+1461, 1001, 100)
}
