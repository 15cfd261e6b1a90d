package wire

import "testing"

// chain builds an IPv6 packet (fixed header, next header first) with the
// given bytes after the fixed header.
func chain(first uint8, rest ...[]byte) IPv6 {
	b := make([]byte, IPv6HeaderLen)
	n := 0
	for _, r := range rest {
		b = append(b, r...)
		n += len(r)
	}
	(&IPv6Header{PayloadLen: n, NextHeader: first, HopLimit: 64, Src: ll1, Dst: ll2}).Put(b)
	return b
}

var (
	opts8  = func(next uint8) []byte { return []byte{next, 0, IPv6OptPadN, 4, 0, 0, 0, 0} }
	opts16 = func(next uint8) []byte { return append([]byte{next, 1, IPv6OptPadN, 12}, make([]byte, 12)...) }
	// AH with length field 4: (4+2)*4 = 24 bytes, a 12-byte ICV (RFC 4302).
	ah24    = func(next uint8) []byte { return append([]byte{next, 4}, make([]byte, 22)...) }
	frag0   = func(next uint8) []byte { b := make([]byte, 8); PutIPv6Frag(b, next, 0, true, 1); return b }
	frag8   = func(next uint8) []byte { b := make([]byte, 8); PutIPv6Frag(b, next, 8, true, 1); return b }
	tcp20   = make([]byte, 20)
	through = ChainSkipAH | ChainThroughFrag
)

func TestSkipIPv6Chain(t *testing.T) {
	for _, c := range []struct {
		name    string
		h       IPv6
		mode    IPv6ChainMode
		status  IPv6ChainStatus
		proto   uint8
		off     int
		nhOff   int
		headers int
		fragOff int
	}{
		{"no headers", chain(ProtoTCP, tcp20), 0, ChainDone, ProtoTCP, 40, 6, 0, -1},
		{"hbh, dstopts", chain(ProtoHopByHop, opts8(ProtoIPv6Opts), opts16(ProtoUDP), make([]byte, 8)), 0, ChainDone, ProtoUDP, 64, 48, 2, -1},
		{"AH ends the chain without ChainSkipAH", chain(ProtoAH, ah24(ProtoTCP), tcp20), 0, ChainDone, ProtoAH, 40, 6, 0, -1},
		{"AH is (len+2)*4 bytes", chain(ProtoAH, ah24(ProtoTCP), tcp20), ChainSkipAH, ChainDone, ProtoTCP, 64, 40, 1, -1},
		{"dstopts, AH, dstopts", chain(ProtoIPv6Opts, opts8(ProtoAH), ah24(ProtoIPv6Opts), opts8(ProtoUDP)), ChainSkipAH, ChainDone, ProtoUDP, 80, 72, 3, -1},
		{"fragment ends the chain", chain(ProtoIPv6Frag, frag0(ProtoIPv6Opts), opts8(ProtoTCP), tcp20), through &^ ChainThroughFrag, ChainDone, ProtoIPv6Frag, 40, 6, 0, 40},
		{"through a first fragment", chain(ProtoIPv6Frag, frag0(ProtoIPv6Opts), opts8(ProtoTCP), tcp20), through, ChainDone, ProtoTCP, 56, 48, 2, 40},
		{"later fragment", chain(ProtoIPv6Opts, opts8(ProtoIPv6Frag), frag8(ProtoTCP), tcp20), through, ChainLaterFragment, ProtoIPv6Frag, 48, 40, 1, 48},
		{"fragment cut short", chain(ProtoIPv6Frag, []byte{6, 0, 0, 0}), through, ChainTruncated, ProtoIPv6Frag, 40, 6, 0, 40},
		{"header past the end", chain(ProtoIPv6Opts, opts16(ProtoTCP)[:12]), 0, ChainTruncated, ProtoIPv6Opts, 40, 6, 0, -1},
		{"AH past the end", chain(ProtoAH, ah24(ProtoTCP)[:20]), ChainSkipAH, ChainTruncated, ProtoAH, 40, 6, 0, -1},
		{"under 8 bytes", chain(ProtoIPv6Route, []byte{6, 0, 0}), 0, ChainTruncated, ProtoIPv6Route, 40, 6, 0, -1},
		{"ends at the end", chain(ProtoIPv6Opts, opts8(ProtoIPv6NoNext)), 0, ChainDone, ProtoIPv6NoNext, 48, 40, 1, -1},
		{"upper layer absent", chain(ProtoIPv6Opts, opts8(ProtoTCP)), 0, ChainDone, ProtoTCP, 48, 40, 1, -1},
	} {
		var ch IPv6Chain
		st := SkipIPv6Chain(c.h, c.h.NextHeader(), IPv6HeaderLen, 6, c.mode, &ch)
		want := IPv6Chain{Proto: c.proto, Offset: c.off, NHOff: c.nhOff, Headers: c.headers, FragOff: c.fragOff}
		if st != c.status || ch != want {
			t.Errorf("%s: status %d %+v, want %d %+v", c.name, st, ch, c.status, want)
		}
	}
}

func TestSkipIPv6ChainLimit(t *testing.T) {
	var parts [][]byte
	for i := 0; i < IPv6MaxExtHeaders-1; i++ {
		parts = append(parts, opts8(ProtoIPv6Opts))
	}
	parts = append(parts, opts8(ProtoTCP), tcp20)
	var c IPv6Chain
	h := chain(ProtoIPv6Opts, parts...)
	if st := SkipIPv6Chain(h, h.NextHeader(), IPv6HeaderLen, 6, 0, &c); st != ChainDone || c.Headers != IPv6MaxExtHeaders || c.Proto != ProtoTCP {
		t.Fatalf("%d headers: status %d %+v", IPv6MaxExtHeaders, st, c)
	}
	parts[len(parts)-2] = opts8(ProtoIPv6Opts)
	parts = append(parts[:len(parts)-1], opts8(ProtoTCP), tcp20)
	h = chain(ProtoIPv6Opts, parts...)
	if st := SkipIPv6Chain(h, h.NextHeader(), IPv6HeaderLen, 6, 0, &c); st != ChainTooLong {
		t.Fatalf("%d headers: status %d %+v", IPv6MaxExtHeaders+1, st, c)
	}
}

// The lengths stepped agree with the judging walk on chains it accepts.
func TestSkipIPv6ChainAgreesWithWalk(t *testing.T) {
	for _, h := range []IPv6{
		chain(ProtoHopByHop, opts8(ProtoIPv6Route), []byte{ProtoIPv6Opts, 0, 0, 0, 0, 0, 0, 0}, opts8(ProtoTCP), tcp20),
		chain(ProtoIPv6Opts, opts8(ProtoIPv6Frag), frag0(ProtoUDP), make([]byte, 8)),
		chain(ProtoIPv6Opts, opts8(ProtoAH), ah24(ProtoTCP), tcp20),
	} {
		var e IPv6Ext
		var c IPv6Chain
		if xe := WalkIPv6Ext(h, &e); xe != nil {
			t.Fatalf("walk refused %x: %+v", h, xe)
		}
		SkipIPv6Chain(h, h.NextHeader(), IPv6HeaderLen, 6, 0, &c)
		if c.Proto != e.Proto || c.Offset != e.Offset || c.NHOff != e.NHOff || c.Headers != e.Headers || (c.FragOff >= 0) != e.Frag {
			t.Errorf("%x: skip %+v, walk %+v", h, c, e)
		}
	}
}

func TestSkipIPv6ChainNoAlloc(t *testing.T) {
	h := chain(ProtoIPv6Frag, frag0(ProtoAH), ah24(ProtoIPv6Opts), opts8(ProtoTCP), tcp20)
	var c IPv6Chain
	if a := testing.AllocsPerRun(100, func() { SkipIPv6Chain(h, h.NextHeader(), IPv6HeaderLen, 6, through, &c) }); a != 0 {
		t.Fatalf("%.1f allocations", a)
	}
	if c.Proto != ProtoTCP {
		t.Fatalf("%+v", c)
	}
}

// FuzzSkipIPv6Chain steps over any bytes in every mode: never a panic,
// offsets inside the buffer, the header it stops at named by NHOff, and
// within the header limit.
func FuzzSkipIPv6Chain(f *testing.F) {
	f.Add([]byte(chain(ProtoIPv6Frag, frag0(ProtoAH), ah24(ProtoIPv6Opts), opts8(ProtoTCP), tcp20)), uint8(3))
	f.Add([]byte(chain(ProtoHopByHop, opts16(ProtoIPv6Frag), frag8(ProtoUDP))), uint8(2))
	f.Add([]byte(chain(ProtoAH, []byte{ProtoAH, 255})), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		if len(b) < IPv6HeaderLen {
			return
		}
		h := IPv6(b)
		var c IPv6Chain
		st := SkipIPv6Chain(h, h.NextHeader(), IPv6HeaderLen, 6, IPv6ChainMode(mode&3), &c)
		if st > ChainTooLong || c.Offset < IPv6HeaderLen || c.Headers > IPv6MaxExtHeaders {
			t.Fatalf("status %d %+v", st, c)
		}
		if st != ChainTruncated && c.Offset > len(h) {
			t.Fatalf("offset %d past %d bytes", c.Offset, len(h))
		}
		if c.Offset > IPv6HeaderLen && h[c.NHOff] != c.Proto {
			t.Fatalf("byte %d is %d, not %d", c.NHOff, h[c.NHOff], c.Proto)
		}
		if c.FragOff >= 0 && (c.FragOff < IPv6HeaderLen || c.FragOff > c.Offset) {
			t.Fatalf("fragment header at %d, stop at %d", c.FragOff, c.Offset)
		}
	})
}
