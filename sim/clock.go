package sim

import (
	"time"

	"github.com/sockstack/sockstack/clock"
)

// hostClock is one host's view of the virtual clock. A crash bumps the
// host's generation, which silences every timer the old incarnation set.
type hostClock struct {
	s   *Sim
	gen *uint64 // the owner's current incarnation
	off time.Duration
}

var _ clock.Clock = (*hostClock)(nil)

func (c *hostClock) Now() time.Time { return Epoch.Add(c.s.Now() + c.off) }

func (c *hostClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := &vtimer{c: c, f: f}
	if c.gen != nil {
		t.hostGen = *c.gen
	}
	t.Reset(d)
	return t
}

// Clock returns a clock that is a view of the simulation's time, for
// code outside a host (tests, user agents).
func (s *Sim) Clock() clock.Clock { return &hostClock{s: s} }

// vtimer is a timer event. Stop and Reset bump gen; an event whose gen
// is stale is ignored when it comes up, so nothing is removed from the heap.
type vtimer struct {
	c       *hostClock
	f       func()
	gen     uint64
	live    bool
	hostGen uint64
}

func (t *vtimer) Stop() bool {
	s := t.c.s
	s.mu.Lock()
	was := t.live
	t.live = false
	t.gen++
	s.mu.Unlock()
	return was
}

func (t *vtimer) Reset(d time.Duration) bool {
	s := t.c.s
	s.mu.Lock()
	was := t.live
	t.live = true
	t.gen++
	if d < 0 {
		d = 0
	}
	s.pushLocked(s.now+int64(d), t, t.gen, nil)
	s.mu.Unlock()
	return was
}

func (t *vtimer) fire(gen uint64, _ *packet) {
	s := t.c.s
	s.mu.Lock()
	if gen != t.gen || !t.live {
		s.mu.Unlock()
		return
	}
	t.live = false
	s.mu.Unlock()
	if t.c.gen != nil && *t.c.gen != t.hostGen {
		return // set by a crashed incarnation
	}
	t.f()
}
