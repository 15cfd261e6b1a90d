package tcp

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
	e.p.st.DSACKOldSent.Add(1)
}
