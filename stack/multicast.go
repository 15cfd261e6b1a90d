package stack

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// IGMPv2 (RFC 2236): membership reports on join, leave messages when the
// last member leaves, and reports in answer to queries.

const (
	igmpQuery    = 0x11
	igmpReportV1 = 0x12
	igmpReportV2 = 0x16
	igmpLeave    = 0x17
)

var allRouters = netip.AddrFrom4([4]byte{224, 0, 0, 2})

type membership struct {
	nic   *NIC
	group netip.Addr
	f     sockFilter // this socket's source filter (ssm.go)
}

// isMember reports whether the host joined g on this NIC (224.0.0.1 always).
func (n *NIC) isMember(g netip.Addr) bool {
	if g == allHosts || g == wire.IPv6AllNodes {
		return true
	}
	n.amu.RLock()
	defer n.amu.RUnlock()
	return n.groups[g] > 0
}

// join is the stack's own any-source join of g (solicited-node groups).
func (n *NIC) join(g netip.Addr) { n.setFilter(nil, g, sockFilter{mode: ModeExclude}) }

// leave drops one of the stack's own joins.
func (n *NIC) leave(g netip.Addr) { n.dropFilter(nil, g) }

// Groups lists the joined groups.
func (n *NIC) Groups() []netip.Addr {
	n.amu.RLock()
	defer n.amu.RUnlock()
	var out []netip.Addr
	for g := range n.groups {
		out = append(out, g)
	}
	return out
}

func (n *NIC) sendIGMP(typ uint8, group, dst netip.Addr) {
	if typ == igmpLeave {
		n.stack.stats.IGMP.OutLeaves.Add(1)
	} else {
		n.stack.stats.IGMP.OutReports.Add(1)
	}
	var m [8]byte
	m[0] = typ
	g := group.As4()
	copy(m[4:], g[:])
	// Router Alert (RFC 2113), as RFC 2236 asks.
	_ = n.stack.writeIGMP(n, dst, m[:])
}

func (s *Stack) writeIGMP(n *NIC, dst netip.Addr, msg []byte) error {
	src := n.primaryAddr(dst)
	if !src.IsValid() {
		src = netip.IPv4Unspecified()
	}
	c := wire.Checksum(msg)
	msg[2], msg[3] = byte(c>>8), byte(c)
	hdr := wire.IPv4Header{TotalLen: 24 + len(msg), ID: s.nextID(), TTL: 1, Protocol: wire.ProtoIGMP,
		Src: src, Dst: dst, Options: []byte{0x94, 0x04, 0, 0}, TOS: 0xc0}
	buf := getBuf(wire.EthernetHeaderLen + hdr.TotalLen)
	defer putBuf(buf)
	hl := hdr.Put(buf[wire.EthernetHeaderLen:])
	copy(buf[wire.EthernetHeaderLen+hl:], msg)
	s.stats.IP.OutRequests.Add(1)
	n.sendIP(dst, buf)
	return nil
}

// reportTimer is the delay before a group's report (RFC 2236 section 3).
type reportTimer struct {
	t   clock.Timer
	due time.Time
	// An IGMPv3/MLDv2 answer (ssm.go): the whole group's state (all) or
	// the queried sources' only.
	v3   bool
	all  bool
	srcs []netip.Addr
}

// receiveIGMP answers queries: an IGMPv3 query (12 octets or more)
// with a v3 current-state report unless an older querier is present
// (ssm.go), a v1 (max resp 0) or v2 query (8 octets) with v1/v2 reports
// after a random delay up to the query's maximum response time, after
// switching to that version's compatibility mode (RFC 3376 7.2.1). In
// that mode a v3 query is read as the older host reads it: in v2 mode
// its first eight octets only, in v1 mode as a general query with 10 s
// (Linux's igmp_heard_query). Other lengths are ignored (RFC 3376 7.1),
// counted. Per group one timer,
// started by a query and shortened only by a query asking for a quicker
// answer; in v1/v2 mode another host's report cancels ours (RFC 2236 3).
// A query flood therefore costs at most one timer per joined group.
func (s *Stack) receiveIGMP(n *NIC, h wire.IPv4) {
	p := h.Payload()
	st := &s.stats.IGMP
	if len(p) < 8 || wire.Checksum(p) != 0 {
		st.InErrors.Add(1)
		return
	}
	group := netip.AddrFrom4([4]byte(p[4:8]))
	switch p[0] {
	case igmpQuery:
	case igmpReportV1, igmpReportV2:
		st.InReports.Add(1)
		if n.IGMPVersion() < 3 && group.IsMulticast() && n.cancelReport(group) {
			st.ReportsSuppressed.Add(1)
		}
		return
	case wire.IGMPv3Report:
		// Another host's v3 report suppresses nothing (RFC 3376 5.2).
		if wire.ParseIGMPv3Report(p, nil) != nil {
			st.InBadV3Reports.Add(1)
			return
		}
		st.InV3Reports.Add(1)
		return
	default:
		st.InOther.Add(1)
		return
	}
	st.InQueries.Add(1)
	if n.loopback {
		return
	}
	if len(p) == 8 && p[1] == 0 {
		// An IGMPv1 query: RFC 1112's queries name no group, and Linux
		// answers any v1 query as a general one whatever the field says.
		group = netip.IPv4Unspecified()
	}
	if !group.IsUnspecified() && !group.IsMulticast() {
		st.InBadQueries.Add(1)
		return
	}
	now := s.clock.Now()
	var maxResp time.Duration
	switch {
	case len(p) == 8:
		maxResp = time.Duration(p[1]) * 100 * time.Millisecond
		v := 2
		if maxResp == 0 {
			maxResp, v = 10*time.Second, 1 // IGMPv1 query
		}
		n.enterOlderMode(false, v, maxResp)
		if n.IGMPVersion() == 3 {
			// Forced to v3: an old query is answered like a v3 one.
			n.queryV3(group, nil, maxResp, 0)
			return
		}
	case len(p) < wire.IGMPv3QueryMin:
		st.InBadQueries.Add(1) // 9 to 11 octets: no version (RFC 3376 7.1)
		return
	default:
		switch n.IGMPVersion() {
		case 3:
			q, err := wire.ParseIGMPv3Query(p)
			if err != nil {
				st.InBadQueries.Add(1)
				return
			}
			st.InV3Queries.Add(1)
			if group.IsUnspecified() && q.NumSources() > 0 {
				st.InBadQueries.Add(1) // a general query has no sources
				return
			}
			srcs := make([]netip.Addr, q.NumSources())
			for i := range srcs {
				srcs[i] = q.Source(i)
			}
			n.queryV3(group, srcs, q.MaxResponse(), q.QRV())
			return
		case 2:
			// An IGMPv2 host ignores the octets past the eighth (RFC
			// 2236 2.5), sources and their count too; the Max Resp Code
			// is still read as v3 encodes it, as Linux does.
			st.InV3Queries.Add(1)
			maxResp = wire.IGMPv3Query(p).MaxResponse()
		default:
			// An IGMPv1 host answers every query as a general one after
			// up to 10 s (RFC 1112; Linux's igmp_heard_query).
			st.InV3Queries.Add(1)
			group, maxResp = netip.IPv4Unspecified(), 10*time.Second
		}
	}
	for _, g := range n.Groups() {
		if g.Is6() || !group.IsUnspecified() && g != group {
			continue
		}
		n.scheduleReport(g, maxResp, now, &st.ReportTimersShortened)
	}
}

// scheduleReport starts (or shortens) group g's report timer: a random
// delay up to maxResp. IGMP and MLD share it (one timer map per NIC, the
// family is the group's).
func (n *NIC) scheduleReport(g netip.Addr, maxResp time.Duration, now time.Time, shortened *Counter) {
	d := time.Duration(n.stack.mcRandN(int64(maxResp) + 1))
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	if n.igmpTimers == nil {
		n.igmpTimers = map[netip.Addr]*reportTimer{}
	}
	if rt := n.igmpTimers[g]; rt != nil {
		if maxResp < rt.due.Sub(now) {
			rt.t.Reset(d)
			rt.due = now.Add(d)
			shortened.Add(1)
		}
		return
	}
	rt := &reportTimer{due: now.Add(d)}
	rt.t = n.stack.clock.AfterFunc(d, func() { n.reportDue(g, rt) })
	n.igmpTimers[g] = rt
}

// reportDue sends the report whose delay ran out.
func (n *NIC) reportDue(g netip.Addr, rt *reportTimer) {
	n.igmpMu.Lock()
	if n.igmpTimers[g] != rt {
		n.igmpMu.Unlock()
		return
	}
	delete(n.igmpTimers, g)
	n.igmpMu.Unlock()
	if rt.v3 {
		n.reportV3Due(g, rt)
		return
	}
	switch {
	case !n.isMember(g):
	default:
		n.sendOldReport(g)
	}
}

// cancelReport stops g's pending report; it reports whether one was pending.
func (n *NIC) cancelReport(g netip.Addr) bool {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	rt := n.igmpTimers[g]
	if rt == nil {
		return false
	}
	rt.t.Stop()
	delete(n.igmpTimers, g)
	return true
}

// stopReports cancels every pending report (the stack is closing).
func (n *NIC) stopReports() {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	for g, rt := range n.igmpTimers {
		rt.t.Stop()
		delete(n.igmpTimers, g)
	}
	// And the state-change retransmissions (ssm.go).
	for _, tp := range []*clock.Timer{&n.mc.ifc4, &n.mc.ifc6} {
		if *tp != nil {
			(*tp).Stop()
			*tp = nil
		}
	}
}

// PendingReports is the number of groups with a report timer running.
func (n *NIC) PendingReports() int {
	n.igmpMu.Lock()
	defer n.igmpMu.Unlock()
	return len(n.igmpTimers)
}

// JoinGroup is IP_ADD_MEMBERSHIP: group g on the NIC with address ifAddr
// (unspecified: the NIC the route to g uses).
func (e *DgramEndpoint) JoinGroup(g, ifAddr netip.Addr) error {
	if !g.Is4() || !g.IsMulticast() {
		return syscall.EINVAL
	}
	n, err := e.s.groupNIC(g, ifAddr)
	if err != nil {
		return err
	}
	return e.addMembership(n, g)
}

// addMembership records that e joined g on n (IPv4 or IPv6) and joins the
// NIC to it: EADDRINUSE if e already has, ENOBUFS past MaxMemberships.
func (e *DgramEndpoint) addMembership(n *NIC, g netip.Addr) error {
	return e.addMembershipMode(n, g, ModeExclude)
}

// addMembershipMode joins g with an empty filter of the given mode
// (EXCLUDE: any source; INCLUDE: none yet, sources to follow).
func (e *DgramEndpoint) addMembershipMode(n *NIC, g netip.Addr, mode int) error {
	e.mu.Lock()
	for _, m := range e.groups {
		if m.nic == n && m.group == g {
			e.mu.Unlock()
			return syscall.EADDRINUSE
		}
	}
	if len(e.groups) >= e.s.opts.MaxMemberships {
		// Linux's igmp_max_memberships: what one socket may join is
		// bounded, and so the NIC's group table.
		e.mu.Unlock()
		e.s.stats.IGMP.MembershipLimit.Add(1)
		return syscall.ENOBUFS
	}
	f := sockFilter{mode: mode}
	e.groups = append(e.groups, membership{n, g, f})
	e.mu.Unlock()
	n.setFilter(e, g, f)
	return nil
}

// LeaveGroup is IP_DROP_MEMBERSHIP.
func (e *DgramEndpoint) LeaveGroup(g, ifAddr netip.Addr) error {
	if !g.Is4() || !g.IsMulticast() {
		return syscall.EINVAL
	}
	n, err := e.s.groupNIC(g, ifAddr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	for i, m := range e.groups {
		if m.nic == n && m.group == g {
			e.groups = append(e.groups[:i], e.groups[i+1:]...)
			e.mu.Unlock()
			n.dropFilter(e, g)
			return nil
		}
	}
	e.mu.Unlock()
	return syscall.EADDRNOTAVAIL
}

func (e *DgramEndpoint) isMember(g netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.groups {
		if m.group == g {
			return true
		}
	}
	return false
}

func (s *Stack) groupNIC(g, ifAddr netip.Addr) (*NIC, error) {
	if ifAddr.IsValid() && !ifAddr.IsUnspecified() {
		n := s.ownerOf(ifAddr)
		if n == nil {
			return nil, syscall.ENODEV
		}
		return n, nil
	}
	if r, err := s.FindRoute(g); err == nil {
		return r.NIC, nil
	}
	for _, n := range s.NICs() {
		if !n.loopback && len(n.Addrs()) > 0 {
			return n, nil
		}
	}
	return nil, syscall.ENODEV
}
