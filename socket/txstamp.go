package socket

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// Software transmit timestamps on UDP, raw and ping sockets (Linux's
// sock_tx_timestamp, __skb_tstamp_tx, ip_recv_error, ipv6_recv_error):
// a send asks for reports with the socket's SO_TIMESTAMPING record flags
// (TX_SOFTWARE, TX_SCHED), or with an SO_TIMESTAMPING control message
// that replaces them for that send; the reports go to the error queue
// (stack/dgram_txstamp.go) and recvmsg(MSG_ERRQUEUE) reads them with
// SCM_TIMESTAMPING (when SOFTWARE is set) and a sock_extended_err of
// origin SO_EE_ORIGIN_TIMESTAMPING. OPT_ID numbers the sends from 0 (an
// SCM_TS_OPT_ID message gives a send its own number), OPT_TSONLY leaves
// the packet out, OPT_CMSG adds the IP messages about the looped packet
// on an AF_INET socket (an AF_INET6 socket gives them anyway, as Linux).

// SO_EE_ORIGIN_TIMESTAMPING and the SCM_TSTAMP_* points of ee_info.
const (
	SO_EE_ORIGIN_TIMESTAMPING = stack.EEOriginTimestamping
	SCM_TSTAMP_SND            = stack.TstampSnd
	SCM_TSTAMP_SCHED          = stack.TstampSched
	SCM_TSTAMP_ACK            = stack.TstampAck
)

// txReq is the request of a send whose record flags are rec (the
// socket's, or a control message's), keyed from the socket's OPT_ID
// counter unless a control message gave the key (hasKey).
func (o *tsOpts) txReq(rec uint32, key uint32, hasKey bool) stack.TxStampReq {
	fl := uint32(o.v.Load())
	// SKBTX_ANY_TSTAMP: any of these consumes an OPT_ID key, even one
	// whose report sockstack never makes (hardware, completion).
	const anyTx = SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_COMPLETION
	if rec&anyTx == 0 {
		return stack.TxStampReq{}
	}
	r := stack.TxStampReq{
		Sched:  rec&SOF_TIMESTAMPING_TX_SCHED != 0,
		Snd:    rec&SOF_TIMESTAMPING_TX_SOFTWARE != 0,
		TSOnly: fl&SOF_TIMESTAMPING_OPT_TSONLY != 0,
	}
	if fl&SOF_TIMESTAMPING_OPT_ID != 0 {
		if hasKey {
			r.Key = key
		} else {
			r.Key = o.key.Add(1) - 1
		}
	}
	return r
}

// sockReq is the request of a send without control messages.
func (o *tsOpts) sockReq() stack.TxStampReq {
	x := o.v.Load()
	if uint32(x)&sofTxRecordMask == 0 {
		return stack.TxStampReq{} // the common case: one load
	}
	return o.txReq(uint32(x)&sofTxRecordMask, 0, false)
}

// txCtl is a send's timestamp control messages: its record flags, and
// its key when it has one. The request is made once the send went, so
// that a failed send takes no OPT_ID key (as __ip_append_data gives it
// back).
type txCtl struct {
	rec    uint32
	key    uint32
	hasKey bool
}

// ctlReq reads the SOL_SOCKET timestamp messages of a sendmsg control
// buffer as __sock_cmsg_send does: SO_TIMESTAMPING replaces the
// socket's record flags for this send, SCM_TS_OPT_ID its key (EINVAL
// without OPT_ID on the socket, checked before the send). A malformed
// buffer is left to the reader of the whole buffer, which refuses it
// in Linux's order.
func (o *tsOpts) ctlReq(oob []byte) (txCtl, error) {
	rec := uint32(o.v.Load()) & sofTxRecordMask
	var key uint32
	var hasKey, noID bool
	walkCmsgs(oob, func(level, typ int, data []byte) error {
		if level != SOL_SOCKET {
			return nil
		}
		switch typ {
		case SO_TIMESTAMPING_OLD, SO_TIMESTAMPING_NEW:
			if len(data) == 4 {
				if f := binary.NativeEndian.Uint32(data); f&^sofTxRecordMask == 0 {
					rec = f
				}
			}
		case SCM_TS_OPT_ID:
			if uint32(o.v.Load())&SOF_TIMESTAMPING_OPT_ID == 0 {
				noID = true
				return syscall.EINVAL // stops the walk
			}
			if len(data) == 4 {
				key, hasKey = binary.NativeEndian.Uint32(data), true
			}
		}
		return nil
	})
	if noID {
		return txCtl{}, syscall.EINVAL
	}
	return txCtl{rec, key, hasKey}, nil
}

// txStamped queues the reports r asks for about b, just sent to ap.
func (d *dgramEP) txStamped(r stack.TxStampReq, b []byte, ap netip.AddrPort) {
	if r.Any() {
		d.ep.TxTimestamp(b, ap, r)
	}
}

// stampErrCtl is what a read of a timestamp report gives besides the
// timestamps: the offender and the IP messages about the looped packet
// (ipv4_datagram_support_cmsg, ip6_datagram_support_cmsg). A report
// without the packet has neither. An AF_INET socket gives them only
// under OPT_CMSG; an AF_INET6 one always.
func (d *dgramEP) stampErrCtl(m *stack.ErrQueueMsg, c *stack.ICMPCarrier) (offender netip.Addr, anc []byte) {
	if c.NIC == 0 || !m.Offender.IsValid() {
		return netip.Addr{}, nil
	}
	if !d.v6 && uint32(d.ts.v.Load())&SOF_TIMESTAMPING_OPT_CMSG == 0 {
		return netip.Addr{}, nil
	}
	src := m.Offender
	meta := rxMeta{dst: c.Dst, ifindex: c.NIC, ttl: c.TTL, tos: c.TOS, port: c.Port, portOK: c.PortOK}
	if !d.v6 {
		// ip_recv_error: ipi_spec_dst is the source (ipv6_recv_error
		// leaves it zero).
		meta.specDst = src
	}
	if d.v6 && m.V4 {
		src = netip.AddrFrom16(src.As16()) // v4-mapped
	}
	var buf [512]byte
	w := cmsgWriter{b: buf[:]}
	ctlRecv(&w, d.ep.Stack(), d.v6, d.recvInfo.Load(), &meta, m.V4)
	if w.n > 0 {
		anc = append([]byte(nil), buf[:w.n]...)
	}
	return src, anc
}

// SO_SELECT_ERR_QUEUE (asm-generic/socket.h): a queued error or report
// also raises POLLPRI, as datagram_poll does for UDP, raw, ping and
// packet sockets (TCP's poll has no such rule: the flag is kept only).
const SO_SELECT_ERR_QUEUE = 45

// setSelErrQueue sets or clears SOCK_SELECT_ERR_QUEUE.
func (o *tsOpts) setSelErrQueue(v any) error {
	i, err := stampInt(v)
	if err != nil {
		return err
	}
	for {
		old := o.v.Load()
		nv := old &^ tsSelErrQ
		if i != 0 {
			nv |= tsSelErrQ
		}
		if o.v.CompareAndSwap(old, nv) {
			return nil
		}
	}
}

// errQueuePri is the POLLPRI SO_SELECT_ERR_QUEUE adds: set when the flag
// is on and the error queue holds something. One load when it is off.
func (s *Socket) errQueuePri() waiter.EventMask {
	switch e := s.ep.(type) {
	case *dgramEP:
		if e.ts.v.Load()&tsSelErrQ != 0 && e.ep.ErrQueueLen() > 0 {
			return waiter.EventPri
		}
	case *packetEP:
		if e.ts.v.Load()&tsSelErrQ != 0 {
			e.mu.Lock()
			q := e.txQueuedLocked()
			e.mu.Unlock()
			if q {
				return waiter.EventPri
			}
		}
	}
	return 0
}
