package link

import (
	"encoding/binary"

	"github.com/sockstack/sockstack/wire"
)

// Software segmentation and checksum completion: what a NIC does in
// hardware, for links and receivers that cannot take a frame's offload
// state.

type errSeg string

func (e errSeg) Error() string { return string(e) }

// ErrBadOffload reports a frame whose offload state does not match its
// bytes (truncated headers, unknown type); it is dropped.
const ErrBadOffload = errSeg("link: malformed offload frame")

// SegmentTCP cuts the TCP super-segment in frame (its IPv4 header at
// ipOff) into segments of at most mss payload bytes and calls emit with
// each, built in scratch (which must hold ipOff+60+60+mss bytes). Every
// segment gets its own total length, IP ID (incremented, as Linux's TSO
// does), IP checksum, sequence number and a complete TCP checksum; CWR
// stays on the first segment only, FIN and PSH on the last only. emit
// must be done with the bytes when it returns. A frame whose payload
// fits one segment is emitted once, its checksums finished.
func SegmentTCP(frame []byte, ipOff, mss int, scratch []byte, emit func([]byte) error) error {
	if len(frame) < ipOff+wire.IPv4MinHeaderLen {
		return ErrBadOffload
	}
	ip := wire.IPv4(frame[ipOff:])
	ihl := ip.HeaderLen()
	total := ip.TotalLen()
	if ip.Version() != 4 || ihl < wire.IPv4MinHeaderLen || total > len(ip) || total < ihl+wire.TCPMinHeaderLen || ip.Protocol() != wire.ProtoTCP {
		return ErrBadOffload
	}
	ip = ip[:total]
	th := wire.TCP(ip[ihl:])
	thl := th.DataOffset()
	if thl < wire.TCPMinHeaderLen || ihl+thl > total {
		return ErrBadOffload
	}
	hdr := ipOff + ihl + thl
	payload := ip[ihl+thl:]
	if mss <= 0 {
		mss = len(payload)
	}
	if mss == 0 {
		mss = 1
	}
	if len(scratch) < hdr+min(mss, len(payload)) {
		return ErrBadOffload
	}
	seq := th.Seq()
	flags := th.Flags()
	id := ip.ID()
	src, dst := ip.Src4(), ip.Dst4()
	for off, i := 0, 0; off < len(payload) || (off == 0 && len(payload) == 0); i++ {
		n := min(mss, len(payload)-off)
		copy(scratch, frame[:hdr])
		copy(scratch[hdr:], payload[off:off+n])
		sip := wire.IPv4(scratch[ipOff:])
		sip.SetTotalLen(ihl + thl + n)
		sip.SetID(id + uint16(i))
		sip.FillChecksum()
		st := wire.TCP(scratch[ipOff+ihl : hdr+n])
		st.SetSeq(seq + uint32(off))
		f := flags
		if i > 0 {
			f &^= wire.TCPFlagCWR
		}
		if off+n < len(payload) {
			f &^= wire.TCPFlagFIN | wire.TCPFlagPSH
		}
		st.SetFlags(f)
		st.FillChecksum(wire.PseudoHeaderSum(src, dst, wire.ProtoTCP, thl+n))
		if err := emit(scratch[:hdr+n]); err != nil {
			return err
		}
		off += n
		if n == 0 {
			break
		}
	}
	return nil
}

// FinishChecksum completes a partial transport checksum in place: the
// sum of frame[start:] folded into the field at start+off, which holds
// the pseudo-header sum (the virtio-net NEEDS_CSUM convention). A UDP
// checksum that comes out zero is sent as 0xffff (RFC 768).
func FinishChecksum(frame []byte, start, off int, udp bool) error {
	if start < 0 || off < 0 || start+off+2 > len(frame) {
		return ErrBadOffload
	}
	// The field holds the folded pseudo-header sum; summing the whole
	// range with it in place gives the full sum.
	c := ^wire.Fold(wire.Sum(frame[start:], 0))
	if c == 0 && udp {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[start+off:], c)
	return nil
}

// PartialTCPChecksum leaves the TCP checksum of the IPv4 packet ip
// partial: the folded pseudo-header sum, not complemented, for a link
// or peer that finishes it.
func PartialTCPChecksum(ip wire.IPv4) {
	t := wire.TCP(ip[ip.HeaderLen():ip.TotalLen()])
	binary.BigEndian.PutUint16(t[16:18], wire.Fold(ip.PseudoSum(len(t))))
}

// PartialTCPChecksum6 is PartialTCPChecksum for an IPv6 packet whose TCP
// header follows the fixed header: the IPv6 pseudo-header sum (RFC 8200
// 8.1) with the upper-layer length from the payload length.
func PartialTCPChecksum6(ip wire.IPv6) {
	t := ip[wire.IPv6HeaderLen : wire.IPv6HeaderLen+ip.PayloadLen()]
	binary.BigEndian.PutUint16(t[16:18], wire.Fold(wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), wire.ProtoTCP, len(t))))
}

// SegmentL4 cuts a TCP (IPv4 or IPv6) or UDP (GSO_UDP_L4) super-segment
// as a receiver that cannot take it whole must: the IP header starts at
// netOff, the transport header at l4Off (an IPv6 packet has no extension
// headers before it), payload cut at mss. Each piece gets its own IP
// length (and IPv4 ID and checksum), TCP sequence number and flags or UDP
// length, and a complete transport checksum.
func SegmentL4(frame []byte, netOff, l4Off, mss int, udp bool, scratch []byte, emit func([]byte) error) error {
	if netOff < 0 || l4Off < netOff+wire.IPv4MinHeaderLen || len(frame) < l4Off+wire.UDPHeaderLen || mss <= 0 {
		return ErrBadOffload
	}
	v6 := frame[netOff]>>4 == 6
	var end int
	if v6 {
		if l4Off != netOff+wire.IPv6HeaderLen || len(frame) < netOff+wire.IPv6HeaderLen {
			return ErrBadOffload
		}
		end = netOff + wire.IPv6HeaderLen + int(binary.BigEndian.Uint16(frame[netOff+4:]))
	} else {
		if frame[netOff]>>4 != 4 || l4Off != netOff+wire.IPv4(frame[netOff:]).HeaderLen() {
			return ErrBadOffload
		}
		end = netOff + wire.IPv4(frame[netOff:]).TotalLen()
	}
	if end > len(frame) {
		return ErrBadOffload
	}
	frame = frame[:end]
	proto := uint8(wire.ProtoTCP)
	thl := wire.UDPHeaderLen
	if udp {
		proto = wire.ProtoUDP
	} else {
		if len(frame) < l4Off+wire.TCPMinHeaderLen {
			return ErrBadOffload
		}
		thl = wire.TCP(frame[l4Off:]).DataOffset()
		if thl < wire.TCPMinHeaderLen || l4Off+thl > len(frame) {
			return ErrBadOffload
		}
	}
	if v6 && frame[netOff+6] != proto {
		return ErrBadOffload
	}
	if !v6 && wire.IPv4(frame[netOff:]).Protocol() != proto {
		return ErrBadOffload
	}
	hdr := l4Off + thl
	payload := frame[hdr:]
	if len(scratch) < hdr+min(mss, len(payload)) {
		return ErrBadOffload
	}
	var seq uint32
	var flags uint8
	if !udp {
		seq = wire.TCP(frame[l4Off:]).Seq()
		flags = wire.TCP(frame[l4Off:]).Flags()
	}
	for off, i := 0, 0; off < len(payload) || (i == 0 && len(payload) == 0); i++ {
		n := min(mss, len(payload)-off)
		copy(scratch, frame[:hdr])
		copy(scratch[hdr:], payload[off:off+n])
		l4len := thl + n
		var pseudo uint64
		if v6 {
			ip := wire.IPv6(scratch[netOff:])
			ip.SetPayloadLen(l4len)
			pseudo = wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), proto, l4len)
		} else {
			ip := wire.IPv4(scratch[netOff:])
			ip.SetTotalLen(l4Off - netOff + l4len)
			ip.SetID(ip.ID() + uint16(i))
			ip.FillChecksum()
			pseudo = wire.PseudoHeaderSum(ip.Src4(), ip.Dst4(), proto, l4len)
		}
		seg := scratch[l4Off : hdr+n]
		if udp {
			u := wire.UDP(seg)
			binary.BigEndian.PutUint16(seg[4:6], uint16(l4len))
			u.FillChecksum(pseudo)
		} else {
			t := wire.TCP(seg)
			t.SetSeq(seq + uint32(off))
			f := flags
			if i > 0 {
				f &^= wire.TCPFlagCWR
			}
			if off+n < len(payload) {
				f &^= wire.TCPFlagFIN | wire.TCPFlagPSH
			}
			t.SetFlags(f)
			t.FillChecksum(pseudo)
		}
		if err := emit(scratch[:hdr+n]); err != nil {
			return err
		}
		off += n
		if n == 0 {
			break
		}
	}
	return nil
}
