package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func TestEchoReply(t *testing.T) {
	h := newHarness(t, Options{})
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(7, 1, []byte("abcdef"))))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames out, want 1 echo reply", len(out))
	}
	ip := parseOut(t, out[0])
	m, err := wire.ParseICMPv4(ip.Payload())
	if err != nil || m.Type() != wire.ICMPEchoReply || m.ID() != 7 || m.Seq() != 1 || string(m.Payload()) != "abcdef" {
		t.Fatalf("bad reply %x (%v)", ip, err)
	}
	if ip.Src() != hostAddr || ip.Dst() != peerAddr || wire.Ethernet(out[0]).Dst() != peerMAC {
		t.Fatalf("addresses: %v > %v", ip.Src(), ip.Dst())
	}
}

func TestBadIPHeadersDroppedAndCounted(t *testing.T) {
	h := newHarness(t, Options{})
	good := ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(1, 1, nil))
	st := &h.s.Stats().IP
	cases := []struct {
		name    string
		mangle  func(f []byte) []byte
		counter *Counter
	}{
		{"truncated", func(f []byte) []byte { return f[:14+12] }, &st.InTruncated},
		{"version 6", func(f []byte) []byte { f[14] = 0x65; return f }, &st.InBadVersion},
		{"IHL 4", func(f []byte) []byte { f[14] = 0x44; return f }, &st.InBadHeaderLen},
		{"total length beyond frame", func(f []byte) []byte { f[16], f[17] = 0x05, 0xdc; return f }, &st.InBadLength},
		{"bad checksum", func(f []byte) []byte { f[24] ^= 0xff; return f }, &st.InCsumErrors},
		{"broadcast source", func(f []byte) []byte {
			ip := wire.IPv4(f[14:])
			ip.SetSrc(netip.MustParseAddr("255.255.255.255"))
			ip.FillChecksum()
			return f
		}, &st.InBadSource},
		{"multicast source", func(f []byte) []byte {
			ip := wire.IPv4(f[14:])
			ip.SetSrc(netip.MustParseAddr("224.0.0.9"))
			ip.FillChecksum()
			return f
		}, &st.InBadSource},
		{"not for us", func(f []byte) []byte {
			ip := wire.IPv4(f[14:])
			ip.SetDst(netip.MustParseAddr("10.0.0.99"))
			ip.FillChecksum()
			return f
		}, &st.InAddrErrors},
		// A bad option length is answered with a parameter problem:
		// TestBadOptionParameterProblem.
	}
	for _, c := range cases {
		f := c.mangle(append([]byte(nil), good...))
		before := c.counter.Load()
		h.ep.inject(f)
		if c.counter.Load() != before+1 {
			t.Errorf("%s: counter did not move", c.name)
		}
		if out := h.ep.take(); len(out) != 0 {
			t.Errorf("%s: stack answered %d frames", c.name, len(out))
		}
	}
	// Truncated Ethernet frame.
	h.ep.inject([]byte{1, 2, 3})
	if h.s.Stats().Link.InMalformed.Load() != 1 {
		t.Errorf("short frame not counted")
	}
}

func TestIPOptionsKeptAndSkipped(t *testing.T) {
	h := newHarness(t, Options{})
	// Router Alert + NOPs: valid options; the packet is delivered.
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Options: []byte{0x94, 0x04, 0, 0, 1, 1, 1, 0}}, echoPayload(3, 3, []byte("x")))
	h.ep.inject(f)
	if out := h.ep.take(); len(out) != 1 {
		t.Fatalf("packet with options: %d replies", len(out))
	}
}

func TestUDPBadInputCounted(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	u := udpPayload(peerAddr, hostAddr, 1234, 5000, []byte("hello"))
	bad := append([]byte(nil), u...)
	bad[9] ^= 1 // payload byte: checksum fails
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, bad))
	if h.s.Stats().UDP.InCsumErrors.Load() != 1 {
		t.Fatalf("bad UDP checksum not counted")
	}
	short := append([]byte(nil), u...)
	short[4], short[5] = 0, 200 // length beyond payload
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, short))
	if h.s.Stats().UDP.InBadLength.Load() != 1 {
		t.Fatalf("UDP length mismatch not counted")
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, u))
	buf := make([]byte, 100)
	n, _, from, err := e.RecvFrom(buf, false)
	if err != nil || string(buf[:n]) != "hello" || from != netip.AddrPortFrom(peerAddr, 1234) {
		t.Fatalf("good datagram: %q %v %v", buf[:n], from, err)
	}
}

func TestPortUnreachableQuotesDatagram(t *testing.T) {
	h := newHarness(t, Options{})
	u := udpPayload(peerAddr, hostAddr, 1234, 9, []byte("nobody"))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 0x4242}, u))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames, want a port unreachable", len(out))
	}
	ip := parseOut(t, out[0])
	m, err := wire.ParseICMPv4(ip.Payload())
	if err != nil || m.Type() != wire.ICMPDestUnreach || m.Code() != wire.ICMPPortUnreach {
		t.Fatalf("got %x", ip)
	}
	inner := wire.IPv4(m.Payload())
	if inner.ID() != 0x4242 || !bytes.Equal(inner[20:28], u[:8]) {
		t.Fatalf("quoted packet wrong: %x", m.Payload())
	}
	// No error about a broadcast datagram.
	bh := wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: netip.MustParseAddr("10.0.0.255")}
	h.ep.inject(ipFrame(bh, udpPayload(peerAddr, bh.Dst, 1, 9, nil)))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered a broadcast with ICMP")
	}
}

func TestICMPErrorRateLimit(t *testing.T) {
	h := newHarness(t, Options{ICMPRateLimit: 10, ICMPRateBurst: 5})
	for i := 0; i < 20; i++ {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 9, nil)))
	}
	if n := len(h.ep.take()); n != 5 {
		t.Fatalf("%d errors sent in a burst, want 5", n)
	}
	if h.s.Stats().ICMP.OutRateLimited.Load() != 15 || h.s.Stats().ICMP.OutRateLimitedGlobal.Load() != 15 {
		t.Fatalf("rate-limited = %d, by the global bucket %d", h.s.Stats().ICMP.OutRateLimited.Load(), h.s.Stats().ICMP.OutRateLimitedGlobal.Load())
	}
	h.clk.Advance(time.Second)
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 9, nil)))
	if n := len(h.ep.take()); n != 1 {
		t.Fatalf("after refill: %d", n)
	}
}

// fragments splits a UDP datagram into IPv4 fragments of `size` payload bytes.
func fragments(id uint16, payload []byte, size int) [][]byte {
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		h := wire.IPv4Header{Protocol: wire.ProtoUDP, ID: id, FragOff: off, MF: end < len(payload)}
		out = append(out, ipFrame(h, payload[off:end]))
	}
	return out
}

func TestReassemblyOutOfOrderAndDuplicates(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	e.Bind(netip.AddrPortFrom(hostAddr, 5000))
	defer e.Close()
	data := bytes.Repeat([]byte("0123456789"), 500)
	fr := fragments(99, udpPayload(peerAddr, hostAddr, 1, 5000, data), 1480)
	order := []int{3, 1, 1, 0, 2, 3}
	for _, i := range order {
		h.ep.inject(fr[i])
	}
	buf := make([]byte, 10000)
	n, _, _, err := e.RecvFrom(buf, false)
	if err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("reassembled %d bytes, %v", n, err)
	}
	if h.s.Stats().IP.ReasmDuplicates.Load() != 1 || h.s.Stats().IP.ReasmOKs.Load() != 1 {
		t.Fatalf("dups %d oks %d", h.s.Stats().IP.ReasmDuplicates.Load(), h.s.Stats().IP.ReasmOKs.Load())
	}
	// The late duplicate of fragment 3 starts a new partial datagram that times out.
	if h.s.ReasmMemInUse() == 0 {
		t.Fatalf("late duplicate not held")
	}
}

func TestReassemblyOverlapDropsDatagram(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	e.Bind(netip.AddrPortFrom(hostAddr, 5000))
	defer e.Close()
	p := udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 3000))
	fr := fragments(5, p, 1480)
	h.ep.inject(fr[0])
	// A fragment inside the first one is a duplicate, ignored (Linux's
	// IPFRAG_DUP); one that sticks out of it overlaps (offset 1472, same ID).
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 5, FragOff: 8, MF: true}, make([]byte, 16)))
	if h.s.Stats().IP.ReasmDuplicates.Load() != 1 || h.s.Stats().IP.ReasmOverlaps.Load() != 0 {
		t.Fatalf("contained fragment: duplicates %d, overlaps %d", h.s.Stats().IP.ReasmDuplicates.Load(), h.s.Stats().IP.ReasmOverlaps.Load())
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 5, FragOff: 1472, MF: true}, make([]byte, 16)))
	for _, f := range fr[1:] {
		h.ep.inject(f)
	}
	if _, _, _, err := e.RecvFrom(make([]byte, 4000), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("overlapping datagram delivered: %v", err)
	}
	if h.s.Stats().IP.ReasmOverlaps.Load() != 1 {
		t.Fatalf("overlap not counted")
	}
}

func TestReassemblyTimeoutSendsTimeExceeded(t *testing.T) {
	h := newHarness(t, Options{})
	p := udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 3000))
	fr := fragments(6, p, 1480)
	h.ep.inject(fr[0])
	h.ep.inject(fr[2])
	if h.s.ReasmMemInUse() == 0 {
		t.Fatal("nothing held")
	}
	h.clk.Advance(29 * time.Second)
	if len(h.ep.take()) != 0 {
		t.Fatal("expired early")
	}
	h.clk.Advance(2 * time.Second)
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames after timeout, want ICMP time exceeded", len(out))
	}
	m, _ := wire.ParseICMPv4(parseOut(t, out[0]).Payload())
	if m.Type() != wire.ICMPTimeExceeded || m.Code() != wire.ICMPReassemblyExceeded {
		t.Fatalf("got type %d code %d", m.Type(), m.Code())
	}
	if h.s.ReasmMemInUse() != 0 || h.s.Stats().IP.ReasmTimeout.Load() != 1 {
		t.Fatalf("memory %d, timeouts %d", h.s.ReasmMemInUse(), h.s.Stats().IP.ReasmTimeout.Load())
	}
	// Without the first fragment: no ICMP.
	h.ep.inject(fr[1])
	h.clk.Advance(31 * time.Second)
	if len(h.ep.take()) != 0 {
		t.Fatal("time exceeded sent without the first fragment")
	}
}

func TestReassemblyMemoryLimitAndTooBig(t *testing.T) {
	h := newHarness(t, Options{ReasmMemLimit: 64 << 10})
	// A flood of first fragments with distinct IDs, never completed.
	for id := 0; id < 200; id++ {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: uint16(id), MF: true}, make([]byte, 1480)))
	}
	if h.s.ReasmMemInUse() > 64<<10 {
		t.Fatalf("memory %d over the limit", h.s.ReasmMemInUse())
	}
	// Beyond the limit the oldest datagrams are evicted, as Linux does.
	if h.s.Stats().IP.ReasmEvictions.Load() == 0 {
		t.Fatal("no evictions counted")
	}
	// A fragment that would end beyond 65,535 bytes.
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 999, FragOff: 65528, MF: false}, make([]byte, 100)))
	if h.s.Stats().IP.ReasmTooBig.Load() != 1 {
		t.Fatal("oversized datagram not counted")
	}
	h.clk.Advance(31 * time.Second)
	if h.s.ReasmMemInUse() != 0 {
		t.Fatalf("memory not freed after timeout: %d", h.s.ReasmMemInUse())
	}
}

func TestFragmentationRespectsMTUAndDF(t *testing.T) {
	h := newHarness(t, Options{})
	h.s.AddRoute(Route{Prefix: netip.MustParsePrefix("10.0.0.2/32"), NIC: h.nic, MTU: 576})
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	if _, err := e.SendTo(make([]byte, 2000), netip.AddrPortFrom(peerAddr, 9), nil); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	total := 0
	for i, f := range out {
		ip := parseOut(t, f)
		if len(ip) > 576 {
			t.Fatalf("fragment %d is %d bytes > route MTU 576", i, len(ip))
		}
		if ip.MF() != (i < len(out)-1) || ip.FragOffset() != total {
			t.Fatalf("fragment %d: MF %v offset %d", i, ip.MF(), ip.FragOffset())
		}
		total += len(ip.Payload())
	}
	if total != 2008 {
		t.Fatalf("fragments carry %d bytes, want 2008", total)
	}
	// DF set: EMSGSIZE locally.
	err := h.s.WritePacket(&OutPacket{Dst: peerAddr, Proto: wire.ProtoUDP, DF: true, Parts: [3][]byte{make([]byte, 1000)}})
	if !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("DF over MTU: %v", err)
	}
}

func TestForwardingFragNeededAndTTL(t *testing.T) {
	h := newHarness(t, Options{Forwarding: true})
	// A second network behind the same NIC with a small MTU.
	far := netip.MustParseAddr("10.0.0.50")
	h.nic.SetStatic(far, wire.MAC{2, 0, 0, 0, 0, 0x50})
	h.s.AddRoute(Route{Prefix: netip.MustParsePrefix("10.0.0.50/32"), NIC: h.nic, MTU: 576})
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: far, DF: true}, make([]byte, 1000)))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	m, _ := wire.ParseICMPv4(parseOut(t, out[0]).Payload())
	if m.Type() != wire.ICMPDestUnreach || m.Code() != wire.ICMPFragNeeded || m.NextHopMTU() != 576 {
		t.Fatalf("type %d code %d mtu %d", m.Type(), m.Code(), m.NextHopMTU())
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: far, TTL: 1}, make([]byte, 10)))
	m, _ = wire.ParseICMPv4(parseOut(t, h.ep.take()[0]).Payload())
	if m.Type() != wire.ICMPTimeExceeded {
		t.Fatalf("TTL 1 forwarded: type %d", m.Type())
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: far, TTL: 9}, make([]byte, 10)))
	fw := parseOut(t, h.ep.take()[0])
	if fw.TTL() != 8 || fw.Dst() != far {
		t.Fatalf("forwarded TTL %d dst %v", fw.TTL(), fw.Dst())
	}
}
