package stack

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"syscall"
)

// Policy routing, as Linux's FIB rules (ip rule, ip route table N): a
// list of rules in priority order, each with selectors (source and
// destination prefix, firewall mark, input and output interface) and an
// action (look a table up, or refuse with an errno). A table lookup that
// finds no route goes on to the next rule; when no rule gives a route the
// destination is unreachable (ENETUNREACH).
//
// The stack starts with Linux's three rules: 0 lookup local (the host's
// own addresses, reached through loopback), 32766 lookup main, 32767
// lookup default. As long as the rules are those and the default table
// is empty, routing is the main table's longest prefix match exactly as
// before: the per-packet lookup loads one nil pointer more and does
// nothing else (Stack.pr.snap).

// Routing table numbers (Linux's rt_class_t).
const (
	TableUnspec  uint32 = 0 // in a Route: the main table
	TableDefault uint32 = 253
	TableMain    uint32 = 254
	TableLocal   uint32 = 255 // implicit: the host's addresses, through loopback
)

// RuleAction is what a matching rule does (Linux's FR_ACT_*).
type RuleAction uint8

const (
	// RuleLookup looks Rule.Table up; no route there: the next rule.
	RuleLookup RuleAction = iota
	// RuleBlackhole refuses with EINVAL (a forwarded packet is dropped
	// silently), as Linux's fib4_rule_action / fib6_rule_action.
	RuleBlackhole
	// RuleUnreachable refuses with ENETUNREACH (a forwarded packet gets
	// ICMP network unreachable).
	RuleUnreachable
	// RuleProhibit refuses with EACCES (a forwarded packet gets ICMP
	// communication administratively prohibited).
	RuleProhibit
)

func (a RuleAction) String() string {
	switch a {
	case RuleBlackhole:
		return "blackhole"
	case RuleUnreachable:
		return "unreachable"
	case RuleProhibit:
		return "prohibit"
	}
	return "lookup"
}

// errno is what a local sender gets from a refusing rule.
func (a RuleAction) errno() syscall.Errno {
	switch a {
	case RuleBlackhole:
		return syscall.EINVAL
	case RuleUnreachable:
		return syscall.ENETUNREACH
	case RuleProhibit:
		return syscall.EACCES
	}
	return 0
}

// Rule is one policy routing rule (ip rule). A zero selector matches
// everything; a rule whose From or To is of one family applies to that
// family only (Linux keeps separate rule lists per family; ip rule
// without a prefix adds to one of them, here to both).
type Rule struct {
	Priority uint32
	From, To netip.Prefix // invalid: any
	// Mark and Mask select packets whose socket mark (SO_MARK) m has
	// m&Mask == Mark&Mask. Mask 0 with Mark != 0 is 0xffffffff, as
	// ip rule's "fwmark N" without a mask; Mark 0 and Mask 0: any.
	Mark, Mask uint32
	// IIF selects by input interface: a forwarded packet's NIC, "lo" for
	// the host's own packets (Linux's flowi_iif of an output lookup).
	// OIF selects by the socket's bound device (SO_BINDTODEVICE,
	// IP_PKTINFO's ifindex). "": any.
	IIF, OIF string
	Invert   bool // "not": the rule applies where the selectors do not match
	Action   RuleAction
	Table    uint32 // for RuleLookup; 0 is the main table
	// SuppressPrefixLen, with Suppress, rejects a route this rule's table
	// gives when its prefix is that long or shorter (ip rule's
	// suppress_prefixlength: wg-quick's "table main suppress_prefixlength
	// 0" takes every main route but the default one).
	Suppress          bool
	SuppressPrefixLen int
}

func (r Rule) String() string {
	s := fmt.Sprintf("%d:\t", r.Priority)
	if r.Invert {
		s += "not "
	}
	if r.From.IsValid() {
		s += "from " + r.From.String()
	} else {
		s += "from all"
	}
	if r.To.IsValid() {
		s += " to " + r.To.String()
	}
	if r.Mark != 0 || r.Mask != 0 {
		s += fmt.Sprintf(" fwmark %#x", r.Mark)
		if m := r.mask(); m != 0xffffffff {
			s += fmt.Sprintf("/%#x", m)
		}
	}
	if r.IIF != "" {
		s += " iif " + r.IIF
	}
	if r.OIF != "" {
		s += " oif " + r.OIF
	}
	if r.Action != RuleLookup {
		return s + " " + r.Action.String()
	}
	s += " lookup " + tableName(r.table())
	if r.Suppress {
		s += fmt.Sprintf(" suppress_prefixlength %d", r.SuppressPrefixLen)
	}
	return s
}

func tableName(t uint32) string {
	switch t {
	case TableLocal:
		return "local"
	case TableMain:
		return "main"
	case TableDefault:
		return "default"
	}
	return fmt.Sprint(t)
}

func (r *Rule) mask() uint32 {
	if r.Mask == 0 && r.Mark != 0 {
		return 0xffffffff
	}
	return r.Mask
}

func (r *Rule) table() uint32 {
	if r.Table == TableUnspec {
		return TableMain
	}
	return r.Table
}

// family reports which families the rule applies to.
func (r *Rule) family(v6 bool) bool {
	if r.From.IsValid() && r.From.Addr().Is6() != v6 {
		return false
	}
	if r.To.IsValid() && r.To.Addr().Is6() != v6 {
		return false
	}
	return true
}

// Flow is what a route lookup knows of the packet besides its
// destination (Linux's flowi): the source when already chosen (a bound
// socket's, a connection's), the socket's mark, its bound device, and a
// forwarded packet's input NIC (nil: the host's own packet).
type Flow struct {
	Src  netip.Addr
	Mark uint32
	Oif  *NIC
	Iif  *NIC
}

// matches reports whether the selectors match (before Invert).
func (r *Rule) matches(dst netip.Addr, f *Flow) bool {
	if r.From.IsValid() && r.From.Bits() > 0 {
		src := f.Src.WithZone("")
		if src.Is4In6() {
			src = src.Unmap()
		}
		if !src.IsValid() {
			src = netip.IPv4Unspecified()
			if dst.Is6() {
				src = netip.IPv6Unspecified()
			}
		}
		if !r.From.Contains(src) {
			return false
		}
	}
	if r.To.IsValid() && r.To.Bits() > 0 && !r.To.Contains(dst) {
		return false
	}
	if (r.Mark^f.Mark)&r.mask() != 0 {
		return false
	}
	if r.IIF != "" {
		name := "lo"
		if f.Iif != nil {
			name = f.Iif.name
		}
		if name != r.IIF {
			return false
		}
	}
	if r.OIF != "" && (f.Oif == nil || f.Oif.name != r.OIF) {
		return false
	}
	return true
}

// defaultRules are Linux's: local, main, default.
var defaultRules = []Rule{
	{Priority: 0, Table: TableLocal},
	{Priority: 32766, Table: TableMain},
	{Priority: 32767, Table: TableDefault},
}

// policyState is the stack's rules, under Stack.mu, and their published
// snapshot: nil while routing is the main table alone.
type policyState struct {
	rules   []Rule // nil: defaultRules
	changed bool   // rules were set: rules is authoritative
	snap    atomicPolicy
}

// policy is an immutable snapshot for the lock-free lookup.
type policy struct {
	rules  []Rule
	tables map[uint32][]Route // every table but main, each longest prefix first
}

func (s *Stack) rulesLocked() []Rule {
	if !s.pr.changed {
		return defaultRules
	}
	return s.pr.rules
}

// publishPolicyLocked replaces the policy snapshot; s.mu is held, after
// s.routeSnap (the main table) is published.
func (s *Stack) publishPolicyLocked() {
	rules := s.rulesLocked()
	var tables map[uint32][]Route
	for _, r := range s.routes {
		if t := r.table(); t != TableMain {
			if tables == nil {
				tables = map[uint32][]Route{}
			}
			tables[t] = append(tables[t], r)
		}
	}
	if slices.Equal(rules, defaultRules) && len(tables[TableDefault]) == 0 {
		s.pr.snap.Store(nil) // main alone: the lookup of old
		return
	}
	s.pr.snap.Store(&policy{rules: slices.Clone(rules), tables: tables})
}

// AddRule inserts a rule before the rules of a higher priority and after
// those of the same priority, as ip rule add. A rule equal to one in the
// list is EEXIST; an action other than the four is EINVAL.
func (s *Stack) AddRule(r Rule) error {
	if r.Action > RuleProhibit || (r.Action != RuleLookup && r.Table != 0) ||
		(r.From.IsValid() && r.To.IsValid() && r.From.Addr().Is6() != r.To.Addr().Is6()) {
		return syscall.EINVAL
	}
	r = r.masked()
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := slices.Clone(s.rulesLocked())
	for _, o := range rules {
		if o == r {
			return syscall.EEXIST
		}
	}
	i := sort.Search(len(rules), func(i int) bool { return rules[i].Priority > r.Priority })
	s.pr.rules, s.pr.changed = slices.Insert(rules, i, r), true
	s.publishPolicyLocked()
	return nil
}

// masked is r with its prefixes' host bits cleared, as ip rule keeps them.
func (r Rule) masked() Rule {
	if r.From.IsValid() {
		r.From = r.From.Masked()
	}
	if r.To.IsValid() {
		r.To = r.To.Masked()
	}
	return r
}

// DelRule deletes the first rule equal to r (ESRCH: none), as ip rule
// del; the default rules can be deleted too.
func (s *Stack) DelRule(r Rule) error {
	r = r.masked()
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := slices.Clone(s.rulesLocked())
	i := slices.Index(rules, r)
	if i < 0 {
		return syscall.ESRCH
	}
	s.pr.rules, s.pr.changed = slices.Delete(rules, i, i+1), true
	s.publishPolicyLocked()
	return nil
}

// Rules lists the rules in the order they are tried.
func (s *Stack) Rules() []Rule {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.rulesLocked())
}

// table is the route's table number (0 is main).
func (r *Route) table() uint32 {
	if r.Table == TableUnspec {
		return TableMain
	}
	return r.Table
}

// sortRoutes orders routes longest prefix first, then lowest metric, so
// the first match of a table is its best route.
func sortRoutes(rs []Route) {
	sort.SliceStable(rs, func(i, j int) bool {
		if a, b := rs[i].Prefix.Bits(), rs[j].Prefix.Bits(); a != b {
			return a > b
		}
		return rs[i].Metric < rs[j].Metric
	})
}

// sameRoute reports whether a and b are one route: AddRoute replaces it.
func sameRoute(a, b *Route) bool {
	return a.Prefix == b.Prefix && a.NIC == b.NIC && a.Gateway == b.Gateway &&
		a.table() == b.table() && a.Metric == b.Metric
}

// DelRoute deletes the route equal in prefix, NIC, gateway, table and
// metric to r (ESRCH: none).
func (s *Stack) DelRoute(r Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.routes)
	s.routes = slices.DeleteFunc(s.routes, func(o Route) bool { return sameRoute(&o, &r) })
	if len(s.routes) == n {
		return syscall.ESRCH
	}
	s.publishLocked()
	return nil
}

// FindRouteFlow is FindRoute with the rest of the flow: the rules see
// the source, the mark and the devices. With an output device (a socket
// bound to one) only routes through it count (routeDev). Without rules
// beyond the default ones and without a device it is FindRoute.
func (s *Stack) FindRouteFlow(dst netip.Addr, f Flow) (ResolvedRoute, error) {
	if f.Oif != nil && !dst.IsMulticast() && dst != limitedBroadcast {
		return s.routeDev(dst, f) // a socket bound to a device: through it only
	}
	if pol := s.pr.snap.Load(); pol != nil {
		return s.policyRoute(pol, dst, &f, nil)
	}
	return s.FindRoute(dst)
}

// routeOut is the route of an outgoing datagram (writePacket): its
// mark, source and devices go to the rules when there are any.
func (s *Stack) routeOut(dst netip.Addr, p *OutPacket) (ResolvedRoute, error) {
	if p.BoundDev {
		return s.routeDev(dst, Flow{Src: p.Src, Mark: p.Mark, Oif: p.Oif}) // tcphost.go
	}
	if pol := s.pr.snap.Load(); pol != nil {
		f := Flow{Src: p.Src, Mark: p.Mark, Oif: p.Oif}
		if f.Oif == nil {
			f.Oif = p.Iface
		}
		return s.policyRoute(pol, dst, &f, p.Oif)
	}
	return s.routeVia(dst, p.Oif)
}

// forwardRoute is the route of a forwarded packet from iif.
func (s *Stack) forwardRoute(src, dst netip.Addr, iif *NIC) (ResolvedRoute, error) {
	if pol := s.pr.snap.Load(); pol != nil {
		return s.policyRoute(pol, dst, &Flow{Src: src, Iif: iif}, nil)
	}
	return s.FindRoute(dst)
}

// policyRoute walks the rules for dst. via restricts the tables' routes
// to one NIC (IP_PKTINFO's ifindex, routeVia's rule).
func (s *Stack) policyRoute(pol *policy, dst netip.Addr, f *Flow, via *NIC) (ResolvedRoute, error) {
	if dst.Is4In6() {
		dst = dst.Unmap()
	}
	if !dst.IsValid() {
		return ResolvedRoute{}, syscall.ENETUNREACH
	}
	v6 := dst.Is6()
	if v6 && (dst.Zone() != "" || dst.IsLinkLocalUnicast() || dst.IsMulticast()) {
		// Scoped destinations name their link: no rule applies.
		if via == nil {
			return s.findRoute6(dst)
		}
		return s.routeVia(dst, via)
	}
	for i := range pol.rules {
		r := &pol.rules[i]
		if !r.family(v6) || r.matches(dst, f) == r.Invert {
			continue
		}
		if r.Action != RuleLookup {
			return ResolvedRoute{}, r.Action.errno()
		}
		var rr ResolvedRoute
		var ok bool
		var err error
		switch t := r.table(); t {
		case TableLocal:
			if s.ownerOf(dst) == nil {
				continue
			}
			// The host's address: through loopback, whatever via says
			// (routeVia's rule).
			return ResolvedRoute{NIC: s.lo, Src: dst.WithZone(""), NextHop: dst.WithZone(""), MTU: s.lo.mtu, Local: true}, nil
		case TableMain:
			if via == nil && !r.Suppress {
				// Today's lookup, redirects included; its
				// ENETUNREACH is "nothing here".
				rr, err = s.findMain(dst)
				if err == syscall.ENETUNREACH {
					continue
				}
				return rr, err
			}
			rr, ok, err = s.tableLookup(*s.routeSnap.Load(), dst, via, r)
		default:
			rr, ok, err = s.tableLookup(pol.tables[t], dst, via, r)
		}
		if ok {
			return rr, err
		}
	}
	return ResolvedRoute{}, syscall.ENETUNREACH
}

// findMain is the main table's lookup without the local table (the
// host's addresses are the local rule's).
func (s *Stack) findMain(dst netip.Addr) (ResolvedRoute, error) {
	if dst.Is6() {
		if rr, ok := s.redirected6(dst); ok {
			return rr, nil
		}
	}
	rr, ok, err := s.tableLookup(*s.routeSnap.Load(), dst, nil, nil)
	if !ok {
		return ResolvedRoute{}, syscall.ENETUNREACH
	}
	return rr, err
}

// tableLookup finds dst's best route in one table (routes longest prefix
// first, then lowest metric), through via only when set. ok false: no
// route, or one the rule suppresses.
func (s *Stack) tableLookup(routes []Route, dst netip.Addr, via *NIC, rule *Rule) (ResolvedRoute, bool, error) {
	v6 := dst.Is6()
	for i := range routes {
		r := &routes[i]
		if r.Prefix.Addr().Is6() != v6 || !r.Prefix.Contains(dst) || (via != nil && r.NIC != via) {
			continue
		}
		if rule != nil && rule.Suppress && r.Prefix.Bits() <= rule.SuppressPrefixLen {
			return ResolvedRoute{}, false, nil
		}
		rr := ResolvedRoute{NIC: r.NIC, NextHop: dst, Gateway: r.Gateway, MTU: r.MTU, Src: r.Src}
		if r.Gateway.IsValid() {
			rr.NextHop = r.Gateway
		}
		m := r.NIC.mtu
		if v6 {
			m = r.NIC.mtu6()
		}
		if rr.MTU == 0 || rr.MTU > m {
			rr.MTU = m
		}
		if !rr.Src.IsValid() || (v6 && !r.NIC.hasAddr(rr.Src)) {
			if v6 {
				rr.Src = r.NIC.selectSource6(dst)
			} else {
				rr.Src = r.NIC.primaryAddr(rr.NextHop)
			}
		}
		rr.Local = r.NIC == s.lo
		if !rr.Src.IsValid() {
			return ResolvedRoute{}, true, syscall.EADDRNOTAVAIL
		}
		return rr, true, nil
	}
	return ResolvedRoute{}, false, nil
}

type atomicPolicy = atomic.Pointer[policy]

// SetMark sets SO_MARK: the mark policy rules select the socket's
// datagrams by. A connected socket's next send looks its route up with
// it (Linux drops the cached route, sk_dst_reset).
func (e *DgramEndpoint) SetMark(m uint32) { e.mark.Store(m) }

// Mark is SO_MARK's value.
func (e *DgramEndpoint) Mark() uint32 { return e.mark.Load() }

// flowLocked is the socket's side of a route lookup; e.mu is held.
func (e *DgramEndpoint) flowLocked() Flow {
	f := Flow{Mark: e.mark.Load(), Oif: e.opts.bindDev}
	if e.bound && !e.local.Addr().IsUnspecified() {
		f.Src = e.local.Addr()
	}
	return f
}

// sendMark is the mark of one send: an SO_MARK control message's, else
// the socket's.
func (e *DgramEndpoint) sendMark(o *SendOpts) uint32 {
	if o.MarkSet {
		return o.Mark
	}
	return e.mark.Load()
}
