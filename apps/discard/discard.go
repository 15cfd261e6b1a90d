// Package discard is the Discard Protocol (RFC 863) over TCP and UDP:
// everything received is thrown away and nothing is answered.
package discard

import (
	"net/netip"
	"sync/atomic"

	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// Port is the well-known port.
const Port = 9

// Server is a running service; Close stops it and waits for its goroutines.
type Server = server.Server

// Config bounds the server (MaxClients, IdleTimeout, NoTCP/NoUDP).
type Config = server.Config

// Counter, when not nil in ServeCounting, receives the number of bytes
// discarded (for tests and the status page).
type Counter = atomic.Uint64

// Serve starts the discard service on addr over TCP and UDP.
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	return ServeCounting(n, addr, cfg, nil)
}

// ServeCounting is Serve that adds every discarded byte to bytes.
func ServeCounting(n *socket.Net, addr netip.AddrPort, cfg Config, bytes *Counter) (*Server, error) {
	if bytes == nil {
		bytes = new(Counter)
	}
	tcp := func(c *socket.Socket, _ socket.Sockaddr) {
		buf := make([]byte, 65536)
		for {
			k, err := c.Recv(buf, 0)
			if err != nil || k == 0 {
				return
			}
			bytes.Add(uint64(k))
		}
	}
	udp := func(so *socket.Socket) {
		buf := make([]byte, 65536)
		for {
			k, _, err := so.RecvFrom(buf, 0)
			if err != nil {
				if server.Closed(err) {
					return
				}
				continue
			}
			bytes.Add(uint64(k))
		}
	}
	return server.Start("discard", n, addr, cfg, tcp, udp)
}
