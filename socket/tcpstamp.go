package socket

import "github.com/sockstack/sockstack/tcp"

// Receive timestamps on TCP sockets (Linux's tcp_recv_timestamp): with
// SO_TIMESTAMP, SO_TIMESTAMPNS (and _NEW) or SO_TIMESTAMPING's
// RX_SOFTWARE | SOFTWARE, a recvmsg(2) that read data gives the arrival
// time of the latest in-order data segment (tcp/rxstamp.go), before
// TCP_CM_INQ. The options and their record live in a struct made on
// first use, so that a connection that never asks keeps tcpEP in its
// size class (TestTCPEPSize).

// tcpStamp is a TCP socket's timestamp state: SIOCGSTAMP's record (set
// by error-queue reads only, as Linux) and the timestamp options.
type tcpStamp struct {
	rxStamp
	ts tsOpts
}

// tcpStampOpts is t's timestamp state, made on first use when create.
func (t *tcpEP) tcpStampOpts(create bool) *tcpStamp {
	if r := t.stamp.Load(); r != nil || !create {
		return r
	}
	if n := new(tcpStamp); t.stamp.CompareAndSwap(nil, n) {
		t.txStampSource(n) // tcptxstamp.go
	}
	return t.stamp.Load()
}

// putRxStamps writes the timestamp messages of a read of n bytes.
func (t *tcpEP) putRxStamps(w *cmsgWriter, n int) {
	r := t.stamp.Load()
	if r == nil || n <= 0 || r.ts.v.Load() == 0 {
		return
	}
	if at := t.ep.RxTimestamp(); at != 0 {
		r.ts.put(w, at, t.net.st.Clock())
	}
}

// tcpOptIDState reports whether OPT_ID may be turned on for the TCP
// endpoint ep: not while it is closed or listening
// (sock_set_timestamping). When it may, the endpoint records the
// origins of the keys now, as sock_set_timestamping sets sk_tskey
// (SND.UNA, or the write sequence under OPT_ID_TCP: tcp/txstamp.go).
func tcpOptIDState(ep *tcp.Endpoint) bool {
	st := ep.State()
	if st == tcp.StateClosed || st == tcp.StateListen {
		return false
	}
	ep.SetTxStampIDBase()
	return true
}

// inheritStamps gives an accepted socket the listener's timestamp
// options, as Linux's clone copies sk_flags and sk_tsflags (the tcp
// endpoint inherited the recording already); OPT_ID's key is not
// carried over.
func (t *tcpEP) inheritStamps(l *tcpEP) {
	r := l.tcpStampOpts(false)
	if r == nil {
		return
	}
	if x := r.ts.v.Load(); x != 0 {
		t.tcpStampOpts(true).ts.v.Store(x)
	}
}
