// Package chargen is the Character Generator Protocol (RFC 864) over TCP
// and UDP: lines of 72 printable ASCII characters, each starting one
// character further along the 95-character cycle.
package chargen

import (
	"net/netip"

	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// Port is the well-known port.
const Port = 19

// Server is a running service; Close stops it and waits for its goroutines.
type Server = server.Server

// Config bounds the server (MaxClients, IdleTimeout, NoTCP/NoUDP).
type Config = server.Config

const (
	first   = ' '
	cycle   = 95 // printable characters ' '..'~'
	lineLen = 72
	// UDPLines lines go in each UDP answer: 6*74 = 444 bytes, under the
	// 512 the RFC allows.
	UDPLines = 6
)

// Line returns line number i (from 0) with its CR LF.
func Line(i int) []byte {
	b := make([]byte, 0, lineLen+2)
	return AppendLine(b, i)
}

// AppendLine appends line i with its CR LF.
func AppendLine(b []byte, i int) []byte {
	// Line 0 starts at '!' as in the RFC's sample; space comes 94 later.
	start := (i%cycle + 1) % cycle
	for j := 0; j < lineLen; j++ {
		b = append(b, byte(first+(start+j)%cycle))
	}
	return append(b, '\r', '\n')
}

// Serve starts chargen on addr: over TCP it sends lines until the client
// closes (what the client sends is discarded); over UDP every datagram
// gets UDPLines lines back, continuing the cycle per server.
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	tcp := func(c *socket.Socket, _ socket.Sockaddr) {
		// Drain input so the peer's sends never block; the reader ends
		// when the connection closes.
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 4096)
			for {
				k, err := c.Recv(buf, 0)
				if err != nil && server.Timeout(err) {
					continue // a quiet client is normal here
				}
				if err != nil || k == 0 {
					return
				}
			}
		}()
		// 56 lines at a time, about 4 KB.
		buf := make([]byte, 0, 56*(lineLen+2))
		line := 0
		for {
			buf = buf[:0]
			for k := 0; k < 56; k++ {
				buf = AppendLine(buf, line)
				line = (line + 1) % cycle
			}
			if err := c.SendAll(buf, 0); err != nil {
				break
			}
		}
		c.Close() // ends the reader's Recv with EBADF
		<-done
	}
	udp := func(so *socket.Socket) {
		in := make([]byte, 2048)
		out := make([]byte, 0, UDPLines*(lineLen+2))
		line := 0
		for {
			_, from, err := so.RecvFrom(in, 0)
			if err != nil {
				if server.Closed(err) {
					return
				}
				continue
			}
			if from == nil {
				continue
			}
			out = out[:0]
			for k := 0; k < UDPLines; k++ {
				out = AppendLine(out, line)
				line = (line + 1) % cycle
			}
			so.SendTo(out, 0, from)
		}
	}
	return server.Start("chargen", n, addr, cfg, tcp, udp)
}
