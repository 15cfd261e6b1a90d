package stack

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Software transmit timestamps (SO_TIMESTAMPING's TX_SOFTWARE and
// TX_SCHED) on UDP, ping and raw sockets, as Linux's __skb_tstamp_tx
// gives them: each report is queued on the socket's error queue with
// ee_errno ENOMSG, ee_origin SO_EE_ORIGIN_TIMESTAMPING, ee_info the
// point it was taken at and, under OPT_ID, ee_data the send's key.
//
// sockstack has no queueing discipline and hands a frame to its link
// when the send runs, so both points are the moment the send finished:
// TX_SCHED's report (Linux: entering __dev_queue_xmit) is queued before
// TX_SOFTWARE's (Linux: the driver's skb_tx_timestamp), in Linux's
// order, each with its own reading of the clock. The looped copy is the
// frame rebuilt from what was sent: a 14-byte Ethernet header (zero
// addresses, as on loopback), the IP header and the datagram; its IP
// identification and checksums are not the ones sent, and IP options
// and IPv6 extension headers are left out (docs/DECISIONS.md).

// EEOriginTimestamping is SO_EE_ORIGIN_TIMESTAMPING.
const EEOriginTimestamping = 4

// Timestamp points (SCM_TSTAMP_*), the ee_info of a report.
const (
	TstampSnd   = 0 // the frame went to the link
	TstampSched = 1 // the frame entered the (absent) queueing layer
	TstampAck   = 2 // TCP: all of it was acknowledged
)

// txStampDrops counts reports dropped for a full receive buffer, all
// sockets of the process (each socket's ErrQueueDrops counts its own).
var txStampDrops atomic.Uint64

// TxStampDrops is the number of transmit timestamp reports not queued
// because a socket's receive buffer was full, process-wide.
func TxStampDrops() uint64 { return txStampDrops.Load() }

// TxStampReq is what one send asks for: which reports, with or without
// the looped packet, and the key OPT_ID puts in ee_data.
type TxStampReq struct {
	Sched, Snd bool
	TSOnly     bool
	Key        uint32
}

// Any reports whether a report is asked for.
func (r TxStampReq) Any() bool { return r.Sched || r.Snd }

// TxTimestamp queues the reports r asks for about the datagram b just
// sent to `to` (invalid: the connected peer). Each is charged against
// SO_RCVBUF as sock_queue_err_skb charges it and, when that is full,
// dropped and counted (ErrQueueDrops).
func (e *DgramEndpoint) TxTimestamp(b []byte, to netip.AddrPort, r TxStampReq) {
	if !r.Any() {
		return
	}
	e.mu.Lock()
	if !to.IsValid() {
		to = e.remote
	}
	local := e.local
	ttl, tos, hdrIncl := e.opts.ttl, e.opts.tos, e.opts.hdrIncl
	dst := to.Addr()
	v4 := dst.Is4() || dst.Is4In6()
	if !v4 {
		ttl, tos = e.opts.hops, e.opts.tclass
	}
	e.mu.Unlock()
	dst = dst.Unmap()
	if dst.IsUnspecified() {
		dst = loopbackOf(dst)
	}
	if ttl < 0 {
		ttl = int(e.s.opts.DefaultTTL)
	}
	src := local.Addr().Unmap()
	nic := 0
	if rt, err := e.s.FindRoute(dst); err == nil {
		if !src.IsValid() || src.IsUnspecified() {
			src = rt.Src.Unmap()
		}
		if rt.NIC != nil {
			nic = rt.NIC.ID()
		}
	}
	var frame []byte
	if !r.TSOnly {
		frame = e.loopedFrame(b, v4, hdrIncl, local.Port(), to.Port(), src, dst, uint8(ttl), tos)
		defer putBuf(frame)
	}
	m := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: syscall.ENOMSG, Origin: EEOriginTimestamping, Data: r.Key}, V4: v4}
	var c ICMPCarrier
	if frame != nil {
		// Linux keeps the sending device with a looped copy (and none
		// with a bare report): a read may describe it (OPT_CMSG).
		m.Offender = src
		c = ICMPCarrier{Dst: dst, TTL: uint8(ttl), TOS: tos, NIC: nic}
		if e.kind == KindUDP {
			c.Port, c.PortOK = to.Port(), true
		}
	}
	queued := false
	e.mu.Lock()
	if r.Sched {
		m.Info = TstampSched
		queued = e.queueStampLocked(m, c, frame) || queued
	}
	if r.Snd {
		m.Info = TstampSnd
		queued = e.queueStampLocked(m, c, frame) || queued
	}
	e.mu.Unlock()
	if queued {
		e.wq.Notify(waiter.EventErr)
	}
}

// queueStampLocked queues one report, taking the clock now; false when
// the receive buffer had no room for it (counted).
func (e *DgramEndpoint) queueStampLocked(m ErrQueueMsg, c ICMPCarrier, frame []byte) bool {
	if !e.pushErrLocked(m, c, frame, -1) { // errqueue.go
		if !e.closed {
			txStampDrops.Add(1)
		}
		return false
	}
	return true
}

// loopedFrame rebuilds the frame a send put on the link (pooled).
func (e *DgramEndpoint) loopedFrame(b []byte, v4, hdrIncl bool, sport, dport uint16, src, dst netip.Addr, ttl, tos uint8) []byte {
	const eth = wire.EthernetHeaderLen
	th := 0
	switch e.kind {
	case KindUDP:
		th = wire.UDPHeaderLen
	}
	ih := wire.IPv4MinHeaderLen
	if !v4 {
		ih = wire.IPv6HeaderLen
	}
	if hdrIncl {
		ih = 0
	}
	f := getBuf(eth + ih + th + len(b))
	clear(f[:eth+ih+th])
	ip := f[eth:]
	proto := e.proto
	if v4 {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		if !hdrIncl {
			h := wire.IPv4Header{TOS: tos, TotalLen: ih + th + len(b), TTL: ttl, Protocol: proto, Src: src, Dst: dst}
			h.Put(ip)
		}
	} else {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		if proto == wire.ProtoICMP && e.kind == KindPing {
			proto = wire.ProtoICMPv6
		}
		if !hdrIncl {
			h := wire.IPv6Header{TrafficClass: tos, PayloadLen: th + len(b), NextHeader: proto, HopLimit: ttl, Src: src, Dst: dst}
			h.Put(ip)
		}
	}
	t := ip[ih:]
	if e.kind == KindUDP {
		wire.PutUDP(t, sport, dport, len(b))
	}
	copy(t[th:], b)
	if e.kind == KindPing && len(b) >= 8 {
		binary.BigEndian.PutUint16(t[4:], sport) // the echo identifier is the port
	}
	return f
}
