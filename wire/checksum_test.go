package wire

import (
	"math/rand/v2"
	"testing"
)

// naiveChecksum is RFC 1071 section 4.1 transcribed: 16-bit words into a
// 32-bit accumulator, carries folded at the end.
func naiveChecksum(b []byte) uint16 {
	var s uint32
	for len(b) > 1 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	eq(t, "folded sum", Fold(Sum(b, 0)), 0xddf2)
	eq(t, "checksum", Checksum(b), 0x220d)
	// Byte-order independence: swapped input gives the swapped sum.
	s := []byte{0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6}
	eq(t, "swapped sum", Fold(Sum(s, 0)), 0xf2dd)
	// Summing in pieces at even boundaries gives the same result.
	eq(t, "split sum", Fold(Add(Sum(b[:2], 0), Sum(b[2:], 0))), 0xddf2)
	eq(t, "chained sum", Fold(Sum(b[4:], Sum(b[:4], 0))), 0xddf2)
}

func TestChecksumOddLength(t *testing.T) {
	eq(t, "one byte", Fold(Sum([]byte{0xab}, 0)), 0xab00)
	eq(t, "three bytes", Fold(Sum([]byte{0x12, 0x34, 0x56}, 0)), 0x6834)
	eq(t, "empty", Checksum(nil), 0xffff)
	eq(t, "all ones", Checksum([]byte{0xff, 0xff, 0xff}), 0x00ff)
	// Carries out of every word: 0xffff words sum to 0xffff, never 0.
	ff := make([]byte, 1001)
	for i := range ff {
		ff[i] = 0xff
	}
	for n := 2; n <= 1000; n += 2 {
		eq(t, "ffff words", Fold(Sum(ff[:n], 0)), 0xffff)
	}
}

func TestChecksumAllLengthsAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 208)
	for trial := 0; trial < 20; trial++ {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		if trial == 1 {
			for i := range buf {
				buf[i] = 0xff // maximal carries
			}
		}
		for align := 0; align < 8; align++ {
			for n := 0; n <= 200; n++ {
				b := buf[align : align+n]
				if got, want := Checksum(b), naiveChecksum(b); got != want {
					t.Fatalf("trial %d align %d len %d: got %04x want %04x", trial, align, n, got, want)
				}
			}
		}
	}
}

func TestChecksumInitialCarries(t *testing.T) {
	// A large running sum must not lose carries.
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 1500)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for _, init := range []uint64{0, 1, 0xffff, 0xffffffff, 1<<63 + 12345, ^uint64(0), ^uint64(0) - 1} {
		// ^0 is one's complement zero in 64 bits: it must act like 0 or
		// 0xffff after folding; compare folded values modulo that.
		got := Fold(Sum(b, init))
		want := Fold(Add(Sum(b, 0), init))
		if got != want {
			t.Errorf("init %x: Sum=%04x, Add=%04x", init, got, want)
		}
		ref := uint32(^naiveChecksum(b)) + uint32(Fold(init))
		ref = ref&0xffff + ref>>16
		if got != uint16(ref) && !(got == 0xffff && ref == 0) && !(got == 0 && ref == 0xffff) {
			t.Errorf("init %x: got %04x want %04x", init, got, ref)
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	// 192.168.1.10 -> 192.168.1.1, TCP, 40 bytes:
	// c0a8 + 010a + c0a8 + 0101 + 0006 + 0028 = 0x18389 -> 0x838a.
	s := PseudoHeaderSum(ipA.As4(), ipB.As4(), ProtoTCP, 40)
	eq(t, "pseudo", Fold(s), 0x838a)
}

func TestUpdateChecksumRFC1624(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 20000; trial++ {
		n := 2 + 2*r.IntN(40)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		hc := Checksum(b)
		w := 2 * r.IntN(n/2)
		old := uint16(b[w])<<8 | uint16(b[w+1])
		nw := uint16(r.Uint32())
		switch trial % 4 {
		case 1:
			nw = old // no change
		case 2:
			nw = ^old
		}
		b[w], b[w+1] = byte(nw>>8), byte(nw)
		got := UpdateChecksum(hc, old, nw)
		if want := Checksum(b); got != want {
			t.Fatalf("trial %d: update %04x -> %04x on %x: got %04x, recomputed %04x", trial, old, nw, b, got, want)
		}
	}
	// RFC 1624 section 4 case: the result must verify when the new sum is
	// all ones (checksum 0), where eqn. 2 would give the wrong 0xffff.
	b := []byte{0x00, 0x01, 0xff, 0xfe}
	hc := Checksum(b) // sum 0xffff -> 0x0000
	eq(t, "hc", hc, 0)
	got := UpdateChecksum(hc, 0x0001, 0x0002)
	b[1] = 2
	eq(t, "updated", got, Checksum(b))
}
