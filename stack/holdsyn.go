package stack

import (
	"net/netip"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// SendUnreach rejects a held SYN (tcp/holdsyn.go) with an ICMP or
// ICMPv6 destination unreachable to the client. The SYN itself is not
// kept, so the quoted packet is rebuilt: an IP header from client to
// dst and the SYN's TCP header, which is all a client's stack matches
// the error on (addresses, ports, sequence number). It leaves from dst
// when that is the host's own address (the host refuses), else from the
// host's address towards the client, as a router's error does; the usual
// ICMP rules and rate limit apply (Stats().ICMP.OutRateLimited).
func (h tcpHost) SendUnreach(client, dst netip.Addr, quote []byte, how tcp.Reject) error {
	s := h.s
	var b [wire.IPv6HeaderLen + wire.TCPMinHeaderLen + 40]byte
	if client.Is4() {
		code := wire.ICMPHostUnreach
		switch how {
		case tcp.RejectNetUnreach:
			code = wire.ICMPNetUnreach
		case tcp.RejectPortUnreach:
			code = wire.ICMPPortUnreach
		case tcp.RejectAdminProhibited:
			code = wire.ICMPAdminProhibited
		}
		ih := wire.IPv4Header{TotalLen: wire.IPv4MinHeaderLen + len(quote), DF: true, TTL: 64,
			Protocol: wire.ProtoTCP, Src: client, Dst: dst.Unmap()}
		n := ih.Put(b[:])
		n += copy(b[n:], quote)
		s.sendICMPError(wire.IPv4(b[:n]), wire.ICMPDestUnreach, code, 0)
		return nil
	}
	code := wire.ICMPv6AddrUnreach
	switch how {
	case tcp.RejectNetUnreach:
		code = wire.ICMPv6NoRoute
	case tcp.RejectPortUnreach:
		code = wire.ICMPv6PortUnreach
	case tcp.RejectAdminProhibited:
		code = wire.ICMPv6AdminProhibited
	}
	ih := wire.IPv6Header{PayloadLen: len(quote), NextHeader: wire.ProtoTCP, HopLimit: 64, Src: client, Dst: dst}
	n := ih.Put(b[:])
	n += copy(b[n:], quote)
	s.sendICMPv6Error(b[:n], wire.ICMPv6DestUnreach, code, 0)
	return nil
}
