package stack

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// vecEP is a metaEP whose writes gather (link.VecWriter): a gathered
// frame is recorded whole, as the kernel would read it; refuse makes it
// decline every one.
type vecEP struct {
	metaEP
	refuse bool
	vec    int
}

func (v *vecEP) WriteFrameVec(head []byte, tail [2][]byte, m link.Meta) (bool, error) {
	if v.refuse {
		return false, nil
	}
	f := append(append(append([]byte(nil), head...), tail[0]...), tail[1]...)
	v.vec++
	_, err := v.WriteFramesMeta([][]byte{f}, []link.Meta{m})
	return true, err
}

// newVecNIC adds a NIC on a gathering link to h, at 10.1.0.1 with the
// peer 10.1.0.2 resolved.
func newVecNIC(t *testing.T, h *harness) *vecEP {
	ep := &vecEP{metaEP: metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}}
	nic := h.s.AddNIC("eth1", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	ep.take()
	ep.metas = nil
	return ep
}

// vecSend writes a TCP packet of payload (given in two pieces, as a
// ring that wraps hands it over) to 10.1.0.2 and returns the frames the
// link got, finished as a NIC would (cut into segments, checksums
// filled).
func vecSend(t *testing.T, h *harness, ep *vecEP, payload []byte, gso int, flags uint8) [][]byte {
	t.Helper()
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: gsoSeq, Ack: 777, Flags: flags, Window: 500,
		Options: wire.TCPOptions{HasTS: true, TSVal: 11, TSEcr: 22}}
	cut := len(payload) / 3
	if err := h.s.writePacket(&OutPacket{Src: netip4("10.1.0.1/24").Addr(), Dst: peer4("10.1.0.2"), Proto: wire.ProtoTCP, DF: true, TOS: 0x10,
		Parts: [3][]byte{nil, payload[:cut], payload[cut:]}, GSOSize: gso}, th); err != nil {
		t.Fatal(err)
	}
	frames := ep.take()
	if len(ep.metas) == 0 {
		return frames // plain frames, checksums filled
	}
	if len(frames) != len(ep.metas) {
		t.Fatalf("%d frames, %d metas", len(frames), len(ep.metas))
	}
	var out [][]byte
	scratch := make([]byte, 65600)
	for i, f := range frames {
		if err := link.FinishFrame(f, ep.metas[i], scratch, func(b []byte) error {
			out = append(out, append([]byte(nil), b...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ep.metas = nil
	return out
}

// A super-segment and a full single segment leave as one gathered frame
// each, and finished they are exactly the wire frames of the copying
// path; a refused gather, a small payload and a packet tap go the
// copying way, with the same result.
func TestTCPGatheredWrite(t *testing.T) {
	h := newHarness(t, Options{})
	ep := newVecNIC(t, h)
	flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
	vecs := func() uint64 { return h.s.Stats().Link.OutVecFrames.Load() }

	big := randPayload(40 * 1448)
	checkSegments(t, vecSend(t, h, ep, big, 1448, flags), big, 1448, flags)
	if ep.vec != 1 || vecs() != 1 {
		t.Fatalf("super-segment: %d gathered writes, OutVecFrames %d; want 1", ep.vec, vecs())
	}
	one := randPayload(1448)
	checkSegments(t, vecSend(t, h, ep, one, 0, flags), one, 1448, flags)
	if ep.vec != 2 || vecs() != 2 {
		t.Fatalf("single segment: %d gathered writes, OutVecFrames %d; want 2", ep.vec, vecs())
	}

	small := randPayload(vecMinPayload - 1)
	checkSegments(t, vecSend(t, h, ep, small, 0, flags), small, 1448, flags)
	remove := h.s.AddPacketTap(func(*NIC, []byte, bool) {})
	checkSegments(t, vecSend(t, h, ep, big, 1448, flags), big, 1448, flags)
	remove()
	// A source-routed segment: its checksum covers another destination.
	th := &wire.TCPHeader{SrcPort: 5000, DstPort: 80, Seq: 1, Ack: 777, Flags: flags, Window: 500}
	if err := h.s.writePacket(&OutPacket{Src: netip4("10.1.0.1/24").Addr(), Dst: peer4("10.1.0.2"), PseudoDst: peer4("10.9.0.9"),
		Proto: wire.ProtoTCP, DF: true, Parts: [3][]byte{nil, one}}, th); err != nil {
		t.Fatal(err)
	}
	ep.take()
	ep.metas = nil
	ep.refuse = true
	checkSegments(t, vecSend(t, h, ep, big, 1448, flags), big, 1448, flags)
	if ep.vec != 2 || vecs() != 2 {
		t.Fatalf("a small payload, a tap, a source route, a refusal: %d gathered writes, OutVecFrames %d; want still 2", ep.vec, vecs())
	}
}

// The same over IPv6: one gathered frame with GSO_TCPV6 and the IPv6
// pseudo-header's partial checksum, finishing into the wire's segments.
func TestTCPGatheredWrite6(t *testing.T) {
	ep := &vecEP{metaEP: metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}}
	s, _ := newGSO6(t, ep)
	ep.take()
	ep.metas = nil
	payload := randPayload(30 * 1428)
	flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
	sendSuper6(t, s, payload, 1428, flags)
	frames := ep.take()
	if ep.vec != 1 || len(frames) != 1 || s.Stats().Link.OutVecFrames.Load() != 1 {
		t.Fatalf("%d gathered writes, %d frames, OutVecFrames %d; want 1", ep.vec, len(frames), s.Stats().Link.OutVecFrames.Load())
	}
	m := ep.metas[0]
	if m.GSOType != link.GSOTCPv6 || m.GSOSize != 1428 || !m.CsumPartial || m.CsumStart != 54 || m.HdrLen != 14+40+32 {
		t.Fatalf("meta %+v", m)
	}
	var segs [][]byte
	if err := link.FinishFrame(frames[0], m, make([]byte, 65600), func(b []byte) error {
		segs = append(segs, append([]byte(nil), b...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkSegments6(t, segs, payload, 1428, flags)
}

// A UDP super-datagram (UDP_SEGMENT) over a gathering link leaves as one
// gathered frame, the payload taken from the caller's buffer; refused by
// the link, or with a packet tap, it is copied in and goes whole as
// before. Finished as a NIC would, every way gives the same datagrams.
func TestUDPGatheredWrite(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		ep := &vecEP{metaEP: metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true, UDPGSO: true}}}
		s, dst := gsoHost(t, ep, v6) // gso_udp_test.go
		e := udpEP(t, s, v6)
		ep.take()
		ep.metas = nil
		payload := randPayload(64 * 1000)
		for i, way := range []string{"gathered", "refused", "tapped"} {
			ep.refuse = way == "refused"
			remove := func() {}
			if way == "tapped" {
				remove = s.AddPacketTap(func(*NIC, []byte, bool) {})
			}
			if _, err := e.SendMsg(payload, netip.AddrPortFrom(dst, 9), SendOpts{GSOSet: true, GSOSize: 1000}, nil); err != nil {
				t.Fatal(err)
			}
			remove()
			frames := ep.take()
			if len(frames) != 1 || len(ep.metas) != 1 || ep.metas[0].GSOType != link.GSOUDPL4 {
				t.Fatalf("v6=%v %s: %d frames, metas %+v; want one super-frame", v6, way, len(frames), ep.metas)
			}
			var segs [][]byte
			if err := link.FinishFrame(frames[0], ep.metas[0], make([]byte, 65600), func(b []byte) error {
				segs = append(segs, append([]byte(nil), b...))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			checkCut(t, udpWire(t, segs, 1500), payload, 1000)
			ep.metas = nil
			if want := 1; ep.vec != want || s.Stats().Link.OutVecFrames.Load() != uint64(want) {
				t.Fatalf("v6=%v after %d sends (%s): %d gathered, OutVecFrames %d; want 1", v6, i+1, way, ep.vec, s.Stats().Link.OutVecFrames.Load())
			}
		}
	}
}
