package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
)

func TestQuickBulk(t *testing.T) {
	n := NewNet(1)
	a, _ := n.AddHost("a", false, tcp.Config{})
	b, _ := n.AddHost("b", false, tcp.Config{})
	_, err := n.Connect("ab", LinkConfig{Bandwidth: 10e6, Delay: 10 * time.Millisecond, Queue: QueueConfig{Limit: 100}},
		End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	w := &Workload{Name: "bulk", Type: "bulk", From: []*Host{a}, To: b, Port: 5001, Bytes: 1 << 20}
	if err := n.Start(w); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	f := n.Flows[0]
	t.Logf("%+v events=%d sim=%v wall=%v", *f, n.S.Events, n.S.Now(), n.Wall)
	if !f.Completed || !f.HashOK {
		t.Fatal("not completed")
	}
}
