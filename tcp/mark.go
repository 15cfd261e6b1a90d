package tcp

import "net/netip"

// SO_MARK: a connection's mark goes with each of its segments
// (Segment.Mark) and into its route lookups, for a host with policy
// routing (stack's rules: "ip rule add fwmark N lookup T"). It lives in
// the shared option set (epOpts), so an endpoint does not grow. An
// accepted connection has its listener's mark, as Linux's child with
// tcp_fwmark_accept off (the default): inet_request_mark gives the
// listener's sk_mark, which inet_csk_clone_lock copies. A change on a
// connected socket applies from the next segment, whose route the host
// looks up again (Linux: sk_dst_reset).

// FlowRouter is a Host whose route depends on the socket's mark and the
// connection's local address (policy routing). Route is used when the
// host is not one.
type FlowRouter interface {
	RouteFlow(remote, local netip.Addr, mark uint32) (Route, error)
}

// routeFor is the route to remote for a connection with options o, from
// local (invalid or unspecified: not chosen yet).
func (p *Protocol) routeFor(remote, local netip.Addr, o *epOpts) (Route, error) {
	if dr, ok := p.host.(DevRouter); ok && o.dev != 0 {
		if local.IsUnspecified() {
			local = netip.Addr{}
		}
		return dr.RouteDev(remote, local, o.mark, int(o.dev)) // bindtodev.go
	}
	if fr, ok := p.host.(FlowRouter); ok {
		if local.IsUnspecified() {
			local = netip.Addr{}
		}
		return fr.RouteFlow(remote, local, o.mark)
	}
	return p.host.Route(remote)
}

// SetMark is setsockopt(SO_MARK).
func (e *Endpoint) SetMark(m uint32) {
	e.lock()
	defer e.unlock()
	e.setOpt(func(x epOpts) epOpts { x.mark = m; return x })
}

// Mark is getsockopt(SO_MARK).
func (e *Endpoint) Mark() uint32 {
	e.lock()
	defer e.unlock()
	return e.mark
}
