// Package clock is the only source of time for protocol code. A stack
// takes a Clock at construction; the real one is the default, and tests
// run under testing/synctest (virtual time) or with Manual.
package clock

import (
	"sync"
	"time"
)

// Timer is a pending call made by AfterFunc.
type Timer interface {
	// Stop cancels the call; it reports whether it was still pending.
	Stop() bool
	// Reset reschedules the call d from now.
	Reset(d time.Duration) bool
}

// Clock gives the time and schedules calls.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time                            { return time.Now() }
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Manual is a clock that moves only when Advance is called; timers due
// by then run on the caller's goroutine, in deadline order. It makes
// packet-level tests exact.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	seq    uint64
}

// NewManual starts a manual clock at t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

type manualTimer struct {
	c    *Manual
	when time.Time
	f    func()
	live bool
	seq  uint64
}

func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *Manual) AfterFunc(d time.Duration, f func()) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	t := &manualTimer{c: m, when: m.now.Add(d), f: f, live: true, seq: m.seq}
	m.timers = append(m.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.live
	t.live = false
	return was
}

func (t *manualTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.live
	t.when = c.now.Add(d)
	c.seq++
	t.seq = c.seq
	if !t.live {
		t.live = true
		c.timers = append(c.timers, t)
	}
	return was
}

// Advance moves time forward by d, running every timer that falls due,
// each at its own deadline, in order.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	end := m.now.Add(d)
	m.mu.Unlock()
	for {
		m.mu.Lock()
		var next *manualTimer
		idx := -1
		for i, t := range m.timers {
			if !t.live {
				continue
			}
			if next == nil || t.when.Before(next.when) || (t.when.Equal(next.when) && t.seq < next.seq) {
				next, idx = t, i
			}
		}
		// Drop dead timers as we go.
		live := m.timers[:0]
		for _, t := range m.timers {
			if t.live {
				live = append(live, t)
			}
		}
		clear(m.timers[len(live):]) // the dead ones must not stay reachable
		m.timers = live
		if next == nil || next.when.After(end) {
			m.now = end
			m.mu.Unlock()
			return
		}
		_ = idx
		next.live = false
		for i, t := range m.timers {
			if t == next {
				k := len(m.timers) - 1
				copy(m.timers[i:], m.timers[i+1:])
				m.timers[k] = nil
				m.timers = m.timers[:k]
				break
			}
		}
		if next.when.After(m.now) {
			m.now = next.when
		}
		f := next.f
		m.mu.Unlock()
		f()
	}
}

// Pending is the number of live timers, for tests.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.timers {
		if t.live {
			n++
		}
	}
	return n
}
