package link

import (
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// DefaultQueueLen is the frame queue length of in-memory links per direction.
const DefaultQueueLen = 1024

// PipeEnd is one end of an in-memory point-to-point Ethernet link.
type PipeEnd struct {
	mac    wire.MAC
	mtu    int
	kind   Kind
	stats  Stats
	in     *queue // frames for this end
	peer   *PipeEnd
	closed atomic.Bool
}

// NewPipe returns two endpoints wired together. Each direction has a
// queue of DefaultQueueLen frames delivered by its own goroutine.
func NewPipe(macA, macB wire.MAC, mtu int) (*PipeEnd, *PipeEnd) {
	a := &PipeEnd{mac: macA, mtu: mtu}
	b := &PipeEnd{mac: macB, mtu: mtu}
	a.in = newQueue(DefaultQueueLen, mtu+wire.EthernetHeaderLen+4, &a.stats)
	b.in = newQueue(DefaultQueueLen, mtu+wire.EthernetHeaderLen+4, &b.stats)
	a.peer, b.peer = b, a
	return a, b
}

// NewIPPipe is NewPipe for bare IP packets (like two TUN devices back to back).
func NewIPPipe(mtu int) (*PipeEnd, *PipeEnd) {
	a, b := NewPipe(wire.MAC{}, wire.MAC{}, mtu)
	a.kind, b.kind = KindIP, KindIP
	return a, b
}

func (p *PipeEnd) MTU() int               { return p.mtu }
func (p *PipeEnd) Kind() Kind             { return p.kind }
func (p *PipeEnd) HardwareAddr() wire.MAC { return p.mac }
func (p *PipeEnd) Stats() *Stats          { return &p.stats }
func (p *PipeEnd) Attach(r Receiver)      { p.in.attach(r) }

// WriteFrames queues frames for the peer.
func (p *PipeEnd) WriteFrames(frames [][]byte) (int, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	return pushCounted(p.peer.in, frames, &p.stats)
}

// WaitRoom waits until the peer's queue has room.
func (p *PipeEnd) WaitRoom(done <-chan struct{}) { p.peer.in.waitRoom(done) }

// Close stops this end's delivery; the peer's writes then fail.
func (p *PipeEnd) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.in.close()
	return nil
}
