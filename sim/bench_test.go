package sim

import (
	"testing"
	"time"
)

type nopActor struct{ n *int }

func (a nopActor) fire(uint64, *packet) { *a.n++ }

// The bare engine: push and pop events through the heap, 1,000 pending.
func BenchmarkEventLoop(b *testing.B) {
	s := New(1)
	var n int
	a := nopActor{&n}
	r := s.Rand("bench")
	for range 1000 {
		s.schedule(time.Duration(r.Int64N(int64(time.Millisecond))), a, 0, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.mu.Lock()
		e := s.popLocked()
		s.now = e.at
		s.pushLocked(s.now+r.Int64N(int64(time.Millisecond)), a, 0, nil)
		s.mu.Unlock()
		e.a.fire(e.arg, e.p)
	}
}

// Frames through a 10 Gbit/s link with a drop-tail queue: enqueue,
// serialise, propagate, deliver (three events per frame).
func BenchmarkLinkFrame(b *testing.B) {
	s := New(1)
	l, _ := s.NewLink("l", LinkConfig{Bandwidth: 10e9, Delay: time.Microsecond})
	c := &countSink{s: s}
	l.Ends[1].sink = c
	frame := make([]byte, 1514)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.Ends[0].send(newPacket(frame))
		if i%64 == 63 {
			s.Run(s.Now() + time.Millisecond)
		}
	}
	s.Run(s.Now() + time.Second)
	if c.n != b.N {
		b.Fatalf("delivered %d of %d", c.n, b.N)
	}
}

// A TCP transfer between two simulated hosts: events per second with the
// whole stack in the loop.
func BenchmarkBulkTransfer(b *testing.B) {
	var events uint64
	var simT time.Duration
	start := time.Now()
	for range b.N {
		n := dumbbell(&testing.T{}, 1, QueueConfig{Limit: 100}, 100e6)
		w := &Workload{Name: "bulk", Type: "bulk", From: []*Host{n.Host("a")}, To: n.Host("b"), Port: 5001, Bytes: 4 << 20}
		n.Start(w)
		n.Run(time.Minute)
		events += n.S.Events
		simT += n.S.Now()
	}
	wall := time.Since(start)
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(simT.Seconds()/wall.Seconds(), "sim/wall")
}
