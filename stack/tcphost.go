package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// tcpHost is the stack seen from TCP.
type tcpHost struct{ s *Stack }

func (h tcpHost) Clock() clock.Clock { return h.s.clock }

func (h tcpHost) IsLocal(a netip.Addr) bool { return h.s.IsLocal(a) }

// LocalDev is the index of the interface holding a, for a TCP segment
// delivered through loopback (tcp.LocalDever): Linux's rt_iif of a local
// route, its device. Not one of ours: loopback's.
func (h tcpHost) LocalDev(a netip.Addr) int {
	if n := h.s.ownerOf(a.Unmap()); n != nil {
		return n.id
	}
	return h.s.lo.id
}

func (h tcpHost) Route(remote netip.Addr) (tcp.Route, error) {
	r, err := h.s.FindRoute(remote)
	return h.route(remote, r, err)
}

// RouteFlow is Route for a connection with a mark (SO_MARK) and a local
// address when bound: what policy rules select (route.go, tcp.FlowRouter).
func (h tcpHost) RouteFlow(remote, local netip.Addr, mark uint32) (tcp.Route, error) {
	r, err := h.s.FindRouteFlow(remote, Flow{Src: local, Mark: mark})
	return h.route(remote, r, err)
}

// RouteDev is RouteFlow through one interface: the connection's
// SO_BINDTODEVICE (tcp.DevRouter), as Linux's ip_route_connect with
// flowi_oif. An unknown index is ENODEV for IPv4 (ip_route_output's
// device lookup), ENETUNREACH for IPv6 (no route has it).
func (h tcpHost) RouteDev(remote, local netip.Addr, mark uint32, dev int) (tcp.Route, error) {
	nic := h.s.NICByID(dev)
	if nic == nil {
		if r := remote.Unmap(); r.Is6() {
			return tcp.Route{}, syscall.ENETUNREACH
		}
		return tcp.Route{}, syscall.ENODEV
	}
	r, err := h.s.routeDev(remote, Flow{Src: local, Mark: mark, Oif: nic})
	return h.route(remote, r, err)
}

// routeDev is the route to dst through f.Oif only: the rules' (with f,
// which an "oif" selector sees) or the main table's routes through it;
// the host's own addresses through loopback. Without one, an IPv4
// destination is taken to be on the device's link, as Linux's
// ip_route_output_key_hash_rcu assumes ("routing tables are wrong"): the
// SYN goes out there and a neighbour that never answers fails the
// connect with EHOSTUNREACH. IPv6 has no such rule: ENETUNREACH.
func (s *Stack) routeDev(dst netip.Addr, f Flow) (ResolvedRoute, error) {
	dst = dst.Unmap() // a dual-stack socket's IPv4 peer
	var r ResolvedRoute
	var err error
	if pol := s.pr.snap.Load(); pol != nil {
		r, err = s.policyRoute(pol, dst, &f, f.Oif)
	} else {
		r, err = s.routeVia(dst, f.Oif)
	}
	if err != syscall.ENETUNREACH || f.Oif == s.lo {
		return r, err
	}
	d := dst
	if !d.Is4() {
		return r, err
	}
	src := f.Oif.primaryAddr(d)
	if !src.IsValid() {
		// Linux's inet_select_addr: another device's address, when the
		// bound one has none.
		for _, n := range s.NICs() {
			if n != s.lo {
				if src = n.primaryAddr(d); src.IsValid() {
					break
				}
			}
		}
	}
	if !src.IsValid() {
		return r, syscall.EADDRNOTAVAIL
	}
	return ResolvedRoute{NIC: f.Oif, Src: src, NextHop: d, MTU: f.Oif.mtu}, nil
}

func (h tcpHost) route(remote netip.Addr, r ResolvedRoute, err error) (tcp.Route, error) {
	if err != nil {
		return tcp.Route{}, err
	}
	mtu := r.MTU
	if m, _, ok := h.s.pathMTU(remote); ok && m < mtu && !r.Local {
		mtu = m // the path MTU learnt from ICMP (RFC 1191)
	}
	v6 := remote.Is6() && !remote.Is4In6()
	if v6 {
		// TCP takes 40 bytes of headers off the MTU for its MSS, IPv4's
		// size; IPv6's header is 20 bytes longer (RFC 8200 8.3).
		mtu -= wire.IPv6HeaderLen - wire.IPv4MinHeaderLen
	}
	rt := tcp.Route{Source: r.Src, MTU: mtu}
	if !r.Local {
		rt.GSOMax = r.NIC.gsoMax() // gso.go
		_, rt.Defer = r.NIC.ep.(link.NeverQueueFull)
		_, polled := r.NIC.ep.(link.BusyPoller)
		if polled || h.s.holder(r.NIC.id) != nil { // AddNIC decided which links hold
			rt.Hold = r.NIC.id // and a read busy-polls it (SO_BUSY_POLL)
		}
		if v6 && rt.GSOMax > 0 {
			// In the same IPv4-sized terms as the MTU above, so the
			// IPv6 packet TCP builds stays within what the link takes.
			rt.GSOMax -= wire.IPv6HeaderLen - wire.IPv4MinHeaderLen
		}
	}
	return rt, nil
}

// HoldOutput is tcp.OutputHolder: while TCP's flusher hands over a
// connection's queued segments, the link of its route (a NIC id,
// Route.Hold) sends them together when it is done (link.Holder).
func (h tcpHost) HoldOutput(nic int, start bool) {
	if l := h.s.holder(nic); l != nil {
		l.HoldWrites(start)
	}
}

// FlushOutput is tcp.OutputHolder's: what the link holds leaves now.
func (h tcpHost) FlushOutput(nic int) {
	if l := h.s.holder(nic); l != nil {
		l.FlushHeld()
	}
}

// holder is NIC id's endpoint if it can hold frames (link.Holder).
func (s *Stack) holder(id int) link.Holder {
	if hs := s.holders.Load(); hs != nil && id >= 1 && id <= len(*hs) {
		return (*hs)[id-1]
	}
	return nil
}

// Output builds the TCP header and sends the segment with DF set (TCP
// does path MTU discovery, RFC 1191).
func (h tcpHost) Output(seg *tcp.Segment) error {
	seg.Header.SrcPort = seg.Local.Port()
	seg.Header.DstPort = seg.Remote.Port()
	var dev *NIC
	if seg.Dev != 0 {
		if dev = h.s.NICByID(seg.Dev); dev == nil {
			return syscall.ENODEV
		}
	}
	if seg.IPOpts != nil {
		return h.outputOpts(seg, dev)
	}
	return h.s.writePacket(&OutPacket{Src: seg.Local.Addr(), Dst: seg.Remote.Addr(), Proto: wire.ProtoTCP,
		TTL: seg.TTL, HopZero: seg.HopZero, TOS: seg.TOS, DF: true, Parts: [3][]byte{nil, seg.Payload[0], seg.Payload[1]}, GSOSize: seg.GSOSize, Ext6: tcpExt6(seg), Mark: seg.Mark,
		Iface: dev, Oif: dev, BoundDev: dev != nil}, &seg.Header)
}

// outputOpts is Output for a segment with IP_OPTIONS (tcp/ipopts.go),
// as Linux's ip_queue_xmit with inet_opt: the options built for this
// segment (Record Route and Timestamp get its source address and the
// time), a source route sent to its first hop with the final
// destination in its last slot and in TCP's pseudo-header.
func (h tcpHost) outputOpts(seg *tcp.Segment, dev *NIC) error {
	o, ok := seg.IPOpts.(*SendIPOpts)
	if !ok {
		return syscall.EINVAL
	}
	src, dst := seg.Local.Addr().Unmap(), seg.Remote.Addr().Unmap()
	ob := getBuf(wire.IPv4MaxOptionsLen)
	defer putBuf(ob)
	p := OutPacket{Src: src, Dst: dst, Proto: wire.ProtoTCP, TTL: seg.TTL, HopZero: seg.HopZero, TOS: seg.TOS, DF: true,
		Parts: [3][]byte{nil, seg.Payload[0], seg.Payload[1]}, GSOSize: seg.GSOSize, Mark: seg.Mark,
		Options: o.build(ob, src, dst, h.s.clock.Now()), Iface: dev, Oif: dev, BoundDev: dev != nil}
	if hop, ok := o.FirstHop(); ok {
		p.Dst, p.PseudoDst, p.GSOSize = hop, dst, 0
	}
	return h.s.writePacket(&p, &seg.Header)
}

// tcpInErr counts a TCP segment the IP layer could not parse (bad
// checksum, bad offset) in TCP's own InErrs too, where Linux counts it.
func (s *Stack) tcpInErr(error) { s.TCP.CountInErr() }
