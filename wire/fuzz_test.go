package wire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (real captures, their
// layers, and crashers found so far). Every target must never panic and
// checks what a successful parse promises.

var fuzzPseudo = PseudoHeaderSum([4]byte{192, 168, 1, 10}, [4]byte{192, 168, 1, 1}, ProtoTCP, 0)

func FuzzParseEthernet(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEthernet(b)
		if err != nil {
			return
		}
		if e.HeaderLen != 14 && e.HeaderLen != 18 && e.HeaderLen != 22 || e.HeaderLen > len(b) {
			t.Fatalf("header len %d of %d", e.HeaderLen, len(b))
		}
		if e.Tagged != (e.HeaderLen > 14) {
			t.Fatalf("tagged %v with header len %d", e.Tagged, e.HeaderLen)
		}
		if got := binary.BigEndian.Uint16(b[e.HeaderLen-2:]); got != e.EtherType {
			t.Fatalf("ethertype %04x, bytes say %04x", e.EtherType, got)
		}
		if e.Dst != Ethernet(b).Dst() || e.Src != Ethernet(b).Src() || e.VLAN > 0xfff || e.Priority > 7 {
			t.Fatalf("fields disagree: %+v", e)
		}
	})
}

func FuzzParseARP(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseARP(b)
		if err != nil {
			return
		}
		out := make([]byte, ARPLen)
		a.Put(out)
		if !bytes.Equal(out, b[:ARPLen]) {
			t.Fatalf("round trip:\n got %x\nwant %x", out, b[:ARPLen])
		}
	})
}

func FuzzParseIPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseIPv4(b)
		if err != nil {
			return
		}
		hl, tl := h.HeaderLen(), h.TotalLen()
		if len(h) != tl || tl > len(b) || hl < 20 || hl > tl || !h.VerifyChecksum() {
			t.Fatalf("accepted hl %d tl %d len %d", hl, tl, len(b))
		}
		if len(h.Options()) != hl-20 || len(h.Payload()) != tl-hl {
			t.Fatal("options/payload out of bounds")
		}
		if h.flagsOff()&0x8000 != 0 {
			return // the reserved bit is not in IPv4Header
		}
		ih := IPv4Header{TOS: h.TOS(), TotalLen: tl, ID: h.ID(), DF: h.DF(), MF: h.MF(), FragOff: h.FragOffset(),
			TTL: h.TTL(), Protocol: h.Protocol(), Src: h.Src(), Dst: h.Dst(), Options: h.Options()}
		out := make([]byte, hl)
		if n := ih.Put(out); n != hl {
			t.Fatalf("Put wrote %d, want %d", n, hl)
		}
		if !bytes.Equal(out, h[:hl]) {
			// Only the checksum may differ, as 0x0000 vs 0xffff.
			c1, c2 := h.Checksum(), IPv4(out).Checksum()
			IPv4(out).SetChecksum(c1)
			if !bytes.Equal(out, h[:hl]) || c1 != 0xffff || c2 != 0 {
				t.Fatalf("round trip:\n got %x\nwant %x", out, h[:hl])
			}
		}
	})
}

// sameChecksum allows the one's complement ambiguity of zero.
func sameChecksum(a, b uint16) bool { return a == b || a|b == 0xffff && (a == 0 || b == 0) }

func FuzzParseICMPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseICMPv4(b)
		if err != nil {
			return
		}
		if len(m.Payload()) != len(b)-8 {
			t.Fatal("payload length")
		}
		c := ICMPv4(append([]byte(nil), m...))
		c.FillChecksum()
		if !sameChecksum(c.Checksum(), m.Checksum()) {
			t.Fatalf("checksum %04x verified but recomputes to %04x", m.Checksum(), c.Checksum())
		}
	})
}

func FuzzParseUDP(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ps := fuzzPseudo - uint64(ProtoTCP) + uint64(ProtoUDP)
		u, err := ParseUDP(b, ps)
		if err != nil {
			return
		}
		if len(u) != u.Length() || len(u) > len(b) || len(u) < 8 || len(u.Payload()) != len(u)-8 {
			t.Fatalf("accepted length %d of %d", u.Length(), len(b))
		}
		if u.Checksum() == 0 {
			return
		}
		c := UDP(append([]byte(nil), u...))
		c.FillChecksum(ps + uint64(len(c)))
		if c.Checksum() != u.Checksum() {
			t.Fatalf("checksum %04x verified but recomputes to %04x", u.Checksum(), c.Checksum())
		}
	})
}

func FuzzParseTCP(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseTCP(b, fuzzPseudo, false)
		if err != nil {
			if _, err2 := ParseTCP(b, fuzzPseudo, true); err2 == nil {
				t.Fatal("verify accepted what the structural parse rejected")
			}
			return
		}
		off := s.DataOffset()
		if off < 20 || off > len(b) || len(s.Options()) != off-20 || len(s.Payload()) != len(b)-off {
			t.Fatalf("offset %d len %d", off, len(b))
		}
		var o TCPOptions
		_ = ParseTCPOptions(s.Options(), &o)
		if _, err := ParseTCP(b, fuzzPseudo, true); err == nil {
			c := TCP(append([]byte(nil), s...))
			c.FillChecksum(fuzzPseudo + uint64(len(c)))
			if !sameChecksum(c.Checksum(), s.Checksum()) {
				t.Fatalf("checksum %04x verified but recomputes to %04x", s.Checksum(), c.Checksum())
			}
		}
	})
}

func FuzzParseTCPOptions(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var o TCPOptions
		if err := ParseTCPOptions(b, &o); err != nil {
			return
		}
		if o.NumSACK < 0 || o.NumSACK > len(o.SACK) || o.HasWScale && o.WScale > 14 {
			t.Fatalf("parsed %+v", o)
		}
		out := make([]byte, TCPMaxOptionsLen)
		n := o.Put(out)
		if n != o.Len() || n > TCPMaxOptionsLen || n%4 != 0 {
			t.Fatalf("Put wrote %d, Len %d", n, o.Len())
		}
		var p TCPOptions
		if err := ParseTCPOptions(out[:n], &p); err != nil {
			t.Fatalf("own encoding rejected: %v (%x)", err, out[:n])
		}
		// Put may drop SACK blocks that do not fit; everything else survives.
		want := o
		want.NumSACK = o.sackFit()
		for i := want.NumSACK; i < len(want.SACK); i++ {
			want.SACK[i] = SACKBlock{}
		}
		for i := p.NumSACK; i < len(p.SACK); i++ {
			p.SACK[i] = SACKBlock{}
		}
		if p != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v", p, want)
		}
	})
}
