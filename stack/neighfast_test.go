package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// The lock-free neighbour lookup must follow the cache: a changed MAC is
// used at once, and an entry past its reachable time is re-confirmed by
// a unicast probe, as without the fast path.
func TestNeighborFastPathFollowsCache(t *testing.T) {
	h := newHarness(t, Options{})
	nb := netip.MustParseAddr("10.0.0.8")
	mac1 := wire.MAC{2, 0, 0, 0, 0, 8}
	mac2 := wire.MAC{2, 0, 0, 0, 0, 9}
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	send := func() (data []wire.MAC, arp []wire.ARPInfo) {
		t.Helper()
		if _, err := e.SendTo([]byte("x"), netip.AddrPortFrom(nb, 9), nil); err != nil {
			t.Fatal(err)
		}
		for _, f := range h.ep.take() {
			switch wire.Ethernet(f).EtherType() {
			case wire.EtherTypeIPv4:
				data = append(data, wire.Ethernet(f).Dst())
			case wire.EtherTypeARP:
				a, err := wire.ParseARP(f[14:])
				if err != nil {
					t.Fatal(err)
				}
				if a.Op == wire.ARPRequest && wire.Ethernet(f).Dst() != wire.BroadcastMAC && wire.Ethernet(f).Dst() != a.TargetMAC && a.TargetMAC != (wire.MAC{}) {
					t.Fatalf("unicast probe to %v for %v", wire.Ethernet(f).Dst(), a.TargetMAC)
				}
				arp = append(arp, a)
			}
		}
		return data, arp
	}
	reply := func(mac wire.MAC) {
		h.ep.inject(arpFrame(wire.ARPReply, mac, nb, hostMAC, hostAddr, hostMAC))
	}

	send() // resolution starts
	reply(mac1)
	h.ep.take() // the queued datagram
	for i := 0; i < 3; i++ {
		if d, a := send(); len(d) != 1 || d[0] != mac1 || len(a) != 0 {
			t.Fatalf("send %d: data to %v, %d ARP frames; want one to %v, no ARP", i, d, len(a), mac1)
		}
	}

	// A different MAC within the locktime of the last update is ignored
	// (Linux's arp locktime: the first answer wins for a while).
	reply(mac2)
	if d, _ := send(); len(d) != 1 || d[0] != mac1 {
		t.Fatalf("a new MAC within the locktime: data to %v, want %v", d, mac1)
	}
	if h.s.Stats().ARP.LocktimeIgnored.Load() != 1 {
		t.Fatalf("LocktimeIgnored = %d", h.s.Stats().ARP.LocktimeIgnored.Load())
	}
	// After it, the neighbour answers from a new MAC: the next send uses it.
	h.clk.Advance(h.s.Options().ARPLocktime)
	reply(mac2)
	if d, _ := send(); len(d) != 1 || d[0] != mac2 {
		t.Fatalf("after a new reply, data to %v, want %v", d, mac2)
	}

	// Past the reachable time the entry is still used but probed.
	h.clk.Advance(h.s.Options().ARPReachable + time.Second)
	d, a := send()
	if len(d) != 1 || d[0] != mac2 {
		t.Fatalf("stale entry: data to %v, want %v", d, mac2)
	}
	if len(a) != 1 || a[0].TargetIP != nb {
		t.Fatalf("stale entry: %d ARP requests (%+v), want one probe for %v", len(a), a, nb)
	}
	// No second probe within the retry time.
	if _, a := send(); len(a) != 0 {
		t.Fatalf("%d more probes before the retry time", len(a))
	}
	reply(mac1)
	if d, a := send(); len(d) != 1 || d[0] != mac1 || len(a) != 0 {
		t.Fatalf("after confirmation: data to %v, %d ARP; want %v, none", d, len(a), mac1)
	}

	// A static entry replaces the learnt one for the fast path too.
	h.nic.SetStatic(nb, mac2)
	if d, _ := send(); len(d) != 1 || d[0] != mac2 {
		t.Fatalf("after SetStatic: data to %v, want %v", d, mac2)
	}
}

// Use through the fast path counts as use when the cache ages entries:
// a neighbour used until shortly before it went stale is kept.
func TestNeighborFastPathCountsAsUse(t *testing.T) {
	h := newHarness(t, Options{ARPReachable: 20 * time.Second, ARPStaleTimeout: 10 * time.Second})
	nb := netip.MustParseAddr("10.0.0.8")
	mac := wire.MAC{2, 0, 0, 0, 0, 8}
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	e.SendTo([]byte("x"), netip.AddrPortFrom(nb, 9), nil)
	h.ep.inject(arpFrame(wire.ARPReply, mac, nb, hostMAC, hostAddr, hostMAC))
	for i := 0; i < 4; i++ { // sends at 4, 8, 12, 16 s
		h.clk.Advance(4 * time.Second)
		e.SendTo([]byte("x"), netip.AddrPortFrom(nb, 9), nil)
	}
	for _, f := range h.ep.take() {
		if wire.Ethernet(f).EtherType() == wire.EtherTypeARP && wire.Ethernet(f).Dst() != wire.BroadcastMAC {
			t.Fatal("probe sent for a reachable neighbour")
		}
	}
	for i := 0; i < 10; i++ { // to 26 s: the entry is stale, last used at 16 s
		h.clk.Advance(time.Second)
	}
	for _, n := range h.nic.Neighbors() {
		if n.Addr == nb {
			return
		}
	}
	t.Fatal("a neighbour used 10 s ago was removed (stale timeout 10 s)")
}
