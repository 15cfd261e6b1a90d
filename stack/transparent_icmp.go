package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/wire"
)

// ICMP through a transparent proxy (docs/transparent.md, "ICMP through
// the relay").
//
// Echo: a rule with TransparentICMPEcho hands echo requests to a prefix
// to the application instead of forwarding (or dropping) them, and the
// stack's own echo responder never sees them. Linux has no TPROXY for
// ICMP; the nearest is a local route for the prefix (every address
// local, the AnyIP trick) with the kernel's responder turned off and a
// raw socket taking the requests. That is the API here: raw ICMP and
// ICMPv6 sockets with IP_TRANSPARENT (IPV6_TRANSPARENT) receive the
// diverted requests as raw sockets receive what is delivered locally,
// the original destination in the IPv4 header they read, or in
// IPV6_PKTINFO for IPv6. Their replies may leave from that address:
// IPv4 with IP_HDRINCL (the header is the application's) or an
// IP_PKTINFO source, which the route takes from a transparent socket
// only (Linux's FLOWI_FLAG_ANYSRC); IPv6 with an IPV6_PKTINFO source
// the host does not have, which IPV6_TRANSPARENT allows.

// divertEcho4 takes an IPv4 echo request a rule diverts: raw ICMP
// sockets get it (the transparent ones are the rule's takers); none
// transparent, it is dropped and counted. False: not a diverted echo.
// Fragments to a prefix an echo rule covers are reassembled first (the
// type is in the first one only), as the TCP and UDP rules do; a whole
// datagram that is no echo request then takes the usual path.
func (s *Stack) divertEcho4(n *NIC, rx *rxState, h wire.IPv4, local bool, opts ipOpts) bool {
	dst := h.Dst()
	if h.IsFragment() {
		if _, ok := s.tproxy.match(wire.ProtoICMP, dst, 0, false, n, local); !ok || !s.divertable(dst) {
			return false
		}
		whole, release := s.reasm.add(h)
		if whole == nil {
			return true
		}
		defer release()
		// The whole datagram has the fragments' destination: the rule
		// matched already.
		if !s.takeEcho(whole, nil, nil) {
			switch {
			case local:
				s.deliver(n, rx, whole, false, opts)
			case s.opts.Forwarding:
				s.forward(whole)
			default:
				s.stats.TProxy.FragNoRule.Add(1)
				s.stats.IP.InAddrErrors.Add(1)
			}
		}
		return true
	}
	if p := h.Payload(); len(p) < wire.ICMPv4HeaderLen || p[0] != wire.ICMPEcho {
		return false
	}
	if _, ok := s.tproxy.match(wire.ProtoICMP, dst, 0, false, n, local); !ok || !s.divertable(dst) {
		return false
	}
	return s.takeEcho(h, nil, nil)
}

// divertEcho6 is divertEcho4 for ICMPv6 (h whole, e walked: divert6
// reassembled fragments fragMayDivert6 let through, matching the rule
// already: matched).
func (s *Stack) divertEcho6(n *NIC, h wire.IPv6, e *wire.IPv6Ext, local, matched bool) bool {
	p := h[e.Offset:]
	if len(p) < wire.ICMPv6HeaderLen || p[0] != wire.ICMPv6EchoRequest {
		return false
	}
	if !matched {
		if _, ok := s.tproxy.match(wire.ProtoICMPv6, h.Dst(), 0, false, n, local); !ok {
			return false // mayDivert6 checked divertable
		}
	}
	return s.takeEcho(nil, h, e)
}

// takeEcho takes an echo request a rule diverts, h4 (IPv4) or h6 with
// its walk e: raw ICMP sockets get it (the transparent ones are the
// rule's takers); none transparent, it is dropped and counted. False:
// not an echo request. The two families differ only in their counters,
// checksum and delivery.
func (s *Stack) takeEcho(h4 wire.IPv4, h6 wire.IPv6, e *wire.IPv6Ext) bool {
	v6 := h6 != nil
	st4, st6 := &s.stats.ICMP, &s.stats.ICMP6
	inDelivers, inDiscards := &s.stats.IP.InDelivers, &s.stats.IP.InDiscards
	inMsgs, inErrors, inCsum, inEchos := &st4.InMsgs, &st4.InErrors, &st4.InCsumErrors, &st4.InEchos
	proto := wire.ProtoICMP
	if v6 {
		inDelivers, inDiscards = &s.stats.IP6.InDelivers, &s.stats.IP6.InDiscards
		inMsgs, inErrors, inCsum, inEchos = &st6.InMsgs, &st6.InErrors, &st6.InCsumErrors, &st6.InEchos
		proto = wire.ProtoICMPv6
	}
	var m wire.ICMPv6
	var err error
	if v6 {
		m, err = wire.ParseICMPv6(h6[e.Offset:], wire.PseudoHeaderSum6(h6.Src16(), h6.Dst16(), wire.ProtoICMPv6, 0))
	} else {
		if p := h4.Payload(); len(p) < wire.ICMPv4HeaderLen || p[0] != wire.ICMPEcho {
			return false
		}
		_, err = wire.ParseICMPv4(h4.Payload())
	}
	if err != nil {
		// Counted as the usual path counts a bad message, never answered.
		inMsgs.Add(1)
		inErrors.Add(1)
		inCsum.Add(1)
		return true
	}
	// Counted before it is queued, as a reader may look at once.
	taken := [...]*Counter{inDelivers, inMsgs, inEchos, &s.stats.TProxy.DivertedEcho}
	if !s.raw.deliverEcho(s, proto, h4, h6, m, &taken) {
		s.stats.TProxy.EchoNoSocket.Add(1)
		inDiscards.Add(1)
	}
	return true
}

// echoTakersMax bounds the raw sockets deliverEcho collects in its scan
// of the table (on the stack: no allocation); a table with more that
// take the echo is walked a second time, under the same lock.
const echoTakersMax = 8

// deliverEcho gives a diverted echo request (h4, or h6 and its message
// m) to the raw sockets that take it, as deliver and deliverICMPv6 do,
// if one of them has IP_TRANSPARENT (an IPv6 one's ICMP6_FILTER passing
// echo requests), and reports whether one had: with none it is not
// delivered. The counters taken are counted before it is queued. One scan of the table finds the takers and whether one is
// transparent.
func (t *rawTable) deliverEcho(s *Stack, proto uint8, h4 wire.IPv4, h6 wire.IPv6, m wire.ICMPv6, taken *[4]*Counter) bool {
	if t.n.Load() == 0 {
		return false
	}
	v6 := h6 != nil
	var src, dst netip.Addr
	if v6 {
		src, dst = h6.Src(), h6.Dst()
	} else {
		src, dst = h4.Src(), h4.Dst()
	}
	from := netip.AddrPortFrom(src, 0)
	t.mu.RLock()
	defer t.mu.RUnlock()
	var takers [echoTakersMax]*DgramEndpoint
	n, transparent := 0, false
	for _, e := range t.eps {
		ok, tp := echoTaker(e, proto, v6, src, dst)
		transparent = transparent || tp
		if ok {
			if n < len(takers) {
				takers[n] = e
			}
			n++
		}
	}
	if !transparent {
		return false
	}
	for _, c := range taken {
		c.Add(1)
	}
	if n <= len(takers) {
		for _, e := range takers[:n] {
			giveEcho(s, e, from, h4, h6, m)
		}
		return true
	}
	for _, e := range t.eps { // more takers than collected: rare
		if ok, _ := echoTaker(e, proto, v6, src, dst); ok {
			giveEcho(s, e, from, h4, h6, m)
		}
	}
	return true
}

// giveEcho queues the echo request on raw socket e, counted.
func giveEcho(s *Stack, e *DgramEndpoint, from netip.AddrPort, h4 wire.IPv4, h6 wire.IPv6, m wire.ICMPv6) {
	var queued bool
	if h6 != nil {
		queued = e.enqueue6(m, from, h6, 0)
	} else {
		queued = e.enqueue(h4, from, h4, 0)
	}
	if queued {
		s.stats.Raw.InDelivers.Add(1)
	} else {
		s.stats.Raw.RcvbufErrors.Add(1)
	}
}

// echoTaker reports whether raw socket e takes an echo request src ->
// dst (ok) and whether it is one of the echo rule's takers (transparent).
func echoTaker(e *DgramEndpoint, proto uint8, v6 bool, src, dst netip.Addr) (ok, transparent bool) {
	if e.proto != proto {
		return false, false
	}
	e.mu.Lock()
	la, ra := e.local.Addr(), e.remote.Addr()
	ok = e.opts.inet6 == v6 && !e.closed &&
		(!la.IsValid() || la.IsUnspecified() || la == dst) && (!e.connected || ra.WithZone("") == src)
	if ok && v6 {
		typ := wire.ICMPv6EchoRequest
		ok = e.opts.icmp6Filter[typ>>5]&(1<<(typ&31)) == 0
	}
	transparent = ok && e.opts.transparent
	e.mu.Unlock()
	return ok, transparent
}

// SendUDPUnreach sends client the ICMP (ICMPv6) destination unreachable
// a transparent UDP proxy learnt from its own upstream socket for the
// flow client -> orig: errno ECONNREFUSED is port unreachable, sent from
// orig as the destination host itself would; EHOSTUNREACH and
// ENETUNREACH are host (address) and network (no route) unreachable,
// sent from the stack's own address as a router's would be. It quotes
// the datagram rebuilt from payload, the client's last one of the flow
// (the client's stack matches the quote's addresses and ports to its
// socket). Rate-limited as the stack's own errors are (counted in
// ICMP.OutRateLimited, then EAGAIN); another errno is EINVAL.
func (s *Stack) SendUDPUnreach(client, orig netip.AddrPort, payload []byte, errno syscall.Errno) error {
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
	if client.Addr().Is4() != orig.Addr().Is4() || !client.Addr().IsValid() {
		return syscall.EINVAL
	}
	if client.Addr().Is4() {
		return s.udpUnreach4(client, orig, payload, errno)
	}
	return s.udpUnreach6(client, orig, payload, errno)
}

// SendUDPTimeExceeded sends client the ICMP (ICMPv6) time exceeded in
// transit (code 0) a transparent UDP proxy owes a datagram client ->
// orig that arrived with a TTL (hop limit) of 1 or less, which a router
// would not forward: from the stack's own address, as a router's,
// quoting the datagram rebuilt from payload. Rate-limited as
// SendUDPUnreach.
func (s *Stack) SendUDPTimeExceeded(client, orig netip.AddrPort, payload []byte) error {
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
	if client.Addr().Is4() != orig.Addr().Is4() || !client.Addr().IsValid() {
		return syscall.EINVAL
	}
	if client.Addr().Is4() {
		return s.udpError4(client, orig, payload, wire.ICMPTimeExceeded, 0, netip.Addr{})
	}
	return s.udpError6(client, orig, payload, wire.ICMPv6TimeExceeded, 0, netip.Addr{})
}

func (s *Stack) udpUnreach4(client, orig netip.AddrPort, payload []byte, errno syscall.Errno) error {
	var code uint8
	switch errno {
	case syscall.ECONNREFUSED:
		code = wire.ICMPPortUnreach
	case syscall.EHOSTUNREACH:
		code = wire.ICMPHostUnreach
	case syscall.ENETUNREACH:
		code = wire.ICMPNetUnreach
	default:
		return syscall.EINVAL
	}
	from := netip.Addr{} // the route's source: the stack as the router
	if code == wire.ICMPPortUnreach {
		from = orig.Addr()
	}
	return s.udpError4(client, orig, payload, wire.ICMPDestUnreach, code, from)
}

// udpError4 sends client the ICMP error typ/code from from (invalid:
// the route's source) quoting the datagram client -> orig rebuilt from
// payload.
func (s *Stack) udpError4(client, orig netip.AddrPort, payload []byte, typ, code uint8, from netip.Addr) error {
	l4 := getBuf(min(wire.UDPHeaderLen+len(payload), 576))
	defer putBuf(l4)
	u := wire.UDP(l4)
	u.SetSrcPort(client.Port())
	u.SetDstPort(orig.Port())
	u.SetLength(min(wire.UDPHeaderLen+len(payload), 0xffff))
	u.SetChecksum(0)
	copy(l4[wire.UDPHeaderLen:], payload)
	return s.quotedError4(from, client.Addr(), orig.Addr(), wire.ProtoUDP, typ, code, l4, wire.UDPHeaderLen+len(payload))
}

// quotedError4 sends client an ICMP error of type typ and code from
// from (invalid: the route's source) quoting a packet client -> orig
// rebuilt from its transport part l4 (cut short; whole is its full
// length), rate-limited as the stack's own errors.
func (s *Stack) quotedError4(from, client, orig netip.Addr, proto, typ, code uint8, l4 []byte, whole int) error {
	if !s.icmpAllow(typ, client) {
		return syscall.EAGAIN
	}
	// The quote: as much of the packet as fits in 576 bytes (RFC 1812
	// 4.3.2.3), its length that of the whole packet.
	whole += wire.IPv4MinHeaderLen
	q := min(wire.IPv4MinHeaderLen+len(l4), 576-wire.IPv4MinHeaderLen-wire.ICMPv4HeaderLen)
	b := getBuf(wire.ICMPv4HeaderLen + q)
	defer putBuf(b)
	clear(b[:wire.ICMPv4HeaderLen+wire.IPv4MinHeaderLen])
	m := wire.ICMPv4(b)
	m.SetType(typ)
	m.SetCode(code)
	ip := wire.IPv4(b[wire.ICMPv4HeaderLen:])
	ip[0] = 0x45
	ip.SetTotalLen(min(whole, wire.IPv4MaxLen))
	ip.SetTTL(s.opts.DefaultTTL)
	ip.SetProtocol(proto)
	ip.SetSrc(client)
	ip.SetDst(orig)
	ip.FillChecksum()
	copy(b[wire.ICMPv4HeaderLen+wire.IPv4MinHeaderLen:wire.ICMPv4HeaderLen+q], l4)
	st := &s.stats.ICMP
	st.OutMsgs.Add(1)
	switch typ {
	case wire.ICMPDestUnreach:
		st.OutDestUnreachs.Add(1)
	case wire.ICMPTimeExceeded:
		st.OutTimeExcds.Add(1)
	}
	if err := s.WritePacket(&OutPacket{Src: from, Dst: client, Proto: wire.ProtoICMP, TOS: 0xc0, Parts: [3][]byte{b[:wire.ICMPv4HeaderLen+q]}}); err != nil {
		st.OutErrors.Add(1)
		return err
	}
	return nil
}

func (s *Stack) udpUnreach6(client, orig netip.AddrPort, payload []byte, errno syscall.Errno) error {
	var code uint8
	switch errno {
	case syscall.ECONNREFUSED:
		code = wire.ICMPv6PortUnreach
	case syscall.EHOSTUNREACH:
		code = wire.ICMPv6AddrUnreach
	case syscall.ENETUNREACH:
		code = wire.ICMPv6NoRoute
	default:
		return syscall.EINVAL
	}
	from := netip.Addr{}
	if code == wire.ICMPv6PortUnreach {
		from = orig.Addr()
	}
	return s.udpError6(client, orig, payload, wire.ICMPv6DestUnreach, code, from)
}

// udpError6 is udpError4 for ICMPv6.
func (s *Stack) udpError6(client, orig netip.AddrPort, payload []byte, typ, code uint8, from netip.Addr) error {
	l4 := getBuf(min(wire.UDPHeaderLen+len(payload), wire.ICMPv6ErrorMax))
	defer putBuf(l4)
	u := wire.UDP(l4)
	plen := min(wire.UDPHeaderLen+len(payload), 0xffff)
	u.SetSrcPort(client.Port())
	u.SetDstPort(orig.Port())
	u.SetLength(plen)
	u.SetChecksum(0)
	copy(l4[wire.UDPHeaderLen:], payload)
	return s.quotedError6(from, client.Addr(), orig.Addr(), wire.ProtoUDP, typ, code, l4, plen)
}

// quotedError6 is quotedError4 for ICMPv6 (whole: the payload length).
func (s *Stack) quotedError6(from, client, orig netip.Addr, proto, typ, code uint8, l4 []byte, whole int) error {
	st := &s.stats.ICMP6
	if !s.icmpAllowDst(client) {
		st.OutRateLimited.Add(1)
		return syscall.EAGAIN
	}
	// The invoking packet rebuilt, cut to what an error may quote
	// (PutICMPv6Error keeps the whole error within 1280 bytes).
	n := min(wire.IPv6HeaderLen+len(l4), wire.ICMPv6ErrorMax)
	inv := getBuf(n)
	defer putBuf(inv)
	clear(inv[:wire.IPv6HeaderLen])
	inv[0] = 0x60
	plen := min(whole, 0xffff)
	inv[4], inv[5] = byte(plen>>8), byte(plen)
	inv[6] = proto
	inv[7] = s.opts.DefaultTTL
	c16, o16 := client.As16(), orig.As16()
	copy(inv[8:24], c16[:])
	copy(inv[24:40], o16[:])
	copy(inv[wire.IPv6HeaderLen:n], l4)
	b := getBuf(wire.ICMPv6ErrorMax)
	defer putBuf(b)
	l := wire.PutICMPv6Error(b, typ, code, 0, inv[:n])
	st.OutMsgs.Add(1)
	switch typ {
	case wire.ICMPv6DestUnreach:
		st.OutDestUnreachs.Add(1)
	case wire.ICMPv6TimeExceeded:
		st.OutTimeExcds.Add(1)
	}
	if err := s.writePacket6(&OutPacket{Src: from, Dst: client, Proto: wire.ProtoICMPv6, Parts: [3][]byte{b[:l]}}, nil); err != nil {
		st.OutErrors.Add(1)
		return err
	}
	return nil
}

// SendEchoError sends client an ICMP (ICMPv6) error of type typ and
// code about its echo request echo (the ICMP message: header and data,
// cut short as wanted) to orig: what a transparent echo relay learnt
// about its own echo (a router's destination unreachable or time
// exceeded) passed on. It leaves from from (invalid: the stack's own
// address on the route), which may be an address the stack does not
// have (the router that reported it). Only destination unreachable and
// time exceeded are passed (EINVAL otherwise); rate-limited as
// SendUDPUnreach.
func (s *Stack) SendEchoError(from, client, orig netip.Addr, typ, code uint8, echo []byte) error {
	client, orig, from = client.Unmap(), orig.Unmap(), from.Unmap()
	if client.Is4() != orig.Is4() || !client.IsValid() || len(echo) < wire.ICMPv4HeaderLen || from.IsValid() && from.Is4() != client.Is4() {
		return syscall.EINVAL
	}
	if client.Is4() {
		if typ != wire.ICMPDestUnreach && typ != wire.ICMPTimeExceeded || echo[0] != wire.ICMPEcho {
			return syscall.EINVAL
		}
		return s.quotedError4(from, client, orig, wire.ProtoICMP, typ, code, echo, len(echo))
	}
	if typ != wire.ICMPv6DestUnreach && typ != wire.ICMPv6TimeExceeded || echo[0] != wire.ICMPv6EchoRequest {
		return syscall.EINVAL
	}
	return s.quotedError6(from, client, orig, wire.ProtoICMPv6, typ, code, echo, len(echo))
}
