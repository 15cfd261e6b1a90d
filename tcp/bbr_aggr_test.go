package tcp

import (
	"container/heap"
	"testing"
	"time"
)

// aggregateAcks makes the B→A direction deliver in bunches: what B sends
// arrives at A at the next multiple of every after the path delay, as
// ACKs do from a receiver that is not run on time (a loaded host, a
// Wi-Fi link's aggregation, a virtual NIC that coalesces interrupts).
func (n *pathNet) aggregateAcks(every time.Duration) {
	n.hb.hook = func(s *Segment) {
		at := (n.now()+n.delay)/every*every + every
		hl := s.Header.Len()
		l := hl + len(s.Payload[0]) + len(s.Payload[1])
		p := &pathPkt{at: at, dst: n.a, src: s.Local.Addr(), dip: s.Remote.Addr(), tos: s.TOS, b: make([]byte, l)}
		s.Header.Put(p.b)
		copy(p.b[hl+copy(p.b[hl:], s.Payload[0]):], s.Payload[1])
		n.n++
		p.n = n.n
		heap.Push(&n.q, p)
	}
}

// TestBBRAckAggregation: on a 500 Mbit/s path with 1 ms RTT whose ACKs
// arrive in bunches every 10 ms, BBR keeps ≥ 85% of the bottleneck: its
// cwnd covers the data delivered beyond what the bandwidth explains
// (Linux's extra_acked). With cwnd at 2 BDP plus the pacing quanta the
// sender waits for each bunch with the pipe empty (about 45%).
func TestBBRAckAggregation(t *testing.T) {
	const bits = 500e6
	n := newPath(5, Config{}, Config{RecvBuf: 8 << 20}, bits, 4000, time.Millisecond)
	n.aggregateAcks(10 * time.Millisecond)
	c, s := n.connect(t, "bbr")
	n.bulk(t, c, s, time.Second, nil)
	const d = 2 * time.Second
	got := n.bulk(t, c, s, d, nil)
	frac := float64(got) * 8 / d.Seconds() / bits
	b := bbrOf(t, c)
	t.Logf("goodput %.1f%% of 500 Mbit/s; cwnd %d, bw %.0f Mbit/s, min RTT %v, extra acked %d, tail drops %d",
		100*frac, c.ccs.Cwnd, float64(b.bw.get())*8/1e6, b.minRTT, b.extraAcked(), n.tailDrop)
	if frac < 0.85 {
		t.Fatalf("bbr kept %.1f%% of the bottleneck with aggregated ACKs, want ≥ 85%%", 100*frac)
	}
}
