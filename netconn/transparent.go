package netconn

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// Transparent proxying (docs/transparent.md): with a divert rule on the
// stack (stack.Stack.AddTransparentRule), a listener made by
// ListenTransparent accepts connections addressed to any destination
// the rule covers, and each accepted conn's LocalAddr is the address and
// port the client connected to, as with Linux's TPROXY. For UDP,
// ListenTransparentUDP receives the diverted datagrams with their
// original destination (ReadMsgOrigDst), and WriteFromTo answers from it.

// Transparent is a ListenConfig.Control function that sets
// IP_TRANSPARENT on the socket before it is bound, and for UDP
// IP_RECVORIGDSTADDR and IPV6_RECVORIGDSTADDR too.
func Transparent(network, address string, s *socket.Socket) error {
	if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_TRANSPARENT, 1); err != nil {
		return err
	}
	if s.Type() != socket.SOCK_DGRAM {
		return nil
	}
	if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVORIGDSTADDR, 1); err != nil {
		return err
	}
	if s.Family() == socket.AF_INET6 {
		return s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVORIGDSTADDR, 1)
	}
	return nil
}

// ListenTransparent listens for stream connections ("tcp", "tcp4",
// "tcp6") with IP_TRANSPARENT set: the listener a divert rule's ToPort
// names. Without a rule it is an ordinary listener.
func ListenTransparent(n *socket.Net, network, address string) (net.Listener, error) {
	lc := ListenConfig{Net: n, Control: Transparent}
	return lc.Listen(context.Background(), network, address)
}

// ListenTransparentUDP opens a UDP socket ("udp", "udp4", "udp6") with
// IP_TRANSPARENT and the original-destination options set: the socket
// a divert rule's ToPort names for UDP.
func ListenTransparentUDP(n *socket.Net, network, address string) (*UDPConn, error) {
	lc := ListenConfig{Net: n, Control: Transparent}
	pc, err := lc.ListenPacket(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	u, ok := pc.(*UDPConn)
	if !ok {
		pc.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	return u, nil
}

// ReadMsgOrigDst reads one datagram, its sender, and the address it was
// sent to (IP_ORIGDSTADDR): for a diverted datagram the original
// destination, else the socket's own address. orig is invalid when the
// socket does not ask for it (see Transparent).
func (c *UDPConn) ReadMsgOrigDst(b []byte) (n int, src, orig netip.AddrPort, err error) {
	if err := c.precheck(false); err != nil {
		return 0, src, orig, c.opErr("read", err)
	}
	n, _, from, od, ok, err := c.s.RecvMsgOrigDst(b, 0)
	if err != nil {
		return n, src, orig, c.opErr("read", mapErr("recvmsg", err, c.closed.Load()))
	}
	if in, isInet := from.(*socket.SockaddrInet); isInet {
		src = netip.AddrPortFrom(in.AddrPort.Addr().Unmap(), in.AddrPort.Port())
	}
	if ok {
		orig = od.AddrPort
	}
	return n, src, orig, nil
}

// WriteFromTo sends b to to from the address from, which need not be
// the host's (the usual answer to a diverted datagram: from is its
// original destination). It uses a transparent socket bound to from
// with SO_REUSEADDR, for this datagram only.
func WriteFromTo(n *socket.Net, b []byte, from, to netip.AddrPort) (int, error) {
	fail := func(err error) (int, error) {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: net.UDPAddrFromAddrPort(from), Addr: net.UDPAddrFromAddrPort(to), Err: err}
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	s, err := n.Socket(familyOf(from.Addr()), socket.SOCK_DGRAM, 0)
	if err != nil {
		return fail(mapErr("socket", err, false))
	}
	defer s.Close()
	if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_TRANSPARENT, 1); err != nil {
		return fail(err)
	}
	if err := s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
		return fail(err)
	}
	if err := s.Bind(socket.InetAddr(from)); err != nil {
		return fail(mapErr("bind", err, false))
	}
	k, err := s.SendTo(b, socket.MSG_NOSIGNAL, socket.InetAddr(to))
	if err != nil {
		return k, &net.OpError{Op: "write", Net: "udp", Source: net.UDPAddrFromAddrPort(from), Addr: net.UDPAddrFromAddrPort(to), Err: mapErr("sendto", err, false)}
	}
	return k, nil
}

// HeldListener is a transparent TCP listener that answers no SYN itself
// (socket.Socket.SetHoldSYN, docs/transparent.md): Next hands out each
// client's connection attempt before any answer, and the caller
// completes it, or rejects it with a reset, an ICMP destination
// unreachable or silence. A relay dials the original destination first
// and so passes its answer on to the client.
type HeldListener struct {
	s       *socket.Socket
	network string
	k       kind
	addr    net.Addr
	closed  atomic.Bool
}

// ListenTransparentHeld is ListenTransparent with held SYNs: at most
// the listen backlog (SOMAXCONN) of requests wait, taken or not, and
// one not answered within timeout (0: 30s) expires.
func ListenTransparentHeld(n *socket.Net, network, address string, timeout time.Duration) (*HeldListener, error) {
	lc := ListenConfig{Net: n, Control: func(network, address string, s *socket.Socket) error {
		if err := Transparent(network, address, s); err != nil {
			return err
		}
		return s.SetHoldSYN(true, timeout)
	}}
	nl, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	l, ok := nl.(*Listener)
	if !ok || l.k.base != "tcp" {
		nl.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	return &HeldListener{s: l.s, network: network, k: l.k, addr: l.addr}, nil
}

// Addr is the address listened on.
func (l *HeldListener) Addr() net.Addr { return l.addr }

// Socket is the listening socket.
func (l *HeldListener) Socket() *socket.Socket { return l.s }

// Next waits for the next held SYN. After Close it fails with an error
// matching net.ErrClosed; past the deadline with os.ErrDeadlineExceeded.
func (l *HeldListener) Next() (*HeldRequest, error) {
	if l.closed.Load() {
		return nil, &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	r, err := l.s.AcceptSYN()
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: mapErr("accept", err, l.closed.Load())}
	}
	return &HeldRequest{r: r, l: l}, nil
}

// SetDeadline bounds Next calls, present and future (zero: none).
func (l *HeldListener) SetDeadline(t time.Time) error {
	if l.closed.Load() {
		return &net.OpError{Op: "set", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	l.s.SetReadDeadline(t)
	return nil
}

// Close stops listening; a blocked Next returns at once, and the
// requests not yet answered can no longer be (their clients hear
// nothing and retransmit).
func (l *HeldListener) Close() error {
	if l.closed.Swap(true) {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	return l.s.Close()
}

// HeldRequest is one client's connection attempt, not yet answered.
type HeldRequest struct {
	r *socket.SynRequest
	l *HeldListener
}

// OrigDst is the address the client connected to.
func (r *HeldRequest) OrigDst() netip.AddrPort { return r.r.OrigDst() }

// Client is the client's address.
func (r *HeldRequest) Client() netip.AddrPort { return r.r.Client() }

// Established reports that a SYN cookie completed the client's
// handshake already (the listener's held requests were at its backlog
// during a flood): Complete hands the connection over, Reject resets it.
func (r *HeldRequest) Established() bool { return r.r.Established() }

// Complete answers the SYN and waits for the client's ACK (bounded by
// ctx): the conn is then established, its LocalAddr the original
// destination, set up as Accept's conns are (no Nagle delay,
// keep-alives). A request that expired fails with an error matching
// syscall.ETIMEDOUT; a handshake the client reset, ECONNREFUSED.
func (r *HeldRequest) Complete(ctx context.Context) (*TCPConn, error) {
	l := r.l
	fail := func(err error) (*TCPConn, error) {
		return nil, &net.OpError{Op: "accept", Net: l.network, Source: net.TCPAddrFromAddrPort(r.OrigDst()),
			Addr: net.TCPAddrFromAddrPort(r.Client()), Err: err}
	}
	s, err := r.r.Complete()
	if err != nil {
		return fail(mapErr("accept", err, false))
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	err = s.WaitHandshake()
	if !stop() {
		s.Close()
		return fail(ctxErr(ctx.Err()))
	}
	if err != nil {
		s.Close()
		return fail(mapErr("accept", err, false))
	}
	s.SetWriteDeadline(time.Time{})
	return wrapConn(s, l.network, l.k, nil, 0, false).(*TCPConn), nil
}

// Reject refuses the SYN (socket.RejectReset, socket.RejectHostUnreach,
// ...).
func (r *HeldRequest) Reject(how socket.Reject) error {
	if err := r.r.Reject(how); err != nil {
		return &net.OpError{Op: "reject", Net: r.l.network, Source: net.TCPAddrFromAddrPort(r.OrigDst()),
			Addr: net.TCPAddrFromAddrPort(r.Client()), Err: mapErr("reject", err, false)}
	}
	return nil
}
