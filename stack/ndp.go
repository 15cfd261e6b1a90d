package stack

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Neighbour discovery and address configuration (RFC 4861, RFC 4862,
// RFC 7217): link-local addresses, duplicate address detection, the
// neighbour cache with its NUD state machine, router solicitation and
// SLAAC from router advertisements. Linux's ndisc.c and addrconf.c are
// the models.

type addrKind uint8

const (
	addrManual addrKind = iota
	addrLinkLocal
	addrSLAAC
)

// addr6 is one IPv6 address of a NIC, assigned or under DAD.
type addr6 struct {
	prefix     netip.Prefix
	kind       addrKind
	tentative  bool
	dadLeft    int
	dadCounter int // RFC 7217 DAD_Counter
	dadTimer   clock.Timer
	validTimer clock.Timer
	prefTimer  clock.Timer
	validUntil time.Time // zero: infinite
}

type router6 struct{ timer clock.Timer }

type prefix6 struct{ timer clock.Timer }

// nic6 is a NIC's IPv6 state.
type nic6 struct {
	enabled    atomic.Bool // an IPv6 address was added: link-scope traffic may use the NIC
	llOn       atomic.Bool // EnableIPv6 ran
	raMTU      atomic.Int32
	raHopLimit atomic.Int32
	deprecated atomic.Pointer[[]netip.Addr] // addresses past their preferred lifetime

	mu        sync.Mutex
	addrs     map[netip.Addr]*addr6
	routers   map[netip.Addr]*router6
	prefixes  map[netip.Prefix]*prefix6
	rsLeft    int
	rsTimer   clock.Timer
	reachable time.Duration // base reachable time (RA may change it)
	retrans   time.Duration
	closed    bool

	nd *ndCache
}

func (n *NIC) init6() {
	s := n.stack
	n.v6.addrs = map[netip.Addr]*addr6{}
	n.v6.routers = map[netip.Addr]*router6{}
	n.v6.prefixes = map[netip.Prefix]*prefix6{}
	n.v6.reachable = s.opts.NDReachableTime
	n.v6.retrans = s.opts.NDRetransTime
	if n.ethernet {
		n.v6.nd = &ndCache{nic: n, m: map[netip.Addr]*ndEntry{}}
	}
}

func (n *NIC) close6() {
	v := &n.v6
	v.mu.Lock()
	v.closed = true
	for _, a := range v.addrs {
		a.stopTimers()
	}
	for _, r := range v.routers {
		r.timer.Stop()
	}
	for _, p := range v.prefixes {
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	if v.rsTimer != nil {
		v.rsTimer.Stop()
	}
	v.mu.Unlock()
	if v.nd != nil {
		v.nd.close()
	}
}

func (a *addr6) stopTimers() {
	for _, t := range []clock.Timer{a.dadTimer, a.validTimer, a.prefTimer} {
		if t != nil {
			t.Stop()
		}
	}
}

// EnableIPv6 turns IPv6 on for the NIC: a link-local address (modified
// EUI-64, or RFC 7217 stable privacy with Options.IPv6StableSecret)
// under DAD, then router solicitations when SLAAC is on.
func (n *NIC) EnableIPv6() error {
	if n.loopback || n.v6.llOn.Swap(true) {
		return nil
	}
	n.v6.enabled.Store(true)
	n.stack.AddRoute(Route{Prefix: wire.IPv6LinkLocalNw, NIC: n})
	iid := n.interfaceID(wire.IPv6LinkLocalNw, 0)
	return n.addAddress6(netip.PrefixFrom(wire.AddrWithIID(wire.IPv6LinkLocalNw, iid), 64), addrLinkLocal, 0, 0)
}

// interfaceID is the 64-bit interface identifier for prefix p: RFC 7217's
// F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key) with SHA-256
// when a secret is set, else the modified EUI-64 of the MAC.
func (n *NIC) interfaceID(p netip.Prefix, dadCounter int) [8]byte {
	secret := n.stack.opts.IPv6StableSecret
	if secret == nil {
		return wire.EUI64(n.mac)
	}
	h := sha256.New()
	pa := p.Masked().Addr().As16()
	h.Write(pa[:8])
	h.Write([]byte(n.name))
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], uint32(dadCounter))
	h.Write(c[:])
	h.Write(secret)
	var iid [8]byte
	copy(iid[:], h.Sum(nil))
	if iid == ([8]byte{}) {
		iid[7] = 1 // the subnet-router anycast identifier is reserved (RFC 5453)
	}
	return iid
}

// addAddress6 adds an address; on an Ethernet NIC it is tentative until
// DAD finishes (RFC 4862 5.4). valid and preferred are SLAAC lifetimes
// (0: infinite).
func (n *NIC) addAddress6(p netip.Prefix, kind addrKind, valid, preferred time.Duration) error {
	s := n.stack
	a := p.Addr().WithZone("")
	p = netip.PrefixFrom(a, p.Bits())
	v := &n.v6
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return syscall.ENODEV
	}
	if v.addrs[a] != nil {
		v.mu.Unlock()
		return syscall.EEXIST
	}
	if kind == addrSLAAC && len(v.addrs) >= s.opts.IPv6MaxAddrs {
		v.mu.Unlock()
		s.stats.ND.SLAACAddrsFull.Add(1)
		return syscall.ENOSPC
	}
	ad := &addr6{prefix: p, kind: kind}
	v.addrs[a] = ad
	n.setLifetimesLocked(a, ad, valid, preferred)
	dad := n.ethernet && s.opts.DADTransmits > 0
	if dad {
		ad.tentative = true
		ad.dadLeft = s.opts.DADTransmits
	}
	v.mu.Unlock()
	if !n.loopback {
		v.enabled.Store(true)
	}
	if kind == addrManual && p.Bits() < 128 {
		// The address is the prefix route's preferred source, as for
		// IPv4: no per-packet source selection on the common path.
		s.AddRoute(Route{Prefix: p.Masked(), NIC: n, Src: a})
	}
	if n.ethernet {
		n.join(wire.SolicitedNode(a))
	}
	if !dad {
		n.assign6(a, ad)
		return nil
	}
	s.stats.ND.DADStarted.Add(1)
	n.dadTick(a, ad)
	return nil
}

// dadTick sends the next DAD probe, or assigns the address when all were
// sent and nobody objected.
func (n *NIC) dadTick(a netip.Addr, ad *addr6) {
	v := &n.v6
	v.mu.Lock()
	if v.closed || v.addrs[a] != ad || !ad.tentative {
		v.mu.Unlock()
		return
	}
	if ad.dadLeft == 0 {
		ad.tentative = false
		v.mu.Unlock()
		n.stack.stats.ND.DADSucceeded.Add(1)
		n.assign6(a, ad)
		return
	}
	ad.dadLeft--
	if ad.dadTimer == nil {
		ad.dadTimer = n.stack.clock.AfterFunc(v.retrans, func() { n.dadTick(a, ad) })
	} else {
		ad.dadTimer.Reset(v.retrans)
	}
	v.mu.Unlock()
	// A DAD probe: from ::, to the solicited-node group, no source
	// link-layer option (RFC 4862 5.4.2).
	var b [wire.NDPNSLen]byte
	wire.PutNS(b[:], a, wire.MAC{})
	n.sendND(netip.IPv6Unspecified(), wire.SolicitedNode(a), b[:])
	n.stack.stats.ICMP6.OutNeighborSolicits.Add(1)
}

// assign6 makes a finished address usable.
func (n *NIC) assign6(a netip.Addr, ad *addr6) {
	s := n.stack
	n.amu.Lock()
	n.addrs = append(n.addrs, ad.prefix)
	n.storeAddrs()
	n.amu.Unlock()
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	if ad.kind == addrLinkLocal && s.opts.IPv6SLAAC {
		n.startRS()
	}
}

// isTentative reports an address still under DAD.
func (n *NIC) isTentative(a netip.Addr) bool {
	if !a.Is6() {
		return false
	}
	n.v6.mu.Lock()
	defer n.v6.mu.Unlock()
	ad := n.v6.addrs[a]
	return ad != nil && ad.tentative
}

// isDeprecated reports an address past its preferred lifetime.
func (n *NIC) isDeprecated(a netip.Addr) bool {
	d := n.v6.deprecated.Load()
	return d != nil && slices.Contains(*d, a)
}

// RemoveAddress6 removes an IPv6 address (assigned or tentative).
func (n *NIC) RemoveAddress6(a netip.Addr) { n.remove6(a, nil) }

// remove6 drops address a (only if it is still ad, when ad is given).
func (n *NIC) remove6(a netip.Addr, ad *addr6) {
	s := n.stack
	v := &n.v6
	v.mu.Lock()
	cur := v.addrs[a]
	if cur == nil || ad != nil && cur != ad {
		v.mu.Unlock()
		return
	}
	delete(v.addrs, a)
	cur.stopTimers()
	v.mu.Unlock()
	n.setDeprecated(a, false)
	n.amu.Lock()
	n.addrs = slices.DeleteFunc(n.addrs, func(p netip.Prefix) bool { return p.Addr() == a })
	n.storeAddrs()
	n.amu.Unlock()
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	if n.ethernet {
		n.leave(wire.SolicitedNode(a))
	}
}

func (n *NIC) setDeprecated(a netip.Addr, on bool) {
	for {
		old := n.v6.deprecated.Load()
		var l []netip.Addr
		if old != nil {
			l = slices.Clone(*old)
		}
		l = slices.DeleteFunc(l, func(x netip.Addr) bool { return x == a })
		if on {
			l = append(l, a)
		}
		if n.v6.deprecated.CompareAndSwap(old, &l) {
			return
		}
	}
}

// dadConflict handles a sign that a is in use by another node: a
// tentative address is abandoned (RFC 4862 5.4.5); a stable privacy one
// is tried again with the next DAD counter (RFC 7217 6).
func (n *NIC) dadConflict(a netip.Addr) {
	s := n.stack
	v := &n.v6
	v.mu.Lock()
	ad := v.addrs[a]
	if ad == nil || !ad.tentative {
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	s.stats.ND.DADFailures.Add(1)
	n.remove6(a, ad)
	if s.opts.IPv6StableSecret != nil && ad.kind != addrManual && ad.dadCounter < 3 {
		s.stats.ND.DADRetries.Add(1)
		p := ad.prefix.Masked()
		na := wire.AddrWithIID(p, n.interfaceID(p, ad.dadCounter+1))
		if n.addAddress6(netip.PrefixFrom(na, ad.prefix.Bits()), ad.kind, 0, 0) == nil {
			v.mu.Lock()
			if x := v.addrs[na]; x != nil {
				x.dadCounter = ad.dadCounter + 1
			}
			v.mu.Unlock()
		}
	}
}

// Addrs6 lists the NIC's IPv6 addresses with their state, for `ip -6 addr`.
type Addr6Info struct {
	Prefix     netip.Prefix
	Tentative  bool
	Deprecated bool
	SLAAC      bool
}

func (n *NIC) Addrs6() []Addr6Info {
	n.v6.mu.Lock()
	defer n.v6.mu.Unlock()
	var out []Addr6Info
	for a, ad := range n.v6.addrs {
		out = append(out, Addr6Info{ad.prefix, ad.tentative, n.isDeprecated(a), ad.kind == addrSLAAC})
	}
	slices.SortFunc(out, func(x, y Addr6Info) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	return out
}

// sendND sends an ND (or MLD) message from src to dst with hop limit
// 255, filling the checksum. Multicast goes straight out; unicast
// through neighbour resolution.
func (n *NIC) sendND(src, dst netip.Addr, msg []byte) {
	n.sendICMPv6Raw(src, dst, wire.NDPHopLimit, nil, msg)
}

// sendICMPv6Raw builds and sends one ICMPv6 packet on this NIC with the
// given hop limit and optional hop-by-hop header.
func (n *NIC) sendICMPv6Raw(src, dst netip.Addr, hop uint8, hbh []byte, msg []byte) {
	s := n.stack
	total := len(hbh) + len(msg)
	buf := getBuf(wire.EthernetHeaderLen + wire.IPv6HeaderLen + total)
	defer putBuf(buf)
	ip := buf[wire.EthernetHeaderLen:]
	nh := wire.ProtoICMPv6
	if hbh != nil {
		nh = wire.ProtoHopByHop
	}
	h := wire.IPv6Header{PayloadLen: total, NextHeader: nh, HopLimit: hop, Src: src, Dst: dst}
	off := h.Put(ip)
	off += copy(ip[off:], hbh)
	icmpOff := off
	copy(ip[off:], msg)
	fillTransportChecksum6(wire.IPv6(ip), wire.ProtoICMPv6, icmpOff)
	s.stats.IP6.OutRequests.Add(1)
	s.stats.ICMP6.OutMsgs.Add(1)
	n.sendIP6(dst, buf)
}

// startRS begins router solicitation (RFC 4861 6.3.7).
func (n *NIC) startRS() {
	v := &n.v6
	v.mu.Lock()
	if v.closed || v.rsTimer != nil {
		v.mu.Unlock()
		return
	}
	v.rsLeft = n.stack.opts.RSCount
	v.rsTimer = n.stack.clock.AfterFunc(0, n.rsTick)
	v.mu.Unlock()
}

func (n *NIC) rsTick() {
	v := &n.v6
	v.mu.Lock()
	if v.closed || v.rsLeft <= 0 {
		v.mu.Unlock()
		return
	}
	v.rsLeft--
	if v.rsLeft > 0 {
		v.rsTimer.Reset(n.stack.opts.RSInterval)
	}
	v.mu.Unlock()
	n.sendRS()
}

func (n *NIC) sendRS() {
	src := n.selectSource6(wire.IPv6AllRouters)
	var b [wire.NDPRSLen + 8]byte
	var l int
	if src.IsValid() && src.IsLinkLocalUnicast() {
		l = wire.PutRS(b[:], n.mac)
	} else {
		src = netip.IPv6Unspecified()
		l = wire.PutRS(b[:], wire.MAC{})
	}
	n.sendND(src, wire.IPv6AllRouters, b[:l])
	n.stack.stats.ICMP6.OutRouterSolicits.Add(1)
}

// receiveND validates and handles an ND message (RFC 4861 6.1, 7.1).
func (s *Stack) receiveND(n *NIC, h wire.IPv6, m wire.ICMPv6) {
	st := &s.stats.ICMP6
	if m.Type() == wire.ICMPv6Redirect {
		s.receiveRedirect(n, h, m) // counted per rule (ndp_redirect.go)
		return
	}
	var o wire.NDPOptions
	d, err := wire.ParseNDP(m, &o)
	if err != nil || h.HopLimit() != wire.NDPHopLimit || m.Code() != 0 || n.loopback {
		st.InNDBad.Add(1)
		return
	}
	src, dst := h.Src(), h.Dst()
	switch m.Type() {
	case wire.ICMPv6NeighborSolic:
		st.InNeighborSolicits.Add(1)
		t := d.Target()
		if t.IsMulticast() || src.IsUnspecified() && (o.HasSourceLL || dst != wire.SolicitedNode(t)) {
			st.InNDBad.Add(1)
			return
		}
		n.receiveNS(src, t, &o)
	case wire.ICMPv6NeighborAdvert:
		st.InNeighborAdverts.Add(1)
		t := d.Target()
		f := d.NAFlags()
		if t.IsMulticast() || dst.IsMulticast() && f&wire.NAFlagSolicited != 0 {
			st.InNDBad.Add(1)
			return
		}
		n.receiveNA(t, f, &o)
	case wire.ICMPv6RouterSolicit:
		// A host silently discards solicitations (RFC 4861 6.2.6), as
		// Linux without forwarding: no neighbour entry from them.
		st.InRouterSolicits.Add(1)
	case wire.ICMPv6RouterAdvert:
		st.InRouterAdverts.Add(1)
		if !src.IsLinkLocalUnicast() {
			st.InNDBad.Add(1)
			return
		}
		n.receiveRA(src, d, &o)
	}
}

// receiveNS answers a solicitation for one of our addresses, or notes a
// DAD conflict for a tentative one.
func (n *NIC) receiveNS(src, target netip.Addr, o *wire.NDPOptions) {
	s := n.stack
	v := &n.v6
	v.mu.Lock()
	ad := v.addrs[target]
	tentative := ad != nil && ad.tentative
	v.mu.Unlock()
	if ad == nil {
		return // not ours (or anycast we do not hold)
	}
	if tentative {
		// Another node's DAD probe for the same address (RFC 4862 5.4.3).
		if src.IsUnspecified() {
			n.dadConflict(target)
		}
		return
	}
	dst := src
	flags := uint8(wire.NAFlagOverride)
	if s.opts.Forwarding {
		flags |= wire.NAFlagRouter // a router says so (RFC 4861 7.2.4)
	}
	if src.IsUnspecified() {
		dst = wire.IPv6AllNodes
	} else {
		flags |= wire.NAFlagSolicited
		if o.HasSourceLL && n.v6.nd != nil {
			n.v6.nd.learn(src, o.SourceLL, false, false)
		}
	}
	var b [wire.NDPNALen + 8]byte
	l := wire.PutNA(b[:], target, flags, n.mac)
	n.sendND(target, dst, b[:l])
	s.stats.ICMP6.OutNeighborAdverts.Add(1)
}

// receiveNA updates the cache, or notes a DAD conflict.
func (n *NIC) receiveNA(target netip.Addr, flags uint8, o *wire.NDPOptions) {
	v := &n.v6
	v.mu.Lock()
	ad := v.addrs[target]
	v.mu.Unlock()
	if ad != nil {
		if ad.tentative {
			n.dadConflict(target)
		}
		return
	}
	if n.v6.nd != nil {
		wasRouter, isRouter := n.v6.nd.advert(target, flags, o.TargetLL, o.HasTargetLL)
		if wasRouter && !isRouter {
			// No longer a router: out of the default router list (RFC 4861 7.2.5).
			n.removeRouter(target)
		}
	}
}

// receiveRA applies a router advertisement (RFC 4861 6.3.4, RFC 4862 5.5).
func (n *NIC) receiveRA(src netip.Addr, d wire.NDP, o *wire.NDPOptions) {
	s := n.stack
	st := &s.stats.ND
	if !s.opts.IPv6SLAAC {
		return
	}
	v := &n.v6
	if s.opts.Forwarding && !s.opts.AcceptRAWhenForwarding {
		// A router does not take its configuration from other routers
		// (Linux's ipv6_accept_ra: accept_ra 1 yields to forwarding, 2
		// does not); the sender's link-layer address is still learnt,
		// as ndisc_router_discovery does before giving up.
		st.RAIgnored.Add(1)
		if o.HasSourceLL && v.nd != nil {
			v.nd.learn(src, o.SourceLL, true, true)
		}
		return
	}
	v.mu.Lock()
	v.rsLeft = 0 // an answer: stop soliciting
	// Linux's floors (ndisc_router_discovery): an RA cannot make NUD
	// or solicitations run at sub-millisecond intervals.
	clamped := false
	if rt := d.ReachableTime(); rt != 0 {
		clamped = rt < minRAReachable
		v.reachable = max(rt, minRAReachable)
	}
	if rt := d.RetransTimer(); rt != 0 {
		clamped = clamped || rt < minRARetrans
		v.retrans = max(rt, minRARetrans)
	}
	v.mu.Unlock()
	if clamped {
		st.RATimersClamped.Add(1)
	}
	if h := d.CurHopLimit(); h != 0 {
		v.raHopLimit.Store(int32(h))
	}
	if o.HasMTU {
		if o.MTU >= wire.IPv6MinMTU && int(o.MTU) <= n.mtu {
			v.raMTU.Store(int32(o.MTU))
			st.RAMTU.Add(1)
		} else {
			st.RAMTUBad.Add(1)
		}
	}
	if o.HasSourceLL && v.nd != nil {
		v.nd.learn(src, o.SourceLL, true, true)
	}
	n.updateRouter(src, d.RouterLifetime())
	for _, p := range o.Prefixes[:o.NPrefixes] {
		n.applyPrefix(p)
	}
}

const (
	minRAReachable = 100 * time.Millisecond // Linux: HZ/10
	minRARetrans   = 10 * time.Millisecond  // Linux: HZ/100
)

// updateRouter adds, refreshes or removes a default router.
func (n *NIC) updateRouter(r netip.Addr, life time.Duration) {
	s := n.stack
	v := &n.v6
	v.mu.Lock()
	rt := v.routers[r]
	switch {
	case life == 0:
		v.mu.Unlock()
		if rt != nil {
			n.removeRouter(r)
		}
		return
	case rt != nil:
		rt.timer.Reset(life)
		v.mu.Unlock()
		return
	case len(v.routers) >= s.opts.IPv6MaxRouters:
		v.mu.Unlock()
		s.stats.ND.RoutersFull.Add(1)
		return
	}
	rt = &router6{}
	rt.timer = s.clock.AfterFunc(life, func() {
		s.stats.ND.RouterExpired.Add(1)
		n.removeRouter(r)
	})
	v.routers[r] = rt
	v.mu.Unlock()
	s.stats.ND.RouterAdded.Add(1)
	s.AddRoute(Route{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Gateway: r, NIC: n})
}

func (n *NIC) removeRouter(r netip.Addr) {
	v := &n.v6
	v.mu.Lock()
	rt := v.routers[r]
	delete(v.routers, r)
	v.mu.Unlock()
	if rt == nil {
		return
	}
	rt.timer.Stop()
	n.stack.removeRoute(netip.PrefixFrom(netip.IPv6Unspecified(), 0), n, r)
}

// DefaultRouters lists the NIC's default routers.
func (n *NIC) DefaultRouters() []netip.Addr {
	n.v6.mu.Lock()
	defer n.v6.mu.Unlock()
	var out []netip.Addr
	for r := range n.v6.routers {
		out = append(out, r)
	}
	return out
}

// removeRoute deletes the route for prefix through gw on n.
func (s *Stack) removeRoute(p netip.Prefix, n *NIC, gw netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = slices.DeleteFunc(s.routes, func(r Route) bool { return r.Prefix == p && r.NIC == n && r.Gateway == gw })
	s.publishLocked()
}

const infiniteLifetime = 0xffffffff

func lifetime(sec uint32) time.Duration {
	if sec == infiniteLifetime {
		return 0
	}
	return time.Duration(sec) * time.Second
}

// applyPrefix handles one prefix information option: the on-link
// prefix list and, for autonomous /64s, an address (RFC 4862 5.5.3).
func (n *NIC) applyPrefix(p wire.NDPPrefix) {
	s := n.stack
	v := &n.v6
	pfx := p.Prefix
	if pfx.Addr().IsLinkLocalUnicast() || pfx.Addr().IsMulticast() {
		return
	}
	if p.OnLink {
		v.mu.Lock()
		pi := v.prefixes[pfx]
		switch {
		case p.Valid == 0:
			delete(v.prefixes, pfx)
			v.mu.Unlock()
			if pi != nil {
				if pi.timer != nil {
					pi.timer.Stop()
				}
				s.removeRoute(pfx, n, netip.Addr{})
			}
		case pi != nil:
			if pi.timer != nil {
				pi.timer.Stop()
				pi.timer = nil
			}
			if d := lifetime(p.Valid); d != 0 {
				pi.timer = s.clock.AfterFunc(d, func() { n.expirePrefix(pfx, pi) })
			}
			v.mu.Unlock()
		case len(v.prefixes) >= s.opts.IPv6MaxPrefixes:
			// A flood of RAs must not grow the prefix list and the
			// routing table without bound.
			v.mu.Unlock()
			s.stats.ND.PrefixesFull.Add(1)
		default:
			pi = &prefix6{}
			if d := lifetime(p.Valid); d != 0 {
				pi.timer = s.clock.AfterFunc(d, func() { n.expirePrefix(pfx, pi) })
			}
			v.prefixes[pfx] = pi
			v.mu.Unlock()
			s.stats.ND.PrefixesAdded.Add(1)
			s.AddRoute(Route{Prefix: pfx, NIC: n})
		}
	}
	if !p.Auto || pfx.Bits() != 64 || p.Preferred > p.Valid {
		return
	}
	valid, pref := lifetime(p.Valid), lifetime(p.Preferred)
	now := s.clock.Now()
	v.mu.Lock()
	for a, ad := range v.addrs {
		if ad.kind != addrSLAAC || ad.prefix.Masked() != pfx {
			continue
		}
		// RFC 4862 5.5.3(e): a short valid lifetime only shortens a
		// remaining one of at most two hours (against spoofed RAs).
		remaining := time.Duration(0)
		if !ad.validUntil.IsZero() {
			remaining = ad.validUntil.Sub(now)
		}
		const twoHours = 2 * time.Hour
		switch {
		case p.Valid == infiniteLifetime, valid > twoHours, !ad.validUntil.IsZero() && valid > remaining:
		case !ad.validUntil.IsZero() && remaining <= twoHours:
			valid = remaining
		default:
			valid = twoHours
		}
		n.setLifetimesLocked(a, ad, valid, pref)
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	if p.Valid == 0 {
		return
	}
	a := wire.AddrWithIID(pfx, n.interfaceID(pfx, 0))
	if n.addAddress6(netip.PrefixFrom(a, 64), addrSLAAC, valid, pref) == nil {
		s.stats.ND.SLAACAddrs.Add(1)
	}
}

func (n *NIC) expirePrefix(p netip.Prefix, pi *prefix6) {
	v := &n.v6
	v.mu.Lock()
	if v.prefixes[p] != pi {
		v.mu.Unlock()
		return
	}
	delete(v.prefixes, p)
	v.mu.Unlock()
	n.stack.removeRoute(p, n, netip.Addr{})
}

// setLifetimesLocked (re)arms an address's valid and preferred timers;
// v6.mu is held. 0 means infinite.
func (n *NIC) setLifetimesLocked(a netip.Addr, ad *addr6, valid, preferred time.Duration) {
	s := n.stack
	for _, t := range []clock.Timer{ad.validTimer, ad.prefTimer} {
		if t != nil {
			t.Stop()
		}
	}
	ad.validTimer, ad.prefTimer, ad.validUntil = nil, nil, time.Time{}
	if ad.kind != addrSLAAC {
		return
	}
	if valid != 0 {
		ad.validUntil = s.clock.Now().Add(valid)
		ad.validTimer = s.clock.AfterFunc(valid, func() {
			s.stats.ND.AddrExpired.Add(1)
			n.remove6(a, ad)
		})
	}
	if preferred != 0 {
		ad.prefTimer = s.clock.AfterFunc(preferred, func() { n.setDeprecated(a, true) })
	}
	// A preferred lifetime of 0 with a finite valid one is deprecated at
	// once. setDeprecated is lock-free, so it may run under v6.mu.
	n.setDeprecated(a, preferred == 0 && valid != 0)
}

// ndEntry is one neighbour of the NUD state machine (RFC 4861 7.3.2).
type ndEntry struct {
	// fast holds the MAC with fastValid set while the entry is REACHABLE
	// (or PERMANENT): a send needs no state change then, so senders read
	// it without the cache lock (the ARP cache's fast path, for ND).
	fast      atomic.Uint64
	addr      netip.Addr
	mac       wire.MAC
	state     NeighborState
	router    bool
	counted   bool // counted in ndCache.incomplete
	probes    int
	timer     clock.Timer
	pending   [][]byte
	pendBytes int
	// flushing: the frames that waited are being written; sends queue
	// behind them until the queue is empty, so the first datagrams to a
	// neighbour leave in the order they were sent.
	flushing bool
}

// storeFast publishes e's MAC for lock-free senders.
func (e *ndEntry) storeFast() {
	m := e.mac
	e.fast.Store(fastValid | uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5]))
}

// ndCache is a NIC's IPv6 neighbour cache: bounded (NDCacheSize, stale
// entries evicted first), with the ARP cache's bounded queue per
// unresolved neighbour and its stack-wide caps.
type ndCache struct {
	nic    *NIC
	last   atomic.Pointer[ndEntry] // the entry last resolved, for the lock-free path
	mu     sync.Mutex
	m      map[netip.Addr]*ndEntry
	closed bool
	// incomplete counts the entries still being resolved, at most half
	// the cache (maxIncomplete): a scan of a connected /64 through a
	// router cannot take the room of neighbours that make themselves
	// known (RFC 6583 7.1).
	incomplete int
}

func (c *ndCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.m {
		e.fast.Store(0)
		if e.timer != nil {
			e.timer.Stop()
		}
		for _, f := range c.takePendingLocked(e) {
			putBuf(f)
		}
	}
}

// Neighbors6 lists the NIC's IPv6 neighbours, for `ip -6 neigh`.
func (n *NIC) Neighbors6() []NeighborInfo {
	c := n.v6.nd
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []NeighborInfo
	for _, e := range c.m {
		out = append(out, NeighborInfo{Addr: e.addr, MAC: e.mac, State: e.state, Flushing: e.flushing})
	}
	slices.SortFunc(out, func(x, y NeighborInfo) int { return x.Addr.Compare(y.Addr) })
	return out
}

// Neighbor6 is one entry's state (ok false: none).
func (n *NIC) Neighbor6(a netip.Addr) (NeighborInfo, bool) {
	c := n.v6.nd
	if c == nil {
		return NeighborInfo{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[a]
	if e == nil {
		return NeighborInfo{}, false
	}
	return NeighborInfo{Addr: e.addr, MAC: e.mac, State: e.state}, true
}

// SetStatic6 adds a permanent IPv6 neighbour.
func (n *NIC) SetStatic6(a netip.Addr, mac wire.MAC) {
	c := n.v6.nd
	if c == nil {
		return
	}
	c.mu.Lock()
	e := c.m[a]
	if e == nil {
		e = &ndEntry{addr: a}
		c.m[a] = e
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.mac = mac
	c.enterLocked(e, NeighReachable) // sets the fast path
	if e.timer != nil {
		e.timer.Stop()
	}
	e.state = NeighPermanent
	c.flushUnlock(e, c.takePendingLocked(e))
}

func (c *ndCache) takePendingLocked(e *ndEntry) [][]byte {
	p := e.pending
	if len(p) == 0 {
		return nil
	}
	s := c.nic.stack
	s.arpPending.Add(-int64(len(p)))
	s.arpPendingBytes.Add(-int64(e.pendBytes))
	e.pending, e.pendBytes = nil, 0
	return p
}

// flushUnlock writes p, the frames e's queue held, to e's address and
// unlocks c (held on entry). Until e's queue stays empty, sends to e
// join the queue (resolve) and go out here after p, in order: the lock
// is not held while writing (a link may deliver back into the stack).
func (c *ndCache) flushUnlock(e *ndEntry, p [][]byte) {
	if len(p) == 0 || e.flushing {
		// Nothing to write, or another call is writing e's queue and
		// takes what is queued now.
		if len(p) > 0 {
			e.pending = append(p, e.pending...)
			c.requeueCharge(e, p)
		}
		c.mu.Unlock()
		return
	}
	e.flushing = true
	e.fast.Store(0) // enterLocked keeps it so until the queue is written
	for {
		mac := e.mac
		c.mu.Unlock()
		c.send(p, mac)
		c.mu.Lock()
		if p = c.takePendingLocked(e); len(p) == 0 {
			break
		}
	}
	e.flushing = false
	if e.state == NeighReachable || e.state == NeighPermanent {
		e.storeFast()
	}
	c.mu.Unlock()
}

// requeueCharge charges frames put back on e's queue.
func (c *ndCache) requeueCharge(e *ndEntry, p [][]byte) {
	s := c.nic.stack
	for _, f := range p {
		ch := pendingCharge(f)
		e.pendBytes += ch
		s.arpPendingBytes.Add(int64(ch))
	}
	s.arpPending.Add(int64(len(p)))
}

func (c *ndCache) send(frames [][]byte, mac wire.MAC) {
	for _, f := range frames {
		wire.Ethernet(f).SetDst(mac)
		c.nic.writeFrame(f)
		putBuf(f)
	}
}

// reachableTime is a random time in [0.5, 1.5) times the base
// (RFC 4861 6.3.2).
func (c *ndCache) reachableTime() time.Duration {
	c.nic.v6.mu.Lock()
	base := c.nic.v6.reachable
	c.nic.v6.mu.Unlock()
	return base/2 + time.Duration(rand.Int64N(int64(base)))
}

func (c *ndCache) retrans() time.Duration {
	c.nic.v6.mu.Lock()
	defer c.nic.v6.mu.Unlock()
	return c.nic.v6.retrans
}

// arm (re)starts e's timer; the lock is held.
func (c *ndCache) arm(e *ndEntry, d time.Duration) {
	if e.timer == nil {
		e.timer = c.nic.stack.clock.AfterFunc(d, func() { c.timeout(e) })
		return
	}
	e.timer.Reset(d)
}

// enterLocked moves e to state st with st's timer.
func (c *ndCache) enterLocked(e *ndEntry, st NeighborState) {
	s := c.nic.stack
	e.state = st
	if e.counted && st != NeighIncomplete {
		e.counted = false
		c.incomplete--
	}
	if st == NeighReachable && !e.flushing {
		e.storeFast()
	} else {
		e.fast.Store(0)
	}
	switch st {
	case NeighReachable:
		c.arm(e, c.reachableTime())
	case NeighStale:
		// Unused stale entries are collected (Linux's gc_staletime).
		c.arm(e, s.opts.ARPStaleTimeout)
	case NeighDelay:
		c.arm(e, s.opts.NDDelayTime)
	case NeighProbe, NeighIncomplete:
		e.probes = 1
		c.arm(e, c.retrans())
	}
}

// resolve returns the MAC for a, or queues frame (copied) and solicits.
func (c *ndCache) resolve(a netip.Addr, frame []byte) (wire.MAC, bool) {
	if e := c.last.Load(); e != nil && e.addr == a {
		if v := e.fast.Load(); v&fastValid != 0 {
			return wire.MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, true
		}
	}
	s := c.nic.stack
	c.mu.Lock()
	e := c.m[a]
	if e == nil {
		full := c.incomplete >= maxIncomplete(s.opts.NDCacheSize)
		if c.closed || full || len(c.m) >= s.opts.NDCacheSize && !c.evictLocked() {
			c.mu.Unlock()
			if full && !c.closed {
				s.stats.ND.IncompleteFull.Add(1)
			} else {
				s.stats.ND.CacheFull.Add(1)
			}
			s.stats.ND.PendingDrops.Add(1)
			s.neighborFailed6(frame[wire.EthernetHeaderLen:])
			return wire.MAC{}, false
		}
		e = &ndEntry{addr: a, counted: true}
		c.incomplete++
		c.m[a] = e
		c.enterLocked(e, NeighIncomplete)
		c.enqueueLocked(e, frame)
		c.mu.Unlock()
		c.solicit(a, wire.MAC{})
		return wire.MAC{}, false
	}
	switch {
	case e.state == NeighIncomplete, e.flushing:
		c.enqueueLocked(e, frame)
		c.mu.Unlock()
		return wire.MAC{}, false
	case e.state == NeighStale:
		// First use of a stale entry: DELAY, giving upper layers a chance
		// to confirm before probing (RFC 4861 7.3.3).
		c.enterLocked(e, NeighDelay)
	}
	mac := e.mac
	c.last.Store(e)
	c.mu.Unlock()
	return mac, true
}

// enqueueLocked queues a copy of frame under the ARP queue's limits.
func (c *ndCache) enqueueLocked(e *ndEntry, frame []byte) {
	s := c.nic.stack
	b := getBuf(len(frame))
	charge := pendingCharge(b)
	for len(e.pending) > 0 && (len(e.pending) >= s.opts.ARPPendingLen || e.pendBytes+charge > s.opts.ARPPendingBytes) {
		old := e.pending[0]
		e.pending = slices.Delete(e.pending, 0, 1)
		oc := pendingCharge(old)
		e.pendBytes -= oc
		s.arpPending.Add(-1)
		s.arpPendingBytes.Add(-int64(oc))
		s.stats.ND.PendingDrops.Add(1)
		putBuf(old)
	}
	if s.arpPending.Load() >= int64(s.opts.ARPPendingTotal) || s.arpPendingBytes.Load()+int64(charge) > int64(s.opts.ARPPendingTotalBytes) {
		s.stats.ND.PendingDrops.Add(1)
		putBuf(b)
		return
	}
	copy(b, frame)
	e.pending = append(e.pending, b)
	e.pendBytes += charge
	s.arpPending.Add(1)
	s.arpPendingBytes.Add(int64(charge))
}

// evictLocked drops one entry to make room; false if none may go.
func (c *ndCache) evictLocked() bool {
	// A STALE entry first; else one in DELAY or PROBE, unconfirmed and
	// about to be probed. Those are what a flood of NS from spoofed
	// sources leaves (each answer moves its entry on), and keeping them
	// would refuse every new neighbour until their probes fail, seconds
	// later (Linux's forced GC takes any unreferenced entry). REACHABLE
	// and INCOMPLETE entries stay, and one whose frames are being written.
	var victim *ndEntry
	for _, e := range c.m {
		if e.flushing {
			continue
		}
		if e.state == NeighStale {
			victim = e
			break
		}
		if victim == nil && (e.state == NeighDelay || e.state == NeighProbe) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	if victim.timer != nil {
		victim.timer.Stop()
	}
	delete(c.m, victim.addr)
	c.nic.stack.stats.ND.CacheEvictions.Add(1)
	return true
}

// timeout runs e's state timer.
func (c *ndCache) timeout(e *ndEntry) {
	s := c.nic.stack
	c.mu.Lock()
	if c.closed || c.m[e.addr] != e {
		c.mu.Unlock()
		return
	}
	switch e.state {
	case NeighIncomplete:
		if e.probes < s.opts.NDMcastSolicit {
			e.probes++
			c.arm(e, c.retrans())
			c.mu.Unlock()
			c.solicit(e.addr, wire.MAC{})
			return
		}
		delete(c.m, e.addr)
		if e.counted {
			e.counted = false
			c.incomplete--
		}
		p := c.takePendingLocked(e)
		c.mu.Unlock()
		s.stats.ND.ResolveFailures.Add(1)
		s.stats.ND.PendingDrops.Add(uint64(len(p)))
		for _, f := range p {
			s.neighborFailed6(f[wire.EthernetHeaderLen:])
			putBuf(f)
		}
	case NeighReachable:
		c.enterLocked(e, NeighStale)
		c.mu.Unlock()
	case NeighStale:
		delete(c.m, e.addr)
		c.mu.Unlock()
	case NeighDelay:
		c.enterLocked(e, NeighProbe)
		mac := e.mac
		c.mu.Unlock()
		c.solicit(e.addr, mac)
	case NeighProbe:
		if e.probes < s.opts.NDUcastSolicit {
			e.probes++
			c.arm(e, c.retrans())
			mac := e.mac
			c.mu.Unlock()
			c.solicit(e.addr, mac)
			return
		}
		delete(c.m, e.addr)
		c.mu.Unlock()
		s.stats.ND.ProbeFailures.Add(1)
	default:
		c.mu.Unlock()
	}
}

// solicit sends an NS for target: multicast to its solicited-node group
// (mac zero) or unicast to a known MAC (NUD probes).
func (c *ndCache) solicit(target netip.Addr, mac wire.MAC) {
	n := c.nic
	src := n.selectSource6(target)
	if !src.IsValid() {
		return
	}
	var b [wire.NDPNSLen + 8]byte
	l := wire.PutNS(b[:], target, n.mac)
	dst := wire.SolicitedNode(target)
	if mac != (wire.MAC{}) {
		dst = target
	}
	n.sendND(src, dst, b[:l])
	n.stack.stats.ICMP6.OutNeighborSolicits.Add(1)
}

// learn records a link-layer address from an NS, RS or RA (RFC 4861
// 7.2.3, 6.3.4): a new entry or a changed address is STALE; an
// INCOMPLETE entry gets its address and sends what waited.
func (c *ndCache) learn(a netip.Addr, mac wire.MAC, create, router bool) {
	s := c.nic.stack
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	e := c.m[a]
	if e == nil {
		if len(c.m) >= s.opts.NDCacheSize && !c.evictLocked() {
			c.mu.Unlock()
			s.stats.ND.CacheFull.Add(1)
			return
		}
		e = &ndEntry{addr: a, mac: mac, router: router}
		c.m[a] = e
		c.enterLocked(e, NeighStale)
		c.mu.Unlock()
		return
	}
	if router {
		e.router = true
	}
	var p [][]byte
	switch {
	case e.state == NeighPermanent:
	case e.state == NeighIncomplete:
		e.mac = mac
		c.enterLocked(e, NeighStale)
		p = c.takePendingLocked(e)
	case mac != e.mac:
		e.mac = mac
		c.enterLocked(e, NeighStale)
	}
	c.flushUnlock(e, p)
}

// advert applies a neighbour advertisement (RFC 4861 7.2.5); it returns
// the entry's router flag before and after.
func (c *ndCache) advert(a netip.Addr, flags uint8, mac wire.MAC, hasMAC bool) (wasRouter, isRouter bool) {
	c.mu.Lock()
	e := c.m[a]
	if e == nil || c.closed || e.state == NeighPermanent {
		c.mu.Unlock()
		return false, false
	}
	wasRouter = e.router
	solicited := flags&wire.NAFlagSolicited != 0
	override := flags&wire.NAFlagOverride != 0
	if e.state == NeighIncomplete {
		if !hasMAC {
			c.mu.Unlock()
			return wasRouter, wasRouter
		}
		e.mac = mac
		if solicited {
			c.enterLocked(e, NeighReachable)
		} else {
			c.enterLocked(e, NeighStale)
		}
		e.router = flags&wire.NAFlagRouter != 0
		isRouter = e.router
		c.flushUnlock(e, c.takePendingLocked(e))
		return wasRouter, isRouter
	}
	differs := hasMAC && mac != e.mac
	if !override && differs {
		// Keep the address we have; a reachable entry becomes suspect.
		if e.state == NeighReachable {
			c.enterLocked(e, NeighStale)
		}
		c.mu.Unlock()
		return wasRouter, wasRouter
	}
	if hasMAC {
		e.mac = mac
	}
	switch {
	case solicited:
		c.enterLocked(e, NeighReachable)
	case differs:
		c.enterLocked(e, NeighStale)
	}
	e.router = flags&wire.NAFlagRouter != 0
	isRouter = e.router
	c.mu.Unlock()
	return wasRouter, isRouter
}

// Confirm is upper-layer reachability confirmation (RFC 4861 7.3.1): a
// neighbour in DELAY or PROBE (or STALE) becomes REACHABLE without a probe.
func (n *NIC) Confirm6(a netip.Addr) {
	c := n.v6.nd
	if c == nil {
		return
	}
	c.mu.Lock()
	if e := c.m[a]; e != nil && e.state != NeighIncomplete && e.state != NeighPermanent {
		c.enterLocked(e, NeighReachable)
	}
	c.mu.Unlock()
}
