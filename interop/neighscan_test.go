package interop

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// neighborScan is RFC 6583's attack from outside: echo requests from
// thousands of spoofed on-link sources, each of which the target must
// resolve before it can answer. sockstack lets at most half its cache
// wait for answers (stack/arp.go maxIncomplete), so the scan cannot fill
// it: the kernel's entry and new neighbours keep working. Linux (no such
// cap, gc_thresh3 1024) takes the same scan, logged for reference.
func (a *attackLab) neighborScan(t *testing.T) {
	const n, cacheSize = 3000, 1024 // cacheSize: the default NDCacheSize
	ping6(t, a.h, kernel6, 8)
	scanned := map[netip.Addr]bool{}
	build := func(v *v6target) [][]byte {
		fs := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			src := v.addr(fmt.Sprintf("3:%x", i))
			if v == a.sock {
				scanned[src] = true
			}
			mac := wire.MAC{2, 0xcc, 0, 0, byte(i >> 8), byte(i)}
			fs = append(fs, icmp6Frame(v.mac, mac, src, v.ip, 64, wire.ICMPv6EchoRequest, 0, echoReq(0x5ca0, uint16(i), []byte("scan"))))
		}
		return fs
	}
	incomplete := func() int {
		k := 0
		for _, e := range a.h.nic.Neighbors6() {
			if e.State == stack.NeighIncomplete {
				k++
			}
		}
		return k
	}
	c0 := a.counters()
	rs := a.probe(t, a.sock, build(a.sock)...)
	c1 := a.counters()
	waiting := incomplete()
	solicited := map[netip.Addr]bool{}
	for _, r := range pick(rs, ofType(wire.ICMPv6NeighborSolic)) {
		if scanned[r.target] {
			solicited[r.target] = true
		}
	}
	refused := c0.delta(c1, "ND.IncompleteFull")
	t.Logf("sockstack: %d echo requests from spoofed on-link sources; %d of them solicited, %d entries waiting (limit %d), %d resolutions refused, echo requests received %d",
		n, len(solicited), waiting, cacheSize/2, refused, c0.delta(c1, "ICMP6.InEchos"))
	if waiting > cacheSize/2 || len(solicited) > cacheSize/2 {
		t.Errorf("%d entries waiting, %d scanned addresses solicited: over half the cache (%d)", waiting, len(solicited), cacheSize/2)
	}
	if refused == 0 {
		t.Error("the scan never hit the cap on waiting entries (or it was not counted)")
	}
	if i, ok := a.h.nic.Neighbor6(kernel6); !ok || i.MAC != a.sock.kmac {
		t.Errorf("the kernel's entry after the scan: %+v %v", i, ok)
	}
	// The scan's resolutions fail (three solicitations, a second apart);
	// then a neighbour sockstack has never seen is resolved as usual.
	a.waitUntil(t, "the scan's resolutions have failed", func() bool { return incomplete() == 0 })
	fresh := a.sock.addr("4:1")
	a.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", fresh.String()+"/128", "dev", a.sock.ifname, "nodad")
	defer a.try(5*time.Second, nil, "ip", "-6", "addr", "del", fresh.String()+"/128", "dev", a.sock.ifname)
	before := a.counters()
	a.run(t, 15*time.Second, nil, "ping", "-6", "-c", "1", "-W", "5", "-I", fresh.String(), a.sock.ip.String())
	if d := before.delta(a.counters(), "ND.IncompleteFull"); d != 0 {
		t.Errorf("a new neighbour after the scan: %d resolutions refused", d)
	}
	if i, ok := a.h.nic.Neighbor6(fresh); !ok || i.MAC != a.sock.kmac {
		t.Errorf("the new neighbour's entry: %+v %v", i, ok)
	}

	a.linuxNstat(true)
	lr := a.probe(t, a.lnx, build(a.lnx)...)
	out, _ := exec.Command("ip", "-n", a.ns2, "-6", "neigh", "show", "dev", "vb", "nud", "incomplete").Output()
	lines := strings.TrimSpace(string(out))
	waitingLx := 0
	if lines != "" {
		waitingLx = len(strings.Split(lines, "\n"))
	}
	t.Logf("linux: %d neighbour solicitations sent, %d entries waiting; nstat: %s",
		len(pick(lr, ofType(wire.ICMPv6NeighborSolic))), waitingLx, a.linuxNstat(false))
}
