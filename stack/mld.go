package stack

import (
	"net/netip"

	"github.com/sockstack/sockstack/wire"
)

// MLDv2 (RFC 3810), the IPv6 peer of IGMP in multicast.go: a report when
// a group is joined or left, and reports in answer to queries after a
// random delay, on the timers IGMP uses. Link-local all-nodes is never
// reported (RFC 3810 6).

// routerAlertHBH is a hop-by-hop header with the MLD Router Alert
// (RFC 2711 value 0) and PadN to 8 bytes.
var routerAlertHBH = [8]byte{wire.ProtoICMPv6, 0, wire.IPv6OptRouterAlert, 2, 0, 0, wire.IPv6OptPadN, 0}

// sendMLD sends one MLDv2 report with one record for g.
func (n *NIC) sendMLD(recType uint8, g netip.Addr) {
	if g == wire.IPv6AllNodes || !n.ethernet {
		return
	}
	var b [8 + wire.MLDv2RecHdr]byte
	l := wire.PutMLDv2Report(b[:], []wire.MLDRecord{{Type: recType, Group: g}})
	// From the link-local address, or :: before there is one (RFC 3590).
	src := n.selectSource6(wire.IPv6AllMLDv2)
	if !src.IsValid() || !src.IsLinkLocalUnicast() {
		src = netip.IPv6Unspecified()
	}
	hbh := routerAlertHBH
	n.sendICMPv6Raw(src, wire.IPv6AllMLDv2, 1, hbh[:], b[:l])
	n.stack.stats.ICMP6.OutMLDReports.Add(1)
}

// receiveMLDQuery schedules reports for the queried groups. A query must
// come from a link-local source with hop limit 1 and Router Alert
// (RFC 3810 5.1.14).
func (s *Stack) receiveMLDQuery(n *NIC, h wire.IPv6, m wire.ICMPv6, routerAlert bool) {
	q, err := wire.ParseMLDQuery(m)
	if err != nil || !h.Src().IsLinkLocalUnicast() || h.HopLimit() != 1 || !routerAlert || n.loopback {
		s.stats.ICMP6.InNDBad.Add(1)
		return
	}
	group := q.Group()
	maxResp := q.MaxResponse()
	now := s.clock.Now()
	for _, g := range n.Groups() {
		if !g.Is6() || g == wire.IPv6AllNodes || !group.IsUnspecified() && g != group {
			continue
		}
		n.scheduleReport(g, maxResp, now, &s.stats.IGMP.ReportTimersShortened)
	}
}
