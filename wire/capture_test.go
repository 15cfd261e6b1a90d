package wire

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// Frames as a Linux host (4.x-6.x defaults) puts them on the wire, written
// out byte by byte. Host A is 52:54:00:12:34:56 / 192.168.1.10, host B is
// 52:54:00:ab:cd:ef / 192.168.1.1. Checksums were computed outside Go and
// are verified independently with gopacket in gopacket_test.go.
var (
	arpRequest = unhex(`
	ff ff ff ff ff ff 52 54 00 12 34 56 08 06 00 01
	08 00 06 04 00 01 52 54 00 12 34 56 c0 a8 01 0a
	00 00 00 00 00 00 c0 a8 01 01
`)
	arpReplyPadded = unhex(`
	52 54 00 12 34 56 52 54 00 ab cd ef 08 06 00 01
	08 00 06 04 00 02 52 54 00 ab cd ef c0 a8 01 01
	52 54 00 12 34 56 c0 a8 01 0a 00 00 00 00 00 00
	00 00 00 00 00 00 00 00 00 00 00 00
`)
	icmpEcho = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 08 00 45 00
	00 54 3f 5c 40 00 40 01 77 f1 c0 a8 01 0a c0 a8
	01 01 08 00 ec 3b 1c 2e 00 01 d2 b6 a0 65 00 00
	00 00 b3 a5 0a 00 00 00 00 00 10 11 12 13 14 15
	16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25
	26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35
	36 37
`)
	dnsQuery = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 08 00 45 00
	00 39 8a 1d 40 00 40 11 2d 3b c0 a8 01 0a c0 a8
	01 01 d4 31 00 35 00 25 be 28 1a 2b 01 20 00 01
	00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63
	6f 6d 00 00 01 00 01
`)
	tcpSYN = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 08 00 45 00
	00 3c a1 b2 40 00 40 06 15 ae c0 a8 01 0a c0 a8
	01 01 c3 50 00 50 2f 1c 8a 3e 00 00 00 00 a0 02
	fa f0 f6 3f 00 00 02 04 05 b4 04 02 08 0a 1a 2b
	3c 4d 00 00 00 00 01 03 03 07
`)
	tcpSYNACK = unhex(`
	52 54 00 12 34 56 52 54 00 ab cd ef 08 00 45 00
	00 3c 00 00 40 00 40 06 b7 60 c0 a8 01 01 c0 a8
	01 0a 00 50 c3 50 7e 5d 1a 20 2f 1c 8a 3f a0 12
	fe 88 8b 28 00 00 02 04 05 b4 04 02 08 0a 5e 6f
	70 81 1a 2b 3c 4d 01 03 03 07
`)
	tcpSACK = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 08 00 45 00
	00 48 a1 b4 40 00 40 06 15 a0 c0 a8 01 0a c0 a8
	01 01 c3 50 00 50 2f 1c 8a 40 7e 5d 20 00 d0 10
	01 f5 a5 48 00 00 01 01 08 0a 1a 2b 3e 00 5e 6f
	72 00 01 01 05 12 7e 5d 25 a8 7e 5d 2b 50 7e 5d
	30 f8 7e 5d 36 a0
`)
	vlanEchoReplyPadded = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 81 00 a0 64
	08 00 45 00 00 1c 12 34 00 00 40 01 e5 51 c0 a8
	01 0a c0 a8 01 01 00 00 e3 cf 1c 2e 00 02 00 00
	00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
`)
	igmpRouterAlert = unhex(`
	01 00 5e 00 00 fb 52 54 00 12 34 56 08 00 46 c0
	00 20 00 00 40 00 01 02 41 6a c0 a8 01 0a e0 00
	00 fb 94 04 00 00 16 00 09 04 e0 00 00 fb
`)
	pingRecordRoute = unhex(`
	52 54 00 ab cd ef 52 54 00 12 34 56 08 00 4f 00
	00 7c 3f 5d 40 00 40 01 ab df c0 a8 01 0a c0 a8
	01 01 07 27 08 c0 a8 01 0a 00 00 00 00 00 00 00
	00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
	00 00 00 00 00 00 00 00 00 00 08 00 ec 3a 1c 2f
	00 01 d2 b6 a0 65 00 00 00 00 b3 a5 0a 00 00 00
	00 00 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d
	1e 1f 20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d
	2e 2f 30 31 32 33 34 35 36 37
`)
	icmpPortUnreach = unhex(`
	52 54 00 12 34 56 52 54 00 ab cd ef 08 00 45 c0
	00 44 5b 01 00 00 40 01 9b 9c c0 a8 01 01 c0 a8
	01 0a 03 03 80 7e 00 00 00 00 45 00 00 28 77 aa
	40 00 40 11 3f bf c0 a8 01 0a c0 a8 01 01 d4 31
	00 09 00 14 16 57 68 65 6c 6c 6f 20 77 6f 72 6c
	64 0a
`)
)

// captures names every literal frame for table-driven tests.
var captures = []struct {
	name  string
	frame []byte
}{
	{"arpRequest", arpRequest},
	{"arpReplyPadded", arpReplyPadded},
	{"icmpEcho", icmpEcho},
	{"dnsQuery", dnsQuery},
	{"tcpSYN", tcpSYN},
	{"tcpSYNACK", tcpSYNACK},
	{"tcpSACK", tcpSACK},
	{"vlanEchoReplyPadded", vlanEchoReplyPadded},
	{"igmpRouterAlert", igmpRouterAlert},
	{"pingRecordRoute", pingRecordRoute},
	{"icmpPortUnreach", icmpPortUnreach},
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var (
	macA = MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	macB = MAC{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	ipA  = netip.MustParseAddr("192.168.1.10")
	ipB  = netip.MustParseAddr("192.168.1.1")
)

// pingData is the 56-byte payload of Linux ping: a 16-byte timeval, then 0x10..0x37.
var pingData = unhex("d2b6a06500000000b3a50a0000000000 101112131415161718191a1b1c1d1e1f 202122232425262728292a2b2c2d2e2f 3031323334353637")

func mustEth(t *testing.T, f []byte) EthernetInfo {
	t.Helper()
	e, err := ParseEthernet(f)
	if err != nil {
		t.Fatalf("ParseEthernet: %v", err)
	}
	return e
}

func mustIP(t *testing.T, b []byte) IPv4 {
	t.Helper()
	h, err := ParseIPv4(b)
	if err != nil {
		t.Fatalf("ParseIPv4: %v", err)
	}
	return h
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got %x\nwant %x", what, got, want)
	}
}

func TestARPRequestCapture(t *testing.T) {
	e := mustEth(t, arpRequest)
	eq(t, "dst", e.Dst, BroadcastMAC)
	eq(t, "src", e.Src, macA)
	eq(t, "ethertype", e.EtherType, EtherTypeARP)
	eq(t, "header len", e.HeaderLen, 14)
	eq(t, "tagged", e.Tagged, false)
	if !e.Dst.IsBroadcast() || !e.Dst.IsMulticast() || e.Src.IsMulticast() {
		t.Error("broadcast/multicast bits wrong")
	}
	a, err := ParseARP(arpRequest[e.HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := ARPInfo{Op: ARPRequest, SenderMAC: macA, SenderIP: ipA, TargetIP: ipB}
	eq(t, "arp", a, want)
	v := ARP(arpRequest[14:])
	eq(t, "htype", v.HType(), 1)
	eq(t, "ptype", v.PType(), EtherTypeIPv4)
	eq(t, "hlen", v.HLen(), 6)
	eq(t, "plen", v.PLen(), 4)

	b := make([]byte, 14+ARPLen)
	PutEthernet(b, BroadcastMAC, macA, EtherTypeARP)
	want.Put(b[14:])
	sameBytes(t, "built ARP request", b, arpRequest)
}

func TestARPReplyCapture(t *testing.T) {
	e := mustEth(t, arpReplyPadded)
	eq(t, "dst", e.Dst, macA)
	eq(t, "src", e.Src, macB)
	// The frame was padded to 60 bytes on the wire; ARP ignores the tail.
	a, err := ParseARP(arpReplyPadded[e.HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := ARPInfo{Op: ARPReply, SenderMAC: macB, SenderIP: ipB, TargetMAC: macA, TargetIP: ipA}
	eq(t, "arp", a, want)
	b := make([]byte, 60)
	PutEthernet(b, macA, macB, EtherTypeARP)
	want.Put(b[14:])
	sameBytes(t, "built ARP reply", b, arpReplyPadded)
}

func TestICMPEchoCapture(t *testing.T) {
	e := mustEth(t, icmpEcho)
	eq(t, "ethertype", e.EtherType, EtherTypeIPv4)
	h := mustIP(t, icmpEcho[14:])
	eq(t, "version", h.Version(), 4)
	eq(t, "header len", h.HeaderLen(), 20)
	eq(t, "tos", h.TOS(), 0)
	eq(t, "total len", h.TotalLen(), 84)
	eq(t, "id", h.ID(), 0x3f5c)
	eq(t, "DF", h.DF(), true)
	eq(t, "MF", h.MF(), false)
	eq(t, "frag offset", h.FragOffset(), 0)
	eq(t, "is fragment", h.IsFragment(), false)
	eq(t, "ttl", h.TTL(), 64)
	eq(t, "proto", h.Protocol(), ProtoICMP)
	eq(t, "checksum", h.Checksum(), 0x77f1)
	eq(t, "src", h.Src(), ipA)
	eq(t, "dst", h.Dst(), ipB)
	eq(t, "options", len(h.Options()), 0)
	m, err := ParseICMPv4(h.Payload())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "type", m.Type(), ICMPEcho)
	eq(t, "code", m.Code(), 0)
	eq(t, "checksum", m.Checksum(), 0xec3b)
	eq(t, "id", m.ID(), 0x1c2e)
	eq(t, "seq", m.Seq(), 1)
	eq(t, "is error", m.IsError(), false)
	sameBytes(t, "payload", m.Payload(), pingData)

	b := make([]byte, len(icmpEcho))
	PutEthernet(b, macB, macA, EtherTypeIPv4)
	ih := IPv4Header{TotalLen: 84, ID: 0x3f5c, DF: true, TTL: 64, Protocol: ProtoICMP, Src: ipA, Dst: ipB}
	n := ih.Put(b[14:])
	eq(t, "ip header len", n, 20)
	mm := ICMPv4(b[14+n:])
	mm.SetType(ICMPEcho)
	mm.SetCode(0)
	mm.SetID(0x1c2e)
	mm.SetSeq(1)
	copy(mm.Payload(), pingData)
	mm.FillChecksum()
	sameBytes(t, "built echo request", b, icmpEcho)
}

func TestDNSQueryCapture(t *testing.T) {
	h := mustIP(t, dnsQuery[14:])
	eq(t, "proto", h.Protocol(), ProtoUDP)
	eq(t, "total len", h.TotalLen(), 57)
	u, err := ParseUDP(h.Payload(), h.PseudoSum(0))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "src port", u.SrcPort(), 54321)
	eq(t, "dst port", u.DstPort(), 53)
	eq(t, "length", u.Length(), 37)
	eq(t, "checksum", u.Checksum(), 0xbe28)
	dns := unhex("1a2b01200001000000000000 076578616d706c6503636f6d00 00010001")
	sameBytes(t, "payload", u.Payload(), dns)

	b := make([]byte, len(dnsQuery))
	PutEthernet(b, macB, macA, EtherTypeIPv4)
	ih := IPv4Header{TotalLen: 57, ID: 0x8a1d, DF: true, TTL: 64, Protocol: ProtoUDP, Src: ipA, Dst: ipB}
	n := ih.Put(b[14:])
	ub := UDP(b[14+n:])
	PutUDP(ub, 54321, 53, len(dns))
	copy(ub[UDPHeaderLen:], dns)
	ub.FillChecksum(IPv4(b[14:]).PseudoSum(ub.Length()))
	sameBytes(t, "built DNS query", b, dnsQuery)
}

// checkTCPCapture parses a captured segment, compares every field with
// want, and rebuilds it from want: Linux option layouts must come out
// byte for byte.
func checkTCPCapture(t *testing.T, frame []byte, src, dst netip.Addr, ipID uint16, want TCPHeader, wantOpts []byte, wantSum uint16) {
	t.Helper()
	h := mustIP(t, frame[14:])
	eq(t, "proto", h.Protocol(), ProtoTCP)
	eq(t, "src", h.Src(), src)
	eq(t, "dst", h.Dst(), dst)
	seg, err := ParseTCP(h.Payload(), h.PseudoSum(0), true)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "src port", seg.SrcPort(), want.SrcPort)
	eq(t, "dst port", seg.DstPort(), want.DstPort)
	eq(t, "seq", seg.Seq(), want.Seq)
	eq(t, "ack", seg.Ack(), want.Ack)
	eq(t, "flags", seg.Flags(), want.Flags)
	eq(t, "window", seg.Window(), want.Window)
	eq(t, "urgent", seg.Urgent(), 0)
	eq(t, "checksum", seg.Checksum(), wantSum)
	eq(t, "data offset", seg.DataOffset(), 20+len(wantOpts))
	sameBytes(t, "options", seg.Options(), wantOpts)
	eq(t, "payload len", len(seg.Payload()), 0)
	var o TCPOptions
	if err := ParseTCPOptions(seg.Options(), &o); err != nil {
		t.Fatal(err)
	}
	eq(t, "parsed options", o, want.Options)

	b := make([]byte, len(frame))
	PutEthernet(b, MAC(frame[0:6]), MAC(frame[6:12]), EtherTypeIPv4)
	ih := IPv4Header{TotalLen: h.TotalLen(), ID: ipID, DF: true, TTL: 64, Protocol: ProtoTCP, Src: src, Dst: dst}
	n := ih.Put(b[14:])
	eq(t, "header Len()", want.Len(), 20+len(wantOpts))
	tn := want.Put(b[14+n:])
	eq(t, "tcp header len", tn, want.Len())
	tb := TCP(b[14+n:])
	tb.FillChecksum(IPv4(b[14:]).PseudoSum(len(tb)))
	sameBytes(t, "built segment", b, frame)
}

func TestTCPSYNCapture(t *testing.T) {
	checkTCPCapture(t, tcpSYN, ipA, ipB, 0xa1b2, TCPHeader{
		SrcPort: 50000, DstPort: 80, Seq: 0x2f1c8a3e, Flags: TCPFlagSYN, Window: 64240,
		Options: TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 0x1a2b3c4d, HasWScale: true, WScale: 7},
	}, unhex("020405b4 0402 080a 1a2b3c4d 00000000 01 030307"), 0xf63f)
}

func TestTCPSYNACKCapture(t *testing.T) {
	checkTCPCapture(t, tcpSYNACK, ipB, ipA, 0, TCPHeader{
		SrcPort: 80, DstPort: 50000, Seq: 0x7e5d1a20, Ack: 0x2f1c8a3f, Flags: TCPFlagSYN | TCPFlagACK, Window: 65160,
		Options: TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 0x5e6f7081, TSEcr: 0x1a2b3c4d, HasWScale: true, WScale: 7},
	}, unhex("020405b4 0402 080a 5e6f7081 1a2b3c4d 01 030307"), 0x8b28)
}

func TestTCPSACKCapture(t *testing.T) {
	o := TCPOptions{HasTS: true, TSVal: 0x1a2b3e00, TSEcr: 0x5e6f7200, NumSACK: 2}
	o.SACK[0] = SACKBlock{0x7e5d25a8, 0x7e5d2b50}
	o.SACK[1] = SACKBlock{0x7e5d30f8, 0x7e5d36a0}
	checkTCPCapture(t, tcpSACK, ipA, ipB, 0xa1b4, TCPHeader{
		SrcPort: 50000, DstPort: 80, Seq: 0x2f1c8a40, Ack: 0x7e5d2000, Flags: TCPFlagACK, Window: 501, Options: o,
	}, unhex("0101080a 1a2b3e00 5e6f7200 01010512 7e5d25a8 7e5d2b50 7e5d30f8 7e5d36a0"), 0xa548)
}

func TestVLANCapture(t *testing.T) {
	e := mustEth(t, vlanEchoReplyPadded)
	eq(t, "tagged", e.Tagged, true)
	eq(t, "vlan", e.VLAN, 100)
	eq(t, "priority", e.Priority, 5)
	eq(t, "ethertype", e.EtherType, EtherTypeIPv4)
	eq(t, "header len", e.HeaderLen, 18)
	eq(t, "view ethertype", Ethernet(vlanEchoReplyPadded).EtherType(), EtherTypeVLAN)
	// 46 bytes after the tag, of which 28 are the packet: the view is trimmed.
	h := mustIP(t, vlanEchoReplyPadded[e.HeaderLen:])
	eq(t, "ip len", len(h), 28)
	eq(t, "DF", h.DF(), false)
	m, err := ParseICMPv4(h.Payload())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "type", m.Type(), ICMPEchoReply)
	eq(t, "seq", m.Seq(), 2)

	b := make([]byte, 64)
	PutEthernetVLAN(b, macB, macA, 100, 5, EtherTypeIPv4)
	ih := IPv4Header{TotalLen: 28, ID: 0x1234, TTL: 64, Protocol: ProtoICMP, Src: ipA, Dst: ipB}
	n := ih.Put(b[18:])
	mm := ICMPv4(b[18+n : 18+28])
	mm.SetType(ICMPEchoReply)
	mm.SetID(0x1c2e)
	mm.SetSeq(2)
	mm.FillChecksum()
	sameBytes(t, "built tagged frame", b, vlanEchoReplyPadded)
}

func TestQinQ(t *testing.T) {
	// 802.1ad outer tag (S-VLAN 10), 802.1Q inner tag (C-VLAN 100), then IPv4.
	f := unhex("525400abcdef 525400123456 88a8 000a 8100 0064 0800")
	f = append(f, vlanEchoReplyPadded[18:]...)
	e := mustEth(t, f)
	eq(t, "vlan", e.VLAN, 10)
	eq(t, "header len", e.HeaderLen, 22)
	eq(t, "ethertype", e.EtherType, EtherTypeIPv4)
	mustIP(t, f[22:])
}

func TestIGMPRouterAlertCapture(t *testing.T) {
	e := mustEth(t, igmpRouterAlert)
	eq(t, "multicast dst", e.Dst.IsMulticast(), true)
	h := mustIP(t, igmpRouterAlert[14:])
	eq(t, "header len", h.HeaderLen(), 24)
	eq(t, "tos", h.TOS(), 0xc0)
	eq(t, "ttl", h.TTL(), 1)
	eq(t, "proto", h.Protocol(), ProtoIGMP)
	sameBytes(t, "options", h.Options(), unhex("94040000"))
	eq(t, "igmp checksum ok", Fold(Sum(h.Payload(), 0)), 0xffff)

	b := make([]byte, len(igmpRouterAlert))
	PutEthernet(b, e.Dst, macA, EtherTypeIPv4)
	ih := IPv4Header{TOS: 0xc0, TotalLen: 32, DF: true, TTL: 1, Protocol: ProtoIGMP, Src: ipA,
		Dst: netip.MustParseAddr("224.0.0.251"), Options: unhex("940400")} // padded to 4 by Put
	n := ih.Put(b[14:])
	eq(t, "n", n, 24)
	copy(b[14+n:], unhex("16000904e00000fb"))
	sameBytes(t, "built IGMP report", b, igmpRouterAlert)
}

func TestRecordRouteCapture(t *testing.T) {
	h := mustIP(t, pingRecordRoute[14:])
	eq(t, "header len", h.HeaderLen(), 60)
	eq(t, "total len", h.TotalLen(), 124)
	o := h.Options()
	eq(t, "option type", o[0], 7)
	eq(t, "option len", o[1], 39)
	eq(t, "option pointer", o[2], 8)
	eq(t, "first recorded hop", netip.AddrFrom4([4]byte(o[3:7])), ipA)
	m, err := ParseICMPv4(h.Payload())
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "payload", m.Payload(), pingData)

	b := make([]byte, len(pingRecordRoute))
	copy(b, pingRecordRoute[:14])
	ih := IPv4Header{TotalLen: 124, ID: 0x3f5d, DF: true, TTL: 64, Protocol: ProtoICMP, Src: ipA, Dst: ipB, Options: o[:39]}
	n := ih.Put(b[14:])
	eq(t, "n", n, 60)
	copy(b[14+n:], h.Payload())
	sameBytes(t, "built ping -R", b, pingRecordRoute)
}

func TestICMPPortUnreachCapture(t *testing.T) {
	h := mustIP(t, icmpPortUnreach[14:])
	eq(t, "tos", h.TOS(), 0xc0)
	eq(t, "DF", h.DF(), false)
	m, err := ParseICMPv4(h.Payload())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "type", m.Type(), ICMPDestUnreach)
	eq(t, "code", m.Code(), ICMPPortUnreach)
	eq(t, "is error", m.IsError(), true)
	inner := mustIP(t, m.Payload())
	eq(t, "inner src", inner.Src(), ipA)
	eq(t, "inner dst", inner.Dst(), ipB)
	u, err := ParseUDP(inner.Payload(), inner.PseudoSum(0))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "inner dst port", u.DstPort(), 9)
	sameBytes(t, "inner payload", u.Payload(), []byte("hello world\n"))

	b := make([]byte, len(icmpPortUnreach))
	PutEthernet(b, macA, macB, EtherTypeIPv4)
	ih := IPv4Header{TOS: 0xc0, TotalLen: 68, ID: 0x5b01, TTL: 64, Protocol: ProtoICMP, Src: ipB, Dst: ipA}
	n := ih.Put(b[14:])
	mm := ICMPv4(b[14+n:])
	mm.SetType(ICMPDestUnreach)
	mm.SetCode(ICMPPortUnreach)
	mm.SetRest(0)
	copy(mm.Payload(), m.Payload())
	mm.FillChecksum()
	sameBytes(t, "built port unreachable", b, icmpPortUnreach)
}

func TestICMPFragNeeded(t *testing.T) {
	m := ICMPv4(make([]byte, 8))
	m.SetType(ICMPDestUnreach)
	m.SetCode(ICMPFragNeeded)
	m.SetRest(0xdeadbeef)
	m.SetNextHopMTU(1400)
	m.FillChecksum()
	sameBytes(t, "frag needed", m, unhex("0304 f783 0000 0578"))
	eq(t, "mtu", m.NextHopMTU(), 1400)
	if _, err := ParseICMPv4(m); err != nil {
		t.Fatal(err)
	}
}

func TestIPv4FragmentFields(t *testing.T) {
	b := make([]byte, 20+8)
	ih := IPv4Header{TotalLen: 28, ID: 4660, MF: true, FragOff: 1480, TTL: 64, Protocol: ProtoUDP, Src: ipA, Dst: ipB}
	ih.Put(b)
	h := mustIP(t, b)
	eq(t, "MF", h.MF(), true)
	eq(t, "DF", h.DF(), false)
	eq(t, "offset", h.FragOffset(), 1480)
	eq(t, "is fragment", h.IsFragment(), true)
	sameBytes(t, "flags/offset bytes", b[6:8], []byte{0x20, 0xb9})
	h.SetFragment(2960, false, false)
	eq(t, "last fragment", h.MF(), false)
	eq(t, "still fragment", h.IsFragment(), true)
	h.SetFragment(0, true, false)
	eq(t, "unfragmented", h.IsFragment(), false)
}

func TestSetters(t *testing.T) {
	b := make([]byte, 20)
	h := IPv4(b)
	b[0] = 0x45
	h.SetTOS(0x10)
	h.SetTotalLen(20)
	h.SetID(7)
	h.SetTTL(9)
	h.SetProtocol(ProtoTCP)
	h.SetSrc(ipA)
	h.SetDst(ipB)
	h.FillChecksum()
	eq(t, "checksum verifies", h.VerifyChecksum(), true)
	got := IPv4Header{TOS: h.TOS(), TotalLen: h.TotalLen(), ID: h.ID(), TTL: h.TTL(), Protocol: h.Protocol(), Src: h.Src(), Dst: h.Dst()}
	c := make([]byte, 20)
	got.Put(c)
	sameBytes(t, "setters vs Put", b, c)

	s := TCP(make([]byte, 20))
	s.SetSrcPort(1)
	s.SetDstPort(2)
	s.SetSeq(3)
	s.SetAck(4)
	s.SetDataOffset(20)
	s.SetFlags(TCPFlagFIN | TCPFlagACK)
	s.SetWindow(5)
	s.SetUrgent(6)
	s.SetChecksum(0)
	eq(t, "tcp bytes", hex.EncodeToString(s), "000100020000000300000004501100050000"+"0006")

	e := Ethernet(make([]byte, 14))
	e.SetDst(macA)
	e.SetSrc(macB)
	e.SetEtherType(EtherTypeIPv6)
	eq(t, "dst", e.Dst(), macA)
	eq(t, "src", e.Src(), macB)
	eq(t, "type", e.EtherType(), EtherTypeIPv6)
}

func TestMAC(t *testing.T) {
	m, err := ParseMAC("52:54:00:AB:cd:ef")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "mac", m, macB)
	eq(t, "string", m.String(), "52:54:00:ab:cd:ef")
	for _, bad := range []string{"", "52:54:00:ab:cd", "52:54:00:ab:cd:eg", "52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef:"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
}

func TestTCPOptionsSACKCap(t *testing.T) {
	// With timestamps only 3 SACK blocks fit in 40 bytes; with nothing
	// else, 4. Put must never write past 40 bytes.
	for _, c := range []struct {
		o    TCPOptions
		want int
	}{
		{TCPOptions{NumSACK: 4}, 4},
		{TCPOptions{NumSACK: 9}, 4},
		{TCPOptions{NumSACK: -1}, 0},
		{TCPOptions{HasTS: true, NumSACK: 4}, 3},
		{TCPOptions{HasTS: true, HasMSS: true, HasWScale: true, SACKPermitted: true, NumSACK: 4}, 2},
	} {
		o := c.o
		for i := range o.SACK {
			o.SACK[i] = SACKBlock{uint32(i * 100), uint32(i*100 + 50)}
		}
		b := make([]byte, 40)
		n := o.Put(b)
		eq(t, "Len", o.Len(), n)
		if n > 40 {
			t.Fatalf("Put wrote %d bytes", n)
		}
		var p TCPOptions
		if err := ParseTCPOptions(b[:n], &p); err != nil {
			t.Fatal(err)
		}
		eq(t, "blocks", p.NumSACK, c.want)
		for i := 0; i < p.NumSACK; i++ {
			eq(t, "block", p.SACK[i], o.SACK[i])
		}
	}
}

func TestIPv4HeaderLongOptions(t *testing.T) {
	ih := IPv4Header{TotalLen: 60, TTL: 1, Src: ipA, Dst: ipB, Options: bytes.Repeat([]byte{1}, 50)}
	eq(t, "Len", ih.Len(), 60)
	b := make([]byte, 60)
	ih.Put(b)
	h := mustIP(t, b)
	eq(t, "version", h.Version(), 4)
	eq(t, "header len", h.HeaderLen(), 60)
}

func TestWScaleClamp(t *testing.T) {
	var o TCPOptions
	if err := ParseTCPOptions(unhex("01 03 03 0f"), &o); err != nil {
		t.Fatal(err)
	}
	eq(t, "wscale", o.WScale, 14)
}

func TestTCPOptionsUnknownAndEnd(t *testing.T) {
	var o TCPOptions
	// Unknown kind 30 (MPTCP) skipped by length; End stops parsing even
	// before garbage.
	if err := ParseTCPOptions(unhex("1e 06 00 00 00 00 02 04 05 78 00 ff"), &o); err != nil {
		t.Fatal(err)
	}
	eq(t, "mss", o.MSS, 1400)
	// Wrong-length known options are ignored rather than misread.
	if err := ParseTCPOptions(unhex("02 03 05 08 05 00 03 02"), &o); err != nil {
		t.Fatal(err)
	}
	eq(t, "mss", o.HasMSS, false)
	eq(t, "ts", o.HasTS, false)
	eq(t, "wscale", o.HasWScale, false)
}
