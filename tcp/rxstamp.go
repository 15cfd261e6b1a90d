package tcp

import "sync/atomic"

// Receive timestamps on TCP (SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMPING
// with RX_SOFTWARE; Linux's tcp_recv_timestamp). Linux reports the
// arrival time of the last skb a recvmsg copied from; sockstack keeps no
// time per segment in its byte ring, so it records, once the socket
// asked, the arrival time of the latest in-order data segment, and a
// read reports that (docs/DECISIONS.md). The record hangs off the
// endpoint's option set, which is then the endpoint's own (never
// interned, as IP_OPTIONS'), so that an endpoint that never asks pays
// nothing but a nil test per data segment and no byte of memory.

// rxStampCell is one endpoint's record: Unix nanoseconds of the stack's
// clock, 0 before any data came.
type rxStampCell struct{ at atomic.Int64 }

// SetRxTimestamps makes the endpoint record the arrival time of each
// in-order data segment from now on. It stays on (Linux's
// SOCK_TIMESTAMP), and an accepted child of a listener that asked
// records too, with a record of its own.
func (e *Endpoint) SetRxTimestamps() {
	e.lock()
	defer e.unlock()
	if e.rxStamp == nil {
		c := new(rxStampCell)
		e.setOpt(func(o epOpts) epOpts { o.rxStamp = c; return o })
	}
}

// RxTimestamp is the arrival time of the latest in-order data segment
// in Unix nanoseconds, 0 when none came since SetRxTimestamps.
func (e *Endpoint) RxTimestamp() int64 {
	e.lock()
	c := e.rxStamp
	e.unlock()
	if c == nil {
		return 0
	}
	return c.at.Load()
}

// inheritRxStamp gives an accepted child its own record when the
// listener has one.
func (c *Endpoint) inheritRxStamp() {
	if c.txStamp != nil {
		// The listener's transmit state is its own (txstamp.go); the
		// socket layer gives the child a state of its own when it asks.
		c.setOpt(func(o epOpts) epOpts { o.txStamp = nil; return o })
	}
	if c.rxStamp != nil {
		n := new(rxStampCell)
		c.setOpt(func(o epOpts) epOpts { o.rxStamp = n; return o })
	}
}
