package stack

import (
	"bytes"
	"encoding/binary"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Putting a receive batch back in order. A link can hand over the
// segments of one flow out of the order they were sent even when the
// path kept it: a veth queues each frame on the backlog of the CPU that
// sent it, and a kernel whose sender runs on two CPUs (the application's
// write on one, the ACK processing that clocks out more data on the
// other) has its two backlogs drain into the packet socket independently
// (BENCHMARKS.md, "AF_PACKET against the TAP"). TCP answers each segment
// that arrives ahead of a hole at once with a duplicate ACK and SACK, and
// the sender, seeing three of them, retransmits what was never lost and
// cuts its window. When both segments of such an inversion arrive in the
// same receive batch, nothing needs to be seen: the segments of each
// flow are sorted by sequence number before TCP (and GRO) take them, as
// if the path had delivered them in order, which it may. Only adjacent
// segments of one flow trade places; segments of other flows, and SYN,
// RST and URG segments, stay where they are.

// ordKey is what orderBatch knows of a frame: where its TCP header is,
// and its sequence number, when it is a segment that may move.
type ordKey struct {
	ok  bool
	v6  bool
	ip  int // offset of the IP header
	l4  int // offset of the TCP header
	seq uint32
}

// orderKey parses f far enough to order it; malformed frames stay put
// (the normal path drops and counts them).
func (n *NIC) orderKey(f []byte) (k ordKey) {
	if n.ethernet {
		if len(f) < wire.EthernetHeaderLen {
			return k
		}
		switch binary.BigEndian.Uint16(f[12:14]) {
		case wire.EtherTypeIPv4:
		case wire.EtherTypeIPv6:
			k.v6 = true
		default:
			return k
		}
		k.ip = wire.EthernetHeaderLen
	} else {
		k.v6 = len(f) > 0 && f[0]>>4 == 6
	}
	ip := f[k.ip:]
	var end int // end of the IP packet within ip
	if k.v6 {
		if len(ip) < wire.IPv6HeaderLen+wire.TCPMinHeaderLen || ip[0]>>4 != 6 || ip[6] != wire.ProtoTCP {
			return k
		}
		end = wire.IPv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:6]))
		k.l4 = k.ip + wire.IPv6HeaderLen
	} else {
		if len(ip) < wire.IPv4MinHeaderLen+wire.TCPMinHeaderLen || ip[0]>>4 != 4 || ip[9] != wire.ProtoTCP {
			return k
		}
		if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return k // a fragment
		}
		hl := int(ip[0]&0x0f) * 4
		end = int(binary.BigEndian.Uint16(ip[2:4]))
		if hl < wire.IPv4MinHeaderLen || len(ip) < hl+wire.TCPMinHeaderLen {
			return k
		}
		k.l4 = k.ip + hl
	}
	if end > len(ip) || k.ip+end < k.l4+wire.TCPMinHeaderLen {
		return k
	}
	t := wire.TCP(f[k.l4 : k.ip+end])
	if t.Flags()&(wire.TCPFlagSYN|wire.TCPFlagRST|wire.TCPFlagURG) != 0 || t.Flags()&wire.TCPFlagACK == 0 {
		return k
	}
	doff := t.DataOffset()
	if doff < wire.TCPMinHeaderLen || doff >= len(t) {
		return k // no payload: a pure ACK keeps its place
	}
	k.seq, k.ok = t.Seq(), true
	return k
}

// sameFlow reports whether a and b, both ok, are segments of one flow.
func sameFlow(a, b []byte, ka, kb *ordKey) bool {
	if ka.v6 != kb.v6 {
		return false
	}
	if ka.v6 {
		if !bytes.Equal(a[ka.ip+8:ka.ip+40], b[kb.ip+8:kb.ip+40]) {
			return false
		}
	} else if !bytes.Equal(a[ka.ip+12:ka.ip+20], b[kb.ip+12:kb.ip+20]) {
		return false
	}
	return bytes.Equal(a[ka.l4:ka.l4+4], b[kb.l4:kb.l4+4])
}

// orderBatch returns the batch with each flow's data segments in
// sequence order (metas, when not nil, follow their frames). The link's
// own vectors are never written: a batch that needs a change is copied
// into the receiver's scratch vectors first.
func (n *NIC) orderBatch(rx *rxState, frames [][]byte, metas []link.Meta) ([][]byte, []link.Meta) {
	if n.loopback || len(frames) < 2 {
		return frames, metas
	}
	keys := rx.ordKeys[:0]
	ok := 0
	for _, f := range frames {
		k := n.orderKey(f)
		if k.ok {
			ok++
		}
		keys = append(keys, k)
	}
	rx.ordKeys = keys
	if ok < 2 {
		return frames, metas
	}
	copied := false
	moved := 0
	for i := 1; i < len(frames); i++ {
		j := i
		for ; j > 0; j-- {
			a, b := &keys[j-1], &keys[j]
			if !a.ok || !b.ok || int32(a.seq-b.seq) <= 0 || !sameFlow(frames[j-1], frames[j], a, b) {
				break
			}
			if !copied {
				rx.ordFrames = append(rx.ordFrames[:0], frames...)
				frames = rx.ordFrames
				if metas != nil {
					rx.ordMetas = append(rx.ordMetas[:0], metas...)
					metas = rx.ordMetas
				}
				copied = true
			}
			frames[j-1], frames[j] = frames[j], frames[j-1]
			if metas != nil {
				metas[j-1], metas[j] = metas[j], metas[j-1]
			}
			keys[j-1], keys[j] = keys[j], keys[j-1]
		}
		if j != i {
			moved++
		}
	}
	if moved > 0 {
		n.stack.stats.Link.InReordered.Add(uint64(moved))
	}
	return frames, metas
}
