package wire

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestIGMPv3ReportRoundTrip(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	g := netip.MustParseAddr("232.1.1.1")
	recs := []GroupRecord{{IGMPAllowNew, g, []netip.Addr{a, b}}, {IGMPChangeToExclude, netip.MustParseAddr("239.1.1.1"), nil}}
	buf := make([]byte, 64)
	n := PutIGMPv3Report(buf, recs)
	if n != 8+8+8+8 {
		t.Fatalf("length %d", n)
	}
	if Checksum(buf[:n]) != 0 {
		t.Fatal("checksum does not verify")
	}
	var got []GroupRecord
	if err := ParseIGMPv3Report(buf[:n], func(r GroupRecord) {
		r.Srcs = append([]netip.Addr(nil), r.Srcs...)
		got = append(got, r)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != IGMPAllowNew || !reflect.DeepEqual(got[0].Srcs, recs[0].Srcs) || got[1].Group != recs[1].Group || len(got[1].Srcs) != 0 {
		t.Fatalf("parsed %+v", got)
	}
	// A count the message cannot hold.
	buf[7] = 3
	if ParseIGMPv3Report(buf[:n], nil) == nil {
		t.Fatal("a third record past the end parsed")
	}
}

func TestIGMPv3Query(t *testing.T) {
	buf := make([]byte, 64)
	s := netip.MustParseAddr("10.9.9.9")
	n := PutIGMPv3Query(buf, netip.MustParseAddr("232.1.1.1"), 100, []netip.Addr{s})
	q, err := ParseIGMPv3Query(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if q.NumSources() != 1 || q.Source(0) != s || q.MaxResponse() != 10*time.Second || q.QRV() != 2 || q.QQI() != 125*time.Second {
		t.Fatalf("query fields %v %v %v", q.NumSources(), q.MaxResponse(), q.QQI())
	}
	// Floating-point code 0x8f: (0xf|0x10) << 3 = 248 tenths.
	buf[1] = 0x8f
	if q.MaxResponse() != 24800*time.Millisecond {
		t.Fatalf("code 0x8f = %v", q.MaxResponse())
	}
	if _, err := ParseIGMPv3Query(buf[:n-1]); err == nil {
		t.Fatal("a query shorter than its sources parsed")
	}
}

func TestMLDv2RecordsRoundTrip(t *testing.T) {
	g := netip.MustParseAddr("ff3e::8000:1")
	s := netip.MustParseAddr("2001:db8::1")
	buf := make([]byte, 128)
	n := PutMLDv2Records(buf, []GroupRecord{{MLDAllowNew, g, []netip.Addr{s}}})
	var got []GroupRecord
	if err := ParseMLDv2Records(ICMPv6(buf[:n]), func(r GroupRecord) {
		r.Srcs = append([]netip.Addr(nil), r.Srcs...)
		got = append(got, r)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Group != g || len(got[0].Srcs) != 1 || got[0].Srcs[0] != s {
		t.Fatalf("parsed %+v", got)
	}
}

func FuzzIGMPv3(f *testing.F) {
	buf := make([]byte, 64)
	n := PutIGMPv3Query(buf, netip.MustParseAddr("232.1.1.1"), 100, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	f.Add(append([]byte(nil), buf[:n]...))
	n = PutIGMPv3Report(buf, []GroupRecord{{IGMPAllowNew, netip.MustParseAddr("232.1.1.1"), []netip.Addr{netip.MustParseAddr("10.0.0.1")}}})
	f.Add(append([]byte(nil), buf[:n]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if q, err := ParseIGMPv3Query(b); err == nil {
			for i := 0; i < q.NumSources(); i++ {
				_ = q.Source(i)
			}
			_, _, _ = q.Group(), q.MaxResponse(), q.QQI()
		}
		total := 0
		if ParseIGMPv3Report(b, func(r GroupRecord) { total += IGMPv3RecordLen(r) }) == nil && 8+total > len(b) {
			t.Fatalf("records of %d bytes in a %d-byte report", total, len(b))
		}
	})
}

func FuzzMLDv2(f *testing.F) {
	buf := make([]byte, 128)
	n := PutMLDv2Records(buf, []GroupRecord{{MLDAllowNew, netip.MustParseAddr("ff3e::1"), []netip.Addr{netip.MustParseAddr("2001:db8::1")}}})
	f.Add(append([]byte(nil), buf[:n]...))
	f.Add(make([]byte, MLDv2QueryMin+16))
	f.Fuzz(func(t *testing.T, b []byte) {
		if q, err := ParseMLDQuery(ICMPv6(b)); err == nil && q.IsV2() {
			for i := 0; i < q.NumSources(); i++ {
				_ = q.Source(i)
			}
			_, _ = q.Group(), q.MaxResponse()
		}
		total := 0
		if ParseMLDv2Records(ICMPv6(b), func(r GroupRecord) { total += MLDv2RecordLen(r) }) == nil && 8+total > len(b) {
			t.Fatalf("records of %d bytes in a %d-byte report", total, len(b))
		}
	})
}
