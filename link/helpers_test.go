package link

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// collector is a Receiver that keeps copies of what it gets.
type collector struct {
	mu     sync.Mutex
	frames [][]byte
	times  []time.Time
	ch     chan struct{} // one token per frame
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1<<16)} }

func (c *collector) DeliverFrames(frames [][]byte) {
	c.mu.Lock()
	for _, f := range frames {
		c.frames = append(c.frames, append([]byte(nil), f...))
		c.times = append(c.times, time.Now())
	}
	c.mu.Unlock()
	for range frames {
		c.ch <- struct{}{}
	}
}

// wait blocks until n more frames arrived, failing after a generous bound.
func (c *collector) wait(t testing.TB, n int) {
	t.Helper()
	waitFrames(t, c.ch, n)
}

// waitFrames takes n tokens from ch, one per frame, failing after a
// generous bound.
func waitFrames(t testing.TB, ch <-chan struct{}, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d frames", n)
		}
	}
}

func (c *collector) got() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

// recorder is an Endpoint that records written frames synchronously.
type recorder struct {
	kind   Kind
	mtu    int
	stats  Stats
	frames [][]byte
	recv   Receiver
	limit  int // refuse frames beyond this many per call (0: none)
}

func (r *recorder) MTU() int {
	if r.mtu == 0 {
		return 1500
	}
	return r.mtu
}
func (r *recorder) Kind() Kind             { return r.kind }
func (r *recorder) HardwareAddr() wire.MAC { return wire.MAC{2, 0, 0, 0, 0, 9} }
func (r *recorder) Stats() *Stats          { return &r.stats }
func (r *recorder) Attach(rc Receiver)     { r.recv = rc }
func (r *recorder) Close() error           { return nil }
func (r *recorder) WriteFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		r.frames = append(r.frames, append([]byte(nil), f...))
	}
	return len(frames), nil
}

// discard is an Endpoint that takes frames and forgets them.
type discard struct{ recorder }

func (d *discard) WriteFrames(frames [][]byte) (int, error) { return len(frames), nil }

var (
	macA = wire.MAC{2, 0, 0, 0, 0, 0xa}
	macB = wire.MAC{2, 0, 0, 0, 0, 0xb}
	macC = wire.MAC{2, 0, 0, 0, 0, 0xc}
)

// frame builds an Ethernet frame of size n whose payload starts with seq.
func frame(dst, src wire.MAC, seq uint32, n int) []byte {
	b := make([]byte, max(n, wire.EthernetHeaderLen+4))
	wire.PutEthernet(b, dst, src, 0x88b5) // local experimental EtherType
	binary.BigEndian.PutUint32(b[wire.EthernetHeaderLen:], seq)
	for i := wire.EthernetHeaderLen + 4; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func seqOf(f []byte) uint32 { return binary.BigEndian.Uint32(f[wire.EthernetHeaderLen:]) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
