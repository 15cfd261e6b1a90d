package netconn

import (
	"net"
	"net/netip"

	"github.com/sockstack/sockstack/socket"
)

// UDPConn is a UDP socket, like *net.UDPConn: a net.PacketConn, and a
// net.Conn too when it was dialed (connected).
type UDPConn struct {
	*conn
	connected bool
}

var (
	_ net.Conn       = (*UDPConn)(nil)
	_ net.PacketConn = (*UDPConn)(nil)
)

// Read reads one datagram from the connected peer (truncated to len(b)).
func (c *UDPConn) Read(b []byte) (int, error) { return c.read(b) }

// Write sends b as one datagram to the connected peer.
func (c *UDPConn) Write(b []byte) (int, error) { return c.write(b) }

// ReadFrom reads one datagram and returns its sender as a *net.UDPAddr.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromUDP is ReadFrom with a *net.UDPAddr.
func (c *UDPConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, ap, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromUDPAddrPort reads one datagram and its sender without allocating an address.
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, sa, err := c.recvFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	if in, ok := sa.(*socket.SockaddrInet); ok {
		ap = netip.AddrPortFrom(in.AddrPort.Addr().Unmap(), in.AddrPort.Port())
	}
	return n, ap, nil
}

// WriteTo sends b as one datagram to addr (a *net.UDPAddr). A dialed
// UDPConn refuses, as net.UDPConn does.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: addr,
			Err: &net.AddrError{Err: "unexpected address type", Addr: addrString(addr)}}
	}
	return c.WriteToUDP(b, ua)
}

// WriteToUDP sends b to addr.
func (c *UDPConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Err: errMissingAddress}
	}
	return c.writeTo(b, addr.AddrPort(), addr)
}

// WriteToUDPAddrPort sends b to addr without allocating.
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.writeTo(b, addr, nil)
}

func (c *UDPConn) writeTo(b []byte, ap netip.AddrPort, to net.Addr) (int, error) {
	if to == nil {
		to = net.UDPAddrFromAddrPort(ap)
	}
	if c.connected {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: to, Err: net.ErrWriteToConnected}
	}
	if !ap.Addr().IsValid() {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.localAddr(), Addr: to, Err: errMissingAddress}
	}
	return c.sendTo(b, socket.InetAddr(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), to)
}

func addrString(a net.Addr) string {
	if a == nil {
		return "<nil>"
	}
	return a.String()
}
