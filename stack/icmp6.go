package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// ICMPv6 (RFC 4443): echo, errors in and out, and the dispatch to ND and
// MLD.

// receiveICMPv6 handles one message; p starts at the ICMPv6 header.
func (s *Stack) receiveICMPv6(n *NIC, h wire.IPv6, p []byte, mcast, routerAlert, frag bool) {
	st := &s.stats.ICMP6
	st.InMsgs.Add(1)
	m, err := wire.ParseICMPv6(p, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoICMPv6, 0))
	if err != nil {
		st.InErrors.Add(1)
		if pe, ok := err.(*wire.ParseError); ok && pe.Reason == wire.ReasonBadChecksum {
			st.InCsumErrors.Add(1)
		}
		return
	}
	s.raw.deliverICMPv6(s, h, m, int32(n.id))
	switch t := m.Type(); t {
	case wire.ICMPv6EchoRequest:
		st.InEchos.Add(1)
		s.echoReply6(n, h, m, mcast)
	case wire.ICMPv6EchoReply:
		st.InEchoReplies.Add(1)
		s.pingDeliver6(h, m, int32(n.id))
	case wire.ICMPv6DestUnreach, wire.ICMPv6PacketTooBig, wire.ICMPv6TimeExceeded, wire.ICMPv6ParamProblem:
		mtu := 0
		var learnt pmtuLearn
		switch t {
		case wire.ICMPv6DestUnreach:
			st.InDestUnreachs.Add(1)
		case wire.ICMPv6PacketTooBig:
			st.InPktTooBigs.Add(1)
			learnt = s.learnPMTU6(m.Payload(), m.MTU())
			mtu = learnt.mtu
		case wire.ICMPv6TimeExceeded:
			st.InTimeExcds.Add(1)
		default:
			st.InParmProblems.Add(1)
		}
		from := h.Src()
		if from.IsLinkLocalUnicast() && !n.loopback {
			from = from.WithZone(n.name) // the scope id Linux gives the offender (ipv6_iface_scope_id)
		}
		c := ICMPCarrier{Dst: h.Dst(), TTL: h.HopLimit(), TOS: h.TrafficClass(), Flow: h.FlowLabel(), NIC: n.id}
		if !s.handleICMPv6Error(m.Payload(), t, m.Code(), mtu, m.MTU(), from, c, extOrig6(m)) {
			st.InUnmatched.Add(1)
		} else {
			s.commitPMTU(learnt) // only for an error a socket took (pmtu.go)
		}
	case wire.ICMPv6RouterSolicit, wire.ICMPv6RouterAdvert, wire.ICMPv6NeighborSolic, wire.ICMPv6NeighborAdvert, wire.ICMPv6Redirect:
		if frag {
			// RFC 6980: ND never uses fragments; one that does (an
			// atomic fragment too) could hide its options from RA-Guard.
			st.InNDBad.Add(1)
			return
		}
		s.receiveND(n, h, m)
	case wire.ICMPv6MLDQuery:
		st.InMLDQueries.Add(1)
		s.receiveMLDQuery(n, h, m, routerAlert)
	case wire.ICMPv6MLDReport, wire.ICMPv6MLDv2Report, wire.ICMPv6MLDDone:
		st.InMLDReports.Add(1)
	default:
		st.InOther.Add(1)
	}
}

// echoReply6 answers an echo request (to multicast too, as Linux's
// echo_ignore_multicast=0 does), from the address it was sent to or,
// for a group, the source the route picks.
func (s *Stack) echoReply6(n *NIC, h wire.IPv6, m wire.ICMPv6, mcast bool) {
	reply := getBuf(len(m))
	defer putBuf(reply)
	copy(reply, m)
	r := wire.ICMPv6(reply)
	r.SetType(wire.ICMPv6EchoReply)
	r.SetCode(0)
	src := h.Dst()
	if mcast {
		src = netip.Addr{}
	}
	dst := h.Src()
	if dst.IsLinkLocalUnicast() && !n.loopback {
		dst = dst.WithZone(n.name)
	}
	err := s.writePacket6(&OutPacket{Src: src, Dst: dst, Proto: wire.ProtoICMPv6, TOS: h.TrafficClass(), Parts: [3][]byte{reply}, Iface: ifaceFor(n)}, nil)
	if err == nil {
		s.stats.ICMP6.OutMsgs.Add(1)
		s.stats.ICMP6.OutEchoReplies.Add(1)
	}
}

// ifaceFor pins replies to the NIC a packet came in on (nil for loopback).
func ifaceFor(n *NIC) *NIC {
	if n.loopback {
		return nil
	}
	return n
}

// pingDeliver6 hands an echo reply to the ping socket with its identifier.
func (s *Stack) pingDeliver6(h wire.IPv6, m wire.ICMPv6, dif int32) {
	ep := s.ping.lookup(h.Dst(), m.ID(), h.Src(), 0, dif)
	if ep == nil {
		return
	}
	ep.enqueue6(m, netip.AddrPortFrom(h.Src(), 0), h, dif)
}

// sendICMPv6Error answers orig with an error (RFC 4443 2.4): never about
// an ICMPv6 error or a redirect, never to a multicast destination except
// Packet Too Big and Parameter Problem code 2, never to an unspecified
// or multicast source; rate-limited by the limiter IPv4 uses. Packet Too
// Big is not limited, so path MTU discovery keeps working.
func (s *Stack) sendICMPv6Error(orig []byte, typ, code uint8, info uint32) {
	s.sendICMPv6ErrorVia(nil, orig, typ, code, info)
}

// sendICMPv6ErrorVia is sendICMPv6Error answering a link-local source
// on in, the NIC orig came in on (nil: the first IPv6 NIC).
func (s *Stack) sendICMPv6ErrorVia(in *NIC, orig []byte, typ, code uint8, info uint32) {
	st := &s.stats.ICMP6
	// orig may be a quote cut short (a first fragment kept for a timeout):
	// only the fixed header must be whole.
	if len(orig) < wire.IPv6HeaderLen || orig[0]>>4 != 6 {
		return
	}
	h := wire.IPv6(orig)
	src, dst := h.Src(), h.Dst()
	if src.IsUnspecified() || src.IsMulticast() {
		st.OutSuppressed.Add(1)
		return
	}
	if dst.IsMulticast() && !(typ == wire.ICMPv6PacketTooBig || typ == wire.ICMPv6ParamProblem && code == wire.ICMPv6UnrecognizedOption) {
		st.OutSuppressed.Add(1)
		return
	}
	if t, ok := quotedICMPv6Type(h); ok && (t < 128 || t == wire.ICMPv6Redirect) {
		st.OutSuppressed.Add(1)
		return
	}
	if typ != wire.ICMPv6PacketTooBig && !s.icmpAllowDst(src) {
		st.OutRateLimited.Add(1)
		return
	}
	b := getBuf(wire.ICMPv6ErrorMax)
	defer putBuf(b)
	l := wire.PutICMPv6Error(b, typ, code, info, orig)
	from := netip.Addr{}
	if !dst.IsMulticast() && s.IsLocal(dst) {
		from = dst
	}
	// Counted before it leaves, as for ICMPv4.
	st.OutMsgs.Add(1)
	switch typ {
	case wire.ICMPv6DestUnreach:
		st.OutDestUnreachs.Add(1)
	case wire.ICMPv6PacketTooBig:
		st.OutPktTooBigs.Add(1)
	case wire.ICMPv6TimeExceeded:
		st.OutTimeExcds.Add(1)
	case wire.ICMPv6ParamProblem:
		st.OutParmProblems.Add(1)
	}
	p := OutPacket{Src: from, Dst: src, Proto: wire.ProtoICMPv6, Parts: [3][]byte{b[:l]}}
	if in != nil && src.IsLinkLocalUnicast() {
		p.Iface = in
	}
	if err := s.writePacket6(&p, nil); err != nil {
		st.OutErrors.Add(1)
	}
}

// quotedICMPv6Type finds the ICMPv6 type of packet h, if it carries
// ICMPv6: the extension headers are skipped by their lengths alone (an
// error about a bad option must still see that the packet is an ICMPv6
// error), AH and a first fragment's header included (Linux's
// is_ineligible).
func quotedICMPv6Type(h wire.IPv6) (uint8, bool) {
	var c wire.IPv6Chain
	if wire.SkipIPv6Chain(h, h.NextHeader(), wire.IPv6HeaderLen, 6, wire.ChainSkipAH|wire.ChainThroughFrag, &c) != wire.ChainDone ||
		c.Proto != wire.ProtoICMPv6 || c.Offset >= len(h) {
		return 0, false // a later fragment has no ICMPv6 header in it
	}
	return h[c.Offset], true
}

// errnoFor6 is errnoFor for ICMPv6.
func errnoFor6(typ, code uint8) syscall.Errno {
	e, _ := icmpErr6(typ, code)
	return e
}

// icmpErr6 maps an ICMPv6 error to a socket errno (Linux's
// icmpv6_err_convert, checked against the kernel as icmpErr4) and
// reports whether it is hard: the destination unreachables
// administratively prohibited, port unreachable, policy and reject
// route, unknown codes, and parameter problems. No route, address
// unreachable and time exceeded are soft; a packet too big is soft
// here and made hard per socket by its IPV6_MTU_DISCOVER (errqueue.go,
// __udp6_lib_err).
func icmpErr6(typ, code uint8) (syscall.Errno, bool) {
	switch typ {
	case wire.ICMPv6DestUnreach:
		switch code {
		case wire.ICMPv6NoRoute:
			return syscall.ENETUNREACH, false
		case wire.ICMPv6BeyondScope, wire.ICMPv6AddrUnreach:
			return syscall.EHOSTUNREACH, false
		case wire.ICMPv6AdminProhibited, wire.ICMPv6SrcPolicyFailed, wire.ICMPv6RejectRoute:
			return syscall.EACCES, true
		case wire.ICMPv6PortUnreach:
			return syscall.ECONNREFUSED, true
		}
		return syscall.EPROTO, true
	case wire.ICMPv6PacketTooBig:
		return syscall.EMSGSIZE, false
	case wire.ICMPv6ParamProblem:
		return syscall.EPROTO, true
	case wire.ICMPv6TimeExceeded:
		return syscall.EHOSTUNREACH, false
	}
	return syscall.EPROTO, false
}

func tcpErrorKind6(typ, code uint8) tcp.ErrorKind {
	switch typ {
	case wire.ICMPv6DestUnreach:
		switch code {
		case wire.ICMPv6PortUnreach:
			return tcp.ErrPortUnreach
		case wire.ICMPv6NoRoute:
			return tcp.ErrNetUnreach
		}
		return tcp.ErrHostUnreach
	case wire.ICMPv6PacketTooBig:
		return tcp.ErrFragNeeded
	case wire.ICMPv6TimeExceeded:
		return tcp.ErrTimeExceeded
	case wire.ICMPv6ParamProblem:
		return tcp.ErrParamProblem
	}
	return tcp.ErrHostUnreach
}

// handleICMPv6Error matches the invoking packet (our datagram, as much as
// the error carried) to the socket that sent it. info is the message's
// 32-bit field (the MTU of a packet too big, a parameter problem's
// pointer), Linux's ee_info; from is the message's source; c describes
// the ICMPv6 packet and extOrig is its RFC 4884 length in bytes.
func (s *Stack) handleICMPv6Error(inner []byte, typ, code uint8, mtu int, info uint32, from netip.Addr, c ICMPCarrier, extOrig int) bool {
	proto, t, src, dst, ok := quote6(inner) // transparent.go
	if !ok {
		return false
	}
	errno, hard := icmpErr6(typ, code)
	m := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: errno, Origin: EEOriginICMP6, Type: typ, Code: code, Info: info}, Offender: from,
		carrier: c, extOrig: extOrig, extBody: len(inner)}
	if !s.IsLocal(src) {
		// A diverted connection's packet, or not ours (transparent.go).
		return s.transparentError(proto, t, src, dst, tcpErrorKind6(typ, code), m, hard, mtu)
	}
	// A link-local destination is shown with the interface the error
	// came in on, as Linux sets sin6_scope_id.
	dstShown := dst
	if dst.IsLinkLocalUnicast() && from.Zone() != "" {
		dstShown = dst.WithZone(from.Zone())
	}
	raw := s.raw.icmpError6(proto, t, src, dst, dstShown, m, hard)
	switch proto {
	case wire.ProtoUDP:
		u := wire.UDP(t)
		e := s.udp.lookup(src, u.SrcPort(), dst, u.DstPort(), c.errDif())
		if e == nil {
			return raw
		}
		m.Dst = netip.AddrPortFrom(dstShown, u.DstPort())
		e.icmpError(m, t[wire.UDPHeaderLen:], hard)
		return true
	case wire.ProtoTCP:
		tc := wire.TCP(t)
		if mtu > 0 {
			mtu -= wire.IPv6HeaderLen - wire.IPv4MinHeaderLen // TCP sizes segments by IPv4's header (tcphost.go)
		}
		// Linux's errno for the type and code, as tcp_v6_err takes it.
		ne := tcp.NetError{Kind: tcpErrorKind6(typ, code), Errno: errno, MTU: mtu,
			Origin: EEOriginICMP6, Type: typ, Code: code, Info: info, Offender: m.Offender, Quote: t, Ctl: tcpErrCtl(&m, inner, t)}
		return s.TCP.HandleNetError(netip.AddrPortFrom(src, tc.SrcPort()), netip.AddrPortFrom(dst, tc.DstPort()), tc.Seq(), &ne) || raw
	case wire.ProtoICMPv6:
		im := wire.ICMPv6(t)
		if im.Type() != wire.ICMPv6EchoRequest {
			return raw
		}
		e := s.ping.lookup(src, im.ID(), dst, 0, c.errDif())
		if e == nil {
			return raw
		}
		m.Dst = netip.AddrPortFrom(dstShown, 0)
		e.icmpError(m, t, hard)
		return true
	}
	return raw
}

// icmpError6 is rawTable.icmpError for IPv6 (raw6_icmp_error,
// rawv6_err): AF_INET6 raw sockets of the quoted packet's transport
// protocol, the payload from its transport header.
func (t *rawTable) icmpError6(proto uint8, payload []byte, src, dst, dstShown netip.Addr, m ErrQueueMsg, hard bool) bool {
	return t.rawICMPError(true, proto, payload, 0, src, dst, dstShown, m, hard, false)
}

// learnPMTU6 applies a Packet Too Big (RFC 8201): the path MTU towards
// the quoted packet's destination goes down to the reported MTU, never
// below 1280 (a smaller report is taken as 1280, section 4). It returns
// the MTU for the transport, 0 when nothing was learnt; commitPMTU stores it.
func (s *Stack) learnPMTU6(inner []byte, reported uint32) pmtuLearn {
	if len(inner) < wire.IPv6HeaderLen || inner[0]>>4 != 6 {
		return pmtuLearn{}
	}
	ih := wire.IPv6(inner)
	dst := ih.Dst()
	if s.IsLocal(dst) {
		// A source not ours is learnt only for an error a diverted
		// connection takes (commitPMTU, transparent.go).
		return pmtuLearn{}
	}
	mtu, belowMin := int(min(reported, 1<<20)), false
	if mtu < wire.IPv6MinMTU {
		mtu = wire.IPv6MinMTU
		belowMin = true
	}
	r, err := s.FindRoute(dst)
	if err != nil || r.Local {
		return pmtuLearn{}
	}
	cur := r.MTU
	if m, _, ok := s.pathMTU(dst); ok && m < cur {
		cur = m
	}
	if mtu >= cur {
		return pmtuLearn{}
	}
	return pmtuLearn{dst: dst, mtu: mtu, belowM: belowMin, v6: true}
}

// neighborFailed6 reports a packet whose next hop never answered ND: the
// sender sees EHOSTUNREACH (address unreachable, RFC 4861 7.2.2).
func (s *Stack) neighborFailed6(ip []byte) {
	h, err := wire.ParseIPv6(ip)
	if err != nil {
		return
	}
	var e wire.IPv6Ext
	if wire.WalkIPv6Ext(h, &e) == nil && e.Proto == wire.ProtoTCP && len(h) >= e.Offset+8 {
		t := wire.TCP(h[e.Offset:])
		// As the address unreachable Linux answers itself with
		// (ndisc_error_report), from the failed packet's source.
		ne := tcp.NetError{Kind: tcp.ErrNeighbor, Origin: EEOriginICMP6, Type: wire.ICMPv6DestUnreach, Code: wire.ICMPv6AddrUnreach,
			Offender: h.Src(), Quote: t, Ctl: tcp.ErrCtl{Dst: h.Src(), TTL: 64}}
		s.TCP.HandleNetError(netip.AddrPortFrom(h.Src(), t.SrcPort()), netip.AddrPortFrom(h.Dst(), t.DstPort()), t.Seq(), &ne)
		return
	}
	// Linux answers itself with an address unreachable from the failed
	// packet's source (ndisc_error_report): that address is the offender.
	s.handleICMPv6Error(h, wire.ICMPv6DestUnreach, wire.ICMPv6AddrUnreach, 0, 0, h.Src(), selfCarrier(h.Src()), 0)
}
