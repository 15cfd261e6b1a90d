package attack

import (
	"container/heap"
	"sync"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// victimClock is the victim's clock: time.Now, and timers kept in its own
// heap behind one runtime timer. A stopped timer leaves the heap at once.
// Inside a synctest bubble the runtime keeps a stopped time.AfterFunc
// timer, and what its function references, until its deadline passes;
// with clock.Real every partial datagram or connection a flood made and
// the stack then dropped would stay in the heap figures for minutes,
// though outside a bubble it is freed.
type victimClock struct {
	mu  sync.Mutex
	h   vcHeap
	rt  *time.Timer // fires at the earliest deadline
	seq uint64
}

type vcTimer struct {
	c    *victimClock
	when time.Time
	seq  uint64
	f    func()
	idx  int // in c.h; -1 when not pending
}

func newVictimClock() *victimClock { return &victimClock{} }

func (c *victimClock) Now() time.Time { return time.Now() }

func (c *victimClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := &vcTimer{c: c, f: f, idx: -1}
	t.Reset(d)
	return t
}

func (t *vcTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&c.h, t.idx)
	c.armLocked()
	return true
}

func (t *vcTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.idx >= 0
	if was {
		heap.Remove(&c.h, t.idx)
	}
	c.seq++
	t.when, t.seq = time.Now().Add(d), c.seq
	heap.Push(&c.h, t)
	c.armLocked()
	return was
}

// armLocked points the runtime timer at the earliest deadline.
func (c *victimClock) armLocked() {
	if len(c.h) == 0 {
		if c.rt != nil {
			c.rt.Stop()
		}
		return
	}
	d := time.Until(c.h[0].when)
	if c.rt == nil {
		c.rt = time.AfterFunc(d, c.fire)
	} else {
		c.rt.Reset(d)
	}
}

// fire runs the due timers in deadline order, each without the lock.
func (c *victimClock) fire() {
	for {
		c.mu.Lock()
		if len(c.h) == 0 || c.h[0].when.After(time.Now()) {
			c.armLocked()
			c.mu.Unlock()
			return
		}
		t := heap.Pop(&c.h).(*vcTimer)
		f := t.f
		c.mu.Unlock()
		f()
	}
}

type vcHeap []*vcTimer

func (h vcHeap) Len() int { return len(h) }
func (h vcHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h vcHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *vcHeap) Push(x any) {
	t := x.(*vcTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *vcHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
