package tcp

import (
	"errors"
	"math"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// tsNow is our timestamp clock: milliseconds, plus the offset.
func (e *Endpoint) tsNow(now time.Duration) uint32 {
	return uint32(now/time.Millisecond) + 1 + e.tsOffset
}

// rcvWindow is the window to offer: free buffer space, never shrinking
// the right edge already offered, and opened only in useful steps
// (receiver SWS avoidance).
func (e *Endpoint) rcvWindow() int {
	w := max(e.rcvCap-e.rcvLen, 0)
	w = e.memClampWindow(w)
	w = min(w, 65535<<e.rcvWScale)
	w = e.clampWindow(w) // TCP_WINDOW_CLAMP (tcpopts.go)
	cur := int(int32(e.rcvAdv - e.rcvNxt))
	if cur < 0 {
		cur = 0
	}
	if w > cur && w-cur < e.clampStep(min(e.rcvCap/2, e.advMSS)) {
		w = cur
	}
	if w < cur {
		w = cur
	}
	return w
}

// inFlight is the RFC 6675 pipe: bytes sent, not acked, not SACKed and
// not presumed lost.
func (e *Endpoint) inFlight() int {
	if len(e.sb.blocks) == 0 && e.rk.lostOut == 0 {
		return int(e.sndNxt - e.sndUna)
	}
	n := e.sb.holeBytes(e.sndUna, e.sndNxt) - e.rk.lostOut
	return max(n, 0)
}

// xmit sends one segment: seq, n payload bytes from the send ring at
// seq, flags. Every ACK-bearing segment carries the current window,
// timestamps and SACK blocks, and satisfies any pending ACK.
func (e *Endpoint) xmit(seq uint32, n int, flags uint8, now time.Duration) error {
	seg := e.buildSeg(seq, n, flags, now)
	stamp := e.txStamp != nil && n > 0
	if e.txDefer {
		// A segment queued for a flusher reports SCHED now, as a qdisc's
		// enqueue does, and SND when the flusher hands it to the host.
		// The report is made before the queue, where the flusher may
		// free the segment (txstamp.go, txdefer.go).
		if stamp {
			seg.stampSnd = e.txStampSent(seg, seq, n, true)
		}
		if e.deferSeg(seg) { // txdefer.go
			e.xmitDone(seg, seq, n, flags, nil, now)
			return nil
		}
	}
	err := e.p.host.Output(seg)
	switch {
	case seg.stampSnd:
		e.txStampFlushed(seg, err == nil)
	case stamp && err == nil && !e.txDefer:
		e.txStampSent(seg, seq, n, false)
	}
	e.xmitDone(seg, seq, n, flags, err, now)
	e.p.putSeg(seg)
	return err
}

// buildSeg is xmit up to the host's Output: the segment to send, from
// the segment pool, counted as sent.
func (e *Endpoint) buildSeg(seq uint32, n int, flags uint8, now time.Duration) *Segment {
	seg := e.p.segPool.Get().(*Segment)
	seg.Local, seg.Remote = e.local, e.remote
	seg.TOS, seg.TTL, seg.HopZero = e.tos, e.ttl, e.hopZero
	seg.IPOpts = e.segIPOpts()
	seg.Ext6 = e.segExt6() // ext6.go
	seg.Mark = e.mark
	seg.Dev = int(e.dev) // bindtodev.go
	h := &seg.Header
	h.SrcPort, h.DstPort = e.local.Port(), e.remote.Port()
	h.Seq, h.Flags, h.Urgent = seq, flags, 0
	e.urgPut(h, seq)
	h.Options = wire.TCPOptions{}
	h.Ack = 0
	syn := flags&wire.TCPFlagSYN != 0
	if flags&wire.TCPFlagACK != 0 {
		h.Ack = e.rcvNxt
	}
	if syn {
		h.Window = uint16(e.clampWindow(min(e.rcvCap, 65535))) // TCP_WINDOW_CLAMP (tcpopts.go)
		e.rcvAdv = e.rcvNxt + uint32(h.Window)
		o := &h.Options
		o.HasMSS, o.MSS = true, uint16(min(e.advMSS, 65535))
		active := flags&wire.TCPFlagACK == 0
		if active || e.wsOK {
			o.HasWScale, o.WScale = true, e.rcvWScale
		}
		if active || e.sackOK {
			o.SACKPermitted = true
		}
		if active || e.tsOK {
			o.HasTS, o.TSVal, o.TSEcr = true, e.tsNow(now), e.tsRecent
			if e.cookieTS != 0 {
				o.TSVal = e.cookieTS
			}
		}
	} else {
		w := e.rcvWindow()
		if flags&wire.TCPFlagRST != 0 {
			w = 0
		}
		ws := w >> e.rcvWScale
		if ws > 65535 {
			ws = 65535
		}
		h.Window = uint16(ws)
		if edge := e.rcvNxt + uint32(ws<<e.rcvWScale); seqGT(edge, e.rcvAdv) {
			e.rcvAdv = edge
		}
		if e.tsOK && flags&wire.TCPFlagRST == 0 {
			h.Options.HasTS, h.Options.TSVal, h.Options.TSEcr = true, e.tsNow(now), e.tsRecent
		}
		if e.sackOK && (len(e.ooo) > 0 || e.dsack.on) && flags&wire.TCPFlagACK != 0 {
			e.putDSACK(&h.Options)
			e.putSACK(&h.Options)
		}
	}
	if syn {
		h.Flags |= e.ecnSynFlags(flags&wire.TCPFlagACK == 0)
	} else {
		e.ecnOutput(seg, seq, n)
	}
	if n > 0 {
		seg.Payload[0], seg.Payload[1] = e.snd.slices(int(seq-e.sbSeq), n)
		e.lastDataSent = now
		e.dataSentEvent(now) // a reply: pingpong mode (quickack.go)
	} else {
		seg.Payload[0], seg.Payload[1] = nil, nil
	}
	segs := 1
	if seg.GSOSize = e.gsoSize(n); seg.GSOSize > 0 {
		segs = (n + seg.GSOSize - 1) / seg.GSOSize
	}
	e.p.st.OutSegs.Add(uint64(segs))
	if flags&wire.TCPFlagRST != 0 {
		e.p.st.OutRsts.Add(1)
	}
	e.segsOut += uint32(segs)
	return seg
}

// xmitDone is xmit after the host's Output returned err for seg (nil
// for a segment queued for a flusher): a sent ACK satisfies the ACK
// owed, one refused is tried again.
func (e *Endpoint) xmitDone(seg *Segment, seq uint32, n int, flags uint8, err error, now time.Duration) {
	syn := flags&wire.TCPFlagSYN != 0
	if err != nil {
		e.p.st.OutputErrors.Add(1)
		if err == syscall.ENOBUFS && flags&wire.TCPFlagRST == 0 && e.linkFull() {
			// Sent again on the link's wake-up (room.go).
			e.ackRefused = e.ackRefused || flags&wire.TCPFlagACK != 0
			e.synRefused = e.synRefused || syn
		}
	}
	if flags&wire.TCPFlagACK != 0 {
		if err == nil {
			e.ackSentEvent(e.ackPending > 0 || e.dackAt != 0) // quickack.go
			e.ackPending = 0
			e.ackNow, e.batchAckNow = false, false
			e.dackAt = 0
		} else if (e.ackNow || e.ackPending > 0) && flags&wire.TCPFlagRST == 0 {
			e.dackAt = 0
			e.armDelayedAck(now) // the ACK did not leave: try again later
		}
	}
}

// putSeg gives a segment back to the pool, its references dropped.
func (p *Protocol) putSeg(seg *Segment) {
	seg.Payload[0], seg.Payload[1] = nil, nil
	seg.IPOpts, seg.Ext6, seg.Mark, seg.Dev = nil, nil, 0, 0
	seg.stampSnd = false
	p.segPool.Put(seg)
}

// segMSS is the payload that fits a data segment now: the SACK blocks
// that will ride on it take their room from the MSS, as Linux's
// tcp_current_mss does; otherwise a full segment with SACK blocks would
// exceed the path MTU (EMSGSIZE with DF set).
func (e *Endpoint) segMSS() int {
	nb := len(e.ooo)
	if e.dsack.on {
		nb++
	}
	if !e.sackOK || nb == 0 {
		return e.sndMSS
	}
	limit := 4
	if e.tsOK {
		limit = 3
	}
	k := min(nb, limit)
	return max(e.sndMSS-(4+8*k), 64)
}

// putSACK fills SACK blocks, most recently changed first (RFC 2018 4).
func (e *Endpoint) putSACK(o *wire.TCPOptions) {
	limit := 4
	if o.HasTS {
		limit = 3
	}
	var used [maxOOORanges]bool
	for o.NumSACK < limit {
		best := -1
		for i := range e.ooo {
			if !used[i] && (best < 0 || e.ooo[i].recent > e.ooo[best].recent) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		used[best] = true
		o.SACK[o.NumSACK] = wire.SACKBlock{Left: e.ooo[best].start, Right: e.ooo[best].end}
		o.NumSACK++
	}
}

// sendAck sends a pure ACK. Its sequence number is SND.MAX, the real
// SND.NXT: after an RTO sndNxt is rewound for go-back-N, and the peer
// may already have everything up to SND.MAX, so an ACK numbered sndNxt
// would fall left of its window and be dropped.
func (e *Endpoint) sendAck(now time.Duration) {
	e.xmit(e.sndMax, 0, wire.TCPFlagACK, now)
}

// sendReset aborts the connection on the wire.
func (e *Endpoint) sendReset() {
	switch e.state {
	case StateClosed, StateListen, StateSynSent, StateTimeWait:
		return
	}
	e.xmit(e.sndMax, 0, wire.TCPFlagRST|wire.TCPFlagACK, e.p.now())
}

// sendChallengeAck sends a rate-limited ACK (RFC 5961).
func (e *Endpoint) sendChallengeAck(now time.Duration) {
	e.sendInvalidAck(now, oowChallenge)
}

func (e *Endpoint) sendSYN(now time.Duration, retrans bool) {
	if !retrans {
		e.rttTiming, e.rttStart, e.rttSeq = true, now, e.iss+1
	} else {
		e.rttTiming = false
		e.p.st.SynRetransmits.Add(1)
		e.p.st.RetransSegs.Add(1)
		e.totalRetrans++
	}
	f := wire.TCPFlagSYN
	if e.state == StateSynRcvd {
		f |= wire.TCPFlagACK
	}
	e.xmit(e.iss, 0, f, now)
}

// dataEnd is the sequence number after the last queued byte.
func (e *Endpoint) dataEnd() uint32 { return e.sbSeq + uint32(e.sndLen) }

// finAcked reports whether our FIN has been acknowledged. (The ring
// may still hold acknowledged bytes a queued segment points to:
// flushClamp.)
func (e *Endpoint) finAcked() bool {
	return e.wrShut && e.sndUna == e.dataEnd()+1
}

// releaseAcked lets the send ring go of the bytes before ack, up to
// what queued segments still point to (txdefer.go), and returns how
// many it let go.
func (e *Endpoint) releaseAcked(ack uint32) int {
	if !seqGT(ack, e.sbSeq) {
		return 0
	}
	if e.txDefer {
		ack = e.flushClamp(ack)
	}
	d := min(int(ack-e.sbSeq), e.sndLen)
	if d <= 0 {
		return 0
	}
	e.snd.consume(d)
	e.sndLen -= d
	e.sbSeq += uint32(d)
	if e.sndLen == 0 && !e.ringPinned() {
		// (A writer copying behind sndLen keeps head where its bytes
		// are, sndcopy.go; queued segments keep the ring, txdefer.go.)
		e.snd.head = 0
		e.idleRing(&e.snd)
	}
	return d
}

// sendData transmits n bytes at seq (with FIN if it completes the stream).
func (e *Endpoint) sendData(seq uint32, n int, fin bool, now time.Duration) error {
	f := wire.TCPFlagACK
	if n > 0 && seq+uint32(n) == e.dataEnd() {
		f |= wire.TCPFlagPSH
	}
	if fin {
		f |= wire.TCPFlagFIN
	}
	if seqLT(seq, e.sndMax) {
		e.undoCountRetrans(seq)
		e.p.st.RetransSegs.Add(1)
		e.totalRetrans++
		e.bytesRetrans += uint64(n)
		if e.rttTiming && seqLT(seq, e.rttSeq) {
			e.rttTiming = false // Karn
		}
	} else {
		e.bytesSent += uint64(n)
	}
	if n > 0 {
		e.txStart(now)
		if seqGEQ(seq, e.sndMax) {
			e.rate.onSend(seq+uint32(n), e.sndUna == e.sndMax, now)
		}
		e.paceSent(n, now)
	}
	err := e.xmit(seq, n, f, now)
	if e.sackOK {
		end := seq + uint32(n)
		if fin {
			end++
		}
		e.recordTx(seq, end, now)
		if e.recovery {
			e.rk.prrOut += n
		}
	}
	return err
}

// output sends what the windows, Nagle and the state allow, then a pure
// ACK if one is owed and nothing carried it.
func (e *Endpoint) output(now time.Duration) {
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	case StateFinWait2, StateTimeWait:
		if e.ackNow {
			e.sendAck(now)
		}
		return
	default:
		return
	}
	sent := false
	mss := e.segMSS()
	if e.rk.lostOut > 0 && e.sackOK {
		sent = e.retransmitLost(now)
	}
	inflight := e.inFlight()
	dataEnd := e.dataEnd()
	blocked := false // the peer's window stops us: persist
	appLimited := false
	for {
		if len(e.sb.blocks) > 0 && seqLT(e.sndNxt, e.sndMax) {
			if s, end, _, _ := e.sb.lookup(e.sndNxt); s {
				// A block ending past the data covers the FIN (a Linux
				// receiver SACKs a FIN it queued out of order): it
				// arrived, so the walk ends at SND.MAX, not at the end
				// of the data, where the block would find it again.
				e.sndNxt = end
				continue
			}
		}
		avail := 0
		if seqLT(e.sndNxt, dataEnd) {
			avail = int(dataEnd - e.sndNxt)
		}
		finPending := e.wrShut && e.sndNxt == dataEnd
		if avail == 0 && !finPending {
			appLimited = true
			break
		}
		n := min(avail, e.gsoLimit(mss))
		if len(e.sb.blocks) > 0 && seqLT(e.sndNxt, e.sndMax) {
			if _, _, next, ok := e.sb.lookup(e.sndNxt); ok && int(next-e.sndNxt) < n {
				n = int(next - e.sndNxt)
			}
		}
		if n > mss {
			// A super-segment: whole segments within cwnd and the window,
			// else the one-segment rules below decide.
			wnd := int(int32(e.sndUna + uint32(e.sndWnd) - e.sndNxt))
			if m := gsoFit(n, mss, e.ccs.Cwnd-inflight, wnd); m > 0 {
				n = m
			} else {
				n = mss
			}
		}
		if n > 0 {
			if e.ccs.Cwnd-inflight < n {
				break
			}
			wnd := int(int32(e.sndUna + uint32(e.sndWnd) - e.sndNxt))
			if wnd < n {
				// Sender SWS avoidance: only send into a window that is at
				// least half the largest the peer offered.
				if wnd <= 0 || wnd < e.maxSndWnd/2 {
					blocked = true
					break
				}
				n = wnd
			}
		}
		fin := e.wrShut && n == avail
		if n < mss && n == avail && !fin && seqGEQ(e.sndNxt, e.sndMax) && !e.urgPush() {
			if e.cork {
				e.corkHold(now)
				appLimited = true
				break
			}
			if !e.noDelay && e.smallUnacked() {
				appLimited = true
				break // Nagle: one small segment in flight at a time
			}
		}
		if n > 0 && e.paceWait(now) {
			break
		}
		if err := e.sendData(e.sndNxt, n, fin, now); errors.Is(err, syscall.ENOBUFS) && (inflight > 0 || e.roomWait) {
			// Local congestion (a full device queue): the segment never
			// left, so it stays unsent and out of the flight. With data in
			// flight cwnd shrinks to it (like Linux's CWR on a local drop)
			// and its ACKs resume sending; the link's wake-up (room.go)
			// resumes it too, and is all there is with nothing in flight.
			if seqGEQ(e.sndNxt, e.sndMax) {
				e.bytesSent -= uint64(n)
				e.unrecordTx(e.sndNxt)
			}
			if inflight > 0 {
				e.ccs.Cwnd = max(inflight, 2*mss)
				e.ccs.Ssthresh = min(e.ccs.Ssthresh, e.ccs.Cwnd)
			}
			break
		}
		if !e.rttTiming && seqGEQ(e.sndNxt, e.sndMax) && n > 0 {
			e.rttTiming, e.rttSeq, e.rttStart = true, e.sndNxt+uint32(n), now
		}
		if n < mss && seqGEQ(e.sndNxt, e.sndMax) {
			// New data shorter than a segment, for whatever reason (the
			// end of the data, the window): Nagle's next hold waits for
			// it (Linux's tcp_minshall_update, which retransmissions and
			// probes do not call either).
			e.sndSml = e.sndNxt + uint32(n)
			if fin {
				e.sndSml++
			}
		}
		e.sndNxt += uint32(n)
		if fin {
			e.sndNxt++
		}
		if seqGT(e.sndNxt, e.sndMax) {
			e.sndMax = e.sndNxt
		}
		inflight += n
		sent = true
		if fin {
			break
		}
	}
	if appLimited && inflight < e.ccs.Cwnd && e.rk.lostOut == 0 {
		e.rate.checkAppLimited(inflight)
	}
	if sent {
		if e.rtoAt == 0 {
			e.armRTO(now)
		}
		e.persistAt = 0
		e.notsentWake() // TCP_NOTSENT_LOWAT (tcpopts.go)
	} else if e.ackNow {
		e.sendAck(now)
	}
	if blocked && e.sndUna == e.sndMax && e.persistAt == 0 {
		e.persistAt = now + e.persistInterval()
		e.armTimer(e.persistAt)
	}
}

// smallUnacked reports a short segment of new data sent and not yet
// acknowledged: Nagle holds the next short one only then (Minshall's
// variant, as Linux's tcp_minshall_check), not while full-sized
// segments alone are in flight, so the tail of a write leaves with the
// rest of it and a request's last segment does not wait for a delayed
// ACK. Data in flight is implied: SND.UNA < sndSml <= SND.MAX.
func (e *Endpoint) smallUnacked() bool {
	return seqGT(e.sndSml, e.sndUna) && seqLEQ(e.sndSml, e.sndMax)
}

func (e *Endpoint) persistInterval() time.Duration {
	d := e.rto
	for i := 0; i < e.probes && d < maxRTO; i++ {
		d *= 2
	}
	return min(max(d, minRTO), maxRTO)
}

// --- timers ---

func (e *Endpoint) armRTO(now time.Duration) {
	e.rtoAt = now + e.rto
	e.armTimer(e.rtoAt)
	e.armTLP(now)
}

// armTLP schedules a tail loss probe (RFC 8985 7.2) so that a loss at
// the end of a flight (or of every retransmission in recovery) is found
// by RACK from the probe's ACK instead of by an RTO.
func (e *Endpoint) armTLP(now time.Duration) {
	e.tlpAt = 0
	if !e.sackOK || e.tlpOut || e.srtt == 0 || e.backoff > 0 || e.sndUna == e.sndMax {
		return
	}
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	pto := max(2*e.srtt, minPTO)
	if int(e.sndMax-e.sndUna) < 2*e.sndMSS {
		// Less than two full-sized segments in flight (RFC 8985 7.2 says
		// one segment; Linux one packet): the peer may be delaying its
		// ACK (RFC 5681 4.2 lets it wait for the second full-sized
		// segment; Linux's and sockstack's receivers do not, other
		// stacks may), for as long as any receiver may (WCDelAckT;
		// Linux adds its 200 ms minimum RTO),
		// not this stack's own 40 ms, else the probe races every delayed
		// ACK of a request/response exchange and retransmits what was
		// not lost. A full segment and the short tail of a write, which
		// Nagle lets leave together (Minshall's variant), are such a
		// flight.
		pto += wcDelAckT
	}
	if e.rtoAt == 0 {
		return
	}
	// RFC 8985 7.2: a probe due after the RTO is sent at the RTO's time
	// instead (Linux: the probe timer replaces the RTO timer).
	e.tlpAt = min(now+pto, e.rtoAt)
	e.armTimer(e.tlpAt)
}

// minPTO bounds the probe timeout from below (timer granularity).
const minPTO = 2 * time.Millisecond

// wcDelAckT is the worst-case delayed-ACK time of a receiver (RFC 8985
// 7.2: 200 ms, RFC 5681's bound on an ACK's delay).
const wcDelAckT = 200 * time.Millisecond

// onTLP sends the probe (RFC 8985 7.3). It is a retransmission, not new
// data as the RFC prefers: a receiver like Linux delays its ACK for one
// new in-order segment (40 ms), while a duplicate makes it ACK at once
// (with a D-SACK), which is what a probe is for when the ACKs of the
// tail were lost. Outside recovery the probe is the last unSACKed
// segment; in recovery the first, whose ACK either advances SND.UNA or,
// through RACK, marks the lost retransmissions.
func (e *Endpoint) onTLP(now time.Duration) {
	if e.sndUna == e.sndMax {
		return
	}
	e.tlpOut = true
	e.p.st.TLPProbes.Add(1)
	var r *txRec
	if e.recovery || e.rk.lostOut > 0 {
		for i := 0; i < e.txq.n; i++ {
			if x := e.txq.at(i); x.flags&recSacked == 0 {
				r = x
				break
			}
		}
	} else {
		for i := e.txq.n - 1; i >= 0; i-- {
			if x := e.txq.at(i); x.flags&recSacked == 0 {
				r = x
				break
			}
		}
	}
	dataEnd := e.dataEnd()
	seq, end := e.sndUna, e.sndMax
	if r != nil {
		seq, end = r.start, r.end
	}
	fin := e.wrShut && end == dataEnd+1
	dEnd := seqMin(end, dataEnd)
	n := 0
	if seqLT(seq, dEnd) {
		n = int(dEnd - seq)
	}
	if mss := e.segMSS(); n > mss {
		if !e.recovery {
			seq = dEnd - uint32(mss) // the tail
		}
		n = mss
		fin = fin && seq+uint32(n) == dataEnd
	}
	if n == 0 && !fin {
		return
	}
	e.sendData(seq, n, fin, now)
	e.tlpSent()
	if e.rtoAt != 0 && e.rtoAt <= now {
		// The probe took the RTO's place (armTLP): the RTO follows it by
		// one RTO (RFC 8985 7.3), not at once.
		e.rtoAt = now + e.rto
		e.armTimer(e.rtoAt)
	}
}

// armTimer makes sure the timer fires no later than at. The timer is only
// reset when the deadline moves earlier; a late deadline is found when the
// timer fires and re-arms itself.
func (e *Endpoint) armTimer(at time.Duration) {
	if at == 0 || (e.timerAt != 0 && e.timerAt <= at) {
		return
	}
	e.timerAt = at
	e.p.wheel.arm(&e.timer, at)
}

func (e *Endpoint) stopTimers() {
	e.p.wheel.stop(&e.timer)
	e.p.wheel.stop(&e.dackTimer)
	e.timerAt, e.rtoAt, e.persistAt, e.keepAt, e.closeAt, e.dackAt, e.tlpAt = 0, 0, 0, 0, 0, 0, 0
	e.paceTimerAt, e.paceHeld = 0, false
	e.rk.reoAt = 0
	e.dackArmed = false
}

func (e *Endpoint) onTimer() {
	e.lock()
	now := e.p.now()
	e.timerAt = 0
	if e.state == StateClosed {
		e.unlock()
		return
	}
	if e.closeAt != 0 && now >= e.closeAt {
		e.closeAt = 0
		e.setClosed()
		e.unlock()
		return
	}
	if e.rk.reoAt != 0 && now >= e.rk.reoAt {
		e.rk.reoAt = 0
		e.onReoTimer(now)
	}
	if e.tlpAt != 0 && now >= e.tlpAt && e.state != StateClosed {
		e.tlpAt = 0
		e.onTLP(now)
	}
	if e.rtoAt != 0 && now >= e.rtoAt {
		e.rtoAt = 0
		e.onRTO(now)
	}
	if e.persistAt != 0 && now >= e.persistAt && e.state != StateClosed {
		e.persistAt = 0
		e.onPersist(now)
	}
	if e.paceTimerAt != 0 && now >= e.paceTimerAt && e.state != StateClosed {
		e.paceTimerAt = 0
		e.onPaceTimer(now)
	}
	if e.keepAt != 0 && now >= e.keepAt && e.state != StateClosed {
		e.keepAt = 0
		e.onKeepalive(now)
	}
	if e.state != StateClosed {
		next := time.Duration(math.MaxInt64)
		for _, t := range [...]time.Duration{e.rk.reoAt, e.tlpAt, e.rtoAt, e.persistAt, e.keepAt, e.closeAt, e.paceTimerAt} {
			if t != 0 && t < next {
				next = t
			}
		}
		if next != math.MaxInt64 {
			e.armTimer(next)
		}
	}
	e.unlock()
}

func (e *Endpoint) armDelayedAck(now time.Duration) {
	if e.dackAt == 0 {
		e.dackAt = now + e.delayedAckTimeout()
	}
	if e.dackArmed {
		return
	}
	e.dackArmed = true
	e.p.wheel.arm(&e.dackTimer, e.dackAt)
}

func (e *Endpoint) onDelayedAck() {
	e.lock()
	defer e.unlock()
	e.dackArmed = false
	if e.dackAt == 0 || e.state == StateClosed {
		return
	}
	now := e.p.now()
	if now < e.dackAt {
		e.dackArmed = true
		e.p.wheel.arm(&e.dackTimer, e.dackAt)
		return
	}
	e.p.st.DelayedACKs.Add(1)
	e.delayedAckFired() // quickack.go
	e.ackNow = true
	e.output(now)
}

func (e *Endpoint) onRTO(now time.Duration) {
	switch e.state {
	case StateSynSent, StateSynRcvd:
		expire, resend := e.synTimeout() // TCP_SYNCNT, TCP_DEFER_ACCEPT (tcpopts.go)
		if expire {
			e.p.st.AttemptFails.Add(1)
			e.p.st.AbortOnTimeout.Add(1)
			e.connectErrPending = e.state == StateSynSent
			e.abortLocked(e.timeoutErr())
			return
		}
		e.backoff++
		e.rto = min(e.rto*2, maxRTO)
		if resend {
			e.sendSYN(now, true)
		}
		e.armRTO(now)
		return
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	if e.sndUna == e.sndMax {
		return
	}
	if e.rtoExpired(now) {
		e.p.st.AbortOnTimeout.Add(1)
		e.sendReset()
		e.abortLocked(e.timeoutErr())
		return
	}
	e.p.st.Timeouts.Add(1)
	reduce := e.rtoEpisode(now)
	e.backoff++
	e.rto = min(e.rto*2, maxRTO)
	e.ccs.InFlight = min(e.ccs.Cwnd, e.inFlight())
	e.ccs.MinRTT, e.ccs.SRTT = e.minRTT, e.srtt
	if reduce {
		e.undoMark()
		e.ccAlg().OnRTO(&e.ccs, now)
	}
	e.ccs.Cwnd = e.ccs.MSS
	e.recovery = false
	e.dupAcks = 0
	e.rttTiming = false
	e.sndNxt = e.sndUna
	e.rackClearLost()
	e.rate.forget()
	e.output(now)
	if e.sndNxt == e.sndUna && e.sndUna != e.sndMax {
		// Nothing could be sent (zero window): probe with an old
		// sequence number so that the peer answers with its window.
		e.xmit(e.sndUna-1, 0, wire.TCPFlagACK, now)
	}
	e.armRTO(now)
	e.clampRTO(now)
}

func (e *Endpoint) onPersist(now time.Duration) {
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	if e.sndUna != e.sndMax || !seqLT(e.sndNxt, e.dataEnd()) {
		return // data in flight: the RTO covers it
	}
	wnd := int(int32(e.sndUna + uint32(e.sndWnd) - e.sndNxt))
	if wnd > 0 {
		// A window too small to be worth using: send what fits.
		n := min(wnd, int(e.dataEnd()-e.sndNxt), e.segMSS())
		e.sendData(e.sndNxt, n, false, now)
		e.sndNxt += uint32(n)
		e.sndMax = e.sndNxt
		e.armRTO(now)
		return
	}
	if e.persistGiveUp(now) {
		return
	}
	// Zero window probe: an old sequence number makes the peer answer
	// with its current window (as Linux does).
	e.p.st.ZeroWindowProbes.Add(1)
	e.xmit(e.sndUna-1, 0, wire.TCPFlagACK, now)
	e.probes++
	e.persistAt = now + e.persistInterval()
	e.probeSent(now)
}

func (e *Endpoint) rearmKeepalive() {
	if !e.keepAlive {
		e.keepAt = 0
		return
	}
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateFinWait2, StateClosing, StateLastAck:
	default:
		return
	}
	base := max(e.lastRecv, e.lastDataSent)
	e.keepAt = max(base+e.keepIdle, e.p.now()+time.Millisecond)
	e.armTimer(e.keepAt)
}

func (e *Endpoint) onKeepalive(now time.Duration) {
	if !e.keepAlive {
		return
	}
	if e.sndUna != e.sndMax || e.sndLen > 0 {
		e.kaProbes = 0
		e.keepAt = now + e.keepIdle
		return
	}
	idle := now - e.lastRecv
	if idle < e.keepIdle+time.Duration(e.kaProbes)*e.keepIntvl && e.kaProbes == 0 {
		e.keepAt = e.lastRecv + e.keepIdle
		return
	}
	if e.keepaliveExpired(now) {
		e.p.st.KeepaliveTimeouts.Add(1)
		e.sendReset()
		e.abortLocked(e.timeoutErr())
		return
	}
	e.p.st.KeepaliveProbes.Add(1)
	e.xmit(e.sndUna-1, 0, wire.TCPFlagACK, now)
	e.kaProbes++
	e.keepAt = now + e.keepIntvl
}
