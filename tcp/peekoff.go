package tcp

// PeekAt is a MSG_PEEK read starting off bytes into the readable data
// (SO_PEEK_OFF): EAGAIN while nothing is queued past the offset, end of
// file (0) once the peer's FIN is there. It stops at the urgent mark as
// a read does, and skips an out-of-band urgent byte it starts on
// (Linux's tcp_recvmsg_locked, whose peek offset then moves by the bytes
// copied, not by that hole).
func (e *Endpoint) PeekAt(b []byte, off int) (int, error) { return e.read(b, true, max(off, 0)) }

// readUrgAt is a read or peek while urgent data is pending, starting off
// bytes into the readable data (off > 0 only for a peek), with
// e.rcvLen > off: the
// copy stops before the urgent byte, and an out-of-band urgent byte at
// the start is skipped. ok is false when nothing but that byte was
// there. Offsets count the urgent byte, as Linux's sequence-based
// peek_seq does: it stays in the receive buffer until read past.
func (e *Endpoint) readUrgAt(b []byte, peek bool, off int) (n int, ok bool) {
	start := e.copiedSeq() + uint32(off)
	skip, avail := 0, e.rcvLen-off
	if seqGEQ(e.urg.seq, start) { // a mark at or after the start
		u := int(e.urg.seq - start)
		if u == 0 && !e.urg.inline {
			skip = 1
		} else if u > 0 && u < avail {
			avail = u
		}
	}
	n = min(len(b), avail-skip)
	if n > 0 {
		e.copyRcvAt(b[:n], off+skip)
	}
	if !peek && skip+n > 0 { // a read (off is 0) consumes what it passed
		e.consumeRcv(skip + n)
		if e.urg.state != urgNotYet && seqGT(e.copiedSeq(), e.urg.seq) {
			e.urg.state = urgNone // past the mark
		}
	}
	return n, n > 0 || len(b) == 0
}

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
