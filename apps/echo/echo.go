// Package echo is the Echo Protocol (RFC 862) over TCP and UDP on a
// sockstack host: a server that sends back what it receives, and a
// client that sends lines and prints the replies.
package echo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/apps/internal/client"
	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// Port is the well-known port.
const Port = 7

// Server is a running service; Close stops it and waits for its goroutines.
type Server = server.Server

// Config bounds the server (MaxClients, IdleTimeout, NoTCP/NoUDP).
type Config = server.Config

// Serve starts the echo service on addr (0.0.0.0:7 for the usual one),
// over TCP and UDP unless cfg leaves one out.
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	return server.Start("echo", n, addr, cfg, serveConn, serveUDP)
}

func serveConn(c *socket.Socket, _ socket.Sockaddr) {
	buf := make([]byte, 16384)
	for {
		k, err := c.Recv(buf, 0)
		if err != nil || k == 0 {
			return
		}
		if err := c.SendAll(buf[:k], 0); err != nil {
			return
		}
	}
}

func serveUDP(so *socket.Socket) {
	buf := make([]byte, 65536)
	for {
		k, from, err := so.RecvFrom(buf, 0)
		if err != nil {
			if server.Closed(err) {
				return
			}
			continue // an ICMP error reported on the socket; keep serving
		}
		if from == nil {
			continue
		}
		so.SendTo(buf[:k], 0, from)
	}
}

// ClientConfig chooses the transport and how long to wait.
type ClientConfig struct {
	UDP     bool          // UDP instead of TCP
	Timeout time.Duration // wait for each reply; default 5s
	Retries int           // UDP: resend a line this many times when no reply came; default 2
}

// Client connects to the echo server at srv, sends every line read from
// in (TCP: with its newline; UDP: one datagram per line), and writes each
// reply to out followed by a newline. It returns nil at the end of in,
// ctx.Err() when ctx ends, or the first error (a UDP reply that never
// comes after the retries is an error wrapping EAGAIN).
func Client(ctx context.Context, n *socket.Net, srv netip.AddrPort, cfg ClientConfig, in io.Reader, out io.Writer) error {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 2
	}
	so, stop, err := client.Dial(ctx, n, srv, cfg.UDP)
	if err != nil {
		return err
	}
	defer so.Close()
	defer stop()
	so.SetTimeout(cfg.Timeout)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 65000)
	buf := make([]byte, 65536)
	for sc.Scan() {
		var reply []byte
		if cfg.UDP {
			reply, err = udpRoundTrip(so, sc.Bytes(), buf, cfg.Retries)
		} else {
			reply, err = tcpRoundTrip(so, append(sc.Bytes(), '\n'), buf)
			reply = trimNL(reply)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", reply); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return nil
}

func trimNL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return b[:len(b)-1]
	}
	return b
}

func tcpRoundTrip(so *socket.Socket, msg, buf []byte) ([]byte, error) {
	if err := so.SendAll(msg, 0); err != nil {
		return nil, err
	}
	got := buf[:0]
	for len(got) < len(msg) {
		k, err := so.Recv(buf[len(got):len(msg)], 0)
		if err != nil {
			return nil, err
		}
		if k == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		got = buf[:len(got)+k]
	}
	return got, nil
}

func udpRoundTrip(so *socket.Socket, msg, buf []byte, retries int) ([]byte, error) {
	var err error
	for try := 0; try <= retries; try++ {
		if _, err = so.Send(msg, 0); err != nil {
			return nil, err
		}
		for {
			var k int
			k, err = so.Recv(buf, 0)
			if err != nil {
				break
			}
			if bytes.Equal(buf[:k], msg) {
				return buf[:k], nil
			}
			// A late reply to an earlier line: not ours, keep waiting.
		}
		if !server.Timeout(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("echo: no reply after %d tries: %w", retries+1, err)
}
