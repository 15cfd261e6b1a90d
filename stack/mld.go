package stack

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// MLDv2 (RFC 3810), the IPv6 peer of IGMP in multicast.go: a report when
// a group is joined or left, and reports in answer to queries after a
// random delay, on the timers IGMP uses. Link-local all-nodes is never
// reported (RFC 3810 6).

// routerAlertHBH is a hop-by-hop header with the MLD Router Alert
// (RFC 2711 value 0) and PadN to 8 bytes.
var routerAlertHBH = [8]byte{wire.ProtoICMPv6, 0, wire.IPv6OptRouterAlert, 2, 0, 0, wire.IPv6OptPadN, 0}

// receiveMLDQuery schedules reports for the queried groups: an MLDv2
// query is answered by an MLDv2 current-state report (ssm.go) unless an
// MLDv1 querier is present; an MLDv1 query (24 octets) switches to MLDv1
// (RFC 3810 8.2.1) and is answered by MLDv1 reports. A query must come
// from a link-local source with hop limit 1 and Router Alert
// (RFC 3810 5.1.14), the Router Alert of MLD (value 0, RFC 2711) as
// Linux's __mld_query_work asks.
func (s *Stack) receiveMLDQuery(n *NIC, h wire.IPv6, m wire.ICMPv6, routerAlert bool) {
	q, err := wire.ParseMLDQuery(m)
	if err != nil || !h.Src().IsLinkLocalUnicast() || h.HopLimit() != 1 || !routerAlert || !routerAlertMLD(h) || n.loopback {
		s.stats.ICMP6.InNDBad.Add(1)
		s.stats.IGMP.MLDBadQueries.Add(1)
		return
	}
	group := q.Group()
	if !group.IsUnspecified() && !group.IsMulticast() {
		s.stats.IGMP.MLDBadQueries.Add(1)
		return
	}
	maxResp := q.MaxResponse()
	if !q.IsV2() {
		n.enterOlderMode(true, 1, maxResp)
	} else if n.MLDVersion() == 1 {
		// An MLDv1 host reads the code as milliseconds (RFC 2710 3.4),
		// and Linux caps an MLDv2 query's at 32767 (mld_process_v1's
		// MLDV1_MRD_MAX_COMPAT) rather than decode its float form.
		maxResp = min(time.Duration(binary.BigEndian.Uint16(m[4:6])), 32767) * time.Millisecond
	}
	if n.MLDVersion() == 2 {
		var srcs []netip.Addr
		if q.IsV2() {
			if group.IsUnspecified() && q.NumSources() > 0 {
				s.stats.IGMP.MLDBadQueries.Add(1)
				return
			}
			srcs = make([]netip.Addr, q.NumSources())
			for i := range srcs {
				srcs[i] = q.Source(i)
			}
		}
		qrv := 0
		if q.IsV2() {
			qrv = q.QRV()
		}
		s.stats.IGMP.MLDv2Queries.Add(1)
		if group.IsUnspecified() {
			group = netip.IPv6Unspecified()
		}
		n.queryV3(group, srcs, maxResp, qrv)
		return
	}
	now := s.clock.Now()
	for _, g := range n.Groups() {
		if !g.Is6() || g == wire.IPv6AllNodes || !group.IsUnspecified() && g != group {
			continue
		}
		n.scheduleReport(g, maxResp, now, &s.stats.IGMP.ReportTimersShortened)
	}
}

// routerAlertMLD reports whether h's hop-by-hop header carries the
// Router Alert option with the value of MLD (0, RFC 2711 2.1); another
// value (RSVP, Active Networks) is not an MLD message's.
func routerAlertMLD(h wire.IPv6) bool {
	if len(h) < wire.IPv6HeaderLen+8 || h[6] != wire.ProtoHopByHop {
		return false
	}
	end := wire.IPv6HeaderLen + (int(h[41])+1)*8
	if end > len(h) {
		return false
	}
	for i := wire.IPv6HeaderLen + 2; i < end; {
		if h[i] == 0 { // Pad1
			i++
			continue
		}
		if i+2 > end {
			return false
		}
		l := int(h[i+1])
		if h[i] == wire.IPv6OptRouterAlert && l == 2 && i+4 <= end {
			return h[i+2] == 0 && h[i+3] == 0
		}
		i += 2 + l
	}
	return false
}
