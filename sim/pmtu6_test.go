package sim

import (
	"testing"
	"time"
)

// PMTU discovery over IPv6: a router in front of a 1400-byte link sends
// Packet Too Big and the transfer shrinks its segments and finishes;
// with ICMPv6 errors filtered on the sender's link (block_icmp) the
// full-size segments vanish and the transfer stalls: the black hole.
func TestPMTU6(t *testing.T) {
	for _, block := range []bool{false, true} {
		b := "false"
		if block {
			b = "true"
		}
		sc, err := ParseScenario([]byte(`name: x
hosts:
  - {name: c, gateway: "fd00:1::1"}
  - {name: s, gateway: "fd00:2::1"}
routers:
  - {name: r1, routes: [{to: "fd00:2::/64", via: "fd00:9::2"}]}
  - {name: r2, routes: [{to: "fd00:1::/64", via: "fd00:9::1"}]}
links:
  - {a: c, a_addr: "fd00:1::2/64", b: r1, b_addr: "fd00:1::1/64", bandwidth: 100Mbit, delay: 2ms, block_icmp: ` + b + `}
  - {a: r1, a_addr: "fd00:9::1/64", b: r2, b_addr: "fd00:9::2/64", bandwidth: 50Mbit, delay: 10ms, mtu: 1400}
  - {a: r2, a_addr: "fd00:2::1/64", b: s, b_addr: "fd00:2::2/64", bandwidth: 100Mbit, delay: 2ms}
workloads:
  - {type: bulk, from: c, to: s, bytes: 2MB}
`))
		if err != nil {
			t.Fatal(err)
		}
		n, err := sc.Build(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Run(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		f := n.Flows[0]
		tooBig := n.Host("r1").Stack.Stats().IP6.InTooBigErrors.Load()
		learnt := n.Host("c").Stack.Stats().IP6.PMTUUpdates.Load()
		if tooBig == 0 {
			t.Errorf("block %v: r1 sent no Packet Too Big", block)
		}
		if !block && (!f.Completed || !f.HashOK || learnt == 0) {
			t.Errorf("clean path: completed %v hash %v (%s), path MTUs learnt %d", f.Completed, f.HashOK, f.Err, learnt)
		}
		if block && (f.Completed || learnt != 0 || f.Received == f.Bytes) {
			t.Errorf("black hole: completed %v, %d bytes, path MTUs learnt %d", f.Completed, f.Received, learnt)
		}
	}
}
