package link

import (
	"bytes"
	"encoding/binary"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"net/netip"
	"sync"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// superFrame builds an Ethernet frame with a TCP super-segment of n
// payload bytes, its checksum left partial.
func superFrame(n int) []byte {
	th := wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 100, Ack: 5, Flags: wire.TCPFlagACK | wire.TCPFlagPSH, Window: 9}
	ip := wire.IPv4Header{TTL: 64, Protocol: wire.ProtoTCP, DF: true, ID: 7,
		Src: netipAddr(10, 0, 0, 1), Dst: netipAddr(10, 0, 0, 2)}
	ip.TotalLen = 20 + th.Len() + n
	f := make([]byte, 14+ip.TotalLen)
	wire.PutEthernet(f, wire.MAC{2, 0, 0, 0, 0, 2}, wire.MAC{2, 0, 0, 0, 0, 1}, wire.EtherTypeIPv4)
	ip.Put(f[14:])
	th.Put(f[34:])
	for i := range f[34+th.Len():] {
		f[34+th.Len()+i] = byte(i * 13)
	}
	PartialTCPChecksum(wire.IPv4(f[14:]))
	return f
}

type collect struct {
	mu     sync.Mutex
	frames [][]byte
	got    chan struct{}
	want   int
}

func (c *collect) DeliverFrames(fs [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fs {
		c.frames = append(c.frames, append([]byte(nil), f...))
	}
	if len(c.frames) >= c.want {
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

// A pipe carries a super-segment whole; a receiver that knows nothing of
// offloads gets it cut into wire segments with finished checksums.
func TestPipeMetaToPlainReceiver(t *testing.T) {
	a, b := NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	defer a.Close()
	defer b.Close()
	c := &collect{got: make(chan struct{}, 1), want: 5}
	b.Attach(c)
	f := superFrame(4*1448 + 100)
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	if n, err := a.WriteFramesMeta([][]byte{f}, []Meta{m}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	<-c.got
	var payload []byte
	for i, s := range c.frames {
		ip, err := wire.ParseIPv4(s[14:])
		if err != nil {
			t.Fatal(err)
		}
		tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if tc.Seq() != 100+uint32(i*1448) || (tc.Flags()&wire.TCPFlagPSH != 0) != (i == 4) {
			t.Errorf("segment %d: seq %d flags %#x", i, tc.Seq(), tc.Flags())
		}
		payload = append(payload, tc.Payload()...)
	}
	if !bytes.Equal(payload, f[54:]) {
		t.Fatal("payload changed")
	}
}

// virtio-net headers round-trip, and a GSO header without a segment size
// is refused.
func TestVnetHeader(t *testing.T) {
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 66, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	var b [vnetHdrLen]byte
	putVnetHdr(b[:], m)
	got, ok := parseVnetHdr(b[:], 14)
	if !ok || got != m {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	b[4], b[5] = 0, 0
	if _, ok := parseVnetHdr(b[:], 14); ok {
		t.Fatal("GSO without a segment size accepted")
	}
	putVnetHdr(b[:], Meta{})
	if got, ok := parseVnetHdr(b[:], 14); !ok || got != (Meta{}) {
		t.Fatalf("plain header: %+v", got)
	}
}

func netipAddr(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

// gpCheck decodes a frame with gopacket and checks its checksums.
func gpCheck(t *testing.T, f []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(p.NetworkLayer())
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(p.NetworkLayer())
	}
	err, mism := p.VerifyChecksums()
	if err != nil {
		t.Fatal(err)
	}
	if len(mism) > 0 {
		t.Fatalf("bad checksums: %+v", mism)
	}
	return p
}

// Super-segments the kernel sends with TSO6 and USO are cut on receive
// into segments / datagrams with correct lengths and checksums.
func TestFinishFrameTCPv6AndUDP(t *testing.T) {
	src := netip.MustParseAddr("fd00::1").As16()
	dst := netip.MustParseAddr("fd00::2").As16()
	// TCP over IPv6, 3.5 segments.
	payload := make([]byte, 3*1000+500)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	th := wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 1000, Ack: 1, Flags: wire.TCPFlagACK | wire.TCPFlagPSH, Window: 100}
	f := make([]byte, 14+40+th.Len()+len(payload))
	wire.PutEthernet(f, wire.MAC{2}, wire.MAC{4}, wire.EtherTypeIPv6)
	ip := wire.IPv6(f[14:])
	ip[0] = 0x60
	ip.SetPayloadLen(th.Len() + len(payload))
	ip.SetNextHeader(wire.ProtoTCP)
	ip.SetHopLimit(64)
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	th.Put(f[54:])
	copy(f[54+th.Len():], payload)
	m := Meta{GSOType: GSOTCPv6, GSOSize: 1000, NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 16, HdrLen: uint16(54 + th.Len())}
	var got []byte
	var n int
	err := FinishFrame(f, m, make([]byte, 65600), func(b []byte) error {
		p := gpCheck(t, b)
		tc := p.TransportLayer().(*layers.TCP)
		if tc.Seq != 1000+uint32(n*1000) || tc.PSH != (n == 3) {
			t.Errorf("segment %d: seq %d psh %v", n, tc.Seq, tc.PSH)
		}
		got = append(got, tc.Payload...)
		n++
		return nil
	})
	if err != nil || n != 4 || !bytes.Equal(got, payload) {
		t.Fatalf("TCPv6: err %v, %d segments, payload equal %v", err, n, bytes.Equal(got, payload))
	}
	// UDP over IPv4, GSO_UDP_L4: 3 datagrams of 600, 600, 300.
	up := make([]byte, 1500)
	for i := range up {
		up[i] = byte(i)
	}
	g := make([]byte, 14+20+8+len(up))
	wire.PutEthernet(g, wire.MAC{2}, wire.MAC{4}, wire.EtherTypeIPv4)
	h := wire.IPv4Header{TTL: 64, Protocol: wire.ProtoUDP, Src: netipAddr(10, 0, 0, 1), Dst: netipAddr(10, 0, 0, 2), TotalLen: 28 + len(up)}
	h.Put(g[14:])
	wire.PutUDP(g[34:], 5, 6, len(up))
	copy(g[42:], up)
	m = Meta{GSOType: GSOUDPL4, GSOSize: 600, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 6, HdrLen: 42}
	got, n = nil, 0
	err = FinishFrame(g, m, make([]byte, 65600), func(b []byte) error {
		p := gpCheck(t, b)
		got = append(got, p.TransportLayer().(*layers.UDP).Payload...)
		n++
		return nil
	})
	if err != nil || n != 3 || !bytes.Equal(got, up) {
		t.Fatalf("UDP: err %v, %d datagrams", err, n)
	}
}

// A partial checksum over the IPv6 pseudo-header, finished as a NIC (or
// the kernel behind a TAP) finishes it, is the right checksum; the
// virtio-net header of a TSO6 super-segment carries GSO_TCPV6 (4).
func TestPartialTCPChecksum6(t *testing.T) {
	src := netip.MustParseAddr("fd00::1").As16()
	dst := netip.MustParseAddr("fd00::2").As16()
	for _, n := range []int{0, 1, 1427, 3000} {
		th := wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 9, Ack: 1, Flags: wire.TCPFlagACK, Window: 100,
			Options: wire.TCPOptions{HasTS: true, TSVal: 3, TSEcr: 4}}
		f := make([]byte, 54+th.Len()+n)
		wire.PutEthernet(f, wire.MAC{2}, wire.MAC{4}, wire.EtherTypeIPv6)
		hd := wire.IPv6Header{PayloadLen: th.Len() + n, NextHeader: wire.ProtoTCP, HopLimit: 64, Src: netip.AddrFrom16(src), Dst: netip.AddrFrom16(dst)}
		hd.Put(f[14:])
		th.Put(f[54:])
		for i := range f[54+th.Len():] {
			f[54+th.Len()+i] = byte(i*31 + n)
		}
		PartialTCPChecksum6(wire.IPv6(f[14:]))
		if got, want := binary.BigEndian.Uint16(f[54+16:]), wire.Fold(wire.PseudoHeaderSum6(src, dst, wire.ProtoTCP, th.Len()+n)); got != want {
			t.Fatalf("%d bytes: partial sum %#x, want %#x", n, got, want)
		}
		m := Meta{NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 16}
		if err := FinishFrame(f, m, make([]byte, 65600), func(b []byte) error { gpCheck(t, b); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	m := Meta{GSOType: GSOTCPv6, GSOSize: 1428, HdrLen: 86, NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 16}
	var b [vnetHdrLen]byte
	putVnetHdr(b[:], m)
	if b[0] != vnetFlagNeedsCsum || b[1] != 4 {
		t.Fatalf("header %x", b)
	}
	b[1] |= vnetGSOECN // the kernel marks ECN-capable flows
	if got, ok := parseVnetHdr(b[:], 14); !ok || got != m {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
}

// metaSeen is a MetaReceiver that records the frames it is handed (not
// copies) and what their first bytes were at delivery.
type metaSeen struct {
	mu     sync.Mutex
	frames [][]byte
	first  []byte
	got    chan struct{}
}

func (m *metaSeen) DeliverFrames(fs [][]byte) { m.DeliverFramesMeta(fs, make([]Meta, len(fs))) }
func (m *metaSeen) DeliverFramesMeta(fs [][]byte, _ []Meta) {
	m.mu.Lock()
	for _, f := range fs {
		m.frames = append(m.frames, f)
		m.first = append(m.first, f[14])
	}
	m.mu.Unlock()
	m.got <- struct{}{}
}

// A pipe queues a taken frame's buffer itself, not a copy, and hands it
// back to the writer's release only after the receiver had it; a frame
// that finds the queue full is refused, not taken, and counted.
func TestPipeTakeFrame(t *testing.T) {
	a, b := NewPipeQueue(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500, 2)
	defer a.Close()
	defer b.Close()
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	released := make(chan []byte, 4)
	release := func(f []byte) { released <- f }
	f1, f2, f3 := superFrame(3000), superFrame(3000), superFrame(3000)
	// b is not attached yet: the queue (2 frames) fills.
	for _, f := range [][]byte{f1, f2} {
		if err := a.TakeFrameMeta(f, m, release); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.TakeFrameMeta(f3, m, release); err != ErrQueueFull {
		t.Fatalf("third frame: %v, want ErrQueueFull", err)
	}
	if d := a.Stats().TxDropped.Load(); d != 1 {
		t.Fatalf("TxDropped = %d, want 1", d)
	}
	if tx := a.Stats().TxFrames.Load(); tx != 2 {
		t.Fatalf("TxFrames = %d, want 2", tx)
	}
	select {
	case <-released:
		t.Fatal("a frame came back before delivery")
	default:
	}
	f2[14] = 0x99 // the queue holds f2 itself: the receiver sees this
	r := &metaSeen{got: make(chan struct{}, 4)}
	b.Attach(r)
	<-r.got
	for i, want := range [][]byte{f1, f2} {
		got := <-released
		if &got[0] != &want[0] || len(got) != len(want) {
			t.Fatalf("release %d: not the frame taken", i)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) != 2 || &r.frames[0][0] != &f1[0] || &r.frames[1][0] != &f2[0] {
		t.Fatalf("receiver got %d frames, not the buffers taken", len(r.frames))
	}
	if r.first[1] != 0x99 {
		t.Fatal("receiver got a copy of f2, not f2")
	}
	// A closed pipe takes nothing.
	a.Close()
	if err := a.TakeFrameMeta(f3, m, release); err != ErrClosed {
		t.Fatalf("closed: %v", err)
	}
}
