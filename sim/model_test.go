package sim

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
)

// countSink counts what a link delivers.
type countSink struct {
	n           int
	bytes       int
	first, last time.Duration
	s           *Sim
	corrupt     int
	want        []byte
	seq         []uint32
}

func (c *countSink) recvFrame(_ *Port, p *packet) {
	now := c.s.Now()
	if c.n == 0 {
		c.first = now
	}
	c.last = now
	c.n++
	c.bytes += len(p.buf)
	if c.want != nil {
		for i := 4; i < len(p.buf); i++ {
			if p.buf[i] != c.want[i] {
				c.corrupt++
				break
			}
		}
		c.seq = append(c.seq, uint32(p.buf[0])<<24|uint32(p.buf[1])<<16|uint32(p.buf[2])<<8|uint32(p.buf[3]))
	}
	p.free()
}

// offer sends count frames of size bytes into end 0 of l, one every gap.
func offer(s *Sim, l *Link, count, size int, gap time.Duration) []byte {
	frame := make([]byte, size)
	for i := range frame {
		frame[i] = byte(i * 7)
	}
	for i := range count {
		s.At(time.Duration(i)*gap, func() {
			p := newPacket(frame)
			p.buf[0], p.buf[1], p.buf[2], p.buf[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			l.Ends[0].send(p)
		})
	}
	return frame
}

func testLink(t *testing.T, seed uint64, cfg LinkConfig) (*Sim, *Link, *countSink) {
	s := New(seed)
	l, err := s.NewLink("l", cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &countSink{s: s}
	l.Ends[1].sink = c
	l.Ends[0].sink = &countSink{s: s}
	return s, l, c
}

func within(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// A drop-tail queue in front of a 10 Mbit/s wire, offered twice its rate:
// the wire delivers exactly its bandwidth, a full queue delays each
// frame by limit × serialisation time, and the excess is dropped.
func TestDropTailModel(t *testing.T) {
	const size, limit, count = 1514, 100, 4000
	s, l, c := testLink(t, 1, LinkConfig{Bandwidth: 10e6, Delay: 10 * time.Millisecond, Queue: QueueConfig{Limit: limit}})
	tx := time.Duration(size * 8 * 1e9 / 10e6) // 1.2112 ms
	offer(s, l, count, size, tx/2)
	if err := s.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	st, q := l.Dir(0)
	rate := float64(c.n-1) * size * 8 / (c.last - c.first).Seconds()
	if !within(rate, 10e6, 0.02) {
		t.Errorf("delivered %.0f bit/s, want 10e6 within 2%%", rate)
	}
	wantDelay := time.Duration(limit) * tx
	if !within(float64(st.SojournMax), float64(wantDelay), 0.02) {
		t.Errorf("max queue delay %v, want %v within 2%%", st.SojournMax, wantDelay)
	}
	drops := q.Stats().Overlimit
	if int(drops)+c.n != count {
		t.Errorf("dropped %d + delivered %d != offered %d", drops, c.n, count)
	}
	// Offered 2x the rate for count frames: about half are dropped, less
	// what the queue absorbed.
	wantDrops := float64(count)/2 - limit
	if !within(float64(drops), wantDrops, 0.02) {
		t.Errorf("dropped %d, want %.0f within 2%%", drops, wantDrops)
	}
	if q.Stats().MaxPackets != limit {
		t.Errorf("max backlog %d, want the limit %d", q.Stats().MaxPackets, limit)
	}
	if d := c.first; d != tx+10*time.Millisecond {
		t.Errorf("first frame arrived at %v, want serialisation + propagation %v", d, tx+10*time.Millisecond)
	}
}

// Random loss, Gilbert-Elliott bursts, duplication, reordering and
// corruption happen at their configured rates.
func TestImpairmentRates(t *testing.T) {
	// Under -race (ten times slower) fewer frames and wider bounds (about
	// three standard deviations each way).
	count, widen := 200000, 1.0
	if raceEnabled {
		count, widen = 30000, 2.5
	}
	cases := []struct {
		name string
		cfg  LinkConfig
		get  func(*DirStats, *countSink) float64
		want float64
		tol  float64
	}{
		{"bernoulli 5%", LinkConfig{Loss: 0.05}, func(d *DirStats, _ *countSink) float64 { return float64(d.Lost) / float64(count) }, 0.05, 0.03},
		// Stationary bad-state share P/(P+R) = 0.01/0.26, all lost there.
		{"gilbert-elliott", LinkConfig{GE: &GilbertElliott{P: 0.01, R: 0.25, LossBad: 1}},
			func(d *DirStats, _ *countSink) float64 { return float64(d.Lost) / float64(count) }, 0.01 / 0.26, 0.1},
		{"duplicate 2%", LinkConfig{Duplicate: 0.02}, func(_ *DirStats, c *countSink) float64 { return float64(c.n-count) / float64(count) }, 0.02, 0.05},
		{"reorder 3%", LinkConfig{Reorder: 0.03, ReorderGap: 50 * time.Microsecond}, func(d *DirStats, _ *countSink) float64 { return float64(d.Reordered) / float64(count) }, 0.03, 0.05},
		{"corrupt 1%", LinkConfig{Corrupt: 0.01}, func(_ *DirStats, c *countSink) float64 { return float64(c.corrupt) / float64(count) }, 0.01, 0.07},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			k.cfg.Queue.Limit = count
			s, l, c := testLink(t, 42, k.cfg)
			c.want = offer(s, l, count, 200, 10*time.Microsecond)
			if err := s.Run(time.Minute); err != nil {
				t.Fatal(err)
			}
			st, _ := l.Dir(0)
			if got := k.get(st, c); !within(got, k.want, k.tol*widen) {
				t.Errorf("rate %.5f, want %.5f within %.0f%%", got, k.want, k.tol*100)
			}
			if k.name == "reorder 3%" {
				late := 0
				for i := 1; i < len(c.seq); i++ {
					if c.seq[i] < c.seq[i-1] {
						late++
					}
				}
				if late == 0 {
					t.Error("nothing arrived out of order")
				}
			}
		})
	}
	// Gilbert-Elliott losses come in bursts: mean run 1/R = 4 frames.
	s, l, c := testLink(t, 42, LinkConfig{GE: &GilbertElliott{P: 0.01, R: 0.25, LossBad: 1}, Queue: QueueConfig{Limit: count}})
	c.want = offer(s, l, count, 200, 10*time.Microsecond)
	s.Run(time.Minute)
	runs, lost := 0, 0
	for i := 1; i < len(c.seq); i++ {
		if gap := int(c.seq[i] - c.seq[i-1] - 1); gap > 0 {
			runs++
			lost += gap
		}
	}
	if mean := float64(lost) / float64(runs); !within(mean, 4, 0.1*widen) {
		t.Errorf("mean loss burst %.2f frames, want 4", mean)
	}
}

// dumbbell builds a -- r -- b with the bottleneck r -> b.
func dumbbell(t *testing.T, seed uint64, q QueueConfig, bw float64) *Net {
	n := NewNet(seed)
	tc := tcp.Config{MaxRecvBuf: 4 << 20, MaxSendBuf: 4 << 20}
	a, _ := n.AddHost("a", false, tc)
	r, _ := n.AddHost("r", true, tc)
	b, _ := n.AddHost("b", false, tc)
	p := netip.MustParsePrefix
	if _, err := n.Connect("a-r", LinkConfig{Bandwidth: 1e9, Delay: time.Millisecond},
		End{Host: a, Addr: p("10.0.1.2/24")}, End{Host: r, Addr: p("10.0.1.1/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Connect("r-b", LinkConfig{Bandwidth: bw, Delay: 9 * time.Millisecond, Queue: q},
		End{Host: r, Addr: p("10.0.2.1/24")}, End{Host: b, Addr: p("10.0.2.2/24")}); err != nil {
		t.Fatal(err)
	}
	a.AddRoute(RouteConfig{To: p("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.1.1")})
	b.AddRoute(RouteConfig{To: p("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.2.1")})
	return n
}

// One Reno flow through a drop-tail bottleneck whose buffer exceeds the
// path's BDP keeps the wire busy: goodput is the bandwidth times the
// payload share of a frame, within 2%.
func TestDumbbellGoodput(t *testing.T) {
	n := dumbbell(t, 1, QueueConfig{Limit: 50}, 10e6)
	w := &Workload{Name: "bulk", Type: "bulk", From: []*Host{n.Host("a")}, To: n.Host("b"), Port: 5001, Bytes: 10e6, CC: "reno"}
	if err := n.Start(w); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	f := n.Flows[0]
	f.finish(n.S.Now())
	if !f.Completed || !f.HashOK {
		t.Fatalf("flow: %+v", f)
	}
	st, q := n.Link("r-b").Dir(0)
	want := 10e6 * 1448 / 1514 // timestamps: 1448 bytes of payload per 1514-byte frame
	if !within(f.GoodputBps, want, 0.02) {
		t.Errorf("goodput %.0f bit/s, want %.0f within 2%%", f.GoodputBps, want)
	}
	util := float64(st.BusyTime) / float64(f.End-f.Start)
	if util < 0.98 {
		t.Errorf("bottleneck busy %.1f%% of the transfer", util*100)
	}
	if q.Stats().Overlimit == 0 || q.Stats().MaxPackets != 50 {
		t.Errorf("queue: %+v; Reno should fill the buffer and lose at its limit", *q.Stats())
	}
	t.Logf("goodput %.3f Mbit/s, busy %.1f%%, drops %d, max queue delay %v, retrans %d", f.GoodputBps/1e6, util*100, q.Stats().Overlimit, st.SojournMax, f.Retransmits)
}

// CoDel keeps the standing queue near its 5 ms target where a deep
// drop-tail buffer lets it grow to the buffer size.
func TestCoDelStandingQueue(t *testing.T) {
	run := func(q QueueConfig) (time.Duration, *Net) {
		n := dumbbell(t, 2, q, 10e6)
		w := &Workload{Name: "bulk", Type: "bulk", From: []*Host{n.Host("a")}, To: n.Host("b"), Port: 5001, Bytes: 8e6, Count: 2}
		if err := n.Start(w); err != nil {
			t.Fatal(err)
		}
		// Measure the standing queue after the first seconds (slow start).
		var sum time.Duration
		var k int
		var tick func()
		tick = func() {
			if n.S.Now() > 2*time.Second {
				st, qd := n.Link("r-b").Dir(0)
				_ = st
				if qd.Len() > 0 {
					head := qd.(interface{ headSojourn(int64) time.Duration })
					sum += head.headSojourn(n.S.nowNS())
					k++
				}
			}
			n.S.After(10*time.Millisecond, tick)
		}
		n.S.After(0, tick)
		if err := n.Run(time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, f := range n.Flows {
			if !f.Completed {
				t.Fatalf("flow %d: %s", f.ID, f.Err)
			}
		}
		if k == 0 {
			return 0, n
		}
		return sum / time.Duration(k), n
	}
	cd, n := run(QueueConfig{Type: "codel"})
	dt, _ := run(QueueConfig{Limit: 1000})
	_, q := n.Link("r-b").Dir(0)
	t.Logf("codel: mean standing delay %v, %d CoDel drops; drop-tail(1000): %v", cd, q.Stats().CoDelDrops, dt)
	if cd < 2*time.Millisecond || cd > 10*time.Millisecond {
		t.Errorf("CoDel standing queue delay %v, want near 5ms (2..10ms)", cd)
	}
	if q.Stats().CoDelDrops == 0 {
		t.Error("CoDel never dropped")
	}
	if dt < 5*cd {
		t.Errorf("drop-tail queue delay %v is not well above CoDel's %v", dt, cd)
	}
}
