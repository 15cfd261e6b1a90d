package tcp

import (
	"testing"
	"time"
)

// TestHyStartExitsBeforeLoss: on a 10 Mbit/s, 40 ms path whose queue
// (1000 packets, about 30 BDPs, as a bloated buffer) grows through slow start, CUBIC with
// HyStart++ leaves slow start on the RTT rise, before any packet is
// lost; NewReno (standard slow start) on the same path overflows the
// queue.
func TestHyStartExitsBeforeLoss(t *testing.T) {
	type result struct {
		exitAt           time.Duration
		dropsAtExit      int
		retransAtExit    uint64
		cwndAtExit       int
		queueAtExit      int
		usedCSS, cssDone bool
	}
	run := func(cc string) result {
		n := newPath(4, Config{}, Config{RecvBuf: 4 << 20}, 10e6, 1000, 40*time.Millisecond)
		c, s := n.connect(t, cc)
		var r result
		n.bulk(t, c, s, 4*time.Second, func() {
			if r.exitAt != 0 {
				return
			}
			if cu, ok := c.cc.(*cubic); ok && cu.hs.css {
				r.usedCSS = true
			}
			if c.ccs.Ssthresh < initSsthresh {
				r.exitAt = n.now()
				r.dropsAtExit = n.tailDrop + n.lossDrop
				r.retransAtExit = uint64(c.totalRetrans)
				r.cwndAtExit = c.ccs.Cwnd / c.sndMSS
				r.queueAtExit = len(n.departs)
				if cu, ok := c.cc.(*cubic); ok {
					r.cssDone = cu.hs.cssRounds >= hsCSSRounds
				}
			}
		})
		if r.exitAt == 0 {
			t.Fatalf("%s: never left slow start", cc)
		}
		t.Logf("%s: slow start ended at %v with cwnd %d segments, queue %d packets, %d dropped, %d retransmitted (CSS used %v, completed %v)",
			cc, r.exitAt, r.cwndAtExit, r.queueAtExit, r.dropsAtExit, r.retransAtExit, r.usedCSS, r.cssDone)
		return r
	}
	h := run("cubic")
	if h.dropsAtExit != 0 || h.retransAtExit != 0 {
		t.Fatalf("cubic with HyStart++: %d drops, %d retransmissions before slow start ended", h.dropsAtExit, h.retransAtExit)
	}
	if !h.usedCSS || !h.cssDone {
		t.Fatalf("cubic: slow start did not end through CSS (used %v, %d rounds)", h.usedCSS, hsCSSRounds)
	}
	r := run("newreno")
	if r.dropsAtExit == 0 {
		t.Fatal("newreno: slow start ended without loss: the path does not tell")
	}
}

// TestHyStartCSSFallback drives HyStart++ round by round: a rise of the
// round's minimum RTT by the threshold enters CSS (a quarter of the
// growth); an RTT below the CSS baseline goes back to slow start; five
// rounds of CSS end slow start with ssthresh = cwnd.
func TestHyStartCSSFallback(t *testing.T) {
	const mss = 1000
	var h hystart
	s := CCState{Cwnd: 10 * mss, Ssthresh: initSsthresh, MSS: mss}
	nxt := uint32(0)
	round := func(rtt time.Duration) (grew int) {
		// One round: every segment of cwnd acknowledged one by one.
		start := nxt
		nxt += uint32(s.Cwnd)
		segs := s.Cwnd / mss
		before := s.Cwnd
		for i := 1; i <= segs; i++ {
			s.Ack = start + uint32(i*mss)
			s.SndNxt = nxt
			s.RTT = rtt
			if i == 1 {
				s.Ack = start // the first ACK of a round still ends the previous
			}
			h.onAck(&s, mss)
		}
		return s.Cwnd - before
	}
	round(40 * time.Millisecond)
	if g := round(40 * time.Millisecond); h.css || g != 20*mss {
		t.Fatalf("steady RTT: css %v, grew %d", h.css, g)
	}
	round(45 * time.Millisecond) // +5 ms ≥ max(40/8, 4) ms: CSS
	if !h.css {
		t.Fatal("RTT rise did not enter CSS")
	}
	if g, cw := round(45*time.Millisecond), s.Cwnd; g > cw/4+mss {
		t.Fatalf("CSS grew cwnd by %d of %d", g, cw)
	}
	round(41 * time.Millisecond) // below the baseline: back to slow start
	if h.css {
		t.Fatal("RTT fall did not leave CSS")
	}
	round(41 * time.Millisecond)
	round(50 * time.Millisecond)
	if !h.css {
		t.Fatal("second rise did not enter CSS")
	}
	for i := 0; i < hsCSSRounds && s.Ssthresh == initSsthresh; i++ {
		round(50 * time.Millisecond)
	}
	if s.Ssthresh != s.Cwnd {
		t.Fatalf("after %d CSS rounds ssthresh %d, cwnd %d", hsCSSRounds, s.Ssthresh, s.Cwnd)
	}
}
