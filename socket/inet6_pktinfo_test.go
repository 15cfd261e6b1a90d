package socket

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// triple is host A with two links: eth0 to B, eth1 to C. B and C both
// hold 2001:db8::2 and 10.0.0.2 (two separate links, the same
// prefixes), so only the interface A sends through says who gets a
// datagram. A has 2001:db8::1 and 2001:db8::11 on eth0 (10.0.0.1 and
// 10.0.0.11), 2001:db8::3 on eth1 (10.0.0.3).
type triple struct {
	a, b, c       *Net
	eth0, eth1    *stack.NIC
	sa, sb, sc    *stack.Stack
	linkLocalEth0 netip.Addr
}

func newTriple(t *testing.T) *triple {
	t.Helper()
	opts := stack.Options{DADTransmits: -1}
	a0, b0 := link.NewPipe(macA, macB, 1500)
	a1, c1 := link.NewPipe(wire.MAC{2, 0, 0, 0, 1, 1}, wire.MAC{2, 0, 0, 0, 1, 3}, 1500)
	sa, sb, sc := stack.New(opts), stack.New(opts), stack.New(opts)
	t.Cleanup(func() { sa.Close(); sb.Close(); sc.Close() })
	eth0, eth1 := sa.AddNIC("eth0", a0), sa.AddNIC("eth1", a1)
	nb, nc := sb.AddNIC("eth0", b0), sc.AddNIC("eth0", c1)
	for _, c := range []struct {
		n *stack.NIC
		p string
	}{{eth0, "10.0.0.1/24"}, {eth0, "10.0.0.11/24"}, {eth1, "10.0.0.3/24"}, {nb, "10.0.0.2/24"}, {nc, "10.0.0.2/24"},
		{eth0, "2001:db8::1/64"}, {eth0, "2001:db8::11/64"}, {eth1, "2001:db8::3/64"}, {nb, "2001:db8::2/64"}, {nc, "2001:db8::2/64"}} {
		if err := c.n.AddAddress(netip.MustParsePrefix(c.p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*stack.NIC{eth0, eth1, nb, nc} {
		if err := n.EnableIPv6(); err != nil {
			t.Fatal(err)
		}
	}
	tr := &triple{a: New(sa), b: New(sb), c: New(sc), eth0: eth0, eth1: eth1, sa: sa, sb: sb, sc: sc}
	for _, a := range eth0.Addrs() {
		if a.Addr().IsLinkLocalUnicast() {
			tr.linkLocalEth0 = a.Addr()
		}
	}
	return tr
}

// udpSink is a UDP socket bound to port on n (family fam), 5 s timeout.
func udpSink(t *testing.T, n *Net, fam int, a netip.Addr, port int) *Socket {
	t.Helper()
	s := mustSocket(t, n, fam, SOCK_DGRAM, 0)
	if err := s.Bind(ap(a, port)); err != nil {
		t.Fatal(err)
	}
	timeout(t, s)
	return s
}

func recvFromAddr(t *testing.T, s *Socket, want string) netip.Addr {
	t.Helper()
	b := make([]byte, 64)
	n, from, err := s.RecvFrom(b, 0)
	if err != nil || string(b[:n]) != want {
		t.Fatalf("recv %q from %v: %v (want %q)", b[:n], from, err, want)
	}
	return from.(*SockaddrInet).AddrPort.Addr().WithZone("")
}

// IPV6_PKTINFO in sendmsg picks the source address and the outgoing
// interface; errors as Linux's ip6_datagram_send_ctl.
func TestInet6SendPktinfo(t *testing.T) {
	tr := newTriple(t)
	dst := netip.MustParseAddr("2001:db8::2")
	sb := udpSink(t, tr.b, AF_INET6, netip.IPv6Unspecified(), 7000)
	sc := udpSink(t, tr.c, AF_INET6, netip.IPv6Unspecified(), 7000)
	s := mustSocket(t, tr.a, AF_INET6, SOCK_DGRAM, 0)
	to := ap(dst, 7000)

	// No control message: the route (eth0, the first).
	if _, err := s.SendMsg([]byte("plain"), 0, to); err != nil {
		t.Fatal(err)
	}
	recvFromAddr(t, sb, "plain")
	// The source chosen: either address of eth0.
	src := netip.MustParseAddr("2001:db8::11")
	for _, a := range []netip.Addr{netip.MustParseAddr("2001:db8::1"), src} {
		if _, err := s.SendMsg([]byte("src"), 0, to, In6Pktinfo{Addr: a}); err != nil {
			t.Fatal(err)
		}
		if got := recvFromAddr(t, sb, "src"); got != a {
			t.Errorf("pktinfo source: from %v, want %v", got, a)
		}
	}
	// The interface chosen: eth1 reaches C, not B.
	if _, err := s.SendMsg([]byte("via eth1"), 0, to, In6Pktinfo{Ifindex: tr.eth1.ID()}); err != nil {
		t.Fatal(err)
	}
	if got := recvFromAddr(t, sc, "via eth1"); got != netip.MustParseAddr("2001:db8::3") {
		t.Errorf("via eth1 from %v, want eth1's address", got)
	}
	// A link-local source with its interface.
	if _, err := s.SendMsg([]byte("ll"), 0, to, In6Pktinfo{Addr: tr.linkLocalEth0, Ifindex: tr.eth0.ID()}); err != nil {
		t.Fatal(err)
	}
	if got := recvFromAddr(t, sb, "ll"); got != tr.linkLocalEth0 {
		t.Errorf("link-local source: from %v", got)
	}

	for _, c := range []struct {
		what string
		pi   any
		to   Sockaddr
		want syscall.Errno
	}{
		{"non-local source", In6Pktinfo{Addr: netip.MustParseAddr("2001:db8::99")}, to, syscall.EINVAL},
		{"unknown ifindex", In6Pktinfo{Ifindex: 99}, to, syscall.ENODEV},
		{"unknown ifindex with source", In6Pktinfo{Addr: src, Ifindex: 99}, to, syscall.ENODEV},
		{"link-local source, no ifindex", In6Pktinfo{Addr: tr.linkLocalEth0}, to, syscall.EINVAL},
		{"link-local source on another interface", In6Pktinfo{Addr: tr.linkLocalEth0, Ifindex: tr.eth1.ID()}, to, syscall.EINVAL},
		{"::1 on eth0", In6Pktinfo{Addr: netip.IPv6Loopback(), Ifindex: tr.eth0.ID()}, to, syscall.EINVAL},
		{"ifindex against the scope id", In6Pktinfo{Ifindex: tr.eth1.ID()}, Inet6("fe80::2%eth0", 7000), syscall.EINVAL},
		{"IPv6 source to a v4-mapped peer", In6Pktinfo{Addr: src}, Inet6("::ffff:10.0.0.2", 7000), syscall.EINVAL},
		{"IP_TTL 0 to a v4-mapped peer", IPTTL(0), Inet6("::ffff:10.0.0.2", 7000), syscall.EINVAL},
		{"IPV6_HOPLIMIT 256", IPv6HopLimit(256), to, syscall.EINVAL},
		{"unknown message", 42, to, syscall.EINVAL},
	} {
		_, err := s.SendMsg([]byte("x"), 0, c.to, c.pi)
		errIs(t, c.what, err, c.want)
	}
	// Sent nothing: B's next datagram is the one below.
	if _, err := s.SendMsg([]byte("after"), 0, to); err != nil {
		t.Fatal(err)
	}
	recvFromAddr(t, sb, "after")

	// A v4-mapped source for a v4-mapped peer takes the IPv4 path.
	sb4 := udpSink(t, tr.b, AF_INET, netip.IPv4Unspecified(), 7001)
	if _, err := s.SendMsg([]byte("mapped"), 0, Inet6("::ffff:10.0.0.2", 7001), In6Pktinfo{Addr: netip.MustParseAddr("::ffff:10.0.0.11")}); err != nil {
		t.Fatal(err)
	}
	if got := recvFromAddr(t, sb4, "mapped"); got != netip.MustParseAddr("10.0.0.11") {
		t.Errorf("mapped source: from %v", got)
	}

	// The sticky option: its interface is used, its address is not (Linux's UDP).
	errIs(t, "sticky of the wrong type", s.SetSockOpt(IPPROTO_IPV6, IPV6_PKTINFO, 1), syscall.EINVAL)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_PKTINFO, In6Pktinfo{Addr: netip.MustParseAddr("2001:db8::99"), Ifindex: tr.eth1.ID()}); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSockOpt(IPPROTO_IPV6, IPV6_PKTINFO)
	errIs(t, "get sticky on UDP", err, syscall.ENOPROTOOPT)
	s.SendTo([]byte("sticky"), 0, to)
	if got := recvFromAddr(t, sc, "sticky"); got != netip.MustParseAddr("2001:db8::3") {
		t.Errorf("sticky from %v", got)
	}
	// A control message naming another interface than the sticky one
	// is EINVAL; naming none, the sticky one holds.
	_, err = s.SendMsg([]byte("x"), 0, to, In6Pktinfo{Ifindex: tr.eth0.ID()})
	errIs(t, "cmsg ifindex against the sticky one", err, syscall.EINVAL)
	s.SendMsg([]byte("sticky again"), 0, to, In6Pktinfo{})
	recvFromAddr(t, sc, "sticky again")
	// An unknown sticky interface is taken, then fails the route.
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_PKTINFO, In6Pktinfo{Ifindex: 99}); err != nil {
		t.Fatal(err)
	}
	_, err = s.SendTo([]byte("x"), 0, to)
	errIs(t, "unknown sticky ifindex", err, syscall.ENETUNREACH)
	_, err = s.SendMsg([]byte("x"), 0, to, In6Pktinfo{})
	errIs(t, "unknown sticky ifindex with a message", err, syscall.ENODEV)

	// A stream socket takes the option and ignores it.
	ts := mustSocket(t, tr.a, AF_INET6, SOCK_STREAM, 0)
	if err := ts.SetSockOpt(IPPROTO_IPV6, IPV6_PKTINFO, In6Pktinfo{Addr: netip.IPv6Loopback()}); err != nil {
		t.Errorf("TCP sticky pktinfo: %v", err)
	}
}

// IP_PKTINFO in sendmsg on AF_INET: ipi_spec_dst is the source,
// ipi_ifindex the interface; a source the host does not have fails the
// route (ENETUNREACH), an unknown ifindex is ENODEV, as on Linux.
func TestInetSendPktinfo(t *testing.T) {
	tr := newTriple(t)
	dst := netip.MustParseAddr("10.0.0.2")
	sb := udpSink(t, tr.b, AF_INET, netip.IPv4Unspecified(), 7000)
	sc := udpSink(t, tr.c, AF_INET, netip.IPv4Unspecified(), 7000)
	s := mustSocket(t, tr.a, AF_INET, SOCK_DGRAM, 0)
	to := ap(dst, 7000)
	if _, err := s.SendMsg([]byte("spec"), 0, to, InPktinfo{SpecDst: netip.MustParseAddr("10.0.0.11")}); err != nil {
		t.Fatal(err)
	}
	if got := recvFromAddr(t, sb, "spec"); got != netip.MustParseAddr("10.0.0.11") {
		t.Errorf("spec_dst source: from %v", got)
	}
	if _, err := s.SendMsg([]byte("eth1"), 0, to, InPktinfo{Ifindex: tr.eth1.ID()}); err != nil {
		t.Fatal(err)
	}
	if got := recvFromAddr(t, sc, "eth1"); got != netip.MustParseAddr("10.0.0.3") {
		t.Errorf("via eth1 from %v", got)
	}
	_, err := s.SendMsg([]byte("x"), 0, to, InPktinfo{SpecDst: netip.MustParseAddr("198.51.100.7")})
	errIs(t, "non-local spec_dst", err, syscall.ENETUNREACH)
	_, err = s.SendMsg([]byte("x"), 0, to, InPktinfo{Ifindex: 99})
	errIs(t, "unknown ifindex", err, syscall.ENODEV)
	_, err = s.SendMsg([]byte("x"), 0, to, IPTTL(256))
	errIs(t, "IP_TTL 256", err, syscall.EINVAL)
	_, err = s.SendMsg([]byte("x"), 0, to, "not a control message")
	errIs(t, "unknown type", err, syscall.EINVAL)
	// The wire: B got nothing from the failed calls.
	s.SendMsg([]byte("last"), 0, to)
	recvFromAddr(t, sb, "last")
}

// IP_PKTINFO on receive: the datagram's destination and the NIC.
func TestInetRecvPktinfo(t *testing.T) {
	tr := newTriple(t)
	r := udpSink(t, tr.b, AF_INET, netip.IPv4Unspecified(), 7002)
	if v, _ := r.GetSockOpt(SOL_IP, IP_PKTINFO); v != 0 {
		t.Fatalf("IP_PKTINFO starts at %v", v)
	}
	s := mustSocket(t, tr.a, AF_INET, SOCK_DGRAM, 0)
	s.SendTo([]byte("off"), 0, ap(netip.MustParseAddr("10.0.0.2"), 7002))
	b := make([]byte, 16)
	if _, _, _, _, ok, err := r.RecvMsgPktinfo(b, 0); err != nil || ok {
		t.Fatalf("option off: ok %v err %v", ok, err)
	}
	if err := r.SetSockOpt(SOL_IP, IP_PKTINFO, 2); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetSockOpt(SOL_IP, IP_PKTINFO); v != 1 {
		t.Fatalf("IP_PKTINFO reads %v", v)
	}
	s.SendTo([]byte("on"), 0, ap(netip.MustParseAddr("10.0.0.2"), 7002))
	n, _, from, pi, ok, err := r.RecvMsgPktinfo(b, 0)
	nb := tr.sb.NICs()[1]
	if err != nil || !ok || string(b[:n]) != "on" || from == nil || pi.Addr != netip.MustParseAddr("10.0.0.2") ||
		pi.SpecDst != pi.Addr || pi.Ifindex != nb.ID() {
		t.Fatalf("%q %v %+v ok %v err %v (B's NIC %d)", b[:n], from, pi, ok, err, nb.ID())
	}
	six := mustSocket(t, tr.b, AF_INET6, SOCK_DGRAM, 0)
	_, _, _, _, _, err = six.RecvMsgPktinfo(b, 0)
	errIs(t, "RecvMsgPktinfo on AF_INET6", err, syscall.EOPNOTSUPP)
}
