package socket

import (
	"encoding/binary"

	"github.com/sockstack/sockstack/stack"
)

// Receive options for IPv6 extension headers beyond IPV6_RECVHOPOPTS and
// IPV6_RECVDSTOPTS (inet_recvopts.go), as Linux's
// ip6_datagram_recv_specific_ctl gives them:
//
//   - IPV6_RECVRTHDR: an IPV6_RTHDR message with a received datagram's
//     routing header whole (one the input passed over: segments left
//     0), in chain order among the IPV6_DSTOPTS messages.
//   - The RFC 2292 options, each an int flag on its own bit: after the
//     messages above, IPV6_2292PKTINFO (an in6_pktinfo: destination and
//     arrival interface), IPV6_2292HOPLIMIT (an int), IPV6_2292HOPOPTS
//     (the Hop-by-Hop header), IPV6_2292DSTOPTS with the Destination
//     Options header before the routing header, IPV6_2292RTHDR, then
//     IPV6_2292DSTOPTS with the last one after it (or the last one when
//     there is no routing header): Linux's dst0, srcrt and dst1. The
//     message types are the option numbers (2, 8, 3, 4, 5).
//
// Like the others they apply to UDP and raw AF_INET6 sockets' IPv6
// datagrams; AF_INET sockets refuse them (ENOPROTOOPT, EOPNOTSUPP for
// getsockopt), TCP sockets keep and report them.

// IPV6_RECVRTHDR asks for IPV6_RTHDR messages (Linux's number).
const IPV6_RECVRTHDR = 56

// recvInfo bits of these options (after inet_recvopts.go's).
const (
	rthdrBit    = 1 << 15 // IPV6_RECVRTHDR
	oPktinfoBit = 1 << 16 // IPV6_2292PKTINFO
	oHopLimBit  = 1 << 17 // IPV6_2292HOPLIMIT
	oHopOptsBit = 1 << 18 // IPV6_2292HOPOPTS
	oDstOptsBit = 1 << 19 // IPV6_2292DSTOPTS
	oRthdrBit   = 1 << 20 // IPV6_2292RTHDR
)

// ext6RecvBit is recvOptBit for these options; 0 for others.
func ext6RecvBit(level, name int) uint32 {
	if level != IPPROTO_IPV6 {
		return 0
	}
	switch name {
	case IPV6_RECVRTHDR:
		return rthdrBit
	case IPV6_2292PKTINFO:
		return oPktinfoBit
	case IPV6_2292HOPLIMIT:
		return oHopLimBit
	case IPV6_2292HOPOPTS:
		return oHopOptsBit
	case IPV6_2292DSTOPTS:
		return oDstOptsBit
	case IPV6_2292RTHDR:
		return oRthdrBit
	}
	return 0
}

// noExt6 is a datagram without extension headers; never written.
var noExt6 stack.RecvExt6

// putExt6Cmsgs writes the extension header messages of m, from
// IPV6_HOPOPTS to the RFC 2292 ones, in Linux's order.
func putExt6Cmsgs(w *cmsgWriter, bits uint32, m *rxMeta) {
	x := m.ext6
	if x == nil {
		if bits&(oPktinfoBit|oHopLimBit) == 0 {
			return
		}
		x = &noExt6 // none: only the RFC 2292 pktinfo and hop limit
	}
	if bits&hopOptsBit != 0 && len(x.Hop) > 0 {
		w.put(IPPROTO_IPV6, IPV6_HOPOPTS, x.Hop)
	}
	if bits&(dstOptsBit|rthdrBit) != 0 {
		for i := 0; i <= len(x.Dst); i++ {
			if i == x.RtAt && len(x.Rt) > 0 && bits&rthdrBit != 0 {
				w.put(IPPROTO_IPV6, IPV6_RTHDR, x.Rt)
			}
			if i < len(x.Dst) && bits&dstOptsBit != 0 {
				w.put(IPPROTO_IPV6, IPV6_DSTOPTS, x.Dst[i])
			}
		}
	}
	if bits&oPktinfoBit != 0 {
		var d [20]byte
		a := mapped(m.dst).As16()
		copy(d[:], a[:])
		binary.NativeEndian.PutUint32(d[16:], uint32(m.ifindex))
		w.put(IPPROTO_IPV6, IPV6_2292PKTINFO, d[:])
	}
	if bits&oHopLimBit != 0 {
		w.putInt(IPPROTO_IPV6, IPV6_2292HOPLIMIT, int32(m.ttl))
	}
	if bits&oHopOptsBit != 0 && len(x.Hop) > 0 {
		w.put(IPPROTO_IPV6, IPV6_2292HOPOPTS, x.Hop)
	}
	// dst0: the last Destination Options header before the routing
	// header; dst1: the last one after it, or the last of all without
	// one (Linux's ipv6_rthdr_rcv moves dst1 to dst0).
	var dst0, dst1 []byte
	if len(x.Rt) > 0 {
		if x.RtAt > 0 {
			dst0 = x.Dst[x.RtAt-1]
		}
		if len(x.Dst) > x.RtAt {
			dst1 = x.Dst[len(x.Dst)-1]
		}
	} else if len(x.Dst) > 0 {
		dst1 = x.Dst[len(x.Dst)-1]
	}
	if bits&oDstOptsBit != 0 && dst0 != nil {
		w.put(IPPROTO_IPV6, IPV6_2292DSTOPTS, dst0)
	}
	if bits&oRthdrBit != 0 && len(x.Rt) > 0 {
		w.put(IPPROTO_IPV6, IPV6_2292RTHDR, x.Rt)
	}
	if bits&oDstOptsBit != 0 && dst1 != nil {
		w.put(IPPROTO_IPV6, IPV6_2292DSTOPTS, dst1)
	}
}
