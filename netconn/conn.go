// Package netconn puts Go's net interfaces on sockstack sockets: a
// Dialer, Listen / ListenPacket / ListenConfig, net.Conn for TCP and
// UNIX, net.Listener, net.PacketConn for UDP. Deadlines, closing and
// errors behave like the standard library's (*net.OpError wrapping an
// *os.SyscallError or errno, os.ErrDeadlineExceeded, net.ErrClosed,
// io.EOF), so code written for package net runs unchanged.
package netconn

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// conn is what every connection type shares: the socket, its addresses,
// deadlines and the closed flag.
type conn struct {
	s       *socket.Socket
	network string // as given to Dial or Listen ("tcp4", ...), for errors
	// The addresses are made on first use: an idle connection should not
	// carry two *net.TCPAddr it may never be asked for.
	laddr    net.Addr
	raddr    net.Addr
	addrOnce sync.Once
	closed   atomic.Bool

	// The deadlines are kept here too, so that a deadline already in
	// the past fails a call before it touches the socket (the socket
	// only consults its deadline when it would have to wait). Made by
	// the first Set*Deadline: most connections never set one, and an
	// idle connection's size is what a million of them cost.
	dmu sync.Mutex
	dl  *deadlines

	base    uint8 // index in baseNames
	stream  bool  // byte stream: Write loops until all is sent
	zeroEOF bool  // a zero-byte read is the end (stream and seqpacket)
}

type deadlines struct{ rd, wr time.Time }

// baseNames are the kinds' base networks; a conn keeps an index, not a
// 16-byte string.
var baseNames = [...]string{"tcp", "udp", "unix", "unixgram", "unixpacket"}

func baseIndex(base string) uint8 {
	for i, b := range baseNames {
		if b == base {
			return uint8(i)
		}
	}
	return 0
}

func (c *conn) baseName() string { return baseNames[c.base] }

func newConn(s *socket.Socket, network string, k kind, raddr net.Addr) *conn {
	return &conn{s: s, network: network, base: baseIndex(k.base), stream: k.stream, zeroEOF: k.typ != socket.SOCK_DGRAM, raddr: raddr}
}

// deadlines returns the deadlines for setting, making them; call with
// dmu held.
func (c *conn) deadlines() *deadlines {
	if c.dl == nil {
		c.dl = new(deadlines)
	}
	return c.dl
}

// addrs fills laddr and raddr once, from the socket.
func (c *conn) addrs() {
	c.addrOnce.Do(func() {
		if sa, err := c.s.GetSockName(); err == nil {
			c.laddr = toNetAddr(c.baseName(), sa)
		}
		if c.raddr == nil {
			if sa, err := c.s.GetPeerName(); err == nil {
				c.raddr = toNetAddr(c.baseName(), sa)
			}
		}
	})
}

func (c *conn) localAddr() net.Addr  { c.addrs(); return c.laddr }
func (c *conn) remoteAddr() net.Addr { c.addrs(); return c.raddr }

// Socket is the sockstack socket under the conn.
func (c *conn) Socket() *socket.Socket { return c.s }

// LocalAddr is the local address (*net.TCPAddr, *net.UDPAddr or *net.UnixAddr).
func (c *conn) LocalAddr() net.Addr { return c.localAddr() }

// RemoteAddr is the peer's address (nil for an unconnected datagram socket).
func (c *conn) RemoteAddr() net.Addr { return c.remoteAddr() }

func (c *conn) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: c.network, Source: c.localAddr(), Addr: c.remoteAddr(), Err: err}
}

// expired reports whether the read (or write) deadline has passed.
func (c *conn) expired(write bool) bool {
	var dl time.Time
	c.dmu.Lock()
	if c.dl != nil {
		dl = c.dl.rd
		if write {
			dl = c.dl.wr
		}
	}
	c.dmu.Unlock()
	return !dl.IsZero() && !time.Now().Before(dl)
}

// precheck is what every I/O call does first: closed, then deadline.
func (c *conn) precheck(write bool) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if c.expired(write) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c *conn) read(b []byte) (int, error) {
	if err := c.precheck(false); err != nil {
		return 0, c.opErr("read", err)
	}
	if len(b) == 0 {
		// As package net: a zero-byte Read returns at once (and does
		// not consume a datagram).
		return 0, nil
	}
	n, err := c.s.Recv(b, 0)
	if err != nil {
		return n, c.opErr("read", mapErr("read", err, c.closed.Load()))
	}
	if n == 0 && c.zeroEOF {
		return 0, io.EOF
	}
	return n, nil
}

func (c *conn) write(b []byte) (int, error) {
	if err := c.precheck(true); err != nil {
		return 0, c.opErr("write", err)
	}
	if !c.stream {
		n, err := c.s.Send(b, socket.MSG_NOSIGNAL)
		return n, c.opErr("write", mapErr("write", err, c.closed.Load()))
	}
	// A stream Write sends everything or fails, like net.TCPConn; the
	// socket may return early with a partial count, so loop.
	total := 0
	for total < len(b) {
		n, err := c.s.Send(b[total:], socket.MSG_NOSIGNAL)
		total += n
		if err != nil {
			return total, c.opErr("write", mapErr("write", err, c.closed.Load()))
		}
		if total < len(b) {
			if err := c.precheck(true); err != nil {
				return total, c.opErr("write", err)
			}
		}
	}
	return total, nil
}

// Close closes the conn; blocked Read and Write calls return an error
// matching net.ErrClosed. A second Close fails the same way.
func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return c.opErr("close", net.ErrClosed)
	}
	if err := c.s.Close(); err != nil {
		return c.opErr("close", mapErr("close", err, false))
	}
	return nil
}

// SetDeadline sets both deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.dmu.Lock()
	d := c.deadlines()
	d.rd, d.wr = t, t
	c.s.SetReadDeadline(t)
	c.s.SetWriteDeadline(t)
	c.dmu.Unlock()
	return nil
}

// SetReadDeadline bounds Read calls, present and future, by t (zero: none).
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.dmu.Lock()
	c.deadlines().rd = t
	c.s.SetReadDeadline(t)
	c.dmu.Unlock()
	return nil
}

// SetWriteDeadline bounds Write calls, present and future, by t (zero: none).
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.dmu.Lock()
	c.deadlines().wr = t
	c.s.SetWriteDeadline(t)
	c.dmu.Unlock()
	return nil
}

func (c *conn) setOpt(level, name int, v any) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	if err := c.s.SetSockOpt(level, name, v); err != nil {
		return c.opErr("set", mapErr("setsockopt", err, false))
	}
	return nil
}

// SetReadBuffer sets SO_RCVBUF.
func (c *conn) SetReadBuffer(bytes int) error {
	return c.setOpt(socket.SOL_SOCKET, socket.SO_RCVBUF, bytes)
}

// SetWriteBuffer sets SO_SNDBUF.
func (c *conn) SetWriteBuffer(bytes int) error {
	return c.setOpt(socket.SOL_SOCKET, socket.SO_SNDBUF, bytes)
}

func (c *conn) shutdown(how int) error {
	if c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	if err := c.s.Shutdown(how); err != nil {
		return c.opErr("close", mapErr("shutdown", err, false))
	}
	return nil
}

// TCPConn is a TCP connection, like *net.TCPConn.
type TCPConn struct{ *conn }

var _ net.Conn = (*TCPConn)(nil)

// Read reads what has arrived; io.EOF once the peer has closed and all is read.
func (c *TCPConn) Read(b []byte) (int, error) { return c.read(b) }

// Write writes all of b unless an error (deadline, reset, close) stops it.
func (c *TCPConn) Write(b []byte) (int, error) { return c.write(b) }

// CloseRead shuts the reading half down.
func (c *TCPConn) CloseRead() error { return c.shutdown(socket.SHUT_RD) }

// CloseWrite shuts the writing half down (sends FIN); the peer reads io.EOF.
func (c *TCPConn) CloseWrite() error { return c.shutdown(socket.SHUT_WR) }

// SetNoDelay sets TCP_NODELAY (on by default, as in package net).
func (c *TCPConn) SetNoDelay(noDelay bool) error {
	return c.setOpt(socket.SOL_TCP, socket.TCP_NODELAY, b2i(noDelay))
}

// SetKeepAlive sets SO_KEEPALIVE.
func (c *TCPConn) SetKeepAlive(keepalive bool) error {
	return c.setOpt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, b2i(keepalive))
}

// SetKeepAlivePeriod sets the idle time and probe interval (whole
// seconds, at least one).
func (c *TCPConn) SetKeepAlivePeriod(d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	if err := c.setOpt(socket.SOL_TCP, socket.TCP_KEEPIDLE, secs); err != nil {
		return err
	}
	return c.setOpt(socket.SOL_TCP, socket.TCP_KEEPINTVL, secs)
}

// SetLinger sets SO_LINGER like net.TCPConn: sec < 0 is the default
// (close returns at once, data is sent in the background), sec == 0
// discards unsent data and resets, sec > 0 lingers that long.
func (c *TCPConn) SetLinger(sec int) error {
	l := socket.Linger{OnOff: sec >= 0, Linger: max(sec, 0)}
	return c.setOpt(socket.SOL_SOCKET, socket.SO_LINGER, l)
}

// UnixConn is a UNIX-domain connection, stream or datagram.
type UnixConn struct{ *conn }

var (
	_ net.Conn       = (*UnixConn)(nil)
	_ net.PacketConn = (*UnixConn)(nil)
)

func (c *UnixConn) Read(b []byte) (int, error)  { return c.read(b) }
func (c *UnixConn) Write(b []byte) (int, error) { return c.write(b) }

// CloseRead and CloseWrite shut one half of a stream connection down.
func (c *UnixConn) CloseRead() error  { return c.shutdown(socket.SHUT_RD) }
func (c *UnixConn) CloseWrite() error { return c.shutdown(socket.SHUT_WR) }

// ReadFrom reads one datagram and its sender (unixgram).
func (c *UnixConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, sa, err := c.recvFrom(b)
	if err != nil {
		return n, nil, err
	}
	if sa == nil {
		return n, nil, nil
	}
	return n, toNetAddr(c.baseName(), sa), nil
}

// ReadFromUnix is ReadFrom with a *net.UnixAddr.
func (c *UnixConn) ReadFromUnix(b []byte) (int, *net.UnixAddr, error) {
	n, a, err := c.ReadFrom(b)
	ua, _ := a.(*net.UnixAddr)
	return n, ua, err
}

// WriteTo sends a datagram to addr (a *net.UnixAddr).
func (c *UnixConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UnixAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: addr, Err: syscall.EINVAL}
	}
	return c.WriteToUnix(b, ua)
}

// WriteToUnix sends a datagram to addr.
func (c *UnixConn) WriteToUnix(b []byte, addr *net.UnixAddr) (int, error) {
	if addr == nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Err: errMissingAddress}
	}
	return c.sendTo(b, &socket.SockaddrUnix{Name: addr.Name}, addr)
}

var errMissingAddress = &net.AddrError{Err: "missing address"}

func (c *conn) recvFrom(b []byte) (int, socket.Sockaddr, error) {
	if err := c.precheck(false); err != nil {
		return 0, nil, c.opErr("read", err)
	}
	n, sa, err := c.s.RecvFrom(b, 0)
	if err != nil {
		return n, nil, c.opErr("read", mapErr("recvfrom", err, c.closed.Load()))
	}
	return n, sa, nil
}

func (c *conn) sendTo(b []byte, sa socket.Sockaddr, to net.Addr) (int, error) {
	if err := c.precheck(true); err != nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: to, Err: err}
	}
	n, err := c.s.SendTo(b, socket.MSG_NOSIGNAL, sa)
	if err != nil {
		return n, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: to, Err: mapErr("sendto", err, c.closed.Load())}
	}
	return n, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
