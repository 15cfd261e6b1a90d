package netconn

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// ListenConfig holds listening options, like net.ListenConfig.
type ListenConfig struct {
	// Net is the socket layer (the host) to listen on. Required.
	Net *socket.Net

	// Control, when set, is called with each new socket before bind.
	Control func(network, address string, s *socket.Socket) error

	// KeepAlive is the keep-alive period of accepted TCP conns: 0 means
	// 15s, negative turns keep-alives off.
	KeepAlive time.Duration

	// Backlog is the listen queue length; 0 means socket.SOMAXCONN.
	Backlog int
}

// Listen listens for stream connections ("tcp", "tcp4", "unix",
// "unixpacket") on host n.
func Listen(n *socket.Net, network, address string) (net.Listener, error) {
	lc := ListenConfig{Net: n}
	return lc.Listen(context.Background(), network, address)
}

// ListenPacket opens a datagram socket ("udp", "udp4", "unixgram") on host n.
func ListenPacket(n *socket.Net, network, address string) (net.PacketConn, error) {
	lc := ListenConfig{Net: n}
	return lc.ListenPacket(context.Background(), network, address)
}

// localSockaddr resolves a listening address.
func (lc *ListenConfig) localSockaddr(ctx context.Context, k kind, address string) (int, socket.Sockaddr, net.Addr, error) {
	if !k.inet {
		return socket.AF_UNIX, &socket.SockaddrUnix{Name: address}, &net.UnixAddr{Name: address, Net: k.base}, nil
	}
	host, port, err := splitHostPort(k.base, address)
	if err != nil {
		return 0, nil, nil, err
	}
	addrs, err := lookupHost(ctx, lc.Net, nil, k, host, true)
	if err != nil {
		return 0, nil, nil, err
	}
	ap := netip.AddrPortFrom(addrs[0], port)
	var na net.Addr = net.TCPAddrFromAddrPort(ap)
	if k.base == "udp" {
		na = net.UDPAddrFromAddrPort(ap)
	}
	return familyOf(ap.Addr()), socket.InetAddr(ap), na, nil
}

// bound makes a socket of k bound to address; errors are *net.OpError
// with Op "listen".
func (lc *ListenConfig) bound(ctx context.Context, network string, k kind, address string) (*socket.Socket, error) {
	fail := func(a net.Addr, err error) (*socket.Socket, error) {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: a, Err: err}
	}
	if lc.Net == nil {
		return fail(nil, errNoNet)
	}
	family, sa, na, err := lc.localSockaddr(ctx, k, address)
	if err != nil {
		return fail(nil, err)
	}
	s, err := lc.Net.Socket(family, k.typ, 0)
	if err != nil {
		return fail(na, mapErr("socket", err, false))
	}
	if family == socket.AF_INET6 {
		// As package net: "tcp6"/"udp6" are IPv6 only, "tcp"/"udp" on
		// a wildcard take both families (IPV6_V6ONLY off).
		_ = s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, b2i(k.v6only))
	}
	if k.inet && k.stream {
		// Package net sets SO_REUSEADDR on listeners so a restarted
		// server can bind while old connections sit in TIME_WAIT.
		_ = s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	}
	if lc.Control != nil {
		if err := lc.Control(network, address, s); err != nil {
			s.Close()
			return fail(na, err)
		}
	}
	if err := s.Bind(sa); err != nil {
		s.Close()
		return fail(na, mapErr("bind", err, false))
	}
	return s, nil
}

// Listen listens for stream connections on address.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	k, err := parseNetwork(network)
	if err == nil && !k.stream && k.typ != socket.SOCK_SEQPACKET {
		err = net.UnknownNetworkError(network)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	s, err := lc.bound(ctx, network, k, address)
	if err != nil {
		return nil, err
	}
	backlog := lc.Backlog
	if backlog <= 0 {
		backlog = socket.SOMAXCONN
	}
	l := &Listener{s: s, network: network, k: k, keepAlive: lc.KeepAlive}
	if sa, err := s.GetSockName(); err == nil {
		l.addr = toNetAddr(k.base, sa)
	}
	if err := s.Listen(backlog); err != nil {
		s.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: l.addr, Err: mapErr("listen", err, false)}
	}
	return l, nil
}

// ListenPacket opens a datagram socket bound to address.
func (lc *ListenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	k, err := parseNetwork(network)
	if err == nil && k.typ != socket.SOCK_DGRAM {
		err = net.UnknownNetworkError(network)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	s, err := lc.bound(ctx, network, k, address)
	if err != nil {
		return nil, err
	}
	c := newConn(s, network, k, nil)
	if k.base == "udp" {
		return &UDPConn{conn: c}, nil
	}
	return &UnixConn{c}, nil
}

// Listener accepts stream connections, like *net.TCPListener and
// *net.UnixListener.
type Listener struct {
	s         *socket.Socket
	network   string
	k         kind
	addr      net.Addr
	keepAlive time.Duration
	closed    atomic.Bool

	dmu sync.Mutex
	dl  time.Time
}

var _ net.Listener = (*Listener)(nil)

// Socket is the listening socket.
func (l *Listener) Socket() *socket.Socket { return l.s }

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.addr }

func (l *Listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: err}
}

// Accept waits for the next connection. After Close it fails with an
// error matching net.ErrClosed; past the deadline with one matching
// os.ErrDeadlineExceeded.
func (l *Listener) Accept() (net.Conn, error) {
	if l.closed.Load() {
		return nil, l.opErr(net.ErrClosed)
	}
	l.dmu.Lock()
	dl := l.dl
	l.dmu.Unlock()
	if !dl.IsZero() && !time.Now().Before(dl) {
		return nil, l.opErr(os.ErrDeadlineExceeded)
	}
	ns, from, err := l.s.Accept()
	if err != nil {
		return nil, l.opErr(mapErr("accept", err, l.closed.Load()))
	}
	var raddr net.Addr
	if from != nil && l.k.base != "tcp" {
		// TCP peers are read from the socket when first asked for.
		raddr = toNetAddr(l.k.base, from)
	}
	return wrapConn(ns, l.network, l.k, raddr, l.keepAlive, false), nil
}

// Close stops listening; a blocked Accept returns at once.
func (l *Listener) Close() error {
	if l.closed.Swap(true) {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	if err := l.s.Close(); err != nil {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: mapErr("close", err, false)}
	}
	return nil
}

// SetDeadline bounds Accept calls, present and future (zero: none).
func (l *Listener) SetDeadline(t time.Time) error {
	if l.closed.Load() {
		return &net.OpError{Op: "set", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	l.dmu.Lock()
	l.dl = t
	l.s.SetReadDeadline(t)
	l.dmu.Unlock()
	return nil
}
