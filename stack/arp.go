package stack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Neighbour states (a subset of RFC 4861's, which Linux also uses for ARP).
type NeighborState uint8

const (
	NeighIncomplete NeighborState = iota // request sent, no answer yet
	NeighReachable                       // answered recently
	NeighStale                           // answered long ago: used, re-confirmed on use
	NeighPermanent                       // configured by hand
	NeighDelay                           // stale and used: waiting for upper-layer confirmation before probing (ND)
	NeighProbe                           // unicast solicitations sent to confirm (ND)
)

func (s NeighborState) String() string {
	return [...]string{"INCOMPLETE", "REACHABLE", "STALE", "PERMANENT", "DELAY", "PROBE"}[s]
}

// NeighborInfo describes one cache entry, for `arp -a`-like listings.
type NeighborInfo struct {
	Addr  netip.Addr
	MAC   wire.MAC
	State NeighborState
	// Flushing: the frames that waited for resolution are still being
	// sent; until they are, new frames queue behind them (and
	// super-packets are cut, not sent whole).
	Flushing bool
}

type neighbor struct {
	addr      netip.Addr
	mac       wire.MAC
	state     NeighborState
	confirmed time.Time // last answer
	used      time.Time
	probed    time.Time // last request sent for a stale entry
	updated   time.Time // last change of mac (for the locktime)
	tries     int
	pending   [][]byte // frames (Ethernet header included) waiting for the MAC
	pendBytes int      // what pending is charged
	// flushing is set while the queue is being sent after resolution:
	// new frames queue behind it instead of overtaking it, and the fast
	// path is published only once the queue is empty.
	flushing bool
	timer    clock.Timer

	// fast lets senders use the entry without the cache lock or the
	// clock: the MAC with fastValid set while the entry is REACHABLE and
	// not yet due for confirmation (or PERMANENT), zero otherwise. It is
	// written under the cache lock.
	fast    atomic.Uint64
	touched atomic.Bool // used through fast since used was last updated
	reach   clock.Timer // ends the fast path when reachability expires
}

const fastValid = 1 << 63

func (e *neighbor) setFast(on bool) {
	if !on {
		e.fast.Store(0)
		return
	}
	m := e.mac
	e.fast.Store(fastValid | uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5]))
}

// noteUse folds fast-path use into used; the cache lock is held.
func (e *neighbor) noteUse(now time.Time) {
	if e.touched.Load() {
		e.touched.Store(false)
		e.used = now
	}
}

// neighborCache is a NIC's ARP cache: bounded, with a bounded queue of
// packets per unresolved neighbour, retries, ageing.
type neighborCache struct {
	nic     *NIC
	mu      sync.Mutex
	entries map[netip.Addr]*neighbor
	sweep   clock.Timer
	closed  bool
	// incomplete counts the entries still being resolved: at most half
	// the cache (maxIncomplete), so a scan of a connected prefix cannot
	// take the room of neighbours that make themselves known (RFC 6583).
	incomplete int

	// hint holds recently resolved entries by the address's last byte,
	// for the lock-free lookup.
	hint [16]atomic.Pointer[neighbor]
}

// maxIncomplete is how many entries of a neighbour cache of size n may
// wait for an answer at once: half of it, at least one.
func maxIncomplete(n int) int { return max(n/2, 1) }

func hintSlot(a netip.Addr) int { return int(a.As4()[3] & 15) }

// lookupFast returns a's MAC when a usable entry is at hand without the
// lock; ok false sends the caller to resolve.
func (c *neighborCache) lookupFast(a netip.Addr) (mac wire.MAC, ok bool) {
	e := c.hint[hintSlot(a)].Load()
	if e == nil || e.addr != a {
		return mac, false
	}
	v := e.fast.Load()
	if v&fastValid == 0 {
		return mac, false
	}
	if !e.touched.Load() {
		e.touched.Store(true)
	}
	return wire.MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, true
}

// dropLocked removes e from the table; the lock is held.
func (c *neighborCache) dropLocked(e *neighbor) {
	if e.state == NeighIncomplete {
		c.incomplete--
	}
	delete(c.entries, e.addr)
	e.setFast(false)
	if e.reach != nil {
		e.reach.Stop()
	}
}

func newNeighborCache(n *NIC) *neighborCache {
	c := &neighborCache{nic: n, entries: map[netip.Addr]*neighbor{}}
	c.sweep = n.stack.clock.AfterFunc(n.stack.opts.ARPStaleTimeout, c.age)
	return c
}

func (c *neighborCache) close() {
	c.mu.Lock()
	c.closed = true
	c.sweep.Stop()
	for _, e := range c.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
		if e.reach != nil {
			e.reach.Stop()
		}
		e.setFast(false)
		for _, f := range c.takePendingLocked(e) {
			putBuf(f)
		}
	}
	c.mu.Unlock()
}

// pendingOverhead is charged per queued frame on top of its buffer, as
// Linux's truesize charges the sk_buff.
const pendingOverhead = 256

func pendingCharge(b []byte) int { return cap(b) + pendingOverhead }

// takePendingLocked empties e's queue and releases its charge; the
// caller sends or frees the frames.
func (c *neighborCache) takePendingLocked(e *neighbor) [][]byte {
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

func (c *neighborCache) list() []NeighborInfo {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []NeighborInfo
	for _, e := range c.entries {
		out = append(out, NeighborInfo{Addr: e.addr, MAC: e.mac, State: e.state, Flushing: e.flushing})
	}
	return out
}

// age removes stale entries unused for the stale timeout.
func (c *neighborCache) age() {
	s := c.nic.stack
	now := s.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, e := range c.entries {
		e.noteUse(now)
		if e.state == NeighReachable && now.Sub(e.confirmed) > s.opts.ARPReachable {
			e.state = NeighStale
			e.setFast(false)
		}
		if e.state == NeighStale && now.Sub(e.used) > s.opts.ARPStaleTimeout && now.Sub(e.confirmed) > s.opts.ARPStaleTimeout {
			c.dropLocked(e)
			s.stats.ARP.CacheEvictions.Add(1)
		}
	}
	c.sweep.Reset(s.opts.ARPStaleTimeout / 2)
}

// SetStatic adds a permanent entry.
func (n *NIC) SetStatic(a netip.Addr, mac wire.MAC) {
	c := n.neigh
	if c == nil {
		return
	}
	c.mu.Lock()
	var pending [][]byte
	if old := c.entries[a]; old != nil {
		if old.timer != nil {
			old.timer.Stop()
		}
		pending = c.takePendingLocked(old)
		c.dropLocked(old)
	}
	e := &neighbor{addr: a, mac: mac, state: NeighPermanent}
	e.setFast(true)
	c.entries[a] = e
	c.hint[hintSlot(a)].Store(e)
	c.mu.Unlock()
	// What waited for resolution goes to the configured MAC.
	for _, f := range pending {
		wire.Ethernet(f).SetDst(mac)
		n.writeFrame(f)
		putBuf(f)
	}
}

// resolve returns the MAC for next hop a. When unknown, frame (a full
// frame whose destination MAC is filled in later) is queued and a request
// goes out; ok is false. The frame is copied.
func (c *neighborCache) resolve(a netip.Addr, frame []byte) (mac wire.MAC, ok bool) {
	s := c.nic.stack
	now := s.clock.Now()
	c.mu.Lock()
	e := c.entries[a]
	if e != nil && e.state != NeighIncomplete && !e.flushing {
		e.used = now
		mac = e.mac
		c.hint[hintSlot(a)].Store(e)
		// A stale entry is still used, and re-confirmed by a unicast probe.
		refresh := e.state == NeighStale || (e.state == NeighReachable && now.Sub(e.confirmed) > s.opts.ARPReachable)
		if refresh && now.Sub(e.probed) > s.opts.ARPRetryTime {
			e.state = NeighStale
			e.setFast(false)
			e.probed = now
			c.mu.Unlock()
			c.sendRequest(a, mac)
			return mac, true
		}
		c.mu.Unlock()
		return mac, true
	}
	if e == nil {
		full := c.incomplete >= maxIncomplete(s.opts.ARPCacheSize)
		if full || len(c.entries) >= s.opts.ARPCacheSize && !c.evictLocked(now) {
			c.mu.Unlock()
			if full {
				s.stats.ARP.IncompleteFull.Add(1)
			} else {
				s.stats.ARP.CacheFull.Add(1)
			}
			s.stats.ARP.PendingDrops.Add(1)
			s.neighborFailed(frame[wire.EthernetHeaderLen:])
			return mac, false
		}
		e = &neighbor{addr: a, state: NeighIncomplete, used: now}
		c.entries[a] = e
		c.incomplete++
		e.timer = s.clock.AfterFunc(s.opts.ARPRetryTime, func() { c.retry(a, e) })
		e.tries = 1
		c.enqueueLocked(e, frame)
		c.mu.Unlock()
		c.sendRequest(a, wire.BroadcastMAC)
		return mac, false
	}
	c.enqueueLocked(e, frame)
	c.mu.Unlock()
	return mac, false
}

// enqueueLocked queues a copy of frame for e. The neighbour's own queue
// makes room by dropping its oldest frames (as Linux's unresolved queue
// does); when all neighbours together are full, the new frame is dropped.
func (c *neighborCache) enqueueLocked(e *neighbor, frame []byte) {
	s := c.nic.stack
	st := &s.stats.ARP
	b := getBuf(len(frame))
	charge := pendingCharge(b)
	for len(e.pending) > 0 && (len(e.pending) >= s.opts.ARPPendingLen || e.pendBytes+charge > s.opts.ARPPendingBytes) {
		old := e.pending[0]
		copy(e.pending, e.pending[1:])
		e.pending[len(e.pending)-1] = nil
		e.pending = e.pending[:len(e.pending)-1]
		oc := pendingCharge(old)
		e.pendBytes -= oc
		s.arpPending.Add(-1)
		s.arpPendingBytes.Add(-int64(oc))
		st.PendingQueueFull.Add(1)
		st.PendingDrops.Add(1)
		putBuf(old)
	}
	if s.arpPending.Load() >= int64(s.opts.ARPPendingTotal) || s.arpPendingBytes.Load()+int64(charge) > int64(s.opts.ARPPendingTotalBytes) {
		st.PendingGlobalFull.Add(1)
		st.PendingDrops.Add(1)
		putBuf(b)
		return
	}
	copy(b, frame)
	e.pending = append(e.pending, b)
	e.pendBytes += charge
	s.arpPending.Add(1)
	s.arpPendingBytes.Add(int64(charge))
}

// evictLocked frees one stale entry; false if none can go.
func (c *neighborCache) evictLocked(now time.Time) bool {
	var victim *neighbor
	for _, e := range c.entries {
		e.noteUse(now)
		if (e.state == NeighStale || e.state == NeighReachable) && !e.flushing {
			if victim == nil || e.used.Before(victim.used) {
				victim = e
			}
		}
	}
	if victim == nil {
		return false
	}
	c.dropLocked(victim)
	c.nic.stack.stats.ARP.CacheEvictions.Add(1)
	return true
}

// retry sends another request or gives up.
func (c *neighborCache) retry(a netip.Addr, e *neighbor) {
	s := c.nic.stack
	c.mu.Lock()
	if c.closed || c.entries[a] != e || e.state != NeighIncomplete {
		c.mu.Unlock()
		return
	}
	if e.tries < s.opts.ARPRetries {
		e.tries++
		e.timer.Reset(s.opts.ARPRetryTime)
		c.mu.Unlock()
		c.sendRequest(a, wire.BroadcastMAC)
		return
	}
	c.dropLocked(e)
	pending := c.takePendingLocked(e)
	c.mu.Unlock()
	s.stats.ARP.ResolveFailures.Add(1)
	s.stats.ARP.PendingResolveFailed.Add(uint64(len(pending)))
	s.stats.ARP.PendingDrops.Add(uint64(len(pending)))
	for _, f := range pending {
		s.neighborFailed(f[wire.EthernetHeaderLen:])
		putBuf(f)
	}
}

// learn records a's MAC from an ARP packet and sends what was waiting.
// create says whether a new entry may be made: only for a request
// addressed to us (RFC 826's merge), never for a reply nobody asked for
// (Linux's arp_accept=0). override skips the locktime (a gratuitous ARP).
// It reports whether the neighbour is (now) in the cache.
func (c *neighborCache) learn(a netip.Addr, mac wire.MAC, create, override bool) bool {
	s := c.nic.stack
	now := s.clock.Now()
	c.mu.Lock()
	e := c.entries[a]
	fresh := e == nil
	if e == nil {
		if !create {
			c.mu.Unlock()
			return false
		}
		if len(c.entries) >= s.opts.ARPCacheSize && !c.evictLocked(now) {
			c.mu.Unlock()
			s.stats.ARP.CacheFull.Add(1)
			return false
		}
		// Made in state REACHABLE below, never counted as incomplete.
		e = &neighbor{addr: a, used: now, updated: now, mac: mac}
		c.entries[a] = e
	}
	if e.state == NeighPermanent {
		c.mu.Unlock()
		return true
	}
	if mac != e.mac {
		// The first answer wins for a while: a different MAC for an entry
		// in use is taken only after the locktime (Linux's arp locktime),
		// which blunts a race of forged replies.
		if (e.state == NeighReachable || e.flushing) && !override && now.Sub(e.updated) < s.opts.ARPLocktime {
			c.mu.Unlock()
			s.stats.ARP.LocktimeIgnored.Add(1)
			return true
		}
		e.updated = now
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.mac = mac
	if e.state == NeighIncomplete && !fresh {
		c.incomplete-- // resolved
	}
	e.state = NeighReachable
	e.confirmed = now
	if e.reach == nil {
		e.reach = s.clock.AfterFunc(s.opts.ARPReachable, func() { c.expire(e) })
	} else {
		e.reach.Reset(s.opts.ARPReachable)
	}
	if e.flushing {
		// Another goroutine is sending the queue; it publishes when done.
		c.mu.Unlock()
		return true
	}
	// Send the queue in order before anything may take the fast path or
	// resolve's direct answer: frames sent meanwhile queue behind it.
	e.flushing = true
	for {
		pending := c.takePendingLocked(e)
		if len(pending) == 0 {
			break
		}
		dst := e.mac
		c.mu.Unlock()
		for _, f := range pending {
			wire.Ethernet(f).SetDst(dst)
			c.nic.writeFrame(f)
			putBuf(f)
		}
		c.mu.Lock()
	}
	e.flushing = false
	if c.entries[a] == e && e.state == NeighReachable && !c.closed {
		e.setFast(true)
		c.hint[hintSlot(a)].Store(e)
	}
	c.mu.Unlock()
	return true
}

// expire ends the lock-free use of e when its reachability runs out, so
// the next send takes resolve's path, which sends the confirming probe.
func (c *neighborCache) expire(e *neighbor) {
	s := c.nic.stack
	now := s.clock.Now()
	c.mu.Lock()
	if e.state == NeighReachable && now.Sub(e.confirmed) >= s.opts.ARPReachable {
		e.noteUse(now)
		e.setFast(false)
	}
	c.mu.Unlock()
}

func (c *neighborCache) sendRequest(target netip.Addr, dstMAC wire.MAC) {
	n := c.nic
	src := n.primaryAddr(target)
	if !src.IsValid() {
		return
	}
	n.sendARP(wire.ARPRequest, dstMAC, src, wire.MAC{}, target)
	n.stack.stats.ARP.OutRequests.Add(1)
}

// announce sends a gratuitous ARP for a new address.
func (c *neighborCache) announce(a netip.Addr) {
	c.nic.sendARP(wire.ARPRequest, wire.BroadcastMAC, a, wire.MAC{}, a)
	c.nic.stack.stats.ARP.Gratuitous.Add(1)
}

func (n *NIC) sendARP(op uint16, dst wire.MAC, srcIP netip.Addr, targetMAC wire.MAC, targetIP netip.Addr) {
	var f [wire.EthernetHeaderLen + wire.ARPLen]byte
	wire.PutEthernet(f[:], dst, n.mac, wire.EtherTypeARP)
	info := wire.ARPInfo{Op: op, SenderMAC: n.mac, SenderIP: srcIP, TargetMAC: targetMAC, TargetIP: targetIP}
	info.Put(f[wire.EthernetHeaderLen:])
	n.writeFrame(f[:])
}

// handleARP processes one received ARP packet.
func (n *NIC) handleARP(b []byte) {
	s := n.stack
	info, err := wire.ParseARP(b)
	if err != nil {
		s.stats.ARP.InMalformed.Add(1)
		return
	}
	if info.Op == wire.ARPRequest {
		s.stats.ARP.InRequests.Add(1)
	} else if info.Op == wire.ARPReply {
		s.stats.ARP.InReplies.Add(1)
	} else {
		s.stats.ARP.InMalformed.Add(1)
		return
	}
	if arpMartian(info.SenderIP, info.TargetIP) || s.IsLocal(info.SenderIP) {
		// Linux refuses these too (ip_route_input on the sender, the
		// target checks of arp_process): they would only fill the cache
		// or claim one of our own addresses.
		s.stats.ARP.InMartian.Add(1)
		return
	}
	forUs := n.hasAddr(info.TargetIP)
	if info.SenderIP.IsValid() && !info.SenderIP.IsUnspecified() && !info.SenderMAC.IsMulticast() {
		garp := info.SenderIP == info.TargetIP
		known := n.neigh.learn(info.SenderIP, info.SenderMAC, forUs && info.Op == wire.ARPRequest, garp)
		if !known && info.Op == wire.ARPReply {
			s.stats.ARP.InUnsolicited.Add(1)
		}
	}
	if !forUs {
		s.stats.ARP.InNotForUs.Add(1)
		return
	}
	if info.Op == wire.ARPRequest {
		n.sendARP(wire.ARPReply, info.SenderMAC, info.TargetIP, info.SenderMAC, info.SenderIP)
		s.stats.ARP.OutReplies.Add(1)
	}
}

// arpMartian reports a sender that cannot be a neighbour (127/8, 0/8 other
// than the 0.0.0.0 of a duplicate-address probe, 224/4 and above) or a
// target no one may ask for (127/8, 224/4).
func arpMartian(sender, target netip.Addr) bool {
	sa, ta := sender.As4(), target.As4()
	if sa[0] == 127 || sa[0] >= 224 || sa[0] == 0 && !sender.IsUnspecified() {
		return true
	}
	return ta[0] == 127 || ta[0] >= 224 && ta[0] < 240
}
