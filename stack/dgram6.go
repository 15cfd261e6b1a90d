package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// AF_INET6 datagram endpoints: UDP, ICMPv6 ping and raw IPv6 on the
// tables IPv4 uses. An IPv6 endpoint bound to :: without IPV6_V6ONLY
// also takes IPv4 (the socket layer shows those peers v4-mapped).

// SetInet6 marks the endpoint as an AF_INET6 socket's (before any bind).
// A ping endpoint then speaks ICMPv6; a raw ICMPv6 endpoint always
// checksums at offset 2 (RFC 3542 3.1).
func (e *DgramEndpoint) SetInet6() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opts.inet6 = true
	switch {
	case e.kind == KindPing:
		e.proto = wire.ProtoICMPv6
	case e.kind == KindRaw && e.proto == wire.ProtoICMPv6:
		e.opts.csumOff = 2
	}
}

// SetHopLimit is IPV6_UNICAST_HOPS: 0..255, or -1 for the default.
// Unlike IP_TTL, 0 is allowed: Linux sends such datagrams with hop
// limit 0 (they reach only this host's own addresses).
func (e *DgramEndpoint) SetHopLimit(v int) error {
	if v < -1 || v > 255 {
		return syscall.EINVAL
	}
	e.mu.Lock()
	e.opts.hops = v
	e.mu.Unlock()
	return nil
}

// HopLimit is IPV6_UNICAST_HOPS (the default when unset).
func (e *DgramEndpoint) HopLimit() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.hops < 0 {
		return int(e.s.opts.DefaultTTL)
	}
	return e.opts.hops
}

// SetMulticastHops is IPV6_MULTICAST_HOPS: 0..255, -1 for the default 1.
func (e *DgramEndpoint) SetMulticastHops(v int) error {
	if v < -1 || v > 255 {
		return syscall.EINVAL
	}
	if v == -1 {
		v = 1
	}
	e.mu.Lock()
	e.opts.mcastHops = v
	e.mu.Unlock()
	return nil
}

// MulticastHops is IPV6_MULTICAST_HOPS.
func (e *DgramEndpoint) MulticastHops() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.mcastHops
}

// SetTClass is IPV6_TCLASS (0..255; the caller maps -1 to 0).
func (e *DgramEndpoint) SetTClass(v int) { e.mu.Lock(); e.opts.tclass = uint8(v); e.mu.Unlock() }

// TClass is IPV6_TCLASS.
func (e *DgramEndpoint) TClass() int { e.mu.Lock(); defer e.mu.Unlock(); return int(e.opts.tclass) }

// Inet6 reports an AF_INET6 endpoint.
func (e *DgramEndpoint) Inet6() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.inet6 }

// SetV6Only is IPV6_V6ONLY: EINVAL once bound, as Linux.
func (e *DgramEndpoint) SetV6Only(v bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bound {
		return syscall.EINVAL
	}
	e.opts.v6only = v
	return nil
}

// V6Only is IPV6_V6ONLY.
func (e *DgramEndpoint) V6Only() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.v6only }

// SetChecksumOffset is IPV6_CHECKSUM on a raw socket: the stack fills
// (and checks on receive) a checksum at off of the payload; -1 turns it
// off. ICMPv6 sockets cannot change theirs (EINVAL), nor may the offset
// be odd (EINVAL), as Linux.
func (e *DgramEndpoint) SetChecksumOffset(off int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kind != KindRaw || e.proto == wire.ProtoICMPv6 || off >= 0 && off&1 != 0 || off < -1 {
		return syscall.EINVAL
	}
	e.opts.csumOff = off
	return nil
}

// ChecksumOffset is IPV6_CHECKSUM (-1: off).
func (e *DgramEndpoint) ChecksumOffset() int { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.csumOff }

// SetICMP6Filter is ICMP6_FILTER: a set bit (type t at word t/32, bit
// t%32) blocks that type.
func (e *DgramEndpoint) SetICMP6Filter(f [8]uint32) {
	e.mu.Lock()
	e.opts.icmp6Filter = f
	e.mu.Unlock()
}

// ICMP6Filter is ICMP6_FILTER.
func (e *DgramEndpoint) ICMP6Filter() [8]uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.icmp6Filter
}

func (e *DgramEndpoint) anyAddr() netip.Addr {
	if e.opts.inet6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// familyOK: an AF_INET endpoint takes IPv4 only; an AF_INET6 one both
// (IPv4 arrives unmapped from the socket layer).
func (e *DgramEndpoint) familyOK(a netip.Addr) bool { return a.Is4() || e.opts.inet6 && a.Is6() }

func loopbackOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return ipv6Loopback
}

// bindOverlap is whether two bound addresses claim a common destination
// (Linux's inet_rcv_saddr_equal): the same family overlaps on equal
// addresses or a wildcard; a dual-stack :: (not V6ONLY) also covers
// every IPv4 address.
func bindOverlap(a netip.Addr, aOnly bool, b netip.Addr, bOnly bool) bool {
	a, b = a.WithZone(""), b.WithZone("")
	if a.Is4() == b.Is4() {
		return a.IsUnspecified() || b.IsUnspecified() || a == b
	}
	if a.Is6() {
		return a.IsUnspecified() && !aOnly
	}
	return b.IsUnspecified() && !bOnly
}

// sendTo6 is SendTo's IPv6 half, after the checks both families share.
func (e *DgramEndpoint) sendTo6(b []byte, to netip.AddrPort, dst, src netip.Addr, sport uint16, ttl int, hopZero bool, tos uint8, flow uint32, iface, oif *NIC, boundDev, loop bool, csumOff, gso int, df bool, ext *SendExt6, mark uint32, wait <-chan struct{}) (int, error) {
	s := e.s
	if wait != nil {
		if r, err := s.FindRoute(dst); err == nil {
			if w, ok := r.NIC.ep.(link.Waiter); ok {
				w.WaitRoom(wait)
			}
		}
	}
	if src.Is4() {
		src = netip.Addr{} // a dual-stack socket whose name is IPv4: the route picks
	}
	p := OutPacket{Src: src, Dst: dst, Proto: e.proto, TTL: uint8(ttl), HopZero: hopZero, TOS: tos, Flow: flow & 0xfffff, Iface: iface, Oif: oif, BoundDev: boundDev, DF: df, Ext6: ext, Mark: mark}
	if dst.IsMulticast() {
		p.Loop = loop
		p.LocalOnly = ttl == 0
	}
	switch e.kind {
	case KindUDP:
		if len(b) > wire.IPv6MaxPayload-wire.UDPHeaderLen-ext.counted() {
			// A local error too (__ip6_append_data), naming the MTU
			// less the extension headers.
			mdst := dst
			if h, ok := ext.FirstHop(); ok {
				mdst = h // the path is to a routing header's next segment
			}
			e.localError(syscall.EMSGSIZE, to, max(s.sendMTU(mdst, false)-ext.sent(), 0))
			return 0, syscall.EMSGSIZE
		}
		h := getBuf(wire.UDPHeaderLen)
		defer putBuf(h)
		wire.PutUDP(h, sport, to.Port(), len(b))
		p.Parts = [3][]byte{h, b}
		p.GSOSize = gso
		if err := s.WritePacket(&p); err != nil {
			if err != syscall.EINVAL && err != syscall.EMSGSIZE { // UDP_SEGMENT refusals (gso_udp.go)
				s.stats.UDP.SndbufErrors.Add(1)
			}
			return 0, err
		}
		s.stats.UDP.OutDatagrams.Add(uint64(udpSegments(len(b), gso)))
	case KindPing:
		if len(b) < wire.ICMPv6HeaderLen || b[0] != wire.ICMPv6EchoRequest || b[1] != 0 {
			return 0, syscall.EINVAL
		}
		h := getBuf(wire.ICMPv6HeaderLen)
		defer putBuf(h)
		copy(h, b)
		wire.ICMPv6(h).SetID(sport)
		h[2], h[3] = 0, 0
		p.Parts = [3][]byte{h, b[wire.ICMPv6HeaderLen:]}
		if err := s.WritePacket(&p); err != nil {
			return 0, err
		}
		s.stats.ICMP6.OutMsgs.Add(1)
		s.stats.ICMP6.OutEchos.Add(1)
	case KindRaw:
		if csumOff >= 0 && csumOff+2 > len(b) {
			return 0, syscall.EINVAL
		}
		p.NoCsum = true
		p.CsumAt = csumOff + 1
		p.Parts = [3][]byte{b}
		if err := s.WritePacket(&p); err != nil {
			return 0, err
		}
		s.stats.Raw.OutPackets.Add(1)
	}
	return len(b), nil
}

// enqueue6 queues an IPv6 datagram's data.
func (e *DgramEndpoint) enqueue6(data []byte, from netip.AddrPort, h wire.IPv6, dif int32) bool {
	return e.enqueueRecv(data, from, h.Dst(), 0, h.HopLimit(), h.TrafficClass(), 0, h.FlowLabel(), nil, recvExt6(h), dif)
}

// scoped adds the NIC as zone to a link-local source, so recvfrom
// reports its scope id.
func scoped(a netip.Addr, n *NIC) netip.Addr {
	if a.IsLinkLocalUnicast() && !n.loopback {
		return a.WithZone(n.name)
	}
	return a
}

// receiveUDP6 demultiplexes a UDP datagram over IPv6. A zero checksum is
// not allowed over IPv6 (RFC 8200 8.1).
func (s *Stack) receiveUDP6(n *NIC, h wire.IPv6, p []byte, mcast bool) {
	st := &s.stats.UDP
	u, err := wire.ParseUDP(p, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoUDP, 0))
	if err == nil && u.Checksum() == 0 {
		st.InErrors.Add(1)
		st.InCsumErrors.Add(1)
		return
	}
	if err != nil {
		st.InErrors.Add(1)
		if pe, ok := err.(*wire.ParseError); ok && pe.Reason == wire.ReasonBadChecksum {
			st.InCsumErrors.Add(1)
		} else {
			st.InBadLength.Add(1)
		}
		return
	}
	src, dst := h.Src(), h.Dst()
	from := netip.AddrPortFrom(scoped(src, n), u.SrcPort())
	if !deliverUDP(s, u, src, dst, from, h, mcast, int32(n.id), (*DgramEndpoint).enqueue6) {
		s.sendICMPv6Error(h, wire.ICMPv6DestUnreach, wire.ICMPv6PortUnreach, 0)
	}
}

// has6 reports a raw IPv6 endpoint for proto.
func (t *rawTable) has6(proto uint8) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.eps {
		e.mu.Lock()
		ok := e.opts.inet6 && e.proto == proto
		e.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// deliver6 copies a datagram's upper-layer part (IPv6 raw sockets get no
// IP header, RFC 3542 3) to the raw IPv6 endpoints of its protocol;
// ICMPv6 goes through deliverICMPv6 after its checksum was verified.
func (t *rawTable) deliver6(s *Stack, h wire.IPv6, x *wire.IPv6Ext, dif int32) {
	if x.Proto == wire.ProtoICMPv6 {
		return
	}
	t.deliverRaw6(s, h, x.Proto, h[x.Offset:], dif, nil)
}

// deliverICMPv6 delivers a checked ICMPv6 message to raw ICMPv6
// endpoints whose ICMP6_FILTER passes its type.
func (t *rawTable) deliverICMPv6(s *Stack, h wire.IPv6, m wire.ICMPv6, dif int32) {
	t.deliverRaw6(s, h, wire.ProtoICMPv6, m, dif, func(e *DgramEndpoint) bool {
		typ := m.Type()
		return e.opts.icmp6Filter[typ>>5]&(1<<(typ&31)) == 0
	})
}

func (t *rawTable) deliverRaw6(s *Stack, h wire.IPv6, proto uint8, data []byte, dif int32, pass func(*DgramEndpoint) bool) {
	if t.n.Load() == 0 {
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.eps) == 0 {
		return
	}
	src, dst := h.Src(), h.Dst()
	for _, e := range t.eps {
		e.mu.Lock()
		ok := e.opts.inet6 && e.proto == proto && (pass == nil || pass(e)) && (e.opts.bindIdx == 0 || e.opts.bindIdx == dif) &&
			(!dst.IsMulticast() || e.mcAllowsLocked(dst, src, dif)) // inet6_mc_check
		la, conn, ra, off := e.local.Addr(), e.connected, e.remote.Addr(), e.opts.csumOff
		e.mu.Unlock()
		if !ok || la.IsValid() && !la.IsUnspecified() && la != dst || conn && ra.WithZone("") != src {
			continue
		}
		if off >= 0 && proto != wire.ProtoICMPv6 {
			// IPV6_CHECKSUM: a packet whose checksum fails is not delivered.
			if off+2 > len(data) || wire.Fold(wire.Sum(data, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), proto, len(data)))) != 0xffff {
				s.stats.Raw.InCsumErrors.Add(1)
				continue
			}
		}
		if e.enqueue6(data, netip.AddrPortFrom(src, 0), h, dif) {
			s.stats.Raw.InDelivers.Add(1)
		} else {
			s.stats.Raw.RcvbufErrors.Add(1)
		}
	}
}

// Stack is the endpoint's stack.
func (e *DgramEndpoint) Stack() *Stack { return e.s }

// JoinGroup6 is IPV6_JOIN_GROUP: group g on nic (nil: the NIC the route
// to g uses), under the same per-socket limit as IPv4.
func (e *DgramEndpoint) JoinGroup6(g netip.Addr, nic *NIC) error {
	if !g.Is6() || !g.IsMulticast() {
		return syscall.EINVAL
	}
	g = g.WithZone("")
	if nic == nil {
		r, err := e.s.findRoute6(g)
		if err != nil {
			return syscall.ENODEV
		}
		nic = r.NIC
	}
	return e.addMembership(nic, g)
}

// LeaveGroup6 is IPV6_LEAVE_GROUP.
func (e *DgramEndpoint) LeaveGroup6(g netip.Addr, nic *NIC) error {
	g = g.WithZone("")
	e.mu.Lock()
	for i, m := range e.groups {
		if m.group == g && (nic == nil || m.nic == nic) {
			e.groups = append(e.groups[:i], e.groups[i+1:]...)
			e.mu.Unlock()
			m.nic.dropFilter(e, g)
			return nil
		}
	}
	e.mu.Unlock()
	return syscall.EADDRNOTAVAIL
}

// PacketInfo is what a received datagram's IP header said, for
// IPV6_RECVPKTINFO / IPV6_RECVHOPLIMIT / IPV6_RECVTCLASS.
type PacketInfo struct {
	Dst      netip.Addr
	HopLimit uint8
	TClass   uint8
	GSOSize  int // UDP_GRO: the segment size of a coalesced read (0: one datagram)
	// IfIndex is the NIC the datagram came in on (0: not known).
	IfIndex int
	// DstPort is the destination port: the socket's, or a diverted
	// datagram's original one (IP_ORIGDSTADDR, transparent.go).
	DstPort uint16
	// DstPortOK marks a raw or ping socket's datagram long enough to
	// have DstPort: bytes 2-3 of its transport header, which Linux
	// reports as IP_ORIGDSTADDR's port whatever the protocol.
	DstPortOK bool
	// Flow is an IPv6 datagram's flow label (IPV6_FLOWINFO), Opts an
	// IPv4 one's options as the receive path left them (IP_RECVOPTS).
	Flow uint32
	Opts RecvIPOpts
	// Ext6 is an IPv6 datagram's Hop-by-Hop and Destination Options
	// headers (nil: none); the reader gives it back with PutRecvExt6.
	Ext6 *RecvExt6
}

// RecvFromInfo is RecvFrom with the datagram's header fields.
func (e *DgramEndpoint) RecvFromInfo(b []byte, peek bool) (n, full int, from netip.AddrPort, info PacketInfo, err error) {
	n, full, from, err = e.recvFrom(b, peek, -1, &info, nil)
	return n, full, from, info, err
}

// PeekFromInfo is a MSG_PEEK read off bytes into the receive queue, its
// datagrams end to end (SO_PEEK_OFF): the rest of the datagram there,
// full its length from the offset; EAGAIN when the queue ends before.
// info may be nil.
func (e *DgramEndpoint) PeekFromInfo(b []byte, off int, info *PacketInfo) (n, full int, from netip.AddrPort, err error) {
	return e.recvFrom(b, true, off, info, nil)
}

// IfIndexOf is the index of the NIC holding a (0 when none: a group).
func (s *Stack) IfIndexOf(a netip.Addr) int {
	if n := s.ownerOf(a); n != nil {
		return n.id
	}
	return 0
}
