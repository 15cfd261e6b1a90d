package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
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

// narrowLink is host B's end of the pipe with a router behind it whose
// next link carries at most mtu bytes: a larger IPv4 packet with DF, or
// any larger IPv6 packet, is dropped and answered to its source with
// Fragmentation Needed or Packet Too Big from the router's address (A's,
// on the same wire), as a real path with a smaller MTU does.
type narrowLink struct {
	end, back *link.PipeEnd // B's end; A's end, to send the errors into B
	mtu       int
	router4   netip.Addr
	router6   netip.Addr
}

func (l *narrowLink) MTU() int                      { return l.end.MTU() }
func (l *narrowLink) Kind() link.Kind               { return l.end.Kind() }
func (l *narrowLink) HardwareAddr() wire.MAC        { return l.end.HardwareAddr() }
func (l *narrowLink) Attach(r link.Receiver)        { l.end.Attach(r) }
func (l *narrowLink) Stats() *link.Stats            { return l.end.Stats() }
func (l *narrowLink) Close() error                  { return l.end.Close() }
func (l *narrowLink) WaitRoom(done <-chan struct{}) { l.end.WaitRoom(done) }
func (l *narrowLink) WriteFrames(fs [][]byte) (int, error) {
	for _, f := range fs {
		ip := f[wire.EthernetHeaderLen:]
		if len(ip) <= l.mtu {
			if _, err := l.end.WriteFrames([][]byte{f}); err != nil {
				return 0, err
			}
			continue
		}
		if e := l.tooBig(ip); e != nil {
			l.back.WriteFrames([][]byte{e})
		}
	}
	return len(fs), nil
}

// tooBig is the router's error about ip, in a frame to B.
func (l *narrowLink) tooBig(ip []byte) []byte {
	f := make([]byte, wire.EthernetHeaderLen+1280)
	switch ip[0] >> 4 {
	case 4:
		h := wire.IPv4(ip)
		if !h.DF() {
			return nil
		}
		q := ip[:h.HeaderLen()+8] // RFC 792's minimal quote
		m := make([]byte, 8+len(q))
		m[0], m[1] = wire.ICMPDestUnreach, wire.ICMPFragNeeded
		wire.ICMPv4(m).SetNextHopMTU(l.mtu)
		copy(m[8:], q)
		wire.ICMPv4(m).FillChecksum()
		ih := wire.IPv4Header{Protocol: wire.ProtoICMP, TTL: 64, Src: l.router4, Dst: h.Src()}
		ih.TotalLen = ih.Len() + len(m)
		wire.PutEthernet(f, macB, macA, wire.EtherTypeIPv4)
		n := ih.Put(f[wire.EthernetHeaderLen:])
		copy(f[wire.EthernetHeaderLen+n:], m)
		return f[:wire.EthernetHeaderLen+ih.TotalLen]
	case 6:
		h := wire.IPv6(ip)
		b := f[wire.EthernetHeaderLen+wire.IPv6HeaderLen:]
		n := wire.PutICMPv6Error(b, wire.ICMPv6PacketTooBig, 0, uint32(l.mtu), ip)
		wire.ICMPv6(b[:n]).FillChecksum(wire.PseudoHeaderSum6(l.router6.As16(), h.Src16(), wire.ProtoICMPv6, n))
		ih := wire.IPv6Header{PayloadLen: n, NextHeader: wire.ProtoICMPv6, HopLimit: 64, Src: l.router6, Dst: h.Src()}
		ih.Put(f[wire.EthernetHeaderLen:])
		wire.PutEthernet(f, macB, macA, wire.EtherTypeIPv6)
		return f[:wire.EthernetHeaderLen+wire.IPv6HeaderLen+n]
	}
	return nil
}

// narrowPair is a dual-stack pair whose B (the proxy) reaches A (the
// client) through a 1280-byte link, with A routing 198.51.100.0/24 and
// 2001:db8:77::/48 through B and B diverting both to port 9000.
func narrowPair(t *testing.T) *pair {
	t.Helper()
	ea, eb := link.NewPipe(macA, macB, 1500)
	opts := stack.Options{DADTransmits: -1}
	sa, sb := stack.New(opts), stack.New(opts)
	t.Cleanup(func() { sa.Close(); sb.Close() })
	na := sa.AddNIC("eth0", ea)
	nb := sb.AddNIC("eth0", &narrowLink{end: eb, back: ea, mtu: 1280, router4: addrA, router6: v6A})
	for _, c := range []struct {
		n *stack.NIC
		p string
	}{{na, "10.0.0.1/24"}, {nb, "10.0.0.2/24"}, {na, "2001:db8::1/64"}, {nb, "2001:db8::2/64"}} {
		if err := c.n.AddAddress(netip.MustParsePrefix(c.p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*stack.NIC{na, nb} {
		if err := n.EnableIPv6(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		pf string
		gw netip.Addr
	}{{"198.51.100.0/24", addrB}, {"2001:db8:77::/48", v6B}} {
		pf := netip.MustParsePrefix(r.pf)
		sa.AddRoute(stack.Route{Prefix: pf, Gateway: r.gw, NIC: na})
		if err := sb.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: pf, ToPort: 9000}); err != nil {
			t.Fatal(err)
		}
	}
	return &pair{a: New(sa), b: New(sb), sa: sa, sb: sb}
}

// TestTransparentPathMTU: a diverted connection's full-sized segments
// leave from the original destination and meet a 1280-byte link; the
// router's Fragmentation Needed (IPv4) or Packet Too Big (IPv6),
// addressed to the original destination, reaches the connection: its
// MSS drops, the path MTU towards the client is learnt, and every byte
// arrives. Before, the error was dropped as not the host's and the
// connection stalled.
func TestTransparentPathMTU(t *testing.T) {
	for _, tc := range []struct {
		name string
		fam  int
		dst  netip.AddrPort
		cli  netip.Addr
	}{
		{"ipv4", AF_INET, origA, addrA},
		{"ipv6", AF_INET6, netip.MustParseAddrPort("[2001:db8:77::5]:443"), v6A},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := narrowPair(t)
			l := mustSocket(t, p.b, AF_INET6, SOCK_STREAM, 0) // dual-stack
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
			c := mustSocket(t, p.a, tc.fam, SOCK_STREAM, 0)
			c.SetTimeout(5 * time.Second)
			if err := c.Connect(InetAddr(tc.dst)); err != nil {
				t.Fatal(err)
			}
			s, _, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			s.SetTimeout(5 * time.Second)
			mss0, _ := s.GetSockOptInt(IPPROTO_TCP, TCP_MAXSEG)
			if mss0 <= 1280-40 {
				t.Fatalf("MSS %d before any error: the test needs full-sized segments", mss0)
			}
			data := make([]byte, 64<<10)
			for i := range data {
				data[i] = byte(i*7 + i>>8)
			}
			go s.SendAll(data, 0)
			got := make([]byte, len(data))
			if n, err := c.Recv(got, MSG_WAITALL); err != nil || !bytes.Equal(got[:n], data) {
				t.Fatalf("client read %d of %d bytes (%v): the error never reached the connection", n, len(data), err)
			}
			mss, _ := s.GetSockOptInt(IPPROTO_TCP, TCP_MAXSEG)
			if mss >= mss0 || mss > 1280-40 {
				t.Fatalf("MSS %d after the error (was %d), want at most %d", mss, mss0, 1280-40)
			}
			if m := p.sb.PathMTU(tc.cli); m != 1280 {
				t.Fatalf("path MTU towards %v is %d, want 1280", tc.cli, m)
			}
			if u := p.sb.TCP.Stats().PMTUUpdates; u == 0 {
				t.Fatal("TCP PMTUUpdates not counted")
			}
		})
	}
}

// icmpFromA sends, from A's wire to B, an ICMP error of type and code
// (rest: the next-hop MTU) addressed to dst, quoting a packet of proto
// from src to to whose transport header starts with the ports and seq.
func icmpFromA(t *testing.T, p *pair, dst netip.Addr, typ, code uint8, rest int, proto uint8, src, to netip.AddrPort, seq uint32) {
	t.Helper()
	q := make([]byte, 28)
	qh := wire.IPv4Header{Protocol: proto, TTL: 64, Src: src.Addr(), Dst: to.Addr(), TotalLen: 1500, DF: true}
	qh.Put(q)
	binary.BigEndian.PutUint16(q[20:], src.Port())
	binary.BigEndian.PutUint16(q[22:], to.Port())
	binary.BigEndian.PutUint32(q[24:], seq)
	m := make([]byte, 8+len(q))
	m[0], m[1] = typ, code
	if rest != 0 {
		wire.ICMPv4(m).SetNextHopMTU(rest)
	}
	copy(m[8:], q)
	wire.ICMPv4(m).FillChecksum()
	ih := wire.IPv4Header{Protocol: wire.ProtoICMP, TTL: 64, Src: addrA, Dst: dst}
	ih.TotalLen = ih.Len() + len(m)
	f := make([]byte, wire.EthernetHeaderLen+ih.TotalLen)
	wire.PutEthernet(f, macB, macA, wire.EtherTypeIPv4)
	n := ih.Put(f[wire.EthernetHeaderLen:])
	copy(f[wire.EthernetHeaderLen+n:], m)
	if err := p.sa.NICByName("eth0").WriteRawFrame(f); err != nil {
		t.Fatal(err)
	}
}

// TestTransparentICMPNotOurs: an ICMP error that quotes no existing
// connection, or a sequence number not in flight on one, teaches
// nothing: addressed to a foreign address and quoting another port it
// stays dropped and counted as not ours (IP.InAddrErrors); quoting the
// diverted connection out of window it is delivered but unmatched (RFC
// 5927); addressed to the host and quoting a foreign source nobody has
// it is unmatched, as before.
func TestTransparentICMPNotOurs(t *testing.T) {
	p := narrowPair(t)
	l := transparentListener(t, p.b, 9000, true)
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(InetAddr(origA)); err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cname, _ := c.GetSockName()
	client := cname.(*SockaddrInet).AddrPort
	mss0, _ := s.GetSockOptInt(IPPROTO_TCP, TCP_MAXSEG)
	st := p.sb.Stats
	unchanged := func(what string) {
		t.Helper()
		if m, _ := s.GetSockOptInt(IPPROTO_TCP, TCP_MAXSEG); m != mss0 {
			t.Fatalf("%s: MSS %d, was %d", what, m, mss0)
		}
		if m := p.sb.PathMTU(addrA); m != 1500 {
			t.Fatalf("%s: path MTU towards the client %d, want 1500", what, m)
		}
	}

	addrErr, msgs := st().IP.InAddrErrors.Load(), st().ICMP.InMsgs.Load()
	icmpFromA(t, p, origA.Addr(), wire.ICMPDestUnreach, wire.ICMPFragNeeded, 1280, wire.ProtoTCP,
		netip.AddrPortFrom(origA.Addr(), 444), client, 1)
	waitFor(t, func() bool { return st().IP.InAddrErrors.Load() == addrErr+1 })
	if st().ICMP.InMsgs.Load() != msgs {
		t.Fatal("an error quoting no connection was taken in")
	}
	unchanged("no connection")

	unmatched := st().ICMP.InUnmatched.Load()
	icmpFromA(t, p, origA.Addr(), wire.ICMPDestUnreach, wire.ICMPFragNeeded, 1280, wire.ProtoTCP,
		origA, client, 12345) // nothing is in flight: no sequence number is
	waitFor(t, func() bool { return st().ICMP.InUnmatched.Load() == unmatched+1 })
	unchanged("sequence number not in flight")

	icmpFromA(t, p, addrB, wire.ICMPDestUnreach, wire.ICMPFragNeeded, 1280, wire.ProtoTCP,
		netip.MustParseAddrPort("198.51.100.9:443"), client, 1)
	waitFor(t, func() bool { return st().ICMP.InUnmatched.Load() == unmatched+2 })
	unchanged("to the host, no connection")
	if st().IP.InAddrErrors.Load() != addrErr+1 {
		t.Fatal("InAddrErrors moved")
	}

	// Data still flows at full size.
	if err := c.SendAll([]byte("ok"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	s.SetTimeout(5 * time.Second)
	if n, err := s.Recv(buf, MSG_WAITALL); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("%q %v", buf[:n], err)
	}
}

// TestTransparentUDPError: a port unreachable about a datagram a
// transparent UDP socket sent from the original destination, connected
// to the client, is its pending error (ECONNREFUSED on the next call),
// as for a local connected socket; the unconnected socket on the
// rule's port sees nothing.
func TestTransparentUDPError(t *testing.T) {
	p := narrowPair(t)
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.SetTimeout(5 * time.Second)
	srv.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1)
	srv.SetSockOpt(SOL_IP, IP_RECVORIGDSTADDR, 1)
	if err := srv.Bind(ap(netip.IPv4Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	cli.SetTimeout(5 * time.Second)
	udst := netip.MustParseAddrPort("198.51.100.7:53")
	if _, err := cli.SendTo([]byte("q"), 0, InetAddr(udst)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	_, _, from, orig, ok, err := srv.RecvMsgOrigDst(buf, 0)
	if err != nil || !ok || orig.AddrPort != udst {
		t.Fatalf("orig %v ok=%v %v", orig, ok, err)
	}
	r := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	r.SetTimeout(5 * time.Second)
	r.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1)
	r.SetSockOpt(SOL_SOCKET, SO_REUSEADDR, 1)
	if err := r.Bind(orig); err != nil {
		t.Fatal(err)
	}
	if err := r.Connect(from); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send([]byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli.RecvFrom(buf, 0); err != nil {
		t.Fatal(err)
	}
	icmpFromA(t, p, udst.Addr(), wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, wire.ProtoUDP,
		udst, from.(*SockaddrInet).AddrPort, 0)
	if _, err := r.Recv(buf, 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("recv after the port unreachable: %v, want ECONNREFUSED", err)
	}
	if v, _ := srv.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != 0 {
		t.Fatalf("the unconnected socket got error %d", v)
	}
}

// TestTransparentPktinfoSource: sendmsg with an IP_PKTINFO source the
// host does not have leaves from it on an IP_TRANSPARENT socket (the
// answer from the original destination without a socket bound to it);
// without the option, or with IP_FREEBIND only, it fails with
// ENETUNREACH as on Linux (the route refuses the source). A multicast
// source is EINVAL even then.
func TestTransparentPktinfoSource(t *testing.T) {
	p := tproxyPair(t)
	to := ap(addrA, 5353)
	src := netip.MustParseAddr("198.51.100.7")
	checkPktinfoSource(t, p.a, p.b, AF_INET, addrA, src, SOL_IP, InPktinfo{SpecDst: src}, []pktinfoCase{
		{"no option", 0, syscall.ENETUNREACH},
		{"IP_FREEBIND", IP_FREEBIND, syscall.ENETUNREACH},
		{"IP_TRANSPARENT", IP_TRANSPARENT, nil},
	}, func(s *Socket) {
		if _, err := s.SendMsg([]byte("m"), 0, to, InPktinfo{SpecDst: netip.MustParseAddr("224.0.0.9")}); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("multicast source: %v, want EINVAL", err)
		}
	})
}

// pktinfoCase is one socket option and what sendmsg with a non-local
// PKTINFO source gives with it (nil: it leaves from that source).
type pktinfoCase struct {
	name string
	opt  int // at the level given to checkPktinfoSource; 0: none
	want error
}

// checkPktinfoSource sends, for each case, a datagram named after it
// from a fresh socket of family fam on b (bound to the wildcard) with
// the option set and pktinfo naming the non-local source src, to a
// client socket on a bound to client:5353: the errors must be the
// cases', and a datagram sent must reach the client from src and the
// socket's port. after, if not nil, runs on each socket that sent.
func checkPktinfoSource(t *testing.T, a, b *Net, fam int, client, src netip.Addr, level int, pktinfo any, cases []pktinfoCase, after func(*Socket)) {
	t.Helper()
	cli := mustSocket(t, a, fam, SOCK_DGRAM, 0)
	cli.SetTimeout(5 * time.Second)
	to := ap(client, 5353)
	if err := cli.Bind(to); err != nil {
		t.Fatal(err)
	}
	wild := netip.IPv4Unspecified()
	if fam == AF_INET6 {
		wild = netip.IPv6Unspecified()
	}
	mk := func() *Socket {
		s := mustSocket(t, b, fam, SOCK_DGRAM, 0)
		if err := s.Bind(ap(wild, 0)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range cases {
		s := mk()
		if tc.opt != 0 {
			if err := s.SetSockOpt(level, tc.opt, 1); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.SendMsg([]byte(tc.name), 0, to, pktinfo)
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s: sendmsg %v, want %v", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: sendmsg %v", tc.name, err)
		}
		name, _ := s.GetSockName()
		buf := make([]byte, 32)
		n, from, err := cli.RecvFrom(buf, 0)
		if err != nil || string(buf[:n]) != tc.name {
			t.Fatalf("%s: client got %q %v", tc.name, buf[:n], err)
		}
		if want := netip.AddrPortFrom(src, name.(*SockaddrInet).AddrPort.Port()); from.(*SockaddrInet).AddrPort != want {
			t.Fatalf("%s: from %v, want %v", tc.name, from, want)
		}
		if after != nil {
			after(s)
		}
	}
}

// TestTransparentPktinfoSource6: the same for IPV6_PKTINFO, where
// Linux's ipv6_can_nonlocal_bind lets IPV6_TRANSPARENT or IPV6_FREEBIND
// use a source the host does not have; without either, EINVAL.
func TestTransparentPktinfoSource6(t *testing.T) {
	p := newPair6(t)
	src := netip.MustParseAddr("2001:db8:77::5")
	checkPktinfoSource(t, p.a, p.b, AF_INET6, v6A, src, IPPROTO_IPV6, In6Pktinfo{Addr: src}, []pktinfoCase{
		{"no option", 0, syscall.EINVAL},
		{"IPV6_FREEBIND", IPV6_FREEBIND, nil},
		{"IPV6_TRANSPARENT", IPV6_TRANSPARENT, nil},
	}, nil)
}
