package link

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// A multi-queue device (a multi-queue TAP, AF_PACKET sockets in a
// fanout group) brings a flow in on the queue the kernel picks: a TAP by
// the queue the flow was last written on, a fanout group by the kernel's
// own flow hash, which user space cannot compute. A busy poller must
// poll the queue its connection's frames come in on, so the device
// learns it: once a caller busy-polls the device, every queue notes, for
// each frame it delivers, its queue under the frame's flow (flowTable).

// flowTableSize is how many flows the table holds at once; a flow
// whose slot another flow took since is not known (a miss, counted in
// BusyPollStats.FlowMisses) until its next frame.
const flowTableSize = 1024

// flowTable maps a flow's SymFlowHash to the queue its frames last came
// in on: each slot holds the hash (high 32 bits) and the queue index + 1
// (low; 0: empty).
type flowTable struct {
	on     atomic.Bool // a caller busy-polled the device: learn
	misses atomic.Uint64
	slots  [flowTableSize]atomic.Uint64
}

// learn notes that frames came in on queue qi.
func (t *flowTable) learn(frames [][]byte, kind Kind, qi int) {
	for _, f := range frames {
		if h := SymFlowHash(f, kind); h != 0 {
			v := uint64(h)<<32 | uint64(qi+1)
			if s := &t.slots[h%flowTableSize]; s.Load() != v {
				s.Store(v)
			}
		}
	}
}

// queue is the queue flow last came in on, or -1 (counted) when the
// table does not hold it.
func (t *flowTable) queue(flow uint32) int {
	v := t.slots[flow%flowTableSize].Load()
	if v == 0 || uint32(v>>32) != flow {
		t.misses.Add(1)
		return -1
	}
	return int(uint32(v)) - 1
}

// SymFlowHash hashes an IPv4 or IPv6 frame's flow alike in both
// directions: addresses, protocol and, for TCP, UDP, UDP-Lite and SCTP
// (not in a fragment), ports, each end's address and port taken in a
// fixed order. 0 for a frame that is not IP. TupleFlowHash gives the
// same value for a socket's addresses.
func SymFlowHash(f []byte, kind Kind) uint32 {
	et, p, ok := framePayload(f, kind)
	if !ok {
		return 0
	}
	var sp, dp uint16
	switch {
	case et == wire.EtherTypeIPv4 && len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0x0f) * 4
		proto := p[9]
		frag := binary.BigEndian.Uint16(p[6:8])&0x3fff != 0
		if !frag && hasPorts(proto) && ihl >= 20 && len(p) >= ihl+4 {
			sp, dp = binary.BigEndian.Uint16(p[ihl:]), binary.BigEndian.Uint16(p[ihl+2:])
		}
		return symHash(p[12:16], p[16:20], proto, sp, dp)
	case et == wire.EtherTypeIPv6 && len(p) >= 40 && p[0]>>4 == 6:
		proto := p[6]
		if hasPorts(proto) && len(p) >= 44 {
			sp, dp = binary.BigEndian.Uint16(p[40:]), binary.BigEndian.Uint16(p[42:])
		}
		return symHash(p[8:24], p[24:40], proto, sp, dp)
	}
	return 0
}

// TupleFlowHash is SymFlowHash for a flow given by its two ends (either
// order) and protocol; an IPv4-mapped IPv6 address counts as IPv4.
// Ports count only for the protocols SymFlowHash takes them for.
func TupleFlowHash(a, b netip.AddrPort, proto uint8) uint32 {
	aa, ba := a.Addr().Unmap(), b.Addr().Unmap()
	if !aa.IsValid() || aa.Is4() != ba.Is4() {
		return 0
	}
	pa, pb := a.Port(), b.Port()
	if !hasPorts(proto) {
		pa, pb = 0, 0
	}
	x, y := aa.AsSlice(), ba.AsSlice()
	return symHash(x, y, proto, pa, pb)
}

// symHash hashes (a, pa) and (b, pb) in a fixed order, then proto; never
// 0.
func symHash(a, b []byte, proto uint8, pa, pb uint16) uint32 {
	if c := bytes.Compare(a, b); c > 0 || c == 0 && pa > pb {
		a, b, pa, pb = b, a, pb, pa
	}
	h := hashBytes(2166136261, a)
	h = hashBytes(h, b)
	h = hashBytes(h, []byte{proto, byte(pa >> 8), byte(pa), byte(pb >> 8), byte(pb)})
	if h = mix32(h); h == 0 {
		h = 1
	}
	return h
}
