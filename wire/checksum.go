package wire

import (
	"encoding/binary"
	"math/bits"
)

// wideMin is the length from which sumWide's vector loop pays for its
// setup.
const wideMin = 256

// Sum adds b to a running one's complement sum (RFC 1071) and returns the
// unfolded 64-bit accumulator; combine partial sums with Add and finish
// with Fold. b is summed as big-endian 16-bit words; an odd trailing byte
// is padded with zero, so only the last piece of a packet may be odd.
func Sum(b []byte, initial uint64) uint64 {
	// The bulk is summed as native little-endian 64-bit words: plain loads,
	// no byte swaps. One's complement addition commutes with byte order
	// (RFC 1071 section 2(B)), so folding that sum to 16 bits and swapping
	// its two bytes gives the big-endian sum. 64 bytes per round keep one
	// add-with-carry chain busy.
	// The vector loop's exact sum of 32-bit words is a valid start: it is
	// congruent to the 16-bit word sum modulo 2^16-1, which is all the
	// folding keeps.
	var s, carry uint64
	if len(b) >= wideMin { // short buffers skip the call
		var n int
		s, n = sumWide(b)
		b = b[n:]
	}
	for len(b) >= 64 {
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[0:8]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[8:16]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[16:24]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[24:32]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[32:40]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[40:48]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[48:56]), carry)
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b[56:64]), carry)
		b = b[64:]
	}
	for len(b) >= 8 {
		s, carry = bits.Add64(s, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	s += carry // no new carry: after a carry out, s is at most 2^64-2
	le := Fold(s)
	s = Add(initial, uint64(bits.ReverseBytes16(le)))
	if len(b) >= 4 {
		s, carry = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), 0)
		s += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		s, carry = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), 0)
		s += carry
		b = b[2:]
	}
	if len(b) == 1 {
		s, carry = bits.Add64(s, uint64(b[0])<<8, 0)
		s += carry
	}
	return s
}

// Add combines two partial sums.
func Add(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	return s + c
}

// Fold reduces a 64-bit accumulator to the 16-bit one's complement sum
// (not yet complemented).
func Fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Checksum is the Internet checksum of b: the complement of its folded sum.
func Checksum(b []byte) uint16 { return ^Fold(Sum(b, 0)) }

// PseudoHeaderSum is the partial sum of the IPv4 pseudo-header used by UDP
// and TCP (RFC 768, RFC 9293 section 3.1).
func PseudoHeaderSum(src, dst [4]byte, proto uint8, length int) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) +
		uint64(binary.BigEndian.Uint32(dst[:])) +
		uint64(proto) + uint64(length)
}

// UpdateChecksum returns the checksum field after one 16-bit word of the
// covered data changed from old to new (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
func UpdateChecksum(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return ^uint16(s)
}
