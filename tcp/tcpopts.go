package tcp

import (
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// TCP-level socket options with Linux's values and rules
// (do_tcp_setsockopt, do_tcp_getsockopt): TCP_QUICKACK, TCP_SYNCNT,
// TCP_LINGER2, TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP, TCP_NOTSENT_LOWAT,
// TCP_INQ, TCP_FASTOPEN and TCP_FASTOPEN_CONNECT. Their values live in
// epOpts (opts.go), so an accepted connection inherits the listener's;
// the two that belong to a listener's queue (TCP_DEFER_ACCEPT,
// TCP_FASTOPEN) are cleared on the child, as Linux's clone starts with
// an empty accept queue.

const (
	maxSynCnt     = 127               // Linux's MAX_TCP_SYNCNT
	finTimeoutMax = 120 * time.Second // Linux's TCP_FIN_TIMEOUT_MAX
	// minWindowClamp is Linux's SOCK_MIN_RCVBUF/2: a smaller
	// TCP_WINDOW_CLAMP is raised to it.
	minWindowClamp = minBuf / 2
	// The times TCP_DEFER_ACCEPT's seconds are counted in: the first
	// SYN-ACK timeout and its ceiling (TCP_TIMEOUT_INIT, TCP_RTO_MAX).
	deferInit = 1   // seconds
	deferMax  = 120 // seconds
)

// SetQuickAck is TCP_QUICKACK. 0 enters delayed-ACK ("pingpong") mode;
// any other value leaves it and, on a connection that owes an ACK, sends
// it now (as Linux's tcp_cleanup_rbuf with the ACK pushed: once the
// received data has been read, or more than a segment is unacknowledged);
// an even value then re-enters pingpong mode, as Linux does.
//
// Pingpong mode is also entered by replies and left by the delayed
// ACK's timer (quickack.go); either way TCP_QUICKACK reads 0 in it.
func (e *Endpoint) SetQuickAck(v int) {
	e.lock()
	defer e.unlock()
	pp := v == 0
	if !pp {
		e.exitPingpong()
	}
	if v != 0 && (e.state == StateEstablished || e.state == StateCloseWait) &&
		(e.ackPending > 0 || e.dackAt != 0) && (e.rcvLen == 0 || e.ackPending > int(e.rcvMSS)) {
		e.ackNow = true
		e.output(e.p.now())
		pp = v&1 == 0
	}
	if pp && !e.pingpong {
		e.setOpt(func(o epOpts) epOpts { o.pingpong = true; return o })
	}
}

// QuickAck reports TCP_QUICKACK: true when not in pingpong mode.
func (e *Endpoint) QuickAck() bool { e.lock(); defer e.unlock(); return !e.inPingpong() }

// handshakeAckDelay is Linux's TCP_DELACK_MAX: how long a connecting
// socket in pingpong mode or with TCP_DEFER_ACCEPT holds its
// handshake-completing ACK, hoping to send it with data.
const handshakeAckDelay = 200 * time.Millisecond

// delayHandshakeAck is called when a SYN-ACK established a connect: in
// pingpong mode or with TCP_DEFER_ACCEPT set, the ACK waits (a write
// before the timer takes it along) and the connection leaves pingpong
// mode, as Linux's tcp_rcv_synsent_state_process. It reports whether
// the ACK was delayed.
func (e *Endpoint) delayHandshakeAck(now time.Duration) bool {
	if !e.inPingpong() && e.deferAccept == 0 {
		return false
	}
	e.enterQuickAck(maxQuickAcks) // leaves pingpong mode (quickack.go)
	e.dackAt = now + handshakeAckDelay
	e.armDelayedAck(now)
	return true
}

// SetSynCount is TCP_SYNCNT: the SYN retransmissions before connect
// gives up, and on a listener the SYN-ACK retransmissions of its
// requests (Linux's reqsk_timer_handler reads the listener's value).
// 1..127, else EINVAL.
func (e *Endpoint) SetSynCount(n int) error {
	if n < 1 || n > maxSynCnt {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.synCnt = uint8(n); return o })
	return nil
}

// SynCount reads TCP_SYNCNT: the value set, else the Config's.
func (e *Endpoint) SynCount() int {
	e.lock()
	defer e.unlock()
	if e.synCnt != 0 {
		return int(e.synCnt)
	}
	return e.p.cfg.SynRetries
}

// synTimeout decides what a SYN or SYN-ACK timeout does: give up
// (expire) and/or send the SYN again (resend). A child whose listener
// defers accept keeps its request while the client's bare ACK waits for
// data, and sends no SYN-ACK again until the last period of the
// deferral, as Linux's syn_ack_recalc.
func (e *Endpoint) synTimeout() (expire, resend bool) {
	if e.state == StateSynSent {
		limit := e.p.cfg.SynRetries
		if e.synCnt != 0 {
			limit = int(e.synCnt)
		}
		return e.backoff >= limit, true
	}
	limit := e.p.cfg.SynAckRetries
	if e.synCnt != 0 {
		limit = int(e.synCnt)
	}
	d := int(e.deferAccept)
	if d == 0 || e.parent == nil {
		return e.backoff >= limit, true
	}
	expire = e.backoff >= limit && (!e.deferAcked || e.backoff >= d)
	resend = !e.deferAcked || e.backoff >= d-1
	return expire, resend
}

// SetLinger2 is TCP_LINGER2: how long an orphaned connection stays in
// FIN_WAIT2, in seconds. Negative: not at all (it is reset); 0: the
// default (60 s); above 120 s, 120 s (Linux's TCP_FIN_TIMEOUT_MAX).
func (e *Endpoint) SetLinger2(v int) {
	switch {
	case v < 0:
		v = -1
	case v > int(finTimeoutMax/time.Second):
		v = int(finTimeoutMax / time.Second)
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.linger2 = int32(v); return o })
}

// Linger2 reads TCP_LINGER2 as Linux reports it: -1 when off, else the
// lifetime in seconds (the default when none was set).
func (e *Endpoint) Linger2() int {
	e.lock()
	defer e.unlock()
	if e.linger2 < 0 {
		return -1
	}
	if e.linger2 == 0 {
		return int(finTimeout / time.Second)
	}
	return int(e.linger2)
}

// finWait2Time is the lifetime of an orphaned FIN_WAIT2 (Linux's
// tcp_fin_time): TCP_LINGER2 or the default, at least 3.5 RTOs.
func (e *Endpoint) finWait2Time() time.Duration {
	d := finTimeout
	if e.linger2 > 0 {
		d = time.Duration(e.linger2) * time.Second
	}
	return max(d, 4*e.rto-e.rto/2)
}

// orphanFinWait2 is called when an orphaned connection is in FIN_WAIT2
// (closed there, or its FIN was acknowledged after the close): it
// times the state out, or with a negative TCP_LINGER2 resets the
// connection at once, as Linux's tcp_close and tcp_rcv_state_process.
// It reports whether the connection is gone.
func (e *Endpoint) orphanFinWait2(now time.Duration) bool {
	if e.linger2 < 0 {
		e.p.st.AbortOnLinger.Add(1)
		e.sendReset()
		e.abortLocked(nil)
		return true
	}
	e.closeAt = now + e.finWait2Time()
	e.armTimer(e.closeAt)
	return false
}

// SetDeferAccept is TCP_DEFER_ACCEPT: seconds, kept as the number of
// SYN-ACK timeouts they cover (Linux's secs_to_retrans), so that the
// value read back is rounded up to the end of a timeout period. A
// listener's child whose handshake-completing ACK carries no data stays
// in SYN_RCVD, out of accept's reach, until data (or a FIN) arrives or
// that many SYN-ACK timeouts have passed.
func (e *Endpoint) SetDeferAccept(secs int) {
	n := secsToRetrans(secs)
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.deferAccept = n; return o })
}

// DeferAccept reads TCP_DEFER_ACCEPT in seconds (retransToSecs).
func (e *Endpoint) DeferAccept() int {
	e.lock()
	defer e.unlock()
	return retransToSecs(e.deferAccept)
}

// secsToRetrans counts the SYN-ACK timeouts (1 s, doubling up to 120 s)
// needed to cover secs; at most 255.
func secsToRetrans(secs int) uint8 {
	if secs <= 0 {
		return 0
	}
	n, t, period := 1, deferInit, deferInit
	for secs > period && n < 255 {
		n++
		t = min(2*t, deferMax)
		period += t
	}
	return uint8(n)
}

// retransToSecs is the time n SYN-ACK timeouts take.
func retransToSecs(n uint8) int {
	if n == 0 {
		return 0
	}
	t, period := deferInit, deferInit
	for ; n > 1; n-- {
		t = min(2*t, deferMax)
		period += t
	}
	return period
}

// deferBareAck reports whether a SYN_RCVD child drops s, the ACK that
// would complete its handshake, because its listener defers accept and
// s carries neither data nor a FIN; the child remembers that the client
// is there (its SYN-ACK timer then sends no SYN-ACK until the last
// period).
func (e *Endpoint) deferBareAck(s *segment) bool {
	if e.deferAccept == 0 || e.parent == nil || len(s.payload) > 0 || s.has(wire.TCPFlagFIN) ||
		e.backoff >= int(e.deferAccept) {
		return false
	}
	if !e.deferAcked {
		e.setOpt(func(o epOpts) epOpts { o.deferAcked = true; return o })
	}
	e.p.st.DeferAcceptDrops.Add(1)
	return true
}

// clearListenOpts drops the listener's queue options a child inherited
// with its epOpts: an accepted socket reads TCP_DEFER_ACCEPT and
// TCP_FASTOPEN as 0, as in Linux.
func (e *Endpoint) clearListenOpts() {
	if e.deferAccept != 0 || e.deferAcked || e.fastOpen != 0 {
		e.setOpt(func(o epOpts) epOpts { o.deferAccept, o.deferAcked, o.fastOpen = 0, false, 0; return o })
	}
}

// SetWindowClamp is TCP_WINDOW_CLAMP: the largest receive window
// offered, at least minWindowClamp (a smaller or negative value is
// raised to it). 0 removes the clamp, only on a closed socket: EINVAL
// otherwise, as Linux's tcp_set_window_clamp.
func (e *Endpoint) SetWindowClamp(v int) error {
	e.lock()
	defer e.unlock()
	if v == 0 {
		if e.state != StateClosed {
			return syscall.EINVAL
		}
	} else {
		v = max(v, minWindowClamp)
		v = min(v, 1<<31-1)
	}
	e.setOpt(func(o epOpts) epOpts { o.windowClamp = int32(v); return o })
	return nil
}

// WindowClamp reads TCP_WINDOW_CLAMP: the clamp set; with none, 0 on an
// unconnected socket and the largest window the connection can offer on
// a connected one (Linux reports the clamp it computed at the
// handshake, which depends on its buffer sizes).
func (e *Endpoint) WindowClamp() int {
	e.lock()
	defer e.unlock()
	if e.windowClamp != 0 {
		return int(e.windowClamp)
	}
	switch e.state {
	case StateClosed, StateListen:
		if !e.everConnected {
			return 0
		}
	}
	return 65535 << e.rcvWScale
}

// clampWindow applies TCP_WINDOW_CLAMP to a window about to be offered.
func (e *Endpoint) clampWindow(w int) int {
	if c := int(e.windowClamp); c > 0 {
		return min(w, c)
	}
	return w
}

// clampStep bounds a step the receive window must grow by before it is
// offered (receiver SWS avoidance) by TCP_WINDOW_CLAMP: a window clamped
// below the step would never open again once closed. Linux's
// __tcp_select_window likewise takes the full space as its MSS when the
// MSS is larger.
func (e *Endpoint) clampStep(step int) int {
	if c := int(e.windowClamp); c > 0 {
		return min(step, c)
	}
	return step
}

// SetNotsentLowat is TCP_NOTSENT_LOWAT: while the bytes written and not
// yet sent are at or above it, writes fail with EAGAIN (block), and
// poll reports the socket writable only once they are below half of it
// (Linux's tcp_stream_memory_free, with poll's wake shift). 0: no bound.
// Any int is taken; a negative one is kept as the unsigned value Linux
// keeps (read back the same).
func (e *Endpoint) SetNotsentLowat(v int) {
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.notsentLowat = uint32(v); return o })
	if e.writable() {
		e.notify(waiter.EventOut) // as Linux's sk_write_space
	}
}

// NotsentLowat reads TCP_NOTSENT_LOWAT.
func (e *Endpoint) NotsentLowat() int {
	e.lock()
	defer e.unlock()
	return int(int32(e.notsentLowat))
}

// notSent is the bytes written and not yet sent once.
func (e *Endpoint) notSent() int {
	return max(int(int32(e.dataEnd()-e.sndMax)), 0)
}

// notsentOK is tcp_stream_memory_free: under TCP_NOTSENT_LOWAT the
// unsent bytes, shifted by wake (1 for poll and wake-ups, 0 for a
// write), must be below the bound.
func (e *Endpoint) notsentOK(wake uint) bool {
	return e.notsentLowat == 0 || uint64(e.notSent())<<wake < uint64(e.notsentLowat)
}

// sendRoom is what a write may queue now: the free send buffer, and
// under TCP_NOTSENT_LOWAT no more than takes the unsent bytes to the
// bound, rounded up to a whole segment (Linux lets a write fill the
// buffer it started past the bound).
func (e *Endpoint) sendRoom() int {
	free := e.sndCap - e.sndLen
	if e.notsentLowat == 0 {
		return free
	}
	ns := e.notSent()
	if uint64(ns) >= uint64(e.notsentLowat) {
		return 0
	}
	room := uint64(e.notsentLowat) - uint64(ns)
	if mss := uint64(max(e.sndMSS, 1)); room%mss != 0 {
		room += mss - room%mss
	}
	return int(min(uint64(max(free, 0)), room))
}

// notsentWake wakes writers once sending took the unsent bytes below
// the TCP_NOTSENT_LOWAT bound (output calls it after sending).
func (e *Endpoint) notsentWake() {
	if e.notsentLowat != 0 && e.writable() {
		e.notify(waiter.EventOut)
	}
}

// SetInq is TCP_INQ: 0 or 1 (EINVAL otherwise); on, the socket layer
// adds a TCP_CM_INQ control message to every successful recvmsg.
func (e *Endpoint) SetInq(v int) error {
	if v < 0 || v > 1 {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.inq = v == 1; return o })
	return nil
}

// Inq reads TCP_INQ.
func (e *Endpoint) Inq() bool { e.lock(); defer e.unlock(); return e.inq }

// InqHint is TCP_CM_INQ's value, as Linux's tcp_inq_hint: the bytes
// still to read, the FIN counted as one (a received FIN leaves the
// hint at least 1, so that the reader reads on to the end of file).
func (e *Endpoint) InqHint() int {
	e.lock()
	defer e.unlock()
	n := e.rcvLen
	if e.finRcvd {
		n++
	}
	return n
}

// SetFastOpen is TCP_FASTOPEN: the queue length of Fast Open requests a
// listener would take, capped at SOMAXCONN; negative, or on a socket
// neither closed nor listening, EINVAL. It is kept and read back only:
// no Fast Open cookie is ever issued, so clients do an ordinary
// handshake (as a Linux server with net.ipv4.tcp_fastopen=1, the
// client-only default).
func (e *Endpoint) SetFastOpen(v int) error {
	e.lock()
	defer e.unlock()
	if v < 0 || (e.state != StateClosed && e.state != StateListen) {
		return syscall.EINVAL
	}
	v = min(v, e.p.cfg.SOMAXCONN)
	e.setOpt(func(o epOpts) epOpts { o.fastOpen = int32(v); return o })
	return nil
}

// FastOpen reads TCP_FASTOPEN.
func (e *Endpoint) FastOpen() int { e.lock(); defer e.unlock(); return int(e.fastOpen) }

// SetFastOpenConnect is TCP_FASTOPEN_CONNECT: 0 or 1, on a closed
// socket only (EINVAL otherwise). Kept and read back: with no cookie
// cached for any server (this stack keeps none), connect does an
// ordinary handshake, as Linux's first connection to a server does.
func (e *Endpoint) SetFastOpenConnect(v int) error {
	if v < 0 || v > 1 {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	if e.state != StateClosed {
		return syscall.EINVAL
	}
	e.setOpt(func(o epOpts) epOpts { o.fastOpenConn = v == 1; return o })
	return nil
}

// FastOpenConnect reads TCP_FASTOPEN_CONNECT.
func (e *Endpoint) FastOpenConnect() bool { e.lock(); defer e.unlock(); return e.fastOpenConn }
