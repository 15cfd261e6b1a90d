// Package server is the scaffolding the small services share: listening
// sockets, a bounded set of TCP connections with a goroutine each, UDP
// loops, and a Close that ends them all and waits.
package server

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// Config bounds a service.
type Config struct {
	// MaxClients bounds concurrent TCP connections (and, for services that
	// keep state per UDP peer, registered peers). Default 64.
	MaxClients int
	// IdleTimeout closes a TCP connection that sends nothing this long.
	// Default 5 minutes.
	IdleTimeout time.Duration
	// Backlog of the listening socket. Default 32.
	Backlog int
	// NoTCP and NoUDP leave out one transport (default: serve both).
	NoTCP, NoUDP bool
}

// Defaults fills zero fields.
func (c Config) Defaults() Config {
	if c.MaxClients <= 0 {
		c.MaxClients = 64
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.Backlog <= 0 {
		c.Backlog = 32
	}
	return c
}

// Server owns sockets and the goroutines serving them.
type Server struct {
	Name string
	cfg  Config

	mu      sync.Mutex
	socks   map[*socket.Socket]struct{}
	addrs   []socket.Sockaddr
	closed  bool
	wg      sync.WaitGroup
	onClose []func()

	// Refused counts TCP connections closed at once because MaxClients
	// were being served.
	Refused atomic.Uint64
	// Served counts TCP connections and UDP datagrams handled.
	Served atomic.Uint64
}

// New makes an empty server.
func New(name string, cfg Config) *Server {
	return &Server{Name: name, cfg: cfg.Defaults(), socks: map[*socket.Socket]struct{}{}}
}

// Config is the filled-in configuration.
func (s *Server) Config() Config { return s.cfg }

// Addrs are the bound addresses of the listening sockets.
func (s *Server) Addrs() []socket.Sockaddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]socket.Sockaddr(nil), s.addrs...)
}

// track adds a socket that Close must close; false when already closed.
func (s *Server) track(so *socket.Socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.socks[so] = struct{}{}
	return true
}

func (s *Server) untrack(so *socket.Socket) {
	s.mu.Lock()
	delete(s.socks, so)
	s.mu.Unlock()
	so.Close()
}

// Track registers a socket (for example a per-transfer one) that Close
// closes; it returns false (and closes the socket) when the server is
// already closed. Release undoes it and closes the socket.
func (s *Server) Track(so *socket.Socket) bool {
	if !s.track(so) {
		so.Close()
		return false
	}
	return true
}

// Release closes a socket registered with Track.
func (s *Server) Release(so *socket.Socket) { s.untrack(so) }

// Go runs f on a goroutine that Close waits for; false when closed.
func (s *Server) Go(f func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// OnClose runs f when the server closes (before waiting for goroutines).
func (s *Server) OnClose(f func()) {
	s.mu.Lock()
	s.onClose = append(s.onClose, f)
	s.mu.Unlock()
}

// Close closes every socket and waits for every goroutine to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return syscall.EBADF
	}
	s.closed = true
	socks := s.socks
	s.socks = nil
	fns := s.onClose
	s.mu.Unlock()
	for _, f := range fns {
		f()
	}
	for so := range socks {
		so.Close()
	}
	s.wg.Wait()
	return nil
}

// socketFor opens a socket of a's family. An IPv6 one is IPV6_V6ONLY,
// so that a service can listen on 0.0.0.0 and :: side by side.
func socketFor(n *socket.Net, a netip.Addr, typ int) (*socket.Socket, error) {
	if !a.Is6() || a.Is4In6() {
		return n.Socket(socket.AF_INET, typ, 0)
	}
	so, err := n.Socket(socket.AF_INET6, typ, 0)
	if err == nil {
		so.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
	}
	return so, err
}

// ListenTCP binds a stream socket to addr and listens.
func ListenTCP(n *socket.Net, addr netip.AddrPort, backlog int) (*socket.Socket, error) {
	so, err := socketFor(n, addr.Addr(), socket.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	so.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := so.Bind(socket.InetAddr(addr)); err != nil {
		so.Close()
		return nil, err
	}
	if err := so.Listen(backlog); err != nil {
		so.Close()
		return nil, err
	}
	return so, nil
}

// ListenUDP binds a datagram socket to addr.
func ListenUDP(n *socket.Net, addr netip.AddrPort) (*socket.Socket, error) {
	so, err := socketFor(n, addr.Addr(), socket.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	if err := so.Bind(socket.InetAddr(addr)); err != nil {
		so.Close()
		return nil, err
	}
	return so, nil
}

// ServeTCP listens on addr and runs handle on its own goroutine for each
// connection, at most MaxClients at once; a connection beyond that is
// closed at once. The connection has IdleTimeout as its timeout, and it
// is closed when handle returns.
func (s *Server) ServeTCP(n *socket.Net, addr netip.AddrPort, handle func(c *socket.Socket, peer socket.Sockaddr)) error {
	ln, err := ListenTCP(n, addr, s.cfg.Backlog)
	if err != nil {
		return err
	}
	if !s.Track(ln) {
		return syscall.EBADF
	}
	la, _ := ln.GetSockName()
	s.mu.Lock()
	s.addrs = append(s.addrs, la)
	s.mu.Unlock()
	slots := make(chan struct{}, s.cfg.MaxClients)
	s.Go(func() {
		for {
			c, peer, err := ln.Accept()
			if err != nil {
				if errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EINVAL) {
					return // closed
				}
				if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ECONNABORTED) {
					continue
				}
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				s.Refused.Add(1)
				c.Close()
				continue
			}
			if !s.Track(c) {
				<-slots
				return
			}
			s.Served.Add(1)
			c.SetTimeout(s.cfg.IdleTimeout)
			if !s.Go(func() {
				defer func() { <-slots }()
				defer s.untrack(c)
				handle(c, peer)
			}) {
				s.untrack(c)
				<-slots
				return
			}
		}
	})
	return nil
}

// ServeUDP binds addr and runs loop on a goroutine with the socket; the
// socket closes when the server does, which ends a blocked receive with
// EBADF.
func (s *Server) ServeUDP(n *socket.Net, addr netip.AddrPort, loop func(so *socket.Socket)) error {
	so, err := ListenUDP(n, addr)
	if err != nil {
		return err
	}
	if !s.Track(so) {
		return syscall.EBADF
	}
	la, _ := so.GetSockName()
	s.mu.Lock()
	s.addrs = append(s.addrs, la)
	s.mu.Unlock()
	s.Go(func() { loop(so) })
	return nil
}

// Closed reports whether err means the socket was closed under us.
func Closed(err error) bool { return errors.Is(err, syscall.EBADF) }

// Timeout reports whether err is a receive timeout.
func Timeout(err error) bool { return errors.Is(err, syscall.EAGAIN) }

// Start makes a server named name on addr with the TCP handler and the
// UDP loop (either may be nil, or left out by cfg). On error nothing is
// left running.
func Start(name string, n *socket.Net, addr netip.AddrPort, cfg Config,
	tcp func(c *socket.Socket, peer socket.Sockaddr), udp func(so *socket.Socket)) (*Server, error) {
	s := New(name, cfg)
	if tcp != nil && !s.cfg.NoTCP {
		if err := s.ServeTCP(n, addr, tcp); err != nil {
			s.Close()
			return nil, err
		}
	}
	if udp != nil && !s.cfg.NoUDP {
		if err := s.ServeUDP(n, addr, udp); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}
