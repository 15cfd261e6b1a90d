package tcp

import (
	"syscall"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Urgent data as Linux does it (BSD semantics, RFC 6093): the urgent
// pointer points to the byte after the urgent byte; the receiver takes
// that one byte out of the stream (unless SO_OOBINLINE), for recv with
// MSG_OOB, and a read stops at the mark so that SIOCATMARK can tell the
// application when it is there.

// Receive-side states of the urgent byte (Linux's urg_data).
const (
	urgNone   uint8 = iota
	urgNotYet       // announced by a pointer, not yet arrived
	urgValid        // arrived, not read with MSG_OOB
	urgRead         // read with MSG_OOB (still skipped in the stream)
)

// urgState is the urgent data of a connection.
type urgState struct {
	state  uint8
	b      byte   // the urgent byte, once valid
	inline bool   // SO_OOBINLINE
	sndOn  bool   // urgent mode: sndUp not yet acknowledged
	seq    uint32 // sequence number of the urgent byte
	sndUp  uint32 // our urgent pointer: the byte after our urgent byte
}

// copiedSeq is the sequence number of the next byte the application
// reads (RCV.NXT less unread data, less a received FIN).
func (e *Endpoint) copiedSeq() uint32 {
	c := e.rcvNxt - uint32(e.rcvLen)
	if e.finRcvd {
		c--
	}
	return c
}

// urgCheck takes the urgent pointer of a segment with URG (Linux's
// tcp_check_urg) before its data is queued.
func (e *Endpoint) urgCheck(s *segment) {
	if !s.has(wire.TCPFlagURG) || s.urg == 0 {
		return
	}
	switch e.state {
	case StateEstablished, StateFinWait1, StateFinWait2:
	default:
		return
	}
	e.flattenLent() // urgent data is handled in the ring (lend.go)
	ptr := s.seq + uint32(s.urg) - 1
	copied := e.copiedSeq()
	if seqGT(copied, ptr) || seqLT(ptr, e.rcvNxt) {
		return // already read past, or a pointer into data we have: stale
	}
	if e.urg.state != urgNone && !seqGT(ptr, e.urg.seq) {
		return // the same urgent byte
	}
	// A new mark replaces an old urgent byte the reader is sitting on:
	// that byte is dropped from the stream, as Linux does.
	if e.urg.state != urgNone && e.urg.seq == copied && !e.urg.inline && e.rcvLen > 0 {
		e.rcv.consume(1)
		e.rcvLen--
	}
	e.urg.state, e.urg.seq = urgNotYet, ptr
}

// urgCapture records the urgent byte once it has arrived in order.
func (e *Endpoint) urgCapture() {
	if e.urg.state != urgNotYet {
		return
	}
	off := int(e.urg.seq - e.copiedSeq())
	if off < 0 || off >= e.rcvLen {
		return
	}
	var b [1]byte
	e.rcv.copyOut(b[:], off)
	e.urg.b, e.urg.state = b[0], urgValid
	e.notify(waiter.EventPri | waiter.EventIn)
}

// urgHidden is 1 when the next unread byte is the urgent byte and it is
// out of the stream: it does not make the socket readable.
func (e *Endpoint) urgHidden() int {
	if e.urg.state != urgNone && !e.urg.inline && e.rcvLen > 0 && e.urg.seq == e.copiedSeq() {
		return 1
	}
	return 0
}

// urgReady adds EventPri while an urgent byte waits for MSG_OOB.
func (e *Endpoint) urgReady() waiter.EventMask {
	if e.urg.state == urgValid { // Linux sets POLLPRI with SO_OOBINLINE too
		return waiter.EventPri
	}
	return 0
}

// RecvOOB is recv with MSG_OOB (Linux's tcp_recv_urg): it returns the
// urgent byte, never blocking. trunc is set when b is empty.
func (e *Endpoint) RecvOOB(b []byte, peek bool) (n int, trunc bool, err error) {
	e.lock()
	defer e.unlock()
	if e.state == StateListen {
		return 0, false, syscall.ENOTCONN
	}
	if e.urg.inline || e.urg.state == urgNone || e.urg.state == urgRead {
		return 0, false, syscall.EINVAL
	}
	if e.state == StateClosed && !e.everConnected {
		return 0, false, syscall.ENOTCONN
	}
	if e.urg.state == urgValid {
		if !peek {
			e.urg.state = urgRead
		}
		if len(b) == 0 {
			return 0, true, nil
		}
		b[0] = e.urg.b
		return 1, false, nil
	}
	if e.state == StateClosed || e.rdShut || e.finRcvd {
		return 0, false, nil
	}
	return 0, false, syscall.EAGAIN
}

// AtMark is SIOCATMARK: whether the next byte read is at the urgent mark.
func (e *Endpoint) AtMark() (bool, error) {
	e.lock()
	defer e.unlock()
	return e.urg.state != urgNone && e.urg.seq == e.copiedSeq(), nil
}

// SetOOBInline is SO_OOBINLINE: urgent bytes stay in the stream.
func (e *Endpoint) SetOOBInline(v bool) {
	e.lock()
	e.urg.inline = v
	e.unlock()
}

// WriteOOB is send with MSG_OOB: the last byte written is urgent, and
// the urgent pointer is the sequence number after it.
func (e *Endpoint) WriteOOB(b []byte) (int, error) { return e.write(b, true) }

// urgMarkSend enters urgent mode after an MSG_OOB write (Linux's
// tcp_mark_urg).
func (e *Endpoint) urgMarkSend() {
	e.urg.sndUp = e.sbSeq + uint32(e.sndLen)
	e.urg.sndOn = true
}

// urgPush reports urgent mode, in which Nagle and cork do not hold data.
func (e *Endpoint) urgPush() bool {
	if e.urg.sndOn && seqGEQ(e.sndUna, e.urg.sndUp) {
		e.urg.sndOn = false
	}
	return e.urg.sndOn
}

// urgPut sets URG and the urgent pointer on a segment starting at seq
// while the urgent byte is not yet acknowledged (tcp_transmit_skb).
func (e *Endpoint) urgPut(h *wire.TCPHeader, seq uint32) {
	if !e.urgPush() || h.Flags&(wire.TCPFlagSYN|wire.TCPFlagRST) != 0 || !seqLT(seq, e.urg.sndUp) {
		return
	}
	if d := e.urg.sndUp - seq; d < 0x10000 {
		h.Urgent = uint16(d)
		h.Flags |= wire.TCPFlagURG
	} else if seqGT(seq+0xffff, e.sndNxt) {
		h.Urgent = 0xffff
		h.Flags |= wire.TCPFlagURG
	}
}
