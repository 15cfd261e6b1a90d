package wire

import (
	"math/rand/v2"
	"testing"
)

// Lengths that take the vector loop (and its scalar tail) agree with the
// RFC 1071 loop, at every alignment, with random bytes and with all-ones
// bytes (the largest word sums).
func TestChecksumLongAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 65535+8)
	lengths := []int{wideMin - 1, wideMin, wideMin + 1, 319, 320, 321, 1480, 1499, 1500, 9000, 65535}
	for n := wideMin - 8; n < wideMin+200; n++ {
		lengths = append(lengths, n)
	}
	for trial := 0; trial < 3; trial++ {
		for i := range buf {
			buf[i] = byte(r.Uint32())
			if trial == 1 {
				buf[i] = 0xff
			}
		}
		for align := 0; align < 8; align++ {
			for _, n := range lengths {
				b := buf[align : align+n]
				if got, want := Checksum(b), naiveChecksum(b); got != want {
					t.Fatalf("trial %d align %d len %d: got %04x want %04x", trial, align, n, got, want)
				}
				for _, init := range []uint64{0xffff, ^uint64(0) - 1} {
					got := Fold(Sum(b, init))
					ref := uint32(^naiveChecksum(b)) + uint32(Fold(init))
					ref = ref&0xffff + ref>>16
					if got != uint16(ref) && !(got == 0xffff && ref == 0) && !(got == 0 && ref == 0xffff) {
						t.Fatalf("len %d init %x: got %04x want %04x", n, init, got, ref)
					}
				}
			}
		}
	}
}
