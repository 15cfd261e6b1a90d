package stack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/wire"
)

// ext6Hdr is an options header of n*8 bytes holding one experimental
// option (type 0x1e, skipped by a receiver that does not know it) and
// PadN; the first byte (next header) is junk the stack overwrites.
func ext6Hdr(n int, fill byte) []byte {
	h := make([]byte, n*8)
	h[0], h[1] = 0xff, byte(n-1)
	h[2], h[3] = 0x1e, 4
	for i := 4; i < 8; i++ {
		h[i] = fill
	}
	for i := 8; i < len(h); i += 8 {
		h[i], h[i+1] = 0x1e, 6 // one more option per 8 bytes
		for j := i + 2; j < i+8; j++ {
			h[j] = fill
		}
	}
	return h
}

// decodeExt6 decodes an IPv6 frame with gopacket.
// ext6Sender is an IPv6 UDP endpoint on a host of its own (newGSO6),
// with the link its frames go to; closed when the test ends.
func ext6Sender(t *testing.T) (*chanEP, *DgramEndpoint) {
	t.Helper()
	ep := &chanEP{mtu: 1500, skip: ndpOrMLD}
	s, _ := newGSO6(t, ep)
	e := s.NewDgram(KindUDP, wire.ProtoUDP)
	e.SetInet6()
	t.Cleanup(e.Close)
	return ep, e
}

func decodeExt6(t *testing.T, f []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	return p
}

// Sticky Hop-by-Hop and Destination Options headers go out in RFC 8200
// order (Hop-by-Hop, Destination Options, UDP), the chain naming each
// next header, the payload length counting them, the UDP checksum right.
func TestExt6SendOrder(t *testing.T) {
	ep, e := ext6Sender(t)
	hop, dst := ext6Hdr(1, 0xaa), ext6Hdr(2, 0xbb)
	e.SetExt6(&SendExt6{Hop: hop, Dst: dst, RthdrDst: ext6Hdr(1, 0xcc)})
	if _, err := e.SendTo([]byte("hello"), netip.AddrPortFrom(peer6, 9), nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 1 {
		t.Fatalf("%d frames", len(fs))
	}
	p := decodeExt6(t, fs[0])
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	hh := p.Layer(layers.LayerTypeIPv6HopByHop).(*layers.IPv6HopByHop)
	do := p.Layer(layers.LayerTypeIPv6Destination).(*layers.IPv6Destination)
	u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip.NextHeader != layers.IPProtocolIPv6HopByHop || hh.NextHeader != layers.IPProtocolIPv6Destination || do.NextHeader != layers.IPProtocolUDP || u == nil {
		t.Fatalf("chain %v %v %v udp %v", ip.NextHeader, hh.NextHeader, do.NextHeader, u != nil)
	}
	// The routing-header destination options are not sent (no routing header).
	if int(ip.Length) != 8+16+8+5 || !bytes.Equal(hh.Contents[1:], hop[1:]) || !bytes.Equal(do.Contents[1:], dst[1:]) {
		t.Fatalf("length %d hop %x dst %x", ip.Length, hh.Contents, do.Contents)
	}
	raw := wire.IPv6(fs[0][14:])
	udp := raw[40+24:]
	if wire.Fold(wire.Sum(udp, wire.PseudoHeaderSum6(raw.Src16(), raw.Dst16(), wire.ProtoUDP, len(udp)))) != 0xffff {
		t.Fatal("bad UDP checksum")
	}
	if string(u.Payload) != "hello" {
		t.Fatalf("payload %q", u.Payload)
	}
}

// Per-datagram headers replace the socket's whole (a control message's
// Destination Options alone: no Hop-by-Hop either).
func TestExt6PerPacketReplaces(t *testing.T) {
	ep, e := ext6Sender(t)
	e.SetExt6(&SendExt6{Hop: ext6Hdr(1, 0xaa)})
	if _, err := e.SendMsg([]byte("x"), netip.AddrPortFrom(peer6, 9), SendOpts{Ext6: &SendExt6{Dst: ext6Hdr(1, 0xbb)}}, nil); err != nil {
		t.Fatal(err)
	}
	p := decodeExt6(t, ep.take()[0])
	if p.Layer(layers.LayerTypeIPv6HopByHop) != nil || p.Layer(layers.LayerTypeIPv6Destination) == nil {
		t.Fatalf("layers %v", p.Layers())
	}
}

// Over the MTU: Hop-by-Hop stays in every fragment's unfragmentable
// part, Destination Options go into the fragmentable part (first
// fragment only), and every fragment fits the MTU. With DF the headers
// count against the MTU: EMSGSIZE.
func TestExt6Fragments(t *testing.T) {
	ep, e := ext6Sender(t)
	hop, dst := ext6Hdr(2, 0xaa), ext6Hdr(1, 0xbb)
	e.SetExt6(&SendExt6{Hop: hop, Dst: dst})
	payload := bytes.Repeat([]byte{7}, 3000)
	if _, err := e.SendTo(payload, netip.AddrPortFrom(peer6, 9), nil); err != nil {
		t.Fatal(err)
	}
	fs := ep.take()
	if len(fs) != 3 {
		t.Fatalf("%d fragments", len(fs))
	}
	var data []byte
	for i, f := range fs {
		if len(f)-14 > 1500 {
			t.Fatalf("fragment %d: %d bytes", i, len(f)-14)
		}
		ip := wire.IPv6(f[14:])
		if ip.NextHeader() != wire.ProtoHopByHop || !bytes.Equal(ip[41:56], hop[1:]) || ip[40] != wire.ProtoIPv6Frag {
			t.Fatalf("fragment %d: unfragmentable part %x", i, ip[:56])
		}
		if int(ip.PayloadLen()) != len(ip)-40 {
			t.Fatalf("fragment %d: payload length %d of %d", i, ip.PayloadLen(), len(ip)-40)
		}
		fh := wire.IPv6Frag(ip[56:])
		if fh.NextHeader() != wire.ProtoIPv6Opts || fh.Offset() != len(data) {
			t.Fatalf("fragment %d: next %d offset %d", i, fh.NextHeader(), fh.Offset())
		}
		data = append(data, ip[64:]...)
	}
	if data[0] != wire.ProtoUDP || !bytes.Equal(data[1:8], dst[1:]) || !bytes.Equal(data[16:], payload) {
		t.Fatalf("reassembled data starts %x", data[:24])
	}
	// 1500 - 40 - 16 - 2*8 - 8 = 1420 bytes of UDP payload pass the
	// DF check (Destination Options count twice, as on Linux); one more does not.
	e.SetDontFrag(true)
	if _, err := e.SendTo(make([]byte, 1420), netip.AddrPortFrom(peer6, 9), nil); err != nil {
		t.Fatalf("1420 bytes with DF: %v", err)
	}
	if _, err := e.SendTo(make([]byte, 1421), netip.AddrPortFrom(peer6, 9), nil); err == nil {
		t.Fatal("1421 bytes with DF sent")
	}
}

// A received datagram's Hop-by-Hop and Destination Options headers
// (both of them, around a routing header with no segments left) reach
// the reader whole, nothing taken for a datagram without them.
func TestExt6Receive(t *testing.T) {
	ep, e := ext6Sender(t)
	if err := e.Bind(netip.AddrPortFrom(host6, 9)); err != nil {
		t.Fatal(err)
	}
	hop, d0, d1 := ext6Hdr(1, 1), ext6Hdr(1, 2), ext6Hdr(2, 3)
	rt := []byte{0, 0, 0, 0, 0, 0, 0, 0} // type 0, segments left 0: passed over
	hop[0], d0[0], rt[0], d1[0] = wire.ProtoIPv6Opts, wire.ProtoIPv6Route, wire.ProtoIPv6Opts, wire.ProtoUDP
	ext := append(append(append(append([]byte{}, hop...), d0...), rt...), d1...)
	u := make([]byte, 8+2)
	wire.PutUDP(u, 1000, 9, 2)
	copy(u[8:], "hi")
	wire.UDP(u).FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), host6.As16(), wire.ProtoUDP, len(u)))
	f := make([]byte, 14+40+len(ext)+len(u))
	wire.PutEthernet(f, hostMAC, peerMAC, wire.EtherTypeIPv6)
	ih := wire.IPv6Header{PayloadLen: len(ext) + len(u), NextHeader: wire.ProtoHopByHop, HopLimit: 64, Src: peer6, Dst: host6}
	ih.Put(f[14:])
	copy(f[54:], ext)
	copy(f[54+len(ext):], u)
	ep.inject(f)
	b := make([]byte, 16)
	n, _, _, info, err := e.RecvFromInfo(b, true) // a peek gets a copy
	if err != nil || string(b[:n]) != "hi" || info.Ext6 == nil {
		t.Fatalf("peek: %q %v ext %v", b[:n], err, info.Ext6)
	}
	PutRecvExt6(info.Ext6)
	_, _, _, info, _ = e.RecvFromInfo(b, false)
	x := info.Ext6
	if x == nil || !bytes.Equal(x.Hop, hop) || len(x.Dst) != 2 || !bytes.Equal(x.Dst[0], d0) || !bytes.Equal(x.Dst[1], d1) {
		t.Fatalf("ext %+v", x)
	}
	PutRecvExt6(x)
	// Without headers: none.
	ih.PayloadLen, ih.NextHeader = len(u), wire.ProtoUDP
	ih.Put(f[14:])
	copy(f[54:], u)
	ep.inject(f[:54+len(u)])
	if _, _, _, info, err = e.RecvFromInfo(b, false); err != nil || info.Ext6 != nil {
		t.Fatalf("plain datagram: %v ext %v", err, info.Ext6)
	}
}
