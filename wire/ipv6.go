package wire

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 next-header values (RFC 8200, IANA).
const (
	ProtoHopByHop   uint8 = 0
	ProtoIPv6Route  uint8 = 43
	ProtoIPv6Frag   uint8 = 44
	ProtoESP        uint8 = 50
	ProtoAH         uint8 = 51
	ProtoICMPv6     uint8 = 58
	ProtoIPv6NoNext uint8 = 59
	ProtoIPv6Opts   uint8 = 60 // destination options
	ProtoIPv4Encap  uint8 = 4  // IPv4 inside (an SRv6 encapsulation)
	ProtoIPv6Encap  uint8 = 41 // IPv6 inside (an SRv6 encapsulation)
)

// IPv6RouteSRH is the routing type of a Segment Routing Header (RFC 8754).
const IPv6RouteSRH uint8 = 4

// IPv6 constants.
const (
	IPv6HeaderLen     = 40
	IPv6MinMTU        = 1280 // every link carries this much (RFC 8200 section 5)
	IPv6MaxPayload    = 65535
	IPv6FragHeaderLen = 8
)

// IPv6 is a view of an IPv6 header followed by its payload.
type IPv6 []byte

func (h IPv6) Version() uint8      { return h[0] >> 4 }
func (h IPv6) TrafficClass() uint8 { return h[0]<<4 | h[1]>>4 }
func (h IPv6) FlowLabel() uint32   { return binary.BigEndian.Uint32(h[0:4]) & 0xfffff }
func (h IPv6) PayloadLen() int     { return int(binary.BigEndian.Uint16(h[4:6])) }
func (h IPv6) NextHeader() uint8   { return h[6] }
func (h IPv6) HopLimit() uint8     { return h[7] }
func (h IPv6) Src() netip.Addr     { return netip.AddrFrom16([16]byte(h[8:24])) }
func (h IPv6) Dst() netip.Addr     { return netip.AddrFrom16([16]byte(h[24:40])) }
func (h IPv6) Src16() [16]byte     { return [16]byte(h[8:24]) }
func (h IPv6) Dst16() [16]byte     { return [16]byte(h[24:40]) }
func (h IPv6) Payload() []byte     { return h[IPv6HeaderLen : IPv6HeaderLen+h.PayloadLen()] }
func (h IPv6) SetPayloadLen(n int) { binary.BigEndian.PutUint16(h[4:6], uint16(n)) }
func (h IPv6) SetNextHeader(p uint8) {
	h[6] = p
}
func (h IPv6) SetHopLimit(v uint8) { h[7] = v }
func (h IPv6) SetSrc(a netip.Addr) { s := a.As16(); copy(h[8:24], s[:]) }
func (h IPv6) SetDst(a netip.Addr) { d := a.As16(); copy(h[24:40], d[:]) }
func (h IPv6) SetTrafficClass(tc uint8) {
	h[0] = 0x60 | tc>>4
	h[1] = tc<<4 | h[1]&0x0f
}

// PseudoSum is the pseudo-header partial sum (RFC 8200 section 8.1) for an
// upper-layer packet of n bytes and protocol proto.
func (h IPv6) PseudoSum(proto uint8, n int) uint64 {
	return PseudoHeaderSum6(h.Src16(), h.Dst16(), proto, n)
}

// PseudoHeaderSum6 is the partial sum of the IPv6 pseudo-header: source,
// destination, 32-bit upper-layer length and next header. It adds up to
// the same fold as the IPv4 form, so the transports use either.
func PseudoHeaderSum6(src, dst [16]byte, proto uint8, length int) uint64 {
	var s uint64
	for i := 0; i < 16; i += 4 {
		s += uint64(binary.BigEndian.Uint32(src[i:])) + uint64(binary.BigEndian.Uint32(dst[i:]))
	}
	return s + uint64(length) + uint64(proto)
}

// PseudoSumAddr is the pseudo-header sum for a pair of addresses of
// either family (both of the same one).
func PseudoSumAddr(src, dst netip.Addr, proto uint8, length int) uint64 {
	if src.Is4() {
		return PseudoHeaderSum(src.As4(), dst.As4(), proto, length)
	}
	return PseudoHeaderSum6(src.As16(), dst.As16(), proto, length)
}

// ParseIPv6 checks the fixed header (version, payload length against the
// buffer) and returns the view trimmed to it (link padding removed). A
// payload length of zero is a jumbogram only with a hop-by-hop Jumbo
// option, which no link here carries: it is taken as an empty payload,
// and the extension-header walk rejects the option.
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, errIP6Truncated
	}
	h := IPv6(b)
	if h.Version() != 6 {
		return nil, errIP6Version
	}
	if IPv6HeaderLen+h.PayloadLen() > len(b) {
		return nil, errIP6Length
	}
	return h[:IPv6HeaderLen+h.PayloadLen()], nil
}

// IPv6Header is the content of an IPv6 fixed header for building packets.
type IPv6Header struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   int
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// Put writes the 40-byte header into b.
func (h *IPv6Header) Put(b []byte) int {
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[4:6], uint16(h.PayloadLen))
	b[6] = h.NextHeader
	b[7] = h.HopLimit
	s, d := h.Src.As16(), h.Dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return IPv6HeaderLen
}

// IPv6Frag is a view of a fragment header (RFC 8200 section 4.5).
type IPv6Frag []byte

func (f IPv6Frag) NextHeader() uint8 { return f[0] }
func (f IPv6Frag) Offset() int       { return int(binary.BigEndian.Uint16(f[2:4]) &^ 7) }
func (f IPv6Frag) More() bool        { return f[3]&1 != 0 }
func (f IPv6Frag) ID() uint32        { return binary.BigEndian.Uint32(f[4:8]) }

// PutIPv6Frag writes a fragment header: offset in bytes (a multiple of 8).
func PutIPv6Frag(b []byte, next uint8, offset int, more bool, id uint32) {
	b[0] = next
	b[1] = 0
	v := uint16(offset) &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], v)
	binary.BigEndian.PutUint32(b[4:8], id)
}

// Hop-by-hop and destination option types (RFC 8200 4.2, RFC 2711).
const (
	IPv6OptPad1        = 0
	IPv6OptPadN        = 1
	IPv6OptRouterAlert = 5
	IPv6OptJumbo       = 0xc2
)

// Actions for an unrecognised option, from its type's two high bits.
const (
	OptActionSkip        = 0 // 00: skip over it
	OptActionDiscard     = 1 // 01: discard the packet silently
	OptActionParamProb   = 2 // 10: discard, send Parameter Problem code 2
	OptActionParamProbUC = 3 // 11: as 10, unless the destination was multicast
)

// IPv6Ext is what walking an extension-header chain found.
type IPv6Ext struct {
	Proto       uint8 // the upper-layer protocol (ProtoIPv6NoNext for none)
	Offset      int   // where its header starts, from the start of the IPv6 header
	NHOff       int   // offset of the next-header byte that names Proto (a Parameter Problem's pointer)
	Headers     int   // extension headers walked
	RouterAlert bool  // hop-by-hop Router Alert present (MLD)
	// SRH is the offset of the last Segment Routing Header passed over
	// (segments left 0), 0 for none: a host without SRv6 drops it.
	SRH int
	// Fragment header, when present: the walk stops there.
	Frag       bool
	FragOff    int // offset of the fragment header
	FragPrevNH int // offset of the next-header byte that names it
	// rtErr holds the refusal of a routing header with segments left,
	// which an SRv6 endpoint meets on every packet: returned from here,
	// it costs no allocation.
	rtErr IPv6ExtError
}

// IPv6ExtError is a chain the receiver must refuse, and how: with a
// Parameter Problem (Code, Pointer from the start of the IPv6 header) or
// silently.
type IPv6ExtError struct {
	Silent        bool
	Code          uint8
	Pointer       int
	UnlessMcast   bool // option action 11: no ICMP if the destination was multicast
	Limit, Option bool // a chain or option limit was hit (counted apart)
	// Route is the offset of the routing header refused for its
	// segments left (0: another reason), for an SRv6 endpoint to take
	// over.
	Route int
}

func (e *IPv6ExtError) Error() string { return "ipv6: extension header refused" }

// Extension-header walk limits, Linux's defaults (max_hbh_opts_number,
// max_dst_opts_number = 8; padding of more than 7 bytes refused, RFC 8504).
const (
	IPv6MaxExtHeaders = 8
	IPv6MaxOptions    = 8
	IPv6MaxPadding    = 7
)

// WalkIPv6Ext walks h's extension headers up to the upper-layer header
// or a fragment header (RFC 8200 section 4): hop-by-hop only first,
// options processed by their action bits, routing headers refused when
// they still have segments left (no type is supported, and type 0 is
// deprecated by RFC 5095). A malformed or over-long chain is an error.
func WalkIPv6Ext(h IPv6, e *IPv6Ext) *IPv6ExtError {
	*e = IPv6Ext{}
	nh := h.NextHeader()
	prev := 6 // the fixed header's next-header byte
	off := IPv6HeaderLen
	end := len(h)
	for {
		switch nh {
		case ProtoHopByHop, ProtoIPv6Opts, ProtoIPv6Route:
		case ProtoIPv6Frag:
			if off+IPv6FragHeaderLen > end {
				return &IPv6ExtError{Silent: true}
			}
			e.Frag, e.FragOff, e.FragPrevNH = true, off, prev
			e.Proto, e.Offset, e.NHOff = nh, off, prev
			return nil
		default:
			e.Proto, e.Offset, e.NHOff = nh, off, prev
			return nil
		}
		if nh == ProtoHopByHop && off != IPv6HeaderLen {
			// Hop-by-hop anywhere but first is an unrecognised next header.
			return &IPv6ExtError{Code: ICMPv6UnrecognizedNextHeader, Pointer: prev}
		}
		e.Headers++
		if e.Headers > IPv6MaxExtHeaders {
			return &IPv6ExtError{Silent: true, Limit: true}
		}
		if off+8 > end {
			return &IPv6ExtError{Silent: true}
		}
		hl := IPv6ExtLen(nh, h[off+1]) // ip6chain.go
		if off+hl > end {
			return &IPv6ExtError{Code: ICMPv6ErroneousField, Pointer: off + 1}
		}
		switch nh {
		case ProtoIPv6Route:
			// Segments left > 0 on a host: no routing type is implemented,
			// so each is unrecognised (RFC 8200 4.4), type 0 included.
			if h[off+3] != 0 {
				e.rtErr = IPv6ExtError{Code: ICMPv6ErroneousField, Pointer: off + 2, Route: off}
				return &e.rtErr
			}
			if h[off+2] == IPv6RouteSRH {
				e.SRH = off
			}
		default:
			if err := walkOptions(h, off, hl, nh == ProtoHopByHop, e); err != nil {
				return err
			}
		}
		prev = off
		nh = h[off]
		off += hl
	}
}

// walkOptions checks one options header's TLVs.
func walkOptions(h IPv6, off, hl int, hbh bool, e *IPv6Ext) *IPv6ExtError {
	opts, pad := 0, 0
	for i := off + 2; i < off+hl; {
		t := h[i]
		if t == IPv6OptPad1 {
			pad++
			if pad > IPv6MaxPadding {
				return &IPv6ExtError{Silent: true, Option: true}
			}
			i++
			continue
		}
		if i+2 > off+hl {
			return &IPv6ExtError{Code: ICMPv6ErroneousField, Pointer: i}
		}
		l := int(h[i+1])
		if i+2+l > off+hl {
			return &IPv6ExtError{Code: ICMPv6ErroneousField, Pointer: i + 1}
		}
		if t == IPv6OptPadN {
			pad += 2 + l
			if pad > IPv6MaxPadding {
				return &IPv6ExtError{Silent: true, Option: true}
			}
			i += 2 + l
			continue
		}
		pad = 0
		opts++
		if opts > IPv6MaxOptions {
			return &IPv6ExtError{Silent: true, Option: true}
		}
		switch {
		case hbh && t == IPv6OptRouterAlert && l == 2:
			e.RouterAlert = true
		default:
			switch t >> 6 {
			case OptActionSkip:
			case OptActionDiscard:
				return &IPv6ExtError{Silent: true, Option: true}
			case OptActionParamProb:
				return &IPv6ExtError{Code: ICMPv6UnrecognizedOption, Pointer: i, Option: true}
			default:
				return &IPv6ExtError{Code: ICMPv6UnrecognizedOption, Pointer: i, UnlessMcast: true, Option: true}
			}
		}
		i += 2 + l
	}
	return nil
}

// Address helpers.

// SolicitedNode is the solicited-node multicast group of a (RFC 4291
// 2.7.1): ff02::1:ff00:0/104 plus the low 24 bits.
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// IPv6MulticastMAC is the Ethernet group address of an IPv6 multicast
// address (RFC 2464 section 7): 33:33 and the low 32 bits.
func IPv6MulticastMAC(a netip.Addr) MAC {
	b := a.As16()
	return MAC{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// Well-known IPv6 multicast groups.
var (
	IPv6AllNodes    = netip.MustParseAddr("ff02::1")
	IPv6AllRouters  = netip.MustParseAddr("ff02::2")
	IPv6AllMLDv2    = netip.MustParseAddr("ff02::16")
	IPv6LinkLocalNw = netip.MustParsePrefix("fe80::/64")
)

// EUI64 is the modified EUI-64 interface identifier of a MAC (RFC 4291
// appendix A): ff:fe in the middle, universal/local bit inverted.
func EUI64(m MAC) [8]byte {
	return [8]byte{m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]}
}

// AddrWithIID puts an interface identifier under a /64 prefix.
func AddrWithIID(p netip.Prefix, iid [8]byte) netip.Addr {
	b := p.Masked().Addr().As16()
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b)
}
