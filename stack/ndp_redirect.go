package stack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Redirects (RFC 4861 section 8). A router that forwarded our packet
// out of the link it came in on tells us of a better first hop for its
// destination: another router on the link (target link-local) or the
// destination itself, on-link (target == destination). A valid
// redirect installs a destination-cache entry, a host route looked up
// before the routing table; every invalid one is dropped and counted
// by reason (Stats.Redirect6).

const (
	// redirectLife is how long a redirect's entry lives without another
	// redirect for the destination (RFC 4861 leaves it to the host;
	// entries only go when unused, so a fixed lifetime stands in for
	// garbage collection).
	redirectLife = 10 * time.Minute
	// defaultMaxRedirects bounds the destination cache; beyond it new
	// redirects are ignored (counted in Redirect6.CacheFull).
	defaultMaxRedirects = 256
)

// redirect6 is one destination-cache entry.
type redirect6 struct {
	nic     *NIC
	nextHop netip.Addr // the target: a router, or the destination on-link
	gateway bool       // the target is a router (target != destination)
	until   time.Time
}

// redirects is the destination cache: written under mu, read lock-free
// through a copy-on-write snapshot (nil until the first redirect, so
// the route lookup of a host that never got one costs a nil check).
type redirects struct {
	mu   sync.Mutex
	m    map[netip.Addr]redirect6
	snap atomic.Pointer[map[netip.Addr]redirect6]
	max  int // 0: defaultMaxRedirects
}

// redirected6 is the destination-cache entry for dst, if any is live.
func (s *Stack) redirected6(dst netip.Addr) (ResolvedRoute, bool) {
	p := s.redir6.snap.Load()
	if p == nil {
		return ResolvedRoute{}, false
	}
	e, ok := (*p)[dst]
	if !ok {
		return ResolvedRoute{}, false
	}
	if s.clock.Now().After(e.until) {
		s.forgetRedirect(dst)
		return ResolvedRoute{}, false
	}
	rr := ResolvedRoute{NIC: e.nic, NextHop: e.nextHop, MTU: e.nic.mtu6(), Src: e.nic.selectSource6(dst)}
	if e.gateway {
		rr.Gateway = e.nextHop
	}
	return rr, rr.Src.IsValid()
}

func (s *Stack) forgetRedirect(dst netip.Addr) {
	r := &s.redir6
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[dst]; ok {
		delete(r.m, dst)
		r.publishLocked()
	}
}

func (r *redirects) publishLocked() {
	m := make(map[netip.Addr]redirect6, len(r.m))
	for k, v := range r.m {
		m[k] = v
	}
	r.snap.Store(&m)
}

// Redirects6 lists the destination cache: destination -> next hop.
func (s *Stack) Redirects6() map[netip.Addr]netip.Addr {
	out := map[netip.Addr]netip.Addr{}
	if p := s.redir6.snap.Load(); p != nil {
		now := s.clock.Now()
		for d, e := range *p {
			if !now.After(e.until) {
				out[d] = e.nextHop
			}
		}
	}
	return out
}

// receiveRedirect validates a redirect (RFC 4861 8.1) and applies it
// (8.3). The ICMPv6 checksum was checked by the caller.
func (s *Stack) receiveRedirect(n *NIC, h wire.IPv6, m wire.ICMPv6) {
	st := &s.stats.Redirect6
	s.stats.ICMP6.InRedirects.Add(1)
	src := h.Src()
	switch {
	case n.loopback:
		st.BadSource.Add(1)
		return
	case !src.IsLinkLocalUnicast():
		st.BadSource.Add(1)
		return
	case h.HopLimit() != wire.NDPHopLimit:
		st.BadHopLimit.Add(1)
		return
	case m.Code() != 0:
		st.BadCode.Add(1)
		return
	case len(m) < wire.NDPRedirectLen:
		st.BadLength.Add(1)
		return
	}
	var o wire.NDPOptions
	d, err := wire.ParseNDP(m, &o)
	if err != nil {
		st.BadOptions.Add(1) // a zero-length or truncated option
		return
	}
	dst, target := d.RedirectDst(), d.Target()
	if dst.IsMulticast() {
		st.MulticastDst.Add(1)
		return
	}
	onLink := target == dst
	if !onLink && !target.IsLinkLocalUnicast() {
		st.BadTarget.Add(1)
		return
	}
	// Only the router we send dst's packets to may redirect them.
	cur, err := s.findRoute6(dst)
	if err != nil || cur.Local || cur.NIC != n || !cur.Gateway.IsValid() || cur.Gateway.WithZone("") != src {
		st.NotFirstHop.Add(1)
		return
	}
	if o.HasTargetLL && n.v6.nd != nil {
		// Create or update the target's entry, STALE; a router target
		// is marked one (8.3).
		n.v6.nd.learn(target, o.TargetLL, true, !onLink)
	}
	r := &s.redir6
	r.mu.Lock()
	defer r.mu.Unlock()
	limit := r.max
	if limit == 0 {
		limit = defaultMaxRedirects
	}
	if _, ok := r.m[dst]; !ok && len(r.m) >= limit {
		st.CacheFull.Add(1)
		return
	}
	if r.m == nil {
		r.m = map[netip.Addr]redirect6{}
	}
	r.m[dst] = redirect6{nic: n, nextHop: target, gateway: !onLink, until: s.clock.Now().Add(redirectLife)}
	r.publishLocked()
	st.Accepted.Add(1)
}
