package socket

import (
	"encoding/binary"

	"github.com/sockstack/sockstack/tcp"
)

// Software transmit timestamps on TCP sockets (Linux's tcp_tx_timestamp,
// tcp_ack_tstamp): the socket's SO_TIMESTAMPING record flags, or one
// sendmsg's SO_TIMESTAMPING control message, mark the last byte a send
// queued, and the endpoint (tcp/txstamp.go) queues SCM_TSTAMP_SCHED and
// SCM_TSTAMP_SND reports when that byte first leaves and SCM_TSTAMP_ACK
// when it is acknowledged. The endpoint reads the flags through
// tcpTxFlags once the socket made its timestamp state (tcpstamp.go), so
// a connection that never touches a timestamp option has none.

// tcpTxFlags translates SO_TIMESTAMPING flags for the endpoint.
func tcpTxFlags(fl uint32) tcp.TxStampFlags {
	var f tcp.TxStampFlags
	if fl&SOF_TIMESTAMPING_TX_SCHED != 0 {
		f |= tcp.TxStampSched
	}
	if fl&SOF_TIMESTAMPING_TX_SOFTWARE != 0 {
		f |= tcp.TxStampSnd
	}
	if fl&SOF_TIMESTAMPING_TX_ACK != 0 {
		f |= tcp.TxStampAck
	}
	if fl&(SOF_TIMESTAMPING_TX_HARDWARE|SOF_TIMESTAMPING_TX_COMPLETION) != 0 {
		f |= tcp.TxStampKey
	}
	if fl&SOF_TIMESTAMPING_OPT_TSONLY != 0 {
		f |= tcp.TxStampTSOnly
	}
	if fl&SOF_TIMESTAMPING_OPT_CMSG != 0 {
		f |= tcp.TxStampCmsg
	}
	if fl&SOF_TIMESTAMPING_OPT_ID != 0 {
		f |= tcp.TxStampID
		if fl&SOF_TIMESTAMPING_OPT_ID_TCP != 0 {
			f |= tcp.TxStampIDTCP
		}
	}
	return f
}

// txStampSource hooks the socket's flags to its endpoint.
func (t *tcpEP) txStampSource(st *tcpStamp) {
	t.ep.SetTxStampSource(func() tcp.TxStampFlags { return tcpTxFlags(uint32(st.ts.v.Load())) })
}

// tcpCtlStamp reads a TCP sendmsg's SO_TIMESTAMPING control message:
// its record flags (the last one wins, as __sock_cmsg_send) and whether
// there was one. The buffer was checked before.
func tcpCtlStamp(oob []byte) (rec uint32, ok bool) {
	walkCmsgs(oob, func(level, typ int, data []byte) error {
		if level == SOL_SOCKET && (typ == SO_TIMESTAMPING_OLD || typ == SO_TIMESTAMPING_NEW) && len(data) == 4 {
			rec, ok = binary.NativeEndian.Uint32(data), true
		}
		return nil
	})
	return rec, ok
}

// sendStamped is a TCP send with an SO_TIMESTAMPING control message:
// its record flags replace the socket's for the bytes this send queues.
func (s *Socket) sendStamped(t *tcpEP, rec uint32, b []byte, flags int, to Sockaddr) (int, error) {
	t.tcpStampOpts(true) // the endpoint reads the socket's OPT_ID bits
	t.ep.SetTxStampOverride(tcpTxFlags(rec))
	defer t.ep.ClearTxStampOverride()
	return s.SendTo(b, flags, to)
}
