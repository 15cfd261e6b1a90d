// Package waiter lets blocking socket calls and pollers wait for
// readiness events of endpoints that never block themselves.
package waiter

import (
	"sync"
	"sync/atomic"
)

// EventMask is a set of readiness events, with poll(2) meanings.
type EventMask uint32

const (
	EventIn    EventMask = 0x01 // readable, or a connection to accept
	EventPri   EventMask = 0x02
	EventOut   EventMask = 0x04   // writable
	EventErr   EventMask = 0x08   // pending error (SO_ERROR)
	EventHUp   EventMask = 0x10   // hang-up: both directions done
	EventRdHUp EventMask = 0x2000 // peer closed its writing half
)

// Entry is one waiter: Notify signals its channel (capacity 1, never
// blocking the notifier) when an event in its mask happens.
type Entry struct {
	C chan struct{}
	// Fn, when set, is called instead of signalling C: an event loop that
	// must not block registers it. It runs with the notifier's locks held,
	// so it may only record the wake-up.
	Fn         func(EventMask)
	mask       EventMask
	next, prev *Entry
}

// NewEntry makes an entry with a fresh channel.
func NewEntry() *Entry { return &Entry{C: make(chan struct{}, 1)} }

// Queue is the list of waiters of one endpoint.
type Queue struct {
	mu sync.Mutex
	// head is written under mu and read without it by Notify and Empty:
	// most events (every segment of a bulk transfer) find nobody
	// waiting, and then cost no lock. A waiter registers before it
	// checks readiness, so a notifier that changed the state and then
	// found no head cannot miss it.
	head atomic.Pointer[Entry]
}

// Register adds e for the events in mask.
func (q *Queue) Register(e *Entry, mask EventMask) {
	q.mu.Lock()
	e.mask = mask
	e.prev = nil
	h := q.head.Load()
	e.next = h
	if h != nil {
		h.prev = e
	}
	q.head.Store(e)
	q.mu.Unlock()
}

// Unregister removes e.
func (q *Queue) Unregister(e *Entry) {
	q.mu.Lock()
	if e.prev != nil {
		e.prev.next = e.next
	} else if q.head.Load() == e {
		q.head.Store(e.next)
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.next, e.prev = nil, nil
	q.mu.Unlock()
}

// Notify wakes every waiter interested in an event of mask.
func (q *Queue) Notify(mask EventMask) {
	if q.head.Load() == nil {
		return
	}
	q.mu.Lock()
	for e := q.head.Load(); e != nil; e = e.next {
		if e.mask&mask != 0 {
			if e.Fn != nil {
				e.Fn(e.mask & mask)
				continue
			}
			select {
			case e.C <- struct{}{}:
			default:
			}
		}
	}
	q.mu.Unlock()
}

// Empty reports whether nobody waits, so notifiers can skip work.
func (q *Queue) Empty() bool { return q.head.Load() == nil }

// Waiting reports whether someone waits for an event of mask.
func (q *Queue) Waiting(mask EventMask) bool {
	if q.head.Load() == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for e := q.head.Load(); e != nil; e = e.next {
		if e.mask&mask != 0 {
			return true
		}
	}
	return false
}
