package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Segmentation and receive offload for TCP over IPv6: the tests of
// gso_test.go and gro_test.go for the other network protocol.

// newGSO6 is an IPv6 host (host6/64, DAD off) on ep with peer6 a
// permanent neighbour.
func newGSO6(t *testing.T, ep link.Endpoint) (*Stack, *NIC) {
	t.Helper()
	s := New(Options{DADTransmits: -1})
	t.Cleanup(s.Close)
	nic := s.AddNIC("eth0", ep)
	if err := nic.AddAddress(netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	nic.SetStatic6(peer6, peerMAC)
	return s, nic
}

// sendSuper6 hands the stack an IPv6 TCP super-segment as TCP does.
func sendSuper6(t *testing.T, s *Stack, payload []byte, mss int, flags uint8) {
	t.Helper()
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: flags, Window: 500,
		Options: wire.TCPOptions{HasTS: true, TSVal: 11, TSEcr: 22}}
	err := s.writePacket(&OutPacket{Src: host6, Dst: peer6, Proto: wire.ProtoTCP, DF: true, TOS: 0x10, TTL: 33,
		Parts: [3][]byte{nil, payload}, GSOSize: mss}, th)
	if err != nil {
		t.Fatalf("writePacket: %v", err)
	}
}

// gpVerify6 decodes an IPv6 frame with gopacket and checks the TCP
// checksum over the IPv6 pseudo-header.
func gpVerify6(t *testing.T, f []byte) (*layers.IPv6, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip, _ := p.NetworkLayer().(*layers.IPv6)
	tc, _ := p.TransportLayer().(*layers.TCP)
	if ip == nil || tc == nil {
		t.Fatalf("gopacket: not IPv6/TCP")
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

// checkSegments6 verifies frames are the wire form of the IPv6 super-
// segment: within the MTU, checksums right (wire and gopacket), sequence
// numbers and flags as a TSO NIC sets them, header fields copied, the
// payload whole.
func checkSegments6(t *testing.T, frames [][]byte, payload []byte, mss int, flags uint8) {
	t.Helper()
	want := (len(payload) + mss - 1) / mss
	if len(frames) != want {
		t.Fatalf("%d frames, want %d", len(frames), want)
	}
	var got []byte
	for i, f := range frames {
		if wire.Ethernet(f).EtherType() != wire.EtherTypeIPv6 || wire.Ethernet(f).Dst() != peerMAC {
			t.Fatalf("frame %d: ethertype %#x dst %v", i, wire.Ethernet(f).EtherType(), wire.Ethernet(f).Dst())
		}
		ip, err := wire.ParseIPv6(f[14:])
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(ip) > 1500 || len(f) != 14+len(ip) {
			t.Fatalf("frame %d: %d IP bytes in a %d-byte frame", i, len(ip), len(f))
		}
		tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(wire.ProtoTCP, 0), true)
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
		if ip.TrafficClass() != 0x10 || ip.HopLimit() != 33 || ip.Src() != host6 || ip.Dst() != peer6 || ip.NextHeader() != wire.ProtoTCP {
			t.Errorf("frame %d: header %x", i, ip[:40])
		}
		gip, gtc := gpVerify6(t, f)
		if int(gip.Length) != len(ip)-40 || gtc.Seq != tc.Seq() || len(gtc.Options) == 0 {
			t.Errorf("frame %d: gopacket sees len %d seq %d options %v", i, gip.Length, gtc.Seq, gtc.Options)
		}
		got = append(got, tc.Payload()...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("payload differs after segmentation")
	}
}

// A 64 KB IPv6 super-segment in front of a link that carries nothing
// above its MTU is cut in software into wire segments.
func TestGSO6SoftwareSegmentation64K(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, nic := newGSO6(t, ep)
	if nic.gsoMax() != wire.IPv4MaxLen {
		t.Fatalf("gsoMax %d", nic.gsoMax())
	}
	ep.take()
	for _, mss := range []int{1428, 1427, 1220} {
		payload := randPayload(65535 - 40 - 32 - 3)
		payload = payload[:len(payload)/mss*mss-mss/2] // a short last segment
		flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH | wire.TCPFlagFIN | wire.TCPFlagCWR)
		sendSuper6(t, s, payload, mss, flags)
		checkSegments6(t, ep.take(), payload, mss, flags)
	}
	if s.Stats().Link.OutGSOSegs.Load() == 0 || s.Stats().Link.OutGSOFrames.Load() != 0 {
		t.Fatalf("GSO frames %d, software segments %d", s.Stats().Link.OutGSOFrames.Load(), s.Stats().Link.OutGSOSegs.Load())
	}
}

// A segment size that does not fit the MTU with the IPv6 headers is
// refused, not sent as oversized frames.
func TestGSO6SegmentTooBig(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, _ := newGSO6(t, ep)
	ep.take()
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Flags: wire.TCPFlagACK, Options: wire.TCPOptions{HasTS: true}}
	err := s.writePacket(&OutPacket{Src: host6, Dst: peer6, Proto: wire.ProtoTCP, DF: true,
		Parts: [3][]byte{nil, randPayload(3 * 1440)}, GSOSize: 1440}, th) // 40+32+1440 > 1500
	if err == nil || s.Stats().IP6.OutTooBig.Load() != 1 || len(ep.take()) != 0 {
		t.Fatalf("err %v, OutTooBig %d", err, s.Stats().IP6.OutTooBig.Load())
	}
}

// A link that carries super-segments gets one IPv6 frame with its
// offload state (GSO_TCPV6, checksum partial over the IPv6 pseudo-
// header); finishing it as a NIC would gives the same wire frames.
func TestGSO6MetaFrameFinishes(t *testing.T) {
	for _, partial := range []bool{true, false} {
		ep := &metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: partial}}
		s, _ := newGSO6(t, ep)
		ep.take()
		ep.metas = nil
		payload := randPayload(60000)
		flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
		sendSuper6(t, s, payload, 1428, flags)
		frames := ep.take()
		if len(frames) != 1 || len(ep.metas) != 1 {
			t.Fatalf("%d frames, %d metas; want one super-frame", len(frames), len(ep.metas))
		}
		m := ep.metas[0]
		if m.GSOType != link.GSOTCPv6 || m.GSOSize != 1428 || m.CsumPartial != partial || m.NetOff != 14 || m.CsumStart != 54 || m.CsumOffset != 16 || m.HdrLen != 14+40+32 {
			t.Fatalf("meta %+v", m)
		}
		ip := wire.IPv6(frames[0][14:])
		if ip.PayloadLen() != 32+len(payload) || len(frames[0]) != 14+40+32+len(payload) {
			t.Fatalf("super-frame payload length %d, frame %d", ip.PayloadLen(), len(frames[0]))
		}
		if !partial {
			// Sent whole with a full checksum: it must verify as it is.
			if _, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(wire.ProtoTCP, 0), true); err != nil {
				t.Fatalf("full checksum of the super-frame: %v", err)
			}
		}
		var segs [][]byte
		scratch := make([]byte, 65600)
		if err := link.FinishFrame(frames[0], m, scratch, func(b []byte) error {
			segs = append(segs, append([]byte(nil), b...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkSegments6(t, segs, payload, 1428, flags)
		if s.Stats().Link.OutGSOFrames.Load() != 1 {
			t.Fatalf("OutGSOFrames %d", s.Stats().Link.OutGSOFrames.Load())
		}
	}
}

// Toward a neighbour that is not resolved, a super-segment is not handed
// whole (the neighbour queue holds plain frames): it is cut, queued
// behind the solicitation and sent once the advertisement arrives.
func TestGSO6UnresolvedNeighbour(t *testing.T) {
	h := newH6(t, Options{DADTransmits: -1})
	ep := &metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}
	nic := h.s.AddNIC("eth1", ep)
	if err := nic.AddAddress(netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	ep.take()
	payload := randPayload(5 * 1428)
	sendSuper6(t, h.s, payload, 1428, wire.TCPFlagACK)
	var ns int
	for _, f := range ep.take() {
		if wire.Ethernet(f).EtherType() == wire.EtherTypeIPv6 && f[14+6] == wire.ProtoICMPv6 && f[54] == wire.ICMPv6NeighborSolic {
			ns++
			continue
		}
		t.Fatalf("sent before resolution: %x", f[:60])
	}
	if ns != 1 || len(ep.metas) != 0 {
		t.Fatalf("%d solicitations, %d frames with offload state", ns, len(ep.metas))
	}
	b := make([]byte, 32)
	n := wire.PutNA(b, peer6, wire.NAFlagSolicited|wire.NAFlagOverride, peerMAC)
	nic.DeliverFrames([][]byte{frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoICMPv6, 255, b[:n], 0)})
	checkSegments6(t, ep.take(), payload, 1428, wire.TCPFlagACK)
	// Now REACHABLE: the next one goes whole.
	sendSuper6(t, h.s, payload, 1428, wire.TCPFlagACK)
	if fs := ep.take(); len(fs) != 1 || len(ep.metas) != 1 || ep.metas[0].GSOType != link.GSOTCPv6 {
		t.Fatalf("%d frames, metas %+v", len(fs), ep.metas)
	}
}

// tcp6Seg builds an IPv6 TCP segment frame from peer6 to host6.
func tcp6Seg(sport uint16, seq uint32, payload []byte, flags uint8, tsval uint32) []byte {
	th := wire.TCPHeader{SrcPort: sport, DstPort: 80, Seq: seq, Ack: 99, Flags: flags, Window: 1000,
		Options: wire.TCPOptions{HasTS: true, TSVal: tsval, TSEcr: 5}}
	seg := make([]byte, th.Len()+len(payload))
	th.Put(seg)
	copy(seg[th.Len():], payload)
	wire.TCP(seg).FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), host6.As16(), wire.ProtoTCP, len(seg)))
	return frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoTCP, 64, seg, -1)
}

// groCheck6 checks a coalesced IPv6 packet.
func groCheck6(t *testing.T, f []byte, seq uint32, payload []byte, flags uint8) {
	t.Helper()
	ip, err := wire.ParseIPv6(f[14:])
	if err != nil || len(f) != 14+40+ip.PayloadLen() {
		t.Fatalf("coalesced packet: %v (frame %d, payload length %d)", err, len(f), ip.PayloadLen())
	}
	tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(wire.ProtoTCP, 0), true)
	if err != nil {
		t.Fatalf("coalesced packet: %v", err)
	}
	gpVerify6(t, f)
	if tc.Seq() != seq || tc.Flags() != flags || !bytes.Equal(tc.Payload(), payload) {
		t.Fatalf("coalesced seq %d flags %#x len %d; want %d %#x %d", tc.Seq(), tc.Flags(), len(tc.Payload()), seq, flags, len(payload))
	}
}

// In-order IPv6 segments of one flow in a batch become one packet with a
// valid checksum over the IPv6 pseudo-header.
func TestGRO6CoalescesInOrder(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, nic := newGSO6(t, ep)
	data := randPayload(10*1001 + 7) // odd sizes: sums land at odd offsets
	var frames [][]byte
	for i := 0; i < 10; i++ {
		frames = append(frames, tcp6Seg(1, 1000+uint32(i*1001), data[i*1001:(i+1)*1001], wire.TCPFlagACK, 7))
	}
	frames = append(frames, tcp6Seg(1, 1000+10*1001, data[10*1001:], wire.TCPFlagACK|wire.TCPFlagPSH, 7))
	out := nic.groBatch(frames)
	if len(out) != 1 || !nic.groValid(0) {
		t.Fatalf("%d packets out, want 1", len(out))
	}
	groCheck6(t, out[0], 1000, data, wire.TCPFlagACK|wire.TCPFlagPSH)
	if s.Stats().Link.InGROSegs.Load() != 11 || s.Stats().Link.InGROFrames.Load() != 1 {
		t.Fatalf("GRO counters %d %d", s.Stats().Link.InGROSegs.Load(), s.Stats().Link.InGROFrames.Load())
	}
}

// What must not merge stays apart: an IPv4 and an IPv6 flow on the same
// ports, a different hop limit or flow label, a bad checksum (passes
// alone, not vouched for); a segment of the flow behind an extension
// header ends the merge, so it does not overtake the merged data.
func TestGRO6FlushRules(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	_, nic := newGSO6(t, ep)
	a := randPayload(1000)
	hop := tcp6Seg(1, 2000, a, wire.TCPFlagACK, 7)
	hop[14+7] = 63
	label := tcp6Seg(1, 3000, a, wire.TCPFlagACK, 7)
	label[14+3] = 0x42
	label2 := tcp6Seg(1, 4000, a, wire.TCPFlagACK, 7)
	label2[14+3] = 0x42
	bad := tcp6Seg(2, 0, a, wire.TCPFlagACK, 7)
	bad[len(bad)-1] ^= 0xff
	// The flow's next segment behind a destination options header (PadN).
	seg := tcp6Seg(1, 5000, a, wire.TCPFlagACK, 7)[54:]
	withExt := frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Opts, 64, append([]byte{wire.ProtoTCP, 0, 1, 4, 0, 0, 0, 0}, seg...), -1)
	frames := [][]byte{
		tcp6Seg(1, 0, a, wire.TCPFlagACK, 7),
		groSeg(1, 0, a, wire.TCPFlagACK, 7), // IPv4, same ports and sequence numbers
		tcp6Seg(1, 1000, a, wire.TCPFlagACK, 7),
		groSeg(1, 1000, a, wire.TCPFlagACK, 7),
		hop,   // hop limit differs: the flow's slot goes out, a new one starts
		label, // flow label differs: the same
		bad,
		label2,
		withExt,
	}
	out := nic.groBatch(frames)
	type seen struct {
		v6    bool
		sport uint16
		seq   uint32
		n     int
		valid bool
	}
	var got []seen
	for i, f := range out {
		w := seen{v6: wire.Ethernet(f).EtherType() == wire.EtherTypeIPv6, valid: nic.groValid(i)}
		var tc wire.TCP
		if w.v6 {
			ip := wire.IPv6(f[14:])
			if ip.NextHeader() == wire.ProtoTCP {
				tc = wire.TCP(ip.Payload())
				groVerify6(t, f)
			} else {
				tc = wire.TCP(ip.Payload()[8:])
			}
		} else {
			tc = wire.TCP(wire.IPv4(f[14:]).Payload())
			gpVerify(t, f)
		}
		w.sport, w.seq, w.n = tc.SrcPort(), tc.Seq(), len(tc.Payload())
		got = append(got, w)
	}
	want := []seen{
		{true, 1, 0, 2000, true},
		{true, 1, 2000, 1000, true},
		{true, 2, 0, 1000, false},
		{true, 1, 3000, 2000, true},
		{true, 1, 5000, 1000, false},
		{false, 1, 0, 2000, true},
	}
	if len(got) != len(want) {
		t.Fatalf("out %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("out %+v\nwant %+v", got, want)
		}
	}
}

// groVerify6 checks a good IPv6 TCP frame with gopacket, skipping the
// one the test broke on purpose.
func groVerify6(t *testing.T, f []byte) {
	t.Helper()
	ip := wire.IPv6(f[14:])
	if _, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(wire.ProtoTCP, 0), true); err == nil {
		gpVerify6(t, f)
	}
}

// How a frame with offload state goes in over IPv6: a super-segment of
// TCP right after the fixed header, for this host, whole with its
// partial checksum trusted; anything else finished in software.
func TestOffloadClass6(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	_, nic := newGSO6(t, ep)
	nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	seg := tcp6Seg(1, 0, randPayload(3000), wire.TCPFlagACK, 7)
	other := append([]byte(nil), seg...)
	copy(other[14+24:14+40], netip.MustParseAddr("2001:db8::77").AsSlice())
	ext := frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Opts, 64, append([]byte{wire.ProtoTCP, 0, 1, 4, 0, 0, 0, 0}, seg[54:]...), -1)
	gso := link.Meta{GSOType: link.GSOTCPv6, GSOSize: 1000, NetOff: 14, HdrLen: 54 + 32, CsumPartial: true, CsumStart: 54, CsumOffset: 16}
	for _, c := range []struct {
		name         string
		f            []byte
		m            link.Meta
		valid, plain bool
	}{
		{"super-segment for us", seg, gso, true, true},
		{"valid checksum", seg, link.Meta{NetOff: 14, CsumValid: true}, true, true},
		{"IPv4 GSO type on IPv6", seg, link.Meta{GSOType: link.GSOTCPv4, GSOSize: 1000, NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 16}, false, false},
		{"not for us", other, gso, false, false},
		{"extension header", ext, link.Meta{GSOType: link.GSOTCPv6, GSOSize: 1000, NetOff: 14, CsumPartial: true, CsumStart: 62, CsumOffset: 16}, false, false},
		{"partial checksum elsewhere", seg, link.Meta{NetOff: 14, CsumPartial: true, CsumStart: 58, CsumOffset: 16}, false, false},
		{"partial checksum at UDP's offset", seg, link.Meta{NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 6}, false, false},
		{"IPv4 partial checksum elsewhere", groSeg(1, 0, randPayload(100), wire.TCPFlagACK, 7), link.Meta{NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 6}, false, false},
		{"IPv4 partial TCP checksum", groSeg(1, 0, randPayload(100), wire.TCPFlagACK, 7), link.Meta{NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}, true, true},
		{"UDP GSO", seg, link.Meta{GSOType: link.GSOUDPL4, GSOSize: 1000, NetOff: 14, CsumPartial: true, CsumStart: 54, CsumOffset: 6}, false, false},
		{"truncated", seg[:40], gso, false, false},
	} {
		v, p := nic.offloadClass(c.f, c.m)
		if v != c.valid || p != c.plain {
			t.Errorf("%s: valid %v plain %v, want %v %v", c.name, v, p, c.valid, c.plain)
		}
	}
}

// An IPv6 super-segment taken whole is delivered to TCP once, its
// trusted partial checksum not verified; the same frame with a broken
// payload and no offload state is verified and dropped.
func TestGRO6TrustedSuperSegment(t *testing.T) {
	h := newH6(t, Options{DADTransmits: -1})
	if err := h.nic.AddAddress(netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	h.nic.SetStatic6(peer6, peerMAC)
	h.clk.Advance(time.Second)
	h.ep.take()
	seg := tcp6Seg(1, 0, randPayload(4000), wire.TCPFlagACK, 7)
	wire.TCP(seg[54:]).SetChecksum(0)
	link.PartialTCPChecksum6(wire.IPv6(seg[14:]))
	m := link.Meta{GSOType: link.GSOTCPv6, GSOSize: 1000, NetOff: 14, HdrLen: 54 + 32, CsumPartial: true, CsumStart: 54, CsumOffset: 16}
	st := h.s.Stats()
	h.nic.DeliverFramesMeta([][]byte{seg}, []link.Meta{m})
	if st.Link.InGSOFrames.Load() != 1 || st.IP6.InDelivers.Load() != 1 || st.IP6.InDiscards.Load() != 0 {
		t.Fatalf("InGSOFrames %d InDelivers %d InDiscards %d", st.Link.InGSOFrames.Load(), st.IP6.InDelivers.Load(), st.IP6.InDiscards.Load())
	}
	// No listener on port 80: TCP answered the one segment with one reset.
	var rst int
	for _, x := range h.sent() {
		if x.ext.Proto == wire.ProtoTCP && wire.TCP(x.ip[x.ext.Offset:]).Flags()&wire.TCPFlagRST != 0 {
			rst++
		}
	}
	if rst != 1 {
		t.Fatalf("%d resets, want 1", rst)
	}
	// Without offload state the partial sum is just a wrong checksum.
	h.nic.DeliverFrames([][]byte{seg})
	if st.IP6.InDiscards.Load() != 1 {
		t.Fatalf("InDiscards %d after a bad checksum", st.IP6.InDiscards.Load())
	}
}

// FuzzOffload6 hands the receive path IPv6 frames with arbitrary offload
// state (what a TAP's virtio-net header may claim) in batches that go
// through coalescing: nothing may panic, whatever the bytes and the
// state say.
func FuzzOffload6(f *testing.F) {
	seg := tcp6Seg(1, 0, randPayload(3000), wire.TCPFlagACK, 7)
	f.Add(seg[14:], uint8(link.GSOTCPv6), uint16(1000), true, uint16(54), uint16(16), false)
	f.Add(seg[14:], uint8(link.GSONone), uint16(0), false, uint16(0), uint16(0), true)
	f.Add(seg[14:200], uint8(link.GSOUDPL4), uint16(100), true, uint16(54), uint16(6), false)
	f.Fuzz(func(t *testing.T, pkt []byte, typ uint8, size uint16, partial bool, start, off uint16, valid bool) {
		s := New(Options{DADTransmits: -1})
		defer s.Close()
		nic := s.AddNIC("eth0", &chanEP{mtu: 1500, discard: true})
		nic.AddAddress(netip.PrefixFrom(host6, 64))
		nic.SetStatic6(peer6, peerMAC)
		frame := make([]byte, 14+len(pkt))
		wire.PutEthernet(frame, hostMAC, peerMAC, wire.EtherTypeIPv6)
		copy(frame[14:], pkt)
		m := link.Meta{GSOType: typ, GSOSize: size, NetOff: 14, CsumPartial: partial, CsumStart: start, CsumOffset: off, CsumValid: valid}
		next := tcp6Seg(1, 3000, randPayload(1000), wire.TCPFlagACK, 7)
		frames := [][]byte{frame, append([]byte(nil), frame...), next}
		nic.DeliverFramesMeta(frames, []link.Meta{m, m, {}})
		nic.DeliverFrames([][]byte{frame, next, frame})
	})
}

// The per-packet IPv6 paths next to IPv4's (BENCHMARKS.md, issue 9): a
// small TCP segment out, and one in that TCP answers with a reset.

func benchSendTCP(b *testing.B, v6 bool) {
	ep := &chanEP{mtu: 1500, discard: true}
	s := New(Options{DADTransmits: -1})
	defer s.Close()
	nic := s.AddNIC("eth0", ep)
	src, dst := hostAddr, peerAddr
	nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	nic.SetStatic(peerAddr, peerMAC)
	if v6 {
		src, dst = host6, peer6
		nic.AddAddress(netip.PrefixFrom(host6, 64))
		nic.SetStatic6(peer6, peerMAC)
	}
	payload := make([]byte, 64)
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Flags: wire.TCPFlagACK | wire.TCPFlagPSH, Window: 500,
		Options: wire.TCPOptions{HasTS: true, TSVal: 11, TSEcr: 22}}
	p := OutPacket{Src: src, Dst: dst, Proto: wire.ProtoTCP, DF: true, Parts: [3][]byte{nil, payload}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := p
		if err := s.writePacket(&q, th); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendTCP4(b *testing.B) { benchSendTCP(b, false) }
func BenchmarkSendTCP6(b *testing.B) { benchSendTCP(b, true) }

func benchReceiveTCP(b *testing.B, v6 bool) {
	ep := &chanEP{mtu: 1500, discard: true}
	s := New(Options{DADTransmits: -1})
	defer s.Close()
	nic := s.AddNIC("eth0", ep)
	nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	nic.SetStatic(peerAddr, peerMAC)
	nic.AddAddress(netip.PrefixFrom(host6, 64))
	nic.SetStatic6(peer6, peerMAC)
	f := groSeg(1, 1000, make([]byte, 64), wire.TCPFlagACK, 7)
	if v6 {
		f = tcp6Seg(1, 1000, make([]byte, 64), wire.TCPFlagACK, 7)
	}
	frames := [][]byte{f}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nic.DeliverFrames(frames)
	}
}

func BenchmarkReceiveTCP4(b *testing.B) { benchReceiveTCP(b, false) }
func BenchmarkReceiveTCP6(b *testing.B) { benchReceiveTCP(b, true) }
