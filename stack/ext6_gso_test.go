package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/wire"
)

// UDP_SEGMENT with extension headers: every datagram cut from the send
// carries Hop-by-Hop then Destination Options then UDP, with its own UDP
// length and checksum (decoded with gopacket); the checks count the
// headers in the network header (Linux's udp_v6_send_skb): a segment
// that with them outgrows the MTU is EMSGSIZE, more than UDPMaxSegments
// EINVAL, and a send that fits one segment goes as one datagram.
func TestExt6UDPSegment(t *testing.T) {
	ep, e := ext6Sender(t)
	hop, dst := ext6Hdr(2, 0xaa), ext6Hdr(1, 0xbb)
	e.SetExt6(&SendExt6{Hop: hop, Dst: dst})
	if err := e.SetUDPSegment(1000); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2500)
	for i := range data {
		data[i] = byte(i * 13)
	}
	to := netip.AddrPortFrom(peer6, 9)
	if n, err := e.SendTo(data, to, nil); err != nil || n != len(data) {
		t.Fatalf("send: %d %v", n, err)
	}
	fs := ep.take()
	if len(fs) != 3 {
		t.Fatalf("%d frames, want 3", len(fs))
	}
	var got []byte
	for i, f := range fs {
		p := decodeExt6(t, f)
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		hh, _ := p.Layer(layers.LayerTypeIPv6HopByHop).(*layers.IPv6HopByHop)
		do, _ := p.Layer(layers.LayerTypeIPv6Destination).(*layers.IPv6Destination)
		u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if hh == nil || do == nil || u == nil || ip.NextHeader != layers.IPProtocolIPv6HopByHop ||
			hh.NextHeader != layers.IPProtocolIPv6Destination || do.NextHeader != layers.IPProtocolUDP {
			t.Fatalf("datagram %d: layers %v", i, p.Layers())
		}
		if !bytes.Equal(hh.Contents[1:], hop[1:]) || !bytes.Equal(do.Contents[1:], dst[1:]) {
			t.Fatalf("datagram %d: headers %x %x", i, hh.Contents, do.Contents)
		}
		want := min(1000, len(data)-1000*i)
		if len(u.Payload) != want || int(u.Length) != 8+want || int(ip.Length) != 24+8+want {
			t.Fatalf("datagram %d: payload %d, UDP length %d, IPv6 length %d", i, len(u.Payload), u.Length, ip.Length)
		}
		raw := wire.IPv6(f[14:])
		ub := raw[40+24:]
		if wire.Fold(wire.Sum(ub, wire.PseudoHeaderSum6(raw.Src16(), raw.Dst16(), wire.ProtoUDP, len(ub)))) != 0xffff {
			t.Fatalf("datagram %d: bad UDP checksum", i)
		}
		got = append(got, u.Payload...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("payload changed")
	}
	// One segment's worth: one datagram with the headers.
	if _, err := e.SendTo(data[:1000], to, nil); err != nil {
		t.Fatal(err)
	}
	if fs := ep.take(); len(fs) != 1 || decodeExt6(t, fs[0]).Layer(layers.LayerTypeIPv6Destination) == nil {
		t.Fatalf("one segment: %d frames", len(fs))
	}
	// 40 + 24 + 8 + 1429 = 1501 > 1500: EMSGSIZE; 1428 fits.
	if err := e.SetUDPSegment(1429); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(make([]byte, 3000), to, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("segment over the MTU with the headers: %v", err)
	}
	e.SetUDPSegment(1428)
	if _, err := e.SendTo(make([]byte, 3000), to, nil); err != nil {
		t.Fatal(err)
	}
	if fs := ep.take(); len(fs) != 3 || len(fs[0]) != 14+1500 {
		t.Fatalf("1428-byte segments: %d frames, first %d bytes", len(fs), len(fs[0]))
	}
	e.SetUDPSegment(100)
	if _, err := e.SendTo(make([]byte, 100*UDPMaxSegments+1), to, nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("past UDPMaxSegments: %v", err)
	}
	if fs := ep.take(); len(fs) != 0 {
		t.Fatalf("refused sends sent %d frames", len(fs))
	}
}
