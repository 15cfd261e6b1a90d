package link

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// DefaultReadBatch is how many frames a device endpoint reads per wake-up.
const DefaultReadBatch = 32

// fdEndpoint is the part TAP, TUN and AF_PACKET endpoints share: a
// non-blocking fd in Go's poller (so Close interrupts a blocked read), a
// reading goroutine that delivers frames in batches, and batched writes.
type fdEndpoint struct {
	f     *os.File
	rc    syscall.RawConn
	name  string
	mtu   int
	kind  Kind
	mac   wire.MAC
	stats *Stats // shared by the queues of one device

	// Multi-queue devices (a multi-queue TAP, AF_PACKET sockets in a
	// fanout group): queues[0] is this endpoint, each queue an fd with
	// its own reading goroutine; nil with one queue. Transmission picks a
	// queue by flow hash, so a flow stays on one.
	queues   []*fdEndpoint
	qrx, qtx atomic.Uint64 // frames this queue received and sent
	// flows, on every queue of a multi-queue device, learns which queue
	// a flow comes in on for busy pollers (flowqueue.go); qi is this
	// queue's index.
	flows *flowTable
	qi    int

	closed   atomic.Bool
	attached atomic.Bool
	readDone chan struct{}

	// Reading goroutine state; readFn fills frames[:nread].
	bufs   [][]byte
	frames [][]byte
	nread  int
	rerr   error
	readFn func(fd uintptr) bool
	// readMax, when positive, caps the frames a read takes: a busy
	// poller's SO_BUSY_POLL_BUDGET (readLimit).
	readMax int
	// refillHook, when set, runs after lent buffers were replaced (an
	// endpoint whose reads point at the buffers updates them).
	refillHook func()
	// deliverHook, when set, runs before (true) and after (false) each
	// batch is delivered: an endpoint may hold back what the receiver
	// writes meanwhile and send it in one system call after.
	deliverHook func(start bool)
	// idleOwed: the receiver holds work for when the file has nothing
	// more to read (IdleReceiver); idleNow: a read stopped to do it.
	idleOwed, idleNow bool
	// reorderWait, when positive, is how long a read that finds nothing
	// waits for more frames before it calls Idle while the receiver
	// holds work (AFPacketOptions.ReorderWait); reorderWaits counts the
	// waits, reorderWoken those that ended with frames to read (the
	// missing one, or later ones: a real loss).
	reorderWait                time.Duration
	reorderWaits, reorderWoken atomic.Uint64
	reorderPoll                [1]unix.PollFd // kept: no allocation per wait

	// Writer state, under wmu; writeFn sends wframes[wnext:].
	wmu     sync.Mutex
	wframes [][]byte
	wnext   int
	wtaken  int
	werr    error
	writeFn func(fd uintptr) bool
	// wtail is the payload gathered after wframes[0] (writeVec); the
	// write callbacks that gather (writeVnet, writeMany) honour it.
	wtail [2][]byte
	wone  [1][]byte
	wmeta [1]Meta
	// sendFD, when sendOwn, is a socket of its own that writeFn writes
	// to, kept out of Go's poller (AF_PACKET, afpacket_linux.go); it is
	// closed under wmu once closed is set.
	sendFD  int
	sendOwn bool

	// io_uring (fdring_linux.go): wring is used under wmu; nil where
	// io_uring is not used, and uringErr (set when the endpoint is
	// made) says why. rcalls and wcalls count the system calls that
	// read and sent frames, ringFailures the rings given up while in
	// use.
	wring          *uring
	uringErr       error
	rcalls, wcalls atomic.Uint64
	ringFailures   atomic.Uint64

	holdState // frames held while a batch is delivered (hold_linux.go)

	// Busy polling (BusyPoll): recv and idle are the receiver the
	// reading goroutine delivers to.
	bp   busyPoll
	recv Receiver
	idle IdleReceiver

	vnet vnetState // virtio-net headers (vnet_linux.go)
	lend lendState // receive buffers the receiver may keep (lend.go)
}

// initFD puts fd under the poller and allocates read buffers.
func (e *fdEndpoint) initFD(fd int, name string, batch, bufSize int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	if e.stats == nil {
		e.stats = new(Stats)
	}
	e.f = os.NewFile(uintptr(fd), name)
	rc, err := e.f.SyscallConn()
	if err != nil {
		e.f.Close()
		return err
	}
	e.rc = rc
	if batch <= 0 {
		batch = DefaultReadBatch
	}
	e.bufs = make([][]byte, batch)
	for i := range e.bufs {
		e.bufs[i] = make([]byte, bufSize)
	}
	e.frames = make([][]byte, batch)
	e.vnet.metas = make([]Meta, batch)
	e.readDone = make(chan struct{})
	e.bp.returned = make(chan struct{}, 1)
	e.bp.lease.Store(int64(busyLease))
	return nil
}

func (e *fdEndpoint) MTU() int { return e.mtu }

// NeverQueueFull is link.NeverQueueFull: the kernel makes a write wait,
// or drops the frame and counts it.
func (e *fdEndpoint) NeverQueueFull()        {}
func (e *fdEndpoint) Kind() Kind             { return e.kind }
func (e *fdEndpoint) HardwareAddr() wire.MAC { return e.mac }
func (e *fdEndpoint) Stats() *Stats          { return e.stats }

// QueueSnapshot is what one queue of a device carried.
type QueueSnapshot struct {
	RxFrames, TxFrames uint64
}

// Queues is the number of queues (fds) of the device.
func (e *fdEndpoint) Queues() int { return max(len(e.queues), 1) }

// QueueStats reads the frame counters of queue i.
func (e *fdEndpoint) QueueStats(i int) QueueSnapshot {
	q := e
	if e.queues != nil {
		q = e.queues[i]
	}
	return QueueSnapshot{q.qrx.Load(), q.qtx.Load()}
}

// Name is the interface name.
func (e *fdEndpoint) Name() string { return e.name }

// Attach starts the reading goroutine, one per queue: each delivers to a
// receiver of its own (MultiReceiver), or under a lock to a plain one.
func (e *fdEndpoint) Attach(r Receiver) {
	if e.attached.Swap(true) {
		return
	}
	if e.queues == nil {
		e.setLender(r)
		go e.readLoop(r)
		return
	}
	for i, rq := range queueReceivers(r, len(e.queues)) {
		q := e.queues[i]
		q.attached.Store(true)
		q.setLender(rq)
		go q.readLoop(rq)
	}
}

// setLender tells a lending receiver that this queue lends its buffers.
func (e *fdEndpoint) setLender(r Receiver) {
	if lr, ok := r.(LendingReceiver); ok && e.lend.on {
		lr.SetLender(e)
	}
}

func (e *fdEndpoint) readLoop(r Receiver) {
	defer close(e.readDone)
	idle, _ := r.(IdleReceiver)
	if idle != nil {
		idle.HoldForIdle()
	}
	e.bp.mu.Lock()
	e.recv, e.idle = r, idle
	e.bp.mu.Unlock()
	read := e.readFn
	if idle != nil {
		// Nothing more to read: stop before waiting if the receiver
		// holds work for that moment.
		read = func(fd uintptr) bool {
			if e.readFn(fd) {
				return true
			}
			if e.idleOwed {
				if e.reorderWait > 0 && e.waitForMore(fd) && e.readFn(fd) {
					// Frames came: the next batch may fill the hole;
					// Idle stays owed if it does not.
					return true
				}
				e.idleOwed, e.idleNow = false, true
				return true
			}
			return false
		}
	}
	// The reading state is the holder's of bp.mu: this goroutine's
	// from a read that found something to the end of its delivery, or a
	// busy poller's (BusyPoll). While a poller owns the link, this
	// goroutine waits for it to give the link back.
	locked := false
	gate := func(fd uintptr) bool {
		if e.bp.owned.Load() {
			return true
		}
		e.bp.mu.Lock()
		if e.bp.owned.Load() {
			e.bp.mu.Unlock()
			return true
		}
		if e.lend.on && e.refill() && e.refillHook != nil {
			e.refillHook()
		}
		e.nread, e.rerr = 0, nil
		if read(fd) {
			locked = true
			return true
		}
		e.bp.mu.Unlock()
		return false
	}
	for {
		if e.bp.owned.Load() {
			if !e.bp.waitReturned(&e.closed) {
				return
			}
			continue
		}
		err := e.rc.Read(gate)
		stop := false
		if locked {
			locked = false
			e.deliverRead()
			stop = e.readFailed()
			e.bp.mu.Unlock()
		}
		if err != nil || e.closed.Load() || stop {
			return // the file was closed
		}
	}
}

// deliverRead hands what the last read found to the receiver: the idle
// work it stopped for, then the frames (bp.mu held).
func (e *fdEndpoint) deliverRead() {
	r, idle := e.recv, e.idle
	if e.idleNow {
		e.idleNow = false
		if e.deliverHook != nil {
			e.deliverHook(true)
		}
		idle.Idle()
		if e.deliverHook != nil {
			e.deliverHook(false)
		}
	}
	if e.nread > 0 {
		if e.flows != nil && e.flows.on.Load() {
			e.flows.learn(e.frames[:e.nread], e.kind, e.qi)
		}
		var bytes uint64
		for _, f := range e.frames[:e.nread] {
			bytes += uint64(len(f))
		}
		e.stats.RxFrames.Add(uint64(e.nread))
		e.stats.RxBytes.Add(bytes)
		e.qrx.Add(uint64(e.nread))
		if e.deliverHook != nil {
			e.deliverHook(true)
		}
		if e.vnet.on {
			deliverMeta(r, e.frames[:e.nread], e.vnet.metas[:e.nread], &e.vnet.seg, e.stats)
		} else {
			r.DeliverFrames(e.frames[:e.nread])
		}
		if e.deliverHook != nil {
			e.deliverHook(false)
		}
		clear(e.frames[:e.nread])
		e.nread = 0
		if idle != nil {
			e.idleOwed = idle.Holding()
		}
	}
}

// readFailed counts a read's error and says whether the device is
// unusable (bp.mu held).
func (e *fdEndpoint) readFailed() bool {
	if e.rerr == nil {
		return false
	}
	// Errors the socket reports once (the interface went down, a full
	// buffer) are counted; anything else means the device is unusable,
	// and spinning on it would not help.
	e.stats.RxDropped.Add(1)
	err := e.rerr
	e.rerr = nil
	return !errors.Is(err, unix.ENETDOWN) && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.ENOMEM)
}

// busyPoll is the state a busy poller (BusyPoll) shares with the
// reading goroutine.
type busyPoll struct {
	mu     sync.Mutex // the reading state's holder
	poller sync.Mutex // one poller at a time
	owned  atomic.Bool
	// lastUse is when the owning poller last returned with data
	// (monotonic ns since start); the link is its until lease passes.
	lastUse  atomic.Int64
	returned chan struct{} // cap 1: the poller gave the link back
	timer    *time.Timer
	lease    atomic.Int64 // busyLease, in ns
	// Counters (BusyPollStats).
	polls, frames, reclaimed atomic.Uint64
	oncePolls, onceFrames    atomic.Uint64
	preferLeases             atomic.Uint64
}

// BusyPollStats counts busy polling (BusyPoll, BusyPollOnce): calls
// that took the link, frames read by them, and leases the reading
// goroutine ended because no call came back within busyLease; of the
// calls and frames, those of one-pass calls (BusyPollOnce); and the
// one-pass calls that started a lease because their waiter prefers
// busy polling (BusyTuner).
type BusyPollStats struct {
	Polls, Frames, Reclaimed uint64
	OncePolls, OnceFrames    uint64
	PreferLeases             uint64
	// FlowMisses counts calls on a multi-queue device that did not poll
	// because the device did not know their flow's queue (no frame of
	// it seen since the first call, or its table slot taken by another
	// flow since).
	FlowMisses uint64
}

// BusyPollStats reads the busy polling counters, summed over the
// queues of a multi-queue device.
func (e *fdEndpoint) BusyPollStats() BusyPollStats {
	qs := e.queues
	if qs == nil {
		qs = []*fdEndpoint{e}
	}
	var st BusyPollStats
	for _, q := range qs {
		b := &q.bp
		st.Polls += b.polls.Load()
		st.Frames += b.frames.Load()
		st.Reclaimed += b.reclaimed.Load()
		st.OncePolls += b.oncePolls.Load()
		st.OnceFrames += b.onceFrames.Load()
		st.PreferLeases += b.preferLeases.Load()
	}
	if e.flows != nil {
		st.FlowMisses = e.flows.misses.Load()
	}
	return st
}

var busyStart = time.Now()

// busyLease is how long a poller that returned with data keeps the
// link for its next call (busyPoll.lease, which tests change): frames
// meanwhile wait for it, not for the reading goroutine's wake-up. It
// bounds what other connections on the link wait when the poller's
// application stops reading (Linux's gro_flush_timeout plays that part
// for SO_PREFER_BUSY_POLL).
const busyLease = 500 * time.Microsecond

func (b *busyPoll) kick() {
	select {
	case b.returned <- struct{}{}:
	default:
	}
}

// waitReturned waits while a poller owns the link; past the lease with
// no poller at work, it takes the link back. False: closed.
func (b *busyPoll) waitReturned(closed *atomic.Bool) bool {
	for b.owned.Load() {
		if closed.Load() {
			return false
		}
		lease := time.Duration(b.lease.Load())
		if b.timer == nil {
			b.timer = time.NewTimer(lease)
		} else {
			b.timer.Reset(lease)
		}
		select {
		case <-b.returned:
			b.timer.Stop()
		case <-b.timer.C:
			if time.Duration(int64(time.Since(busyStart))-b.lastUse.Load()) >= lease && b.poller.TryLock() {
				b.owned.Store(false)
				b.reclaimed.Add(1)
				b.poller.Unlock()
			}
		}
	}
	return !closed.Load()
}

// BusyPoll is link.BusyPoller: it reads and delivers the device's
// frames on the caller's goroutine until ready.BusyReady reports true
// or budget passes without a frame, and says whether ready did. A
// blocking receive calls it before it sleeps (SO_BUSY_POLL): the frames
// its data arrives in are processed where they will be read, and no
// goroutine is woken for them. That matters on a machine whose cores
// the kernel peer shares: each wake-up readies a goroutine, and the Go
// runtime wakes a second thread for it, which takes the peer's core
// (BENCHMARKS.md, "Busy polling"). Returning with data, the caller
// keeps the link for busyLease, so its next call finds the frames that
// came meanwhile and the reading goroutine stays asleep; returning
// without, it gives the link back. On a multi-queue device it polls the
// queue flow last came in on (pollQueue).
func (e *fdEndpoint) BusyPoll(ready BusyWaiter, budget time.Duration) bool {
	q := e.pollQueue(ready)
	return q != nil && q.busyPoll(ready, budget, false)
}

// BusyPollOnce is link.BusyPoller: it reads and delivers what the
// device holds now, without waiting for more, and says whether ready
// then reports true. A non-blocking receive calls it (Linux's
// sk_busy_loop with nonblock). It starts no lease unless ready prefers
// busy polling (BusyTuner): the caller may next sleep in a poller, and
// frames must not wait for it then. A lease a blocking poll holds stays
// held, and is extended when ready holds.
func (e *fdEndpoint) BusyPollOnce(ready BusyWaiter) bool {
	q := e.pollQueue(ready)
	return q != nil && q.busyPoll(ready, 0, true)
}

// learnFlows gives the queues of a multi-queue device one flowTable.
func (e *fdEndpoint) learnFlows() {
	if len(e.queues) < 2 {
		return
	}
	t := new(flowTable)
	for i, q := range e.queues {
		q.flows, q.qi = t, i
	}
}

// pollQueue is the queue w polls: the device itself with one queue;
// with several, the one w's flow last came in on, which the queues learn
// from the first call on (flowTable). Nil when that is not known yet,
// or the flow is not (0).
func (e *fdEndpoint) pollQueue(w BusyWaiter) *fdEndpoint {
	if e.queues == nil {
		return e
	}
	if e.flows == nil {
		return nil
	}
	flow := w.BusyFlow()
	if flow == 0 {
		return nil
	}
	if !e.flows.on.Load() {
		e.flows.on.Store(true)
	}
	if qi := e.flows.queue(flow); qi >= 0 && qi < len(e.queues) {
		return e.queues[qi]
	}
	return nil
}

// busyPoll polls this queue: BusyPoll, or BusyPollOnce if once.
func (e *fdEndpoint) busyPoll(ready BusyWaiter, budget time.Duration, once bool) bool {
	if !e.attached.Load() || e.closed.Load() {
		return false
	}
	if !e.bp.poller.TryLock() {
		return false
	}
	defer e.bp.poller.Unlock()
	leased := e.bp.owned.Swap(true)
	e.bp.mu.Lock()
	if e.recv == nil {
		e.bp.mu.Unlock()
		e.bp.owned.Store(false)
		e.bp.kick()
		return false
	}
	e.bp.polls.Add(1)
	if once {
		e.bp.oncePolls.Add(1)
	}
	prefer := false
	if t, ok := ready.(BusyTuner); ok {
		e.readMax, prefer = t.BusyTune()
	}
	got, stop := false, false
	e.rc.Control(func(fd uintptr) {
		now := time.Now()
		end, last := now.Add(budget), now
		for !e.closed.Load() {
			if e.lend.on && e.refill() && e.refillHook != nil {
				e.refillHook()
			}
			e.nread, e.rerr = 0, nil
			if e.readFn(fd) {
				e.bp.frames.Add(uint64(e.nread))
				if once {
					e.bp.onceFrames.Add(uint64(e.nread))
				}
				e.deliverRead()
				if stop = e.readFailed(); stop {
					return
				}
				last = time.Now()
				end = last.Add(budget)
				// The ACK of a hole the receiver holds (IdleReceiver)
				// waits for the next read, as with the reading goroutine.
				if !e.idleOwed && ready.BusyReady() {
					got = true
					return
				}
				continue
			}
			if once {
				// Drained: what the device held is delivered.
				got = ready.BusyReady()
				return
			}
			now = time.Now()
			if e.idleOwed && now.Sub(last) >= e.reorderWait {
				// Nothing more came within the reorder wait: the hole
				// is real, for now (the reading goroutine's waitForMore).
				e.idleOwed, e.idleNow = false, true
				e.deliverRead()
			}
			if !e.idleOwed && ready.BusyReady() {
				got = true
				return
			}
			if now.After(end) {
				return
			}
		}
	})
	if e.idleOwed {
		e.idleOwed, e.idleNow = false, true
		e.deliverRead()
	}
	e.readMax = 0
	e.bp.mu.Unlock()
	switch {
	case stop:
		e.bp.owned.Store(false)
		e.bp.kick()
	case got && (!once || leased || prefer):
		if once && !leased {
			e.bp.preferLeases.Add(1)
		}
		e.bp.lastUse.Store(int64(time.Since(busyStart)))
	case once && leased:
		// The lease runs on from its last use.
	default:
		e.bp.owned.Store(false)
		e.bp.kick()
	}
	return got
}

// readLimit is how many frames a read may take, n being its batch: a
// busy poller's budget caps it (readMax).
func (e *fdEndpoint) readLimit(n int) int {
	if e.readMax > 0 && e.readMax < n {
		return e.readMax
	}
	return n
}

// waitForMore waits up to reorderWait for fd to have frames to read.
// It runs when a read found nothing while the receiver holds the ACK of
// a hole: a veth whose sender transmits from two CPUs queues a flow's
// frames on two backlogs that drain independently, so the missing frame
// is often microseconds behind. Reporting the hole at once would make a
// Linux sender, whose reordering window is a quarter of a minimum RTT
// of a few microseconds, retransmit spuriously and cut its window
// (BENCHMARKS.md, "Waiting for a reordered frame"). The wait is a
// poll(2) on this goroutine's thread, once per held hole.
func (e *fdEndpoint) waitForMore(fd uintptr) bool {
	e.reorderWaits.Add(1)
	e.reorderPoll[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	pfd := e.reorderPoll[:]
	end := time.Now().Add(e.reorderWait)
	for {
		left := time.Until(end)
		if left <= 0 || e.closed.Load() {
			return false
		}
		// A long wait (tests, a user's choice) looks at Close between
		// slices, as writeOwn does.
		ts := unix.NsecToTimespec(int64(min(left, sendPollMs*time.Millisecond)))
		n, err := unix.Ppoll(pfd, &ts, nil)
		if err == unix.EINTR {
			continue // Go's preemption signal: wait for the rest
		}
		if n > 0 && pfd[0].Revents&unix.POLLIN != 0 {
			e.reorderWoken.Add(1)
			return true
		}
		return false
	}
}

// WriteFrames writes each frame; it waits while the kernel pushes back
// with EAGAIN. Frames the kernel refuses are counted in TxDropped and the
// first such error is returned.
func (e *fdEndpoint) WriteFrames(frames [][]byte) (int, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	if e.queues != nil {
		return e.writeQueues(frames, nil)
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.holding > 0 && e.pend != nil {
		return e.writeHeld(frames)
	}
	return e.writeLocked(frames)
}

// writeLocked is WriteFrames with wmu held.
func (e *fdEndpoint) writeLocked(frames [][]byte) (int, error) {
	e.wframes, e.wnext, e.wtaken, e.werr = frames, 0, 0, nil
	var err error
	if e.sendOwn {
		err = e.writeOwn()
	} else {
		err = e.rc.Write(e.writeFn)
	}
	taken, werr := e.wtaken, e.werr
	e.wframes = nil
	e.qtx.Add(uint64(taken))
	if err != nil {
		// Closed while writing: what was not written is lost.
		e.stats.TxDropped.Add(uint64(len(frames) - e.wnext))
		return taken, ErrClosed
	}
	return taken, werr
}

// writeOwn runs writeFn on sendFD (wmu held). While the kernel pushes
// back it waits in poll(2), a system call the scheduler sees, and looks
// at closed every sendPollMs, so that Close, which takes wmu to close
// the socket, is not held up for long.
func (e *fdEndpoint) writeOwn() error {
	for {
		if e.closed.Load() {
			return ErrClosed
		}
		if e.writeFn(uintptr(e.sendFD)) {
			return nil
		}
		pfd := []unix.PollFd{{Fd: int32(e.sendFD), Events: unix.POLLOUT}}
		if _, err := unix.Poll(pfd, sendPollMs); err != nil && err != unix.EINTR {
			return err
		}
	}
}

// sendPollMs bounds one wait of writeOwn for room in the socket.
const sendPollMs = 50

// closeSend closes sendFD once no writer is inside it.
func (e *fdEndpoint) closeSend() {
	e.wmu.Lock()
	if e.sendOwn {
		unix.Close(e.sendFD)
		e.sendOwn = false
	}
	e.wmu.Unlock()
}

// writeVec writes one frame of head and tail with offload state m, on
// the queue its flow hashes to; the endpoint's write callback must
// gather (writeVnet, writeMany).
func (e *fdEndpoint) writeVec(head []byte, tail [2][]byte, m Meta) error {
	if e.closed.Load() {
		return ErrClosed
	}
	q := e
	if e.queues != nil {
		q = e.queues[FlowHash(head, e.kind)%uint32(len(e.queues))]
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.wone[0], q.wmeta[0], q.wtail = head, m, tail
	q.vnet.wmeta = q.wmeta[:]
	_, err := q.writeLocked(q.wone[:])
	q.wone[0], q.wtail, q.vnet.wmeta = nil, [2][]byte{}, nil
	return err
}

// tailLen is the length of the payload gathered after frame i.
func (e *fdEndpoint) tailLen(i int) int {
	if i != 0 {
		return 0
	}
	return len(e.wtail[0]) + len(e.wtail[1])
}

// writeQueues writes frames on the queues their flows hash to, each run
// of frames for one queue in one batch under that queue's lock, so
// senders of different flows write in parallel; metas (nil: none) go
// with them.
func (e *fdEndpoint) writeQueues(frames [][]byte, metas []Meta) (int, error) {
	n := uint32(len(e.queues))
	taken := 0
	var first error
	var qi uint32
	if len(frames) > 0 {
		qi = FlowHash(frames[0], e.kind) % n
	}
	for start := 0; start < len(frames); {
		end, next := start+1, qi
		for ; end < len(frames); end++ {
			if next = FlowHash(frames[end], e.kind) % n; next != qi {
				break
			}
		}
		q := e.queues[qi]
		q.wmu.Lock()
		if metas != nil {
			q.vnet.wmeta = metas[start:end]
		}
		k, err := q.writeLocked(frames[start:end])
		q.vnet.wmeta = nil
		q.wmu.Unlock()
		taken += k
		if err != nil && first == nil {
			first = err
		}
		start, qi = end, next
	}
	return taken, first
}

// Close stops the reading goroutine and closes the fd. Do not call it from
// DeliverFrames (it waits for the reader).
func (e *fdEndpoint) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	for _, q := range e.queues[min(len(e.queues), 1):] {
		q.Close()
	}
	e.bp.kick()
	err := e.f.Close()
	e.closeSend()
	if e.attached.Load() {
		<-e.readDone
	}
	e.closeRings()
	return err
}
