package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// markNet is a client host A with two NICs: eth0 (10.0.0.1/24) to host
// B (10.0.0.2) and eth1 (10.1.0.1/24) to host C (10.1.0.2). B and C
// both hold the service address 192.0.2.1 (and 2001:db8::1), so which
// of them answers tells which NIC A routed through. A's main table
// routes everything through B; table 100 everything through C; rule
// "fwmark 1 lookup 100" sends marked traffic to C.
type markNet struct {
	a, b, c    *Net
	sa, sb, sc *stack.Stack
}

var (
	svc  = netip.MustParseAddr("192.0.2.1")
	svc6 = netip.MustParseAddr("2001:db8::1")
)

func newMarkNet(t *testing.T) *markNet {
	t.Helper()
	sa, sb, sc, a0, a1 := threeHosts(t, stack.Options{})
	sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.2"), NIC: a0})
	sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd00::2"), NIC: a0})
	sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.2"), NIC: a1, Table: 100})
	sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd01::2"), NIC: a1, Table: 100})
	if err := sa.AddRule(stack.Rule{Priority: 1000, Mark: 1, Table: 100}); err != nil {
		t.Fatal(err)
	}
	return &markNet{a: New(sa), b: New(sb), c: New(sc), sa: sa, sb: sb, sc: sc}
}

// threeHosts builds markNet's and devNet's hosts: A with eth0
// (10.0.0.1/24, fd00::1/64) to B and eth1 (10.1.0.1/24, fd01::1/64) to
// C; B and C both hold 192.0.2.1 and 2001:db8::1. A has no routes yet.
func threeHosts(t *testing.T, opts stack.Options) (sa, sb, sc *stack.Stack, a0, a1 *stack.NIC) {
	t.Helper()
	opts.DADTransmits = -1
	sa, sb, sc = stack.New(opts), stack.New(opts), stack.New(opts)
	t.Cleanup(func() { sa.Close(); sb.Close(); sc.Close() })
	add := func(n *stack.NIC, ps ...string) {
		for _, p := range ps {
			if err := n.AddAddress(netip.MustParsePrefix(p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	e0, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	e1, ec := link.NewPipe(wire.MAC{2, 0, 0, 0, 1, 1}, wire.MAC{2, 0, 0, 0, 1, 2}, 1500)
	a0, a1 = sa.AddNIC("eth0", e0), sa.AddNIC("eth1", e1)
	nb, nc := sb.AddNIC("eth0", eb), sc.AddNIC("eth0", ec)
	add(a0, "10.0.0.1/24", "fd00::1/64")
	add(a1, "10.1.0.1/24", "fd01::1/64")
	add(nb, "10.0.0.2/24", "192.0.2.1/32", "fd00::2/64", "2001:db8::1/128")
	add(nc, "10.1.0.2/24", "192.0.2.1/32", "fd01::2/64", "2001:db8::1/128")
	return sa, sb, sc, a0, a1
}

func TestSOMarkReadBack(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM} {
		s := mustSocket(t, n, AF_INET, typ, 0)
		if v, err := s.GetSockOptInt(SOL_SOCKET, SO_MARK); err != nil || v != 0 {
			t.Fatalf("type %d: initial SO_MARK %d %v", typ, v, err)
		}
		for _, m := range []int{51820, -1} {
			if err := s.SetSockOpt(SOL_SOCKET, SO_MARK, m); err != nil {
				t.Fatal(err)
			}
			if v, err := s.GetSockOptInt(SOL_SOCKET, SO_MARK); err != nil || v != m {
				t.Fatalf("type %d: SO_MARK %d read back as %d %v", typ, m, v, err)
			}
		}
	}
}

// A TCP connection with the mark goes out eth1 (C accepts it), one
// without it out eth0 (B); the mark's connection has eth1's address.
func TestSOMarkSteersTCP(t *testing.T) {
	m := newMarkNet(t)
	for _, fam := range []int{AF_INET, AF_INET6} {
		dst := svc
		if fam == AF_INET6 {
			dst = svc6
		}
		accepted := map[string]chan netip.AddrPort{}
		for name, n := range map[string]*Net{"B": m.b, "C": m.c} {
			l := mustSocket(t, n, fam, SOCK_STREAM, 0)
			if err := l.Bind(ap(dst, 80)); err != nil {
				t.Fatal(err)
			}
			if err := l.Listen(4); err != nil {
				t.Fatal(err)
			}
			ch := make(chan netip.AddrPort, 2)
			accepted[name] = ch
			go func() {
				for {
					c, from, err := l.Accept()
					if err != nil {
						return
					}
					ch <- from.(*SockaddrInet).AddrPort
					c.Close()
				}
			}()
		}
		for _, c := range []struct {
			mark   int
			server string
			src    string
		}{{0, "B", "10.0.0.1"}, {1, "C", "10.1.0.1"}} {
			if fam == AF_INET6 {
				c.src = map[string]string{"10.0.0.1": "fd00::1", "10.1.0.1": "fd01::1"}[c.src]
			}
			s := mustSocket(t, m.a, fam, SOCK_STREAM, 0)
			s.SetTimeout(5 * time.Second)
			if c.mark != 0 {
				if err := s.SetSockOpt(SOL_SOCKET, SO_MARK, c.mark); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Connect(ap(dst, 80)); err != nil {
				t.Fatalf("family %d mark %d: connect: %v", fam, c.mark, err)
			}
			from := <-accepted[c.server]
			if from.Addr().String() != c.src {
				t.Fatalf("family %d mark %d: %s accepted from %v, want %s", fam, c.mark, c.server, from, c.src)
			}
			s.Close()
		}
		for name, ch := range accepted {
			select {
			case from := <-ch:
				t.Fatalf("family %d: %s accepted an unexpected connection from %v", fam, name, from)
			default:
			}
		}
	}
}

// UDP: sendto with the mark reaches C; a connected socket follows a
// change of its mark on its next send (sk_dst_reset).
func TestSOMarkSteersUDP(t *testing.T) {
	m := newMarkNet(t)
	for _, fam := range []int{AF_INET, AF_INET6} {
		dst := svc
		if fam == AF_INET6 {
			dst = svc6
		}
		rb := mustSocket(t, m.b, fam, SOCK_DGRAM, 0)
		rc := mustSocket(t, m.c, fam, SOCK_DGRAM, 0)
		for _, r := range []*Socket{rb, rc} {
			if err := r.Bind(ap(dst, 53)); err != nil {
				t.Fatal(err)
			}
			r.SetTimeout(5 * time.Second)
		}
		expect := func(r *Socket, want string) {
			t.Helper()
			buf := make([]byte, 64)
			n, _, err := r.RecvFrom(buf, 0)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("family %d: got %q %v, want %q", fam, buf[:n], err, want)
			}
		}
		s := mustSocket(t, m.a, fam, SOCK_DGRAM, 0)
		if _, err := s.SendTo([]byte("plain"), 0, ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		expect(rb, "plain")
		s.SetSockOpt(SOL_SOCKET, SO_MARK, 1)
		if _, err := s.SendTo([]byte("marked"), 0, ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		expect(rc, "marked")

		cs := mustSocket(t, m.a, fam, SOCK_DGRAM, 0)
		if err := cs.Connect(ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.SendTo([]byte("one"), 0, nil); err != nil {
			t.Fatal(err)
		}
		expect(rb, "one")
		cs.SetSockOpt(SOL_SOCKET, SO_MARK, 1)
		if _, err := cs.SendTo([]byte("two"), 0, nil); err != nil {
			t.Fatal(err)
		}
		expect(rc, "two")
		cs.SetSockOpt(SOL_SOCKET, SO_MARK, 0)
		if _, err := cs.SendTo([]byte("three"), 0, nil); err != nil {
			t.Fatal(err)
		}
		expect(rb, "three")
	}
}

// An accepted connection has its listener's mark (Linux with
// tcp_fwmark_accept off, the default).
func TestSOMarkAcceptInherits(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	l.SetSockOpt(SOL_SOCKET, SO_MARK, 7)
	l.Bind(ap(addrB, 8080))
	l.Listen(1)
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(ap(addrB, 8080)); err != nil {
		t.Fatal(err)
	}
	child, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	if v, err := child.GetSockOptInt(SOL_SOCKET, SO_MARK); err != nil || v != 7 {
		t.Fatalf("child SO_MARK %d %v, want 7", v, err)
	}
}

// Rules' actions give a local sender Linux's errnos: blackhole EINVAL,
// unreachable ENETUNREACH, prohibit EACCES; for TCP connect, UDP
// connect and sendto, both families.
func TestSOMarkRuleErrnos(t *testing.T) {
	m := newMarkNet(t)
	for i, c := range []struct {
		a    stack.RuleAction
		want syscall.Errno
	}{{stack.RuleBlackhole, syscall.EINVAL}, {stack.RuleUnreachable, syscall.ENETUNREACH}, {stack.RuleProhibit, syscall.EACCES}} {
		mark := 10 + i
		if err := m.sa.AddRule(stack.Rule{Priority: 500, Mark: uint32(mark), Action: c.a}); err != nil {
			t.Fatal(err)
		}
		for _, fam := range []int{AF_INET, AF_INET6} {
			dst := svc
			if fam == AF_INET6 {
				dst = svc6
			}
			ts := mustSocket(t, m.a, fam, SOCK_STREAM, 0)
			ts.SetSockOpt(SOL_SOCKET, SO_MARK, mark)
			if err := ts.Connect(ap(dst, 80)); !errors.Is(err, c.want) {
				t.Fatalf("%v family %d: TCP connect %v, want %v", c.a, fam, err, c.want)
			}
			us := mustSocket(t, m.a, fam, SOCK_DGRAM, 0)
			us.SetSockOpt(SOL_SOCKET, SO_MARK, mark)
			if _, err := us.SendTo([]byte("x"), 0, ap(dst, 53)); !errors.Is(err, c.want) {
				t.Fatalf("%v family %d: sendto %v, want %v", c.a, fam, err, c.want)
			}
			if err := us.Connect(ap(dst, 53)); !errors.Is(err, c.want) {
				t.Fatalf("%v family %d: UDP connect %v, want %v", c.a, fam, err, c.want)
			}
		}
	}
}

// An SO_MARK control message routes its one datagram by its mark, in
// place of the socket's (Linux's sockc.mark), both families.
func TestSOMarkControlMessage(t *testing.T) {
	m := newMarkNet(t)
	for _, fam := range []int{AF_INET, AF_INET6} {
		dst := svc
		if fam == AF_INET6 {
			dst = svc6
		}
		rb := mustSocket(t, m.b, fam, SOCK_DGRAM, 0)
		rc := mustSocket(t, m.c, fam, SOCK_DGRAM, 0)
		for _, r := range []*Socket{rb, rc} {
			if err := r.Bind(ap(dst, 53)); err != nil {
				t.Fatal(err)
			}
			r.SetTimeout(5 * time.Second)
		}
		expect := func(r *Socket, want string) {
			t.Helper()
			buf := make([]byte, 64)
			n, _, err := r.RecvFrom(buf, 0)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("family %d: got %q %v, want %q", fam, buf[:n], err, want)
			}
		}
		s := mustSocket(t, m.a, fam, SOCK_DGRAM, 0)
		if _, err := s.SendMsgControl([]byte("cmsg 1"), ctlInt(SOL_SOCKET, SO_MARK, 1), 0, ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		expect(rc, "cmsg 1")
		if _, err := s.SendTo([]byte("socket 0"), 0, ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		expect(rb, "socket 0")
		s.SetSockOpt(SOL_SOCKET, SO_MARK, 1)
		if _, err := s.SendMsgControl([]byte("cmsg 0"), ctlInt(SOL_SOCKET, SO_MARK, 0), 0, ap(dst, 53)); err != nil {
			t.Fatal(err)
		}
		expect(rb, "cmsg 0")
		if _, err := s.SendMsgControl([]byte("x"), ctlInt(SOL_SOCKET, SO_MARK, 12), 0, ap(dst, 53)); err != nil {
			t.Fatal(err) // no rule for 12 here: main
		}
		expect(rb, "x")
	}
}
