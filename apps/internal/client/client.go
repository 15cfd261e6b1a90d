// Package client holds what the small clients share: opening a socket
// toward a server, tied to a context.
package client

import (
	"context"
	"net/netip"

	"github.com/sockstack/sockstack/socket"
)

// Dial opens a TCP (udp false) or UDP socket connected to server. The
// socket is closed when ctx ends, which ends any blocked call on it; the
// returned stop releases that hook (call it before closing the socket).
func Dial(ctx context.Context, n *socket.Net, server netip.AddrPort, udp bool) (*socket.Socket, func() bool, error) {
	typ := socket.SOCK_STREAM
	if udp {
		typ = socket.SOCK_DGRAM
	}
	so, err := n.Socket(socket.AF_INET, typ, 0)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { so.Close() })
	if err := so.Connect(socket.InetAddr(server)); err != nil {
		stop()
		so.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	return so, stop, nil
}
