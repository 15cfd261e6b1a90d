package socket

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
)

var (
	v6A = netip.MustParseAddr("2001:db8::1")
	v6B = netip.MustParseAddr("2001:db8::2")
)

// newPair6 joins two dual-stack hosts by a pipe: 10.0.0.1 / 2001:db8::1
// and 10.0.0.2 / 2001:db8::2 (DAD off, so the addresses are usable at
// once; DAD itself is tested in stack).
func newPair6(t testing.TB) *pair {
	t.Helper()
	opts := stack.Options{DADTransmits: -1}
	ea, eb := link.NewPipe(macA, macB, 1500)
	sa, sb := stack.New(opts), stack.New(opts)
	na := sa.AddNIC("eth0", ea)
	nb := sb.AddNIC("eth0", eb)
	for _, c := range []struct {
		n *stack.NIC
		p string
	}{{na, "10.0.0.1/24"}, {nb, "10.0.0.2/24"}, {na, "2001:db8::1/64"}, {nb, "2001:db8::2/64"}} {
		if err := c.n.AddAddress(netip.MustParsePrefix(c.p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := na.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := nb.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return &pair{a: New(sa), b: New(sb), sa: sa, sb: sb}
}

func errIs(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func timeout(t *testing.T, s *Socket) {
	t.Helper()
	if err := s.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestInet6TCPLoopback(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	l := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := l.Bind(Inet6("::", 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	name, _ := l.GetSockName()
	if name.Family() != AF_INET6 {
		t.Fatalf("listener name %v", name)
	}
	port := int(name.(*SockaddrInet).AddrPort.Port())

	// An IPv6 client.
	c := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := c.Connect(Inet6("::1", port)); err != nil {
		t.Fatal(err)
	}
	a, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := from.(*SockaddrInet).AddrPort.Addr(); got != netip.IPv6Loopback() || from.Family() != AF_INET6 {
		t.Fatalf("peer %v", from)
	}
	c.Send([]byte("hello6"), 0)
	timeout(t, a)
	b := make([]byte, 16)
	k, err := a.Recv(b, 0)
	if err != nil || string(b[:k]) != "hello6" {
		t.Fatalf("%q %v", b[:k], err)
	}

	// An IPv4 client on the dual-stack listener: v4-mapped on accept and
	// in getsockname of the accepted socket.
	c4 := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := c4.Connect(Inet("127.0.0.1", port)); err != nil {
		t.Fatal(err)
	}
	a4, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a4.Close()
	if got := from.(*SockaddrInet).AddrPort.Addr(); got != netip.MustParseAddr("::ffff:127.0.0.1") || from.Family() != AF_INET6 {
		t.Fatalf("v4 peer %v", from)
	}
	self, _ := a4.GetSockName()
	if self.(*SockaddrInet).AddrPort.Addr() != netip.MustParseAddr("::ffff:127.0.0.1") {
		t.Fatalf("v4 name %v", self)
	}
	peer, _ := a4.GetPeerName()
	if peer.Family() != AF_INET6 {
		t.Fatalf("getpeername %v", peer)
	}
	// An AF_INET6 client to a v4-mapped address speaks IPv4.
	cm := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := cm.Connect(Inet6("::ffff:127.0.0.1", port)); err != nil {
		t.Fatal(err)
	}
	am, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	am.Close()
	me, _ := cm.GetSockName()
	if me.(*SockaddrInet).AddrPort.Addr() != netip.MustParseAddr("::ffff:127.0.0.1") {
		t.Fatalf("mapped client name %v", me)
	}
}

func TestInet6V6Only(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	l := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if v, _ := l.GetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY); v != 0 {
		t.Fatalf("V6ONLY default %v, want 0 (Linux bindv6only=0)", v)
	}
	if err := l.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(Inet6("::", 0)); err != nil {
		t.Fatal(err)
	}
	errIs(t, "V6ONLY after bind", l.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 0), syscall.EINVAL)
	l.Listen(4)
	port := int(mustName(t, l).Port())
	c4 := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	errIs(t, "v4 to a V6ONLY listener", c4.Connect(Inet("127.0.0.1", port)), syscall.ECONNREFUSED)
	// A V6ONLY socket cannot reach IPv4 at all.
	c := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	c.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
	errIs(t, "V6ONLY connect to mapped", c.Connect(Inet6("::ffff:127.0.0.1", port)), syscall.ENETUNREACH)
	// An AF_INET listener on 0.0.0.0 takes no IPv6.
	l4 := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	l4.Bind(Inet("0.0.0.0", 0))
	l4.Listen(4)
	c6 := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	errIs(t, "v6 to an AF_INET listener", c6.Connect(Inet6("::1", int(mustName(t, l4).Port()))), syscall.ECONNREFUSED)
	// IPPROTO_IPV6 options on an AF_INET socket.
	_, err := c4.GetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY)
	errIs(t, "V6ONLY on AF_INET", err, syscall.EOPNOTSUPP)
}

func mustName(t *testing.T, s *Socket) netip.AddrPort {
	t.Helper()
	a, err := s.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	return a.(*SockaddrInet).AddrPort
}

// Bind conflicts between the families, as Linux: a dual-stack :: takes
// the port for IPv4 too; a V6ONLY one does not.
func TestInet6BindConflicts(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM} {
		n := New(stack.New(stack.Options{}))
		s6 := mustSocket(t, n, AF_INET6, typ, 0)
		if err := s6.Bind(Inet6("::", 0)); err != nil {
			t.Fatal(err)
		}
		port := int(mustName(t, s6).Port())
		s4 := mustSocket(t, n, AF_INET, typ, 0)
		errIs(t, "0.0.0.0 after dual-stack ::", s4.Bind(Inet("0.0.0.0", port)), syscall.EADDRINUSE)
		s4b := mustSocket(t, n, AF_INET, typ, 0)
		errIs(t, "127.0.0.1 after dual-stack ::", s4b.Bind(Inet("127.0.0.1", port)), syscall.EADDRINUSE)
		s6b := mustSocket(t, n, AF_INET6, typ, 0)
		errIs(t, ":: twice", s6b.Bind(Inet6("::", port)), syscall.EADDRINUSE)

		o6 := mustSocket(t, n, AF_INET6, typ, 0)
		o6.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
		if err := o6.Bind(Inet6("::", 0)); err != nil {
			t.Fatal(err)
		}
		port = int(mustName(t, o6).Port())
		o4 := mustSocket(t, n, AF_INET, typ, 0)
		if err := o4.Bind(Inet("0.0.0.0", port)); err != nil {
			t.Errorf("type %d: 0.0.0.0 beside a V6ONLY ::: %v", typ, err)
		}
		// ::1 and 127.0.0.1 on one port never conflict.
		p1 := mustSocket(t, n, AF_INET6, typ, 0)
		p1.Bind(Inet6("::1", 0))
		port = int(mustName(t, p1).Port())
		p2 := mustSocket(t, n, AF_INET, typ, 0)
		if err := p2.Bind(Inet("127.0.0.1", port)); err != nil {
			t.Errorf("127.0.0.1 beside ::1: %v", err)
		}
		n.Stack().Close()
	}
}

func TestInet6AddressErrors(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	s6 := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	errIs(t, "AF_INET address on AF_INET6 bind", s6.Bind(Inet("127.0.0.1", 0)), syscall.EINVAL)
	errIs(t, "link-local without scope", s6.Bind(Inet6("fe80::1", 0)), syscall.EINVAL)
	errIs(t, "unknown scope", s6.Bind(Inet6("fe80::1%nope", 0)), syscall.ENODEV)
	errIs(t, "not ours", s6.Bind(Inet6("2001:db8::9", 0)), syscall.EADDRNOTAVAIL)
	s4 := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	errIs(t, "AF_INET6 address on AF_INET bind", s4.Bind(Inet6("::1", 0)), syscall.EAFNOSUPPORT)
	_, err := s4.SendTo([]byte("x"), 0, Inet6("::1", 9))
	errIs(t, "AF_INET6 sendto on AF_INET", err, syscall.EAFNOSUPPORT)
	t6 := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	errIs(t, "AF_INET connect on AF_INET6 stream", t6.Connect(Inet("127.0.0.1", 9)), syscall.EINVAL)
	// Unbound names.
	if a := mustName(t, s6); a.Addr() != netip.IPv6Unspecified() || a.Port() != 0 {
		t.Errorf("unbound name %v", a)
	}
	if a := mustName(t, t6); a.Addr() != netip.IPv6Unspecified() {
		t.Errorf("unbound stream name %v", a)
	}
	_, err = n.Socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMP)
	errIs(t, "ICMPv4 ping on AF_INET6", err, syscall.EPROTONOSUPPORT)
	_, err = n.Socket(AF_INET6, SOCK_STREAM, IPPROTO_UDP)
	errIs(t, "stream UDP", err, syscall.EPROTONOSUPPORT)
}

func TestInet6UDPDualStack(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	srv := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	srv.Bind(Inet6("::", 0))
	timeout(t, srv)
	port := int(mustName(t, srv).Port())
	b := make([]byte, 64)
	for _, c := range []struct {
		fam  int
		to   Sockaddr
		from netip.Addr
	}{
		{AF_INET6, Inet6("::1", port), netip.IPv6Loopback()},
		{AF_INET, Inet("127.0.0.1", port), netip.MustParseAddr("::ffff:127.0.0.1")},
	} {
		cl := mustSocket(t, n, c.fam, SOCK_DGRAM, 0)
		if _, err := cl.SendTo([]byte("ping"), 0, c.to); err != nil {
			t.Fatal(err)
		}
		k, from, err := srv.RecvFrom(b, 0)
		if err != nil || string(b[:k]) != "ping" {
			t.Fatalf("%q %v", b[:k], err)
		}
		if got := from.(*SockaddrInet).AddrPort.Addr(); got != c.from || from.Family() != AF_INET6 {
			t.Fatalf("from %v, want %v", from, c.from)
		}
		// Answer to where it came from (v4-mapped goes out as IPv4).
		if _, err := srv.SendTo([]byte("pong"), 0, from); err != nil {
			t.Fatal(err)
		}
		timeout(t, cl)
		if k, _, err := cl.RecvFrom(b, 0); err != nil || string(b[:k]) != "pong" {
			t.Fatalf("reply %q %v", b[:k], err)
		}
	}
	// An AF_INET6 UDP socket may send to an AF_INET address (Linux's udpv6_sendmsg).
	cl := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	if _, err := cl.SendTo([]byte("v4"), 0, Inet("127.0.0.1", port)); err != nil {
		t.Fatal(err)
	}
	if k, _, err := srv.RecvFrom(b, 0); err != nil || string(b[:k]) != "v4" {
		t.Fatal(err)
	}
	// V6ONLY: no IPv4 in, ENETUNREACH out.
	o := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	o.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
	_, err := o.SendTo([]byte("x"), 0, Inet6("::ffff:127.0.0.1", port))
	errIs(t, "V6ONLY to mapped", err, syscall.ENETUNREACH)
}

func TestInet6Options(t *testing.T) {
	n := newPair6(t).a
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	for _, c := range []struct {
		name, set, want int
	}{
		{IPV6_UNICAST_HOPS, 5, 5},
		{IPV6_MULTICAST_HOPS, 7, 7},
		{IPV6_MULTICAST_LOOP, 0, 0},
		{IPV6_TCLASS, 0xb8, 0xb8},
		{IPV6_V6ONLY, 1, 1},
	} {
		if err := s.SetSockOpt(IPPROTO_IPV6, c.name, c.set); err != nil {
			t.Fatalf("set %d: %v", c.name, err)
		}
		if v, err := s.GetSockOpt(IPPROTO_IPV6, c.name); err != nil || v != c.want {
			t.Errorf("get %d: %v %v", c.name, v, err)
		}
	}
	errIs(t, "hops 256", s.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 256), syscall.EINVAL)
	errIs(t, "loop 2", s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 2), syscall.EINVAL)
	errIs(t, "checksum on UDP", s.SetSockOpt(IPPROTO_IPV6, IPV6_CHECKSUM, 2), syscall.ENOPROTOOPT)
	errIs(t, "multicast if unknown", s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_IF, 99), syscall.ENODEV)
	errIs(t, "unknown option", s.SetSockOpt(IPPROTO_IPV6, 999, 1), syscall.ENOPROTOOPT)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::1:2"), Interface: 0}); err != nil {
		t.Fatal(err)
	}
	errIs(t, "join twice", s.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::1:2")}), syscall.EADDRINUSE)
	errIs(t, "join unicast", s.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: netip.IPv6Loopback()}), syscall.EINVAL)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_LEAVE_GROUP, IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::1:2")}); err != nil {
		t.Fatal(err)
	}
	errIs(t, "leave twice", s.SetSockOpt(IPPROTO_IPV6, IPV6_LEAVE_GROUP, IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::1:2")}), syscall.EADDRNOTAVAIL)
	ts := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := ts.SetSockOpt(IPPROTO_IPV6, IPV6_TCLASS, 0x20); err != nil {
		t.Fatal(err)
	}
	if v, _ := ts.GetSockOpt(IPPROTO_IPV6, IPV6_TCLASS); v != 0x20 {
		t.Errorf("stream tclass %v", v)
	}
}

func TestInet6PingAndRaw(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	p := mustSocket(t, n, AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)
	timeout(t, p)
	echo := []byte{128, 0, 0, 0, 0, 0, 0, 1, 'h', 'i'}
	if _, err := p.SendTo(echo, 0, Inet6("::1", 0)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	k, from, err := p.RecvFrom(b, 0)
	if err != nil || k != 10 || b[0] != 129 || string(b[8:k]) != "hi" {
		t.Fatalf("ping6: % x %v", b[:k], err)
	}
	if from.(*SockaddrInet).AddrPort.Addr() != netip.IPv6Loopback() {
		t.Fatalf("from %v", from)
	}
	_, err = p.SendTo([]byte{8, 0, 0, 0, 0, 0, 0, 1}, 0, Inet6("::1", 0))
	errIs(t, "ICMPv4 echo on a ping6 socket", err, syscall.EINVAL)

	// Raw ICMPv6 with ICMP6_FILTER: echo replies blocked, requests pass.
	r := mustSocket(t, n, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)
	timeout(t, r)
	var f ICMP6Filter
	f[129>>5] |= 1 << (129 & 31)
	if err := r.SetSockOpt(IPPROTO_ICMPV6, ICMP6_FILTER, f); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetSockOpt(IPPROTO_IPV6, IPV6_CHECKSUM); v != 2 {
		t.Errorf("ICMPv6 raw checksum offset %v, want 2", v)
	}
	errIs(t, "change ICMPv6 checksum", r.SetSockOpt(IPPROTO_IPV6, IPV6_CHECKSUM, -1), syscall.EINVAL)
	// The raw socket sends an echo request; the stack fills the checksum.
	if _, err := r.SendTo([]byte{128, 0, 0, 0, 0x12, 0x34, 0, 1}, 0, Inet6("::1", 0)); err != nil {
		t.Fatal(err)
	}
	k, _, err = r.RecvFrom(b, 0)
	if err != nil || b[0] != 128 {
		t.Fatalf("raw got % x %v", b[:k], err)
	}
	// The reply (129) was filtered: nothing more.
	r.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, 50*time.Millisecond)
	if _, _, err := r.RecvFrom(b, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("filtered echo reply delivered: %v", err)
	}

	// Raw IPv6 with IPV6_CHECKSUM on another protocol.
	rs := mustSocket(t, n, AF_INET6, SOCK_RAW, 253)
	rr := mustSocket(t, n, AF_INET6, SOCK_RAW, 253)
	timeout(t, rr)
	errIs(t, "odd offset", rs.SetSockOpt(IPPROTO_IPV6, IPV6_CHECKSUM, 1), syscall.EINVAL)
	for _, s := range []*Socket{rs, rr} {
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_CHECKSUM, 4); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rs.SendTo([]byte("ab\x00\x00\x00\x00payload"), 0, Inet6("::1", 0)); err != nil {
		t.Fatal(err)
	}
	k, _, err = rr.RecvFrom(b, 0)
	if err != nil || !bytes.HasSuffix(b[:k], []byte("payload")) || b[4] == 0 && b[5] == 0 {
		t.Fatalf("checksummed raw: % x %v", b[:k], err)
	}
}

// Two hosts over a pipe: TCP and a 4,000-byte UDP datagram in fragments
// over IPv6, with real neighbour discovery in between.
func TestInet6PairTCPAndFragments(t *testing.T) {
	p := newPair6(t)
	l := mustSocket(t, p.b, AF_INET6, SOCK_STREAM, 0)
	l.Bind(Inet6("::", 7000))
	l.Listen(4)
	c := mustSocket(t, p.a, AF_INET6, SOCK_STREAM, 0)
	if err := c.Connect(Inet6(v6B.String(), 7000)); err != nil {
		t.Fatal(err)
	}
	a, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if from.(*SockaddrInet).AddrPort.Addr() != v6A {
		t.Fatalf("peer %v", from)
	}
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	go func() {
		c.Send(data, 0)
		c.Shutdown(1)
	}()
	timeout(t, a)
	var got []byte
	buf := make([]byte, 65536)
	for {
		k, err := a.Recv(buf, 0)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
		got = append(got, buf[:k]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	// 1500 - 40 - 20 = 1440, less 12 bytes of timestamps: 1428, what
	// Linux reports for IPv6 (1448 for IPv4).
	if v, err := c.GetSockOpt(SOL_TCP, TCP_MAXSEG); err != nil || v != 1428 {
		t.Errorf("MSS over IPv6 on a 1500 link: %v %v, want 1428", v, err)
	}

	u := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	u.Bind(Inet6("::", 7001))
	timeout(t, u)
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	big := bytes.Repeat([]byte{0x5a}, 4000)
	if _, err := s.SendTo(big, 0, Inet6(v6B.String(), 7001)); err != nil {
		t.Fatal(err)
	}
	k, _, err := u.RecvFrom(buf, 0)
	if err != nil || !bytes.Equal(buf[:k], big) {
		t.Fatalf("4000-byte datagram: %d %v", k, err)
	}
	if p.sa.Stats().IP6.FragCreates.Load() < 3 || p.sb.Stats().IP.ReasmOKs.Load() < 1 {
		t.Fatal("not fragmented and reassembled")
	}
	// Link-local with a scope id.
	ll := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	var bll netip.Addr
	for _, x := range p.sb.NICByName("eth0").Addrs6() {
		if x.Prefix.Addr().IsLinkLocalUnicast() {
			bll = x.Prefix.Addr()
		}
	}
	if _, err := ll.SendTo([]byte("scoped"), 0, Inet6(bll.WithZone("eth0").String(), 7001)); err != nil {
		t.Fatal(err)
	}
	k, from, err = u.RecvFrom(buf, 0)
	if err != nil || string(buf[:k]) != "scoped" {
		t.Fatal(err)
	}
	if z := from.(*SockaddrInet).AddrPort.Addr().Zone(); z != "eth0" {
		t.Fatalf("scope id %q in %v", z, from)
	}
}

// The tutorials' dual-stack server loop: getaddrinfo(None, port,
// AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE), bind the first that works.
func TestInet6TutorialLoop(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	ais, err := n.GetAddrInfo("", "8080", AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE)
	if err != nil {
		t.Fatal(err)
	}
	fams := map[int]bool{}
	for _, ai := range ais {
		fams[ai.Family] = true
	}
	if !fams[AF_INET] || !fams[AF_INET6] {
		t.Fatalf("families %v", fams)
	}
	var bound []*Socket
	for _, ai := range ais {
		s, err := n.Socket(ai.Family, ai.Type, ai.Proto)
		if err != nil {
			t.Fatalf("socket(%d): %v", ai.Family, err)
		}
		defer s.Close()
		if ai.Family == AF_INET6 {
			s.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
		}
		if err := s.Bind(ai.Addr); err != nil {
			t.Fatalf("bind %v: %v", ai.Addr, err)
		}
		if err := s.Listen(4); err != nil {
			t.Fatal(err)
		}
		bound = append(bound, s)
	}
	eq6 := len(bound)
	if eq6 != 2 {
		t.Fatalf("%d listeners", eq6)
	}
}

// getnameinfo shows a v4-mapped address mapped and a scope id, as glibc.
func TestInet6NameInfo(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	for in, want := range map[string]string{"::ffff:127.0.0.1": "::ffff:127.0.0.1", "fe80::1%lo": "fe80::1%lo", "::1": "::1"} {
		h, _, err := n.GetNameInfo(Inet6(in, 80), NI_NUMERICHOST)
		if err != nil || h != want {
			t.Errorf("%s: %q %v", in, h, err)
		}
	}
}

// IPV6_RECVPKTINFO / IPV6_RECVHOPLIMIT / IPV6_RECVTCLASS through RecvMsg6.
func TestInet6RecvPktInfo(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	srv := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	srv.Bind(Inet6("::", 0))
	timeout(t, srv)
	port := int(mustName(t, srv).Port())
	for _, o := range []int{IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS} {
		if err := srv.SetSockOpt(IPPROTO_IPV6, o, 1); err != nil {
			t.Fatal(err)
		}
		if v, _ := srv.GetSockOpt(IPPROTO_IPV6, o); v != 1 {
			t.Fatalf("option %d reads %v", o, v)
		}
	}
	cl := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	cl.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7)
	cl.SetSockOpt(IPPROTO_IPV6, IPV6_TCLASS, 0x28)
	cl.SendTo([]byte("info"), 0, Inet6("::1", port))
	b := make([]byte, 2)
	k, rfl, from, info, err := srv.RecvMsg6(b, 0)
	if err != nil || k != 2 || rfl&MSG_TRUNC == 0 || from == nil {
		t.Fatalf("%d %x %v %v", k, rfl, from, err)
	}
	if !info.HasPktInfo || info.Addr != netip.IPv6Loopback() || !info.HasHopLimit || info.HopLimit != 7 || !info.HasTClass || info.TClass != 0x28 {
		t.Fatalf("info %+v", info)
	}
	// IPv4 on the dual-stack socket: the destination comes back v4-mapped.
	c4 := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	c4.SendTo([]byte("v4"), 0, Inet("127.0.0.1", port))
	_, _, _, info, err = srv.RecvMsg6(b, 0)
	if err != nil || info.Addr != netip.MustParseAddr("::ffff:127.0.0.1") {
		t.Fatalf("v4 info %+v %v", info, err)
	}
	_, _, _, _, err = c4.RecvMsg6(b, 0)
	errIs(t, "RecvMsg6 on AF_INET", err, syscall.EOPNOTSUPP)
}

// IPv6 multicast between two hosts: B joins a link-local group on its
// NIC (IPV6_JOIN_GROUP with the ifindex), A sends to group%eth0.
func TestInet6Multicast(t *testing.T) {
	p := newPair6(t)
	g := netip.MustParseAddr("ff02::4242")
	r := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if err := r.Bind(Inet6("::", 5000)); err != nil {
		t.Fatal(err)
	}
	timeout(t, r)
	idx := p.sb.NICByName("eth0").ID()
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: g, Interface: idx}); err != nil {
		t.Fatal(err)
	}
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_IF, p.sa.NICByName("eth0").ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("to the group"), 0, Inet6(g.String()+"%eth0", 5000)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	k, from, err := r.RecvFrom(b, 0)
	if err != nil || string(b[:k]) != "to the group" {
		t.Fatalf("%q %v", b[:k], err)
	}
	if a := from.(*SockaddrInet).AddrPort.Addr(); !a.IsLinkLocalUnicast() || a.Zone() != "eth0" {
		t.Fatalf("from %v", from)
	}
	// After leaving, the group's datagrams are not for this host.
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_LEAVE_GROUP, IPv6Mreq{Multiaddr: g, Interface: idx}); err != nil {
		t.Fatal(err)
	}
	dropped := func() uint64 { return p.sb.Stats().IP6.InAddrErrors.Load() + p.sb.Stats().Link.InNotForUs.Load() }
	before := dropped()
	s.SendTo([]byte("again"), 0, Inet6(g.String()+"%eth0", 5000))
	// The drop is counted on B's receive goroutine: wait for the count
	// (bounded), then the socket must have nothing.
	for deadline := time.Now().Add(5 * time.Second); dropped() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the datagram after leaving was not dropped and counted")
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := r.RecvFrom(b, MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("received after leaving: %v", err)
	}
}

// Linux's answers for the address cases the inet6 conformance table
// pinned: bound v4-mapped then connect to IPv6 (EAFNOSUPPORT, and no
// crash), bind(AF_UNSPEC) (EINVAL), a TCP multicast bind (EINVAL), UDP
// connect with sockaddr_in on V6ONLY (EAFNOSUPPORT) or to a link-local
// address without scope (EINVAL), a scope id on a global address ignored.
func TestInet6AddressRules(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	c := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := c.Bind(Inet6("::ffff:127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	errIs(t, "mapped-bound connect to ::1", c.Connect(Inet6("::1", 9)), syscall.EAFNOSUPPORT)
	errIs(t, "bind AF_UNSPEC", mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0).Bind(Unspec{}), syscall.EINVAL)
	errIs(t, "tcp multicast bind", mustSocket(t, n, AF_INET6, SOCK_STREAM, 0).Bind(Inet6("ff02::1", 0)), syscall.EINVAL)
	u := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	u.SetSockOpt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
	errIs(t, "sockaddr_in on V6ONLY", u.Connect(Inet("127.0.0.1", 9)), syscall.EAFNOSUPPORT)
	errIs(t, "link-local without scope", mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0).Connect(Inet6("fe80::1", 9)), syscall.EINVAL)
	if err := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0).Bind(Inet6("::1%9999", 0)); err != nil {
		t.Fatalf("scope id on ::1: %v", err)
	}
}

// IPV6_MTU: the connected path's MTU, ENOTCONN unconnected; a value
// below 1280 refused.
func TestInet6MTUOption(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	u := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	_, err := u.GetSockOpt(IPPROTO_IPV6, IPV6_MTU)
	errIs(t, "unconnected", err, syscall.ENOTCONN)
	errIs(t, "1279", u.SetSockOpt(IPPROTO_IPV6, IPV6_MTU, 1279), syscall.EINVAL)
	if err := u.SetSockOpt(IPPROTO_IPV6, IPV6_MTU, 1280); err != nil {
		t.Fatal(err)
	}
	u.Connect(Inet6("::1", 9))
	if v, err := u.GetSockOpt(IPPROTO_IPV6, IPV6_MTU); err != nil || v != 65536 {
		t.Fatalf("connected to ::1: %v %v", v, err)
	}
}
