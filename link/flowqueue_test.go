package link

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// tupleFrame builds an Ethernet (eth) or bare IP frame of one packet from
// src to dst with proto and, after the IP header, the two ports.
func tupleFrame(eth bool, src, dst netip.AddrPort, proto uint8, frag bool) []byte {
	var p []byte
	if src.Addr().Is4() {
		p = make([]byte, 20+8)
		p[0] = 0x45
		if frag {
			binary.BigEndian.PutUint16(p[6:], 0x2000) // more fragments
		}
		p[9] = proto
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[20:], src.Port())
		binary.BigEndian.PutUint16(p[22:], dst.Port())
	} else {
		p = make([]byte, 40+8)
		p[0] = 0x60
		p[6] = proto
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
		binary.BigEndian.PutUint16(p[40:], src.Port())
		binary.BigEndian.PutUint16(p[42:], dst.Port())
	}
	if !eth {
		return p
	}
	f := make([]byte, 14, 14+len(p))
	et := uint16(0x0800)
	if src.Addr().Is6() {
		et = 0x86dd
	}
	binary.BigEndian.PutUint16(f[12:], et)
	return append(f, p...)
}

// A flow hashes alike in both directions, from its frames and from its
// two ends, and apart from a flow that differs in a port; fragments and
// non-IP frames are not attributed to a flow.
func TestSymFlowHash(t *testing.T) {
	for _, c := range []struct {
		name  string
		a, b  netip.AddrPort
		proto uint8
	}{
		{"tcp4", netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:5201"), 6},
		{"udp6", netip.MustParseAddrPort("[fd00::2]:53"), netip.MustParseAddrPort("[fd00::1]:33333"), 17},
		{"same_addr", netip.MustParseAddrPort("127.0.0.1:1000"), netip.MustParseAddrPort("127.0.0.1:2000"), 6},
	} {
		for _, eth := range []bool{true, false} {
			kind := KindIP
			if eth {
				kind = KindEthernet
			}
			out := SymFlowHash(tupleFrame(eth, c.a, c.b, c.proto, false), kind)
			in := SymFlowHash(tupleFrame(eth, c.b, c.a, c.proto, false), kind)
			want := TupleFlowHash(c.a, c.b, c.proto)
			if out == 0 || out != in || out != want || TupleFlowHash(c.b, c.a, c.proto) != want {
				t.Errorf("%s, ethernet %v: out %#x, in %#x, tuple %#x", c.name, eth, out, in, want)
			}
			other := netip.AddrPortFrom(c.a.Addr(), c.a.Port()+1)
			if SymFlowHash(tupleFrame(eth, other, c.b, c.proto, false), kind) == out {
				t.Errorf("%s: a flow with another port hashes alike", c.name)
			}
		}
	}
	a, b := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:5201")
	if SymFlowHash(tupleFrame(true, a, b, 6, true), KindEthernet) == TupleFlowHash(a, b, 6) {
		t.Error("a fragment was given its flow's hash: it may not carry the ports")
	}
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if h := SymFlowHash(arp, KindEthernet); h != 0 {
		t.Errorf("ARP hashed to %#x, want 0", h)
	}
	if h := TupleFlowHash(a, netip.MustParseAddrPort("[fd00::1]:1"), 6); h != 0 {
		t.Errorf("ends of two families hashed to %#x, want 0", h)
	}
	if TupleFlowHash(netip.MustParseAddrPort("[::ffff:10.0.0.1]:40000"), b, 6) != TupleFlowHash(a, b, 6) {
		t.Error("an IPv4-mapped end hashes unlike its IPv4 address")
	}
}

// The table notes the queue a flow's frames came in on, the last one.
func TestFlowTableLearn(t *testing.T) {
	var ft flowTable
	a, b := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:5201")
	flow := TupleFlowHash(a, b, 6)
	if q := ft.queue(flow); q != -1 {
		t.Fatalf("queue %d before any frame", q)
	}
	ft.learn([][]byte{tupleFrame(true, b, a, 6, false)}, KindEthernet, 1)
	if q := ft.queue(flow); q != 1 {
		t.Fatalf("queue %d, want 1", q)
	}
	ft.learn([][]byte{tupleFrame(true, b, a, 6, false)}, KindEthernet, 0)
	if q := ft.queue(flow); q != 0 {
		t.Fatalf("queue %d after the flow moved, want 0", q)
	}
	// Another flow in the same slot takes it: the first is a miss, not
	// sent to the other's queue.
	var c netip.AddrPort
	for port := uint16(1); ; port++ {
		c = netip.AddrPortFrom(a.Addr(), port)
		if h := TupleFlowHash(c, b, 6); h != flow && h%flowTableSize == flow%flowTableSize {
			break
		}
	}
	ft.learn([][]byte{tupleFrame(true, b, c, 6, false)}, KindEthernet, 1)
	if q := ft.queue(TupleFlowHash(c, b, 6)); q != 1 {
		t.Fatalf("the second flow's queue %d, want 1", q)
	}
	if q := ft.queue(flow); q != -1 {
		t.Fatalf("the first flow's queue %d after another took its slot, want -1", q)
	}
	if m := ft.misses.Load(); m != 2 {
		t.Fatalf("%d misses, want 2 (before any frame, and after the slot was taken)", m)
	}
}
