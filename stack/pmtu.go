package stack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Path MTU cache (RFC 1191), as Linux keeps it in its route exceptions:
// a fragmentation-needed error about one of our datagrams lowers the MTU
// used towards its destination for PMTUExpires (Linux's mtu_expires,
// 10 min), never below PMTUMin (min_pmtu, 552): a smaller report sets
// PMTUMin and "locks" the path, whose packets then go without DF and are
// fragmented, as Linux does. A report with MTU 0 (pre-RFC 1191 routers)
// takes the plateau below the quoted datagram's length. The cache holds at
// most PMTUCacheSize destinations; when full, the entry closest to expiry
// goes (counted).

// rfc1191Plateaus are RFC 1191 section 7's table of common MTUs.
var rfc1191Plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

// plateauBelow is the largest plateau less than length (68 at least).
func plateauBelow(length int) int {
	for _, p := range rfc1191Plateaus {
		if p < length {
			return p
		}
	}
	return 68
}

type pmtuEntry struct {
	mtu     int
	locked  bool
	expires time.Time
}

type pmtuCache struct {
	mu sync.RWMutex
	n  atomic.Int32 // entries: lets the send path skip an empty cache without a lock
	m  map[netip.Addr]pmtuEntry
}

// pathMTU returns the cached path MTU for dst when there is a live one.
func (s *Stack) pathMTU(dst netip.Addr) (mtu int, locked, ok bool) {
	c := &s.pmtu
	if c.n.Load() == 0 {
		return 0, false, false
	}
	now := s.clock.Now()
	c.mu.RLock()
	e, ok := c.m[dst]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return 0, false, false
	}
	return e.mtu, e.locked, true
}

// PathMTU is the path MTU the stack uses towards dst: the route's MTU,
// lowered by what fragmentation-needed errors taught it (0: no route).
func (s *Stack) PathMTU(dst netip.Addr) int {
	r, err := s.FindRoute(dst)
	if err != nil {
		return 0
	}
	if m, _, ok := s.pathMTU(dst); ok && m < r.MTU && !r.Local {
		return m
	}
	return r.MTU
}

// pmtuLearn is what a fragmentation-needed error would teach; it is
// stored only once the transport has accepted the error (commitPMTU).
type pmtuLearn struct {
	dst                     netip.Addr
	mtu                     int // 0: nothing to learn
	locked, plateau, belowM bool
	v6                      bool // counted in IP6 (Packet Too Big)
}

// learnPMTU works out what a fragmentation-needed error whose quoted
// datagram is inner and reported MTU is mtu teaches: the MTU to report to
// the transport (the plateau for an MTU of 0; PMTUMin for a smaller one),
// or mtu 0 when the error teaches nothing. Nothing is stored yet: like
// Linux (tcp_v4_err, ipv4_sk_update_pmtu) the cache moves only for an
// error the transport matched to a socket, so a forged error quoting no
// data in flight cannot lower the path MTU for every connection.
func (s *Stack) learnPMTU(inner []byte, mtu int) pmtuLearn {
	if len(inner) < wire.IPv4MinHeaderLen || inner[0]>>4 != 4 {
		return pmtuLearn{}
	}
	ih := wire.IPv4(inner)
	dst := ih.Dst()
	if s.IsLocal(dst) {
		// Not about a datagram sent off this host. A source not ours is
		// learnt only for an error a diverted connection takes
		// (commitPMTU, transparent.go).
		return pmtuLearn{}
	}
	l := pmtuLearn{dst: dst}
	if mtu == 0 {
		mtu = plateauBelow(ih.TotalLen())
		l.plateau = true
	}
	if mtu < s.opts.PMTUMin {
		mtu, l.locked, l.belowM = s.opts.PMTUMin, true, true
	}
	r, err := s.FindRoute(dst)
	if err != nil || r.Local {
		return pmtuLearn{}
	}
	cur := r.MTU
	if m, _, ok := s.pathMTU(dst); ok && m < cur {
		cur = m
	}
	if mtu > cur || mtu >= r.MTU && !l.locked {
		return pmtuLearn{} // path MTUs only go down; the route's own MTU needs no entry
	}
	l.mtu = mtu
	return l
}

// commitPMTU stores what learnPMTU found, once a socket took the error.
func (s *Stack) commitPMTU(l pmtuLearn) {
	if l.mtu == 0 {
		return
	}
	s.storePMTU(l.dst, l.mtu, l.locked)
	if l.v6 {
		st := &s.stats.IP6
		if l.belowM {
			st.PMTUBelowMin.Add(1)
		}
		st.PMTUUpdates.Add(1)
		return
	}
	st := &s.stats.IP
	if l.plateau {
		st.PMTUPlateaus.Add(1)
	}
	if l.belowM {
		st.PMTUBelowMin.Add(1)
	}
	st.PMTUUpdates.Add(1)
}

// storePMTU records a path MTU for dst (either family) until PMTUExpires;
// the full cache gives up the entry closest to expiry (counted).
func (s *Stack) storePMTU(dst netip.Addr, mtu int, locked bool) {
	st := &s.stats.IP
	now := s.clock.Now()
	c := &s.pmtu
	c.mu.Lock()
	if c.m == nil {
		c.m = map[netip.Addr]pmtuEntry{}
	}
	if _, ok := c.m[dst]; !ok && len(c.m) >= s.opts.PMTUCacheSize {
		var victim netip.Addr
		var first time.Time
		for a, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, a) // expired: free
				continue
			}
			if !victim.IsValid() || e.expires.Before(first) {
				victim, first = a, e.expires
			}
		}
		if len(c.m) >= s.opts.PMTUCacheSize {
			delete(c.m, victim)
			st.PMTUEvictions.Add(1)
		}
	}
	c.m[dst] = pmtuEntry{mtu: mtu, locked: locked, expires: now.Add(s.opts.PMTUExpires)}
	c.n.Store(int32(len(c.m)))
	c.mu.Unlock()
}
