package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// A second host on eth1's link, a segment between the router and far.
var (
	fwMid    = netip.MustParseAddr("2001:db8:1::3")
	fwMidMAC = wire.MAC{2, 0, 0, 0, 0, 0x33}
)

// srh builds a Segment Routing Header over next header nh: segments in
// RFC 8754 order (segments[0] the final destination), segments left sl.
func srh(nh uint8, sl int, segs ...netip.Addr) []byte {
	h := make([]byte, 8, 8+16*len(segs))
	for _, s := range segs {
		h = append(h, s.AsSlice()...)
	}
	h[0], h[1], h[2], h[3], h[4] = nh, byte(len(h)/8-1), wire.IPv6RouteSRH, byte(sl), byte(len(segs)-1)
	return h
}

// srhUDP is a UDP datagram behind an SRH from peer6 to segs[sl], its
// checksum over the final destination segs[0] (RFC 8200 8.1).
func srhUDP(hop uint8, sl int, data string, segs ...netip.Addr) []byte {
	pl := append(srh(wire.ProtoUDP, sl, segs...), udp6(peer6, segs[0], 1000, 9, []byte(data))...)
	return frame6(hostMAC, peerMAC, peer6, segs[sl], wire.ProtoIPv6Route, hop, pl, -1)
}

func newSeg6(t *testing.T, opts Options) *fw6 {
	t.Helper()
	f := newFw6(t, opts)
	f.nic1.SetStatic6(fwMid, fwMidMAC)
	return f
}

// End with segments left 2: the packet leaves for segments[1] with one
// segment less and one hop less, nothing else changed (the UDP checksum
// still covers the final destination).
func TestSeg6EndForward(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	st := f.s.Stats()
	in := srhUDP(9, 2, "sr", fwFar, fwMid, host6)
	f.ep.inject(bytes.Clone(in))
	if back := parse6(t, f.ep.take()); len(back) != 0 {
		t.Fatalf("%d frames back", len(back))
	}
	fwd := parse6(t, f.ep1.take())
	if len(fwd) != 1 {
		t.Fatalf("%d forwarded", len(fwd))
	}
	p := fwd[0]
	eq(t, "dst", p.ip.Dst(), fwMid)
	eq(t, "src", p.ip.Src(), peer6)
	eq(t, "hop limit", p.ip.HopLimit(), uint8(8))
	eq(t, "dst MAC", p.eth.Dst, fwMidMAC)
	want := bytes.Clone(wire.IPv6(in[14:]).Payload())
	want[3] = 1 // segments left
	if !bytes.Equal(p.ip.Payload(), want) {
		t.Fatalf("payload:\n got %x\nwant %x", p.ip.Payload(), want)
	}
	u := wire.UDP(p.ip.Payload()[8+48:])
	if wire.Fold(wire.Sum(u, wire.PseudoHeaderSum6(peer6.As16(), fwFar.As16(), wire.ProtoUDP, len(u)))) != 0xffff {
		t.Fatal("UDP checksum no longer over the final destination")
	}
	eq(t, "Seg6End", st.IP6.Seg6End.Load(), uint64(1))
	eq(t, "ForwDatagrams", st.IP6.ForwDatagrams.Load(), uint64(1))

	// Through two of our own addresses: host6, then eth1's address (a
	// loop through this host, one hop), then far.
	f.ep.inject(srhUDP(9, 2, "sr", fwFar, fwEth1, host6))
	fwd = parse6(t, f.ep1.take())
	if len(fwd) != 1 || fwd[0].ip.Dst() != fwFar || fwd[0].ip.HopLimit() != 7 || fwd[0].ip.Payload()[3] != 0 {
		t.Fatalf("via a second own address: %+v", fwd)
	}
	eq(t, "Seg6End", st.IP6.Seg6End.Load(), uint64(3))
	eq(t, "Seg6Local", st.IP6.Seg6Local.Load(), uint64(1))
}

// The last segment one of ours: the datagram reaches the socket of the
// final destination, whose pseudo-header its checksum was made with.
func TestSeg6EndLocal(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	e := f.s.NewDgram(KindUDP, wire.ProtoUDP)
	e.SetInet6()
	t.Cleanup(e.Close)
	if err := e.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9)); err != nil {
		t.Fatal(err)
	}
	f.ep.inject(srhUDP(64, 1, "final", fwEth1, host6))
	b := make([]byte, 16)
	n, _, from, info, err := e.RecvFromInfo(b, false)
	if err != nil || string(b[:n]) != "final" {
		t.Fatalf("recv: %q %v", b[:n], err)
	}
	eq(t, "from", from.Addr(), peer6)
	eq(t, "dst", info.Dst, fwEth1)
	eq(t, "hop limit", info.HopLimit, uint8(63))
	if info.Ext6 == nil || len(info.Ext6.Rt) != 40 || info.Ext6.Rt[3] != 0 {
		t.Fatalf("routing header given to the reader: %+v", info.Ext6)
	}
	PutRecvExt6(info.Ext6)
	eq(t, "InCsumErrors", f.s.Stats().UDP.InCsumErrors.Load(), uint64(0))
	// Segments left 0 already: delivered as it is.
	f.ep.inject(srhUDP(64, 0, "zero", host6))
	if n, _, _, _, err := e.RecvFromInfo(b, false); err != nil || string(b[:n]) != "zero" {
		t.Fatalf("segments left 0: %q %v", b[:n], err)
	}
}

// Without SRv6 (the stack's or the NIC's), an SRH to this host is
// dropped silently whatever its segments left, as Linux.
func TestSeg6Disabled(t *testing.T) {
	for _, c := range []struct {
		name     string
		stack    bool
		nicOff   bool
		accepted bool
	}{
		{"stack off", false, false, false},
		{"NIC off", true, true, false},
		{"both on", true, false, true},
	} {
		f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: c.stack})
		f.nic.SetSeg6Enabled(!c.nicOff)
		e := f.s.NewDgram(KindUDP, wire.ProtoUDP)
		e.SetInet6()
		if err := e.Bind(netip.AddrPortFrom(host6, 9)); err != nil {
			t.Fatal(err)
		}
		f.ep.inject(srhUDP(9, 1, "x", fwFar, host6))
		f.ep.inject(srhUDP(9, 0, "y", host6))
		st := f.s.Stats()
		back, fwd := parse6(t, f.ep.take()), parse6(t, f.ep1.take())
		_, _, _, err := e.RecvFrom(make([]byte, 4), false)
		if c.accepted {
			if len(fwd) != 1 || err != nil {
				t.Errorf("%s: forwarded %d, recv %v", c.name, len(fwd), err)
			}
			eq(t, c.name+": Seg6Disabled", st.IP6.Seg6Disabled.Load(), uint64(0))
		} else {
			if len(back)+len(fwd) != 0 || err == nil {
				t.Errorf("%s: %d back, %d forwarded, recv %v", c.name, len(back), len(fwd), err)
			}
			eq(t, c.name+": Seg6Disabled", st.IP6.Seg6Disabled.Load(), uint64(2))
		}
		e.Close()
	}
}

// Segments left past the list: Parameter Problem code 0 pointing at the
// segments-left field (Linux's ipv6_srh_rcv), nothing forwarded.
func TestSeg6BadSRH(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	st := f.s.Stats()
	for _, sl := range []int{2, 200} {
		in := srhUDP(9, 0, "bad", fwFar, host6)
		// segs[0]=fwFar, segs[1]=host6; destination host6, segments left sl.
		ip := wire.IPv6(in[14:])
		ip.Payload()[3] = byte(sl)
		copy(in[14+24:], host6.AsSlice())
		f.ep.inject(in)
		back, fwd := parse6(t, f.ep.take()), parse6(t, f.ep1.take())
		m := icmpErr(t, "segments left past the list", back, fwd, wire.ICMPv6ParamProblem, wire.ICMPv6ErroneousField)
		eq(t, "pointer", m.Pointer(), uint32(43))
	}
	eq(t, "Seg6BadSRH", st.IP6.Seg6BadSRH.Load(), uint64(2))
	eq(t, "InHdrErrors", st.IP6.InHdrErrors.Load(), uint64(2))
	eq(t, "Seg6End", st.IP6.Seg6End.Load(), uint64(0))
}

// Hop limit 1: the next segment elsewhere gets the forwarding path's
// Time Exceeded, one of ours the loop's; the quote is the packet as
// rewritten (Linux too quotes it after the SRH update).
func TestSeg6HopLimit(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	st := f.s.Stats()
	f.ep.inject(srhUDP(1, 1, "t", fwFar, host6))
	back, fwd := parse6(t, f.ep.take()), parse6(t, f.ep1.take())
	m := icmpErr(t, "forwarded", back, fwd, wire.ICMPv6TimeExceeded, wire.ICMPv6HopLimitExceeded)
	eq(t, "quoted dst", wire.IPv6(m[8:]).Dst(), fwFar)
	f.ep.inject(srhUDP(1, 1, "t", fwEth1, host6))
	back, fwd = parse6(t, f.ep.take()), parse6(t, f.ep1.take())
	icmpErr(t, "looped", back, fwd, wire.ICMPv6TimeExceeded, wire.ICMPv6HopLimitExceeded)
	eq(t, "InHopLimitExceeded", st.IP6.InHopLimitExceeded.Load(), uint64(2))
	eq(t, "Seg6Local", st.IP6.Seg6Local.Load(), uint64(0))
}

// The next segment elsewhere and forwarding off: dropped (ip6_forward
// refuses without forwarding), counted.
func TestSeg6NoForwarding(t *testing.T) {
	f := newSeg6(t, Options{Seg6Enabled: true})
	f.ep.inject(srhUDP(9, 1, "n", fwFar, host6))
	if back, fwd := f.ep.take(), f.ep1.take(); len(back)+len(fwd) != 0 {
		t.Fatalf("%d back, %d forwarded", len(back), len(fwd))
	}
	st := f.s.Stats()
	eq(t, "Seg6NoForward", st.IP6.Seg6NoForward.Load(), uint64(1))
	eq(t, "Seg6End", st.IP6.Seg6End.Load(), uint64(1))
}

// An HMAC TLV (H flag set): without keys, dropped when checked
// (seg6_require_hmac 0, the default), passed when ignored (-1); with 1 an
// SRH without one is dropped too.
func TestSeg6HMAC(t *testing.T) {
	hmacSRH := func() []byte {
		h := srh(wire.ProtoUDP, 1, fwFar, host6) // 40 bytes
		h = append(h, make([]byte, 40)...)
		h[1] = byte(len(h)/8 - 1)
		h[5] = srhFlagHMAC
		h[40], h[41] = srhTLVHMAC, 38
		return h
	}
	for _, c := range []struct {
		req  int
		hmac bool
		fwd  int
	}{{0, true, 0}, {-1, true, 1}, {0, false, 1}, {1, false, 0}} {
		f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true, Seg6RequireHMAC: c.req})
		h := srh(wire.ProtoUDP, 1, fwFar, host6)
		if c.hmac {
			h = hmacSRH()
		}
		pl := append(h, udp6(peer6, fwFar, 1000, 9, []byte("h"))...)
		f.ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 9, pl, -1))
		if got := len(f.ep1.take()); got != c.fwd {
			t.Errorf("require %d, HMAC %v: %d forwarded, want %d", c.req, c.hmac, got, c.fwd)
		}
		eq(t, "Seg6HMACDrops", f.s.Stats().IP6.Seg6HMACDrops.Load(), uint64(1-c.fwd))
	}
}

// Segments left 0 over an encapsulated IPv6 packet: the inner packet is
// received as if it came in on the NIC (Linux's decapsulation), here for
// a socket of ours; nested deeper than seg6MaxDecap it is dropped.
func TestSeg6Decap(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	e := f.s.NewDgram(KindUDP, wire.ProtoUDP)
	e.SetInet6()
	t.Cleanup(e.Close)
	if err := e.Bind(netip.AddrPortFrom(fwEth1, 9)); err != nil {
		t.Fatal(err)
	}
	innerSrc := netip.MustParseAddr("2001:db8:9::9")
	inner := frame6(hostMAC, peerMAC, innerSrc, fwEth1, wire.ProtoUDP, 33, udp6(innerSrc, fwEth1, 7, 9, []byte("inner")), -1)[14:]
	wrap := func(p []byte) []byte {
		return append(srh(wire.ProtoIPv6Encap, 0, host6), p...)
	}
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 64, wrap(inner), -1))
	b := make([]byte, 16)
	n, _, from, info, err := e.RecvFromInfo(b, false)
	if err != nil || string(b[:n]) != "inner" || from.Addr() != innerSrc || info.HopLimit != 33 {
		t.Fatalf("decapsulated: %q from %v hop %d: %v", b[:n], from, info.HopLimit, err)
	}
	eq(t, "Seg6Decap", f.s.Stats().IP6.Seg6Decap.Load(), uint64(1))
	// IPv4 inside, for an IPv4 socket of ours.
	if err := f.nic.AddAddress(netip.PrefixFrom(hostAddr, 24)); err != nil {
		t.Fatal(err)
	}
	e4 := f.s.NewDgram(KindUDP, wire.ProtoUDP)
	t.Cleanup(e4.Close)
	if err := e4.Bind(netip.AddrPortFrom(hostAddr, 9)); err != nil {
		t.Fatal(err)
	}
	src4 := netip.MustParseAddr("10.9.9.9")
	in4 := ipFrame(wire.IPv4Header{Src: src4, Dst: hostAddr, Protocol: wire.ProtoUDP}, udpPayload(src4, hostAddr, 7, 9, []byte("four")))[14:]
	pl4 := append(srh(wire.ProtoIPv4Encap, 0, host6), in4...)
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 64, pl4, -1))
	if n, _, from, err := e4.RecvFrom(b, false); err != nil || string(b[:n]) != "four" || from.Addr() != src4 {
		t.Fatalf("IPv4 decapsulated: %q from %v: %v", b[:n], from, err)
	}
	eq(t, "Seg6Decap", f.s.Stats().IP6.Seg6Decap.Load(), uint64(2))
	// Nested: each level is a whole IPv6 packet with an SRH.
	p := inner
	for range seg6MaxDecap {
		p = frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 64, wrap(p), -1)[14:]
	}
	f.ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 64, wrap(p), -1))
	if _, _, _, err := e.RecvFrom(b, false); err == nil {
		t.Fatal("nested past the limit delivered")
	}
	eq(t, "Seg6DecapLimit", f.s.Stats().IP6.Seg6DecapLimit.Load(), uint64(1))
	eq(t, "Seg6Decap", f.s.Stats().IP6.Seg6Decap.Load(), uint64(2+seg6MaxDecap))
}

// End and forwarding, in place and through the forwarding pool: no
// allocation per packet.
func TestSeg6EndAlloc(t *testing.T) {
	f := newSeg6(t, Options{Forwarding: true, Seg6Enabled: true})
	f.ep1.discard = true
	tmpl := srhUDP(9, 2, string(make([]byte, 1000)), fwFar, fwMid, host6)
	frame := bytes.Clone(tmpl)
	fr := [][]byte{frame}
	allocs := testing.AllocsPerRun(200, func() {
		copy(frame, tmpl) // the last pass rewrote it
		f.ep.recv.DeliverFrames(fr)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet", allocs)
	}
	if f.s.Stats().IP6.ForwDatagrams.Load() < 200 {
		t.Fatal("not forwarded")
	}
}

// BenchmarkSeg6End is End and forwarding of a 1,104-byte packet
// (go test ./stack -run '^$' -bench Seg6End -benchmem).
func BenchmarkSeg6End(b *testing.B) {
	s, ep0, nic1 := benchRouter6(b, Options{Forwarding: true, Seg6Enabled: true})
	nic1.SetStatic6(fwMid, fwMidMAC)
	tmpl := srhUDP(9, 2, string(make([]byte, 1000)), fwFar, fwMid, host6)
	frame := bytes.Clone(tmpl)
	fr := [][]byte{frame}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) - wire.EthernetHeaderLen))
	for b.Loop() {
		copy(frame, tmpl)
		ep0.recv.DeliverFrames(fr)
	}
	if s.Stats().IP6.Seg6End.Load() == 0 {
		b.Fatal("nothing processed")
	}
}

// A forwarding stack ignores router advertisements (Linux's accept_ra=1
// with forwarding) but still learns the router's link-layer address;
// AcceptRAWhenForwarding (accept_ra=2) applies them.
func TestRAIgnoredWhenForwarding(t *testing.T) {
	for _, accept := range []bool{false, true} {
		clk := clock.NewManual(time.Unix(1_700_000_000, 0))
		s := New(Options{Clock: clk, IPv6SLAAC: true, IPv6LinkLocal: true, Forwarding: true, AcceptRAWhenForwarding: accept})
		ep := &chanEP{mtu: 1500}
		nic := s.AddNIC("eth0", ep)
		clk.Advance(time.Second) // DAD done
		ep.inject(ra(1800, 1400))
		routers := nic.DefaultRouters()
		ignored := s.Stats().ND.RAIgnored.Load()
		_, learnt := nic.Neighbor6(routerLL)
		if accept {
			if len(routers) != 1 || ignored != 0 || nic.mtu6() != 1400 {
				t.Errorf("accept_ra=2: routers %v, ignored %d, MTU %d", routers, ignored, nic.mtu6())
			}
		} else if len(routers) != 0 || ignored != 1 || nic.mtu6() != 1500 || !learnt {
			t.Errorf("accept_ra=1: routers %v, ignored %d, MTU %d, neighbour learnt %v", routers, ignored, nic.mtu6(), learnt)
		}
		s.Close()
	}
}

// FuzzSeg6 feeds packets behind an SRH-bearing start to an SRv6
// endpoint that forwards (go test ./stack -run '^$' -fuzz FuzzSeg6
// -fuzztime 30s): nothing may panic, whatever the lengths and segments.
func FuzzSeg6(f *testing.F) {
	f.Add(srhUDP(9, 2, "sr", fwFar, fwMid, host6)[14:])
	f.Add(srhUDP(9, 1, "sr", fwEth1, host6)[14:])
	f.Add(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoIPv6Route, 64,
		append(srh(wire.ProtoIPv6Encap, 0, host6), srhUDP(9, 1, "in", fwFar, host6)[14:]...), -1)[14:])
	f.Fuzz(func(t *testing.T, pkt []byte) {
		clk := clock.NewManual(time.Unix(1_700_000_000, 0))
		s := New(Options{Clock: clk, DADTransmits: -1, Forwarding: true, Seg6Enabled: true, ICMPPeerBurst: 1000})
		defer s.Close()
		ep := &chanEP{mtu: 1500, discard: true}
		nic := s.AddNIC("eth0", ep)
		nic.EnableIPv6()
		nic.AddAddress(netip.PrefixFrom(host6, 64))
		nic.SetStatic6(peer6, peerMAC)
		nic1 := s.AddNIC("eth1", macEP{&chanEP{mtu: 1280, discard: true}, fwNIC1})
		nic1.EnableIPv6()
		nic1.AddAddress(netip.PrefixFrom(fwEth1, 64))
		nic1.SetStatic6(fwMid, fwMidMAC)
		nic1.SetStatic6(fwFar, fwFarMAC)
		frame := make([]byte, 14+len(pkt))
		wire.PutEthernet(frame, hostMAC, peerMAC, wire.EtherTypeIPv6)
		copy(frame[14:], pkt)
		ep.recv.DeliverFrames([][]byte{frame})
	})
}
