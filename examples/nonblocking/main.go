// Command nonblocking is a single-goroutine echo server for many clients
// at once: every socket is non-blocking and a poller (like epoll) says
// which ones are ready, so the server never waits on one client while
// another has data. Three clients on three hosts talk to it concurrently.
//
//	go run ./examples/nonblocking
package main

import (
	"errors"
	"fmt"
	"log"
	"sync"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
)

const (
	port    = 20009
	clients = 3
)

func main() {
	nw := vnet.New("server", "c1", "c2", "c3")
	defer nw.Close()
	srv := nw.Hosts[0]

	ls, err := srv.Net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	if err := ls.Listen(socket.SOMAXCONN); err != nil {
		log.Fatal(err)
	}
	ls.SetBlocking(false) // Accept returns EAGAIN instead of waiting

	var wg sync.WaitGroup
	for i, h := range nw.Hosts[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(h, srv.Addr, fmt.Sprintf("message %d from %s", i+1, h.Name))
		}()
	}
	serve(ls)
	wg.Wait()
}

// serve runs the event loop until every client has come and gone.
func serve(ls *socket.Socket) {
	p := socket.NewPoller()
	defer p.Close()
	// The data word tells events apart: 0 is the listener.
	if err := p.Add(ls, waiter.EventIn, 0); err != nil {
		log.Fatal(err)
	}
	conns := map[uint64]*socket.Socket{}
	var next uint64 = 1
	served := 0
	events := make([]socket.PollEvent, 16)
	buf := make([]byte, 4096)
	for served < clients {
		n, err := p.Wait(events, -1)
		if err != nil {
			log.Fatal("wait: ", err)
		}
		for _, ev := range events[:n] {
			if ev.Data == 0 { // the listener is readable: connections to accept
				for {
					c, addr, err := ls.Accept()
					if errors.Is(err, syscall.EAGAIN) {
						break // accepted every pending one
					} else if err != nil {
						log.Fatal("accept: ", err)
					}
					c.SetBlocking(false)
					conns[next] = c
					p.Add(c, waiter.EventIn, next)
					next++
					fmt.Println("server: accepted", addr)
				}
				continue
			}
			c := conns[ev.Data]
			k, err := c.Recv(buf, 0)
			if errors.Is(err, syscall.EAGAIN) {
				continue // readiness can be stale: just wait again
			}
			if err != nil || k == 0 { // error or end of stream: forget the client
				peer, _ := c.GetPeerName()
				fmt.Println("server: closed", peer)
				p.Remove(c)
				c.Close()
				delete(conns, ev.Data)
				served++
				continue
			}
			// A short echo is fine here: replies are small and the send
			// buffer is empty. A real server would keep the rest and wait
			// for EventOut.
			if _, err := c.Send(buf[:k], 0); err != nil {
				log.Fatal("send: ", err)
			}
		}
	}
	ls.Close()
	fmt.Printf("server: served %d clients from one goroutine\n", served)
}

func client(h vnet.Host, server, msg string) {
	s, err := h.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(socket.Inet(server, port)); err != nil {
		log.Fatalf("%s: connect: %v", h.Name, err)
	}
	s.SetTimeout(5 * time.Second)
	if err := s.SendAll([]byte(msg), 0); err != nil {
		log.Fatal(err)
	}
	got := make([]byte, 0, len(msg))
	buf := make([]byte, 256)
	for len(got) < len(msg) {
		n, err := s.Recv(buf, 0)
		if err != nil || n == 0 {
			log.Fatalf("%s: recv: %v", h.Name, err)
		}
		got = append(got, buf[:n]...)
	}
	fmt.Printf("%s: echoed %q\n", h.Name, got)
}
