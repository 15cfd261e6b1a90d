package stack

import (
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Segmentation offload on transmit. TCP hands a super-segment (one IP
// packet with up to 64 KB of payload and a segment size) when the route's
// NIC declared it can carry one (link.Offloader). The NIC then sends it
// whole, with its offload state for links that take it (link.MetaWriter),
// or, in front of a link that cannot (a plain link, or one wrapped in
// capture or impairment middleware), the stack cuts it here into the
// segments a wire carries, each with complete checksums. The AF_PACKET
// taps of the stack see what the NIC is handed, super-segments included,
// as Linux's tcpdump does; a pcap writer wrapping a link declares no
// offloads and so records the cut segments.

// nicOffloads is what a NIC's endpoint declared at AddNIC.
type nicOffloads struct {
	off  link.Offloads
	meta link.MetaWriter // nil unless off.NeedsMeta
}

// initOffloads reads the endpoint's offload capabilities.
func (n *NIC) initOffloads() {
	o, ok := n.ep.(link.Offloader)
	if !ok {
		return
	}
	n.offl.off = o.Offloads()
	if mw, ok := n.ep.(link.MetaWriter); ok && n.offl.off.NeedsMeta {
		n.offl.meta = mw
	} else {
		n.offl.off.NeedsMeta = false
		n.offl.off.PartialCsum = false
	}
	if n.offl.off.GSOMax > wire.IPv4MaxLen {
		n.offl.off.GSOMax = wire.IPv4MaxLen
	}
}

// gsoMax is the largest super-segment (IP bytes) routes through n take;
// 0 on loopback, whose MTU is already 64 KB. A NIC whose link carries
// none still takes them and cuts them in software just before the link
// (Linux's software GSO): TCP's per-segment work is done once per
// super-segment either way.
func (n *NIC) gsoMax() int {
	if n.loopback {
		return 0
	}
	if n.offl.off.GSOMax > n.mtu {
		return n.offl.off.GSOMax
	}
	if n.mtu < wire.IPv4MaxLen {
		return wire.IPv4MaxLen
	}
	return 0
}

// sendGSO sends the TCP super-segment in buf[14:14+total] (transport
// checksum not yet filled) as segments of mss payload bytes.
func (s *Stack) sendGSO(r *ResolvedRoute, buf []byte, total, mss int) error {
	n := r.NIC
	ip := wire.IPv4(buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total])
	hl := ip.HeaderLen()
	thl := wire.TCP(ip[hl:]).DataOffset()
	if hl+thl+mss > r.MTU || thl < wire.TCPMinHeaderLen {
		s.stats.IP.OutTooBig.Add(1)
		return syscall.EMSGSIZE
	}
	// The segments take consecutive IP IDs (as a TSO NIC gives them).
	segs := (total - hl - thl + mss - 1) / mss
	s.ipID.Add(uint32(segs - 1))
	if n.offl.meta != nil && total <= n.offl.off.GSOMax {
		off := 0
		f := buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total]
		ok := true
		if n.ethernet {
			var mac wire.MAC
			if mac, ok = n.neigh.lookupFast(r.NextHop); ok {
				wire.PutEthernet(buf, mac, n.mac, wire.EtherTypeIPv4)
				off = wire.EthernetHeaderLen
				f = buf[:wire.EthernetHeaderLen+total]
			}
		}
		if ok {
			m := link.Meta{GSOType: link.GSOTCPv4, GSOSize: uint16(mss), HdrLen: uint16(off + hl + thl),
				NetOff: uint8(off), CsumStart: uint16(off + hl), CsumOffset: 16}
			if n.offl.off.PartialCsum {
				link.PartialTCPChecksum(ip)
				m.CsumPartial = true
			} else {
				fillTransportChecksum(ip, wire.ProtoTCP)
			}
			return n.writeFrameMeta(f, m)
		}
		// The next hop is not resolved yet: the frames wait in the
		// neighbour queue, which holds plain frames only.
	}
	scratch := getBuf(wire.EthernetHeaderLen + hl + thl + mss)
	defer putBuf(scratch)
	err := link.SegmentTCP(buf[:wire.EthernetHeaderLen+total], wire.EthernetHeaderLen, mss, scratch, func(seg []byte) error {
		s.stats.Link.OutGSOSegs.Add(1)
		return n.sendIP(r.NextHop, seg)
	})
	if err == link.ErrBadOffload {
		s.stats.IP.OutDiscards.Add(1)
		return syscall.EINVAL
	}
	return err
}

// writeFrameMeta is writeFrame for a frame with offload state.
func (n *NIC) writeFrameMeta(f []byte, m link.Meta) error {
	s := n.stack
	n.tapFrame(f, true)
	fv := frameVecs.Get().(*[1][]byte)
	mv := metaVecs.Get().(*[1]link.Meta)
	fv[0], mv[0] = f, m
	_, err := n.offl.meta.WriteFramesMeta(fv[:], mv[:])
	fv[0] = nil
	frameVecs.Put(fv)
	metaVecs.Put(mv)
	if err != nil {
		if err == link.ErrQueueFull {
			s.stats.Link.OutQueueFull.Add(1)
			return syscall.ENOBUFS
		}
		s.stats.Link.OutErrors.Add(1)
		return syscall.ENETDOWN
	}
	s.stats.Link.OutFrames.Add(1)
	s.stats.Link.OutGSOFrames.Add(1)
	return nil
}
