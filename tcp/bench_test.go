package tcp

import (
	"container/heap"
	"errors"

	"github.com/sockstack/sockstack/clock"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// flush delivers every queued packet (zero-delay link).
func (n *pairNet) flush() int {
	if n.batches != nil {
		return n.flushBatch()
	}
	k := 0
	for {
		n.mu.Lock()
		ready := len(n.q) > 0 && n.q[0].at <= n.now()
		n.mu.Unlock()
		if !ready {
			return k
		}
		n.step()
		k++
	}
}

// flushBatch delivers what is queued as one batch per receiving
// Protocol, like a link handing over a burst of frames.
func (n *pairNet) flushBatch() int {
	k := 0
	for {
		n.mu.Lock()
		var ready []*pkt
		for len(n.q) > 0 && n.q[0].at <= n.now() {
			ready = append(ready, heap.Pop(&n.q).(*pkt))
		}
		n.mu.Unlock()
		if len(ready) == 0 {
			return k
		}
		for _, p := range ready {
			n.delivered++
			n.batches[p.dst].HandleSegment(p.src, p.dip, 0, p.b)
		}
		for _, b := range n.batches {
			b.Flush()
		}
		n.mu.Lock()
		n.free = append(n.free, ready...)
		n.mu.Unlock()
		k += len(ready)
	}
}

func (n *pairNet) useBatches() {
	n.batches = map[*Protocol]*Batch{n.a: n.a.NewBatch(), n.b: n.b.NewBatch()}
}

func BenchmarkBulk(b *testing.B) {
	for _, mtu := range []int{1500, 65000, -1500} {
		name := map[int]string{1500: "mtu1500", 65000: "mtu65000", -1500: "mtu1500-batch"}[mtu]
		batch := mtu < 0
		mtu = max(mtu, -mtu)
		b.Run(name, func(b *testing.B) {
			n := newPair(1, Config{})
			if batch {
				n.useBatches()
			}
			n.ha.mtu, n.hb.mtu = mtu, mtu
			c, s := n.connect(b)
			buf := make([]byte, 64<<10)
			rb := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			segs := n.delivered
			for i := 0; i < b.N; i++ {
				sent, got := 0, 0
				for got < len(buf) {
					if sent < len(buf) {
						k, err := c.Write(buf[sent:])
						if err != nil && !errors.Is(err, syscall.EAGAIN) {
							b.Fatal(err)
						}
						sent += k
					}
					moved := n.flush()
					for {
						k, err := s.Read(rb, false)
						if k == 0 || err != nil {
							break
						}
						got += k
						moved++
					}
					if moved == 0 {
						n.clk.Advance(time.Millisecond)
					}
				}
			}
			b.ReportMetric(float64(n.delivered-segs)/float64(b.N), "segs/op")
		})
	}
}

func BenchmarkRR(b *testing.B) {
	n := newPair(1, Config{})
	c, s := n.connect(b)
	one := []byte{1}
	rb := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	segs := n.delivered
	for i := 0; i < b.N; i++ {
		c.Write(one)
		n.flush()
		if k, _ := s.Read(rb, false); k != 1 {
			b.Fatal("request lost")
		}
		s.Write(one)
		n.flush()
		if k, _ := c.Read(rb, false); k != 1 {
			b.Fatal("reply lost")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n.delivered-segs)/float64(b.N), "segs/op")
}

// BenchmarkConn is connect + accept + 1 byte each way + close, client
// closing first (TIME_WAIT on the client, reused by later connects).
func BenchmarkConn(b *testing.B) {
	// A real clock: the manual clock's linear timer scan would dominate
	// with tens of thousands of TIME_WAIT timers.
	n := newPairClock(1, Config{}, clock.Real{})
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(128)
	one := []byte{1}
	rb := make([]byte, 16)
	dst := netip.AddrPortFrom(ipB, 80)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := n.a.NewEndpoint()
		if err := c.Connect(dst); !errors.Is(err, syscall.EINPROGRESS) {
			b.Fatal(err)
		}
		n.flush()
		s, _, err := l.Accept()
		if err != nil {
			b.Fatal(err)
		}
		c.Write(one)
		s.Write(one)
		n.flush()
		if k, _ := s.Read(rb, false); k != 1 {
			b.Fatal("no data")
		}
		if k, _ := c.Read(rb, false); k != 1 {
			b.Fatal("no data")
		}
		c.Close()
		n.flush()
		s.Close()
		n.flush()
		if s.State() != StateClosed {
			b.Fatalf("server state %v", s.State())
		}
	}
}

// TestIdleMemory measures heap per idle established connection, both
// ends counted.
func TestIdleMemory(t *testing.T) {
	const conns = 2000
	n := newPair(1, Config{})
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(4096)
	dst := netip.AddrPortFrom(ipB, 80)
	keep := make([]*Endpoint, 0, 2*conns)
	before := liveHeap()
	for i := 0; i < conns; i++ {
		c := n.a.NewEndpoint()
		c.Connect(dst)
		n.flush()
		s, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, c, s)
	}
	n.clk.Advance(time.Second)
	n.flush()
	per := float64(liveHeap()-before) / conns
	if per <= 0 {
		t.Fatalf("measured %.0f bytes per connection: the measurement is broken", per)
	}
	t.Logf("%.0f bytes per idle connection (both ends)", per)
	for _, e := range keep {
		if e.State() != StateEstablished {
			t.Fatal(e.State())
		}
	}
	if per > 8192 {
		t.Errorf("idle connections cost %.0f bytes", per)
	}
	runtime.KeepAlive(keep)
}

// liveHeap is the heap in use by reachable objects. Two collections
// first: sync.Pool keeps what it held over one GC (its victim cache), so
// buffers pooled by earlier tests would otherwise count as live before
// and be freed during the measurement, making the difference negative
// (HeapInuse also counts spans with free slots, and the race detector
// changes allocation, so it is not used).
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
