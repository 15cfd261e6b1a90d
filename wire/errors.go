package wire

import "fmt"

// Reason says why a header was rejected. Callers use it to count drops.
type Reason uint8

const (
	ReasonTruncated    Reason = iota + 1 // shorter than the header needs
	ReasonBadVersion                     // IP version field wrong
	ReasonBadHeaderLen                   // IHL < 5, data offset < 5, or beyond the buffer
	ReasonBadLength                      // a length field disagrees with the buffer
	ReasonBadChecksum                    // checksum does not verify
	ReasonBadOption                      // malformed option list
	ReasonBadField                       // a field holds a value the format forbids
	reasonCount
)

var reasonNames = [...]string{
	ReasonTruncated:    "truncated",
	ReasonBadVersion:   "bad version",
	ReasonBadHeaderLen: "bad header length",
	ReasonBadLength:    "bad length",
	ReasonBadChecksum:  "bad checksum",
	ReasonBadOption:    "bad option",
	ReasonBadField:     "bad field",
}

func (r Reason) String() string {
	if r == 0 || r >= reasonCount {
		return "unknown"
	}
	return reasonNames[r]
}

// ParseError reports a header that could not be accepted.
type ParseError struct {
	Layer  string // "ethernet", "arp", "ipv4", "icmpv4", "udp", "tcp"
	Reason Reason
	Detail string
}

func (e *ParseError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %s", e.Layer, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.Layer, e.Reason, e.Detail)
}

// Preallocated errors for the hot path: parsing must not allocate.
var (
	errEthTruncated  = &ParseError{Layer: "ethernet", Reason: ReasonTruncated}
	errARPTruncated  = &ParseError{Layer: "arp", Reason: ReasonTruncated}
	errARPFormat     = &ParseError{Layer: "arp", Reason: ReasonBadField, Detail: "not Ethernet/IPv4"}
	errIPTruncated   = &ParseError{Layer: "ipv4", Reason: ReasonTruncated}
	errIPVersion     = &ParseError{Layer: "ipv4", Reason: ReasonBadVersion}
	errIPIHL         = &ParseError{Layer: "ipv4", Reason: ReasonBadHeaderLen, Detail: "IHL < 5"}
	errIPIHLBeyond   = &ParseError{Layer: "ipv4", Reason: ReasonBadHeaderLen, Detail: "header beyond buffer"}
	errIPTotalLen    = &ParseError{Layer: "ipv4", Reason: ReasonBadLength, Detail: "total length beyond frame"}
	errIPTotalShort  = &ParseError{Layer: "ipv4", Reason: ReasonBadLength, Detail: "total length below header length"}
	errIPChecksum    = &ParseError{Layer: "ipv4", Reason: ReasonBadChecksum}
	errIPOption      = &ParseError{Layer: "ipv4", Reason: ReasonBadOption}
	errIP6Truncated  = &ParseError{Layer: "ipv6", Reason: ReasonTruncated}
	errIP6Version    = &ParseError{Layer: "ipv6", Reason: ReasonBadVersion}
	errIP6Length     = &ParseError{Layer: "ipv6", Reason: ReasonBadLength, Detail: "payload length beyond frame"}
	errICMP6Trunc    = &ParseError{Layer: "icmpv6", Reason: ReasonTruncated}
	errICMP6Checksum = &ParseError{Layer: "icmpv6", Reason: ReasonBadChecksum}
	errNDPTruncated  = &ParseError{Layer: "ndp", Reason: ReasonTruncated}
	errNDPOption     = &ParseError{Layer: "ndp", Reason: ReasonBadOption}
	errMLDTruncated  = &ParseError{Layer: "mld", Reason: ReasonTruncated}
	errICMPTruncated = &ParseError{Layer: "icmpv4", Reason: ReasonTruncated}
	errICMPChecksum  = &ParseError{Layer: "icmpv4", Reason: ReasonBadChecksum}
	errUDPTruncated  = &ParseError{Layer: "udp", Reason: ReasonTruncated}
	errUDPLength     = &ParseError{Layer: "udp", Reason: ReasonBadLength, Detail: "length field disagrees with IP payload"}
	errUDPChecksum   = &ParseError{Layer: "udp", Reason: ReasonBadChecksum}
	errTCPTruncated  = &ParseError{Layer: "tcp", Reason: ReasonTruncated}
	errTCPOffset     = &ParseError{Layer: "tcp", Reason: ReasonBadHeaderLen, Detail: "bad data offset"}
	errTCPChecksum   = &ParseError{Layer: "tcp", Reason: ReasonBadChecksum}
	errTCPOption     = &ParseError{Layer: "tcp", Reason: ReasonBadOption}
)
