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

// rfc4884FlagInvalid is SO_EE_RFC4884_FLAG_INVALID.
const rfc4884FlagInvalid = 1

// ErrQueueEntry is one queued error as recvmsg(MSG_ERRQUEUE) shows it.
type ErrQueueEntry struct {
	Errno      syscall.Errno
	Origin     uint8
	Type, Code uint8
	Info       uint32
	Offender   netip.Addr
	Dst        netip.AddrPort // the failed segment's destination (msg_name)
	// Data is ee_data: a transmit timestamp report's OPT_ID key
	// (txstamp.go).
	Data uint32
	// At is when a transmit timestamp report was taken, in Unix
	// nanoseconds of the stack's clock; 0 for an ICMP error.
	At int64
}

// ErrCtl is what a read of the queue reports beside ErrQueueEntry: the
// ICMP packet that carried the error, which the IP control messages
// describe (Linux's ip_recv_error calls ip_cmsg_recv for a TCP socket
// too), and ee_rfc4884.
type ErrCtl struct {
	Dst      netip.Addr // the ICMP's destination; invalid for none
	TTL, TOS uint8      // or hop limit and traffic class
	Flow     uint32     // the ICMPv6 packet's flow label (IPV6_FLOWINFO)
	NIC      int        // the NIC it came in on
	// IPOpts is the ICMPv4 packet's options as the receive path left
	// them (IP_RECVOPTS, IP_RETOPTS), kept by the stack in its own form
	// (stack.RecvIPOpts), which tcp does not read.
	IPOpts [40]byte
	// IPOptsLen and IPOptsFlags complete IPOpts: its length, 0 for
	// none, and the stack's notes on it.
	IPOptsLen, IPOptsFlags uint8
	// Port is IP_ORIGDSTADDR's port: bytes 2-3 of the payload, the
	// quoted TCP header's destination port.
	Port   uint16
	PortOK bool
	// RFC4884Len and RFC4884Flags are ee_rfc4884 for the quote from its
	// TCP header on; HasRFC4884 says the stack found an RFC 4884 length
	// (set on a NetError; a queued error keeps them only under
	// IP_RECVERR_RFC4884 / IPV6_RECVERR_RFC4884).
	RFC4884Len   uint16
	RFC4884Flags uint8
	HasRFC4884   bool
}

type errQueueItem struct {
	m       ErrQueueEntry
	ctl     ErrCtl
	payload []byte
}

// SetRecvErrRFC4884 sets IP_RECVERR_RFC4884 (v6 false) or
// IPV6_RECVERR_RFC4884.
func (e *Endpoint) SetRecvErrRFC4884(v6, on bool) {
	e.lock()
	defer e.unlock()
	e.setOpt(func(o epOpts) epOpts {
		if v6 {
			o.rfc4884v6 = on
		} else {
			o.rfc4884v4 = on
		}
		return o
	})
}

// RecvErrRFC4884 reports IP_RECVERR_RFC4884 (v6 false) or
// IPV6_RECVERR_RFC4884.
func (e *Endpoint) RecvErrRFC4884(v6 bool) bool {
	e.lock()
	defer e.unlock()
	if v6 {
		return e.rfc4884v6
	}
	return e.rfc4884v4
}

type errQueue struct{ items []errQueueItem }

// isICMP says the entry is an ICMP error, not a timestamp report.
func (m *ErrQueueEntry) isICMP() bool { return m.Origin == originICMP || m.Origin == originICMP6 }

// icmpLen is the number of ICMP errors queued (timestamp reports are
// bounded by SO_RCVBUF instead: txstamp.go).
func (q *errQueue) icmpLen() int {
	n := 0
	for i := range q.items {
		if q.items[i].m.isICMP() {
			n++
		}
	}
	return n
}

// queueErrLocked queues ne for MSG_ERRQUEUE.
func (e *Endpoint) queueErrLocked(ne *NetError, errno syscall.Errno) {
	if e.errq == nil {
		e.errq = &errQueue{}
	}
	q := e.errq
	if q.icmpLen() >= errQueueMax {
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
	ctl := ne.Ctl
	// ee_rfc4884 as the family's option says when the error is queued
	// (ip_icmp_error tests IP_RECVERR_RFC4884, ipv6_icmp_error the IPv6
	// option).
	if on := e.rfc4884v4 && ne.Origin == originICMP || e.rfc4884v6 && ne.Origin == originICMP6; !on || !ctl.HasRFC4884 {
		ctl.RFC4884Len, ctl.RFC4884Flags = 0, 0
	}
	if ctl.HasRFC4884 && ctl.RFC4884Flags&rfc4884FlagInvalid != 0 {
		e.p.st.RFC4884Invalid.Add(1)
	}
	ctl.HasRFC4884 = false
	if ctl.Dst.IsValid() && len(ne.Quote) >= 4 {
		ctl.Port, ctl.PortOK = uint16(ne.Quote[2])<<8|uint16(ne.Quote[3]), true
	}
	q.items = append(q.items, errQueueItem{
		m: ErrQueueEntry{Errno: errno, Origin: ne.Origin, Type: ne.Type, Code: ne.Code, Info: ne.Info,
			Offender: ne.Offender, Dst: dst},
		ctl:     ctl,
		payload: append([]byte(nil), quote...),
	})
}

// ReadErr is recvmsg(MSG_ERRQUEUE): the oldest queued error, its
// payload copied into b (n bytes of full), or EAGAIN when none is
// queued, whatever the blocking mode (Linux never waits for an error).
// As sock_dequeue_err_skb, the pending error becomes the next queued
// error's, or none.
func (e *Endpoint) ReadErr(b []byte) (n, full int, m ErrQueueEntry, err error) {
	n, full, m, _, err = e.ReadErrCtl(b)
	return n, full, m, err
}

// ReadErrCtl is ReadErr with the error's ErrCtl.
func (e *Endpoint) ReadErrCtl(b []byte) (n, full int, m ErrQueueEntry, c ErrCtl, err error) {
	e.lock()
	q := e.errq
	if q == nil || len(q.items) == 0 {
		e.unlock()
		return 0, 0, m, c, syscall.EAGAIN
	}
	it := q.items[0]
	q.items[0] = errQueueItem{}
	q.items = q.items[1:]
	e.txStampDequeued(&it) // txstamp.go
	// sock_dequeue_err_skb: the pending error becomes the next entry's
	// when that is an ICMP error, and is cleared when an ICMP error is
	// read with none behind it; a timestamp report leaves it alone.
	next := len(q.items) > 0 && q.items[0].m.isICMP()
	if len(q.items) == 0 {
		e.errq = nil // lets an idle endpoint give its epBusy back
	}
	if next {
		e.err = q.items[0].m.Errno
	} else if it.m.isICMP() {
		e.err = nil
	}
	pending := e.err != nil
	e.unlock()
	if pending {
		e.notify(waiter.EventErr)
	}
	return copy(b, it.payload), len(it.payload), it.m, it.ctl, nil
}

// The origins of ErrQueueEntry (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6).
const (
	originICMP  = 2
	originICMP6 = 3
)

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
