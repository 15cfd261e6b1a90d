package tcp

import "time"

// Delayed-ACK modes, as Linux's (tcp_input.c, tcp_output.c, tcp_timer.c):
//
//   - Quickack mode: the first data of a connection sets a count of
//     ACKs to send at once (the advertised window over two segments, 2
//     to 16: tcp_incr_quickack); each ACK that acknowledges new data
//     uses one (tcp_dec_quickack_mode). A gap in the data longer than
//     the RTO, and data received again (a retransmission), fill the
//     count up again. "At once" means by the end of the link's receive
//     batch (input.go): a batch of segments still draws one ACK.
//   - Pingpong (interactive) mode: data sent within the ACK timeout
//     (ato) of data received enters it (tcp_event_data_sent, with
//     net.ipv4.tcp_pingpong_thresh at its 6.x default of 1); there no
//     ACK is sent at once for quickack's sake, so that the reply
//     carries it. TCP_QUICKACK 0 enters it too (the option set's
//     pingpong). When a delayed ACK's timer fires in pingpong mode, the
//     connection leaves it (tcp_delack_timer_handler) and the count
//     left, if any, applies again.
//   - The ACK timeout: 40 ms (the Config's DelayedAckTimeout, Linux's
//     TCP_ATO_MIN) at the first data; then it follows the gaps between
//     data segments (tcp_event_data_recv) and doubles, up to the RTO,
//     when the delayed ACK's timer fires outside pingpong mode. The
//     delay itself is that timeout bounded by the RTT (at least 40 ms)
//     and by 200 ms (tcp_send_delayed_ack).
//   - A segment shorter than the receive MSS marks the ACK "pushed": the
//     read that empties the receive queue then sends it, outside
//     pingpong mode, and in any mode after two such segments
//     (tcp_measure_rcv_mss, tcp_cleanup_rbuf).
//
// The state is the endpoint's ato (µs) and ackMode, kept in the
// endpoint itself: it is not zero on an idle connection and must not
// hold the connection's epBusy (busy.go).

// ackMode bits.
const (
	ackQuickMask = 0x1f // quickack count, 0..maxQuickAcks
	ackPingpong  = 0x20 // pingpong mode entered by a reply (TCP_QUICKACK 0 is the option's)
	ackPushed    = 0x40 // a short segment awaits its ACK (Linux's ICSK_ACK_PUSHED)
	ackPushed2   = 0x80 // ... two of them (ICSK_ACK_PUSHED2)
)

// maxQuickAcks is Linux's TCP_MAX_QUICKACKS.
const maxQuickAcks = 16

// delackMax is Linux's TCP_DELACK_MAX, the longest an ACK is delayed
// in pingpong mode or for a pushed segment; outside those, 500 ms
// (HZ/2).
const (
	delackMax      = 200 * time.Millisecond
	delackMaxQuiet = 500 * time.Millisecond
)

// atoMin is the least ACK timeout (Linux's TCP_ATO_MIN and
// TCP_DELACK_MIN): the Config's DelayedAckTimeout.
func (e *Endpoint) atoMin() time.Duration { return e.p.cfg.DelayedAckTimeout }

func (e *Endpoint) setAto(d time.Duration) {
	us := d / time.Microsecond
	if us < 1 {
		us = 1 // 0 means no data yet
	}
	e.ato = uint32(min(us, 1<<32-1))
}

func (e *Endpoint) atoDur() time.Duration { return time.Duration(e.ato) * time.Microsecond }

// inPingpong reports delayed-ACK ("pingpong") mode, entered by a reply
// or by TCP_QUICKACK 0.
func (e *Endpoint) inPingpong() bool { return e.pingpong || e.ackMode&ackPingpong != 0 }

// exitPingpong leaves pingpong mode, whichever way it was entered.
func (e *Endpoint) exitPingpong() {
	e.ackMode &^= ackPingpong
	if e.pingpong {
		e.setOpt(func(o epOpts) epOpts { o.pingpong = false; return o })
	}
}

// quickAckMode reports that new data is to be acknowledged at once
// (tcp_in_quickack_mode).
func (e *Endpoint) quickAckMode() bool {
	return e.ackMode&ackQuickMask != 0 && !e.inPingpong()
}

// incrQuickAck raises the quickack count to the advertised window over
// two segments of segLen bytes (2 if that is none), at most limit
// (tcp_incr_quickack). Linux's receive MSS starts at 536 and follows
// the segments seen; segLen stands for it.
func (e *Endpoint) incrQuickAck(segLen, limit int) {
	mss := min(int(e.rcvMSS), max(segLen, defaultMSS))
	wnd := int(int32(e.rcvAdv - e.rcvNxt))
	q := 0
	if wnd > 0 && mss > 0 {
		q = wnd / (2 * mss)
	}
	if q == 0 {
		q = 2
	}
	q = min(q, limit)
	if q > int(e.ackMode&ackQuickMask) {
		e.ackMode = e.ackMode&^ackQuickMask | uint8(q)
	}
}

// enterQuickAck is tcp_enter_quickack_mode: ACK the next segments at
// once, out of pingpong mode, with the least ACK timeout.
func (e *Endpoint) enterQuickAck(limit int) {
	e.incrQuickAck(0, limit)
	e.exitPingpong()
	e.setAto(e.atoMin())
}

// dataRecvEvent is tcp_event_data_recv (and tcp_measure_rcv_mss's
// pushed marks) for n in-order bytes arriving at now; prev is when the
// data before them arrived. Called before the ACK decision.
func (e *Endpoint) dataRecvEvent(n int, now, prev time.Duration) {
	if n < int(e.rcvMSS) {
		if e.ackMode&ackPushed != 0 {
			e.ackMode |= ackPushed2
		}
		e.ackMode |= ackPushed
	}
	lo := e.atoMin()
	if e.ato == 0 {
		// The first data: start the delayed-ACK engine in quickack mode.
		e.incrQuickAck(n, maxQuickAcks)
		e.setAto(lo)
		return
	}
	if prev == 0 {
		return // no data yet (the handshake's quickack mode, tcpopts.go): no gap to measure
	}
	ato, m := e.atoDur(), now-prev
	switch {
	case m <= lo/2:
		e.setAto(ato/2 + lo/2)
	case m < ato:
		e.setAto(min(ato/2+m, e.rto))
	case m > e.rto:
		// A long gap: the sender restarts, ACK it quickly.
		e.incrQuickAck(n, maxQuickAcks)
	}
}

// ackSentEvent is tcp_event_ack_sent: an ACK left that acknowledged
// received data (sched), spending one of quickack's.
func (e *Endpoint) ackSentEvent(sched bool) {
	if q := e.ackMode & ackQuickMask; q != 0 && sched {
		if q == 1 {
			e.setAto(e.atoMin()) // leaving quickack mode deflates the timeout
		}
		e.ackMode--
	}
	e.ackMode &^= ackPushed | ackPushed2
}

// dataSentEvent is tcp_event_data_sent: data sent within the ACK
// timeout of data received is a reply, and enters pingpong mode.
func (e *Endpoint) dataSentEvent(now time.Duration) {
	if e.ato != 0 && now-e.lastDataRecv < e.atoDur() {
		e.ackMode |= ackPingpong
	}
}

// delayedAckTimeout is how long an ACK owed now may wait
// (tcp_send_delayed_ack).
func (e *Endpoint) delayedAckTimeout() time.Duration {
	lo := e.atoMin()
	d := e.atoDur()
	if d <= lo {
		return lo
	}
	maxAto := delackMaxQuiet
	if e.inPingpong() || e.ackMode&ackPushed != 0 {
		maxAto = delackMax
	}
	if e.srtt > 0 {
		maxAto = min(maxAto, max(e.srtt, lo))
	}
	return min(d, maxAto, max(delackMax, lo))
}

// delayedAckFired adapts the modes when the delayed ACK's timer sends
// an ACK (tcp_delack_timer_handler): outside pingpong mode the timeout
// was too short and doubles; in pingpong mode no reply came in time, so
// the connection leaves the mode.
func (e *Endpoint) delayedAckFired() {
	if e.ato == 0 {
		return // the handshake's ACK (tcpopts.go): no data yet
	}
	if !e.inPingpong() {
		e.setAto(min(2*e.atoDur(), max(e.rto, e.atoMin())))
		return
	}
	e.exitPingpong()
	e.setAto(e.atoMin())
}

// ackOnRead reports that a read that emptied the receive queue sends
// the ACK owed for short segments (tcp_cleanup_rbuf).
func (e *Endpoint) ackOnRead() bool {
	return e.rcvLen == 0 && e.ackPending > 0 &&
		(e.ackMode&ackPushed2 != 0 || e.ackMode&ackPushed != 0 && !e.inPingpong())
}
