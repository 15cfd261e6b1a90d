package tcp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/sim"
	"github.com/sockstack/sockstack/tcp"
)

// simGoodput runs one bulk flow of size bytes with congestion control
// cc over the simulator's 20 Mbit/s link with 40 ms RTT and 1% random
// loss in both directions (the whole stack: IP, TCP, sockets), and
// returns its goodput in bits per second.
func simGoodput(t *testing.T, cc string, size uint64) float64 {
	n := sim.NewNet(7)
	a, _ := n.AddHost("a", false, tcp.Config{})
	b, _ := n.AddHost("b", false, tcp.Config{RecvBuf: 4 << 20})
	_, err := n.Connect("ab", sim.LinkConfig{Bandwidth: 20e6, Delay: 20 * time.Millisecond, Loss: 0.01, Queue: sim.QueueConfig{Limit: 200}},
		sim.End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, sim.End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	w := &sim.Workload{Name: "bulk", Type: "bulk", From: []*sim.Host{a}, To: b, Port: 5001, Bytes: size, CC: cc}
	if err := n.Start(w); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(5 * time.Minute); err != nil {
		t.Fatal(err)
	}
	f := n.Flows[0]
	if !f.Completed || !f.HashOK {
		t.Fatalf("%s: flow not completed intact: %+v", cc, *f)
	}
	t.Logf("%s: %d bytes in %.2f s: goodput %.2f Mbit/s (%.1f%% of 20 Mbit/s); wall %v", cc, size, f.DurationS, f.GoodputBps/1e6, f.GoodputBps/20e6*100, n.Wall)
	return f.GoodputBps
}

// TestBBRLossySim: through the whole stack on the simulator, BBR keeps
// at least 90% of a 20 Mbit/s bottleneck with 1% random loss each way
// (64 MiB, startup included); CUBIC on the same path does not come close.
func TestBBRLossySim(t *testing.T) {
	if g := simGoodput(t, "bbr", 64<<20); g < 0.9*20e6 {
		t.Fatalf("bbr: goodput %.2f Mbit/s, want ≥ 18", g/1e6)
	}
	if g := simGoodput(t, "cubic", 4<<20); g > 0.6*20e6 {
		t.Fatalf("cubic: goodput %.2f Mbit/s: the path is not lossy enough to tell", g/1e6)
	}
}

// TestBBRLossySimWindow: on the simulator's 20 Mbit/s link with 40 ms
// RTT and 1% random loss on both directions (seeded), a BBR flow's
// goodput between 5 s and 35 s of virtual time (startup excluded: bytes
// acknowledged, sampled each second) is at least 90% of the bottleneck.
func TestBBRLossySimWindow(t *testing.T) {
	const bw = 20e6
	for _, seed := range []uint64{1, 2, 3} {
		n := sim.NewNet(seed)
		n.SampleEvery = time.Second
		n.MaxTraced = 1
		a, _ := n.AddHost("a", false, tcp.Config{})
		b, _ := n.AddHost("b", false, tcp.Config{RecvBuf: 4 << 20})
		_, err := n.Connect("ab", sim.LinkConfig{Bandwidth: bw, Delay: 20 * time.Millisecond, Loss: 0.01, Queue: sim.QueueConfig{Limit: 200}},
			sim.End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, sim.End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")})
		if err != nil {
			t.Fatal(err)
		}
		w := &sim.Workload{Name: "bulk", Type: "bulk", From: []*sim.Host{a}, To: b, Port: 5001, Bytes: 1 << 30, CC: "bbr", Trace: true}
		if err := n.Start(w); err != nil {
			t.Fatal(err)
		}
		if err := n.Run(36 * time.Second); err != nil {
			t.Fatal(err)
		}
		f := n.Flows[0]
		var at5, at35 uint64
		var ok5, ok35 bool
		for _, s := range f.Samples {
			switch s.T {
			case 5 * time.Second:
				at5, ok5 = s.BytesAcked, true
			case 35 * time.Second:
				at35, ok35 = s.BytesAcked, true
			}
		}
		if !ok5 || !ok35 {
			t.Fatalf("seed %d: no samples at 5 s and 35 s (%d samples)", seed, len(f.Samples))
		}
		g := float64(at35-at5) * 8 / 30
		t.Logf("seed %d: bbr goodput 5-35 s %.2f Mbit/s = %.1f%% of the 20 Mbit/s bottleneck at 1%% loss each way; %d retransmitted segments",
			seed, g/1e6, 100*g/bw, f.Retransmits)
		if g < 0.9*bw {
			t.Errorf("seed %d: bbr kept %.1f%% of the bottleneck, want ≥ 90%%", seed, 100*g/bw)
		}
	}
}

// TestBBRLossyShortPathNoTimeouts: through the whole stack on the
// simulator (whose links carry super-segments), 32 MiB with BBR over 1
// Gbit/s, 100 µs RTT and 2% random loss each way (the lossy interop
// test's path, seeded) is repaired without a retransmission timeout and
// with few tail probes. A super-segment SACKed in part, and a last
// segment whose data but not FIN is SACKed, used to count as not
// delivered for RACK: holes before them waited for a probe (30-40 per
// flow) or the 200 ms timeout (4 of these 5 seeds).
func TestBBRLossyShortPathNoTimeouts(t *testing.T) {
	for seed := uint64(4); seed <= 8; seed++ {
		n := sim.NewNet(seed)
		a, _ := n.AddHost("a", false, tcp.Config{})
		b, _ := n.AddHost("b", false, tcp.Config{RecvBuf: 4 << 20})
		_, err := n.Connect("ab", sim.LinkConfig{Bandwidth: 1e9, Delay: 50 * time.Microsecond, Loss: 0.02, Queue: sim.QueueConfig{Limit: 1000}},
			sim.End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, sim.End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")})
		if err != nil {
			t.Fatal(err)
		}
		w := &sim.Workload{Name: "bulk", Type: "bulk", From: []*sim.Host{a}, To: b, Port: 5001, Bytes: 32 << 20, CC: "bbr"}
		if err := n.Start(w); err != nil {
			t.Fatal(err)
		}
		if err := n.Run(time.Minute); err != nil {
			t.Fatal(err)
		}
		f := n.Flows[0]
		if !f.Completed || !f.HashOK {
			t.Fatalf("seed %d: flow not completed intact: %+v", seed, *f)
		}
		st := a.Stack.TCP.Stats()
		t.Logf("seed %d: %.0f Mbit/s (virtual time), %d recoveries, %d retransmitted segments, %d probes, %d timeouts",
			seed, f.GoodputBps/1e6, st.SACKRecovery, st.RetransSegs, st.TLPProbes, st.Timeouts)
		if st.Timeouts != 0 || st.TLPProbes > 5 {
			t.Errorf("seed %d: %d retransmission timeouts, %d tail probes; want none and at most 5", seed, st.Timeouts, st.TLPProbes)
		}
	}
}
