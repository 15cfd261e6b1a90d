package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

func synPayload(src, dst netip.Addr, sport, dport uint16) []byte {
	th := wire.TCPHeader{SrcPort: sport, DstPort: dport, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535,
		Options: wire.TCPOptions{MSS: 1460}}
	b := make([]byte, th.Len())
	th.Put(b)
	wire.TCP(b).FillChecksum(wire.PseudoHeaderSum(src.As4(), dst.As4(), wire.ProtoTCP, len(b)))
	return b
}

var loopAddr = netip.MustParseAddr("127.0.0.1")

// A frame from the wire addressed to 127.0.0.1 reaches neither a UDP
// socket bound there nor a TCP listener there (RFC 1122 3.2.1.3), and is
// counted; the same traffic to the NIC's address still works.
func TestMartianLoopbackDestinationFromWire(t *testing.T) {
	h := newHarness(t, Options{})
	st := &h.s.Stats().IP
	u := h.s.NewDgram(KindUDP, 17)
	if err := u.Bind(netip.AddrPortFrom(loopAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: loopAddr}, udpPayload(peerAddr, loopAddr, 1, 5000, []byte("x"))))
	if _, _, _, err := u.RecvFrom(make([]byte, 10), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("UDP socket on 127.0.0.1 received a frame from eth0: %v", err)
	}
	if st.InMartianDstLoopback.Load() != 1 {
		t.Fatalf("martian destination not counted: %d", st.InMartianDstLoopback.Load())
	}
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered a martian with %d frames", len(out))
	}

	lo := h.s.TCP.NewEndpoint()
	if err := lo.Bind(netip.AddrPortFrom(loopAddr, 80)); err != nil {
		t.Fatal(err)
	}
	if err := lo.Listen(8); err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	ctl := h.s.TCP.NewEndpoint()
	if err := ctl.Bind(netip.AddrPortFrom(hostAddr, 81)); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Listen(8); err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: loopAddr}, synPayload(peerAddr, loopAddr, 40000, 80)))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("a listener on 127.0.0.1 answered a SYN from eth0 (%d frames)", len(out))
	}
	if st.InMartianDstLoopback.Load() != 2 {
		t.Fatalf("martian SYN not counted: %d", st.InMartianDstLoopback.Load())
	}
	// Control: the same SYN to the NIC's address is answered.
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP}, synPayload(peerAddr, hostAddr, 40000, 81)))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("control SYN: %d frames", len(out))
	}
	if seg := wire.TCP(parseOut(t, out[0]).Payload()); seg.Flags() != wire.TCPFlagSYN|wire.TCPFlagACK {
		t.Fatalf("control SYN answered with flags %#x", seg.Flags())
	}
}

// Every martian reason drops the packet (no answer) and moves its own
// counter; Linux's exceptions for source 0.0.0.0 still pass.
func TestMartianSourcesAndDestinations(t *testing.T) {
	h := newHarness(t, Options{})
	st := &h.s.Stats().IP
	a := netip.MustParseAddr
	cases := []struct {
		name     string
		src, dst netip.Addr
		counter  *Counter
	}{
		{"source loopback", a("127.0.0.1"), hostAddr, &st.InMartianSrcLoopback},
		{"source 127.9.9.9", a("127.9.9.9"), hostAddr, &st.InMartianSrcLoopback},
		{"source 0.0.0.0 to unicast", a("0.0.0.0"), hostAddr, &st.InMartianSrcZero},
		{"source 0.1.2.3", a("0.1.2.3"), hostAddr, &st.InMartianSrcZero},
		{"source limited broadcast", a("255.255.255.255"), hostAddr, &st.InMartianSrcBroadcast},
		{"source directed broadcast", a("10.0.0.255"), hostAddr, &st.InMartianSrcBroadcast},
		{"source multicast", a("224.0.0.9"), hostAddr, &st.InMartianSrcMulticast},
		{"source class E", a("240.1.2.3"), hostAddr, &st.InMartianSrcClassE},
		{"source own address", hostAddr, hostAddr, &st.InMartianSrcLocal},
		{"destination 127.0.0.1", peerAddr, a("127.0.0.1"), &st.InMartianDstLoopback},
		{"destination class E", peerAddr, a("250.0.0.1"), &st.InMartianDstClassE},
		{"destination 0.0.0.0", peerAddr, a("0.0.0.0"), &st.InMartianDstZero},
	}
	for _, c := range cases {
		before, bad := c.counter.Load(), st.InBadSource.Load()+st.InAddrErrors.Load()
		f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Src: c.src, Dst: c.dst}, echoPayload(1, 1, nil))
		h.ep.inject(f)
		if got := c.counter.Load(); got != before+1 {
			t.Errorf("%s: reason counter %d, want %d", c.name, got, before+1)
		}
		if st.InBadSource.Load()+st.InAddrErrors.Load() != bad+1 {
			t.Errorf("%s: not counted in InBadSource/InAddrErrors", c.name)
		}
		if out := h.ep.take(); len(out) != 0 {
			t.Errorf("%s: answered with %d frames", c.name, len(out))
		}
	}

	// Source 0.0.0.0 to the limited broadcast (a DHCP client) is delivered.
	u := h.s.NewDgram(KindUDP, 17)
	u.SetBroadcast(true)
	if err := u.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 67)); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	zero := netip.IPv4Unspecified()
	h.ep.inject(bcastFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Src: zero, Dst: limitedBroadcast},
		udpPayload(zero, limitedBroadcast, 68, 67, []byte("discover"))))
	buf := make([]byte, 64)
	n, _, from, err := u.RecvFrom(buf, false)
	if err != nil || string(buf[:n]) != "discover" || from != netip.AddrPortFrom(zero, 68) {
		t.Fatalf("DHCP-like broadcast from 0.0.0.0: %q %v %v", buf[:n], from, err)
	}
	// Weak host model: an address of another NIC is accepted.
	ep2 := &chanEP{mtu: 1500}
	nic2 := h.s.AddNIC("eth1", ep2)
	other := a("192.168.7.1")
	nic2.AddAddress(netip.PrefixFrom(other, 24))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: other}, echoPayload(2, 2, nil)))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("echo to another NIC's address: %d replies", len(out))
	}
	if ip := parseOut(t, out[0]); ip.Src() != other {
		t.Fatalf("reply from %v", ip.Src())
	}
}

// bcastFrame is ipFrame sent to the broadcast MAC.
func bcastFrame(h wire.IPv4Header, payload []byte) []byte {
	f := ipFrame(h, payload)
	wire.Ethernet(f).SetDst(wire.BroadcastMAC)
	return f
}
