package stack

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// FuzzForwardIPv6 feeds arbitrary IPv6 packets to a router (two links,
// the second with MTU 1280, a prohibit rule beside the main table): the
// forwarding path (hop-by-hop options, hop limit, scope, redirects,
// Packet Too Big, rule actions) must never panic, and whatever leaves
// by the far link parses, a forwarded packet one hop older than it came.
func FuzzForwardIPv6(f *testing.F) {
	f.Add(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 9, udp6(peer6, fwFar, 1000, 9, []byte("seed")), -1)[14:])
	f.Add(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 1, udp6(peer6, fwFar, 1000, 9, []byte("seed")), -1)[14:])
	f.Add(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoUDP, 64, udp6(peer6, fwFar, 1000, 9, make([]byte, 1400)), -1)[14:])
	f.Add(frame6(hostMAC, peerMAC, peerLL, fwFar, wire.ProtoUDP, 64, udp6(peerLL, fwFar, 1000, 9, []byte("ll")), -1)[14:])
	hbh := append([]byte{wire.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, udp6(peer6, fwFar, 1000, 9, []byte("hbh"))...)
	f.Add(frame6(hostMAC, peerMAC, peer6, fwFar, wire.ProtoHopByHop, 64, hbh, -1)[14:])
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r := newFw6(t, Options{Forwarding: true})
		frame := make([]byte, 14+len(pkt))
		wire.PutEthernet(frame, hostMAC, peerMAC, wire.EtherTypeIPv6)
		copy(frame[14:], pkt)
		r.ep.inject(frame)
		in, inErr := wire.ParseIPv6(pkt)
		for _, out := range r.ep1.take() {
			p, err := wire.ParseIPv6(out[14:])
			if err != nil {
				t.Fatalf("forwarded a packet that does not parse: %v", err)
			}
			// The router's own packets (neighbour solicitations for an
			// unknown next hop) leave there too; forwarded ones keep
			// the source.
			if inErr == nil && p.Src() == in.Src() && p.HopLimit() != in.HopLimit()-1 {
				t.Fatalf("hop limit %d in, %d out", in.HopLimit(), p.HopLimit())
			}
		}
		r.ep.take()
		r.clk.Advance(time.Minute)
	})
}
