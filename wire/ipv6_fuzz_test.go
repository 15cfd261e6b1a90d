package wire

import (
	"net/netip"
	"testing"
)

// FuzzParseIPv6 parses a packet and walks its extension headers: never a
// panic, and every offset the walk reports lies inside the packet.
func FuzzParseIPv6(f *testing.F) {
	f.Add(build6(ll1, ll2, ProtoHopByHop, 1, append(ext(ProtoIPv6Frag, 5, 2, 0, 0, 1, 0), 17, 0, 0, 1, 0, 0, 0, 1), -1)[EthernetHeaderLen:])
	f.Add(build6(ll1, ll2, ProtoIPv6Route, 1, ext(ProtoUDP, 0, 1, 0, 0, 0, 0), -1)[EthernetHeaderLen:])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseIPv6(b)
		if err != nil {
			return
		}
		if len(h) != IPv6HeaderLen+h.PayloadLen() {
			t.Fatalf("length %d, payload length %d", len(h), h.PayloadLen())
		}
		var e IPv6Ext
		if xe := WalkIPv6Ext(h, &e); xe != nil {
			if !xe.Silent && (xe.Pointer < 0 || xe.Pointer >= len(h)) {
				t.Fatalf("pointer %d outside %d bytes", xe.Pointer, len(h))
			}
			return
		}
		if e.Offset < IPv6HeaderLen || e.Offset > len(h) || e.Headers > IPv6MaxExtHeaders {
			t.Fatalf("walk %+v of %d bytes", e, len(h))
		}
		if e.Frag && (e.FragOff+IPv6FragHeaderLen > len(h) || h[e.FragPrevNH] != ProtoIPv6Frag) {
			t.Fatalf("fragment header %+v", e)
		}
	})
}

// FuzzParseICMPv6 checks NDP and MLD parsing of any message.
func FuzzParseICMPv6(f *testing.F) {
	b := make([]byte, 200)
	n := PutRA(b, RAHeader{CurHopLimit: 64, RouterLifetime: 1800})
	n += PutNDPPrefixOpt(b[n:], netip.MustParsePrefix("2001:db8::/64"), PrefixFlagAuto, 1, 1)
	f.Add(append([]byte(nil), b[:n]...))
	f.Add(append([]byte(nil), b[:PutNS(b, ll2, mac1)]...))
	f.Add(append([]byte(nil), b[:PutMLDv2Report(b, []MLDRecord{{MLDModeIsExclude, IPv6AllMLDv2}})]...))
	pseudo := PseudoHeaderSum6(ll1.As16(), ll2.As16(), ProtoICMPv6, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Checksum made right so the fuzzer reaches the message parsers.
		if len(b) >= 4 {
			ICMPv6(b).FillChecksum(pseudo + uint64(len(b)))
		}
		m, err := ParseICMPv6(b, pseudo)
		if err != nil {
			return
		}
		var o NDPOptions
		if d, err := ParseNDP(m, &o); err == nil {
			if len(d) < NDPMinLen(m.Type()) || o.NPrefixes > len(o.Prefixes) {
				t.Fatalf("ndp %d bytes, %d prefixes", len(d), o.NPrefixes)
			}
			for _, p := range o.Prefixes[:o.NPrefixes] {
				if !p.Prefix.IsValid() {
					t.Fatal("invalid prefix accepted")
				}
			}
		}
		if m.Type() == ICMPv6MLDQuery {
			if q, err := ParseMLDQuery(m); err == nil {
				_ = q.Group()
				_ = q.MaxResponse()
			}
		}
		_ = ParseMLDv2Report(m, func(MLDRecord, int) {})
	})
}
