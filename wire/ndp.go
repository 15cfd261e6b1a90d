package wire

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Neighbour discovery (RFC 4861). Each message is an ICMPv6 message; the
// views here start at the ICMPv6 type byte.

// Fixed lengths before the options, from the ICMPv6 type byte.
const (
	NDPRSLen       = 8
	NDPRALen       = 16
	NDPNSLen       = 24
	NDPNALen       = 24
	NDPRedirectLen = 40
)

// NDP option types.
const (
	NDPOptSourceLL     = 1
	NDPOptTargetLL     = 2
	NDPOptPrefixInfo   = 3
	NDPOptRedirectedHd = 4
	NDPOptMTU          = 5
)

// NA flags (byte 4).
const (
	NAFlagRouter    = 0x80
	NAFlagSolicited = 0x40
	NAFlagOverride  = 0x20
)

// RA flags (byte 5).
const (
	RAFlagManaged = 0x80
	RAFlagOther   = 0x40
)

// Prefix information flags.
const (
	PrefixFlagOnLink = 0x80
	PrefixFlagAuto   = 0x40
)

// NDPMinLen is the fixed length of each ND message type (0: not ND).
func NDPMinLen(typ uint8) int {
	switch typ {
	case ICMPv6RouterSolicit:
		return NDPRSLen
	case ICMPv6RouterAdvert:
		return NDPRALen
	case ICMPv6NeighborSolic:
		return NDPNSLen
	case ICMPv6NeighborAdvert:
		return NDPNALen
	case ICMPv6Redirect:
		return NDPRedirectLen
	}
	return 0
}

// NDP is a view of an ND message (from the ICMPv6 type byte).
type NDP []byte

// Target is the NS / NA / redirect target address.
func (m NDP) Target() netip.Addr { return netip.AddrFrom16([16]byte(m[8:24])) }

// RedirectDst is a redirect's destination address.
func (m NDP) RedirectDst() netip.Addr { return netip.AddrFrom16([16]byte(m[24:40])) }

// NAFlags are the R, S and O bits of an NA.
func (m NDP) NAFlags() uint8 { return m[4] & 0xe0 }

// RA fields.
func (m NDP) CurHopLimit() uint8 { return m[4] }
func (m NDP) RAFlags() uint8     { return m[5] }
func (m NDP) RouterLifetime() time.Duration {
	return time.Duration(binary.BigEndian.Uint16(m[6:8])) * time.Second
}
func (m NDP) ReachableTime() time.Duration {
	return time.Duration(binary.BigEndian.Uint32(m[8:12])) * time.Millisecond
}
func (m NDP) RetransTimer() time.Duration {
	return time.Duration(binary.BigEndian.Uint32(m[12:16])) * time.Millisecond
}

// Options are the options after the fixed part of a message of type typ.
func (m NDP) Options() []byte { return m[NDPMinLen(m[0]):] }

// NDPPrefix is one prefix information option.
type NDPPrefix struct {
	Prefix           netip.Prefix
	OnLink, Auto     bool
	Valid, Preferred uint32 // seconds; 0xffffffff is infinity
}

// NDPOptions are the options of one ND message that matter to a host.
type NDPOptions struct {
	SourceLL, TargetLL       MAC
	HasSourceLL, HasTargetLL bool
	MTU                      uint32
	HasMTU                   bool
	Prefixes                 [8]NDPPrefix // the first eight; more are counted in Dropped
	NPrefixes                int
	DroppedPrefixes          int
	Unknown                  int // options of other types (skipped, RFC 4861 4.6)
}

// ParseNDPOptions walks the option list. A zero length makes the whole
// message invalid (RFC 4861 4.6); link-layer options of another length
// than Ethernet's are ignored; a prefix option with a prefix length over
// 128 is ignored.
func ParseNDPOptions(b []byte, o *NDPOptions) error {
	*o = NDPOptions{}
	for len(b) > 0 {
		if len(b) < 2 {
			return errNDPTruncated
		}
		l := int(b[1]) * 8
		if l == 0 {
			return errNDPOption
		}
		if l > len(b) {
			return errNDPTruncated
		}
		opt := b[:l]
		switch b[0] {
		case NDPOptSourceLL:
			if l == 8 {
				o.SourceLL, o.HasSourceLL = MAC(opt[2:8]), true
			}
		case NDPOptTargetLL:
			if l == 8 {
				o.TargetLL, o.HasTargetLL = MAC(opt[2:8]), true
			}
		case NDPOptMTU:
			if l == 8 {
				o.MTU, o.HasMTU = binary.BigEndian.Uint32(opt[4:8]), true
			}
		case NDPOptPrefixInfo:
			if l != 32 || opt[2] > 128 {
				break
			}
			if o.NPrefixes == len(o.Prefixes) {
				o.DroppedPrefixes++
				break
			}
			p := &o.Prefixes[o.NPrefixes]
			o.NPrefixes++
			p.Prefix = netip.PrefixFrom(netip.AddrFrom16([16]byte(opt[16:32])), int(opt[2])).Masked()
			p.OnLink = opt[3]&PrefixFlagOnLink != 0
			p.Auto = opt[3]&PrefixFlagAuto != 0
			p.Valid = binary.BigEndian.Uint32(opt[4:8])
			p.Preferred = binary.BigEndian.Uint32(opt[8:12])
		default:
			o.Unknown++
		}
		b = b[l:]
	}
	return nil
}

// ParseNDP checks a message's fixed length and its options; the ICMPv6
// checksum is checked by ParseICMPv6 first.
func ParseNDP(m ICMPv6, o *NDPOptions) (NDP, error) {
	n := NDPMinLen(m.Type())
	if n == 0 || len(m) < n {
		return nil, errNDPTruncated
	}
	if err := ParseNDPOptions(m[n:], o); err != nil {
		return nil, err
	}
	return NDP(m), nil
}

// PutNDPLinkOpt writes a source or target link-layer option (8 bytes).
func PutNDPLinkOpt(b []byte, typ uint8, mac MAC) int {
	b[0], b[1] = typ, 1
	copy(b[2:8], mac[:])
	return 8
}

// PutNDPMTUOpt writes an MTU option (8 bytes).
func PutNDPMTUOpt(b []byte, mtu uint32) int {
	b[0], b[1], b[2], b[3] = NDPOptMTU, 1, 0, 0
	binary.BigEndian.PutUint32(b[4:8], mtu)
	return 8
}

// PutNDPPrefixOpt writes a prefix information option (32 bytes).
func PutNDPPrefixOpt(b []byte, p netip.Prefix, flags uint8, valid, preferred uint32) int {
	b[0], b[1], b[2], b[3] = NDPOptPrefixInfo, 4, byte(p.Bits()), flags
	binary.BigEndian.PutUint32(b[4:8], valid)
	binary.BigEndian.PutUint32(b[8:12], preferred)
	clear(b[12:16])
	a := p.Masked().Addr().As16()
	copy(b[16:32], a[:])
	return 32
}

// PutNS writes a neighbour solicitation for target, with a source
// link-layer option unless mac is zero (DAD probes carry none).
func PutNS(b []byte, target netip.Addr, mac MAC) int {
	clear(b[:NDPNSLen])
	b[0] = ICMPv6NeighborSolic
	t := target.As16()
	copy(b[8:24], t[:])
	n := NDPNSLen
	if mac != (MAC{}) {
		n += PutNDPLinkOpt(b[n:], NDPOptSourceLL, mac)
	}
	return n
}

// PutNA writes a neighbour advertisement with a target link-layer option
// unless mac is zero.
func PutNA(b []byte, target netip.Addr, flags uint8, mac MAC) int {
	clear(b[:NDPNALen])
	b[0] = ICMPv6NeighborAdvert
	b[4] = flags & 0xe0
	t := target.As16()
	copy(b[8:24], t[:])
	n := NDPNALen
	if mac != (MAC{}) {
		n += PutNDPLinkOpt(b[n:], NDPOptTargetLL, mac)
	}
	return n
}

// PutRS writes a router solicitation, with a source link-layer option
// unless mac is zero (a host without an address sends none).
func PutRS(b []byte, mac MAC) int {
	clear(b[:NDPRSLen])
	b[0] = ICMPv6RouterSolicit
	n := NDPRSLen
	if mac != (MAC{}) {
		n += PutNDPLinkOpt(b[n:], NDPOptSourceLL, mac)
	}
	return n
}

// RAHeader is the fixed part of a router advertisement.
type RAHeader struct {
	CurHopLimit    uint8
	Flags          uint8
	RouterLifetime uint16 // seconds
	ReachableTime  uint32 // ms
	RetransTimer   uint32 // ms
}

// PutRA writes an RA's fixed part; options follow at NDPRALen.
func PutRA(b []byte, h RAHeader) int {
	b[0], b[1], b[2], b[3] = ICMPv6RouterAdvert, 0, 0, 0
	b[4], b[5] = h.CurHopLimit, h.Flags
	binary.BigEndian.PutUint16(b[6:8], h.RouterLifetime)
	binary.BigEndian.PutUint32(b[8:12], h.ReachableTime)
	binary.BigEndian.PutUint32(b[12:16], h.RetransTimer)
	return NDPRALen
}

// PutRedirect writes a redirect's fixed part; options follow.
func PutRedirect(b []byte, target, dst netip.Addr) int {
	clear(b[:NDPRedirectLen])
	b[0] = ICMPv6Redirect
	t, d := target.As16(), dst.As16()
	copy(b[8:24], t[:])
	copy(b[24:40], d[:])
	return NDPRedirectLen
}
