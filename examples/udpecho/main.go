// Command udpecho is the classic UDP echo server and client. UDP has no
// connections: the server binds and answers each datagram to the address
// it came from; the client sends with sendto and waits for the answer
// with a timeout, because a datagram (or its answer) can be lost.
//
//	go run ./examples/udpecho
package main

import (
	"errors"
	"fmt"
	"log"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const port = 20007

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "client")
	defer nw.Close()
	srv, cli := nw.Hosts[0], nw.Hosts[1]

	// Server: a datagram socket bound to the port; no listen, no accept.
	ss, err := srv.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := ss.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal("bind: ", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ss)
	}()

	// Client: no bind needed, the first sendto picks an ephemeral port.
	cs, err := cli.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	cs.SetTimeout(2 * time.Second) // like Python's settimeout: Recv fails after 2 s
	buf := make([]byte, 2048)
	for _, line := range []string{"hello", "datagrams keep their boundaries", "bye"} {
		if _, err := cs.SendTo([]byte(line), 0, socket.Inet(srv.Addr, port)); err != nil {
			log.Fatal("sendto: ", err)
		}
		n, from, err := cs.RecvFrom(buf, 0)
		if errors.Is(err, syscall.EAGAIN) { // the timeout error matches EAGAIN, as SO_RCVTIMEO does
			log.Fatal("no answer within 2 s")
		} else if err != nil {
			log.Fatal("recvfrom: ", err)
		}
		fmt.Printf("client: %q from %v\n", buf[:n], from)
	}
	ss.Close() // wakes the server's RecvFrom with an error
	<-done
}

// serve echoes datagrams until the socket is closed.
func serve(s sockapi.Sock) {
	buf := make([]byte, 65535) // the largest UDP payload fits
	for {
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil {
			fmt.Println("server: stopped")
			return
		}
		fmt.Printf("server: %d bytes from %v\n", n, from)
		s.SendTo(buf[:n], 0, from)
	}
}
