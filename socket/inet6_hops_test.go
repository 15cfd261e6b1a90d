package socket

import (
	"syscall"
	"testing"
)

// IPV6_UNICAST_HOPS 0 is kept (getsockopt 0) on UDP and TCP, as Linux,
// and the packets leave with hop limit 0 in their header: host B sees
// 0 in the UDP datagram's IPV6_HOPLIMIT and in the TCP segments its raw
// IPv6 TCP socket copies. B accepts them (a host does not check the hop
// limit of packets addressed to it), so the TCP connection completes.
func TestInet6UnicastHopsZero(t *testing.T) {
	p := newPair6(t)
	srv := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if err := srv.Bind(ap(v6B, 0)); err != nil {
		t.Fatal(err)
	}
	timeout(t, srv)
	srv.SetSockOpt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
	port := int(mustName(t, srv).Port())

	cl := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	if err := cl.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 0); err != nil {
		t.Fatal(err)
	}
	if v, _ := cl.GetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS); v != 0 {
		t.Fatalf("UDP hops read %v, want 0", v)
	}
	if _, err := cl.SendTo([]byte("zero"), 0, ap(v6B, port)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	n, _, _, info, err := srv.RecvMsg6(b, 0)
	if err != nil || string(b[:n]) != "zero" || !info.HasHopLimit || info.HopLimit != 0 {
		t.Fatalf("UDP: %q %+v %v, want hop limit 0", b[:n], info, err)
	}
	// -1 restores the default.
	cl.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, -1)
	cl.SendTo([]byte("dflt"), 0, ap(v6B, port))
	if _, _, _, info, err = srv.RecvMsg6(b, 0); err != nil || info.HopLimit != 64 {
		t.Fatalf("UDP default: %+v %v", info, err)
	}
	errIs(t, "hops -2", cl.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, -2), syscall.EINVAL)

	// TCP: a raw IPv6 socket for protocol 6 on B sees every segment.
	raw := mustSocket(t, p.b, AF_INET6, SOCK_RAW, IPPROTO_TCP)
	timeout(t, raw)
	raw.SetSockOpt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
	l := mustSocket(t, p.b, AF_INET6, SOCK_STREAM, 0)
	l.Bind(ap(v6B, 0))
	l.Listen(1)
	c := mustSocket(t, p.a, AF_INET6, SOCK_STREAM, 0)
	if err := c.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 0); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.GetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS); v != 0 {
		t.Fatalf("TCP hops read %v, want 0", v)
	}
	if err := c.Connect(mustSockName(t, l)); err != nil {
		t.Fatalf("connect with hop limit 0: %v", err)
	}
	if _, _, _, info, err = raw.RecvMsg6(b, 0); err != nil || info.HopLimit != 0 {
		t.Fatalf("TCP SYN: %+v %v, want hop limit 0", info, err)
	}
	// IP_TTL 0 stays refused (IPv4's rule).
	t4 := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	errIs(t, "IP_TTL 0", t4.SetSockOpt(SOL_IP, IP_TTL, 0), syscall.EINVAL)
	u4 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	errIs(t, "udp IP_TTL 0", u4.SetSockOpt(SOL_IP, IP_TTL, 0), syscall.EINVAL)
}

func mustSockName(t *testing.T, s *Socket) Sockaddr {
	t.Helper()
	a, err := s.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
