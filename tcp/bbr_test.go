package tcp

import (
	"testing"
	"time"
)

func bbrOf(t testing.TB, e *Endpoint) *bbr {
	t.Helper()
	e.lock()
	defer e.unlock()
	b, ok := e.cc.(*bbr)
	if !ok {
		t.Fatalf("congestion control %T, want *bbr", e.cc)
	}
	return b
}

// TestBBRStates: on a clean 10 Mbit/s, 40 ms path a BBR flow goes
// STARTUP → DRAIN → PROBE_BW, cycles through all eight pacing gains
// (1.25 always followed by 0.75), enters PROBE_RTT once the minimum RTT
// is 10 s old, keeps cwnd at 4 segments there, and returns to PROBE_BW.
func TestBBRStates(t *testing.T) {
	n := newPath(1, Config{}, Config{}, 10e6, 100, 40*time.Millisecond)
	c, s := n.connect(t, "bbr")
	b := bbrOf(t, c)
	var modes []bbrMode
	var probeRTTAt, probeRTTCwnd time.Duration
	seen := map[int]bool{}
	prevIdx, prevMode := -1, bbrMode(255)
	probeRTTMaxCwnd := 0
	n.bulk(t, c, s, 13*time.Second, func() {
		if b.mode != prevMode {
			modes = append(modes, b.mode)
			if b.mode == bbrProbeRTT && probeRTTAt == 0 {
				probeRTTAt = n.now()
			}
			prevMode = b.mode
		}
		if b.mode == bbrProbeRTT {
			probeRTTMaxCwnd = max(probeRTTMaxCwnd, c.ccs.Cwnd)
		}
		if b.mode == bbrProbeBW && b.cycleIdx != prevIdx {
			if prevIdx == 0 && b.cycleIdx != 1 {
				t.Fatalf("phase 0 (gain 1.25) followed by %d", b.cycleIdx)
			}
			seen[b.cycleIdx] = true
			prevIdx = b.cycleIdx
		}
	})
	_ = probeRTTCwnd
	want := []bbrMode{bbrStartup, bbrDrain, bbrProbeBW, bbrProbeRTT, bbrProbeBW}
	if len(modes) < len(want) {
		t.Fatalf("modes %v, want %v", modes, want)
	}
	for i := range want {
		if modes[i] != want[i] {
			t.Fatalf("modes %v, want %v", modes, want)
		}
	}
	if len(seen) != bbrCycleLen {
		t.Fatalf("PROBE_BW phases seen %v, want all %d", seen, bbrCycleLen)
	}
	if probeRTTAt < 10*time.Second || probeRTTAt > 11*time.Second {
		t.Fatalf("PROBE_RTT at %v, want about 10 s after the first RTT sample", probeRTTAt)
	}
	if probeRTTMaxCwnd > bbrMinCwndSegs*c.sndMSS {
		t.Fatalf("cwnd in PROBE_RTT up to %d, want at most 4 segments (%d)", probeRTTMaxCwnd, bbrMinCwndSegs*c.sndMSS)
	}
	t.Logf("modes %v; PROBE_RTT at %v", modes, probeRTTAt)
}

// TestBBRBandwidthEstimate: the bandwidth estimate converges to the
// bottleneck's payload rate, the min RTT to the propagation delay plus
// one packet's serialization, and the queue stays short.
func TestBBRBandwidthEstimate(t *testing.T) {
	for _, mbit := range []int64{5, 20, 50} {
		n := newPath(2, Config{}, Config{}, mbit*1e6, 1000, 40*time.Millisecond)
		c, s := n.connect(t, "bbr")
		b := bbrOf(t, c)
		n.bulk(t, c, s, 3*time.Second, nil)
		maxQ := 0
		n.maxQueue = 0
		n.bulk(t, c, s, 3*time.Second, func() { maxQ = max(maxQ, len(n.departs)) })
		mss := c.sndMSS
		payload := float64(mbit*1e6/8) * float64(mss) / float64(mss+52)
		got := float64(b.bw.get())
		if got < 0.95*payload || got > 1.05*payload {
			t.Fatalf("%d Mbit/s: bandwidth estimate %.0f B/s, want %.0f ±5%%", mbit, got, payload)
		}
		ser := time.Duration(int64(mss+52) * int64(time.Second) / (mbit * 1e6 / 8))
		if b.minRTT < 40*time.Millisecond || b.minRTT > 40*time.Millisecond+2*ser+time.Millisecond {
			t.Fatalf("%d Mbit/s: min RTT %v", mbit, b.minRTT)
		}
		bdpPkts := int(payload * 0.04 / float64(mss))
		if maxQ > bdpPkts+4 {
			t.Fatalf("%d Mbit/s: queue reached %d packets in steady state (BDP %d)", mbit, maxQ, bdpPkts)
		}
		t.Logf("%d Mbit/s: bw %.0f B/s (payload rate %.0f), min RTT %v, max queue %d (BDP %d packets), pacing %d B/s",
			mbit, got, payload, b.minRTT, maxQ, bdpPkts, c.ccs.PacingRate)
	}
}

// lossyGoodput runs cc over a 20 Mbit/s, 40 ms path with 1% random loss
// for 20 s (after 2 s) and returns the goodput as a fraction of the
// bottleneck.
func lossyGoodput(t *testing.T, cc string) float64 {
	const bits = 20e6
	n := newPath(3, Config{}, Config{}, bits, 200, 40*time.Millisecond)
	n.loss = 0.01
	c, s := n.connect(t, cc)
	n.bulk(t, c, s, 2*time.Second, nil)
	const d = 20 * time.Second
	got := n.bulk(t, c, s, d, nil)
	frac := float64(got) * 8 / d.Seconds() / bits
	t.Logf("%s: goodput %.2f Mbit/s = %.1f%% of the 20 Mbit/s bottleneck at 1%% loss (lost %d, tail drops %d, retrans %d)",
		cc, float64(got)*8/d.Seconds()/1e6, 100*frac, n.lossDrop, n.tailDrop, c.Info().TotalRetrans)
	return frac
}

// TestBBRLossyPath: at 1% random loss BBR keeps at least 90% of the
// bottleneck (its model ignores random loss); CUBIC, for comparison,
// cannot (loss-based: about 1.2·MSS/(RTT·√p)).
func TestBBRLossyPath(t *testing.T) {
	if f := lossyGoodput(t, "bbr"); f < 0.90 {
		t.Fatalf("bbr kept %.1f%% of the bottleneck, want ≥ 90%%", 100*f)
	}
	if f := lossyGoodput(t, "cubic"); f > 0.6 {
		t.Fatalf("cubic kept %.1f%% of the bottleneck: the path is not lossy enough to tell", 100*f)
	}
}

// TestSteadyStateNoAllocs: a bulk transfer in steady state allocates
// nothing per segment with BBR (rate samples, pacing timer) or CUBIC
// (HyStart++, rate samples), the timer wheel included.
func TestSteadyStateNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, cc := range []string{"cubic", "bbr"} {
		n := newPair(9, Config{CongestionControl: cc})
		n.delay = time.Millisecond
		c, s := n.connect(t)
		buf := make([]byte, 64<<10)
		rd := make([]byte, 64<<10)
		step := func() {
			c.Write(buf)
			n.step()
			for {
				if k, _ := s.Read(rd, false); k == 0 {
					break
				}
			}
		}
		for i := 0; i < 20000; i++ {
			step()
		}
		before := n.delivered
		a := testing.AllocsPerRun(2000, step)
		if segs := n.delivered - before; segs == 0 || a > 0.01 {
			t.Fatalf("%s: %.3f allocations per step (%d segments delivered)", cc, a, segs)
		}
	}
}
