package tcp

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Software transmit timestamps on TCP (SO_TIMESTAMPING's TX_SCHED,
// TX_SOFTWARE and TX_ACK; Linux's tcp_tx_timestamp, __skb_tstamp_tx and
// tcp_ack_tstamp). A send that asks marks its last byte: TX_SCHED and
// TX_SOFTWARE report when the segment holding that byte first goes to
// the link (both at the hand-off, SCHED first, as for datagram
// sockets), TX_ACK when the byte is cumulatively acknowledged.
// Retransmissions report nothing. Linux keeps one mark per skb, so two
// sends coalesced in one skb give one report; sockstack keeps one per
// send, so every send that asked gets its reports however its bytes
// were cut or merged into segments (docs/DECISIONS.md).
//
// The state is made the first time the socket asks and hangs off the
// endpoint's option set (as rxStamp), so an endpoint that never asks
// pays a nil test per write, per segment sent and per ACK that moves
// SND.UNA, and no memory.

// TxStampFlags is what a send asks for, and the socket's OPT_ID mode.
type TxStampFlags uint8

// The bits of TxStampFlags.
const (
	TxStampSched TxStampFlags = 1 << iota // SCM_TSTAMP_SCHED
	TxStampSnd                            // SCM_TSTAMP_SND
	TxStampAck                            // SCM_TSTAMP_ACK
	TxStampID                             // OPT_ID: ee_data is the byte's key
	TxStampIDTCP                          // OPT_ID_TCP: keys count from the write sequence
	// TxStampKey: the send takes a key without asking for a report here
	// (TX_HARDWARE, TX_COMPLETION: SKBTX_ANY_TSTAMP).
	TxStampKey
	// TxStampTSOnly: OPT_TSONLY, reports without the packet.
	TxStampTSOnly
	// TxStampCmsg: OPT_CMSG, an IPv4 report with the packet names its
	// sender.
	TxStampCmsg
)

const txStampReports = TxStampSched | TxStampSnd | TxStampAck

// The ee_info of a report (SCM_TSTAMP_*) and its origin.
const (
	tstampSnd           = 0
	tstampSched         = 1
	tstampAck           = 2
	originTimestamping  = 4
	txStampReportCharge = 576 // a bare report's truesize, as stack.DgramOverhead
	txStampNoOverride   = -1
)

// txStampDrops counts the reports of every endpoint dropped for a full
// receive buffer.
var txStampDrops atomic.Uint64

// TxStampDropsTotal is the number of TCP transmit timestamp reports not
// queued because a socket's receive buffer was full, process-wide.
func TxStampDropsTotal() uint64 { return txStampDrops.Load() }

// txPend is one send's marked byte.
type txPend struct {
	seq uint32 // the send's last byte
	// segSeq and segLen are the segment that first carried it: an ACK
	// report without OPT_TSONLY loops its data (the skb tcp_ack_tstamp
	// stamps).
	segSeq uint32
	segLen int32
	fl     TxStampFlags
	// sndWait: the segment is queued for a flusher, which reports SND.
	sndWait bool
}

// txStampState is an endpoint's transmit timestamp bookkeeping.
type txStampState struct {
	// src gives the socket's flags at each write and report.
	src func() TxStampFlags
	// next replaces the socket's flags for the writes of one send (an
	// SO_TIMESTAMPING control message); txStampNoOverride for none.
	next int16
	// baseUna and baseWrite are SND.UNA and the write sequence when
	// OPT_ID was last turned on: the origins of the keys.
	baseUna, baseWrite uint32
	// pend is the marked bytes not yet acknowledged, in sequence order;
	// pend[:sent] had their SCHED and SND reports.
	pend []txPend
	sent int
	// qbytes is what the queued reports are charged against SO_RCVBUF.
	qbytes int
	drops  uint64
}

// txState is e's state, made on first use.
func (e *Endpoint) txState() *txStampState {
	if e.txStamp == nil {
		s := &txStampState{next: txStampNoOverride}
		e.setOpt(func(o epOpts) epOpts { o.txStamp = s; return o })
	}
	return e.txStamp
}

// SetTxStampSource makes the endpoint read a send's flags from src,
// the socket's SO_TIMESTAMPING translated, at every write from now on.
func (e *Endpoint) SetTxStampSource(src func() TxStampFlags) {
	e.lock()
	defer e.unlock()
	e.txState().src = src
}

// SetTxStampIDBase records the origins of OPT_ID's keys, as
// sock_set_timestamping does when OPT_ID is newly set on a TCP socket:
// SND.UNA, or the write sequence under OPT_ID_TCP.
func (e *Endpoint) SetTxStampIDBase() {
	e.lock()
	defer e.unlock()
	s := e.txState()
	s.baseUna, s.baseWrite = e.sndUna, e.dataEnd()
}

// SetTxStampOverride makes the writes until ClearTxStampOverride ask
// for fl instead of the socket's flags (one sendmsg's SO_TIMESTAMPING
// control message, which __sock_cmsg_send puts in place of the
// socket's record flags). The OPT_ID bits still come from the socket.
func (e *Endpoint) SetTxStampOverride(fl TxStampFlags) {
	e.lock()
	defer e.unlock()
	e.txState().next = int16(fl & (txStampReports | TxStampKey))
}

// ClearTxStampOverride ends SetTxStampOverride.
func (e *Endpoint) ClearTxStampOverride() {
	e.lock()
	defer e.unlock()
	if s := e.txStamp; s != nil {
		s.next = txStampNoOverride
	}
}

// TxStampDrops counts the reports not queued because SO_RCVBUF was full.
func (e *Endpoint) TxStampDrops() uint64 {
	e.lock()
	defer e.unlock()
	if s := e.txStamp; s != nil {
		return s.drops
	}
	return 0
}

// txStampWrote marks the last byte written by a write that just queued
// bytes (tcp_tx_timestamp: the tail skb's last byte).
func (e *Endpoint) txStampWrote() {
	s := e.txStamp
	var fl TxStampFlags
	if s.src != nil {
		fl = s.src()
	}
	if s.next != txStampNoOverride {
		fl = fl&^(txStampReports|TxStampKey) | TxStampFlags(s.next)
	}
	if fl&txStampReports == 0 {
		return
	}
	seq := e.dataEnd() - 1
	if k := len(s.pend); k > 0 && s.pend[k-1].seq == seq {
		return // already marked (TxStampMarkTail after a write that took all)
	}
	s.pend = append(s.pend, txPend{seq: seq, fl: fl & txStampReports})
}

// TxStampMarkTail marks the last byte queued, for a send call that ends
// with part of its bytes unqueued (a non-blocking send, or one an error
// stopped): Write marks only a write that takes all it is given, so that
// a blocking send that waits for room in between makes one report, at
// its end, as Linux's tcp_sendmsg (tcp_tx_timestamp at its out label).
// As there, a byte that has already left is not marked (Linux's
// tcp_write_queue_tail is then empty).
func (e *Endpoint) TxStampMarkTail() {
	e.lock()
	defer e.unlock()
	if e.txStamp != nil && seqLT(e.sndMax, e.dataEnd()) {
		e.txStampWrote()
	}
}

// txStampSent reports the marked bytes the segment seg, of n bytes at
// seq, carries for the first time: the host has just taken it, or
// (queued) a flusher will; then only SCHED is reported now, and it says
// whether SND reports wait for txStampFlushed.
func (e *Endpoint) txStampSent(seg *Segment, seq uint32, n int, queued bool) (sndWait bool) {
	s := e.txStamp
	end := seq + uint32(n)
	var frame []byte
	var from netip.Addr
	for s.sent < len(s.pend) && seqLT(s.pend[s.sent].seq, end) {
		p := &s.pend[s.sent]
		s.sent++
		p.segSeq, p.segLen = seq, int32(n)
		if p.fl&(TxStampSched|TxStampSnd) == 0 {
			continue
		}
		if frame == nil {
			frame, from = e.txStampLoop(seg, n)
		}
		if p.fl&TxStampSched != 0 {
			e.queueTxStamp(tstampSched, p.seq, frame, from)
		}
		if p.fl&TxStampSnd != 0 {
			if queued {
				p.sndWait, sndWait = true, true
			} else {
				e.queueTxStamp(tstampSnd, p.seq, frame, from)
			}
		}
	}
	return sndWait
}

// txStampFlushed reports SND for the marked bytes of seg, a segment
// queued for a flusher, now handed to the host (sent: it took it; if
// not, Linux's driver never had the packet, and SND is not reported).
func (e *Endpoint) txStampFlushed(seg *Segment, sent bool) {
	s := e.txStamp
	seq := seg.Header.Seq
	var frame []byte
	var from netip.Addr
	for i := range s.pend[:s.sent] {
		p := &s.pend[i]
		if !p.sndWait || p.segSeq != seq {
			continue
		}
		p.sndWait = false
		if !sent {
			continue
		}
		if frame == nil {
			frame, from = e.txStampLoop(seg, int(p.segLen))
		}
		e.queueTxStamp(tstampSnd, p.seq, frame, from)
	}
}

// txStampLoop is the looped packet of a report for seg (n bytes of
// payload) and the sender it names: none under OPT_TSONLY. A frame that
// went out on IPv6 names the sender, as ipv6_recv_error does for a
// looped packet with its device; an IPv4 one only under OPT_CMSG
// (ipv4_datagram_support_cmsg).
func (e *Endpoint) txStampLoop(seg *Segment, n int) (frame []byte, from netip.Addr) {
	if e.txStampTSOnly() {
		return nil, netip.Addr{}
	}
	frame = txStampFrame(seg, n)
	if a := seg.Local.Addr(); a.Is6() && !a.Is4In6() || e.txStampFlags()&TxStampCmsg != 0 {
		from = a.Unmap()
	}
	return frame, from
}

// txStampTSOnly reads OPT_TSONLY now, as __skb_tstamp_tx does.
func (e *Endpoint) txStampTSOnly() bool {
	s := e.txStamp
	return s.src == nil || s.src()&TxStampTSOnly != 0
}

// txStampFlags is the socket's flags now.
func (e *Endpoint) txStampFlags() TxStampFlags {
	if s := e.txStamp; s.src != nil {
		return s.src()
	}
	return 0
}

// txStampFrame is the packet a SCHED or SND report loops: the frame as
// Linux's loopback sends it, a 14-byte Ethernet header with zero
// addresses, the IP header (without options or extension headers), the
// TCP header and the payload. Its IP identification and checksums are
// not the ones sent (docs/DECISIONS.md).
func txStampFrame(seg *Segment, n int) []byte {
	const eth = wire.EthernetHeaderLen
	v4 := seg.Remote.Addr().Unmap().Is4()
	ih := wire.IPv6HeaderLen
	if v4 {
		ih = wire.IPv4MinHeaderLen
	}
	th := seg.Header.Len()
	f := make([]byte, eth+ih+th+n)
	src, dst := seg.Local.Addr().Unmap(), seg.Remote.Addr().Unmap()
	ttl := seg.TTL
	if ttl == 0 {
		ttl = 64 // the host's default, which the segment left to it
	}
	if v4 {
		binary.BigEndian.PutUint16(f[12:], wire.EtherTypeIPv4)
		ip := wire.IPv4Header{TOS: seg.TOS, TotalLen: ih + th + n, DF: true, TTL: ttl, Protocol: wire.ProtoTCP, Src: src, Dst: dst}
		ip.Put(f[eth:])
	} else {
		binary.BigEndian.PutUint16(f[12:], wire.EtherTypeIPv6)
		ip := wire.IPv6Header{TrafficClass: seg.TOS, PayloadLen: th + n, NextHeader: wire.ProtoTCP, HopLimit: ttl, Src: src, Dst: dst}
		ip.Put(f[eth:])
	}
	seg.Header.Put(f[eth+ih:])
	k := copy(f[eth+ih+th:], seg.Payload[0])
	copy(f[eth+ih+th+k:], seg.Payload[1])
	return f
}

// txStampAcked reports the marked bytes below ack that asked for
// TX_ACK and forgets every marked byte below it. It runs before the
// acknowledged bytes leave the send ring: a report without OPT_TSONLY
// loops the data of the segment that carried the byte, less what an
// earlier ACK took off its front (tcp_trim_head).
func (e *Endpoint) txStampAcked(ack uint32) {
	s := e.txStamp
	i := 0
	for ; i < len(s.pend) && seqLT(s.pend[i].seq, ack); i++ {
		p := &s.pend[i]
		if p.fl&TxStampAck == 0 {
			continue
		}
		var data []byte
		if !e.txStampTSOnly() {
			start, end := p.segSeq, p.segSeq+uint32(p.segLen)
			if seqLT(start, e.sbSeq) {
				start = e.sbSeq
			}
			if off := int(start - e.sbSeq); seqLT(start, end) && off+int(end-start) <= e.sndLen {
				a, b := e.snd.slices(off, int(end-start))
				data = append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
			}
		}
		e.queueTxStamp(tstampAck, p.seq, data, netip.Addr{})
	}
	if i == 0 {
		return
	}
	n := copy(s.pend, s.pend[i:])
	s.pend = s.pend[:n]
	s.sent = max(s.sent-i, 0)
	if n == 0 && cap(s.pend) > 64 {
		s.pend = nil // a burst of small sends is over: give the array back
	}
}

// queueTxStamp queues one report on the error queue with the looped
// packet pkt (nil: none) and its sender from (invalid: none), charged against SO_RCVBUF with the readable
// bytes as sock_queue_err_skb charges it; a report that does not fit is
// dropped and counted.
func (e *Endpoint) queueTxStamp(info uint32, seq uint32, pkt []byte, from netip.Addr) {
	s := e.txStamp
	if e.userClosed {
		return
	}
	charge := txStampReportCharge + len(pkt)
	if e.rcvLen+s.qbytes+charge >= e.rcvCap {
		s.drops++
		txStampDrops.Add(1)
		return
	}
	var key uint32
	fl := s.src
	if fl != nil {
		if f := fl(); f&TxStampID != 0 {
			// __skb_complete_tx_timestamp: the key relative to
			// sk_tskey, under the socket's OPT_ID at report time.
			key = seq - s.baseUna
			if f&TxStampIDTCP != 0 {
				key = seq - s.baseWrite
			}
		}
	}
	if e.errq == nil {
		e.errq = &errQueue{}
	}
	s.qbytes += charge
	e.errq.items = append(e.errq.items, errQueueItem{m: ErrQueueEntry{
		Errno: syscall.ENOMSG, Origin: originTimestamping, Info: info,
		Data: key, At: e.p.base.UnixNano() + int64(e.p.now()), Offender: from,
	}, payload: pkt})
	e.notify(waiter.EventErr)
}

// txStampDequeued gives back a read report's charge.
func (e *Endpoint) txStampDequeued(it *errQueueItem) {
	if it.m.Origin == originTimestamping {
		if s := e.txStamp; s != nil {
			s.qbytes = max(s.qbytes-txStampReportCharge-len(it.payload), 0)
		}
	}
}
