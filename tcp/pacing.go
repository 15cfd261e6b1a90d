package tcp

import "time"

// Pacing (Linux's internal TCP pacing, what fq does for it): when the
// congestion control sets a pacing rate, data segments leave no faster
// than that rate, in bursts of at most a quantum, released by the
// connection's timer on the stack's clock.

// paceQuantum is the largest burst: 1 ms at the pacing rate, at least
// two segments, at most 64 KiB (Linux's TSO autosizing) or 200 µs at
// the rate, whichever is more. Above 2.6 Gbit/s 64 KiB would be a
// timer every 26 µs or less: Linux's hrtimer fires in softirq, but
// here each is a goroutine's wake-up, which costs CPU and comes tens of
// µs late, more than the catch-up credit of half a quantum, so the
// flow lost its rate (TestPacingLateTimer; BBR over AF_PACKET sent at
// 7-8 Gbit/s where CUBIC sent at 14).
func (e *Endpoint) paceQuantum() time.Duration {
	r := e.ccs.PacingRate
	q := min(max(r/1000, int64(2*e.sndMSS)), max(64<<10, r/5000))
	return time.Duration(q * int64(time.Second) / r)
}

// paceWait reports whether a data segment must wait for the pacer, and
// if so makes the timer fire when it may go.
func (e *Endpoint) paceWait(now time.Duration) bool {
	if e.ccs.PacingRate <= 0 || e.paceAt <= now {
		return false
	}
	if e.paceAt-now < e.paceQuantum() && !e.paceHeld {
		return false
	}
	// Held: send again only when the whole burst has drained, so that
	// the timer releases a quantum, not a segment, at a time.
	e.paceHeld = true
	if e.paceTimerAt == 0 || e.paceTimerAt > e.paceAt {
		e.paceTimerAt = e.paceAt
		e.armTimer(e.paceAt)
	}
	return true
}

// paceSent advances the pacer by the time n bytes take at the rate.
// A pacer that is behind (its timer fired late because the host did not
// run the stack on time) may catch up by up to half a quantum, as Linux
// credits OS jitter when it schedules the next packet
// (tcp_update_skb_after_send); without that every late wake-up is lost
// rate for good. More credit would be a burst after idle.
func (e *Endpoint) paceSent(n int, now time.Duration) {
	r := e.ccs.PacingRate
	if r <= 0 {
		return
	}
	e.paceAt = max(e.paceAt, now-e.paceQuantum()/2) + time.Duration(int64(n)*int64(time.Second)/r)
}

// onPaceTimer releases the next burst.
func (e *Endpoint) onPaceTimer(now time.Duration) {
	e.paceHeld = false
	e.output(now)
}
