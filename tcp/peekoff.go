package tcp

// PeekAt is a MSG_PEEK read starting off bytes into the readable data
// (SO_PEEK_OFF): EAGAIN while nothing is queued past the offset, end of
// file (0) once the peer's FIN is there. An urgent byte pending out of
// band is not skipped past the offset (Linux's peek stops at it only
// when the read starts there).
func (e *Endpoint) PeekAt(b []byte, off int) (int, error) { return e.read(b, true, max(off, 0)) }

// copyRcvAt copies readable bytes from off on into b: the ring, then the
// lent buffers (lend.go).
func (e *Endpoint) copyRcvAt(b []byte, off int) {
	if off == 0 {
		e.copyRcv(b)
		return
	}
	ring := e.ringReadable()
	if off < ring {
		k := min(len(b), ring-off)
		e.rcv.copyOut(b[:k], off)
		b = b[k:]
		off = 0
	} else {
		off -= ring
	}
	if len(b) == 0 || e.lentQ == nil {
		return
	}
	q := e.lentQ
	for _, c := range q.q[q.head:] {
		if len(b) == 0 {
			return
		}
		if off >= len(c.data) {
			off -= len(c.data)
			continue
		}
		b = b[copy(b, c.data[off:]):]
		off = 0
	}
}
