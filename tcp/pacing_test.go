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
// 0.95 ms: 69%). A burst after idle stays within 1.5 quanta.
func TestPacingLateTimer(t *testing.T) {
	n := newPair(1, Config{})
	c, _ := n.connect(t)
	c.lock()
	defer c.unlock()
	const rate = 100e6
	c.ccs.PacingRate = rate
	q := c.paceQuantum()
	start := n.now() + time.Second
	c.paceAt = 0
	const window = 200 * time.Millisecond
	for _, late := range []time.Duration{0, 100 * time.Microsecond, 300 * time.Microsecond} {
		c.paceAt, c.paceHeld = 0, false
		sent, burst := paceRun(c, start, window, late)
		got := float64(sent) / window.Seconds() / rate
		t.Logf("timer %v late: %.1f%% of the pacing rate, largest burst %d bytes (quantum %v)", late, 100*got, burst, q)
		if got < 0.97 || got > 1.03 {
			t.Errorf("timer %v late: paced at %.1f%% of the rate", late, 100*got)
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
	if lim := int(1.5*float64(q)*rate/float64(time.Second)) + 1448; b > lim {
		t.Errorf("burst after idle %d bytes, want ≤ %d", b, lim)
	}
}
