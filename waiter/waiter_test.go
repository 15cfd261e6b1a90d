package waiter

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Notify with nobody waiting takes no lock: the test holds it, and a
// Notify that took it would never return.
func TestNotifyEmptyTakesNoLock(t *testing.T) {
	var q Queue
	q.mu.Lock()
	q.Notify(EventIn | EventOut)
	if !q.Empty() {
		t.Fatal("a new queue is not empty")
	}
	q.mu.Unlock()
}

// Waiters are woken for the events of their mask only, and not once
// unregistered.
func TestRegisterNotifyUnregister(t *testing.T) {
	var q Queue
	in, out, both := NewEntry(), NewEntry(), NewEntry()
	q.Register(in, EventIn)
	q.Register(out, EventOut)
	q.Register(both, EventIn|EventOut)
	q.Notify(EventIn)
	if len(in.C) != 1 || len(out.C) != 0 || len(both.C) != 1 {
		t.Fatalf("EventIn woke in=%d out=%d both=%d", len(in.C), len(out.C), len(both.C))
	}
	<-in.C
	<-both.C
	q.Unregister(both) // the head
	q.Unregister(in)   // the tail
	q.Notify(EventIn | EventOut)
	if len(in.C) != 0 || len(both.C) != 0 || len(out.C) != 1 {
		t.Fatalf("after Unregister woke in=%d out=%d both=%d", len(in.C), len(out.C), len(both.C))
	}
	q.Unregister(out)
	if !q.Empty() {
		t.Fatal("queue not empty after the last Unregister")
	}
	var got EventMask
	fn := &Entry{Fn: func(m EventMask) { got |= m }}
	q.Register(fn, EventIn|EventHUp)
	q.Notify(EventHUp | EventOut)
	if got != EventHUp {
		t.Fatalf("Fn got %#x, want EventHUp", got)
	}
}

// No wake-up is lost to the lock-free empty check: a waiter registers,
// then checks the state; a notifier changes the state, then notifies.
// Every round must end (a lost wake-up would hang the test).
func TestNoLostWakeup(t *testing.T) {
	var q Queue
	var mu sync.Mutex
	var ready atomic.Bool
	const rounds = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		e := NewEntry()
		for i := 0; i < rounds; i++ {
			for {
				q.Register(e, EventIn)
				mu.Lock()
				ok := ready.Load()
				mu.Unlock()
				if ok {
					q.Unregister(e)
					break
				}
				<-e.C
				q.Unregister(e)
			}
			ready.Store(false)
			select {
			case <-e.C: // a stale wake-up of this round
			default:
			}
			done <- struct{}{}
		}
	}()
	for i := 0; i < rounds; i++ {
		mu.Lock()
		ready.Store(true)
		mu.Unlock()
		q.Notify(EventIn)
		<-done
	}
	<-done
}

// Waiting sees only waiters for the events asked about.
func TestWaiting(t *testing.T) {
	var q Queue
	if q.Waiting(EventIn) {
		t.Fatal("empty queue: someone waiting")
	}
	out := NewEntry()
	q.Register(out, EventOut)
	if q.Waiting(EventIn) {
		t.Fatal("a writer taken for a reader")
	}
	in := NewEntry()
	q.Register(in, EventIn|EventHUp)
	if !q.Waiting(EventIn) || !q.Waiting(EventOut) {
		t.Fatal("registered waiters not seen")
	}
	q.Unregister(in)
	if q.Waiting(EventIn) {
		t.Fatal("unregistered reader still waiting")
	}
}
