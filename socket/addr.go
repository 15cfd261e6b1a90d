package socket

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// Sockaddr is a socket address of some family.
type Sockaddr interface {
	Family() int
	String() string
}

// SockaddrInet is an AF_INET or AF_INET6 address and port: an IPv6
// address (v4-mapped ones included) is AF_INET6, its zone the scope id.
type SockaddrInet struct{ AddrPort netip.AddrPort }

func (a *SockaddrInet) Family() int {
	if a.AddrPort.Addr().Is6() {
		return AF_INET6
	}
	return AF_INET
}
func (a *SockaddrInet) String() string { return a.AddrPort.String() }

// Inet makes an AF_INET address from "a.b.c.d" and a port. A bad address
// or a port outside 0-65535 gives an invalid address that every call
// refuses with EINVAL (the port is never wrapped into range); ParseInet
// says why instead.
func Inet(addr string, port int) *SockaddrInet {
	sa, err := ParseInet(addr, port)
	if err != nil {
		return &SockaddrInet{}
	}
	return sa
}

// ParseInet makes an AF_INET (or AF_INET6) address from an address string
// and a port; the error wraps EINVAL and names what is wrong.
func ParseInet(addr string, port int) (*SockaddrInet, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("socket: bad address %q: %w", addr, syscall.EINVAL)
	}
	ap, err := AddrPort(a, port)
	if err != nil {
		return nil, err
	}
	return &SockaddrInet{ap}, nil
}

// CheckPort fails with an error wrapping EINVAL when port is not 0-65535.
func CheckPort(port int) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("socket: port %d out of range 0-65535: %w", port, syscall.EINVAL)
	}
	return nil
}

// AddrPort joins an address and a port, refusing (EINVAL) a port that
// netip.AddrPortFrom would silently truncate to 16 bits.
func AddrPort(a netip.Addr, port int) (netip.AddrPort, error) {
	if err := CheckPort(port); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// ParsePort reads a decimal port number 0-65535; the error wraps EINVAL
// and quotes the text.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("socket: bad port %q: %w", s, syscall.EINVAL)
	}
	if err := CheckPort(p); err != nil {
		return 0, fmt.Errorf("socket: port %q out of range 0-65535: %w", s, syscall.EINVAL)
	}
	return p, nil
}

// ParseAddrPort reads "a.b.c.d:port" (or "[v6]:port"); the error wraps
// EINVAL and quotes the text.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket: bad address %q (want ADDR:PORT): %w", s, syscall.EINVAL)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket: bad address %q: %w", host, syscall.EINVAL)
	}
	p, err := ParsePort(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
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
