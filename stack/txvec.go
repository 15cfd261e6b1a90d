package stack

import (
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Gathered transmission. A TCP segment's payload is already in the
// connection's send ring; over a link whose write system call gathers
// (link.VecWriter: a TAP or TUN with virtio-net headers, a packet socket
// with PACKET_VNET_HDR) only the headers are built, and the kernel
// copies the payload from the ring itself, one copy of every byte sent
// fewer (it was 10% of the sending process's CPU over AF_PACKET). UDP
// super-datagrams (UDP_SEGMENT) are gathered the same way from the
// caller's buffer (gso_udp.go). The
// checksum is left partial, as on the copying path; a frame a packet
// tap must see, a small payload (cheaper to copy than to describe), a
// next hop not yet resolved, or one the segmentation path must cut or
// refuse goes the copying way.

// vecMinPayload is the least payload worth gathering instead of copying.
const vecMinPayload = 1024

// sendTCPVec sends the TCP packet whose IP and TCP headers are in
// buf[14:14+hdrEnd] (hl of them IP) and whose payload is p.Parts, total
// bytes long as an IP packet, when the route's link gathers. done false:
// nothing was sent, the caller copies the payload and goes on.
func (s *Stack) sendTCPVec(r *ResolvedRoute, buf []byte, p *OutPacket, hl, hdrEnd, total int, v6 bool) (done bool, err error) {
	n := r.NIC
	vw := n.offl.vec
	// A source-routed segment's checksum covers its final destination,
	// not the header's: it is summed in software on the copying path.
	if vw == nil || p.Proto != wire.ProtoTCP || p.NoCsum || p.LocalOnly || len(p.Parts[0]) != 0 || p.PseudoDst.IsValid() ||
		total-hdrEnd < vecMinPayload || s.hooks.n.Load() != 0 || p.Dst.IsMulticast() {
		return false, nil
	}
	m := link.Meta{CsumPartial: true, CsumOffset: 16}
	segs := 1
	if total > r.MTU || overGSO(buf[wire.EthernetHeaderLen:wire.EthernetHeaderLen+total], hl, p.GSOSize) {
		mss := p.GSOSize
		if mss == 0 || total > n.offl.off.GSOMax || hdrEnd+mss > r.MTU {
			return false, nil // fragmented, refused or cut in software: sendGSO decides
		}
		m.GSOType, m.GSOSize = link.GSOTCPv4, uint16(mss)
		if v6 {
			m.GSOType = link.GSOTCPv6
		}
		segs = (total - hdrEnd + mss - 1) / mss
	}
	pkt := buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total]
	f, off, ok := n.gsoFrame(buf, pkt, r.NextHop, v6, total)
	if !ok {
		return false, nil
	}
	if v6 {
		link.PartialTCPChecksum6(wire.IPv6(pkt))
	} else {
		link.PartialTCPChecksum(wire.IPv4(pkt))
	}
	m.NetOff, m.CsumStart, m.HdrLen = uint8(off), uint16(off+hl), uint16(off+hdrEnd)
	wrote, err := vw.WriteFrameVec(f[:off+hdrEnd], [2][]byte{p.Parts[1], p.Parts[2]}, m)
	if !wrote {
		return false, nil
	}
	if !v6 && segs > 1 {
		// The segments take consecutive IP IDs (as a TSO NIC gives them).
		s.ipID.Add(uint32(segs - 1))
	}
	return true, s.vecSent(err, segs > 1)
}

// vecSent counts a gathered write that the link took, and gives the
// error the sender sees.
func (s *Stack) vecSent(err error, super bool) error {
	if err != nil {
		return s.linkWriteErr(err)
	}
	s.stats.Link.OutFrames.Add(1)
	s.stats.Link.OutVecFrames.Add(1)
	if super {
		s.stats.Link.OutGSOFrames.Add(1)
	}
	return nil
}

// udpGather reports whether a UDP packet may leave its payload out of
// buf for sendUDPGSO to gather: a super-datagram (GSOSize, longer than
// one segment) to a unicast address over a link that gathers, its UDP
// header in Parts[0].
func (s *Stack) udpGather(r *ResolvedRoute, p *OutPacket) bool {
	return p.Proto == wire.ProtoUDP && p.GSOSize > 0 && r.NIC.offl.vec != nil && r.NIC.offl.off.UDPGSO &&
		len(p.Parts[0]) == wire.UDPHeaderLen && len(p.Parts[1])+len(p.Parts[2]) > p.GSOSize &&
		!p.LocalOnly && !p.Dst.IsMulticast() && p.Dst != limitedBroadcast && s.hooks.n.Load() == 0
}
