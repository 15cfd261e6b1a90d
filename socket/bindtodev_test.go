package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// devNet is host A with two NICs: eth0 (10.0.0.1/24, fd00::1/64) to
// host B (10.0.0.2) and eth1 (10.1.0.1/24, fd01::1/64) to host C
// (10.1.0.2). B and C both hold the service address 192.0.2.1 (and
// 2001:db8::1). A's main table reaches the service through B and, at a
// higher metric, through C: an unbound socket goes to B, one bound to
// eth1 must go to C. No policy rules.
type devNet struct {
	a, b, c    *Net
	sa, sb, sc *stack.Stack
	a0, a1     *stack.NIC
}

func newDevNet(t *testing.T, opts stack.Options) *devNet {
	t.Helper()
	sa, sb, sc, a0, a1 := threeHosts(t, opts)
	for _, r := range []stack.Route{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("10.0.0.2"), NIC: a0},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("10.1.0.2"), NIC: a1, Metric: 100},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Gateway: netip.MustParseAddr("fd00::2"), NIC: a0},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Gateway: netip.MustParseAddr("fd01::2"), NIC: a1, Metric: 100},
	} {
		sa.AddRoute(r)
	}
	return &devNet{a: New(sa), b: New(sb), c: New(sc), sa: sa, sb: sb, sc: sc, a0: a0, a1: a1}
}

// acceptLoop accepts connections on l until it closes.
func acceptLoop(t *testing.T, l *Socket) <-chan *Socket {
	t.Helper()
	ch := make(chan *Socket, 8)
	go func() {
		for {
			c, _, err := l.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	return ch
}

func listenOn(t *testing.T, n *Net, fam int, a netip.Addr, port int, dev string) (*Socket, <-chan *Socket) {
	t.Helper()
	l := mustSocket(t, n, fam, SOCK_STREAM, 0)
	if dev != "" {
		if err := l.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Bind(ap(a, port)); err != nil {
		t.Fatalf("bind %v:%d dev %q: %v", a, port, dev, err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	return l, acceptLoop(t, l)
}

// echoByte sends one byte from c and reads it on s, then back: both
// directions of the connection work.
func echoByte(t *testing.T, c, s *Socket) {
	t.Helper()
	c.SetTimeout(5 * time.Second)
	s.SetTimeout(5 * time.Second)
	b := make([]byte, 1)
	if _, err := c.Send([]byte{'x'}, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Recv(b, 0); err != nil || n != 1 || b[0] != 'x' {
		t.Fatalf("read %d %q %v", n, b, err)
	}
	if _, err := s.Send([]byte{'y'}, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Recv(b, 0); err != nil || n != 1 || b[0] != 'y' {
		t.Fatalf("read back %d %q %v", n, b, err)
	}
}

func peerOf(t *testing.T, s *Socket) netip.Addr {
	t.Helper()
	sa, err := s.GetPeerName()
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*SockaddrInet).AddrPort.Addr()
}

func dial(t *testing.T, n *Net, fam int, dst netip.Addr, port int, set func(*Socket)) (*Socket, error) {
	t.Helper()
	s := mustSocket(t, n, fam, SOCK_STREAM, 0)
	s.SetTimeout(5 * time.Second)
	if set != nil {
		set(s)
	}
	return s, s.Connect(ap(dst, port))
}

// devFam is one family's addresses in devNet.
type devFam struct {
	fam               int
	svc, a0, a1, b, c netip.Addr
	noRoute           netip.Addr    // no route through eth1
	wantNoRoute       syscall.Errno // connect's error there
	name              string
	anyAddr           netip.Addr
	// C's route to A's eth0 prefix through A's eth1.
	cRouteTo, cRouteVia string
	port                int // added to the tests' ports: a dual-stack :: listener holds IPv4's too
}

func fams() []devFam {
	mp := netip.MustParseAddr
	return []devFam{
		{AF_INET, svc, mp("10.0.0.1"), mp("10.1.0.1"), mp("10.0.0.2"), mp("10.1.0.2"), mp("198.51.100.1"), syscall.EHOSTUNREACH, "IPv4", netip.IPv4Unspecified(), "10.0.0.0/24", "10.1.0.1", 0},
		{AF_INET6, svc6, mp("fd00::1"), mp("fd01::1"), mp("fd00::2"), mp("fd01::2"), mp("2001:db8:ff::1"), syscall.ENETUNREACH, "IPv6", netip.IPv6Unspecified(), "fd00::/64", "fd01::1", 1000},
	}
}

// A connect bound to eth1 leaves by eth1 (C accepts it, from eth1's
// address) though the main table's best route is through eth0; an
// unbound one leaves by eth0. SO_BINDTOIFINDEX does the same.
func TestBindToDeviceTCPConnectRoutes(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	for _, f := range fams() {
		_, accB := listenOn(t, d.b, f.fam, f.svc, 80, "")
		_, accC := listenOn(t, d.c, f.fam, f.svc, 80, "")
		for _, c := range []struct {
			how  string
			set  func(*Socket)
			acc  <-chan *Socket
			from netip.Addr
		}{
			{"unbound", nil, accB, f.a0},
			{"SO_BINDTODEVICE eth1", func(s *Socket) {
				if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth1"); err != nil {
					t.Fatal(err)
				}
			}, accC, f.a1},
			{"SO_BINDTOIFINDEX eth1", func(s *Socket) {
				if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTOIFINDEX, d.a1.ID()); err != nil {
					t.Fatal(err)
				}
			}, accC, f.a1},
			{"SO_BINDTODEVICE eth0", func(s *Socket) {
				if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth0"); err != nil {
					t.Fatal(err)
				}
			}, accB, f.a0},
		} {
			s, err := dial(t, d.a, f.fam, f.svc, 80, c.set)
			if err != nil {
				t.Fatalf("%s %s: connect: %v", f.name, c.how, err)
			}
			srv := <-c.acc
			if got := peerOf(t, srv); got != c.from {
				t.Fatalf("%s %s: accepted from %v, want %v", f.name, c.how, got, c.from)
			}
			echoByte(t, s, srv)
			s.Close()
			srv.Close()
		}
		for name, ch := range map[string]<-chan *Socket{"B": accB, "C": accC} {
			select {
			case c := <-ch:
				t.Fatalf("%s: %s accepted an unexpected connection from %v", f.name, name, peerOf(t, c))
			default:
			}
		}
	}
}

// A listener bound to eth0 accepts SYNs that came in on eth0 and resets
// those from eth1, whatever address they are for; its children are
// bound to eth0 too. Binding an unbound listener later applies to the
// next SYN.
func TestBindToDeviceTCPListener(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	for _, f := range fams() {
		// C reaches A's eth0 address through A's eth1.
		d.sc.AddRoute(stack.Route{Prefix: netip.MustParsePrefix(f.cRouteTo), Gateway: netip.MustParseAddr(f.cRouteVia), NIC: d.sc.NICByName("eth0")})
		_, acc := listenOn(t, d.a, f.fam, f.anyAddr, 80+f.port, "eth0")
		for _, dst := range []netip.Addr{f.a1, f.a0} {
			if _, err := dial(t, d.c, f.fam, dst, 80+f.port, nil); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("%s: C to %v through eth1: %v, want ECONNREFUSED", f.name, dst, err)
			}
		}
		c, err := dial(t, d.b, f.fam, f.a0, 80+f.port, nil)
		if err != nil {
			t.Fatalf("%s: B through eth0: %v", f.name, err)
		}
		child := <-acc
		if v, err := child.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); err != nil || v != "eth0" {
			t.Fatalf("%s: child SO_BINDTODEVICE %v %v, want eth0", f.name, v, err)
		}
		if v, err := child.GetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX); err != nil || v != d.a0.ID() {
			t.Fatalf("%s: child SO_BINDTOIFINDEX %v %v, want %d", f.name, v, err, d.a0.ID())
		}
		echoByte(t, c, child)
		c.Close()
		child.Close()

		// An unbound listener bound after listen(): from then on.
		l2, acc2 := listenOn(t, d.a, f.fam, f.anyAddr, 81+f.port, "")
		c, err = dial(t, d.c, f.fam, f.a1, 81+f.port, nil)
		if err != nil {
			t.Fatalf("%s: C to an unbound listener: %v", f.name, err)
		}
		(<-acc2).Close()
		c.Close()
		if err := l2.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth0"); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, d.c, f.fam, f.a1, 81+f.port, nil); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%s: C to a listener bound to eth0 after listen: %v, want ECONNREFUSED", f.name, err)
		}
	}
}

// Two listeners on one port bound to different devices do not conflict
// and each gets the connections of its device; with SO_REUSEPORT, a
// listener bound to the device wins over an unbound one for its SYNs
// (compute_score), and the unbound one takes the rest.
func TestBindToDeviceTCPListenersPerDevice(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	for _, f := range fams() {
		_, acc0 := listenOn(t, d.a, f.fam, f.anyAddr, 90+f.port, "eth0")
		_, acc1 := listenOn(t, d.a, f.fam, f.anyAddr, 90+f.port, "eth1")
		for _, c := range []struct {
			from *Net
			dst  netip.Addr
			acc  <-chan *Socket
			dev  string
		}{{d.b, f.a0, acc0, "eth0"}, {d.c, f.a1, acc1, "eth1"}} {
			s, err := dial(t, c.from, f.fam, c.dst, 90+f.port, nil)
			if err != nil {
				t.Fatalf("%s: connect to %v: %v", f.name, c.dst, err)
			}
			child := <-c.acc
			if v, _ := child.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); v != c.dev {
				t.Fatalf("%s: child of the %s listener bound to %v", f.name, c.dev, v)
			}
			echoByte(t, s, child)
			s.Close()
			child.Close()
		}

		reuse := func(dev string) (*Socket, <-chan *Socket) {
			l := mustSocket(t, d.a, f.fam, SOCK_STREAM, 0)
			if err := l.SetSockOptInt(SOL_SOCKET, SO_REUSEPORT, 1); err != nil {
				t.Fatal(err)
			}
			if dev != "" {
				if err := l.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, dev); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Bind(ap(f.anyAddr, 91+f.port)); err != nil {
				t.Fatal(err)
			}
			if err := l.Listen(8); err != nil {
				t.Fatal(err)
			}
			return l, acceptLoop(t, l)
		}
		_, accAny := reuse("")
		_, accDev := reuse("eth1")
		for i := 0; i < 3; i++ {
			if _, err := dial(t, d.c, f.fam, f.a1, 91+f.port, nil); err != nil {
				t.Fatalf("%s round %d: C to the listener bound to eth1: %v", f.name, i, err)
			}
			(<-accDev).Close()
			if _, err := dial(t, d.b, f.fam, f.a0, 91+f.port, nil); err != nil {
				t.Fatal(err)
			}
			(<-accAny).Close()
		}
	}
}

// Bind conflicts (inet_bind_conflict): different devices share a port;
// a bound and an unbound socket do not, unless SO_REUSEADDR on both.
func TestBindToDeviceTCPBindConflict(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	sock := func(dev string, reuse bool) *Socket {
		s := mustSocket(t, d.a, AF_INET, SOCK_STREAM, 0)
		if dev != "" {
			if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, dev); err != nil {
				t.Fatal(err)
			}
		}
		if reuse {
			if err := s.SetSockOptInt(SOL_SOCKET, SO_REUSEADDR, 1); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	any := netip.IPv4Unspecified()
	for _, c := range []struct {
		first, second string
		reuse         bool
		want          error
	}{
		{"eth0", "eth1", false, nil},
		{"eth0", "eth0", false, syscall.EADDRINUSE},
		{"eth0", "", false, syscall.EADDRINUSE},
		{"", "eth0", false, syscall.EADDRINUSE},
		{"", "eth0", true, nil},
	} {
		port := 100 + len(c.first) + 2*len(c.second)
		if c.reuse {
			port += 50
		}
		a := sock(c.first, c.reuse)
		if err := a.Bind(ap(any, port)); err != nil {
			t.Fatal(err)
		}
		b := sock(c.second, c.reuse)
		if err := b.Bind(ap(any, port)); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Fatalf("%q then %q (reuse %v): %v, want %v", c.first, c.second, c.reuse, err, c.want)
		}
		a.Close()
		b.Close()
	}
}

// No route through the bound device: IPv6 fails at once with
// ENETUNREACH; IPv4 takes the destination to be on the device's link
// (Linux's ip_route_output_key_hash_rcu) and fails when ARP gets no
// answer, EHOSTUNREACH; the kernel does both (checked with veths).
func TestBindToDeviceTCPNoRoute(t *testing.T) {
	d := newDevNet(t, stack.Options{ARPRetries: 1, ARPRetryTime: 10 * time.Millisecond})
	for _, f := range fams() {
		s, err := dial(t, d.a, f.fam, f.noRoute, 80, func(s *Socket) {
			if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth1"); err != nil {
				t.Fatal(err)
			}
		})
		if !errors.Is(err, f.wantNoRoute) {
			t.Fatalf("%s: connect bound to eth1 without a route through it: %v, want %v", f.name, err, f.wantNoRoute)
		}
		s.Close()
	}
}

// SO_BINDTOIFINDEX: Linux does not check the index; a TCP socket keeps
// an unknown one, whose name getsockopt cannot give (ENODEV) and whose
// connect fails with ENODEV. A negative index is EINVAL.
func TestBindToIfindexTCP(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	s := mustSocket(t, d.a, AF_INET, SOCK_STREAM, 0)
	if v, err := s.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); err != nil || v != "" {
		t.Fatalf("unbound: %v %v", v, err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTOIFINDEX, -1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("index -1: %v", err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTOIFINDEX, 999); err != nil {
		t.Fatalf("index 999: %v", err)
	}
	if v, err := s.GetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX); err != nil || v != 999 {
		t.Fatalf("index read back %v %v", v, err)
	}
	if _, err := s.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("name of index 999: %v", err)
	}
	if err := s.Connect(ap(svc, 80)); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("connect bound to index 999: %v", err)
	}
	s2 := mustSocket(t, d.a, AF_INET, SOCK_STREAM, 0)
	if err := s2.SetSockOpt(SOL_SOCKET, SO_BINDTOIFINDEX, d.a1.ID()); err != nil {
		t.Fatal(err)
	}
	if v, err := s2.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); err != nil || v != "eth1" {
		t.Fatalf("name of eth1's index: %v %v", v, err)
	}
	if err := s2.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := s2.GetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX); err != nil || v != 0 {
		t.Fatalf("unbound index %v %v", v, err)
	}
}

// IPv6 link-local (tcp_v6_connect): without a scope id a connect needs a
// bound device (EINVAL otherwise) and goes through it; a scope id binds
// an unbound socket to its interface, and one naming another interface
// than the bound one is EINVAL.
func TestBindToDeviceTCPLinkLocal(t *testing.T) {
	d := newDevNet(t, stack.Options{IPv6LinkLocal: true})
	var llC netip.Addr
	for _, p := range d.sc.NICByName("eth0").Addrs() {
		if p.Addr().IsLinkLocalUnicast() {
			llC = p.Addr()
		}
	}
	if !llC.IsValid() {
		t.Fatal("C has no link-local address")
	}
	_, acc := listenOn(t, d.c, AF_INET6, netip.IPv6Unspecified(), 80, "")
	if _, err := dial(t, d.a, AF_INET6, llC, 80, nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unbound, no scope: %v, want EINVAL", err)
	}
	s, err := dial(t, d.a, AF_INET6, llC, 80, func(s *Socket) {
		if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth1"); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("bound to eth1, no scope: %v", err)
	}
	child := <-acc
	// The child of an unbound listener with a link-local peer is bound
	// to the link the SYN came in on (Linux's tcp_v6_init_req).
	if v, err := child.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); err != nil || v != "eth0" {
		t.Fatalf("C's child of a link-local peer bound to %v %v, want eth0", v, err)
	}
	echoByte(t, s, child)
	s.Close()
	child.Close()

	s = mustSocket(t, d.a, AF_INET6, SOCK_STREAM, 0)
	if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ap(llC.WithZone("eth1"), 80)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bound to eth0, scope eth1: %v, want EINVAL", err)
	}
	s, err = dial(t, d.a, AF_INET6, llC.WithZone("eth1"), 80, nil)
	if err != nil {
		t.Fatalf("unbound, scope eth1: %v", err)
	}
	if v, err := s.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); err != nil || v != "eth1" {
		t.Fatalf("after a connect with scope eth1: bound to %v %v", v, err)
	}
	(<-acc).Close()
}

// A dual-stack socket's IPv4 peer (::ffff:192.0.2.1) is routed through
// the bound device like an AF_INET socket's.
func TestBindToDeviceTCPMapped(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	_, accC := listenOn(t, d.c, AF_INET, svc, 80, "")
	s, err := dial(t, d.a, AF_INET6, netip.AddrFrom16(svc.As16()), 80, func(s *Socket) {
		if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth1"); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("connect to the v4-mapped service bound to eth1: %v", err)
	}
	srv := <-accC
	if got := peerOf(t, srv); got != netip.MustParseAddr("10.1.0.1") {
		t.Fatalf("C accepted from %v, want 10.1.0.1", got)
	}
	echoByte(t, s, srv)
}
