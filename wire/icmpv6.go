package wire

import "encoding/binary"

// ICMPv6 types (RFC 4443, RFC 4861, RFC 3810).
const (
	ICMPv6DestUnreach    uint8 = 1
	ICMPv6PacketTooBig   uint8 = 2
	ICMPv6TimeExceeded   uint8 = 3
	ICMPv6ParamProblem   uint8 = 4
	ICMPv6EchoRequest    uint8 = 128
	ICMPv6EchoReply      uint8 = 129
	ICMPv6MLDQuery       uint8 = 130
	ICMPv6MLDReport      uint8 = 131 // MLDv1
	ICMPv6MLDDone        uint8 = 132
	ICMPv6RouterSolicit  uint8 = 133
	ICMPv6RouterAdvert   uint8 = 134
	ICMPv6NeighborSolic  uint8 = 135
	ICMPv6NeighborAdvert uint8 = 136
	ICMPv6Redirect       uint8 = 137
	ICMPv6MLDv2Report    uint8 = 143
)

// Destination unreachable codes (RFC 4443 3.1).
const (
	ICMPv6NoRoute          uint8 = 0
	ICMPv6AdminProhibited  uint8 = 1
	ICMPv6BeyondScope      uint8 = 2
	ICMPv6AddrUnreach      uint8 = 3
	ICMPv6PortUnreach      uint8 = 4
	ICMPv6SrcPolicyFailed  uint8 = 5
	ICMPv6RejectRoute      uint8 = 6
	ICMPv6SrcRoutingHeader uint8 = 7
)

// Time exceeded codes.
const (
	ICMPv6HopLimitExceeded  uint8 = 0
	ICMPv6ReassemblyTimeout uint8 = 1
)

// Parameter problem codes (RFC 4443 3.4, RFC 7112).
const (
	ICMPv6ErroneousField         uint8 = 0
	ICMPv6UnrecognizedNextHeader uint8 = 1
	ICMPv6UnrecognizedOption     uint8 = 2
	ICMPv6IncompleteHeaderChain  uint8 = 3
)

const (
	ICMPv6HeaderLen = 8
	// ICMPv6ErrorMax keeps an error message within the minimum MTU
	// (RFC 4443 2.4(c)).
	ICMPv6ErrorMax = IPv6MinMTU - IPv6HeaderLen
	// NDPHopLimit is the hop limit every ND message is sent and must
	// arrive with (RFC 4861: proof it did not cross a router).
	NDPHopLimit    uint8 = 255
	icmpv6ErrorBit uint8 = 0x80
)

// ICMPv6 is a view of an ICMPv6 message.
type ICMPv6 []byte

func (m ICMPv6) Type() uint8      { return m[0] }
func (m ICMPv6) Code() uint8      { return m[1] }
func (m ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:4]) }

// ID and Seq are the echo identifier and sequence number.
func (m ICMPv6) ID() uint16  { return binary.BigEndian.Uint16(m[4:6]) }
func (m ICMPv6) Seq() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// MTU is a Packet Too Big message's MTU; Pointer a Parameter Problem's.
func (m ICMPv6) MTU() uint32     { return binary.BigEndian.Uint32(m[4:8]) }
func (m ICMPv6) Pointer() uint32 { return binary.BigEndian.Uint32(m[4:8]) }

// Payload follows the 8-byte header: echo data, or the invoking packet.
func (m ICMPv6) Payload() []byte  { return m[ICMPv6HeaderLen:] }
func (m ICMPv6) SetType(t uint8)  { m[0] = t }
func (m ICMPv6) SetCode(c uint8)  { m[1] = c }
func (m ICMPv6) SetID(v uint16)   { binary.BigEndian.PutUint16(m[4:6], v) }
func (m ICMPv6) SetSeq(v uint16)  { binary.BigEndian.PutUint16(m[6:8], v) }
func (m ICMPv6) SetRest(v uint32) { binary.BigEndian.PutUint32(m[4:8], v) }

// IsError reports the error types (RFC 4443 2.1: high bit of type clear).
func (m ICMPv6) IsError() bool { return m[0]&icmpv6ErrorBit == 0 }

// FillChecksum stores the checksum; pseudo is the pseudo-header sum
// including the message length.
func (m ICMPv6) FillChecksum(pseudo uint64) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], ^Fold(Sum(m, pseudo)))
}

// ParseICMPv6 checks the length and the checksum over the pseudo-header
// (which, unlike ICMPv4, covers the addresses). pseudo is the sum with
// a length of zero; the message length is added here.
func ParseICMPv6(b []byte, pseudo uint64) (ICMPv6, error) {
	if len(b) < 4 {
		return nil, errICMP6Trunc
	}
	if Fold(Sum(b, pseudo+uint64(len(b)))) != 0xffff {
		return nil, errICMP6Checksum
	}
	if len(b) < ICMPv6HeaderLen && b[0] != ICMPv6RouterSolicit {
		// Every message but a bare 4-byte one has at least 8 bytes.
		return nil, errICMP6Trunc
	}
	return ICMPv6(b), nil
}

// PutICMPv6Error writes an error message into b: type, code, the rest
// field (MTU or pointer) and as much of the invoking packet as keeps the
// whole error within the minimum MTU. It returns the message length;
// the checksum is left for the sender.
func PutICMPv6Error(b []byte, typ, code uint8, rest uint32, invoking []byte) int {
	n := min(len(invoking), ICMPv6ErrorMax-ICMPv6HeaderLen, len(b)-ICMPv6HeaderLen)
	b[0], b[1], b[2], b[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(b[4:8], rest)
	copy(b[ICMPv6HeaderLen:], invoking[:n])
	return ICMPv6HeaderLen + n
}
