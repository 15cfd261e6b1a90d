package socket

import (
	"testing"

	"github.com/sockstack/sockstack/waiter"
)

// A blocking call's waiter entry is kept for the socket's next wait: no
// entry and channel per wait, no wake-up left from the last use, and a
// second call waiting at the same time gets its own.
func TestWaitEntryReused(t *testing.T) {
	var s Socket
	var wq waiter.Queue
	e := s.getEntry()
	wq.Register(e, waiter.EventIn)
	wq.Notify(waiter.EventIn) // leaves a wake-up in e.C
	s.putEntry(&wq, e)
	wq.Notify(waiter.EventIn) // must not reach the unregistered entry
	e1 := s.getEntry()
	if e1 != e {
		t.Fatal("the entry was not kept")
	}
	select {
	case <-e1.C:
		t.Fatal("a kept entry carries a stale wake-up")
	default:
	}
	if e2 := s.getEntry(); e2 == e1 {
		t.Fatal("two waits share one entry")
	}
	s.putEntry(&wq, e1)
	// 2 allocations per wait before.
	a := testing.AllocsPerRun(100, func() {
		e := s.getEntry()
		wq.Register(e, waiter.EventIn)
		s.putEntry(&wq, e)
	})
	if a != 0 {
		t.Fatalf("%.2f allocations per wait", a)
	}
}
