package tcp_test

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/socket"
)

// countingClock is the real clock (virtual inside a synctest bubble)
// counting the runtime timers started on it.
type countingClock struct{ n atomic.Int64 }

func (c *countingClock) Now() time.Time { return time.Now() }
func (c *countingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.n.Add(1)
	return time.AfterFunc(d, f)
}

// TestTimersDoNotScaleWithConnections: every per-connection timer
// (SYN and data retransmission, tail loss probe, delayed ACK, keepalive,
// FIN_WAIT2, TIME_WAIT) goes through the protocol's timer wheel: a
// hundred connections living through all of them start no more runtime
// timers than one does.
func TestTimersDoNotScaleWithConnections(t *testing.T) {
	run := func(n int) int64 {
		var started int64
		synctest.Test(t, func(t *testing.T) {
			clk := &countingClock{}
			_, _, ka, kb, _ := linkPair(t, 1024, clk)
			base := clk.n.Load()
			cs, ss := roomConns(t, ka, kb, n)
			for i := range cs {
				c, s := cs[i], ss[i]
				if err := c.SetSockOpt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Send([]byte{1}, 0); err != nil {
					t.Fatal(err)
				}
				var b [1]byte
				if k, err := s.Recv(b[:], 0); k != 1 || err != nil {
					t.Fatalf("recv %d %v", k, err)
				}
			}
			time.Sleep(time.Second) // virtual: delayed ACKs and probes fire
			for i := range cs {
				// The client closes first (FIN_WAIT2, then TIME_WAIT).
				if err := cs[i].Close(); err != nil {
					t.Fatal(err)
				}
				var b [1]byte
				if k, err := ss[i].Recv(b[:], 0); k != 0 || err != nil {
					t.Fatalf("server end of stream: %d %v", k, err)
				}
				if err := ss[i].Close(); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(2 * time.Minute) // virtual: TIME_WAIT ends
			started = clk.n.Load() - base
		})
		return started
	}
	one, many := run(1), run(100)
	t.Logf("runtime timers started: %d for one connection, %d for 100", one, many)
	if many > one {
		t.Fatalf("one connection started %d runtime timers, 100 connections %d", one, many)
	}
}
