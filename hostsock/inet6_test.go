package hostsock

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

var lo6 = socket.Inet6("::1", 0)

func socket6(t *testing.T, typ, proto int) *Socket {
	t.Helper()
	s, err := New().Socket(socket.AF_INET6, typ, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(5 * time.Second)
	return s
}

func bound6(t *testing.T, s *Socket, a socket.Sockaddr) netip.AddrPort {
	t.Helper()
	if err := s.Bind(a); err != nil {
		t.Fatalf("bind %v: %v", a, err)
	}
	n, err := s.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	return n.(*socket.SockaddrInet).AddrPort
}

func loIndex(t *testing.T) int {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

func wantErr(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestInet6UDPOnLoopback(t *testing.T) {
	a, b := socket6(t, socket.SOCK_DGRAM, 0), socket6(t, socket.SOCK_DGRAM, 0)
	bp := bound6(t, b, lo6)
	if bp.Addr() != netip.IPv6Loopback() || bp.Port() == 0 {
		t.Fatalf("getsockname %v", bp)
	}
	if err := a.Connect(socket.InetAddr(bp)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send([]byte("six"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, _, from, err := b.RecvMsg(buf, 0)
	if err != nil || string(buf[:n]) != "six" {
		t.Fatalf("recv %q %v", buf[:n], err)
	}
	an, _ := a.GetSockName()
	if from.String() != an.String() || from.Family() != socket.AF_INET6 {
		t.Fatalf("from %v, sender %v", from, an)
	}
	pn, err := a.GetPeerName()
	if err != nil || pn.(*socket.SockaddrInet).AddrPort != bp {
		t.Fatalf("getpeername %v %v", pn, err)
	}
}

// An AF_INET6 socket on :: takes IPv4 peers, shown v4-mapped; a
// v4-mapped destination goes out as IPv4.
func TestInet6DualStackMapped(t *testing.T) {
	srv := socket6(t, socket.SOCK_DGRAM, 0)
	sp := bound6(t, srv, socket.Inet6("::", 0))
	v4 := mustSocket(t, socket.SOCK_DGRAM)
	if err := v4.Bind(lo); err != nil {
		t.Fatal(err)
	}
	if _, err := v4.SendTo([]byte("from4"), 0, socket.Inet("127.0.0.1", int(sp.Port()))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, from, err := srv.RecvFrom(buf, 0)
	if err != nil || string(buf[:n]) != "from4" {
		t.Fatalf("recv %q %v", buf[:n], err)
	}
	fa := from.(*socket.SockaddrInet).AddrPort
	if !fa.Addr().Is4In6() || fa.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("from %v, want ::ffff:127.0.0.1", fa)
	}
	// Reply to the mapped address: it must arrive at the IPv4 socket.
	if _, err := srv.SendTo([]byte("back"), 0, from); err != nil {
		t.Fatal(err)
	}
	v4.SetTimeout(5 * time.Second)
	n, err = v4.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "back" {
		t.Fatalf("v4 recv %q %v", buf[:n], err)
	}
	// With IPV6_V6ONLY the mapped destination is refused.
	only := socket6(t, socket.SOCK_DGRAM, 0)
	if err := only.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); err != nil {
		t.Fatal(err)
	}
	_, err = only.SendTo([]byte("x"), 0, from)
	wantErr(t, "v6only sendto mapped", err, syscall.ENETUNREACH)
}

// IPV6_V6ONLY decides whether [::]:p also takes 0.0.0.0:p.
func TestInet6V6OnlyBindConflict(t *testing.T) {
	for _, only := range []int{0, 1} {
		s6 := socket6(t, socket.SOCK_STREAM, 0)
		v, err := s6.GetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
		if err != nil || v != 0 {
			t.Fatalf("default V6ONLY %d %v", v, err)
		}
		if err := s6.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, only); err != nil {
			t.Fatal(err)
		}
		p := bound6(t, s6, socket.Inet6("::", 0))
		s4 := mustSocket(t, socket.SOCK_STREAM)
		err = s4.Bind(socket.Inet("0.0.0.0", int(p.Port())))
		if only == 0 {
			wantErr(t, "bind 0.0.0.0 beside dual-stack ::", err, syscall.EADDRINUSE)
		} else if err != nil {
			t.Errorf("bind 0.0.0.0 beside v6only ::: %v", err)
		}
		// Bound: the option is fixed now.
		wantErr(t, "V6ONLY after bind", s6.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1-only), syscall.EINVAL)
	}
}

// A plain sockaddr_in given to an AF_INET6 socket's bind is too short.
func TestInet6BindInetAddress(t *testing.T) {
	s := socket6(t, socket.SOCK_DGRAM, 0)
	wantErr(t, "bind sockaddr_in", s.Bind(socket.Inet("127.0.0.1", 0)), syscall.EINVAL)
	// v4-mapped is sockaddr_in6 and fine.
	p := bound6(t, s, socket.Inet6("::ffff:127.0.0.1", 0))
	if !p.Addr().Is4In6() {
		t.Fatalf("name %v", p)
	}
}

func TestInet6ScopeID(t *testing.T) {
	s := socket6(t, socket.SOCK_DGRAM, 0)
	wantErr(t, "bind fe80::1 without scope", s.Bind(socket.Inet6("fe80::1", 0)), syscall.EINVAL)
	wantErr(t, "bind fe80::1%nosuchif0", s.Bind(socket.Inet6("fe80::1%nosuchif0", 0)), syscall.ENODEV)
	wantErr(t, "bind fe80::1%999999", s.Bind(socket.Inet6("fe80::1%999999", 0)), syscall.ENODEV)
	wantErr(t, "bind fe80::1%lo", s.Bind(socket.Inet6("fe80::1%lo", 0)), syscall.EADDRNOTAVAIL)
	// A scope on a global address is ignored.
	p := bound6(t, s, socket.Inet6("::1%lo", 0))
	if p.Addr() != netip.IPv6Loopback() {
		t.Fatalf("name %v", p)
	}
	// lo has no link-local addresses and no route to fe80::/64.
	c := socket6(t, socket.SOCK_DGRAM, 0)
	wantErr(t, "connect fe80::1%lo", c.Connect(socket.Inet6("fe80::1%lo", 9)), syscall.ENETUNREACH)
	id, err := scopeID("lo")
	if err != nil || int(id) != loIndex(t) {
		t.Fatalf("scopeID(lo) %d %v", id, err)
	}
	if zoneName(id) != "lo" {
		t.Fatalf("zoneOf(%d) %q", id, zoneName(id))
	}
}

// The flow information reaches the kernel and comes back: a socket
// with IPV6_FLOWINFO_SEND keeps the label it connected with and reports
// it in getpeername; without the option the field is ignored.
func TestInet6FlowInfo(t *testing.T) {
	srv := socket6(t, socket.SOCK_DGRAM, 0)
	sp := bound6(t, srv, lo6)
	c := socket6(t, socket.SOCK_DGRAM, 0)
	if err := c.Connect(&SockaddrInet6{AddrPort: sp, FlowInfo: 0x12345}); err != nil {
		t.Fatalf("connect with flowinfo, no FLOWINFO_SEND: %v", err)
	}
	if pn, err := c.GetPeerName(); err != nil || pn.String() != socket.InetAddr(sp).String() {
		t.Fatalf("getpeername without FLOWINFO_SEND %v %v", pn, err)
	}
	c2 := socket6(t, socket.SOCK_DGRAM, 0)
	if err := c2.SetSockOptInt(socket.IPPROTO_IPV6, IPV6_FLOWINFO_SEND, 1); err != nil {
		t.Fatal(err)
	}
	if err := c2.Connect(&SockaddrInet6{AddrPort: sp, FlowInfo: 0x12345}); err != nil {
		t.Fatal(err)
	}
	pn, err := c2.GetPeerName()
	f, ok := pn.(*SockaddrInet6)
	if err != nil || !ok || f.FlowInfo != 0x12345 || f.AddrPort != sp {
		t.Fatalf("getpeername with FLOWINFO_SEND %#v %v", pn, err)
	}
	if f.String() != socket.InetAddr(sp).String()+" flowinfo 0x12345" {
		t.Fatalf("String %q", f.String())
	}
}

func TestInet6IntOptions(t *testing.T) {
	u := socket6(t, socket.SOCK_DGRAM, 0)
	get := func(name int) int {
		t.Helper()
		v, err := u.GetSockOptInt(socket.IPPROTO_IPV6, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	set := func(name, v int) error { return u.SetSockOptInt(socket.IPPROTO_IPV6, name, v) }
	if get(socket.IPV6_UNICAST_HOPS) != 64 || get(socket.IPV6_MULTICAST_HOPS) != 1 || get(socket.IPV6_MULTICAST_LOOP) != 1 {
		t.Fatalf("defaults hops %d mhops %d loop %d", get(socket.IPV6_UNICAST_HOPS), get(socket.IPV6_MULTICAST_HOPS), get(socket.IPV6_MULTICAST_LOOP))
	}
	if err := set(socket.IPV6_UNICAST_HOPS, 7); err != nil || get(socket.IPV6_UNICAST_HOPS) != 7 {
		t.Fatalf("hops 7: %v", err)
	}
	wantErr(t, "hops 256", set(socket.IPV6_UNICAST_HOPS, 256), syscall.EINVAL)
	wantErr(t, "hops -2", set(socket.IPV6_UNICAST_HOPS, -2), syscall.EINVAL)
	wantErr(t, "loop 2", set(socket.IPV6_MULTICAST_LOOP, 2), syscall.EINVAL)
	if err := set(socket.IPV6_MULTICAST_IF, loIndex(t)); err != nil || get(socket.IPV6_MULTICAST_IF) != loIndex(t) {
		t.Fatalf("multicast if: %v", err)
	}
	wantErr(t, "multicast if 999999", set(socket.IPV6_MULTICAST_IF, 999999), syscall.ENODEV)
	if err := set(socket.IPV6_TCLASS, 0x28); err != nil || get(socket.IPV6_TCLASS) != 0x28 {
		t.Fatalf("tclass: %v", err)
	}
	if err := set(IPV6_RECVPKTINFO, 1); err != nil || get(IPV6_RECVPKTINFO) != 1 {
		t.Fatalf("recvpktinfo: %v", err)
	}
	// The UDP socket has no IPV6_CHECKSUM (the checksum is UDP's own).
	wantErr(t, "checksum on udp", set(socket.IPV6_CHECKSUM, 2), syscall.ENOPROTOOPT)
	wantErr(t, "join with an int", set(socket.IPV6_JOIN_GROUP, 1), syscall.EINVAL)
	wantErr(t, "filter on udp", u.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, socket.ICMP6Filter{}), syscall.ENOPROTOOPT)
}

// The ancillary data shows the options at work on the packet: hop
// limit and traffic class set on the sender, destination and interface
// of the receiver.
func TestInet6Ancillary(t *testing.T) {
	r := socket6(t, socket.SOCK_DGRAM, 0)
	for _, o := range []int{IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS} {
		if err := r.SetSockOptInt(socket.IPPROTO_IPV6, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	rp := bound6(t, r, socket.Inet6("::", 0))
	s := socket6(t, socket.SOCK_DGRAM, 0)
	if err := s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("anc"), 0, socket.Inet6("::1", int(rp.Port()))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, _, anc, err := r.RecvMsg6(buf, 0)
	if err != nil || string(buf[:n]) != "anc" {
		t.Fatalf("recv %q %v", buf[:n], err)
	}
	want := Ancillary6{Dst: netip.IPv6Loopback(), Ifindex: loIndex(t), HopLimit: 7, TClass: 0x28}
	if anc != want {
		t.Fatalf("ancillary %+v, want %+v", anc, want)
	}
	// Without the options nothing is reported.
	r2 := socket6(t, socket.SOCK_DGRAM, 0)
	p2 := bound6(t, r2, lo6)
	if _, err := s.SendTo([]byte("plain"), 0, socket.InetAddr(p2)); err != nil {
		t.Fatal(err)
	}
	_, _, _, anc, err = r2.RecvMsg6(buf, 0)
	if err != nil || anc != (Ancillary6{HopLimit: -1, TClass: -1}) {
		t.Fatalf("no options: %+v %v", anc, err)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("raw IPv6 sockets need root (os.Geteuid() != 0)")
	}
}

// ICMP6_FILTER decides which ICMPv6 types a raw socket sees; the kernel
// keeps the filter as given.
func TestInet6ICMP6Filter(t *testing.T) {
	needRoot(t)
	r := socket6(t, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
	bound6(t, r, lo6)
	var f socket.ICMP6Filter
	for i := range f {
		f[i] = ^uint32(0) // block everything ...
	}
	f[128/32] &^= 1 << (128 % 32) // ... but echo request
	if err := r.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER)
	if err != nil || got.(socket.ICMP6Filter) != f {
		t.Fatalf("filter %v %v", got, err)
	}
	// IPV6_CHECKSUM is fixed at offset 2 on ICMPv6 sockets.
	v, err := r.GetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
	if err != nil || v != 2 {
		t.Fatalf("IPV6_CHECKSUM on icmpv6 %d %v", v, err)
	}
	wantErr(t, "IPV6_CHECKSUM set on icmpv6", r.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4), syscall.EINVAL)
	s := socket6(t, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
	// A type-129 (echo reply, filtered) then a type-128 (passed); the
	// kernel fills the checksum.
	for _, typ := range []byte{129, 128} {
		msg := []byte{typ, 0, 0, 0, 0, 1, 0, 1, 'f', 'i', 'l'}
		if _, err := s.SendTo(msg, 0, lo6); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	n, err := r.Recv(buf, 0)
	if err != nil || n != 11 || buf[0] != 128 || buf[2] == 0 && buf[3] == 0 {
		t.Fatalf("recv %x %v (want the echo request only, checksummed)", buf[:max(n, 0)], err)
	}
}

// IPV6_CHECKSUM on a raw socket of another protocol: the kernel fills
// the checksum at the offset on send and checks it on receive.
func TestInet6RawChecksum(t *testing.T) {
	needRoot(t)
	const proto = 253 // RFC 3692 experimentation
	r := socket6(t, socket.SOCK_RAW, proto)
	s := socket6(t, socket.SOCK_RAW, proto)
	bound6(t, r, lo6)
	if v, err := s.GetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM); err != nil || v != -1 {
		t.Fatalf("default IPV6_CHECKSUM %d %v", v, err)
	}
	wantErr(t, "odd offset", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 3), syscall.EINVAL)
	if err := s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte{1, 2, 0, 0, 5, 6}, 0, lo6); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := r.Recv(buf, 0)
	if err != nil || n != 6 || buf[2] == 0 && buf[3] == 0 {
		t.Fatalf("recv %x %v (want the checksum filled in)", buf[:max(n, 0)], err)
	}
}

func TestInet6TCPMappedPeer(t *testing.T) {
	l := socket6(t, socket.SOCK_STREAM, 0)
	lp := bound6(t, l, socket.Inet6("::", 0))
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	c := mustSocket(t, socket.SOCK_STREAM)
	if err := c.Connect(socket.Inet("127.0.0.1", int(lp.Port()))); err != nil {
		t.Fatal(err)
	}
	a, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if fa := from.(*socket.SockaddrInet).AddrPort; !fa.Addr().Is4In6() {
		t.Fatalf("accept from %v, want v4-mapped", fa)
	}
	ln, _ := a.GetSockName()
	if ln.String() != "[::ffff:127.0.0.1]:"+itoa(int(lp.Port())) {
		t.Fatalf("accepted getsockname %v", ln)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
