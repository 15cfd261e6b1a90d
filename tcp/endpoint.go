package tcp

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// Shutdown directions (the values of unix.SHUT_RD, SHUT_WR, SHUT_RDWR).
const (
	ShutRd   = 0
	ShutWr   = 1
	ShutRdWr = 2
)

const (
	minRTO       = 200 * time.Millisecond
	maxRTO       = 120 * time.Second
	initRTO      = time.Second
	initCwndSegs = 10
	defaultMSS   = 536
	defaultMSS6  = 1220 // IPv6's send MSS without the peer's option (RFC 9293 3.7.1)
	finTimeout   = 60 * time.Second
	minBuf       = 2304    // Linux SOCK_MIN_RCVBUF-ish
	maxSockBuf   = 4 << 20 // what a negative SO_RCVBUF/SO_SNDBUF means (rmem_max, wmem_max)
)

// listenState is what only a listener needs, kept out of Endpoint so
// that the many connections do not carry it.
type listenState struct {
	backlog  int
	acceptQ  []*Endpoint
	cookieAt time.Duration // last SYN answered with a cookie
	// An AF_INET6 listener's IP_TTL and IP_TOS (set4: given), which its
	// IPv4 children take instead of the hop limit and traffic class:
	// Linux keeps the two sets apart (SetListenIPv4).
	ttl4, tos4 uint8
	set4       bool
	hold       *holdQueue // held SYNs (holdsyn.go); nil: off
}

// Endpoint is one TCP socket. Its methods never block; the socket layer
// waits on Waiter() for readiness events.
type Endpoint struct {
	p  *Protocol
	mu epMutex // locking it gives the endpoint its epBusy (busy.go)
	wq waiter.Queue

	local, remote          netip.AddrPort
	bound, autoBound       bool
	childPort, inConns     bool
	rdShut, wrShut         bool
	inListenQ, listenClose bool

	// Options.
	noDelay, cork, keepAlive bool
	reuseAddr, reusePort     bool
	// An AF_INET6 socket's endpoint (inet6.go): its wildcard is ::, and
	// v6only is IPV6_V6ONLY.
	inet6, v6only bool
	tproxy        tproxyOpts // IP_TRANSPARENT, IP_FREEBIND (transparent.go)
	// Socket options most connections leave at their defaults: shared
	// (the Protocol's defaults, or the listener's for its children),
	// never written in place (opts.go).
	*epOpts
	cc CongestionControl
	// State that is zero while the connection is idle: nil then
	// (busy.go).
	*epBusy

	// Send side. The send ring holds the bytes from sbSeq on.
	iss, sndUna, sndNxt, sndMax uint32
	sndWnd, maxSndWnd           int
	sndWl1, sndWl2              uint32
	snd                         ring
	sndLen, sndCap              int

	// Receive side. The receive ring holds unread bytes, then out-of-order
	// data at its sequence offset.
	irs, rcvNxt, rcvAdv uint32
	sbSeq               uint32 // send side: the send ring holds the bytes from sbSeq on
	rcv                 ring
	rcvLen, rcvCap      int

	// Negotiated options.
	tsRecent, tsOffset uint32
	tsRecentAt         time.Duration
	sndMSS, advMSS     int
	pmtu               int
	rcvMSS             int32  // the peer's segment size as seen (16 bits suffice): int32 leaves room for ato
	ato                uint32 // the ACK timeout in µs (Linux's icsk_ack.ato): 0 until the first data (quickack.go)
	peerMSS            int32  // the peer's MSS option (16 bits): int32 leaves room for sndSml
	sndSml             uint32 // end of the last short segment of new data sent (Linux's snd_sml): Nagle, output.go
	gsoMax             int32  // largest super-segment the route takes (IP bytes); 0: none
	txDefer            bool   // the route's Output may run after the lock (Route.Defer, txdefer.go)
	txHold             uint16 // the route's link that holds a flush's frames (Route.Hold); 0: none

	// RTT estimation (RFC 6298).
	srtt, rttvar, rto, minRTT time.Duration

	// Congestion control.
	ccs CCState

	// Timers: one for retransmission / persist / keepalive / TIME_WAIT /
	// FIN_WAIT2, one for the delayed ACK.
	timer     wheelTimer // on the Protocol's timer wheel (perf)
	timerAt   time.Duration
	keepAt    time.Duration
	dackTimer wheelTimer

	lastRecv, lastDataRecv, lastDataSent, lastAckRecv time.Duration

	rcvSpaceTime time.Duration // receive buffer auto-tuning (like Linux DRS)

	bytesAcked, bytesRecv, bytesSent, bytesRetrans uint64
	segsIn, segsOut, totalRetrans, dsacks          uint32 // u32 as in Linux's tcp_sock

	acceptN  atomic.Int32 // listener: len(acceptQ), read by children without l.mu
	backlogN atomic.Int32 // listener: backlog, likewise

	// perf: delivery rate samples (BBR, HyStart++) and pacing (issue 10).
	rate rateState

	// One-byte fields, together: the struct's size is memory per
	// connection, and scattered they cost padding.
	synQLen atomic.Int32 // listener: SYN_RCVD children

	state              State
	connectBound       bool // port taken by connect (shareable per 4-tuple)
	userClosed         bool
	finRcvd            bool
	everConnected      bool
	orphan             bool // closed by the user, not finished: counted in Orphans
	sndWScale          uint8
	rcvWScale          uint8
	tsOK, sackOK, wsOK bool
	ackMode            uint8 // quickack count, pingpong and pushed bits (quickack.go)
}

func (e *Endpoint) initOptions() {
	c := &e.p.cfg
	e.epOpts = &e.p.defOpts
	e.epBusy = e.p.getBusy() // set up before the first lock; its unlock may drop it
	e.sndCap = c.SendBuf
	e.rcvCap = c.RecvBuf
	e.rto = initRTO
	// The wheel calls back through these (set once: read without e.mu).
	e.timer.kind = wheelRetrans
	e.dackTimer.kind = wheelDelack
}

// Waiter is the queue readiness events are notified on.
func (e *Endpoint) Waiter() *waiter.Queue { return &e.wq }

// State is the connection state.
func (e *Endpoint) State() State {
	e.lock()
	defer e.unlock()
	return e.state
}

// LocalAddr is the bound address (zero if unbound).
func (e *Endpoint) LocalAddr() netip.AddrPort {
	e.lock()
	defer e.unlock()
	return e.local
}

// RemoteAddr is the peer's address; ENOTCONN when not connected.
func (e *Endpoint) RemoteAddr() (netip.AddrPort, error) {
	e.lock()
	defer e.unlock()
	switch e.state {
	case StateClosed, StateListen, StateSynSent:
		if !(e.state == StateClosed && e.everConnected && e.remote.IsValid()) {
			return netip.AddrPort{}, syscall.ENOTCONN
		}
	}
	return e.remote, nil
}

// ErrPending tells whether a hard error is pending (Linux's sk_err),
// which stops a send that has queued bytes; a queued report
// (timestamps, IP_RECVERR) or a soft error does not.
func (e *Endpoint) ErrPending() bool {
	e.lock()
	defer e.unlock()
	return e.err != nil
}

// SoError reads and clears the pending error.
func (e *Endpoint) SoError() error {
	e.lock()
	defer e.unlock()
	err := e.err
	e.err = nil
	if err == nil {
		err, e.softErr = e.softErr, nil // as Linux: sk_err, else sk_err_soft
	}
	return err
}

// Bind assigns a local address.
func (e *Endpoint) Bind(addr netip.AddrPort) error {
	e.lock()
	defer e.unlock()
	if e.bound || e.state != StateClosed || e.userClosed {
		return syscall.EINVAL
	}
	a := addr.Addr()
	if !a.IsValid() {
		a = e.anyAddr()
	}
	a = a.Unmap().WithZone("")
	// Linux lets a TCP socket bind a multicast or broadcast address too
	// (inet_addr_valid_or_nonlocal); nothing can connect to it.
	if !e.bindAddrOK(a) { // transparent.go
		return syscall.EADDRNOTAVAIL
	}
	if err := e.p.bind(e, a, addr.Port()); err != nil {
		return err
	}
	if a.Is6() && !a.IsUnspecified() {
		e.v6only = true // bound to an IPv6 address: IPv6 only, as Linux's inet6_bind
	}
	return nil
}

// Listen makes the endpoint accept connections; calling it again adjusts
// the backlog.
func (e *Endpoint) Listen(backlog int) error {
	e.lock()
	defer e.unlock()
	if e.userClosed {
		return syscall.EINVAL
	}
	if e.state != StateClosed && e.state != StateListen {
		return syscall.EINVAL
	}
	if e.state == StateClosed && e.everConnected {
		return syscall.EINVAL
	}
	backlog = max(min(backlog, e.p.cfg.SOMAXCONN), 0)
	if e.ls == nil {
		e.ls = new(listenState)
	}
	e.ls.backlog = backlog
	e.backlogN.Store(int32(backlog))
	if e.state == StateListen {
		return nil
	}
	if !e.bound {
		if err := e.p.bind(e, e.anyAddr(), 0); err != nil {
			return err
		}
	} else {
		// Another listener on the same port needs SO_REUSEPORT on both.
		e.p.mu.RLock()
		pe := e.p.ports[e.local.Port()]
		conflict := false
		if pe != nil {
			for _, u := range pe.users {
				if u != e && u.state == StateListen && addrOverlap6(u.local.Addr(), u.v6only, e.local.Addr(), e.v6only) && !(u.reusePort && e.reusePort) && !devsApart(e.dev, pe.devOf(u)) {
					conflict = true
				}
			}
		}
		e.p.mu.RUnlock()
		if conflict {
			return syscall.EADDRINUSE
		}
	}
	e.state = StateListen
	e.rdShut = false
	e.listenClose = false
	e.p.addListener(e)
	return nil
}

// Accept takes a connection from the accept queue.
func (e *Endpoint) Accept() (*Endpoint, netip.AddrPort, error) {
	e.lock()
	if e.state != StateListen {
		e.unlock()
		return nil, netip.AddrPort{}, syscall.EINVAL
	}
	if len(e.ls.acceptQ) == 0 {
		err := e.ls.acceptEmptyErr() // holdsyn.go
		e.unlock()
		return nil, netip.AddrPort{}, err
	}
	c := e.ls.acceptQ[0]
	copy(e.ls.acceptQ, e.ls.acceptQ[1:])
	e.ls.acceptQ[len(e.ls.acceptQ)-1] = nil
	e.ls.acceptQ = e.ls.acceptQ[:len(e.ls.acceptQ)-1]
	if len(e.ls.acceptQ) == 0 {
		e.ls.acceptQ = nil
	}
	e.acceptN.Store(int32(len(e.ls.acceptQ)))
	e.unlock()
	c.lock()
	c.inListenQ = false
	c.parent = nil
	ra := c.remote
	c.unlock()
	return c, ra, nil
}

// Connect starts an active open and returns EINPROGRESS.
func (e *Endpoint) Connect(addr netip.AddrPort) error {
	e.lock()
	defer e.unlock()
	switch e.state {
	case StateSynSent, StateSynRcvd:
		return syscall.EALREADY
	case StateListen:
		return syscall.EISCONN // as Linux
	case StateClosed:
	default:
		return syscall.EISCONN
	}
	if e.connectErrPending && e.err != nil {
		err := e.err
		e.err = nil
		e.connectErrPending = false
		return err
	}
	if e.userClosed {
		return syscall.EBADF
	}
	if e.everConnected {
		return syscall.EISCONN
	}
	a := addr.Addr().Unmap()
	if !a.IsValid() || addr.Port() == 0 {
		if !a.IsValid() {
			return syscall.EAFNOSUPPORT
		}
		return syscall.ECONNREFUSED
	}
	if a.Is4() && e.v6only {
		return syscall.ENETUNREACH
	}
	if a.IsUnspecified() {
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if addr.Addr().Is6() {
			a = netip.IPv6Loopback()
		}
	}
	var bound netip.Addr
	if e.bound {
		bound = e.local.Addr()
	}
	rt, err := e.p.routeFor(e.routeTo(a), bound, e.epOpts) // mark.go, ext6.go
	if err != nil {
		return err
	}
	a = a.WithZone("") // the zone picked the route; the connection is keyed without it
	remote := netip.AddrPortFrom(a, addr.Port())
	now := e.p.now()
	src := rt.Source
	if e.bound && !e.local.Addr().IsUnspecified() {
		src = e.local.Addr()
	}
	if e.bound {
		k := connKey{netip.AddrPortFrom(src, e.local.Port()), remote}
		e.p.mu.Lock()
		if e.p.conns.get(k) != nil || !e.p.twTakeLocked(k, now) {
			e.p.mu.Unlock()
			return syscall.EADDRNOTAVAIL
		}
		e.p.mu.Unlock()
		e.local = netip.AddrPortFrom(src, e.local.Port())
	} else {
		if err := e.p.bindConnect(e, src, remote, now); err != nil {
			return err
		}
	}
	e.remote = remote
	e.rto, e.backoff, e.srtt, e.rttvar = initRTO, 0, 0, 0
	e.pmtu = rt.MTU
	e.gsoMax, e.txDefer, e.txHold = int32(rt.GSOMax), rt.Defer, holdID(rt.Hold)
	e.setupMSS()
	e.iss = e.p.isn(e.local, e.remote, now)
	e.sndUna, e.sndNxt, e.sndMax, e.sndSml = e.iss, e.iss, e.iss, e.iss
	e.sbSeq = e.iss + 1
	e.tsOffset = e.tsOffsetFor(now)
	e.state = StateSynSent
	e.chooseRcvWScale()
	// Two connects to one remote racing between choosing a port and
	// entering the connection table may pick the same one: the loser
	// chooses again.
	for tries := 0; !e.p.addConn(e); tries++ {
		if !e.autoBound || tries >= 8 {
			e.state = StateClosed
			if e.autoBound {
				e.p.releasePort(e)
			}
			return syscall.EADDRNOTAVAIL
		}
		e.p.releasePort(e)
		if err := e.p.bindConnect(e, src, remote, now); err != nil {
			e.state = StateClosed
			return err
		}
		e.iss = e.p.isn(e.local, e.remote, now)
		e.sndUna, e.sndNxt, e.sndMax, e.sndSml = e.iss, e.iss, e.iss, e.iss
		e.sbSeq = e.iss + 1
		e.tsOffset = e.tsOffsetFor(now)
	}
	e.p.st.ActiveOpens.Add(1)
	e.sendSYN(now, false)
	e.sndNxt = e.iss + 1
	e.sndMax = e.sndNxt
	e.armRTO(now)
	return syscall.EINPROGRESS
}

func (e *Endpoint) tsOffsetFor(now time.Duration) uint32 {
	if e.p.cfg.NoTimestampOffset {
		return 0
	}
	return e.p.hash4(e.local, e.remote, 0x75)
}

// setupMSS sets the MSS we advertise from the route MTU.
func (e *Endpoint) setupMSS() {
	mtu := e.pmtu
	if mtu <= 0 {
		mtu = 1500
	}
	// An IPv4 packet is at most 65,535 bytes whatever the link's MTU.
	mtu = min(mtu, 65535)
	e.advMSS = max(mtu-40, 88)
	if e.userMSS > 0 {
		e.advMSS = min(e.advMSS, int(e.userMSS))
	}
	e.sndMSS = min(e.advMSS, defaultMSS)
	e.rcvMSS = int32(min(e.advMSS, defaultMSS))
}

func (e *Endpoint) chooseRcvWScale() {
	limit := e.p.cfg.MaxRecvBuf
	if e.userRcvBuf > 0 {
		limit = e.userRcvBuf
	}
	if e.windowClamp > 0 {
		// No scale beyond what the clamped window needs, as Linux's
		// tcp_select_initial_window (tcpopts.go).
		limit = min(limit, int(e.windowClamp))
	}
	s := uint8(0)
	for s < 14 && (65535<<s) < limit {
		s++
	}
	e.rcvWScale = s
}

// Read copies received data into b. peek leaves it queued.
func (e *Endpoint) Read(b []byte, peek bool) (int, error) { return e.read(b, peek, 0) }

// read is Read; a peek starts off bytes into the readable data
// (SO_PEEK_OFF, PeekAt).
func (e *Endpoint) read(b []byte, peek bool, off int) (int, error) {
	e.lock()
	defer e.unlock()
	if e.rcvLen > off && e.urg.state != urgNone {
		if n, ok := e.readUrgAt(b, peek, off); ok { // peekoff.go
			return n, nil
		}
	} else if e.rcvLen > off {
		n := min(len(b), e.rcvLen-off)
		e.copyRcvAt(b[:n], off) // the ring, then lent buffers (lend.go)
		if !peek {
			e.consumeRcv(n)
		}
		return n, nil
	} else if off > 0 && e.rcvLen > 0 && !e.finRcvd && !e.rdShut {
		return 0, syscall.EAGAIN // all of it is before the offset: wait for more
	}
	if len(b) == 0 && e.state != StateClosed && e.state != StateListen {
		return 0, nil
	}
	if e.state == StateClosed && e.err != nil && !e.connectErrPending && !e.finRcvd {
		err := e.err // reset after SHUT_RDWR: reported before EOF
		e.err = nil
		return 0, err
	}
	if e.rdShut || e.finRcvd {
		return 0, nil
	}
	if e.err != nil {
		err := e.err
		e.err = nil
		return 0, err
	}
	switch e.state {
	case StateClosed:
		if e.everConnected {
			return 0, nil
		}
		return 0, syscall.ENOTCONN
	case StateListen:
		return 0, syscall.ENOTCONN
	}
	return 0, syscall.EAGAIN
}

// consumeRcv removes n read bytes and opens the window.
func (e *Endpoint) consumeRcv(n int) {
	before := e.rcvWindow()
	e.dropRcv(n) // the ring, then lent buffers (lend.go)
	e.rcvLen -= n
	e.copied += n
	if e.rcvLen == 0 && len(e.ooo) == 0 {
		e.rcv.head = 0
		e.idleRing(&e.rcv)
	}
	now := e.p.now()
	e.tuneRcvBuf(now)
	if e.state == StateEstablished || e.state == StateFinWait1 || e.state == StateFinWait2 {
		// Send a window update when the window has grown enough
		// (receiver-side SWS avoidance, RFC 9293 3.8.6.2.2), or an ACK
		// still owed (more than a full segment unacknowledged, e.g.
		// behind a delayed ACK), as Linux's tcp_cleanup_rbuf.
		cur := int(e.rcvAdv - e.rcvNxt)
		if int32(e.rcvAdv-e.rcvNxt) < 0 {
			cur = 0
		}
		// Only a window the read opened: one already there before it
		// (a SYN's window is at most 65535, the buffer's often more)
		// goes with the next ACK, so that a reply still carries the
		// ACK of the request just read, as in Linux, whose window grows
		// with the data received, not at the first read.
		nw := e.rcvWindow()
		grown := func(w int) bool { return w-cur >= min(e.rcvCap/2, 2*e.advMSS) && (w >= 2*cur || cur < e.advMSS) }
		if grown(nw) && (cur < e.advMSS || !grown(before)) || e.ackPending > int(e.rcvMSS) || e.ackOnRead() {
			e.ackNow = true
			e.output(now)
		}
	}
}

// tuneRcvBuf grows the receive buffer with the bytes the application
// reads per RTT (dynamic right-sizing).
func (e *Endpoint) tuneRcvBuf(now time.Duration) {
	if e.userRcvBuf > 0 {
		return
	}
	rtt := e.srtt
	if e.minRTT > 0 {
		rtt = e.minRTT
	}
	if rtt <= 0 {
		rtt = time.Millisecond
	}
	if e.rcvSpaceTime == 0 {
		e.rcvSpaceTime = now
		e.copied = 0
		return
	}
	if now-e.rcvSpaceTime < rtt || e.p.memPressure() {
		return
	}
	if e.copied > e.rcvSpace {
		e.rcvSpace = e.copied
		want := min(4*e.copied, e.p.cfg.MaxRecvBuf)
		if want > e.rcvCap {
			e.rcvCap = want
		}
	}
	e.copied = 0
	e.rcvSpaceTime = now
}

// Write queues as much of b as fits in the send buffer.
func (e *Endpoint) Write(b []byte) (int, error) { return e.write(b, false) }

func (e *Endpoint) write(b []byte, oob bool) (int, error) {
	wmu := e.wmu() // sndcopy.go
	wmu.Lock()
	defer wmu.Unlock()
	e.lock()
	defer e.unlock()
	// A pending error fails the send before anything is queued, also one
	// that IP_RECVERR made of a soft ICMP error on a live connection and
	// also after SHUT_WR (Linux's tcp_sendmsg: sk_err, then EPIPE).
	if e.err != nil {
		err := e.err
		e.err = nil
		return 0, err
	}
	if e.wrShut {
		return 0, syscall.EPIPE
	}
	switch e.state {
	case StateEstablished, StateCloseWait:
	case StateSynSent, StateSynRcvd:
		return 0, syscall.EAGAIN
	default:
		// Linux: EPIPE also on a socket never connected, or listening.
		return 0, syscall.EPIPE
	}
	free := e.sendRoom() // the buffer, TCP_NOTSENT_LOWAT (tcpopts.go)
	if free <= 0 {
		return 0, syscall.EAGAIN
	}
	n := min(free, len(b))
	e.growRing(&e.snd, e.sndLen+n, e.sndLen, e.sndCap)
	if n >= unlockedCopyMin && !oob {
		if err := e.copyInUnlocked(b[:n]); err != nil { // sndcopy.go
			return 0, err
		}
	} else {
		e.snd.copyIn(b[:n], e.sndLen)
	}
	e.sndLen += n
	if e.txStamp != nil && n == len(b) {
		// The send's last bytes: a partial write leaves the mark to the
		// write that completes the send, or to TxStampMarkTail.
		e.txStampWrote() // txstamp.go
	}
	if oob {
		e.urgMarkSend()
	}
	e.output(e.p.now())
	return n, nil
}

// Shutdown closes one or both directions.
func (e *Endpoint) Shutdown(how int) error {
	e.lock()
	defer e.unlock()
	if how < ShutRd || how > ShutRdWr {
		return syscall.EINVAL
	}
	switch e.state {
	case StateListen:
		if how == ShutRd || how == ShutRdWr {
			e.closeListenerLocked()
			e.notify(waiter.EventIn | waiter.EventHUp)
		}
		return nil
	case StateClosed:
		return syscall.ENOTCONN
	case StateSynSent:
		e.setClosed()
		e.notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
		return nil
	}
	if how == ShutRd || how == ShutRdWr {
		e.rdShut = true
		e.notify(waiter.EventIn | waiter.EventRdHUp)
	}
	if how == ShutWr || how == ShutRdWr {
		e.shutWrite()
	}
	return nil
}

// shutWrite queues a FIN after the data.
func (e *Endpoint) shutWrite() {
	if e.wrShut {
		return
	}
	switch e.state {
	case StateEstablished, StateSynRcvd:
		e.setState(StateFinWait1)
	case StateCloseWait:
		e.setState(StateLastAck)
	default:
		return
	}
	e.wrShut = true
	if e.parent == nil || e.everConnected {
		e.output(e.p.now())
	}
	e.notify(waiter.EventOut)
}

// Close releases the endpoint with Linux semantics.
func (e *Endpoint) Close() {
	e.lock()
	defer e.unlock()
	if e.userClosed {
		return
	}
	e.userClosed = true
	switch e.state {
	case StateListen:
		e.closeListenerLocked()
		e.p.releasePort(e)
		return
	case StateClosed:
		e.p.releasePort(e)
		e.freeBuffers()
		return
	case StateSynSent:
		e.setClosed()
		return
	case StateTimeWait:
		return
	}
	if e.rcvLen > 0 || (e.lingerOn && e.linger == 0) {
		if e.lingerOn && e.linger == 0 {
			e.p.st.AbortOnLinger.Add(1)
		} else {
			e.p.st.AbortOnClose.Add(1)
		}
		e.sendReset()
		e.abortLocked(nil)
		return
	}
	e.rdShut = true
	e.shutWrite()
	if e.state == StateFinWait2 && e.orphanFinWait2(e.p.now()) { // TCP_LINGER2 (tcpopts.go)
		return
	}
	e.orphanClose()
}

// closeListenerLocked stops listening and resets queued connections.
func (e *Endpoint) closeListenerLocked() {
	e.p.removeListener(e)
	e.state = StateClosed
	e.listenClose = true
	e.dropHeldLocked() // holdsyn.go
	var q []*Endpoint
	if e.ls != nil {
		q, e.ls.acceptQ = e.ls.acceptQ, nil
	}
	e.acceptN.Store(0)
	for _, c := range q {
		c.lock()
		c.parent = nil
		c.inListenQ = false
		if c.state != StateClosed {
			c.sendReset()
			c.userClosed = true
			c.abortLocked(nil)
		}
		c.unlock()
	}
}

// Readiness reports which events in mask are ready now.
func (e *Endpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	e.lock()
	defer e.unlock()
	return e.readinessLocked() & mask
}

func (e *Endpoint) readinessLocked() waiter.EventMask {
	var r waiter.EventMask
	if e.err != nil || e.errq != nil { // tcp_poll: sk_err or an error queued
		r |= waiter.EventErr
	}
	switch e.state {
	case StateListen:
		if e.ls.readable() { // holdsyn.go
			r |= waiter.EventIn
		}
		return r
	case StateSynSent, StateSynRcvd:
		return r
	case StateClosed:
		if e.everConnected || e.err != nil || e.connectErrPending {
			r |= waiter.EventIn | waiter.EventOut | waiter.EventHUp | waiter.EventRdHUp
		} else {
			r |= waiter.EventOut | waiter.EventHUp
		}
		return r
	}
	if e.rcvReadable() || e.finRcvd || e.rdShut { // rcvReadable: SO_RCVLOWAT (rcvlowat.go)
		r |= waiter.EventIn
	}
	r |= e.urgReady()
	if e.finRcvd || e.rdShut {
		r |= waiter.EventRdHUp
	}
	if e.wrShut {
		r |= waiter.EventOut
		if e.finRcvd || e.rdShut {
			r |= waiter.EventHUp
		}
	} else if e.writable() {
		r |= waiter.EventOut
	}
	return r
}

// writable is Linux's rule: free space at least half of what is queued.
func (e *Endpoint) writable() bool {
	free := e.sndCap - e.sndLen
	return free > 0 && free >= e.sndLen/2 && e.notsentOK(1)
}

func (e *Endpoint) notify(m waiter.EventMask) { e.wq.Notify(m) }

// Info is TCP_INFO-like introspection.
func (e *Endpoint) Info() Info {
	e.lock()
	defer e.unlock()
	now := e.p.now()
	mss := max(e.sndMSS, 1)
	inflight := e.inFlight()
	i := Info{
		State: e.state, CongestionControl: e.ccName,
		RTT: e.srtt, RTTVar: e.rttvar, RTO: e.rto,
		SndCwnd: uint32(e.ccs.Cwnd / mss), SndSsthresh: uint32(min(e.ccs.Ssthresh/mss, 1<<31-1)),
		CwndBytes: e.ccs.Cwnd, BytesInFlight: inflight, SegsInFlight: (inflight + mss - 1) / mss,
		Retransmits: e.backoff, TotalRetrans: uint64(e.totalRetrans), SackedBytes: e.sb.sacked,
		RcvWnd: e.rcvWindow(), SndWnd: e.sndWnd, RcvSpace: e.rcvCap, SndBuf: e.sndCap,
		SndMSS: e.sndMSS, RcvMSS: int(e.rcvMSS), PMTU: e.pmtu,
		TimestampsOK: e.tsOK, SACKOK: e.sackOK,
		BytesAcked: e.bytesAcked, BytesReceived: e.bytesRecv, BytesSent: e.bytesSent, BytesRetrans: e.bytesRetrans,
		SegsOut: uint64(e.segsOut), SegsIn: uint64(e.segsIn), DSACKDups: uint64(e.dsacks),
		Probes: e.probes, Backoff: e.backoff,
	}
	if e.wsOK {
		i.SndWScale, i.RcvWScale = int(e.sndWScale), int(e.rcvWScale)
	}
	if e.lastDataSent != 0 {
		i.LastDataSent = now - e.lastDataSent
	}
	if e.lastDataRecv != 0 {
		i.LastDataRecv = now - e.lastDataRecv
	}
	if e.lastAckRecv != 0 {
		i.LastAckRecv = now - e.lastAckRecv
	}
	i.LostBytes = e.rk.lostOut
	return i
}

// --- options ---

func (e *Endpoint) SetNoDelay(v bool) {
	e.lock()
	e.noDelay = v
	if v && e.sndLen > 0 {
		e.output(e.p.now())
	}
	e.unlock()
}
func (e *Endpoint) NoDelay() bool { e.lock(); defer e.unlock(); return e.noDelay }

// SetCork holds back partial segments until uncorked (TCP_CORK).
func (e *Endpoint) SetCork(v bool) {
	e.lock()
	e.cork = v
	if !v && e.sndLen > 0 {
		e.output(e.p.now())
	}
	e.unlock()
}
func (e *Endpoint) Cork() bool { e.lock(); defer e.unlock(); return e.cork }

func (e *Endpoint) SetKeepAlive(v bool) {
	e.lock()
	defer e.unlock()
	e.keepAlive = v
	e.rearmKeepalive()
}
func (e *Endpoint) KeepAlive() bool { e.lock(); defer e.unlock(); return e.keepAlive }

func (e *Endpoint) SetKeepIdle(d time.Duration) error {
	if d < time.Second || d > 32767*time.Second {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.keepIdle = d; return o })
	e.rearmKeepalive()
	return nil
}
func (e *Endpoint) KeepIdle() time.Duration { e.lock(); defer e.unlock(); return e.keepIdle }

func (e *Endpoint) SetKeepIntvl(d time.Duration) error {
	if d < time.Second || d > 32767*time.Second {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.keepIntvl = d; return o })
	return nil
}
func (e *Endpoint) KeepIntvl() time.Duration { e.lock(); defer e.unlock(); return e.keepIntvl }

func (e *Endpoint) SetKeepCnt(n int) error {
	if n < 1 || n > 127 {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.keepCnt = int32(n); return o })
	return nil
}
func (e *Endpoint) KeepCnt() int { e.lock(); defer e.unlock(); return int(e.keepCnt) }

// lingerForever is what a negative SO_LINGER time becomes: Linux takes
// it as unsigned, lingers MAX_SCHEDULE_TIMEOUT, and reads back that
// divided by HZ (250) in an int.
const lingerForever = -1752346657 * time.Second // int32(MAX_SCHEDULE_TIMEOUT / 250)

// SetLinger is SO_LINGER; with on and d == 0, Close sends a RST.
func (e *Endpoint) SetLinger(on bool, d time.Duration) error {
	if d < 0 {
		d = lingerForever
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.lingerOn, o.linger = on, d.Truncate(time.Second); return o })
	return nil
}
func (e *Endpoint) Linger() (bool, time.Duration) {
	e.lock()
	defer e.unlock()
	return e.lingerOn, e.linger
}

// SetRecvBuf is SO_RCVBUF: Linux stores twice the value, with a minimum,
// and stops auto-tuning.
func (e *Endpoint) SetRecvBuf(n int) error {
	if n < 0 {
		// Linux compares it unsigned: the largest allowed (rmem_max).
		n = min(e.p.cfg.MaxRecvBuf, maxSockBuf)
	}
	e.lock()
	defer e.unlock()
	v := max(min(2*n, 2*e.p.cfg.MaxRecvBuf), minBuf)
	e.setOpt(func(o epOpts) epOpts { o.userRcvBuf = v; return o })
	if v > e.rcvCap || e.state == StateClosed || e.state == StateListen {
		e.rcvCap = v
	}
	return nil
}
func (e *Endpoint) RecvBuf() int { e.lock(); defer e.unlock(); return e.rcvCap }

// SetSendBuf is SO_SNDBUF (doubled, with a minimum; no auto-tuning).
func (e *Endpoint) SetSendBuf(n int) error {
	if n < 0 {
		n = min(e.p.cfg.MaxSendBuf, maxSockBuf) // like SetRecvBuf
	}
	e.lock()
	defer e.unlock()
	v := max(min(2*n, 2*e.p.cfg.MaxSendBuf), 4608)
	e.setOpt(func(o epOpts) epOpts { o.userSndBuf = v; return o })
	e.sndCap = max(v, e.sndLen)
	return nil
}
func (e *Endpoint) SendBuf() int { e.lock(); defer e.unlock(); return e.sndCap }

// SetMaxSeg is TCP_MAXSEG (0 means the route default).
func (e *Endpoint) SetMaxSeg(n int) error {
	if n != 0 && (n < 88 || n > 65495) {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.userMSS = int32(n); return o })
	return nil
}

// MaxSeg is TCP_MAXSEG: the send MSS when connected, else the user value
// or 536.
func (e *Endpoint) MaxSeg() int {
	e.lock()
	defer e.unlock()
	switch e.state {
	case StateClosed, StateListen, StateSynSent:
		if e.userMSS > 0 {
			return int(e.userMSS)
		}
		return defaultMSS
	}
	return e.sndMSS
}

func (e *Endpoint) SetReuseAddr(v bool) { e.lock(); e.reuseAddr = v; e.unlock() }
func (e *Endpoint) ReuseAddr() bool     { e.lock(); defer e.unlock(); return e.reuseAddr }
func (e *Endpoint) SetReusePort(v bool) { e.lock(); e.reusePort = v; e.unlock() }
func (e *Endpoint) ReusePort() bool     { e.lock(); defer e.unlock(); return e.reusePort }

// SetTTL is IP_TTL: 1..255, or -1 for the default. 0 is taken too:
// IPV6_UNICAST_HOPS 0 sends with hop limit 0 on Linux (the socket
// layer refuses IP_TTL 0 before it gets here).
func (e *Endpoint) SetTTL(n int) error {
	if n < -1 || n > 255 {
		return syscall.EINVAL
	}
	e.lock()
	e.setOpt(func(o epOpts) epOpts { o.ttl, o.hopZero = uint8(max(n, 0)), n == 0; return o })
	e.unlock()
	return nil
}

// TTL is the configured TTL (64, the Linux default, when unset).
func (e *Endpoint) TTL() int {
	e.lock()
	defer e.unlock()
	if e.ttl == 0 && !e.hopZero {
		return 64
	}
	return int(e.ttl)
}

// SetListenIPv4 gives a listening dual-stack endpoint the TTL (0: the
// default) and TOS its IPv4 connections use from the SYN-ACK on; its
// own TTL and TOS stay for IPv6 ones. Not listening: nothing to do (the
// socket layer calls it again after Listen).
func (e *Endpoint) SetListenIPv4(ttl, tos int) {
	e.mu.Lock()
	if e.ls != nil {
		e.ls.ttl4, e.ls.tos4, e.ls.set4 = uint8(ttl), uint8(tos)&^3, true
	}
	e.mu.Unlock()
}

// SetTOS is IP_TOS. Like Linux on a stream socket, any int is taken:
// its low byte, less the ECN bits (which TCP owns).
func (e *Endpoint) SetTOS(n int) error {
	e.lock()
	e.setOpt(func(o epOpts) epOpts { o.tos = uint8(n) &^ 3; return o })
	e.unlock()
	return nil
}
func (e *Endpoint) TOS() int { e.lock(); defer e.unlock(); return int(e.tos) }

// SetCongestion is TCP_CONGESTION; ENOENT for an unknown name like Linux.
func (e *Endpoint) SetCongestion(name string) error {
	cc := newCC(name)
	if cc == nil {
		return syscall.ENOENT
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.ccName = name; return o }) // an alias ("reno") reads back as set, as in Linux
	if e.cc != nil || (e.everConnected && !lazyCC(name)) {
		e.cc = cc
		e.ccs.PacingRate = 0 // the new control paces if it wants to
	}
	return nil
}
func (e *Endpoint) Congestion() string { e.lock(); defer e.unlock(); return e.ccName }
