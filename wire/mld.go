package wire

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Multicast listener discovery: MLDv1 (RFC 2710) queries and MLDv2
// (RFC 3810) queries and reports. Views start at the ICMPv6 type byte.

const (
	MLDv1Len      = 24
	MLDv2QueryMin = 28
	MLDv2RecHdr   = 20 // record type, aux len, source count, group
)

// MLDv2 record types (RFC 3810 5.2.12).
const (
	MLDModeIsInclude   = 1
	MLDModeIsExclude   = 2
	MLDChangeToInclude = 3
	MLDChangeToExclude = 4
	MLDAllowNew        = 5
	MLDBlockOld        = 6
)

// MLDQuery is a view of an MLD query (either version: MLDv2 when it is
// at least 28 bytes long, RFC 3810 8.1).
type MLDQuery []byte

func (q MLDQuery) Group() netip.Addr { return netip.AddrFrom16([16]byte(q[8:24])) }
func (q MLDQuery) IsV2() bool        { return len(q) >= MLDv2QueryMin }

// MaxResponse decodes the maximum response code (RFC 3810 5.1.3: below
// 32768 milliseconds as is, above a floating-point form).
func (q MLDQuery) MaxResponse() time.Duration {
	c := binary.BigEndian.Uint16(q[4:6])
	if c < 32768 || !q.IsV2() {
		return time.Duration(c) * time.Millisecond
	}
	mant := uint32(c & 0xfff)
	exp := uint32(c>>12) & 7
	return time.Duration((mant|0x1000)<<(exp+3)) * time.Millisecond
}

// NumSources is an MLDv2 query's source count.
func (q MLDQuery) NumSources() int { return int(binary.BigEndian.Uint16(q[26:28])) }

// ParseMLDQuery checks a query's length (24 for MLDv1, 28 plus the
// sources for MLDv2; lengths in between are invalid per RFC 3810 8.1).
func ParseMLDQuery(m ICMPv6) (MLDQuery, error) {
	q := MLDQuery(m)
	switch {
	case len(m) == MLDv1Len:
		return q, nil
	case len(m) < MLDv2QueryMin:
		return nil, errMLDTruncated
	case len(m) < MLDv2QueryMin+16*q.NumSources():
		return nil, errMLDTruncated
	}
	return q, nil
}

// PutMLDQuery writes an MLDv2 general or group query without sources.
func PutMLDQuery(b []byte, group netip.Addr, maxResp time.Duration) int {
	clear(b[:MLDv2QueryMin])
	b[0] = ICMPv6MLDQuery
	ms := maxResp.Milliseconds()
	binary.BigEndian.PutUint16(b[4:6], uint16(min(ms, 32767)))
	if group.IsValid() {
		g := group.As16()
		copy(b[8:24], g[:])
	}
	b[24] = 2   // QRV
	b[25] = 125 // QQIC: 125 s
	return MLDv2QueryMin
}

// MLDRecord is one MLDv2 multicast address record without sources.
type MLDRecord struct {
	Type  uint8
	Group netip.Addr
}

// PutMLDv2Report writes a report of source-less records.
func PutMLDv2Report(b []byte, recs []MLDRecord) int {
	b[0], b[1], b[2], b[3], b[4], b[5] = ICMPv6MLDv2Report, 0, 0, 0, 0, 0
	binary.BigEndian.PutUint16(b[6:8], uint16(len(recs)))
	n := 8
	for _, r := range recs {
		b[n], b[n+1], b[n+2], b[n+3] = r.Type, 0, 0, 0
		g := r.Group.As16()
		copy(b[n+4:n+20], g[:])
		n += MLDv2RecHdr
	}
	return n
}

// ParseMLDv2Report walks a report's records, calling f for each record
// (its sources are skipped); a record running past the end is an error.
func ParseMLDv2Report(m ICMPv6, f func(MLDRecord, int)) error {
	if len(m) < 8 {
		return errMLDTruncated
	}
	n := int(binary.BigEndian.Uint16(m[6:8]))
	b := m[8:]
	for i := 0; i < n; i++ {
		if len(b) < MLDv2RecHdr {
			return errMLDTruncated
		}
		srcs := int(binary.BigEndian.Uint16(b[2:4]))
		l := MLDv2RecHdr + 16*srcs + 4*int(b[1])
		if l > len(b) {
			return errMLDTruncated
		}
		if f != nil {
			f(MLDRecord{Type: b[0], Group: netip.AddrFrom16([16]byte(b[4:20]))}, srcs)
		}
		b = b[l:]
	}
	return nil
}

// Source is an MLDv2 query's i-th source address.
func (q MLDQuery) Source(i int) netip.Addr {
	return netip.AddrFrom16([16]byte(q[28+16*i : 44+16*i]))
}

// QRV is an MLDv2 query's robustness variable.
func (q MLDQuery) QRV() int { return int(q[24] & 7) }

// MLDv2RecordLen is the encoded length of r.
func MLDv2RecordLen(r GroupRecord) int { return MLDv2RecHdr + 16*len(r.Srcs) }

// PutMLDv2Records writes an MLDv2 report of records with sources (the
// ICMPv6 checksum is the sender's: it covers the pseudo-header).
func PutMLDv2Records(b []byte, recs []GroupRecord) int {
	clear(b[:8])
	b[0] = ICMPv6MLDv2Report
	binary.BigEndian.PutUint16(b[6:8], uint16(len(recs)))
	n := 8
	for _, r := range recs {
		b[n], b[n+1] = r.Type, 0
		binary.BigEndian.PutUint16(b[n+2:n+4], uint16(len(r.Srcs)))
		g := r.Group.As16()
		copy(b[n+4:n+20], g[:])
		n += MLDv2RecHdr
		for _, s := range r.Srcs {
			a := s.As16()
			n += copy(b[n:], a[:])
		}
	}
	return n
}

// ParseMLDv2Records walks a report's records with their sources (the
// Srcs slice is reused between calls).
func ParseMLDv2Records(m ICMPv6, f func(GroupRecord)) error {
	if len(m) < 8 {
		return errMLDTruncated
	}
	n := int(binary.BigEndian.Uint16(m[6:8]))
	b := m[8:]
	var srcs []netip.Addr
	for i := 0; i < n; i++ {
		if len(b) < MLDv2RecHdr {
			return errMLDTruncated
		}
		ns := int(binary.BigEndian.Uint16(b[2:4]))
		l := MLDv2RecHdr + 16*ns + 4*int(b[1])
		if l > len(b) {
			return errMLDTruncated
		}
		srcs = srcs[:0]
		for j := 0; j < ns; j++ {
			srcs = append(srcs, netip.AddrFrom16([16]byte(b[20+16*j:36+16*j])))
		}
		f(GroupRecord{Type: b[0], Group: netip.AddrFrom16([16]byte(b[4:20])), Srcs: srcs})
		b = b[l:]
	}
	return nil
}
