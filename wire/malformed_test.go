package wire

import (
	"errors"
	"testing"
)

// wantReason asserts err is a *ParseError for layer with reason r.
func wantReason(t *testing.T, what string, err error, layer string, r Reason) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("%s: err = %v, want %s %s", what, err, layer, r)
		return
	}
	if pe.Layer != layer || pe.Reason != r {
		t.Errorf("%s: err = %v, want %s: %s", what, err, layer, r)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// ipOf returns a copy of the IPv4 packet in a captured frame.
func ipOf(t *testing.T, frame []byte) []byte {
	t.Helper()
	e := mustEth(t, frame)
	return clone(mustIP(t, frame[e.HeaderLen:]))
}

func TestEthernetTruncated(t *testing.T) {
	for n := 0; n < 14; n++ {
		_, err := ParseEthernet(arpRequest[:n])
		wantReason(t, "untagged", err, "ethernet", ReasonTruncated)
	}
	// A tag announced but cut off.
	for n := 14; n < 18; n++ {
		_, err := ParseEthernet(vlanEchoReplyPadded[:n])
		wantReason(t, "tagged", err, "ethernet", ReasonTruncated)
	}
	if _, err := ParseEthernet(vlanEchoReplyPadded[:18]); err != nil {
		t.Errorf("18-byte tagged header: %v", err)
	}
}

func TestARPMalformed(t *testing.T) {
	a := arpRequest[14:]
	for n := 0; n < ARPLen; n++ {
		_, err := ParseARP(a[:n])
		wantReason(t, "truncated", err, "arp", ReasonTruncated)
	}
	for _, c := range []struct {
		name string
		off  int
		val  byte
	}{
		{"htype 6 (IEEE 802)", 1, 6},
		{"ptype IPv6", 2, 0x86},
		{"hlen 8", 4, 8},
		{"plen 16", 5, 16},
	} {
		b := clone(a)
		b[c.off] = c.val
		_, err := ParseARP(b)
		wantReason(t, c.name, err, "arp", ReasonBadField)
	}
}

// fixIPSum refills the header checksum so only the intended defect remains.
func fixIPSum(b []byte) {
	b[10], b[11] = 0, 0
	c := Checksum(b[:int(b[0]&15)*4])
	b[10], b[11] = byte(c>>8), byte(c)
}

func TestIPv4TruncatedEveryLength(t *testing.T) {
	for _, c := range captures {
		e := mustEth(t, c.frame)
		if e.EtherType != EtherTypeIPv4 {
			continue
		}
		p := ipOf(t, c.frame)
		hl := IPv4(p).HeaderLen()
		for n := 0; n < len(p); n++ {
			_, err := ParseIPv4(p[:n])
			switch {
			case n < 20:
				wantReason(t, c.name, err, "ipv4", ReasonTruncated)
			case n < hl:
				wantReason(t, c.name, err, "ipv4", ReasonBadHeaderLen)
			default:
				wantReason(t, c.name, err, "ipv4", ReasonBadLength)
			}
		}
	}
}

func TestIPv4Malformed(t *testing.T) {
	base := ipOf(t, pingRecordRoute) // 60-byte header with options
	plain := ipOf(t, icmpEcho)
	cases := []struct {
		name   string
		pkt    []byte
		edit   func(b []byte) []byte
		reason Reason
	}{
		{"version 6", plain, func(b []byte) []byte { b[0] = 0x65; fixIPSum(b); return b }, ReasonBadVersion},
		{"IHL 4", plain, func(b []byte) []byte { b[0] = 0x44; return b }, ReasonBadHeaderLen},
		{"IHL 0", plain, func(b []byte) []byte { b[0] = 0x40; return b }, ReasonBadHeaderLen},
		{"IHL beyond buffer", plain, func(b []byte) []byte { b[0] = 0x4f; return b[:40] }, ReasonBadHeaderLen},
		{"total length beyond frame", plain, func(b []byte) []byte { b[3]++; fixIPSum(b); return b }, ReasonBadLength},
		{"total length 65535", plain, func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; fixIPSum(b); return b }, ReasonBadLength},
		{"total length below header", plain, func(b []byte) []byte { b[2], b[3] = 0, 19; fixIPSum(b); return b }, ReasonBadLength},
		{"total length inside options", base, func(b []byte) []byte { b[2], b[3] = 0, 40; fixIPSum(b); return b }, ReasonBadLength},
		{"bad checksum", plain, func(b []byte) []byte { b[8]--; return b }, ReasonBadChecksum},
		{"bad checksum in options", base, func(b []byte) []byte { b[30] ^= 1; return b }, ReasonBadChecksum},
		{"option length 1", base, func(b []byte) []byte { b[21] = 1; fixIPSum(b); return b }, ReasonBadOption},
		{"option length 0", base, func(b []byte) []byte { b[21] = 0; fixIPSum(b); return b }, ReasonBadOption},
		{"option beyond header", base, func(b []byte) []byte { b[21] = 41; fixIPSum(b); return b }, ReasonBadOption},
		{"option type without length", base, func(b []byte) []byte { b[59] = 0x94; fixIPSum(b); return b }, ReasonBadOption},
		{"option after NOPs beyond header", ipOf(t, igmpRouterAlert), func(b []byte) []byte {
			b[20], b[21], b[22], b[23] = 1, 1, 0x94, 4
			fixIPSum(b)
			return b
		}, ReasonBadOption},
	}
	for _, c := range cases {
		b := c.edit(clone(c.pkt))
		_, err := ParseIPv4(b)
		wantReason(t, c.name, err, "ipv4", c.reason)
	}
	// End of option list stops the walk: garbage after it is padding.
	b := clone(base)
	b[20] = IPOptEnd
	b[21] = 0xff
	fixIPSum(b)
	if _, err := ParseIPv4(b); err != nil {
		t.Errorf("options after End: %v", err)
	}
}

func TestUDPMalformed(t *testing.T) {
	h := IPv4(ipOf(t, dnsQuery))
	ps := h.PseudoSum(0)
	u := clone(h.Payload())
	for n := 0; n < len(u); n++ {
		_, err := ParseUDP(u[:n], ps)
		if n < 8 {
			wantReason(t, "truncated", err, "udp", ReasonTruncated)
		} else {
			// The length field still says 37: it no longer fits.
			wantReason(t, "truncated", err, "udp", ReasonBadLength)
		}
	}
	setLen := func(n int) []byte { b := clone(u); UDP(b).SetLength(n); return b }
	for _, l := range []int{0, 7, len(u) + 1, 65535} {
		_, err := ParseUDP(setLen(l), ps)
		wantReason(t, "length mismatch", err, "udp", ReasonBadLength)
	}
	b := clone(u)
	b[len(b)-1] ^= 0x40
	_, err := ParseUDP(b, ps)
	wantReason(t, "bad checksum", err, "udp", ReasonBadChecksum)
	_, err = ParseUDP(u, ps+1)
	wantReason(t, "wrong pseudo-header", err, "udp", ReasonBadChecksum)
	// Checksum zero means "not computed" (RFC 768): accepted.
	b[6], b[7] = 0, 0
	if _, err := ParseUDP(b, ps); err != nil {
		t.Errorf("zero checksum: %v", err)
	}
	// A shorter length field than the IP payload trims (IP padding).
	p := append(clone(u), 0, 0, 0)
	if v, err := ParseUDP(p, ps); err != nil || len(v) != len(u) {
		t.Errorf("trailing bytes: len %d err %v", len(v), err)
	}
}

func TestTCPMalformed(t *testing.T) {
	h := IPv4(ipOf(t, tcpSACK))
	ps := h.PseudoSum(0)
	s := clone(h.Payload())
	off := TCP(s).DataOffset()
	for n := 0; n < len(s); n++ {
		_, err := ParseTCP(s[:n], ps, false)
		switch {
		case n < 20:
			wantReason(t, "truncated", err, "tcp", ReasonTruncated)
		case n < off:
			wantReason(t, "truncated options", err, "tcp", ReasonBadHeaderLen)
		}
	}
	for _, o := range []byte{0, 1, 4} {
		b := clone(s)
		b[12] = o<<4 | b[12]&15
		_, err := ParseTCP(b, ps, false)
		wantReason(t, "data offset < 5", err, "tcp", ReasonBadHeaderLen)
	}
	b := clone(s)
	b[12] = 0xf0
	_, err := ParseTCP(b, ps, false)
	wantReason(t, "data offset beyond buffer", err, "tcp", ReasonBadHeaderLen)
	b = clone(s)
	b[15] ^= 1
	_, err = ParseTCP(b, ps, true)
	wantReason(t, "bad checksum", err, "tcp", ReasonBadChecksum)
	if _, err := ParseTCP(b, ps, false); err != nil {
		t.Errorf("bad checksum without verify: %v", err)
	}
	_, err = ParseTCP(s, ps+1, true)
	wantReason(t, "wrong pseudo-header", err, "tcp", ReasonBadChecksum)
}

func TestTCPOptionsMalformed(t *testing.T) {
	for _, c := range []struct{ name, hex string }{
		{"length 0", "02 00 05 b4"},
		{"length 1", "01 01 08 01"},
		{"beyond list", "02 04 05 b4 08 0a 00 00"},
		{"kind without length", "02 04 05 b4 01 01 01 03"},
		{"SACK beyond list", "01 01 05 12 00 00 00 00"},
	} {
		var o TCPOptions
		err := ParseTCPOptions(unhex(c.hex), &o)
		wantReason(t, c.name, err, "tcp", ReasonBadOption)
	}
}

func TestICMPMalformed(t *testing.T) {
	for _, c := range captures {
		e := mustEth(t, c.frame)
		if e.EtherType != EtherTypeIPv4 || mustIP(t, c.frame[e.HeaderLen:]).Protocol() != ProtoICMP {
			continue
		}
		m := clone(mustIP(t, c.frame[e.HeaderLen:]).Payload())
		for n := 0; n < len(m); n++ {
			_, err := ParseICMPv4(m[:n])
			if n < 8 {
				wantReason(t, c.name, err, "icmpv4", ReasonTruncated)
			} else {
				wantReason(t, c.name, err, "icmpv4", ReasonBadChecksum)
			}
		}
		m[0] ^= 0x10
		_, err := ParseICMPv4(m)
		wantReason(t, c.name+" flipped bit", err, "icmpv4", ReasonBadChecksum)
	}
}

func TestParseErrorText(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{errIPIHL, "ipv4: bad header length: IHL < 5"},
		{errTCPChecksum, "tcp: bad checksum"},
		{errARPFormat, "arp: bad field: not Ethernet/IPv4"},
	} {
		eq(t, "Error()", c.err.Error(), c.want)
	}
	eq(t, "unknown reason", Reason(0).String(), "unknown")
	eq(t, "unknown reason", reasonCount.String(), "unknown")
	for r := ReasonTruncated; r < reasonCount; r++ {
		if r.String() == "unknown" || r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	frame := tcpSYN
	n := testing.AllocsPerRun(100, func() {
		e, _ := ParseEthernet(frame)
		h, _ := ParseIPv4(frame[e.HeaderLen:])
		s, _ := ParseTCP(h.Payload(), h.PseudoSum(0), true)
		var o TCPOptions
		_ = ParseTCPOptions(s.Options(), &o)
		_, _ = ParseIPv4(frame[:10]) // error path too
	})
	if n != 0 {
		t.Errorf("parse allocates %.1f times", n)
	}
}
