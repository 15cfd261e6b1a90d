package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// UDP sockets bound to devices, as Linux: two sockets on one port bound
// to different devices do not conflict (an unbound one conflicts with
// both), and each takes what came in on its device, whatever address
// the datagram was sent to (a weak host takes eth0's address on eth1
// too). Before, the devices were ignored on input: the datagram went to
// whichever socket bound first, and the second bind failed.
func TestBindToDeviceUDPDemux(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	// C reaches A's eth0 prefix through A's eth1.
	d.sc.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1"), NIC: d.sc.NICByName("eth0")})
	const port = 7000
	bound := func(dev string, reuse bool) (*Socket, error) {
		s := mustSocket(t, d.a, AF_INET, SOCK_DGRAM, 0)
		if reuse {
			s.SetSockOptInt(SOL_SOCKET, SO_REUSEADDR, 1)
		}
		if dev != "" {
			if err := s.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, dev); err != nil {
				t.Fatal(err)
			}
		}
		s.SetTimeout(5 * time.Second)
		return s, s.Bind(Inet("0.0.0.0", port))
	}
	u0, err := bound("eth0", false)
	if err != nil {
		t.Fatal("bind on eth0:", err)
	}
	u1, err := bound("eth1", false)
	if err != nil {
		t.Fatal("bind on eth1 beside eth0's:", err)
	}
	if _, err := bound("", false); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("unbound socket beside the two: %v, want EADDRINUSE", err)
	}
	if _, err := bound("eth1", false); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a second socket on eth1: %v, want EADDRINUSE", err)
	}
	send := func(from *Net, to string, msg string) {
		t.Helper()
		s := mustSocket(t, from, AF_INET, SOCK_DGRAM, 0)
		if _, err := s.SendTo([]byte(msg), 0, Inet(to, port)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(s *Socket, want string) {
		t.Helper()
		b := make([]byte, 64)
		n, _, err := s.RecvFrom(b, 0)
		if err != nil || string(b[:n]) != want {
			t.Fatalf("got %q %v, want %q", b[:n], err, want)
		}
	}
	send(d.b, "10.0.0.1", "from B on eth0")
	recv(u0, "from B on eth0")
	send(d.c, "10.1.0.1", "from C on eth1")
	recv(u1, "from C on eth1")
	// To eth0's address, but in on eth1: the eth1 socket's.
	send(d.c, "10.0.0.1", "from C to eth0's address")
	recv(u1, "from C to eth0's address")
	for _, s := range []*Socket{u0, u1} {
		s.SetBlocking(false)
		if _, _, err := s.RecvFrom(make([]byte, 64), 0); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("a datagram too many: %v", err)
		}
	}
	// With eth1's socket gone, what comes in on eth1 finds no socket:
	// port unreachable, not eth0's socket.
	u1.Close()
	before := d.sa.Stats().UDP.NoPorts.Load()
	send(d.c, "10.1.0.1", "nobody")
	waitFor(t, func() bool { return d.sa.Stats().UDP.NoPorts.Load() == before+1 })
}

// IP_PKTINFO reports the NIC a datagram came in on (ipi_ifindex is
// Linux's skb->dev), not the NIC holding its destination address.
func TestPktinfoIncomingNIC(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	d.sc.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1"), NIC: d.sc.NICByName("eth0")})
	r := mustSocket(t, d.a, AF_INET, SOCK_DGRAM, 0)
	r.SetTimeout(5 * time.Second)
	if err := r.SetSockOptInt(SOL_IP, IP_PKTINFO, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Bind(Inet("0.0.0.0", 7001)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from *Net
		to   string
		nic  int
	}{{d.b, "10.0.0.1", d.a0.ID()}, {d.c, "10.1.0.1", d.a1.ID()}, {d.c, "10.0.0.1", d.a1.ID()}} {
		s := mustSocket(t, c.from, AF_INET, SOCK_DGRAM, 0)
		if _, err := s.SendTo([]byte("x"), 0, Inet(c.to, 7001)); err != nil {
			t.Fatal(err)
		}
		_, _, _, pi, ok, err := r.RecvMsgPktinfo(make([]byte, 8), 0)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if pi.Ifindex != c.nic || pi.Addr.String() != c.to {
			t.Errorf("to %s: ifindex %d addr %v, want ifindex %d", c.to, pi.Ifindex, pi.Addr, c.nic)
		}
	}
}

// A raw socket bound to a device hears only that device's packets
// (raw_v4_match).
func TestBindToDeviceRaw(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	raw := mustSocket(t, d.a, AF_INET, SOCK_RAW, 17) // UDP: nothing else answers it
	if err := raw.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, "eth0"); err != nil {
		t.Fatal(err)
	}
	raw.SetTimeout(5 * time.Second)
	for _, c := range []struct {
		from *Net
		to   string
	}{{d.c, "10.1.0.1"}, {d.b, "10.0.0.1"}} {
		s := mustSocket(t, c.from, AF_INET, SOCK_DGRAM, 0)
		if _, err := s.SendTo([]byte(c.to), 0, Inet(c.to, 9)); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 128)
	n, _, err := raw.RecvFrom(b, 0)
	if err != nil || n < 28 || netip.AddrFrom4([4]byte(b[12:16])).String() != "10.0.0.2" {
		t.Fatalf("raw socket on eth0 read %d bytes %v: want B's datagram first and only", n, err)
	}
	raw.SetBlocking(false)
	if _, _, err := raw.RecvFrom(b, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("the raw socket on eth0 also heard eth1: %v", err)
	}
}

// SO_BINDTOIFINDEX with an index no NIC has, on a datagram socket: kept,
// as Linux keeps it; sends and connect fail with ENODEV, and
// SO_BINDTODEVICE cannot name it (ENODEV).
func TestBindToIfindexUnknownUDP(t *testing.T) {
	d := newDevNet(t, stack.Options{})
	s := mustSocket(t, d.a, AF_INET, SOCK_DGRAM, 0)
	if err := s.SetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX, 999); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX); v != 999 || err != nil {
		t.Fatalf("SO_BINDTOIFINDEX reads %d %v", v, err)
	}
	if _, err := s.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("SO_BINDTODEVICE: %v, want ENODEV", err)
	}
	if _, err := s.SendTo([]byte("x"), 0, Inet("10.0.0.2", 9)); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("sendto: %v, want ENODEV", err)
	}
	if err := s.Connect(Inet("10.0.0.2", 9)); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("connect: %v, want ENODEV", err)
	}
	if err := s.SetSockOptInt(SOL_SOCKET, SO_BINDTOIFINDEX, d.a0.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("x"), 0, Inet("10.0.0.2", 9)); err != nil {
		t.Fatalf("sendto once bound to eth0: %v", err)
	}
	if v, err := s.GetSockOpt(SOL_SOCKET, SO_BINDTODEVICE); v != "eth0" || err != nil {
		t.Fatalf("SO_BINDTODEVICE reads %v %v", v, err)
	}
}

// A datagram socket bound to a device sends through it, though the main
// table's best route is through the other (before, only policy rules saw
// the device: the datagram left by eth0); connect picks that device's
// address as the source. IPv4 and IPv6.
func TestBindToDeviceUDPRoutes(t *testing.T) {
	for _, f := range fams() {
		t.Run(f.name, func(t *testing.T) {
			d := newDevNet(t, stack.Options{})
			port := 7200 + f.port
			recv := map[string]*Socket{}
			for name, n := range map[string]*Net{"B": d.b, "C": d.c} {
				r := mustSocket(t, n, f.fam, SOCK_DGRAM, 0)
				r.SetTimeout(5 * time.Second)
				if err := r.Bind(ap(f.svc, port)); err != nil {
					t.Fatal(err)
				}
				recv[name] = r
			}
			for _, c := range []struct {
				dev, want string
				from      netip.Addr
				connect   bool
			}{
				{"", "B", f.a0, false},
				{"eth1", "C", f.a1, false},
				{"eth1", "C", f.a1, true},
				{"eth0", "B", f.a0, true},
			} {
				u := mustSocket(t, d.a, f.fam, SOCK_DGRAM, 0)
				if c.dev != "" {
					if err := u.SetSockOpt(SOL_SOCKET, SO_BINDTODEVICE, c.dev); err != nil {
						t.Fatal(err)
					}
				}
				if c.connect {
					if err := u.Connect(ap(f.svc, port)); err != nil {
						t.Fatal(err)
					}
					sa, _ := u.GetSockName()
					if got := sa.(*SockaddrInet).AddrPort.Addr(); got != c.from {
						t.Errorf("bound to %q, connected: name %v, want %v", c.dev, got, c.from)
					}
					if _, err := u.Send([]byte(c.dev), 0); err != nil {
						t.Fatal(err)
					}
				} else if _, err := u.SendTo([]byte(c.dev), 0, ap(f.svc, port)); err != nil {
					t.Fatal(err)
				}
				b := make([]byte, 16)
				n, from, err := recv[c.want].RecvFrom(b, 0)
				if err != nil || string(b[:n]) != c.dev {
					t.Fatalf("bound to %q (connect %v): %s read %q %v", c.dev, c.connect, c.want, b[:n], err)
				}
				if got := from.(*SockaddrInet).AddrPort.Addr(); got != c.from {
					t.Errorf("bound to %q (connect %v): from %v, want %v", c.dev, c.connect, got, c.from)
				}
				u.Close()
			}
		})
	}
}
