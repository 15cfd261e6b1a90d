// Command udpchat is a UDP chat room: a server keeps the set of members
// (by their address) and relays every line to all of them; clients join
// with a name, talk and leave. Three clients on three hosts of the virtual
// network (or all on 127.0.0.1 with -kernel) take turns.
//
// The protocol is one datagram per message:
//
//	JOIN name   MSG text   LEAVE         client to server
//	* name joined   <name> text   * name left   server to clients
//
//	go run ./examples/udpchat
package main

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const port = 20008

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "alice", "bob", "carol")
	defer nw.Close()
	srv := nw.Hosts[0]

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

	server := socket.Inet(srv.Addr, port)
	alice := join(nw.Hosts[1], server)
	alice.expect() // everyone, the newcomer included, hears the join
	bob := join(nw.Hosts[2], server)
	alice.expect()
	bob.expect()
	alice.say("hi bob")
	alice.expect()
	bob.expect()
	carol := join(nw.Hosts[3], server)
	alice.expect()
	bob.expect()
	carol.expect()
	bob.leave()
	alice.expect()
	carol.expect()
	carol.say("bob has gone")
	alice.expect()
	carol.expect()
	alice.leave()
	carol.expect()
	carol.leave()

	ss.Close()
	<-done
}

// serve relays until the socket is closed. Members are keyed by their
// address: with UDP the address is the only identity a peer has.
func serve(s sockapi.Sock) {
	members := map[string]string{} // address -> name
	var order []socket.Sockaddr    // to relay in a stable order
	buf := make([]byte, 1500)
	for {
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(string(buf[:n]), " ")
		key := from.String()
		name, known := members[key]
		var out string
		switch {
		case cmd == "JOIN" && !known && arg != "":
			members[key] = arg
			order = append(order, from)
			out = "* " + arg + " joined"
		case cmd == "MSG" && known:
			out = "<" + name + "> " + arg
		case cmd == "LEAVE" && known:
			out = "* " + name + " left"
		default:
			continue // malformed or from a stranger: ignore it
		}
		// Print before relaying, so the log reads in order with the clients'.
		count := len(order)
		if cmd == "LEAVE" {
			count--
		}
		fmt.Printf("server: %s (%d member(s))\n", out, count)
		for _, a := range order {
			s.SendTo([]byte(out), 0, a)
		}
		if cmd == "LEAVE" {
			delete(members, key)
			for i, a := range order {
				if a.String() == key {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
		}
	}
}

type client struct {
	name   string
	s      sockapi.Sock
	server socket.Sockaddr
}

func join(h vnet.Host, server socket.Sockaddr) *client {
	s, err := h.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	// Connect on a datagram socket only fixes the peer: Send needs no
	// address, and datagrams from anyone else are filtered out.
	if err := s.Connect(server); err != nil {
		log.Fatal(err)
	}
	s.SetTimeout(2 * time.Second)
	c := &client{name: h.Name, s: s, server: server}
	c.send("JOIN " + h.Name)
	return c
}

func (c *client) send(m string) {
	if _, err := c.s.Send([]byte(m), 0); err != nil {
		log.Fatalf("%s: send: %v", c.name, err)
	}
}

func (c *client) say(text string) { c.send("MSG " + text) }

func (c *client) leave() {
	c.send("LEAVE")
	c.expect() // our own "left" notice
	c.s.Close()
}

// expect prints the next line the server relays to this client.
func (c *client) expect() {
	buf := make([]byte, 1500)
	n, err := c.s.Recv(buf, 0)
	if err != nil {
		log.Fatalf("%s: nothing from the server: %v", c.name, err)
	}
	fmt.Printf("%-5s sees: %s\n", c.name, buf[:n])
}
