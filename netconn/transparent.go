package netconn

import (
	"context"
	"net"
	"net/netip"

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
