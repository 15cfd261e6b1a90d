package wire

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	ll1  = netip.MustParseAddr("fe80::1")
	ll2  = netip.MustParseAddr("fe80::2")
	mac1 = MAC{0x02, 0, 0, 0, 0, 1}
	mac2 = MAC{0x02, 0, 0, 0, 0, 2}
)

// build6 makes an Ethernet frame with an IPv6 header whose next header is
// nh and whose payload is pl; an ICMPv6 upper layer at upOff (from the
// start of pl) gets its checksum filled.
func build6(src, dst netip.Addr, nh uint8, hop uint8, pl []byte, icmpAt int) []byte {
	f := make([]byte, EthernetHeaderLen+IPv6HeaderLen+len(pl))
	PutEthernet(f, IPv6MulticastMAC(dst), mac1, EtherTypeIPv6)
	if !dst.IsMulticast() {
		PutEthernet(f, mac2, mac1, EtherTypeIPv6)
	}
	h := IPv6Header{TrafficClass: 0xb8, FlowLabel: 0x12345, PayloadLen: len(pl), NextHeader: nh, HopLimit: hop, Src: src, Dst: dst}
	ip := f[EthernetHeaderLen:]
	h.Put(ip)
	copy(ip[IPv6HeaderLen:], pl)
	if icmpAt >= 0 {
		m := ICMPv6(ip[IPv6HeaderLen+icmpAt:])
		m.FillChecksum(PseudoHeaderSum6(src.As16(), dst.As16(), ProtoICMPv6, len(m)))
	}
	return f
}

func gpDecode6(t *testing.T, f []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		_ = ic.SetNetworkLayerForChecksum(ip)
		_, r := ic.VerifyChecksum()
		if !r.Valid {
			t.Fatalf("gopacket: ICMPv6 checksum %04x, want %04x", r.Actual, r.Correct)
		}
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		_ = u.SetNetworkLayerForChecksum(ip)
		_, mism := p.VerifyChecksums()
		for _, m := range mism {
			t.Fatalf("gopacket: bad checksum in %v", m.Layer.LayerType())
		}
	}
	return p
}

func a16(ip net.IP) netip.Addr { a, _ := netip.AddrFromSlice(ip.To16()); return a }

func TestIPv6HeaderGopacket(t *testing.T) {
	echo := make([]byte, 8+5)
	echo[0] = ICMPv6EchoRequest
	ICMPv6(echo).SetID(0x1234)
	ICMPv6(echo).SetSeq(7)
	copy(echo[8:], "hello")
	f := build6(ll1, ll2, ProtoICMPv6, 64, echo, 0)
	p := gpDecode6(t, f)
	g := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	h, err := ParseIPv6(f[EthernetHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "version", g.Version, h.Version())
	eq(t, "tclass", g.TrafficClass, h.TrafficClass())
	eq(t, "flow", g.FlowLabel, h.FlowLabel())
	eq(t, "length", int(g.Length), h.PayloadLen())
	eq(t, "next", uint8(g.NextHeader), h.NextHeader())
	eq(t, "hop", g.HopLimit, h.HopLimit())
	eq(t, "src", a16(g.SrcIP), h.Src())
	eq(t, "dst", a16(g.DstIP), h.Dst())
	e := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
	eq(t, "echo id", e.Identifier, uint16(0x1234))
	eq(t, "echo seq", e.SeqNumber, uint16(7))
	m, err := ParseICMPv6(h.Payload(), h.PseudoSum(ProtoICMPv6, 0))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "id", m.ID(), uint16(0x1234))

	// Our checksum check refuses a flipped bit, gopacket agrees.
	h.Payload()[9] ^= 1
	if _, err := ParseICMPv6(h.Payload(), h.PseudoSum(ProtoICMPv6, 0)); err == nil {
		t.Fatal("corrupt ICMPv6 accepted")
	}
	// A different pseudo-header (another destination) fails too: ICMPv6
	// covers the addresses, unlike ICMPv4.
	h.Payload()[9] ^= 1
	if _, err := ParseICMPv6(h.Payload(), PseudoHeaderSum6(ll1.As16(), ll1.As16(), ProtoICMPv6, 0)); err == nil {
		t.Fatal("ICMPv6 checksum ignores the pseudo-header")
	}

	// Setters round trip.
	h.SetTrafficClass(0x2d)
	eq(t, "set tclass", h.TrafficClass(), uint8(0x2d))
	eq(t, "flow kept", h.FlowLabel(), uint32(0x12345))
}

// A packet gopacket serialises is read the same by us.
func TestIPv6FromGopacket(t *testing.T) {
	ip := &layers.IPv6{Version: 6, TrafficClass: 3, FlowLabel: 9, NextHeader: layers.IPProtocolUDP, HopLimit: 9,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, udp, gopacket.Payload([]byte("abcdefg")))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseIPv6(append(buf.Bytes(), 0, 0, 0)) // link padding trimmed
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "len", len(h), IPv6HeaderLen+15)
	u, err := ParseUDP(h.Payload(), h.PseudoSum(ProtoUDP, 0))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "udp payload", string(u.Payload()), "abcdefg")
	// And our UDP checksum over the IPv6 pseudo-header matches gopacket's.
	want := u.Checksum()
	u.FillChecksum(PseudoSumAddr(h.Src(), h.Dst(), ProtoUDP, u.Length()))
	eq(t, "udp csum", u.Checksum(), want)
}

func TestParseIPv6Errors(t *testing.T) {
	f := build6(ll1, ll2, ProtoIPv6NoNext, 1, make([]byte, 8), -1)
	ip := f[EthernetHeaderLen:]
	var pe *ParseError
	for _, c := range []struct {
		name string
		b    []byte
		r    Reason
	}{
		{"short", ip[:39], ReasonTruncated},
		{"version", append([]byte{0x40}, ip[1:]...), ReasonBadVersion},
		{"length", ip[:45], ReasonBadLength},
	} {
		_, err := ParseIPv6(c.b)
		if !errors.As(err, &pe) || pe.Reason != c.r {
			t.Errorf("%s: %v, want %v", c.name, err, c.r)
		}
	}
}

// ext builds an extension header of type-agnostic layout: next header,
// length in 8-octet units minus one, then body (padded by the caller).
func ext(next uint8, body ...byte) []byte {
	if (len(body)+2)%8 != 0 {
		panic("ext: not a multiple of 8")
	}
	return append([]byte{next, byte((len(body)+2)/8 - 1)}, body...)
}

func walk(t *testing.T, nh uint8, dst netip.Addr, chain ...[]byte) (IPv6Ext, *IPv6ExtError) {
	t.Helper()
	pl := bytes.Join(chain, nil)
	f := build6(ll1, dst, nh, 1, pl, -1)
	h, err := ParseIPv6(f[EthernetHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	var e IPv6Ext
	xe := WalkIPv6Ext(h, &e)
	return e, xe
}

func TestIPv6ExtWalk(t *testing.T) {
	udp := make([]byte, 8)
	// Pad1 x2 + PadN(2) fills a hop-by-hop header; then dst options with PadN(4).
	e, err := walk(t, ProtoHopByHop, ll2,
		ext(ProtoIPv6Opts, 0, 0, 1, 2, 0, 0),
		ext(ProtoUDP, 1, 4, 0, 0, 0, 0),
		udp)
	if err != nil {
		t.Fatalf("padding refused: %+v", err)
	}
	eq(t, "proto", e.Proto, ProtoUDP)
	eq(t, "offset", e.Offset, IPv6HeaderLen+16)
	eq(t, "headers", e.Headers, 2)

	// Router alert in hop-by-hop (MLD).
	e, err = walk(t, ProtoHopByHop, ll2, ext(ProtoICMPv6, 5, 2, 0, 0, 1, 0), udp)
	if err != nil || !e.RouterAlert {
		t.Fatalf("router alert: %+v %+v", e, err)
	}

	// Unknown options by the two high bits.
	for _, c := range []struct {
		typ    byte
		ok     bool
		silent bool
		mcast  bool
	}{{0x1e, true, false, false}, {0x5e, false, true, false}, {0x9e, false, false, false}, {0xde, false, false, true}} {
		_, err := walk(t, ProtoIPv6Opts, ll2, ext(ProtoUDP, 1, 0, c.typ, 2, 0, 0), udp)
		if c.ok {
			if err != nil {
				t.Errorf("%#x: refused %+v", c.typ, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%#x: accepted", c.typ)
			continue
		}
		if err.Silent != c.silent || err.UnlessMcast != c.mcast {
			t.Errorf("%#x: %+v", c.typ, err)
		}
		if !c.silent && (err.Code != ICMPv6UnrecognizedOption || err.Pointer != IPv6HeaderLen+4) {
			t.Errorf("%#x: code %d pointer %d", c.typ, err.Code, err.Pointer)
		}
	}

	// Jumbo payload option is unknown here (action 11).
	if _, err := walk(t, ProtoHopByHop, ll2, ext(ProtoUDP, 0xc2, 4, 0, 1, 0, 0), udp); err == nil || err.Code != ICMPv6UnrecognizedOption {
		t.Errorf("jumbo: %+v", err)
	}

	// Hop-by-hop after another header: unrecognised next header, pointer
	// at the next-header byte that named it.
	_, err = walk(t, ProtoIPv6Opts, ll2, ext(ProtoHopByHop, 1, 4, 0, 0, 0, 0), ext(ProtoUDP, 1, 4, 0, 0, 0, 0), udp)
	if err == nil || err.Code != ICMPv6UnrecognizedNextHeader || err.Pointer != IPv6HeaderLen {
		t.Errorf("late hop-by-hop: %+v", err)
	}

	// Routing type 0 with segments left: refused (RFC 5095), pointer at type.
	rh0 := ext(ProtoUDP, append([]byte{0, 1, 0, 0, 0, 0}, make([]byte, 16)...)...)
	_, err = walk(t, ProtoIPv6Route, ll2, rh0, udp)
	if err == nil || err.Code != ICMPv6ErroneousField || err.Pointer != IPv6HeaderLen+2 {
		t.Errorf("RH0: %+v", err)
	}
	// With no segments left it is skipped.
	rh0[3] = 0
	if e, err = walk(t, ProtoIPv6Route, ll2, rh0, udp); err != nil || e.Proto != ProtoUDP {
		t.Errorf("RH0 segs 0: %+v %+v", e, err)
	}

	// Fragment header stops the walk.
	fh := make([]byte, 8)
	PutIPv6Frag(fh, ProtoUDP, 1448, true, 0xdeadbeef)
	e, err = walk(t, ProtoIPv6Opts, ll2, ext(ProtoIPv6Frag, 1, 4, 0, 0, 0, 0), fh, udp)
	if err != nil || !e.Frag || e.FragOff != IPv6HeaderLen+8 || e.FragPrevNH != IPv6HeaderLen {
		t.Fatalf("frag: %+v %+v", e, err)
	}
	fr := IPv6Frag(fh)
	eq(t, "frag off", fr.Offset(), 1448)
	eq(t, "frag more", fr.More(), true)
	eq(t, "frag id", fr.ID(), uint32(0xdeadbeef))

	// Limits: too much padding, too many options, too many headers.
	if _, err = walk(t, ProtoIPv6Opts, ll2, ext(ProtoUDP, 1, 4, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0), udp); err == nil || !err.Option {
		t.Errorf("10 bytes of padding accepted: %+v", err)
	}
	many := []byte{}
	for i := 0; i < 9; i++ {
		many = append(many, 0x1e, 0)
	}
	many = append(many, 0, 0, 0, 0)
	if _, err = walk(t, ProtoIPv6Opts, ll2, ext(ProtoUDP, many...), udp); err == nil || !err.Option {
		t.Errorf("9 options accepted: %+v", err)
	}
	var chain [][]byte
	for i := 0; i < 9; i++ {
		chain = append(chain, ext(ProtoIPv6Opts, 1, 4, 0, 0, 0, 0))
	}
	chain[8][0] = ProtoUDP
	if _, err = walk(t, ProtoIPv6Opts, ll2, append(chain, udp)...); err == nil || !err.Limit {
		t.Errorf("9 headers accepted: %+v", err)
	}
	// Truncated: header length beyond the packet.
	if _, err = walk(t, ProtoIPv6Opts, ll2, []byte{ProtoUDP, 3, 1, 4, 0, 0, 0, 0}); err == nil || err.Silent || err.Pointer != IPv6HeaderLen+1 {
		t.Errorf("overlong header: %+v", err)
	}
}

// Extension headers as gopacket builds them.
func TestIPv6ExtGopacket(t *testing.T) {
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolIPv6HopByHop, HopLimit: 1,
		SrcIP: net.ParseIP("fe80::1"), DstIP: net.ParseIP("ff02::16")}
	hbh := &layers.IPv6HopByHop{}
	hbh.NextHeader = layers.IPProtocolIPv6Fragment
	hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 5, OptionLength: 2, OptionData: []byte{0, 0}}, {OptionType: 1, OptionLength: 0, OptionData: []byte{}}}
	frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 0, MoreFragments: true, Identification: 77}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip, hbh, frag, gopacket.Payload(make([]byte, 16))); err != nil {
		t.Fatal(err)
	}
	h, err := ParseIPv6(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var e IPv6Ext
	if xe := WalkIPv6Ext(h, &e); xe != nil {
		t.Fatalf("%+v", xe)
	}
	if !e.RouterAlert || !e.Frag || e.FragOff != IPv6HeaderLen+8 {
		t.Fatalf("%+v", e)
	}
	f := IPv6Frag(h[e.FragOff:])
	eq(t, "next", f.NextHeader(), ProtoUDP)
	eq(t, "id", f.ID(), uint32(77))
	eq(t, "more", f.More(), true)
}

func TestICMPv6ErrorsGopacket(t *testing.T) {
	inv := build6(ll2, ll1, ProtoUDP, 64, make([]byte, 1400), -1)[EthernetHeaderLen:]
	for _, c := range []struct {
		typ, code uint8
		rest      uint32
		lt        gopacket.LayerType
	}{
		{ICMPv6DestUnreach, ICMPv6PortUnreach, 0, layers.LayerTypeICMPv6},
		{ICMPv6DestUnreach, ICMPv6SrcRoutingHeader, 0, layers.LayerTypeICMPv6},
		{ICMPv6PacketTooBig, 0, 1280, layers.LayerTypeICMPv6},
		{ICMPv6TimeExceeded, ICMPv6ReassemblyTimeout, 0, layers.LayerTypeICMPv6},
		{ICMPv6ParamProblem, ICMPv6UnrecognizedOption, 42, layers.LayerTypeICMPv6},
	} {
		b := make([]byte, 2000)
		n := PutICMPv6Error(b, c.typ, c.code, c.rest, inv)
		if IPv6HeaderLen+n != IPv6MinMTU {
			t.Errorf("error of %d bytes, want the minimum MTU", IPv6HeaderLen+n)
		}
		f := build6(ll1, ll2, ProtoICMPv6, 64, b[:n], 0)
		p := gpDecode6(t, f)
		g := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		eq(t, "type", g.TypeCode.Type(), c.typ)
		eq(t, "code", g.TypeCode.Code(), c.code)
		m := ICMPv6(f[EthernetHeaderLen+IPv6HeaderLen:])
		if !m.IsError() {
			t.Error("not an error type")
		}
		eq(t, "rest", m.MTU(), c.rest)
		if !bytes.Equal(m.Payload(), inv[:len(m.Payload())]) {
			t.Error("invoking packet not copied")
		}
	}
}

func TestNDPGopacket(t *testing.T) {
	target := netip.MustParseAddr("2001:db8::5")
	b := make([]byte, 200)

	// NS with source link-layer option.
	n := PutNS(b, target, mac1)
	f := build6(ll1, SolicitedNode(target), ProtoICMPv6, 255, b[:n], 0)
	p := gpDecode6(t, f)
	ns := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	eq(t, "ns target", a16(ns.TargetAddress), target)
	if len(ns.Options) != 1 || ns.Options[0].Type != layers.ICMPv6OptSourceAddress || !bytes.Equal(ns.Options[0].Data, mac1[:]) {
		t.Fatalf("ns options %+v", ns.Options)
	}
	eq(t, "sn mac", Ethernet(f).Dst(), MAC{0x33, 0x33, 0xff, 0, 0, 5})
	eq(t, "sn group", SolicitedNode(target), netip.MustParseAddr("ff02::1:ff00:5"))
	var o NDPOptions
	m, err := ParseNDP(ICMPv6(b[:n]), &o)
	if err != nil || !o.HasSourceLL || o.SourceLL != mac1 || m.Target() != target {
		t.Fatalf("ns: %v %+v", err, o)
	}

	// NA: flags and target link-layer.
	n = PutNA(b, target, NAFlagSolicited|NAFlagOverride, mac2)
	p = gpDecode6(t, build6(ll2, ll1, ProtoICMPv6, 255, b[:n], 0))
	na := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	eq(t, "na flags", na.Flags, uint8(NAFlagSolicited|NAFlagOverride))
	eq(t, "na target", a16(na.TargetAddress), target)
	if _, err = ParseNDP(ICMPv6(b[:n]), &o); err != nil || !o.HasTargetLL || o.TargetLL != mac2 || NDP(b).NAFlags() != NAFlagSolicited|NAFlagOverride {
		t.Fatalf("na: %v %+v", err, o)
	}

	// RA with SLLA, MTU and a prefix.
	n = PutRA(b, RAHeader{CurHopLimit: 64, Flags: RAFlagOther, RouterLifetime: 1800, ReachableTime: 30000, RetransTimer: 1000})
	n += PutNDPLinkOpt(b[n:], NDPOptSourceLL, mac2)
	n += PutNDPMTUOpt(b[n:], 1400)
	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	n += PutNDPPrefixOpt(b[n:], pfx, PrefixFlagOnLink|PrefixFlagAuto, 86400, 14400)
	p = gpDecode6(t, build6(ll2, IPv6AllNodes, ProtoICMPv6, 255, b[:n], 0))
	ra := p.Layer(layers.LayerTypeICMPv6RouterAdvertisement).(*layers.ICMPv6RouterAdvertisement)
	eq(t, "ra hop", ra.HopLimit, uint8(64))
	eq(t, "ra lifetime", ra.RouterLifetime, uint16(1800))
	eq(t, "ra reach", ra.ReachableTime, uint32(30000))
	eq(t, "ra opts", len(ra.Options), 3)
	eq(t, "ra pfx len", ra.Options[2].Data[0], uint8(64))
	m, err = ParseNDP(ICMPv6(b[:n]), &o)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "lifetime", m.RouterLifetime(), 1800*time.Second)
	eq(t, "reachable", m.ReachableTime(), 30*time.Second)
	eq(t, "retrans", m.RetransTimer(), time.Second)
	eq(t, "flags", m.RAFlags(), uint8(RAFlagOther))
	eq(t, "mtu", o.MTU, uint32(1400))
	eq(t, "prefixes", o.NPrefixes, 1)
	pi := o.Prefixes[0]
	if pi.Prefix != pfx || !pi.OnLink || !pi.Auto || pi.Valid != 86400 || pi.Preferred != 14400 {
		t.Fatalf("prefix %+v", pi)
	}

	// RS and redirect.
	n = PutRS(b, mac1)
	p = gpDecode6(t, build6(ll1, IPv6AllRouters, ProtoICMPv6, 255, b[:n], 0))
	if p.Layer(layers.LayerTypeICMPv6RouterSolicitation) == nil {
		t.Fatal("no RS")
	}
	n = PutRedirect(b, ll2, target)
	p = gpDecode6(t, build6(ll2, ll1, ProtoICMPv6, 255, b[:n], 0))
	rd := p.Layer(layers.LayerTypeICMPv6Redirect).(*layers.ICMPv6Redirect)
	eq(t, "redirect dst", a16(rd.DestinationAddress), target)
	eq(t, "redirect dst ours", NDP(b[:n]).RedirectDst(), target)

	// Option errors: zero length is invalid; truncation too.
	if err := ParseNDPOptions([]byte{1, 0, 0, 0, 0, 0, 0, 0}, &o); err == nil {
		t.Error("zero-length option accepted")
	}
	if err := ParseNDPOptions([]byte{1, 2, 0, 0, 0, 0, 0, 0}, &o); err == nil {
		t.Error("truncated option accepted")
	}
	if _, err := ParseNDP(ICMPv6(b[:20]), &o); err == nil {
		t.Error("short redirect accepted")
	}
}

func TestMLDGopacket(t *testing.T) {
	b := make([]byte, 200)
	g := netip.MustParseAddr("ff02::1:ff00:5")
	n := PutMLDv2Report(b, []MLDRecord{{MLDChangeToExclude, g}, {MLDModeIsExclude, IPv6AllMLDv2}})
	f := build6(ll1, IPv6AllMLDv2, ProtoICMPv6, 1, b[:n], 0)
	p := gpDecode6(t, f)
	r := p.Layer(layers.LayerTypeMLDv2MulticastListenerReport).(*layers.MLDv2MulticastListenerReportMessage)
	eq(t, "records", len(r.MulticastAddressRecords), 2)
	eq(t, "rec0 type", uint8(r.MulticastAddressRecords[0].RecordType), uint8(MLDChangeToExclude))
	eq(t, "rec0 group", a16(r.MulticastAddressRecords[0].MulticastAddress), g)
	var got []MLDRecord
	if err := ParseMLDv2Report(ICMPv6(b[:n]), func(r MLDRecord, _ int) { got = append(got, r) }); err != nil || len(got) != 2 || got[1].Group != IPv6AllMLDv2 {
		t.Fatalf("%v %+v", err, got)
	}
	if err := ParseMLDv2Report(ICMPv6(b[:n-1]), nil); err == nil {
		t.Error("truncated report accepted")
	}

	n = PutMLDQuery(b, netip.Addr{}, 10*time.Second)
	p = gpDecode6(t, build6(ll2, IPv6AllNodes, ProtoICMPv6, 1, b[:n], 0))
	q := p.Layer(layers.LayerTypeMLDv2MulticastListenerQuery).(*layers.MLDv2MulticastListenerQueryMessage)
	eq(t, "qrv", q.QueriersRobustnessVariable, uint8(2))
	mq, err := ParseMLDQuery(ICMPv6(b[:n]))
	if err != nil || !mq.IsV2() || mq.MaxResponse() != 10*time.Second || mq.Group().IsValid() && !mq.Group().IsUnspecified() {
		t.Fatalf("%v %v %v", err, mq.MaxResponse(), mq.Group())
	}
	// Floating-point max response code: 0x8000|exp 1|mant 0 = 0x1000<<4 ms.
	b[4], b[5] = 0x90, 0x00
	if d := MLDQuery(b[:n]).MaxResponse(); d != time.Duration(0x1000<<4)*time.Millisecond {
		t.Errorf("max resp %v", d)
	}
	// 25..27 bytes: invalid; 24: MLDv1.
	if _, err := ParseMLDQuery(ICMPv6(b[:26])); err == nil {
		t.Error("26-byte query accepted")
	}
	if q, err := ParseMLDQuery(ICMPv6(b[:24])); err != nil || q.IsV2() {
		t.Error("MLDv1 query refused")
	}
	b[27] = 3 // three sources claimed, none present
	if _, err := ParseMLDQuery(ICMPv6(b[:n])); err == nil {
		t.Error("query with missing sources accepted")
	}
}

func TestIPv6AddressHelpers(t *testing.T) {
	m := MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	a := AddrWithIID(IPv6LinkLocalNw, EUI64(m))
	eq(t, "eui64", a, netip.MustParseAddr("fe80::5054:ff:fe12:3456"))
	eq(t, "mcast mac", IPv6MulticastMAC(IPv6AllNodes), MAC{0x33, 0x33, 0, 0, 0, 1})
	// v4 and v6 pseudo sums through one helper.
	v4 := PseudoSumAddr(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), ProtoUDP, 8)
	eq(t, "v4 pseudo", v4, PseudoHeaderSum([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, ProtoUDP, 8))
}
