package waiter

import "testing"

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
