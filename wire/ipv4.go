package wire

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoICMP uint8 = 1
	ProtoIGMP uint8 = 2
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoRaw  uint8 = 255
)

// IPv4 header constants.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxLen       = 65535
	IPv4FlagDF       = 0x4000
	IPv4FlagMF       = 0x2000
	ipv4OffsetMask   = 0x1fff
)

// IPv4 is a view of an IPv4 header followed by its payload.
type IPv4 []byte

func (h IPv4) Version() uint8       { return h[0] >> 4 }
func (h IPv4) HeaderLen() int       { return int(h[0]&0x0f) * 4 }
func (h IPv4) TOS() uint8           { return h[1] }
func (h IPv4) TotalLen() int        { return int(binary.BigEndian.Uint16(h[2:4])) }
func (h IPv4) ID() uint16           { return binary.BigEndian.Uint16(h[4:6]) }
func (h IPv4) flagsOff() uint16     { return binary.BigEndian.Uint16(h[6:8]) }
func (h IPv4) DF() bool             { return h.flagsOff()&IPv4FlagDF != 0 }
func (h IPv4) MF() bool             { return h.flagsOff()&IPv4FlagMF != 0 }
func (h IPv4) FragOffset() int      { return int(h.flagsOff()&ipv4OffsetMask) * 8 }
func (h IPv4) TTL() uint8           { return h[8] }
func (h IPv4) Protocol() uint8      { return h[9] }
func (h IPv4) Checksum() uint16     { return binary.BigEndian.Uint16(h[10:12]) }
func (h IPv4) Src() netip.Addr      { return netip.AddrFrom4([4]byte(h[12:16])) }
func (h IPv4) Dst() netip.Addr      { return netip.AddrFrom4([4]byte(h[16:20])) }
func (h IPv4) Src4() [4]byte        { return [4]byte(h[12:16]) }
func (h IPv4) Dst4() [4]byte        { return [4]byte(h[16:20]) }
func (h IPv4) Options() []byte      { return h[IPv4MinHeaderLen:h.HeaderLen()] }
func (h IPv4) Payload() []byte      { return h[h.HeaderLen():h.TotalLen()] }
func (h IPv4) IsFragment() bool     { return h.flagsOff()&(IPv4FlagMF|ipv4OffsetMask) != 0 }
func (h IPv4) SetTOS(v uint8)       { h[1] = v }
func (h IPv4) SetTotalLen(n int)    { binary.BigEndian.PutUint16(h[2:4], uint16(n)) }
func (h IPv4) SetID(id uint16)      { binary.BigEndian.PutUint16(h[4:6], id) }
func (h IPv4) SetTTL(t uint8)       { h[8] = t }
func (h IPv4) SetProtocol(p uint8)  { h[9] = p }
func (h IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(h[10:12], c) }
func (h IPv4) SetSrc(a netip.Addr)  { s := a.As4(); copy(h[12:16], s[:]) }
func (h IPv4) SetDst(a netip.Addr)  { d := a.As4(); copy(h[16:20], d[:]) }
func (h IPv4) SetFragment(offset int, df, mf bool) {
	v := uint16(offset/8) & ipv4OffsetMask
	if df {
		v |= IPv4FlagDF
	}
	if mf {
		v |= IPv4FlagMF
	}
	binary.BigEndian.PutUint16(h[6:8], v)
}

// FillChecksum computes and stores the header checksum.
func (h IPv4) FillChecksum() {
	h.SetChecksum(0)
	h.SetChecksum(Checksum(h[:h.HeaderLen()]))
}

// VerifyChecksum reports whether the header checksum is right.
func (h IPv4) VerifyChecksum() bool { return Fold(Sum(h[:h.HeaderLen()], 0)) == 0xffff }

// PseudoSum is the pseudo-header partial sum for a transport payload of n bytes.
func (h IPv4) PseudoSum(n int) uint64 {
	return PseudoHeaderSum(h.Src4(), h.Dst4(), h.Protocol(), n)
}

// ParseIPv4 checks an IPv4 header the way RFC 1122 section 3.2.1 asks
// (version, header length, total length, option syntax, then checksum) and
// returns the view trimmed to the total length (link padding removed).
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, errIPTruncated
	}
	h := IPv4(b)
	if h.Version() != 4 {
		return nil, errIPVersion
	}
	hl := h.HeaderLen()
	if hl < IPv4MinHeaderLen {
		return nil, errIPIHL
	}
	if hl > len(b) {
		return nil, errIPIHLBeyond
	}
	tl := h.TotalLen()
	if tl < hl {
		return nil, errIPTotalShort
	}
	if tl > len(b) {
		return nil, errIPTotalLen
	}
	// Structure first, checksum last: a checksum error then means the
	// header is otherwise well formed, which tracers rely on.
	if hl > IPv4MinHeaderLen {
		if err := checkIPv4Options(h.Options()); err != nil {
			return nil, err
		}
	}
	if !h.VerifyChecksum() {
		return nil, errIPChecksum
	}
	return h[:tl], nil
}

// IPv4 option types that matter here.
const (
	IPOptEnd = 0
	IPOptNOP = 1
)

// checkIPv4Options walks the option list (RFC 791): single-byte End and
// NOP, every other option a type-length-value whose length covers itself.
// Options are kept in the header but not acted on; a malformed list drops
// the packet.
func checkIPv4Options(o []byte) error {
	for i := 0; i < len(o); {
		switch o[i] {
		case IPOptEnd:
			return nil
		case IPOptNOP:
			i++
		default:
			if i+1 >= len(o) {
				return errIPOption
			}
			l := int(o[i+1])
			if l < 2 || i+l > len(o) {
				return errIPOption
			}
			i += l
		}
	}
	return nil
}

// IPv4Header is the content of an IPv4 header for building packets.
type IPv4Header struct {
	TOS      uint8
	TotalLen int
	ID       uint16
	DF, MF   bool
	FragOff  int // bytes, multiple of 8
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr
	Options  []byte // padded to a multiple of 4 by Put; at most 40 bytes are written
}

// IPv4MaxOptionsLen is the room IHL leaves for options.
const IPv4MaxOptionsLen = 40

// Len is the header length Put writes.
func (h *IPv4Header) Len() int {
	// Longer options cannot be expressed in IHL; cutting them keeps the
	// version nibble intact instead of writing a corrupt header.
	return IPv4MinHeaderLen + min((len(h.Options)+3)&^3, IPv4MaxOptionsLen)
}

// Put writes the header with its checksum into b and returns its length.
func (h *IPv4Header) Put(b []byte) int {
	hl := h.Len()
	b[0] = 0x40 | byte(hl/4)
	b[1] = h.TOS
	v := IPv4(b)
	v.SetTotalLen(h.TotalLen)
	v.SetID(h.ID)
	v.SetFragment(h.FragOff, h.DF, h.MF)
	b[8] = h.TTL
	b[9] = h.Protocol
	v.SetSrc(h.Src)
	v.SetDst(h.Dst)
	n := copy(b[20:hl], h.Options)
	clear(b[20+n : hl])
	v.SetChecksum(0)
	v.SetChecksum(Checksum(b[:hl]))
	return hl
}
