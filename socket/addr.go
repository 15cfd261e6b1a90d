package socket

import (
	"fmt"
	"net/netip"
)

// Sockaddr is a socket address of some family.
type Sockaddr interface {
	Family() int
	String() string
}

// SockaddrInet is an AF_INET (or, later, AF_INET6) address and port.
type SockaddrInet struct{ AddrPort netip.AddrPort }

func (a *SockaddrInet) Family() int {
	if a.AddrPort.Addr().Is6() && !a.AddrPort.Addr().Is4In6() {
		return AF_INET6
	}
	return AF_INET
}
func (a *SockaddrInet) String() string { return a.AddrPort.String() }

// Inet makes an AF_INET address from "a.b.c.d" and a port.
func Inet(addr string, port int) *SockaddrInet {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		a = netip.Addr{}
	}
	return &SockaddrInet{netip.AddrPortFrom(a, uint16(port))}
}

// InetAddr wraps an AddrPort.
func InetAddr(ap netip.AddrPort) *SockaddrInet { return &SockaddrInet{ap} }

// SockaddrUnix is an AF_UNIX path, or an abstract name when it starts with "@".
type SockaddrUnix struct{ Name string }

func (a *SockaddrUnix) Family() int    { return AF_UNIX }
func (a *SockaddrUnix) String() string { return a.Name }

// SockaddrPacket is an AF_PACKET link-layer address.
type SockaddrPacket struct {
	Ifindex  int
	Protocol uint16
	PktType  uint8
	HWAddr   [6]byte
}

func (a *SockaddrPacket) Family() int { return AF_PACKET }
func (a *SockaddrPacket) String() string {
	return fmt.Sprintf("if%d proto 0x%04x", a.Ifindex, a.Protocol)
}

// Unspec is the AF_UNSPEC address (connect to it dissolves a datagram association).
type Unspec struct{}

func (Unspec) Family() int    { return AF_UNSPEC }
func (Unspec) String() string { return "unspec" }

// Linger is the SO_LINGER value.
type Linger struct {
	OnOff  bool
	Linger int // seconds
}

// IPMreq is the IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP value.
type IPMreq struct {
	Multiaddr netip.Addr
	Interface netip.Addr // unspecified: chosen by route
}
