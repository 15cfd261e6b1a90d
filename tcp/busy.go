package tcp

import (
	"sync"
	"time"
	"unsafe"
)

// epBusy is the part of an endpoint that is zero while the connection
// is idle: loss recovery, the in-flight records, RACK, out-of-order
// data, the ACK, probe and pacing timers, urgent data, D-SACK, ECN,
// pending errors and listener bookkeeping. With a million idle
// connections it is memory per connection for nothing (issue 10), so an
// endpoint holds one only while its lock is held or while some of it is
// not zero: locking takes one (from a pool, zeroed), unlocking gives it
// back when every field is zero again. Because only an all-zero epBusy is
// dropped and a fresh one is all zero, the connection behaves the same
// with or without the release; a connection whose state stays non-zero
// (a listener, an orphan's close timer, an ECN-capable connection)
// simply keeps its epBusy.
//
// Every access goes through the embedded pointer, under e.mu (epMutex
// makes sure it is there), or before the endpoint is published, while
// it holds the epBusy that initOptions gives it.
type epBusy struct {
	epBusyVals

	ooo []oooRange
	sb  scoreboard
	txq txQueue // what is in flight, for RACK
}

// epBusyVals is the comparable part of epBusy.
type epBusyVals struct {
	err     error // pending SO_ERROR
	softErr error // last soft ICMP error: SO_ERROR or the timeout's reason

	oooRecent, finOOOSeq uint32
	recoverSeq           uint32
	cookieTS             uint32 // TSval for a SYN-ACK that encodes options (cookie)
	rcvSpaceSeq          uint32
	lossHigh             uint32 // SND.MAX when the current RTO episode began
	rttSeq               uint32 // the timed segment's end, while rttTiming
	tlpHigh              uint32 // SND.MAX when a retransmitted probe went out

	backoff, dupAcks int
	ackPending       int // bytes received and not yet acknowledged
	probes           int // unanswered zero-window probes
	kaProbes         int // unanswered keepalive probes
	probesOut        int // zero-window probes not answered by any ACK
	rcvSpace, copied int // receive buffer auto-tuning (like Linux DRS)

	dackAt      time.Duration
	rttStart    time.Duration // when the timed segment left, while rttTiming
	rtoAt       time.Duration
	tlpAt       time.Duration // tail loss probe (RFC 8985 7)
	persistAt   time.Duration
	closeAt     time.Duration // TIME_WAIT or orphaned FIN_WAIT2 end
	rtoStamp    time.Duration // when the timer of the head segment started (set at its first RTO)
	probesStamp time.Duration // when the first zero-window probe went out
	lastOOWAck  time.Duration // last ACK for an invalid segment (rate limit)
	paceAt      time.Duration // when the pacer lets the next byte go
	paceTimerAt time.Duration // the timer releases the next burst

	batch  *Batch       // set while a batch delivers a segment
	parent *Endpoint    // a child not yet accepted: its listener
	ls     *listenState // made by Listen; nil on a connection
	undo   *undoState   // D-SACK undo of a spurious loss episode; made at the first one

	rk    rackState
	dsack dsackState // D-SACK block owed on the next ACK
	urg   urgState   // urgent data, both directions
	ecn   ecnState

	connectErrPending bool
	finOOO            bool
	recovery          bool
	ackNow            bool
	batchAck          bool   // an ACK is owed at the end of the batch
	batchAckNow       bool   // ... even with no new in-order data (out of order)
	inBatch           bool   // on the batch's flush list
	ackHeld           bool   // its out-of-order ACK waits for the next batch (Batch.SetHold)
	heldAt            uint32 // rcvNxt when an ACK was held for a hole (heldHole) ...
	heldHole          bool   // ... then that hole's reports are not held again (after heldAt: padding)
	tlpOut            bool
	dackArmed         bool
	inSynQ            bool
	inLoss            bool // an RTO loss episode may be under way
	tlpRetrans        bool // a retransmitted probe awaits its verdict (RFC 8985 7.4)
	paceHeld          bool
	rttTiming         bool // a segment is timed for an RTT sample (RFC 6298)
	// A full link queue refused a segment (room.go): roomWait says a
	// LinkRoom wake-up is due, ackRefused that a refused ACK is owed,
	// synRefused that the SYN (or SYN-ACK) never left.
	roomWait, ackRefused, synRefused bool
	// rcvLowat is SO_RCVLOWAT less one (rcvlowat.go): the default 1
	// is zero, so a connection that never sets it can drop its epBusy.
	rcvLowat int32

	// lentQ: the readable bytes after the ring's are in lent buffers
	// (lend.go); nil when there are none, so it is part of the zero test.
	lentQ *lentQueue
	// errq: ICMP errors queued under IP_RECVERR (errqueue.go); nil when
	// empty.
	errq *errQueue
}

// zero says every byte of v is zero, which for its fields (integers,
// bools, pointers, interfaces; no floats) is v == epBusyVals{}: one
// memory compare instead of the generated field-by-field equality, as
// every unlock runs it.
func (v *epBusyVals) zero() bool {
	return *(*[unsafe.Sizeof(epBusyVals{})]byte)(unsafe.Pointer(v)) == [unsafe.Sizeof(epBusyVals{})]byte{}
}

var busyPool = sync.Pool{New: func() any { return new(epBusy) }}

// getBusy and putBusy keep one epBusy at hand per Protocol before the
// pool: a request/response connection gives its epBusy back after every
// exchange and takes it again at the next, and a swap is cheaper than
// the pool's round trip.
func (p *Protocol) getBusy() *epBusy {
	if b := p.spareBusy.Swap(nil); b != nil {
		return b
	}
	return busyPool.Get().(*epBusy)
}

func (p *Protocol) putBusy(b *epBusy) {
	if !p.spareBusy.CompareAndSwap(nil, b) {
		busyPool.Put(b)
	}
}

// epMutex is the endpoint's lock. Lock gives the endpoint its epBusy
// (from a pool, zeroed) if it has none; Unlock gives it back when all
// of it is zero. So every e.mu.Lock() in this package, written before
// or after the split, finds the epBusy there.
type epMutex struct{ m sync.Mutex }

// ep is the Endpoint m is the lock of, found from m's address (like
// wheelTimer.endpoint) rather than kept in a pointer.
func (m *epMutex) ep() *Endpoint {
	return (*Endpoint)(unsafe.Add(unsafe.Pointer(m), -int(unsafe.Offsetof(Endpoint{}.mu))))
}

func (m *epMutex) Lock() {
	m.m.Lock()
	if e := m.ep(); e.epBusy == nil {
		e.epBusy = e.p.getBusy()
	}
}

func (m *epMutex) Unlock() {
	e := m.ep()
	m.dropIdle(e)
	var q *flushQueue
	if e.txDefer {
		q = e.claimFlush() // txdefer.go
	}
	m.m.Unlock()
	if q != nil {
		e.flushTx(q)
	}
}

// unlockNoFlush is Unlock leaving queued segments to the next unlock:
// for a writer about to copy without the lock (sndcopy.go), which the
// link's reader may flush for meanwhile.
func (m *epMutex) unlockNoFlush() {
	m.dropIdle(m.ep())
	m.m.Unlock()
}

// dropIdle gives back e's epBusy if it is all zero (e locked).
func (m *epMutex) dropIdle(e *Endpoint) {
	// Data in flight (the common busy case) fails fast.
	if b := e.epBusy; b != nil && e.sndUna == e.sndMax && e.busyIdle(b) {
		e.epBusy = nil
		e.p.putBusy(b)
	}
}

// lock and unlock are e.mu.Lock and e.mu.Unlock.
func (e *Endpoint) lock()   { e.mu.Lock() }
func (e *Endpoint) unlock() { e.mu.Unlock() }

// busyIdle says e's epBusy b is all zero, and so can be dropped. A few
// fields whose value no longer matters count as zero and are cleared
// here:
//   - empty slices that kept their arrays (the scoreboard's, the
//     out-of-order list's): let go, made again by the next episode;
//   - the RTT timing's start and sequence, read only while rttTiming;
//   - RACK's most recently delivered segment (xmit, endSeq, rtt, fack)
//     once nothing is in flight: every segment sent from now on leaves
//     after it and ends above it, so the first delivery replaces all
//     four whether they are kept or zero (rackDelivered), and until then
//     rackDetect finds no record sent before it either way;
//   - the receive auto-tuning's largest amount read per RTT (rcvSpace),
//     when the rest is zero: the buffer it grew is kept (rcvCap, which
//     only grows while auto-tuning), and as rcvCap >= 4 * rcvSpace (or
//     the maximum), a smaller amount read later asks for no more than
//     rcvCap either way (tuneRcvBuf);
//   - the bytes read this RTT (copied) once SO_RCVBUF is set: only the
//     auto-tuning reads them, and SO_RCVBUF ends it (userRcvBuf never
//     goes back to 0), so such a connection counted forever and never
//     went idle;
//   - the bytes read this RTT (copied) once everything received is read
//     and the measurement's RTT is over: it ends here, as a read of
//     nothing would end it (tuneRcvBuf), rather than at the next read,
//     which may not come for a long time. Else a transfer whose last
//     read did not happen to end a measurement (a write's short tail
//     that leaves with the rest, Nagle) kept its epBusy until then.
func (e *Endpoint) busyIdle(b *epBusy) bool {
	// What a connection between exchanges usually still has pending (an
	// ACK owed, bytes read this RTT) fails before the whole compare.
	if b.ackPending != 0 || b.dackAt != 0 || b.txq.n != 0 {
		return false
	}
	if b.copied != 0 && e.userRcvBuf == 0 && e.rcvLen == 0 {
		e.tuneRcvBuf(e.p.now()) // zeroes copied if the RTT is over
	}
	if b.copied != 0 {
		if e.userRcvBuf == 0 {
			return false
		}
		b.copied = 0 // read only by the auto-tuning, which SO_RCVBUF stopped for good
	}
	if !b.rttTiming {
		b.rttStart, b.rttSeq = 0, 0
	}
	if b.txq.n == 0 && e.sndUna == e.sndMax {
		b.rk.xmit, b.rk.endSeq, b.rk.rtt, b.rk.fack = 0, 0, 0, 0
	}
	space := b.rcvSpace
	b.rcvSpace = 0
	if !b.epBusyVals.zero() || len(b.ooo) != 0 || len(b.sb.blocks) != 0 ||
		b.sb.sacked != 0 || b.sb.highest != 0 || b.txq.r != nil || b.txq.head != 0 || b.txq.n != 0 {
		b.rcvSpace = space
		return false
	}
	b.ooo, b.sb.blocks = nil, nil
	return true
}
