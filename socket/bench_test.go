package socket

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// BenchmarkUDP64 is BENCH.md's udp figure: 64-byte datagrams from host A
// to host B over the in-memory pipe, as fast as the sender can. It reports
// datagrams received per second and the loss.
func BenchmarkUDP64(b *testing.B) {
	p := newPair(b, 1500, stack.Options{})
	rcv := mustSocket(b, p.b, AF_INET, SOCK_DGRAM, 0)
	rcv.Bind(ap(addrB, 9000))
	rcv.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 4<<20)
	snd := mustSocket(b, p.a, AF_INET, SOCK_DGRAM, 0)
	snd.Connect(ap(addrB, 9000))
	// Warm up ARP and the pools.
	snd.Send(make([]byte, 64), 0)
	rcv.SetTimeout(5 * time.Second)
	rcv.Recv(make([]byte, 128), 0)

	done := make(chan int)
	go func() {
		buf := make([]byte, 128)
		got := 0
		rcv.SetTimeout(200 * time.Millisecond)
		for got < b.N {
			if _, err := rcv.Recv(buf, 0); err != nil {
				break // sender finished and the queue drained
			}
			got++
		}
		done <- got
	}()
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := snd.Send(msg, 0); err != nil {
			b.Fatal(err)
		}
	}
	got := <-done
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/el.Seconds(), "dgrams/s")
	b.ReportMetric(100*float64(b.N-got)/float64(b.N), "loss%")
}

// BenchmarkUDP64Send measures only the sender's cost per datagram (the
// allocation figure: 0 in steady state).
func BenchmarkUDP64Send(b *testing.B) {
	p := newPair(b, 1500, stack.Options{})
	rcv := mustSocket(b, p.b, AF_INET, SOCK_DGRAM, 0)
	rcv.Bind(ap(addrB, 9000))
	snd := mustSocket(b, p.a, AF_INET, SOCK_DGRAM, 0)
	snd.Connect(ap(addrB, 9000))
	msg := make([]byte, 64)
	snd.Send(msg, 0)
	time.Sleep(10 * time.Millisecond) // ARP resolution before timing (benchmark, not a test)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snd.Send(msg, 0)
	}
}

var _ = netip.Addr{}
