// Command gaiecho is the protocol-independent echo server and client of
// the Python socket tutorial: neither hard-codes an address family.
// Both ask getaddrinfo for candidate addresses and use the first one that
// works: a candidate that fails (here the server's IPv6 address, where
// nothing listens because the server bound the IPv4 wildcard first) is
// skipped, exactly as the tutorial's loop skips it, and the next is tried.
//
//	go run ./examples/gaiecho
package main

import (
	"fmt"
	"log"
	"net/netip"
	"strings"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
)

const service = "20007"

func main() {
	nw := vnet.New("server", "client")
	defer nw.Close()
	srv, cli := nw.Hosts[0], nw.Hosts[1]

	// The client's hosts table gives "server" its IPv6 address first and
	// its IPv4 one second, as a dual-stack name in DNS resolves.
	cli.Net.Hosts().Remove("server")
	cli.Net.Hosts().Add("server", netip.MustParseAddr(srv.Addr6), netip.MustParseAddr(srv.Addr))

	// Server: a passive lookup with no host gives the wildcard address of
	// each family. Bind and listen on the first that works.
	res, err := srv.Net.GetAddrInfo("", service, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
	if err != nil {
		log.Fatal("getaddrinfo: ", err)
	}
	// As on Linux, the IPv4 wildcard comes first, so the loop binds
	// 0.0.0.0 and the server listens on IPv4 only: the classic
	// tutorial's server, and the reason its client must try every address.
	fmt.Println("server: getaddrinfo:", candidates(res))
	var ls *socket.Socket
	for _, ai := range res {
		s, err := srv.Net.Socket(ai.Family, ai.Type, ai.Proto)
		if err != nil {
			fmt.Printf("server: %s %v: socket: %v (skipped)\n", family(ai.Family), ai.Addr, err)
			continue
		}
		if err := s.Bind(ai.Addr); err != nil {
			s.Close()
			continue
		}
		if err := s.Listen(1); err != nil {
			s.Close()
			continue
		}
		fmt.Printf("server: listening on %s %v\n", family(ai.Family), ai.Addr)
		ls = s
		break
	}
	if ls == nil {
		log.Fatal("server: could not open socket")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, addr, err := ls.Accept()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("server: connected by", addr)
		buf := make([]byte, 1024)
		for {
			n, err := conn.Recv(buf, 0)
			if err != nil || n == 0 {
				break
			}
			conn.SendAll(buf[:n], 0)
		}
		conn.Close()
		ls.Close()
	}()

	// Client: look the name up and connect to the first address that
	// accepts; nothing listens on the IPv6 address, so that connect is
	// refused and the client goes on to IPv4.
	res, err = cli.Net.GetAddrInfo("server", service, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, 0)
	if err != nil {
		log.Fatal("getaddrinfo: ", err)
	}
	fmt.Println("client: getaddrinfo:", candidates(res))
	var s *socket.Socket
	for _, ai := range res {
		c, err := cli.Net.Socket(ai.Family, ai.Type, ai.Proto)
		if err != nil {
			fmt.Printf("client: %s %v: socket: %v (skipped)\n", family(ai.Family), ai.Addr, err)
			continue
		}
		if err := c.Connect(ai.Addr); err != nil {
			fmt.Printf("client: %s %v: connect: %v (skipped)\n", family(ai.Family), ai.Addr, err)
			c.Close()
			continue
		}
		fmt.Printf("client: connected to %s %v\n", family(ai.Family), ai.Addr)
		s = c
		break
	}
	if s == nil {
		log.Fatal("client: could not open socket")
	}
	s.SendAll([]byte("Hello, world"), 0)
	buf := make([]byte, 1024)
	n, err := s.Recv(buf, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("client: received %q\n", buf[:n])
	s.Close()
	<-done
}

func candidates(res []socket.AddrInfo) string {
	var parts []string
	for _, ai := range res {
		parts = append(parts, fmt.Sprintf("%s %v", family(ai.Family), ai.Addr))
	}
	return strings.Join(parts, ", ")
}

func family(f int) string {
	if f == socket.AF_INET6 {
		return "AF_INET6"
	}
	return "AF_INET"
}
