package stack

import (
	"github.com/sockstack/sockstack/wire"
)

// SRv6 endpoint (RFC 8754 4.3, RFC 8986 4.1 "End"), in the order of
// Linux's ipv6_rthdr_rcv / ipv6_srh_rcv: a Segment Routing Header in a
// packet addressed to this host is dropped unless SRv6 is on for the
// stack and the incoming NIC; an HMAC is judged by Seg6RequireHMAC; with
// segments left the next segment becomes the destination (in place: the
// upper-layer checksum covers the final destination and is untouched)
// and the packet is routed again: to one of our addresses it loops here
// with the hop limit decremented, else it is forwarded (forward6, which
// needs Options.Forwarding as ip6_forward needs forwarding). With none
// left, an encapsulated IPv6 or IPv4 packet is taken out and received
// again (Linux's decapsulation for segments left 0); anything else goes
// to the upper layer.

// seg6MaxDecap bounds encapsulations received inside one another (Linux
// queues each through netif_rx instead; here they recurse).
const seg6MaxDecap = 4

// SRH field offsets (RFC 8754 2).
const (
	srhSegLeft   = 3
	srhLastEntry = 4
	srhFlags     = 5
	srhSegments  = 8
	srhFlagHMAC  = 1 << 3 // Linux's SR6_FLAG1_HMAC
	srhTLVHMAC   = 5      // RFC 8754 2.1.2
	srhHMACTLV   = 40     // its length: 2 + 2 reserved + 4 key id + 32 HMAC
)

// SetSeg6Enabled turns SRv6 endpoint processing on or off for packets
// received on n (Linux's net.ipv6.conf.IF.seg6_enabled); it applies
// only while Options.Seg6Enabled is set, and is on by default.
func (n *NIC) SetSeg6Enabled(on bool) { n.seg6Off.Store(!on) }

// seg6Enabled reports whether an SRH that came in on n is processed:
// the smaller of the stack's and the NIC's settings, as Linux.
func (s *Stack) seg6Enabled(n *NIC) bool { return s.opts.Seg6Enabled && !n.seg6Off.Load() }

// seg6Verdict is what seg6Input made of a packet.
type seg6Verdict uint8

const (
	seg6Pass  seg6Verdict = iota // the walk stands: deliver or refuse as it says
	seg6Done                     // consumed: dropped, forwarded or decapsulated
	seg6Again                    // a new destination of ours: walk again, then deliver
)

// seg6Input takes over a packet for this host whose walk (e, xe) met a
// Segment Routing Header. h is written in place. (Nothing is returned
// that points into e: the caller's e then stays off the heap.)
func (s *Stack) seg6Input(n *NIC, rx *rxState, h wire.IPv6, e *wire.IPv6Ext, xe *wire.IPv6ExtError, mcast bool, depth int) seg6Verdict {
	st := &s.stats.IP6
	checked := false
	verdict := seg6Pass
	for {
		off := 0
		switch {
		case xe != nil && xe.Route != 0 && h[xe.Route+2] == wire.IPv6RouteSRH:
			off = xe.Route
		case e.SRH != 0:
			off = e.SRH
		default:
			return verdict // another routing type: refused or passed as before
		}
		if !checked {
			checked = true
			if mcast {
				// A routing header to a group (ipv6_rthdr_rcv).
				st.InAddrErrors.Add(1)
				return seg6Done
			}
			if !s.seg6Enabled(n) {
				st.Seg6Disabled.Add(1)
				return seg6Done
			}
			if !s.seg6HMACOK(h[off:]) {
				st.Seg6HMACDrops.Add(1)
				return seg6Done
			}
		}
		sl := int(h[off+srhSegLeft])
		if sl == 0 {
			if xe == nil && e.NHOff == off && (e.Proto == wire.ProtoIPv6Encap || e.Proto == wire.ProtoIPv4Encap) {
				s.seg6Decap(n, rx, h[e.Offset:], e.Proto, depth)
				return seg6Done
			}
			return verdict
		}
		if sl >= int(h[off+1])>>1 {
			// Segments left past the list (the only check Linux makes
			// here): the pointer names the field.
			st.InHdrErrors.Add(1)
			st.Seg6BadSRH.Add(1)
			s.sendICMPv6Error(h, wire.ICMPv6ParamProblem, wire.ICMPv6ErroneousField, uint32(off+srhSegLeft))
			return seg6Done
		}
		sl--
		h[off+srhSegLeft] = uint8(sl)
		seg := off + srhSegments + 16*sl
		copy(h[24:40], h[seg:seg+16])
		st.Seg6End.Add(1)
		dst := h.Dst()
		switch {
		case dst.IsMulticast(), dst.IsUnspecified(), dst == ipv6Loopback, dst.Is4In6():
			st.InAddrErrors.Add(1)
			return seg6Done
		case n.hasAddr(dst), s.IsLocal(dst) && !dst.IsLinkLocalUnicast():
		default:
			if !s.opts.Forwarding {
				st.Seg6NoForward.Add(1)
				st.InAddrErrors.Add(1)
				return seg6Done
			}
			s.forward6(n, h)
			return seg6Done
		}
		// Ours again: as through loopback, one hop less.
		if h.HopLimit() <= 1 {
			st.InHdrErrors.Add(1)
			st.InHopLimitExceeded.Add(1)
			s.sendICMPv6Error(h, wire.ICMPv6TimeExceeded, wire.ICMPv6HopLimitExceeded, 0)
			return seg6Done
		}
		h.SetHopLimit(h.HopLimit() - 1)
		st.Seg6Local.Add(1)
		xe = wire.WalkIPv6Ext(h, e)
		verdict = seg6Again
	}
}

// seg6HMACOK is Linux's seg6_hmac_validate_skb without keys: an HMAC
// TLV is found as Linux finds it (the H flag, a TLV of type 5 and length
// 38 filling the header's last 40 bytes) and, when it is to be checked,
// fails for want of a key.
func (s *Stack) seg6HMACOK(srh []byte) bool {
	req := s.opts.Seg6RequireHMAC
	if req < 0 {
		return true
	}
	hdrLen := (int(srh[1]) + 1) * 8
	has := int(srh[1]) >= (int(srh[srhLastEntry])+1)*2+5 && srh[srhFlags]&srhFlagHMAC != 0 &&
		srh[hdrLen-srhHMACTLV] == srhTLVHMAC && srh[hdrLen-srhHMACTLV+1] == srhHMACTLV-2
	return !has && req == 0
}

// seg6Decap receives the packet inside an SRH with no segments left
// (the SRH's next header IPv6 or IPv4) as if it came in on n.
func (s *Stack) seg6Decap(n *NIC, rx *rxState, inner []byte, proto uint8, depth int) {
	st := &s.stats.IP6
	if depth >= seg6MaxDecap {
		st.Seg6DecapLimit.Add(1)
		st.InDiscards.Add(1)
		return
	}
	st.Seg6Decap.Add(1)
	st.InDelivers.Add(1)
	if proto == wire.ProtoIPv6Encap {
		s.input6(n, rx, inner, false, depth+1)
		return
	}
	s.receiveIPv4(n, rx, inner, false)
}
