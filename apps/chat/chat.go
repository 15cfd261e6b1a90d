// Package chat is a small chat server in the style of socket tutorials:
// every message a client sends is relayed as "NAME: text" to every other
// client. Clients talk over UDP (one datagram per message) or TCP (one
// line per message); both kinds meet in the same room.
//
// Commands: "/join NAME" picks a name (a client that never sends it is
// named after its address), "/who" lists who is there, "/quit" leaves.
// A client that has been silent for Config.ClientTimeout is dropped.
package chat

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// Port is the port the tutorials use.
const Port = 7321

// Config bounds the server.
type Config struct {
	MaxClients    int           // members at once, UDP and TCP together; default 64
	ClientTimeout time.Duration // silence after which a member is dropped; default 5 minutes
	MaxMessage    int           // longer messages are cut; default 1024 bytes
	QueueLen      int           // messages waiting for a slow TCP client; default 64 (more are dropped)
	NoTCP, NoUDP  bool
}

// Server is a running chat server; Close stops it.
type Server struct {
	*server.Server
	cfg Config
	udp *socket.Socket

	mu      sync.Mutex
	members map[string]*member

	// Relayed counts messages handed to members, Dropped those lost
	// because a TCP member's queue was full, Full the joins refused.
	Relayed, Dropped, Full atomic.Uint64
}

type member struct {
	key     string
	name    string
	last    time.Time
	udpTo   socket.Sockaddr // UDP members
	queue   chan []byte     // TCP members: lines to write
	gone    chan struct{}   // TCP members: closed when removed
	removed bool
}

// Serve starts the chat server on addr.
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 64
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = 5 * time.Minute
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 1024
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 64
	}
	s := &Server{cfg: cfg, members: map[string]*member{}}
	scfg := server.Config{MaxClients: cfg.MaxClients, IdleTimeout: cfg.ClientTimeout, NoTCP: cfg.NoTCP, NoUDP: cfg.NoUDP}
	var err error
	s.Server, err = server.Start("chat", n, addr, scfg, s.serveConn, s.serveUDP)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Members lists the names in the room, sorted.
func (s *Server) Members() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.members {
		out = append(out, m.name)
	}
	sort.Strings(out)
	return out
}

// deliver sends one message to m; called with s.mu held, never blocks.
func (s *Server) deliver(m *member, msg string) {
	if m.udpTo != nil {
		if _, err := s.udp.SendTo([]byte(msg), socket.MSG_DONTWAIT, m.udpTo); err != nil {
			s.Dropped.Add(1)
			return
		}
		s.Relayed.Add(1)
		return
	}
	select {
	case m.queue <- []byte(msg + "\n"):
		s.Relayed.Add(1)
	default:
		s.Dropped.Add(1) // a slow reader loses messages rather than stall the room
	}
}

// broadcast sends msg to everyone but except; s.mu held.
func (s *Server) broadcast(except *member, msg string) {
	for _, m := range s.members {
		if m != except {
			s.deliver(m, msg)
		}
	}
}

// removeLocked drops m and tells the others why.
func (s *Server) removeLocked(m *member, why string) {
	if s.members[m.key] != m {
		return
	}
	delete(s.members, m.key)
	m.removed = true
	if m.gone != nil {
		close(m.gone)
	}
	s.broadcast(nil, fmt.Sprintf("* %s %s", m.name, why))
}

// expireLocked drops members silent for longer than ClientTimeout.
func (s *Server) expireLocked(now time.Time) {
	for _, m := range s.members {
		if now.Sub(m.last) > s.cfg.ClientTimeout {
			s.removeLocked(m, "timed out")
		}
	}
}

func cleanName(n string) string {
	n = strings.TrimSpace(n)
	n = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, n)
	if len(n) > 32 {
		n = n[:32]
	}
	return n
}

type status int

const (
	stay status = iota
	left        // the member sent /quit
	full        // not admitted: the room is full
)

// handle processes one message from the member with key; join makes the
// member when it is new.
func (s *Server) handle(key string, text string, join func() *member) status {
	if len(text) > s.cfg.MaxMessage {
		text = text[:s.cfg.MaxMessage]
	}
	text = strings.TrimRight(text, "\r\n")
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	m := s.members[key]
	if m == nil {
		if len(s.members) >= s.cfg.MaxClients {
			s.Full.Add(1)
			return full
		}
		m = join()
		m.last = now
		s.members[key] = m
		if name, ok := strings.CutPrefix(text, "/join "); ok && cleanName(name) != "" {
			m.name = cleanName(name)
			s.deliver(m, fmt.Sprintf("* welcome %s, %d here", m.name, len(s.members)))
			s.broadcast(m, fmt.Sprintf("* %s joined", m.name))
			return stay
		}
		s.broadcast(m, fmt.Sprintf("* %s joined", m.name))
	}
	m.last = now
	switch {
	case text == "/quit":
		s.deliver(m, "* bye")
		s.removeLocked(m, "left")
		return left
	case text == "/who":
		var names []string
		for _, o := range s.members {
			names = append(names, o.name)
		}
		sort.Strings(names)
		s.deliver(m, "* here: "+strings.Join(names, ", "))
	case strings.HasPrefix(text, "/join "):
		if name := cleanName(text[len("/join "):]); name != "" {
			old := m.name
			m.name = name
			s.broadcast(nil, fmt.Sprintf("* %s is now %s", old, name))
		}
	default:
		s.broadcast(m, m.name+": "+text)
	}
	return stay
}

func (s *Server) serveUDP(so *socket.Socket) {
	s.udp = so
	buf := make([]byte, 65536)
	// Wake up now and then to drop silent members even when nobody talks.
	tick := s.cfg.ClientTimeout / 4
	if tick > time.Second {
		tick = time.Second
	}
	so.SetTimeout(tick)
	for {
		k, from, err := so.RecvFrom(buf, 0)
		if err != nil {
			if server.Closed(err) {
				return
			}
			if server.Timeout(err) {
				s.mu.Lock()
				s.expireLocked(time.Now())
				s.mu.Unlock()
			}
			continue
		}
		fa, ok := from.(*socket.SockaddrInet)
		if !ok {
			continue
		}
		key := "udp " + fa.AddrPort.String()
		st := s.handle(key, string(buf[:k]), func() *member {
			return &member{key: key, name: fa.AddrPort.String(), udpTo: from}
		})
		if st == full {
			so.SendTo([]byte("* room full"), socket.MSG_DONTWAIT, from)
		}
	}
}

// socketReader reads a stream socket as an io.Reader.
type socketReader struct{ s *socket.Socket }

func (r socketReader) Read(b []byte) (int, error) {
	k, err := r.s.Recv(b, 0)
	if err != nil {
		return 0, err
	}
	if k == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return k, nil
}

func (s *Server) serveConn(c *socket.Socket, peer socket.Sockaddr) {
	key := fmt.Sprintf("tcp %v #%d", peer, c.Fileno())
	m := &member{key: key, name: peer.String(), queue: make(chan []byte, s.cfg.QueueLen), gone: make(chan struct{})}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case line := <-m.queue:
				if err := c.SendAll(line, 0); err != nil {
					c.Shutdown(socket.SHUT_RDWR)
					return
				}
			case <-m.gone:
				// Flush what is queued (the "bye"), then stop.
				for {
					select {
					case line := <-m.queue:
						if c.SendAll(line, 0) != nil {
							return
						}
					default:
						// Removed (quit or timed out): end the connection,
						// which also wakes the reader.
						c.Shutdown(socket.SHUT_RDWR)
						return
					}
				}
			}
		}
	}()
	defer func() {
		s.mu.Lock()
		if s.members[key] == m {
			s.removeLocked(m, "left")
		} else if !m.removed {
			close(m.gone) // never admitted: just stop the writer
		}
		s.mu.Unlock()
		<-writerDone
	}()
	sc := bufio.NewScanner(socketReader{c})
	sc.Buffer(make([]byte, 1024), s.cfg.MaxMessage+2)
	for sc.Scan() {
		switch s.handle(key, sc.Text(), func() *member { return m }) {
		case left:
			return
		case full:
			c.SendAll([]byte("* room full\n"), 0)
			return
		}
	}
}
