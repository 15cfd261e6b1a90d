package stack

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// FuzzReceiveIPv6 feeds arbitrary IPv6 packets (after a valid Ethernet
// header) to a stack with IPv6 on, SLAAC on, an open UDP socket and a
// neighbour: nothing may panic, whatever the extension headers,
// fragments, ND, MLD or ICMPv6 errors inside; then the timers run
// (reassembly expiry, NUD, lifetimes).
func FuzzReceiveIPv6(f *testing.F) {
	udp := udp6(peerLL, hostLL, 1000, 9, []byte("seed"))
	f.Add(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoUDP, 64, udp, -1)[14:])
	fr := frag6(peerLL, hostLL, wire.ProtoUDP, 9, append(udp, make([]byte, 3000)...), 1448)
	f.Add(fr[0][14:])
	f.Add(ra(1800, 1400)[14:])
	b := make([]byte, 64)
	n := wire.PutNS(b, hostLL, peerMAC)
	f.Add(frame6(hostMAC, peerMAC, peerLL, wire.SolicitedNode(hostLL), wire.ProtoICMPv6, 255, b[:n], 0)[14:])
	f.Fuzz(func(t *testing.T, pkt []byte) { fuzzReceive6(pkt) })
}

func fuzzReceive6(pkt []byte) {
	{
		clk := clock.NewManual(time.Unix(1_700_000_000, 0))
		s := New(Options{Clock: clk, DADTransmits: -1, IPv6SLAAC: true})
		defer s.Close()
		ep := &chanEP{mtu: 1500, discard: true}
		nic := s.AddNIC("eth0", ep)
		nic.EnableIPv6()
		nic.SetStatic6(peerLL, peerMAC)
		e := s.NewDgram(KindUDP, 0)
		e.SetInet6()
		e.Bind(netipPort6(9))
		defer e.Close()
		frame := make([]byte, 14+len(pkt))
		wire.PutEthernet(frame, hostMAC, peerMAC, wire.EtherTypeIPv6)
		copy(frame[14:], pkt)
		ep.inject(frame)
		// Fix the ICMPv6 checksum too, so the fuzzer reaches ND and MLD.
		if h, err := wire.ParseIPv6(frame[14:]); err == nil {
			var x wire.IPv6Ext
			if wire.WalkIPv6Ext(h, &x) == nil && x.Proto == wire.ProtoICMPv6 && len(h) >= x.Offset+4 {
				m := wire.ICMPv6(h[x.Offset:])
				m.FillChecksum(wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoICMPv6, len(m)))
				ep.inject(frame)
			}
		}
		clk.Advance(time.Hour)
	}
}
