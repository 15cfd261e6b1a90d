package socket

import (
	"encoding/binary"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
)

// Receive timestamps on UDP, raw, ping, packet and CAN sockets, as Linux's
// net/core/sock.c (sock_set_timestamp, sock_set_timestamping) and
// net/socket.c (__sock_recv_timestamp, sock_recv_cmsgs) give them: the
// stack records a datagram's arrival time once the socket has asked
// (any of these options, or SIOCGSTAMP), and recvmsg(2) reports it
// before every other control message. Only software stamps exist here,
// no hardware clock; transmit stamps are txstamp.go's.

// Option and control message names (asm-generic/socket.h). SO_TIMESTAMP
// and SO_TIMESTAMPNS (29, 35) are the _OLD values, whose messages carry
// a struct timeval and a struct timespec; on a 64-bit host the _NEW ones
// carry the same bytes under other types.
const (
	SO_TIMESTAMP_NEW   = 63
	SO_TIMESTAMPNS_NEW = 64
	SO_TIMESTAMPING    = SO_TIMESTAMPING_OLD

	SCM_TIMESTAMP    = SO_TIMESTAMP
	SCM_TIMESTAMPNS  = SO_TIMESTAMPNS
	SCM_TIMESTAMPING = SO_TIMESTAMPING_OLD
)

// SO_TIMESTAMPING flags (linux/net_tstamp.h). sockstack acts on
// RX_SOFTWARE, SOFTWARE and OPT_RX_FILTER; it keeps and reports the
// others as Linux accepts them, and never produces a transmit or
// hardware stamp.
const (
	SOF_TIMESTAMPING_TX_HARDWARE   = 1 << 0
	SOF_TIMESTAMPING_TX_SOFTWARE   = 1 << 1
	SOF_TIMESTAMPING_RX_HARDWARE   = 1 << 2
	SOF_TIMESTAMPING_RX_SOFTWARE   = 1 << 3
	SOF_TIMESTAMPING_SOFTWARE      = 1 << 4
	SOF_TIMESTAMPING_SYS_HARDWARE  = 1 << 5
	SOF_TIMESTAMPING_RAW_HARDWARE  = 1 << 6
	SOF_TIMESTAMPING_OPT_ID        = 1 << 7
	SOF_TIMESTAMPING_TX_SCHED      = 1 << 8
	SOF_TIMESTAMPING_TX_ACK        = 1 << 9
	SOF_TIMESTAMPING_OPT_CMSG      = 1 << 10
	SOF_TIMESTAMPING_OPT_TSONLY    = 1 << 11
	SOF_TIMESTAMPING_OPT_STATS     = 1 << 12
	SOF_TIMESTAMPING_OPT_PKTINFO   = 1 << 13
	SOF_TIMESTAMPING_OPT_TX_SWHW   = 1 << 14
	SOF_TIMESTAMPING_BIND_PHC      = 1 << 15
	SOF_TIMESTAMPING_OPT_ID_TCP    = 1 << 16
	SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17
	SOF_TIMESTAMPING_TX_COMPLETION = 1 << 18

	// SOF_TIMESTAMPING_MASK is every flag the host kernel (6.18) knows.
	SOF_TIMESTAMPING_MASK = SOF_TIMESTAMPING_TX_COMPLETION<<1 - 1
)

// tsOpts is a socket's timestamp options in one word, so that a read
// takes them with one atomic load: the low 32 bits are sk_tsflags, the
// others Linux's socket flags.
type tsOpts struct {
	v atomic.Uint64
	// key is sk_tskey: the next OPT_ID key of a send (txstamp.go).
	key atomic.Uint32
}

const (
	tsRcv   = 1 << 32 // SOCK_RCVTSTAMP: SO_TIMESTAMP(NS) on
	tsRcvNS = 1 << 33 // SOCK_RCVTSTAMPNS: ... as a timespec
	tsNew   = 1 << 34 // SOCK_TSTAMP_NEW: the _NEW message types
	// tsSelErrQ is SOCK_SELECT_ERR_QUEUE (SO_SELECT_ERR_QUEUE, txstamp.go),
	// kept here for the sockets that have this word.
	tsSelErrQ = 1 << 35
)

// stampOpt reports the options handled here.
func stampOpt(name int) bool {
	switch name {
	case SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_TIMESTAMPING_OLD, SO_TIMESTAMPING_NEW,
		SO_SELECT_ERR_QUEUE:
		return true
	}
	return false
}

// rxStampEP gives the timestamp state of the sockets that have it; a
// TCP socket's is made on first use (tcpstamp.go).
func (s *Socket) rxStampEP() (o *tsOpts, r *rxStamp, enable func()) {
	switch e := s.ep.(type) {
	case *dgramEP:
		return &e.ts, &e.stamp, e.ep.EnableRxTimestamps
	case *packetEP:
		return &e.ts, &e.stamp, func() { e.stampRx.Store(true) }
	case *tcpEP:
		t := e.tcpStampOpts(true)
		return &t.ts, &t.rxStamp, e.ep.SetRxTimestamps
	case *canRawEP:
		return &e.ts, &e.stamp, func() {} // every frame carries its time (can.go)
	case *bcmEP:
		return &e.ts, &e.stamp, func() {} // every change carries its frame's (can_bcm.go)
	case *isotpEP:
		return &e.ts, &e.stamp, func() {} // every message carries its last frame's (can_isotp.go)
	case *unixEP:
		st := e.stamps() // unix_stamp.go: a sender reads the flags
		return &st.ts, &st.rx, func() {}
	}
	return nil, nil, nil
}

// setStampOpt is setsockopt of SO_TIMESTAMP* (ok false: not a socket
// handled here).
func (s *Socket) setStampOpt(name int, v any) (ok bool, err error) {
	o, r, enable := s.rxStampEP()
	if o == nil {
		return false, nil
	}
	if name == SO_TIMESTAMPING_OLD || name == SO_TIMESTAMPING_NEW {
		return true, s.setTimestamping(o, name, v, enable)
	}
	if name == SO_SELECT_ERR_QUEUE {
		return true, o.setSelErrQueue(v) // txstamp.go
	}
	i, err := stampInt(v)
	if err != nil {
		return true, err
	}
	for {
		old := o.v.Load()
		nv := old &^ (tsRcv | tsRcvNS)
		if i != 0 {
			// __sock_set_timestamps: the last one set says which.
			nv &^= tsNew
			nv |= tsRcv
			if name == SO_TIMESTAMPNS || name == SO_TIMESTAMPNS_NEW {
				nv |= tsRcvNS
			}
			if name == SO_TIMESTAMP_NEW || name == SO_TIMESTAMPNS_NEW {
				nv |= tsNew
			}
		}
		if o.v.CompareAndSwap(old, nv) {
			break
		}
	}
	if i != 0 {
		// SOCK_TIMESTAMP too: stamps from now on, SIOCGSTAMP's as well.
		r.on.Store(true)
		enable()
	}
	return true, nil
}

// setTimestamping is sock_set_timestamping: an int of flags, or the
// 8 bytes of struct so_timestamping (flags, bind_phc).
func (s *Socket) setTimestamping(o *tsOpts, name int, v any, enable func()) error {
	var fl int
	switch x := v.(type) {
	case []byte:
		if len(x) < 4 {
			return syscall.EINVAL
		}
		fl = int(int32(binary.NativeEndian.Uint32(x)))
	default:
		var err error
		if fl, err = intOpt(v); err != nil {
			return err
		}
	}
	if fl < 0 || fl&^SOF_TIMESTAMPING_MASK != 0 {
		return syscall.EINVAL
	}
	if fl&SOF_TIMESTAMPING_OPT_ID_TCP != 0 && fl&SOF_TIMESTAMPING_OPT_ID == 0 {
		return syscall.EINVAL
	}
	if fl&SOF_TIMESTAMPING_OPT_STATS != 0 && fl&SOF_TIMESTAMPING_OPT_TSONLY == 0 {
		return syscall.EINVAL
	}
	if t, ok := s.ep.(*tcpEP); ok && fl&SOF_TIMESTAMPING_OPT_ID != 0 &&
		uint32(o.v.Load())&SOF_TIMESTAMPING_OPT_ID == 0 && !tcpOptIDState(t.ep) {
		return syscall.EINVAL // a TCP key needs a connection (tcpstamp.go)
	}
	if fl&SOF_TIMESTAMPING_BIND_PHC != 0 {
		// No device here has a hardware clock: Linux refuses an unbound
		// socket, and a bound one whose device lists no such clock.
		if s.device().Index == 0 {
			return syscall.EOPNOTSUPP
		}
		return syscall.EINVAL
	}
	for {
		old := o.v.Load()
		if fl&SOF_TIMESTAMPING_OPT_ID != 0 && uint32(old)&SOF_TIMESTAMPING_OPT_ID == 0 {
			// OPT_ID newly set: keys start again at 0 (sock_set_timestamping).
			o.key.Store(0)
		}
		nv := old&^(1<<32-1|tsNew) | uint64(uint32(fl))
		if name == SO_TIMESTAMPING_NEW {
			nv |= tsNew
		}
		if o.v.CompareAndSwap(old, nv) {
			break
		}
	}
	if fl&SOF_TIMESTAMPING_RX_SOFTWARE != 0 {
		enable()
	}
	return nil
}

// stampInt reads an int option value; a byte slice must hold at least
// an int (sock_setsockopt's optlen check).
func stampInt(v any) (int, error) {
	if b, ok := v.([]byte); ok {
		if len(b) < 4 {
			return 0, syscall.EINVAL
		}
		return int(int32(binary.NativeEndian.Uint32(b))), nil
	}
	return intOpt(v)
}

// getStampOpt is getsockopt of SO_TIMESTAMP* as sk_getsockopt answers.
func (s *Socket) getStampOpt(name int) (ok bool, v any) {
	var x uint64
	if t, is := s.ep.(*tcpEP); is {
		if r := t.tcpStampOpts(false); r != nil { // none yet: all off
			x = r.ts.v.Load()
		}
	} else {
		o, _, _ := s.rxStampEP()
		if o == nil {
			return false, nil
		}
		x = o.v.Load()
	}
	rcv, ns, nw := x&tsRcv != 0, x&tsRcvNS != 0, x&tsNew != 0
	switch name {
	case SO_SELECT_ERR_QUEUE:
		return true, b2i(x&tsSelErrQ != 0)
	case SO_TIMESTAMP:
		return true, b2i(rcv && !nw && !ns)
	case SO_TIMESTAMPNS:
		return true, b2i(ns && !nw)
	case SO_TIMESTAMP_NEW:
		return true, b2i(rcv && nw)
	case SO_TIMESTAMPNS_NEW:
		return true, b2i(ns && nw)
	case SO_TIMESTAMPING_NEW:
		if !nw {
			return true, 0 // set through the other option: not shown here
		}
	}
	return true, int(uint32(x))
}

// cmsgs reports whether a datagram that arrived at at (0: no time)
// gets timestamp control messages (sock_recv_timestamp's test); when it
// does, a read leaves SIOCGSTAMP's time alone.
func (o *tsOpts) cmsgs(at int64) bool {
	x := o.v.Load()
	return x&tsRcv != 0 || x&SOF_TIMESTAMPING_RX_SOFTWARE != 0 || at != 0 && x&SOF_TIMESTAMPING_SOFTWARE != 0
}

// put writes __sock_recv_timestamp's control messages for a datagram
// that arrived at at (Unix nanoseconds; 0: queued before the socket
// asked, which SO_TIMESTAMP stamps with the time of the read, as
// Linux does for an skb that came without one).
func (o *tsOpts) put(w *cmsgWriter, at int64, c clock.Clock) { o.putQ(w, at, c, false) }

// putErr is put for a read of the error queue, where SOFTWARE reports
// a stamp whatever OPT_RX_FILTER says (__sock_recv_timestamp's
// skb_is_err_queue).
func (o *tsOpts) putErr(w *cmsgWriter, at int64, c clock.Clock) { o.putQ(w, at, c, true) }

func (o *tsOpts) putQ(w *cmsgWriter, at int64, c clock.Clock, errq bool) {
	if !o.cmsgs(at) {
		return
	}
	x := o.v.Load()
	if x&tsRcv != 0 && at == 0 {
		at = c.Now().UnixNano()
	}
	if x&tsRcv != 0 {
		var d [16]byte
		ne := binary.NativeEndian
		ne.PutUint64(d[:], uint64(at/1e9))
		ns, nw := x&tsRcvNS != 0, x&tsNew != 0
		if ns {
			ne.PutUint64(d[8:], uint64(at%1e9))
		} else {
			ne.PutUint64(d[8:], uint64(at%1e9/1e3))
		}
		typ := SO_TIMESTAMP
		switch {
		case ns && nw:
			typ = SO_TIMESTAMPNS_NEW
		case ns:
			typ = SO_TIMESTAMPNS
		case nw:
			typ = SO_TIMESTAMP_NEW
		}
		w.put(SOL_SOCKET, typ, d[:])
	}
	fl := uint32(x)
	if at != 0 && fl&SOF_TIMESTAMPING_SOFTWARE != 0 &&
		(fl&SOF_TIMESTAMPING_RX_SOFTWARE != 0 || errq || fl&SOF_TIMESTAMPING_OPT_RX_FILTER == 0) {
		// struct scm_timestamping: software, (deprecated), hardware.
		var d [48]byte
		binary.NativeEndian.PutUint64(d[:], uint64(at/1e9))
		binary.NativeEndian.PutUint64(d[8:], uint64(at%1e9))
		typ := SO_TIMESTAMPING_OLD
		if x&tsNew != 0 {
			typ = SO_TIMESTAMPING_NEW
		}
		w.put(SOL_SOCKET, typ, d[:])
	}
}

// recvd records a datagram read for SIOCGSTAMP, as sock_recv_cmsgs:
// untouched when timestamp control messages were given, the arrival
// time once SIOCGSTAMP or SO_TIMESTAMP asked (a datagram without one:
// the next request takes its own time), else untimed.
func (r *rxStamp) recvd(at int64, cmsgs bool) {
	switch {
	case cmsgs:
	case r.on.Load() && at != 0:
		r.ns.Store(max(at, stampUntimed+1))
	case r.on.Load():
		r.ns.Store(stampUntimed)
	default:
		r.untimed()
	}
}

// recvPacketControl is recvmsg(2) on a packet socket: the frame, its
// sockaddr_ll, MSG_TRUNC, and the timestamp control messages into w.
func (s *Socket) recvPacketControl(e *packetEP, p []byte, w *cmsgWriter, flags int) (int, int, Sockaddr, error) {
	return s.recvStamped(w, flags, true, &e.ts, e.n.Stack().Clock(), func() (n, full, rflags int, at int64, from Sockaddr, err error) {
		n, full, from, at, err = e.recvAt(p, flags)
		return n, full, 0, at, from, err
	})
}

// recvStamped is recvmsg(2) with a control buffer w on a socket whose
// messages each carry a receive time (packet and CAN sockets): recv
// takes one (n of its full bytes, the receive flags, its time at, 0 for
// none, and the sender) or fails with EAGAIN, which blocks as Recv
// does; MSG_TRUNC says a message was cut, and with realLen and
// MSG_TRUNC in flags n is its whole length; ts puts the timestamp
// control messages into w (RecvMsgControl sets MSG_CTRUNC).
func (s *Socket) recvStamped(w *cmsgWriter, flags int, realLen bool, ts *tsOpts, clk clock.Clock,
	recv func() (n, full, rflags int, at int64, from Sockaddr, err error)) (n, rflags int, from Sockaddr, err error) {
	var full int
	var at int64
	err = s.blocking(flags, false, waiter.EventIn, func() error {
		var err error
		n, full, rflags, at, from, err = recv()
		return err
	})
	if err != nil {
		return 0, 0, nil, err
	}
	if full > n {
		rflags |= MSG_TRUNC
		if realLen && flags&MSG_TRUNC != 0 {
			n = full
		}
	}
	ts.put(w, at, clk)
	return n, rflags, from, nil
}
