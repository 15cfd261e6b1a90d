package stack

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// metaEP is chanEP that declares super-segment offloads and records
// each frame's offload state.
type metaEP struct {
	chanEP
	off   link.Offloads
	metas []link.Meta
	mmu   sync.Mutex
}

func (m *metaEP) Offloads() link.Offloads { return m.off }
func (m *metaEP) WriteFramesMeta(fs [][]byte, ms []link.Meta) (int, error) {
	m.mmu.Lock()
	m.metas = append(m.metas, ms...)
	m.mmu.Unlock()
	return m.WriteFrames(fs)
}

// gpVerify decodes a frame with gopacket and checks every checksum.
func gpVerify(t *testing.T, f []byte) (*layers.IPv4, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip, _ := p.NetworkLayer().(*layers.IPv4)
	tc, _ := p.TransportLayer().(*layers.TCP)
	if ip == nil || tc == nil {
		t.Fatalf("gopacket: not IPv4/TCP")
	}
	tc.SetNetworkLayerForChecksum(ip)
	err, mism := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("gopacket VerifyChecksums: %v", err)
	}
	for _, m := range mism {
		t.Errorf("gopacket: bad checksum in %v: %+v", m.Layer.LayerType(), m.ChecksumVerificationResult)
	}
	return ip, tc
}

const gsoSeq = 0xfffff000 // wraps inside the super-segment

func sendSuper(t *testing.T, h *harness, payload []byte, mss int, flags uint8) {
	t.Helper()
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: flags, Window: 500,
		Options: wire.TCPOptions{HasTS: true, TSVal: 11, TSEcr: 22}}
	err := h.s.writePacket(&OutPacket{Src: hostAddr, Dst: peerAddr, Proto: wire.ProtoTCP, DF: true, TOS: 0x10,
		Parts: [3][]byte{nil, payload}, GSOSize: mss}, th)
	if err != nil {
		t.Fatalf("writePacket: %v", err)
	}
}

// checkSegments verifies frames are the wire form of the super-segment:
// each within the MTU, every checksum right (wire and gopacket), the
// sequence numbers and flags as a TSO NIC sets them, the payload whole.
func checkSegments(t *testing.T, frames [][]byte, payload []byte, mss int, flags uint8) {
	t.Helper()
	want := (len(payload) + mss - 1) / mss
	if len(frames) != want {
		t.Fatalf("%d frames, want %d", len(frames), want)
	}
	var got []byte
	var id0 uint16
	for i, f := range frames {
		ip := parseOut(t, f)
		if ip.TotalLen() > 1500 {
			t.Fatalf("frame %d: %d bytes > MTU", i, ip.TotalLen())
		}
		if i == 0 {
			id0 = ip.ID()
		} else if ip.ID() != id0+uint16(i) {
			t.Errorf("frame %d: IP ID %d, want %d", i, ip.ID(), id0+uint16(i))
		}
		tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if tc.Seq() != gsoSeq+uint32(i*mss) {
			t.Errorf("frame %d: seq %#x", i, tc.Seq())
		}
		wantF := flags
		if i > 0 {
			wantF &^= wire.TCPFlagCWR
		}
		if i < want-1 {
			wantF &^= wire.TCPFlagFIN | wire.TCPFlagPSH
		}
		if tc.Flags() != wantF {
			t.Errorf("frame %d: flags %#x, want %#x", i, tc.Flags(), wantF)
		}
		if !ip.DF() || ip.TOS() != 0x10 {
			t.Errorf("frame %d: DF %v TOS %#x", i, ip.DF(), ip.TOS())
		}
		gip, gtc := gpVerify(t, f)
		if int(gip.Length) != ip.TotalLen() || gtc.Seq != tc.Seq() || len(gtc.Options) == 0 {
			t.Errorf("frame %d: gopacket sees len %d seq %d options %v", i, gip.Length, gtc.Seq, gtc.Options)
		}
		got = append(got, tc.Payload()...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("payload differs after segmentation")
	}
}

func randPayload(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A 64 KB super-segment in front of a link that carries nothing above
// its MTU is cut in software; every frame is what a wire carries.
func TestGSOSoftwareSegmentation64K(t *testing.T) {
	h := newHarness(t, Options{})
	for _, mss := range []int{1448, 1447, 536} {
		payload := randPayload(65535 - 20 - 32 - 3)
		payload = payload[:len(payload)/mss*mss-mss/2] // a short last segment
		flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH | wire.TCPFlagFIN | wire.TCPFlagCWR)
		sendSuper(t, h, payload, mss, flags)
		checkSegments(t, h.ep.take(), payload, mss, flags)
	}
	if h.s.Stats().Link.OutGSOSegs.Load() == 0 {
		t.Fatal("OutGSOSegs not counted")
	}
}

// A link that carries super-segments gets one frame with its offload
// state; finishing it as a NIC would gives the same wire frames.
func TestGSOMetaFrameFinishes(t *testing.T) {
	for _, partial := range []bool{true, false} {
		h := newHarness(t, Options{})
		ep := &metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: partial}}
		nic := h.s.AddNIC("eth1", ep)
		nic.AddAddress(netip4("10.1.0.1/24"))
		nic.SetStatic(peer4("10.1.0.2"), peerMAC)
		ep.take()
		if nic.gsoMax() != 65535 {
			t.Fatalf("gsoMax %d", nic.gsoMax())
		}
		payload := randPayload(60000)
		flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
		th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: flags, Window: 500,
			Options: wire.TCPOptions{HasTS: true, TSVal: 11, TSEcr: 22}}
		if err := h.s.writePacket(&OutPacket{Src: netip4("10.1.0.1/24").Addr(), Dst: peer4("10.1.0.2"), Proto: wire.ProtoTCP, DF: true, TOS: 0x10,
			Parts: [3][]byte{nil, payload}, GSOSize: 1448}, th); err != nil {
			t.Fatal(err)
		}
		frames := ep.take()
		if len(frames) != 1 || len(ep.metas) != 1 {
			t.Fatalf("%d frames, %d metas; want one super-frame", len(frames), len(ep.metas))
		}
		m := ep.metas[0]
		if m.GSOType != link.GSOTCPv4 || m.GSOSize != 1448 || m.CsumPartial != partial || m.NetOff != 14 || m.CsumStart != 34 || m.CsumOffset != 16 || m.HdrLen != 14+20+32 {
			t.Fatalf("meta %+v", m)
		}
		var segs [][]byte
		scratch := make([]byte, 65600)
		if err := link.FinishFrame(frames[0], m, scratch, func(b []byte) error {
			segs = append(segs, append([]byte(nil), b...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkSegments(t, segs, payload, 1448, flags)
	}
}

func netip4(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func peer4(s string) netip.Addr    { return netip.MustParseAddr(s) }

// takerEP is a metaEP that takes frames' buffers (link.FrameTaker),
// keeping them until the test releases them, or refuses them all.
type takerEP struct {
	metaEP
	refuse  bool
	taken   [][]byte
	release func([]byte)
}

func (t *takerEP) TakeFrameMeta(f []byte, m link.Meta, release func([]byte)) error {
	if t.refuse {
		return link.ErrQueueFull
	}
	t.taken = append(t.taken, f)
	t.metas = append(t.metas, m)
	t.release = release
	return nil
}

// A super-segment goes to a link that takes buffers as the pool buffer
// it was built in, not copied; the link gives it back to the pool. A
// refused one is ENOBUFS and stays the stack's.
func TestGSOFrameTaken(t *testing.T) {
	h := newHarness(t, Options{})
	ep := &takerEP{metaEP: metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}}
	nic := h.s.AddNIC("eth1", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	ep.take()
	payload := randPayload(60000)
	flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
	send := func() error {
		th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: flags, Window: 500}
		return h.s.writePacket(&OutPacket{Src: netip4("10.1.0.1/24").Addr(), Dst: peer4("10.1.0.2"), Proto: wire.ProtoTCP, DF: true,
			Parts: [3][]byte{nil, payload}, GSOSize: 1448}, th)
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if len(ep.taken) != 1 || len(ep.take()) != 0 {
		t.Fatalf("%d frames taken, want the super-segment taken and nothing copied", len(ep.taken))
	}
	f := ep.taken[0]
	if cap(f) != bufSize3 || len(f) != 14+20+20+len(payload) || !bytes.Equal(f[54:], payload) {
		t.Fatalf("taken frame: len %d cap %d, want the whole pool buffer with the payload", len(f), cap(f))
	}
	if ep.metas[0].GSOSize != 1448 || !ep.metas[0].CsumPartial {
		t.Fatalf("meta %+v", ep.metas[0])
	}
	ep.release(f) // back to the pool, as the link does after delivery
	before := h.s.Stats().Link.OutQueueFull.Load()
	ep.refuse = true
	if err := send(); err != syscall.ENOBUFS {
		t.Fatalf("refused: %v, want ENOBUFS", err)
	}
	if h.s.Stats().Link.OutQueueFull.Load() != before+1 || len(ep.taken) != 1 {
		t.Fatal("a refused frame was not counted, or was kept")
	}
}

// A jumbo TCP segment that fits the MTU goes to a link that takes
// buffers whole too, its checksum left partial (not summed here and
// again by the receiver); finished as a NIC would, it is the segment.
// A small one is copied and summed as before.
func TestJumboTCPTakenPartial(t *testing.T) {
	h := newHarness(t, Options{})
	ep := &takerEP{metaEP: metaEP{chanEP: chanEP{mtu: 65000}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}}
	nic := h.s.AddNIC("eth1", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	ep.take()
	for _, size := range []int{30000, 1000} {
		payload := randPayload(size)
		th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: wire.TCPFlagACK, Window: 500}
		if err := h.s.writePacket(&OutPacket{Src: netip4("10.1.0.1/24").Addr(), Dst: peer4("10.1.0.2"), Proto: wire.ProtoTCP, DF: true,
			Parts: [3][]byte{nil, payload}}, th); err != nil {
			t.Fatal(err)
		}
		copied := ep.take()
		if size == 1000 {
			if len(copied) != 1 || len(ep.taken) != 1 {
				t.Fatalf("small segment: %d copied, %d taken; want it copied", len(copied), len(ep.taken))
			}
			gpVerify(t, copied[0])
			continue
		}
		if len(ep.taken) != 1 || len(copied) != 0 {
			t.Fatalf("jumbo segment: %d taken, %d copied; want it taken", len(ep.taken), len(copied))
		}
		m := ep.metas[len(ep.metas)-1]
		if m.GSOSize != 0 || !m.CsumPartial || m.CsumStart != 34 || m.CsumOffset != 16 {
			t.Fatalf("meta %+v", m)
		}
		var fin []byte
		if err := link.FinishFrame(ep.taken[0], m, make([]byte, 65600), func(b []byte) error {
			fin = append([]byte(nil), b...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		_, tc := gpVerify(t, fin)
		if !bytes.Equal(tc.Payload, payload) {
			t.Fatal("payload changed")
		}
		ep.release(ep.taken[0])
	}
}

// A NIC builds its next large packet in the buffer its link gave back
// last (still in cache); it keeps txBufsMax of them, the rest go to the
// pool, and small packets never take one.
func TestTxBufsLastBackFirstOut(t *testing.T) {
	nic := &NIC{}
	nic.offl.back = new(txBufs)
	var bufs [][]byte
	for i := 0; i < txBufsMax+2; i++ {
		bufs = append(bufs, getBuf(60000))
	}
	for _, b := range bufs {
		nic.offl.back.put(b)
	}
	if nic.offl.back.n != txBufsMax {
		t.Fatalf("kept %d, want %d", nic.offl.back.n, txBufsMax)
	}
	if b := nic.txBuf(100); cap(b) == bufSize3 {
		t.Fatal("a small packet took a large buffer")
	}
	b := nic.txBuf(50000)
	if len(b) != 50000 || &b[0] != &bufs[txBufsMax-1][0] {
		t.Fatal("not the buffer given back last")
	}
	if b := (*NIC)(nil).txBuf(50000); len(b) != 50000 {
		t.Fatal("no NIC: no buffer")
	}
}

// With no raw socket the per-packet raw lookups take no lock (the test
// holds the table's write lock: a lookup that took the read lock would
// never return); with one they find it.
func TestRawLookupNoLockWhenEmpty(t *testing.T) {
	var tb rawTable
	tb.mu.Lock()
	if tb.has(wire.ProtoTCP) || tb.has6(wire.ProtoTCP) {
		t.Fatal("an empty table has a raw socket")
	}
	tb.deliver(nil, nil, 0)
	tb.deliverRaw6(nil, nil, wire.ProtoTCP, nil, 0, nil)
	tb.mu.Unlock()
	e := &DgramEndpoint{proto: wire.ProtoTCP}
	tb.add(e)
	if !tb.has(wire.ProtoTCP) || tb.n.Load() != 1 {
		t.Fatal("raw socket not found")
	}
	tb.remove(e)
	if tb.has(wire.ProtoTCP) || tb.n.Load() != 0 {
		t.Fatal("removed raw socket still found")
	}
}
