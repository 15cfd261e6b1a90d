// Command timeout is a server that gives each client a deadline: a
// client that sends nothing for idle time is dropped, so one silent
// client cannot hold the server (or one of its goroutines) forever. The
// per-socket timeout is Python's settimeout / SO_RCVTIMEO: Recv fails with
// an error that matches EAGAIN and says Timeout() == true.
//
//	go run ./examples/timeout
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const (
	port = 20010
	idle = 300 * time.Millisecond
)

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "talker", "sleeper")
	defer nw.Close()
	srv := nw.Hosts[0]

	ls, err := srv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	ls.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	if err := ls.Listen(8); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 { // this demo serves its two clients one after the other
			c, addr, err := ls.Accept()
			if err != nil {
				log.Fatal(err)
			}
			handle(c, addr)
		}
		ls.Close()
	}()

	// A client that talks: it gets its answer.
	t := dial(nw.Hosts[1], srv.Addr)
	t.SendAll([]byte("ping"), 0)
	buf := make([]byte, 64)
	n, err := t.Recv(buf, 0)
	fmt.Printf("talker: got %q (%v)\n", buf[:n], err)
	t.Close()

	// A client that says nothing: the server gives up on it after idle,
	// and the client sees the end of the stream.
	s := dial(nw.Hosts[2], srv.Addr)
	n, err = s.Recv(buf, 0)
	if n == 0 && err == nil {
		fmt.Println("sleeper: the server closed the connection")
	} else {
		fmt.Fprintf(os.Stderr, "sleeper: unexpected %q %v\n", buf[:n], err)
		os.Exit(1)
	}
	s.Close()
	<-done
}

// handle serves one client; every Recv waits at most idle.
func handle(c sockapi.Sock, addr socket.Sockaddr) {
	defer c.Close()
	c.SetTimeout(idle)
	buf := make([]byte, 1024)
	for {
		n, err := c.Recv(buf, 0)
		var te interface{ Timeout() bool }
		switch {
		case errors.As(err, &te) && te.Timeout() && errors.Is(err, syscall.EAGAIN):
			fmt.Printf("server: %v sent nothing for %v, closing\n", addr, idle)
			return
		case err != nil:
			fmt.Printf("server: %v: %v\n", addr, err)
			return
		case n == 0:
			fmt.Printf("server: %v said goodbye\n", addr)
			return
		}
		c.SendAll([]byte("pong"), 0)
	}
}

func dial(h vnet.Host, server string) sockapi.Sock {
	s, err := h.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Connect(socket.Inet(server, port)); err != nil {
		log.Fatal(err)
	}
	s.SetTimeout(10 * time.Second) // a bound for the demo, far above idle
	return s
}
