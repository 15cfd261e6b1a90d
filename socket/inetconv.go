package socket

import (
	"net/netip"
	"strings"
	"syscall"
)

// Address conversions of the classic socket API (arpa/inet.h, and
// Python's socket module): the byte-order swaps and the text forms of
// IPv4 and IPv6 addresses, with the C library's rules.

// Ntohs is ntohs: a 16-bit value from network to host byte order (the
// same swap as Htons).
func Ntohs(v uint16) int { return Htons(v) }

// Htonl is htonl: a 32-bit value in network byte order, read as a
// little-endian host reads it.
func Htonl(v uint32) uint32 { return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24 }

// Ntohl is ntohl (the same swap as Htonl).
func Ntohl(v uint32) uint32 { return Htonl(v) }

// InetAton is inet_aton(3): the old, lenient IPv4 syntax of 1 to 4
// parts ("a", "a.b", "a.b.c", "a.b.c.d"; the last part fills the
// remaining bytes), each decimal, octal (leading 0) or hex (0x), and
// whatever follows a space ignored, as glibc. EINVAL for anything else.
func InetAton(s string) ([4]byte, error) {
	if i := strings.IndexAny(s, " \t\n\v\f\r"); i >= 0 {
		s = s[:i] // glibc stops at white space
	}
	var parts []uint64
	for _, p := range strings.Split(s, ".") {
		v, ok := cNumber(p)
		if !ok || len(parts) == 4 {
			return [4]byte{}, syscall.EINVAL
		}
		parts = append(parts, v)
	}
	// The last part holds what the earlier ones (a byte each) leave.
	last := parts[len(parts)-1]
	if last > 0xffffffff>>(8*(len(parts)-1)) {
		return [4]byte{}, syscall.EINVAL
	}
	v := last
	for i, p := range parts[:len(parts)-1] {
		if p > 0xff {
			return [4]byte{}, syscall.EINVAL
		}
		v |= p << (24 - 8*i)
	}
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, nil
}

// cNumber reads one part as strtoul with base 0 does: 0x hex, leading 0
// octal, else decimal; at least one digit, nothing after it.
func cNumber(p string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(p) > 1 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:] // "0x" alone: strtoul stops at the x, which glibc refuses
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	if p == "" {
		return 0, false
	}
	var v uint64
	for _, c := range []byte(p) {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// InetNtoa is inet_ntoa(3): dotted decimal of a 4-byte address (EINVAL
// for another length, as Python's inet_ntoa refuses it).
func InetNtoa(b []byte) (string, error) {
	if len(b) != 4 {
		return "", syscall.EINVAL
	}
	return netip.AddrFrom4([4]byte(b)).String(), nil
}

// InetPton is inet_pton(3): the strict text form of an AF_INET address
// (four decimal parts, no leading zeros) or an AF_INET6 one, as bytes.
// EINVAL for bad text, EAFNOSUPPORT for another family.
func InetPton(family int, s string) ([]byte, error) {
	switch family {
	case AF_INET:
		a, ok := parse4Strict(s)
		if !ok {
			return nil, syscall.EINVAL
		}
		return a[:], nil
	case AF_INET6:
		if strings.ContainsAny(s, "%") {
			return nil, syscall.EINVAL // no zone in inet_pton
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() {
			return nil, syscall.EINVAL
		}
		// glibc takes an embedded IPv4 part only in inet_pton4's strict
		// form: netip accepts no more than that.
		b := a.As16()
		return b[:], nil
	}
	return nil, syscall.EAFNOSUPPORT
}

// parse4Strict is glibc's inet_pton4: exactly four decimal parts of at
// most 255, no leading zeros, nothing else.
func parse4Strict(s string) ([4]byte, bool) {
	var a [4]byte
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return a, false
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 || len(p) > 1 && p[0] == '0' {
			return a, false
		}
		v := 0
		for _, c := range []byte(p) {
			if c < '0' || c > '9' {
				return a, false
			}
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return a, false
		}
		a[i] = byte(v)
	}
	return a, true
}

// InetNtop is inet_ntop(3): the text form of a 4-byte AF_INET or
// 16-byte AF_INET6 address (RFC 5952, as glibc writes it: IPv4-mapped
// and IPv4-compatible addresses end in dotted decimal). EINVAL for a
// wrong length, EAFNOSUPPORT for another family.
func InetNtop(family int, b []byte) (string, error) {
	switch family {
	case AF_INET:
		return InetNtoa(b)
	case AF_INET6:
		if len(b) != 16 {
			return "", syscall.EINVAL
		}
		a := netip.AddrFrom16([16]byte(b))
		if a.Is4In6() {
			return "::ffff:" + a.Unmap().String(), nil
		}
		if compat4(b) {
			return "::" + netip.AddrFrom4([4]byte(b[12:])).String(), nil
		}
		return a.String(), nil
	}
	return "", syscall.EAFNOSUPPORT
}

// compat4 is an IPv4-compatible address glibc's inet_ntop6 prints with
// a dotted tail: exactly six leading zero words (its longest zero run
// is the first six), so ::1 and ::102 stay hexadecimal.
func compat4(b []byte) bool {
	for _, c := range b[:12] {
		if c != 0 {
			return false
		}
	}
	return b[12] != 0 || b[13] != 0
}
