package socket

import (
	"encoding/binary"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// Software transmit timestamps on packet sockets (Linux's packet_snd
// with skb_setup_tx_timestamp, and sock_recv_errqueue with SOL_PACKET /
// PACKET_TX_TIMESTAMP): as on datagram sockets (txstamp.go), a send
// that asks queues a report per point (TX_SCHED first, then
// TX_SOFTWARE) on the socket's error queue, with the frame as it went
// to the link (unless OPT_TSONLY). A read of the queue gives the frame,
// the timestamps and PACKET_TX_TIMESTAMP carrying the bare
// sock_extended_err, no address.

// PACKET_TX_TIMESTAMP is the error queue's control message type.
const PACKET_TX_TIMESTAMP = 16

// pktReport is one queued report.
type pktReport struct {
	frame []byte // nil: OPT_TSONLY
	at    int64  // Unix nanoseconds of the stack's clock
	info  uint32 // SCM_TSTAMP_*
	key   uint32
}

// pktTxQueue is a packet socket's error queue (guarded by packetEP.mu),
// charged against SO_RCVBUF with the frames queued for reading.
type pktTxQueue struct {
	items []pktReport
	drops atomic.Uint64
}

// TxStampDrops counts the transmit timestamp reports a packet socket
// did not queue because its receive buffer was full; 0 for others
// (datagram sockets count theirs in ErrQueueDrops).
func (s *Socket) TxStampDrops() uint64 {
	if e, ok := s.ep.(*packetEP); ok {
		return e.txq.drops.Load()
	}
	return 0
}

// txStamped queues the reports c (nil: the socket's flags) asks for
// about frame f, just handed to the link.
func (e *packetEP) txStamped(c *txCtl, f []byte) {
	var r stack.TxStampReq
	if c == nil {
		r = e.ts.sockReq()
	} else if c.rec != 0 {
		r = e.ts.txReq(c.rec, c.key, c.hasKey)
	}
	if !r.Any() {
		return
	}
	var frame []byte
	if !r.TSOnly {
		frame = append([]byte(nil), f...) // reports are rare: their own copy
	}
	clk := e.n.st.Clock()
	queued := false
	e.mu.Lock()
	for _, p := range [2]struct {
		on   bool
		info uint32
	}{{r.Sched, SCM_TSTAMP_SCHED}, {r.Snd, SCM_TSTAMP_SND}} {
		if !p.on || e.closed {
			continue
		}
		// sock_queue_err_skb: refused when the charge would reach
		// SO_RCVBUF.
		cost := len(frame) + stack.DgramOverhead
		if e.charged+cost >= e.rcvbuf {
			e.txq.drops.Add(1)
			continue
		}
		e.charged += cost
		e.txq.items = append(e.txq.items, pktReport{frame: frame, at: max(clk.Now().UnixNano(), 1), info: p.info, key: r.Key})
		queued = true
	}
	e.mu.Unlock()
	if queued {
		e.wq.Notify(waiter.EventErr)
	}
}

// txStampedRaw is txStamped for a frame written as given: a SOCK_DGRAM
// send on loopback, which in sockstack carries no link header, reports
// the frame Linux's loopback would have sent, behind an Ethernet header
// of the destination given, a zero source and the protocol.
func (e *packetEP) txStampedRaw(c *txCtl, nic *stack.NIC, b []byte, dst [6]byte, proto uint16) {
	if c == nil && uint32(e.ts.v.Load())&sofTxRecordMask == 0 || c != nil && c.rec == 0 {
		return // nothing asked: the common case, one load
	}
	if e.typ != SOCK_DGRAM || nic.IsEthernet() || nic.ID() != 1 {
		e.txStamped(c, b)
		return
	}
	f := make([]byte, 14+len(b)) // a report asked for: rare
	copy(f, dst[:])
	binary.BigEndian.PutUint16(f[12:], proto)
	copy(f[14:], b)
	e.txStamped(c, f)
}

// txQueued reports a queued report (POLLERR); e.mu held.
func (e *packetEP) txQueuedLocked() bool { return len(e.txq.items) > 0 }

// sendControl is sendmsg(2) with a control buffer on a packet socket:
// only SOL_SOCKET messages are read (sock_cmsg_send), others passed over.
func (e *packetEP) sendControl(b, oob []byte, to Sockaddr) (int, error) {
	c, err := e.ts.ctlReq(oob)
	if err != nil {
		return 0, err
	}
	if err := walkCmsgs(oob, func(level, typ int, data []byte) error {
		if level != SOL_SOCKET {
			return nil
		}
		return sockCmsg(typ, data)
	}); err != nil {
		return 0, err
	}
	return e.sendCtl(b, to, &c)
}

// recvErrControl is recvmsg(MSG_ERRQUEUE) on a packet socket: the
// oldest report's frame into p, its timestamps and PACKET_TX_TIMESTAMP
// into w. EAGAIN when none is queued; it never waits.
func (e *packetEP) recvErrControl(p []byte, w *cmsgWriter) (n, rflags int, err error) {
	e.mu.Lock()
	if len(e.txq.items) == 0 {
		e.mu.Unlock()
		return 0, 0, syscall.EAGAIN
	}
	r := e.txq.items[0]
	e.txq.items[0] = pktReport{}
	e.txq.items = e.txq.items[1:]
	if len(e.txq.items) == 0 {
		e.txq.items = nil
	}
	e.charged -= len(r.frame) + stack.DgramOverhead
	e.mu.Unlock()
	n = copy(p, r.frame)
	rflags = MSG_ERRQUEUE
	if len(r.frame) > n {
		rflags |= MSG_TRUNC
	}
	e.stamp.recvd(r.at, e.ts.cmsgs(r.at)) // SIOCGSTAMP (ioctl.go)
	e.ts.putErr(w, r.at, e.n.st.Clock())
	var ee [16]byte
	binary.NativeEndian.PutUint32(ee[0:], uint32(syscall.ENOMSG))
	ee[4] = SO_EE_ORIGIN_TIMESTAMPING
	binary.NativeEndian.PutUint32(ee[8:], r.info)
	binary.NativeEndian.PutUint32(ee[12:], r.key)
	w.put(SOL_PACKET, PACKET_TX_TIMESTAMP, ee[:])
	if w.trunc {
		rflags |= MSG_CTRUNC
	}
	return n, rflags, nil
}
