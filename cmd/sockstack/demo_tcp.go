package main

import (
	"fmt"
	"io"
	"time"

	"github.com/sockstack/sockstack/socket"
)

func init() { demoSteps = append(demoSteps, demoTCPEcho) }

// demoTCPEcho is the classic TCP echo exchange: bob listens on 7321, alice
// connects, sends "Hello, world", reads the echo, and both close.
func demoTCPEcho(w io.Writer, alice, bob *vhost) error {
	fmt.Fprintln(w, "TCP echo: handshake, data, teardown (server on bob:7321)")
	l, err := bob.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := l.Bind(socket.Inet("0.0.0.0", 7321)); err != nil {
		return err
	}
	if err := l.Listen(5); err != nil {
		return err
	}
	served := serveEcho(l)
	c, err := alice.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(socket.Inet(bob.addr.String(), 7321)); err != nil {
		return err
	}
	local, _ := c.GetSockName()
	fmt.Fprintf(w, "  alice %v connected to bob %v:7321\n", local, bob.addr)
	msg := []byte("Hello, world")
	if err := c.SendAll(msg, 0); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	n, err := c.Recv(buf, socket.MSG_WAITALL)
	if err != nil {
		return err
	}
	if string(buf[:n]) != string(msg) {
		return fmt.Errorf("echo differs: %q", buf[:n])
	}
	fmt.Fprintf(w, "  alice received %q back\n", buf[:n])
	// Orderly close: alice sends FIN; the server sees EOF and closes too.
	if err := c.Shutdown(socket.SHUT_WR); err != nil {
		return err
	}
	if n, err := c.Recv(buf, 0); n != 0 || err != nil {
		return fmt.Errorf("expected end of stream, got %d bytes, %v", n, err)
	}
	if err := <-served; err != nil {
		return err
	}
	fmt.Fprintln(w, "  both sides closed (alice's end stays in TIME_WAIT)")
	return nil
}

// serveEcho accepts one connection on l and echoes it until EOF; the
// channel gets nil then, or the error that ended it.
func serveEcho(l *socket.Socket) <-chan error {
	served := make(chan error, 1)
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		for {
			n, err := c.Recv(buf, 0)
			if err != nil || n == 0 {
				served <- err
				return
			}
			if err := c.SendAll(buf[:n], 0); err != nil {
				served <- err
				return
			}
		}
	}()
	return served
}
