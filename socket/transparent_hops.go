package socket

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// RecvMsgHops is recvmsg(2) on a UDP socket for a transparent proxy that
// forwards what it reads as a router would: with the datagram, its
// original destination (IP_ORIGDSTADDR, IPV6_ORIGDSTADDR) and the TTL
// (hop limit) it arrived with (what IP_RECVTTL and IPV6_RECVHOPLIMIT
// report), whatever options are set. Other sockets give EOPNOTSUPP.
func (s *Socket) RecvMsgHops(b []byte, flags int) (n int, from netip.AddrPort, orig netip.AddrPort, hops int, err error) {
	d, ok := s.ep.(*dgramEP)
	if !ok || d.ep.Kind() != stack.KindUDP {
		return 0, from, orig, 0, syscall.EOPNOTSUPP
	}
	var info stack.PacketInfo
	var sa Sockaddr
	if n, _, sa, info, err = s.recvDgramInfo(d, b, flags, nil); err != nil {
		return 0, from, orig, 0, err
	}
	stack.PutRecvExt6(info.Ext6) // not read here
	info.Ext6 = nil
	if in, isInet := sa.(*SockaddrInet); isInet {
		from = netip.AddrPortFrom(in.AddrPort.Addr().Unmap(), in.AddrPort.Port())
	}
	if info.Dst.IsValid() {
		orig = netip.AddrPortFrom(info.Dst.Unmap(), info.DstPort)
	}
	return n, from, orig, int(info.HopLimit), nil
}
