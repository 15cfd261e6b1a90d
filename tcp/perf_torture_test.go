package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestTortureBBR: BBR (paced, rate-sampled) and ECN negotiation over a
// link with 5% loss, 3% reordering and 1% duplication move 2 MiB each
// way intact and close cleanly, for several seeds.
func TestTortureBBR(t *testing.T) {
	for seed := uint64(11); seed <= 14; seed++ {
		t.Run("", func(t *testing.T) {
			cfg := Config{CongestionControl: "bbr"}
			if seed%2 == 0 {
				cfg.ECN = ECNOn
			}
			n := newPair(seed, cfg)
			n.delay = time.Millisecond
			n.loss, n.reord, n.dup = 0.05, 0.03, 0.01
			transfer(t, n, 2<<20, 30*time.Minute)
		})
	}
}

// TestTimersOneClockTimerPerHost: 200 connections, each with a
// retransmission, keepalive and delayed-ACK timer pending, use one clock
// timer per host (the wheel's driver; TIME_WAIT has its own shared one),
// not one or two per connection; and the timers still fire: unanswered
// data is retransmitted on every connection.
func TestTimersOneClockTimerPerHost(t *testing.T) {
	n := newPair(5, Config{})
	n.delay = time.Millisecond
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(1024)
	const conns = 200
	cs := make([]*Endpoint, conns)
	for i := range cs {
		cs[i] = n.a.NewEndpoint()
		cs[i].SetKeepAlive(true)
		if err := cs[i].Connect(netip.AddrPortFrom(ipB, 80)); !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
	}
	if !n.run(time.Minute, func() bool {
		for _, c := range cs {
			if c.State() != StateEstablished {
				return false
			}
		}
		return true
	}) {
		t.Fatal("connections not established")
	}
	// Every client sends into a link that now drops everything.
	n.loss = 1
	for _, c := range cs {
		c.Write([]byte("x"))
	}
	if p := n.clk.Pending(); p > 2 {
		t.Fatalf("%d clock timers for %d connections with timers armed, want at most 2 (one per host)", p, conns)
	}
	before := n.a.Stats().RetransSegs
	n.clk.Advance(3 * time.Second)
	if got := n.a.Stats().RetransSegs - before; got < conns {
		t.Fatalf("%d retransmissions from %d connections", got, conns)
	}
}
