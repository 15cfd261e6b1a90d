package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

var (
	router2LL  = netip.MustParseAddr("fe80::3")
	router2MAC = wire.MAC{2, 0, 0, 0, 0, 0x33}
	farDst     = netip.MustParseAddr("2001:db8:99::5")
)

// newRedirectHost is newH6 with 2001:db8::1/64 and a default route via
// fe80::1 (routerMC, a static neighbour).
func newRedirectHost(t *testing.T) *h6 {
	h := newH6(t, Options{})
	if err := h.nic.AddAddress(netip.MustParsePrefix("2001:db8::1/64")); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Second) // DAD
	h.s.AddRoute(Route{Prefix: netip.MustParsePrefix("::/0"), Gateway: routerLL, NIC: h.nic})
	h.nic.SetStatic6(routerLL, routerMC)
	h.ep.take()
	return h
}

// firstHopMAC sends a UDP datagram to dst and returns the Ethernet
// destination of the frame that left.
func (h *h6) firstHopMAC(dst netip.Addr) wire.MAC {
	h.t.Helper()
	p := OutPacket{Dst: dst, Proto: wire.ProtoUDP, Parts: [3][]byte{udp6(host6, dst, 1000, 2000, []byte("x"))}, NoCsum: true}
	if err := h.s.WritePacket(&p); err != nil {
		h.t.Fatalf("send to %v: %v", dst, err)
	}
	out := h.sent()
	for _, o := range out {
		if o.ip.Dst() == dst {
			return o.eth.Dst
		}
	}
	h.t.Fatalf("nothing sent to %v: %+v", dst, out)
	return wire.MAC{}
}

// redirectMsg is a redirect for dst to target with a target
// link-layer option (mac) when withLL.
func redirectMsg(target, dst netip.Addr, mac wire.MAC, withLL bool) []byte {
	b := make([]byte, 48)
	n := wire.PutRedirect(b, target, dst)
	if withLL {
		n += wire.PutNDPLinkOpt(b[n:], wire.NDPOptTargetLL, mac)
	}
	return b[:n]
}

func (h *h6) injectRedirect(src netip.Addr, hop uint8, msg []byte) {
	h.ep.inject(frame6(hostMAC, routerMC, src, hostLL, wire.ProtoICMPv6, hop, msg, 0))
}

// A valid redirect to another router: later packets for the
// destination go to it, its link-layer address comes from the option
// (STALE, a router), other destinations keep the default router.
func TestRedirectToRouter(t *testing.T) {
	h := newRedirectHost(t)
	st := &h.s.Stats().Redirect6
	eq(t, "before", h.firstHopMAC(farDst), routerMC)
	h.injectRedirect(routerLL, 255, redirectMsg(router2LL, farDst, router2MAC, true))
	eq(t, "accepted", st.Accepted.Load(), 1)
	eq(t, "after", h.firstHopMAC(farDst), router2MAC)
	eq(t, "other destination", h.firstHopMAC(netip.MustParseAddr("2001:db8:99::6")), routerMC)
	info, ok := h.nic.Neighbor6(router2LL)
	if !ok || info.MAC != router2MAC {
		t.Fatalf("target entry %+v %v", info, ok)
	}
	if got := h.s.Redirects6()[farDst]; got != router2LL {
		t.Fatalf("destination cache %v", h.s.Redirects6())
	}
	// The new first hop may redirect again; the old one no longer may.
	h.injectRedirect(routerLL, 255, redirectMsg(routerLL, farDst, routerMC, true))
	eq(t, "from the old router", st.NotFirstHop.Load(), 1)
	eq(t, "still", h.firstHopMAC(farDst), router2MAC)
	// The entry ends after its lifetime.
	h.clk.Advance(redirectLife + time.Second)
	eq(t, "expired", h.firstHopMAC(farDst), routerMC)
	if len(h.s.Redirects6()) != 0 {
		t.Fatalf("cache after expiry %v", h.s.Redirects6())
	}
}

// A redirect whose target is the destination: it is on-link, sent to
// straight (the option gives its MAC).
func TestRedirectOnLink(t *testing.T) {
	h := newRedirectHost(t)
	dstMAC := wire.MAC{2, 0, 0, 0, 0, 0x55}
	h.injectRedirect(routerLL, 255, redirectMsg(farDst, farDst, dstMAC, true))
	eq(t, "accepted", h.s.Stats().Redirect6.Accepted.Load(), 1)
	eq(t, "on-link", h.firstHopMAC(farDst), dstMAC)
	if info, ok := h.nic.Neighbor6(farDst); !ok || info.State != NeighDelay && info.State != NeighStale {
		t.Fatalf("on-link entry %+v", info)
	}
	// Without the option the target is resolved by solicitation.
	h2 := newRedirectHost(t)
	h2.injectRedirect(routerLL, 255, redirectMsg(farDst, farDst, wire.MAC{}, false))
	p := OutPacket{Dst: farDst, Proto: wire.ProtoUDP, Parts: [3][]byte{udp6(host6, farDst, 1, 2, nil)}, NoCsum: true}
	h2.s.WritePacket(&p)
	ns := h2.only(wire.ICMPv6NeighborSolic)
	if len(ns) != 1 || wire.NDP(ns[0].icmp).Target() != farDst {
		t.Fatalf("solicitation for the on-link target: %+v", ns)
	}
}

// Each validity rule of RFC 4861 8.1: the redirect is dropped, counted
// under its reason, and changes nothing.
func TestRedirectInvalid(t *testing.T) {
	good := redirectMsg(router2LL, farDst, router2MAC, true)
	code1 := append([]byte(nil), good...)
	code1[1] = 1
	zeroOpt := append([]byte(nil), good...)
	zeroOpt[wire.NDPRedirectLen+1] = 0
	for _, c := range []struct {
		name    string
		src     netip.Addr
		hop     uint8
		msg     []byte
		counter func(*Stats) *Counter
	}{
		{"global source", netip.MustParseAddr("2001:db8::fe"), 255, good, func(s *Stats) *Counter { return &s.Redirect6.BadSource }},
		{"hop limit 64", routerLL, 64, good, func(s *Stats) *Counter { return &s.Redirect6.BadHopLimit }},
		{"code 1", routerLL, 255, code1, func(s *Stats) *Counter { return &s.Redirect6.BadCode }},
		{"32 bytes", routerLL, 255, good[:32], func(s *Stats) *Counter { return &s.Redirect6.BadLength }},
		{"zero-length option", routerLL, 255, zeroOpt, func(s *Stats) *Counter { return &s.Redirect6.BadOptions }},
		{"multicast destination", routerLL, 255, redirectMsg(router2LL, netip.MustParseAddr("ff0e::1"), router2MAC, true), func(s *Stats) *Counter { return &s.Redirect6.MulticastDst }},
		{"global target", routerLL, 255, redirectMsg(netip.MustParseAddr("2001:db8::3"), farDst, router2MAC, true), func(s *Stats) *Counter { return &s.Redirect6.BadTarget }},
		{"not the first hop", netip.MustParseAddr("fe80::7"), 255, good, func(s *Stats) *Counter { return &s.Redirect6.NotFirstHop }},
		{"on-link destination", routerLL, 255, redirectMsg(router2LL, peer6, router2MAC, true), func(s *Stats) *Counter { return &s.Redirect6.NotFirstHop }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newRedirectHost(t)
			h.injectRedirect(c.src, c.hop, c.msg)
			eq(t, "counter", c.counter(h.s.Stats()).Load(), 1)
			eq(t, "accepted", h.s.Stats().Redirect6.Accepted.Load(), 0)
			eq(t, "first hop", h.firstHopMAC(farDst), routerMC)
			if _, ok := h.nic.Neighbor6(router2LL); ok {
				t.Fatal("an invalid redirect created a neighbour entry")
			}
		})
	}
	t.Run("bad checksum", func(t *testing.T) {
		h := newRedirectHost(t)
		f := frame6(hostMAC, routerMC, routerLL, hostLL, wire.ProtoICMPv6, 255, good, 0)
		f[len(f)-1] ^= 0xff
		h.ep.inject(f)
		eq(t, "checksum errors", h.s.Stats().ICMP6.InCsumErrors.Load(), 1)
		eq(t, "redirects seen", h.s.Stats().ICMP6.InRedirects.Load(), 0)
		eq(t, "first hop", h.firstHopMAC(farDst), routerMC)
	})
}

// The destination cache has a limit: beyond it a redirect for a new
// destination is counted and not installed; a known one is renewed.
func TestRedirectCacheFull(t *testing.T) {
	h := newRedirectHost(t)
	h.s.redir6.max = 1
	st := &h.s.Stats().Redirect6
	h.injectRedirect(routerLL, 255, redirectMsg(router2LL, farDst, router2MAC, true))
	other := netip.MustParseAddr("2001:db8:99::6")
	h.injectRedirect(routerLL, 255, redirectMsg(router2LL, other, router2MAC, true))
	eq(t, "accepted", st.Accepted.Load(), 1)
	eq(t, "full", st.CacheFull.Load(), 1)
	eq(t, "other keeps the default router", h.firstHopMAC(other), routerMC)
	h.injectRedirect(router2LL, 255, redirectMsg(routerLL, farDst, routerMC, true))
	eq(t, "renewed", st.Accepted.Load(), 2)
	eq(t, "back to the first router", h.firstHopMAC(farDst), routerMC)
}

// IPv4 ICMP redirects are counted and ignored (docs/DECISIONS.md): the
// datagram after one still goes to the default gateway.
func TestICMPv4RedirectIgnored(t *testing.T) {
	h := newHarness(t, Options{})
	gwMAC, otherMAC := wire.MAC{2, 0, 0, 0, 0, 0x0a}, wire.MAC{2, 0, 0, 0, 0, 0x0b}
	gw, other := netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("10.0.0.9")
	h.nic.SetStatic(gw, gwMAC)
	h.nic.SetStatic(other, otherMAC)
	h.s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw, NIC: h.nic})
	far := netip.MustParseAddr("192.0.2.5")
	send := func() wire.MAC {
		t.Helper()
		p := OutPacket{Dst: far, Proto: wire.ProtoUDP, Parts: [3][]byte{udpPayload(hostAddr, far, 1, 2, []byte("x"))}, NoCsum: true}
		if err := h.s.WritePacket(&p); err != nil {
			t.Fatal(err)
		}
		fs := h.ep.take()
		if len(fs) != 1 {
			t.Fatalf("%d frames", len(fs))
		}
		info, _ := wire.ParseEthernet(fs[0])
		return info.Dst
	}
	eq(t, "before", send(), gwMAC)
	// Type 5 code 1 (host redirect) to 10.0.0.9, with the header of a
	// datagram we sent to far.
	inner := ipFrame(wire.IPv4Header{Src: hostAddr, Dst: far, Protocol: wire.ProtoUDP}, make([]byte, 8))[14:]
	m := make([]byte, 8+len(inner))
	m[0], m[1] = wire.ICMPRedirect, 1
	copy(m[4:8], other.AsSlice())
	copy(m[8:], inner)
	wire.ICMPv4(m).FillChecksum()
	h.ep.inject(ipFrame(wire.IPv4Header{Src: gw, Protocol: wire.ProtoICMP}, m))
	eq(t, "counted", h.s.Stats().ICMP.InRedirects.Load(), 1)
	eq(t, "after", send(), gwMAC)
}
