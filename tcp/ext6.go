package tcp

import "net/netip"

// IPv6 extension headers on a TCP socket (RFC 3542 9.2 sticky options
// IPV6_HOPOPTS / IPV6_RTHDRDSTOPTS / IPV6_RTHDR / IPV6_DSTOPTS, Linux's
// np->opt with icsk_ext_hdr_len): every segment of the connection to an
// IPv6 peer carries them. As with IP_OPTIONS (ipopts.go) TCP keeps an
// opaque value the host made (stack.SendExt6) and hands it with each
// segment (Segment.Ext6); its part is the room they take off the send
// MSS. That room is Linux's opt_nflen + opt_flen, which counts
// IPV6_RTHDRDSTOPTS too although without a routing header it is never
// sent (ip6_xmit pushes it only behind one), and a Segment Routing
// Header, which the host sends each segment through (to its next
// segment, the checksum over the connection's peer, as Linux's
// fl6_update_dst). The value lives in the shared option set (epOpts),
// so an endpoint without headers pays nothing, and an accepted socket
// takes its listener's, as Linux's tcp_v6_syn_recv_sock copies np->opt.

// IPv6Ext is a set of IPv6 extension headers (nil: none). Len is the
// room they take off each segment's payload; FirstHop is a routing
// header's next segment, where the segments go.
type IPv6Ext interface {
	Len() int
	FirstHop() (netip.Addr, bool)
}

// routeTo is the address a connection to a looks its route up for: a
// routing header's next segment, as Linux's tcp_v6_connect applies
// fl6_update_dst before its route lookup (and inet6_csk_route_req for a
// listener's child).
func (e *Endpoint) routeTo(a netip.Addr) netip.Addr {
	if e.ext6 == nil || a.Unmap().Is4() {
		return a
	}
	if h, ok := e.ext6.FirstHop(); ok {
		return h
	}
	return a
}

// ext6Len is the room the headers take in a segment to an IPv6 peer.
func (e *Endpoint) ext6Len() int {
	if e.ext6 == nil || e.remote.Addr().Unmap().Is4() {
		return 0
	}
	return e.ext6.Len()
}

// segExt6 is what a segment of the connection carries: nothing towards
// an IPv4 (or v4-mapped) peer.
func (e *Endpoint) segExt6() IPv6Ext {
	if e.ext6 == nil || e.remote.Addr().Unmap().Is4() {
		return nil
	}
	return e.ext6
}

// SetIPv6Ext sets the headers (nil: none). On a connection past its
// handshake the send MSS follows at once (Linux's ipv6_update_options
// calls tcp_sync_mss), so the next segment is cut to fit them.
func (e *Endpoint) SetIPv6Ext(x IPv6Ext) {
	e.setHeaderOpt(func(o epOpts) epOpts { o.ext6 = x; return o }) // ipopts.go
}

// IPv6Ext is the headers set (nil: none).
func (e *Endpoint) IPv6Ext() IPv6Ext {
	e.lock()
	defer e.unlock()
	return e.ext6
}
