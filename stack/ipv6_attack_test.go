package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Hostile IPv6 input found by the outside tests (interop/ipv6_attack_test.go),
// each checked here in process: the first fragment must carry the whole
// header chain through the transport header, a datagram past 65,535
// bytes is answered, no error answers an ICMPv6 error however its
// headers look, a link-local address is valid only on its own link, and
// a host ignores router solicitations.

// ppFrag is a fragment from the peer: data at offset off (bytes).
func ppFrag(nh uint8, off int, more bool, id uint32, data []byte) []byte {
	pl := make([]byte, 8+len(data))
	wire.PutIPv6Frag(pl, nh, off, more, id)
	copy(pl[8:], data)
	return frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Frag, 64, pl, -1)
}

func TestIPv6FirstFragmentWholeChain(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	for _, c := range []struct {
		name string
		nh   uint8
		data []byte
	}{
		// 8 bytes of a TCP header: the ports, not the flags.
		{"tcp_8_of_20_bytes", wire.ProtoTCP, make([]byte, 8)},
		// A whole destination options header and nothing of UDP.
		{"dest_options_then_nothing", wire.ProtoIPv6Opts, []byte{wire.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}},
		// Two whole option headers, then 8 bytes of TCP.
		{"two_headers_then_8_tcp", wire.ProtoIPv6Opts, append([]byte{wire.ProtoIPv6Route, 0, 1, 4, 0, 0, 0, 0, wire.ProtoTCP, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 8)...)},
	} {
		before := st.IP6.InIncompleteChain.Load()
		h.ep.inject(ppFrag(c.nh, 0, true, 100, c.data))
		pp := h.only(wire.ICMPv6ParamProblem)
		if len(pp) != 1 || pp[0].icmp.Code() != wire.ICMPv6IncompleteHeaderChain || pp[0].icmp.Pointer() != 0 {
			t.Errorf("%s: want one Parameter Problem code 3 pointer 0, got %+v", c.name, pp)
		}
		eq(t, c.name+": incomplete chains", st.IP6.InIncompleteChain.Load(), before+1)
	}
	eq(t, "nothing held", h.s.ReasmMemInUse(), 0)
	// A first fragment with the whole TCP header is taken.
	h.ep.inject(ppFrag(wire.ProtoTCP, 0, true, 101, make([]byte, 24)))
	if len(h.sent()) != 0 {
		t.Fatal("answered a first fragment holding the whole chain")
	}
	if h.s.ReasmMemInUse() == 0 {
		t.Fatal("a good first fragment was not kept")
	}
}

func TestIPv6ReassemblyPast65535(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	before := st.IP.ReasmTooBig.Load()
	// Ends at 65,528 + 16 = 65,544 > 65,535.
	h.ep.inject(ppFrag(wire.ProtoUDP, 65528, false, 200, make([]byte, 16)))
	pp := h.only(wire.ICMPv6ParamProblem)
	if len(pp) != 1 || pp[0].icmp.Code() != wire.ICMPv6ErroneousField || pp[0].icmp.Pointer() != 42 {
		t.Fatalf("want Parameter Problem code 0 pointing at the fragment offset (42), got %+v", pp)
	}
	eq(t, "too big", st.IP.ReasmTooBig.Load(), before+1)
	eq(t, "nothing held", h.s.ReasmMemInUse(), 0)
	// Ending exactly at 65,535 is allowed (payload 65,528 + 7).
	h.ep.inject(ppFrag(wire.ProtoUDP, 65528, false, 201, make([]byte, 7)))
	if len(h.sent()) != 0 {
		t.Fatal("answered a fragment ending at 65,535")
	}
}

func TestIPv6NoErrorAboutICMPv6Error(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	du := make([]byte, 8+48)
	du[0] = wire.ICMPv6DestUnreach
	echo := make([]byte, 16)
	echo[0] = wire.ICMPv6EchoRequest
	withOpt := func(m []byte) []byte {
		// An unknown destination option of action 10: Parameter Problem
		// unless the packet is an ICMPv6 error.
		o := append([]byte{wire.ProtoICMPv6, 0, 0x9e, 2, 0, 0, 1, 0}, m...)
		f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Opts, 64, o, 8)
		return f
	}
	sup := st.ICMP6.OutSuppressed.Load()
	h.ep.inject(withOpt(du))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 0 {
		t.Fatalf("Parameter Problem about an ICMPv6 error behind a bad option: %+v", pp)
	}
	eq(t, "suppressed", st.ICMP6.OutSuppressed.Load(), sup+1)
	h.ep.inject(withOpt(echo))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 1 {
		t.Fatalf("no Parameter Problem about an echo request behind a bad option: %+v", pp)
	}
	// A first fragment of an ICMPv6 error whose length is not a multiple
	// of 8: no error either.
	h.ep.inject(ppFrag(wire.ProtoICMPv6, 0, true, 300, du[:12]))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 0 {
		t.Fatalf("Parameter Problem about a fragment of an ICMPv6 error: %+v", pp)
	}
	eq(t, "suppressed", st.ICMP6.OutSuppressed.Load(), sup+2)
	h.ep.inject(ppFrag(wire.ProtoICMPv6, 0, true, 301, echo[:12]))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 1 || pp[0].icmp.Pointer() != 4 {
		t.Fatalf("no Parameter Problem about an odd fragment of an echo request: %+v", pp)
	}
}

// macEP is a chanEP with a MAC of its own (a second NIC).
type macEP struct {
	*chanEP
	mac wire.MAC
}

func (m macEP) HardwareAddr() wire.MAC { return m.mac }

func TestIPv6LinkLocalOnItsOwnLink(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	ep2 := macEP{&chanEP{mtu: 1500}, wire.MAC{2, 0, 0, 0, 0, 0x11}}
	nic2 := h.s.AddNIC("eth1", ep2)
	ll2 := netip.MustParseAddr("fe80::11")
	g2 := netip.MustParseAddr("2001:db8:2::11")
	for _, p := range []netip.Prefix{netip.PrefixFrom(ll2, 64), netip.PrefixFrom(g2, 64)} {
		if err := nic2.AddAddress(p); err != nil {
			t.Fatal(err)
		}
	}
	h.clk.Advance(2 * time.Second)
	if !h.s.IsLocal(ll2) || !h.s.IsLocal(g2) {
		t.Fatalf("eth1's addresses not assigned: %+v", nic2.Addrs6())
	}
	h.ep.take()
	ep2.take()
	st := h.s.Stats()
	echo := make([]byte, 16)
	echo[0] = wire.ICMPv6EchoRequest
	// eth1's link-local address, arriving on eth0: not for us.
	ae := st.IP6.InAddrErrors.Load()
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, ll2, wire.ProtoICMPv6, 64, echo, 0))
	if len(h.ep.take())+len(ep2.take()) != 0 {
		t.Fatal("answered a packet for another link's link-local address")
	}
	eq(t, "addr errors", st.IP6.InAddrErrors.Load(), ae+1)
	// eth1's global address arriving on eth0 is ours (weak host model).
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, g2, wire.ProtoICMPv6, 64, echo, 0))
	if r := h.only(wire.ICMPv6EchoReply); len(r) != 1 {
		t.Fatalf("no echo reply for eth1's global address on eth0: %+v", r)
	}
	// eth0's own link-local address still works.
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, echo, 0))
	if r := h.only(wire.ICMPv6EchoReply); len(r) != 1 {
		t.Fatalf("no echo reply on eth0's link-local: %+v", r)
	}
}

func TestIPv6HostIgnoresRouterSolicitation(t *testing.T) {
	h := newH6(t, Options{})
	st := h.s.Stats()
	for i := 0; i < 3; i++ {
		src := netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(0x40 + i)})
		b := make([]byte, 16)
		n := wire.PutRS(b, wire.MAC{2, 0, 0, 0, 0x40, byte(i)})
		h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), peerMAC, src, wire.IPv6AllNodes, wire.ProtoICMPv6, 255, b[:n], 0))
	}
	eq(t, "RS counted", st.ICMP6.InRouterSolicits.Load(), uint64(3))
	if ns := h.nic.Neighbors6(); len(ns) != 0 {
		t.Fatalf("router solicitations made neighbour entries: %+v", ns)
	}
	if len(h.sent()) != 0 {
		t.Fatal("answered a router solicitation")
	}
}

func TestIPv6SynFromUnspecifiedCounted(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	ls := h.s.TCP.NewEndpoint()
	if err := ls.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 80)); err != nil {
		t.Fatal(err)
	}
	if err := ls.Listen(8); err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	syn := func(src netip.Addr) []byte {
		b := make([]byte, 20)
		th := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: wire.TCPFlagSYN, Window: 65535}
		th.Put(b)
		wire.TCP(b).FillChecksum(wire.PseudoHeaderSum6(src.As16(), hostLL.As16(), wire.ProtoTCP, len(b)))
		return frame6(hostMAC, peerMAC, src, hostLL, wire.ProtoTCP, 64, b, -1)
	}
	// No route back to ::: nothing sent, no connection, and the drop is
	// counted where Linux counts it (TcpExtListenDrops).
	drops := h.s.TCP.Stats().ListenDrops
	h.ep.inject(syn(netip.IPv6Unspecified()))
	if out := h.sent(); len(out) != 0 {
		t.Fatalf("answered a SYN from ::: %+v", out)
	}
	eq(t, "listen drops", h.s.TCP.Stats().ListenDrops, drops+1)
	eq(t, "passive opens", h.s.TCP.Stats().PassiveOpens, uint64(0))
	// Control: from the peer, a SYN-ACK.
	h.ep.inject(syn(peerLL))
	if out := h.sent(); len(out) != 1 {
		t.Fatalf("no SYN-ACK to the peer: %+v", out)
	}
}

func TestIPv6OnLinkPrefixLimit(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clk, IPv6SLAAC: true, IPv6LinkLocal: true, IPv6MaxPrefixes: 16})
	defer s.Close()
	ep := &chanEP{mtu: 1500}
	s.AddNIC("eth0", ep)
	clk.Advance(time.Second) // DAD done
	// 20 RAs of 4 on-link prefixes each: 80 prefixes.
	for i := 0; i < 20; i++ {
		var ps []wire.NDPPrefix
		for j := 0; j < 4; j++ {
			p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, byte(i), byte(j)}), 64)
			ps = append(ps, wire.NDPPrefix{Prefix: p, OnLink: true, Valid: 7200, Preferred: 3600})
		}
		ep.inject(ra(1800, 0, ps...))
	}
	n := 0
	for _, r := range s.Routes() {
		if netip.MustParsePrefix("2001:db8:a000::/40").Contains(r.Prefix.Addr()) {
			n++
		}
	}
	eq(t, "on-link prefix routes", n, 16)
	eq(t, "prefixes learnt", s.Stats().ND.PrefixesAdded.Load(), uint64(16))
	eq(t, "prefixes ignored", s.Stats().ND.PrefixesFull.Load(), uint64(64))
}

func TestIPv6FragmentedNDIgnored(t *testing.T) {
	h := newH6(t, Options{IPv6SLAAC: true})
	st := h.s.Stats()
	src := netip.MustParseAddr("fe80::5")
	mac := wire.MAC{2, 0, 0, 0, 0, 5}
	b := make([]byte, 32)
	n := wire.PutNS(b, hostLL, mac)
	ns := b[:n]
	wire.ICMPv6(ns).FillChecksum(wire.PseudoHeaderSum6(src.As16(), hostLL.As16(), wire.ProtoICMPv6, len(ns)))
	fragOf := func(nh uint8, off int, more bool, id uint32, data []byte, hop uint8) []byte {
		pl := make([]byte, 8+len(data))
		wire.PutIPv6Frag(pl, nh, off, more, id)
		copy(pl[8:], data)
		return frame6(hostMAC, mac, src, hostLL, wire.ProtoIPv6Frag, hop, pl, -1)
	}
	bad := st.ICMP6.InNDBad.Load()
	// An NS in an atomic fragment, and the same NS in two fragments.
	h.ep.inject(fragOf(wire.ProtoICMPv6, 0, false, 1, ns, 255))
	h.ep.inject(fragOf(wire.ProtoICMPv6, 0, true, 2, ns[:24], 255))
	h.ep.inject(fragOf(wire.ProtoICMPv6, 24, false, 2, ns[24:], 255))
	if na := h.only(wire.ICMPv6NeighborAdvert); len(na) != 0 {
		t.Fatalf("answered a fragmented NS: %+v", na)
	}
	if _, ok := h.nic.Neighbor6(src); ok {
		t.Fatal("a fragmented NS made a neighbour entry")
	}
	eq(t, "bad ND", st.ICMP6.InNDBad.Load(), bad+2)
	// An RA in an atomic fragment: no router, no prefix.
	r := ra(1800, 0, wire.NDPPrefix{Prefix: netip.MustParsePrefix("2001:db8:6980::/64"), OnLink: true, Auto: true, Valid: 7200, Preferred: 3600})
	msg := r[54:]
	pl := make([]byte, 8+len(msg))
	wire.PutIPv6Frag(pl, wire.ProtoICMPv6, 0, false, 3)
	copy(pl[8:], msg)
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoIPv6Frag, 255, pl, -1))
	if rs := h.nic.DefaultRouters(); len(rs) != 0 {
		t.Fatalf("a fragmented RA added routers %v", rs)
	}
	eq(t, "bad ND", st.ICMP6.InNDBad.Load(), bad+3)
	// Control: the same NS unfragmented is answered.
	h.ep.inject(frame6(hostMAC, mac, src, hostLL, wire.ProtoICMPv6, 255, ns, -1))
	if na := h.only(wire.ICMPv6NeighborAdvert); len(na) != 1 {
		t.Fatalf("unfragmented NS: %+v", na)
	}
}

func TestIPv6RATimersFloor(t *testing.T) {
	h := newH6(t, Options{IPv6SLAAC: true})
	b := make([]byte, 64)
	n := wire.PutRA(b, wire.RAHeader{CurHopLimit: 64, RouterLifetime: 0, ReachableTime: 1, RetransTimer: 1})
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoICMPv6, 255, b[:n], 0))
	eq(t, "clamped", h.s.Stats().ND.RATimersClamped.Load(), uint64(1))
	h.ep.take()
	// An echo request from an unknown neighbour: the reply waits for
	// resolution, whose solicitations go RetransTimer apart: 10 ms, not 1.
	src := netip.MustParseAddr("fe80::9")
	echo := make([]byte, 16)
	echo[0] = wire.ICMPv6EchoRequest
	h.ep.inject(frame6(hostMAC, wire.MAC{2, 0, 0, 0, 0, 9}, src, hostLL, wire.ProtoICMPv6, 64, echo, 0))
	eq(t, "first NS", len(h.only(wire.ICMPv6NeighborSolic)), 1)
	h.clk.Advance(5 * time.Millisecond)
	eq(t, "NS after 5 ms", len(h.only(wire.ICMPv6NeighborSolic)), 0)
	h.clk.Advance(5 * time.Millisecond)
	eq(t, "NS after 10 ms", len(h.only(wire.ICMPv6NeighborSolic)), 1)
}
