package socket

import (
	"sync"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// PollNVal is poll(2)'s POLLNVAL: the descriptor is not an open socket.
const PollNVal waiter.EventMask = 0x20

// PollEvent is one ready socket reported by Poller.Wait (epoll_event).
type PollEvent struct {
	Socket *Socket
	Events waiter.EventMask
	Data   uint64 // the value given to Add or Modify
}

// Poller is an epoll-like, level-triggered readiness set: a single
// goroutine can watch thousands of non-blocking sockets with it.
//
// Each socket gets two waiter entries: one whose channel is private to
// the socket (it says which socket fired) and one on a channel shared by
// the whole poller (it wakes Wait). Wait then looks only at sockets whose
// private channel holds a token, plus those that were ready last time
// (level-triggered), so a quiet socket costs one non-blocking channel
// receive per Wait.
type Poller struct {
	mu     sync.Mutex
	wake   chan struct{}
	done   chan struct{}
	closed bool
	items  []*pollItem
	bySock map[*Socket]*pollItem
	next   int     // where the next scan starts, for fairness when events is short
	last   *Socket // the socket last reported ready: Wait busy-polls its link
	busy   BusyPollParams
}

type pollItem struct {
	s      *Socket
	mask   waiter.EventMask
	data   uint64
	idx    int
	own    *waiter.Entry
	shared *waiter.Entry
	wq     *waiter.Queue
	check  bool // may be ready: fired, newly added, or ready last time
}

// register puts both entries on the socket's queue. The queue notifies
// the last registered first, so the private entry goes last: its token is
// set before the shared wake token. A Wait that takes the wake token then
// always finds the socket's token; in the other order it could take the
// wake token, scan before the private one was set, and sleep on a ready
// socket.
func (it *pollItem) register() {
	it.wq.Register(it.shared, pollMask(it.mask))
	it.wq.Register(it.own, pollMask(it.mask))
}

// NewPoller makes an empty poller.
func NewPoller() *Poller {
	return &Poller{wake: make(chan struct{}, 1), done: make(chan struct{}), bySock: map[*Socket]*pollItem{}}
}

func pollMask(m waiter.EventMask) waiter.EventMask { return m | waiter.EventErr | waiter.EventHUp }

// Add watches s for the events in mask (EventErr and EventHUp are always
// watched, as epoll does). EEXIST if s is already in the set.
func (p *Poller) Add(s *Socket, mask waiter.EventMask, data uint64) error {
	if s == nil || s.closed.Load() {
		return syscall.EBADF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return syscall.EBADF
	}
	if _, ok := p.bySock[s]; ok {
		return syscall.EEXIST
	}
	it := &pollItem{s: s, mask: mask, data: data, idx: len(p.items), check: true,
		own: waiter.NewEntry(), shared: &waiter.Entry{C: p.wake}, wq: s.Waiter()}
	it.register()
	p.items = append(p.items, it)
	p.bySock[s] = it
	if p.last == nil {
		p.last = s // a new poller busy-polls the first socket's link
	}
	p.poke()
	return nil
}

// Modify changes the events and data of a watched socket (ENOENT if not watched).
func (p *Poller) Modify(s *Socket, mask waiter.EventMask, data uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	it, ok := p.bySock[s]
	if !ok {
		return syscall.ENOENT
	}
	it.wq.Unregister(it.own)
	it.wq.Unregister(it.shared)
	it.mask, it.data, it.check = mask, data, true
	it.register()
	p.poke()
	return nil
}

// Remove stops watching s (ENOENT if not watched).
func (p *Poller) Remove(s *Socket) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	it, ok := p.bySock[s]
	if !ok {
		return syscall.ENOENT
	}
	p.removeLocked(it)
	return nil
}

func (p *Poller) removeLocked(it *pollItem) {
	it.wq.Unregister(it.own)
	it.wq.Unregister(it.shared)
	last := len(p.items) - 1
	p.items[it.idx] = p.items[last]
	p.items[it.idx].idx = it.idx
	p.items[last] = nil
	p.items = p.items[:last]
	delete(p.bySock, it.s)
	if p.last == it.s {
		p.last = nil
	}
}

// Len is the number of watched sockets.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items)
}

// Close removes every socket and makes waiting and later calls fail with EBADF.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return syscall.EBADF
	}
	for len(p.items) > 0 {
		p.removeLocked(p.items[len(p.items)-1])
	}
	p.closed = true
	close(p.done)
	return nil
}

// BusyPollParams are a Poller's busy polling parameters, Linux's struct
// epoll_params (the EPIOCSPARAMS and EPIOCGPARAMS ioctls of an epoll
// descriptor, Linux 6.9).
type BusyPollParams struct {
	// Usecs is how long Wait busy-polls before it sleeps, in
	// microseconds, at most 2^31-1 (busy_poll_usecs). Set, Wait polls
	// the link of the socket it last reported whatever that socket's
	// SO_BUSY_POLL, as Linux's epoll does; 0, Wait polls for the stack's
	// BusyPollSelect (net.core.busy_poll) and only a socket that
	// busy-polls itself.
	Usecs uint32
	// Budget is how many frames a pass reads before Wait looks again
	// (busy_poll_budget); 0: the link's read batch.
	Budget uint16
	// Prefer is prefer_busy_poll, 0 or 1: a pass that finds data keeps
	// the link for the lease (SO_PREFER_BUSY_POLL).
	Prefer uint8
}

// SetBusyPollParams sets how Wait busy-polls (EPIOCSPARAMS): EINVAL for
// Usecs over 2^31-1 or Prefer over 1, EBADF once closed. Linux asks
// CAP_NET_ADMIN for a budget over 64; sockstack's user owns the stack.
func (p *Poller) SetBusyPollParams(bp BusyPollParams) error {
	if bp.Usecs > 1<<31-1 || bp.Prefer > 1 {
		return syscall.EINVAL
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return syscall.EBADF
	}
	p.busy = bp
	return nil
}

// BusyPollParams reads how Wait busy-polls (EPIOCGPARAMS).
func (p *Poller) BusyPollParams() (BusyPollParams, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return BusyPollParams{}, syscall.EBADF
	}
	return p.busy, nil
}

func (p *Poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Wait fills events with ready sockets and returns how many. timeout < 0
// waits forever, 0 only looks, > 0 waits at most that long (then 0, nil).
// Sockets closed while watched are dropped from the set, as epoll does.
func (p *Poller) Wait(events []PollEvent, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, syscall.EINVAL
	}
	var timer *time.Timer
	var tc <-chan time.Time
	start := time.Now()
	var deadline time.Time
	busied := false
	for {
		n, err := p.collect(events)
		if n > 0 || err != nil || timeout == 0 {
			if timer != nil {
				timer.Stop()
			}
			return n, err
		}
		if timeout > 0 && timer == nil {
			timer = time.NewTimer(timeout)
			tc = timer.C
			deadline = start.Add(timeout)
		}
		if !busied {
			// Once per call, before the first sleep (net.core.busy_poll),
			// the link of the socket last reported ready, as Linux's
			// epoll polls the NAPI context of its last event. A token on
			// wake means a watched socket changed.
			busied = true
			p.mu.Lock()
			last, params := p.last, p.busy
			p.mu.Unlock()
			if last != nil && busyPollSet(1, func(int) *Socket { return last }, p.wake, deadline, &params) {
				continue
			}
		}
		select {
		case <-p.wake:
			// Put the token back: collect drains it under the lock, so a
			// notification that races with the scan is never lost.
			p.poke()
		case <-p.done:
		case <-tc:
			return 0, nil
		}
	}
}

func (p *Poller) collect(events []PollEvent) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, syscall.EBADF
	}
	// Take the wake token before looking: anything that happens from here
	// on leaves a new token.
	select {
	case <-p.wake:
	default:
	}
	n := 0
	count := len(p.items)
	if count == 0 {
		return 0, nil
	}
	start := p.next % count
	for k := 0; k < count; k++ {
		i := (start + k) % count
		if i >= len(p.items) {
			break
		}
		it := p.items[i]
		select {
		case <-it.own.C:
			it.check = true
		default:
		}
		if !it.check {
			continue
		}
		if it.s.closed.Load() {
			p.removeLocked(it)
			continue
		}
		if n == len(events) {
			continue // stays marked for the next Wait
		}
		r := it.s.Readiness(it.mask) & pollMask(it.mask)
		if r == 0 {
			it.check = false
			continue
		}
		events[n] = PollEvent{Socket: it.s, Events: r, Data: it.data}
		n++
		p.last = it.s
		if n == len(events) {
			p.next = i + 1
		}
	}
	return n, nil
}

// PollFD is one entry of Poll (struct pollfd).
type PollFD struct {
	Socket  *Socket
	Events  waiter.EventMask
	Revents waiter.EventMask
}

// Poll is poll(2) over sockets: it sets Revents (EventErr and EventHUp
// always count; PollNVal for a nil or closed socket) and returns how
// many entries have any. timeout < 0 waits forever, 0 only looks.
func Poll(fds []PollFD, timeout time.Duration) (int, error) {
	return pollLoop(fds, timeout, func(_ int, rev waiter.EventMask) bool { return rev != 0 })
}

// pollLoop registers one shared wake channel on every socket, then
// alternates looking and waiting until counts accepts an entry.
func pollLoop(fds []PollFD, timeout time.Duration, counts func(i int, rev waiter.EventMask) bool) (int, error) {
	wake := make(chan struct{}, 1)
	entries := make([]waiter.Entry, len(fds))
	for i := range fds {
		if s := fds[i].Socket; s != nil && !s.closed.Load() {
			entries[i].C = wake
			s.Waiter().Register(&entries[i], pollMask(fds[i].Events))
		}
	}
	defer func() {
		for i := range fds {
			if entries[i].C != nil {
				fds[i].Socket.Waiter().Unregister(&entries[i])
			}
		}
	}()
	var timer *time.Timer
	var tc <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	start := time.Now()
	var deadline time.Time
	busied := false
	for {
		// Drain first, then look: a change after the look leaves a token.
		select {
		case <-wake:
		default:
		}
		n := 0
		for i := range fds {
			f := &fds[i]
			if f.Socket == nil || f.Socket.closed.Load() {
				f.Revents = PollNVal
			} else {
				f.Revents = f.Socket.Readiness(pollMask(f.Events)) // POLLERR and POLLHUP even when not asked
			}
			if counts(i, f.Revents) {
				n++
			}
		}
		if n > 0 || timeout == 0 {
			return n, nil
		}
		if timeout > 0 && timer == nil {
			timer = time.NewTimer(timeout)
			tc = timer.C
			deadline = start.Add(timeout)
		}
		if !busied {
			// Once per call, before the first sleep (net.core.busy_poll):
			// a token on wake means a socket changed.
			busied = true
			if busyPollSet(len(fds), func(i int) *Socket { return fds[i].Socket }, wake, deadline, nil) {
				continue
			}
		}
		select {
		case <-wake:
		case <-tc:
			return 0, nil
		}
	}
}

// Select is select(2) over sockets: it returns the sockets of r that are
// readable (or at end of stream, or in error), those of w that are
// writable (or in error), and those of x with exceptional (priority)
// data. timeout < 0 waits forever, 0 only looks. EBADF for a closed socket.
func Select(r, w, x []*Socket, timeout time.Duration) (rr, wr, xr []*Socket, err error) {
	fds := make([]PollFD, 0, len(r)+len(w)+len(x))
	for _, s := range r {
		fds = append(fds, PollFD{Socket: s, Events: waiter.EventIn})
	}
	for _, s := range w {
		fds = append(fds, PollFD{Socket: s, Events: waiter.EventOut})
	}
	for _, s := range x {
		fds = append(fds, PollFD{Socket: s, Events: waiter.EventPri})
	}
	for _, f := range fds {
		if f.Socket == nil || f.Socket.closed.Load() {
			return nil, nil, nil, syscall.EBADF
		}
	}
	// Linux's POLLIN_SET, POLLOUT_SET and POLLEX_SET.
	in := func(i int, rev waiter.EventMask) bool {
		switch {
		case i < len(r):
			return rev&(waiter.EventIn|waiter.EventHUp|waiter.EventErr) != 0
		case i < len(r)+len(w):
			return rev&(waiter.EventOut|waiter.EventErr) != 0
		}
		return rev&waiter.EventPri != 0
	}
	if _, err := pollLoop(fds, timeout, in); err != nil {
		return nil, nil, nil, err
	}
	for i, f := range fds {
		if !in(i, f.Revents) {
			continue
		}
		switch {
		case i < len(r):
			rr = append(rr, f.Socket)
		case i < len(r)+len(w):
			wr = append(wr, f.Socket)
		default:
			xr = append(xr, f.Socket)
		}
	}
	return rr, wr, xr, nil
}
