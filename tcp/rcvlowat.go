package tcp

import (
	"math"

	"github.com/sockstack/sockstack/waiter"
)

// SetRcvLowat is SO_RCVLOWAT on a TCP socket, as Linux's
// tcp_set_rcvlowat: a negative value means INT_MAX, 0 means 1, and the
// value is capped at half the receive buffer the user set (SO_RCVBUF),
// or else at half the largest one auto-tuning reaches (MaxRecvBuf, the
// tcp_rmem[2] analogue). Without SO_RCVBUF the buffer grows so that the
// window can hold that many bytes: otherwise a reader waiting for them
// could wait forever. It returns the value kept (what getsockopt reads)
// and wakes waiters if the socket is readable under the new mark.
func (e *Endpoint) SetRcvLowat(v int) int {
	if v < 0 {
		v = math.MaxInt32
	}
	e.lock()
	limit := e.p.cfg.MaxRecvBuf / 2
	if e.userRcvBuf > 0 {
		limit = e.userRcvBuf / 2
	}
	v = max(min(v, limit, math.MaxInt32), 1)
	e.rcvLowat = int32(v - 1)
	if e.userRcvBuf == 0 && v > e.rcvCap {
		e.rcvCap = v
	}
	ready := e.readinessLocked()&waiter.EventIn != 0
	e.unlock()
	if ready {
		e.notify(waiter.EventIn)
	}
	return v
}

// RcvLowat is SO_RCVLOWAT (1 unless set).
func (e *Endpoint) RcvLowat() int {
	e.lock()
	defer e.unlock()
	return int(e.rcvLowat) + 1
}

// rcvReadable says the received bytes make the socket readable (EPOLLIN),
// as Linux's tcp_epollin_ready: some bytes and at least SO_RCVLOWAT of
// them, or fewer when waiting for more cannot work: the receive buffer
// is more than 7/8 full or under memory pressure, or the window left is
// at most one (small) segment. An out-of-band urgent byte at the head does not
// count (tcp_poll's target++). Called with e.mu held.
func (e *Endpoint) rcvReadable() bool {
	avail := e.rcvLen - e.urgHidden()
	if avail <= 0 {
		return false
	}
	if avail > int(e.rcvLowat) { // avail >= the mark
		return true
	}
	if e.rcvLen > e.rcvCap-e.rcvCap>>3 || e.p.memPressure() {
		return true
	}
	// Linux's estimate of the peer's segment size (icsk_ack.rcv_mss)
	// starts at 536 and grows with the segments it sees; rcvMSS starts
	// at the full MSS, so on loopback (65483) the 64 KiB window of the
	// handshake would count as closed. 536 then: a full buffer is caught
	// by the 7/8 rule above. (docs/DECISIONS.md)
	wnd := int(int32(e.rcvAdv - e.rcvNxt))
	return wnd <= min(int(e.rcvMSS), defaultMSS)
}
