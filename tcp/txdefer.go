package tcp

import (
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Sending after the lock. On a link to the kernel (a TAP, a TUN, an
// AF_PACKET socket on a veth) the write of a segment carries the
// kernel's work for it: its receive path and TCP run inside the system
// call, more than half of a bulk sender's time. Under the endpoint's
// lock, the application's writes waited for all of it, and the link's
// reader too before it could take the next ACK: the writes, the ACK
// processing and the copies from the application ran one after the
// other.
//
// So on a route that allows it (Route.Defer: a link that never refuses
// a frame for a full queue) a segment is queued rather than sent, and
// whoever unlocks the endpoint next becomes its flusher: after the
// unlock it hands the queue to the host, in order, until it finds it
// empty, while segments made meanwhile (by a write, the ACKs' processing,
// a timer) join the queue behind. The writer copies its next bytes while
// the reader, say, flushes.
//
// What keeps it right:
//   - order: while a queue holds or hands over segments of e, every
//     segment of e joins it (deferSeg, under the queue's lock), and the
//     flusher lets go of it only when it finds it empty, under the same
//     lock; one flusher at a time (claimFlush);
//   - the bytes: a queued segment points into the send ring. While it
//     does (flushPending), the ring is not pooled when it grows or is let
//     go (reset, close), and an ACK that empties it does not free it, so
//     nobody else writes into it. The writer's next bytes go behind
//     sndLen, past every queued segment's. An ACK lets the ring go of
//     the bytes it covers only up to the lowest sequence a queued
//     segment carries (flushClamp): a retransmission queued, then
//     acknowledged before the flusher handed it over, still points to
//     its bytes, which the writer would otherwise write over while the
//     host copies them (a data race, harmless on the wire since the
//     peer discards acknowledged bytes, but a race). The flusher that
//     empties the queue lets them go (releaseLagged);
//   - the result: the host's Output cannot refuse a segment for a full
//     queue on such a route, so TCP counts a queued segment as sent
//     (xmitDone), as after a synchronous Output. Another error (the
//     interface went down) is counted in OutputErrors and recovered from
//     as a loss; an ACK that failed is owed again.

// flushQueue is the transmit queue of one endpoint at a time: one per
// write lock, endpoints hashed to them (a queue in the endpoint would
// take it into a larger size class). An endpoint that finds its queue
// serving another sends at once, as without deferral.
type flushQueue struct {
	mu sync.Mutex
	// ep is whose segments it holds or hands over (nil: free), set
	// under mu. Only deferSeg makes it e, with e locked, so a caller
	// holding e's lock that loads another value may skip mu (notMine).
	ep       atomic.Pointer[Endpoint]
	flushing bool // a flusher is handing them over
	segs     []*Segment
	spare    []*Segment
	// kick wakes the queue's own flusher, a goroutine started at the
	// first hand-off (handOff); handed says the flush is its now.
	kick   chan struct{}
	handed bool
	// qLow is the lowest sequence number a segment with data in segs
	// carries; hLow the same for the segments of the batch the flusher
	// hands over that the host has not yet copied, lowered segment by
	// segment from hSuf, without the lock (both as pinLow encodes
	// them, 0: none); an ACK whose release they held back set lagged
	// (flushClamp).
	qLow   uint64
	lagged bool
	hLow   atomic.Uint64
	hSuf   []uint64
}

// pinLow is the sequence number seg's bytes start at, encoded for
// flushQueue's qLow and hLow; 0 for a segment without data, which
// points into no ring.
func pinLow(seg *Segment) uint64 {
	if len(seg.Payload[0])+len(seg.Payload[1]) == 0 {
		return 0
	}
	return 1<<32 | uint64(seg.Header.Seq)
}

// lowest is the lower of two pinLow encodings (0: none).
func lowest(a, b uint64) uint64 {
	switch {
	case a == 0:
		return b
	case b == 0 || seqLT(uint32(a), uint32(b)):
		return a
	}
	return b
}

// OutputHolder is a Host whose links can hold the frames of the
// segments a flusher hands over one by one and send them together, in
// one system call (link.Holder): the flusher holds the link of its
// route (Route.Hold) from its first segment to its last, and no other,
// so frames of other connections on other links never wait for it.
// Holds nest; the frames leave when the last holder lets go.
type OutputHolder interface {
	HoldOutput(link int, start bool)
	// FlushOutput sends what the link holds now, holds unchanged: a
	// batch's ACK goes before its reader is woken (Batch.Flush).
	FlushOutput(link int)
}

// holdID is a Route.Hold as the endpoint keeps it (txHold): a link id
// beyond 16 bits is not held, which costs batching, never correctness.
func holdID(link int) uint16 {
	if link < 1 || link > 0xffff {
		return 0
	}
	return uint16(link)
}

// flushBudget is how many segments an unlocker writes before it hands
// what is still queued to the queue's own goroutine. Without a bound,
// whoever unlocked a connection that others keep queuing for (a
// getsockopt, the timer wheel's goroutine) could write for as long as
// the application kept the send buffer full.
var flushBudget = 64 // a variable for tests

// flushQ is e's flush queue (the same index as its write lock).
func (e *Endpoint) flushQ() *flushQueue {
	return &e.p.flushQueues()[e.lockIndex()]
}

// flushQueues are p's flush queues, made on first use.
func (p *Protocol) flushQueues() *[writeLocks]flushQueue {
	if a := p.txqs.Load(); a != nil {
		return a
	}
	p.txqs.CompareAndSwap(nil, new([writeLocks]flushQueue))
	return p.txqs.Load()
}

// deferSeg queues seg, made with e locked, for e's flusher, unless the
// queue serves another endpoint.
func (e *Endpoint) deferSeg(seg *Segment) bool {
	if e.mu.m.TryLock() {
		// Nobody holds e's lock, so no unlock would flush it: a
		// segment from an endpoint never locked (a SYN cookie's) leaves
		// at once.
		e.mu.m.Unlock()
		return false
	}
	q := e.flushQ()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch q.ep.Load() {
	case e:
	case nil:
		q.ep.Store(e)
	default:
		return false
	}
	q.segs = append(q.segs, seg)
	q.qLow = lowest(q.qLow, pinLow(seg))
	e.p.st.DeferredSegs.Add(1)
	return true
}

// flushClamp is how far an ACK of ack may let the send ring go (e
// locked): not past the lowest byte a segment queued or being handed
// over carries, which then lags until the flusher is done.
func (e *Endpoint) flushClamp(ack uint32) uint32 {
	q := e.flushQ()
	if q.notMine(e) {
		return ack
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ep.Load() != e {
		return ack
	}
	if low := lowest(q.qLow, q.hLow.Load()); low != 0 && seqLT(uint32(low), ack) {
		q.lagged = true
		e.p.st.SndReleaseHeld.Add(1)
		return uint32(low)
	}
	return ack
}

// releaseLagged lets the send ring go of what ACKs acknowledged while
// queued segments pointed to it (flushClamp), now that they are handed
// over, and wakes writers waiting for the room (e locked).
func (e *Endpoint) releaseLagged() {
	if e.state == StateClosed {
		return
	}
	if d := e.releaseAcked(e.sndUna); d > 0 {
		e.updateSndBuf()
		if !e.wrShut && e.writable() {
			e.notify(waiter.EventOut)
		}
	}
}

// claimFlush makes the caller, unlocking e, its flusher if segments of
// e are queued and nobody hands them over yet.
func (e *Endpoint) claimFlush() *flushQueue {
	q := e.flushQ()
	if q.notMine(e) {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ep.Load() != e || q.flushing {
		return nil
	}
	q.flushing = true
	return q
}

// flushPending says segments of e are queued or being handed over, so
// may point into its send ring (e locked).
func (e *Endpoint) flushPending() bool {
	if !e.txDefer {
		return false
	}
	q := e.flushQ()
	if q.notMine(e) {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ep.Load() == e
}

// notMine says, without q's lock, that q holds no segment of e and
// hands none over, for a caller holding e's lock: q.ep becomes e only
// in deferSeg, under that lock, so the answer holds until the caller
// unlocks e. (The converse does not: a flusher may let q go meanwhile,
// so "mine" is checked again under q's lock.) This keeps q's lock off
// the ACK path and off every unlock of an endpoint whose segments are
// not queued.
func (q *flushQueue) notMine(e *Endpoint) bool { return q.ep.Load() != e }

// ringPinned says the send ring's buffer must not go back to its pool
// now: a writer may be copying into it, or queued segments point into it.
func (e *Endpoint) ringPinned() bool { return e.writing() || e.flushPending() }

// flushTx hands q's segments to the host, in order, until none is
// left, then frees q; e is not locked. An ACK that did not leave is
// owed again, as xmitDone does for one sent at once.
func (e *Endpoint) flushTx(q *flushQueue) { e.flushQueued(q, flushBudget) }

// flushQueued is flushTx; after budget segments (0: no bound; below 0,
// at once, for tests) it hands the rest to q's goroutine, still
// flushing.
func (e *Endpoint) flushQueued(q *flushQueue, budget int) {
	p := e.p
	ackFailed := false
	sent := 0
	if h, l := p.holder, int(e.txHold); h != nil && l != 0 {
		h.HoldOutput(l, true)
		defer h.HoldOutput(l, false)
	}
	for {
		q.mu.Lock()
		segs := q.segs
		if len(segs) == 0 {
			lagged := q.lagged
			q.ep.Store(nil)
			q.flushing, q.qLow, q.lagged = false, 0, false
			q.mu.Unlock()
			if lagged {
				e.lock()
				e.releaseLagged()
				e.unlock()
			}
			break
		}
		if (budget < 0 || budget > 0 && sent >= budget) && q.handOff(p) {
			q.mu.Unlock()
			break
		}
		q.segs, q.spare = q.spare[:0], segs
		// Only this batch's segments not yet copied by the host, and what
		// joins the queue behind them, point into the ring from now on
		// (flushClamp): hSuf[i] is the lowest of segs[i:].
		if cap(q.hSuf) <= len(segs) {
			q.hSuf = make([]uint64, 2*len(segs)+1)
		}
		suf := q.hSuf[:len(segs)+1]
		suf[len(segs)] = 0
		for i := len(segs) - 1; i >= 0; i-- {
			suf[i] = lowest(suf[i+1], pinLow(segs[i]))
		}
		q.hLow.Store(suf[0])
		q.qLow = 0
		q.mu.Unlock()
		for i, seg := range segs {
			err := p.host.Output(seg)
			q.hLow.Store(suf[i+1]) // the host copied seg's bytes
			if err != nil {
				p.st.OutputErrors.Add(1)
				ackFailed = ackFailed || seg.Header.Flags&wire.TCPFlagACK != 0
			}
			if seg.stampSnd {
				e.lock()
				e.txStampFlushed(seg, err == nil) // txstamp.go
				e.unlock()
			}
			p.putSeg(seg)
			segs[i] = nil
		}
		sent += len(segs)
	}
	if ackFailed {
		e.lock()
		if e.state != StateClosed {
			e.ackNow = true
			e.dackAt = 0
			e.armDelayedAck(p.now())
		}
		e.unlock()
	}
}

// handOff wakes q's goroutine, starting it the first time, to go on
// flushing for the caller (q locked, flushing). It fails once the
// Protocol is closed: the caller flushes to the end itself.
func (q *flushQueue) handOff(p *Protocol) bool {
	select {
	case <-p.flushDone:
		return false
	default:
	}
	if q.kick == nil {
		q.kick = make(chan struct{}, 1)
		go q.run(p, q.kick)
	}
	q.handed = true
	p.st.FlushHandOffs.Add(1)
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return true
}

// run is q's goroutine: woken by a hand-off, it flushes the endpoint
// whose segments q holds until none is left.
func (q *flushQueue) run(p *Protocol, kick <-chan struct{}) {
	for {
		select {
		case <-kick:
		case <-p.flushDone:
			return
		}
		q.mu.Lock()
		e := q.ep.Load()
		mine := q.handed
		q.handed = false
		q.mu.Unlock()
		if mine && e != nil {
			e.flushQueued(q, 0)
		}
	}
}
