package stack

import (
	"net/netip"

	"github.com/sockstack/sockstack/wire"
)

// SendExt6 is the application extension headers of an IPv6 datagram
// (RFC 3542 sections 6 and 9: IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS,
// IPV6_RTHDR, IPV6_DSTOPTS), each a whole header whose first byte the
// stack overwrites with the chain's next header. They go out in RFC 8200
// order as Linux's ipv6_push_nfrag_opts / ipv6_push_frag_opts put them:
// Hop-by-Hop, then with a routing header the destination options for
// before it (RthdrDst) and the routing header (all three unfragmentable,
// Linux's opt_nflen), then Destination Options (fragmentable: after a
// fragment header), then the upper layer. Without a routing header
// RthdrDst is neither sent nor counted (Linux's ipv6_fixup_options).
//
// Rt is a Segment Routing Header (RFC 8754, routing type 4) the socket
// layer checked as Linux's seg6_validate_srh. As Linux's
// ipv6_push_rthdr4 and fl6_update_dst, the packet goes to
// Rt's segments[segments_left] (route, neighbour and fixed header's
// destination), the header sent has the datagram's final destination in
// segments[0], and the transport checksum covers that final destination
// (RFC 8200 8.1).
type SendExt6 struct {
	Hop, RthdrDst, Rt, Dst []byte
}

// nfrag is the bytes of the unfragmentable headers that go out.
func (x *SendExt6) nfrag() int {
	if x == nil {
		return 0
	}
	if len(x.Rt) == 0 {
		return len(x.Hop)
	}
	return len(x.Hop) + len(x.RthdrDst) + len(x.Rt)
}

// unfrag is the unfragmentable part of a packet with x: the fixed
// header and the headers every fragment repeats.
func (x *SendExt6) unfrag() int { return wire.IPv6HeaderLen + x.nfrag() }

// sent is the bytes of headers that go out.
func (x *SendExt6) sent() int {
	if x == nil {
		return 0
	}
	return x.nfrag() + len(x.Dst)
}

// counted is what the size checks (IPV6_DONTFRAG against the MTU, the
// 65,535-byte payload) count: Linux's ip6_append_data adds opt_flen to
// the datagram's length and again in its header size, so Destination
// Options count twice there (checked against the kernel).
func (x *SendExt6) counted() int {
	if x == nil {
		return 0
	}
	return x.nfrag() + 2*len(x.Dst)
}

// hasRt reports whether x sends a routing header.
func (x *SendExt6) hasRt() bool { return x != nil && len(x.Rt) > 0 }

// FirstHop is where a packet with x goes: the routing header's
// segments[segments_left] (Linux's fl6_update_dst); false without one.
func (x *SendExt6) FirstHop() (netip.Addr, bool) {
	if !x.hasRt() {
		return netip.Addr{}, false
	}
	at := 8 + 16*int(x.Rt[3])
	if at+16 > len(x.Rt) {
		return netip.Addr{}, false // not a checked SRH: never made by the socket layer
	}
	return netip.AddrFrom16([16]byte(x.Rt[at : at+16])), true
}

// put writes the headers at ip[off:] for upper-layer protocol proto and
// returns the next header of the fixed header and the bytes written.
// final is the datagram's destination, written in the routing header's
// segments[0].
func (x *SendExt6) put(ip []byte, proto uint8, final netip.Addr) (first uint8, n int) {
	// Each header names the one after it: walk from the last.
	rt := len(x.Rt) > 0
	next := proto
	if len(x.Dst) > 0 {
		next = wire.ProtoIPv6Opts
	}
	type hdr struct {
		b  []byte
		nh uint8
	}
	var hs [4]hdr
	k, rtAt := 0, -1
	if len(x.Dst) > 0 {
		hs[k] = hdr{x.Dst, proto}
		k++
	}
	if rt {
		hs[k] = hdr{x.Rt, next}
		rtAt = k
		k++
		next = wire.ProtoIPv6Route
		if len(x.RthdrDst) > 0 {
			hs[k] = hdr{x.RthdrDst, next}
			k++
			next = wire.ProtoIPv6Opts
		}
	}
	if len(x.Hop) > 0 {
		hs[k] = hdr{x.Hop, next}
		k++
		next = wire.ProtoHopByHop
	}
	for i := k - 1; i >= 0; i-- {
		m := copy(ip[n:], hs[i].b)
		ip[n] = hs[i].nh
		if i == rtAt && m >= 24 {
			a := final.As16()
			copy(ip[n+8:n+24], a[:])
		}
		n += m
	}
	return next, n
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
