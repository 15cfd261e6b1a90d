package stack

import (
	"syscall"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Extension headers on TCP segments and UDP_SEGMENT super-datagrams.
// Every packet cut from a super-packet carries the whole header chain,
// as Linux's ipv6_gso_segment repeats the headers up to the transport
// one. The stack cuts these itself, in front of any link: the links'
// segmentation offload (link.SegmentL4, virtio's GSO types) expects the
// transport header right after the fixed one. TCP still does its
// per-segment work once per super-segment.

// Len is the room the headers take off a TCP segment's payload (tcp's
// IPv6Ext): Linux's icsk_ext_hdr_len, opt_nflen + opt_flen, which
// counts a destination options header for a routing header although
// ip6_xmit sends it only in front of one.
func (x *SendExt6) Len() int {
	if x == nil {
		return 0
	}
	return len(x.Hop) + len(x.RthdrDst) + len(x.Rt) + len(x.Dst)
}

// tcpExt6 is the headers a TCP segment carries (nil: none).
func tcpExt6(seg *tcp.Segment) *SendExt6 {
	x, _ := seg.Ext6.(*SendExt6)
	return x
}

// sendExt6GSO sends the TCP or UDP super-packet in buf (14 bytes of room,
// the IPv6 header, the extension headers, the transport header at tOff,
// the payload; checksum not filled) as packets of p.GSOSize payload
// bytes. UDP's checks are sendUDPGSO's with the headers counted as the
// network header (Linux's udp_v6_send_skb takes skb_network_header_len):
// EMSGSIZE when the first datagram is over the MTU, EINVAL past
// UDPMaxSegments. A TCP super-segment's pieces take their sequence
// numbers, FIN and PSH on the last only, CWR on the first only (as
// tcp_gso_segment).
func (s *Stack) sendExt6GSO(r *ResolvedRoute, p *OutPacket, buf []byte, tOff int) error {
	ip := wire.IPv6(buf[wire.EthernetHeaderLen:])
	src, dst := ip.Src(), ip.Dst()
	unfrag := p.Ext6.unfrag()
	udp := p.Proto == wire.ProtoUDP
	thl := wire.UDPHeaderLen
	if !udp {
		if len(ip) < tOff+wire.TCPMinHeaderLen {
			return syscall.EINVAL
		}
		thl = wire.TCP(ip[tOff:]).DataOffset()
	}
	hdr := tOff + thl
	gso := p.GSOSize
	if hdr > len(ip) || gso <= 0 {
		return syscall.EINVAL
	}
	payload := len(ip) - hdr
	if hdr+min(payload, gso) > r.MTU {
		if udp {
			s.stats.UDP.OutGSOErrors.Add(1)
		} else {
			s.stats.IP6.OutTooBig.Add(1)
		}
		return syscall.EMSGSIZE
	}
	if udp && payload > gso*UDPMaxSegments {
		s.stats.UDP.OutGSOErrors.Add(1)
		return syscall.EINVAL
	}
	if payload <= gso {
		return s.finish6(r, p, buf, src, dst, tOff, unfrag)
	}
	var seq uint32
	var flags uint8
	if !udp {
		seq, flags = wire.TCP(ip[tOff:]).Seq(), wire.TCP(ip[tOff:]).Flags()
	}
	sent := 0
	for off := 0; off < payload; {
		n := min(gso, payload-off)
		f := getBuf(wire.EthernetHeaderLen + hdr + n)
		fip := wire.IPv6(f[wire.EthernetHeaderLen:])
		copy(fip, ip[:hdr])
		copy(fip[hdr:], ip[hdr+off:hdr+off+n])
		fip.SetPayloadLen(hdr - wire.IPv6HeaderLen + n)
		if udp {
			wire.UDP(fip[tOff:]).SetLength(thl + n)
		} else {
			t := wire.TCP(fip[tOff:])
			t.SetSeq(seq + uint32(off))
			fl := flags
			if off+n < payload {
				fl &^= wire.TCPFlagFIN | wire.TCPFlagPSH
			}
			if off > 0 {
				fl &^= wire.TCPFlagCWR
			}
			t.SetFlags(fl)
		}
		s.stats.Link.OutGSOSegs.Add(1)
		err := s.finish6(r, p, f, src, dst, tOff, unfrag)
		putBuf(f)
		if err == syscall.ENOBUFS && sent > 0 && !udp {
			// What left did leave (see sendGSO): the lost tail is
			// TCP's loss recovery's, not new data sent again.
			s.stats.Link.OutGSOTailDrops.Add(1)
			return nil
		}
		if err != nil {
			return err
		}
		sent++
		off += n
	}
	return nil
}
