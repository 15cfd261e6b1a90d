package stack

import (
	"net/netip"
	"syscall"
)

// Per-call source address and output interface: IPV6_PKTINFO and
// IP_PKTINFO given to sendmsg(2) (and the sticky IPV6_PKTINFO option).

// SendOpts overrides a datagram's source address and output NIC. The
// socket layer checks them (EINVAL for a source that is not the
// host's, ENODEV for an unknown ifindex) before they get here.
type SendOpts struct {
	Src netip.Addr // the header's source (invalid or unspecified: chosen by route)
	NIC *NIC       // route through this NIC only (nil: any)
	// GSOSet: a UDP_SEGMENT control message gave GSOSize (0: no
	// segmentation for this send), overriding the socket's option.
	GSOSet  bool
	GSOSize uint16
	// Per-datagram IP_TTL / IPV6_HOPLIMIT and IP_TOS / IPV6_TCLASS
	// (sendctl in package socket): TTL 1..255 (IPv6: 0..255) replaces
	// the socket's unicast and multicast value; TOS likewise. -1: the
	// socket's. The zero value keeps both, so Set flags say they apply.
	TTLSet, TOSSet bool
	TTL, TOS       int
	// DontFrag: IPV6_DONTFRAG for this datagram (0 or 1; -1 or unset:
	// the socket's).
	DontFragSet bool
	DontFrag    bool
	// IPOpts: IP_RETOPTS for this datagram, replacing IP_OPTIONS (nil
	// with IPOptsSet: none).
	IPOptsSet bool
	IPOpts    *SendIPOpts
	// Flow: the IPv6 flow label of an IPV6_FLOWINFO control message.
	Flow uint32
	// Ext6: this datagram's IPv6 extension headers (control messages),
	// replacing all of the socket's when not nil, as Linux's
	// udpv6_sendmsg / rawv6_sendmsg take either set, never a mix.
	Ext6 *SendExt6
	// MarkSet: an SO_MARK control message gave Mark for this datagram's
	// route (Linux's sockc.mark), in place of the socket's (route.go).
	MarkSet bool
	Mark    uint32
}

// routeVia is FindRoute restricted to routes through nic (nil: any).
// The host's own addresses are reached through loopback whatever nic
// says; a link-local destination gets nic as its zone; otherwise the
// longest matching route through nic wins, and a NIC with IPv6 or an
// IPv4 address on the destination's prefix reaches it on-link.
func (s *Stack) routeVia(dst netip.Addr, nic *NIC) (ResolvedRoute, error) {
	if nic == nil || s.ownerOf(dst) != nil {
		return s.FindRoute(dst)
	}
	if nic == s.lo {
		// Only the host's addresses are behind loopback.
		return ResolvedRoute{}, syscall.ENETUNREACH
	}
	if dst.Is6() && !dst.Is4In6() && (dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast()) {
		return s.FindRoute(dst.WithZone(nic.name))
	}
	best := -1
	var rr ResolvedRoute
	for _, r := range *s.routeSnap.Load() {
		if r.NIC != nic || r.Prefix.Addr().Is4() != dst.Is4() || !r.Prefix.Contains(dst) || r.Prefix.Bits() <= best {
			continue
		}
		best = r.Prefix.Bits()
		rr = ResolvedRoute{NIC: nic, NextHop: dst, Gateway: r.Gateway, MTU: r.MTU, Src: r.Src}
		if r.Gateway.IsValid() {
			rr.NextHop = r.Gateway
		}
	}
	if best < 0 {
		return ResolvedRoute{}, syscall.ENETUNREACH
	}
	m := nic.mtu
	if dst.Is6() {
		m = nic.mtu6()
	}
	if rr.MTU == 0 || rr.MTU > m {
		rr.MTU = m
	}
	if !rr.Src.IsValid() || !nic.hasAddr(rr.Src) {
		if dst.Is6() {
			rr.Src = nic.selectSource6(dst)
		} else {
			rr.Src = nic.primaryAddr(rr.NextHop)
		}
	}
	if !rr.Src.IsValid() {
		return ResolvedRoute{}, syscall.EADDRNOTAVAIL
	}
	return rr, nil
}

// HasAddrOn reports whether a is one of nic's addresses (nil: any NIC's;
// the loopback range counts as loopback's), for the source address of
// IPV6_PKTINFO / IP_PKTINFO.
func (s *Stack) HasAddrOn(a netip.Addr, nic *NIC) bool {
	o := s.ownerOf(a)
	return o != nil && (nic == nil || o == nic)
}
