package tcp

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Held SYNs (docs/transparent.md): a listener in this mode answers no
// SYN itself. Each new SYN becomes a SynRequest the application takes
// (NextSynRequest) and then completes (the SYN-ACK goes out) or rejects
// (a reset, an ICMP destination unreachable, or nothing). A relay can so
// learn whether the original destination accepts before the client's
// handshake completes, as gVisor's tcp.Forwarder holds the SYN.
//
// Every request the listener holds, queued or taken and not yet
// answered, counts against its backlog; a SYN beyond it is answered with
// a SYN cookie, as Linux's full SYN queue falls back to cookies: a flood
// of spoofed SYNs, which never complete a cookie handshake, then cannot
// lock genuine clients out. Such a connection completes before the
// application answers and comes from NextSynRequest established
// (Complete hands it over, Reject resets it); with cookies off
// (Config.NoSynCookies) or a full accept queue the SYN is dropped and
// counted. A request not answered within the hold timeout expires (the
// SYN is dropped: the client retransmits). Retransmitted SYNs of a held
// request are absorbed; a SYN on its 4-tuple with another sequence
// number is dropped, so that a spoofed SYN cannot change what the answer
// acknowledges (a genuine new attempt heals: the client resets the
// SYN-ACK of the old one and its next SYN is a new request). A reset
// from the client whose sequence number is in the window the SYN-ACK
// would offer drops its request, as Linux drops a SYN_RECV request on an
// in-window RST: the client gave up, and the application learns it when
// it answers (ECONNRESET). A RST|ACK, which acknowledges nothing that
// was sent, and an ACK do not touch it (the listener's usual answers).

// DefaultHoldSYNTimeout is how long a held SYN waits for its answer.
const DefaultHoldSYNTimeout = 30 * time.Second

// Reject is how a held SYN is refused.
type Reject uint8

const (
	// RejectReset answers with a reset: the client's connect fails with
	// ECONNREFUSED.
	RejectReset Reject = iota
	// RejectSilent sends nothing: the client retransmits its SYN (a new
	// request) and times out unless one is completed.
	RejectSilent
	// RejectNetUnreach sends an ICMP network unreachable (ICMPv6 no
	// route): ENETUNREACH at a Linux client.
	RejectNetUnreach
	// RejectHostUnreach sends an ICMP host unreachable (ICMPv6 address
	// unreachable): EHOSTUNREACH.
	RejectHostUnreach
	// RejectPortUnreach sends an ICMP(v6) port unreachable: ECONNREFUSED.
	RejectPortUnreach
	// RejectAdminProhibited sends an ICMP communication administratively
	// prohibited (code 13; ICMPv6 code 1): EHOSTUNREACH over IPv4,
	// EACCES over IPv6.
	RejectAdminProhibited
)

func (r Reject) String() string {
	switch r {
	case RejectReset:
		return "reset"
	case RejectSilent:
		return "silent"
	case RejectNetUnreach:
		return "net-unreachable"
	case RejectHostUnreach:
		return "host-unreachable"
	case RejectPortUnreach:
		return "port-unreachable"
	case RejectAdminProhibited:
		return "admin-prohibited"
	}
	return "reject?"
}

// UnreachSender is what the host offers to reject a held SYN with an
// ICMP error (the stack implements it). quote is the TCP header of the
// SYN as the client sent it (rebuilt: the packet is not kept), from
// client to dst; the host wraps it in its IP header and sends the
// destination unreachable for how to the client, subject to its ICMP
// rate limit. It is called with no TCP lock held.
type UnreachSender interface {
	SendUnreach(client, dst netip.Addr, quote []byte, how Reject) error
}

// HoldSYNStats are the held-SYN counters of a Protocol.
type HoldSYNStats struct {
	Held           uint64 // SYNs held as new requests
	Retrans        uint64 // retransmitted SYNs of a held request, absorbed
	QueueFull      uint64 // SYNs dropped: the backlog of requests was full, and cookies off or the accept queue full
	Cookies        uint64 // SYNs answered with a SYN cookie: the backlog of requests was full
	Established    uint64 // connections a cookie completed, handed out by NextSynRequest
	Completed      uint64 // requests completed (SYN-ACK sent)
	Reset          uint64 // requests rejected with a reset
	ICMP           uint64 // requests rejected with an ICMP destination unreachable
	Silent         uint64 // requests rejected silently
	Expired        uint64 // requests the application did not answer in time
	Aborted        uint64 // requests dropped because the listener closed or left the mode
	CompleteFailed uint64 // completions that failed (no route back, 4-tuple in use)
	SeqMismatch    uint64 // SYNs on a held request's 4-tuple with another sequence number, dropped
	SynData        uint64 // held SYNs that carried data: not kept, not acknowledged (the client sends it again)
	NoRoute        uint64 // SYNs dropped: no route back to the client (a SYN from ::, say)
	ClientReset    uint64 // requests dropped on the client's in-window reset before they were answered
}

type holdStats struct {
	held, retrans, full, completed, reset, icmp, silent, expired, aborted, failed atomic.Uint64
	seqMismatch, synData, noRoute, cookies, established, clientReset              atomic.Uint64
}

// HoldSYNStats returns the held-SYN counters.
func (p *Protocol) HoldSYNStats() HoldSYNStats {
	h := &p.hold
	return HoldSYNStats{Held: h.held.Load(), Retrans: h.retrans.Load(), QueueFull: h.full.Load(),
		Completed: h.completed.Load(), Reset: h.reset.Load(), ICMP: h.icmp.Load(), Silent: h.silent.Load(),
		Expired: h.expired.Load(), Aborted: h.aborted.Load(), CompleteFailed: h.failed.Load(),
		SeqMismatch: h.seqMismatch.Load(), SynData: h.synData.Load(), NoRoute: h.noRoute.Load(),
		Cookies: h.cookies.Load(), Established: h.established.Load(), ClientReset: h.clientReset.Load()}
}

// Request states.
const (
	reqQueued  uint8 = iota // waiting for NextSynRequest
	reqTaken                // the application has it
	reqDone                 // answered
	reqExpired              // not answered in time
	reqAborted              // the listener closed
	reqReset                // the client reset it
)

// SynRequest is a SYN a held-SYN listener has not answered.
type SynRequest struct {
	l          *Endpoint
	k          connKey
	syn        segment // its payload dropped
	dataLen    uint32  // the payload's length: a reset acknowledges it, as a closed port's
	at         time.Duration
	prev, next *SynRequest // the listener's requests in arrival order
	state      uint8       // guarded by l.mu
	// conn is the connection a SYN cookie completed before the
	// application could answer (nil for a held SYN); such a request is
	// in no queue of the hold state and never expires.
	conn *Endpoint
}

// Local is the address the client connected to: for a diverted SYN its
// original destination.
func (r *SynRequest) Local() netip.AddrPort { return r.k.local }

// Remote is the client.
func (r *SynRequest) Remote() netip.AddrPort { return r.k.remote }

// holdQueue is a held-SYN listener's state (in listenState).
type holdQueue struct {
	timeout     time.Duration
	reqs        map[connKey]*SynRequest // every live request, queued or taken
	first, last *SynRequest             // the same, oldest first: they expire in this order
	ring        []*SynRequest           // queued ones, oldest first (a ring)
	head, n     int
	timer       clock.Timer
	armed       bool
	expire      func() // the timer's function, made once
}

// SetHoldSYN turns held SYNs on or off (timeout 0: DefaultHoldSYNTimeout).
// It may be set before or after Listen. Turning it off drops the
// requests not yet answered (counted in Aborted). A negative timeout,
// or an endpoint that is connected, is EINVAL.
func (e *Endpoint) SetHoldSYN(on bool, timeout time.Duration) error {
	if timeout < 0 {
		return syscall.EINVAL
	}
	if timeout == 0 {
		timeout = DefaultHoldSYNTimeout
	}
	e.lock()
	defer e.unlock()
	if e.userClosed || e.state != StateClosed && e.state != StateListen || e.state == StateClosed && e.everConnected {
		return syscall.EINVAL
	}
	if e.ls == nil {
		e.ls = new(listenState)
	}
	if !on {
		e.dropHeldLocked()
		e.ls.hold = nil
		return nil
	}
	if e.ls.hold == nil {
		e.ls.hold = &holdQueue{reqs: make(map[connKey]*SynRequest)}
	}
	h := e.ls.hold
	h.timeout = timeout
	if h.armed {
		// The armed expiry was for the old timeout.
		e.armHold(h, e.p.now())
	}
	return nil
}

// HoldSYN reports whether held SYNs are on.
func (e *Endpoint) HoldSYN() bool {
	e.lock()
	defer e.unlock()
	return e.ls != nil && e.ls.hold != nil
}

// holdSYN holds a new SYN for the application, or absorbs a
// retransmission of one held (l.mu held; it unlocks).
func (l *Endpoint) holdSYN(k connKey, s *segment) {
	p := l.p
	h := l.ls.hold
	if r := h.reqs[k]; r != nil {
		if s.seq != r.syn.seq {
			// Not a retransmission: anyone who guesses the client's
			// port could send it. Linux keeps a SYN_RECV request on
			// such a SYN too (it answers with an ACK).
			l.unlock()
			p.hold.seqMismatch.Add(1)
			return
		}
		// A retransmission: its options and timestamp are the
		// client's latest, which the SYN-ACK echoes.
		r.syn.flags, r.syn.wnd, r.syn.opts, r.syn.ecn = s.flags, s.wnd, s.opts, s.ecn
		r.dataLen = uint32(len(s.payload))
		l.unlock()
		p.hold.retrans.Add(1)
		return
	}
	if _, err := p.host.Route(k.remote.Addr()); err != nil {
		// Complete could not answer it; the application must not act
		// on it (a relay would dial). The usual listener drops such a
		// SYN too (newChild).
		l.unlock()
		p.hold.noRoute.Add(1)
		p.st.ListenDrops.Add(1)
		return
	}
	now := p.now()
	if len(h.reqs) >= max(l.ls.backlog, 1) {
		if p.cfg.NoSynCookies || len(l.ls.acceptQ) > l.ls.backlog {
			l.unlock()
			p.hold.full.Add(1)
			p.st.ListenDrops.Add(1)
			return
		}
		// The usual listener's cookie path: cookieCheck queues the
		// connection for NextSynRequest.
		l.ls.cookieAt = now
		c := l.newChild(k, s, now)
		l.unlock()
		if c == nil {
			p.st.ListenDrops.Add(1) // the route went away since the check above
			return
		}
		p.hold.cookies.Add(1)
		l.sendCookie(c, k, s, now)
		return
	}
	s.replyOpts() // the echo is computed from the packet, which goes away
	r := &SynRequest{l: l, k: k, syn: *s, dataLen: uint32(len(s.payload)), at: now}
	r.syn.payload = nil // a SYN's data is not kept: the client sends it again
	if r.dataLen > 0 {
		p.hold.synData.Add(1)
	}
	h.reqs[k] = r
	if h.last == nil {
		h.first = r
	} else {
		h.last.next, r.prev = r, h.last
	}
	h.last = r
	h.push(r)
	if !h.armed {
		l.armHold(h, now)
	}
	l.unlock()
	p.hold.held.Add(1)
	l.notify(waiter.EventIn)
}

// push queues r for NextSynRequest; the ring grows only when the
// backlog did (every queued request is live, and they are at most the
// backlog).
func (h *holdQueue) push(r *SynRequest) {
	if h.n == len(h.ring) {
		ring := make([]*SynRequest, max(2*len(h.ring), 8))
		for i := range h.n {
			ring[i] = h.ring[(h.head+i)%len(h.ring)]
		}
		h.ring, h.head = ring, 0
	}
	h.ring[(h.head+h.n)%len(h.ring)] = r
	h.n++
}

// pop takes the oldest queued request.
func (h *holdQueue) pop() *SynRequest {
	if h.n == 0 {
		return nil
	}
	r := h.ring[h.head]
	h.ring[h.head] = nil
	h.head = (h.head + 1) % len(h.ring)
	h.n--
	return r
}

// unlink forgets a live request (l.mu held). A queued one that expires
// is the oldest queued (requests expire in arrival order) and is popped;
// one the client resets may stand anywhere in the ring (at most the
// backlog long) and is cut out of it.
func (h *holdQueue) unlink(r *SynRequest) {
	if r.state == reqQueued && h.n > 0 {
		if h.ring[h.head] == r {
			h.pop()
		} else {
			h.remove(r)
		}
	}
	delete(h.reqs, r.k)
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		h.first = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		h.last = r.prev
	}
	r.prev, r.next = nil, nil
}

// remove cuts r out of the ring, the later ones moving up a place.
func (h *holdQueue) remove(r *SynRequest) {
	l := len(h.ring)
	for i := 1; i < h.n; i++ {
		if h.ring[(h.head+i)%l] != r {
			continue
		}
		for j := i; j+1 < h.n; j++ {
			h.ring[(h.head+j)%l] = h.ring[(h.head+j+1)%l]
		}
		h.ring[(h.head+h.n-1)%l] = nil
		h.n--
		return
	}
}

// heldReset is the listener's answer to a reset (l.mu not held): one
// from the client of a request not yet answered, its sequence number
// in the window the SYN-ACK would offer and no ACK flag (nothing was
// sent to acknowledge), drops the request, as Linux's tcp_check_req
// drops a SYN_RECV request on an in-window RST. A reset draws no answer.
func (l *Endpoint) heldReset(k connKey, s *segment) {
	if s.has(wire.TCPFlagACK) {
		return
	}
	l.lock()
	defer l.unlock()
	if l.ls == nil || l.ls.hold == nil {
		return
	}
	h := l.ls.hold
	r := h.reqs[k]
	if r == nil || s.seq-(r.syn.seq+1) >= uint32(max(min(l.rcvCap, 65535), 1)) {
		return
	}
	h.unlink(r)
	r.state = reqReset
	l.p.hold.clientReset.Add(1)
}

// armHold schedules the expiry of the oldest request (l.mu held).
func (l *Endpoint) armHold(h *holdQueue, now time.Duration) {
	if h.first == nil {
		return
	}
	d := max(h.first.at+h.timeout-now, 0)
	if h.timer == nil {
		h.expire = func() { l.expireHeld(h) }
		h.timer = l.p.clk.AfterFunc(d, h.expire)
	} else {
		h.timer.Reset(d)
	}
	h.armed = true
}

// expireHeld drops the requests whose time is up; their clients hear
// nothing, as when a SYN is lost.
func (l *Endpoint) expireHeld(h *holdQueue) {
	p := l.p
	l.lock()
	defer l.unlock()
	if l.ls == nil || l.ls.hold != h {
		return // closed, or the mode was left
	}
	h.armed = false
	now := p.now()
	for r := h.first; r != nil && r.at+h.timeout <= now; r = h.first {
		h.unlink(r)
		r.state = reqExpired
		p.hold.expired.Add(1)
	}
	l.armHold(h, now)
}

// dropHeldLocked drops every request of a listener that closes or
// leaves the mode (l.mu held). Their clients hear nothing: they
// retransmit, and the SYN then finds whatever listens.
func (l *Endpoint) dropHeldLocked() {
	if l.ls == nil || l.ls.hold == nil {
		return
	}
	h := l.ls.hold
	for r := h.first; r != nil; r = h.first {
		h.unlink(r)
		r.state = reqAborted
		l.p.hold.aborted.Add(1)
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	h.armed = false
}

// acceptEmptyErr is Accept's error on an empty accept queue (l.mu
// held): EINVAL on a listener holding SYNs, whose connections come from
// NextSynRequest; EAGAIN would spin a blocking accept, which a held SYN
// wakes (the listener is readable) and which would find nothing.
func (ls *listenState) acceptEmptyErr() error {
	if ls.hold != nil {
		return syscall.EINVAL
	}
	return syscall.EAGAIN
}

// readable is a listener's EventIn (l.mu held): a request for
// NextSynRequest when it holds SYNs, else a connection to accept.
// Connections in the accept queue (completed by a SYN cookie, or queued
// before the mode was turned on) come from NextSynRequest too.
func (ls *listenState) readable() bool {
	return len(ls.acceptQ) > 0 || ls.hold != nil && ls.hold.n > 0
}

// NextSynRequest takes the oldest held SYN: EAGAIN when there is none,
// EINVAL when the endpoint is not a listener holding SYNs.
func (l *Endpoint) NextSynRequest() (*SynRequest, error) {
	l.lock()
	defer l.unlock()
	if l.state != StateListen || l.ls == nil || l.ls.hold == nil {
		return nil, syscall.EINVAL
	}
	r := l.ls.hold.pop()
	for r != nil && r.state != reqQueued {
		r = l.ls.hold.pop() // never: unlink pops what leaves the queue
	}
	if r == nil {
		// A connection already established (a cookie's): the
		// application still decides, on an open connection.
		q := l.ls.acceptQ
		if len(q) == 0 {
			return nil, syscall.EAGAIN
		}
		c := q[0]
		copy(q, q[1:])
		q[len(q)-1] = nil
		l.ls.acceptQ = q[:len(q)-1]
		if len(l.ls.acceptQ) == 0 {
			l.ls.acceptQ = nil
		}
		l.acceptN.Store(int32(len(l.ls.acceptQ)))
		c.lock()
		c.inListenQ, c.parent = false, nil
		k := connKey{local: c.local, remote: c.remote}
		c.unlock()
		l.p.hold.established.Add(1)
		return &SynRequest{l: l, k: k, conn: c, state: reqTaken}, nil
	}
	r.state = reqTaken
	return r, nil
}

// Established reports whether the request's connection is already open
// (a SYN cookie completed it while the held requests were at the
// backlog): Complete then only hands it over, and Reject resets it.
func (r *SynRequest) Established() bool { return r.conn != nil }

// answer checks that r may still be answered and forgets it (l.mu held).
func (r *SynRequest) answer() error {
	switch r.state {
	case reqTaken:
	case reqExpired:
		return syscall.ETIMEDOUT
	case reqAborted:
		return syscall.ECONNABORTED
	case reqReset:
		return syscall.ECONNRESET
	default:
		return syscall.EALREADY // answered before, or never taken
	}
	if r.conn == nil {
		r.l.ls.hold.unlink(r)
	}
	r.state = reqDone
	return nil
}

// Complete answers the SYN with a SYN-ACK carrying the options
// negotiated from it and returns the connection, in SYN_RCVD until the
// client's ACK: like an endpoint whose connect is in progress, it
// becomes writable (EventOut) once established, and a failed handshake
// (a reset, no ACK after the SYN-ACK retries) leaves its error in
// SoError. It belongs to the caller, not to the listener's accept queue.
// A request that expired gives ETIMEDOUT, one whose listener closed
// ECONNABORTED, one answered before EALREADY; no route back to the
// client is its error (ENETUNREACH), a 4-tuple already in use
// EADDRINUSE, one the client reset while it waited ECONNRESET.
func (r *SynRequest) Complete() (*Endpoint, error) {
	l := r.l
	p := l.p
	l.lock()
	if err := r.answer(); err != nil {
		l.unlock()
		return nil, err
	}
	if r.conn != nil {
		l.unlock()
		p.hold.completed.Add(1)
		return r.conn, nil
	}
	now := p.now()
	c := l.newChild(r.k, &r.syn, now)
	if c == nil {
		l.unlock()
		p.hold.failed.Add(1)
		return nil, syscall.ENETUNREACH
	}
	c.lock()
	if !p.addConn(c) {
		c.unlock()
		l.unlock()
		p.hold.failed.Add(1)
		return nil, syscall.EADDRINUSE
	}
	p.addChild(c)
	l.unlock()
	p.hold.completed.Add(1)
	p.st.PassiveOpens.Add(1)
	c.sendSYN(now, false)
	c.armRTO(now)
	c.unlock()
	return c, nil
}

// Reject refuses the SYN as how says. The errors are Complete's; an
// ICMP rejection on a host that cannot send one is EOPNOTSUPP (the
// request is then still the caller's to answer).
func (r *SynRequest) Reject(how Reject) error {
	l := r.l
	p := l.p
	if how > RejectAdminProhibited {
		return syscall.EINVAL
	}
	us, icmpOK := p.host.(UnreachSender)
	if how >= RejectNetUnreach && !icmpOK && r.conn == nil {
		return syscall.EOPNOTSUPP
	}
	l.lock()
	if err := r.answer(); err != nil {
		l.unlock()
		return err
	}
	mark, dev := l.mark, l.dev
	l.unlock()
	if r.conn != nil {
		// The client's connect succeeded already: whatever how says,
		// it can only be told by a reset.
		p.hold.reset.Add(1)
		r.conn.abortHeld()
		return nil
	}
	switch how {
	case RejectReset:
		p.hold.reset.Add(1)
		// As sendResetFor answers the SYN, data included.
		h := wire.TCPHeader{Ack: r.syn.seq + 1 + r.dataLen, Flags: wire.TCPFlagRST | wire.TCPFlagACK}
		if o, ok := r.syn.replyOpts(); ok {
			p.sendReply(r.k, &h, 0, 0, false, o, mark, dev) // the listener's, as a reset from it
		}
		return nil
	case RejectSilent:
		p.hold.silent.Add(1)
		return nil
	}
	// The quote: the SYN's header as the client sent it (no SACK
	// blocks, which a SYN has no business carrying: the header fits).
	h := wire.TCPHeader{SrcPort: r.k.remote.Port(), DstPort: r.k.local.Port(), Seq: r.syn.seq,
		Flags: r.syn.flags, Window: r.syn.wnd, Options: r.syn.opts}
	h.Options.NumSACK = 0
	var b [wire.TCPMinHeaderLen + 40]byte
	n := h.Put(b[:])
	p.hold.icmp.Add(1)
	return us.SendUnreach(r.k.remote.Addr(), r.k.local.Addr(), b[:n], how)
}

// abortHeld resets and releases a connection that a SYN cookie
// completed and the application rejected, as a close with a zero
// linger does (without counting one).
func (c *Endpoint) abortHeld() {
	c.lock()
	if !c.userClosed && c.state != StateClosed && c.state != StateTimeWait {
		c.userClosed = true
		c.sendReset()
		c.abortLocked(nil)
		c.unlock()
		return
	}
	c.unlock()
	c.Close()
}
