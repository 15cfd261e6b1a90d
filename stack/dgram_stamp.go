package stack

import "net/netip"

// Receive timestamps (SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMPING,
// SIOCGSTAMP): Linux stamps an skb when it arrives, and only while some
// socket has asked (net_enable_timestamp). Here the asking is per
// socket: a datagram endpoint reads the stack's clock for each datagram
// it queues once EnableRxTimestamps was called, and pays one atomic
// load per datagram before that.

// EnableRxTimestamps makes the endpoint record the arrival time of each
// datagram queued from now on. It stays on, as Linux's SOCK_TIMESTAMP
// does once set.
func (e *DgramEndpoint) EnableRxTimestamps() { e.stampRx.Store(true) }

// RxTimestamps reports whether arrival times are recorded.
func (e *DgramEndpoint) RxTimestamps() bool { return e.stampRx.Load() }

// RecvFromAt is RecvFrom (or, with off >= 0, a peek from SO_PEEK_OFF as
// PeekFromInfo) that also gives the datagram's arrival time in Unix
// nanoseconds of the stack's clock, 0 when it was queued before
// EnableRxTimestamps. info may be nil.
func (e *DgramEndpoint) RecvFromAt(b []byte, peek bool, off int, info *PacketInfo) (n, full int, from netip.AddrPort, at int64, err error) {
	if off >= 0 {
		peek = true
	}
	n, full, from, err = e.recvFrom(b, peek, off, info, &at)
	return n, full, from, at, err
}

// arrivalNs is the stack's clock in Unix nanoseconds, never 0 (0 marks
// a datagram without a time; a manual clock may stand at the epoch).
func (s *Stack) arrivalNs() int64 {
	return max(s.clock.Now().UnixNano(), 1)
}
