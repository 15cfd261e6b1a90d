package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

var (
	hostLL   = wire.AddrWithIID(wire.IPv6LinkLocalNw, wire.EUI64(hostMAC)) // fe80::ff:fe00:1
	peerLL   = netip.MustParseAddr("fe80::2")
	host6    = netip.MustParseAddr("2001:db8::1")
	peer6    = netip.MustParseAddr("2001:db8::2")
	routerLL = netip.MustParseAddr("fe80::1")
	routerMC = wire.MAC{2, 0, 0, 0, 0, 0x99}
)

type h6 struct {
	t   *testing.T
	s   *Stack
	ep  *chanEP
	nic *NIC
	clk *clock.Manual
}

// newH6 makes a stack with one Ethernet NIC with IPv6 on; its
// link-local address has passed DAD and the frames so far are taken.
func newH6(t *testing.T, opts Options) *h6 {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	opts.Clock = clk
	s := New(opts)
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	t.Cleanup(s.Close)
	h := &h6{t, s, ep, nic, clk}
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if !h.assigned(hostLL) {
		t.Fatalf("link-local %v not assigned: %+v", hostLL, nic.Addrs6())
	}
	ep.take()
	return h
}

func (h *h6) assigned(a netip.Addr) bool {
	for _, p := range h.nic.Addrs() {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// frame6 builds a frame from the peer (src MAC srcMAC) with an IPv6
// packet; an ICMPv6 payload at icmpAt gets its checksum.
func frame6(dstMAC, srcMAC wire.MAC, src, dst netip.Addr, nh, hop uint8, pl []byte, icmpAt int) []byte {
	f := make([]byte, 14+40+len(pl))
	wire.PutEthernet(f, dstMAC, srcMAC, wire.EtherTypeIPv6)
	hd := wire.IPv6Header{PayloadLen: len(pl), NextHeader: nh, HopLimit: hop, Src: src, Dst: dst}
	hd.Put(f[14:])
	copy(f[54:], pl)
	if icmpAt >= 0 {
		m := wire.ICMPv6(f[54+icmpAt:])
		m.FillChecksum(wire.PseudoHeaderSum6(src.As16(), dst.As16(), wire.ProtoICMPv6, len(m)))
	}
	return f
}

func udp6(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8+len(data))
	wire.PutUDP(u, sport, dport, len(data))
	copy(u[8:], data)
	wire.UDP(u).FillChecksum(wire.PseudoHeaderSum6(src.As16(), dst.As16(), wire.ProtoUDP, len(u)))
	return u
}

// out6 is one sent frame parsed.
type out6 struct {
	eth  wire.EthernetInfo
	ip   wire.IPv6
	ext  wire.IPv6Ext
	icmp wire.ICMPv6 // nil unless ICMPv6
}

func (h *h6) sent() []out6 {
	h.t.Helper()
	var o []out6
	for _, f := range h.ep.take() {
		info, err := wire.ParseEthernet(f)
		if err != nil {
			h.t.Fatalf("bad frame out: %x", f)
		}
		if info.EtherType != wire.EtherTypeIPv6 {
			continue
		}
		ip, err := wire.ParseIPv6(f[info.HeaderLen:])
		if err != nil {
			h.t.Fatalf("bad IPv6 out: %v", err)
		}
		x := out6{eth: info, ip: ip}
		if xe := wire.WalkIPv6Ext(ip, &x.ext); xe != nil {
			h.t.Fatalf("bad extension headers out: %+v", xe)
		}
		if x.ext.Proto == wire.ProtoICMPv6 {
			m, err := wire.ParseICMPv6(ip[x.ext.Offset:], ip.PseudoSum(wire.ProtoICMPv6, 0))
			if err != nil {
				h.t.Fatalf("bad ICMPv6 out: %v", err)
			}
			x.icmp = m
		}
		o = append(o, x)
	}
	return o
}

func (h *h6) only(typ uint8) []out6 {
	var r []out6
	for _, x := range h.sent() {
		if x.icmp != nil && x.icmp.Type() == typ {
			r = append(r, x)
		}
	}
	return r
}

func (h *h6) injectNA(target netip.Addr, flags uint8, mac wire.MAC) {
	b := make([]byte, 32)
	n := wire.PutNA(b, target, flags, mac)
	h.ep.inject(frame6(hostMAC, peerMAC, target, hostLL, wire.ProtoICMPv6, 255, b[:n], 0))
}

func (h *h6) state(a netip.Addr) NeighborState {
	h.t.Helper()
	i, ok := h.nic.Neighbor6(a)
	if !ok {
		h.t.Fatalf("no neighbour entry for %v", a)
	}
	return i.State
}

func TestIPv6LinkLocalDAD(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clk, DADTransmits: 2})
	defer s.Close()
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	h := &h6{t, s, ep, nic, clk}
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	eq(t, "link-local", hostLL, netip.MustParseAddr("fe80::ff:fe00:1"))
	out := h.sent()
	var ns, mld int
	for _, x := range out {
		switch x.icmp.Type() {
		case wire.ICMPv6NeighborSolic:
			ns++
			// DAD probe: from ::, to the solicited-node group, no option.
			eq(t, "dad src", x.ip.Src(), netip.IPv6Unspecified())
			eq(t, "dad dst", x.ip.Dst(), wire.SolicitedNode(hostLL))
			eq(t, "dad hop", x.ip.HopLimit(), uint8(255))
			eq(t, "dad len", len(x.icmp), wire.NDPNSLen)
			eq(t, "dad target", wire.NDP(x.icmp).Target(), hostLL)
			eq(t, "dad mac", x.eth.Dst, wire.IPv6MulticastMAC(wire.SolicitedNode(hostLL)))
		case wire.ICMPv6MLDv2Report:
			mld++
			if !x.ext.RouterAlert || x.ip.HopLimit() != 1 {
				t.Error("MLD report without router alert or hop limit 1")
			}
		}
	}
	eq(t, "NS", ns, 1)
	eq(t, "MLD", mld, 1)
	if h.assigned(hostLL) || !nic.isTentative(hostLL) {
		t.Fatal("assigned before DAD finished")
	}
	// Tentative: not usable as a source, not an owner.
	if s.IsLocal(hostLL) {
		t.Fatal("tentative address is local")
	}
	clk.Advance(time.Second)
	eq(t, "second NS", len(h.only(wire.ICMPv6NeighborSolic)), 1)
	if h.assigned(hostLL) {
		t.Fatal("assigned after one of two probes")
	}
	clk.Advance(time.Second)
	if !h.assigned(hostLL) || !s.IsLocal(hostLL) {
		t.Fatal("not assigned after DAD")
	}
	eq(t, "DAD ok", s.Stats().ND.DADSucceeded.Load(), uint64(1))
}

func TestIPv6DADConflict(t *testing.T) {
	for _, how := range []string{"NS", "NA"} {
		t.Run(how, func(t *testing.T) {
			clk := clock.NewManual(time.Unix(1_700_000_000, 0))
			s := New(Options{Clock: clk})
			defer s.Close()
			ep := &chanEP{mtu: 1500}
			nic := s.AddNIC("eth0", ep)
			nic.EnableIPv6()
			ep.take()
			b := make([]byte, 32)
			if how == "NS" {
				// Another node probing the same address.
				n := wire.PutNS(b, hostLL, wire.MAC{})
				ep.inject(frame6(wire.IPv6MulticastMAC(wire.SolicitedNode(hostLL)), peerMAC, netip.IPv6Unspecified(), wire.SolicitedNode(hostLL), wire.ProtoICMPv6, 255, b[:n], 0))
			} else {
				n := wire.PutNA(b, hostLL, wire.NAFlagOverride, peerMAC)
				ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), peerMAC, hostLL, wire.IPv6AllNodes, wire.ProtoICMPv6, 255, b[:n], 0))
			}
			clk.Advance(5 * time.Second)
			for _, p := range nic.Addrs() {
				if p.Addr() == hostLL {
					t.Fatal("duplicate address assigned")
				}
			}
			eq(t, "DAD failures", s.Stats().ND.DADFailures.Load(), uint64(1))
			eq(t, "addrs6", len(nic.Addrs6()), 0)
		})
	}
}

func TestIPv6StablePrivacy(t *testing.T) {
	secret := []byte("0123456789abcdef")
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clk, IPv6StableSecret: secret})
	defer s.Close()
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	nic.EnableIPv6()
	a6 := nic.Addrs6()
	if len(a6) != 1 || !a6[0].Tentative {
		t.Fatalf("%+v", a6)
	}
	first := a6[0].Prefix.Addr()
	if first == hostLL || !first.IsLinkLocalUnicast() {
		t.Fatalf("stable address %v", first)
	}
	// Deterministic: the same inputs give the same identifier.
	eq(t, "stable", wire.AddrWithIID(wire.IPv6LinkLocalNw, nic.interfaceID(wire.IPv6LinkLocalNw, 0)), first)
	// A conflict regenerates with DAD_Counter 1 (RFC 7217 6).
	ep.take()
	b := make([]byte, 32)
	n := wire.PutNA(b, first, wire.NAFlagOverride, peerMAC)
	ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), peerMAC, first, wire.IPv6AllNodes, wire.ProtoICMPv6, 255, b[:n], 0))
	a6 = nic.Addrs6()
	if len(a6) != 1 || a6[0].Prefix.Addr() == first {
		t.Fatalf("not regenerated: %+v", a6)
	}
	eq(t, "retries", s.Stats().ND.DADRetries.Load(), uint64(1))
	clk.Advance(2 * time.Second)
	if !s.IsLocal(a6[0].Prefix.Addr()) {
		t.Fatal("regenerated address not assigned")
	}
}

// Every NUD transition (RFC 4861 7.3.3 and appendix C).
func TestIPv6NUD(t *testing.T) {
	h := newH6(t, Options{})
	s := h.s
	e := s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 7)

	// none -> INCOMPLETE: a multicast solicitation with our link-layer address.
	if _, err := e.SendTo([]byte("one"), to, nil); err != nil {
		t.Fatal(err)
	}
	ns := h.only(wire.ICMPv6NeighborSolic)
	if len(ns) != 1 {
		t.Fatalf("%d NS", len(ns))
	}
	eq(t, "NS dst", ns[0].ip.Dst(), wire.SolicitedNode(peerLL))
	eq(t, "NS src", ns[0].ip.Src(), hostLL)
	var o wire.NDPOptions
	if _, err := wire.ParseNDP(ns[0].icmp, &o); err != nil || !o.HasSourceLL || o.SourceLL != hostMAC {
		t.Fatalf("NS options %+v %v", o, err)
	}
	eq(t, "state", h.state(peerLL), NeighIncomplete)

	// INCOMPLETE -> REACHABLE on a solicited NA; the queued datagram goes.
	h.injectNA(peerLL, wire.NAFlagSolicited|wire.NAFlagOverride, peerMAC)
	eq(t, "state", h.state(peerLL), NeighReachable)
	sent := h.sent()
	if len(sent) != 1 || sent[0].ext.Proto != wire.ProtoUDP || sent[0].eth.Dst != peerMAC {
		t.Fatalf("queued datagram: %+v", sent)
	}

	// REACHABLE -> STALE when the reachable time (at most 1.5 x 30 s) runs out.
	h.clk.Advance(46 * time.Second)
	eq(t, "state", h.state(peerLL), NeighStale)

	// STALE -> DELAY on use; the packet goes to the cached address.
	e.SendTo([]byte("two"), to, nil)
	eq(t, "state", h.state(peerLL), NeighDelay)
	sent = h.sent()
	if len(sent) != 1 || sent[0].eth.Dst != peerMAC {
		t.Fatalf("stale send: %+v", sent)
	}

	// DELAY -> PROBE after 5 s: a unicast solicitation.
	h.clk.Advance(5 * time.Second)
	eq(t, "state", h.state(peerLL), NeighProbe)
	ns = h.only(wire.ICMPv6NeighborSolic)
	if len(ns) != 1 || ns[0].ip.Dst() != peerLL || ns[0].eth.Dst != peerMAC {
		t.Fatalf("probe: %+v", ns)
	}

	// PROBE -> REACHABLE on a solicited NA.
	h.injectNA(peerLL, wire.NAFlagSolicited, wire.MAC{})
	eq(t, "state", h.state(peerLL), NeighReachable)

	// REACHABLE -> STALE on an unsolicited NA without override and a
	// different address: the address is kept.
	other := wire.MAC{2, 0, 0, 0, 0, 0x33}
	h.injectNA(peerLL, 0, other)
	eq(t, "state", h.state(peerLL), NeighStale)
	if i, _ := h.nic.Neighbor6(peerLL); i.MAC != peerMAC {
		t.Fatal("address replaced without override")
	}
	// With override: replaced, STALE (not solicited).
	h.injectNA(peerLL, wire.NAFlagOverride, other)
	if i, _ := h.nic.Neighbor6(peerLL); i.MAC != other || i.State != NeighStale {
		t.Fatalf("override: %+v", i)
	}

	// PROBE -> gone after three unanswered probes.
	e.SendTo([]byte("three"), to, nil)
	h.clk.Advance(5 * time.Second)
	eq(t, "state", h.state(peerLL), NeighProbe)
	h.clk.Advance(3 * time.Second)
	if _, ok := h.nic.Neighbor6(peerLL); ok {
		t.Fatal("entry kept after unanswered probes")
	}
	eq(t, "probe failures", s.Stats().ND.ProbeFailures.Load(), uint64(1))
	if n := len(h.only(wire.ICMPv6NeighborSolic)); n != 3 {
		t.Fatalf("%d probes, want 3", n)
	}

	// INCOMPLETE -> gone after three multicast solicitations; the
	// connected socket hears EHOSTUNREACH.
	e2 := s.NewDgram(KindUDP, 0)
	e2.SetInet6()
	e2.SetRecvErr(true, true) // address unreachable is soft: IPV6_RECVERR hears it
	defer e2.Close()
	far := netip.AddrPortFrom(netip.MustParseAddr("fe80::77").WithZone("eth0"), 9)
	if err := e2.Connect(far); err != nil {
		t.Fatal(err)
	}
	e2.SendTo([]byte("x"), netip.AddrPort{}, nil)
	h.clk.Advance(3 * time.Second)
	eq(t, "resolve failures", s.Stats().ND.ResolveFailures.Load(), uint64(1))
	if err := e2.SoError(); err == nil {
		t.Fatal("no error after resolution failed")
	}

	// STALE entries are collected when unused.
	h.injectNA(peerLL, wire.NAFlagOverride, peerMAC) // no entry: ignored
	if _, ok := h.nic.Neighbor6(peerLL); ok {
		t.Fatal("unsolicited NA made an entry")
	}
}

// An NS for our address is answered with a solicited NA carrying our
// link-layer address, and the sender lands in the cache as STALE.
func TestIPv6NSAnswered(t *testing.T) {
	h := newH6(t, Options{})
	b := make([]byte, 32)
	n := wire.PutNS(b, hostLL, peerMAC)
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.SolicitedNode(hostLL)), peerMAC, peerLL, wire.SolicitedNode(hostLL), wire.ProtoICMPv6, 255, b[:n], 0))
	// The entry was made STALE, and sending the answer through it moved
	// it to DELAY (RFC 4861 7.2.3, 7.3.3), as Linux does.
	eq(t, "state", h.state(peerLL), NeighDelay)
	na := h.only(wire.ICMPv6NeighborAdvert)
	if len(na) != 1 {
		t.Fatalf("%d NA", len(na))
	}
	m := wire.NDP(na[0].icmp)
	eq(t, "flags", m.NAFlags(), uint8(wire.NAFlagSolicited|wire.NAFlagOverride))
	eq(t, "target", m.Target(), hostLL)
	eq(t, "dst", na[0].ip.Dst(), peerLL)
	eq(t, "mac", na[0].eth.Dst, peerMAC)
	var o wire.NDPOptions
	wire.ParseNDPOptions(m.Options(), &o)
	if !o.HasTargetLL || o.TargetLL != hostMAC {
		t.Fatal("no target link-layer option")
	}
	// Invalid ND: hop limit not 255 is dropped and counted.
	bad := h.s.Stats().ICMP6.InNDBad.Load()
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.SolicitedNode(hostLL)), peerMAC, peerLL, wire.SolicitedNode(hostLL), wire.ProtoICMPv6, 64, b[:n], 0))
	eq(t, "bad ND", h.s.Stats().ICMP6.InNDBad.Load(), bad+1)
	if len(h.only(wire.ICMPv6NeighborAdvert)) != 0 {
		t.Fatal("answered an NS with hop limit 64")
	}
	// A DAD probe for our assigned address gets an NA to all nodes.
	n = wire.PutNS(b, hostLL, wire.MAC{})
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.SolicitedNode(hostLL)), peerMAC, netip.IPv6Unspecified(), wire.SolicitedNode(hostLL), wire.ProtoICMPv6, 255, b[:n], 0))
	na = h.only(wire.ICMPv6NeighborAdvert)
	if len(na) != 1 || na[0].ip.Dst() != wire.IPv6AllNodes || wire.NDP(na[0].icmp).NAFlags()&wire.NAFlagSolicited != 0 {
		t.Fatalf("DAD defence: %+v", na)
	}
}

func TestIPv6Echo(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	m := make([]byte, 8+100)
	m[0] = wire.ICMPv6EchoRequest
	wire.ICMPv6(m).SetID(7)
	wire.ICMPv6(m).SetSeq(9)
	copy(m[8:], bytes.Repeat([]byte("p"), 100))
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
	r := h.only(wire.ICMPv6EchoReply)
	if len(r) != 1 {
		t.Fatal("no echo reply")
	}
	eq(t, "src", r[0].ip.Src(), hostLL)
	eq(t, "dst", r[0].ip.Dst(), peerLL)
	eq(t, "id", r[0].icmp.ID(), uint16(7))
	eq(t, "seq", r[0].icmp.Seq(), uint16(9))
	if !bytes.Equal(r[0].icmp.Payload(), m[8:]) {
		t.Fatal("payload changed")
	}
	// Bad checksum: counted, not answered.
	f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0)
	f[60] ^= 0xff
	h.ep.inject(f)
	eq(t, "csum errors", h.s.Stats().ICMP6.InCsumErrors.Load(), uint64(1))
	if len(h.sent()) != 0 {
		t.Fatal("answered a bad checksum")
	}
}

func TestIPv6ICMPErrors(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	udp := udp6(peerLL, hostLL, 1000, 9, []byte("hi"))

	// UDP to a closed port: port unreachable quoting the datagram.
	in := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp, -1)
	h.ep.inject(in)
	e := h.only(wire.ICMPv6DestUnreach)
	if len(e) != 1 || e[0].icmp.Code() != wire.ICMPv6PortUnreach || !bytes.Equal(e[0].icmp.Payload(), in[14:]) {
		t.Fatalf("port unreachable: %+v", e)
	}

	// Unknown next header: parameter problem code 1 pointing at byte 6.
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, 253, 64, make([]byte, 8), -1))
	e = h.only(wire.ICMPv6ParamProblem)
	if len(e) != 1 || e[0].icmp.Code() != wire.ICMPv6UnrecognizedNextHeader || e[0].icmp.Pointer() != 6 {
		t.Fatalf("unknown next header: %+v", e)
	}
	eq(t, "unknown protos", st.IP6.InUnknownProtos.Load(), uint64(1))

	// Destination option of action 10: code 2 pointing at the option.
	opts := append([]byte{wire.ProtoUDP, 0, 0x9e, 2, 0, 0, 1, 0}, udp...)
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Opts, 64, opts, -1))
	e = h.only(wire.ICMPv6ParamProblem)
	if len(e) != 1 || e[0].icmp.Code() != wire.ICMPv6UnrecognizedOption || e[0].icmp.Pointer() != 42 {
		t.Fatalf("unknown option: %+v", e)
	}
	// Action 11 to a multicast group: dropped without an error.
	opts[2] = 0xde
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), peerMAC, peerLL, wire.IPv6AllNodes, wire.ProtoIPv6Opts, 64, opts, -1))
	if len(h.sent()) != 0 {
		t.Fatal("error sent for action 11 to multicast")
	}
	// Action 01: silently dropped.
	opts[2] = 0x5e
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Opts, 64, opts, -1))
	if len(h.sent()) != 0 {
		t.Fatal("error sent for action 01")
	}
	eq(t, "option drops", st.IP6.InOptionDrops.Load(), uint64(3))

	// Routing header type 0 with segments left (RFC 5095): code 0, pointer at the type.
	rh := append([]byte{wire.ProtoUDP, 2, 0, 1, 0, 0, 0, 0}, make([]byte, 16)...)
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Route, 64, append(rh, udp...), -1))
	e = h.only(wire.ICMPv6ParamProblem)
	if len(e) != 1 || e[0].icmp.Code() != wire.ICMPv6ErroneousField || e[0].icmp.Pointer() != 42 {
		t.Fatalf("RH0: %+v", e)
	}
	eq(t, "routing headers", st.IP6.InRoutingHeader.Load(), uint64(1))

	// No error about an error.
	pu := make([]byte, 8+48)
	pu[0] = wire.ICMPv6DestUnreach
	copy(pu[8:], in[14:14+48])
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, pu, 0))
	if len(h.sent()) != 0 {
		t.Fatal("answered an error")
	}

	// Too many extension headers: dropped and counted.
	var chain []byte
	for i := 0; i < 9; i++ {
		chain = append(chain, wire.ProtoIPv6Opts, 0, 1, 4, 0, 0, 0, 0)
	}
	chain[len(chain)-8] = wire.ProtoUDP
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Opts, 64, append(chain, udp...), -1))
	eq(t, "ext limit", st.IP6.InExtLimit.Load(), uint64(1))
	if len(h.sent()) != 0 {
		t.Fatal("answered an over-long chain")
	}
}

func TestIPv6ErrorRateLimit(t *testing.T) {
	h := newH6(t, Options{ICMPPeerBurst: 3})
	h.nic.SetStatic6(peerLL, peerMAC)
	udp := udp6(peerLL, hostLL, 1000, 9, []byte("hi"))
	for i := 0; i < 10; i++ {
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp, -1))
	}
	eq(t, "errors sent", len(h.only(wire.ICMPv6DestUnreach)), 3)
	eq(t, "limited", h.s.Stats().ICMP6.OutRateLimited.Load(), uint64(7))
	h.clk.Advance(time.Second)
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp, -1))
	eq(t, "after a second", len(h.only(wire.ICMPv6DestUnreach)), 1)
}

func TestIPv6Martians(t *testing.T) {
	h := newH6(t, Options{})
	st := h.s.Stats()
	udp := udp6(ipv6Loopback, hostLL, 1, 9, nil)
	for _, src := range []netip.Addr{ipv6Loopback, netip.MustParseAddr("ff02::1"), netip.MustParseAddr("::ffff:10.0.0.1"), hostLL} {
		h.ep.inject(frame6(hostMAC, peerMAC, src, hostLL, wire.ProtoUDP, 64, udp, -1))
	}
	eq(t, "bad source", st.IP6.InBadSource.Load(), uint64(4))
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, ipv6Loopback, wire.ProtoUDP, 64, udp, -1))
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), peerMAC, peerLL, netip.MustParseAddr("ff01::1"), wire.ProtoUDP, 64, udp, -1))
	// A group we did not join.
	h.ep.inject(frame6(wire.IPv6MulticastMAC(netip.MustParseAddr("ff02::99")), peerMAC, peerLL, netip.MustParseAddr("ff02::99"), wire.ProtoUDP, 64, udp, -1))
	eq(t, "addr errors", st.IP6.InAddrErrors.Load(), uint64(2))
	if len(h.sent()) != 0 {
		t.Fatal("answered a martian")
	}
	// Truncated and bad version.
	f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp6(peerLL, hostLL, 1, 9, nil), -1)
	h.ep.inject(f[:50])
	g := append([]byte(nil), f...)
	g[14] = 0x40
	h.ep.inject(g)
	eq(t, "truncated", st.IP6.InTruncated.Load(), uint64(1))
	eq(t, "hdr errors", st.IP6.InHdrErrors.Load(), uint64(2))
}

// frag6 splits an upper-layer payload into fragments (data sizes in
// sizes, the last takes the rest).
func frag6(src, dst netip.Addr, nh uint8, id uint32, payload []byte, sizes ...int) [][]byte {
	var out [][]byte
	off := 0
	for i := 0; off < len(payload); i++ {
		n := len(payload) - off
		if i < len(sizes) {
			n = min(sizes[i], n)
		}
		pl := make([]byte, 8+n)
		wire.PutIPv6Frag(pl, nh, off, off+n < len(payload), id)
		copy(pl[8:], payload[off:off+n])
		out = append(out, frame6(hostMAC, peerMAC, src, dst, wire.ProtoIPv6Frag, 64, pl, -1))
		off += n
	}
	return out
}

func TestIPv6Reassembly(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	if err := e.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9)); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 250) // 4000 bytes
	u := udp6(peerLL, hostLL, 1000, 9, data)
	recv := func() []byte {
		b := make([]byte, 8000)
		n, _, from, err := e.RecvFrom(b, false)
		if err != nil {
			return nil
		}
		eq(t, "from", from.Addr(), peerLL.WithZone("eth0"))
		return b[:n]
	}
	// Out of order.
	fs := frag6(peerLL, hostLL, wire.ProtoUDP, 1, u, 1448, 1448)
	for _, i := range []int{2, 0, 1} {
		h.ep.inject(fs[i])
	}
	if got := recv(); !bytes.Equal(got, data) {
		t.Fatalf("reassembled %d bytes", len(got))
	}
	// Duplicate fragments are ignored, the datagram still completes.
	fs = frag6(peerLL, hostLL, wire.ProtoUDP, 2, u, 1448, 1448)
	for _, i := range []int{0, 0, 1, 2} {
		h.ep.inject(fs[i])
	}
	if got := recv(); !bytes.Equal(got, data) {
		t.Fatal("duplicate broke reassembly")
	}
	// Overlap drops the whole datagram (RFC 5722).
	fs = frag6(peerLL, hostLL, wire.ProtoUDP, 3, u, 1448, 1448)
	ov := frag6(peerLL, hostLL, wire.ProtoUDP, 3, u, 1440, 1448)
	h.ep.inject(fs[0])
	h.ep.inject(ov[1]) // starts at 1440, inside the first
	h.ep.inject(fs[1])
	h.ep.inject(fs[2])
	if recv() != nil {
		t.Fatal("overlapping datagram delivered")
	}
	if st.IP.ReasmOverlaps.Load() == 0 {
		t.Fatal("overlap not counted")
	}
	// Atomic fragment (RFC 6946): delivered alone, no reassembly state.
	small := udp6(peerLL, hostLL, 1000, 9, []byte("atomic"))
	h.ep.inject(frag6(peerLL, hostLL, wire.ProtoUDP, 4, small)[0])
	if got := recv(); string(got) != "atomic" {
		t.Fatalf("atomic fragment: %q", got)
	}
	eq(t, "atomic", st.IP6.InAtomicFrags.Load(), uint64(1))
	// A non-final fragment whose length is not a multiple of 8: param problem, pointer 4.
	h.ep.take()
	h.ep.inject(frag6(peerLL, hostLL, wire.ProtoUDP, 5, u, 1001)[0])
	pp := h.only(wire.ICMPv6ParamProblem)
	if len(pp) != 1 || pp[0].icmp.Pointer() != 4 {
		t.Fatalf("odd fragment: %+v", pp)
	}
	// First fragment without the whole chain (RFC 7112): code 3.
	do := append([]byte{wire.ProtoUDP, 1}, make([]byte, 14)...) // 16-byte dest options header, cut
	fs = frag6(peerLL, hostLL, wire.ProtoIPv6Opts, 6, append(do, u...), 8)
	h.ep.inject(fs[0])
	pp = h.only(wire.ICMPv6ParamProblem)
	if len(pp) != 1 || pp[0].icmp.Code() != wire.ICMPv6IncompleteHeaderChain {
		t.Fatalf("incomplete chain: %+v", pp)
	}
	// Timeout: time exceeded code 1 once the first fragment arrived.
	fs = frag6(peerLL, hostLL, wire.ProtoUDP, 7, u, 1448, 1448)
	h.ep.inject(fs[0])
	h.clk.Advance(31 * time.Second)
	te := h.only(wire.ICMPv6TimeExceeded)
	if len(te) != 1 || te[0].icmp.Code() != wire.ICMPv6ReassemblyTimeout {
		t.Fatalf("reassembly timeout: %+v", te)
	}
	// Two: this one, and the rest of the overlapped datagram (fragments
	// after the drop began a new one that never completed, silently).
	eq(t, "timeouts", st.IP.ReasmTimeout.Load(), uint64(2))
	eq(t, "mem", h.s.ReasmMemInUse(), 0)
}

func TestIPv6FragmentAtSource(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	data := bytes.Repeat([]byte{0xab}, 4000)
	if _, err := e.SendTo(data, netip.AddrPortFrom(peerLL.WithZone("eth0"), 9), nil); err != nil {
		t.Fatal(err)
	}
	out := h.sent()
	if len(out) != 3 {
		t.Fatalf("%d fragments", len(out))
	}
	// Feed them to a second stack: it must reassemble what we cut.
	var id uint32
	total := 0
	for i, x := range out {
		if !x.ext.Frag || len(x.ip)+14 > 1514 {
			t.Fatalf("fragment %d: %+v len %d", i, x.ext, len(x.ip))
		}
		f := wire.IPv6Frag(x.ip[x.ext.FragOff:])
		if i == 0 {
			id = f.ID()
		}
		eq(t, "id", f.ID(), id)
		eq(t, "offset", f.Offset(), total)
		eq(t, "more", f.More(), i < 2)
		total += len(x.ip) - x.ext.FragOff - 8
		if i < 2 && (len(x.ip)-x.ext.FragOff-8)%8 != 0 {
			t.Fatal("fragment data not a multiple of 8")
		}
	}
	eq(t, "total", total, 4008)
	eq(t, "frag creates", h.s.Stats().IP6.FragCreates.Load(), uint64(3))
}

func TestIPv6PacketTooBig(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 9)
	data := make([]byte, 1400)
	e.SendTo(data, to, nil)
	out := h.sent()
	if len(out) != 1 || out[0].ext.Frag {
		t.Fatal("1400 bytes fragmented on a 1500 link")
	}
	ptb := func(mtu uint32) {
		m := make([]byte, 8+len(out[0].ip))
		m[0] = wire.ICMPv6PacketTooBig
		wire.ICMPv6(m).SetRest(mtu)
		copy(m[8:], out[0].ip)
		m = m[:min(len(m), 1232)]
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
	}
	ptb(1300)
	eq(t, "pmtu", h.s.PathMTU(peerLL), 1300)
	e.SendTo(data, to, nil)
	for _, x := range h.sent() {
		if len(x.ip) > 1300 || !x.ext.Frag {
			t.Fatalf("not fragmented to 1300: %d", len(x.ip))
		}
	}
	// Below 1280: 1280 (RFC 8201 4).
	ptb(600)
	eq(t, "pmtu", h.s.PathMTU(peerLL), 1280)
	eq(t, "below min", st.IP6.PMTUBelowMin.Load(), uint64(1))
	// A larger value does not raise it; expiry does.
	ptb(1400)
	eq(t, "pmtu", h.s.PathMTU(peerLL), 1280)
	h.clk.Advance(11 * time.Minute)
	eq(t, "pmtu expired", h.s.PathMTU(peerLL), 1500)
	// A PTB about a packet we did not send teaches nothing.
	forged := make([]byte, 8+48)
	forged[0] = wire.ICMPv6PacketTooBig
	wire.ICMPv6(forged).SetRest(1280)
	hd := wire.IPv6Header{NextHeader: wire.ProtoUDP, HopLimit: 64, Src: peer6, Dst: peerLL, PayloadLen: 8}
	hd.Put(forged[8:])
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, forged, 0))
	eq(t, "pmtu", h.s.PathMTU(peerLL), 1500)
}

// ra builds a router advertisement frame.
func ra(life uint16, mtu uint32, prefixes ...wire.NDPPrefix) []byte {
	b := make([]byte, 200)
	n := wire.PutRA(b, wire.RAHeader{CurHopLimit: 77, RouterLifetime: life, ReachableTime: 20000, RetransTimer: 500})
	n += wire.PutNDPLinkOpt(b[n:], wire.NDPOptSourceLL, routerMC)
	if mtu != 0 {
		n += wire.PutNDPMTUOpt(b[n:], mtu)
	}
	for _, p := range prefixes {
		fl := uint8(0)
		if p.OnLink {
			fl |= wire.PrefixFlagOnLink
		}
		if p.Auto {
			fl |= wire.PrefixFlagAuto
		}
		n += wire.PutNDPPrefixOpt(b[n:], p.Prefix, fl, p.Valid, p.Preferred)
	}
	return frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoICMPv6, 255, b[:n], 0)
}

func TestIPv6SLAAC(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clk, IPv6SLAAC: true, IPv6LinkLocal: true})
	defer s.Close()
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	h := &h6{t, s, ep, nic, clk}
	st := s.Stats()
	h.sent()
	clk.Advance(time.Second) // DAD done
	rs := h.only(wire.ICMPv6RouterSolicit)
	if len(rs) != 1 || rs[0].ip.Dst() != wire.IPv6AllRouters || rs[0].ip.Src() != hostLL {
		t.Fatalf("RS: %+v", rs)
	}
	clk.Advance(4 * time.Second)
	eq(t, "second RS", len(h.only(wire.ICMPv6RouterSolicit)), 1)

	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	ep.inject(ra(1800, 1400, wire.NDPPrefix{Prefix: pfx, OnLink: true, Auto: true, Valid: 7200, Preferred: 3600}))
	slaac := wire.AddrWithIID(pfx, wire.EUI64(hostMAC))
	a6 := nic.Addrs6()
	found := false
	for _, a := range a6 {
		if a.Prefix.Addr() == slaac && a.Tentative && a.SLAAC {
			found = true
		}
	}
	if !found {
		t.Fatalf("no tentative SLAAC address: %+v", a6)
	}
	clk.Advance(time.Second)
	if !s.IsLocal(slaac) {
		t.Fatal("SLAAC address not assigned after DAD")
	}
	// No more RS after the RA.
	clk.Advance(10 * time.Second)
	if len(h.only(wire.ICMPv6RouterSolicit)) != 0 {
		t.Fatal("solicited after an RA")
	}
	// Default route via the router, on-link prefix, MTU, hop limit.
	r, err := s.FindRoute(netip.MustParseAddr("2001:db8:99::1"))
	if err != nil || r.Gateway != routerLL || r.MTU != 1400 || r.Src != slaac {
		t.Fatalf("default route: %+v %v", r, err)
	}
	r, err = s.FindRoute(netip.MustParseAddr("2001:db8:1::5"))
	if err != nil || r.Gateway.IsValid() || r.Src != slaac {
		t.Fatalf("on-link route: %+v %v", r, err)
	}
	eq(t, "hop limit", nic.hopLimit6(s), uint8(77))
	eq(t, "router entry", h.state(routerLL), NeighStale)
	eq(t, "routers", len(nic.DefaultRouters()), 1)
	// MTU option out of range is ignored and counted.
	ep.inject(ra(1800, 1000))
	eq(t, "bad mtu", st.ND.RAMTUBad.Load(), uint64(1))
	eq(t, "mtu kept", nic.mtu6(), 1400)
	// Source selection: global for a global destination, link-local for link-local.
	eq(t, "src global", nic.selectSource6(netip.MustParseAddr("2001:db8:99::1")), slaac)
	eq(t, "src ll", nic.selectSource6(peerLL), hostLL)

	// The two-hour rule: a short valid lifetime does not cut 2 h 60 s... (RFC 4862 5.5.3e).
	ep.inject(ra(1800, 0, wire.NDPPrefix{Prefix: pfx, OnLink: true, Auto: true, Valid: 60, Preferred: 30}))
	clk.Advance(5 * time.Minute)
	if !s.IsLocal(slaac) {
		t.Fatal("a 60 s valid lifetime removed the address (two-hour rule)")
	}
	// Preferred lifetime over: deprecated, still assigned.
	clk.Advance(2 * time.Hour)
	if s.IsLocal(slaac) {
		t.Fatal("address kept past the two hours")
	}
	eq(t, "expired", st.ND.AddrExpired.Load(), uint64(1))
	// Router lifetime runs out: default route gone.
	clk.Advance(30 * time.Minute)
	if _, err := s.FindRoute(netip.MustParseAddr("2001:db8:99::1")); err == nil {
		t.Fatal("default route outlived the router lifetime")
	}
	eq(t, "router expired", st.ND.RouterExpired.Load(), uint64(1))
	// An RA with router lifetime 0 removes a router at once.
	ep.inject(ra(600, 0))
	eq(t, "routers", len(nic.DefaultRouters()), 1)
	ep.inject(ra(0, 0))
	eq(t, "routers", len(nic.DefaultRouters()), 0)
	// RA from a global source is invalid.
	bad := st.ICMP6.InNDBad.Load()
	f := ra(600, 0)
	copy(f[14+8:], peer6.AsSlice())
	m := wire.ICMPv6(f[54:])
	m.FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), wire.IPv6AllNodes.As16(), wire.ProtoICMPv6, len(m)))
	ep.inject(f)
	eq(t, "ra from global", st.ICMP6.InNDBad.Load(), bad+1)
}

func TestIPv6Deprecated(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clk, IPv6SLAAC: true, IPv6LinkLocal: true})
	defer s.Close()
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	clk.Advance(time.Second)
	p1 := netip.MustParsePrefix("2001:db8:1::/64")
	p2 := netip.MustParsePrefix("2001:db8:2::/64")
	ep.inject(ra(1800, 0, wire.NDPPrefix{Prefix: p1, OnLink: true, Auto: true, Valid: 7200, Preferred: 10}))
	ep.inject(ra(1800, 0, wire.NDPPrefix{Prefix: p2, OnLink: true, Auto: true, Valid: 7200, Preferred: 7200}))
	clk.Advance(time.Second)
	a1, a2 := wire.AddrWithIID(p1, wire.EUI64(hostMAC)), wire.AddrWithIID(p2, wire.EUI64(hostMAC))
	dst := netip.MustParseAddr("2001:db8:1::99")
	eq(t, "longest match", nic.selectSource6(dst), a1)
	clk.Advance(10 * time.Second)
	// Rule 3 (avoid deprecated) beats rule 8 (longest match).
	eq(t, "deprecated avoided", nic.selectSource6(dst), a2)
}

func TestIPv6MLD(t *testing.T) {
	h := newH6(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	g := netip.MustParseAddr("ff02::1234")
	h.nic.join(g)
	rep := h.only(wire.ICMPv6MLDv2Report)
	if len(rep) != 1 || rep[0].ip.Dst() != wire.IPv6AllMLDv2 || rep[0].ip.Src() != hostLL {
		t.Fatalf("join report: %+v", rep)
	}
	var recs []wire.MLDRecord
	wire.ParseMLDv2Report(rep[0].icmp, func(r wire.MLDRecord, _ int) { recs = append(recs, r) })
	if len(recs) != 1 || recs[0].Type != wire.MLDChangeToExclude || recs[0].Group != g {
		t.Fatalf("records %+v", recs)
	}
	// A general query: reports for our groups within the max response time.
	b := make([]byte, 64)
	n := wire.PutMLDQuery(b, netip.Addr{}, time.Second)
	hbh := []byte{wire.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0}
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoHopByHop, 1, append(hbh, b[:n]...), 8))
	eq(t, "queries", h.s.Stats().ICMP6.InMLDQueries.Load(), uint64(1))
	h.clk.Advance(time.Second)
	groups := map[netip.Addr]bool{}
	for _, r := range h.only(wire.ICMPv6MLDv2Report) {
		wire.ParseMLDv2Report(r.icmp, func(r wire.MLDRecord, _ int) { groups[r.Group] = true })
	}
	if !groups[g] || !groups[wire.SolicitedNode(hostLL)] || groups[wire.IPv6AllNodes] {
		t.Fatalf("reported %v", groups)
	}
	// A query without router alert is invalid.
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoICMPv6, 1, b[:n], 0))
	h.clk.Advance(time.Second)
	if len(h.only(wire.ICMPv6MLDv2Report)) != 0 {
		t.Fatal("answered a query without router alert")
	}
	h.nic.leave(g)
	rep = h.only(wire.ICMPv6MLDv2Report)
	if len(rep) != 1 {
		t.Fatal("no leave report")
	}
}

// The NIC demultiplexes by EtherType: IPv4 keeps working beside IPv6.
func TestDualStackNIC(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	h.nic.SetStatic(peerAddr, peerMAC)
	h.nic.SetStatic6(peerLL, peerMAC)
	h.ep.take()
	if err := h.nic.AddAddress(netip.MustParsePrefix("2001:db8::1/64")); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Second)
	if !h.s.IsLocal(host6) || !h.s.IsLocal(hostAddr) {
		t.Fatal("both families not assigned")
	}
	h.ep.take()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(1, 1, nil)))
	m := make([]byte, 8)
	m[0] = wire.ICMPv6EchoRequest
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
	var v4, v6 int
	for _, f := range h.ep.take() {
		switch wire.Ethernet(f).EtherType() {
		case wire.EtherTypeIPv4:
			v4++
		case wire.EtherTypeIPv6:
			v6++
		}
	}
	eq(t, "v4 replies", v4, 1)
	eq(t, "v6 replies", v6, 1)
	// Source selection for the global peer picks the global address.
	r, err := h.s.FindRoute(peer6)
	if err != nil || r.Src != host6 {
		t.Fatalf("%+v %v", r, err)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func netipPort6(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv6Unspecified(), p) }

// A source of the other family never reaches a header builder (it
// panicked in IPv4's SetSrc before): EAFNOSUPPORT both ways.
func TestWritePacketFamilyMismatch(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	h.nic.SetStatic(peerAddr, peerMAC)
	h.nic.SetStatic6(peerLL, peerMAC)
	if err := h.s.WritePacket(&OutPacket{Src: hostLL, Dst: peerAddr, Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 8)}}); err == nil {
		t.Fatal("IPv6 source to an IPv4 destination accepted")
	}
	if err := h.s.WritePacket(&OutPacket{Src: hostAddr, Dst: peerLL.WithZone("eth0"), Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 8)}}); err == nil {
		t.Fatal("IPv4 source to an IPv6 destination accepted")
	}
}
