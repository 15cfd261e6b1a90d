package wire

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// IGMPv3 (RFC 3376) queries and reports. Views start at the IGMP type
// byte; the IPv4 header is the caller's.

const (
	IGMPQuery      = 0x11
	IGMPv3Report   = 0x22
	IGMPv1Len      = 8  // v1 and v2 messages
	IGMPv3QueryMin = 12 // RFC 3376 4.1: a query of 12 octets or more is v3
	IGMPv3RecHdr   = 8  // record type, aux len, source count, group
)

// IGMPv3 group record types (RFC 3376 4.2.12); the MLDv2 numbers are the same.
const (
	IGMPModeIsInclude   = 1
	IGMPModeIsExclude   = 2
	IGMPChangeToInclude = 3
	IGMPChangeToExclude = 4
	IGMPAllowNew        = 5
	IGMPBlockOld        = 6
)

// IGMPv3Query is a view of an IGMPv3 query checked by ParseIGMPv3Query.
type IGMPv3Query []byte

func (q IGMPv3Query) Group() netip.Addr { return netip.AddrFrom4([4]byte(q[4:8])) }
func (q IGMPv3Query) NumSources() int   { return int(binary.BigEndian.Uint16(q[10:12])) }
func (q IGMPv3Query) QRV() int          { return int(q[8] & 7) }

// Source is the i-th source address.
func (q IGMPv3Query) Source(i int) netip.Addr {
	return netip.AddrFrom4([4]byte(q[12+4*i : 16+4*i]))
}

// MaxResponse decodes the max resp code (RFC 3376 4.1.1: tenths of a
// second, from 128 on in a floating-point form).
func (q IGMPv3Query) MaxResponse() time.Duration {
	return time.Duration(igmpCode(q[1])) * 100 * time.Millisecond
}

// QQI decodes the querier's query interval code (4.1.7).
func (q IGMPv3Query) QQI() time.Duration { return time.Duration(igmpCode(q[9])) * time.Second }

func igmpCode(c uint8) int {
	if c < 128 {
		return int(c)
	}
	return (int(c&0x0f) | 0x10) << (int(c>>4&7) + 3)
}

// ParseIGMPv3Query checks an IGMPv3 query's length against its source
// count (the checksum is the caller's: it covers the whole message).
func ParseIGMPv3Query(m []byte) (IGMPv3Query, error) {
	if len(m) < IGMPv3QueryMin || m[0] != IGMPQuery {
		return nil, errIGMPTruncated
	}
	q := IGMPv3Query(m)
	if len(m) < IGMPv3QueryMin+4*q.NumSources() {
		return nil, errIGMPTruncated
	}
	return q, nil
}

// PutIGMPv3Query writes a query with the given sources (for tests and
// tools); it returns the length. b must hold 12+4*len(srcs) bytes.
func PutIGMPv3Query(b []byte, group netip.Addr, maxRespCode uint8, srcs []netip.Addr) int {
	clear(b[:IGMPv3QueryMin])
	b[0], b[1] = IGMPQuery, maxRespCode
	if group.IsValid() {
		g := group.As4()
		copy(b[4:8], g[:])
	}
	b[8], b[9] = 2, 125
	binary.BigEndian.PutUint16(b[10:12], uint16(len(srcs)))
	n := IGMPv3QueryMin
	for _, s := range srcs {
		a := s.As4()
		n += copy(b[n:], a[:])
	}
	c := Checksum(b[:n])
	b[2], b[3] = byte(c>>8), byte(c)
	return n
}

// GroupRecord is one IGMPv3 or MLDv2 group record with its sources.
type GroupRecord struct {
	Type  uint8
	Group netip.Addr
	Srcs  []netip.Addr
}

// IGMPv3RecordLen is the encoded length of r.
func IGMPv3RecordLen(r GroupRecord) int { return IGMPv3RecHdr + 4*len(r.Srcs) }

// PutIGMPv3Report writes a report of recs, checksummed; b must be long
// enough (8 plus each IGMPv3RecordLen).
func PutIGMPv3Report(b []byte, recs []GroupRecord) int {
	clear(b[:8])
	b[0] = IGMPv3Report
	binary.BigEndian.PutUint16(b[6:8], uint16(len(recs)))
	n := 8
	for _, r := range recs {
		b[n], b[n+1] = r.Type, 0
		binary.BigEndian.PutUint16(b[n+2:n+4], uint16(len(r.Srcs)))
		g := r.Group.As4()
		copy(b[n+4:n+8], g[:])
		n += IGMPv3RecHdr
		for _, s := range r.Srcs {
			a := s.As4()
			n += copy(b[n:], a[:])
		}
	}
	c := Checksum(b[:n])
	b[2], b[3] = byte(c>>8), byte(c)
	return n
}

// ParseIGMPv3Report walks a report's records, calling f with each (its
// Srcs slice is reused between calls); a record running past the end or
// a count the message cannot hold is an error.
func ParseIGMPv3Report(m []byte, f func(GroupRecord)) error {
	if len(m) < 8 || m[0] != IGMPv3Report {
		return errIGMPTruncated
	}
	n := int(binary.BigEndian.Uint16(m[6:8]))
	b := m[8:]
	var srcs []netip.Addr
	for i := 0; i < n; i++ {
		if len(b) < IGMPv3RecHdr {
			return errIGMPTruncated
		}
		ns := int(binary.BigEndian.Uint16(b[2:4]))
		l := IGMPv3RecHdr + 4*ns + 4*int(b[1])
		if l > len(b) {
			return errIGMPTruncated
		}
		if f != nil {
			srcs = srcs[:0]
			for j := 0; j < ns; j++ {
				srcs = append(srcs, netip.AddrFrom4([4]byte(b[8+4*j:12+4*j])))
			}
			f(GroupRecord{Type: b[0], Group: netip.AddrFrom4([4]byte(b[4:8])), Srcs: srcs})
		}
		b = b[l:]
	}
	return nil
}

var errIGMPTruncated = &ParseError{Layer: "igmp", Reason: ReasonTruncated}
