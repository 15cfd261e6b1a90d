package wire

// The IPv6 extension-header chain stepped over by header lengths alone
// (RFC 8200 section 4): where it ends and what follows it, for the
// places that must find a header without judging the ones before it
// (RFC 7112's check on a first fragment, an ICMPv6 error's quoted packet,
// a transparent-proxy rule's protocol). WalkIPv6Ext, which judges
// options and routing headers, steps with the same lengths.

// IPv6ChainMode chooses which headers SkipIPv6Chain steps over besides
// hop-by-hop, routing and destination options.
type IPv6ChainMode uint8

const (
	// ChainSkipAH steps over an Authentication Header, whose length
	// counts 4-byte units less 2 (RFC 4302 section 2.2), as Linux's
	// ipv6_skip_exthdr does; without it AH ends the chain, the protocol
	// a host hands it to.
	ChainSkipAH IPv6ChainMode = 1 << iota
	// ChainThroughFrag steps over the fragment header of a first
	// fragment (offset 0), whose data starts with the rest of the chain;
	// without it a fragment header ends the chain.
	ChainThroughFrag
)

// IPv6ChainStatus says how SkipIPv6Chain ended.
type IPv6ChainStatus uint8

const (
	// ChainDone: at a header that is not one the mode steps over
	// (IPv6Chain.Proto at IPv6Chain.Offset, which may be len(b)).
	ChainDone IPv6ChainStatus = iota
	// ChainTruncated: an extension header runs past the buffer.
	ChainTruncated
	// ChainLaterFragment: a fragment header with a non-zero offset
	// (ChainThroughFrag): what follows it is data, not headers.
	ChainLaterFragment
	// ChainTooLong: more than IPv6MaxExtHeaders extension headers.
	ChainTooLong
)

// IPv6Chain is where SkipIPv6Chain stopped.
type IPv6Chain struct {
	Proto   uint8 // the header it stopped at
	Offset  int   // where that header starts in the buffer
	NHOff   int   // offset of the next-header byte that names it
	Headers int   // extension headers stepped over
	FragOff int   // offset of the fragment header met (stepped over or stopped at); -1 none
}

// IPv6ExtLen is the length of extension header nh whose second byte
// (its length field) is l: hop-by-hop, routing and destination options
// count 8-byte units beyond the first, AH 4-byte units less 2, and a
// fragment header is always 8 bytes.
func IPv6ExtLen(nh, l uint8) int {
	switch nh {
	case ProtoIPv6Frag:
		return IPv6FragHeaderLen
	case ProtoAH:
		return (int(l) + 2) * 4
	}
	return (int(l) + 1) * 8
}

// SkipIPv6Chain steps over the extension headers in b from header nh at
// off (prev is the offset of the byte naming it, as the fixed header's
// 6), without looking inside them, and reports where it stopped. It
// never allocates.
func SkipIPv6Chain(b []byte, nh uint8, off, prev int, mode IPv6ChainMode, c *IPv6Chain) IPv6ChainStatus {
	*c = IPv6Chain{FragOff: -1}
	for {
		c.Proto, c.Offset, c.NHOff = nh, off, prev
		switch nh {
		case ProtoHopByHop, ProtoIPv6Opts, ProtoIPv6Route:
		case ProtoAH:
			if mode&ChainSkipAH == 0 {
				return ChainDone
			}
		case ProtoIPv6Frag:
			c.FragOff = off
			if mode&ChainThroughFrag == 0 {
				return ChainDone
			}
			if off+IPv6FragHeaderLen > len(b) {
				return ChainTruncated
			}
			if IPv6Frag(b[off:]).Offset() != 0 {
				return ChainLaterFragment
			}
		default:
			return ChainDone
		}
		if c.Headers == IPv6MaxExtHeaders {
			return ChainTooLong
		}
		// Every extension header is at least 8 bytes.
		if off+8 > len(b) {
			return ChainTruncated
		}
		hl := IPv6ExtLen(nh, b[off+1])
		if off+hl > len(b) {
			return ChainTruncated
		}
		c.Headers++
		prev, nh, off = off, b[off], off+hl
	}
}

// IsIPv6ExtHeader reports whether nh names a header SkipIPv6Chain can
// step over (in some mode), so that more headers may follow it.
func IsIPv6ExtHeader(nh uint8) bool {
	switch nh {
	case ProtoHopByHop, ProtoIPv6Route, ProtoIPv6Frag, ProtoIPv6Opts, ProtoAH:
		return true
	}
	return false
}
