package wire

import (
	"encoding/binary"
	"fmt"
)

// MAC is an Ethernet hardware address.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsMulticast reports the group bit; broadcast is multicast too.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsBroadcast reports ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == BroadcastMAC }

// ParseMAC reads "aa:bb:cc:dd:ee:ff".
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("bad MAC %q", s)
	}
	for i := 0; i < 6; i++ {
		var v byte
		for j := 0; j < 2; j++ {
			c := s[i*3+j]
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return m, fmt.Errorf("bad MAC %q", s)
			}
		}
		if i < 5 && s[i*3+2] != ':' {
			return m, fmt.Errorf("bad MAC %q", s)
		}
		m[i] = v
	}
	return m, nil
}

// EtherType values.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100
	EtherTypeIPv6 uint16 = 0x86dd
)

// EthernetHeaderLen is the length of an untagged Ethernet II header.
const EthernetHeaderLen = 14

// Ethernet is a view of an Ethernet II frame (no preamble, no FCS).
type Ethernet []byte

func (e Ethernet) Dst() MAC          { return MAC(e[0:6]) }
func (e Ethernet) Src() MAC          { return MAC(e[6:12]) }
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }
func (e Ethernet) SetDst(m MAC)      { copy(e[0:6], m[:]) }
func (e Ethernet) SetSrc(m MAC)      { copy(e[6:12], m[:]) }
func (e Ethernet) SetEtherType(t uint16) {
	binary.BigEndian.PutUint16(e[12:14], t)
}

// EthernetInfo is what ParseEthernet learns from a frame header.
type EthernetInfo struct {
	Dst, Src  MAC
	EtherType uint16 // of the payload, after any 802.1Q tags
	VLAN      uint16 // VLAN ID of the outermost tag (12 bits)
	Priority  uint8  // PCP of the outermost tag
	Tagged    bool
	HeaderLen int // 14, 18, or 22 with two tags (QinQ inner 0x8100)
}

// ParseEthernet checks a frame's header and reports its fields; the payload
// starts at HeaderLen. 802.1Q tags (0x8100, and 0x88a8 outer tags) are
// skipped, up to two.
func ParseEthernet(b []byte) (EthernetInfo, error) {
	var info EthernetInfo
	if len(b) < EthernetHeaderLen {
		return info, errEthTruncated
	}
	copy(info.Dst[:], b[0:6])
	copy(info.Src[:], b[6:12])
	off := 12
	t := binary.BigEndian.Uint16(b[off:])
	for tags := 0; (t == EtherTypeVLAN || t == 0x88a8) && tags < 2; tags++ {
		if len(b) < off+6 {
			return info, errEthTruncated
		}
		tci := binary.BigEndian.Uint16(b[off+2:])
		if !info.Tagged {
			info.Tagged = true
			info.VLAN = tci & 0x0fff
			info.Priority = uint8(tci >> 13)
		}
		off += 4
		t = binary.BigEndian.Uint16(b[off:])
	}
	info.EtherType = t
	info.HeaderLen = off + 2
	return info, nil
}

// PutEthernet writes an untagged header into b[:14].
func PutEthernet(b []byte, dst, src MAC, etherType uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// EthernetVLANHeaderLen is the length of a header with one 802.1Q tag.
const EthernetVLANHeaderLen = 18

// PutEthernetVLAN writes a header with one 802.1Q tag (TPID 0x8100) into
// b[:18]; vlan is the 12-bit VLAN ID and priority the 3-bit PCP.
func PutEthernetVLAN(b []byte, dst, src MAC, vlan uint16, priority uint8, etherType uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], EtherTypeVLAN)
	binary.BigEndian.PutUint16(b[14:16], uint16(priority&7)<<13|vlan&0x0fff)
	binary.BigEndian.PutUint16(b[16:18], etherType)
}
