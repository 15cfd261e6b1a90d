package tcp

import "github.com/sockstack/sockstack/wire"

// dsackState is a D-SACK block (RFC 2883) owed on the next ACK.
type dsackState struct {
	on         bool
	start, end uint32
}

// dsackOld records that [a,b), below RCV.NXT, arrived again.
func (e *Endpoint) dsackOld(a, b uint32) {
	if !e.sackOK || !seqLT(a, b) {
		return
	}
	e.dsack = dsackState{true, a, b}
	e.ackNow = true // a retransmission: tell the sender at once
	e.p.st.DSACKOldSent.Add(1)
}

// dsackOOO records a D-SACK for the part of [a,b) that repeats data
// already held out of order (the first overlap, as Linux reports it).
func (e *Endpoint) dsackOOO(a, b uint32) {
	if !e.sackOK {
		return
	}
	for _, r := range e.ooo {
		l, h := seqMax(a, r.start), seqMin(b, r.end)
		if seqLT(l, h) {
			e.dsack = dsackState{true, l, h}
			e.p.st.DSACKOfoSent.Add(1)
			return
		}
	}
}

// putDSACK puts the owed D-SACK block first in o (RFC 2883 4: the first
// block reports the duplicate), once.
func (e *Endpoint) putDSACK(o *wire.TCPOptions) {
	if !e.dsack.on {
		return
	}
	e.dsack.on = false
	o.SACK[0] = wire.SACKBlock{Left: e.dsack.start, Right: e.dsack.end}
	o.NumSACK = 1
}

// undoState lets D-SACKs undo the congestion response to a loss episode
// whose retransmissions all turn out to have been unnecessary (RFC 3708
// spirit, like Linux's undo_marker / undo_retrans): the peer reports,
// with a D-SACK, every retransmitted segment that it already had.
type undoState struct {
	on             bool
	lo, hi         uint32 // the sequence range in flight when the episode began
	retrans        int    // retransmissions not yet reported as duplicates
	cwnd, ssthresh int    // before the reduction
}

// undoMark starts a loss episode (before cwnd is reduced).
func (e *Endpoint) undoMark() {
	if e.undo == nil {
		// Most connections never lose a segment: the record is made at
		// the first loss episode and kept.
		e.undo = new(undoState)
	} else if e.undo.on && seqLT(e.sndUna, e.undo.hi) {
		return // the same episode: keep the first prior values
	}
	*e.undo = undoState{on: true, lo: e.sndUna, hi: e.sndMax, cwnd: e.ccs.Cwnd, ssthresh: e.ccs.Ssthresh}
}

// undoCountRetrans counts a retransmission sent in the episode.
func (e *Endpoint) undoCountRetrans(seq uint32) {
	if e.undo != nil && e.undo.on && seqGEQ(seq, e.undo.lo) && seqLT(seq, e.undo.hi) {
		e.undo.retrans++
	}
}

// undoDSACK takes a D-SACK block [a,b); when every retransmission of the
// episode has been reported as a duplicate, cwnd and ssthresh go back to
// what they were (Linux: TCPDSACKUndo).
func (e *Endpoint) undoDSACK(a, b uint32) {
	u := e.undo
	if u == nil || !u.on || !seqLT(a, b) || seqLT(a, u.lo) || seqGT(b, u.hi) || u.retrans == 0 {
		return
	}
	mss := max(e.sndMSS, 1)
	u.retrans -= max((int(b-a)+mss-1)/mss, 1)
	if u.retrans > 0 {
		return
	}
	if c, ok := e.ccAlg().(ccUndoer); ok {
		c.OnUndo(&e.ccs, u.cwnd, u.ssthresh)
	} else {
		e.ccs.Cwnd = max(e.ccs.Cwnd, u.cwnd)
		e.ccs.Ssthresh = max(e.ccs.Ssthresh, u.ssthresh)
	}
	*u = undoState{}
	e.p.st.DSACKUndo.Add(1)
}
