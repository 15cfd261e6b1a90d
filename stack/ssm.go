package stack

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Source-specific multicast: per-socket source filters (RFC 3678
// options), the interface state merged from them (RFC 3376 3.2, RFC 3810
// 4.2), and IGMPv3 / MLDv2 state-change and current-state reports with
// fallback to IGMPv1/v2 and MLDv1 when an older querier is heard.

// Filter modes, as the socket API numbers them (MCAST_INCLUDE/EXCLUDE).
const (
	ModeInclude = 1
	ModeExclude = 0
)

const (
	defaultQRV = 2
	// unsolicitedV3 is RFC 3376 / RFC 3810's Unsolicited Report Interval.
	unsolicitedV3 = time.Second
	// olderQuerierQI is the default Query Interval of the older querier
	// present timeout (RV * QI + QRI, RFC 3376 8.12, RFC 3810 9.12).
	olderQuerierQI = 125 * time.Second
)

// sockFilter is one socket's filter for a group on a NIC. hasList says
// a source list was set (even if emptied since): Linux then refuses the
// other mode's source calls (EINVAL) instead of switching.
type sockFilter struct {
	mode    int
	srcs    []netip.Addr
	hasList bool
}

func (f *sockFilter) admits(src netip.Addr) bool {
	in := slices.Contains(f.srcs, src)
	if f.mode == ModeInclude {
		return in
	}
	return !in
}

// ifGroup is a NIC's state for one group: the sockets' filters, the
// merged interface state, and the state-change retransmissions due.
type ifGroup struct {
	filters     map[*DgramEndpoint]sockFilter
	kernelRefs  int // the stack's own joins (solicited-node groups): EXCLUDE of nothing
	mode        int
	srcs        []netip.Addr
	modeRetrans int
	allow       map[netip.Addr]int
	block       map[netip.Addr]int
}

// merge computes the interface state (RFC 3376 3.2): EXCLUDE of the
// intersection of the exclude lists minus the include lists if any
// socket excludes, else INCLUDE of the union of the include lists.
func (g *ifGroup) merge() (int, []netip.Addr) {
	excl := g.kernelRefs > 0
	var ex []netip.Addr
	var in []netip.Addr
	for _, f := range g.filters {
		if f.mode == ModeExclude {
			if !excl {
				ex = slices.Clone(f.srcs)
				excl = true
			} else {
				ex = slices.DeleteFunc(ex, func(a netip.Addr) bool { return !slices.Contains(f.srcs, a) })
			}
			continue
		}
		for _, s := range f.srcs {
			if !slices.Contains(in, s) {
				in = append(in, s)
			}
		}
	}
	if excl {
		ex = slices.DeleteFunc(ex, func(a netip.Addr) bool { return slices.Contains(in, a) })
		slices.SortFunc(ex, netip.Addr.Compare)
		return ModeExclude, ex
	}
	slices.SortFunc(in, netip.Addr.Compare)
	return ModeInclude, in
}

func (g *ifGroup) member() bool { return g.mode == ModeExclude || len(g.srcs) > 0 }

func (g *ifGroup) users() int { return len(g.filters) + g.kernelRefs }

func (g *ifGroup) pending() bool { return g.modeRetrans > 0 || len(g.allow) > 0 || len(g.block) > 0 }

// mcState is a NIC's source-specific multicast state, guarded by igmpMu.
type mcState struct {
	groups map[netip.Addr]*ifGroup
	// Older-version querier present until (RFC 3376 7.2.1, RFC 3810 8.2.1).
	igmpV1Until, igmpV2Until, mldV1Until time.Time
	qrv4, qrv6                           int
	// State-change retransmission timers, one per family.
	ifc4, ifc6 clock.Timer
}

// IGMPVersion is the IGMP version the NIC speaks now (1, 2 or 3).
func (n *NIC) IGMPVersion() int {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	return n.igmpVersionLocked(n.stack.clock.Now())
}

func (n *NIC) igmpVersionLocked(now time.Time) int {
	switch f := n.stack.opts.ForceIGMPVersion; {
	case f >= 1 && f <= 3:
		return f
	case now.Before(n.mc.igmpV1Until):
		return 1
	case now.Before(n.mc.igmpV2Until):
		return 2
	}
	return 3
}

// MLDVersion is the MLD version the NIC speaks now (1 or 2).
func (n *NIC) MLDVersion() int {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	return n.mldVersionLocked(n.stack.clock.Now())
}

func (n *NIC) mldVersionLocked(now time.Time) int {
	switch f := n.stack.opts.ForceMLDVersion; {
	case f == 1 || f == 2:
		return f
	case now.Before(n.mc.mldV1Until):
		return 1
	}
	return 2
}

func (n *NIC) qrvLocked(v6 bool) int {
	q := n.mc.qrv4
	if v6 {
		q = n.mc.qrv6
	}
	if q == 0 {
		return defaultQRV
	}
	return q
}

// setFilter adds or replaces e's filter for g (the socket joined or
// changed its sources) and reports the interface's state change.
func (n *NIC) setFilter(e *DgramEndpoint, g netip.Addr, f sockFilter) {
	f.srcs = slices.Clone(f.srcs)
	n.igmpMu.Lock()
	ig := n.mcGroupLocked(g)
	had := false
	if e == nil {
		ig.kernelRefs++
	} else {
		_, had = ig.filters[e]
		ig.filters[e] = f
	}
	n.igmpMu.Unlock()
	if !had {
		n.amu.Lock()
		n.groups[g]++
		n.amu.Unlock()
	}
	n.stateChanged(g)
}

func (n *NIC) mcGroupLocked(g netip.Addr) *ifGroup {
	if n.mc.groups == nil {
		n.mc.groups = map[netip.Addr]*ifGroup{}
	}
	ig := n.mc.groups[g]
	if ig == nil {
		ig = &ifGroup{filters: map[*DgramEndpoint]sockFilter{}, mode: ModeInclude}
		n.mc.groups[g] = ig
	}
	return ig
}

// dropFilter removes e's filter for g (the socket left the group).
func (n *NIC) dropFilter(e *DgramEndpoint, g netip.Addr) {
	n.igmpMu.Lock()
	ig := n.mc.groups[g]
	had := false
	switch {
	case ig == nil:
	case e == nil:
		had = ig.kernelRefs > 0
		if had {
			ig.kernelRefs--
		}
	default:
		_, had = ig.filters[e]
		delete(ig.filters, e)
	}
	n.igmpMu.Unlock()
	if !had {
		return
	}
	n.amu.Lock()
	n.groups[g]--
	if n.groups[g] <= 0 {
		delete(n.groups, g)
	}
	n.amu.Unlock()
	n.stateChanged(g)
}

// admits reports whether the interface state for g lets a datagram from
// src in (Linux's ip_check_mc_rcu / ipv6_chk_mcast_addr source check).
func (n *NIC) admits(g, src netip.Addr) bool {
	if g == allHosts || g == wire.IPv6AllNodes {
		return true
	}
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	ig := n.mc.groups[g]
	if ig == nil || !ig.member() {
		return false
	}
	in := slices.Contains(ig.srcs, src)
	return in == (ig.mode == ModeInclude) || !src.IsValid()
}

// InterfaceFilter is the merged state of group g on the NIC.
func (n *NIC) InterfaceFilter(g netip.Addr) (mode int, srcs []netip.Addr, ok bool) {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	ig := n.mc.groups[g]
	if ig == nil || ig.users() == 0 {
		return ModeInclude, nil, false
	}
	return ig.mode, slices.Clone(ig.srcs), true
}

// stateChanged recomputes g's interface state and reports the change:
// IGMPv3/MLDv2 records (RFC 3376 5.1, RFC 3810 6.1) sent now and
// retransmitted QRV-1 more times; in compatibility mode a v1/v2 report
// or leave when membership starts or ends.
func (n *NIC) stateChanged(g netip.Addr) {
	v6 := g.Is6()
	now := n.stack.clock.Now()
	n.igmpMu.Lock()
	ig := n.mc.groups[g]
	if ig == nil {
		n.igmpMu.Unlock()
		return
	}
	oldMode, oldSrcs, oldMember := ig.mode, ig.srcs, ig.member()
	ig.mode, ig.srcs = ig.merge()
	newMember := ig.member()
	old := v6 && n.mldVersionLocked(now) == 1 || !v6 && n.igmpVersionLocked(now) < 3
	if old || n.loopback || g == wire.IPv6AllNodes {
		ig.modeRetrans, ig.allow, ig.block = 0, nil, nil
		if ig.users() == 0 {
			delete(n.mc.groups, g)
		}
		n.igmpMu.Unlock()
		if !old || n.loopback {
			return
		}
		switch {
		case !oldMember && newMember:
			n.sendOldReport(g)
		case oldMember && !newMember:
			n.cancelReport(g)
			n.sendOldLeave(g)
		}
		return
	}
	qrv := n.qrvLocked(v6)
	if oldMode != ig.mode {
		ig.modeRetrans = qrv
		ig.allow, ig.block = nil, nil
	} else {
		added := diff(ig.srcs, oldSrcs)
		removed := diff(oldSrcs, ig.srcs)
		if ig.mode == ModeExclude {
			added, removed = removed, added // leaving the exclude list allows
		}
		for _, s := range added {
			ig.allow = setCount(ig.allow, s, qrv)
			delete(ig.block, s)
		}
		for _, s := range removed {
			ig.block = setCount(ig.block, s, qrv)
			delete(ig.allow, s)
		}
	}
	if !oldMember && !newMember && !ig.pending() && ig.users() == 0 {
		delete(n.mc.groups, g)
	}
	n.igmpMu.Unlock()
	n.sendChanges(v6)
}

func setCount(m map[netip.Addr]int, a netip.Addr, c int) map[netip.Addr]int {
	if m == nil {
		m = map[netip.Addr]int{}
	}
	m[a] = c
	return m
}

// diff is a minus b.
func diff(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys(m map[netip.Addr]int) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// sendChanges sends one report of every pending state-change record of
// the family, in group order, each group's records in Linux's order
// (INCLUDE: ALLOW then BLOCK; EXCLUDE: BLOCK then ALLOW; then TO_IN or
// TO_EX), and arms the retransmission timer while any remain.
func (n *NIC) sendChanges(v6 bool) {
	n.igmpMu.Lock()
	var recs []wire.GroupRecord
	gs := make([]netip.Addr, 0, len(n.mc.groups))
	for g := range n.mc.groups {
		if g.Is6() == v6 {
			gs = append(gs, g)
		}
	}
	slices.SortFunc(gs, netip.Addr.Compare)
	more := false
	for _, g := range gs {
		ig := n.mc.groups[g]
		if !ig.pending() {
			continue
		}
		allow := wire.GroupRecord{Type: wire.IGMPAllowNew, Group: g, Srcs: sortedKeys(ig.allow)}
		block := wire.GroupRecord{Type: wire.IGMPBlockOld, Group: g, Srcs: sortedKeys(ig.block)}
		first, second := allow, block
		if ig.mode == ModeExclude {
			first, second = block, allow
		}
		for _, r := range []wire.GroupRecord{first, second} {
			if len(r.Srcs) > 0 {
				recs = append(recs, r)
			}
		}
		if ig.modeRetrans > 0 {
			t := uint8(wire.IGMPChangeToInclude)
			if ig.mode == ModeExclude {
				t = wire.IGMPChangeToExclude
			}
			recs = append(recs, wire.GroupRecord{Type: t, Group: g, Srcs: slices.Clone(ig.srcs)})
			ig.modeRetrans--
		}
		for _, m := range []map[netip.Addr]int{ig.allow, ig.block} {
			for a := range m {
				if m[a]--; m[a] <= 0 {
					delete(m, a)
				}
			}
		}
		if ig.pending() {
			more = true
		} else if ig.users() == 0 {
			delete(n.mc.groups, g)
		}
	}
	if more {
		d := time.Duration(n.stack.mcRandN(int64(unsolicitedV3)) + 1)
		tp := &n.mc.ifc4
		if v6 {
			tp = &n.mc.ifc6
		}
		if *tp != nil {
			(*tp).Stop()
		}
		*tp = n.stack.clock.AfterFunc(d, func() { n.sendChanges(v6) })
	}
	n.igmpMu.Unlock()
	if len(recs) > 0 {
		n.sendRecords(v6, recs)
	}
}

// sendRecords sends records as IGMPv3 reports to 224.0.0.22 or MLDv2
// reports to ff02::16, split so that each fits the MTU.
func (n *NIC) sendRecords(v6 bool, recs []wire.GroupRecord) {
	if n.loopback || v6 && !n.ethernet {
		return
	}
	limit := n.mtu - 24 - 8 // IPv4 header with Router Alert, report header
	if v6 {
		limit = n.mtu - 40 - 8 - 8
	}
	st := &n.stack.stats.IGMP
	for len(recs) > 0 {
		size, k := 0, 0
		for k < len(recs) {
			l := wire.IGMPv3RecordLen(recs[k])
			if v6 {
				l = wire.MLDv2RecordLen(recs[k])
			}
			if size+l > limit && k > 0 {
				break
			}
			size += l
			k++
		}
		if size > limit {
			// One record too large for the link: cut its sources
			// (counted; the 10 / 64 per-socket limits keep it rare).
			r := &recs[0]
			per := 4
			if v6 {
				per = 16
			}
			r.Srcs = r.Srcs[:max(0, (limit-8-16)/per)]
			st.RecordsTruncated.Add(1)
			size = limit
		}
		b := getBuf(8 + size + 64)
		if v6 {
			l := wire.PutMLDv2Records(b, recs[:k])
			src := n.selectSource6(wire.IPv6AllMLDv2)
			if !src.IsValid() || !src.IsLinkLocalUnicast() {
				src = netip.IPv6Unspecified()
			}
			hbh := routerAlertHBH
			n.sendICMPv6Raw(src, wire.IPv6AllMLDv2, 1, hbh[:], b[:l])
			n.stack.stats.ICMP6.OutMLDReports.Add(1)
		} else {
			l := wire.PutIGMPv3Report(b, recs[:k])
			b[2], b[3] = 0, 0 // writeIGMP checksums
			_ = n.stack.writeIGMP(n, allV3Routers, b[:l])
			st.OutV3Reports.Add(1)
		}
		putBuf(b)
		recs = recs[k:]
	}
}

var allV3Routers = netip.AddrFrom4([4]byte{224, 0, 0, 22})

// sendOldReport sends an IGMPv1/v2 or MLDv1 report for g.
func (n *NIC) sendOldReport(g netip.Addr) {
	if g.Is6() {
		n.sendMLDv1(wire.ICMPv6MLDReport, g, g)
		return
	}
	typ := uint8(igmpReportV2)
	if n.IGMPVersion() == 1 {
		typ = igmpReportV1
	}
	n.sendIGMP(typ, g, g)
}

// sendOldLeave sends an IGMPv2 leave or MLDv1 done (IGMPv1 has none).
func (n *NIC) sendOldLeave(g netip.Addr) {
	if g.Is6() {
		n.sendMLDv1(wire.ICMPv6MLDDone, g, wire.IPv6AllRouters)
		return
	}
	if n.IGMPVersion() == 2 {
		n.sendIGMP(igmpLeave, g, allRouters)
	}
}

// sendMLDv1 sends an MLDv1 report or done (RFC 2710 3).
func (n *NIC) sendMLDv1(typ uint8, g, dst netip.Addr) {
	if g == wire.IPv6AllNodes || !n.ethernet {
		return
	}
	var b [wire.MLDv1Len]byte
	b[0] = typ
	a := g.As16()
	copy(b[8:], a[:])
	src := n.selectSource6(dst)
	if !src.IsValid() || !src.IsLinkLocalUnicast() {
		src = netip.IPv6Unspecified()
	}
	hbh := routerAlertHBH
	n.sendICMPv6Raw(src, dst, 1, hbh[:], b[:])
	n.stack.stats.ICMP6.OutMLDReports.Add(1)
}

// currentState builds the current-state record answering a query for g
// (all: a group query; else a group-and-source query for qsrcs), RFC
// 3376 5.2 / RFC 3810 6.3; ok false when there is nothing to report.
func (n *NIC) currentStateLocked(g netip.Addr, all bool, qsrcs []netip.Addr) (wire.GroupRecord, bool) {
	ig := n.mc.groups[g]
	if ig == nil || !ig.member() {
		return wire.GroupRecord{}, false
	}
	if all {
		t := uint8(wire.IGMPModeIsInclude)
		if ig.mode == ModeExclude {
			t = wire.IGMPModeIsExclude
		}
		return wire.GroupRecord{Type: t, Group: g, Srcs: slices.Clone(ig.srcs)}, true
	}
	var srcs []netip.Addr
	for _, s := range qsrcs {
		if slices.Contains(ig.srcs, s) == (ig.mode == ModeInclude) {
			srcs = append(srcs, s)
		}
	}
	if len(srcs) == 0 {
		return wire.GroupRecord{}, false
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	return wire.GroupRecord{Type: wire.IGMPModeIsInclude, Group: g, Srcs: srcs}, true
}

// queryV3 schedules the answer to an IGMPv3 or MLDv2 query: the general
// response on the interface timer (the family's unspecified address),
// a group's on its own, with group-and-source queries' sources merged
// (RFC 3376 5.2 rules 1-5).
func (n *NIC) queryV3(group netip.Addr, qsrcs []netip.Addr, maxResp time.Duration, qrv int) {
	now := n.stack.clock.Now()
	n.igmpMu.Lock()
	if qrv > 0 {
		if group.Is6() || group == netip.IPv6Unspecified() {
			n.mc.qrv6 = qrv
		} else {
			n.mc.qrv4 = qrv
		}
	}
	if !group.IsUnspecified() {
		if ig := n.mc.groups[group]; ig == nil || !ig.member() {
			n.igmpMu.Unlock()
			return
		}
	}
	gen := netip.IPv4Unspecified()
	if group.Is6() {
		gen = netip.IPv6Unspecified()
	}
	if rt := n.igmpTimers[gen]; rt != nil && rt.v3 && !rt.due.After(now.Add(maxResp)) {
		n.igmpMu.Unlock()
		return // rule 1: a general response comes sooner
	}
	n.igmpMu.Unlock()
	n.scheduleReport(group, maxResp, now, &n.stack.stats.IGMP.ReportTimersShortened)
	n.igmpMu.Lock()
	if rt := n.igmpTimers[group]; rt != nil {
		first := !rt.v3
		rt.v3 = true
		switch {
		case group.IsUnspecified() || len(qsrcs) == 0:
			rt.all, rt.srcs = true, nil
		case first:
			rt.srcs = slices.Clone(qsrcs)
		case !rt.all:
			for _, s := range qsrcs {
				if !slices.Contains(rt.srcs, s) {
					rt.srcs = append(rt.srcs, s)
				}
			}
		}
	}
	n.igmpMu.Unlock()
}

// reportV3Due sends a v3 current-state report: every group of the
// family for the interface timer, else group g's record.
func (n *NIC) reportV3Due(g netip.Addr, rt *reportTimer) {
	v6 := g.Is6()
	n.igmpMu.Lock()
	var recs []wire.GroupRecord
	if g.IsUnspecified() {
		var gs []netip.Addr
		for a := range n.mc.groups {
			if a.Is6() == v6 && a != wire.IPv6AllNodes {
				gs = append(gs, a)
			}
		}
		slices.SortFunc(gs, netip.Addr.Compare)
		for _, a := range gs {
			if r, ok := n.currentStateLocked(a, true, nil); ok {
				recs = append(recs, r)
			}
		}
	} else if r, ok := n.currentStateLocked(g, rt.all, rt.srcs); ok {
		recs = append(recs, r)
	}
	n.igmpMu.Unlock()
	if len(recs) > 0 {
		n.sendRecords(v6, recs)
	}
}

// enterOlderMode is a v1/v2 IGMP or v1 MLD query heard: the NIC speaks
// the older version until the querier present timeout runs out, and
// pending v3 work is dropped (RFC 3376 7.2.1, RFC 3810 8.2.1).
func (n *NIC) enterOlderMode(v6 bool, version int, maxResp time.Duration) {
	now := n.stack.clock.Now()
	until := now.Add(defaultQRV*olderQuerierQI + maxResp)
	n.igmpMu.Lock()
	switch {
	case v6:
		if n.stack.opts.ForceMLDVersion != 0 {
			n.igmpMu.Unlock()
			return
		}
		if !now.Before(n.mc.mldV1Until) {
			n.stack.stats.IGMP.MLDv1Compat.Add(1)
		}
		n.mc.mldV1Until = until
	case n.stack.opts.ForceIGMPVersion != 0:
		n.igmpMu.Unlock()
		return
	case version == 1:
		if !now.Before(n.mc.igmpV1Until) {
			n.stack.stats.IGMP.V1Compat.Add(1)
		}
		n.mc.igmpV1Until = until
	default:
		if !now.Before(n.mc.igmpV2Until) {
			n.stack.stats.IGMP.V2Compat.Add(1)
		}
		n.mc.igmpV2Until = until
	}
	tp := &n.mc.ifc4
	if v6 {
		tp = &n.mc.ifc6
	}
	if *tp != nil {
		(*tp).Stop()
	}
	for g, ig := range n.mc.groups {
		if g.Is6() != v6 {
			continue
		}
		ig.modeRetrans, ig.allow, ig.block = 0, nil, nil
		if ig.users() == 0 {
			delete(n.mc.groups, g)
		}
	}
	for g, rt := range n.igmpTimers {
		if g.Is6() == v6 && rt.v3 {
			rt.t.Stop()
			delete(n.igmpTimers, g)
		}
	}
	n.igmpMu.Unlock()
}

// Endpoint side: the socket calls of RFC 3678 with Linux's errors.

// findMembership returns e's membership index for (n, g), or -1; e.mu held.
func (e *DgramEndpoint) findMembership(n *NIC, g netip.Addr) int {
	for i, m := range e.groups {
		if m.nic == n && m.group == g {
			return i
		}
	}
	return -1
}

func (e *DgramEndpoint) maxMsf(g netip.Addr) int {
	if g.Is6() {
		return e.s.opts.MLDMaxMsf
	}
	return e.s.opts.IGMPMaxMsf
}

// JoinGroupOn is MCAST_JOIN_GROUP / IP_ADD_MEMBERSHIP on a resolved NIC:
// any-source (EXCLUDE of nothing).
func (e *DgramEndpoint) JoinGroupOn(n *NIC, g netip.Addr) error {
	if !g.IsMulticast() {
		return syscall.EINVAL
	}
	return e.addMembershipMode(n, g, ModeExclude)
}

// LeaveGroupOn is MCAST_LEAVE_GROUP: the membership goes, whatever its
// filter; EADDRNOTAVAIL if there is none.
func (e *DgramEndpoint) LeaveGroupOn(n *NIC, g netip.Addr) error {
	if !g.IsMulticast() {
		return syscall.EINVAL
	}
	e.mu.Lock()
	i := e.findMembership(n, g)
	if i < 0 {
		e.mu.Unlock()
		return syscall.EADDRNOTAVAIL
	}
	e.groups = append(e.groups[:i], e.groups[i+1:]...)
	e.mu.Unlock()
	n.dropFilter(e, g)
	return nil
}

// ChangeSource is ip_mc_source / ip6_mc_source: add or drop src in the
// filter of mode mode; join first joins g in INCLUDE mode when e has not
// (IP_ADD_SOURCE_MEMBERSHIP, MCAST_JOIN_SOURCE_GROUP).
func (e *DgramEndpoint) ChangeSource(n *NIC, g, src netip.Addr, mode int, add, join bool) error {
	if !g.IsMulticast() {
		return syscall.EINVAL
	}
	if join {
		if err := e.addMembershipMode(n, g, ModeInclude); err != nil && err != syscall.EADDRINUSE {
			return err
		}
	}
	e.mu.Lock()
	i := e.findMembership(n, g)
	if i < 0 {
		e.mu.Unlock()
		return syscall.EINVAL // a source call needs a prior join
	}
	m := &e.groups[i]
	if m.f.hasList && m.f.mode != mode {
		e.mu.Unlock()
		return syscall.EINVAL
	}
	changed := m.f.mode != mode
	m.f.mode = mode // an empty filter may switch mode
	has := slices.Contains(m.f.srcs, src)
	if !add {
		if !m.f.hasList || !has {
			f := m.f
			e.mu.Unlock()
			if changed {
				n.setFilter(e, g, f)
			}
			return syscall.EADDRNOTAVAIL
		}
		if len(m.f.srcs) == 1 && mode == ModeInclude {
			// INCLUDE of nothing is a leave.
			e.groups = append(e.groups[:i], e.groups[i+1:]...)
			e.mu.Unlock()
			n.dropFilter(e, g)
			return nil
		}
		m.f.srcs = slices.DeleteFunc(slices.Clone(m.f.srcs), func(a netip.Addr) bool { return a == src })
	} else {
		if len(m.f.srcs) >= e.maxMsf(g) {
			f := m.f
			e.mu.Unlock()
			e.s.stats.IGMP.SourceLimit.Add(1)
			if changed {
				n.setFilter(e, g, f)
			}
			return syscall.ENOBUFS
		}
		if has {
			f := m.f
			e.mu.Unlock()
			if changed {
				n.setFilter(e, g, f)
			}
			return syscall.EADDRNOTAVAIL
		}
		m.f.srcs = append(slices.Clone(m.f.srcs), src)
		m.f.hasList = true
	}
	f := m.f
	e.mu.Unlock()
	n.setFilter(e, g, f)
	return nil
}

// SetMsfilter is IP_MSFILTER / MCAST_MSFILTER set (ip_mc_msfilter):
// INCLUDE of nothing leaves; otherwise a prior join is needed (EINVAL).
func (e *DgramEndpoint) SetMsfilter(n *NIC, g netip.Addr, mode int, srcs []netip.Addr) error {
	if !g.IsMulticast() || mode != ModeInclude && mode != ModeExclude {
		return syscall.EINVAL
	}
	if len(srcs) > e.maxMsf(g) {
		e.s.stats.IGMP.SourceLimit.Add(1)
		return syscall.ENOBUFS
	}
	if mode == ModeInclude && len(srcs) == 0 {
		return e.LeaveGroupOn(n, g)
	}
	e.mu.Lock()
	i := e.findMembership(n, g)
	if i < 0 {
		e.mu.Unlock()
		return syscall.EINVAL
	}
	var list []netip.Addr
	for _, s := range srcs {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	e.groups[i].f = sockFilter{mode: mode, srcs: list, hasList: len(list) > 0}
	f := e.groups[i].f
	e.mu.Unlock()
	n.setFilter(e, g, f)
	return nil
}

// Msfilter is IP_MSFILTER / MCAST_MSFILTER get: e's filter for g on n
// (EADDRNOTAVAIL when e has not joined it).
func (e *DgramEndpoint) Msfilter(n *NIC, g netip.Addr) (int, []netip.Addr, error) {
	if !g.IsMulticast() {
		return 0, nil, syscall.EINVAL
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.findMembership(n, g)
	if i < 0 {
		return 0, nil, syscall.EADDRNOTAVAIL
	}
	return e.groups[i].f.mode, slices.Clone(e.groups[i].f.srcs), nil
}

// SetMulticastAll is IP_MULTICAST_ALL / IPV6_MULTICAST_ALL: off, the
// socket gets only the groups it joined itself.
func (e *DgramEndpoint) SetMulticastAll(on bool) {
	e.mu.Lock()
	e.opts.mcAllOff = !on
	e.mu.Unlock()
}

// MulticastAll reports IP_MULTICAST_ALL.
func (e *DgramEndpoint) MulticastAll() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.opts.mcAllOff
}

// SetMulticastAll4 is IP_MULTICAST_ALL on an AF_INET6 socket: it rules
// the IPv4 groups the socket gets, and is off by default (Linux's
// inet6_create leaves inet->mc_all 0).
func (e *DgramEndpoint) SetMulticastAll4(on bool) {
	e.mu.Lock()
	e.opts.mcAll4 = on
	e.mu.Unlock()
}

// MulticastAll4 reports SetMulticastAll4's flag.
func (e *DgramEndpoint) MulticastAll4() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.mcAll4
}

// mcAllowsLocked is ip_mc_sf_allow / inet6_mc_check: whether a datagram
// to group dst from src, in on NIC dif, passes e's filter; e.mu held.
func (e *DgramEndpoint) mcAllowsLocked(dst, src netip.Addr, dif int32) bool {
	// A looped-back copy comes in on lo: any NIC's membership matches.
	lo := e.s.lo != nil && dif == int32(e.s.lo.id)
	for _, m := range e.groups {
		if m.group == dst && (int32(m.nic.id) == dif || lo) {
			return m.f.admits(src)
		}
	}
	if e.opts.inet6 && dst.Is4() {
		return e.opts.mcAll4
	}
	return !e.opts.mcAllOff
}

// NICByIndex resolves an interface index for the socket layer's group
// calls: nil for 0 (the route decides), ENODEV for an unknown one.
func (s *Stack) NICByIndex(idx int) (*NIC, error) {
	if idx == 0 {
		return nil, nil
	}
	for _, n := range s.NICs() {
		if n.id == idx {
			return n, nil
		}
	}
	return nil, syscall.ENODEV
}

// GroupNIC resolves the NIC of a group call: ifindex first, then the
// interface address, then the route to g (ip_mc_find_dev).
func (s *Stack) GroupNIC(g netip.Addr, ifindex int, ifAddr netip.Addr) (*NIC, error) {
	if ifindex != 0 {
		return s.NICByIndex(ifindex)
	}
	if g.Is6() {
		if r, err := s.findRoute6(g.WithZone("")); err == nil {
			return r.NIC, nil
		}
		return nil, syscall.ENODEV
	}
	return s.groupNIC(g, ifAddr)
}

// newMcRand makes the stack's report-delay generator: from seed when
// given (package sim), else from the system's randomness.
func newMcRand(seed []byte) *rand.Rand {
	var k [32]byte
	if seed != nil {
		k = sha256.Sum256(append(append([]byte(nil), seed...), "igmp"...))
	} else {
		crand.Read(k[:])
	}
	return rand.New(rand.NewPCG(binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:16])))
}

// mcRandN is a random number in [0, n).
func (s *Stack) mcRandN(n int64) int64 {
	s.mcRandMu.Lock()
	defer s.mcRandMu.Unlock()
	return s.mcRand.Int64N(n)
}
