package tcp

import (
	"math/bits"
	"sync"
	"time"
	"unsafe"
)

// RACK-TLP loss detection (RFC 8985) over a queue of transmission
// records, with SACK scoreboard bookkeeping (RFC 6675) and proportional
// rate reduction (RFC 6937) in recovery.

// txRec is one transmitted segment (or FIN) that is not yet cumulatively
// acknowledged: its sequence range and when it (last) left.
type txRec struct {
	start, end uint32
	xmit       time.Duration
	flags      uint8
}

const (
	recRetrans uint8 = 1 << iota // sent more than once
	recLost                      // marked lost, not retransmitted since
	recSacked                    // fully SACKed
)

// txQueue is a ring of records in sequence order.
type txQueue struct {
	r    []txRec // len is 0 or a power of two
	head int
	n    int
}

const txQueueMin = 16

// txPools recycle record arrays by size (txQueueMin << class): a
// connection whose flight empties gives its array back, so idle
// connections hold none, and a flight that grows again takes arrays from
// here instead of allocating them (0 allocations per segment in steady
// state). A pool holds a pointer to an array's first element (putting a
// slice into an interface would allocate); the class says its length.
var txPools [txClasses]sync.Pool

const txClasses = 11 // up to 16 Ki records

func txClass(n int) int { return bits.TrailingZeros(uint(n / txQueueMin)) }

func getTxArray(n int) []txRec {
	if c := txClass(n); c < txClasses {
		if p, ok := txPools[c].Get().(*txRec); ok {
			return unsafe.Slice(p, n)
		}
	}
	return make([]txRec, n)
}

func putTxArray(r []txRec) {
	if c := txClass(len(r)); c < txClasses {
		txPools[c].Put(&r[0])
	}
}

func (q *txQueue) at(i int) *txRec { return &q.r[(q.head+i)&(len(q.r)-1)] }

func (q *txQueue) last() *txRec {
	if q.n == 0 {
		return nil
	}
	return q.at(q.n - 1)
}

func (q *txQueue) push(rec txRec) {
	if q.n == len(q.r) {
		q.grow()
	}
	*q.at(q.n) = rec
	q.n++
}

func (q *txQueue) grow() {
	nr := getTxArray(max(txQueueMin, 2*len(q.r)))
	for i := 0; i < q.n; i++ {
		nr[i] = *q.at(i)
	}
	q.putBack()
	q.r, q.head = nr, 0
}

func (q *txQueue) putBack() {
	if len(q.r) > 0 {
		putTxArray(q.r)
	}
	q.r = nil
}

// release empties the queue and frees its array.
func (q *txQueue) release() {
	q.putBack()
	q.head, q.n = 0, 0
}

func (q *txQueue) popFront() {
	q.head = (q.head + 1) & (len(q.r) - 1)
	q.n--
}

// insert puts rec at index i, moving the later records up.
func (q *txQueue) insert(i int, rec txRec) {
	q.push(rec)
	for j := q.n - 1; j > i; j-- {
		*q.at(j) = *q.at(j - 1)
	}
	*q.at(i) = rec
}

// split cuts record i at seq (inside it) into two with the same state.
func (q *txQueue) split(i int, seq uint32) {
	r := *q.at(i)
	q.at(i).end = seq
	r.start = seq
	q.insert(i+1, r)
}

// search returns the index of the first record ending after seq.
func (q *txQueue) search(seq uint32) int {
	lo, hi := 0, q.n
	for lo < hi {
		m := (lo + hi) / 2
		if seqGT(q.at(m).end, seq) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// rackState is the RACK sender state.
type rackState struct {
	xmit       time.Duration // send time of the most recently sent delivered segment
	endSeq     uint32
	rtt        time.Duration // RTT of that segment
	fack       uint32        // highest delivered sequence
	dsackRound uint32
	dsackOn    bool
	reord      bool // reordering was seen
	reoMult    uint8
	recovs     uint8         // recoveries since reoMult grew
	reoAt      time.Duration // reordering timer
	lostOut    int           // bytes in records marked lost and not resent
	// PRR (RFC 6937).
	prrDelivered, prrOut, recoverFS int
}

// recordTx notes a transmission of [seq, end) at now.
func (e *Endpoint) recordTx(seq, end uint32, now time.Duration) {
	if seqGEQ(seq, e.sndMax) {
		if l := e.txq.last(); l != nil && seqLT(seq, l.end) {
			return // cannot happen; keep the queue sorted
		}
		e.txq.push(txRec{start: seq, end: end, xmit: now})
		return
	}
	for i := e.txq.search(seq); i < e.txq.n; i++ {
		r := e.txq.at(i)
		if !seqLT(r.start, end) {
			break
		}
		if r.flags&recLost != 0 {
			e.rk.lostOut -= int(r.end - r.start)
		}
		r.flags = (r.flags | recRetrans) &^ recLost
		r.xmit = now
	}
	if seqGT(end, e.sndMax) {
		// A retransmission that carries new data too (a FIN, or a
		// segment merged across SND.MAX): record the new part.
		e.txq.push(txRec{start: e.sndMax, end: end, xmit: now})
	}
}

// unrecordTx forgets a transmission that never left (a local drop).
func (e *Endpoint) unrecordTx(seq uint32) {
	if l := e.txq.last(); l != nil && l.start == seq {
		e.txq.n--
	}
}

// rackDelivered updates RACK for a record newly acknowledged or SACKed
// (RFC 8985 6.2 steps 1-3).
func (e *Endpoint) rackDelivered(r *txRec, tsecr uint32, hasTS bool, now time.Duration) {
	rtt := now - r.xmit
	if r.flags&recRetrans != 0 {
		// Ambiguous: the ACK may be for the original transmission.
		if hasTS && seqLT(tsecr, e.tsNow(r.xmit)) {
			return
		}
		if rtt < e.minRTT {
			return
		}
	}
	first := e.rk.xmit == 0
	if first || r.xmit > e.rk.xmit || (r.xmit == e.rk.xmit && seqGT(r.end, e.rk.endSeq)) {
		// The RTT goes with the send time (RFC 8985 walks the delivered
		// segments in send order, Linux's tcp_rack_advance likewise):
		// records come here in sequence order, and an older original
		// delivered after a retransmission must not lend its longer RTT
		// to the retransmission's send time.
		e.rk.xmit, e.rk.endSeq, e.rk.rtt = r.xmit, r.end, rtt
	}
	if first || seqGT(r.end, e.rk.fack) {
		e.rk.fack = r.end
	} else if r.flags&recRetrans == 0 {
		e.rk.reord = true
	}
}

// rackAcked pops the records below ack.
func (e *Endpoint) rackAcked(ack uint32, tsecr uint32, hasTS bool, now time.Duration) {
	for e.txq.n > 0 {
		r := e.txq.at(0)
		if seqLEQ(r.end, ack) {
			if r.flags&recSacked == 0 {
				e.rackDelivered(r, tsecr, hasTS, now)
			}
			if r.flags&recLost != 0 {
				e.rk.lostOut -= int(r.end - r.start)
			}
			e.txq.popFront()
			continue
		}
		if seqGT(ack, r.start) {
			if r.flags&recLost != 0 {
				e.rk.lostOut -= int(ack - r.start)
			}
			r.start = ack
		}
		break
	}
	if e.txq.n == 0 {
		e.txq.release()
		e.rk.lostOut = 0
	}
}

// rackSacked marks the records the scoreboard now covers within the
// block [a, b). A record covered in part is split at the block's edges
// and its covered part marked (Linux fragments the skb likewise): a
// receiver may SACK a record's data but not the FIN it carries, or part
// of a super-segment, and RACK must see that delivery, else a hole
// before the last record is found only by the retransmission timer.
func (e *Endpoint) rackSacked(a, b uint32, tsecr uint32, hasTS bool, now time.Duration) {
	for i := e.txq.search(a); i < e.txq.n; i++ {
		r := e.txq.at(i)
		if !seqLT(r.start, b) {
			break
		}
		if r.flags&recSacked != 0 {
			continue
		}
		s, end, next, ok := e.sb.lookup(r.start)
		if !s {
			if ok && seqLT(next, r.end) && seqLT(next, b) {
				e.txq.split(i, next) // the covered rest is looked at next
			}
			continue
		}
		if seqLT(end, r.end) {
			e.txq.split(i, end)
			r = e.txq.at(i)
		}
		r.flags |= recSacked
		if r.flags&recLost != 0 {
			r.flags &^= recLost
			e.rk.lostOut -= int(r.end - r.start)
		}
		e.rackDelivered(r, tsecr, hasTS, now)
	}
}

// reoWnd is RFC 8985 6.2 step 4.
func (e *Endpoint) reoWnd() time.Duration {
	if !e.rk.reord {
		if e.recovery || e.sb.sacked >= 3*e.sndMSS {
			return 0
		}
	}
	w := time.Duration(max(e.rk.reoMult, 1)) * e.minRTT / 4
	if e.srtt > 0 {
		w = min(w, e.srtt)
	}
	return w
}

// rackDetect marks lost every record sent before the most recently
// delivered one by more than the reordering window (RFC 8985 6.2 step
// 5) and arms the reordering timer for the rest. It reports whether it
// marked anything.
func (e *Endpoint) rackDetect(now time.Duration) bool {
	if e.rk.xmit == 0 || !e.sackOK {
		return false
	}
	reo := e.reoWnd()
	var timeout time.Duration
	marked := false
	for i := 0; i < e.txq.n; i++ {
		r := e.txq.at(i)
		if !seqLT(r.start, e.sndNxt) {
			break // at or above SND.NXT: resent by go-back-N anyway
		}
		if r.flags&(recSacked|recLost) != 0 {
			continue
		}
		if r.xmit > e.rk.xmit || (r.xmit == e.rk.xmit && seqGT(r.end, e.rk.endSeq)) {
			if r.flags&recRetrans == 0 {
				break // originals are in time order: all later ones are newer
			}
			continue
		}
		left := r.xmit + e.rk.rtt + reo - now
		if left <= 0 {
			if r.flags&recRetrans != 0 {
				e.p.st.LostRetransmit.Add(1)
			}
			r.flags |= recLost
			e.rk.lostOut += int(r.end - r.start)
			marked = true
		} else {
			timeout = max(timeout, left)
		}
	}
	e.rk.reoAt = 0
	if timeout > 0 {
		e.rk.reoAt = now + timeout
		e.armTimer(e.rk.reoAt)
	}
	return marked
}

// onReoTimer runs loss detection when the reordering window expired.
func (e *Endpoint) onReoTimer(now time.Duration) {
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	e.p.st.RACKReoTimeouts.Add(1)
	if e.rackDetect(now) {
		if !e.recovery {
			e.enterRecovery(now)
		}
		e.prrUpdate(0)
		e.output(now)
	}
}

// rackDSACK widens the reordering window after a D-SACK, once per round
// trip (RFC 8985 6.2 step 4). It does not count as reordering seen: a
// duplicate also comes from a tail probe or a retransmission that raced
// its original, and taking it for reordering would keep the window open
// in recovery for good (RFC 8985 and Linux set reordering seen only
// when an original is delivered below the highest delivered sequence).
func (e *Endpoint) rackDSACK() {
	if e.rk.dsackOn && seqGEQ(e.sndUna, e.rk.dsackRound) {
		e.rk.dsackOn = false
	}
	if !e.rk.dsackOn {
		e.rk.dsackOn = true
		e.rk.dsackRound = e.sndMax
		e.rk.reoMult = min(max(e.rk.reoMult, 1)+1, 64)
		e.rk.recovs = 0
	}
}

// prrUpdate sets cwnd for one ACK in recovery (RFC 6937): the flight
// shrinks towards ssthresh in proportion to what was delivered.
func (e *Endpoint) prrUpdate(delivered int) {
	if !e.recovery || !e.sackOK {
		return
	}
	if _, ok := e.cc.(ccRater); ok {
		return // BBR sets cwnd in recovery itself
	}
	e.rk.prrDelivered += delivered
	pipe := e.inFlight()
	ss := e.ccs.Ssthresh
	var snd int
	if pipe > ss {
		fs := max(e.rk.recoverFS, 1)
		snd = int((int64(e.rk.prrDelivered)*int64(ss)+int64(fs)-1)/int64(fs)) - e.rk.prrOut
	} else {
		// Slow start reduction bound: catch up to ssthresh, at most one
		// MSS beyond what was delivered.
		snd = min(ss-pipe, max(e.rk.prrDelivered-e.rk.prrOut, delivered)+e.sndMSS)
	}
	snd = max(snd, 0)
	if e.rk.prrOut == 0 && snd < e.sndMSS && e.rk.lostOut > 0 {
		snd = e.sndMSS // the fast retransmit always goes out
	}
	e.ccs.Cwnd = pipe + snd
}

// retransmitLost resends records marked lost, oldest sequence first, as
// cwnd allows. It reports whether it sent anything.
func (e *Endpoint) retransmitLost(now time.Duration) bool {
	sent := false
	pipe := e.inFlight()
	for i := 0; i < e.txq.n && e.rk.lostOut > 0; i++ {
		r := e.txq.at(i)
		if !seqLT(r.start, e.sndNxt) {
			break
		}
		if r.flags&recLost == 0 {
			continue
		}
		// Send only what the scoreboard lacks, one segment per record.
		a := r.start
		for {
			s, end, _, _ := e.sb.lookup(a)
			if !s {
				break
			}
			a = end
		}
		if !seqLT(a, r.end) {
			// Fully covered after all.
			r.flags = (r.flags | recSacked) &^ recLost
			e.rk.lostOut -= int(r.end - r.start)
			continue
		}
		if a != r.start {
			// The front is SACKed: it becomes its own record.
			e.txq.split(i, a)
			r = e.txq.at(i)
			e.rk.lostOut -= int(r.end - r.start)
			r.flags = (r.flags | recSacked) &^ recLost
			i++
			r = e.txq.at(i)
		}
		dataEnd := e.dataEnd()
		fin := e.wrShut && r.end == dataEnd+1
		dEnd := seqMin(r.end, dataEnd)
		n := 0
		if seqLT(a, dEnd) {
			n = int(dEnd - a)
		}
		mss := e.segMSS()
		if _, _, next, ok := e.sb.lookup(a); ok && seqLT(next, a+uint32(n)) {
			n = int(next - a)
			fin = false
		}
		if n > mss {
			n = mss
			fin = false
		}
		if n == 0 && !fin {
			continue
		}
		if e.ccs.Cwnd-pipe < max(n, 1) && (sent || pipe > 0) {
			break
		}
		end := a + uint32(n)
		if fin {
			end++
		}
		if end != r.end {
			e.txq.split(i, end) // the rest stays marked lost
		}
		e.p.st.SACKRetrans.Add(1)
		e.sendData(a, n, fin, now)
		pipe += n
		sent = true
	}
	return sent
}

// rackClearLost forgets the loss marks when everything from SND.UNA is
// about to be resent anyway (RTO, path MTU drop).
func (e *Endpoint) rackClearLost() {
	for i := 0; i < e.txq.n; i++ {
		e.txq.at(i).flags &^= recLost
	}
	e.rk.lostOut = 0
	e.rk.reoAt = 0
}

// rackReset drops the flight records of a connection that ended.
func (e *Endpoint) rackReset() {
	e.txq.release()
	e.rk = rackState{}
}
