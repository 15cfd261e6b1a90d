package stack

import (
	"math/rand/v2"
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

// join adds one reference to group g; the first sends a report.
func (n *NIC) join(g netip.Addr) {
	n.amu.Lock()
	if n.groups == nil {
		n.groups = map[netip.Addr]int{}
	}
	n.groups[g]++
	first := n.groups[g] == 1
	n.amu.Unlock()
	switch {
	case !first || n.loopback:
	case g.Is6():
		n.sendMLD(wire.MLDChangeToExclude, g)
	default:
		n.sendIGMP(igmpReportV2, g, g)
	}
}

// leave drops one reference; the last sends a leave to all routers.
func (n *NIC) leave(g netip.Addr) {
	n.amu.Lock()
	n.groups[g]--
	last := n.groups[g] <= 0
	if last {
		delete(n.groups, g)
	}
	n.amu.Unlock()
	if last {
		n.cancelReport(g)
	}
	switch {
	case !last || n.loopback:
	case g.Is6():
		n.sendMLD(wire.MLDChangeToInclude, g)
	default:
		n.sendIGMP(igmpLeave, g, allRouters)
	}
}

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
}

// receiveIGMP answers queries with reports after a random delay up to
// the query's maximum response time: one timer per group, started by a
// query, shortened only by a query asking for a quicker answer than the
// time left, and cancelled when another host reports the group first
// (RFC 2236 section 3). A query flood therefore costs at most one timer
// per joined group.
func (s *Stack) receiveIGMP(n *NIC, h wire.IPv4) {
	p := h.Payload()
	if len(p) < 8 || wire.Checksum(p) != 0 {
		s.stats.IGMP.InErrors.Add(1)
		return
	}
	group := netip.AddrFrom4([4]byte(p[4:8]))
	switch p[0] {
	case igmpQuery:
	case igmpReportV1, igmpReportV2:
		s.stats.IGMP.InReports.Add(1)
		if group.IsMulticast() && n.cancelReport(group) {
			s.stats.IGMP.ReportsSuppressed.Add(1)
		}
		return
	default:
		s.stats.IGMP.InOther.Add(1)
		return
	}
	s.stats.IGMP.InQueries.Add(1)
	maxResp := time.Duration(p[1]) * 100 * time.Millisecond
	if maxResp == 0 {
		maxResp = 10 * time.Second // IGMPv1 query
	}
	now := s.clock.Now()
	for _, g := range n.Groups() {
		if g.Is6() || !group.IsUnspecified() && g != group {
			continue
		}
		n.scheduleReport(g, maxResp, now, &s.stats.IGMP.ReportTimersShortened)
	}
}

// scheduleReport starts (or shortens) group g's report timer: a random
// delay up to maxResp. IGMP and MLD share it (one timer map per NIC, the
// family is the group's).
func (n *NIC) scheduleReport(g netip.Addr, maxResp time.Duration, now time.Time, shortened *Counter) {
	d := time.Duration(rand.Int64N(int64(maxResp) + 1))
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
	switch {
	case !n.isMember(g):
	case g.Is6():
		n.sendMLD(wire.MLDModeIsExclude, g)
	default:
		n.sendIGMP(igmpReportV2, g, g)
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
	e.groups = append(e.groups, membership{n, g})
	e.mu.Unlock()
	n.join(g)
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
			n.leave(g)
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
