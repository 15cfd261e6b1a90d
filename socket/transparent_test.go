package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// tproxyPair is a pair whose host A routes the documentation prefixes
// 198.51.100.0/24 and 203.0.113.0/24 (and 2001:db8:77::/48 when v6)
// through host B, the proxy.
func tproxyPair(t *testing.T) *pair {
	t.Helper()
	p := newPair(t, 1500, stack.Options{})
	nic := p.sa.NICByName("eth0")
	for _, pf := range []string{"198.51.100.0/24", "203.0.113.0/24"} {
		p.sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix(pf), Gateway: addrB, NIC: nic})
	}
	return p
}

var (
	origA = netip.MustParseAddrPort("198.51.100.7:443")
	origB = netip.MustParseAddrPort("203.0.113.9:80")
)

func divertTCP(t *testing.T, s *stack.Stack, toPort uint16) {
	t.Helper()
	for _, pf := range []string{"198.51.100.0/24", "203.0.113.0/24"} {
		if err := s.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP,
			Dst: netip.MustParsePrefix(pf), ToPort: toPort}); err != nil {
			t.Fatal(err)
		}
	}
}

func transparentListener(t *testing.T, n *Net, port int, transparent bool) *Socket {
	t.Helper()
	l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if transparent {
		if err := l.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Bind(ap(netip.IPv4Unspecified(), port)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(16); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	return l
}

// TestTransparentTCP: one transparent listener takes connections to two
// foreign addresses; each accepted socket's name is the address the
// client dialled, data flows both ways, and the client's peer is that
// address (the replies left from it).
func TestTransparentTCP(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9000)
	l := transparentListener(t, p.b, 9000, true)
	if v, err := l.GetSockOptInt(SOL_IP, IP_TRANSPARENT); err != nil || v != 1 {
		t.Fatalf("getsockopt IP_TRANSPARENT = %d, %v", v, err)
	}
	for _, dst := range []netip.AddrPort{origA, origB} {
		c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
		c.SetTimeout(5 * time.Second)
		if err := c.Connect(InetAddr(dst)); err != nil {
			t.Fatalf("connect %v: %v", dst, err)
		}
		s, peer, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s.SetTimeout(5 * time.Second)
		name, _ := s.GetSockName()
		if got := name.(*SockaddrInet).AddrPort; got != dst {
			t.Fatalf("accepted socket's name %v, want the original destination %v", got, dst)
		}
		if od, err := s.OrigDst(); err != nil || od != dst {
			t.Fatalf("OrigDst %v %v", od, err)
		}
		cname, _ := c.GetSockName()
		if peer.(*SockaddrInet).AddrPort != cname.(*SockaddrInet).AddrPort {
			t.Fatalf("accept's peer %v, client is %v", peer, cname)
		}
		if v, _ := s.GetSockOptInt(SOL_IP, IP_TRANSPARENT); v != 1 {
			t.Fatalf("accepted socket IP_TRANSPARENT %d, want inherited 1", v)
		}
		cpeer, _ := c.GetPeerName()
		if cpeer.(*SockaddrInet).AddrPort != dst {
			t.Fatalf("client's peer %v, want %v", cpeer, dst)
		}
		msg := []byte("to " + dst.String())
		if err := c.SendAll(msg, 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := s.Recv(buf[:len(msg)], MSG_WAITALL)
		if err != nil || string(buf[:n]) != string(msg) {
			t.Fatalf("proxy read %q %v", buf[:n], err)
		}
		reply := []byte("from " + dst.String())
		if err := s.SendAll(reply, 0); err != nil {
			t.Fatal(err)
		}
		n, err = c.Recv(buf[:len(reply)], MSG_WAITALL)
		if err != nil || string(buf[:n]) != string(reply) {
			t.Fatalf("client read %q %v", buf[:n], err)
		}
		s.Close()
		c.Close()
	}
	st := p.sb.Stats()
	if st.TProxy.DivertedTCP.Load() == 0 {
		t.Fatal("DivertedTCP not counted")
	}
}

// TestTransparentNoRule: without a rule, a SYN to a foreign address is
// dropped and counted as before (not forwarding), whatever listens.
func TestTransparentNoRule(t *testing.T) {
	p := tproxyPair(t)
	transparentListener(t, p.b, 443, true)
	before := p.sb.Stats().IP.InAddrErrors.Load()
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(0)
	if err := c.Connect(InetAddr(origA)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	waitFor(t, func() bool { return p.sb.Stats().IP.InAddrErrors.Load() > before })
	if p.sb.Stats().TProxy.DivertedTCP.Load() != 0 || p.sb.TCP.Stats().OutRsts != 0 {
		t.Fatal("a packet with no rule was diverted or answered")
	}
}

// TestTransparentNoListener: a diverted SYN with only a plain listener
// (no IP_TRANSPARENT) on the port is refused with a reset from the
// original destination, and counted.
func TestTransparentNoListener(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9000)
	transparentListener(t, p.b, 9000, false)
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(InetAddr(origA)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect: %v, want ECONNREFUSED", err)
	}
	if n := p.sb.TCP.Stats().TProxyNoListener; n != 1 {
		t.Fatalf("TProxyNoListener %d, want 1", n)
	}
}

// TestTransparentBind: a non-local address binds only with
// IP_TRANSPARENT or IP_FREEBIND; getsockopt reports what was set.
func TestTransparentBind(t *testing.T) {
	p := tproxyPair(t)
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM} {
		s := mustSocket(t, p.b, AF_INET, typ, 0)
		if err := s.Bind(InetAddr(origA)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Fatalf("type %d: bind non-local: %v, want EADDRNOTAVAIL", typ, err)
		}
		for _, opt := range []int{IP_TRANSPARENT, IP_FREEBIND, IP_RECVORIGDSTADDR} {
			if v, err := s.GetSockOptInt(SOL_IP, opt); err != nil || v != 0 {
				t.Fatalf("opt %d default %d %v", opt, v, err)
			}
		}
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_TRANSPARENT, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
			t.Fatalf("IPV6_TRANSPARENT on AF_INET: %v", err)
		}
		if err := s.SetSockOpt(SOL_IP, IP_FREEBIND, 1); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.GetSockOptInt(SOL_IP, IP_FREEBIND); v != 1 {
			t.Fatalf("IP_FREEBIND reads %d", v)
		}
		if err := s.Bind(InetAddr(origA)); err != nil {
			t.Fatalf("type %d: bind with IP_FREEBIND: %v", typ, err)
		}
	}
	s6 := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	a6 := netip.MustParseAddrPort("[2001:db8:77::1]:53")
	if err := s6.Bind(InetAddr(a6)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("bind6 non-local: %v", err)
	}
	if err := s6.SetSockOpt(IPPROTO_IPV6, IPV6_TRANSPARENT, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ := s6.GetSockOptInt(SOL_IP, IP_TRANSPARENT); v != 1 {
		t.Fatalf("IPV6_TRANSPARENT and IP_TRANSPARENT are one flag; IP_TRANSPARENT reads %d", v)
	}
	if err := s6.Bind(InetAddr(a6)); err != nil {
		t.Fatalf("bind6 transparent: %v", err)
	}
}

// TestTransparentUDP: diverted datagrams reach the transparent socket on
// the rule's port with IP_ORIGDSTADDR; the answer from a transparent
// socket bound to the original destination (SO_REUSEADDR) comes to the
// client from that address.
func TestTransparentUDP(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9053)
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.SetTimeout(5 * time.Second)
	for _, o := range []int{IP_TRANSPARENT, IP_RECVORIGDSTADDR} {
		if err := srv.SetSockOpt(SOL_IP, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Bind(ap(netip.IPv4Unspecified(), 9053)); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	cli.SetTimeout(5 * time.Second)
	for _, dst := range []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53"), origB} {
		if _, err := cli.SendTo([]byte("q "+dst.String()), 0, InetAddr(dst)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, _, from, orig, ok, err := srv.RecvMsgOrigDst(buf, 0)
		if err != nil || !ok || string(buf[:n]) != "q "+dst.String() {
			t.Fatalf("recv %q ok=%v %v", buf[:n], ok, err)
		}
		if orig.AddrPort != dst {
			t.Fatalf("IP_ORIGDSTADDR %v, want %v", orig, dst)
		}
		// The reply, from the original destination.
		r := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
		for _, o := range []struct{ l, n int }{{SOL_IP, IP_TRANSPARENT}, {SOL_SOCKET, SO_REUSEADDR}} {
			if err := r.SetSockOpt(o.l, o.n, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Bind(orig); err != nil {
			t.Fatal(err)
		}
		if _, err := r.SendTo([]byte("a "+dst.String()), 0, from); err != nil {
			t.Fatal(err)
		}
		r.Close()
		n, rfrom, err := cli.RecvFrom(buf, 0)
		if err != nil || string(buf[:n]) != "a "+dst.String() {
			t.Fatalf("client recv %q %v", buf[:n], err)
		}
		if rfrom.(*SockaddrInet).AddrPort != dst {
			t.Fatalf("answer from %v, want %v", rfrom, dst)
		}
	}
	if got := p.sb.Stats().TProxy.DivertedUDP.Load(); got != 2 {
		t.Fatalf("DivertedUDP %d, want 2", got)
	}
	// Without IP_RECVORIGDSTADDR: no control message.
	if err := srv.SetSockOpt(SOL_IP, IP_RECVORIGDSTADDR, 0); err != nil {
		t.Fatal(err)
	}
	cli.SendTo([]byte("x"), 0, InetAddr(origA))
	if _, _, _, _, ok, err := srv.RecvMsgOrigDst(make([]byte, 10), 0); err != nil || ok {
		t.Fatalf("option off: ok=%v %v", ok, err)
	}
	// No transparent socket on the port: dropped and counted.
	srv.Close()
	cli.SendTo([]byte("y"), 0, InetAddr(origA))
	waitFor(t, func() bool { return p.sb.Stats().TProxy.UDPNoSocket.Load() == 1 })
}

// TestTransparentRulesFull: the table holds MaxTransparentRules; one
// more is refused with ENOSPC and counted; removal frees a place.
func TestTransparentRulesFull(t *testing.T) {
	s := stack.New(stack.Options{})
	defer s.Close()
	rule := func(i int) stack.TransparentRule {
		return stack.TransparentRule{Proto: stack.TransparentTCP,
			Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32), ToPort: 9000}
	}
	for i := 0; i < stack.MaxTransparentRules; i++ {
		if err := s.AddTransparentRule(rule(i)); err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	if err := s.AddTransparentRule(rule(200)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("rule past the limit: %v, want ENOSPC", err)
	}
	if n := s.Stats().TProxy.RulesFull.Load(); n != 1 {
		t.Fatalf("RulesFull %d, want 1", n)
	}
	if err := s.AddTransparentRule(rule(3)); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP, Dst: netip.MustParsePrefix("0.0.0.0/0")}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("no ToPort: %v", err)
	}
	if err := s.RemoveTransparentRule(rule(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTransparentRule(rule(3)); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second removal: %v", err)
	}
	if err := s.AddTransparentRule(rule(200)); err != nil {
		t.Fatal(err)
	}
	if len(s.TransparentRules()) != stack.MaxTransparentRules {
		t.Fatal("rule count")
	}
}

// waitFor polls a counter the peer's receive goroutine moves, bounded.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTransparentIPv6: the same over IPv6 on a dual-stack listener and
// an AF_INET6 UDP socket: the accepted conn's name is the original
// destination; IPV6_ORIGDSTADDR gives it for a datagram, and the answer
// comes from it.
func TestTransparentIPv6(t *testing.T) {
	p := newPair6(t)
	pf := netip.MustParsePrefix("2001:db8:77::/48")
	p.sa.AddRoute(stack.Route{Prefix: pf, Gateway: v6B, NIC: p.sa.NICByName("eth0")})
	if err := p.sb.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: pf, ToPort: 9000}); err != nil {
		t.Fatal(err)
	}
	l := mustSocket(t, p.b, AF_INET6, SOCK_STREAM, 0)
	l.SetTimeout(5 * time.Second)
	if err := l.SetSockOpt(IPPROTO_IPV6, IPV6_TRANSPARENT, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(ap(netip.IPv6Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddrPort("[2001:db8:77::5]:443")
	c := mustSocket(t, p.a, AF_INET6, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(InetAddr(dst)); err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(5 * time.Second)
	if name, _ := s.GetSockName(); name.(*SockaddrInet).AddrPort != dst {
		t.Fatalf("accepted name %v, want %v", name, dst)
	}
	if err := s.SendAll([]byte("hi6"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := c.Recv(buf[:3], MSG_WAITALL); err != nil || string(buf[:n]) != "hi6" {
		t.Fatalf("client read %q %v", buf[:n], err)
	}

	u := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	u.SetTimeout(5 * time.Second)
	for _, o := range []int{IPV6_TRANSPARENT, IPV6_RECVORIGDSTADDR} {
		if err := u.SetSockOpt(IPPROTO_IPV6, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := u.GetSockOptInt(IPPROTO_IPV6, IPV6_RECVORIGDSTADDR); v != 1 {
		t.Fatalf("IPV6_RECVORIGDSTADDR reads %d", v)
	}
	if err := u.Bind(ap(netip.IPv6Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	cu := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	cu.SetTimeout(5 * time.Second)
	udst := netip.MustParseAddrPort("[2001:db8:77::53]:53")
	if _, err := cu.SendTo([]byte("q6"), 0, InetAddr(udst)); err != nil {
		t.Fatal(err)
	}
	n, _, from, orig, ok, err := u.RecvMsgOrigDst(buf, 0)
	if err != nil || !ok || string(buf[:n]) != "q6" || orig.AddrPort != udst {
		t.Fatalf("recv %q orig %v ok=%v %v", buf[:n], orig, ok, err)
	}
	r := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	r.SetSockOpt(IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
	r.SetSockOpt(SOL_SOCKET, SO_REUSEADDR, 1)
	if err := r.Bind(orig); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SendTo([]byte("a6"), 0, from); err != nil {
		t.Fatal(err)
	}
	n, rfrom, err := cu.RecvFrom(buf, 0)
	if err != nil || string(buf[:n]) != "a6" || rfrom.(*SockaddrInet).AddrPort != udst {
		t.Fatalf("client got %q from %v: %v", buf[:n], rfrom, err)
	}
}

// TestTransparentConnectFrom: a transparent socket bound to a foreign
// address connects out from it (the proxy dialling upstream as the
// client); the peer sees that address, and its answers, addressed to a
// foreign address, find the connection through the rule.
func TestTransparentConnectFrom(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9000) // also covers the answers to 198.51.100.0/24
	l := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	l.SetTimeout(5 * time.Second)
	if err := l.Bind(ap(addrA, 8080)); err != nil {
		t.Fatal(err)
	}
	l.Listen(1)
	c := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1); err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("198.51.100.7:40001")
	if err := c.Bind(InetAddr(from)); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ap(addrA, 8080)); err != nil {
		t.Fatal(err)
	}
	s, peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(5 * time.Second)
	if peer.(*SockaddrInet).AddrPort != from {
		t.Fatalf("upstream saw %v, want %v", peer, from)
	}
	if err := s.SendAll([]byte("up"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if n, err := c.Recv(buf, MSG_WAITALL); err != nil || string(buf[:n]) != "up" {
		t.Fatalf("%q %v", buf[:n], err)
	}
}

// TestTransparentUDPEstablished: a transparent UDP socket bound to the
// original destination and connected to the client takes that flow's
// later datagrams, as Linux's TPROXY lookup finds an established socket
// first; other clients still go to the socket on the rule's port.
func TestTransparentUDPEstablished(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9053)
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.SetTimeout(5 * time.Second)
	srv.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1)
	if err := srv.Bind(ap(netip.IPv4Unspecified(), 9053)); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	cli.SetTimeout(5 * time.Second)
	if err := cli.Bind(ap(addrA, 5555)); err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddrPort("198.51.100.53:53")
	flow := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	flow.SetTimeout(5 * time.Second)
	flow.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1)
	flow.SetSockOpt(SOL_SOCKET, SO_REUSEADDR, 1)
	if err := flow.Bind(InetAddr(dst)); err != nil {
		t.Fatal(err)
	}
	if err := flow.Connect(ap(addrA, 5555)); err != nil {
		t.Fatal(err)
	}
	cli.SendTo([]byte("one"), 0, InetAddr(dst))
	buf := make([]byte, 8)
	if n, err := flow.Recv(buf, 0); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("connected transparent socket: %q %v", buf[:n], err)
	}
	other := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	other.SendTo([]byte("two"), 0, InetAddr(dst))
	if n, _, err := srv.RecvFrom(buf, 0); err != nil || string(buf[:n]) != "two" {
		t.Fatalf("rule's socket: %q %v", buf[:n], err)
	}
	if _, _, err := srv.RecvFrom(buf, MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("the rule's socket also got the connected flow's datagram: %v", err)
	}
}
