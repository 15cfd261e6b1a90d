package netconn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	macA  = wire.MAC{2, 0, 0, 0, 0, 1}
	macB  = wire.MAC{2, 0, 0, 0, 0, 2}
)

type pair struct {
	a, b *socket.Net
}

// newPair joins two hosts, 10.0.0.1 (a) and 10.0.0.2 (b), by an
// in-memory Ethernet pipe.
func newPair(t testing.TB) *pair {
	t.Helper()
	ea, eb := link.NewPipe(macA, macB, 1500)
	sa, sb := stack.New(stack.Options{}), stack.New(stack.Options{})
	na := sa.AddNIC("eth0", ea)
	nb := sb.AddNIC("eth0", eb)
	if err := na.AddAddress(netip.PrefixFrom(addrA, 24)); err != nil {
		t.Fatal(err)
	}
	if err := nb.AddAddress(netip.PrefixFrom(addrB, 24)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return &pair{a: socket.New(sa), b: socket.New(sb)}
}

// newHost is one stack on its own (loopback only).
func newHost(t testing.TB) *socket.Net {
	t.Helper()
	s := stack.New(stack.Options{})
	t.Cleanup(s.Close)
	return socket.New(s)
}

func mustListen(t testing.TB, n *socket.Net, network, addr string) net.Listener {
	t.Helper()
	l, err := Listen(n, network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitBlocked waits until someone is waiting on the socket's event
// queue: a blocked Read, Write or Accept has registered.
func waitBlocked(t testing.TB, s *socket.Socket) {
	t.Helper()
	give := time.Now().Add(10 * time.Second) // hang guard only
	for s.Waiter().Empty() {
		if time.Now().After(give) {
			t.Fatal("the call never blocked")
		}
		runtime.Gosched()
	}
}

// checkDeadlineErr asserts err is what package net returns past a deadline.
func checkDeadlineErr(t testing.TB, err error, op string) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%s: got %T %v, want *net.OpError", op, err, err)
	}
	if oe.Op != op {
		t.Errorf("Op = %q, want %q", oe.Op, op)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%v: errors.Is(err, os.ErrDeadlineExceeded) false", err)
	}
	if !oe.Timeout() {
		t.Errorf("%v: Timeout() false", err)
	}
	if ne, ok := oe.Err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		t.Errorf("%v: OpError.Err does not satisfy Timeout()", err)
	}
}

// checkClosedErr asserts err is package net's use of a closed conn.
func checkClosedErr(t testing.TB, err error, op string) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%s: got %T %v, want *net.OpError", op, err, err)
	}
	if oe.Op != op {
		t.Errorf("Op = %q, want %q", oe.Op, op)
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("%v: errors.Is(err, net.ErrClosed) false", err)
	}
}
