package socket

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// UDP segmentation offload, as Linux: setsockopt(SOL_UDP, UDP_SEGMENT)
// or a UDP_SEGMENT control message on sendmsg makes one send of up to
// 64 KB go out as datagrams of that many payload bytes each (the last
// may be shorter); the receiver sees each as its own datagram, unless it
// has UDP_GRO on: then a super-datagram that arrives whole is one read,
// with its segment size in the UDP_GRO control message (RecvMsgUDP).

// SOL_UDP option names (linux/udp.h).
const (
	UDP_SEGMENT = 103
	UDP_GRO     = 104
)

// UDPSegment is a UDP_SEGMENT control message for SendMsg: the segment
// size of this send (0: none), overriding the socket's option. Its
// 16-bit width is Linux's (a cmsg of another length is EINVAL there).
type UDPSegment uint16

// setOptionUDP is setsockopt(SOL_UDP, name) on a datagram socket:
// ENOPROTOOPT on raw and ping sockets (ip_setsockopt knows no SOL_UDP)
// and for names this stack does not have; EINVAL for a value narrower
// than an int (Linux's optlen check) or UDP_SEGMENT outside 0–65535.
func (d *dgramEP) setOptionUDP(name int, v any) error {
	if d.ep.Kind() != stack.KindUDP {
		return syscall.ENOPROTOOPT
	}
	var i int
	switch x := v.(type) {
	case int:
		i = x
	case int32:
		i = int(x)
	case bool:
		i = b2i(x)
	default:
		return syscall.EINVAL
	}
	switch name {
	case UDP_SEGMENT:
		return d.ep.SetUDPSegment(i)
	case UDP_GRO:
		d.ep.SetUDPGRO(i != 0)
		return nil
	}
	return syscall.ENOPROTOOPT
}

// getOptionUDP is getsockopt(SOL_UDP, name): EOPNOTSUPP on raw and
// ping sockets (ip_getsockopt), ENOPROTOOPT for unknown names.
func (d *dgramEP) getOptionUDP(name int) (any, error) {
	if d.ep.Kind() != stack.KindUDP {
		return nil, syscall.EOPNOTSUPP
	}
	switch name {
	case UDP_SEGMENT:
		return d.ep.UDPSegment(), nil
	case UDP_GRO:
		return b2i(d.ep.UDPGRO()), nil
	}
	return nil, syscall.ENOPROTOOPT
}

// udpSegmentCmsg reads a UDP_SEGMENT control message into o; raw and
// ping sockets ignore it, as Linux's ip_cmsg_send skips SOL_UDP.
func (d *dgramEP) udpSegmentCmsg(o *stack.SendOpts, m UDPSegment) {
	if d.ep.Kind() != stack.KindUDP {
		return
	}
	o.GSOSet, o.GSOSize = true, uint16(m)
}

// RecvMsgUDP is recvmsg(2) on a UDP socket reading the UDP_GRO control
// message: gsoSize is the segment size of a read holding several
// datagrams coalesced (UDP_GRO on), 0 when the read is one datagram (no
// control message on Linux). A truncated read reports MSG_TRUNC and
// loses the rest, as any datagram. Other sockets give EOPNOTSUPP.
func (s *Socket) RecvMsgUDP(b []byte, flags int) (n, rflags int, from Sockaddr, gsoSize int, err error) {
	d, ok := s.ep.(*dgramEP)
	if !ok || d.ep.Kind() != stack.KindUDP {
		return 0, 0, nil, 0, syscall.EOPNOTSUPP
	}
	var info stack.PacketInfo
	if n, rflags, from, info, err = s.recvDgramInfo(d, b, flags, nil); err != nil {
		return 0, 0, nil, 0, err
	}
	stack.PutRecvExt6(info.Ext6) // not read here
	info.Ext6 = nil
	return n, rflags, from, info.GSOSize, nil
}

// recvDgramInfo is recvmsg(2)'s common part on a datagram socket: the
// payload, its source, MSG_TRUNC, and what the stack knows of the
// datagram (destination, hop limit, segment size) for the caller's
// ancillary data; a non-nil at gets its arrival time (rxstamp.go).
func (s *Socket) recvDgramInfo(d *dgramEP, b []byte, flags int, at *int64) (n, rflags int, from Sockaddr, info stack.PacketInfo, err error) {
	var full int
	err = s.blocking(flags, false, waiter.EventIn, func() error {
		var ap netip.AddrPort
		var e error
		n, full, ap, e = d.recvFrom(b, flags, &info, at)
		if e == nil && ap.IsValid() {
			from = d.sa(ap)
		}
		return e
	})
	if err != nil {
		return 0, 0, nil, info, err
	}
	if full > n {
		rflags |= MSG_TRUNC
		if flags&MSG_TRUNC != 0 {
			n = full
		}
	}
	return n, rflags, from, info, nil
}
