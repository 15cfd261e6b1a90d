package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// A router between two links: eth0 2001:db8::1/64 (the peer 2001:db8::2
// behind it), eth1 2001:db8:1::1/64 with MTU 1280 (far, 2001:db8:1::2).
var (
	fwFar    = netip.MustParseAddr("2001:db8:1::2")
	fwEth1   = netip.MustParseAddr("2001:db8:1::1")
	fwFarMAC = wire.MAC{2, 0, 0, 0, 0, 0x22}
	fwNIC1   = wire.MAC{2, 0, 0, 0, 0, 0x11}
)

type fw6 struct {
	*h6
	ep1  macEP
	nic1 *NIC
}

func newFw6(t *testing.T, opts Options) *fw6 {
	t.Helper()
	opts.DADTransmits = -1
	if opts.ICMPPeerBurst == 0 {
		opts.ICMPPeerBurst = 1000 // the tests count every error
	}
	h := newH6(t, opts)
	if err := h.nic.AddAddress(netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	h.nic.SetStatic6(peer6, peerMAC)
	h.nic.SetStatic6(peerLL, peerMAC)
	ep1 := macEP{&chanEP{mtu: 1280}, fwNIC1}
	nic1 := h.s.AddNIC("eth1", ep1)
	if err := nic1.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := nic1.AddAddress(netip.PrefixFrom(fwEth1, 64)); err != nil {
		t.Fatal(err)
	}
	nic1.SetStatic6(fwFar, fwFarMAC)
	h.ep.take()
	ep1.take()
	return &fw6{h6: h, ep1: ep1, nic1: nic1}
}

// parse6 parses captured IPv6 frames.
func parse6(t *testing.T, frames [][]byte) []out6 {
	t.Helper()
	var o []out6
	for _, f := range frames {
		info, err := wire.ParseEthernet(f)
		if err != nil || info.EtherType != wire.EtherTypeIPv6 {
			continue
		}
		ip, err := wire.ParseIPv6(f[info.HeaderLen:])
		if err != nil {
			t.Fatalf("bad IPv6 out: %v", err)
		}
		x := out6{eth: info, ip: ip}
		var c wire.IPv6Chain
		if wire.SkipIPv6Chain(ip, ip.NextHeader(), wire.IPv6HeaderLen, 6, 0, &c) == wire.ChainDone && c.Proto == wire.ProtoICMPv6 {
			m, err := wire.ParseICMPv6(ip[c.Offset:], ip.PseudoSum(wire.ProtoICMPv6, 0))
			if err != nil {
				t.Fatalf("bad ICMPv6 out: %v", err)
			}
			x.icmp = m
		}
		o = append(o, x)
	}
	return o
}

// in sends a UDP packet from src to dst into eth0 with hop limit hop and
// n bytes of data; it returns what eth0 and eth1 sent.
func (f *fw6) in(src, dst netip.Addr, hop uint8, n int) (back, fwd []out6) {
	f.t.Helper()
	pl := udp6(src, dst, 1000, 9, make([]byte, n))
	f.ep.inject(frame6(hostMAC, peerMAC, src, dst, wire.ProtoUDP, hop, pl, -1))
	return parse6(f.t, f.ep.take()), parse6(f.t, f.ep1.take())
}

// icmpErr checks that back is one ICMPv6 error of typ/code to the peer.
func icmpErr(t *testing.T, what string, back, fwd []out6, typ, code uint8) wire.ICMPv6 {
	t.Helper()
	if len(fwd) != 0 {
		t.Fatalf("%s: forwarded", what)
	}
	if len(back) != 1 || back[0].icmp == nil {
		t.Fatalf("%s: %d frames back, want one ICMPv6 error", what, len(back))
	}
	m := back[0].icmp
	if m.Type() != typ || m.Code() != code {
		t.Fatalf("%s: ICMPv6 %d/%d, want %d/%d", what, m.Type(), m.Code(), typ, code)
	}
	return m
}

func TestForward6AcrossNICs(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	back, fwd := f.in(peer6, fwFar, 9, 100)
	if len(back) != 0 || len(fwd) != 1 {
		t.Fatalf("%d back, %d forwarded", len(back), len(fwd))
	}
	p := fwd[0]
	eq(t, "hop limit", p.ip.HopLimit(), uint8(8))
	eq(t, "dst", p.ip.Dst(), fwFar)
	eq(t, "src", p.ip.Src(), peer6)
	eq(t, "dst MAC", p.eth.Dst, fwFarMAC)
	eq(t, "src MAC", p.eth.Src, fwNIC1)
	want := udp6(peer6, fwFar, 1000, 9, make([]byte, 100))
	if !bytes.Equal(p.ip.Payload(), want) {
		t.Fatal("payload changed")
	}
	eq(t, "ForwDatagrams", st.IP6.ForwDatagrams.Load(), uint64(1))
	// And back: from far to the peer, eth1 → eth0.
	pl := udp6(fwFar, peer6, 9, 1000, []byte("x"))
	f.ep1.inject(frame6(fwNIC1, fwFarMAC, fwFar, peer6, wire.ProtoUDP, 64, pl, -1))
	o := parse6(t, f.ep.take())
	if len(o) != 1 || o[0].ip.Dst() != peer6 || o[0].ip.HopLimit() != 63 || o[0].eth.Dst != peerMAC {
		t.Fatalf("reverse: %+v", o)
	}
	eq(t, "ForwDatagrams", st.IP6.ForwDatagrams.Load(), uint64(2))
	// A frame padded by the link: the packet leaves without the padding.
	pad := append(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 9, udp6(peer6, fwFar, 1000, 9, []byte("x")), -1), make([]byte, 12)...)
	f.ep.inject(pad)
	if o := parse6(t, f.ep1.take()); len(o) != 1 || len(o[0].ip) != 40+8+1 {
		t.Fatalf("padded frame: %d forwarded", len(o))
	}
}

func TestForward6Off(t *testing.T) {
	f := newFw6(t, Options{})
	ae := f.s.Stats().IP6.InAddrErrors.Load()
	back, fwd := f.in(peer6, fwFar, 9, 10)
	if len(back)+len(fwd) != 0 {
		t.Fatal("forwarded without Options.Forwarding")
	}
	eq(t, "InAddrErrors", f.s.Stats().IP6.InAddrErrors.Load(), ae+1)
}

func TestForward6HopLimit(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	for _, hop := range []uint8{1, 0} {
		back, fwd := f.in(peer6, fwFar, hop, 10)
		m := icmpErr(t, "hop limit", back, fwd, wire.ICMPv6TimeExceeded, wire.ICMPv6HopLimitExceeded)
		// From the router's address on the way back; the quote is the
		// packet as it came in.
		eq(t, "error src", back[0].ip.Src(), host6)
		eq(t, "error dst", back[0].ip.Dst(), peer6)
		q := wire.IPv6(m[8:])
		eq(t, "quoted hop limit", q.HopLimit(), hop)
		eq(t, "quoted dst", q.Dst(), fwFar)
	}
	eq(t, "InHopLimitExceeded", st.IP6.InHopLimitExceeded.Load(), uint64(2))
	eq(t, "InHdrErrors", st.IP6.InHdrErrors.Load(), uint64(2))
	eq(t, "OutTimeExcds", st.ICMP6.OutTimeExcds.Load(), uint64(2))
	eq(t, "ForwDatagrams", st.IP6.ForwDatagrams.Load(), uint64(0))
	// Hop limit 2 leaves with 1.
	_, fwd := f.in(peer6, fwFar, 2, 10)
	if len(fwd) != 1 || fwd[0].ip.HopLimit() != 1 {
		t.Fatalf("hop limit 2: %+v", fwd)
	}
}

func TestForward6TooBig(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	// 40 + 8 + 1232 = 1280 fits eth1 exactly; one byte more does not.
	if _, fwd := f.in(peer6, fwFar, 9, 1232); len(fwd) != 1 || len(fwd[0].ip) != 1280 {
		t.Fatalf("1280 bytes: %d forwarded", len(fwd))
	}
	back, fwd := f.in(peer6, fwFar, 9, 1233)
	m := icmpErr(t, "too big", back, fwd, wire.ICMPv6PacketTooBig, 0)
	eq(t, "MTU", m.MTU(), uint32(1280))
	eq(t, "InTooBigErrors", st.IP6.InTooBigErrors.Load(), uint64(1))
	eq(t, "FragFails", st.IP6.FragFails.Load(), uint64(1))
	eq(t, "OutPktTooBigs", st.ICMP6.OutPktTooBigs.Load(), uint64(1))
	// A route MTU under the link's is the one reported, never below 1280
	// (RFC 8200 5).
	far2 := netip.MustParseAddr("2001:db8:2::9")
	f.nic1.SetStatic6(far2, fwFarMAC)
	f.s.AddRoute(Route{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), NIC: f.nic1, MTU: 1000})
	back, fwd = f.in(peer6, far2, 9, 1233)
	m = icmpErr(t, "too big, route MTU 1000", back, fwd, wire.ICMPv6PacketTooBig, 0)
	eq(t, "MTU (route 1000)", m.MTU(), uint32(1280))
}

func TestForward6LinkLocal(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	// A link-local destination is never routed: dropped, no error.
	back, fwd := f.in(peerLL, netip.MustParseAddr("fe80::22"), 9, 10)
	if len(back)+len(fwd) != 0 {
		t.Fatalf("link-local destination: %d back, %d forwarded", len(back), len(fwd))
	}
	eq(t, "ForwScope", st.IP6.ForwScope.Load(), uint64(1))
	// Nor the unspecified source.
	if back, fwd := f.in(netip.IPv6Unspecified(), fwFar, 9, 10); len(back)+len(fwd) != 0 {
		t.Fatalf("unspecified source: %d back, %d forwarded", len(back), len(fwd))
	}
	eq(t, "ForwScope", st.IP6.ForwScope.Load(), uint64(2))
	// A link-local source leaving its link: Destination Unreachable,
	// beyond scope of source address, on the link it came from.
	back, fwd = f.in(peerLL, fwFar, 9, 10)
	icmpErr(t, "link-local source", back, fwd, wire.ICMPv6DestUnreach, wire.ICMPv6BeyondScope)
	eq(t, "error dst", back[0].ip.Dst(), peerLL)
	if !back[0].ip.Src().IsLinkLocalUnicast() {
		t.Fatalf("error from %v, want eth0's link-local address", back[0].ip.Src())
	}
	eq(t, "ForwScope", st.IP6.ForwScope.Load(), uint64(3))
	// From eth1 (not the first NIC) the error goes back out of eth1.
	farLL := netip.MustParseAddr("fe80::22")
	f.nic1.SetStatic6(farLL, fwFarMAC)
	f.ep1.inject(frame6(fwNIC1, fwFarMAC, farLL, peer6, wire.ProtoUDP, 9, udp6(farLL, peer6, 9, 1000, []byte("x")), -1))
	if o := parse6(t, f.ep.take()); len(o) != 0 {
		t.Fatalf("link-local source on eth1: %d frames on eth0", len(o))
	}
	back = parse6(t, f.ep1.take())
	if len(back) != 1 || back[0].icmp == nil || back[0].icmp.Code() != wire.ICMPv6BeyondScope || back[0].ip.Dst() != farLL || back[0].eth.Dst != fwFarMAC {
		t.Fatalf("link-local source on eth1: %+v", back)
	}
	eq(t, "ForwDatagrams", st.IP6.ForwDatagrams.Load(), uint64(0))
	// The same source forwarded back onto its own link stays in scope.
	other := netip.MustParseAddr("2001:db8::7")
	f.nic.SetStatic6(other, wire.MAC{2, 0, 0, 0, 0, 7})
	back, fwd = f.in(peerLL, other, 9, 10)
	if len(fwd) != 0 || len(back) != 2 || back[1].ip.Dst() != other || back[1].icmp != nil {
		t.Fatalf("same link: %d back (%+v), %d on eth1", len(back), back, len(fwd))
	}
	eq(t, "ForwSameLink", st.IP6.ForwSameLink.Load(), uint64(1))
	if m := back[0].icmp; m == nil || m.Type() != wire.ICMPv6Redirect || back[0].ip.Dst() != peerLL {
		t.Fatalf("same link: no redirect to %v first: %+v", peerLL, back[0])
	}
}

// Out of the link it came in on: the packet is forwarded and its
// source, a neighbour, redirected (RFC 4861 8.2) to the destination
// itself or to a router named by its link-local address.
func TestForward6Redirect(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	other := netip.MustParseAddr("2001:db8::7")
	otherMAC := wire.MAC{2, 0, 0, 0, 0, 7}
	f.nic.SetStatic6(other, otherMAC)
	check := func(what string, dst, target netip.Addr, mac wire.MAC) {
		t.Helper()
		back, fwd := f.in(peer6, dst, 9, 1400) // the quote is cut to fit 1280
		if len(fwd) != 0 || len(back) != 2 {
			t.Fatalf("%s: %d back, %d on eth1", what, len(back), len(fwd))
		}
		if back[1].ip.Dst() != dst || back[1].eth.Dst != mac || back[1].icmp != nil {
			t.Fatalf("%s: not forwarded to %v at %v: %v", what, dst, mac, back[1].eth)
		}
		r := back[0]
		if r.icmp == nil || r.icmp.Type() != wire.ICMPv6Redirect || r.icmp.Code() != 0 {
			t.Fatalf("%s: no redirect: %+v", what, r)
		}
		eq(t, what+" hop limit", r.ip.HopLimit(), uint8(255))
		eq(t, what+" src", r.ip.Src(), hostLL)
		eq(t, what+" dst", r.ip.Dst(), peer6)
		if len(r.ip) > 1280 {
			t.Fatalf("%s: redirect of %d bytes", what, len(r.ip))
		}
		var o wire.NDPOptions
		nd, err := wire.ParseNDP(r.icmp, &o)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		eq(t, what+" target", nd.Target(), target)
		eq(t, what+" destination", nd.RedirectDst(), dst)
		eq(t, what+" target MAC", o.TargetLL, mac)
		var quoted []byte
		for opts := nd.Options(); len(opts) >= 8 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
			if opts[0] == wire.NDPOptRedirectedHd {
				quoted = opts[8 : int(opts[1])*8]
			}
		}
		if !o.HasTargetLL || len(quoted) < 48 || wire.IPv6(quoted).Dst() != dst || wire.IPv6(quoted).HopLimit() != 9 {
			t.Fatalf("%s: options %+v, redirected header of %d bytes", what, o, len(quoted))
		}
	}
	check("on-link destination", other, other, otherMAC)
	// Through a router named by its link-local address: redirected to it.
	far := netip.MustParseAddr("2001:db8:5::1")
	f.nic.SetStatic6(routerLL, routerMC)
	f.s.AddRoute(Route{Prefix: netip.MustParsePrefix("2001:db8:5::/64"), Gateway: routerLL, NIC: f.nic})
	f.clk.Advance(2 * time.Second) // the per-destination rate limit
	f.ep1.take()                   // MLDv2 retransmissions of the joins (RFC 3810 6.1)
	check("router", far, routerLL, routerMC)
	eq(t, "OutRedirects", st.ICMP6.OutRedirects.Load(), uint64(2))
	// A router named by a global address cannot be redirected to.
	far2 := netip.MustParseAddr("2001:db8:6::1")
	gw := netip.MustParseAddr("2001:db8::fe")
	f.nic.SetStatic6(gw, wire.MAC{2, 0, 0, 0, 0, 0xfe})
	f.s.AddRoute(Route{Prefix: netip.MustParsePrefix("2001:db8:6::/64"), Gateway: gw, NIC: f.nic})
	f.clk.Advance(2 * time.Second)
	if back, _ := f.in(peer6, far2, 9, 10); len(back) != 1 || back[0].icmp != nil {
		t.Fatalf("global gateway: %d back, want the forwarded packet alone", len(back))
	}
	// Nor a source that is not a neighbour.
	if back, _ := f.in(netip.MustParseAddr("2001:db8:7::1"), other, 9, 10); len(back) != 1 || back[0].icmp != nil {
		t.Fatalf("off-link source: %d back, want the forwarded packet alone", len(back))
	}
	eq(t, "OutRedirects", st.ICMP6.OutRedirects.Load(), uint64(2))
}

func TestForward6Multicast(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	pl := udp6(peer6, netip.MustParseAddr("ff0e::9"), 1000, 9, []byte("x"))
	f.ep.inject(frame6(wire.IPv6MulticastMAC(netip.MustParseAddr("ff0e::9")), peerMAC, peer6, netip.MustParseAddr("ff0e::9"), wire.ProtoUDP, 9, pl, -1))
	if n := len(parse6(t, f.ep1.take())); n != 0 {
		t.Fatalf("multicast forwarded: %d", n)
	}
	// A unicast packet in a link-layer multicast frame is not either.
	pl = udp6(peer6, fwFar, 1000, 9, []byte("x"))
	f.ep.inject(frame6(wire.MAC{0x33, 0x33, 0, 0, 0, 1}, peerMAC, peer6, fwFar, wire.ProtoUDP, 9, pl, -1))
	if n := len(parse6(t, f.ep1.take())); n != 0 {
		t.Fatalf("link multicast forwarded: %d", n)
	}
}

// Refusing rules and no route answer as Linux's ip6_pkt_discard /
// ip6_pkt_prohibit: no route (code 0), administratively prohibited
// (code 1), blackhole nothing; iif rules see the input NIC.
func TestForward6Rules(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	st := f.s.Stats()
	nowhere := netip.MustParseAddr("2001:db8:99::1")
	back, fwd := f.in(peer6, nowhere, 9, 10)
	icmpErr(t, "no route", back, fwd, wire.ICMPv6DestUnreach, wire.ICMPv6NoRoute)
	eq(t, "InNoRoutes", st.IP6.InNoRoutes.Load(), uint64(1))
	// No route is found before the hop limit is looked at (Linux routes
	// in ip6_rcv_finish, before ip6_forward).
	back, fwd = f.in(peer6, nowhere, 1, 10)
	icmpErr(t, "no route, hop limit 1", back, fwd, wire.ICMPv6DestUnreach, wire.ICMPv6NoRoute)

	// iif lo (the host's own packets) leaves forwarded ones alone.
	lo := Rule{Priority: 10, IIF: "lo", Action: RuleProhibit}
	if err := f.s.AddRule(lo); err != nil {
		t.Fatal(err)
	}
	_, fwd = f.in(peer6, fwFar, 9, 10)
	if len(fwd) != 1 {
		t.Fatal("iif lo rule stopped a forwarded packet")
	}
	f.s.DelRule(lo)
	for _, c := range []struct {
		a    RuleAction
		code int // -1: nothing sent
	}{{RuleProhibit, int(wire.ICMPv6AdminProhibited)}, {RuleUnreachable, int(wire.ICMPv6NoRoute)}, {RuleBlackhole, -1}} {
		r := Rule{Priority: 20, IIF: "eth0", To: netip.MustParsePrefix("2001:db8:1::/64"), Action: c.a}
		if err := f.s.AddRule(r); err != nil {
			t.Fatal(err)
		}
		before := st.IP6.InNoRoutes.Load()
		back, fwd := f.in(peer6, fwFar, 9, 10)
		if c.code < 0 {
			if len(back)+len(fwd) != 0 {
				t.Fatalf("%v: %d back, %d forwarded, want nothing", c.a, len(back), len(fwd))
			}
		} else {
			icmpErr(t, c.a.String(), back, fwd, wire.ICMPv6DestUnreach, uint8(c.code))
		}
		eq(t, c.a.String()+" InNoRoutes", st.IP6.InNoRoutes.Load(), before+1)
		// From eth1 the rule does not apply.
		pl := udp6(fwFar, peer6, 9, 1000, []byte("x"))
		f.ep1.inject(frame6(fwNIC1, fwFarMAC, fwFar, peer6, wire.ProtoUDP, 64, pl, -1))
		if o := parse6(t, f.ep.take()); len(o) != 1 || o[0].ip.Dst() != peer6 {
			t.Fatalf("%v: iif eth0 rule touched a packet from eth1", c.a)
		}
		f.s.DelRule(r)
	}
	// An iif rule that looks a table up: from eth0, 2001:db8:1::/64 goes
	// by table 100's route (through eth0's other router).
	gw := netip.MustParseAddr("2001:db8::fe")
	gwMAC := wire.MAC{2, 0, 0, 0, 0, 0xfe}
	f.nic.SetStatic6(gw, gwMAC)
	f.s.AddRoute(Route{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Gateway: gw, NIC: f.nic, Table: 100})
	if err := f.s.AddRule(Rule{Priority: 30, IIF: "eth0", Table: 100}); err != nil {
		t.Fatal(err)
	}
	back, fwd = f.in(peer6, fwFar, 9, 10)
	if len(fwd) != 0 || len(back) != 1 || back[0].eth.Dst != gwMAC || back[0].ip.Dst() != fwFar {
		t.Fatalf("iif table rule: %d back, %d on eth1", len(back), len(fwd))
	}
}

// The Hop-by-Hop header is processed (a refused option answered as a
// host answers it); the headers behind it are not: a routing header
// with segments left is carried on.
func TestForward6ExtHeaders(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	udp := udp6(peer6, fwFar, 1000, 9, []byte("hi"))
	// Routing header type 4 (SRH-like), segments left 1, then UDP.
	rt := []byte{wire.ProtoUDP, 2, 4, 1, 0, 0, 0, 0}
	rt = append(rt, fwFar.AsSlice()...)
	pl := append(append([]byte(nil), rt...), udp...)
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoIPv6Route, 9, pl, -1))
	fwd := parse6(t, f.ep1.take())
	if len(fwd) != 1 || !bytes.Equal(fwd[0].ip.Payload(), pl) {
		t.Fatalf("routing header with segments left: %d forwarded", len(fwd))
	}
	// Hop-by-Hop with a skippable unknown option, then the routing header.
	hbh := []byte{wire.ProtoIPv6Route, 0, 0x1e, 4, 0, 0, 0, 0}
	pl2 := append(append([]byte(nil), hbh...), pl...)
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoHopByHop, 9, pl2, -1))
	if fwd := parse6(t, f.ep1.take()); len(fwd) != 1 || !bytes.Equal(fwd[0].ip.Payload(), pl2) {
		t.Fatalf("hop-by-hop, skippable option: %d forwarded", len(fwd))
	}
	// An unknown option whose action is "Parameter Problem" (10).
	bad := append([]byte(nil), pl2...)
	bad[2] = 0x9e
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoHopByHop, 9, bad, -1))
	m := icmpErr(t, "hop-by-hop refused", parse6(t, f.ep.take()), parse6(t, f.ep1.take()), wire.ICMPv6ParamProblem, wire.ICMPv6UnrecognizedOption)
	eq(t, "pointer", m.Pointer(), uint32(42))
}

// The forwarding path takes its copy from the buffer pool.
func TestForward6Alloc(t *testing.T) {
	f := newFw6(t, Options{Forwarding: true})
	f.ep1.discard = true
	frame := frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 9, udp6(peer6, fwFar, 1000, 9, make([]byte, 1000)), -1)
	fr := [][]byte{frame}
	allocs := testing.AllocsPerRun(200, func() { f.ep.recv.DeliverFrames(fr) })
	if allocs != 0 {
		t.Fatalf("%.1f allocations per forwarded packet", allocs)
	}
	if f.s.Stats().IP6.ForwDatagrams.Load() < 200 {
		t.Fatal("not forwarded")
	}
}

// BenchmarkForward6 forwards a 1,048-byte UDP packet from eth0 to eth1
// (go test ./stack -run '^$' -bench Forward6 -benchmem).
func BenchmarkForward6(b *testing.B) {
	s, ep0, nic1 := benchRouter6(b, Options{Forwarding: true})
	nic1.SetStatic6(fwFar, fwFarMAC)
	frame := frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 9, udp6(peer6, fwFar, 1000, 9, make([]byte, 1000)), -1)
	fr := [][]byte{frame}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) - wire.EthernetHeaderLen))
	for b.Loop() {
		ep0.recv.DeliverFrames(fr)
	}
	if s.Stats().IP6.ForwDatagrams.Load() == 0 {
		b.Fatal("nothing forwarded")
	}
}

// A forwarding stack is a router: its advertisements say so (RFC 4861
// 7.2.4), a host's do not.
func TestForward6NARouterFlag(t *testing.T) {
	for _, fw := range []bool{false, true} {
		f := newFw6(t, Options{Forwarding: fw})
		b := make([]byte, 32)
		n := wire.PutNS(b, host6, peerMAC)
		f.ep.inject(frame6(hostMAC, peerMAC, peer6, wire.SolicitedNode(host6), wire.ProtoICMPv6, 255, b[:n], 0))
		na := f.only(wire.ICMPv6NeighborAdvert)
		if len(na) != 1 {
			t.Fatalf("forwarding %v: %d advertisements", fw, len(na))
		}
		flags := wire.NDP(na[0].icmp).NAFlags()
		if got := flags&wire.NAFlagRouter != 0; got != fw {
			t.Fatalf("forwarding %v: NA flags %#x", fw, flags)
		}
		if flags&wire.NAFlagSolicited == 0 {
			t.Fatalf("forwarding %v: NA flags %#x, not solicited", fw, flags)
		}
	}
}

// benchRouter6 is a router for the forwarding benchmarks: eth0 (host6/64,
// frames injected on ep0) and eth1 (fwEth1/64, frames discarded).
func benchRouter6(b *testing.B, opts Options) (s *Stack, ep0 *chanEP, nic1 *NIC) {
	opts.Clock = clock.NewManual(time.Unix(1_700_000_000, 0))
	opts.DADTransmits = -1
	s = New(opts)
	b.Cleanup(s.Close)
	ep0 = &chanEP{mtu: 1500}
	ep1 := macEP{&chanEP{mtu: 1500, discard: true}, fwNIC1}
	nic0 := s.AddNIC("eth0", ep0)
	nic1 = s.AddNIC("eth1", ep1)
	for _, c := range []struct {
		n *NIC
		a netip.Addr
	}{{nic0, host6}, {nic1, fwEth1}} {
		if err := c.n.EnableIPv6(); err != nil {
			b.Fatal(err)
		}
		if err := c.n.AddAddress(netip.PrefixFrom(c.a, 64)); err != nil {
			b.Fatal(err)
		}
	}
	return s, ep0, nic1
}
