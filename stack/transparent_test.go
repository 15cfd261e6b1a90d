package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

var (
	foreign   = netip.MustParseAddr("198.51.100.7")
	foreignPf = netip.MustParsePrefix("198.51.100.0/24")
)

// tproxyHarness is a harness with a rule diverting TCP and UDP to
// 198.51.100.0/24 ports 1-1000, and 10.0.0.0/24 (ours, with its
// directed broadcast) and 224.0.0.0/4 with Local, to port 9000; a
// transparent listener and a transparent UDP socket on 9000.
func tproxyHarness(t *testing.T) (*harness, *DgramEndpoint) {
	h, u, _ := tproxyHarnessL(t)
	return h, u
}

// tproxyHarnessL is tproxyHarness with the transparent listener.
func tproxyHarnessL(t *testing.T) (*harness, *DgramEndpoint, *tcp.Endpoint) {
	h := newHarness(t, Options{})
	for _, r := range []TransparentRule{
		{Proto: TransparentTCP | TransparentUDP, Dst: foreignPf, Ports: [2]uint16{1, 1000}, ToPort: 9000},
		{Proto: TransparentUDP, Dst: netip.MustParsePrefix("10.0.0.0/24"), Ports: [2]uint16{7000, 7000}, ToPort: 9000, Local: true},
		{Proto: TransparentUDP, Dst: netip.MustParsePrefix("224.0.0.0/4"), ToPort: 9000, Local: true},
	} {
		if err := h.s.AddTransparentRule(r); err != nil {
			t.Fatal(err)
		}
	}
	l := h.s.TCP.NewEndpoint()
	l.SetTransparent(true)
	if err := l.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	u := h.s.NewDgram(KindUDP, wire.ProtoUDP)
	u.SetTransparent(true)
	if err := u.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return h, u, l
}

// A diverted SYN is answered from the original destination, on the wire.
func TestTransparentSynAckSource(t *testing.T) {
	h, _ := tproxyHarness(t)
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, synPayload(peerAddr, foreign, 40000, 443)))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames out, want a SYN-ACK", len(out))
	}
	ip := parseOut(t, out[0])
	seg := wire.TCP(ip.Payload())
	if ip.Src() != foreign || seg.SrcPort() != 443 || ip.Dst() != peerAddr || seg.Flags() != wire.TCPFlagSYN|wire.TCPFlagACK {
		t.Fatalf("answer %v:%d -> %v flags %#x, want a SYN-ACK from %v:443", ip.Src(), seg.SrcPort(), ip.Dst(), seg.Flags(), foreign)
	}
	if h.s.Stats().TProxy.DivertedTCP.Load() != 1 {
		t.Fatal("not counted")
	}
}

// Diverted packets pass every input check first: a bad TCP checksum
// and a martian source are dropped and counted, not diverted.
func TestTransparentInputChecks(t *testing.T) {
	h, _ := tproxyHarness(t)
	syn := synPayload(peerAddr, foreign, 40000, 443)
	syn[16] ^= 0xff // checksum
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, syn))
	lo := netip.MustParseAddr("127.0.0.5")
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Src: lo, Dst: foreign}, synPayload(lo, foreign, 40000, 443)))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered %d bad packets", len(out))
	}
	st := h.s.Stats()
	if st.TProxy.DivertedTCP.Load() != 0 || st.IP.InDiscards.Load() != 1 || st.IP.InMartianSrcLoopback.Load() != 1 {
		t.Fatalf("diverted %d, discards %d, martians %d", st.TProxy.DivertedTCP.Load(), st.IP.InDiscards.Load(), st.IP.InMartianSrcLoopback.Load())
	}
}

// A port outside the rule's range, or no rule, is the old behaviour:
// dropped and counted as not ours.
func TestTransparentPortOutsideRule(t *testing.T) {
	h, _ := tproxyHarness(t)
	before := h.s.Stats().IP.InAddrErrors.Load()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, synPayload(peerAddr, foreign, 40000, 1001)))
	other := netip.MustParseAddr("203.0.113.9")
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: other}, synPayload(peerAddr, other, 40000, 80)))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered %d frames", len(out))
	}
	if got := h.s.Stats().IP.InAddrErrors.Load() - before; got != 2 {
		t.Fatalf("InAddrErrors +%d, want 2", got)
	}
}

// Broadcast and multicast destinations are never diverted, even with a
// rule (Local) covering them; a unicast one of ours on the rule's port is.
func TestTransparentNeverBroadcast(t *testing.T) {
	h, u := tproxyHarness(t)
	bc := netip.MustParseAddr("10.0.0.255")
	h.ep.inject(bcastFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: bc}, udpPayload(peerAddr, bc, 1, 7000, []byte("b"))))
	h.ep.inject(bcastFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: limitedBroadcast}, udpPayload(peerAddr, limitedBroadcast, 1, 7000, []byte("l"))))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: allHosts}, udpPayload(peerAddr, allHosts, 1, 7000, []byte("m"))))
	if _, _, _, err := u.RecvFrom(make([]byte, 8), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("a broadcast or multicast datagram was diverted: %v", err)
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 7000, []byte("u"))))
	b := make([]byte, 8)
	n, _, from, info, err := u.RecvFromInfo(b, false)
	if err != nil || string(b[:n]) != "u" || from != netip.AddrPortFrom(peerAddr, 1) || info.Dst != hostAddr || info.DstPort != 7000 {
		t.Fatalf("local diverted datagram %q from %v info %+v: %v", b[:n], from, info, err)
	}
	if h.s.Stats().TProxy.DivertedUDP.Load() != 1 {
		t.Fatal("DivertedUDP")
	}
}

// A fragmented datagram is reassembled before it is diverted, and keeps
// its original destination port.
func TestTransparentFragments(t *testing.T) {
	h, u := tproxyHarness(t)
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	p := udpPayload(peerAddr, foreign, 5353, 53, data)
	// Second fragment first: it carries no port.
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 7, FragOff: 56}, p[56:]))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 7, MF: true}, p[:56]))
	b := make([]byte, 200)
	n, _, _, info, err := u.RecvFromInfo(b, false)
	if err != nil || n != 100 || b[99] != 99 || info.Dst != foreign || info.DstPort != 53 {
		t.Fatalf("got %d bytes, info %+v: %v", n, info, err)
	}
}

// The directed broadcast of another NIC, arriving as unicast on this
// one, is not diverted either, though a rule covers its prefix.
func TestTransparentOtherNICBroadcast(t *testing.T) {
	h, u := tproxyHarness(t)
	n2 := h.s.AddNIC("eth1", &chanEP{mtu: 1500})
	if err := n2.AddAddress(netip.MustParsePrefix("192.0.2.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentUDP, Dst: netip.MustParsePrefix("192.0.2.0/24"), ToPort: 9000}); err != nil {
		t.Fatal(err)
	}
	bc := netip.MustParseAddr("192.0.2.255")
	before := h.s.Stats().IP.InAddrErrors.Load()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: bc}, udpPayload(peerAddr, bc, 1, 7000, []byte("b"))))
	if _, _, _, err := u.RecvFrom(make([]byte, 8), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("another NIC's broadcast was diverted: %v", err)
	}
	if h.s.Stats().IP.InAddrErrors.Load() != before+1 {
		t.Fatal("not counted as not ours")
	}
	// Control: a unicast address of that prefix is.
	d := netip.MustParseAddr("192.0.2.77")
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: d}, udpPayload(peerAddr, d, 1, 7000, []byte("u"))))
	if n, _, _, err := u.RecvFrom(make([]byte, 8), false); err != nil || n != 1 {
		t.Fatalf("control: %d %v", n, err)
	}
}

// Fragments whose whole datagram is to a port the rule does not cover
// are dropped and counted, not diverted.
func TestTransparentFragmentsOutsidePorts(t *testing.T) {
	h, u := tproxyHarness(t)
	p := udpPayload(peerAddr, foreign, 5353, 1001, make([]byte, 100))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 9, FragOff: 56}, p[56:]))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 9, MF: true}, p[:56]))
	if _, _, _, err := u.RecvFrom(make([]byte, 200), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("delivered: %v", err)
	}
	if n := h.s.Stats().TProxy.FragNoRule.Load(); n != 1 {
		t.Fatalf("FragNoRule %d, want 1", n)
	}
}

// The divert path allocates nothing per packet: a diverted datagram
// read with its original destination, and a foreign packet that only
// walks the rules.
func TestTransparentDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; runs without -race")
	}
	h, u := tproxyHarness(t)
	h.ep.discard = true
	udp := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign}, udpPayload(peerAddr, foreign, 1, 53, make([]byte, 64)))}
	other := netip.MustParseAddr("203.0.113.9")
	miss := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: other}, udpPayload(peerAddr, other, 1, 53, make([]byte, 64)))}
	buf := make([]byte, 2048)
	for name, f := range map[string]func(){
		"diverted udp": func() { h.nic.DeliverFrames(udp); u.RecvFromInfo(buf, false) },
		"no rule":      func() { h.nic.DeliverFrames(miss) },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %.1f allocations per packet", name, a)
		}
	}
	if h.s.Stats().TProxy.DivertedUDP.Load() < 200 {
		t.Fatal("the datagrams were not diverted")
	}
}

// A flood of diverted SYNs, each to another foreign address, is bounded
// like any other: the listener's backlog holds 8 half-open connections,
// the rest are answered with SYN cookies and hold no state.
func TestTransparentSynFloodBounded(t *testing.T) {
	h, _, l := tproxyHarnessL(t)
	h.ep.discard = true
	for i := 0; i < 200; i++ {
		dst := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: dst}, synPayload(peerAddr, dst, uint16(20000+i), 443)))
	}
	st := h.s.TCP.Stats()
	if n := len(h.s.TCP.Table()); n > 8+1 {
		t.Fatalf("%d connections in the table after the flood, want the backlog (8) and the listener", n)
	}
	if st.SynCookiesSent < 190 || h.s.Stats().TProxy.DivertedTCP.Load() != 200 {
		t.Fatalf("cookies %d, diverted %d", st.SynCookiesSent, h.s.Stats().TProxy.DivertedTCP.Load())
	}
	// A cookie answered completes a connection named by its original
	// destination.
	h.ep.discard = false
	dst := netip.MustParseAddr("198.51.100.250")
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: dst}, synPayload(peerAddr, dst, 30000, 443)))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d answers to the SYN", len(out))
	}
	sa := wire.TCP(parseOut(t, out[0]).Payload())
	if sa.Flags() != wire.TCPFlagSYN|wire.TCPFlagACK {
		t.Fatalf("flags %#x", sa.Flags())
	}
	ack := wire.TCPHeader{SrcPort: 30000, DstPort: 443, Seq: 1001, Ack: sa.Seq() + 1, Flags: wire.TCPFlagACK, Window: 65535}
	b := make([]byte, ack.Len())
	ack.Put(b)
	wire.TCP(b).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), dst.As4(), wire.ProtoTCP, len(b)))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: dst}, b))
	if h.s.TCP.Stats().SynCookiesRecv != 1 {
		t.Fatal("the cookie was not taken")
	}
	for {
		c, _, err := l.Accept()
		if err != nil {
			t.Fatalf("no connection from the cookie: %v", err)
		}
		if c.LocalAddr() == netip.AddrPortFrom(dst, 443) {
			c.Close()
			break
		}
		c.Close()
	}
}

// The host's own datagrams, looped back, are never diverted, even to an
// address and port a Local rule covers.
func TestTransparentNotLoopback(t *testing.T) {
	h, u := tproxyHarness(t)
	plain := h.s.NewDgram(KindUDP, wire.ProtoUDP)
	if err := plain.Bind(netip.AddrPortFrom(hostAddr, 7000)); err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	c := h.s.NewDgram(KindUDP, wire.ProtoUDP)
	defer c.Close()
	// Loopback delivers on its own goroutine: wait for the datagram.
	w := waiter.NewEntry()
	plain.Waiter().Register(w, waiter.EventIn)
	defer plain.Waiter().Unregister(w)
	if _, err := c.SendTo([]byte("self"), netip.AddrPortFrom(hostAddr, 7000), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the looped-back datagram never reached the plain socket")
	}
	b := make([]byte, 8)
	if n, _, _, err := plain.RecvFrom(b, false); err != nil || string(b[:n]) != "self" {
		t.Fatalf("the plain socket got %q %v", b[:n], err)
	}
	if _, _, _, err := u.RecvFrom(b, false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("a looped-back datagram was diverted: %v", err)
	}
}
