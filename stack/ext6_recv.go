package stack

import (
	"sync"

	"github.com/sockstack/sockstack/wire"
)

// RecvExt6 is what a received IPv6 datagram's extension headers give
// its socket (IPV6_RECVHOPOPTS, IPV6_RECVDSTOPTS): the Hop-by-Hop header
// whole, and every Destination Options header of the chain, whole and in
// order, as Linux's ip6_datagram_recv_specific_ctl reports them (it
// walks up to the last options or routing header the input processed,
// so the headers before and after a routing header both count). Only
// datagrams that carried such a header take one, from a pool.
//
// A routing header (segments left 0: the input passed over it) is kept
// too, for IPV6_RECVRTHDR and IPV6_2292RTHDR: Rt is the last one and
// RtAt the number of Destination Options headers before it, which puts
// it in its place among them (Linux reports them in chain order) and
// tells the RFC 2292 messages' dst0 (before it) from dst1 (after).
type RecvExt6 struct {
	Hop  []byte   // the Hop-by-Hop header; empty: none
	Dst  [][]byte // the Destination Options headers
	Rt   []byte   // the routing header; empty: none
	RtAt int      // how many of Dst came before Rt
	buf  []byte
}

var recvExt6Pool = sync.Pool{New: func() any { return new(RecvExt6) }}

// PutRecvExt6 gives x (nil: none) back for reuse; x must not be used after.
func PutRecvExt6(x *RecvExt6) {
	if x != nil {
		recvExt6Pool.Put(x)
	}
}

// recvExt6 copies h's Hop-by-Hop, Destination Options and routing headers; nil
// when the fixed header names the upper layer directly (the common
// case: nothing taken). h's chain was checked on input.
func recvExt6(h wire.IPv6) *RecvExt6 {
	nh := h.NextHeader()
	if nh != wire.ProtoHopByHop && nh != wire.ProtoIPv6Opts && nh != wire.ProtoIPv6Route {
		return nil
	}
	x := recvExt6Pool.Get().(*RecvExt6)
	x.Hop, x.Dst, x.buf, x.Rt, x.RtAt = nil, x.Dst[:0], x.buf[:0], nil, 0
	type span struct{ off, n int }
	var hop, rt span
	var dst [wire.IPv6MaxExtHeaders]span
	nd := 0
	for off := wire.IPv6HeaderLen; off+2 <= len(h); {
		l := wire.IPv6ExtLen(nh, h[off+1])
		if off+l > len(h) {
			break
		}
		switch nh {
		case wire.ProtoHopByHop:
			hop = span{len(x.buf), l}
		case wire.ProtoIPv6Opts:
			if nd < len(dst) {
				dst[nd] = span{len(x.buf), l}
				nd++
			}
		case wire.ProtoIPv6Route:
			rt = span{len(x.buf), l}
			x.RtAt = nd
		default:
			off = len(h) // the upper layer (or AH, ESP, a fragment): done
			continue
		}
		x.buf = append(x.buf, h[off:off+l]...)
		nh = h[off]
		off += l
	}
	if hop.n == 0 && nd == 0 && rt.n == 0 {
		recvExt6Pool.Put(x)
		return nil
	}
	if hop.n > 0 {
		x.Hop = x.buf[hop.off : hop.off+hop.n]
	}
	if rt.n > 0 {
		x.Rt = x.buf[rt.off : rt.off+rt.n]
	}
	for _, d := range dst[:nd] {
		x.Dst = append(x.Dst, x.buf[d.off:d.off+d.n])
	}
	return x
}

// clone is a pooled copy of x (a peek leaves the queue's own).
func (x *RecvExt6) clone() *RecvExt6 {
	c := recvExt6Pool.Get().(*RecvExt6)
	c.buf = append(c.buf[:0], x.buf...)
	c.Hop, c.Dst, c.Rt, c.RtAt = nil, c.Dst[:0], nil, x.RtAt
	base := func(b []byte) int { return cap(x.buf) - cap(b) }
	if len(x.Hop) > 0 {
		o := base(x.Hop)
		c.Hop = c.buf[o : o+len(x.Hop)]
	}
	if len(x.Rt) > 0 {
		o := base(x.Rt)
		c.Rt = c.buf[o : o+len(x.Rt)]
	}
	for _, d := range x.Dst {
		o := base(d)
		c.Dst = append(c.Dst, c.buf[o:o+len(d)])
	}
	return c
}
