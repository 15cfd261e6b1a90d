package sim

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
)

// The capture analysis finds the transfer, its bytes, its RTT and its
// rate: a 1 MB transfer over a lossless 100 Mbit/s link with 10 ms each
// way, captured at the sender.
func TestTraceConnFromCapture(t *testing.T) {
	n := NewNet(5)
	a, _ := n.AddHost("a", false, tcp.Config{})
	b, _ := n.AddHost("b", false, tcp.Config{})
	if _, err := n.Connect("ab", LinkConfig{Bandwidth: 100e6, Delay: 10 * time.Millisecond},
		End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.Capture(dir, nil); err != nil {
		t.Fatal(err)
	}
	n.Start(&Workload{Name: "bulk", Type: "bulk", From: []*Host{a}, To: b, Port: 5001, Bytes: 1e6})
	if err := n.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "ab.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadPcap(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := Connections(recs)
	if len(cs) == 0 || cs[0].Bytes != 1e6 || cs[0].Dst.Port() != 5001 {
		t.Fatalf("connections: %v", cs)
	}
	ct := TraceConn(recs, cs[0].Src, cs[0].Dst)
	if ct.Bytes != 1e6+2 || ct.Retrans != 0 {
		t.Errorf("highest sequence %d (want 1e6+2: SYN and FIN count), %d retransmissions", ct.Bytes, ct.Retrans)
	}
	rs := ct.RTTSamples()
	if len(rs) < 100 {
		t.Fatalf("%d RTT samples", len(rs))
	}
	var v []time.Duration
	for _, r := range rs {
		v = append(v, r.RTT)
	}
	slices.Sort(v)
	// 20 ms of propagation plus serialisation, queueing and delayed ACKs.
	if v[0] < 20*time.Millisecond || v[len(v)/2] > 30*time.Millisecond {
		t.Errorf("RTT min %v median %v, want from 20 ms, median under 30 ms", v[0], v[len(v)/2])
	}
	ts, bps := ct.Throughput(10 * time.Millisecond)
	if len(ts) == 0 || slices.Max(bps) > 100e6*1.01 {
		t.Errorf("throughput bins: %d, peak %.0f bit/s above the link's 100 Mbit/s", len(ts), slices.Max(bps))
	}
	w := ct.Window(50*time.Millisecond, 60*time.Millisecond)
	for _, s := range w.Segs {
		if s.T < 50*time.Millisecond || s.T > 60*time.Millisecond {
			t.Fatalf("segment at %v outside the window", s.T)
		}
	}
}
