package link

import (
	"bytes"
	"errors"
	"testing"
)

// echoReceiver answers each packet through the same loopback while
// handling it, the way a stack replies to itself.
type echoReceiver struct {
	ep   Endpoint
	seen *collector
}

func (e *echoReceiver) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		if f[0] == 'q' {
			e.ep.WriteFrames([][]byte{append([]byte{'r'}, f[1:]...)})
		}
	}
	e.seen.DeliverFrames(frames)
}

func TestLoopback(t *testing.T) {
	l := NewLoopback(65536)
	if l.Kind() != KindIP || l.MTU() != 65536 {
		t.Fatal("attributes")
	}
	c := newCollector()
	l.Attach(&echoReceiver{ep: l, seen: c})
	l.WriteFrames([][]byte{[]byte("q1"), []byte("q2")})
	c.wait(t, 4)
	got := c.got()
	want := []string{"q1", "q2", "r1", "r2"}
	for i := range want {
		if !bytes.Equal(got[i], []byte(want[i])) {
			t.Fatalf("got %q", got)
		}
	}
	s := l.Stats().Snapshot()
	if s.TxFrames != 4 || s.RxFrames != 4 || s.TxBytes != 8 {
		t.Fatalf("stats %+v", s)
	}
	l.Close()
	if _, err := l.WriteFrames([][]byte{[]byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestLoopbackQueueFull(t *testing.T) {
	l := NewLoopback(1500)
	defer l.Close()
	frames := make([][]byte, DefaultQueueLen+5)
	for i := range frames {
		frames[i] = []byte{0x45}
	}
	n, err := l.WriteFrames(frames) // not attached: nothing drains
	if n != DefaultQueueLen || !errors.Is(err, ErrQueueFull) || l.Stats().TxDropped.Load() != 5 {
		t.Fatalf("n=%d err=%v dropped=%d", n, err, l.Stats().TxDropped.Load())
	}
	if _, ok := l.(Waiter); !ok {
		t.Fatal("loopback is not a Waiter")
	}
}
