package tcp

import (
	"runtime"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// timerEndpoints makes n endpoints of one Protocol on the real clock
// (as a running stack has), each with its retransmission and
// delayed-ACK timers armed hours ahead, and returns the heap bytes the
// armed timers added per endpoint.
func timerEndpoints(tb testing.TB, n int) (*Protocol, []*Endpoint, float64) {
	h := newFakeHost(clock.Real{}, localIP)
	p := NewProtocol(h, Config{Seed: []byte("bench")})
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = p.NewEndpoint()
		eps[i].state = StateEstablished
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	now := p.now()
	for i, e := range eps {
		e.lock()
		e.armTimer(now + time.Hour + time.Duration(i)*time.Millisecond)
		e.dackAt = now + time.Hour // far: nothing fires while measuring
		e.armDelayedAck(now)
		e.unlock()
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	tb.Cleanup(func() {
		for _, e := range eps {
			e.lock()
			e.stopTimers()
			e.unlock()
		}
	})
	return p, eps, float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
}

// BenchmarkTimerRearm: one connection timer moved earlier (as a new
// RTO or probe deadline does) and the delayed-ACK timer re-armed, among
// 100,000 connections with armed timers; reports the heap the armed
// timers cost per connection.
func BenchmarkTimerRearm(b *testing.B) {
	const n = 100_000
	p, eps, per := timerEndpoints(b, n)
	now := p.now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := eps[i%n]
		e.lock()
		e.timerAt = 0 // force the move
		e.armTimer(now + 30*time.Minute + time.Duration(i%1000)*time.Millisecond)
		e.dackArmed, e.dackAt = false, now+time.Hour+time.Duration(i%977)*time.Millisecond
		e.armDelayedAck(now)
		e.unlock()
	}
	b.StopTimer()
	b.ReportMetric(per, "B/conn-timers")
}
