package tcp

import (
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

var (
	errTimedOut = syscall.ETIMEDOUT
	errReset    = syscall.ECONNRESET
	errRefused  = syscall.ECONNREFUSED
)

func isEstab(s State) bool { return s == StateEstablished || s == StateCloseWait }

// setState changes state and keeps CurrEstab (ESTABLISHED + CLOSE_WAIT).
func (e *Endpoint) setState(s State) {
	if isEstab(e.state) && !isEstab(s) {
		e.p.st.CurrEstab.Add(^uint64(0))
	} else if !isEstab(e.state) && isEstab(s) {
		e.p.st.CurrEstab.Add(1)
	}
	e.state = s
}

// setClosed moves to CLOSED and releases what the connection held.
func (e *Endpoint) setClosed() {
	if e.state == StateClosed {
		return
	}
	e.setState(StateClosed)
	e.unorphan()
	e.p.removeConn(e)
	e.stopTimers()
	if e.inSynQ && e.parent != nil {
		e.parent.synQLen.Add(-1)
	}
	e.inSynQ = false
	if e.userClosed || e.childPort || (e.autoBound && !e.everConnected) {
		e.p.releasePort(e)
	}
	if e.userClosed {
		e.freeBuffers()
	} else {
		e.releaseRing(&e.snd)
		e.sndLen = 0
	}
	e.ooo = nil
	e.sb = scoreboard{}
	e.rackReset()
	e.rate.forget()
	e.notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp | waiter.EventErr | waiter.EventRdHUp)
}

func (e *Endpoint) freeBuffers() {
	e.releaseRing(&e.snd)
	e.sndLen = 0
	e.releaseLent()
	e.releaseRing(&e.rcv)
	e.rcvLen = 0
	e.ooo = nil
	e.sb = scoreboard{}
	e.rackReset()
}

// abortLocked closes the connection with err as the pending error.
func (e *Endpoint) abortLocked(err error) {
	if isEstab(e.state) && err != nil {
		e.p.st.EstabResets.Add(1)
	}
	if err != nil {
		e.err = err
	}
	e.setClosed()
}

// negotiate applies the peer's SYN options.
func (e *Endpoint) negotiate(o *wire.TCPOptions) {
	peerMSS := defaultMSS
	if !e.remote.Addr().Unmap().Is4() {
		peerMSS = defaultMSS6
	}
	if o.HasMSS && o.MSS > 0 {
		peerMSS = int(o.MSS)
	}
	e.wsOK = o.HasWScale
	if e.wsOK {
		e.sndWScale = o.WScale
	} else {
		e.sndWScale, e.rcvWScale = 0, 0
	}
	e.sackOK = o.SACKPermitted
	e.tsOK = o.HasTS
	if e.tsOK {
		e.rcvMSS = int32(e.advMSS - 12)
	} else {
		e.rcvMSS = int32(e.advMSS)
	}
	e.peerMSS = int32(peerMSS)
	e.sndMSS = e.negotiatedMSS() // ipopts.go
}

// establish sets up the sender when the handshake completes.
func (e *Endpoint) establish(now time.Duration) {
	e.setState(StateEstablished)
	e.everConnected = true
	e.softErr = nil // the handshake completed: errors met on the way are moot
	if e.cc == nil && !lazyCC(e.ccName) {
		e.cc = e.ccAlg()
	}
	e.ccs = CCState{Cwnd: initCwndSegs * e.sndMSS, Ssthresh: 1 << 30, MSS: e.sndMSS}
	e.backoff = 0
	e.rtoAt = 0
	if e.srtt == 0 {
		e.rto = initRTO
	}
	e.lastRecv = now
	e.updateSndBuf()
	if e.keepAlive {
		e.rearmKeepalive()
	}
}

// updateSndBuf auto-tunes the send buffer with the congestion window.
func (e *Endpoint) updateSndBuf() {
	if e.userSndBuf > 0 || e.p.memPressure() {
		return
	}
	want := min(max(2*e.ccs.Cwnd, 2*e.sndWnd, e.p.cfg.SendBuf), e.p.cfg.MaxSendBuf)
	if want > e.sndCap {
		e.sndCap = want
	}
}

// rttSample feeds one measurement to the RFC 6298 estimator.
func (e *Endpoint) rttSample(r time.Duration) {
	if r <= 0 {
		r = time.Microsecond
	}
	if e.minRTT == 0 || r < e.minRTT {
		e.minRTT = r
	}
	if e.srtt == 0 {
		e.srtt = r
		e.rttvar = r / 2
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	// Linux's form: the variance term is at least the minimum RTO.
	e.rto = min(e.srtt+max(4*e.rttvar, minRTO), maxRTO)
}

// handleSegment processes a segment for this connection. It returns
// false when the endpoint no longer owns the 4-tuple (the caller then
// treats the segment as addressed to a listener or to nobody).
func (e *Endpoint) handleSegment(s *segment, batch *Batch) bool {
	e.lock()
	e.batch = batch
	switch e.state {
	case StateClosed, StateListen:
		e.unlock()
		return false
	}
	if !e.p.devOK(s, e.dev, e.local.Addr()) {
		// Bound to another device: not this segment's connection
		// (bindtodev.go), as Linux's established lookup skips it.
		e.unlock()
		return false
	}
	now := e.p.now()
	e.segsIn++
	deliver := false
	switch e.state {
	case StateSynSent:
		e.synSentInput(s, now)
	default:
		deliver = e.input(s, now)
	}
	parent := e.parent
	e.batch = nil
	e.unlock()
	if deliver && parent != nil {
		parent.deliverChild(e)
	}
	return true
}

func (e *Endpoint) synSentInput(s *segment, now time.Duration) {
	if s.has(wire.TCPFlagACK) && (seqLEQ(s.ack, e.iss) || seqGT(s.ack, e.sndMax)) {
		if !s.has(wire.TCPFlagRST) {
			e.p.sendResetFor(connKey{e.local, e.remote}, s)
		}
		return
	}
	if s.has(wire.TCPFlagRST) {
		if s.has(wire.TCPFlagACK) {
			e.p.st.InRsts.Add(1)
			e.p.st.AttemptFails.Add(1)
			e.connectErrPending = true
			e.abortLocked(errRefused)
		}
		return
	}
	if !s.has(wire.TCPFlagSYN) {
		return
	}
	e.irs = s.seq
	e.rcvNxt = s.seq + 1
	e.rcvAdv = e.rcvNxt
	e.negotiate(&s.opts)
	if s.has(wire.TCPFlagACK) {
		e.ecnSynAckReceived(s)
	} else {
		e.ecn = ecnState{} // simultaneous open: without ECN
	}
	if e.tsOK {
		e.tsRecent, e.tsRecentAt = s.opts.TSVal, now
	}
	e.sndWnd = int(s.wnd) // never scaled in a SYN
	e.maxSndWnd = e.sndWnd
	e.sndWl1, e.sndWl2 = s.seq, s.ack
	if s.has(wire.TCPFlagACK) {
		e.sndUna = s.ack
		if e.rttTiming && e.backoff == 0 {
			e.rttSample(now - e.rttStart)
		}
		e.rttTiming = false
		e.establish(now)
		if !e.delayHandshakeAck(now) { // tcpopts.go
			e.ackNow = true
			e.output(now)
		}
		e.notify(waiter.EventOut)
		return
	}
	// Simultaneous open (RFC 9293 3.5): answer with SYN-ACK.
	e.setState(StateSynRcvd)
	e.sendSYN(now, false)
	e.rttTiming = false
	e.armRTO(now)
}

// acceptable is the RFC 9293 segment acceptability test.
func (e *Endpoint) acceptable(seq uint32, n uint32) bool {
	wnd := uint32(max(int32(e.rcvAdv-e.rcvNxt), 0))
	if n == 0 {
		if wnd == 0 {
			return seq == e.rcvNxt
		}
		return seqLEQ(e.rcvNxt, seq) && seqLT(seq, e.rcvNxt+wnd)
	}
	if wnd == 0 {
		return seq == e.rcvNxt // zero window: still take its ACK (data trimmed)
	}
	end := seq + n - 1
	return (seqLEQ(e.rcvNxt, seq) && seqLT(seq, e.rcvNxt+wnd)) ||
		(seqLEQ(e.rcvNxt, end) && seqLT(end, e.rcvNxt+wnd)) ||
		// Covers the window: starts before it, by less than its own length
		// (without that bound a segment half the sequence space away
		// passed too, doubling a blind attacker's odds).
		(seqLT(seq, e.rcvNxt) && e.rcvNxt-seq < n && seqGT(end, e.rcvNxt+wnd))
}

// input handles a segment in SYN_RCVD or a synchronized state. It
// returns true when a passive open just completed.
func (e *Endpoint) input(s *segment, now time.Duration) (deliver bool) {
	segLen := s.seqLen()
	// Simultaneous open: the peer's SYN-ACK completes our SYN_RCVD (as Linux).
	simSynAck := e.state == StateSynRcvd && e.parent == nil && s.has(wire.TCPFlagSYN) &&
		s.has(wire.TCPFlagACK) && !s.has(wire.TCPFlagRST) && s.seq+1 == e.rcvNxt && s.ack == e.sndNxt
	if e.state == StateSynRcvd && s.has(wire.TCPFlagSYN) && !s.has(wire.TCPFlagACK|wire.TCPFlagRST) && s.seq == e.irs {
		e.sendSYN(now, true) // the peer did not get our SYN-ACK
		return false
	}
	if !simSynAck {
		// PAWS (RFC 7323 5.3).
		if e.tsOK && s.opts.HasTS && !s.has(wire.TCPFlagRST) && seqLT(s.opts.TSVal, e.tsRecent) &&
			now-e.tsRecentAt < 24*24*time.Hour {
			e.p.st.PAWSDrops.Add(1)
			e.oowAck(s, now, oowPAWS)
			return false
		}
		if !e.acceptable(s.seq, segLen) {
			e.p.st.OutOfWindowDrops.Add(1)
			if !s.has(wire.TCPFlagRST) {
				if segLen > 0 && seqLT(s.seq, e.rcvNxt) {
					// Old data: our ACK was lost (Linux's tcp_send_dupack).
					e.enterQuickAck(maxQuickAcks)
				}
				e.oowAck(s, now, oowSeq)
			}
			return false
		}
		if s.has(wire.TCPFlagRST) {
			e.p.st.InRsts.Add(1)
			if s.seq != e.rcvNxt {
				e.sendChallengeAck(now) // RFC 5961 3.2
				return false
			}
			switch e.state {
			case StateSynRcvd:
				if e.parent == nil {
					e.connectErrPending = true
					e.abortLocked(errRefused)
				} else {
					e.setClosed()
				}
			case StateClosing, StateLastAck:
				e.setClosed()
			default:
				e.abortLocked(errReset)
			}
			return false
		}
		if s.has(wire.TCPFlagSYN) {
			e.sendChallengeAck(now) // RFC 5961 4.2
			return false
		}
	}
	if !s.has(wire.TCPFlagACK) {
		return false
	}
	if e.tsOK && s.opts.HasTS && seqLEQ(s.seq, e.rcvNxt) && seqGEQ(s.opts.TSVal, e.tsRecent) {
		e.tsRecent, e.tsRecentAt = s.opts.TSVal, now
	}
	e.lastRecv = now
	e.kaProbes = 0
	e.ecnInput(s)
	if e.state == StateSynRcvd {
		if !seqGT(s.ack, e.sndUna) || seqGT(s.ack, e.sndMax) {
			e.p.sendResetFor(connKey{e.local, e.remote}, s)
			return false
		}
		if e.deferBareAck(s) {
			return false // TCP_DEFER_ACCEPT: wait for data (tcpopts.go)
		}
		if e.childOverflow() {
			return false // accept queue full: the peer retries (Linux)
		}
		if e.rttTiming && e.backoff == 0 {
			e.rttSample(now - e.rttStart)
		}
		e.rttTiming = false
		if e.inSynQ && e.parent != nil {
			e.parent.synQLen.Add(-1)
			e.inSynQ = false
			deliver = true
			e.clearListenOpts() // tcpopts.go
		}
		e.establish(now)
		e.sndUna = s.ack
		e.sndWnd = int(s.wnd) << e.sndWScale
		e.maxSndWnd = max(e.maxSndWnd, e.sndWnd)
		e.sndWl1, e.sndWl2 = s.seq, s.ack
		e.notify(waiter.EventOut)
		if simSynAck {
			e.ackNow = true
			e.output(now)
			return false
		}
		if e.wrShut {
			// Closed (or shut down) before the handshake completed.
			e.setState(StateFinWait1)
			e.output(now)
		}
	}
	if !e.processAck(s, now) {
		return deliver
	}
	switch e.state {
	case StateFinWait1:
		if e.finAcked() {
			e.setState(StateFinWait2)
			e.rtoAt = 0
			if e.userClosed && e.orphanFinWait2(now) { // TCP_LINGER2 (tcpopts.go)
				return deliver
			}
		}
	case StateClosing:
		if e.finAcked() {
			e.enterTimeWait(now)
			return deliver
		}
	case StateLastAck:
		if e.finAcked() {
			e.setClosed()
			return deliver
		}
	}
	e.urgCheck(s)
	if len(s.payload) > 0 || s.has(wire.TCPFlagFIN) {
		switch e.state {
		case StateEstablished, StateFinWait1, StateFinWait2:
			if (e.userClosed || e.rdShut && e.state != StateEstablished) && len(s.payload) > 0 &&
				seqGT(s.seq+uint32(len(s.payload)), e.rcvNxt) {
				// Data for a closed socket, or one shut both ways: Linux
				// answers with a RST (tcp_rcv_state_process, RCV_SHUTDOWN).
				e.p.st.AbortOnData.Add(1)
				e.sendReset()
				if e.userClosed {
					e.abortLocked(nil)
				} else {
					// The socket reports ECONNRESET once, then is
					// unconnected (getpeername, shutdown: ENOTCONN).
					e.abortLocked(errReset)
					e.everConnected = false
				}
				return deliver
			}
			e.receiveData(s, now)
			e.urgCapture()
		default:
			// The stream already ended: acknowledge duplicates.
			e.ackNow = true
		}
	}
	if e.state != StateClosed {
		e.output(now)
		if e.ackPending > 0 && !e.ackNow && e.dackAt == 0 && !e.batchAck {
			e.armDelayedAck(now)
		}
	}
	return deliver
}

// processAck handles the ACK field (RFC 9293 3.10.7.4, RFC 5961 5). It
// returns false when the segment must be dropped.
func (e *Endpoint) processAck(s *segment, now time.Duration) bool {
	ack := s.ack
	if seqGT(ack, e.sndMax) || seqLT(ack, e.sndUna-uint32(max(e.maxSndWnd, 65535))) {
		e.sendChallengeAck(now)
		return false
	}
	e.lastAckRecv = now
	if !seqLT(ack, e.sndUna) {
		e.ackAlive()
	}
	tlpUna, tlpDSACKs := e.sndUna, e.dsacks
	newSack := false
	sackedBefore := e.sb.sacked
	high := ack // the highest sequence this ACK newly delivers
	rater, _ := e.cc.(ccRater)
	var rs rateSample
	if rater != nil {
		rs.priorInFlight = e.inFlight()
		rs.lost = -e.rk.lostOut
	}
	if e.sackOK && s.opts.NumSACK > 0 {
		for i := 0; i < s.opts.NumSACK; i++ {
			b := s.opts.SACK[i]
			if seqLEQ(b.Right, ack) || (i == 0 && seqLT(b.Left, ack)) {
				e.p.st.DSACKsRecv.Add(1)
				e.dsacks++
				e.rackDSACK()
				e.undoDSACK(b.Left, b.Right)
				continue
			}
			if !seqLT(b.Left, b.Right) || seqLT(b.Left, e.sndUna) || seqGT(b.Right, e.sndMax) {
				continue
			}
			e.p.st.SACKBlocksRecv.Add(1)
			if e.sb.add(b.Left, b.Right) {
				newSack = true
				high = seqMax(high, b.Right)
			}
		}
	}
	tsecr, hasTS := s.opts.TSEcr, e.tsOK && s.opts.HasTS
	oldWnd := e.sndWnd
	acked := 0
	if seqGT(ack, e.sndUna) {
		acked = int(ack - e.sndUna)
		if e.rttTiming && seqGEQ(ack, e.rttSeq) {
			e.rttTiming = false
			e.rttSample(now - e.rttStart)
		}
		if e.txStamp != nil {
			e.txStampAcked(ack) // txstamp.go; before the ring lets the bytes go
		}
		d := e.releaseAcked(ack)
		e.bytesAcked += uint64(acked)
		e.rackAcked(ack, tsecr, hasTS, now)
		e.sndUna = ack
		if seqLT(e.sndNxt, ack) {
			e.sndNxt = ack
		}
		e.sb.ackTo(ack)
		e.rateAck(&rs, acked+e.sb.sacked-sackedBefore, high, now)
		if e.backoff > 0 && e.srtt > 0 {
			// Forward progress: drop the back-off (as Linux does).
			e.rto = min(e.srtt+max(4*e.rttvar, minRTO), maxRTO)
		}
		e.backoff = 0
		e.dupAcks = 0
		if e.recovery {
			if seqGEQ(ack, e.recoverSeq) {
				e.recovery = false
				fl := int(e.sndMax - e.sndUna)
				e.ccs.Cwnd = max(min(e.ccs.Ssthresh, fl+e.sndMSS), 2*e.sndMSS)
			} else if !e.sackOK {
				// NewReno partial ACK (RFC 6582 3.2): retransmit the next
				// hole, deflate by the amount acked.
				e.retransmitFirst(now)
				e.ccs.Cwnd = max(e.ccs.Cwnd-acked+e.sndMSS, e.sndMSS)
			}
		} else if d > 0 && e.cwndLimited(int(e.sndNxt-ack)+acked) {
			e.ccs.InFlight = e.inFlight()
			e.ccs.SRTT, e.ccs.MinRTT = e.srtt, e.minRTT
			e.ccAlg().OnAck(&e.ccs, d, now)
		}
		e.tlpOut = false
		if e.sndUna == e.sndMax {
			e.rtoAt, e.tlpAt = 0, 0
			e.rate.forget()
		} else {
			e.rtoAt = now + e.rto
			e.armTimer(e.rtoAt)
			e.armTLP(now)
		}
		e.probes = 0
		e.persistAt = 0
		if d > 0 {
			e.updateSndBuf()
			if !e.wrShut && e.writable() {
				e.notify(waiter.EventOut)
			}
		}
	}
	if acked == 0 && newSack {
		e.rateAck(&rs, e.sb.sacked-sackedBefore, high, now)
	}
	if e.sackOK && (newSack || acked > 0) && e.txq.n > 0 {
		if newSack {
			// In sequence order, so that one ACK does not look like
			// reordering.
			var bl [4]wire.SACKBlock
			k := copy(bl[:], s.opts.SACK[:s.opts.NumSACK])
			for i := 1; i < k; i++ {
				for j := i; j > 0 && seqLT(bl[j].Left, bl[j-1].Left); j-- {
					bl[j], bl[j-1] = bl[j-1], bl[j]
				}
			}
			for _, b := range bl[:k] {
				if seqLT(b.Left, b.Right) && seqGT(b.Right, ack) {
					e.rackSacked(seqMax(b.Left, ack), b.Right, tsecr, hasTS, now)
				}
			}
		}
		// RACK (RFC 8985): anything sent well before what was just
		// delivered is lost; that includes lost retransmissions.
		if e.rackDetect(now) && !e.recovery {
			e.enterRecovery(now)
		}
		e.prrUpdate(acked + e.sb.sacked - sackedBefore)
	}
	// Window update (RFC 9293: SND.WL1/WL2 rule).
	if seqLT(e.sndWl1, s.seq) || (e.sndWl1 == s.seq && seqLEQ(e.sndWl2, ack)) {
		e.sndWnd = int(s.wnd) << e.sndWScale
		e.maxSndWnd = max(e.maxSndWnd, e.sndWnd)
		e.sndWl1, e.sndWl2 = s.seq, ack
		if e.sndWnd > oldWnd {
			e.probes = 0
		}
	}
	// Duplicate ACK (RFC 5681 2; with SACK, new SACK info counts, RFC 6675).
	if ack == e.sndUna && e.sndUna != e.sndMax && len(s.payload) == 0 &&
		!s.has(wire.TCPFlagSYN|wire.TCPFlagFIN) && (e.sndWnd == oldWnd || newSack) {
		if !s.has(wire.TCPFlagSYN) && (newSack || !e.sackOK || s.opts.NumSACK == 0) {
			e.dupAcks++
		}
		if !e.recovery {
			if e.dupAcks >= 3 && !e.sackOK {
				e.enterRecovery(now)
			}
		} else if !e.sackOK {
			e.ccs.Cwnd += e.sndMSS // NewReno inflation
		}
	}
	e.tlpAcked(tlpUna, tlpDSACKs, ack, len(s.payload) == 0 && !newSack && e.sndWnd == oldWnd, now)
	e.ecnOnAck(s, now)
	if rater != nil && (acked > 0 || newSack) {
		rs.lost += e.rk.lostOut
		rs.lost = max(rs.lost, 0)
		e.ccs.InFlight = e.inFlight()
		e.ccs.SRTT, e.ccs.MinRTT = e.srtt, e.minRTT
		e.ccs.InRecovery = e.recovery
		e.ccs.InLoss = e.inLoss && seqGT(e.lossHigh, e.sndUna)
		rater.OnSample(&e.ccs, rs, &e.rate, now)
	}
	return true
}

// rateAck feeds the delivery rate estimator with the bytes this ACK
// newly delivered and gives the congestion control its RTT sample.
func (e *Endpoint) rateAck(rs *rateSample, delivered int, high uint32, now time.Duration) {
	e.rate.onAck(delivered, high, e.minRTT, now, rs)
	e.ccs.RTT = rs.rtt
	e.ccs.Ack, e.ccs.SndNxt = e.sndUna, e.sndNxt
}

// cwndLimited reports whether a flight of that many bytes was limited by
// cwnd; cwnd only grows when it is what limits sending (RFC 7661 spirit,
// like Linux's tcp_is_cwnd_limited).
func (e *Endpoint) cwndLimited(flight int) bool {
	if e.ccs.Cwnd < e.ccs.Ssthresh {
		return 2*flight >= e.ccs.Cwnd
	}
	return flight+3*e.sndMSS >= e.ccs.Cwnd
}

// enterRecovery starts fast recovery: with SACK, RACK has marked the
// losses and PRR paces their retransmission; without, NewReno.
func (e *Endpoint) enterRecovery(now time.Duration) {
	e.p.st.FastRetrans.Add(1)
	e.recovery = true
	e.tlpOut = false
	e.recoverSeq = e.sndMax
	priorCwnd := e.ccs.Cwnd
	// The flight is what cwnd allowed; SACKed bytes are not in it.
	e.ccs.InFlight = min(e.ccs.Cwnd, int(e.sndMax-e.sndUna))
	e.ccs.SRTT, e.ccs.MinRTT = e.srtt, e.minRTT
	e.undoMark()
	e.ccAlg().OnLoss(&e.ccs, now)
	e.rttTiming = false
	if e.sackOK {
		e.p.st.SACKRecovery.Add(1)
		e.rk.prrDelivered, e.rk.prrOut = 0, 0
		e.rk.recoverFS = max(priorCwnd, e.sndMSS)
		if e.rk.recovs++; e.rk.recovs >= 16 {
			e.rk.reoMult, e.rk.recovs = 1, 0
		}
		return
	}
	e.p.st.RenoRecovery.Add(1)
	e.retransmitFirst(now)
	e.ccs.Cwnd = e.ccs.Ssthresh + 3*e.sndMSS
}

// retransmitFirst resends the segment at SND.UNA.
func (e *Endpoint) retransmitFirst(now time.Duration) {
	n := min(e.sndMSS, int(e.dataEnd()-e.sndUna))
	if seqGT(e.sndUna, e.dataEnd()) {
		n = 0
	}
	fin := e.wrShut && e.sndUna+uint32(n) == e.dataEnd() && seqGT(e.sndMax, e.dataEnd())
	if n == 0 && !fin {
		return
	}
	e.sendData(e.sndUna, n, fin, now)
}

// receiveData places payload (and FIN) into the receive ring.
func (e *Endpoint) receiveData(s *segment, now time.Duration) {
	seq := s.seq
	data := s.payload
	fin := s.has(wire.TCPFlagFIN)
	if seqLT(seq, e.rcvNxt) {
		d := int(e.rcvNxt - seq)
		e.dsackOld(seq, seq+uint32(min(d, len(data))))
		if d > len(data) {
			// Only an old FIN (or nothing new): duplicate.
			e.ackNow = true
			e.enterQuickAck(maxQuickAcks) // our ACK was lost: Linux's tcp_data_queue
			return
		}
		if d == len(data) && !fin {
			e.ackNow = true // duplicate data: ACK at once (RFC 5681 4.2)
			e.enterQuickAck(maxQuickAcks)
			return
		}
		data = data[d:]
		seq = e.rcvNxt
	}
	off := int(seq - e.rcvNxt)
	room := e.rcvCap - e.rcvLen
	if off+len(data) > room {
		keep := room - off
		if keep <= 0 {
			e.p.st.OFOQueueDrops.Add(1)
			e.ackNow = true
			e.enterQuickAck(maxQuickAcks) // out of window: Linux's tcp_data_queue
			return
		}
		data = data[:keep]
		fin = false
		e.ackNow = true // part of it fell outside the window: tell the sender
	}
	// In order and large: kept in the link's buffer if it lends it
	// (lend.go); anything else goes into the ring, after what was kept.
	kept := len(data) > 0 && off == 0 && e.keepLent(data)
	if len(data) > 0 && !kept {
		e.flattenLent()
		if e.rcvMemRefuse(e.rcvLen + off + len(data)) {
			e.ackNow = true // at the memory limit: drop, unacknowledged
			return
		}
	}
	if len(data) > 0 {
		if len(data) > int(e.rcvMSS) {
			e.rcvMSS = int32(min(len(data), e.advMSS))
		}
		if !kept {
			keep := e.rcvLen + e.oooExtent()
			e.growRing(&e.rcv, e.rcvLen+off+len(data), keep, e.rcvCap)
			e.rcv.copyIn(data, e.rcvLen+off)
		}
		if off == 0 {
			e.dataRecvEvent(len(data), now, e.lastDataRecv) // quickack.go
		}
		e.lastDataRecv = now
	}
	if off != 0 {
		if len(data) > 0 {
			e.dsackOOO(seq, seq+uint32(len(data)))
			if e.addOOO(seq, seq+uint32(len(data))) {
				e.p.st.OFOQueued.Add(1)
			} else {
				e.p.st.OFOQueueDrops.Add(1)
			}
		}
		if fin {
			e.finOOO, e.finOOOSeq = true, seq+uint32(len(data))
		}
		e.ackOOO() // out of order: ACK at once (with SACK)
		return
	}
	e.rcvLen += len(data)
	e.rcvNxt += uint32(len(data))
	e.bytesRecv += uint64(len(data))
	if c := e.rxStamp; c != nil && len(data) > 0 {
		c.at.Store(e.p.base.UnixNano() + int64(now)) // rxstamp.go
	}
	e.ackPending += len(data)
	if len(e.ooo) > 0 {
		filled := false
		for len(e.ooo) > 0 && seqLEQ(e.ooo[0].start, e.rcvNxt) {
			if seqGT(e.ooo[0].end, e.rcvNxt) {
				adv := int(e.ooo[0].end - e.rcvNxt)
				e.rcvLen += adv
				e.bytesRecv += uint64(adv)
				e.rcvNxt = e.ooo[0].end
			}
			e.ooo = e.ooo[1:]
			filled = true
		}
		if len(e.ooo) == 0 {
			e.ooo = nil
			// No hole: the busy state may be zero again (busy.go).
			e.heldHole, e.heldAt = false, 0
		}
		if filled {
			e.ackOOO()
		}
	}
	if !fin && e.finOOO && e.rcvNxt == e.finOOOSeq {
		fin = true
	}
	if fin {
		e.finOOO = false
		e.gotFIN(now)
	}
	if len(data) > 0 {
		if e.batch != nil {
			// The reader is woken at the end of the batch (Flush), once
			// for all of its segments: woken at the first, it would
			// contend for the endpoint's lock with the rest.
			e.joinBatch()
		} else {
			e.notify(waiter.EventIn)
		}
	}
	// More than one full segment unacknowledged is acknowledged at once,
	// as Linux's __tcp_ack_snd_check: two full segments (RFC 5681 4.2),
	// and also a full one and the short tail of a write, which a sender
	// using Nagle in Minshall's variant sends together and whose next
	// short segment then waits for this ACK. So is every segment in
	// quickack mode (quickack.go), at the end of the batch as well.
	if (e.ackPending > int(e.rcvMSS) || e.ackPending > 0 && e.quickAckMode()) && !e.ackNow {
		if e.batch != nil && e.ackPending < e.batchAckLimit() {
			// Acknowledge at the end of the batch instead.
			e.batchAck = true
			e.joinBatch()
			return
		}
		e.ackNow = true
	}
	if !e.ackNow && e.ackPending > 0 {
		if e.dackAt != 0 && e.dackAt <= now+e.delayedAckTimeout()/4 {
			// The timer is about to fire: this ACK goes now, and covers
			// the new data too (Linux's tcp_send_delayed_ack).
			if e.batch != nil {
				e.batchAck = true
				e.joinBatch()
				return
			}
			e.ackNow = true
			return
		}
		e.armDelayedAck(now)
	}
}

// ackOOO owes the immediate ACK that out-of-order data, and data that
// fills a hole, draw (RFC 5681 4.2). Within a link batch it goes at the
// batch's end: when a later segment of the same batch fills the hole (a
// veth whose sender runs on two CPUs inverts neighbours), the sender
// then gets one cumulative ACK, not duplicates it would count toward a
// loss and answer with a spurious retransmission. The data itself is
// taken in the link's order; only the ACK waits, for microseconds.
func (e *Endpoint) ackOOO() {
	if e.batch == nil {
		e.ackNow = true
		return
	}
	e.batchAck, e.batchAckNow = true, true
	e.joinBatch()
}

// joinBatch puts e on its batch's list for Flush.
func (e *Endpoint) joinBatch() {
	if !e.inBatch {
		e.inBatch = true
		e.batch.eps = append(e.batch.eps, e)
	}
}

// batchAckLimit is how many in-order bytes a link batch may leave
// unacknowledged until its end: batchAckSegs full segments, or a quarter
// of the receive buffer when that is more. Super-segments from a link
// with receive offload are tens of segments each, so a segment count
// alone would acknowledge every one of them; a quarter of the buffer
// keeps the sender far from the window edge while a batch is processed.
func (e *Endpoint) batchAckLimit() int {
	return max(batchAckSegs*int(e.rcvMSS), e.rcvCap/4)
}

// oooExtent is how far past the readable bytes out-of-order data reaches.
func (e *Endpoint) oooExtent() int {
	if len(e.ooo) == 0 {
		return 0
	}
	return int(e.ooo[len(e.ooo)-1].end - e.rcvNxt)
}

// addOOO records [a,b) as held out of order; false if over the limit.
func (e *Endpoint) addOOO(a, b uint32) bool {
	e.oooRecent++
	i := 0
	for i < len(e.ooo) && seqLT(e.ooo[i].end, a) {
		i++
	}
	j := i
	na, nb := a, b
	for j < len(e.ooo) && seqLEQ(e.ooo[j].start, nb) {
		na = seqMin(na, e.ooo[j].start)
		nb = seqMax(nb, e.ooo[j].end)
		j++
	}
	r := oooRange{na, nb, e.oooRecent}
	switch {
	case j-i == 1:
		e.ooo[i] = r
	case j-i > 1:
		e.ooo[i] = r
		e.ooo = append(e.ooo[:i+1], e.ooo[j:]...)
	default:
		if len(e.ooo) >= maxOOORanges {
			return false
		}
		if e.ooo == nil {
			e.ooo = make([]oooRange, 0, 4)
		}
		e.ooo = append(e.ooo, oooRange{})
		copy(e.ooo[i+1:], e.ooo[i:])
		e.ooo[i] = r
	}
	return true
}

// gotFIN consumes the peer's FIN.
func (e *Endpoint) gotFIN(now time.Duration) {
	e.rcvNxt++
	e.finRcvd = true
	e.ackNow = true
	switch e.state {
	case StateSynRcvd, StateEstablished:
		e.setState(StateCloseWait)
	case StateFinWait1:
		if e.finAcked() {
			e.enterTimeWait(now)
		} else {
			e.setState(StateClosing)
		}
	case StateFinWait2:
		e.enterTimeWait(now)
	}
	e.notify(waiter.EventIn | waiter.EventRdHUp)
}

// handleError applies an ICMP error (RFC 5927 checks, RFC 1191 PMTUD);
// false when the error is not about this connection's data in flight.
func (e *Endpoint) handleError(seq uint32, ne *NetError) bool {
	kind, mtu := ne.Kind, ne.MTU
	e.lock()
	defer e.unlock()
	switch e.state {
	case StateClosed, StateListen, StateTimeWait:
		return false
	}
	if seqLT(seq, e.sndUna) || seqGT(seq, e.sndMax) {
		return false // not for data in flight: maybe forged
	}
	now := e.p.now()
	switch kind {
	case ErrFragNeeded:
		if mtu < 68 || mtu >= e.pmtu && e.pmtu > 0 {
			return true
		}
		mtu = max(mtu, 576)
		e.p.st.PMTUUpdates.Add(1)
		e.pmtu = mtu
		mss := mtu - 40 - e.ipOptLen() // IP_OPTIONS take their room (ipopts.go)
		if e.tsOK {
			mss -= 12
		}
		mss = min(mss, int(e.peerMSS)-e.ipOptLen())
		if mss >= e.sndMSS {
			return true
		}
		e.sndMSS = max(mss, 64)
		e.ccs.MSS = e.sndMSS
		e.ccs.Cwnd = max(e.ccs.Cwnd, 2*e.sndMSS)
		// Resend what was in flight in smaller segments (not a congestion signal).
		if e.state != StateSynSent && e.state != StateSynRcvd {
			e.sndNxt = e.sndUna
			e.rackClearLost()
			e.rttTiming = false
			e.output(now)
			if e.sndUna != e.sndMax {
				// A retransmission restarts the RTO and sends no probe
				// (Linux's tcp_rearm_rto): a probe armed for the
				// segments just replaced would repeat the tail before
				// the resend could be acknowledged.
				e.tlpAt = 0
				e.rtoAt = now + e.rto
				e.armTimer(e.rtoAt)
			}
		}
		return true
	case ErrSourceQuench:
		return true
	}
	errno := ne.errno()
	if errno == 0 {
		return true
	}
	var err error = errno
	// Before the handshake completes every error that got here ends the
	// attempt, a time exceeded too (Linux's tcp_v4_err and tcp_v6_err:
	// any unreachable but frag needed, time exceeded, parameter problem;
	// a simultaneous open's SYN_RECV likewise). Linux keeps it soft only
	// when the socket is owned by the user at that moment; here the error
	// waits for the endpoint lock and then applies, as if it were not.
	recverr := e.recvErr4 && e.remote.Addr().Unmap().Is4() || e.recvErr6 && !e.remote.Addr().Unmap().Is4()
	if e.state == StateSynSent || e.state == StateSynRcvd && e.parent == nil {
		// Only here does Linux queue the error for MSG_ERRQUEUE
		// (ip_icmp_error, ipv6_icmp_error), and only under RECVERR.
		if recverr && ne.Origin != 0 {
			e.queueErrLocked(ne, errno)
		}
		e.p.st.AttemptFails.Add(1)
		e.connectErrPending = true
		e.abortLocked(err)
		return true
	}
	if e.state == StateSynRcvd {
		return true
	}
	// Synchronized: every error is soft, even a port or protocol
	// unreachable (RFC 5927 7), so that a forged ICMP message cannot
	// reset a connection. Without IP_RECVERR it is reported only by
	// SO_ERROR, or as the reason if the connection times out; with it
	// (IPV6_RECVERR for IPv6) it becomes the pending error, which the
	// next receive returns and POLLERR shows, and the connection goes on
	// (Linux's tcp_v4_err, tcp_v6_err).
	if recverr {
		e.err = err
		e.notify(waiter.EventErr | waiter.EventIn | waiter.EventOut)
		return true
	}
	e.softErr = err
	return true
}

// SetRecvErr sets IP_RECVERR (v6 false) or IPV6_RECVERR: whether soft
// ICMP errors on a synchronized connection become its pending error.
func (e *Endpoint) SetRecvErr(v6, on bool) {
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts {
		if v6 {
			o.recvErr6 = on
		} else {
			o.recvErr4 = on
		}
		return o
	})
}

// RecvErr reports IP_RECVERR (v6 false) or IPV6_RECVERR.
func (e *Endpoint) RecvErr(v6 bool) bool {
	e.lock()
	defer e.unlock()
	if v6 {
		return e.recvErr6
	}
	return e.recvErr4
}
