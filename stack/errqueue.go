package stack

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// The per-socket error queue of IP_RECVERR / IPV6_RECVERR (Linux's
// sk_error_queue): each ICMP error about a datagram the socket sent, and
// each local error (EMSGSIZE under IP_PMTUDISC_DO), is queued with the
// part of the failed packet after its transport header and a
// sock_extended_err; recvmsg(MSG_ERRQUEUE) reads them (RecvErr).

// Origins of an error (SO_EE_ORIGIN_*).
const (
	EEOriginNone  = 0
	EEOriginLocal = 1 // the stack refused to send (ee_info: the MTU)
	EEOriginICMP  = 2 // an ICMPv4 error
	EEOriginICMP6 = 3 // an ICMPv6 error
)

// Path MTU discovery modes (IP_MTU_DISCOVER, IPV6_MTU_DISCOVER: the
// same numbers in both).
const (
	PMTUDiscDont      = 0
	PMTUDiscWant      = 1 // the default
	PMTUDiscDo        = 2
	PMTUDiscProbe     = 3
	PMTUDiscInterface = 4
	PMTUDiscOmit      = 5
)

// ExtendedErr is struct sock_extended_err.
type ExtendedErr struct {
	Errno  syscall.Errno
	Origin uint8
	Type   uint8
	Code   uint8
	Info   uint32 // the next-hop MTU (fragmentation needed, packet too big, local EMSGSIZE), a parameter problem's pointer
	Data   uint32
	// RFC4884Len and RFC4884Flags are ee_rfc4884, the union over
	// ee_data that IP_RECVERR_RFC4884 fills (errqueue_rfc4884.go).
	RFC4884Len   uint16
	RFC4884Flags uint8
}

// ErrQueueMsg is one entry of a socket's error queue.
type ErrQueueMsg struct {
	ExtendedErr
	// Offender is the ICMP message's source (SO_EE_OFFENDER); invalid
	// for a local error, whose offender Linux leaves zero.
	Offender netip.Addr
	// Dst is the failed packet's destination and, for UDP, its port
	// (msg_name of the read).
	Dst netip.AddrPort
	// V4 marks an IPv4 error (ICMPv4 or a local error of an IPv4
	// send): an AF_INET6 socket shows its addresses v4-mapped.
	V4 bool
	// carrier is the ICMP packet that brought the error, which the IP
	// control messages of a read describe (ReadErrCtl); zero for a local
	// error. Like extOrig and extBody, it is moved out of the message when
	// the error is queued.
	carrier ICMPCarrier
	// extOrig is the original datagram's length the ICMP header claims
	// (RFC 4884), in bytes from the quoted IP header on; 0 for none or a
	// type RFC 4884 does not cover. extBody is the length of the ICMP
	// body from the quoted IP header on.
	extOrig, extBody int
}

type errEntry struct {
	msg     ErrQueueMsg
	carrier ICMPCarrier
	buf     []byte // pooled: the payload
	at      int64  // arrival, Unix ns, once timestamps are on (dgram_stamp.go); 0 none
}

// isICMP is Linux's is_icmp_err_skb: errors of this origin also leave
// their errno as the socket's pending error.
func (m *ErrQueueMsg) isICMP() bool {
	return m.Origin == EEOriginICMP || m.Origin == EEOriginICMP6
}

// SetRecvErr turns IP_RECVERR (v6 false) or IPV6_RECVERR (v6 true) on
// or off. Turning either off drops the queued ICMP errors, as Linux's
// skb_errqueue_purge: local errors and timestamp reports stay.
func (e *DgramEndpoint) SetRecvErr(v6, on bool) {
	e.mu.Lock()
	if v6 {
		e.recverr6 = on
	} else {
		e.recverr = on
	}
	if !on {
		e.purgeICMPErrLocked()
	}
	e.mu.Unlock()
}

// RecvErr reports IP_RECVERR (v6 false) or IPV6_RECVERR (v6 true).
func (e *DgramEndpoint) RecvErr(v6 bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v6 {
		return e.recverr6
	}
	return e.recverr
}

// SetPMTUDisc sets IP_MTU_DISCOVER (v6 false) or IPV6_MTU_DISCOVER.
func (e *DgramEndpoint) SetPMTUDisc(v6 bool, mode int) error {
	if mode < PMTUDiscDont || mode > PMTUDiscOmit {
		return syscall.EINVAL
	}
	e.mu.Lock()
	if v6 {
		e.pmtudisc6 = int8(mode)
	} else {
		e.pmtudisc = int8(mode)
	}
	e.mu.Unlock()
	return nil
}

// PMTUDisc reports IP_MTU_DISCOVER (v6 false) or IPV6_MTU_DISCOVER.
func (e *DgramEndpoint) PMTUDisc(v6 bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v6 {
		return int(e.pmtudisc6)
	}
	return int(e.pmtudisc)
}

// SetDontFrag sets IPV6_DONTFRAG.
func (e *DgramEndpoint) SetDontFrag(on bool) {
	e.mu.Lock()
	e.dontfrag6 = on
	e.mu.Unlock()
}

// DontFrag reports IPV6_DONTFRAG.
func (e *DgramEndpoint) DontFrag() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dontfrag6
}

// ErrQueueLen is the number of queued errors.
func (e *DgramEndpoint) ErrQueueLen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.errq) - e.errHead
}

// ErrQueueDrops counts errors not queued because the receive buffer
// was full.
func (e *DgramEndpoint) ErrQueueDrops() uint64 { return e.errDrops.Load() }

// purgeICMPErrLocked drops the queued errors of ICMP origin, keeping
// the others in their order.
func (e *DgramEndpoint) purgeICMPErrLocked() {
	k := e.errHead
	for i := e.errHead; i < len(e.errq); i++ {
		x := e.errq[i]
		if !x.msg.isICMP() {
			e.errq[k] = x
			k++
			continue
		}
		e.qbytes -= Truesize(x.buf)
		putBuf(x.buf)
	}
	clear(e.errq[k:])
	e.errq = e.errq[:k]
	if e.errHead == len(e.errq) {
		e.errq, e.errHead = e.errq[:0], 0
	}
}

func (e *DgramEndpoint) purgeErrLocked() {
	for i := e.errHead; i < len(e.errq); i++ {
		e.qbytes -= Truesize(e.errq[i].buf)
		putBuf(e.errq[i].buf)
		e.errq[i] = errEntry{}
	}
	e.errq, e.errHead = e.errq[:0], 0
}

// queueErrLocked appends an error, charged against SO_RCVBUF with the
// receive queue as Linux's sock_queue_err_skb does (and, unlike a
// datagram, refused even when the queue is empty).
func (e *DgramEndpoint) queueErrLocked(m ErrQueueMsg, c ICMPCarrier, payload []byte) bool {
	var at int64
	if e.stampRx.Load() {
		at = -1 // the arrival, taken once there is room
	}
	if !e.pushErrLocked(m, c, payload, at) {
		if !e.closed {
			e.s.stats.ICMP.ErrQueueFull.Add(1)
		}
		return false
	}
	return true
}

// pushErrLocked queues an entry with a copy of payload, charged against
// SO_RCVBUF as sock_queue_err_skb; at is the entry's time (0: none, -1:
// the stack's clock now). False, and errDrops counted, when there is no
// room or the endpoint is closed.
func (e *DgramEndpoint) pushErrLocked(m ErrQueueMsg, c ICMPCarrier, payload []byte, at int64) bool {
	if e.closed {
		return false
	}
	if e.qbytes+bufCap(len(payload))+DgramOverhead >= e.rcvbuf {
		e.errDrops.Add(1)
		return false
	}
	if e.errHead > 0 && e.errHead >= len(e.errq)/2 {
		// Slide the live entries down, so that a queue read as fast as it
		// fills keeps its backing array instead of growing it.
		n := copy(e.errq, e.errq[e.errHead:])
		clear(e.errq[n:])
		e.errq, e.errHead = e.errq[:n], 0
	}
	if at < 0 {
		at = e.s.arrivalNs()
	}
	buf := getBuf(len(payload))
	copy(buf, payload)
	e.errq = append(e.errq, errEntry{msg: m, carrier: c, buf: buf, at: at})
	e.qbytes += Truesize(buf)
	return true
}

// ReadErr takes the oldest queued error (recvmsg with MSG_ERRQUEUE):
// its payload into b, the payload's full length, and the error. EAGAIN
// when the queue is empty; it never waits. As Linux's
// sock_dequeue_err_skb, the pending error becomes the next ICMP error's
// errno, or is cleared when an ICMP error was read and none follows.
func (e *DgramEndpoint) ReadErr(b []byte) (n, full int, m ErrQueueMsg, err error) {
	n, full, m, _, err = e.ReadErrCtl(b)
	return n, full, m, err
}

// ReadErrCtl is ReadErr that also reports the ICMP packet that brought
// the error (zero for a local error), for the read's control messages.
func (e *DgramEndpoint) ReadErrCtl(b []byte) (n, full int, m ErrQueueMsg, c ICMPCarrier, err error) {
	n, full, m, c, _, err = e.ReadErrAt(b)
	return n, full, m, c, err
}

// ReadErrAt is ReadErrCtl that also gives when the error was queued
// (Unix nanoseconds; 0 before EnableRxTimestamps, dgram_stamp.go).
func (e *DgramEndpoint) ReadErrAt(b []byte) (n, full int, m ErrQueueMsg, c ICMPCarrier, at int64, err error) {
	e.mu.Lock()
	if e.errHead == len(e.errq) {
		e.mu.Unlock()
		return 0, 0, m, c, 0, syscall.EAGAIN
	}
	x := &e.errq[e.errHead]
	n, full, m, c, at = copy(b, x.buf), len(x.buf), x.msg, x.carrier, x.at
	e.qbytes -= Truesize(x.buf)
	putBuf(x.buf)
	*x = errEntry{}
	e.errHead++
	more := e.errHead < len(e.errq)
	if more && e.errq[e.errHead].msg.isICMP() {
		e.softErr = e.errq[e.errHead].msg.Errno
	} else if m.isICMP() {
		e.softErr = 0
	}
	e.mu.Unlock()
	if more {
		e.wq.Notify(waiter.EventErr)
	}
	return n, full, m, c, at, nil
}

// icmpError applies an ICMP error to a UDP, ping or raw socket that
// sent the quoted datagram (Linux's __udp4_lib_err, __udp6_lib_err,
// ping_err, raw_err and rawv6_err after the conversion): with RECVERR for the error's family the error
// is queued and becomes the pending error whether or not the socket is
// connected; without, only a hard error on a connected socket does,
// and nothing is queued.
func (e *DgramEndpoint) icmpError(m ErrQueueMsg, payload []byte, hard bool) {
	e.mu.Lock()
	if m.tooBig() {
		var hear bool
		if hear, hard = e.tooBigLocked(m.V4); !hear {
			e.mu.Unlock()
			return
		}
	}
	recverr := e.recverrFor(m.V4)
	if !recverr && (!hard || !e.connected) {
		e.mu.Unlock()
		return
	}
	if recverr {
		if e.rfc4884For(m.V4) {
			e.rfc4884Locked(&m, payload)
		}
		c := m.carrier
		c.setPort(payload)
		m.carrier, m.extOrig, m.extBody = ICMPCarrier{}, 0, 0
		e.queueErrLocked(m, c, payload)
	}
	e.softErr = m.Errno
	e.mu.Unlock()
	e.wq.Notify(waiter.EventErr | waiter.EventIn | waiter.EventOut)
}

// tooBig reports a fragmentation needed or a packet too big.
func (m *ErrQueueMsg) tooBig() bool {
	if m.V4 {
		return m.Type == wire.ICMPDestUnreach && m.Code == wire.ICMPFragNeeded
	}
	return m.Type == wire.ICMPv6PacketTooBig
}

// tooBigLocked is what the socket's path MTU discovery mode makes of a
// fragmentation needed or packet too big: whether the socket hears it
// at all, and whether it is hard. IPv4 UDP and ping (__udp4_lib_err,
// ping_err): unheard under IP_PMTUDISC_DONT, else hard; raw (raw_err):
// hard unless DONT. IPv6 UDP (__udp6_lib_err): unheard under INTERFACE
// and OMIT, hard unless DONT; raw (rawv6_err): hard only under DO; ping
// (ping_err): soft.
func (e *DgramEndpoint) tooBigLocked(v4 bool) (hear, hard bool) {
	if v4 {
		mode := e.pmtudisc
		if e.kind == KindRaw {
			return true, mode != PMTUDiscDont
		}
		return mode != PMTUDiscDont, true
	}
	mode := e.pmtudisc6
	switch e.kind {
	case KindRaw:
		return true, mode == PMTUDiscDo
	case KindUDP:
		if mode == PMTUDiscInterface || mode == PMTUDiscOmit {
			return false, false
		}
		return true, mode != PMTUDiscDont
	}
	return true, false
}

// recverrFor is the option that governs an error of the family given:
// IPv4 errors (also on an AF_INET6 socket, for a v4-mapped peer) need
// IP_RECVERR, IPv6 ones IPV6_RECVERR, as in Linux.
func (e *DgramEndpoint) recverrFor(v4 bool) bool {
	if v4 {
		return e.recverr
	}
	return e.recverr6
}

// localError queues a local error (Linux's ip_local_error,
// ipv6_local_error): only with RECVERR, never as the pending error.
func (e *DgramEndpoint) localError(errno syscall.Errno, dst netip.AddrPort, info int) {
	v4 := dst.Addr().Is4()
	e.mu.Lock()
	if !e.recverrFor(v4) {
		e.mu.Unlock()
		return
	}
	m := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: errno, Origin: EEOriginLocal, Info: uint32(max(info, 0))}, Dst: dst, V4: v4}
	ok := e.queueErrLocked(m, ICMPCarrier{}, nil)
	e.mu.Unlock()
	if ok {
		e.wq.Notify(waiter.EventErr)
	}
}

// dfFor reports whether a send to dst goes with DF (never fragmented,
// EMSGSIZE beyond the MTU) and whether it ignores the learnt path MTU
// (IP_PMTUDISC_PROBE): IP_MTU_DISCOVER DO or PROBE for IPv4;
// IPV6_MTU_DISCOVER DO or PROBE, or IPV6_DONTFRAG, for IPv6.
func (e *DgramEndpoint) dfFor(v6 bool) (df, probe bool) {
	mode := e.pmtudisc
	if v6 {
		mode = e.pmtudisc6
		if e.dontfrag6 {
			df = true
		}
	}
	switch mode {
	case PMTUDiscDo:
		df = true
	case PMTUDiscProbe:
		df, probe = true, true
	}
	return df, probe
}

// sendMTU is the MTU a DF send to dst must fit: the route's, lowered by
// a learnt path MTU unless probe.
func (s *Stack) sendMTU(dst netip.Addr, probe bool) int {
	r, err := s.FindRoute(dst)
	if err != nil {
		return 0
	}
	mtu := r.MTU
	if !probe && !r.Local {
		if m, _, ok := s.pathMTU(dst); ok && m < mtu {
			mtu = m
		}
	}
	return mtu
}

// checkDF refuses a DF send of n bytes of IP payload to dst that does
// not fit (Linux's __ip_append_data, __ip6_append_data), queueing the
// local error; port is what the error names (IPv4: the connected peer's,
// 0 when unconnected; IPv6: the send's).
func (e *DgramEndpoint) checkDF(dst netip.Addr, port uint16, n int, probe bool) error {
	return e.checkDFExt(dst, port, n, nil, probe)
}

// checkDFExt is checkDF for a datagram behind IPv6 extension headers x
// (nil: none; n counts them as Linux does): the MTU is the path's to a
// routing header's next segment, and the one the local error reports is
// less the headers' bytes, as __ip6_append_data's.
func (e *DgramEndpoint) checkDFExt(dst netip.Addr, port uint16, n int, x *SendExt6, probe bool) error {
	ext, mdst := x.sent(), dst
	if h, ok := x.FirstHop(); ok {
		mdst = h
	}
	mtu := e.s.sendMTU(mdst, probe)
	hl := wire.IPv4MinHeaderLen
	if dst.Is6() {
		hl = wire.IPv6HeaderLen
	}
	if mtu == 0 || hl+n <= mtu {
		return nil
	}
	e.localError(syscall.EMSGSIZE, netip.AddrPortFrom(dst, port), max(mtu-ext, 0))
	return syscall.EMSGSIZE
}
