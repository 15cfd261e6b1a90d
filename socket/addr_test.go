package socket

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// A port outside 0-65535 used to wrap (70000 became 4464): now every
// constructor and parser refuses it with EINVAL.
func TestPortOutOfRange(t *testing.T) {
	for _, port := range []int{-1, 65536, 70000, 1 << 32} {
		sa := Inet("10.0.0.2", port)
		if sa.AddrPort.IsValid() {
			t.Fatalf("Inet(_, %d) = %v, want an invalid address", port, sa)
		}
		if _, err := ParseInet("10.0.0.2", port); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "out of range") {
			t.Fatalf("ParseInet(_, %d): %v", port, err)
		}
		if _, err := AddrPort(addrB, port); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("AddrPort(_, %d): %v", port, err)
		}
		if err := CheckPort(port); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("CheckPort(%d): %v", port, err)
		}
	}
	for _, port := range []int{0, 1, 65535} {
		sa, err := ParseInet("10.0.0.2", port)
		if err != nil || int(sa.AddrPort.Port()) != port || Inet("10.0.0.2", port).AddrPort != sa.AddrPort {
			t.Fatalf("port %d: %v %v", port, sa, err)
		}
	}
	for _, s := range []string{"70000", "65536", "-1", "x", "", "1e3"} {
		if _, err := ParsePort(s); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), s) {
			t.Fatalf("ParsePort(%q): %v", s, err)
		}
	}
	if p, err := ParsePort("65535"); p != 65535 || err != nil {
		t.Fatalf("ParsePort(65535) = %d, %v", p, err)
	}
	for _, s := range []string{"10.0.0.2:70000", "10.0.0.2", "host:80", "10.0.0.2:-5"} {
		if _, err := ParseAddrPort(s); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("ParseAddrPort(%q): %v", s, err)
		}
	}
	if a, err := ParseAddrPort("10.0.0.2:7"); err != nil || a != netip.AddrPortFrom(addrB, 7) {
		t.Fatalf("ParseAddrPort: %v %v", a, err)
	}
	if _, err := ParseInet("10.0.0.300", 7); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad address: %v", err)
	}

	// The wrapped port never reaches the stack: bind, connect and sendto
	// with such an address fail with EINVAL.
	p := newPair(t, 1500, stack.Options{})
	for _, typ := range []int{SOCK_DGRAM, SOCK_STREAM} {
		s := mustSocket(t, p.a, AF_INET, typ, 0)
		if err := s.Bind(Inet("10.0.0.1", 70000)); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("type %d: bind to port 70000: %v", typ, err)
		}
		s.SetSockOpt(SOL_SOCKET, SO_SNDTIMEO, time.Second)
		if err := s.Connect(Inet("10.0.0.2", 70000)); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("type %d: connect to port 70000: %v", typ, err)
		}
	}
	u := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := u.SendTo([]byte("x"), 0, Inet("10.0.0.2", 70000)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("sendto port 70000: %v", err)
	}
}

// Struct-valued options are accepted by value and by pointer (as
// golang.org/x/sys/unix users write them); a nil pointer is EFAULT.
func TestSockOptStructByPointer(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	byPtr := func(v any) []any {
		switch x := v.(type) {
		case Linger:
			return []any{x, &x}
		case IPMreq:
			return []any{x, &x}
		case PacketMreq:
			return []any{x, &x}
		case netip.Addr:
			return []any{x, &x}
		case time.Duration:
			return []any{x, &x}
		}
		panic("type")
	}

	t.Run("SO_LINGER", func(t *testing.T) {
		for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM} {
			for i, v := range byPtr(Linger{OnOff: true, Linger: 7}) {
				s := mustSocket(t, p.a, AF_INET, typ, 0)
				if err := s.SetSockOpt(SOL_SOCKET, SO_LINGER, v); err != nil {
					t.Fatalf("type %d form %d: %v", typ, i, err)
				}
				got, err := s.GetSockOpt(SOL_SOCKET, SO_LINGER)
				if err != nil || got != (Linger{OnOff: true, Linger: 7}) {
					t.Fatalf("type %d form %d: got %v %v", typ, i, got, err)
				}
			}
		}
	})
	t.Run("SO_RCVTIMEO", func(t *testing.T) {
		for i, v := range byPtr(3 * time.Second) {
			s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
			if err := s.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, v); err != nil {
				t.Fatalf("form %d: %v", i, err)
			}
			if got, err := s.GetSockOptInt(SOL_SOCKET, SO_RCVTIMEO); err != nil || got != 3000000 {
				t.Fatalf("form %d: got %d %v", i, got, err)
			}
		}
	})
	t.Run("IP_MULTICAST_IF", func(t *testing.T) {
		for i, v := range byPtr(addrA) {
			s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
			if err := s.SetSockOpt(SOL_IP, IP_MULTICAST_IF, v); err != nil {
				t.Fatalf("form %d: %v", i, err)
			}
			if got, err := s.GetSockOpt(SOL_IP, IP_MULTICAST_IF); err != nil || got != addrA {
				t.Fatalf("form %d: got %v %v", i, got, err)
			}
		}
	})
	t.Run("IP_ADD_MEMBERSHIP", func(t *testing.T) {
		group := netip.MustParseAddr("224.1.1.9")
		for i, v := range byPtr(IPMreq{Multiaddr: group}) {
			s := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
			if err := s.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, v); err != nil {
				t.Fatalf("form %d: join: %v", i, err)
			}
			// The join took effect: a second join fails, as in Linux.
			if err := s.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: group}); !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("form %d: second join: %v", i, err)
			}
			if err := s.SetSockOpt(SOL_IP, IP_DROP_MEMBERSHIP, v); err != nil {
				t.Fatalf("form %d: drop: %v", i, err)
			}
			if err := s.SetSockOpt(SOL_IP, IP_DROP_MEMBERSHIP, v); !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("form %d: second drop: %v", i, err)
			}
		}
	})
	t.Run("PACKET_ADD_MEMBERSHIP", func(t *testing.T) {
		for i, v := range byPtr(PacketMreq{Ifindex: 1, Type: PACKET_MR_PROMISC}) {
			s := mustSocket(t, p.a, AF_PACKET, SOCK_RAW, Htons(0x0003))
			if err := s.SetSockOpt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, v); err != nil {
				t.Fatalf("form %d: add: %v", i, err)
			}
			if err := s.SetSockOpt(SOL_PACKET, PACKET_DROP_MEMBERSHIP, v); err != nil {
				t.Fatalf("form %d: drop: %v", i, err)
			}
			if err := s.SetSockOpt(SOL_PACKET, PACKET_DROP_MEMBERSHIP, v); !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("form %d: second drop: %v", i, err)
			}
		}
	})
	t.Run("nil pointer", func(t *testing.T) {
		s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
		for _, c := range []struct {
			level, name int
			v           any
		}{
			{SOL_SOCKET, SO_LINGER, (*Linger)(nil)},
			{SOL_IP, IP_ADD_MEMBERSHIP, (*IPMreq)(nil)},
			{SOL_IP, IP_MULTICAST_IF, (*netip.Addr)(nil)},
			{SOL_SOCKET, SO_RCVTIMEO, (*time.Duration)(nil)},
		} {
			if err := s.SetSockOpt(c.level, c.name, c.v); !errors.Is(err, syscall.EFAULT) {
				t.Fatalf("%T: %v, want EFAULT", c.v, err)
			}
		}
	})
}
