// Package tcp is sockstack's TCP: the RFC 9293 state machine with the
// options of RFC 7323 (window scale, timestamps, PAWS) and RFC 2018 (SACK),
// RFC 6298 retransmission timing, NewReno (RFC 6582) and SACK-based
// (RFC 6675) loss recovery with a tail loss probe, pluggable congestion
// control (CUBIC by default, NewReno), flow control with receive-buffer
// auto-tuning, delayed ACKs, Nagle, keepalive, listen queues with SYN
// cookies, the RFC 5961 defences (ACKs for invalid segments rate-limited
// per connection, no global budget), D-SACK (RFC 2883) with undo of
// spurious loss episodes, and urgent data with Linux's semantics.
//
// The stack implements Host and hands every segment for us to
// Protocol.HandleSegment; the socket layer drives Endpoints, which never
// block and report readiness on their waiter.Queue.
//
// Structure: one mutex per Endpoint; the demultiplexing tables of a
// Protocol are under a RWMutex. Lock order: listener, then child
// endpoint, then the Protocol tables, then the TIME_WAIT records. Time
// and timers come only from Host.Clock(); each connection has at most
// two timers (retransmission, persist, keepalive and tail loss probe
// share one; the delayed ACK has the other), re-armed rather than
// recreated. A connection in TIME_WAIT
// leaves its endpoint for a small record (timewait.go) under one timer
// shared by all records, with a cap. Buffer memory, orphans and TIME_WAIT
// records have Linux-like global limits (mem.go, Config). Send and
// receive data live in rings that are allocated on first use and grow
// on demand (pooled), so an idle connection holds no buffer memory;
// out-of-order data waits in the receive ring at its offset, its ranges
// tracked in a small bounded list.
package tcp
