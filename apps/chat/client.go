package chat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/sockstack/sockstack/apps/internal/client"
	"github.com/sockstack/sockstack/socket"
)

// ClientConfig chooses the transport and the name.
type ClientConfig struct {
	UDP  bool   // UDP instead of TCP
	Name string // sent as "/join NAME" first when not empty
}

// Client joins the chat server at srv, sends every line read from in
// (lines starting with "/" are commands: /who, /join NAME, /quit), and
// writes every message from the server to out, one per line. At the end
// of in it sends "/quit". It returns nil at the end of in or when the
// server ends the session, ctx.Err() when ctx ends, or the first error.
func Client(ctx context.Context, n *socket.Net, srv netip.AddrPort, cfg ClientConfig, in io.Reader, out io.Writer) error {
	so, stop, err := client.Dial(ctx, n, srv, cfg.UDP)
	if err != nil {
		return err
	}
	defer so.Close()
	defer stop()
	send := func(line string) error {
		if cfg.UDP {
			_, err := so.Send([]byte(line), 0)
			return err
		}
		return so.SendAll([]byte(line+"\n"), 0)
	}
	// The receiver prints until the socket closes or the server says bye.
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- receive(so, cfg.UDP, out)
	}()
	if cfg.Name != "" {
		if err := send("/join " + cfg.Name); err != nil {
			return err
		}
	}
	sc := bufio.NewScanner(in)
	quit := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if err := send(line); err != nil {
			return err
		}
		if line == "/quit" {
			quit = true
			break
		}
	}
	if !quit {
		send("/quit")
	}
	// Wait for the server's "* bye" (or the end of the TCP stream), so
	// that everything relayed before it is printed.
	select {
	case err := <-recvDone:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func receive(so *socket.Socket, udp bool, out io.Writer) error {
	buf := make([]byte, 65536)
	if udp {
		for {
			k, err := so.Recv(buf, 0)
			if err != nil {
				return err
			}
			msg := string(buf[:k])
			fmt.Fprintln(out, msg)
			if msg == "* bye" || msg == "* room full" {
				return nil
			}
		}
	}
	sc := bufio.NewScanner(socketReader{so})
	sc.Buffer(buf, len(buf))
	for sc.Scan() {
		fmt.Fprintln(out, sc.Text())
		if t := sc.Text(); t == "* bye" || t == "* room full" {
			return nil
		}
	}
	return sc.Err()
}
