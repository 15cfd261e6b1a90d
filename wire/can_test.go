package wire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// A can_frame as Python's struct.pack("=IB3x8s", 0x123, 4, b"\xde\xad\xbe\xef") packs it.
var pyFrame = []byte{0x23, 0x01, 0x00, 0x00, 4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0}

func TestCANFrameLayout(t *testing.T) {
	var f CANFrame
	if err := ParseCANFrame(pyFrame, &f); err != nil {
		t.Fatal(err)
	}
	if f.ID != 0x123 || f.Len != 4 || f.IsFD() || !bytes.Equal(f.Payload(), []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Fatalf("parsed %+v", f)
	}
	var b [CANFDMTU]byte
	if n := PutCANFrame(b[:], &f); n != 16 || !bytes.Equal(b[:n], pyFrame) {
		t.Fatalf("emit % x", b[:n])
	}
	// FD: 72 bytes, flags at offset 5, FDF never on the socket layout.
	fd := CANFrame{ID: 0x1ABCDEF | CANEffFlag, Len: 12, Flags: CANFDFDF | CANFDBRS}
	for i := range 12 {
		fd.Data[i] = byte(i)
	}
	if n := PutCANFrame(b[:], &fd); n != 72 || b[5] != CANFDBRS || b[4] != 12 || binary.NativeEndian.Uint32(b[:]) != 0x81ABCDEF {
		t.Fatalf("fd emit % x", b[:8])
	}
	var g CANFrame
	if err := ParseCANFrame(b[:72], &g); err != nil || g != fd {
		t.Fatalf("fd round trip %v %+v", err, g)
	}
}

func TestCANFrameErrors(t *testing.T) {
	var f CANFrame
	if err := ParseCANFrame(pyFrame[:15], &f); err == nil {
		t.Fatal("short frame accepted")
	}
	if err := ParseCANFrame(make([]byte, 17), &f); err == nil {
		t.Fatal("17-byte frame accepted")
	}
	bad := bytes.Clone(pyFrame)
	bad[4] = 9
	if err := ParseCANFrame(bad, &f); err == nil {
		t.Fatal("classic len 9 accepted")
	}
	fd := make([]byte, 72)
	fd[4] = 65
	if err := ParseCANFrame(fd, &f); err == nil {
		t.Fatal("fd len 65 accepted")
	}
}

func TestCANFDLengths(t *testing.T) {
	valid := map[int]bool{}
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64} {
		valid[n] = true
	}
	for n := -1; n <= 70; n++ {
		if CANFDValidLen(n) != valid[n] {
			t.Errorf("CANFDValidLen(%d) = %v", n, !valid[n])
		}
	}
	if CANFDLenToDLC(9) != 9 || CANFDLenToDLC(13) != 10 || CANFDLenToDLC(64) != 15 || CANFDDLCToLen(13) != 32 {
		t.Fatal("dlc mapping")
	}
}

func TestSocketCANPcapLayout(t *testing.T) {
	f := CANFrame{ID: 0x123, Len: 2, Data: [64]byte{0xaa, 0xbb}}
	var b [72]byte
	n := PutSocketCANPcap(b[:], &f)
	want := []byte{0, 0, 1, 0x23, 2, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("pcap % x", b[:n])
	}
	fd := CANFrame{ID: 0x7E0, Len: 64, Flags: CANFDFDF | CANFDBRS}
	if n := PutSocketCANPcap(b[:], &fd); n != 72 || b[5] != CANFDFDF|CANFDBRS {
		t.Fatalf("fd pcap % x", b[:8])
	}
	var g CANFrame
	if err := ParseSocketCANPcap(b[:72], &g); err != nil || g != fd {
		t.Fatalf("%v %+v", err, g)
	}
}

func TestCANEth(t *testing.T) {
	var b [CANEthHeaderLen + 2*CANEthFrameLen]byte
	f1 := CANFrame{ID: 0x123, Len: 3, Data: [64]byte{1, 2, 3}}
	f2 := CANFrame{ID: 0x1234567 | CANEffFlag | CANRtrFlag, Len: 0}
	PutCANEthHeader(b[:], 2)
	PutCANEthFrame(b[10:], &f1)
	PutCANEthFrame(b[25:], &f2)
	if string(b[:8]) != "ISO11898" || b[8] != 1 || b[9] != 2 || b[10] != 0x23 || b[11] != 0x01 || b[14] != 3 || b[38] != 1 || b[39] != 1 {
		t.Fatalf("% x", b)
	}
	n, err := CANEthFrames(b[:])
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	var g CANFrame
	if ParseCANEthFrame(b[:], 0, &g) != nil || g != f1 {
		t.Fatalf("%+v", g)
	}
	if ParseCANEthFrame(b[:], 1, &g) != nil || g != f2 {
		t.Fatalf("%+v", g)
	}
	if _, err := CANEthFrames(b[:20]); err == nil {
		t.Fatal("short packet accepted")
	}
	b[13] = 0x08 // std id beyond 11 bits
	if ParseCANEthFrame(b[:], 0, &g) == nil {
		t.Fatal("bad std id accepted")
	}
}

func TestCANArbitrationKey(t *testing.T) {
	order := []CANFrame{
		{ID: 0x100},                      // std data
		{ID: 0x100 | CANRtrFlag},         // std remote loses to data
		{ID: 0x100<<18 | CANEffFlag},     // ext with the same base loses to std (IDE recessive)
		{ID: 0x100<<18 | 5 | CANEffFlag}, // higher ext bits lose
		{ID: 0x101},                      // higher base
		{ID: 0x7FF | CANRtrFlag},
	}
	for i := 1; i < len(order); i++ {
		if CANArbKey(&order[i-1]) >= CANArbKey(&order[i]) {
			t.Errorf("frame %d (%#x) should win over %d (%#x)", i-1, order[i-1].ID, i, order[i].ID)
		}
	}
}

func TestCANFrameBits(t *testing.T) {
	// Id 0, DLC 0: 34 zero bits from SOF to CRC (the CRC of zeros is 0),
	// one stuff bit after every five: 6; plus 13 fixed bits.
	var f CANFrame
	if n, d := CANFrameBits(&f); n != 34+6+13 || d != 0 {
		t.Fatalf("zero frame: %d bits", n)
	}
	// Alternating bits need no stuffing except where the CRC needs it:
	// 8 data bytes of 0x55 with id 0x555 give at least 47+64 bits.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		f := CANFrame{ID: r.Uint32() & CANSffMask, Len: uint8(r.IntN(9))}
		eff := r.IntN(2) == 1
		if eff {
			f.ID = r.Uint32()&CANEffMask | CANEffFlag
		}
		for i := range f.Len {
			f.Data[i] = byte(r.Uint32())
		}
		n, _ := CANFrameBits(&f)
		base := 47 + 8*int(f.Len)
		region := 34 + 8*int(f.Len)
		if eff {
			base += 20
			region += 20
		}
		// Worst-case stuffing is one bit per four after the first five.
		if n < base || n > base+(region-1)/4 {
			t.Fatalf("%#x len %d: %d bits outside [%d, %d]", f.ID, f.Len, n, base, base+(region-1)/4)
		}
	}
	fd := CANFrame{ID: 0x123, Len: 64, Flags: CANFDFDF | CANFDBRS}
	n, d := CANFrameBits(&fd)
	if n < 20 || n > 40 || d < 64*8+30 || d > 64*8+30+140 {
		t.Fatalf("fd brs bits %d nominal %d data", n, d)
	}
}

func FuzzCANFrame(f *testing.F) {
	f.Add(pyFrame)
	f.Add(make([]byte, 72))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr CANFrame
		if ParseCANFrame(b, &fr) != nil {
			return
		}
		var out [72]byte
		n := PutCANFrame(out[:], &fr)
		var g CANFrame
		if err := ParseCANFrame(out[:n], &g); err != nil || g != fr {
			t.Fatalf("round trip: %v %+v %+v", err, fr, g)
		}
		CANFrameBits(&fr)
		CANArbKey(&fr)
		PutSocketCANPcap(out[:], &fr)
	})
}

func FuzzCANEth(f *testing.F) {
	f.Add([]byte("ISO11898\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := CANEthFrames(b)
		if err != nil {
			return
		}
		var fr CANFrame
		for i := range n {
			_ = ParseCANEthFrame(b, i, &fr)
		}
	})
}

func FuzzSocketCANPcap(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0x23, 2, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr CANFrame
		_ = ParseSocketCANPcap(b, &fr)
	})
}
