package tcp

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/waiter"
)

// IP_RECVERR's error queue on a TCP socket. Linux queues an ICMP error
// for recvmsg(MSG_ERRQUEUE) only when it ends a connection attempt
// (tcp_v4_err and tcp_v6_err call ip_icmp_error / ipv6_icmp_error in
// SYN_SENT and SYN_RECV, and only with RECVERR set); a synchronized
// connection's errors become its pending error and are not queued.
// The entry's payload is the quoted packet from its TCP header on, as
// ip_icmp_error pulls the clone to the header it is given.

// errQueueMax bounds the queue. A connection attempt queues at most one
// error (the first ends it), so only a socket that connects again and
// again without reading the queue fills it; beyond it errors are
// counted (ErrQueueFull) and dropped, as Linux drops what SO_RCVBUF has
// no room for.
const errQueueMax = 8

// errQuoteMax bounds the bytes kept of a quote: an IPv4 error quotes at
// most 576 bytes (RFC 1812), an ICMPv6 one up to 1232.
const errQuoteMax = 1232

// ErrQueueEntry is one queued error as recvmsg(MSG_ERRQUEUE) shows it.
type ErrQueueEntry struct {
	Errno      syscall.Errno
	Origin     uint8
	Type, Code uint8
	Info       uint32
	Offender   netip.Addr
	Dst        netip.AddrPort // the failed segment's destination (msg_name)
}

type errQueueItem struct {
	m       ErrQueueEntry
	payload []byte
}

type errQueue struct{ items []errQueueItem }

// queueErrLocked queues ne for MSG_ERRQUEUE.
func (e *Endpoint) queueErrLocked(ne *NetError, errno syscall.Errno) {
	if e.errq == nil {
		e.errq = &errQueue{}
	}
	q := e.errq
	if len(q.items) >= errQueueMax {
		e.p.st.ErrQueueFull.Add(1)
		return
	}
	quote := ne.Quote
	if len(quote) > errQuoteMax {
		quote = quote[:errQuoteMax]
	}
	dst := e.remote
	if a := dst.Addr(); a.IsLinkLocalUnicast() && a.Zone() == "" && ne.Offender.Zone() != "" {
		// Shown with the interface the error came in on, as Linux sets
		// sin6_scope_id (ipv6_recv_error).
		dst = netip.AddrPortFrom(a.WithZone(ne.Offender.Zone()), dst.Port())
	}
	q.items = append(q.items, errQueueItem{
		m: ErrQueueEntry{Errno: errno, Origin: ne.Origin, Type: ne.Type, Code: ne.Code, Info: ne.Info,
			Offender: ne.Offender, Dst: dst},
		payload: append([]byte(nil), quote...),
	})
}

// ReadErr is recvmsg(MSG_ERRQUEUE): the oldest queued error, its
// payload copied into b (n bytes of full), or EAGAIN when none is
// queued, whatever the blocking mode (Linux never waits for an error).
// As sock_dequeue_err_skb, the pending error becomes the next queued
// error's, or none.
func (e *Endpoint) ReadErr(b []byte) (n, full int, m ErrQueueEntry, err error) {
	e.lock()
	q := e.errq
	if q == nil || len(q.items) == 0 {
		e.unlock()
		return 0, 0, m, syscall.EAGAIN
	}
	it := q.items[0]
	q.items[0] = errQueueItem{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		e.errq = nil // lets an idle endpoint give its epBusy back
		e.err = nil
	} else {
		e.err = q.items[0].m.Errno
	}
	pending := e.err != nil
	e.unlock()
	if pending {
		e.notify(waiter.EventErr)
	}
	return copy(b, it.payload), len(it.payload), it.m, nil
}

// ErrQueueLen is the number of errors queued.
func (e *Endpoint) ErrQueueLen() int {
	e.lock()
	defer e.unlock()
	if e.errq == nil {
		return 0
	}
	return len(e.errq.items)
}

// WaitReadiness is Readiness as a blocking call sees it: an error
// queued for MSG_ERRQUEUE alone shows in poll (POLLERR, as tcp_poll)
// but does not end a wait for data or room.
func (e *Endpoint) WaitReadiness(mask waiter.EventMask) waiter.EventMask {
	e.lock()
	defer e.unlock()
	r := e.readinessLocked()
	if e.err == nil && e.errq != nil {
		r &^= waiter.EventErr
	}
	return r & mask
}
