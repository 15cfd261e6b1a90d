package stack

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Frame buffers come from size-classed pools of fixed-size arrays. A
// pointer to an array goes into a sync.Pool without allocating (a []byte
// would need a new slice header on every Put), and sync.Pool keeps a
// cache per P, so the goroutines of two links and the senders do not
// meet on one lock per packet. The GC empties the pools; that is what
// bounds the memory parked in them.
const (
	bufSize0 = 256
	bufSize1 = 2048
	bufSize2 = 9216
	bufSize3 = 65536 + 64
)

var (
	bufPool0 = sync.Pool{New: func() any { return new([bufSize0]byte) }}
	bufPool1 = sync.Pool{New: func() any { return new([bufSize1]byte) }}
	bufPool2 = sync.Pool{New: func() any { return new([bufSize2]byte) }}
	bufPool3 = sync.Pool{New: func() any { return new([bufSize3]byte) }}
)

func getBuf(n int) []byte {
	switch {
	case n <= bufSize0:
		return bufPool0.Get().(*[bufSize0]byte)[:n]
	case n <= bufSize1:
		return bufPool1.Get().(*[bufSize1]byte)[:n]
	case n <= bufSize2:
		return bufPool2.Get().(*[bufSize2]byte)[:n]
	case n <= bufSize3:
		return bufPool3.Get().(*[bufSize3]byte)[:n]
	}
	return make([]byte, n)
}

// putBuf returns a buffer from getBuf (any length of it).
func putBuf(b []byte) {
	switch cap(b) {
	case bufSize0:
		bufPool0.Put((*[bufSize0]byte)(b[:bufSize0]))
	case bufSize1:
		bufPool1.Put((*[bufSize1]byte)(b[:bufSize1]))
	case bufSize2:
		bufPool2.Put((*[bufSize2]byte)(b[:bufSize2]))
	case bufSize3:
		bufPool3.Put((*[bufSize3]byte)(b[:bufSize3]))
	}
}

// frameVecs are one-element frame vectors for WriteFrames: the slice
// escapes through the interface call, so it is pooled, not built per frame.
var frameVecs = sync.Pool{New: func() any { return new([1][]byte) }}

// DeliverFrames is the NIC's receive path: it runs every frame to
// completion on the link's goroutine.
func (n *NIC) DeliverFrames(frames [][]byte) {
	n.deliverFrames(&n.rx, frames)
}

// deliverFrames is DeliverFrames with the state of one receiving
// goroutine (rxqueue.go).
func (n *NIC) deliverFrames(rx *rxState, frames [][]byte) {
	s := n.stack
	// TCP defers its ACKs to the end of the batch: one ACK for many
	// segments, as a NIC's interrupt coalescing gives Linux.
	defer rx.tcp.Flush()
	frames = n.groBatchOn(rx, frames) // gro.go
	for i, f := range frames {
		rx.valid = n.groValidOn(rx, i)
		s.stats.Link.InFrames.Add(1)
		n.tapFrame(f, false)
		if !n.ethernet {
			if len(f) > 0 && f[0]>>4 == 6 {
				s.receiveIPv6(n, rx, f, false)
			} else {
				s.receiveIPv4(n, rx, f, false)
			}
			continue
		}
		info, err := wire.ParseEthernet(f)
		if err != nil {
			s.stats.Link.InMalformed.Add(1)
			continue
		}
		if !n.acceptMAC(info.Dst) {
			s.stats.Link.InNotForUs.Add(1)
			continue
		}
		p := f[info.HeaderLen:]
		switch info.EtherType {
		case wire.EtherTypeIPv4:
			s.receiveIPv4(n, rx, p, info.Dst.IsMulticast())
		case wire.EtherTypeARP:
			n.handleARP(p)
		case wire.EtherTypeIPv6:
			s.receiveIPv6(n, rx, p, info.Dst.IsMulticast())
		default:
			s.stats.Link.InUnknownEtherType.Add(1)
		}
	}
}

// acceptMAC filters destination MACs: ours, broadcast, and the groups we
// joined (everything in promiscuous mode).
func (n *NIC) acceptMAC(m wire.MAC) bool {
	if m == n.mac || m.IsBroadcast() || n.promisc.Load() > 0 {
		return true
	}
	if m.IsMulticast() {
		return n.acceptGroupMAC(m)
	}
	return false
}

// acceptGroupMAC reports a multicast MAC of a joined group (01:00:5e + 23 bits).
func (n *NIC) acceptGroupMAC(m wire.MAC) bool {
	n.amu.RLock()
	defer n.amu.RUnlock()
	for g := range n.groups {
		if multicastMAC(g) == m {
			return true
		}
	}
	// 224.0.0.1 (all hosts) and ff02::1 (all nodes) are always joined.
	return m == multicastMAC(allHosts) || m == wire.IPv6MulticastMAC(wire.IPv6AllNodes)
}

var allHosts = netip.AddrFrom4([4]byte{224, 0, 0, 1})

func multicastMAC(g netip.Addr) wire.MAC {
	if g.Is6() {
		return wire.IPv6MulticastMAC(g)
	}
	a := g.As4()
	return wire.MAC{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}
}

func (s *Stack) countIPError(err error) {
	s.stats.IP.InHdrErrors.Add(1)
	var pe *wire.ParseError
	if !errors.As(err, &pe) {
		return
	}
	switch pe.Reason {
	case wire.ReasonTruncated:
		s.stats.IP.InTruncated.Add(1)
	case wire.ReasonBadVersion:
		s.stats.IP.InBadVersion.Add(1)
	case wire.ReasonBadHeaderLen:
		s.stats.IP.InBadHeaderLen.Add(1)
	case wire.ReasonBadLength:
		s.stats.IP.InBadLength.Add(1)
	case wire.ReasonBadChecksum:
		s.stats.IP.InCsumErrors.Add(1)
	case wire.ReasonBadOption:
		s.stats.IP.InBadOptions.Add(1)
	}
}

// receiveIPv4 checks a packet (RFC 1122 3.2.1) and delivers, reassembles
// or forwards it.
func (s *Stack) receiveIPv4(n *NIC, rx *rxState, b []byte, linkMulticast bool) {
	s.stats.IP.InReceives.Add(1)
	h, err := wire.ParseIPv4(b)
	if err != nil {
		s.countIPError(err)
		if pe, ok := err.(*wire.ParseError); ok && pe.Reason == wire.ReasonBadOption {
			s.badOptions(n, b)
		}
		return
	}
	if s.martian(n, h) {
		return
	}
	var opts ipOpts
	if h.HeaderLen() > wire.IPv4MinHeaderLen {
		var ok bool
		if opts, ok = s.receiveOptions(h); !ok {
			return
		}
	}
	dst := h.Dst()
	local := n.loopback || n.hasAddr(dst)
	bcast := false
	if n.loopback && (dst.IsMulticast() || dst == limitedBroadcast || s.isAnyBroadcast(dst)) {
		// A looped-back multicast or broadcast copy (IP_MULTICAST_LOOP).
		bcast = true
	}
	if !local {
		switch {
		case n.isBroadcast(dst):
			local, bcast = true, true
		case dst.IsMulticast():
			// The interface filter too (ip_check_mc_rcu), IGMP excepted.
			if !n.isMember(dst) || h.Protocol() != wire.ProtoIGMP && !n.admits(dst, h.Src()) {
				s.stats.IP.InAddrErrors.Add(1)
				return
			}
			local, bcast = true, true
		case s.IsLocal(dst):
			// Weak host model (RFC 1122 3.3.4.2), like Linux: an address of
			// any interface is ours.
			local = true
		}
	}
	if !bcast && !linkMulticast && s.tproxy.active() && s.divert4(n, rx, h, local, opts) {
		return // transparent.go
	}
	if !local {
		if linkMulticast || !s.opts.Forwarding {
			s.stats.IP.InAddrErrors.Add(1)
			return
		}
		s.forwardFrom(h, n)
		return
	}
	if h.IsFragment() {
		whole, release := s.reasm.add(h)
		if whole == nil {
			return
		}
		defer release()
		h = whole
		opts, _ = parseIPOptions(h) // the first fragment's options
	}
	s.deliver(n, rx, h, bcast, opts)
}

// martian drops and counts a packet whose addresses cannot be real
// (RFC 1122 3.2.1.3, RFC 1812 5.3.7, Linux's martian checks).
func (s *Stack) martian(n *NIC, h wire.IPv4) bool {
	c, src := s.martianCheck(n, h)
	if c == nil {
		return false
	}
	c.Add(1)
	if src {
		s.stats.IP.InBadSource.Add(1)
	} else {
		s.stats.IP.InAddrErrors.Add(1)
	}
	return true
}

// martianReason is the counter of h's martian reason, nil for none.
func (s *Stack) martianReason(n *NIC, h wire.IPv4) *Counter {
	c, _ := s.martianCheck(n, h)
	return c
}

// martianCheck finds the reason a packet is a martian, and whether it is
// its source. The common case costs a few byte compares: the first octets
// decide everything but the broadcast and own-address checks.
func (s *Stack) martianCheck(n *NIC, h wire.IPv4) (reason *Counter, src bool) {
	st := &s.stats.IP
	s0, d0 := h[12], h[16]
	switch {
	case s0 == 0:
		// 0.0.0.0 is a host that does not know its address yet: allowed to
		// the limited broadcast (DHCP), to a link-local group, or in IGMP,
		// as Linux allows; any other 0/8 source is bogus.
		if h.Src().IsUnspecified() && (h.Dst() == limitedBroadcast || (d0 == 224 && h[17] == 0 && h[18] == 0) || h.Protocol() == wire.ProtoIGMP) {
			break
		}
		return &st.InMartianSrcZero, true
	case s0 == 127:
		if !n.loopback {
			return &st.InMartianSrcLoopback, true
		}
	case s0 >= 224 && s0 < 240:
		return &st.InMartianSrcMulticast, true
	case s0 >= 240:
		if h.Src() == limitedBroadcast {
			return &st.InMartianSrcBroadcast, true
		}
		return &st.InMartianSrcClassE, true
	case !n.loopback:
		// From the wire, the NIC's own address or its directed broadcast
		// as source is a spoof or a loop.
		if a := h.Src(); n.isBroadcast(a) {
			return &st.InMartianSrcBroadcast, true
		} else if n.hasAddr(a) {
			return &st.InMartianSrcLocal, true
		}
	}
	switch {
	case d0 == 0:
		return &st.InMartianDstZero, false
	case d0 == 127:
		if !n.loopback {
			return &st.InMartianDstLoopback, false
		}
	case d0 >= 240:
		if h.Dst() != limitedBroadcast {
			return &st.InMartianDstClassE, false
		}
	}
	return nil, false
}

// deliver hands a whole datagram to its protocol.
func (s *Stack) deliver(n *NIC, rx *rxState, h wire.IPv4, bcast bool, opts ipOpts) {
	s.raw.deliver(s, h, int32(n.id))
	switch h.Protocol() {
	case wire.ProtoICMP:
		s.stats.IP.InDelivers.Add(1)
		s.receiveICMP(n, h, bcast, opts)
	case wire.ProtoUDP:
		s.stats.IP.InDelivers.Add(1)
		s.receiveUDP(n, h, bcast)
	case wire.ProtoTCP:
		if bcast {
			s.stats.IP.InAddrErrors.Add(1)
			return
		}
		p := h.Payload()
		t, err := wire.ParseTCP(p, h.PseudoSum(0), !rx.valid)
		if err != nil {
			s.stats.IP.InDiscards.Add(1)
			s.tcpInErr(err)
			return
		}
		s.stats.IP.InDelivers.Add(1)
		if h.HeaderLen() > wire.IPv4MinHeaderLen {
			// Options: a connection the segment opens and the replies
			// sent without one carry them echoed (tcp_ipopts_reply.go).
			rx.tcp.HandleSegmentEchoFrom(h.Src(), h.Dst(), h.TOS(), t, s.tcpEchoFrom(h))
			return
		}
		rx.tcp.HandleSegment(h.Src(), h.Dst(), h.TOS(), t)
	case wire.ProtoIGMP:
		s.stats.IP.InDelivers.Add(1)
		s.receiveIGMP(n, h)
	default:
		if s.raw.has(h.Protocol()) {
			s.stats.IP.InDelivers.Add(1)
			return
		}
		s.stats.IP.InUnknownProtos.Add(1)
		s.sendICMPError(h, wire.ICMPDestUnreach, wire.ICMPProtoUnreach, 0)
	}
}

// forward routes a packet that is not ours (only with Options.Forwarding).
func (s *Stack) forward(h wire.IPv4) { s.forwardFrom(h, nil) }

// forwardFrom is forward for a packet that came in on iif (nil: not
// known), which policy rules may select (route.go).
func (s *Stack) forwardFrom(h wire.IPv4, iif *NIC) {
	if h.TTL() <= 1 {
		s.stats.IP.TTLExceeded.Add(1)
		s.sendICMPError(h, wire.ICMPTimeExceeded, wire.ICMPTTLExceeded, 0)
		return
	}
	r, err := s.forwardRoute(h.Src(), h.Dst(), iif)
	if err != nil || r.Local {
		s.stats.IP.OutNoRoutes.Add(1)
		// A rule's action picks the error as Linux's ip_error: none
		// for blackhole, administratively prohibited for prohibit.
		switch err {
		case syscall.EINVAL:
		case syscall.EACCES:
			s.sendICMPError(h, wire.ICMPDestUnreach, wire.ICMPAdminProhibited, 0)
		default:
			s.sendICMPError(h, wire.ICMPDestUnreach, wire.ICMPNetUnreach, 0)
		}
		return
	}
	if len(h) > r.MTU && h.DF() {
		s.stats.IP.FragFails.Add(1)
		s.sendICMPError(h, wire.ICMPDestUnreach, wire.ICMPFragNeeded, r.MTU)
		return
	}
	buf := getBuf(wire.EthernetHeaderLen + len(h))
	defer putBuf(buf)
	p := wire.IPv4(buf[wire.EthernetHeaderLen:])
	copy(p, h)
	// RFC 1624 incremental update for the TTL decrement.
	old := uint16(p[8])<<8 | uint16(p[9])
	p.SetTTL(p.TTL() - 1)
	p.SetChecksum(wire.UpdateChecksum(p.Checksum(), old, uint16(p[8])<<8|uint16(p[9])))
	s.stats.IP.ForwDatagrams.Add(1)
	if len(p) > r.MTU {
		s.fragmentAndSend(&r, buf, len(p))
		return
	}
	r.NIC.sendIP(r.NextHop, buf)
}

// OutPacket describes a datagram to send. The transport bytes are
// Parts[0..2] concatenated; for TCP, UDP and ICMP the stack fills the
// transport checksum (the field must be zero).
type OutPacket struct {
	Src, Dst netip.Addr // Src may be invalid: the route's source is used
	Proto    uint8
	TTL      uint8 // 0: default
	HopZero  bool  // TTL 0 is meant: IPV6_UNICAST_HOPS 0 (IPv6 only)
	TOS      uint8
	Flow     uint32 // IPv6 flow label (low 20 bits): an IPV6_FLOWINFO control message's
	DF       bool
	// DFWant sets DF when the datagram fits the route's MTU and the path
	// MTU is not locked (IP_PMTUDISC_WANT); a larger one is fragmented.
	DFWant bool
	NoCsum bool // do not fill the transport checksum (raw sockets)
	Parts  [3][]byte
	// Iface pins the output NIC (IP_MULTICAST_IF, SO_BINDTODEVICE).
	Iface *NIC
	// Oif routes through this NIC only (the ifindex of IPV6_PKTINFO /
	// IP_PKTINFO, pktinfo.go).
	Oif *NIC
	// Mark is the socket's SO_MARK, for policy routing rules (route.go).
	Mark uint32
	// BoundDev: Oif is the socket's SO_BINDTODEVICE (TCP, UDP, raw,
	// ping), routed as its connect was (routeDev, tcphost.go).
	BoundDev bool
	// Loop delivers a copy of a multicast datagram to this host's members
	// too (IP_MULTICAST_LOOP); LocalOnly keeps it off the wire
	// (IP_MULTICAST_TTL 0).
	Loop, LocalOnly bool
	// GSOSize > 0 makes a TCP packet a super-segment cut at this payload
	// size (gso.go), a UDP one a UDP_SEGMENT super-datagram (gso_udp.go).
	GSOSize int
	// Options are IP options for the header (padded to a multiple of 4).
	Options []byte
	// PseudoDst, when valid, is the destination TCP's checksum covers
	// where the header's is a source route's first hop (IP_OPTIONS on
	// TCP, tcphost.go); such a packet is summed here, never offloaded.
	PseudoDst netip.Addr
	// CsumAt, when positive, has the stack fill an Internet checksum over
	// the IPv6 pseudo-header at offset CsumAt-1 of the payload
	// (IPV6_CHECKSUM on a raw socket).
	CsumAt int
	// Ext6 is an IPv6 datagram's application extension headers
	// (ext6_send.go); nil: none.
	Ext6 *SendExt6
}

// WritePacket routes and sends one datagram, fragmenting it when it is
// larger than the route MTU and DF is clear.
func (s *Stack) WritePacket(p *OutPacket) error { return s.writePacket(p, nil) }

// groupOutNIC is the NIC a datagram to 255.255.255.255 or a group leaves
// by: iface when set (IP_MULTICAST_IF, SO_BINDTODEVICE), else the
// route's, else the first non-loopback NIC with an address, as Linux
// picks by its route for 255.255.255.255 / 224/4. nil: none.
func (s *Stack) groupOutNIC(dst netip.Addr, iface *NIC) *NIC {
	if iface != nil {
		return iface
	}
	if rr, e := s.FindRoute(dst); e == nil && !rr.Local {
		return rr.NIC
	}
	for _, c := range s.NICs() {
		if !c.loopback && len(c.Addrs()) > 0 {
			return c
		}
	}
	return nil
}

// writePacket is WritePacket; a non-nil th is a TCP header written in
// front of p.Parts straight into the frame (no separate header buffer).
func (s *Stack) writePacket(p *OutPacket, th *wire.TCPHeader) error {
	if p.Dst.Is4In6() {
		// A dual-stack socket's IPv4 peer.
		p.Dst, p.Src = p.Dst.Unmap(), p.Src.Unmap()
	}
	if p.Dst.Is6() {
		return s.writePacket6(p, th)
	}
	if p.Src.IsValid() && p.Src.Is6() && !p.Src.IsUnspecified() {
		return syscall.EAFNOSUPPORT // an IPv6 source for an IPv4 destination: never a header
	}
	var r ResolvedRoute
	var err error
	dst := p.Dst
	switch {
	case dst == limitedBroadcast || dst.IsMulticast():
		nic := s.groupOutNIC(dst, p.Iface)
		if nic == nil {
			s.stats.IP.OutNoRoutes.Add(1)
			return syscall.ENETUNREACH
		}
		r = ResolvedRoute{NIC: nic, NextHop: dst, MTU: nic.mtu, Src: nic.primaryAddr(dst)}
	default:
		r, err = s.routeOut(dst, p) // route.go
		if err != nil {
			s.stats.IP.OutNoRoutes.Add(1)
			return err
		}
	}
	src := p.Src
	if !src.IsValid() || src.IsUnspecified() {
		src = r.Src
	}
	df := p.DF
	mtuLocked := false
	if !r.Local {
		if m, locked, ok := s.pathMTU(dst); ok && m < r.MTU {
			// A path MTU locked at its minimum goes without DF and is
			// fragmented, as Linux does.
			r.MTU = m
			df = df && !locked
			mtuLocked = locked
		}
	}
	total := 0
	if th != nil {
		total = th.Len()
	}
	for _, x := range p.Parts {
		total += len(x)
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = s.opts.DefaultTTL
	}
	hdr := wire.IPv4Header{TOS: p.TOS, ID: s.nextID(),
		DF: df, TTL: ttl, Protocol: p.Proto, Src: src, Dst: dst, Options: p.Options}
	hdr.TotalLen = hdr.Len() + total
	if hdr.TotalLen > wire.IPv4MaxLen {
		return syscall.EMSGSIZE
	}
	// A UDP_SEGMENT send too: Linux (__ip_make_skb) looks at the whole
	// super-datagram, so its segments carry DF when it fits the MTU.
	if p.DFWant && !mtuLocked && hdr.TotalLen <= r.MTU {
		hdr.DF = true
	}
	if hdr.TotalLen > r.MTU && df && p.GSOSize == 0 {
		s.stats.IP.OutTooBig.Add(1)
		return syscall.EMSGSIZE
	}
	s.stats.IP.OutRequests.Add(1)
	buf := r.NIC.txBuf(wire.EthernetHeaderLen + hdr.TotalLen) // gso.go
	defer func() { putBuf(buf) }()                            // buf may be taken (sendGSO)
	ip := buf[wire.EthernetHeaderLen:]
	hl := hdr.Put(ip)
	off := hl
	if th != nil {
		off += th.Put(ip[off:])
		if done, err := s.sendTCPVec(&r, buf, p, hl, off, hdr.TotalLen, false); done { // txvec.go
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
	noCsum := p.NoCsum
	if p.PseudoDst.IsValid() && p.Proto == wire.ProtoTCP && p.GSOSize == 0 {
		if t := wire.IPv4(ip).Payload(); len(t) >= wire.TCPMinHeaderLen && !noCsum {
			wire.TCP(t).FillChecksum(wire.PseudoHeaderSum(src.As4(), p.PseudoDst.Unmap().As4(), wire.ProtoTCP, len(t)))
		}
		noCsum = true
	}
	if p.GSOSize > 0 && p.Proto == wire.ProtoUDP {
		if done, err := s.sendUDPGSO(&r, buf, hdr.TotalLen, p, gather); done { // gso_udp.go
			return err
		}
	} else if p.GSOSize > 0 && (hdr.TotalLen > r.MTU || overGSO(ip[:hdr.TotalLen], hl, p.GSOSize)) {
		taken, err := s.sendGSO(&r, buf, hdr.TotalLen, p.GSOSize) // gso.go
		if taken {
			buf = nil // the link has it now, and gives it back to the pool
		}
		return err
	}
	if p.Proto == wire.ProtoTCP && !noCsum && !p.LocalOnly && !dst.IsMulticast() && hdr.TotalLen <= r.MTU {
		if taken, ok, err := s.takeTCP(&r, buf, hdr.TotalLen); ok { // gso.go
			if taken {
				buf = nil // the link has it now, and gives it back
			}
			return err
		}
	}
	if !noCsum {
		fillTransportChecksum(wire.IPv4(ip), p.Proto)
	}
	if dst.IsMulticast() && p.Loop && r.NIC.isMember(dst) && r.NIC.admits(dst, hdr.Src) {
		s.lo.writeFrame(ip[:hdr.TotalLen])
	}
	if p.LocalOnly {
		return nil
	}
	if hdr.TotalLen > r.MTU {
		return s.fragmentAndSend(&r, buf, hdr.TotalLen)
	}
	return r.NIC.sendIP(r.NextHop, buf)
}

func fillTransportChecksum(ip wire.IPv4, proto uint8) {
	t := ip.Payload()
	switch proto {
	case wire.ProtoTCP:
		if len(t) >= wire.TCPMinHeaderLen {
			wire.TCP(t).FillChecksum(ip.PseudoSum(len(t)))
		}
	case wire.ProtoUDP:
		if len(t) >= wire.UDPHeaderLen {
			wire.UDP(t).FillChecksum(ip.PseudoSum(len(t)))
		}
	case wire.ProtoICMP, wire.ProtoIGMP:
		if len(t) >= 4 {
			t[2], t[3] = 0, 0
			c := wire.Checksum(t)
			t[2], t[3] = byte(c>>8), byte(c)
		}
	}
}

// fragmentAndSend splits the packet in buf[14:14+total] into fragments
// that fit the route MTU (RFC 791): each carries the header (options
// copied only when their copy bit is set) and a multiple of 8 bytes.
func (s *Stack) fragmentAndSend(r *ResolvedRoute, buf []byte, total int) error {
	ip := wire.IPv4(buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total])
	hl := ip.HeaderLen()
	payload := ip[hl:]
	baseOff := ip.FragOffset()
	lastMF := ip.MF()
	// Options with the copy bit go in every fragment; the rest only in the first.
	var copied [40]byte
	nc := copyOptions(ip.Options(), copied[:])
	for off, first := 0, true; off < len(payload); first = false {
		fhl := hl
		if !first {
			fhl = wire.IPv4MinHeaderLen + (nc+3)&^3
		}
		room := (r.MTU - fhl) &^ 7
		if room <= 0 {
			s.stats.IP.FragFails.Add(1)
			return syscall.EMSGSIZE
		}
		n := min(room, len(payload)-off)
		f := getBuf(wire.EthernetHeaderLen + fhl + n)
		fip := wire.IPv4(f[wire.EthernetHeaderLen:])
		if first {
			copy(fip, ip[:hl])
		} else {
			copy(fip, ip[:wire.IPv4MinHeaderLen])
			copy(fip[wire.IPv4MinHeaderLen:], copied[:nc])
			clear(fip[wire.IPv4MinHeaderLen+nc : fhl])
			fip[0] = 0x40 | byte(fhl/4)
		}
		copy(fip[fhl:], payload[off:off+n])
		more := off+n < len(payload) || lastMF
		fip.SetTotalLen(fhl + n)
		fip.SetFragment(baseOff+off, false, more)
		fip.FillChecksum()
		err := r.NIC.sendIP(r.NextHop, f)
		putBuf(f)
		if err != nil {
			s.stats.IP.FragFails.Add(1)
			return err
		}
		s.stats.IP.FragCreates.Add(1)
		off += n
	}
	s.stats.IP.FragOKs.Add(1)
	return nil
}

// copyOptions copies the options whose copied flag (bit 7 of the type)
// is set, as RFC 791 requires for non-first fragments.
func copyOptions(o []byte, out []byte) int {
	n := 0
	for i := 0; i < len(o); {
		t := o[i]
		if t == wire.IPOptEnd {
			break
		}
		if t == wire.IPOptNOP {
			i++
			continue
		}
		if i+1 >= len(o) {
			break
		}
		l := int(o[i+1])
		if l < 2 || i+l > len(o) {
			break
		}
		if t&0x80 != 0 {
			n += copy(out[n:], o[i:i+l])
		}
		i += l
	}
	return n
}

// sendIP sends buf (14 bytes of room, then an IP packet) to next hop nh.
// A packet queued for neighbour resolution counts as sent.
func (n *NIC) sendIP(nh netip.Addr, buf []byte) error {
	if !n.ethernet {
		return n.writeFrame(buf[wire.EthernetHeaderLen:])
	}
	e := wire.Ethernet(buf)
	var dst wire.MAC
	switch {
	case nh == limitedBroadcast || n.isBroadcast(nh):
		dst = wire.BroadcastMAC
	case nh.IsMulticast():
		dst = multicastMAC(nh)
	default:
		mac, ok := n.neigh.lookupFast(nh)
		if !ok {
			e.SetSrc(n.mac)
			e.SetEtherType(wire.EtherTypeIPv4)
			if mac, ok = n.neigh.resolve(nh, buf); !ok {
				return nil
			}
		}
		dst = mac
	}
	wire.PutEthernet(buf, dst, n.mac, wire.EtherTypeIPv4)
	return n.writeFrame(buf)
}

// writeFrame hands one frame to the endpoint. A full link queue is
// ENOBUFS, so TCP can treat it as local congestion instead of loss.
// linkWriteErr counts a frame the link refused and gives the sender's
// errno: ENOBUFS for a full queue (lost, as on a wire), else ENETDOWN.
func (s *Stack) linkWriteErr(err error) error {
	if err == link.ErrQueueFull {
		s.stats.Link.OutQueueFull.Add(1)
		return syscall.ENOBUFS
	}
	s.stats.Link.OutErrors.Add(1)
	return syscall.ENETDOWN
}

func (n *NIC) writeFrame(f []byte) error {
	s := n.stack
	n.tapFrame(f, true)
	one := frameVecs.Get().(*[1][]byte)
	one[0] = f
	_, err := n.ep.WriteFrames(one[:])
	one[0] = nil
	frameVecs.Put(one)
	if err != nil {
		return s.linkWriteErr(err)
	}
	s.stats.Link.OutFrames.Add(1)
	return nil
}

// neighborFailed reports a packet dropped because its next hop never
// answered ARP: the sender sees EHOSTUNREACH, as if an ICMP host
// unreachable had come back (this is what Linux does).
func (s *Stack) neighborFailed(ip []byte) {
	h, err := wire.ParseIPv4(ip)
	if err != nil {
		return
	}
	s.localError(h, wire.ICMPDestUnreach, wire.ICMPHostUnreach, 0)
}
