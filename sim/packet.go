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

// flowKey is the IPv4 5-tuple of a frame hashed with a per-queue
// perturbation (FQ-CoDel's flow classifier); non-IP frames share flow 0.
func flowKey(b []byte, perturb uint32) uint32 {
	if len(b) < wire.EthernetHeaderLen+20 || binary.BigEndian.Uint16(b[12:]) != wire.EtherTypeIPv4 {
		return 0
	}
	ip := b[wire.EthernetHeaderLen:]
	ihl := int(ip[0]&0xf) * 4
	h := perturb ^ 2166136261
	mix := func(v uint32) {
		h ^= v
		h *= 16777619
	}
	mix(binary.BigEndian.Uint32(ip[12:]))
	mix(binary.BigEndian.Uint32(ip[16:]))
	mix(uint32(ip[9]))
	if (ip[9] == wire.ProtoTCP || ip[9] == wire.ProtoUDP) && len(ip) >= ihl+4 {
		mix(binary.BigEndian.Uint32(ip[ihl:]))
	}
	return h
}

// isICMP reports an IPv4 ICMP frame.
func isICMP(b []byte) bool {
	return len(b) >= wire.EthernetHeaderLen+20 && binary.BigEndian.Uint16(b[12:]) == wire.EtherTypeIPv4 &&
		b[wire.EthernetHeaderLen+9] == wire.ProtoICMP
}
