package socket

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// A notification racing with Wait's scan must not be lost: before the
// fix the shared wake token was set before the socket's own token, so
// Wait could take it, scan too early and sleep on a readable socket
// (seen as examples/nonblocking hanging now and then). Thousands of
// rounds of "data arrives while Wait is scanning" find it within a
// second; the 10 s bound only stops a hang, it measures nothing.
func TestPollerWakeupNotLost(t *testing.T) {
	n := newNet(t)
	p := NewPoller()
	defer p.Close()
	ev := make([]PollEvent, 4)
	buf := make([]byte, 8)
	for i := 0; i < 10000; i++ {
		a, b, err := n.SocketPair(SOCK_DGRAM)
		if err != nil {
			t.Fatal(err)
		}
		p.Add(b, waiter.EventIn, 1)
		if k, _ := p.Wait(ev, 0); k != 0 { // takes the check of a new socket
			t.Fatalf("round %d: ready before anything was sent", i)
		}
		go a.Send([]byte("x"), 0)
		if k, err := p.Wait(ev, 10*time.Second); k != 1 || err != nil {
			t.Fatalf("round %d: Wait gave %d, %v with the socket readable: %v", i, k, err, b.Readiness(waiter.EventIn) != 0)
		}
		b.Recv(buf, 0)
		p.Remove(b)
		a.Close()
		b.Close()
	}
}
