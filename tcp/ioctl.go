package tcp

import "syscall"

// InQ is ioctl(SIOCINQ) (FIONREAD) on a TCP socket, as Linux's tcp_inq:
// the bytes a read would return now; while an urgent byte waits out of
// band ahead, only those before it. A listener fails with EINVAL; a
// connection still in its handshake has none.
func (e *Endpoint) InQ() (int, error) {
	e.lock()
	defer e.unlock()
	if none, err := e.noQueues(); none {
		return 0, err
	}
	if e.urg.state != urgNone && !e.urg.inline && e.rcvLen > 0 {
		copied := e.copiedSeq()
		if seqGEQ(e.urg.seq, copied) && seqLT(e.urg.seq, copied+uint32(e.rcvLen)) {
			return int(e.urg.seq - copied), nil
		}
	}
	return e.rcvLen, nil
}

// OutQ is ioctl(SIOCOUTQ) (TIOCOUTQ): the bytes written and not yet
// acknowledged, the FIN counted as Linux's write_seq counts it.
// OutQNSD is ioctl(SIOCOUTQNSD): those not yet sent at all. Both fail
// with EINVAL on a listener and are 0 during the handshake.
func (e *Endpoint) OutQ() (int, error) { return e.outQ(false) }

// OutQNSD: see OutQ.
func (e *Endpoint) OutQNSD() (int, error) { return e.outQ(true) }

func (e *Endpoint) outQ(notSent bool) (int, error) {
	e.lock()
	defer e.unlock()
	if none, err := e.noQueues(); none {
		return 0, err
	}
	if !e.everConnected {
		return 0, nil
	}
	end := e.dataEnd()
	if e.wrShut {
		end++ // the FIN takes a sequence number
	}
	from := e.sndUna
	if notSent {
		from = e.sndNxt
		if seqGT(e.sndMax, from) {
			from = e.sndMax
		}
	}
	if seqLEQ(end, from) {
		return 0, nil
	}
	return int(end - from), nil
}

// noQueues says the queue ioctls have no count to give: EINVAL on a
// listener, 0 during the handshake (Linux's tcp_ioctl). Call locked.
func (e *Endpoint) noQueues() (bool, error) {
	switch e.state {
	case StateListen:
		return true, syscall.EINVAL
	case StateSynSent, StateSynRcvd:
		return true, nil
	}
	return false, nil
}
