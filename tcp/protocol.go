package tcp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// connKey identifies a connection by its 4-tuple.
type connKey struct {
	local, remote netip.AddrPort
}

// childKey groups accepted connections holding a port, for bind conflicts.
type childKey struct {
	addr             netip.Addr
	reuse, reusePort bool
	dev              int32 // SO_BINDTODEVICE, the listener's (bindtodev.go)
}

// portEntry is everyone holding one local port.
type portEntry struct {
	users    []*Endpoint      // bound endpoints (bind, listen, connect)
	plain    int              // users not bound by connect: only they can refuse a connect the port
	children map[childKey]int // accepted connections, counted
	tw       []twPortCount    // TIME_WAIT records, counted (tcpsec)
	// devs: the users bound to a device (SO_BINDTODEVICE, bindtodev.go);
	// nil while none is.
	devs map[*Endpoint]int32
}

// Protocol is the TCP layer of one host. It demultiplexes segments to
// endpoints; each endpoint has its own lock.
type Protocol struct {
	host Host
	clk  clock.Clock
	cfg  Config
	base time.Time

	mu    sync.RWMutex
	conns connTable
	// Writers' locks, an endpoint hashed to one (sndcopy.go).
	wlocks [writeLocks]sync.Mutex
	// Flushers' queues, by write lock, made for the first endpoint on a
	// deferring route (txdefer.go): a stack that never has one (a
	// simulator's hosts) does not carry them.
	txqs      atomic.Pointer[[writeLocks]flushQueue]
	listeners map[uint16][]*Endpoint
	ports     map[uint16]*portEntry
	portHint  uint32
	// perf: connect's port offsets by destination (RFC 6056 algorithm 4).
	portPerturb   [portPerturbLen]uint32
	connectProbes uint64 // ports tried by bindConnect (p.mu held), for tests
	closed        bool
	// flushDone ends the flush queues' own goroutines (txdefer.go).
	flushDone chan struct{}

	key       [32]byte
	ccDefault string

	segPool sync.Pool
	st      stats
	hold    holdStats // held SYNs (holdsyn.go)

	// tcpsec: TIME_WAIT records (memory and orphans are gauges in st).
	tw twTable

	// perf: every endpoint timer, on one clock timer (issue 10).
	wheel *timerWheel

	// perf: endpoints waiting for room at a full link queue (room.go).
	room roomQueue
	// holder, when the host is one, holds the frames of a flush
	// (txdefer.go).
	holder OutputHolder

	// The socket options of an endpoint that set none, and the sets
	// endpoints share (opts.go).
	defOpts epOpts
	opts    optsTable

	spareBusy atomic.Pointer[epBusy]    // busy.go
	lent      atomic.Pointer[lentQueue] // a drained queue of lent buffers at hand (lend.go)
}

// NewProtocol makes the TCP layer over h.
func NewProtocol(h Host, cfg Config) *Protocol {
	cfg.setDefaults()
	p := &Protocol{
		flushDone: make(chan struct{}),
		host:      h,
		clk:       h.Clock(),
		cfg:       cfg,
		conns:     newConnTable(),
		listeners: make(map[uint16][]*Endpoint),
		ports:     make(map[uint16]*portEntry),
	}
	// Start at 1s so that zero can mean "unset" for deadlines.
	p.base = p.clk.Now().Add(-time.Second)
	p.wheel = newTimerWheel(p.clk, p.now)
	p.room.host, _ = h.(RoomNotifier)
	p.holder, _ = h.(OutputHolder)
	if cfg.Seed != nil {
		p.key = sha256.Sum256(cfg.Seed)
	} else {
		rand.Read(p.key[:])
	}
	if newCC(cfg.CongestionControl) == nil {
		p.cfg.CongestionControl = "cubic"
	}
	p.defOpts = epOpts{
		keepIdle: p.cfg.KeepIdle, keepIntvl: p.cfg.KeepIntvl,
		keepCnt: int32(min(max(p.cfg.KeepCnt, 0), 127)),
		ccName:  p.cfg.CongestionControl,
	}
	p.portHint = binary.BigEndian.Uint32(p.key[28:])
	p.segPool.New = func() any { return new(Segment) }
	return p
}

// now is the protocol's monotonic time.
func (p *Protocol) now() time.Duration { return p.clk.Now().Sub(p.base) }

// isn computes an RFC 6528 initial sequence number.
func (p *Protocol) isn(local, remote netip.AddrPort, now time.Duration) uint32 {
	return p.hash4(local, remote, 0) + uint32(now/(4*time.Microsecond))
}

// hash4 is a keyed hash of the 4-tuple and an extra word.
func (p *Protocol) hash4(local, remote netip.AddrPort, extra uint32) uint32 {
	var b [32 + 16 + 16 + 4 + 4 + 4]byte
	copy(b[:32], p.key[:])
	l, r := local.Addr().As16(), remote.Addr().As16()
	copy(b[32:], l[:])
	copy(b[48:], r[:])
	binary.BigEndian.PutUint16(b[64:], local.Port())
	binary.BigEndian.PutUint16(b[66:], remote.Port())
	binary.BigEndian.PutUint32(b[68:], extra)
	binary.BigEndian.PutUint32(b[72:], 0x5eed)
	s := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(s[:4])
}

// segment is a parsed incoming segment.
type segment struct {
	seq, ack uint32
	// dif is the index of the interface the segment arrived on; anyDev:
	// it matches a socket bound to any device (bindtodev.go).
	dif     int32
	anyDev  bool
	loop    bool // dif is loopback's: resolve it from the destination (bindtodev.go)
	flags   uint8
	wnd     uint16
	payload []byte
	opts    wire.TCPOptions
	urg     uint16 // urgent pointer (tcpsec)
	ecn     uint8  // the IP header's ECN field
	// echo: the IP options a reply carries when the IPv4 header had
	// some; nil: none. echoSrc computes it on demand (replyOpts,
	// ipopts_reply.go); echoBad: it does not fit, no reply goes out.
	echo    IPOptions
	echoSrc EchoSource
	echoBad bool
}

func (s *segment) has(f uint8) bool { return s.flags&f != 0 }

// seqLen is the sequence space the segment occupies.
func (s *segment) seqLen() uint32 {
	n := uint32(len(s.payload))
	if s.flags&wire.TCPFlagSYN != 0 {
		n++
	}
	if s.flags&wire.TCPFlagFIN != 0 {
		n++
	}
	return n
}

// HandleSegment takes one TCP segment addressed to one of our addresses
// (checksum already verified). seg is only valid during the call.
func (p *Protocol) HandleSegment(src, dst netip.Addr, tos uint8, b []byte) {
	p.handleSegment(src, dst, tos, b, nil, 0)
}

// Batch lets a caller that delivers several segments at once (a link
// batch) acknowledge in-order data once per batch instead of every second
// segment: ACKs that would go out at once are deferred to Flush (up to
// batchAckLimit bytes). A Batch is used by one goroutine at a time.
type Batch struct {
	p      *Protocol
	eps    []*Endpoint
	lender Lender // the link's buffers may be kept (lend.go)
	// The interface the batch's segments arrive on (SetInterface).
	dif          int32
	anyDev, loop bool
	// hold: an ACK for a hole still open at a batch's end may wait for
	// the next batch or the link's idle call (SetHold); held lists them.
	hold bool
	held []*Endpoint
}

// batchAckSegs is the least a batch may leave unacknowledged, in full
// segments (batchAckLimit).
const batchAckSegs = 16

// NewBatch makes a batch; reuse it for every batch of one goroutine.
func (p *Protocol) NewBatch() *Batch { return &Batch{p: p, anyDev: true} }

// HandleSegment is Protocol.HandleSegment with ACKs deferred to Flush.
func (b *Batch) HandleSegment(src, dst netip.Addr, tos uint8, seg []byte) {
	b.p.handleSegment(src, dst, tos, seg, b, 0)
}

// Flush sends the ACKs the batch deferred and wakes the readers of the
// connections that received data. The ACK goes out here even when a
// reader is about to read: left to the read (as Linux's
// tcp_cleanup_rbuf), it waited for the reader's goroutine and its copy,
// which stretched the round trip a kernel bbr sender measures and held
// it back (BENCHMARKS.md, "bbr kernel → sockstack").
func (b *Batch) Flush() {
	// ACKs held at the last batch's end go now, unless their connection
	// is in this batch too: then it is handled below, once.
	b.flushHeld(true)
	for i, e := range b.eps {
		e.lock()
		e.inBatch = false
		if b.hold && e.batchAck && e.batchAckNow && len(e.ooo) > 0 && !e.ackHeld && !(e.heldHole && e.heldAt == e.rcvNxt) {
			// A hole is still open at the batch's end. When the sender's
			// frames cross two CPUs (a veth), the missing segment is often
			// already queued for the next read: wait for it, once per
			// hole, so the sender does not take the inversion for a loss.
			e.ackHeld, e.heldHole, e.heldAt = true, true, e.rcvNxt
			b.held = append(b.held, e)
			e.p.st.AcksHeld.Add(1)
			if e.rcvLen > 0 {
				e.notify(waiter.EventIn)
			}
			e.unlock()
			b.eps[i] = nil
			continue
		}
		e.ackHeld = false
		if len(e.ooo) == 0 {
			e.heldHole, e.heldAt = false, 0
		}
		if e.batchAck {
			e.batchAck = false
			if e.ackPending != 0 || e.batchAckNow {
				e.ackNow = true
				e.output(e.p.now())
			}
		}
		readable := e.rcvLen > 0
		hold := 0 // the route's link, if it holds frames and this route defers
		if e.txDefer {
			hold = int(e.txHold)
		}
		// The ACK leaves first: on a deferring route (txdefer.go) at this
		// unlock, and a kernel bbr sender's round trip does not wait
		// for the reader's wake-up; the route's link, holding its frames
		// for the delivery's end, sends them now.
		e.unlock()
		if readable {
			if h := e.p.holder; h != nil && hold != 0 {
				h.FlushOutput(hold)
			}
			e.notify(waiter.EventIn)
		}
		b.eps[i] = nil
	}
	b.eps = b.eps[:0]
}

// SetHold lets the ACK that a hole still open at a batch's end owes wait
// for the end of the next batch. Only a link that calls Idle when it
// finds nothing more to read may set it: Idle bounds the wait.
func (b *Batch) SetHold(on bool) { b.hold = on }

// Holding tells whether ACKs wait for the next batch or Idle.
func (b *Batch) Holding() bool { return len(b.held) > 0 }

// Idle sends the ACKs held for the next batch: the link has nothing
// more to read, so the holes they report are real, for now.
func (b *Batch) Idle() { b.flushHeld(false) }

// flushHeld sends the held ACKs; skipBatched leaves those whose
// connection is in the batch being flushed to the rest of Flush.
func (b *Batch) flushHeld(skipBatched bool) {
	if len(b.held) == 0 {
		return
	}
	for i, e := range b.held {
		b.held[i] = nil
		e.lock()
		if skipBatched && e.inBatch {
			e.unlock()
			continue
		}
		if e.ackHeld {
			e.ackHeld = false
			if e.batchAck {
				e.batchAck = false
				if e.state != StateClosed && (e.ackPending != 0 || e.batchAckNow) {
					e.ackNow = true
					e.output(e.p.now())
				}
			}
		}
		e.unlock()
	}
	b.held = b.held[:0]
}

// A non-zero divert is the port of the transparent listener a diverted
// segment may open a connection on (transparent.go).
func (p *Protocol) handleSegment(src, dst netip.Addr, tos uint8, b []byte, batch *Batch, divert uint16) {
	p.handleSegmentEcho(src, dst, tos, b, batch, divert, nil)
}

// handleSegmentEcho is handleSegment with the IP options a connection
// the segment opens replies with (ipopts.go).
func (p *Protocol) handleSegmentEcho(src, dst netip.Addr, tos uint8, b []byte, batch *Batch, divert uint16, echo EchoSource) {
	p.st.InSegs.Add(1)
	if len(b) < wire.TCPMinHeaderLen {
		p.st.InErrs.Add(1)
		return
	}
	t := wire.TCP(b)
	off := t.DataOffset()
	if off < wire.TCPMinHeaderLen || off > len(b) {
		p.st.InErrs.Add(1)
		return
	}
	var s segment
	if off > wire.TCPMinHeaderLen {
		if wire.ParseTCPOptions(b[wire.TCPMinHeaderLen:off], &s.opts) != nil {
			p.st.InErrs.Add(1)
			return
		}
	}
	s.seq, s.ack, s.flags, s.wnd = t.Seq(), t.Ack(), t.Flags(), t.Window()
	s.urg = t.Urgent()
	s.ecn = tos & 3
	s.echoSrc = echo
	s.payload = b[off:]
	s.anyDev = true
	if batch != nil {
		s.dif, s.anyDev, s.loop = batch.dif, batch.anyDev, batch.loop
	}
	if t.SrcPort() == 0 || t.DstPort() == 0 || !src.IsValid() || src.IsMulticast() || dst.IsMulticast() {
		p.st.InErrs.Add(1)
		return
	}
	// Flag combinations no stack sends.
	if s.has(wire.TCPFlagSYN) && s.has(wire.TCPFlagFIN|wire.TCPFlagRST) {
		p.st.InErrs.Add(1)
		return
	}
	key := connKey{netip.AddrPortFrom(dst, t.DstPort()), netip.AddrPortFrom(src, t.SrcPort())}
	p.mu.RLock()
	e := p.conns.get(key)
	p.mu.RUnlock()
	if e != nil {
		if e.handleSegment(&s, batch) {
			return
		}
		// The endpoint went away.
	}
	if p.twInput(key, &s) {
		return
	}
	if divert != 0 {
		p.divertListen(key, &s, divert)
		return
	}
	if l := p.findListener(key, &s); l != nil {
		l.handleListen(key, &s)
		return
	}
	p.st.NoPortDrops.Add(1)
	p.sendResetFor(key, &s)
}

// findListener picks the listener for a local address, exact address
// first; within each, one bound to the segment's device before an
// unbound one, and none bound to another device (Linux's compute_score).
func (p *Protocol) findListener(k connKey, s *segment) *Endpoint {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ls := p.listeners[k.local.Port()]
	var pe *portEntry
	if len(ls) > 0 {
		pe = p.ports[k.local.Port()]
	}
	var wild *Endpoint
	var exact []*Endpoint
	var wilds []*Endpoint
	exactDev, wildDev := false, false
	for _, l := range ls {
		dev := pe.devOf(l)
		if !p.devOK(s, dev, k.local.Addr()) {
			continue
		}
		a := l.local.Addr()
		if a == k.local.Addr() {
			exact, exactDev = devPrefer(exact, exactDev, l, dev != 0)
		} else if a.IsUnspecified() && (a.Is4() == k.local.Addr().Is4() || a.Is6() && !l.v6only) {
			// A wildcard of the packet's family, or a dual-stack ::.
			wilds, wildDev = devPrefer(wilds, wildDev, l, dev != 0)
			wild = l
		}
	}
	pick := func(c []*Endpoint) *Endpoint {
		if len(c) == 1 {
			return c[0]
		}
		// SO_REUSEPORT group: spread by 4-tuple.
		h := uint32(k.remote.Port())*2654435761 ^ uint32(k.local.Port())
		rb := k.remote.Addr().As16()
		h ^= binary.BigEndian.Uint32(rb[12:])
		return c[h%uint32(len(c))]
	}
	if len(exact) > 0 {
		return pick(exact)
	}
	if wild != nil {
		return pick(wilds)
	}
	return nil
}

// sendResetFor answers a segment that has no connection (RFC 9293 3.10.7.1).
func (p *Protocol) sendResetFor(k connKey, s *segment) {
	if s.has(wire.TCPFlagRST) {
		return
	}
	var h wire.TCPHeader
	if s.has(wire.TCPFlagACK) {
		h.Seq = s.ack
		h.Flags = wire.TCPFlagRST
	} else {
		h.Ack = s.seq + s.seqLen()
		h.Flags = wire.TCPFlagRST | wire.TCPFlagACK
	}
	// The segment's IP options echoed, as Linux's tcp_v4_send_reset
	// (ipopts_reply.go). No socket: mark 0, as Linux with
	// fwmark_reflect off (its default).
	if o, ok := s.replyOpts(); ok {
		p.sendReply(k, &h, 0, 0, false, o, 0, 0)
	}
}

// HandleError reports an ICMP error (or neighbour failure) for a segment
// we sent from local to remote whose sequence number was seq.
//
// It reports whether a connection took the error: one matches and the
// quoted sequence number is data in flight on it. The stack lets only such
// an error lower its per-destination path MTU.
func (p *Protocol) HandleError(local, remote netip.AddrPort, seq uint32, kind ErrorKind, mtu int) bool {
	return p.HandleNetError(local, remote, seq, &NetError{Kind: kind, MTU: mtu})
}

// HandleNetError is HandleError with the error in full.
func (p *Protocol) HandleNetError(local, remote netip.AddrPort, seq uint32, ne *NetError) bool {
	p.st.ICMPErrors.Add(1)
	p.mu.RLock()
	e := p.conns.get(connKey{local, remote})
	p.mu.RUnlock()
	if e == nil {
		return false
	}
	if ne.Kind == ErrSourceQuench {
		return true // ignored (RFC 6633), but it was ours
	}
	return e.handleError(seq, ne)
}

// Stats returns the counters.
func (p *Protocol) Stats() StatsSnapshot { return p.st.snapshot() }

// CountInErr counts a segment the host dropped before TCP saw it (a bad
// checksum, a header shorter than it says), in InErrs as Linux's
// TcpInErrs counts them.
func (p *Protocol) CountInErr() { p.st.InErrs.Add(1) }

// NewEndpoint makes an unbound endpoint.
func (p *Protocol) NewEndpoint() *Endpoint {
	e := &Endpoint{p: p}
	e.initOptions()
	return e
}

// Table lists every socket: listeners, connections, TIME_WAIT.
func (p *Protocol) Table() []ConnInfo {
	p.mu.RLock()
	eps := make([]*Endpoint, 0, p.conns.len()+8)
	for _, ls := range p.listeners {
		eps = append(eps, ls...)
	}
	p.conns.each(func(e *Endpoint) { eps = append(eps, e) })
	p.mu.RUnlock()
	out := make([]ConnInfo, 0, len(eps))
	for _, e := range eps {
		e.lock()
		ci := ConnInfo{Local: e.local, Remote: e.remote, Inet6: e.inet6, State: e.state, RecvQ: e.rcvLen, SendQ: e.sndLen}
		if e.state == StateListen {
			ci.RecvQ = len(e.ls.acceptQ)
			ci.SendQ = e.ls.backlog
		}
		e.unlock()
		out = append(out, ci)
	}
	return p.twRows(out)
}

// Close stops everything: connections are reset, timers stopped.
func (p *Protocol) Close() {
	p.mu.Lock()
	p.closed = true
	var eps []*Endpoint
	for _, ls := range p.listeners {
		eps = append(eps, ls...)
	}
	p.conns.each(func(e *Endpoint) { eps = append(eps, e) })
	p.mu.Unlock()
	for _, e := range eps {
		e.lock()
		if e.state == StateListen {
			e.closeListenerLocked()
		} else if e.state != StateClosed {
			if e.state != StateTimeWait && e.state != StateSynSent {
				e.sendReset()
			}
			e.abortLocked(syscall.ECONNABORTED)
		}
		e.stopTimers()
		e.unlock()
	}
	p.twClose()
	p.wheel.close()
	p.mu.Lock()
	select {
	case <-p.flushDone: // closed twice
	default:
		close(p.flushDone)
	}
	p.mu.Unlock()
}

// --- tables ---

func (p *Protocol) addConn(e *Endpoint) bool {
	k := connKey{e.local, e.remote}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if !p.conns.put(k, e) {
		return false
	}
	e.inConns = true
	return true
}

func (p *Protocol) removeConn(e *Endpoint) {
	if !e.inConns {
		return
	}
	k := connKey{e.local, e.remote}
	p.mu.Lock()
	p.conns.del(k, e)
	e.inConns = false
	p.mu.Unlock()
}

func (p *Protocol) addChild(e *Endpoint) {
	p.mu.Lock()
	pe := p.ports[e.local.Port()]
	if pe == nil {
		pe = &portEntry{}
		p.ports[e.local.Port()] = pe
	}
	if pe.children == nil {
		pe.children = make(map[childKey]int)
	}
	pe.children[childKey{e.local.Addr(), e.reuseAddr, e.reusePort, e.devOpt()}]++
	e.childPort = true
	p.mu.Unlock()
}

// releasePort drops e's hold on its local port.
func (p *Protocol) releasePort(e *Endpoint) {
	if !e.bound && !e.childPort {
		return
	}
	port := e.local.Port()
	p.mu.Lock()
	pe := p.ports[port]
	if pe != nil {
		if e.childPort {
			k := childKey{e.local.Addr(), e.reuseAddr, e.reusePort, e.devOpt()}
			if pe.children[k]--; pe.children[k] <= 0 {
				delete(pe.children, k)
			}
		} else {
			for i, u := range pe.users {
				if u == e {
					// slices.Delete clears the tail: a port held on (by
					// a TIME_WAIT record) must not keep e reachable.
					pe.users = slices.Delete(pe.users, i, i+1)
					delete(pe.devs, e)
					if !u.connectBound {
						pe.plain--
					}
					break
				}
			}
		}
		if pe.empty() {
			delete(p.ports, port)
		}
	}
	p.mu.Unlock()
	e.bound, e.childPort, e.autoBound = false, false, false
}

func addrOverlap(a, b netip.Addr) bool { return addrOverlap6(a, false, b, false) }

// addrOverlap6 is Linux's bind overlap across families: within one
// family equal addresses or a wildcard; across them only a dual-stack ::
// (not IPV6_V6ONLY), which covers every IPv4 address.
func addrOverlap6(a netip.Addr, aOnly bool, b netip.Addr, bOnly bool) bool {
	if a.Is4() != b.Is4() {
		return a.Is6() && a.IsUnspecified() && !aOnly || b.Is6() && b.IsUnspecified() && !bOnly
	}
	return a == b || a.IsUnspecified() || b.IsUnspecified()
}

// conflicts applies Linux's bind conflict rules for e taking (addr, port).
func (p *Protocol) conflicts(e *Endpoint, addr netip.Addr, pe *portEntry) bool {
	if pe == nil {
		return false
	}
	for _, u := range pe.users {
		if u == e || !addrOverlap6(addr, e.v6only, u.local.Addr(), u.v6only) || devsApart(e.devOpt(), pe.devOf(u)) {
			continue
		}
		if e.reusePort && u.reusePort {
			continue
		}
		if e.reuseAddr && u.reuseAddr && u.state != StateListen {
			continue
		}
		if e.reuseAddr && u.state == StateTimeWait {
			continue
		}
		return true
	}
	for k := range pe.children {
		if !addrOverlap(addr, k.addr) || devsApart(e.devOpt(), k.dev) {
			continue
		}
		if (e.reusePort && k.reusePort) || e.reuseAddr {
			continue
		}
		return true
	}
	return pe.twConflict(e, addr)
}

const ephemeralLow, ephemeralHigh = 49152, 65535

// bind takes (addr, port) for e; port 0 picks an ephemeral port.
func (p *Protocol) bind(e *Endpoint, addr netip.Addr, port uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port == 0 {
		n := uint32(ephemeralHigh - ephemeralLow + 1)
		p.portHint += 2
		start := p.portHint
		for i := uint32(0); i < n; i++ {
			cand := uint16(ephemeralLow + (start+i)%n)
			pe := p.ports[cand]
			if pe == nil || pe.empty() {
				port = cand
				break
			}
		}
		if port == 0 {
			return syscall.EADDRINUSE
		}
	} else if p.conflicts(e, addr, p.ports[port]) {
		return syscall.EADDRINUSE
	}
	pe := p.ports[port]
	if pe == nil {
		pe = &portEntry{}
		p.ports[port] = pe
	}
	pe.users = append(pe.users, e)
	pe.setDev(e, e.devOpt()) // bindtodev.go
	pe.plain++               // e.connectBound is false: bindConnect sets it
	e.local = netip.AddrPortFrom(addr, port)
	e.bound = true
	return nil
}

// portPerturbLen is the size of bindConnect's table of offsets.
const portPerturbLen = 1024

// bindConnect picks a local port for a connect to remote from src so
// that the 4-tuple is unique (ports may be shared between connects to
// different destinations, like Linux). TIME_WAIT tuples may be reused when
// timestamps protect the new incarnation.
func (p *Protocol) bindConnect(e *Endpoint, src netip.Addr, remote netip.AddrPort, now time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := uint32(ephemeralHigh - ephemeralLow + 1)
	// RFC 6056 algorithm 4 (Linux's too): a secret hash of the 4-tuple
	// without the local port, plus a counter kept per destination (a
	// table slot chosen by the same hash), moved past each port taken.
	// The next connect to that destination starts where the last one
	// stopped, instead of probing the ports it already holds: with a
	// single global counter, destinations that recur at a fixed period
	// start from a few points only, and a connect probes more and more
	// taken ports as connections accumulate.
	h := p.hash4(netip.AddrPortFrom(src, 0), remote, 0)
	perturb := &p.portPerturb[h%portPerturbLen]
	start := h>>16 + *perturb
	for i := uint32(0); i < n; i++ {
		p.connectProbes++
		cand := uint16(ephemeralLow + (start+i)%n)
		pe := p.ports[cand]
		ok := true
		if pe != nil {
			if len(pe.children) > 0 || pe.twBlocksConnect(src) {
				continue
			}
			// A user bound by connect holds a specific address, and
			// shares the port with other connects by 4-tuple (checked
			// below): only the others can refuse it. Skipping the loop
			// without them keeps connect O(1) with a million
			// connections sharing the ephemeral ports.
			for i := 0; pe.plain > 0 && i < len(pe.users); i++ {
				u := pe.users[i]
				if !u.connectBound || (u.local.Addr() != src && !u.local.Addr().IsUnspecified()) {
					if addrOverlap(u.local.Addr(), src) {
						ok = false
						break
					}
				}
			}
		}
		if !ok {
			continue
		}
		k := connKey{netip.AddrPortFrom(src, cand), remote}
		if p.conns.get(k) != nil || !p.twTakeLocked(k, now) {
			continue
		}
		if pe == nil {
			pe = &portEntry{}
			p.ports[cand] = pe
		}
		pe.users = append(pe.users, e)
		pe.setDev(e, e.devOpt()) // bindtodev.go
		e.local = k.local
		e.bound, e.autoBound, e.connectBound = true, true, true
		*perturb += i + 2
		return nil
	}
	return syscall.EADDRNOTAVAIL
}

func (p *Protocol) addListener(e *Endpoint) {
	p.mu.Lock()
	port := e.local.Port()
	ls := p.listeners[port]
	for _, l := range ls {
		if l == e {
			p.mu.Unlock()
			return
		}
	}
	p.listeners[port] = append(ls, e)
	p.mu.Unlock()
}

func (p *Protocol) removeListener(e *Endpoint) {
	p.mu.Lock()
	port := e.local.Port()
	ls := p.listeners[port]
	for i, l := range ls {
		if l == e {
			ls = append(ls[:i:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(p.listeners, port)
	} else {
		p.listeners[port] = ls
	}
	p.mu.Unlock()
}

// --- counters ---

type stats struct {
	ActiveOpens, PassiveOpens, AttemptFails, EstabResets, CurrEstab    atomic.Uint64
	InSegs, OutSegs, RetransSegs, InErrs, OutRsts, InRsts              atomic.Uint64
	ListenOverflows, ListenDrops                                       atomic.Uint64
	SynCookiesSent, SynCookiesRecv, SynCookiesFailed                   atomic.Uint64
	OFOQueueDrops, OFOQueued                                           atomic.Uint64
	ChallengeACKs, ChallengeACKsLimited, PAWSDrops                     atomic.Uint64
	FastRetrans, SACKRecovery, RenoRecovery, Timeouts                  atomic.Uint64
	TimeWaitReused, KeepaliveTimeouts, KeepaliveProbes                 atomic.Uint64
	DelayedACKs, ZeroWindowProbes, OutOfWindowDrops, NoPortDrops       atomic.Uint64
	SACKBlocksRecv, DSACKsRecv, SACKRetrans, LostRetransmit            atomic.Uint64
	PMTUUpdates, ICMPErrors, AbortOnData, AbortOnClose, AbortOnTimeout atomic.Uint64
	AbortOnLinger, OutputErrors, SynRetransmits                        atomic.Uint64
	TLPProbes, RACKReoTimeouts                                         atomic.Uint64
	LinkQueueFull, LinkRoomWakeups                                     atomic.Uint64
	ErrQueueFull, RFC4884Invalid                                       atomic.Uint64

	// tcpsec: hardening counters.
	ACKSkippedSeq, ACKSkippedPAWS, ACKSkippedTimeWait atomic.Uint64
	TimeWaitOverflow, TimeWaitRecords                 atomic.Uint64
	AbortOnMemory, Orphans                            atomic.Uint64
	MemoryPressures, RcvMemDrops, MemBytes            atomic.Uint64
	DSACKOldSent, DSACKOfoSent                        atomic.Uint64
	DSACKUndo                                         atomic.Uint64

	InCEPkts, ECNCwndReductions atomic.Uint64

	OptsUnshared atomic.Uint64

	// Lent receive buffers (lend.go): payloads kept in them, and payloads
	// copied because the connection's queue of them was full.
	LentSegs, LentQueueFull atomic.Uint64

	// Diverted segments that found no IP_TRANSPARENT listener (transparent.go).
	TProxyNoListener atomic.Uint64

	AcksHeld atomic.Uint64 // Batch.SetHold

	DeferAcceptDrops atomic.Uint64 // bare handshake ACKs a TCP_DEFER_ACCEPT listener ignored (tcpopts.go)

	// Segments written after the endpoint's lock, and flushes handed to
	// a queue's goroutine past the budget (txdefer.go).
	DeferredSegs, FlushHandOffs atomic.Uint64
	SndReleaseHeld              atomic.Uint64
}

func (s *stats) snapshot() StatsSnapshot {
	return StatsSnapshot{
		ActiveOpens: s.ActiveOpens.Load(), PassiveOpens: s.PassiveOpens.Load(), AttemptFails: s.AttemptFails.Load(),
		EstabResets: s.EstabResets.Load(), CurrEstab: s.CurrEstab.Load(),
		InSegs: s.InSegs.Load(), OutSegs: s.OutSegs.Load(), RetransSegs: s.RetransSegs.Load(), InErrs: s.InErrs.Load(),
		OutRsts: s.OutRsts.Load(), InRsts: s.InRsts.Load(),
		ListenOverflows: s.ListenOverflows.Load(), ListenDrops: s.ListenDrops.Load(),
		SynCookiesSent: s.SynCookiesSent.Load(), SynCookiesRecv: s.SynCookiesRecv.Load(), SynCookiesFailed: s.SynCookiesFailed.Load(),
		OFOQueueDrops: s.OFOQueueDrops.Load(), OFOQueued: s.OFOQueued.Load(),
		ChallengeACKs: s.ChallengeACKs.Load(), ChallengeACKsLimited: s.ChallengeACKsLimited.Load(), PAWSDrops: s.PAWSDrops.Load(),
		FastRetrans: s.FastRetrans.Load(), SACKRecovery: s.SACKRecovery.Load(), RenoRecovery: s.RenoRecovery.Load(), Timeouts: s.Timeouts.Load(),
		TimeWaitReused: s.TimeWaitReused.Load(), KeepaliveTimeouts: s.KeepaliveTimeouts.Load(), KeepaliveProbes: s.KeepaliveProbes.Load(),
		DelayedACKs: s.DelayedACKs.Load(), ZeroWindowProbes: s.ZeroWindowProbes.Load(), OutOfWindowDrops: s.OutOfWindowDrops.Load(), NoPortDrops: s.NoPortDrops.Load(),
		SACKBlocksRecv: s.SACKBlocksRecv.Load(), DSACKsRecv: s.DSACKsRecv.Load(), SACKRetrans: s.SACKRetrans.Load(), LostRetransmit: s.LostRetransmit.Load(),
		PMTUUpdates: s.PMTUUpdates.Load(), ICMPErrors: s.ICMPErrors.Load(), AbortOnData: s.AbortOnData.Load(), AbortOnClose: s.AbortOnClose.Load(),
		AbortOnTimeout: s.AbortOnTimeout.Load(), AbortOnLinger: s.AbortOnLinger.Load(), OutputErrors: s.OutputErrors.Load(), SynRetransmits: s.SynRetransmits.Load(),
		TLPProbes: s.TLPProbes.Load(), RACKReoTimeouts: s.RACKReoTimeouts.Load(),
		LinkQueueFull: s.LinkQueueFull.Load(), LinkRoomWakeups: s.LinkRoomWakeups.Load(),
		ErrQueueFull: s.ErrQueueFull.Load(), RFC4884Invalid: s.RFC4884Invalid.Load(),

		ACKSkippedSeq: s.ACKSkippedSeq.Load(), ACKSkippedPAWS: s.ACKSkippedPAWS.Load(), ACKSkippedTimeWait: s.ACKSkippedTimeWait.Load(),
		TimeWaitOverflow: s.TimeWaitOverflow.Load(), TimeWaitRecords: s.TimeWaitRecords.Load(),
		AbortOnMemory: s.AbortOnMemory.Load(), Orphans: s.Orphans.Load(),
		MemoryPressures: s.MemoryPressures.Load(), RcvMemDrops: s.RcvMemDrops.Load(), MemBytes: s.MemBytes.Load(),
		DSACKOldSent: s.DSACKOldSent.Load(), DSACKOfoSent: s.DSACKOfoSent.Load(), DSACKUndo: s.DSACKUndo.Load(),
		InCEPkts: s.InCEPkts.Load(), ECNCwndReductions: s.ECNCwndReductions.Load(),
		OptsUnshared: s.OptsUnshared.Load(),
		LentSegs:     s.LentSegs.Load(), LentQueueFull: s.LentQueueFull.Load(),
		TProxyNoListener: s.TProxyNoListener.Load(),
		AcksHeld:         s.AcksHeld.Load(),
		DeferAcceptDrops: s.DeferAcceptDrops.Load(),
		DeferredSegs:     s.DeferredSegs.Load(), FlushHandOffs: s.FlushHandOffs.Load(), SndReleaseHeld: s.SndReleaseHeld.Load(),
	}
}
