package sim

import (
	"encoding/binary"
	"sync"

	"github.com/sockstack/sockstack/wire"
)

// packet is one frame in flight: in a queue, on a wire, or in a switch.
type packet struct {
	buf []byte
	enq int64 // when it entered its current queue (ns)
}

var pktPool = sync.Pool{New: func() any { return &packet{buf: make([]byte, 0, 1600)} }}

func newPacket(f []byte) *packet {
	p := pktPool.Get().(*packet)
	p.buf = append(p.buf[:0], f...)
	return p
}

func (p *packet) clone() *packet { return newPacket(p.buf) }

func (p *packet) free() {
	if cap(p.buf) > 64<<10 {
		p.buf = make([]byte, 0, 1600)
	}
	pktPool.Put(p)
}

// flowKey is the 5-tuple of an IPv4 or IPv6 frame hashed with a
// per-queue perturbation (FQ-CoDel's flow classifier); non-IP frames
// share flow 0. An IPv6 packet whose transport header does not follow
// the fixed header directly (extension headers, ESP, ...) hashes its
// flow label instead of ports, as Linux's flow dissector falls back to.
func flowKey(b []byte, perturb uint32) uint32 {
	if len(b) < wire.EthernetHeaderLen+20 {
		return 0
	}
	h := perturb ^ 2166136261
	mix := func(v uint32) {
		h ^= v
		h *= 16777619
	}
	ip := b[wire.EthernetHeaderLen:]
	switch binary.BigEndian.Uint16(b[12:]) {
	case wire.EtherTypeIPv4:
		ihl := int(ip[0]&0xf) * 4
		mix(binary.BigEndian.Uint32(ip[12:]))
		mix(binary.BigEndian.Uint32(ip[16:]))
		mix(uint32(ip[9]))
		if (ip[9] == wire.ProtoTCP || ip[9] == wire.ProtoUDP) && len(ip) >= ihl+4 {
			mix(binary.BigEndian.Uint32(ip[ihl:]))
		}
	case wire.EtherTypeIPv6:
		if len(ip) < wire.IPv6HeaderLen {
			return 0
		}
		for i := 8; i < 40; i += 4 {
			mix(binary.BigEndian.Uint32(ip[i:]))
		}
		nh := ip[6]
		mix(uint32(nh))
		if (nh == wire.ProtoTCP || nh == wire.ProtoUDP) && len(ip) >= wire.IPv6HeaderLen+4 {
			mix(binary.BigEndian.Uint32(ip[wire.IPv6HeaderLen:]))
		} else {
			mix(binary.BigEndian.Uint32(ip[0:]) & 0xfffff)
		}
	default:
		return 0
	}
	return h
}

// isICMP reports an ICMP frame a firewall filtering ICMP drops: every
// IPv4 ICMP message; of ICMPv6 the errors (Packet Too Big: the PMTU
// black hole) and echo, not neighbour discovery and MLD (types 130 and
// up), which an IPv6 link cannot work without (RFC 4890 4.4.1 keeps
// them off filter lists). ICMPv6 behind extension headers is not
// looked for.
func isICMP(b []byte) bool {
	if len(b) < wire.EthernetHeaderLen+20 {
		return false
	}
	ip := b[wire.EthernetHeaderLen:]
	switch binary.BigEndian.Uint16(b[12:]) {
	case wire.EtherTypeIPv4:
		return ip[9] == wire.ProtoICMP
	case wire.EtherTypeIPv6:
		if len(ip) < wire.IPv6HeaderLen+1 || ip[6] != wire.ProtoICMPv6 {
			return false
		}
		return ip[wire.IPv6HeaderLen] <= wire.ICMPv6EchoReply
	}
	return false
}
