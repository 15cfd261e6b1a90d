package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
)

// star builds hosts on one switch, 100 Mbit/s, 0.5 ms links.
func star(t *testing.T, seed uint64, names ...string) *Net {
	t.Helper()
	n := NewNet(seed)
	sw, _ := n.AddSwitch("sw")
	for i, nm := range names {
		h, err := n.AddHost(nm, false, tcp.Config{})
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := n.Connect(nm+"-sw", LinkConfig{Bandwidth: 100e6, Delay: 500 * time.Microsecond},
			End{Host: h, Addr: addr}, End{Switch: sw}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// A partition stalls a transfer and the heal lets it finish with every
// byte; a crashed server loses its connection, and the restarted one
// serves new connections.
func TestPartitionHealCrashRestart(t *testing.T) {
	n := star(t, 3, "a", "b", "c")
	bulk := &Workload{Name: "bulk", Type: "bulk", From: []*Host{n.Host("a")}, To: n.Host("c"), Port: 5001, Bytes: 4 << 20}
	churn := &Workload{Name: "churn", Type: "churn", From: []*Host{n.Host("a")}, To: n.Host("b"), Port: 5002,
		Bytes: 100, Response: 200 << 10, Count: 40, Concurrency: 1, Timeout: time.Second}
	for _, w := range []*Workload{bulk, churn} {
		if err := n.Start(w); err != nil {
			t.Fatal(err)
		}
	}
	cut := n.Link("c-sw")
	n.S.At(100*time.Millisecond, func() { cut.SetUp(false) })
	n.S.At(2*time.Second, func() { cut.SetUp(true) })
	b := n.Host("b")
	var crashedOpens uint64
	// Crash b in the middle of a response; restart it 250 ms later.
	var check func()
	check = func() {
		if st := b.Stack.TCP.Stats(); n.Flows[1].Received%(200<<10) != 0 {
			crashedOpens = st.PassiveOpens
			b.Crash()
			n.S.After(250*time.Millisecond, func() { b.Restart() })
			return
		}
		n.S.After(time.Millisecond, check)
	}
	n.S.At(150*time.Millisecond, check)
	if err := n.Run(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	fb, fc := n.Flows[0], n.Flows[1]
	if !fb.Completed || !fb.HashOK || fb.End < 2*time.Second {
		t.Errorf("bulk across the partition: completed %v hash %v end %v err %q", fb.Completed, fb.HashOK, fb.End, fb.Err)
	}
	st0, _ := cut.Dir(0)
	st1, _ := cut.Dir(1)
	if st0.DownDrops+st1.DownDrops == 0 {
		t.Error("nothing was dropped at the cut link")
	}
	if !fc.Completed || fc.Requests+fc.FailedConns != 40 || fc.FailedConns == 0 {
		t.Errorf("churn: completed %v requests %d failed %d (%s)", fc.Completed, fc.Requests, fc.FailedConns, fc.LastErr)
	}
	if crashedOpens == 0 || b.Stack.TCP.Stats().PassiveOpens == 0 {
		t.Errorf("passive opens before crash %d, after restart %d", crashedOpens, b.Stack.TCP.Stats().PassiveOpens)
	}
}

// A bandwidth change takes effect on the next frame.
func TestBandwidthChange(t *testing.T) {
	run := func(change bool) time.Duration {
		n := star(t, 1, "a", "b")
		w := &Workload{Name: "bulk", Type: "bulk", From: []*Host{n.Host("a")}, To: n.Host("b"), Port: 5001, Bytes: 4 << 20}
		if err := n.Start(w); err != nil {
			t.Fatal(err)
		}
		if change {
			n.S.At(50*time.Millisecond, func() { n.Link("a-sw").SetBandwidth(10e6) })
		}
		if err := n.Run(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		if !n.Flows[0].Completed {
			t.Fatal(n.Flows[0].Err)
		}
		return n.Flows[0].End
	}
	fast, slow := run(false), run(true)
	// 4 MiB at 10 Mbit/s takes at least 3.3 s; at 100 Mbit/s well under 1 s.
	if fast > time.Second || slow < 3*time.Second {
		t.Errorf("100 Mbit/s: %v, cut to 10 Mbit/s: %v", fast, slow)
	}
}
