package socket

// TCP-level options beyond the basic ones (Linux's numbers), implemented
// in tcp/tcpopts.go.
const (
	TCP_SYNCNT           = 7  // SYN (listener: SYN-ACK) retransmissions, 1..127
	TCP_LINGER2          = 8  // orphaned FIN_WAIT2 lifetime, seconds; -1 none
	TCP_DEFER_ACCEPT     = 9  // seconds a listener waits for data before accept
	TCP_WINDOW_CLAMP     = 10 // bound on the advertised receive window
	TCP_QUICKACK         = 12 // 1: leave delayed-ACK mode, ACK now
	TCP_FASTOPEN         = 23 // a listener's Fast Open queue (kept, no cookies)
	TCP_NOTSENT_LOWAT    = 25 // bound on unsent bytes for write and poll
	TCP_FASTOPEN_CONNECT = 30 // kept; connect does an ordinary handshake
	TCP_INQ              = 36 // recvmsg reports the unread bytes (TCP_CM_INQ)
	TCP_CM_INQ           = TCP_INQ
)

// setTCPOpt sets the options above; ok false: not one of them.
func (t *tcpEP) setTCPOpt(name, i int) (ok bool, err error) {
	e := t.ep
	switch name {
	case TCP_QUICKACK:
		e.SetQuickAck(i)
	case TCP_SYNCNT:
		err = e.SetSynCount(i)
	case TCP_LINGER2:
		e.SetLinger2(i)
	case TCP_DEFER_ACCEPT:
		e.SetDeferAccept(i)
	case TCP_WINDOW_CLAMP:
		err = e.SetWindowClamp(i)
	case TCP_NOTSENT_LOWAT:
		e.SetNotsentLowat(i)
	case TCP_INQ:
		err = e.SetInq(i)
	case TCP_FASTOPEN:
		err = e.SetFastOpen(i)
	case TCP_FASTOPEN_CONNECT:
		err = e.SetFastOpenConnect(i)
	default:
		return false, nil
	}
	return true, err
}

// getTCPOpt reads them.
func (t *tcpEP) getTCPOpt(name int) (v int, ok bool) {
	e := t.ep
	switch name {
	case TCP_QUICKACK:
		return b2i(e.QuickAck()), true
	case TCP_SYNCNT:
		return e.SynCount(), true
	case TCP_LINGER2:
		return e.Linger2(), true
	case TCP_DEFER_ACCEPT:
		return e.DeferAccept(), true
	case TCP_WINDOW_CLAMP:
		return e.WindowClamp(), true
	case TCP_NOTSENT_LOWAT:
		return e.NotsentLowat(), true
	case TCP_INQ:
		return b2i(e.Inq()), true
	case TCP_FASTOPEN:
		return e.FastOpen(), true
	case TCP_FASTOPEN_CONNECT:
		return b2i(e.FastOpenConnect()), true
	}
	return 0, false
}

// recvTCPControl is recvmsg on a TCP socket: the data, and under TCP_INQ
// a TCP_CM_INQ message with the bytes left to read after this one (the
// FIN counted, tcp.Endpoint.InqHint), on every read that did not fail,
// as Linux's tcp_recvmsg.
func (s *Socket) recvTCPControl(t *tcpEP, p, oob []byte, flags int) (n, oobn, rflags int, from Sockaddr, err error) {
	n, rflags, from, err = s.RecvMsg(p, flags)
	if err != nil {
		return n, 0, rflags, from, err
	}
	w := cmsgWriter{b: oob}
	t.putRxStamps(&w, n) // tcpstamp.go: before TCP_CM_INQ, as tcp_recvmsg
	if t.ep.Inq() {
		w.putInt(SOL_TCP, TCP_CM_INQ, int32(t.ep.InqHint()))
	}
	if w.trunc {
		rflags |= MSG_CTRUNC
	}
	return n, w.n, rflags, from, nil
}
