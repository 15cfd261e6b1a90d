package stack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// mplsExt4884 is an RFC 4884 extension structure (version 2, checksum
// set) with one MPLS label stack object (RFC 4950) of one entry.
func mplsExt4884() []byte {
	b := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0x00, 0x01, 0x01, 0x01}
	binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
	return b
}

// RFC4884Ext follows ip_icmp_error_rfc4884: the offset of the extension
// in the socket's payload, INVALID for a malformed structure (bad
// checksum, objects shorter than their header or past the end), nothing
// below 128 bytes of original datagram, past the message, or without
// room for the header; a version other than 2 is not checked.
func TestRFC4884Ext(t *testing.T) {
	ext := mplsExt4884()
	pad := make([]byte, 100) // a UDP payload: 128 bytes less 28 of headers
	with := func(e []byte) []byte { return append(append([]byte(nil), pad...), e...) }
	badSum := append([]byte(nil), ext...)
	badSum[3] ^= 1
	v1 := append([]byte(nil), badSum...)
	v1[0] = 0x10
	zeroSum := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0, 1, 1, 1}
	reSum := func(b []byte) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(b[2:], 0)
		binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
		return b
	}
	for _, c := range []struct {
		name     string
		orig, hl int
		payload  []byte
		n        uint16
		flags    uint8
		ok       bool
	}{
		{"valid", 128, 28, with(ext), 100, 0, true},
		{"raw hdrincl: nothing stripped", 128, 0, append(make([]byte, 128), ext...), 128, 0, true},
		{"bad checksum", 128, 28, with(badSum), 100, 1, true},
		{"version 1, bad checksum", 128, 28, with(v1), 100, 0, true},
		{"checksum zero", 128, 28, with(zeroSum), 100, 0, true},
		{"object under 4 bytes", 128, 28, with(reSum([]byte{0x20, 0, 0, 0, 0, 3, 1, 1})), 100, 1, true},
		{"object past the end", 128, 28, with(reSum([]byte{0x20, 0, 0, 0, 0, 12, 1, 1, 0, 1, 1, 1})), 100, 1, true},
		{"3 bytes after the object", 128, 28, with(reSum(append(append([]byte(nil), ext...), 0, 0, 0))), 100, 1, true},
		{"header only", 128, 28, with(reSum([]byte{0x20, 0, 0, 0})), 100, 0, true},
		{"3 bytes of header", 128, 28, with(ext[:3]), 0, 0, false},
		{"under 128 bytes", 124, 28, with(ext), 0, 0, false},
		{"headers longer than the length", 128, 200, with(ext), 0, 0, false},
		{"past the message", 256, 28, with(ext), 0, 0, false},
	} {
		n, flags, ok := RFC4884Ext(c.orig, c.hl, c.payload)
		if n != c.n || flags != c.flags || ok != c.ok {
			t.Errorf("%s: len %d flags %d ok %v, want %d %d %v", c.name, n, flags, ok, c.n, c.flags, c.ok)
		}
	}
}

// Every truncation and every one-byte corruption of a multi-part
// message is judged without a panic, and never reports an offset past
// the payload.
func TestRFC4884ExtMalformedNeverPanics(t *testing.T) {
	p := append(make([]byte, 100), mplsExt4884()...)
	p = append(p, 0, 12, 3, 1, 1, 2, 3, 4, 5, 6, 7, 8)
	for cut := 0; cut <= len(p); cut++ {
		for i := 100; i < cut; i++ {
			for _, v := range []byte{0, 1, 0x20, 0xff} {
				q := append([]byte(nil), p[:cut]...)
				q[i] = v
				if n, _, ok := RFC4884Ext(128, 28, q); ok && int(n)+4 > len(q) {
					t.Fatalf("cut %d byte %d=%#x: offset %d past a %d-byte payload", cut, i, v, n, len(q))
				}
			}
		}
	}
}

func FuzzRFC4884Ext(f *testing.F) {
	f.Add(128, 28, append(make([]byte, 100), mplsExt4884()...))
	f.Add(0, 0, []byte{})
	f.Fuzz(func(t *testing.T, orig, hl int, b []byte) {
		if n, _, ok := RFC4884Ext(orig, hl, b); ok && int(n)+4 > len(b) {
			t.Fatalf("offset %d past %d bytes", n, len(b))
		}
	})
}

// From the wire: with IP_RECVERR_RFC4884 a multi-part port unreachable
// reports where the extension starts in the UDP payload, a malformed
// one is flagged and counted; without the option ee_data stays 0. The
// read also carries the ICMP packet's headers for the control messages.
func TestRecvErrRFC4884FromWire(t *testing.T) {
	h := newHarness(t, Options{})
	to := netip.AddrPortFrom(peerAddr, 9)
	router := netip.MustParseAddr("10.0.0.254")
	bad := mplsExt4884()
	bad[2] ^= 0x40
	for _, c := range []struct {
		name    string
		on      bool
		ext     []byte
		n       uint16
		flags   uint8
		invalid uint64
	}{
		{"valid", true, mplsExt4884(), 100, 0, 0},
		{"option off", false, mplsExt4884(), 0, 0, 0},
		{"bad checksum", true, bad, 100, 1, 1},
	} {
		e := h.s.NewDgram(KindUDP, 0)
		e.SetRecvErr(false, true)
		e.SetRecvErrRFC4884(false, c.on)
		if e.RecvErrRFC4884(false) != c.on || e.RecvErrRFC4884(true) {
			t.Fatalf("%s: option reads %v/%v", c.name, e.RecvErrRFC4884(false), e.RecvErrRFC4884(true))
		}
		q := sentIP(t, h, e, make([]byte, 100), to) // 128 bytes of IP
		before := h.s.Stats().ICMP.RFC4884Invalid.Load()
		frame := icmpAbout(router, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 32<<16, append(q, c.ext...))
		frame[14+1] = 0x28 // the ICMP packet's TOS
		ip := wire.IPv4(frame[14:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], wire.Checksum(ip[:ip.HeaderLen()]))
		h.ep.inject(frame)
		buf := make([]byte, 256)
		n, full, m, carrier, err := e.ReadErrCtl(buf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.RFC4884Len != c.n || m.RFC4884Flags != c.flags || m.Data != 0 {
			t.Errorf("%s: rfc4884 len %d flags %d, want %d %d", c.name, m.RFC4884Len, m.RFC4884Flags, c.n, c.flags)
		}
		if got := h.s.Stats().ICMP.RFC4884Invalid.Load() - before; got != c.invalid {
			t.Errorf("%s: RFC4884Invalid counted %d, want %d", c.name, got, c.invalid)
		}
		if full != 100+len(c.ext) || string(buf[100:n]) != string(c.ext) {
			t.Errorf("%s: payload %d bytes, want the data and the extension", c.name, full)
		}
		want := ICMPCarrier{Dst: hostAddr, TTL: 64, TOS: 0x28, NIC: h.nic.ID(), PortOK: true}
		if carrier != want {
			t.Errorf("%s: carrier %+v, want %+v", c.name, carrier, want)
		}
		e.Close()
	}
}

// A local error has no carrier: no control messages describe it.
func TestRecvErrLocalHasNoCarrier(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	e.SetRecvErr(false, true)
	if err := e.SetPMTUDisc(false, PMTUDiscDo); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(make([]byte, 3000), netip.AddrPortFrom(peerAddr, 9), nil); err == nil {
		t.Fatal("a DF send over the MTU went out")
	}
	_, _, m, c, err := e.ReadErrCtl(nil)
	if err != nil || m.Origin != EEOriginLocal || c != (ICMPCarrier{}) {
		t.Fatalf("local error %+v carrier %+v %v", m, c, err)
	}
}

// Ping and raw sockets strip less of the quote than UDP: a ping socket's
// payload starts at the echo header, a raw socket's after the quoted IP
// header, so ee_rfc4884.len is the original datagram's 128 bytes less 20
// for both; each gets the ICMP's carrier too.
func TestRecvErrRFC4884PingAndRaw(t *testing.T) {
	h := newHarness(t, Options{})
	p := h.s.NewDgram(KindPing, 0)
	defer p.Close()
	r := h.s.NewDgram(KindRaw, wire.ProtoICMP)
	defer r.Close()
	for _, e := range []*DgramEndpoint{p, r} {
		e.SetRecvErr(false, true)
		e.SetRecvErrRFC4884(false, true)
	}
	echo := echoPayload(0, 7, make([]byte, 100))
	q := sentIP(t, h, p, echo, netip.AddrPortFrom(peerAddr, 0))
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPTimeExceeded, 0, 32<<16, append(q, mplsExt4884()...)))
	for name, e := range map[string]*DgramEndpoint{"ping": p, "raw": r} {
		buf := make([]byte, 256)
		n, _, m, c, err := e.ReadErrCtl(buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.RFC4884Len != 108 || m.RFC4884Flags != 0 || string(buf[108:n]) != string(mplsExt4884()) {
			t.Errorf("%s: rfc4884 len %d flags %d, payload tail %x", name, m.RFC4884Len, m.RFC4884Flags, buf[min(108, n):n])
		}
		if c.Dst != hostAddr || c.NIC != h.nic.ID() || c.TTL != 64 {
			t.Errorf("%s: carrier %+v", name, c)
		}
	}
}

// ICMPv6: the length counts 64-bit words (byte 4), for destination
// unreachable and time exceeded only; IPV6_RECVERR_RFC4884 governs it,
// and the carrier holds the ICMPv6 packet's hop limit and traffic class.
func TestRecvErrRFC4884IPv6(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 9)
	for _, c := range []struct {
		typ  uint8
		v4   bool // IP_RECVERR_RFC4884 instead of the IPv6 option
		want uint16
	}{
		{wire.ICMPv6DestUnreach, false, 80},
		{wire.ICMPv6TimeExceeded, false, 80},
		{wire.ICMPv6ParamProblem, false, 0},
		{wire.ICMPv6DestUnreach, true, 0},
	} {
		e := h.s.NewDgram(KindUDP, 0)
		e.SetInet6()
		e.SetRecvErr(true, true)
		e.SetRecvErrRFC4884(!c.v4, true)
		if _, err := e.SendTo(make([]byte, 80), to, nil); err != nil {
			t.Fatal(err)
		}
		out := h.sent()
		if len(out) != 1 || len(out[0].ip) != 128 {
			t.Fatalf("sent %d packets", len(out))
		}
		m := make([]byte, 8, 8+128+12)
		m[0], m[4] = c.typ, 16
		m = append(append(m, out[0].ip...), mplsExt4884()...)
		f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 37, m, 0)
		f[14], f[15] = 0x62, 0x80 // traffic class 0x28
		h.ep.inject(f)
		_, _, q, carrier, err := e.ReadErrCtl(make([]byte, 256))
		if err != nil {
			t.Fatalf("type %d: %v", c.typ, err)
		}
		if q.RFC4884Len != c.want || q.RFC4884Flags != 0 {
			t.Errorf("type %d (IPv4 option %v): rfc4884 len %d flags %d, want %d", c.typ, c.v4, q.RFC4884Len, q.RFC4884Flags, c.want)
		}
		if carrier.Dst != hostLL || carrier.TTL != 37 || carrier.TOS != 0x28 || carrier.NIC != h.nic.ID() {
			t.Errorf("type %d: carrier %+v", c.typ, carrier)
		}
		e.Close()
	}
}
