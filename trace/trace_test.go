package trace

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Captured frames (the same ones wire's tests check byte by byte): host A
// 52:54:00:12:34:56 / 192.168.1.10, host B 52:54:00:ab:cd:ef / 192.168.1.1.
var (
	arpRequest = unhex(`ffffffffffff 525400123456 0806 0001 0800 06 04 0001
		525400123456 c0a8010a 000000000000 c0a80101`)
	arpReplyPadded = unhex(`525400123456 525400abcdef 0806 0001 0800 06 04 0002
		525400abcdef c0a80101 525400123456 c0a8010a 000000000000000000000000000000000000`)
	icmpEcho = unhex(`525400abcdef 525400123456 0800
		4500 0054 3f5c 4000 4001 77f1 c0a8010a c0a80101
		0800 ec3b 1c2e 0001 d2b6a06500000000b3a50a0000000000
		101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637`)
	dnsQuery = unhex(`525400abcdef 525400123456 0800
		4500 0039 8a1d 4000 4011 2d3b c0a8010a c0a80101
		d431 0035 0025 be28 1a2b01200001000000000000 076578616d706c6503636f6d00 00010001`)
	tcpSYN = unhex(`525400abcdef 525400123456 0800
		4500 003c a1b2 4000 4006 15ae c0a8010a c0a80101
		c350 0050 2f1c8a3e 00000000 a002 faf0 f63f 0000
		020405b4 0402 080a 1a2b3c4d 00000000 01 030307`)
	tcpSYNACK = unhex(`525400123456 525400abcdef 0800
		4500 003c 0000 4000 4006 b760 c0a80101 c0a8010a
		0050 c350 7e5d1a20 2f1c8a3f a012 fe88 8b28 0000
		020405b4 0402 080a 5e6f7081 1a2b3c4d 01 030307`)
	tcpSACK = unhex(`525400abcdef 525400123456 0800
		4500 0048 a1b4 4000 4006 15a0 c0a8010a c0a80101
		c350 0050 2f1c8a40 7e5d2000 d010 01f5 a548 0000
		0101080a 1a2b3e00 5e6f7200 01010512 7e5d25a8 7e5d2b50 7e5d30f8 7e5d36a0`)
	vlanEchoReply = unhex(`525400abcdef 525400123456 8100 a064 0800
		4500 001c 1234 0000 4001 e551 c0a8010a c0a80101
		0000 e3cf 1c2e 0002 0000000000000000000000000000000000`)
	igmpRouterAlert = unhex(`01005e0000fb 525400123456 0800
		46c0 0020 0000 4000 0102 416a c0a8010a e00000fb 94040000
		1600 0904 e00000fb`)
	icmpPortUnreach = unhex(`525400123456 525400abcdef 0800
		45c0 0044 5b01 0000 4001 9b9c c0a80101 c0a8010a
		0303 807e 00000000
		4500 0028 77aa 4000 4011 3fbf c0a8010a c0a80101 d431 0009 0014 1657 68656c6c6f20776f726c640a`)
)

var (
	ipA = netip.MustParseAddr("10.0.0.1")
	ipB = netip.MustParseAddr("10.0.0.2")
)

// ipPacket builds a bare IPv4 packet from 10.0.0.1 to 10.0.0.2 around a
// transport payload whose checksum is filled in.
func ipPacket(proto uint8, l4 []byte, edit func(*wire.IPv4Header)) []byte {
	ih := wire.IPv4Header{TotalLen: 20 + len(l4), ID: 4660, TTL: 64, Protocol: proto, Src: ipA, Dst: ipB}
	if edit != nil {
		edit(&ih)
	}
	b := make([]byte, ih.Len()+len(l4))
	hl := ih.Len()
	ih.TotalLen = len(b)
	copy(b[hl:], l4)
	ih.Put(b)
	h := wire.IPv4(b)
	if ih.FragOff == 0 && !ih.MF {
		switch proto {
		case wire.ProtoTCP:
			wire.TCP(h.Payload()).FillChecksum(h.PseudoSum(len(l4)))
		case wire.ProtoUDP:
			wire.UDP(h.Payload()).FillChecksum(h.PseudoSum(len(l4)))
		case wire.ProtoICMP:
			wire.ICMPv4(h.Payload()).FillChecksum()
		}
	}
	return b
}

func tcpSeg(h wire.TCPHeader, payload string) []byte {
	b := make([]byte, h.Len()+len(payload))
	n := h.Put(b)
	copy(b[n:], payload)
	return b
}

func udpDgram(sport, dport uint16, payload string) []byte {
	b := make([]byte, 8+len(payload))
	wire.PutUDP(b, sport, dport, len(payload))
	copy(b[8:], payload)
	return b
}

func echo(typ uint8, id, seq uint16, n int) []byte {
	m := wire.ICMPv4(make([]byte, 8+n))
	m.SetType(typ)
	m.SetID(id)
	m.SetSeq(seq)
	return m
}

func TestLineCaptures(t *testing.T) {
	for _, c := range []struct {
		frame []byte
		want  string
	}{
		{arpRequest, "ARP, Request who-has 192.168.1.1 tell 192.168.1.10, length 28"},
		{arpReplyPadded, "ARP, Reply 192.168.1.1 is-at 52:54:00:ab:cd:ef, length 46"},
		{icmpEcho, "IP 192.168.1.10 > 192.168.1.1: ICMP echo request, id 7214, seq 1, length 64"},
		{dnsQuery, "IP 192.168.1.10.54321 > 192.168.1.1.53: UDP, length 29"},
		{tcpSYN, "IP 192.168.1.10.50000 > 192.168.1.1.80: Flags [S], seq 790399550, win 64240, options [mss 1460,sackOK,TS val 439041101 ecr 0,nop,wscale 7], length 0"},
		{tcpSYNACK, "IP 192.168.1.1.80 > 192.168.1.10.50000: Flags [S.], seq 2120030752, ack 790399551, win 65160, options [mss 1460,sackOK,TS val 1584361601 ecr 439041101,nop,wscale 7], length 0"},
		{tcpSACK, "IP 192.168.1.10.50000 > 192.168.1.1.80: Flags [.], seq 790399552, ack 2120032256, win 501, options [nop,nop,TS val 439041536 ecr 1584361984,nop,nop,sack 2 {2120033704:2120035152}{2120036600:2120038048}], length 0"},
		{vlanEchoReply, "vlan 100, p 5, IP 192.168.1.10 > 192.168.1.1: ICMP echo reply, id 7214, seq 2, length 8"},
		{igmpRouterAlert, "IP 192.168.1.10 > 224.0.0.251: igmp v2 report 224.0.0.251, length 8"},
		{icmpPortUnreach, "IP 192.168.1.1 > 192.168.1.10: ICMP 192.168.1.1 udp port 9 unreachable, length 48"},
	} {
		if got := Line(c.frame, true); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestLineBareIP(t *testing.T) {
	ts := wire.TCPOptions{HasTS: true, TSVal: 5, TSEcr: 6}
	for _, c := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"echo", ipPacket(wire.ProtoICMP, echo(wire.ICMPEcho, 1, 1, 56), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64"},
		{"udp", ipPacket(wire.ProtoUDP, udpDgram(49152, 7, "hello world\n"), nil),
			"IP 10.0.0.1.49152 > 10.0.0.2.7: UDP, length 12"},
		{"syn", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 49152, DstPort: 7321, Seq: 123, Flags: wire.TCPFlagSYN, Window: 65535,
			Options: wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 1, HasWScale: true, WScale: 7}}, ""), nil),
			"IP 10.0.0.1.49152 > 10.0.0.2.7321: Flags [S], seq 123, win 65535, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0"},
		{"push", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 49152, DstPort: 7, Seq: 1000, Ack: 2000, Flags: wire.TCPFlagPSH | wire.TCPFlagACK, Window: 502, Options: ts}, "hello world\n"), nil),
			"IP 10.0.0.1.49152 > 10.0.0.2.7: Flags [P.], seq 1000:1012, ack 2000, win 502, options [nop,nop,TS val 5 ecr 6], length 12"},
		{"fin", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 7, Ack: 8, Flags: wire.TCPFlagFIN | wire.TCPFlagACK, Window: 9}, ""), nil),
			"IP 10.0.0.1.1 > 10.0.0.2.2: Flags [F.], seq 7, ack 8, win 9, length 0"},
		{"rst", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 7, Flags: wire.TCPFlagRST}, ""), nil),
			"IP 10.0.0.1.1 > 10.0.0.2.2: Flags [R], seq 7, win 0, length 0"},
		{"ack", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 7, Ack: 8, Flags: wire.TCPFlagACK, Window: 9}, ""), nil),
			"IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.], seq 7, ack 8, win 9, length 0"},
		{"ecn syn urg", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 7, Flags: wire.TCPFlagSYN | wire.TCPFlagECE | wire.TCPFlagCWR | wire.TCPFlagURG, Urgent: 3}, ""), nil),
			"IP 10.0.0.1.1 > 10.0.0.2.2: Flags [SUEW], seq 7, win 0, urg 3, length 0"},
		{"no flags", ipPacket(wire.ProtoTCP, tcpSeg(wire.TCPHeader{SrcPort: 1, DstPort: 2}, ""), nil),
			"IP 10.0.0.1.1 > 10.0.0.2.2: Flags [none], seq 0, win 0, length 0"},
		{"first fragment", ipPacket(wire.ProtoUDP, udpDgram(49152, 7, strings.Repeat("x", 1472)), func(h *wire.IPv4Header) { h.MF = true }),
			"IP 10.0.0.1.49152 > 10.0.0.2.7: UDP frag (id 4660, offset 0, length 1480, more)"},
		{"middle fragment", ipPacket(wire.ProtoUDP, make([]byte, 1480), func(h *wire.IPv4Header) { h.MF, h.FragOff = true, 1480 }),
			"IP 10.0.0.1 > 10.0.0.2: UDP frag (id 4660, offset 1480, length 1480, more)"},
		{"last fragment", ipPacket(wire.ProtoICMP, make([]byte, 520), func(h *wire.IPv4Header) { h.FragOff = 2960 }),
			"IP 10.0.0.1 > 10.0.0.2: ICMP frag (id 4660, offset 2960, length 520, last)"},
		{"other proto", ipPacket(47, make([]byte, 12), nil),
			"IP 10.0.0.1 > 10.0.0.2: ip-proto-47, length 12"},
		{"ttl exceeded", ipPacket(wire.ProtoICMP, append(unhex("0b00000000000000"), icmpEcho[14:14+28]...), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP time exceeded in-transit, length 36"},
		{"frag needed", ipPacket(wire.ProtoICMP, append(unhex("0304000000000578"), tcpSYN[14:14+28]...), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP 192.168.1.1 unreachable - need to frag (mtu 1400), length 36"},
		{"tcp port unreachable", ipPacket(wire.ProtoICMP, append(unhex("0303000000000000"), tcpSYN[14:14+28]...), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP 192.168.1.1 tcp port 80 unreachable, length 36"},
		{"host unreachable", ipPacket(wire.ProtoICMP, append(unhex("0301000000000000"), tcpSYN[14:14+28]...), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP host 192.168.1.1 unreachable, length 36"},
		{"proto unreachable", ipPacket(wire.ProtoICMP, append(unhex("0302000000000000"), tcpSYN[14:14+28]...), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP 192.168.1.1 protocol 6 unreachable, length 36"},
		{"unreachable, short quote", ipPacket(wire.ProtoICMP, unhex("0303000000000000 4500"), nil),
			"IP 10.0.0.1 > 10.0.0.2: ICMP dest unreachable, code 3 (quoted header truncated), length 10"},
		{"ipv6", unhex("6000000000000000"), "IP6 truncated, length 8"},
	} {
		if got := Line(c.pkt, false); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestLineMalformed(t *testing.T) {
	clone := func(b []byte) []byte { return append([]byte(nil), b...) }
	fixIP := func(b []byte) []byte {
		h := wire.IPv4(b[14:])
		if h.HeaderLen() >= 20 && h.HeaderLen() <= len(h) {
			h.FillChecksum()
		}
		return b
	}
	edit := func(f []byte, fn func(b []byte)) []byte { b := clone(f); fn(b); return b }
	for _, c := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"short ethernet", arpRequest[:10], "Ethernet truncated, length 10"},
		{"short arp", arpRequest[:30], "ARP truncated, length 16"},
		{"arp not ethernet/ipv4", edit(arpRequest, func(b []byte) { b[15] = 6 }), "ARP, unsupported hardware type 6, protocol 0x0800, length 28"},
		{"short ip", icmpEcho[:30], "IP truncated, length 16"},
		{"empty ip", icmpEcho[:14], "IP truncated, length 0"},
		{"bad version", edit(icmpEcho, func(b []byte) { b[14] = 0x55 }), "IP bad version 5, length 84"},
		{"IHL < 5", fixIP(edit(icmpEcho, func(b []byte) { b[14] = 0x43 })), "IP 192.168.1.10 > 192.168.1.1: bad header length 12 (IHL 3), length 84"},
		{"total length beyond frame", icmpEcho[:60], "IP 192.168.1.10 > 192.168.1.1: truncated, total length 84 > 46 captured"},
		{"total length below header", fixIP(edit(icmpEcho, func(b []byte) { b[17] = 10 })), "IP 192.168.1.10 > 192.168.1.1: bad total length 10 < header 20"},
		{"bad ip option", fixIP(edit(igmpRouterAlert, func(b []byte) { b[35] = 9 })), "IP 192.168.1.10 > 224.0.0.251: bad options, length 32"},
		{"bad ip checksum", edit(icmpEcho, func(b []byte) { b[24], b[25] = 0, 0 }),
			"IP 192.168.1.10 > 192.168.1.1: ICMP echo request, id 7214, seq 1, length 64 [bad ip cksum 0x0000 -> 0x77f1]"},
		{"bad icmp checksum", edit(icmpEcho, func(b []byte) { b[36], b[37] = 0xec, 0x3c }),
			"IP 192.168.1.10 > 192.168.1.1: ICMP echo request, id 7214, seq 1, length 64 [bad icmp cksum 0xec3c -> 0xec3b]"},
		{"bad tcp checksum", edit(tcpSYN, func(b []byte) { b[50], b[51] = 0x12, 0x34 }),
			"IP 192.168.1.10.50000 > 192.168.1.1.80: Flags [S], seq 790399550, win 64240, options [mss 1460,sackOK,TS val 439041101 ecr 0,nop,wscale 7], length 0 [bad tcp cksum 0x1234 -> 0xf63f]"},
		{"bad udp checksum", edit(dnsQuery, func(b []byte) { b[40], b[41] = 0xbe, 0x29 }),
			"IP 192.168.1.10.54321 > 192.168.1.1.53: UDP, length 29 [bad udp cksum 0xbe29 -> 0xbe28]"},
		{"bad igmp checksum", edit(igmpRouterAlert, func(b []byte) { b[41] = 5 }),
			"IP 192.168.1.10 > 224.0.0.251: igmp v2 report 224.0.0.251, length 8 [bad igmp cksum 0x0905 -> 0x0904]"},
		{"udp length beyond payload", edit(dnsQuery, func(b []byte) { b[39] = 0x40 }),
			"IP 192.168.1.10.54321 > 192.168.1.1.53: UDP, bad length 64 (IP payload 37)"},
		{"udp truncated", fixIP(edit(dnsQuery[:40], func(b []byte) { b[17] = 26 })), "IP 192.168.1.10 > 192.168.1.1: UDP truncated, length 6"},
		{"tcp data offset < 5", edit(tcpSYN, func(b []byte) { b[46] = 0x40 }),
			"IP 192.168.1.10.50000 > 192.168.1.1.80: TCP bad data offset 16, length 40"},
		{"tcp data offset beyond", edit(tcpSYN, func(b []byte) { b[46] = 0xf0 }),
			"IP 192.168.1.10.50000 > 192.168.1.1.80: TCP bad data offset 60, length 40"},
		{"tcp truncated", fixIP(edit(tcpSYN[:44], func(b []byte) { b[17] = 30 })), "IP 192.168.1.10 > 192.168.1.1: TCP truncated, length 10"},
		{"bad tcp option", edit(tcpSYN, func(b []byte) { b[55] = 0x30 }),
			"IP 192.168.1.10.50000 > 192.168.1.1.80: Flags [S], seq 790399550, win 64240, options [bad opts], length 0 [bad tcp cksum 0xf63f -> 0xf613]"},
		{"icmp truncated", fixIP(edit(icmpEcho[:40], func(b []byte) { b[17] = 26 })), "IP 192.168.1.10 > 192.168.1.1: ICMP truncated, length 6"},
		{"unknown ethertype", edit(arpRequest, func(b []byte) { b[12], b[13] = 0x88, 0xcc }), "ethertype 0x88cc, length 28"},
	} {
		if got := Line(c.frame, true); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestLineNeverPanicsOnPrefixes(t *testing.T) {
	for _, f := range [][]byte{arpRequest, icmpEcho, dnsQuery, tcpSYN, tcpSACK, vlanEchoReply, igmpRouterAlert, icmpPortUnreach} {
		for n := 0; n <= len(f); n++ {
			if Line(f[:n], true) == "" {
				t.Errorf("empty line for %d-byte prefix", n)
			}
			if n >= 14 && Line(f[14:n], false) == "" {
				t.Errorf("empty line for bare %d-byte prefix", n-14)
			}
		}
	}
}

func FuzzLine(f *testing.F) {
	for _, b := range [][]byte{arpRequest, arpReplyPadded, icmpEcho, dnsQuery, tcpSYN, tcpSYNACK, tcpSACK, vlanEchoReply, igmpRouterAlert, icmpPortUnreach} {
		f.Add(b, true)
		f.Add(b[14:], false)
	}
	flt, err := ParseFilter("tcp and host 192.168.1.1 and (port 80 or not src net 10.0.0.0/8)")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, ethernet bool) {
		l := Line(b, ethernet)
		if l == "" || strings.ContainsAny(l, "\n\r") {
			t.Fatalf("line %q", l)
		}
		flt.Match(b, ethernet)
	})
}
