package wire

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// gopacket is an independent implementation: every encoding here is
// checked against it in both directions.

func gpDecode(t *testing.T, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	// gopacket needs to be told which IP header the pseudo-header comes from.
	if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
		switch l := p.TransportLayer().(type) {
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(ip)
		}
	}
	err, mism := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("gopacket VerifyChecksums: %v", err)
	}
	for _, m := range mism {
		t.Errorf("gopacket: bad checksum in %v: %+v", m.Layer.LayerType(), m.ChecksumVerificationResult)
	}
	return p
}

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip.To4())
	return a
}

func cmpIPv4(t *testing.T, h IPv4, g *layers.IPv4) {
	t.Helper()
	eq(t, "gp version", g.Version, h.Version())
	eq(t, "gp IHL", int(g.IHL)*4, h.HeaderLen())
	eq(t, "gp TOS", g.TOS, h.TOS())
	eq(t, "gp length", int(g.Length), h.TotalLen())
	eq(t, "gp id", g.Id, h.ID())
	eq(t, "gp DF", g.Flags&layers.IPv4DontFragment != 0, h.DF())
	eq(t, "gp MF", g.Flags&layers.IPv4MoreFragments != 0, h.MF())
	eq(t, "gp frag offset", int(g.FragOffset)*8, h.FragOffset())
	eq(t, "gp ttl", g.TTL, h.TTL())
	eq(t, "gp proto", uint8(g.Protocol), h.Protocol())
	eq(t, "gp checksum", g.Checksum, h.Checksum())
	eq(t, "gp src", addr(g.SrcIP), h.Src())
	eq(t, "gp dst", addr(g.DstIP), h.Dst())
}

func cmpTCP(t *testing.T, s TCP, g *layers.TCP) {
	t.Helper()
	eq(t, "gp sport", uint16(g.SrcPort), s.SrcPort())
	eq(t, "gp dport", uint16(g.DstPort), s.DstPort())
	eq(t, "gp seq", g.Seq, s.Seq())
	eq(t, "gp ack", g.Ack, s.Ack())
	eq(t, "gp data offset", int(g.DataOffset)*4, s.DataOffset())
	var f uint8
	for i, b := range []bool{g.FIN, g.SYN, g.RST, g.PSH, g.ACK, g.URG, g.ECE, g.CWR} {
		if b {
			f |= 1 << i
		}
	}
	eq(t, "gp flags", f, s.Flags())
	eq(t, "gp window", g.Window, s.Window())
	eq(t, "gp checksum", g.Checksum, s.Checksum())
	eq(t, "gp urgent", g.Urgent, s.Urgent())
	if g.Contents != nil { // decoded, not built
		sameBytes(t, "gp payload", g.Payload, s.Payload())
	}
	// Options as gopacket sees them, against ours.
	var o TCPOptions
	if err := ParseTCPOptions(s.Options(), &o); err != nil {
		t.Fatal(err)
	}
	var want TCPOptions
	for _, op := range g.Options {
		switch op.OptionType {
		case layers.TCPOptionKindMSS:
			want.HasMSS, want.MSS = true, uint16(op.OptionData[0])<<8|uint16(op.OptionData[1])
		case layers.TCPOptionKindWindowScale:
			want.HasWScale, want.WScale = true, min(op.OptionData[0], 14)
		case layers.TCPOptionKindSACKPermitted:
			want.SACKPermitted = true
		case layers.TCPOptionKindTimestamps:
			want.HasTS = true
			want.TSVal = be32(op.OptionData[0:])
			want.TSEcr = be32(op.OptionData[4:])
		case layers.TCPOptionKindSACK:
			want.NumSACK = len(op.OptionData) / 8
			for i := 0; i < want.NumSACK; i++ {
				want.SACK[i] = SACKBlock{be32(op.OptionData[8*i:]), be32(op.OptionData[8*i+4:])}
			}
		}
	}
	eq(t, "gp options", o, want)
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func TestGopacketDecodesCaptures(t *testing.T) {
	for _, c := range captures {
		t.Run(c.name, func(t *testing.T) {
			p := gpDecode(t, c.frame)
			e := mustEth(t, c.frame)
			ge := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			eq(t, "gp dst", MAC(ge.DstMAC), e.Dst)
			eq(t, "gp src", MAC(ge.SrcMAC), e.Src)
			if l := p.Layer(layers.LayerTypeDot1Q); l != nil {
				d := l.(*layers.Dot1Q)
				eq(t, "tagged", e.Tagged, true)
				eq(t, "gp vlan", d.VLANIdentifier, e.VLAN)
				eq(t, "gp prio", d.Priority, e.Priority)
				eq(t, "gp type", uint16(d.Type), e.EtherType)
			} else {
				eq(t, "gp type", uint16(ge.EthernetType), e.EtherType)
			}
			if l := p.Layer(layers.LayerTypeARP); l != nil {
				g := l.(*layers.ARP)
				a, err := ParseARP(c.frame[e.HeaderLen:])
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "gp op", g.Operation, a.Op)
				eq(t, "gp sha", MAC(g.SourceHwAddress), a.SenderMAC)
				eq(t, "gp spa", addr(g.SourceProtAddress), a.SenderIP)
				eq(t, "gp tha", MAC(g.DstHwAddress), a.TargetMAC)
				eq(t, "gp tpa", addr(g.DstProtAddress), a.TargetIP)
			}
			l := p.Layer(layers.LayerTypeIPv4)
			if l == nil {
				return
			}
			h := mustIP(t, c.frame[e.HeaderLen:])
			gi := l.(*layers.IPv4)
			cmpIPv4(t, h, gi)
			var gopts []byte
			for _, o := range gi.Options {
				if o.OptionType <= 1 {
					gopts = append(gopts, o.OptionType)
				} else {
					gopts = append(gopts, o.OptionType, o.OptionLength)
					gopts = append(gopts, o.OptionData...)
				}
			}
			if len(gopts) > 0 && !bytes.HasPrefix(h.Options(), gopts) {
				t.Errorf("gp options %x, ours %x", gopts, h.Options())
			}
			if l := p.Layer(layers.LayerTypeTCP); l != nil {
				s, err := ParseTCP(h.Payload(), h.PseudoSum(0), true)
				if err != nil {
					t.Fatal(err)
				}
				cmpTCP(t, s, l.(*layers.TCP))
			}
			if l := p.Layer(layers.LayerTypeUDP); l != nil {
				g := l.(*layers.UDP)
				u, err := ParseUDP(h.Payload(), h.PseudoSum(0))
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "gp sport", uint16(g.SrcPort), u.SrcPort())
				eq(t, "gp dport", uint16(g.DstPort), u.DstPort())
				eq(t, "gp length", int(g.Length), u.Length())
				eq(t, "gp checksum", g.Checksum, u.Checksum())
			}
			if l := p.Layer(layers.LayerTypeICMPv4); l != nil {
				g := l.(*layers.ICMPv4)
				m, err := ParseICMPv4(h.Payload())
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "gp type", g.TypeCode.Type(), m.Type())
				eq(t, "gp code", g.TypeCode.Code(), m.Code())
				eq(t, "gp checksum", g.Checksum, m.Checksum())
				eq(t, "gp id", g.Id, m.ID())
				eq(t, "gp seq", g.Seq, m.Seq())
			}
		})
	}
}

func randAddr(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.Uint32()), byte(r.Uint32()), byte(1 + r.IntN(254))})
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randTCPOptions picks a random combination of the options we emit.
func randTCPOptions(r *rand.Rand) TCPOptions {
	var o TCPOptions
	o.HasMSS = r.IntN(2) == 0
	o.MSS = uint16(r.Uint32())
	o.HasWScale = r.IntN(2) == 0
	o.WScale = uint8(r.IntN(15))
	o.SACKPermitted = r.IntN(2) == 0
	o.HasTS = r.IntN(2) == 0
	o.TSVal, o.TSEcr = r.Uint32(), r.Uint32()
	o.NumSACK = r.IntN(5)
	for i := range o.SACK {
		o.SACK[i] = SACKBlock{r.Uint32(), r.Uint32()}
	}
	o.NumSACK = min(o.NumSACK, o.sackFit())
	return o
}

func TestWireBuildGopacketDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 500; i++ {
		src, dst := randAddr(r), randAddr(r)
		payload := randBytes(r, r.IntN(1400))
		var proto uint8
		switch i % 3 {
		case 0:
			proto = ProtoTCP
		case 1:
			proto = ProtoUDP
		default:
			proto = ProtoICMP
		}
		ih := IPv4Header{TOS: uint8(r.Uint32()), ID: uint16(r.Uint32()), DF: r.IntN(2) == 0, TTL: uint8(1 + r.IntN(255)),
			Protocol: proto, Src: src, Dst: dst}
		if r.IntN(4) == 0 {
			ih.Options = []byte{0x94, 4, 0, 0} // Router Alert
		}
		frame := make([]byte, 14+60+60+len(payload))
		PutEthernet(frame, macB, macA, EtherTypeIPv4)
		ipb := frame[14:]
		hl := ih.Len()
		var l4len int
		switch proto {
		case ProtoTCP:
			th := TCPHeader{SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Seq: r.Uint32(), Ack: r.Uint32(),
				Flags: uint8(r.Uint32()), Window: uint16(r.Uint32()), Urgent: uint16(r.Uint32()), Options: randTCPOptions(r)}
			n := th.Put(ipb[hl:])
			l4len = n + copy(ipb[hl+n:], payload)
		case ProtoUDP:
			PutUDP(ipb[hl:], uint16(r.Uint32()), uint16(r.Uint32()), len(payload))
			l4len = UDPHeaderLen + copy(ipb[hl+UDPHeaderLen:], payload)
		case ProtoICMP:
			m := ICMPv4(ipb[hl : hl+8])
			m.SetType(ICMPEcho)
			m.SetID(uint16(r.Uint32()))
			m.SetSeq(uint16(r.Uint32()))
			l4len = 8 + copy(ipb[hl+8:], payload)
		}
		ih.TotalLen = hl + l4len
		ih.Put(ipb)
		h := IPv4(ipb[:ih.TotalLen])
		switch proto {
		case ProtoTCP:
			TCP(h.Payload()).FillChecksum(h.PseudoSum(l4len))
		case ProtoUDP:
			UDP(h.Payload()).FillChecksum(h.PseudoSum(l4len))
		case ProtoICMP:
			ICMPv4(h.Payload()).FillChecksum()
		}
		frame = frame[:14+ih.TotalLen]

		p := gpDecode(t, frame)
		cmpIPv4(t, h, p.Layer(layers.LayerTypeIPv4).(*layers.IPv4))
		switch proto {
		case ProtoTCP:
			cmpTCP(t, TCP(h.Payload()), p.Layer(layers.LayerTypeTCP).(*layers.TCP))
		case ProtoUDP:
			g := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			eq(t, "gp udp checksum", g.Checksum, UDP(h.Payload()).Checksum())
			sameBytes(t, "gp udp payload", g.Payload, payload)
		case ProtoICMP:
			g := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			eq(t, "gp icmp id", g.Id, ICMPv4(h.Payload()).ID())
			sameBytes(t, "gp icmp payload", g.Payload, payload)
		}
		if t.Failed() {
			t.Fatalf("frame %d: %x", i, frame)
		}
	}
}

func TestGopacketBuildWireParse(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	for i := 0; i < 500; i++ {
		src, dst := randAddr(r), randAddr(r)
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(macB[:]), EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TOS: uint8(r.Uint32()), Id: uint16(r.Uint32()), TTL: uint8(r.Uint32()),
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		if r.IntN(2) == 0 {
			ip.Flags = layers.IPv4DontFragment
		}
		payload := gopacket.Payload(randBytes(r, r.IntN(1400)))
		buf := gopacket.NewSerializeBuffer()
		var err error
		var wantTCP *layers.TCP
		var wantUDP *layers.UDP
		switch i % 3 {
		case 0:
			ip.Protocol = layers.IPProtocolTCP
			wantTCP = &layers.TCP{SrcPort: layers.TCPPort(r.Uint32()), DstPort: layers.TCPPort(r.Uint32()),
				Seq: r.Uint32(), Ack: r.Uint32(), SYN: r.IntN(2) == 0, ACK: r.IntN(2) == 0, PSH: r.IntN(2) == 0,
				FIN: r.IntN(2) == 0, Window: uint16(r.Uint32())}
			if r.IntN(2) == 0 {
				wantTCP.Options = []layers.TCPOption{
					{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
					{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
					{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: randBytes(r, 8)},
					{OptionType: layers.TCPOptionKindNop},
					{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(r.IntN(15))}},
				}
			}
			if err := wantTCP.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
			err = gopacket.SerializeLayers(buf, opts, eth, ip, wantTCP, payload)
		case 1:
			ip.Protocol = layers.IPProtocolUDP
			wantUDP = &layers.UDP{SrcPort: layers.UDPPort(r.Uint32()), DstPort: layers.UDPPort(r.Uint32())}
			if err := wantUDP.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
			err = gopacket.SerializeLayers(buf, opts, eth, ip, wantUDP, payload)
		default:
			ip.Protocol = layers.IPProtocolICMPv4
			ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPEchoReply, 0), Id: uint16(r.Uint32()), Seq: uint16(r.Uint32())}
			err = gopacket.SerializeLayers(buf, opts, eth, ip, ic, payload)
		}
		if err != nil {
			t.Fatal(err)
		}
		frame := buf.Bytes()
		e := mustEth(t, frame)
		h := mustIP(t, frame[e.HeaderLen:])
		eq(t, "src", h.Src(), src)
		eq(t, "dst", h.Dst(), dst)
		eq(t, "tos", h.TOS(), ip.TOS)
		eq(t, "id", h.ID(), ip.Id)
		eq(t, "ttl", h.TTL(), ip.TTL)
		eq(t, "DF", h.DF(), ip.Flags != 0)
		switch {
		case wantTCP != nil:
			s, err := ParseTCP(h.Payload(), h.PseudoSum(0), true)
			if err != nil {
				t.Fatal(err)
			}
			cmpTCP(t, s, wantTCP)
			sameBytes(t, "payload", s.Payload(), payload)
		case wantUDP != nil:
			u, err := ParseUDP(h.Payload(), h.PseudoSum(0))
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "sport", u.SrcPort(), uint16(wantUDP.SrcPort))
			eq(t, "dport", u.DstPort(), uint16(wantUDP.DstPort))
			sameBytes(t, "payload", u.Payload(), payload)
		default:
			m, err := ParseICMPv4(h.Payload())
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "type", m.Type(), ICMPEchoReply)
			sameBytes(t, "payload", m.Payload(), payload)
		}
		if t.Failed() {
			t.Fatalf("frame %d: %x", i, frame)
		}
	}
}

func TestGopacketARPBuild(t *testing.T) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(BroadcastMAC[:]), EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macA[:], SourceProtAddress: ipA.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: ipB.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, a); err != nil {
		t.Fatal(err)
	}
	// gopacket pads to the 60-byte minimum as a NIC would.
	sameBytes(t, "gopacket ARP request vs capture", buf.Bytes(), append(clone(arpRequest), make([]byte, 18)...))

	d := &layers.Dot1Q{Priority: 5, VLANIdentifier: 100, Type: layers.EthernetTypeIPv4}
	eth = &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(macB[:]), EthernetType: layers.EthernetTypeDot1Q}
	buf = gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, d, gopacket.Payload(vlanEchoReplyPadded[18:])); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "gopacket 802.1Q frame vs capture", buf.Bytes(), vlanEchoReplyPadded)
}

// TestGopacketSeesBadChecksum makes sure the cross-check above can fail.
func TestGopacketSeesBadChecksum(t *testing.T) {
	for _, f := range [][]byte{tcpSYN, dnsQuery, icmpEcho} {
		b := clone(f)
		b[len(b)-1] ^= 0x01 // transport payload or option byte
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
			switch l := p.TransportLayer().(type) {
			case *layers.TCP:
				_ = l.SetNetworkLayerForChecksum(ip)
			case *layers.UDP:
				_ = l.SetNetworkLayerForChecksum(ip)
			}
		}
		if _, mism := p.VerifyChecksums(); len(mism) != 1 {
			t.Errorf("gopacket found %d mismatches in a corrupted frame, want 1", len(mism))
		}
	}
}
