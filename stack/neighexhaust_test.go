package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// A router scanned through: packets to hundreds of unused addresses of a
// connected prefix (RFC 6583's neighbour cache exhaustion). At most half
// the cache waits for answers; the rest is refused and counted, so a
// neighbour that makes itself known still gets an entry and its traffic
// is forwarded at once. When the resolutions have failed, the room is
// free again.
func TestNeighborScanIPv4(t *testing.T) {
	h := newHarness(t, Options{Forwarding: true, ARPCacheSize: 64})
	st := &h.s.Stats().ARP
	const scan = 200
	for i := 0; i < scan; i++ {
		dst := netip.AddrFrom4([4]byte{10, 0, 0, byte(30 + i)})
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: dst}, make([]byte, 8)))
	}
	requests := 0
	for _, f := range h.ep.take() {
		if info, err := wire.ParseEthernet(f); err == nil && info.EtherType == wire.EtherTypeARP {
			requests++
		}
	}
	if requests != 32 || st.IncompleteFull.Load() != scan-32 {
		t.Fatalf("%d ARP requests, %d refused; want 32 waiting (half the cache of 64) and %d refused", requests, st.IncompleteFull.Load(), scan-32)
	}
	// A new neighbour asks for the router: it is learnt (not refused as
	// a full cache), and a packet to it leaves at once.
	other, otherMAC := netip.MustParseAddr("10.0.0.7"), wire.MAC{2, 0, 0, 0, 0, 7}
	h.ep.inject(arpFrame(wire.ARPRequest, otherMAC, other, wire.MAC{}, hostAddr, wire.BroadcastMAC))
	h.ep.take()
	if st.CacheFull.Load() != 0 {
		t.Fatalf("the neighbour was refused: cache full %d", st.CacheFull.Load())
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: other}, make([]byte, 8)))
	if !sentTo(h.ep.take(), otherMAC) {
		t.Fatal("a packet to the neighbour that announced itself was not forwarded")
	}
	// The scan's resolutions fail (3 requests, 1 s apart); then new
	// ones are taken again.
	for range 5 {
		h.clk.Advance(time.Second)
	}
	h.ep.take()
	before := st.IncompleteFull.Load()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: netip.MustParseAddr("10.0.0.250")}, make([]byte, 8)))
	if st.IncompleteFull.Load() != before || len(h.ep.take()) != 1 {
		t.Fatal("after the failed resolutions, a new one was still refused")
	}
}

func TestNeighborScanIPv6(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true, NDCacheSize: 64})
	st := &f.s.Stats().ND
	const scan = 300
	for i := 0; i < scan; i++ {
		dst := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(i>>8) + 0x10, 15: byte(i)})
		f.ep.inject(frame6(hostMAC, peerMAC, peer6, dst, wire.ProtoUDP, 64, udp6(peer6, dst, 1000, 9, []byte("x")), -1))
	}
	if ns := len(parse6(t, f.ep1.take())); ns != 32 || st.IncompleteFull.Load() != scan-32 {
		t.Fatalf("%d solicitations, %d refused; want 32 waiting (half the cache of 64) and %d refused", ns, st.IncompleteFull.Load(), scan-32)
	}
	f.ep.take()
	other, otherMAC := netip.MustParseAddr("2001:db8:1::77"), wire.MAC{2, 0, 0, 0, 0, 0x77}
	b := make([]byte, 32)
	n := wire.PutNS(b, fwEth1, otherMAC)
	f.ep1.inject(frame6(fwNIC1, otherMAC, other, wire.SolicitedNode(fwEth1), wire.ProtoICMPv6, 255, b[:n], 0))
	f.ep1.take() // the NA
	if st.CacheFull.Load() != 0 {
		t.Fatalf("the neighbour was refused: cache full %d", st.CacheFull.Load())
	}
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, other, wire.ProtoUDP, 64, udp6(peer6, other, 1000, 9, []byte("x")), -1))
	if !sentTo(f.ep1.take(), otherMAC) {
		t.Fatal("a packet to the neighbour that announced itself was not forwarded")
	}
	for range 5 {
		f.clk.Advance(time.Second)
	}
	f.ep1.take()
	f.ep.take()
	before := st.IncompleteFull.Load()
	dst := netip.MustParseAddr("2001:db8:1::abcd")
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, dst, wire.ProtoUDP, 64, udp6(peer6, dst, 1000, 9, []byte("x")), -1))
	if st.IncompleteFull.Load() != before || len(f.ep1.take()) != 1 {
		t.Fatal("after the failed resolutions, a new one was still refused")
	}
}

// sentTo reports whether one of frames is addressed to mac.
func sentTo(frames [][]byte, mac wire.MAC) bool {
	for _, f := range frames {
		if info, err := wire.ParseEthernet(f); err == nil && info.Dst == mac {
			return true
		}
	}
	return false
}

// A router flooded with packets whose hop limit runs out, from one
// source and then from many, answers within the ICMP limits (per
// destination, ICMPPeerBurst; in total, ICMPRateBurst): forwarding does
// not make it an amplifier.
func TestForward6TimeExceededFloodLimited(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true, ICMPPeerBurst: 6})
	st := f.s.Stats()
	timeExceeded := func() int {
		n := 0
		for _, o := range parse6(t, f.ep.take()) {
			if len(o.icmp) > 0 && o.icmp[0] == wire.ICMPv6TimeExceeded {
				n++
			}
		}
		return n
	}
	for i := 0; i < 200; i++ {
		f.ep.inject(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 1, udp6(peer6, fwFar, uint16(1000+i), 9, []byte("x")), -1))
	}
	if n := timeExceeded(); n == 0 || n > 6 {
		t.Fatalf("200 expiring packets from one source drew %d Time Exceeded, want 1-6", n)
	}
	if st.IP6.InHopLimitExceeded.Load() != 200 {
		t.Fatalf("InHopLimitExceeded %d, want 200", st.IP6.InHopLimitExceeded.Load())
	}
	f.clk.Advance(2 * time.Second)
	for i := 0; i < 2000; i++ {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: 0x77, 14: byte(i >> 8), 15: byte(i)})
		f.h6.nic.SetStatic6(src, peerMAC)
		f.ep.inject(frame6(hostMAC, peerMAC, src, fwFar, wire.ProtoUDP, 1, udp6(src, fwFar, 1000, 9, []byte("x")), -1))
	}
	if n := timeExceeded(); n == 0 || n > 50 {
		t.Fatalf("2,000 expiring packets from 2,000 sources drew %d Time Exceeded, over the global burst of 50", n)
	}
}

// A flood of NS from spoofed on-link sources fills the ND cache with
// entries the answers moved to DELAY (RFC 4861 7.3.3: a STALE entry that
// is sent to). A new neighbour must still be resolved: those entries can
// be evicted, as STALE ones can. Before, only STALE entries could go, and
// every new resolution was refused ("cache full") until the flood's
// entries had been probed and had failed, seconds later.
func TestNDFloodDelayEntriesEvictable(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true, NDCacheSize: 64})
	st := &f.s.Stats().ND
	b := make([]byte, 32)
	for i := range 100 {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 12: 0x5c, 14: byte(i >> 8), 15: byte(i)})
		mac := wire.MAC{2, 0xbb, 0, 0, byte(i >> 8), byte(i)}
		n := wire.PutNS(b, fwEth1, mac)
		f.ep1.inject(frame6(fwNIC1, mac, src, fwEth1, wire.ProtoICMPv6, 255, b[:n], 0))
	}
	f.ep1.take() // the NAs
	states := map[NeighborState]int{}
	for _, e := range f.nic1.Neighbors6() {
		states[e.State]++
	}
	if states[NeighDelay] == 0 {
		t.Fatalf("the flood left no DELAY entry (states %v): the test does not test what it says", states)
	}
	full := st.CacheFull.Load()
	dst := netip.MustParseAddr("2001:db8:1::abcd")
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, dst, wire.ProtoUDP, 64, udp6(peer6, dst, 1000, 9, []byte("x")), -1))
	ns := 0
	for _, o := range parse6(t, f.ep1.take()) {
		if len(o.icmp) > 0 && o.icmp[0] == wire.ICMPv6NeighborSolic {
			ns++
		}
	}
	if ns != 1 || st.CacheFull.Load() != full {
		t.Fatalf("a new neighbour after the flood (cache states %v): %d solicitations, %d more refused as cache full", states, ns, st.CacheFull.Load()-full)
	}
}
