package link

import (
	"math"
	"sync/atomic"
	"testing"
)

type countReceiver struct {
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
}

func newCountReceiver() *countReceiver {
	c := &countReceiver{done: make(chan struct{}, 1)}
	c.want.Store(math.MaxInt64)
	return c
}

func (c *countReceiver) DeliverFrames(frames [][]byte) {
	if c.n.Add(int64(len(frames))) >= c.want.Load() {
		select {
		case c.done <- struct{}{}:
		default:
		}
	}
}

// benchFrames pushes b.N 64-byte frames from src in batches of 32,
// waiting for room when the queue is full, and waits until dst's receiver
// got them all, less those counted as dropped at dst.
func benchFrames(b *testing.B, src, dst Endpoint, rc *countReceiver) {
	const batch = 32
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = frame(dst.HardwareAddr(), src.HardwareAddr(), uint32(i), 64)
	}
	w := src.(Waiter)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(batch, b.N-sent)
		n, _ := src.WriteFrames(frames[:k])
		sent += n
		if n < k {
			w.WaitRoom(nil)
		}
	}
	drops := int64(dst.Stats().RxDropped.Load())
	rc.want.Store(int64(b.N) - drops)
	if rc.n.Load() < rc.want.Load() {
		<-rc.done
	}
	b.StopTimer()
	b.ReportMetric(float64(rc.n.Load())/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(drops)/float64(b.N), "dropped/op")
}

func BenchmarkPipe64(b *testing.B) {
	a, z := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer z.Close()
	rc := newCountReceiver()
	a.Attach(newCountReceiver())
	z.Attach(rc)
	benchFrames(b, a, z, rc)
}

// BenchmarkSwitch64 sends unicast to a learned port. The switch reports
// frames refused at a full port queue as taken (counted in the port's
// RxDropped), so the sender cannot push back; dropped/op shows them.
func BenchmarkSwitch64(b *testing.B) {
	sw := NewSwitch(1500)
	pa, pb := sw.Port(macA), sw.Port(macB)
	defer pa.Close()
	defer pb.Close()
	rc := newCountReceiver()
	pa.Attach(newCountReceiver())
	pb.WriteFrames([][]byte{frame(macA, macB, 0, 64)}) // learn B: unicast, no flooding
	pb.Attach(rc)
	benchFrames(b, pa, pb, rc)
}
