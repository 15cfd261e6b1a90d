package wire

import "encoding/binary"

// UDPHeaderLen is the UDP header length.
const UDPHeaderLen = 8

// UDP is a view of a UDP datagram.
type UDP []byte

func (u UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(u[0:2]) }
func (u UDP) DstPort() uint16      { return binary.BigEndian.Uint16(u[2:4]) }
func (u UDP) Length() int          { return int(binary.BigEndian.Uint16(u[4:6])) }
func (u UDP) Checksum() uint16     { return binary.BigEndian.Uint16(u[6:8]) }
func (u UDP) Payload() []byte      { return u[UDPHeaderLen:u.Length()] }
func (u UDP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(u[0:2], p) }
func (u UDP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(u[2:4], p) }
func (u UDP) SetLength(n int)      { binary.BigEndian.PutUint16(u[4:6], uint16(n)) }
func (u UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(u[6:8], c) }

// FillChecksum computes the checksum over the pseudo-header sum and the
// datagram; a result of zero is sent as 0xffff (RFC 768). Unlike ParseUDP,
// pseudo must already include the datagram length.
func (u UDP) FillChecksum(pseudo uint64) {
	u.SetChecksum(0)
	c := ^Fold(Sum(u[:u.Length()], pseudo))
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
}

// PutUDP writes a header for a payload of n bytes (checksum zero).
func PutUDP(b []byte, src, dst uint16, n int) {
	u := UDP(b)
	u.SetSrcPort(src)
	u.SetDstPort(dst)
	u.SetLength(UDPHeaderLen + n)
	u.SetChecksum(0)
}

// ParseUDP checks a datagram carried in an IP payload of len(b) bytes:
// the length field must fit and not be below the header length, and a
// non-zero checksum must verify. pseudo is the pseudo-header sum with a
// length of zero (the datagram length is added here). The returned view is
// trimmed to the length field.
func ParseUDP(b []byte, pseudo uint64) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, errUDPTruncated
	}
	u := UDP(b)
	l := u.Length()
	if l < UDPHeaderLen || l > len(b) {
		return nil, errUDPLength
	}
	u = u[:l]
	if u.Checksum() != 0 && Fold(Sum(u, pseudo+uint64(l))) != 0xffff {
		return nil, errUDPChecksum
	}
	return u, nil
}
