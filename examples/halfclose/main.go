// Command halfclose shows shutdown(SHUT_WR): the client sends its whole
// request and then closes only its sending half. The server learns "that
// is all" from reading end of stream (recv returns 0) — no length prefix or
// terminator needed — and still sends its answer on the half that is
// open, then closes. It is how `nc -N`, HTTP/1.0 uploads and many simple
// protocols mark the end of a request.
//
//	go run ./examples/halfclose
package main

import (
	"errors"
	"fmt"
	"log"
	"strings"
	"syscall"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const port = 20014

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "client")
	defer nw.Close()
	srv, cli := nw.Hosts[0], nw.Hosts[1]

	ls, err := srv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	ls.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	if err := ls.Listen(1); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, _, err := ls.Accept()
		if err != nil {
			log.Fatal(err)
		}
		serve(c)
		ls.Close()
	}()

	s, err := cli.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(socket.Inet(srv.Addr, port)); err != nil {
		log.Fatal(err)
	}
	for _, part := range []string{"the quick brown fox ", "jumps over ", "the lazy dog"} {
		s.SendAll([]byte(part), 0)
	}
	// Done sending: a FIN goes out, the receiving half stays open.
	if err := s.Shutdown(socket.SHUT_WR); err != nil {
		log.Fatal("shutdown: ", err)
	}
	// Sending after SHUT_WR is an error (EPIPE), as on Linux.
	if _, err := s.Send([]byte("more"), socket.MSG_NOSIGNAL); errors.Is(err, syscall.EPIPE) {
		fmt.Println("client: send after shutdown(SHUT_WR):", err)
	}
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := s.Recv(buf, 0)
		if err != nil {
			log.Fatal("client recv: ", err)
		}
		if n == 0 {
			break // the server closed too
		}
		reply = append(reply, buf[:n]...)
	}
	fmt.Printf("client: reply %q\n", reply)
	<-done
}

// serve reads the request to its end, then answers.
func serve(c sockapi.Sock) {
	defer c.Close()
	var req []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Recv(buf, 0)
		if err != nil {
			log.Fatal("server recv: ", err)
		}
		if n == 0 {
			break // the client's FIN: the request is complete
		}
		req = append(req, buf[:n]...)
	}
	fmt.Printf("server: request of %d bytes complete (peer sent FIN)\n", len(req))
	answer := fmt.Sprintf("%d words: %s", len(strings.Fields(string(req))), strings.ToUpper(string(req)))
	if err := c.SendAll([]byte(answer), 0); err != nil {
		log.Fatal("server send: ", err)
	}
}
