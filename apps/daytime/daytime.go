// Package daytime is the Daytime Protocol (RFC 867) over TCP and UDP:
// the current date and time as one line of ASCII text.
package daytime

import (
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// Port is the well-known port.
const Port = 13

// Server is a running service; Close stops it and waits for its goroutines.
type Server = server.Server

// Config bounds the server (MaxClients, IdleTimeout, NoTCP/NoUDP).
type Config = server.Config

// Format is the line sent (RFC 867 suggests no fixed syntax; this is the
// RFC 1123 form, like "Tue, 10 Nov 2009 23:00:00 UTC"), followed by CR LF.
const Format = time.RFC1123

// Line is the daytime line for t.
func Line(t time.Time) []byte { return []byte(t.Format(Format) + "\r\n") }

// Serve starts the daytime service on addr over TCP (the line, then the
// connection closes) and UDP (the line in answer to any datagram). The
// time comes from the stack's clock, so a virtual clock gives a
// reproducible answer.
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	clk := n.Stack().Clock()
	tcp := func(c *socket.Socket, _ socket.Sockaddr) {
		c.SendAll(Line(clk.Now()), 0)
		c.Shutdown(socket.SHUT_WR)
	}
	udp := func(so *socket.Socket) {
		buf := make([]byte, 2048)
		for {
			_, from, err := so.RecvFrom(buf, 0)
			if err != nil {
				if server.Closed(err) {
					return
				}
				continue
			}
			if from != nil {
				so.SendTo(Line(clk.Now()), 0, from)
			}
		}
	}
	return server.Start("daytime", n, addr, cfg, tcp, udp)
}
