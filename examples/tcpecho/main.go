// Command tcpecho is the classic TCP echo server and client: the server
// binds, listens and accepts; the client connects, sends a line and reads
// back what the server echoed. Both run in this process, on two hosts of
// the built-in virtual network (or on the kernel with -kernel).
//
//	go run ./examples/tcpecho
package main

import (
	"fmt"
	"log"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// An arbitrary non-privileged port, below Linux's ephemeral range
// (32768-60999): with -kernel, a socket another program connected from
// that range cannot be holding it.
const port = 20007

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "client")
	defer nw.Close()
	srv, cli := nw.Hosts[0], nw.Hosts[1]

	// Server: socket, bind, listen. Listening happens before the client
	// starts, so its connect cannot arrive too early.
	ls, err := srv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	// SO_REUSEADDR: a restarted server can bind while old connections
	// linger in TIME-WAIT.
	ls.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal("bind: ", err)
	}
	if err := ls.Listen(1); err != nil {
		log.Fatal("listen: ", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ls)
	}()

	// Client: socket, connect, send, receive.
	s, err := cli.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Connect(socket.Inet(srv.Addr, port)); err != nil {
		log.Fatal("connect: ", err)
	}
	msg := []byte("Hello, world")
	if err := s.SendAll(msg, 0); err != nil { // Send may write less; SendAll loops
		log.Fatal(err)
	}
	// TCP is a byte stream: the echo may come back in several pieces, so
	// read until we have as many bytes as we sent.
	got := make([]byte, 0, len(msg))
	buf := make([]byte, 1024)
	for len(got) < len(msg) {
		n, err := s.Recv(buf, 0)
		if err != nil {
			log.Fatal("recv: ", err)
		}
		if n == 0 {
			log.Fatal("server closed the connection early")
		}
		got = append(got, buf[:n]...)
	}
	fmt.Printf("client: received %q\n", got)
	s.Close() // the server's Recv returns 0: end of stream
	<-done
}

// serve accepts one connection and echoes it until the peer closes.
func serve(ls sockapi.Sock) {
	conn, addr, err := ls.Accept()
	if err != nil {
		log.Fatal("accept: ", err)
	}
	defer conn.Close()
	fmt.Println("server: connected by", addr)
	buf := make([]byte, 1024)
	for {
		n, err := conn.Recv(buf, 0)
		if err != nil {
			log.Fatal("server recv: ", err)
		}
		if n == 0 { // orderly shutdown by the client
			fmt.Println("server: client closed the connection")
			return
		}
		if err := conn.SendAll(buf[:n], 0); err != nil {
			log.Fatal("server send: ", err)
		}
	}
}
