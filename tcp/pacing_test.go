package tcp

import (
	"testing"
	"time"
)

// paceRun drives the pacer of e by hand for window: a burst goes out
// whenever the pacer lets it, and when the pacer holds, its timer fires
// late more than its deadline (a host that does not run the stack on
// time). It returns the bytes sent and the largest burst.
func paceRun(e *Endpoint, start, window, late time.Duration) (sent, burst int) {
	const seg = 1448
	now := start
	for now < start+window {
		b := 0
		for !e.paceWait(now) {
			e.paceSent(seg, now)
			b += seg
		}
		sent += b
		burst = max(burst, b)
		e.paceHeld = false // the timer fires: onPaceTimer
		now = e.paceAt + late
	}
	return sent, burst
}

// TestPacingLateTimer: when the pacing timer fires late, the pacer
// catches up by up to half a quantum, as Linux credits OS jitter when
// it schedules the next packet (tcp_update_skb_after_send), instead of
// losing the late time for good: at 100 MB/s with every timer 0.3 ms
// late the flow still gets its rate (without the credit, 64 KiB per
// 0.95 ms: 69%). At 2.5 GB/s (20 Gbit/s) a quantum is 200 µs of the
// rate, not 64 KiB (26 µs): a goroutine's wake-up takes tens of µs, and
// with 64 KiB per timer one 60 µs late paced at 36% of the rate (BBR
// over AF_PACKET sent at 7-8 Gbit/s where CUBIC sent at 14). A burst
// after idle stays within 1.5 quanta.
func TestPacingLateTimer(t *testing.T) {
	n := newPair(1, Config{})
	c, _ := n.connect(t)
	c.lock()
	defer c.unlock()
	start := n.now() + time.Second
	for _, x := range []struct {
		rate  float64
		quant time.Duration // the quantum expected
		lates []time.Duration
	}{
		{100e6, time.Duration(float64(64<<10) / 100e6 * float64(time.Second)), []time.Duration{0, 100 * time.Microsecond, 300 * time.Microsecond}},
		{2.5e9, 200 * time.Microsecond, []time.Duration{0, 30 * time.Microsecond, 60 * time.Microsecond, 90 * time.Microsecond}},
	} {
		c.ccs.PacingRate = int64(x.rate)
		q := c.paceQuantum()
		if d := q - x.quant; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("rate %.0f B/s: quantum %v, want %v", x.rate, q, x.quant)
		}
		const window = 200 * time.Millisecond
		for _, late := range x.lates {
			c.paceAt, c.paceHeld = 0, false
			sent, burst := paceRun(c, start, window, late)
			got := float64(sent) / window.Seconds() / x.rate
			t.Logf("rate %.0f B/s, timer %v late: %.1f%% of the pacing rate, largest burst %d bytes (quantum %v)", x.rate, late, 100*got, burst, q)
			if got < 0.97 || got > 1.03 {
				t.Errorf("rate %.0f B/s, timer %v late: paced at %.1f%% of the rate", x.rate, late, 100*got)
			}
			start += time.Second
		}
		// After an idle second: one burst of at most a quantum and a half.
		c.paceAt, c.paceHeld = start-time.Second, false
		b := 0
		for !c.paceWait(start) {
			c.paceSent(1448, start)
			b += 1448
		}
		if lim := int(1.5*float64(q)*x.rate/float64(time.Second)) + 2*1448; b > lim { // a segment over, and the quantum's rounding
			t.Errorf("rate %.0f B/s: burst after idle %d bytes, want ≤ %d", x.rate, b, lim)
		}
		start += time.Second
	}
}
