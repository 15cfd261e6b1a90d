package socket

import (
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/stack"
)

// ioctl(2) requests on sockets whose argument is an int
// (asm-generic/ioctls.h, linux/sockios.h).
const (
	FIONREAD    = 0x541B
	SIOCINQ     = FIONREAD
	TIOCOUTQ    = 0x5411
	SIOCOUTQ    = TIOCOUTQ
	SIOCOUTQNSD = 0x894B
	SIOCATMARK  = 0x8905
	FIONBIO     = 0x5421
)

// Ioctl is ioctl(2) for the requests whose argument is an int: it
// returns what the kernel would store through the pointer
// (SIOCINQ/FIONREAD, SIOCOUTQ/TIOCOUTQ, SIOCOUTQNSD, SIOCATMARK), or
// takes arg (FIONBIO: non-zero sets non-blocking mode, zero blocking, as
// O_NONBLOCK would). A request the socket's protocol does not know fails
// with ENOTTY, as in Linux. What each reports:
//   - TCP: SIOCINQ the bytes a read returns now (up to the urgent mark
//     while an urgent byte waits out of band), SIOCOUTQ the bytes not
//     yet acknowledged, SIOCOUTQNSD those not yet sent (the FIN counts
//     one, as Linux's write_seq); EINVAL on a listener.
//   - UDP, raw (IPv4 and IPv6) and packet sockets: SIOCINQ the length of
//     the next datagram, as recv would return it (0 when none); SIOCOUTQ
//     0, a datagram leaves at once. ICMP ping sockets have none (ENOTTY).
//   - AF_UNIX: SIOCINQ every unread byte (stream, and every queued
//     message of a seqpacket socket) or the next datagram's length;
//     EINVAL on a listener. SIOCOUTQ what this socket sent that is still
//     unread, as its send limit counts it against SO_SNDBUF: the kernel
//     memory Linux's skbs would take, their truesize (unix_mem.go).
//     SIOCATMARK whether the next read starts at the out-of-band mark
//     (unix_oob.go).
func (s *Socket) Ioctl(req uint, arg int) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	if req == FIONBIO {
		// The file's O_NONBLOCK, any socket (Linux's ioctl_fionbio).
		s.SetBlocking(arg == 0)
		return 0, nil
	}
	switch e := s.ep.(type) {
	case *tcpEP:
		switch req {
		case SIOCINQ:
			return e.ep.InQ()
		case SIOCOUTQ:
			return e.ep.OutQ()
		case SIOCOUTQNSD:
			return e.ep.OutQNSD()
		case SIOCATMARK:
			at, err := e.ep.AtMark()
			return b2i(at), err
		}
	case *dgramEP:
		if e.ep.Kind() == stack.KindPing {
			break // Linux's ping sockets have no ioctl of their own
		}
		switch req {
		case SIOCINQ:
			return e.ep.NextLen(), nil
		case SIOCOUTQ:
			return 0, nil
		}
	case *packetEP:
		switch req {
		case SIOCINQ:
			return e.nextLen(), nil
		case SIOCOUTQ:
			return 0, nil
		}
	case *unixEP:
		switch req {
		case SIOCINQ:
			return e.inq()
		case SIOCOUTQ:
			return e.outq(), nil
		case SIOCATMARK:
			return e.atMark(), nil // unix_oob.go
		}
	}
	return 0, syscall.ENOTTY
}

// nextLen is the length recv would give the next frame (SIOCINQ).
func (p *packetEP) nextLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rn == 0 {
		return 0
	}
	return p.recs[p.rhead].n
}

// inq is SIOCINQ on an AF_UNIX socket, as Linux's unix_inq_len.
func (e *unixEP) inq() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state == unixListening {
		return 0, syscall.EINVAL
	}
	if e.typ != SOCK_DGRAM {
		return e.rx.n + e.oobInq(), nil // stream bytes, or every queued message's
	}
	if e.rn == 0 {
		return 0, nil
	}
	return e.recs[e.rhead].n, nil
}

// outq is SIOCOUTQ on an AF_UNIX socket: what this socket sent that
// its receivers have not read yet, as its send limit counts it: the
// truesize of Linux's skbs (unix_mem.go), as Linux's unix_outq_len.
func (e *unixEP) outq() int { return int(e.sentq.Load()) }

// Receive-timestamp requests (asm-generic/sockios.h; on a 64-bit host
// their struct timeval and struct timespec have 64-bit fields): the
// receive time of the last datagram read.
const (
	SIOCGSTAMP   = 0x8906
	SIOCGSTAMPNS = 0x8907
)

// IoctlTimestamp is ioctl(2) with SIOCGSTAMP (a struct timeval: the
// time comes back truncated to microseconds) or SIOCGSTAMPNS (a struct
// timespec), as Linux's sock_gettstamp: the receive time of the last
// datagram a read or peek (MSG_ERRQUEUE too) returned on a UDP, raw,
// ping, packet or CAN socket, ENOENT before the first. The receive time
// is when the datagram arrived: UDP, raw, ping, packet and CAN_RAW
// sockets record it once asked (by this call or SO_TIMESTAMP*,
// rxstamp.go); BCM and ISO-TP sockets give the time of the read. The
// first call turns timestamps on for the reads after it; a datagram
// that came before that has no time and gets the time of the call that
// asks for it (as Linux an unstamped packet), and later calls repeat
// that time. A read that gave SO_TIMESTAMP or SO_TIMESTAMPING control
// messages leaves the time unchanged, as in Linux. TCP has the request
// but only a MSG_ERRQUEUE read sets the time (ENOENT before); AF_UNIX
// sockets do not know it (ENOTTY), nor any socket another request.
func (s *Socket) IoctlTimestamp(req uint) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, syscall.EBADF
	}
	if req != SIOCGSTAMP && req != SIOCGSTAMPNS {
		return time.Time{}, syscall.ENOTTY
	}
	var r *rxStamp
	switch e := s.ep.(type) {
	case *dgramEP:
		r = &e.stamp
		e.ep.EnableRxTimestamps() // SOCK_TIMESTAMP: arrival times from now on
	case *packetEP:
		r = &e.stamp
		e.stampRx.Store(true)
	case *canRawEP:
		r = &e.stamp
	case *bcmEP:
		r = &e.stamp
	case *isotpEP:
		r = &e.stamp
	case *tcpEP:
		r = e.stampRec() // only an error-queue read sets it: tcp_recvmsg does not
	default:
		return time.Time{}, syscall.ENOTTY
	}
	t, err := r.get(s.net.st.Clock())
	if err == nil && req == SIOCGSTAMP {
		t = t.Truncate(time.Microsecond)
	}
	return t, err
}

// rxStamp is a socket's receive time for SIOCGSTAMP (Linux's
// sk_stamp). Reads mark it; a read costs one atomic load (and a store
// when the state changes) until SIOCGSTAMP has been asked, then one
// clock read.
type rxStamp struct {
	on atomic.Bool  // SIOCGSTAMP was asked: reads record their time (SOCK_TIMESTAMP)
	ns atomic.Int64 // stampNone, stampUntimed or the time in Unix nanoseconds
}

const (
	stampNone    = 0 // nothing read yet: ENOENT
	stampUntimed = 1 // read while timestamps were off: SIOCGSTAMP takes its own time
)

// read records that a datagram was read (or peeked).
func (r *rxStamp) read(c clock.Clock) {
	if r.on.Load() {
		r.ns.Store(stampNs(c.Now()))
		return
	}
	r.untimed()
}

// readAt is read for a datagram whose arrival time t is known.
func (r *rxStamp) readAt(t time.Time) {
	if r.on.Load() {
		r.ns.Store(stampNs(t))
		return
	}
	r.untimed()
}

// untimed records a read while timestamps are off, storing only when
// that changes something (most reads find it so already).
func (r *rxStamp) untimed() {
	if r.ns.Load() != stampUntimed {
		r.ns.Store(stampUntimed)
	}
}

// get is sock_gettstamp: it turns timestamps on, and gives an untimed
// read the time of this call, kept for later calls.
func (r *rxStamp) get(c clock.Clock) (time.Time, error) {
	r.on.Store(true)
	v := r.ns.Load()
	switch v {
	case stampNone:
		return time.Time{}, syscall.ENOENT
	case stampUntimed:
		now := stampNs(c.Now())
		if r.ns.CompareAndSwap(stampUntimed, now) {
			v = now
		} else {
			v = r.ns.Load() // a read recorded its time meanwhile
		}
	}
	return time.Unix(0, v), nil
}

// stampNs is t in Unix nanoseconds, kept clear of the two markers (a
// manual clock may stand at the epoch).
func stampNs(t time.Time) int64 {
	return max(t.UnixNano(), stampUntimed+1)
}
