package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// tcpHost is the stack seen from TCP.
type tcpHost struct{ s *Stack }

func (h tcpHost) Clock() clock.Clock { return h.s.clock }

func (h tcpHost) IsLocal(a netip.Addr) bool { return h.s.IsLocal(a) }

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
		if v6 && rt.GSOMax > 0 {
			// In the same IPv4-sized terms as the MTU above, so the
			// IPv6 packet TCP builds stays within what the link takes.
			rt.GSOMax -= wire.IPv6HeaderLen - wire.IPv4MinHeaderLen
		}
	}
	return rt, nil
}

// Output builds the TCP header and sends the segment with DF set (TCP
// does path MTU discovery, RFC 1191).
func (h tcpHost) Output(seg *tcp.Segment) error {
	seg.Header.SrcPort = seg.Local.Port()
	seg.Header.DstPort = seg.Remote.Port()
	if seg.IPOpts != nil {
		return h.outputOpts(seg)
	}
	return h.s.writePacket(&OutPacket{Src: seg.Local.Addr(), Dst: seg.Remote.Addr(), Proto: wire.ProtoTCP,
		TTL: seg.TTL, HopZero: seg.HopZero, TOS: seg.TOS, DF: true, Parts: [3][]byte{nil, seg.Payload[0], seg.Payload[1]}, GSOSize: seg.GSOSize, Ext6: tcpExt6(seg), Mark: seg.Mark}, &seg.Header)
}

// outputOpts is Output for a segment with IP_OPTIONS (tcp/ipopts.go),
// as Linux's ip_queue_xmit with inet_opt: the options built for this
// segment (Record Route and Timestamp get its source address and the
// time), a source route sent to its first hop with the final
// destination in its last slot and in TCP's pseudo-header.
func (h tcpHost) outputOpts(seg *tcp.Segment) error {
	o, ok := seg.IPOpts.(*SendIPOpts)
	if !ok {
		return syscall.EINVAL
	}
	src, dst := seg.Local.Addr().Unmap(), seg.Remote.Addr().Unmap()
	ob := getBuf(wire.IPv4MaxOptionsLen)
	defer putBuf(ob)
	p := OutPacket{Src: src, Dst: dst, Proto: wire.ProtoTCP, TTL: seg.TTL, HopZero: seg.HopZero, TOS: seg.TOS, DF: true,
		Parts: [3][]byte{nil, seg.Payload[0], seg.Payload[1]}, GSOSize: seg.GSOSize, Mark: seg.Mark,
		Options: o.build(ob, src, dst, h.s.clock.Now())}
	if hop, ok := o.FirstHop(); ok {
		p.Dst, p.PseudoDst, p.GSOSize = hop, dst, 0
	}
	return h.s.writePacket(&p, &seg.Header)
}

// tcpInErr counts a TCP segment the IP layer could not parse (bad
// checksum, bad offset) in TCP's own InErrs too, where Linux counts it.
func (s *Stack) tcpInErr(error) { s.TCP.CountInErr() }
