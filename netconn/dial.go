package netconn

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// defaultKeepAlive is package net's keep-alive period when none is given.
const defaultKeepAlive = 15 * time.Second

// Dialer connects to addresses through a sockstack socket layer, like
// net.Dialer. The zero value of every field but Net means what it means
// in net.Dialer.
type Dialer struct {
	// Net is the socket layer (the host) to dial from. Required.
	Net *socket.Net

	// Timeout bounds the whole dial, name resolution included.
	Timeout time.Duration

	// Deadline is an absolute bound; the earliest of Timeout, Deadline
	// and the context's deadline applies.
	Deadline time.Time

	// LocalAddr is bound before connecting (*net.TCPAddr, *net.UDPAddr
	// or *net.UnixAddr); nil lets the stack choose.
	LocalAddr net.Addr

	// KeepAlive is the TCP keep-alive period: 0 means 15s, negative
	// turns keep-alives off.
	KeepAlive time.Duration

	// Resolver looks host names up; nil means the socket layer's own
	// resolver (its hosts table, then its DNS servers).
	Resolver Resolver

	// Control, when set, is called with each new socket before it is
	// bound or connected (to set options).
	Control func(network, address string, s *socket.Socket) error
}

// Dial connects to address on network from host n.
func Dial(n *socket.Net, network, address string) (net.Conn, error) {
	d := Dialer{Net: n}
	return d.Dial(network, address)
}

// DialTimeout is Dial with a timeout.
func DialTimeout(n *socket.Net, network, address string, timeout time.Duration) (net.Conn, error) {
	d := Dialer{Net: n, Timeout: timeout}
	return d.Dial(network, address)
}

// Dial connects to address on network ("tcp", "tcp4", "udp", "udp4",
// "unix", "unixgram", "unixpacket").
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// deadline is the earliest bound of the dial.
func (d *Dialer) deadline(ctx context.Context, now time.Time) time.Time {
	var dl time.Time
	if d.Timeout > 0 {
		dl = now.Add(d.Timeout)
	}
	if !d.Deadline.IsZero() && (dl.IsZero() || d.Deadline.Before(dl)) {
		dl = d.Deadline
	}
	if cd, ok := ctx.Deadline(); ok && (dl.IsZero() || cd.Before(dl)) {
		dl = cd
	}
	return dl
}

// DialContext connects to address on network. Canceling ctx or
// reaching its deadline aborts the dial; once connected, ctx no longer
// matters. Errors are *net.OpError with Op "dial".
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		panic("netconn: nil context")
	}
	k, err := parseNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: err}
	}
	if d.Net == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: errNoNet}
	}
	if dl := d.deadline(ctx, time.Now()); !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: ctxErr(err)}
	}

	if !k.inet {
		raddr := &net.UnixAddr{Name: address, Net: k.base}
		dl, _ := ctx.Deadline()
		return d.dialOne(ctx, network, k, socket.AF_UNIX, &socket.SockaddrUnix{Name: address}, raddr, dl)
	}

	host, port, err := splitHostPort(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: err}
	}
	addrs, err := lookupHost(ctx, d.Net, d.Resolver, k, host, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: err}
	}
	var first error
	for i, a := range addrs {
		ap := netip.AddrPortFrom(a, port)
		var raddr net.Addr = net.TCPAddrFromAddrPort(ap)
		if k.base == "udp" {
			raddr = net.UDPAddrFromAddrPort(ap)
		}
		// With several addresses, each try gets a share of the time
		// left, as package net does, so one dead address cannot use
		// it all.
		dl, _ := ctx.Deadline()
		if left := len(addrs) - i; !dl.IsZero() && left > 1 {
			dl = time.Now().Add(time.Until(dl) / time.Duration(left))
		}
		c, err := d.dialOne(ctx, network, k, familyOf(a), socket.InetAddr(ap), raddr, dl)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

var errNoNet = errors.New("netconn: no socket.Net given")

// dialOne makes one socket and connects it to sa by dl (zero: no bound).
func (d *Dialer) dialOne(ctx context.Context, network string, k kind, family int, sa socket.Sockaddr, raddr net.Addr, dl time.Time) (net.Conn, error) {
	fail := func(err error) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: raddr, Err: err}
	}
	s, err := d.Net.Socket(family, k.typ, 0)
	if err != nil {
		return fail(mapErr("socket", err, false))
	}
	if d.Control != nil {
		if err := d.Control(network, raddr.String(), s); err != nil {
			s.Close()
			return fail(err)
		}
	}
	if d.LocalAddr != nil {
		lsa, err := toSockaddr(d.LocalAddr)
		if err == nil {
			err = mapErr("bind", s.Bind(lsa), false)
		}
		if err != nil {
			s.Close()
			return fail(err)
		}
	}
	// Connect waits on the write deadline; cancellation closes the
	// socket, which wakes Connect at once.
	if !dl.IsZero() {
		s.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	err = s.Connect(sa)
	if !stop() {
		s.Close()
		return fail(ctxErr(ctx.Err()))
	}
	if err != nil {
		s.Close()
		var te *socket.TimeoutError
		if errors.As(err, &te) {
			return fail(errDialTimeout)
		}
		return fail(mapErr("connect", err, false))
	}
	s.SetWriteDeadline(time.Time{})
	return wrapConn(s, network, k, raddr, d.KeepAlive, true), nil
}

// wrapConn makes the conn type for k, set up as package net sets its
// conns up (TCP: no Nagle delay, keep-alives on).
func wrapConn(s *socket.Socket, network string, k kind, raddr net.Addr, keepAlive time.Duration, dialed bool) net.Conn {
	c := newConn(s, network, k, raddr)
	switch {
	case k.base == "tcp":
		tc := &TCPConn{c}
		// Errors ignored: like package net, a conn whose options could
		// not be set is still a working conn.
		_ = tc.SetNoDelay(true)
		if keepAlive >= 0 {
			if keepAlive == 0 {
				keepAlive = defaultKeepAlive
			}
			_ = tc.SetKeepAlive(true)
			_ = tc.SetKeepAlivePeriod(keepAlive)
		}
		return tc
	case k.base == "udp":
		return &UDPConn{conn: c, connected: dialed}
	}
	return &UnixConn{c}
}
