package link

import (
	"sync"
	"time"
	"unsafe"

	"github.com/sockstack/sockstack/wire"
)

// Lending receive buffers. An endpoint that reads super-segments (up to
// 64 KB each) lets its receiver keep the buffer a frame was read into
// instead of copying the payload out: TCP queues the buffer as received
// data and gives it back when the application has read it, and the
// endpoint reads into a fresh buffer from a pool meanwhile. The buffers
// cycle between the pool, the endpoint and the receiver, so nothing is
// allocated per frame once the pool holds enough of them.

// LendBufLen is the size of a lent buffer: a virtio-net header, an
// Ethernet header with a VLAN tag, and the largest IP packet.
const LendBufLen = vnetHdrLen + wire.EthernetHeaderLen + 4 + InMemoryGSOMax

// RxBuf is a receive buffer lent to a receiver.
type RxBuf [LendBufLen]byte

var rxBufs = sync.Pool{New: func() any { return new(RxBuf) }}

// Release gives the buffer back to the pool; its bytes must not be used
// afterwards.
func (b *RxBuf) Release() { rxBufs.Put(b) }

// Loan is memory lent to a receiver: a pooled buffer (*RxBuf), or a
// block of a receive ring (tpacket_linux.go). Release gives it back.
type Loan interface{ Release() }

// Lender is implemented by endpoints whose receive buffers can be kept.
type Lender interface {
	// Lend takes the buffer that p (a slice of a frame being delivered,
	// during DeliverFrames) lies in: the receiver owns it until it calls
	// Release (once per Lend), and the endpoint reads into other memory.
	// It returns nil if p is not in a buffer of the endpoint's, or that
	// buffer cannot be lent: the receiver copies p then.
	Lend(p []byte) Loan
}

// Lending receivers learn the lender of the frames they are given, once,
// when an endpoint that lends attaches them (each queue of a multi-queue
// endpoint its own receiver and its own buffers).
type LendingReceiver interface {
	SetLender(l Lender)
}

// IdleReceiver is a receiver that may keep work from one batch of frames
// for the next (the ACK a hole still open at a batch's end owes: the
// missing frame is often the next one read). An endpoint that tells it
// when a read finds nothing more (the TAP, TUN and AF_PACKET endpoints)
// calls HoldForIdle once, before the first batch, then Idle each time it
// is about to wait for the file with Holding true: the wait is bounded by
// the next batch or the link going quiet.
type IdleReceiver interface {
	HoldForIdle()
	Holding() bool
	Idle()
}

// BusyPoller is an endpoint whose frames a caller may read and deliver
// on its own goroutine (busy polling, Linux's SO_BUSY_POLL): BusyPoll
// reads until ready.BusyReady reports true or budget passes without a frame, and
// says whether ready did. BusyPollOnce reads only what the device holds
// now (a non-blocking receive). A multi-queue device polls the queue
// ready.BusyFlow comes in on. Both return false at once when they cannot
// poll (another caller polls, the flow's queue is not known, the device
// is closed). The TAP, TUN and AF_PACKET endpoints are BusyPollers.
type BusyPoller interface {
	BusyPoll(ready BusyWaiter, budget time.Duration) bool
	BusyPollOnce(ready BusyWaiter) bool
}

// BusyWaiter is what a busy poller waits for: a socket to become
// readable. (An interface, not a func: a socket passes itself without
// allocating.)
type BusyWaiter interface {
	BusyReady() bool
	// BusyFlow is the flow the waiter's data comes in (TupleFlowHash;
	// 0: unknown). Only a multi-queue device asks, to pick its queue.
	BusyFlow() uint32
}

// BusyTuner is a BusyWaiter that sets how it is polled, as Linux's
// SO_BUSY_POLL_BUDGET and SO_PREFER_BUSY_POLL do (and an epoll
// instance's EPIOCSPARAMS). frames caps what a pass reads before the
// waiter is asked again (0: the device's read batch). prefer makes a
// one-pass call (BusyPollOnce) that finds data keep the device for the
// lease as a blocking call does, so the device's own reader stays out
// while the caller keeps polling (Linux keeps the device's interrupts
// off for it).
type BusyTuner interface {
	BusyTune() (frames int, prefer bool)
}

// lendState is the lending part of an fdEndpoint's reading goroutine.
type lendState struct {
	on   bool
	arrs []*RxBuf // arrs[i] backs bufs[i]; nil once lent, until refilled
	// ring, when set, lends frames in place in a receive ring's blocks
	// instead (tpacket_linux.go); arrs is empty then.
	ring interface{ lend(p []byte) Loan }
}

// initLend makes the read buffers lendable ones.
func (e *fdEndpoint) initLend() {
	e.lend.on = true
	e.lend.arrs = make([]*RxBuf, len(e.bufs))
	for i := range e.bufs {
		a := rxBufs.Get().(*RxBuf)
		e.lend.arrs[i] = a
		e.bufs[i] = a[:]
	}
}

// Lend is Lender.Lend; it runs on the reading goroutine (in
// DeliverFrames).
func (e *fdEndpoint) Lend(p []byte) Loan {
	if !e.lend.on || len(p) == 0 {
		return nil
	}
	if e.lend.ring != nil {
		return e.lend.ring.lend(p)
	}
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	for i, a := range e.lend.arrs {
		if a == nil {
			continue
		}
		base := uintptr(unsafe.Pointer(a))
		if at >= base && at+uintptr(len(p)) <= base+LendBufLen {
			e.lend.arrs[i] = nil
			return a
		}
	}
	return nil
}

// refill replaces the lent buffers before the next read.
func (e *fdEndpoint) refill() bool {
	refilled := false
	for i, a := range e.lend.arrs {
		if a == nil {
			a = rxBufs.Get().(*RxBuf)
			e.lend.arrs[i] = a
			e.bufs[i] = a[:]
			refilled = true
		}
	}
	return refilled
}
