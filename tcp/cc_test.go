package tcp

import (
	"container/heap"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// wsOpts is a peer with window scaling only (no SACK, no timestamps), so
// that its window never limits a test flight and no probe timer runs.
var wsOpts = wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7}

// ackRounds sends a large write and acknowledges each flight (one RTT
// apart) with per segments per ACK; it returns cwnd in segments after
// each round.
func ackRounds(t *testing.T, cc string, per, rounds int) []int {
	t.Helper()
	s := newScript(t, Config{SendBuf: 8 << 20, CongestionControl: cc})
	_, c, iss := s.passiveOpen(wsOpts)
	const mss = 1460
	if n, err := c.Write(make([]byte, 8<<20)); err != nil || n != 8<<20 {
		t.Fatalf("write %d %v", n, err)
	}
	una := iss + 1
	flight := s.out()
	var cw []int
	for r := 0; r < rounds; r++ {
		s.clk.Advance(10 * time.Millisecond)
		var next []captured
		for i := 0; i < len(flight); i += per {
			last := flight[min(i+per, len(flight))-1]
			una = last.h.Seq + uint32(len(last.payload))
			s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535})
			next = append(next, s.out()...)
		}
		cw = append(cw, int(c.Info().SndCwnd))
		for _, x := range next {
			if len(x.payload) != mss {
				t.Fatalf("round %d: segment %v", r, x)
			}
		}
		if len(next) != cw[r] {
			t.Fatalf("round %d: %d segments sent for cwnd %d", r, len(next), cw[r])
		}
		flight = next
	}
	return cw
}

// TestSlowStartStretchAcks: cwnd doubles per RTT whether the receiver
// acknowledges every segment, every second one, or 16 at once (the
// stack's own ACK batching). The 2-MSS-per-ACK cap gave 12, 14, 16, ...
// with 16 segments per ACK.
func TestSlowStartStretchAcks(t *testing.T) {
	for _, cc := range []string{"cubic", "newreno"} {
		for _, per := range []int{1, 2, 16} {
			cw := ackRounds(t, cc, per, 5)
			want := []int{20, 40, 80, 160, 320}
			for i := range want {
				if cw[i] != want[i] {
					t.Fatalf("%s, %d segments per ACK: cwnd per RTT %v, want %v", cc, per, cw, want)
				}
			}
		}
	}
}

// TestSlowStartStopsAtSsthresh: slow start ends at ssthresh exactly, and
// the rest of a stretch ACK goes to congestion avoidance, which grows
// NewReno by one MSS per cwnd acknowledged.
func TestSlowStartStopsAtSsthresh(t *testing.T) {
	s := CCState{Cwnd: 10 * 1000, Ssthresh: 15 * 1000, MSS: 1000}
	var r newReno
	r.OnAck(&s, 16*1000, 0) // 5 segments of slow start, 11 of avoidance
	if s.Cwnd != 15*1000 || s.bytesAcked != 11*1000 {
		t.Fatalf("cwnd %d, accumulated %d", s.Cwnd, s.bytesAcked)
	}
	r.OnAck(&s, 34*1000, 0) // 45 segments accumulated: 3 cwnds of 15
	if s.Cwnd != 18*1000 || s.bytesAcked != 0 {
		t.Fatalf("avoidance: cwnd %d, accumulated %d", s.Cwnd, s.bytesAcked)
	}
}

// stepBatch delivers every due packet as one batch per receiver (like a
// link handing over a burst) or advances the clock to the next packet.
func (n *pairNet) stepBatch() {
	now := n.now()
	n.mu.Lock()
	var ready []*pkt
	for len(n.q) > 0 && n.q[0].at <= now {
		ready = append(ready, heap.Pop(&n.q).(*pkt))
	}
	if len(ready) == 0 {
		d := time.Millisecond
		if len(n.q) > 0 {
			d = min(d, n.q[0].at-now)
		}
		n.mu.Unlock()
		n.clk.Advance(d)
		return
	}
	n.mu.Unlock()
	for _, p := range ready {
		n.delivered++
		n.batches[p.dst].HandleSegment(p.src, p.dip, 0, p.b)
	}
	for _, b := range n.batches {
		b.Flush()
	}
	n.mu.Lock()
	n.free = append(n.free, ready...)
	n.mu.Unlock()
}

// bulkTime is the virtual time to move size bytes one way over a link
// with a 10 ms RTT, the receiver acknowledging in batches.
func bulkTime(t testing.TB, size int) time.Duration {
	n := newPair(1, Config{})
	n.useBatches()
	n.delay = 5 * time.Millisecond
	c, s := n.connect(t)
	src, dst := newStream(1, size), newSink()
	start := n.now()
	for dst.n < size {
		if n.now()-start > time.Minute {
			t.Fatalf("transfer stuck at %d bytes", dst.n)
		}
		src.pump(c)
		n.stepBatch()
		dst.drain(s)
	}
	if string(dst.h.Sum(nil)) != string(src.h.Sum(nil)) {
		t.Fatal("data mismatch")
	}
	return n.now() - start
}

// BenchmarkSlowStart8MiB reports the virtual time 8 MiB take at 10 ms
// RTT from a fresh connection (mostly slow start).
func BenchmarkSlowStart8MiB(b *testing.B) {
	var d time.Duration
	for i := 0; i < b.N; i++ {
		d = bulkTime(b, 8<<20)
	}
	b.ReportMetric(float64(d)/float64(time.Millisecond), "virtual-ms")
}

// TestRepeatedRTOKeepsSsthresh: the second timeout of the same data does
// not recompute ssthresh from the one-segment flight (RFC 5681 3.1): it
// stays 5 segments (NewReno: half of 10) or 7 (CUBIC: 0.7 of 10), where
// it used to fall to 2. A timeout after the episode's data was
// acknowledged reduces again.
func TestRepeatedRTOKeepsSsthresh(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want uint32
	}{{"newreno", 5}, {"cubic", 7}} {
		s := newScript(t, Config{CongestionControl: tc.cc})
		_, c, iss := s.passiveOpen(wsOpts)
		c.Write(make([]byte, 20*1460))
		if o := s.out(); len(o) != 10 {
			t.Fatalf("initial flight %d", len(o))
		}
		for k := 1; k <= 3; k++ {
			r, _ := s.waitOne(time.Minute)
			check(t, "retransmission", r, fA, iss+1, 1001, 1460)
			if i := c.Info(); i.SndSsthresh != tc.want || i.SndCwnd != 1 {
				t.Fatalf("%s: after timeout %d: ssthresh %d cwnd %d, want %d and 1", tc.cc, k, i.SndSsthresh, i.SndCwnd, tc.want)
			}
		}
		// The whole episode is acknowledged; slow start up to ssthresh.
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 10*1460, win: 65535})
		if i := c.Info(); i.SndSsthresh != tc.want {
			t.Fatalf("%s: ssthresh %d after recovery", tc.cc, i.SndSsthresh)
		}
		s.out()
		// A new timeout of new data is a new episode.
		s.waitOne(time.Minute)
		if i := c.Info(); i.SndSsthresh >= tc.want || i.SndSsthresh < 2 {
			t.Fatalf("%s: new episode: ssthresh %d, want below %d", tc.cc, i.SndSsthresh, tc.want)
		}
	}
}

// caRounds puts a connection into congestion avoidance (a timeout with
// 10 segments in flight sets ssthresh; acknowledging them ends slow
// start) and then acknowledges rounds one RTT apart, per segments per
// ACK; it returns cwnd in segments after each round.
func caRounds(t *testing.T, cc string, per, rounds int) []int {
	t.Helper()
	s := newScript(t, Config{SendBuf: 8 << 20, CongestionControl: cc})
	_, c, iss := s.passiveOpen(wsOpts)
	c.Write(make([]byte, 8<<20))
	s.out()
	s.waitOne(time.Minute)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 10*1460, win: 65535})
	flight := s.out()
	var cw []int
	for r := 0; r < rounds; r++ {
		s.clk.Advance(10 * time.Millisecond)
		var next []captured
		for i := 0; i < len(flight); i += per {
			last := flight[min(i+per, len(flight))-1]
			s.inject(seg{flags: fA, seq: 1001, ack: last.h.Seq + uint32(len(last.payload)), win: 65535})
			next = append(next, s.out()...)
		}
		cw = append(cw, int(c.Info().SndCwnd))
		flight = next
	}
	return cw
}

// TestCongestionAvoidanceStretchAcks: in congestion avoidance NewReno
// grows one segment per RTT, and CUBIC follows its curve, whether each
// segment is acknowledged or 16 at once.
func TestCongestionAvoidanceStretchAcks(t *testing.T) {
	for _, per := range []int{1, 2, 16} {
		cw := caRounds(t, "newreno", per, 8)
		for i := 1; i < len(cw); i++ {
			if cw[i] != cw[i-1]+1 {
				t.Fatalf("newreno, %d segments per ACK: cwnd per RTT %v, want +1 each", per, cw)
			}
		}
	}
	one := caRounds(t, "cubic", 1, 30)
	for _, per := range []int{2, 16} {
		cw := caRounds(t, "cubic", per, 30)
		for i := range cw {
			if d := cw[i] - one[i]; d < -1 || d > 1 {
				t.Fatalf("cubic, %d segments per ACK: cwnd per RTT %v; acknowledging each: %v", per, cw, one)
			}
		}
	}
	t.Logf("cubic cwnd per RTT: %v", one)
}
