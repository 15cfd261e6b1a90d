package socket

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

var v4B = netip.MustParseAddr("10.0.0.2")

// rawHeaders returns B's raw sockets for proto: IPv4 (whole IP header)
// and IPv6 (hop limit and traffic class by ancillary data).
func rawHeaders(t *testing.T, p *pair, proto int) (r4, r6 *Socket) {
	t.Helper()
	r4 = mustSocket(t, p.b, AF_INET, SOCK_RAW, proto)
	r6 = mustSocket(t, p.b, AF_INET6, SOCK_RAW, proto)
	timeout(t, r4)
	timeout(t, r6)
	r6.SetSockOpt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
	r6.SetSockOpt(IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
	return r4, r6
}

// ttlTOS4 reads IPv4 packets on r4 up to the first whose payload's
// TCP flags are want (0: the first packet); it returns its TTL and TOS.
func ttlTOS4(t *testing.T, r4 *Socket, want uint8) (int, int) {
	t.Helper()
	b := make([]byte, 2048)
	for {
		n, _, err := r4.RecvFrom(b, 0)
		if err != nil {
			t.Fatalf("raw IPv4: %v", err)
		}
		h := wire.IPv4(b[:n])
		if want == 0 || wire.TCP(h.Payload()).Flags() == want {
			return int(h.TTL()), int(h.TOS())
		}
	}
}

// hopsTClass6 reads IPv6 packets on r6 likewise: hop limit and class.
func hopsTClass6(t *testing.T, r6 *Socket, want uint8) (int, int) {
	t.Helper()
	b := make([]byte, 2048)
	for {
		n, _, _, info, err := r6.RecvMsg6(b, 0)
		if err != nil || !info.HasHopLimit || !info.HasTClass {
			t.Fatalf("raw IPv6: %+v %v", info, err)
		}
		if want == 0 || wire.TCP(b[:n]).Flags() == want {
			return info.HopLimit, info.TClass
		}
	}
}

// TestInet6ApartUDP: a dual-stack UDP socket sends its v4-mapped
// datagrams with IP_TTL / IP_TOS / IP_MULTICAST_TTL and its IPv6 ones
// with IPV6_UNICAST_HOPS / IPV6_TCLASS / IPV6_MULTICAST_HOPS, as Linux:
// the two sets are separate values.
func TestInet6ApartUDP(t *testing.T) {
	p := newPair6(t)
	r4, r6 := rawHeaders(t, p, IPPROTO_UDP)
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	for _, o := range []struct{ level, name, v int }{
		{SOL_IP, IP_TTL, 5}, {IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9},
		{SOL_IP, IP_TOS, 0x10}, {IPPROTO_IPV6, IPV6_TCLASS, 0x28},
	} {
		if err := s.SetSockOpt(o.level, o.name, o.v); err != nil {
			t.Fatal(o, err)
		}
	}
	if _, err := s.SendTo([]byte("v4"), 0, Inet6("::ffff:10.0.0.2", 9)); err != nil {
		t.Fatal(err)
	}
	if ttl, tos := ttlTOS4(t, r4, 0); ttl != 5 || tos != 0x10 {
		t.Fatalf("v4-mapped datagram: ttl %d tos %#x, want IP_TTL 5 and IP_TOS 0x10", ttl, tos)
	}
	if _, err := s.SendTo([]byte("v6"), 0, ap(v6B, 9)); err != nil {
		t.Fatal(err)
	}
	if hops, tc := hopsTClass6(t, r6, 0); hops != 9 || tc != 0x28 {
		t.Fatalf("IPv6 datagram: hop limit %d class %#x, want 9 and 0x28", hops, tc)
	}
}

// TestInet6ApartTCP: likewise for TCP: a dual-stack socket connecting to
// a v4-mapped peer sends with IP_TTL / IP_TOS, one connecting over IPv6
// with IPV6_UNICAST_HOPS / IPV6_TCLASS; a dual-stack listener's IPv4
// children answer with its IP_TTL / IP_TOS from the SYN-ACK on, its IPv6
// children with the IPv6 values; every value reads back as set, and an
// accepted socket inherits them.
func TestInet6ApartTCP(t *testing.T) {
	p := newPair6(t)
	type vals struct{ ttl, hops, tos, tclass int }
	opts := func(v vals) []struct{ level, name, v int } {
		return []struct{ level, name, v int }{
			{SOL_IP, IP_TTL, v.ttl}, {IPPROTO_IPV6, IPV6_UNICAST_HOPS, v.hops},
			{SOL_IP, IP_TOS, v.tos}, {IPPROTO_IPV6, IPV6_TCLASS, v.tclass},
		}
	}
	set := func(s *Socket, v vals) {
		t.Helper()
		for _, o := range opts(v) {
			if err := s.SetSockOpt(o.level, o.name, o.v); err != nil {
				t.Fatal(o, err)
			}
		}
	}
	expect := func(what string, s *Socket, v vals) {
		t.Helper()
		for _, o := range opts(v) {
			if got, err := s.GetSockOptInt(o.level, o.name); err != nil || got != o.v {
				t.Fatalf("%s: getsockopt(%d, %d) = %d %v, want %d", what, o.level, o.name, got, err, o.v)
			}
		}
	}
	listen := func(n *Net, v *vals) (*Socket, int) {
		l := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
		if v != nil {
			set(l, *v)
		}
		if err := l.Bind(ap(netip.IPv6Unspecified(), 0)); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(4); err != nil {
			t.Fatal(err)
		}
		timeout(t, l)
		return l, int(mustName(t, l).Port())
	}

	// Outgoing: the SYN shows which set the connection uses.
	r4, r6 := rawHeaders(t, p, IPPROTO_TCP)
	_, port := listen(p.b, nil)
	cv := vals{5, 9, 0x10, 0x28}
	c4 := mustSocket(t, p.a, AF_INET6, SOCK_STREAM, 0)
	set(c4, cv)
	if err := c4.Connect(Inet6("::ffff:10.0.0.2", port)); err != nil {
		t.Fatal(err)
	}
	if ttl, tos := ttlTOS4(t, r4, wire.TCPFlagSYN); ttl != 5 || tos != 0x10 {
		t.Fatalf("v4-mapped SYN: ttl %d tos %#x, want 5 and 0x10", ttl, tos)
	}
	expect("v4-mapped client", c4, cv)
	// A later IPV6_UNICAST_HOPS is kept, not used on this connection.
	if err := c4.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33); err != nil {
		t.Fatal(err)
	}
	if _, err := c4.Send([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := ttlTOS4(t, r4, wire.TCPFlagACK|wire.TCPFlagPSH); ttl != 5 {
		t.Fatalf("v4-mapped data after IPV6_UNICAST_HOPS 33: ttl %d, want 5", ttl)
	}
	expect("v4-mapped client", c4, vals{5, 33, 0x10, 0x28})
	c6 := mustSocket(t, p.a, AF_INET6, SOCK_STREAM, 0)
	set(c6, cv)
	if err := c6.Connect(ap(v6B, port)); err != nil {
		t.Fatal(err)
	}
	if hops, tc := hopsTClass6(t, r6, wire.TCPFlagSYN); hops != 9 || tc != 0x28 {
		t.Fatalf("IPv6 SYN: hop limit %d class %#x, want 9 and 0x28", hops, tc)
	}
	expect("IPv6 client", c6, cv)

	// Incoming: A's dual-stack listener answers with its IPv4 set to an
	// IPv4 client and with its IPv6 set to an IPv6 one; B's raw sockets
	// see the SYN-ACKs.
	lv := vals{6, 10, 0x20, 0x30}
	l, lport := listen(p.a, &lv)
	b4 := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := b4.Connect(ap(netip.MustParseAddr("10.0.0.1"), lport)); err != nil {
		t.Fatal(err)
	}
	if ttl, tos := ttlTOS4(t, r4, wire.TCPFlagSYN|wire.TCPFlagACK); ttl != 6 || tos != 0x20 {
		t.Fatalf("SYN-ACK to an IPv4 client: ttl %d tos %#x, want the listener's IP_TTL 6 and IP_TOS 0x20", ttl, tos)
	}
	a4, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	expect("accepted IPv4", a4, lv)
	b6 := mustSocket(t, p.b, AF_INET6, SOCK_STREAM, 0)
	if err := b6.Connect(ap(v6A, lport)); err != nil {
		t.Fatal(err)
	}
	if hops, tc := hopsTClass6(t, r6, wire.TCPFlagSYN|wire.TCPFlagACK); hops != 10 || tc != 0x30 {
		t.Fatalf("SYN-ACK to an IPv6 client: hop limit %d class %#x, want 10 and 0x30", hops, tc)
	}
	a6, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	expect("accepted IPv6", a6, lv)
}

// TestInet6ApartMulticast: a dual-stack UDP socket's v4-mapped multicast
// goes out with IP_MULTICAST_TTL, its IPv6 multicast with
// IPV6_MULTICAST_HOPS, as Linux (mc_ttl and mcast_hops).
func TestInet6ApartMulticast(t *testing.T) {
	p := newPair6(t)
	g4, g6 := netip.MustParseAddr("239.1.2.3"), netip.MustParseAddr("ff0e::123")
	// B joins both groups, so that its raw sockets see the datagrams.
	j4 := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := j4.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: g4}); err != nil {
		t.Fatal(err)
	}
	j6 := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if err := j6.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: g6, Interface: 2}); err != nil {
		t.Fatal(err)
	}
	r4, r6 := rawHeaders(t, p, IPPROTO_UDP)
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(SOL_IP, IP_MULTICAST_TTL, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_IF, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("m4"), 0, Inet6("::ffff:"+g4.String(), 9)); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := ttlTOS4(t, r4, 0); ttl != 3 {
		t.Fatalf("v4-mapped multicast: ttl %d, want IP_MULTICAST_TTL 3", ttl)
	}
	if _, err := s.SendTo([]byte("m6"), 0, ap(g6, 9)); err != nil {
		t.Fatal(err)
	}
	if hops, _ := hopsTClass6(t, r6, 0); hops != 7 {
		t.Fatalf("IPv6 multicast: hop limit %d, want IPV6_MULTICAST_HOPS 7", hops)
	}
}
