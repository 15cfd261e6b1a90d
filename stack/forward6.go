package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/wire"
)

// IPv6 forwarding (RFC 8200, RFC 4443, RFC 4861 8.2), the peer of
// forwardFrom and in the order of Linux's ip6_rcv_finish / ip6_forward:
// the Hop-by-Hop header is processed (the only one a router reads: a
// routing header with segments left on a packet for someone else is
// just carried), the route is looked up through the policy rules with
// the input NIC as iif, then the hop limit, the scope of the source and
// the MTU are checked. A router never fragments: a packet over the
// outgoing MTU gets a Packet Too Big. Nothing is allocated per packet:
// the copy that leaves is a pool buffer.

// forward6 routes h (as wire.ParseIPv6 cut it: no link padding), which
// came in on n and is not addressed to this host (receiveIPv6 calls it
// only with Options.Forwarding).
func (s *Stack) forward6(n *NIC, h wire.IPv6) {
	st := &s.stats.IP6
	src, dst := h.Src(), h.Dst()
	switch {
	case dst.IsMulticast():
		// Multicast routing is not done; a group not joined was dropped
		// before, so this is only reached by a caller's mistake.
		st.InAddrErrors.Add(1)
		return
	case dst.IsLinkLocalUnicast(), src.IsUnspecified():
		// A link-local destination is on the link it came from and
		// nowhere else; the unspecified source may not leave its link
		// (RFC 4291 2.5.2, Linux's ip6_forward "security critical").
		st.ForwScope.Add(1)
		st.InAddrErrors.Add(1)
		return
	}
	buf := getBuf(wire.EthernetHeaderLen + len(h))
	defer putBuf(buf)
	p := wire.IPv6(buf[wire.EthernetHeaderLen:])
	copy(p, h)
	if h.NextHeader() == wire.ProtoHopByHop && !s.hopByHopOK(h, p) {
		return
	}
	r, err := s.forwardRoute(src, dst, n)
	if err != nil || r.Local {
		st.InNoRoutes.Add(1)
		// A refusing rule answers as Linux's fib6_rule_action: the
		// blackhole entry discards silently, prohibit is ip6_pkt_prohibit
		// (administratively prohibited), anything else ip6_pkt_discard
		// (no route).
		switch err {
		case syscall.EINVAL:
		case syscall.EACCES:
			s.forwardError6(n, h, wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited, 0)
		default:
			s.forwardError6(n, h, wire.ICMPv6DestUnreach, wire.ICMPv6NoRoute, 0)
		}
		return
	}
	if h.HopLimit() <= 1 {
		// RFC 8200 3, RFC 4443 3.3; Linux counts it in InHdrErrors.
		st.InHdrErrors.Add(1)
		st.InHopLimitExceeded.Add(1)
		s.forwardError6(n, h, wire.ICMPv6TimeExceeded, wire.ICMPv6HopLimitExceeded, 0)
		return
	}
	if r.NIC == n {
		// Back out of the link it came in on: the source could reach the
		// next hop directly; it is told so (RFC 4861 8.2) and the packet
		// is forwarded all the same.
		st.ForwSameLink.Add(1)
		s.redirect6(n, h, &r)
	} else if src.IsLinkLocalUnicast() {
		// A link-local source cannot be answered from another link:
		// beyond the scope of the source address (RFC 4443 3.1).
		st.ForwScope.Add(1)
		st.InAddrErrors.Add(1)
		s.forwardError6(n, h, wire.ICMPv6DestUnreach, wire.ICMPv6BeyondScope, 0)
		return
	}
	mtu := max(r.MTU, wire.IPv6MinMTU)
	if len(h) > mtu {
		// Routers never fragment IPv6 (RFC 8200 5): the source learns
		// the MTU (RFC 8201) from a Packet Too Big (RFC 4443 3.2).
		st.InTooBigErrors.Add(1)
		st.FragFails.Add(1)
		s.forwardError6(n, h, wire.ICMPv6PacketTooBig, 0, uint32(mtu))
		return
	}
	p.SetHopLimit(h.HopLimit() - 1) // no header checksum in IPv6
	st.ForwDatagrams.Add(1)
	r.NIC.sendIP6(r.NextHop, buf) // a refusing link counts it (Link.OutErrors)
}

// hopByHopOK processes h's Hop-by-Hop header, whose copy p may be
// scribbled on: the walk is cut after the Hop-by-Hop header by naming
// "no next header" after it in the copy, so the headers behind it, a
// router's to carry, are not judged. A refused header is answered as a
// host answers it (extError) and the packet dropped.
func (s *Stack) hopByHopOK(h, p wire.IPv6) bool {
	const at = wire.IPv6HeaderLen // its next-header byte
	if len(p) < at+8 {
		s.stats.IP6.InHdrErrors.Add(1)
		s.stats.IP6.InTruncated.Add(1)
		return false
	}
	next := p[at]
	p[at] = wire.ProtoIPv6NoNext
	var e wire.IPv6Ext
	xe := wire.WalkIPv6Ext(p, &e)
	p[at] = next
	if xe != nil {
		s.extError(h, xe, false)
		return false
	}
	return true
}

// forwardError6 sends an ICMPv6 error about a packet being forwarded;
// a link-local source is answered on the link it came from (in).
func (s *Stack) forwardError6(in *NIC, h wire.IPv6, typ, code uint8, info uint32) {
	s.sendICMPv6ErrorVia(in, h, typ, code, info)
}

// redirect6 tells the source of h, which leaves by n, the link it came
// in on, of the better first hop (RFC 4861 8.2, Linux's
// ndisc_send_redirect): the route's gateway, when it is link-local, or
// the destination itself, on-link. The source must be a neighbour (a
// link-local address or one in a prefix of n); redirects share the
// ICMP error rate limit per destination.
func (s *Stack) redirect6(n *NIC, h wire.IPv6, r *ResolvedRoute) {
	src, dst := h.Src(), h.Dst()
	target := dst
	if r.Gateway.IsValid() {
		target = r.Gateway.WithZone("")
		if !target.IsLinkLocalUnicast() {
			return // a router must be named by its link-local address
		}
	}
	if !src.IsLinkLocalUnicast() && !n.onLink6(src) {
		return
	}
	ll := n.selectSource6(wire.IPv6AllNodes)
	if !ll.IsLinkLocalUnicast() {
		return
	}
	if !s.icmpAllowDst(src) {
		s.stats.ICMP6.OutRateLimited.Add(1)
		return
	}
	b := getBuf(wire.ICMPv6ErrorMax)
	defer putBuf(b)
	l := wire.PutRedirect(b, target, dst)
	if nb, ok := n.Neighbor6(target); ok && nb.State != NeighIncomplete {
		l += wire.PutNDPLinkOpt(b[l:], wire.NDPOptTargetLL, nb.MAC)
	}
	// The Redirected Header option: as much of h as keeps the message
	// within the minimum MTU, in whole 8-byte units.
	quote := min(len(h), (len(b)-l-8)&^7)
	o := b[l : l+8+(quote+7)&^7]
	clear(o)
	o[0], o[1] = wire.NDPOptRedirectedHd, uint8(len(o)/8)
	copy(o[8:], h[:quote])
	l += len(o)
	s.stats.ICMP6.OutMsgs.Add(1)
	s.stats.ICMP6.OutRedirects.Add(1)
	p := OutPacket{Src: ll, Dst: src, Iface: n, TTL: 255, Proto: wire.ProtoICMPv6, Parts: [3][]byte{b[:l]}}
	if src.IsLinkLocalUnicast() {
		p.Dst = src.WithZone(n.name)
	}
	if s.writePacket6(&p, nil) != nil {
		s.stats.ICMP6.OutErrors.Add(1)
	}
}

// onLink6 reports whether a is in the prefix of one of n's addresses.
func (n *NIC) onLink6(a netip.Addr) bool {
	for _, p := range n.addrSnapshot().prefixes {
		if p.Addr().Is6() && p.Masked().Contains(a) {
			return true
		}
	}
	return false
}
