package stack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// srhFinal is a final destination with no route on the test host: a
// packet reaches the link only by going to its first segment.
var srhFinal = netip.MustParseAddr("2001:db8:99::5")

// testSRH is a Segment Routing Header (type 4) with segments (segments[0]
// a placeholder the stack overwrites), segments left sl, last entry
// len-1, and tlv after the segments.
func testSRH(sl int, tlv []byte, segs ...netip.Addr) []byte {
	h := make([]byte, 8, 8+16*len(segs)+len(tlv))
	for _, a := range segs {
		b := a.As16()
		h = append(h, b[:]...)
	}
	h = append(h, tlv...)
	h[0], h[1], h[2], h[3], h[4] = 0xff, byte(len(h)/8-1), 4, byte(sl), byte(len(segs)-1)
	h[6], h[7] = 0x12, 0x34 // tag
	return h
}

// walk6 gives the extension headers of ip in order (next header type of
// each, its bytes) up to the first non-extension header, and where that is.
func walk6(ip wire.IPv6) (types []uint8, hdrs [][]byte, upper uint8, off int) {
	nh, off := ip.NextHeader(), wire.IPv6HeaderLen
	for {
		switch nh {
		case wire.ProtoHopByHop, wire.ProtoIPv6Opts, wire.ProtoIPv6Route:
			l := (int(ip[off+1]) + 1) * 8
			types, hdrs = append(types, nh), append(hdrs, ip[off:off+l])
			nh, off = ip[off], off+l
		case wire.ProtoIPv6Frag: // the chain's end here: a fragment follows
			types, hdrs = append(types, nh), append(hdrs, ip[off:off+8])
			return types, hdrs, ip[off], off + 8
		default:
			return types, hdrs, nh, off
		}
	}
}

// A sticky SRH: the packet goes to the first segment (fixed header and
// link address), the chain is Hop-by-Hop, routing-header Destination
// Options, the SRH (final destination in segments[0], the rest as given),
// Destination Options, UDP, and the UDP checksum covers the final
// destination.
func TestSRHSendUDP(t *testing.T) {
	ep, e := ext6Sender(t)
	hop, d0, d1 := ext6Hdr(1, 0xaa), ext6Hdr(1, 0xcc), ext6Hdr(2, 0xbb)
	srh := testSRH(1, nil, netip.MustParseAddr("::"), peer6)
	e.SetExt6(&SendExt6{Hop: hop, RthdrDst: d0, Rt: srh, Dst: d1})
	if _, err := e.SendTo([]byte("hello"), netip.AddrPortFrom(srhFinal, 9), nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 1 {
		t.Fatalf("%d frames", len(fs))
	}
	if !bytes.Equal(fs[0][:6], peerMAC[:]) {
		t.Fatalf("link destination %x", fs[0][:6])
	}
	ip := wire.IPv6(fs[0][14:])
	if ip.Dst() != peer6 {
		t.Fatalf("fixed header destination %v, want the first segment %v", ip.Dst(), peer6)
	}
	types, hdrs, upper, off := walk6(ip)
	want := []uint8{wire.ProtoHopByHop, wire.ProtoIPv6Opts, wire.ProtoIPv6Route, wire.ProtoIPv6Opts}
	if !bytes.Equal(types, want) || upper != wire.ProtoUDP {
		t.Fatalf("chain %v then %d, want %v then UDP", types, upper, want)
	}
	if !bytes.Equal(hdrs[0][1:], hop[1:]) || !bytes.Equal(hdrs[1][1:], d0[1:]) || !bytes.Equal(hdrs[3][1:], d1[1:]) {
		t.Fatal("options headers changed")
	}
	rt := hdrs[2]
	fb := srhFinal.As16()
	if !bytes.Equal(rt[1:8], srh[1:8]) || !bytes.Equal(rt[8:24], fb[:]) || !bytes.Equal(rt[24:], srh[24:]) {
		t.Fatalf("SRH %x, sent %x", srh, rt)
	}
	if int(ip.PayloadLen()) != len(ip)-40 {
		t.Fatalf("payload length %d of %d", ip.PayloadLen(), len(ip)-40)
	}
	udp := ip[off:]
	if wire.Fold(wire.Sum(udp, wire.PseudoHeaderSum6(ip.Src16(), fb, wire.ProtoUDP, len(udp)))) != 0xffff {
		t.Fatal("UDP checksum not over the final destination")
	}
	if string(udp[8:]) != "hello" {
		t.Fatalf("payload %q", udp[8:])
	}
	// Without the routing header the routing-header options go too.
	e.SetExt6(&SendExt6{RthdrDst: d0})
	if _, err := e.SendTo([]byte("x"), netip.AddrPortFrom(peer6, 9), nil); err != nil {
		t.Fatal(err)
	}
	if types, _, _, _ := walk6(wire.IPv6(ep.take()[0][14:])); len(types) != 0 {
		t.Fatalf("no routing header, yet %v sent", types)
	}
}

// segments_left picks the segment the packet goes to: with 1 left of
// [final, peer6, other] it goes to segments[1], not the last entry; the
// TLVs after the segments go as given.
func TestSRHSegmentsLeft(t *testing.T) {
	ep, e := ext6Sender(t)
	other := netip.MustParseAddr("2001:db8::77")
	srh := testSRH(1, []byte{4, 2, 0, 0, 1, 2, 0, 0}, netip.MustParseAddr("::"), peer6, other)
	e.SetExt6(&SendExt6{Rt: srh})
	if _, err := e.SendTo([]byte("x"), netip.AddrPortFrom(srhFinal, 9), nil); err != nil {
		t.Fatal(err)
	}
	ip := wire.IPv6(ep.take()[0][14:])
	_, hdrs, _, _ := walk6(ip)
	if ip.Dst() != peer6 || len(hdrs) != 1 || !bytes.Equal(hdrs[0][24:], srh[24:]) {
		t.Fatalf("to %v, SRH %x", ip.Dst(), hdrs)
	}
}

// Over the MTU: Hop-by-Hop, the routing-header options and the SRH stay
// in every fragment's unfragmentable part, before the fragment header
// (Linux's opt_nflen); Destination Options are fragmentable. With DF
// they all count against the MTU.
func TestSRHFragments(t *testing.T) {
	ep, e := ext6Sender(t)
	hop, d0, d1 := ext6Hdr(1, 0xaa), ext6Hdr(1, 0xcc), ext6Hdr(1, 0xbb)
	srh := testSRH(1, nil, netip.MustParseAddr("::"), peer6)
	e.SetExt6(&SendExt6{Hop: hop, RthdrDst: d0, Rt: srh, Dst: d1})
	payload := bytes.Repeat([]byte{7}, 3000)
	if _, err := e.SendTo(payload, netip.AddrPortFrom(srhFinal, 9), nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 3 {
		t.Fatalf("%d fragments", len(fs))
	}
	var data []byte
	for i, f := range fs {
		ip := wire.IPv6(f[14:])
		if len(ip) > 1500 || ip.Dst() != peer6 {
			t.Fatalf("fragment %d: %d bytes to %v", i, len(ip), ip.Dst())
		}
		types, hdrs, _, off := walk6(ip)
		want := []uint8{wire.ProtoHopByHop, wire.ProtoIPv6Opts, wire.ProtoIPv6Route, wire.ProtoIPv6Frag}
		if !bytes.Equal(types, want) {
			t.Fatalf("fragment %d: chain %v", i, types)
		}
		fh := wire.IPv6Frag(hdrs[3])
		if fh.NextHeader() != wire.ProtoIPv6Opts || fh.Offset() != len(data) {
			t.Fatalf("fragment %d: next %d offset %d", i, fh.NextHeader(), fh.Offset())
		}
		data = append(data, ip[off:]...)
	}
	if data[0] != wire.ProtoUDP || !bytes.Equal(data[16:], payload) {
		t.Fatalf("reassembled data starts %x", data[:24])
	}
	// 1500 - 40 - (8+8+40) - 2*8 - 8 = 1380 bytes pass the DF check.
	e.SetDontFrag(true)
	if _, err := e.SendTo(make([]byte, 1380), netip.AddrPortFrom(srhFinal, 9), nil); err != nil {
		t.Fatalf("1380 bytes with DF: %v", err)
	}
	if _, err := e.SendTo(make([]byte, 1381), netip.AddrPortFrom(srhFinal, 9), nil); err == nil {
		t.Fatal("1381 bytes with DF sent")
	}
}

// A TCP super-segment with an SRH: every piece carries it, goes to the
// first segment, and its checksum covers the final destination.
func TestSRHTCPGSO(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, _ := newGSO6(t, ep)
	ep.take()
	srh := testSRH(1, nil, netip.MustParseAddr("::"), peer6)
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: 1000, Ack: 1, Flags: wire.TCPFlagACK, Window: 500}
	payload := bytes.Repeat([]byte{3}, 3000)
	err := s.writePacket(&OutPacket{Src: host6, Dst: srhFinal, Proto: wire.ProtoTCP, DF: true, TTL: 33,
		Parts: [3][]byte{nil, payload}, GSOSize: 1000, Ext6: &SendExt6{Rt: srh}}, th)
	if err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 3 {
		t.Fatalf("%d segments", len(fs))
	}
	fb := srhFinal.As16()
	for i, f := range fs {
		ip := wire.IPv6(f[14:])
		types, hdrs, upper, off := walk6(ip)
		if ip.Dst() != peer6 || len(types) != 1 || types[0] != wire.ProtoIPv6Route || upper != wire.ProtoTCP || !bytes.Equal(hdrs[0][8:24], fb[:]) {
			t.Fatalf("segment %d: to %v chain %v upper %d", i, ip.Dst(), types, upper)
		}
		tcp := ip[off:]
		if wire.Fold(wire.Sum(tcp, wire.PseudoHeaderSum6(ip.Src16(), fb, wire.ProtoTCP, len(tcp)))) != 0xffff {
			t.Fatalf("segment %d: TCP checksum not over the final destination", i)
		}
		if wire.TCP(tcp).Seq() != 1000+uint32(i*1000) {
			t.Fatalf("segment %d: seq %d", i, wire.TCP(tcp).Seq())
		}
	}
}

// UDP_SEGMENT with an SRH: every datagram cut from the super-datagram
// carries it, goes to the first segment, and has its own UDP checksum
// over the final destination; the size check counts the SRH as network
// header (Linux's udp_v6_send_skb takes skb_network_header_len).
func TestSRHUDPSegment(t *testing.T) {
	ep, e := ext6Sender(t)
	srh := testSRH(1, nil, netip.MustParseAddr("::"), peer6)
	e.SetExt6(&SendExt6{Rt: srh})
	to := netip.AddrPortFrom(srhFinal, 9)
	if _, err := e.SendMsg(bytes.Repeat([]byte{9}, 1200), to, SendOpts{GSOSet: true, GSOSize: 500}, nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 3 {
		t.Fatalf("%d datagrams", len(fs))
	}
	fb := srhFinal.As16()
	for i, f := range fs {
		ip := wire.IPv6(f[14:])
		types, hdrs, upper, off := walk6(ip)
		udp := ip[off:]
		if ip.Dst() != peer6 || len(types) != 1 || upper != wire.ProtoUDP || !bytes.Equal(hdrs[0][8:24], fb[:]) {
			t.Fatalf("datagram %d: to %v chain %v", i, ip.Dst(), types)
		}
		if want := []int{500, 500, 200}[i]; len(udp) != 8+want || int(wire.UDP(udp).Length()) != 8+want {
			t.Fatalf("datagram %d: %d bytes", i, len(udp))
		}
		if wire.Fold(wire.Sum(udp, wire.PseudoHeaderSum6(ip.Src16(), fb, wire.ProtoUDP, len(udp)))) != 0xffff {
			t.Fatalf("datagram %d: UDP checksum not over the final destination", i)
		}
	}
	// 1500 - 40 - 40 (SRH) - 8 = 1412 bytes a segment at most.
	if _, err := e.SendMsg(make([]byte, 3000), to, SendOpts{GSOSet: true, GSOSize: 1413}, nil); err == nil {
		t.Fatal("a 1413-byte segment with the SRH passed the MTU check")
	}
	if _, err := e.SendMsg(make([]byte, 3000), to, SendOpts{GSOSet: true, GSOSize: 1412}, nil); err != nil {
		t.Fatalf("1412-byte segments: %v", err)
	}
}

// Sending without extension headers allocates nothing per datagram; a
// sticky SRH adds no allocation either (the chain is written in place).
func TestSRHSendAllocs(t *testing.T) {
	ep, e := ext6Sender(t)
	ep.discard = true
	to := netip.AddrPortFrom(peer6, 9)
	b := []byte("x")
	if n := testing.AllocsPerRun(200, func() { e.SendTo(b, to, nil) }); n != 0 {
		t.Errorf("%v allocations a datagram without headers", n)
	}
	e.SetExt6(&SendExt6{Rt: testSRH(1, nil, netip.MustParseAddr("::"), peer6)})
	if n := testing.AllocsPerRun(200, func() { e.SendTo(b, netip.AddrPortFrom(srhFinal, 9), nil) }); n != 0 {
		t.Errorf("%v allocations a datagram with an SRH", n)
	}
}

// The DF check takes the MTU of the path to the first segment, not the
// final destination's (Linux looks the route up after fl6_update_dst):
// a route to the final destination with a 1280-byte MTU does not limit a
// datagram that goes to a first segment on a 1500-byte link.
func TestSRHDontFragFirstHopMTU(t *testing.T) {
	ep, e := ext6Sender(t)
	e.s.AddRoute(Route{Prefix: netip.PrefixFrom(srhFinal, 128), Gateway: peer6, NIC: e.s.NICByName("eth0"), MTU: 1280})
	e.SetDontFrag(true)
	to := netip.AddrPortFrom(srhFinal, 9)
	if _, err := e.SendTo(make([]byte, 1300), to, nil); err == nil {
		t.Fatal("1300 bytes with DF to the 1280-byte route sent without an SRH")
	}
	e.SetExt6(&SendExt6{Rt: testSRH(1, nil, netip.MustParseAddr("::"), peer6)})
	ep.take()
	// 1500 - 40 - 40 (SRH) - 8 = 1412.
	if _, err := e.SendTo(make([]byte, 1412), to, nil); err != nil {
		t.Fatalf("1412 bytes with DF through peer6: %v", err)
	}
	if fs := ep.take(); len(fs) != 1 || len(fs[0])-14 != 1500 {
		t.Fatalf("%d frames", len(fs))
	}
	if _, err := e.SendTo(make([]byte, 1413), to, nil); err == nil {
		t.Fatal("1413 bytes with DF sent")
	}
}

// connect on a socket with an SRH looks the route up for the first
// segment (Linux's ip6_datagram_connect applies fl6_update_dst): a final
// destination with no route connects, the name the first segment's
// route's source, and a send goes through the first segment.
func TestSRHConnect(t *testing.T) {
	ep, e := ext6Sender(t)
	e.SetExt6(&SendExt6{Rt: testSRH(1, nil, netip.MustParseAddr("::"), peer6)})
	if err := e.Connect(netip.AddrPortFrom(srhFinal, 9)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if a := e.LocalAddr().Addr(); a != host6 {
		t.Fatalf("name %v, want %v", a, host6)
	}
	ep.take()
	if _, err := e.SendTo([]byte("x"), netip.AddrPort{}, nil); err != nil {
		t.Fatal(err)
	}
	if fs := ep.take(); len(fs) != 1 || wire.IPv6(fs[0][14:]).Dst() != peer6 {
		t.Fatalf("%d frames", len(fs))
	}
}

// A raw ICMPv6 socket with an SRH: the ICMPv6 checksum the stack fills
// covers the final destination, as every upper-layer checksum.
func TestSRHRawICMPv6Checksum(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, _ := newGSO6(t, ep)
	ep.take()
	e := s.NewDgram(KindRaw, wire.ProtoICMPv6)
	e.SetInet6()
	t.Cleanup(e.Close)
	e.SetExt6(&SendExt6{Rt: testSRH(1, nil, netip.MustParseAddr("::"), peer6)})
	echo := []byte{wire.ICMPv6EchoRequest, 0, 0, 0, 0, 1, 0, 1, 'h', 'i'}
	if _, err := e.SendTo(echo, netip.AddrPortFrom(srhFinal, 0), nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 1 {
		t.Fatalf("%d frames", len(fs))
	}
	ip := wire.IPv6(fs[0][14:])
	_, _, upper, off := walk6(ip)
	m := ip[off:]
	if ip.Dst() != peer6 || upper != wire.ProtoICMPv6 || wire.Fold(wire.Sum(m, wire.PseudoHeaderSum6(ip.Src16(), srhFinal.As16(), wire.ProtoICMPv6, len(m)))) != 0xffff {
		t.Fatalf("to %v, upper %d, checksum not over the final destination", ip.Dst(), upper)
	}
}
