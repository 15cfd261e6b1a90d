package stack

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// UDP segmentation offload (Linux's UDP_SEGMENT, udp_send_skb): one send
// of up to 64 KB becomes datagrams of GSOSize payload bytes each (the
// last may be shorter). The stack builds one super-datagram and hands it
// whole, as virtio-net GSO_UDP_L4, to a link that carries it (a TAP with
// USO, the in-memory links); in front of any other link it cuts it here,
// each datagram with its own length, IP ID and complete checksum. The
// receiver sees the sender's segment boundaries either way.

// UDPMaxSegments is how many datagrams one UDP_SEGMENT send may make:
// Linux's UDP_MAX_SEGMENTS, 128 in the kernels this project runs against
// (6.18 here answers a 129-segment send EINVAL, 128 goes; kernels before
// 6.10 had 64).
const UDPMaxSegments = 128

// SetUDPSegment is setsockopt(UDP_SEGMENT): the payload size each send
// is cut at (0: off). EINVAL outside 0–65535, as Linux.
func (e *DgramEndpoint) SetUDPSegment(size int) error {
	if size < 0 || size > 0xffff {
		return syscall.EINVAL
	}
	e.mu.Lock()
	e.opts.gsoSize = size
	e.mu.Unlock()
	return nil
}

// UDPSegment is getsockopt(UDP_SEGMENT).
func (e *DgramEndpoint) UDPSegment() int { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.gsoSize }

// SetUDPGRO is setsockopt(UDP_GRO): a UDP super-datagram that arrives
// whole (a GSO_UDP_L4 frame from a TAP with USO or an in-memory peer) is
// queued whole, one read with its segment size (takeUDPGSO); datagrams
// that arrive one by one are not coalesced (Linux's GRO may do that too;
// a UDP_GRO reader handles both).
func (e *DgramEndpoint) SetUDPGRO(on bool) { e.mu.Lock(); e.opts.gro = on; e.mu.Unlock() }

// UDPGRO is getsockopt(UDP_GRO).
func (e *DgramEndpoint) UDPGRO() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.gro }

// udpSegments is how many datagrams a send of n payload bytes with
// segment size gso puts on the wire.
func udpSegments(n, gso int) int {
	if gso <= 0 || n <= gso {
		return 1
	}
	return (n + gso - 1) / gso
}

// sendUDPGSO checks and sends the UDP super-datagram in
// buf[14:14+total] (IPv4, or IPv6 with UDP right after the fixed header;
// checksum not yet filled) cut at p.GSOSize. As Linux's udp_send_skb
// (6.18, checked against the kernel by TestInteropUSOLimitsMatchKernel):
// EMSGSIZE when the first datagram (a segment, or the whole payload if
// shorter) with its headers exceeds the route MTU, EINVAL when the send
// would make more than UDPMaxSegments datagrams, whether or not it needs
// cutting. done false: the payload fits one datagram, the caller sends
// it as any other.
//
// With gather, buf holds the headers only and the payload is still in
// p.Parts[1:]: a super-datagram the link can take goes out gathered
// (txvec.go); on every other way the payload is copied in first.
func (s *Stack) sendUDPGSO(r *ResolvedRoute, buf []byte, total int, p *OutPacket, gather bool) (done bool, err error) {
	eth := wire.EthernetHeaderLen
	pkt := buf[eth : eth+total]
	fill := func() {
		if gather {
			off := total - len(p.Parts[1]) - len(p.Parts[2])
			copy(pkt[off+copy(pkt[off:], p.Parts[1]):], p.Parts[2])
			gather = false
		}
	}
	defer fill() // whatever way it went, buf is whole for the caller
	v6 := pkt[0]>>4 == 6
	hl := wire.IPv6HeaderLen
	if !v6 {
		hl = wire.IPv4(pkt).HeaderLen()
	}
	gso := p.GSOSize
	payload := total - hl - wire.UDPHeaderLen
	if hl+wire.UDPHeaderLen+min(payload, gso) > r.MTU {
		s.stats.UDP.OutGSOErrors.Add(1)
		return true, syscall.EMSGSIZE
	}
	if payload > gso*UDPMaxSegments {
		s.stats.UDP.OutGSOErrors.Add(1)
		return true, syscall.EINVAL
	}
	if payload <= gso {
		return false, nil
	}
	segs := udpSegments(payload, gso)
	if !v6 {
		// Each datagram takes its own IP ID, as Linux's USO gives them.
		s.ipID.Add(uint32(segs - 1))
	}
	n := r.NIC
	dst := p.Dst
	mcast := dst.IsMulticast() || dst == limitedBroadcast
	if !mcast && n.offl.meta != nil && n.offl.off.UDPGSO && total <= n.offl.off.GSOMax {
		f, off, ok := n.gsoFrame(buf, pkt, r.NextHop, v6, total)
		if ok {
			m := link.Meta{GSOType: link.GSOUDPL4, GSOSize: uint16(gso), HdrLen: uint16(off + hl + wire.UDPHeaderLen),
				NetOff: uint8(off), CsumStart: uint16(off + hl), CsumOffset: 6}
			u := pkt[hl:]
			if n.offl.off.PartialCsum {
				// The pseudo-header sum over the whole super-datagram's
				// UDP length (what the kernel's udp4_hwcsum leaves): the
				// cutter adjusts it per datagram.
				var ps uint64
				if v6 {
					ip := wire.IPv6(pkt)
					ps = wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), wire.ProtoUDP, len(u))
				} else {
					ps = wire.IPv4(pkt).PseudoSum(len(u))
				}
				binary.BigEndian.PutUint16(u[6:8], wire.Fold(ps))
				m.CsumPartial = true
			}
			if gather && m.CsumPartial && s.hooks.n.Load() == 0 {
				if wrote, err := n.offl.vec.WriteFrameVec(f[:off+hl+wire.UDPHeaderLen], [2][]byte{p.Parts[1], p.Parts[2]}, m); wrote {
					gather = false                    // sent: nothing to copy
					return true, s.vecSent(err, true) // txvec.go
				}
			}
			fill()
			if !m.CsumPartial && v6 {
				fillTransportChecksum6(wire.IPv6(pkt), wire.ProtoUDP, wire.IPv6HeaderLen)
			} else if !m.CsumPartial {
				fillTransportChecksum(wire.IPv4(pkt), wire.ProtoUDP)
			}
			return true, n.writeFrameMeta(f, m)
		}
		// Next hop not resolved: plain datagrams through the neighbour
		// queue, as TCP's super-segments (gso.go).
	}
	fill()
	scratch := getBuf(eth + hl + wire.UDPHeaderLen + gso)
	defer putBuf(scratch)
	loop := mcast && p.Loop && n.isMember(dst)
	err = link.SegmentL4(buf[:eth+total], eth, eth+hl, gso, true, scratch, func(seg []byte) error {
		if loop {
			s.lo.writeFrame(seg[eth:])
		}
		if p.LocalOnly {
			return nil
		}
		s.stats.Link.OutGSOSegs.Add(1)
		if v6 {
			return n.sendIP6(r.NextHop, seg)
		}
		return n.sendIP(r.NextHop, seg)
	})
	if err == link.ErrBadOffload {
		s.stats.UDP.OutGSOErrors.Add(1)
		return true, syscall.EINVAL
	}
	return true, err
}

// takeUDPGSO delivers a UDP super-datagram for this host (a GSO_UDP_L4
// frame from the kernel or an in-memory peer) whole, as one read with
// its segment size, when the socket it is for has UDP_GRO on and the
// checksum is vouched for (partial, or valid by the sender's word), as
// Linux's udp_unexpected_gso lets it through. Anything else (no such
// socket, UDP_GRO off, a raw UDP socket listening, a group or odd
// source, fragments, lengths that do not add up) gives false: the
// caller cuts it in software and the datagrams go the normal way.
func (n *NIC) takeUDPGSO(f []byte, m link.Meta) bool {
	if m.GSOType != link.GSOUDPL4 || m.GSOSize == 0 || !(m.CsumPartial || m.CsumValid) {
		return false
	}
	s := n.stack
	off := int(m.NetOff)
	if len(f) <= off {
		return false
	}
	var src, dst netip.Addr
	var l4 []byte
	var ttl, tos uint8
	var flow uint32 // IPV6_FLOWINFO of the read: the super-datagram's header's
	v6 := f[off]>>4 == 6
	if v6 {
		h, err := wire.ParseIPv6(f[off:])
		if err != nil || h.NextHeader() != wire.ProtoUDP || int(m.CsumStart) != off+wire.IPv6HeaderLen || s.raw.has6(wire.ProtoUDP) {
			return false
		}
		src, dst, ttl, tos, l4 = h.Src(), h.Dst(), h.HopLimit(), h.TrafficClass(), h[wire.IPv6HeaderLen:]
		flow = h.FlowLabel()
	} else {
		h, err := wire.ParseIPv4(f[off:])
		if err != nil || h.Protocol() != wire.ProtoUDP || h.IsFragment() || int(m.CsumStart) != off+h.HeaderLen() || s.raw.has(wire.ProtoUDP) {
			return false
		}
		src, dst, ttl, tos, l4 = h.Src(), h.Dst(), h.TTL(), h.TOS(), h.Payload()
	}
	if len(l4) <= wire.UDPHeaderLen || int(wire.UDP(l4).Length()) != len(l4) ||
		!src.IsGlobalUnicast() && !(n.loopback && src.IsLoopback()) && !src.IsLinkLocalUnicast() ||
		src == limitedBroadcast || dst.IsMulticast() || !s.IsLocal(dst) || !n.loopback && s.IsLocal(src) {
		// Martians and groups take the normal path, which drops and
		// counts or fans them out.
		return false
	}
	u := wire.UDP(l4)
	e := s.udp.lookup(dst, u.DstPort(), src, u.SrcPort(), int32(n.id))
	if e == nil || !e.UDPGRO() {
		return false
	}
	if v6 {
		src = scoped(src, n)
	}
	payload := l4[wire.UDPHeaderLen:]
	segs := uint64(udpSegments(len(payload), int(m.GSOSize)))
	// IP counts every datagram of it, as Linux's ip_rcv counts gso_segs.
	if v6 {
		s.stats.IP6.InReceives.Add(segs)
		s.stats.IP6.InDelivers.Add(segs)
	} else {
		s.stats.IP.InReceives.Add(segs)
		s.stats.IP.InDelivers.Add(segs)
	}
	st := &s.stats.UDP
	s.stats.Link.InGSOFrames.Add(1)
	if !e.enqueueRecv(payload, netip.AddrPortFrom(src, u.SrcPort()), dst, 0, ttl, tos, m.GSOSize, flow, nil, nil, int32(n.id)) {
		st.RcvbufErrors.Add(1)
		st.InErrors.Add(1)
		return true
	}
	st.InDatagrams.Add(segs)
	return true
}
