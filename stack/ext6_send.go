package stack

import "github.com/sockstack/sockstack/wire"

// SendExt6 is the application extension headers of an IPv6 datagram
// (RFC 3542 sections 6 and 9: IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS,
// IPV6_DSTOPTS), each a whole header whose first byte the stack
// overwrites with the chain's next header. They go out in RFC 8200
// order as Linux's ipv6_push_nfrag_opts / ipv6_push_frag_opts put them:
// Hop-by-Hop first (unfragmentable), then Destination Options
// (fragmentable: after a fragment header), then the upper layer.
// RthdrDst is the destination options header for before a routing
// header; sockstack sends no routing header, and Linux drops that header
// without one (ipv6_fixup_options, RFC 3542 9.2), so it is never sent
// nor counted.
type SendExt6 struct {
	Hop, RthdrDst, Dst []byte
}

// sent is the bytes of headers that go out.
func (x *SendExt6) sent() int {
	if x == nil {
		return 0
	}
	return len(x.Hop) + len(x.Dst)
}

// counted is what the size checks (IPV6_DONTFRAG against the MTU, the
// 65,535-byte payload) count: Linux's ip6_append_data adds opt_flen to
// the datagram's length and again in its header size, so Destination
// Options count twice there (checked against the kernel).
func (x *SendExt6) counted() int {
	if x == nil {
		return 0
	}
	return len(x.Hop) + 2*len(x.Dst)
}

// put writes the headers at ip[off:] for upper-layer protocol proto and
// returns the next header of the fixed header and the bytes written.
func (x *SendExt6) put(ip []byte, proto uint8) (first uint8, n int) {
	first = proto
	if len(x.Dst) > 0 {
		first = wire.ProtoIPv6Opts
	}
	if len(x.Hop) > 0 {
		n += copy(ip, x.Hop)
		ip[0] = first
		first = wire.ProtoHopByHop
	}
	if len(x.Dst) > 0 {
		m := copy(ip[n:], x.Dst)
		ip[n] = proto
		n += m
	}
	return first, n
}

// SetExt6 sets the sticky extension headers (nil: none); x is kept, not
// copied, and must not change after.
func (e *DgramEndpoint) SetExt6(x *SendExt6) {
	e.mu.Lock()
	e.ext6 = x
	e.mu.Unlock()
}

// Ext6 is the sticky extension headers (nil: none), not to be changed.
func (e *DgramEndpoint) Ext6() *SendExt6 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ext6
}
