package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// FuzzTransparent feeds arbitrary IP packets (IPv4 or IPv6 by the first
// nibble, after a valid Ethernet header) to a stack whose rules divert
// everything of both families, with a transparent listener and UDP
// socket on the rule's port: nothing may panic on the divert path
// (fragments, extension headers, truncated transport headers), and
// the timers run after.
func FuzzTransparent(f *testing.F) {
	f.Add(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, synPayload(peerAddr, foreign, 40000, 443))[14:])
	p := udpPayload(peerAddr, foreign, 5353, 53, make([]byte, 100))
	f.Add(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 7, FragOff: 56}, p[56:])[14:])
	f.Add(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, ID: 7, MF: true}, p[:56])[14:])
	dst6 := netip.MustParseAddr("2001:db8:77::5")
	u6 := udp6(peerLL, dst6, 1000, 53, []byte("seed"))
	f.Add(frame6(hostMAC, peerMAC, peerLL, dst6, wire.ProtoUDP, 64, u6, -1)[14:])
	for _, fr := range frag6(peerLL, dst6, wire.ProtoUDP, 53, append(u6, make([]byte, 3000)...), 1448) {
		f.Add(fr[14:])
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		clk := clock.NewManual(time.Unix(1_700_000_000, 0))
		s := New(Options{Clock: clk, DADTransmits: -1})
		defer s.Close()
		ep := &chanEP{mtu: 1500, discard: true}
		nic := s.AddNIC("eth0", ep)
		nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
		nic.EnableIPv6()
		nic.SetStatic(peerAddr, peerMAC)
		nic.SetStatic6(peerLL, peerMAC)
		for _, pf := range []string{"0.0.0.0/0", "::/0"} {
			s.AddTransparentRule(TransparentRule{Proto: TransparentTCP | TransparentUDP, Dst: netip.MustParsePrefix(pf), ToPort: 9000, Local: true})
		}
		l := s.TCP.NewEndpoint()
		l.SetTransparent(true)
		l.SetInet6()
		l.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9000))
		l.Listen(8)
		defer l.Close()
		u := s.NewDgram(KindUDP, 0)
		u.SetInet6()
		u.SetTransparent(true)
		u.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9000))
		defer u.Close()
		frame := make([]byte, 14+len(pkt))
		et := wire.EtherTypeIPv4
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			et = wire.EtherTypeIPv6
		}
		wire.PutEthernet(frame, hostMAC, peerMAC, et)
		copy(frame[14:], pkt)
		ep.inject(frame)
		clk.Advance(time.Hour)
	})
}
