package conformance

import (
	"bytes"
	"strings"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// Software transmit timestamps on TCP (tcp/txstamp.go,
// socket/tcptxstamp.go; Linux's tcp_tx_timestamp, __skb_tstamp_tx and
// tcp_ack_tstamp): the reports TX_SCHED, TX_SOFTWARE and TX_ACK queue
// for a send, set on the socket or by one sendmsg's SO_TIMESTAMPING
// control message, in order, one per send however many segments carried
// it, with POLLERR while one is queued and no pending error. The reports
// are bare (OPT_TSONLY) and read without OPT_ID and without SOFTWARE:
// ee_data and the timestamp itself are left to a read path that gives
// them on TCP (see docs/DECISIONS.md).

const tcpTxAll = socket.SOF_TIMESTAMPING_TX_SCHED | socket.SOF_TIMESTAMPING_TX_SOFTWARE |
	socket.SOF_TIMESTAMPING_TX_ACK | socket.SOF_TIMESTAMPING_OPT_TSONLY

// waitErrQueue waits up to 5 s for a report on s: an ACK's report comes
// when the peer's ACK does, not with the send. (WaitErr and errQueued
// ask a stack socket's readiness for EventIn only, which a TCP socket
// answers without EventErr; poll(2) always adds it.)
func (t *T) waitErrQueue(s sockapi.Sock) {
	switch v := s.(type) {
	case sockapi.StackSock:
		e := waiter.NewEntry()
		v.Waiter().Register(e, waiter.EventErr)
		defer v.Waiter().Unregister(e)
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		for !t.tcpErrQueued(s) {
			select {
			case <-e.C:
			case <-timer.C:
				return
			}
		}
	case sockapi.HostSock:
		fds := []unix.PollFd{{Fd: int32(v.Fileno())}}
		unix.Poll(fds, 5000)
	}
}

// tcpErrQueued reports POLLERR on s now.
func (t *T) tcpErrQueued(s sockapi.Sock) bool {
	if v, ok := s.(sockapi.StackSock); ok {
		return v.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr != 0
	}
	return t.errQueued(s)
}

// tcpTxReads reads n reports from s, each waited for.
func (t *T) tcpTxReads(step string, s sockapi.Sock, n int, lo time.Time) {
	for i := 0; i < n; i++ {
		t.waitErrQueue(s)
		t.tcpTxRead(step, s, lo)
	}
	t.Logf("%s: more queued: %v", step, t.tcpErrQueued(s))
}

// tcpTxRead logs one recvmsg(MSG_ERRQUEUE) of s (txErrRead without its
// wait, which a TCP socket would always sit out).
func (t *T) tcpTxRead(step string, s sockapi.Sock, lo time.Time) {
	buf, oob := make([]byte, 256), make([]byte, 256)
	var n, oobn, rflags int
	var err error
	flags := socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
	switch v := s.(type) {
	case sockapi.StackSock:
		n, oobn, rflags, _, err = v.RecvMsgControl(buf, oob, flags)
	case sockapi.HostSock:
		n, oobn, rflags, _, err = unix.Recvmsg(v.Fileno(), buf, oob, flags)
	}
	hi := time.Now()
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	parts := t.errCmsgTexts(oob[:oobn], lo, hi)
	// The looped packet's headers hold an IP ID, checksums and TCP
	// timestamps that differ: its length and last bytes are compared.
	tail := buf[max(0, min(n, len(buf))-3):min(n, len(buf))]
	t.Logf("%s: %d bytes ending %q, flags %s: %s", step, n, tail, recvFlagsText(rflags), strings.Join(parts, "; "))
}

// tcpTxPair is a connected pair whose client has an MSS of mss (0: the
// default).
func (t *T) tcpTxPair(mss int) (cli, srv sockapi.Sock) {
	if mss == 0 {
		return t.Pair()
	}
	l, a := t.Listener(4)
	cli = t.TCP()
	cli.SetTimeout(5 * time.Second)
	t.Check("TCP_MAXSEG", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG, mss))
	t.Must("connect", cli.Connect(a))
	srv = t.Accepted("accept", l, 5*time.Second)
	return cli, srv
}

func tcpTxStampCases() []Case {
	var cs []Case
	cs = append(cs, Case{"tcptx/SCHED, SND and ACK of one send", false, func(t *T) {
		cli, srv := t.Pair()
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll))
		lo := time.Now()
		t.Send("send", cli, []byte("hello"), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
		t.Recv("recv MSG_DONTWAIT with nothing queued", cli, 16, socket.MSG_DONTWAIT)
		t.GetInt("SO_ERROR", cli, socket.SOL_SOCKET, socket.SO_ERROR)
		t.Recv("peer reads", srv, 16, 0)
	}})
	cs = append(cs, Case{"tcptx/a queued report and POLLERR", false, func(t *T) {
		cli, _ := t.Pair()
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_TX_ACK|socket.SOF_TIMESTAMPING_OPT_TSONLY))
		t.Send("send", cli, []byte("x"), 0, nil)
		t.waitErrQueue(cli)
		t.Logf("queued: %v", t.tcpErrQueued(cli))
		t.Recv("recv MSG_DONTWAIT", cli, 16, socket.MSG_DONTWAIT)
		t.Send("send again", cli, []byte("y"), 0, nil)
		t.tcpTxReads("report", cli, 2, time.Now())
		t.Logf("after the reads: %v", t.tcpErrQueued(cli))
	}})
	cs = append(cs, Case{"tcptx/one report per send over many segments", false, func(t *T) {
		cli, srv := t.tcpTxPair(536)
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll))
		lo := time.Now()
		t.Send("send 5000 bytes", cli, bytes.Repeat([]byte("s"), 5000), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
		got, buf := 0, make([]byte, 8192)
		for got < 5000 {
			n, err := srv.Recv(buf, 0)
			if err != nil || n == 0 {
				t.Logf("peer reads: %s", ErrName(err))
				break
			}
			got += n
		}
		t.Logf("peer read %d bytes", got)
	}})
	cs = append(cs, Case{"tcptx/sends in turn", false, func(t *T) {
		cli, _ := t.Pair()
		t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll))
		lo := time.Now()
		for _, m := range []string{"one", "two", "three"} {
			t.Send("send "+m, cli, []byte(m), 0, nil)
			t.tcpTxReads("report for "+m, cli, 3, lo)
		}
		t.Check("SO_TIMESTAMPING off", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, 0))
		t.Send("send off", cli, []byte("off"), 0, nil)
		t.Check("SO_TIMESTAMPING TX_ACK", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_TX_ACK|socket.SOF_TIMESTAMPING_OPT_TSONLY))
		t.Send("send ack only", cli, []byte("ack"), 0, nil)
		// ACKs are cumulative and reports queue in order: a report for
		// the unstamped send would come first.
		t.tcpTxReads("report", cli, 1, lo)
	}})
	cs = append(cs, Case{"tcptx/per-send control messages", false, func(t *T) {
		cli, _ := t.Pair()
		t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
		t.Check("SO_TIMESTAMPING OPT_TSONLY", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_OPT_TSONLY))
		lo := time.Now()
		t.SendCtl("SO_TIMESTAMPING TX_SOFTWARE|TX_ACK", cli, []byte("a"),
			tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE|socket.SOF_TIMESTAMPING_TX_ACK), nil)
		t.tcpTxReads("report", cli, 2, lo)
		t.SendCtl("SO_TIMESTAMPING_NEW TX_SCHED", cli, []byte("b"), tsCmsg(socket.SO_TIMESTAMPING_NEW, socket.SOF_TIMESTAMPING_TX_SCHED), nil)
		t.tcpTxReads("report", cli, 1, lo)
		t.Send("plain send", cli, []byte("c"), 0, nil)
		t.Check("SO_TIMESTAMPING TX_SCHED|OPT_TSONLY", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_TX_SCHED|socket.SOF_TIMESTAMPING_OPT_TSONLY))
		t.SendCtl("SO_TIMESTAMPING 0 replaces the socket's", cli, []byte("d"), tsCmsg(socket.SO_TIMESTAMPING_OLD, 0), nil)
		t.SendCtl("SO_TIMESTAMPING TX_COMPLETION", cli, []byte("e"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_COMPLETION), nil)
		t.SendCtl("SO_TIMESTAMPING RX_SOFTWARE", cli, []byte("f"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_RX_SOFTWARE), nil)
		t.SendCtl("SCM_TS_OPT_ID", cli, []byte("g"), tsCmsg(socket.SCM_TS_OPT_ID, 3), nil)
		t.SendCtl("SO_TIMESTAMPING TX_ACK", cli, []byte("h"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_ACK), nil)
		t.tcpTxReads("report", cli, 1, lo)
		t.Send("socket's flags again", cli, []byte("i"), 0, nil)
		t.tcpTxReads("report", cli, 1, lo)
	}})
	for _, v6 := range []bool{false, true} {
		name := "tcptx/without OPT_TSONLY: the looped packet"
		if v6 {
			name += ", tcp6"
		}
		cs = append(cs, Case{name, false, func(t *T) {
			var cli sockapi.Sock
			if v6 {
				l, a := t.listen6(lo6(0), -1)
				cli = t.Socket(AF_INET6, STREAM, 0)
				cli.SetTimeout(5 * time.Second)
				t.Must("connect", cli.Connect(a))
				t.accept6(l)
			} else {
				cli, _ = t.Pair()
			}
			t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
			t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll&^socket.SOF_TIMESTAMPING_OPT_TSONLY))
			lo := time.Now()
			t.Send("send", cli, []byte("hello"), 0, nil)
			t.tcpTxReads("report", cli, 3, lo)
			t.SendCtl("SO_TIMESTAMPING TX_ACK", cli, []byte("again"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_ACK), nil)
			t.tcpTxReads("report", cli, 1, lo)
		}})
	}
	cs = append(cs, Case{"tcptx/OPT_CMSG names the sender", false, func(t *T) {
		cli, _ := t.Pair()
		t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			tcpTxAll&^socket.SOF_TIMESTAMPING_OPT_TSONLY|socket.SOF_TIMESTAMPING_OPT_CMSG))
		lo := time.Now()
		t.Send("send", cli, []byte("cmsg"), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
		t.Check("SO_TIMESTAMPING with OPT_TSONLY", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			tcpTxAll|socket.SOF_TIMESTAMPING_OPT_CMSG))
		t.Send("send", cli, []byte("bare"), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
	}})
	cs = append(cs, Case{"tcptx/accepted socket inherits the flags", false, func(t *T) {
		l, a := t.Listener(4)
		t.Check("SO_TIMESTAMPING on the listener", l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll))
		c := t.TCP()
		c.SetTimeout(5 * time.Second)
		t.Must("connect", c.Connect(a))
		srv := t.Accepted("accept", l, 5*time.Second)
		t.GetInt("SO_TIMESTAMPING", srv, socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD)
		lo := time.Now()
		t.Send("accepted socket sends", srv, []byte("child"), 0, nil)
		t.tcpTxReads("report", srv, 3, lo)
		t.Logf("client queued: %v", t.tcpErrQueued(c))
	}})
	cs = append(cs, Case{"tcptx/tcp6 SCHED, SND and ACK", false, func(t *T) {
		l, a := t.listen6(lo6(0), -1)
		cli := t.Socket(AF_INET6, STREAM, 0)
		cli.SetTimeout(5 * time.Second)
		t.Must("connect", cli.Connect(a))
		t.accept6(l)
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, tcpTxAll))
		lo := time.Now()
		t.Send("send", cli, []byte("six"), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
	}})
	return cs
}

// tcpTxStampReadCases look at what a TCP error-queue read gives beside
// the report: ee_data (the OPT_ID key) and the timestamp messages
// (socket/recverr.go, socket/inet_recvopts.go).
func tcpTxStampReadCases() []Case {
	var cs []Case
	for _, c := range []struct {
		name  string
		flags int
	}{
		{"OPT_ID from SND.UNA", socket.SOF_TIMESTAMPING_OPT_ID},
		{"OPT_ID_TCP from the write sequence", socket.SOF_TIMESTAMPING_OPT_ID | socket.SOF_TIMESTAMPING_OPT_ID_TCP},
	} {
		cs = append(cs, Case{"tcptx/" + c.name, false, func(t *T) {
			cli, _ := t.Pair()
			// Corked bytes are queued, not sent: the write sequence is
			// ahead of SND.UNA when OPT_ID is set.
			t.Check("TCP_CORK", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_CORK, 1))
			t.Send("send corked", cli, []byte("0123456789"), 0, nil)
			fl := c.flags | socket.SOF_TIMESTAMPING_TX_SOFTWARE | socket.SOF_TIMESTAMPING_TX_ACK | socket.SOF_TIMESTAMPING_OPT_TSONLY
			t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, fl))
			t.Check("TCP_CORK off", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_CORK, 0))
			lo := time.Now()
			t.Send("send", cli, []byte("abcde"), 0, nil)
			t.tcpTxReads("report", cli, 2, lo)
			t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
			t.Send("send", cli, []byte("xyz"), 0, nil)
			t.tcpTxReads("report", cli, 2, lo)
		}})
	}
	cs = append(cs, Case{"tcptx/SOFTWARE and SO_TIMESTAMPNS give the time", false, func(t *T) {
		cli, _ := t.Pair()
		t.Check("SO_TIMESTAMPNS", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
		t.Check("SO_TIMESTAMPING", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			tcpTxAll|socket.SOF_TIMESTAMPING_SOFTWARE))
		lo := time.Now()
		t.Send("send", cli, []byte("when"), 0, nil)
		t.tcpTxReads("report", cli, 3, lo)
	}})
	return cs
}
