package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// udpWire decodes each frame with gopacket, checks every checksum (IP
// and UDP over the right pseudo-header), the sizes and IPv4 IDs, and
// returns the datagrams' payloads in order.
func udpWire(t *testing.T, frames [][]byte, mtu int) [][]byte {
	t.Helper()
	var out [][]byte
	var id0 uint16
	for i, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("frame %d: gopacket: %v", i, el.Error())
		}
		u, _ := p.TransportLayer().(*layers.UDP)
		if u == nil {
			t.Fatalf("frame %d: not UDP", i)
		}
		switch ip := p.NetworkLayer().(type) {
		case *layers.IPv4:
			u.SetNetworkLayerForChecksum(ip)
			if int(ip.Length) > mtu {
				t.Fatalf("frame %d: %d bytes > MTU %d", i, ip.Length, mtu)
			}
			if i == 0 {
				id0 = ip.Id
			} else if ip.Id != id0+uint16(i) {
				t.Errorf("frame %d: IP ID %d, want %d", i, ip.Id, id0+uint16(i))
			}
		case *layers.IPv6:
			u.SetNetworkLayerForChecksum(ip)
			if 40+int(ip.Length) > mtu {
				t.Fatalf("frame %d: %d bytes > MTU %d", i, 40+int(ip.Length), mtu)
			}
		default:
			t.Fatalf("frame %d: no IP layer", i)
		}
		err, mism := p.VerifyChecksums()
		if err != nil {
			t.Fatalf("frame %d: VerifyChecksums: %v", i, err)
		}
		for _, m := range mism {
			t.Errorf("frame %d: bad checksum in %v", i, m.Layer.LayerType())
		}
		if int(u.Length) != 8+len(u.Payload) || u.SrcPort != 4000 || u.DstPort != 9 {
			t.Errorf("frame %d: UDP length %d ports %d>%d, payload %d", i, u.Length, u.SrcPort, u.DstPort, len(u.Payload))
		}
		out = append(out, u.Payload)
	}
	return out
}

// checkCut asserts the datagrams are payload cut at gso.
func checkCut(t *testing.T, dgrams [][]byte, payload []byte, gso int) {
	t.Helper()
	want := (len(payload) + gso - 1) / gso
	if len(dgrams) != want {
		t.Fatalf("%d datagrams, want %d", len(dgrams), want)
	}
	for i, d := range dgrams {
		end := min((i+1)*gso, len(payload))
		if !bytes.Equal(d, payload[i*gso:end]) {
			t.Fatalf("datagram %d: %d bytes differ from the sender's segment", i, len(d))
		}
	}
}

func udpEP(t *testing.T, s *Stack, v6 bool) *DgramEndpoint {
	t.Helper()
	e := s.NewDgram(KindUDP, 17)
	unspec := netip.IPv4Unspecified()
	if v6 {
		e.SetInet6()
		unspec = netip.IPv6Unspecified()
	}
	if err := e.Bind(netip.AddrPortFrom(unspec, 4000)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// UDP_SEGMENT in front of a link that carries nothing above its MTU:
// the stack cuts the send into datagrams a wire carries, each with its
// own length, IP ID and checksum (IPv4 and IPv6, with a short last one).
func TestUDPGSOSoftware(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		ep := &chanEP{mtu: 1500}
		var s *Stack
		var dst netip.Addr
		if v6 {
			s, _ = newGSO6(t, ep)
			dst = peer6
		} else {
			h := newHarness(t, Options{})
			s, ep, dst = h.s, h.ep, peerAddr
		}
		e := udpEP(t, s, v6)
		if err := e.SetUDPSegment(1200); err != nil {
			t.Fatal(err)
		}
		ep.take()
		payload := randPayload(1200*20 + 77)
		n, err := e.SendTo(payload, netip.AddrPortFrom(dst, 9), nil)
		if err != nil || n != len(payload) {
			t.Fatalf("v6=%v: send %d %v", v6, n, err)
		}
		checkCut(t, udpWire(t, ep.take(), 1500), payload, 1200)
		if got := s.Stats().UDP.OutDatagrams.Load(); got != 21 {
			t.Errorf("v6=%v: OutDatagrams %d, want 21", v6, got)
		}
		if s.Stats().Link.OutGSOSegs.Load() != 21 {
			t.Errorf("v6=%v: OutGSOSegs %d", v6, s.Stats().Link.OutGSOSegs.Load())
		}
	}
}

// A link with USO gets the send as one GSO_UDP_L4 frame; finishing it as
// the kernel (or a NIC) does gives the same datagrams. A link that
// carries TCP super-segments only gets them cut in software.
// gsoHost is a stack on ep, at 10.1.0.1 with the peer 10.1.0.2
// resolved or (v6) as newGSO6 makes it; it returns the peer's address.
func gsoHost(t *testing.T, ep link.Endpoint, v6 bool) (*Stack, netip.Addr) {
	t.Helper()
	if v6 {
		s, _ := newGSO6(t, ep)
		return s, peer6
	}
	s := New(Options{})
	t.Cleanup(s.Close)
	nic := s.AddNIC("eth0", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	return s, peer4("10.1.0.2")
}

func TestUDPGSOMetaFrame(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, partial := range []bool{true, false} {
			ep := &metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: partial, UDPGSO: true}}
			s, dst := gsoHost(t, ep, v6)
			hl := 40
			if !v6 {
				hl = 20
			}
			e := udpEP(t, s, v6)
			ep.take()
			ep.metas = nil
			payload := randPayload(64 * 1000)
			if _, err := e.SendMsg(payload, netip.AddrPortFrom(dst, 9), SendOpts{GSOSet: true, GSOSize: 1000}, nil); err != nil {
				t.Fatal(err)
			}
			frames := ep.take()
			if len(frames) != 1 || len(ep.metas) != 1 {
				t.Fatalf("v6=%v partial=%v: %d frames %d metas, want one super-frame", v6, partial, len(frames), len(ep.metas))
			}
			m := ep.metas[0]
			if m.GSOType != link.GSOUDPL4 || m.GSOSize != 1000 || m.CsumPartial != partial || m.NetOff != 14 ||
				int(m.CsumStart) != 14+hl || m.CsumOffset != 6 || int(m.HdrLen) != 14+hl+8 {
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
			checkCut(t, udpWire(t, segs, 1500), payload, 1000)
			if s.Stats().Link.OutGSOFrames.Load() != 1 {
				t.Errorf("OutGSOFrames %d", s.Stats().Link.OutGSOFrames.Load())
			}
		}
	}
	// TSO only: cut in software.
	ep := &metaEP{chanEP: chanEP{mtu: 1500}, off: link.Offloads{GSOMax: 65535, NeedsMeta: true, PartialCsum: true}}
	s := New(Options{})
	t.Cleanup(s.Close)
	nic := s.AddNIC("eth0", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	e := udpEP(t, s, false)
	ep.take()
	ep.metas = nil
	payload := randPayload(5000)
	if _, err := e.SendMsg(payload, netip.AddrPortFrom(peer4("10.1.0.2"), 9), SendOpts{GSOSet: true, GSOSize: 1000}, nil); err != nil {
		t.Fatal(err)
	}
	checkCut(t, udpWire(t, ep.take(), 1500), payload, 1000)
	for _, m := range ep.metas {
		if m.GSOSize != 0 {
			t.Fatalf("a link without USO got a super-frame: %+v", m)
		}
	}
}

// Linux's udp_send_skb limits (6.18): a first datagram (a segment, or
// the payload if shorter) over the route MTU is EMSGSIZE, more than
// UDPMaxSegments segments EINVAL; both counted, nothing sent. A segment
// size over the MTU with a payload that fits goes; 128 segments go.
func TestUDPGSOLimits(t *testing.T) {
	h := newHarness(t, Options{})
	e := udpEP(t, h.s, false)
	to := netip.AddrPortFrom(peerAddr, 9)
	if err := e.SetUDPSegment(1500 - 28 + 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(make([]byte, 1473), to, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("segment over the MTU: %v, want EMSGSIZE", err)
	}
	if _, err := e.SendTo(make([]byte, 3000), to, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("segments over the MTU: %v, want EMSGSIZE", err)
	}
	if _, err := e.SendTo(make([]byte, 1472), to, nil); err != nil {
		t.Fatalf("payload within the MTU, segment size over it: %v", err)
	}
	if err := e.SetUDPSegment(1500 - 28); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(make([]byte, 10), to, nil); err != nil {
		t.Fatalf("segment at the MTU: %v", err)
	}
	h.ep.take()
	if _, err := e.SendMsg(make([]byte, 100*UDPMaxSegments+1), to, SendOpts{GSOSet: true, GSOSize: 100}, nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("129 segments: %v, want EINVAL", err)
	}
	if got := len(h.ep.take()); got != 0 {
		t.Fatalf("%d frames sent by refused sends", got)
	}
	if _, err := e.SendMsg(make([]byte, 100*UDPMaxSegments), to, SendOpts{GSOSet: true, GSOSize: 100}, nil); err != nil {
		t.Fatalf("128 segments: %v", err)
	}
	if got := len(h.ep.take()); got != UDPMaxSegments {
		t.Fatalf("%d frames, want 128", got)
	}
	// A control message of 0 turns segmentation off for the send.
	if _, err := e.SendMsg(make([]byte, 3000), to, SendOpts{GSOSet: true}, nil); err != nil {
		t.Fatalf("cmsg 0: %v", err)
	}
	if got := len(h.ep.take()); got != 3 { // fragmented, as a plain send
		t.Fatalf("cmsg 0: %d frames, want 3 fragments", got)
	}
	if got := h.s.Stats().UDP.OutGSOErrors.Load(); got != 3 {
		t.Fatalf("OutGSOErrors %d, want 3", got)
	}
	if err := e.SetUDPSegment(65536); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("UDP_SEGMENT 65536: %v", err)
	}
	if err := e.SetUDPSegment(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("UDP_SEGMENT -1: %v", err)
	}
}

// udpSuper is a GSO_UDP_L4 frame from the peer to the host's port 4000
// with its offload state: the checksum partial (pseudo-header sum over
// the whole length) when partial, else complete over the whole.
func udpSuper(payload []byte, gso int, partial bool) ([]byte, link.Meta) {
	u := udpPayload(peerAddr, hostAddr, 7000, 4000, payload)
	if partial {
		ps := wire.PseudoHeaderSum(peerAddr.As4(), hostAddr.As4(), wire.ProtoUDP, len(u))
		binary.BigEndian.PutUint16(u[6:8], wire.Fold(ps))
	}
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 1}, u)
	return f, link.Meta{GSOType: link.GSOUDPL4, GSOSize: uint16(gso), HdrLen: 14 + 20 + 8, NetOff: 14,
		CsumPartial: partial, CsumStart: 34, CsumOffset: 6}
}

// A UDP super-datagram for a socket with UDP_GRO on is queued whole with
// its segment size; with UDP_GRO off, without a vouched-for checksum, or
// with a raw UDP socket listening, it is cut into the sender's datagrams.
func TestUDPGROTakesSuperWhole(t *testing.T) {
	h := newHarness(t, Options{})
	e := udpEP(t, h.s, false)
	payload := randPayload(5*1000 + 1)
	reads := func() (sizes, gsos []int) {
		buf := make([]byte, 65536)
		for {
			n, _, _, info, err := e.RecvFromInfo(buf, false)
			if err != nil {
				return
			}
			sizes, gsos = append(sizes, n), append(gsos, info.GSOSize)
		}
	}
	f, m := udpSuper(payload, 1000, true)
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	if sz, _ := reads(); len(sz) != 6 {
		t.Fatalf("UDP_GRO off: %d reads, want 6 datagrams", len(sz))
	}
	e.SetUDPGRO(true)
	f, m = udpSuper(payload, 1000, true)
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	if sz, g := reads(); len(sz) != 1 || sz[0] != len(payload) || g[0] != 1000 {
		t.Fatalf("UDP_GRO on: reads %v gso %v, want one of %d with 1000", sz, g, len(payload))
	}
	if got := h.s.Stats().UDP.InDatagrams.Load(); got != 12 {
		t.Fatalf("InDatagrams %d, want 12", got)
	}
	if got := h.s.Stats().IP.InDelivers.Load(); got < 12 {
		t.Fatalf("IP InDelivers %d, want at least 12", got)
	}
	// Our own address as the source (a martian from the wire): the
	// normal path drops and counts it, datagram by datagram.
	f, m = udpSuper(payload, 1000, true)
	copy(f[14+12:14+16], hostAddr.AsSlice())
	wire.IPv4(f[14:]).FillChecksum()
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	if sz, _ := reads(); len(sz) != 0 {
		t.Fatalf("martian source: %d reads", len(sz))
	}
	if h.s.Stats().IP.InMartianSrcLocal.Load() == 0 {
		t.Fatal("martian source not counted")
	}
	f, m = udpSuper(payload, 1000, false) // no partial checksum, not CsumValid
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	if sz, _ := reads(); len(sz) != 6 {
		t.Fatalf("unvouched checksum: %d reads, want 6", len(sz))
	}
	raw := h.s.NewDgram(KindRaw, wire.ProtoUDP)
	defer raw.Close()
	f, m = udpSuper(payload, 1000, true)
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	if sz, _ := reads(); len(sz) != 6 {
		t.Fatalf("raw UDP socket listening: %d reads, want 6", len(sz))
	}
}

// An IPv6 super-datagram taken whole under UDP_GRO keeps its header's
// flow label for IPV6_FLOWINFO, as Linux's read of the coalesced skb
// reports its IPv6 header's (ipv6_gro_receive coalesces only segments
// with one flow label). Before, such a read reported 0.
func TestUDPGROKeepsFlowLabel6(t *testing.T) {
	h := newH6(t, Options{})
	e := udpEP(t, h.s, true)
	e.SetUDPGRO(true)
	payload := randPayload(2500)
	f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp6(peerLL, hostLL, 7000, 4000, payload), -1)
	f[15], f[16], f[17] = f[15]&0xf0|0x1, 0x23, 0x45 // flow label 0x12345
	m := link.Meta{GSOType: link.GSOUDPL4, GSOSize: 1000, HdrLen: 14 + 40 + 8, NetOff: 14, CsumValid: true, CsumStart: 54, CsumOffset: 6}
	h.nic.DeliverFramesMeta([][]byte{f}, []link.Meta{m})
	n, _, _, info, err := e.RecvFromInfo(make([]byte, 4096), false)
	if err != nil || n != len(payload) || info.GSOSize != 1000 || info.Flow != 0x12345 {
		t.Fatalf("read %d %v, gso %d flow %#x; want %d, gso 1000, flow 0x12345", n, err, info.GSOSize, info.Flow, len(payload))
	}
}

// Under IP_PMTUDISC_WANT a UDP_SEGMENT send is judged whole, as Linux's
// __ip_make_skb judges the super-datagram: one that fits the MTU goes
// out with DF on every segment (and a send no longer than its segment
// size as a plain datagram with DF), a larger one without DF.
func TestUDPGSODontFragmentWant(t *testing.T) {
	for _, c := range []struct {
		gso, n, segs int
		df           bool
	}{{500, 1200, 3, true}, {1000, 600, 1, true}, {1000, 4000, 4, false}} {
		h := newHarness(t, Options{})
		e := udpEP(t, h.s, false)
		if err := e.SetUDPSegment(c.gso); err != nil {
			t.Fatal(err)
		}
		h.ep.take()
		if _, err := e.SendTo(randPayload(c.n), netip.AddrPortFrom(peerAddr, 9), nil); err != nil {
			t.Fatal(err)
		}
		fs := h.ep.take()
		if len(fs) != c.segs {
			t.Fatalf("%d of %d: %d datagrams, want %d", c.gso, c.n, len(fs), c.segs)
		}
		for i, f := range fs {
			if df := wire.IPv4(f[wire.EthernetHeaderLen:]).DF(); df != c.df {
				t.Errorf("%d of %d: datagram %d DF %v, want %v", c.gso, c.n, i, df, c.df)
			}
		}
	}
}
