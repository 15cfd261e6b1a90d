package socket

// Receive timestamps on AF_UNIX sockets, as Linux gives them (checked
// by the conformance cases `unixstamp/`): a datagram or seqpacket
// message is stamped when it is sent if the receiver has SO_TIMESTAMP,
// SO_TIMESTAMPNS or their _NEW forms on then (unix_dgram_sendmsg's
// __net_timestamp under SOCK_RCVTSTAMP), and recvmsg reports the stamp
// before SCM_CREDENTIALS; one queued before the option was set gets the
// time of the read. SO_TIMESTAMPING alone stamps nothing (the sender
// looks at SOCK_RCVTSTAMP only), and stream sockets report no stamps at
// all; both take and report the options as other sockets do.

// unixStamp is an AF_UNIX socket's timestamp options, made when the
// socket first touches them.
type unixStamp struct {
	ts tsOpts
	rx rxStamp // kept for the option code; SIOCGSTAMP is not AF_UNIX's
}

// stamps is e's option state, made on first use.
func (e *unixEP) stamps() *unixStamp {
	if st := e.stamp.Load(); st != nil {
		return st
	}
	e.stamp.CompareAndSwap(nil, &unixStamp{})
	return e.stamp.Load()
}

// stampNow is the time a message sent to e now carries: the Net's
// clock when e asked for stamps, else 0 (e.mu held or not).
func (e *unixEP) stampNow() int64 {
	if st := e.stamp.Load(); st != nil && st.ts.v.Load()&tsRcv != 0 && e.sp.now != nil {
		return max(e.sp.now(), 1)
	}
	return 0
}

// putStamp writes the timestamp control messages of a message that
// was stamped at (0: not stamped) into w.
func (e *unixEP) putStamp(w *cmsgWriter, at int64, s *Socket) {
	if st := e.stamp.Load(); st != nil && e.typ != SOCK_STREAM {
		st.ts.put(w, at, s.net.st.Clock())
	}
}
