// Package apptest builds test networks for the application tests: two
// sockstack hosts joined by an in-memory pipe, optionally impaired.
package apptest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

var (
	// AddrA is the client host, AddrB the server host.
	AddrA = netip.MustParseAddr("10.0.0.1")
	AddrB = netip.MustParseAddr("10.0.0.2")
	macA  = wire.MAC{2, 0, 0, 0, 0, 1}
	macB  = wire.MAC{2, 0, 0, 0, 0, 2}
)

// Pair is two hosts on one link.
type Pair struct {
	A, B *socket.Net
}

// Options of a Pair.
type Options struct {
	MTU    int                // default 1500
	Impair *link.ImpairConfig // wraps A's end of the link when not nil
}

// New joins 10.0.0.1 (A) and 10.0.0.2 (B) by a pipe.
func New(t testing.TB, o Options) *Pair {
	t.Helper()
	if o.MTU == 0 {
		o.MTU = 1500
	}
	ea, eb := link.NewPipe(macA, macB, o.MTU)
	var epA link.Endpoint = ea
	if o.Impair != nil {
		epA = link.NewImpair(ea, *o.Impair)
	}
	sa, sb := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	na := sa.AddNIC("eth0", epA)
	nb := sb.AddNIC("eth0", eb)
	if err := na.AddAddress(netip.PrefixFrom(AddrA, 24)); err != nil {
		t.Fatal(err)
	}
	if err := nb.AddAddress(netip.PrefixFrom(AddrB, 24)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return &Pair{A: socket.New(sa), B: socket.New(sb)}
}

// Server is AddrB:port.
func Server(port int) netip.AddrPort { return netip.AddrPortFrom(AddrB, uint16(port)) }

// Any is 0.0.0.0:port.
func Any(port int) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)) }

// UDP opens a UDP socket on n with a timeout, closed at cleanup.
func UDP(t testing.TB, n *socket.Net) *socket.Socket {
	t.Helper()
	s, err := n.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(10 * time.Second)
	t.Cleanup(func() { s.Close() })
	return s
}

// TCP connects a stream socket from n to srv.
func TCP(t testing.TB, n *socket.Net, srv netip.AddrPort) *socket.Socket {
	t.Helper()
	s, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(10 * time.Second)
	if err := s.Connect(socket.InetAddr(srv)); err != nil {
		t.Fatalf("connect %v: %v", srv, err)
	}
	return s
}
