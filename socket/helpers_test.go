package socket

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
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
	a, b   *Net
	sa, sb *stack.Stack
}

// newPair joins two hosts, 10.0.0.1 and 10.0.0.2, by an in-memory pipe.
func newPair(t testing.TB, mtu int, opts stack.Options) *pair {
	t.Helper()
	ea, eb := link.NewPipe(macA, macB, mtu)
	return newPairOn(t, ea, eb, opts, opts)
}

// newPairOn is newPair over the given ends, with each host's options.
func newPairOn(t testing.TB, ea, eb link.Endpoint, optsA, optsB stack.Options) *pair {
	t.Helper()
	sa, sb := stack.New(optsA), stack.New(optsB)
	na := sa.AddNIC("eth0", ea)
	nb := sb.AddNIC("eth0", eb)
	if err := na.AddAddress(netip.PrefixFrom(addrA, 24)); err != nil {
		t.Fatal(err)
	}
	if err := nb.AddAddress(netip.PrefixFrom(addrB, 24)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return &pair{a: New(sa), b: New(sb), sa: sa, sb: sb}
}

func mustSocket(t testing.TB, n *Net, fam, typ, proto int) *Socket {
	t.Helper()
	s, err := n.Socket(fam, typ, proto)
	if err != nil {
		t.Fatalf("socket(%d,%d,%d): %v", fam, typ, proto, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ap(a netip.Addr, port int) *SockaddrInet { return InetAddr(netip.AddrPortFrom(a, uint16(port))) }

// loopReceiver makes a stack and a UDP socket of family fam bound to its
// loopback address (127.0.0.1 or ::1) on a free port; it returns the
// socket layer, the socket and its address.
func loopReceiver(t testing.TB, fam int) (*Net, *Socket, Sockaddr) {
	t.Helper()
	n := New(stack.New(stack.Options{}))
	r := mustSocket(t, n, fam, SOCK_DGRAM, 0)
	lo := Sockaddr(Inet("127.0.0.1", 0))
	if fam == AF_INET6 {
		lo = Inet6("::1", 0)
	}
	if err := r.Bind(lo); err != nil {
		t.Fatal(err)
	}
	ra, err := r.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	return n, r, ra
}
