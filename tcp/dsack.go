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
