package wire

import "encoding/binary"

// ICMPv4 types (RFC 792, RFC 1191).
const (
	ICMPEchoReply      uint8 = 0
	ICMPDestUnreach    uint8 = 3
	ICMPSourceQuench   uint8 = 4
	ICMPRedirect       uint8 = 5
	ICMPEcho           uint8 = 8
	ICMPTimeExceeded   uint8 = 11
	ICMPParamProblem   uint8 = 12
	ICMPTimestamp      uint8 = 13
	ICMPTimestampReply uint8 = 14
)

// Destination unreachable codes (RFC 792, RFC 1122, RFC 1812).
const (
	ICMPNetUnreach         uint8 = 0
	ICMPHostUnreach        uint8 = 1
	ICMPProtoUnreach       uint8 = 2
	ICMPPortUnreach        uint8 = 3
	ICMPFragNeeded         uint8 = 4
	ICMPSourceRouteFailed  uint8 = 5
	ICMPNetUnknown         uint8 = 6
	ICMPHostUnknown        uint8 = 7
	ICMPSourceHostIsolated uint8 = 8
	ICMPNetProhibited      uint8 = 9
	ICMPHostProhibited     uint8 = 10
	ICMPNetTOSUnreach      uint8 = 11
	ICMPHostTOSUnreach     uint8 = 12
	ICMPAdminProhibited    uint8 = 13
	ICMPHostPrecedence     uint8 = 14
	ICMPPrecedenceCutoff   uint8 = 15
)

// Time exceeded codes.
const (
	ICMPTTLExceeded        uint8 = 0
	ICMPReassemblyExceeded uint8 = 1
)

// ICMPv4HeaderLen is the fixed part every ICMP message has.
const ICMPv4HeaderLen = 8

// ICMPv4 is a view of an ICMPv4 message.
type ICMPv4 []byte

func (m ICMPv4) Type() uint8      { return m[0] }
func (m ICMPv4) Code() uint8      { return m[1] }
func (m ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:4]) }

// ID and Seq are the echo identifier and sequence number.
func (m ICMPv4) ID() uint16  { return binary.BigEndian.Uint16(m[4:6]) }
func (m ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// NextHopMTU is the MTU field of a fragmentation-needed message (RFC 1191).
func (m ICMPv4) NextHopMTU() int { return int(binary.BigEndian.Uint16(m[6:8])) }

// Payload is what follows the 8-byte header: echo data, or the invoking
// packet's IP header and first bytes for error messages.
func (m ICMPv4) Payload() []byte     { return m[ICMPv4HeaderLen:] }
func (m ICMPv4) SetType(t uint8)     { m[0] = t }
func (m ICMPv4) SetCode(c uint8)     { m[1] = c }
func (m ICMPv4) SetID(v uint16)      { binary.BigEndian.PutUint16(m[4:6], v) }
func (m ICMPv4) SetSeq(v uint16)     { binary.BigEndian.PutUint16(m[6:8], v) }
func (m ICMPv4) SetRest(v uint32)    { binary.BigEndian.PutUint32(m[4:8], v) }
func (m ICMPv4) SetNextHopMTU(v int) { binary.BigEndian.PutUint32(m[4:8], uint32(v)&0xffff) }
func (m ICMPv4) FillChecksum() {
	binary.BigEndian.PutUint16(m[2:4], 0)
	binary.BigEndian.PutUint16(m[2:4], Checksum(m))
}

// IsError reports the ICMP error types (those carrying an invoking packet).
func (m ICMPv4) IsError() bool {
	switch m.Type() {
	case ICMPDestUnreach, ICMPSourceQuench, ICMPRedirect, ICMPTimeExceeded, ICMPParamProblem:
		return true
	}
	return false
}

// ParseICMPv4 checks length and checksum.
func ParseICMPv4(b []byte) (ICMPv4, error) {
	if len(b) < ICMPv4HeaderLen {
		return nil, errICMPTruncated
	}
	if Fold(Sum(b, 0)) != 0xffff {
		return nil, errICMPChecksum
	}
	return ICMPv4(b), nil
}
