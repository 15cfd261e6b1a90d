// Command selectchat is the classic multi-person TCP chat server built on
// select(2): one thread, one listening socket and every client in a read
// set; select says which are ready, a ready listener is accepted, a ready
// client is read, and what it says is relayed to everyone else. Three
// clients on three hosts of the virtual network (or all on 127.0.0.1 with
// -kernel, where Select is the kernel's select(2)) join, talk and leave.
//
// TCP is a byte stream, so the server cuts what it reads into lines
// itself: one recv may hold half a line or three lines. A client's first
// line is its name; the others are messages. The server tells everyone,
// the newcomer included, who joined, relays "<name> text" to all but the
// speaker, and "* name left" when a client's recv returns 0.
//
//	go run ./examples/selectchat
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const (
	port    = 20014
	clients = 3
)

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "alice", "bob", "carol")
	defer nw.Close()
	srv := nw.Hosts[0]

	ls, err := srv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	ls.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal("bind: ", err)
	}
	if err := ls.Listen(socket.SOMAXCONN); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ls)
	}()

	server := socket.Inet(srv.Addr, port)
	alice := join(nw.Hosts[1], server)
	alice.expect("* alice joined")
	bob := join(nw.Hosts[2], server)
	alice.expect("* bob joined")
	bob.expect("* bob joined")
	alice.say("hi bob")
	bob.expect("<alice> hi bob")
	carol := join(nw.Hosts[3], server)
	alice.expect("* carol joined")
	bob.expect("* carol joined")
	carol.expect("* carol joined")
	// Two lines in one send: the server must still relay two messages.
	bob.say("hello carol\nI have to go")
	alice.expect("<bob> hello carol")
	alice.expect("<bob> I have to go")
	carol.expect("<bob> hello carol")
	carol.expect("<bob> I have to go")
	bob.leave()
	alice.expect("* bob left")
	carol.expect("* bob left")
	carol.say("bob has gone")
	alice.expect("<carol> bob has gone")
	alice.leave()
	carol.expect("* alice left")
	carol.leave()
	<-done
}

// member is one connected client as the server sees it.
type member struct {
	s    sockapi.Sock
	name string       // "" until its first line
	buf  bytes.Buffer // bytes read but not yet a whole line
}

// serve is the select loop. It ends once as many clients as the example
// starts have come and gone.
func serve(ls sockapi.Sock) {
	var members []*member
	left := 0
	tell := func(line string, skip *member) {
		for _, m := range members {
			if m != skip && m.name != "" {
				// A real server would keep a write buffer per client and
				// select for writing too; these lines fit any send buffer.
				m.s.SendAll([]byte(line+"\n"), 0)
			}
		}
	}
	buf := make([]byte, 512)
	for left < clients {
		set := []sockapi.Sock{ls}
		for _, m := range members {
			set = append(set, m.s)
		}
		ready, _, err := sockapi.Select(set, nil, -1)
		if err != nil {
			log.Fatal("select: ", err)
		}
		for _, s := range ready {
			if s == ls {
				c, from, err := ls.Accept()
				if err != nil {
					log.Fatal("accept: ", err)
				}
				fmt.Printf("server: new connection from %v (%d connected)\n", host(from), len(members)+1)
				members = append(members, &member{s: c})
				continue
			}
			var m *member
			for _, x := range members {
				if x.s == s {
					m = x
				}
			}
			n, err := s.Recv(buf, 0)
			if n == 0 || err != nil {
				// 0 is the peer's FIN: it closed. Drop it from the set.
				s.Close()
				for i, x := range members {
					if x == m {
						members = append(members[:i], members[i+1:]...)
						break
					}
				}
				left++
				fmt.Printf("server: %s hung up (%d connected)\n", m.name, len(members))
				tell("* "+m.name+" left", nil)
				continue
			}
			m.buf.Write(buf[:n])
			for {
				line, err := m.buf.ReadString('\n')
				if err != nil {
					// Half a line: keep it for the next recv.
					m.buf.Reset()
					m.buf.WriteString(line)
					break
				}
				line = line[:len(line)-1]
				if m.name == "" {
					m.name = line
					tell("* "+line+" joined", nil)
				} else {
					tell("<"+m.name+"> "+line, m)
				}
			}
		}
	}
	fmt.Printf("server: all %d clients have left\n", clients)
}

// host is an address without its port (ports differ from run to run).
func host(a socket.Sockaddr) string {
	if v, ok := a.(*socket.SockaddrInet); ok {
		return v.AddrPort.Addr().String()
	}
	return a.String()
}

type client struct {
	name string
	s    sockapi.Sock
	r    *bufio.Reader
}

// sockReader lets bufio read a socket.
type sockReader struct{ s sockapi.Sock }

func (r sockReader) Read(b []byte) (int, error) {
	n, err := r.s.Recv(b, 0)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("the server closed the connection")
	}
	return n, err
}

func join(h vnet.Host, server socket.Sockaddr) *client {
	s, err := h.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Connect(server); err != nil {
		log.Fatalf("%s: connect: %v", h.Name, err)
	}
	s.SetTimeout(5 * time.Second)
	c := &client{name: h.Name, s: s, r: bufio.NewReader(sockReader{s})}
	c.send(h.Name)
	return c
}

func (c *client) send(text string) {
	if err := c.s.SendAll([]byte(text+"\n"), 0); err != nil {
		log.Fatalf("%s: send: %v", c.name, err)
	}
}

func (c *client) say(text string) { c.send(text) }

// leave closes the connection: the server's recv returns 0.
func (c *client) leave() { c.s.Close() }

// expect reads the next line from the server and prints it; anything
// else than want ends the example with an error.
func (c *client) expect(want string) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		log.Fatalf("%s: nothing from the server: %v", c.name, err)
	}
	line = line[:len(line)-1]
	fmt.Printf("%-5s sees: %s\n", c.name, line)
	if line != want {
		log.Fatalf("%s: got %q, want %q", c.name, line, want)
	}
}
