package tcp

import (
	"syscall"
	"time"
)

// When a connection gives up: the retries2 rule for unacknowledged data
// and for unanswered zero-window probes, tcp_orphan_retries for
// connections the application closed, TCP_USER_TIMEOUT (RFC 5482) and
// soft ICMP errors, all as Linux does them.

const (
	// orphanRetries is what Linux's tcp_orphan_retries=0 means for a
	// connection whose RTO is still below the maximum.
	orphanRetries = 8
	// retriesRTOBase is the RTO the time-based retries rule assumes
	// (Linux's TCP_RTO_MIN in tcp_model_timeout).
	retriesRTOBase = 200 * time.Millisecond
)

// retriesTimeout is how long boundary retransmissions take with an RTO
// that starts at 200 ms, doubles, and stops at 120 s: 924.6 s for
// retries2=15, 102.2 s for 8 (Linux's tcp_model_timeout).
func retriesTimeout(boundary int) time.Duration {
	thresh := 0 // doublings before the RTO reaches its maximum
	for retriesRTOBase<<(thresh+1) <= maxRTO {
		thresh++
	}
	if boundary <= thresh {
		return time.Duration(2<<boundary-1) * retriesRTOBase
	}
	return time.Duration(2<<thresh-1)*retriesRTOBase + time.Duration(boundary-thresh)*maxRTO
}

// backedOff is rto doubled n times, capped at the maximum.
func backedOff(rto time.Duration, n int) time.Duration {
	for i := 0; i < n && rto < maxRTO; i++ {
		rto *= 2
	}
	return min(rto, maxRTO)
}

// orphan reports whether the application has closed the connection.
func (e *Endpoint) closedByUser() bool { return e.userClosed }

// orphanLimit is tcp_orphan_retries: 8 while the backed-off timer is
// below the maximum, none once it reached it.
func orphanLimit(alive bool) int {
	if alive {
		return orphanRetries
	}
	return 0
}

// timeoutErr is the error a connection that timed out reports: the last
// soft ICMP error if there was one, else ETIMEDOUT.
func (e *Endpoint) timeoutErr() error {
	if e.softErr != nil {
		return e.softErr
	}
	return errTimedOut
}

// rtoEpisode is called on a retransmission timeout before the back-off
// grows. It reports whether ssthresh is to be reduced: once per loss
// episode (RFC 5681 3.1; Linux's tcp_enter_loss), not again on a later
// timeout of the same data, when the flight is down to one segment; and
// not when fast recovery already reduced it for this window.
func (e *Endpoint) rtoEpisode(now time.Duration) bool {
	reduce := true
	switch {
	case e.recovery:
		reduce = !seqGT(e.recoverSeq, e.sndUna)
	case e.inLoss && seqGT(e.lossHigh, e.sndUna):
		reduce = e.backoff == 0 // data was acknowledged since the last timeout
	}
	e.inLoss, e.lossHigh = true, e.sndMax
	e.tlpRetrans = false
	if e.backoff == 0 {
		// The head segment's timer started one RTO ago.
		e.rtoStamp = now - e.rto
	}
	return reduce
}

// rtoExpired reports whether the connection must give up at this
// retransmission timeout: the time since the head segment's timer
// started has passed what the retries rule allows, or the user timeout.
func (e *Endpoint) rtoExpired(now time.Duration) bool {
	if e.backoff == 0 {
		return false
	}
	elapsed := now - e.rtoStamp
	if e.userTimeout > 0 {
		return elapsed >= e.userTimeout
	}
	boundary := e.p.cfg.Retries2
	if e.closedByUser() {
		boundary = orphanLimit(e.rto < maxRTO)
	}
	return elapsed >= retriesTimeout(boundary)
}

// clampRTO makes the retransmission timer fire no later than the user
// timeout (Linux's tcp_clamp_rto_to_user_timeout).
func (e *Endpoint) clampRTO(now time.Duration) {
	if e.userTimeout <= 0 || e.backoff == 0 || e.rtoAt == 0 {
		return
	}
	if at := max(e.rtoStamp+e.userTimeout, now+time.Millisecond); at < e.rtoAt {
		e.rtoAt = at
		e.armTimer(at)
	}
}

// ackAlive notes an acceptable ACK: the peer is alive, so its probes
// were answered and an earlier soft error is forgotten (Linux's tcp_ack).
func (e *Endpoint) ackAlive() {
	e.probesOut, e.probesStamp = 0, 0
	e.softErr = nil
}

// persistGiveUp is called when a zero-window probe is due; it aborts
// the connection and reports true when probing must end (Linux's
// tcp_probe_timer): after retries2 probes in a row went unanswered, or
// tcp_orphan_retries for a closed socket (which also ends once the
// probe interval reached its maximum, answered or not), or when the
// user timeout passed since the first unanswered probe.
func (e *Endpoint) persistGiveUp(now time.Duration) bool {
	give := false
	if e.userTimeout > 0 && e.probesOut > 0 && now-e.probesStamp >= e.userTimeout {
		give = true
	}
	limit := e.p.cfg.Retries2
	if e.closedByUser() {
		alive := backedOff(e.rto, e.probes) < maxRTO
		limit = orphanLimit(alive)
		if !alive && e.probes >= limit {
			give = true
		}
	}
	if e.probesOut >= limit {
		give = true
	}
	if !give {
		return false
	}
	e.p.st.AbortOnTimeout.Add(1)
	e.sendReset()
	e.abortLocked(e.timeoutErr())
	return true
}

// probeSent counts an unanswered zero-window probe and clamps the next
// one to the user timeout.
func (e *Endpoint) probeSent(now time.Duration) {
	if e.probesOut == 0 {
		e.probesStamp = now
	}
	e.probesOut++
	if e.userTimeout > 0 && e.persistAt != 0 {
		e.persistAt = min(e.persistAt, max(e.probesStamp+e.userTimeout, now+time.Millisecond))
	}
}

// keepaliveExpired reports whether unanswered keepalive probes end the
// connection: TCP_KEEPCNT of them, or with a user timeout, any once the
// peer has been silent that long (Linux's tcp_keepalive_timer).
func (e *Endpoint) keepaliveExpired(now time.Duration) bool {
	if e.userTimeout > 0 {
		return e.kaProbes > 0 && now-e.lastRecv >= e.userTimeout
	}
	return e.kaProbes >= int(e.keepCnt)
}

// SetUserTimeout is TCP_USER_TIMEOUT in milliseconds: how long sent
// data may stay unacknowledged, or zero-window probes unanswered,
// before the connection is dropped with ETIMEDOUT; 0 restores the
// retries rules. Negative values are EINVAL, as in Linux.
func (e *Endpoint) SetUserTimeout(ms int) error {
	if ms < 0 {
		return syscall.EINVAL
	}
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts { o.userTimeout = time.Duration(ms) * time.Millisecond; return o })
	return nil
}

// UserTimeout is TCP_USER_TIMEOUT in milliseconds.
func (e *Endpoint) UserTimeout() int {
	e.lock()
	defer e.unlock()
	return int(e.userTimeout / time.Millisecond)
}
