package stack

import (
	"net/netip"
	"strconv"
	"syscall"

	"github.com/sockstack/sockstack/wire"
)

// IPv6 in and out (RFC 8200): the peer of ipv4.go. Routing, PMTU,
// reassembly, ICMP rate limiting and multicast membership are the shapes
// IPv4 uses, with the address family deciding; TCP and UDP see only
// addresses and a pseudo-header sum.

var ipv6Loopback = netip.IPv6Loopback()

// receiveIPv6 checks a packet, walks its extension headers, reassembles
// and delivers it, or forwards it (Options.Forwarding, forward6.go).
func (s *Stack) receiveIPv6(n *NIC, rx *rxState, b []byte, linkMulticast bool) {
	s.input6(n, rx, b, linkMulticast, 0)
}

// input6 is receiveIPv6 for a packet depth SRv6 decapsulations deep.
func (s *Stack) input6(n *NIC, rx *rxState, b []byte, linkMulticast bool, depth int) {
	st := &s.stats.IP6
	st.InReceives.Add(1)
	h, err := wire.ParseIPv6(b)
	if err != nil {
		st.InHdrErrors.Add(1)
		if pe, ok := err.(*wire.ParseError); ok {
			switch pe.Reason {
			case wire.ReasonTruncated:
				st.InTruncated.Add(1)
			case wire.ReasonBadVersion:
				st.InBadVersion.Add(1)
			default:
				st.InBadLength.Add(1)
			}
		}
		return
	}
	if s.martian6(n, h) {
		return
	}
	dst := h.Dst()
	mcast := dst.IsMulticast()
	switch {
	case n.loopback:
	case mcast:
		if !n.isMember(dst) {
			st.InAddrErrors.Add(1)
			return
		}
	case n.hasAddr(dst):
	case s.IsLocal(dst) && !dst.IsLinkLocalUnicast():
		// Weak host model for global addresses; a link-local address
		// is valid only on its own link (its zone), as in Linux.
	case n.isTentative(dst):
		// Only ND may reach an address under DAD (RFC 4862 5.4): its NS
		// and NA go to the solicited-node group, never here.
		st.InTentative.Add(1)
		return
	default:
		if !linkMulticast && s.mayDivert6(n, dst, false) {
			// A chain the usual path would refuse is not diverted.
			var e wire.IPv6Ext
			if wire.WalkIPv6Ext(h, &e) == nil && s.divert6(n, rx, h, &e, false) {
				return // transparent.go
			}
		}
		if linkMulticast || !s.opts.Forwarding {
			st.InAddrErrors.Add(1)
			return
		}
		s.forward6(n, h)
		return
	}
	var e wire.IPv6Ext
	xe := wire.WalkIPv6Ext(h, &e)
	if xe != nil && xe.Route != 0 || e.SRH != 0 {
		// A routing header with segments left, or an SRH: SRv6 (seg6.go)
		// may consume it, or give it a new destination of ours.
		switch s.seg6Input(n, rx, h, &e, xe, mcast, depth) {
		case seg6Done:
			return
		case seg6Again:
			xe = wire.WalkIPv6Ext(h, &e)
			dst = h.Dst()
		}
	}
	if xe != nil {
		s.extError(h, xe, mcast)
		return
	}
	if !n.loopback && !mcast && s.mayDivert6(n, dst, true) && s.divert6(n, rx, h, &e, true) {
		return // transparent.go
	}
	frag := e.Frag
	if frag {
		whole, release := s.reassemble6(h, &e, mcast)
		if whole == nil {
			return
		}
		defer release()
		h = whole
	}
	s.deliver6(n, rx, h, &e, mcast, frag)
}

// extError counts a refused extension-header chain and answers it with
// a Parameter Problem when the header's rules say so.
func (s *Stack) extError(h wire.IPv6, xe *wire.IPv6ExtError, mcast bool) {
	st := &s.stats.IP6
	st.InHdrErrors.Add(1)
	switch {
	case xe.Limit:
		st.InExtLimit.Add(1)
	case xe.Option:
		st.InOptionDrops.Add(1)
	case xe.Code == wire.ICMPv6ErroneousField && xe.Pointer < len(h) && xe.Pointer >= 2 && h[xe.Pointer-2] != 0 && isRoutingAt(h, xe.Pointer-2):
		st.InRoutingHeader.Add(1)
	}
	if xe.Silent || xe.UnlessMcast && mcast {
		return
	}
	s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, xe.Code, uint32(xe.Pointer))
}

// isRoutingAt reports whether the header at off is a routing header (for
// the counter only: a best-effort look back along the chain).
func isRoutingAt(h wire.IPv6, off int) bool {
	// Stepping over the headers that end before off stops at off, if
	// a header starts there.
	var c wire.IPv6Chain
	wire.SkipIPv6Chain(h[:off], h.NextHeader(), wire.IPv6HeaderLen, 6, 0, &c)
	return c.Offset == off && c.Proto == wire.ProtoIPv6Route
}

// martian6 drops packets whose addresses cannot come from the wire
// (RFC 4291 2.5.3, 2.5.5.2, 2.7; Linux's ipv6_rcv checks).
func (s *Stack) martian6(n *NIC, h wire.IPv6) bool {
	if n.loopback {
		return false
	}
	st := &s.stats.IP6
	src, dst := h.Src(), h.Dst()
	switch {
	case src.IsMulticast(), src == ipv6Loopback, src.Is4In6():
		st.InBadSource.Add(1)
		return true
	case dst == ipv6Loopback, dst.IsUnspecified(), dst.Is4In6():
		st.InAddrErrors.Add(1)
		return true
	case dst.IsMulticast() && (dst.As16()[1]&0x0f <= 1):
		// Scope 0 is reserved and interface-local (1) never leaves the node.
		st.InAddrErrors.Add(1)
		return true
	case !src.IsUnspecified() && n.hasAddr(src):
		st.InBadSource.Add(1)
		return true
	}
	return false
}

// reassemble6 handles a packet with a fragment header: an atomic
// fragment is processed alone (RFC 6946), others go through the shared
// reassembler. The result has the fragment header removed and e walked
// again over the whole datagram.
func (s *Stack) reassemble6(h wire.IPv6, e *wire.IPv6Ext, mcast bool) (wire.IPv6, func()) {
	st := &s.stats.IP6
	fh := wire.IPv6Frag(h[e.FragOff:])
	data := h[e.FragOff+wire.IPv6FragHeaderLen:]
	off, more := fh.Offset(), fh.More()
	if off == 0 && more && !chainComplete(fh.NextHeader(), data) {
		// RFC 7112 / RFC 8200 4.5: the first fragment holds every header
		// through the upper-layer one (a tiny first fragment hides ports).
		st.InIncompleteChain.Add(1)
		s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, wire.ICMPv6IncompleteHeaderChain, 0)
		return nil, nil
	}
	if off+len(data) > wire.IPv6MaxPayload-(e.FragOff-wire.IPv6HeaderLen) {
		// RFC 8200 4.5: the datagram would pass 65,535 bytes: Parameter
		// Problem pointing at the fragment offset (as Linux).
		s.stats.IP.ReasmTooBig.Add(1)
		s.stats.IP.ReasmFails.Add(1)
		s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, wire.ICMPv6ErroneousField, uint32(e.FragOff+2))
		return nil, nil
	}
	if more && len(data)%8 != 0 {
		// RFC 8200 4.5: Parameter Problem pointing at the payload length.
		s.stats.IP.ReasmBadFragment.Add(1)
		s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, wire.ICMPv6ErroneousField, 4)
		return nil, nil
	}
	unfrag := h[:e.FragOff]
	if off == 0 && !more {
		st.InAtomicFrags.Add(1)
		// Shift the unfragmentable part over the fragment header in place.
		next := fh.NextHeader()
		copy(h[wire.IPv6FragHeaderLen:], unfrag)
		out := h[wire.IPv6FragHeaderLen:]
		out[e.FragPrevNH] = next
		wire.IPv6(out).SetPayloadLen(len(out) - wire.IPv6HeaderLen)
		return s.rewalk(out, e, mcast), func() {}
	}
	key := reasmKey{src: h.Src(), dst: h.Dst(), id: fh.ID()}
	first := h[:min(len(h), e.FragOff+wire.IPv6FragHeaderLen+64)]
	maxData := wire.IPv6MaxPayload - (len(unfrag) - wire.IPv6HeaderLen)
	// What goes in front of the data is the unfragmentable part with the
	// byte that named the fragment header naming the fragment's next
	// header instead (RFC 8200 4.5); a copy, so an ICMP error about the
	// first fragment quotes it unchanged.
	var hb [reasmHeadroom]byte
	hdr := unfrag
	if len(unfrag) <= len(hb) {
		hdr = hb[:copy(hb[:], unfrag)]
		hdr[e.FragPrevNH] = fh.NextHeader()
	}
	out, buf := s.reasm.addFrag(key, hdr, data, off, more, first, maxData)
	if out == nil {
		return nil, nil
	}
	ip := wire.IPv6(out)
	ip.SetPayloadLen(len(out) - wire.IPv6HeaderLen)
	if w := s.rewalk(ip, e, mcast); w != nil {
		return w, func() { putBuf(buf) }
	}
	putBuf(buf)
	return nil, nil
}

// chainComplete reports whether a first fragment's data (next header
// nh) holds the extension headers, AH included (RFC 7112), and the
// upper-layer header's fixed part: 20 bytes of TCP, 8 of UDP or ICMPv6,
// 1 of anything else (Linux's ipv6frag_thdr_truncated). A nested
// fragment header is refused later, after reassembly.
func chainComplete(nh uint8, data []byte) bool {
	var c wire.IPv6Chain
	switch wire.SkipIPv6Chain(data, nh, 0, 0, wire.ChainSkipAH, &c) {
	case wire.ChainTruncated:
		return false
	case wire.ChainTooLong:
		return true // refused by the walk of the whole datagram
	}
	need := 1
	switch c.Proto {
	case wire.ProtoIPv6Frag, wire.ProtoIPv6NoNext:
		need = 0
	case wire.ProtoTCP:
		need = wire.TCPMinHeaderLen
	case wire.ProtoUDP, wire.ProtoICMPv6:
		need = 8
	}
	return c.Offset+need <= len(data)
}

// rewalk walks a reassembled datagram's chain again; a second fragment
// header or a refused header drops it.
func (s *Stack) rewalk(ip wire.IPv6, e *wire.IPv6Ext, mcast bool) wire.IPv6 {
	if xe := wire.WalkIPv6Ext(ip, e); xe != nil {
		s.extError(ip, xe, mcast)
		return nil
	}
	if e.Frag {
		s.stats.IP6.InNestedFrag.Add(1)
		return nil
	}
	return ip
}

// deliver6 hands a whole datagram to its upper layer; frag says it came
// with a fragment header (reassembled, or an atomic fragment).
func (s *Stack) deliver6(n *NIC, rx *rxState, h wire.IPv6, e *wire.IPv6Ext, mcast, frag bool) {
	st := &s.stats.IP6
	s.raw.deliver6(s, h, e, int32(n.id))
	p := h[e.Offset:]
	switch e.Proto {
	case wire.ProtoICMPv6:
		st.InDelivers.Add(1)
		s.receiveICMPv6(n, h, p, mcast, e.RouterAlert, frag)
	case wire.ProtoUDP:
		st.InDelivers.Add(1)
		s.receiveUDP6(n, h, p, mcast)
	case wire.ProtoTCP:
		if mcast {
			st.InAddrErrors.Add(1)
			return
		}
		// rx.valid: a checksum the link or GRO vouched for (gro.go); it
		// is set only for TCP right after the fixed header.
		t, err := wire.ParseTCP(p, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoTCP, 0), !rx.valid)
		if err != nil {
			st.InDiscards.Add(1)
			s.tcpInErr(err)
			return
		}
		st.InDelivers.Add(1)
		rx.tcp.HandleSegment(h.Src(), h.Dst(), h.TrafficClass(), t)
	case wire.ProtoIPv6NoNext:
		st.InDelivers.Add(1)
	default:
		if s.raw.has6(e.Proto) {
			st.InDelivers.Add(1)
			return
		}
		st.InUnknownProtos.Add(1)
		s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, wire.ICMPv6UnrecognizedNextHeader, uint32(e.NHOff))
	}
}

// findRoute6 is FindRoute for IPv6: own addresses through loopback, a
// zone (scope id) pins the NIC of a link-local or multicast destination,
// else the longest prefix.
func (s *Stack) findRoute6(dst netip.Addr) (ResolvedRoute, error) {
	if n := s.ownerOf(dst); n != nil {
		return ResolvedRoute{NIC: s.lo, Src: dst.WithZone(""), NextHop: dst.WithZone(""), MTU: s.lo.mtu, Local: true}, nil
	}
	zone := dst.Zone()
	dst = dst.WithZone("")
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || zone != "" {
		n := s.zoneNIC(zone)
		if n == nil {
			if zone != "" {
				return ResolvedRoute{}, syscall.ENODEV
			}
			n = s.firstNIC6()
		}
		if n == nil {
			return ResolvedRoute{}, syscall.ENETUNREACH
		}
		if dst.IsLinkLocalUnicast() || dst.IsMulticast() {
			src := n.selectSource6(dst)
			if !src.IsValid() {
				return ResolvedRoute{}, syscall.EADDRNOTAVAIL
			}
			return ResolvedRoute{NIC: n, Src: src, NextHop: dst, MTU: n.mtu6()}, nil
		}
	}
	if rr, ok := s.redirected6(dst); ok {
		return rr, nil // a redirect's host route (ndp_redirect.go)
	}
	for _, r := range *s.routeSnap.Load() {
		if !r.Prefix.Addr().Is6() || !r.Prefix.Contains(dst) {
			continue
		}
		rr := ResolvedRoute{NIC: r.NIC, NextHop: dst, Gateway: r.Gateway, MTU: r.MTU}
		if r.Gateway.IsValid() {
			rr.NextHop = r.Gateway
		}
		if m := r.NIC.mtu6(); rr.MTU == 0 || rr.MTU > m {
			rr.MTU = m
		}
		rr.Src = r.Src
		if !rr.Src.IsValid() || !r.NIC.hasAddr(rr.Src) {
			// No preferred source, or one still under DAD (or gone).
			rr.Src = r.NIC.selectSource6(dst)
		}
		if r.NIC == s.lo {
			rr.Local = true
		}
		if !rr.Src.IsValid() {
			return ResolvedRoute{}, syscall.EADDRNOTAVAIL
		}
		return rr, nil
	}
	return ResolvedRoute{}, syscall.ENETUNREACH
}

// zoneNIC finds the NIC a zone names: its name or its index.
func (s *Stack) zoneNIC(zone string) *NIC {
	if zone == "" {
		return nil
	}
	if n := s.NICByName(zone); n != nil {
		return n
	}
	if id, err := strconv.Atoi(zone); err == nil {
		return s.NICByID(id)
	}
	return nil
}

// firstNIC6 is the first non-loopback NIC with IPv6 on, for link-scope
// destinations without a zone (a host with one link needs none).
func (s *Stack) firstNIC6() *NIC {
	for _, n := range s.NICs() {
		if !n.loopback && n.v6.enabled.Load() {
			return n
		}
	}
	for _, n := range s.NICs() {
		if !n.loopback && n.selectSource6(wire.IPv6AllNodes).IsValid() {
			return n
		}
	}
	return nil
}

// mtu6 is the NIC's IPv6 MTU: the link's, or less when an RA said so.
func (n *NIC) mtu6() int {
	if m := int(n.v6.raMTU.Load()); m != 0 && m < n.mtu {
		return m
	}
	return n.mtu
}

// Scopes for source selection (RFC 6724 3.1, RFC 4291 2.7).
func scope6(a netip.Addr) int {
	switch {
	case a.IsMulticast():
		return int(a.As16()[1] & 0x0f)
	case a.IsLoopback(), a.IsLinkLocalUnicast():
		return 2
	}
	return 14
}

// selectSource6 picks the source for dst among the NIC's assigned IPv6
// addresses by RFC 6724's rules that apply to one interface: the same
// address (1), an appropriate scope (2), not deprecated (3), the longest
// matching prefix (8).
func (n *NIC) selectSource6(dst netip.Addr) netip.Addr {
	dst = dst.WithZone("")
	var best netip.Addr
	bestDep := false
	ds := scope6(dst)
	for _, p := range n.addrSnapshot().prefixes {
		a := p.Addr()
		if !a.Is6() || a.Is4In6() {
			continue
		}
		if a == dst {
			return a
		}
		dep := n.isDeprecated(a)
		if !best.IsValid() {
			best, bestDep = a, dep
			continue
		}
		sa, sb := scope6(best), scope6(a)
		if sa != sb {
			// Rule 2: the smallest scope that still reaches dst.
			if sa < sb && sa < ds || sb < sa && sb >= ds {
				best, bestDep = a, dep
			}
			continue
		}
		if bestDep != dep {
			if bestDep {
				best, bestDep = a, dep
			}
			continue
		}
		if commonPrefix(a, dst) > commonPrefix(best, dst) {
			best, bestDep = a, dep
		}
	}
	return best
}

func commonPrefix(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	for i := 0; i < 16; i++ {
		if d := x[i] ^ y[i]; d != 0 {
			n := i * 8
			for d&0x80 == 0 {
				n++
				d <<= 1
			}
			return n
		}
	}
	return 128
}

// writePacket6 routes and sends one IPv6 datagram, fragmenting at the
// source when it is larger than the path MTU and DF (a transport that
// does its own PMTU discovery) is clear.
func (s *Stack) writePacket6(p *OutPacket, th *wire.TCPHeader) error {
	st := &s.stats.IP6
	dst := p.Dst
	if hop, ok := p.Ext6.FirstHop(); ok {
		dst = hop // a routing header: to its next segment (ext6_send.go)
	}
	var r ResolvedRoute
	if dst.IsMulticast() {
		nic := p.Iface
		if nic == nil {
			nic = s.zoneNIC(dst.Zone())
		}
		if nic == nil {
			nic = s.firstNIC6()
		}
		if nic == nil {
			st.OutNoRoutes.Add(1)
			return syscall.ENETUNREACH
		}
		dst = dst.WithZone("")
		r = ResolvedRoute{NIC: nic, NextHop: dst, MTU: nic.mtu6(), Src: nic.selectSource6(dst)}
	} else {
		var err error
		if p.Iface != nil && dst.IsLinkLocalUnicast() && dst.Zone() == "" {
			dst = dst.WithZone(p.Iface.name)
		}
		r, err = s.routeOut(dst, p) // route.go
		if err != nil {
			st.OutNoRoutes.Add(1)
			return err
		}
		dst = dst.WithZone("")
	}
	src := p.Src.WithZone("")
	if src.Is4() && !src.IsUnspecified() {
		return syscall.EAFNOSUPPORT // an IPv4 source for an IPv6 destination
	}
	if !src.IsValid() || src.IsUnspecified() {
		src = r.Src
	}
	if !src.IsValid() {
		src = netip.IPv6Unspecified()
	}
	if !r.Local {
		if m, _, ok := s.pathMTU(dst); ok && m < r.MTU {
			r.MTU = m
		}
	}
	total := 0
	if th != nil {
		total = th.Len()
	}
	for _, x := range p.Parts {
		total += len(x)
	}
	ext, extCounted := p.Ext6.sent(), p.Ext6.counted()
	if th != nil {
		extCounted = ext // TCP cut its segments to fit them (tcp/ext6.go)
	}
	if total+extCounted > wire.IPv6MaxPayload {
		return syscall.EMSGSIZE
	}
	if wire.IPv6HeaderLen+extCounted+total > r.MTU && p.DF && p.GSOSize == 0 {
		st.OutTooBig.Add(1)
		return syscall.EMSGSIZE
	}
	hop := p.TTL
	if hop == 0 && !p.HopZero {
		hop = r.NIC.hopLimit6(s)
	}
	st.OutRequests.Add(1)
	buf := r.NIC.txBuf(wire.EthernetHeaderLen + wire.IPv6HeaderLen + ext + total) // gso.go
	defer func() { putBuf(buf) }()                                                // buf may be taken (sendGSO)
	ip := buf[wire.EthernetHeaderLen:]
	hdr := wire.IPv6Header{TrafficClass: p.TOS, FlowLabel: p.Flow, PayloadLen: ext + total, NextHeader: p.Proto, HopLimit: hop, Src: src, Dst: dst}
	off := hdr.Put(ip)
	if ext > 0 {
		first, n := p.Ext6.put(ip[off:], p.Proto, p.Dst.WithZone(""))
		ip[6] = first
		off += n
		if th != nil {
			off += th.Put(ip[off:])
		}
		for _, x := range p.Parts {
			off += copy(ip[off:], x)
		}
		if p.GSOSize > 0 {
			return s.sendExt6GSO(&r, p, buf, wire.IPv6HeaderLen+ext) // ext6_gso.go
		}
		// Hop-by-Hop and a routing header with its destination
		// options stay in the unfragmentable part; Destination Options
		// go after a fragment header (Linux's opt_nflen, opt_flen).
		return s.finish6(&r, p, buf, src, dst, wire.IPv6HeaderLen+ext, p.Ext6.unfrag())
	}
	if th != nil {
		off += th.Put(ip[off:])
		if done, err := s.sendTCPVec(&r, buf, p, wire.IPv6HeaderLen, off, len(ip), true); done { // txvec.go
			return err
		}
	}
	gather := s.udpGather(&r, p) // txvec.go
	for i, x := range p.Parts {
		if gather && i > 0 {
			break // sendUDPGSO gathers it, or copies it in
		}
		off += copy(ip[off:], x)
	}
	if p.GSOSize > 0 && p.Proto == wire.ProtoUDP {
		if done, err := s.sendUDPGSO(&r, buf, len(ip), p, gather); done { // gso_udp.go
			return err
		}
	} else if p.GSOSize > 0 && (len(ip) > r.MTU || overGSO(ip, wire.IPv6HeaderLen, p.GSOSize)) {
		taken, err := s.sendGSO(&r, buf, len(ip), p.GSOSize) // gso.go
		if taken {
			buf = nil // the link has it now, and gives it back to the pool
		}
		return err
	}
	if p.Proto == wire.ProtoTCP && !p.NoCsum && !p.LocalOnly && !dst.IsMulticast() && len(ip) <= r.MTU {
		if taken, ok, err := s.takeTCP(&r, buf, len(ip)); ok { // gso.go
			if taken {
				buf = nil // the link has it now, and gives it back
			}
			return err
		}
	}
	return s.finish6(&r, p, buf, src, dst, wire.IPv6HeaderLen, wire.IPv6HeaderLen)
}

// finish6 fills the checksum of the upper layer at tOff, loops a
// multicast copy back, and sends the packet, in fragments after the
// first unfrag bytes when it is over the MTU.
func (s *Stack) finish6(r *ResolvedRoute, p *OutPacket, buf []byte, src, dst netip.Addr, tOff, unfrag int) error {
	ip := buf[wire.EthernetHeaderLen:]
	cdst := dst
	if p.Ext6.hasRt() {
		cdst = p.Dst.WithZone("") // the final destination (RFC 8200 8.1)
	}
	if !p.NoCsum {
		fillTransportChecksum6To(wire.IPv6(ip), p.Proto, tOff, cdst.As16())
	} else if at := p.CsumAt - 1; at >= 0 && at+2 <= len(ip)-tOff {
		t := ip[tOff:]
		t[at], t[at+1] = 0, 0
		c := ^wire.Fold(wire.Sum(t, wire.PseudoHeaderSum6(src.As16(), cdst.As16(), p.Proto, len(t))))
		t[at], t[at+1] = byte(c>>8), byte(c)
	}
	if dst.IsMulticast() && p.Loop && r.NIC.isMember(dst) && r.NIC.admits(dst, src) {
		s.lo.writeFrame(ip)
	}
	if p.LocalOnly {
		return nil
	}
	if len(ip) > r.MTU {
		return s.fragment6(r, buf, unfrag)
	}
	return r.NIC.sendIP6(r.NextHop, buf)
}

// hopLimit6 is the default hop limit: the RA's CurHopLimit or the stack's.
func (n *NIC) hopLimit6(s *Stack) uint8 {
	if h := uint8(n.v6.raHopLimit.Load()); h != 0 {
		return h
	}
	return s.opts.DefaultTTL
}

// fillTransportChecksum6 fills the TCP, UDP or ICMPv6 checksum of the
// upper-layer header at off, over the IPv6 pseudo-header.
func fillTransportChecksum6(ip wire.IPv6, proto uint8, off int) {
	fillTransportChecksum6To(ip, proto, off, ip.Dst16())
}

// fillTransportChecksum6To is fillTransportChecksum6 with the
// pseudo-header's destination dst (a routing header's final one).
func fillTransportChecksum6To(ip wire.IPv6, proto uint8, off int, dst [16]byte) {
	t := ip[off:]
	ps := wire.PseudoHeaderSum6(ip.Src16(), dst, proto, len(t))
	switch proto {
	case wire.ProtoTCP:
		if len(t) >= wire.TCPMinHeaderLen {
			wire.TCP(t).FillChecksum(ps)
		}
	case wire.ProtoUDP:
		if len(t) >= wire.UDPHeaderLen {
			wire.UDP(t).FillChecksum(ps)
		}
	case wire.ProtoICMPv6:
		if len(t) >= 4 {
			wire.ICMPv6(t).FillChecksum(ps)
		}
	}
}

// fragment6 sends the packet in buf as fragments at the source (RFC 8200
// 4.5): a fragment header after the unfragmentable part (the first
// unfrag bytes: the fixed header and a Hop-by-Hop header), every
// fragment's data a multiple of 8 bytes that fits the path MTU.
func (s *Stack) fragment6(r *ResolvedRoute, buf []byte, unfrag int) error {
	st := &s.stats.IP6
	ip := wire.IPv6(buf[wire.EthernetHeaderLen:])
	payload := ip[unfrag:]
	nhAt := 6 // the byte naming what follows the unfragmentable part
	for o := wire.IPv6HeaderLen; o+2 <= unfrag; o += (int(ip[o+1]) + 1) * 8 {
		nhAt = o // the last of the unfragmentable extension headers
	}
	next := ip[nhAt]
	room := (r.MTU - unfrag - wire.IPv6FragHeaderLen) &^ 7
	if room <= 0 {
		st.FragFails.Add(1)
		return syscall.EMSGSIZE
	}
	id := s.ipID.Add(1)
	for off := 0; off < len(payload); {
		n := min(room, len(payload)-off)
		f := getBuf(wire.EthernetHeaderLen + unfrag + wire.IPv6FragHeaderLen + n)
		fip := wire.IPv6(f[wire.EthernetHeaderLen:])
		copy(fip, ip[:unfrag])
		fip[nhAt] = wire.ProtoIPv6Frag
		fip.SetPayloadLen(unfrag - wire.IPv6HeaderLen + wire.IPv6FragHeaderLen + n)
		wire.PutIPv6Frag(fip[unfrag:], next, off, off+n < len(payload), id)
		copy(fip[unfrag+wire.IPv6FragHeaderLen:], payload[off:off+n])
		err := r.NIC.sendIP6(r.NextHop, f)
		putBuf(f)
		if err != nil {
			st.FragFails.Add(1)
			return err
		}
		st.FragCreates.Add(1)
		off += n
	}
	st.FragOKs.Add(1)
	return nil
}

// sendIP6 sends buf (14 bytes of room, then an IPv6 packet) to next hop
// nh, resolving it through neighbour discovery.
func (n *NIC) sendIP6(nh netip.Addr, buf []byte) error {
	if !n.ethernet {
		return n.writeFrame(buf[wire.EthernetHeaderLen:])
	}
	var dst wire.MAC
	if nh.IsMulticast() {
		dst = wire.IPv6MulticastMAC(nh)
	} else {
		wire.PutEthernet(buf, wire.MAC{}, n.mac, wire.EtherTypeIPv6)
		mac, ok := n.v6.nd.resolve(nh, buf)
		if !ok {
			return nil
		}
		dst = mac
	}
	wire.PutEthernet(buf, dst, n.mac, wire.EtherTypeIPv6)
	return n.writeFrame(buf)
}
