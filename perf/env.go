package perf

import (
	"context"
	"net"
	"net/netip"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Sockstack returns two sockstack hosts, 10.0.0.1 (A) and 10.0.0.2 (B),
// joined by an in-memory Ethernet pipe with the given IP MTU.
func Sockstack(mtu int) *Env {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, mtu)
	opts := stack.Options{}
	// TIME_WAIT reuse for the conn benchmark is the stack's normal
	// behaviour (timestamps); no special setting is needed.
	sa, sb := stack.New(opts), stack.New(opts)
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	na, nb := socket.New(sa), socket.New(sb)
	d := &netconn.Dialer{Net: na}
	return &Env{
		Name:    "sockstack",
		AddrB:   "10.0.0.2",
		ListenB: func(network, addr string) (net.Listener, error) { return netconn.Listen(nb, network, addr) },
		DialA:   d.DialContext,
		ListenPacket: func(side byte, network, addr string) (net.PacketConn, error) {
			if side == 'A' {
				return netconn.ListenPacket(na, network, addr)
			}
			return netconn.ListenPacket(nb, network, addr)
		},
		Close: func() { sa.Close(); sb.Close() },
	}
}

// Kernel is the host kernel's loopback through Go's net.
func Kernel() *Env {
	var d net.Dialer
	return &Env{
		Name:    "linux loopback",
		AddrB:   "127.0.0.1",
		ListenB: net.Listen,
		DialA:   func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
		ListenPacket: func(side byte, network, addr string) (net.PacketConn, error) {
			if addr == ":0" {
				addr = "127.0.0.1:0"
			}
			return net.ListenPacket(network, addr)
		},
		Close: func() {},
	}
}
