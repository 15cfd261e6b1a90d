package stack

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// ICMP error rate limiting, as Linux does it: a global token bucket
// (icmp_msgs_per_sec / icmp_msgs_burst) and a bucket per destination
// (icmp_ratelimit: one message per interval, a burst of six), applied
// only to the types in the rate mask (icmp_ratemask). The per-destination
// state is a fixed set-associative table: a flood of spoofed sources
// evicts old entries (counted) instead of growing it.

// DefaultICMPRateMask is Linux's icmp_ratemask: destination unreachable,
// source quench, time exceeded and parameter problem (bit = type).
const DefaultICMPRateMask = 1<<3 | 1<<4 | 1<<11 | 1<<12

const icmpPeerWays = 4 // entries per set

type icmpPeer struct {
	addr   [16]byte // either family (IPv4 as v4-mapped)
	valid  bool
	last   int64 // clock nanoseconds of the last update
	tokens int64 // nanoseconds of credit, at most burst*interval
}

type icmpLimiter struct {
	mu       sync.Mutex
	global   tokenBucket
	interval int64 // per-destination cost in ns; 0 disables the per-destination limit
	burst    int64
	mask     uint32
	sets     [][icmpPeerWays]icmpPeer // allocated on first use
	nsets    int
	seed     maphash.Seed
}

func newICMPLimiter(o *Options) *icmpLimiter {
	l := &icmpLimiter{
		global: tokenBucket{rate: float64(o.ICMPRateLimit), burst: float64(o.ICMPRateBurst), tokens: float64(o.ICMPRateBurst)},
		burst:  int64(o.ICMPPeerBurst),
		mask:   o.ICMPRateMask,
		nsets:  max(1, o.ICMPPeerTableSize/icmpPeerWays),
		seed:   maphash.MakeSeed(),
	}
	if o.ICMPPeerInterval > 0 {
		l.interval = int64(o.ICMPPeerInterval)
	}
	return l
}

// allow decides whether an ICMP message of type typ to dst may go now.
// Types outside the mask are never limited; a local destination skips
// the per-destination limit (Linux does not limit loopback).
func (s *Stack) icmpAllow(typ uint8, dst netip.Addr) bool {
	l := s.icmpRL
	if typ >= 32 || l.mask&(1<<typ) == 0 {
		return true
	}
	return s.icmpAllowDst(dst)
}

// icmpAllowDst applies the per-destination and global limits to one
// error to dst, of either family (IPv4 and ICMPv6 errors share them).
func (s *Stack) icmpAllowDst(dst netip.Addr) bool {
	l := s.icmpRL
	st := &s.stats.ICMP
	now := s.clock.Now()
	peerLimited := l.interval > 0 && !s.IsLocal(dst)
	var p *icmpPeer
	l.mu.Lock()
	defer l.mu.Unlock()
	if peerLimited {
		p = l.peerLocked(dst, now.UnixNano(), &st.RatePeerEvictions)
		if p.tokens < l.interval {
			st.OutRateLimited.Add(1)
			st.OutRateLimitedPeer.Add(1)
			return false
		}
	}
	if !l.global.take(now) {
		st.OutRateLimited.Add(1)
		st.OutRateLimitedGlobal.Add(1)
		return false
	}
	if p != nil {
		p.tokens -= l.interval
	}
	return true
}

// peerLocked finds or makes dst's entry with its tokens brought up to now.
func (l *icmpLimiter) peerLocked(dst netip.Addr, now int64, evictions *Counter) *icmpPeer {
	if l.sets == nil {
		l.sets = make([][icmpPeerWays]icmpPeer, l.nsets)
	}
	a := dst.As16()
	set := &l.sets[maphash.Bytes(l.seed, a[:])%uint64(l.nsets)]
	full := l.burst * l.interval
	var p *icmpPeer
	victim := &set[0]
	for i := range set {
		e := &set[i]
		if e.valid && e.addr == a {
			p = e
			break
		}
		// A free way first, else the least recently used.
		if victim.valid && (!e.valid || e.last < victim.last) {
			victim = e
		}
	}
	if p == nil {
		if victim.valid {
			evictions.Add(1)
		}
		*victim = icmpPeer{addr: a, valid: true, last: now, tokens: full}
		return victim
	}
	if d := now - p.last; d > 0 {
		p.tokens = min(full, p.tokens+d)
	}
	p.last = now
	return p
}
