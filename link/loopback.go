package link

import (
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// Loopback is a KindIP endpoint whose written packets come back to its
// own receiver, through a queue and its delivery goroutine (so a reply
// sent while handling a packet never re-enters the receiver).
type Loopback struct {
	mtu    int
	stats  Stats
	q      *queue
	closed atomic.Bool
}

// NewLoopback returns a loopback endpoint carrying IP packets up to mtu
// bytes, with a queue of DefaultQueueLen packets.
func NewLoopback(mtu int) Endpoint {
	l := &Loopback{mtu: mtu}
	l.q = newQueue(DefaultQueueLen, mtu, &l.stats)
	return l
}

func (l *Loopback) MTU() int               { return l.mtu }
func (l *Loopback) Kind() Kind             { return KindIP }
func (l *Loopback) HardwareAddr() wire.MAC { return wire.MAC{} }
func (l *Loopback) Stats() *Stats          { return &l.stats }
func (l *Loopback) Attach(r Receiver)      { l.q.attach(r) }

// WriteFrames queues packets for delivery back to this endpoint.
func (l *Loopback) WriteFrames(frames [][]byte) (int, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	return pushCounted(l.q, frames, &l.stats)
}

// WaitRoom waits until the queue has room.
func (l *Loopback) WaitRoom(done <-chan struct{}) { l.q.waitRoom(done) }

// Close stops delivery.
func (l *Loopback) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.q.close()
	return nil
}
