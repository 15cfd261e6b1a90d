package netconn

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/sockstack/sockstack/socket"
)

// Resolver looks host names up. *net.Resolver satisfies it (that would
// ask the host's DNS); nil in a Dialer means the socket.Net's own
// resolver (socket.Net.GetAddrInfo: its hosts table, then its DNS).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// kind says what a network name means for the socket layer.
type kind struct {
	family int // socket.AF_INET, AF_INET6 or AF_UNIX; 0: pick by address
	typ    int
	v4only bool
	v6only bool
	inet   bool
	stream bool
	base   string // "tcp", "udp", "unix", "unixgram", "unixpacket"
}

func parseNetwork(network string) (kind, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return kind{typ: socket.SOCK_STREAM, inet: true, stream: true, base: "tcp",
			v4only: network == "tcp4", v6only: network == "tcp6"}, nil
	case "udp", "udp4", "udp6":
		return kind{typ: socket.SOCK_DGRAM, inet: true, base: "udp",
			v4only: network == "udp4", v6only: network == "udp6"}, nil
	case "unix":
		return kind{family: socket.AF_UNIX, typ: socket.SOCK_STREAM, stream: true, base: "unix"}, nil
	case "unixgram":
		return kind{family: socket.AF_UNIX, typ: socket.SOCK_DGRAM, base: "unixgram"}, nil
	case "unixpacket":
		return kind{family: socket.AF_UNIX, typ: socket.SOCK_SEQPACKET, base: "unixpacket"}, nil
	}
	return kind{}, net.UnknownNetworkError(network)
}

// familyOf is the socket family for an IP address.
func familyOf(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return socket.AF_INET6
	}
	return socket.AF_INET
}

// toNetAddr turns a socket address into the net.Addr type the standard
// library uses for network.
func toNetAddr(base string, sa socket.Sockaddr) net.Addr {
	switch v := sa.(type) {
	case *socket.SockaddrInet:
		ap := netip.AddrPortFrom(v.AddrPort.Addr().Unmap(), v.AddrPort.Port())
		if base == "udp" {
			return net.UDPAddrFromAddrPort(ap)
		}
		return net.TCPAddrFromAddrPort(ap)
	case *socket.SockaddrUnix:
		return &net.UnixAddr{Name: v.Name, Net: base}
	}
	return nil
}

// toSockaddr turns a net.Addr into a socket address.
func toSockaddr(a net.Addr) (socket.Sockaddr, error) {
	switch v := a.(type) {
	case *net.TCPAddr:
		return inetSockaddr(v.AddrPort(), v.IP)
	case *net.UDPAddr:
		return inetSockaddr(v.AddrPort(), v.IP)
	case *net.UnixAddr:
		return &socket.SockaddrUnix{Name: v.Name}, nil
	}
	return nil, &net.AddrError{Err: "unexpected address type", Addr: a.String()}
}

func inetSockaddr(ap netip.AddrPort, ip net.IP) (socket.Sockaddr, error) {
	if len(ip) == 0 {
		// A nil IP means the wildcard, as in the net package.
		ap = netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())
	}
	return socket.InetAddr(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), nil
}

// splitHostPort parses "host:port", looking service names up with the
// net package (that reads /etc/services only; no traffic).
func splitHostPort(network, address string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		pi, lerr := net.LookupPort(network, ps)
		if lerr != nil {
			return "", 0, lerr
		}
		p = uint64(pi)
	}
	return host, uint16(p), nil
}

// lookupHost resolves host for k; empty host means unspecified when
// listening and this host (127.0.0.1) when dialing.
func lookupHost(ctx context.Context, n *socket.Net, r Resolver, k kind, host string, listen bool) ([]netip.Addr, error) {
	if host == "" {
		if listen {
			// Package net listens on a dual-stack :: unless told "tcp4".
			if k.v4only {
				return []netip.Addr{netip.IPv4Unspecified()}, nil
			}
			return []netip.Addr{netip.IPv6Unspecified()}, nil
		}
		host = "localhost"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return filterAddrs(k, host, []netip.Addr{a}) // the zone is the scope id
	}
	if r != nil {
		addrs, err := r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		return filterAddrs(k, host, addrs)
	}
	addrs, err := stackLookup(ctx, n, k, host)
	if err != nil {
		return nil, err
	}
	return filterAddrs(k, host, addrs)
}

// stackLookup asks the socket layer's getaddrinfo (hosts table, the
// stack's own name, then its DNS stub resolver). That call cannot be
// canceled, so it runs aside and ctx bounds only the wait for it.
func stackLookup(ctx context.Context, n *socket.Net, k kind, host string) ([]netip.Addr, error) {
	family := socket.AF_UNSPEC
	switch {
	case k.v4only:
		family = socket.AF_INET
	case k.v6only:
		family = socket.AF_INET6
	}
	type result struct {
		ai  []socket.AddrInfo
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ai, err := n.GetAddrInfo(host, "", family, k.typ, 0, 0)
		ch <- result{ai, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		err := ctxErr(ctx.Err())
		_, timeout := err.(timeoutError)
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTimeout: timeout}
	}
	if r.err != nil {
		return nil, dnsError(host, r.err)
	}
	var out []netip.Addr
	for _, ai := range r.ai {
		if ai.Addr == nil {
			continue
		}
		a := ai.Addr.AddrPort.Addr()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// dnsError turns a getaddrinfo failure into the *net.DNSError package net gives.
func dnsError(host string, err error) error {
	de := &net.DNSError{Err: err.Error(), Name: host}
	var ge *socket.GaiError
	if errors.As(err, &ge) {
		switch ge.Code {
		case socket.EAI_NONAME, socket.EAI_NODATA:
			de.Err, de.IsNotFound = "no such host", true
		case socket.EAI_AGAIN:
			de.IsTemporary = true
		}
	}
	return de
}

// filterAddrs keeps the addresses k can use, IPv4 first.
func filterAddrs(k kind, host string, in []netip.Addr) ([]netip.Addr, error) {
	var v4, v6 []netip.Addr
	for _, a := range in {
		if a.Is4() || a.Is4In6() {
			v4 = append(v4, a.Unmap())
		} else {
			v6 = append(v6, a)
		}
	}
	var out []netip.Addr
	switch {
	case k.v4only:
		out = v4
	case k.v6only:
		out = v6
	default:
		out = append(v4, v6...)
	}
	if len(out) == 0 {
		return nil, &net.AddrError{Err: "no suitable address found", Addr: host}
	}
	return out, nil
}
