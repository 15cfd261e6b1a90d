package conformance

import (
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// Receive timestamps on TCP (socket/tcpstamp.go, tcp/rxstamp.go;
// Linux's sock_set_timestamp, sock_set_timestamping and
// tcp_recv_timestamp): the options on TCP sockets, OPT_ID's refusal on
// an unconnected or listening one, and what a recvmsg of data gives with
// each option, a control buffer too small, TCP_INQ, MSG_PEEK, an
// accepted socket that inherited the listener's option, and the end of
// the stream. The options are set before the data is sent: Linux stamps
// a segment only while some socket of the host asks for stamps.

// stampsOn makes sure the host stamps arriving packets for the rest of
// the case: Linux turns stamping on for the whole host when a socket
// first asks, from a deferred work item, and a TCP segment that arrived
// before that has no time to report (tcp_recv_timestamp gives nothing
// then; a datagram socket takes the time of the read instead). A UDP
// socket asking for stamps sends to itself until a datagram comes
// stamped (the work item has run; there is no event to wait for, so
// this polls, for up to 5 s), and stays open so that stamping stays on.
// The transcript shows whether it came on.
func (t *T) stampsOn() {
	u := t.UDP()
	a := t.BindLocal(u, "stamper")
	on := false
	defer func() { t.Logf("host stamping on: %v", on) }()
	if u.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx) != nil {
		return
	}
	buf, oob := make([]byte, 16), make([]byte, 128)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if _, err := u.SendTo([]byte("warm"), 0, a); err != nil {
			return
		}
		Ready(u, false, 5*time.Second)
		oobn := 0
		switch v := u.(type) {
		case sockapi.StackSock:
			_, oobn, _, _, _ = v.RecvMsgControl(buf, oob, socket.MSG_DONTWAIT)
		case sockapi.HostSock:
			_, oobn, _, _, _ = unix.Recvmsg(v.Fileno(), buf, oob, unix.MSG_DONTWAIT)
		}
		if on = oobn > 0; on {
			return
		}
		time.Sleep(time.Millisecond) // the kernel's work item: no event to wait on
	}
}

func tcpStampCases() []Case {
	var cs []Case
	cs = append(cs, Case{"tcpstamp/options", false, func(t *T) {
		s := t.TCP()
		t.stampOpts("fresh", s)
		for _, o := range rxStampOpts {
			val := 1
			if o.opt == socket.SO_TIMESTAMPING_OLD || o.opt == socket.SO_TIMESTAMPING_NEW {
				val = rxStampRx
			}
			s := t.TCP()
			t.Logf("%s=%d: %s", o.name, val, ErrName(s.SetSockOptInt(socket.SOL_SOCKET, o.opt, val)))
			t.stampOpts("after "+o.name, s)
		}
		optID := rxStampRx | socket.SOF_TIMESTAMPING_OPT_ID
		t.Logf("unconnected OPT_ID: %s", ErrName(s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, optID)))
		t.Logf("unconnected OPT_ID|OPT_ID_TCP: %s", ErrName(s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			optID|socket.SOF_TIMESTAMPING_OPT_ID_TCP)))
		t.Logf("unconnected TX_SOFTWARE: %s", ErrName(s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_TX_SOFTWARE)))
		l, _ := t.Listener(1)
		t.Logf("listener OPT_ID: %s", ErrName(l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, optID)))
		t.Logf("listener RX: %s", ErrName(l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx)))
		t.Logf("listener OPT_ID after: %s", ErrName(l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, optID)))
		cli, _ := t.Pair()
		t.Logf("connected OPT_ID: %s", ErrName(cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, optID)))
		t.GetInt("SO_TIMESTAMPING", cli, socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD)
	}})
	for _, o := range rxStampOpts {
		val := 1
		if o.opt == socket.SO_TIMESTAMPING_OLD || o.opt == socket.SO_TIMESTAMPING_NEW {
			val = rxStampRx
		}
		cs = append(cs, Case{"tcpstamp/recvmsg " + o.name, false, func(t *T) {
			t.stampsOn()
			cli, srv := t.Pair()
			t.Check(o.name, srv.SetSockOptInt(socket.SOL_SOCKET, o.opt, val))
			lo := time.Now()
			t.Send("send", cli, []byte("stamp"), 0, nil)
			t.rxStampCtl("recvmsg", srv, 256, lo)
			lo = time.Now()
			t.Send("send", cli, []byte("no room"), 0, nil)
			t.rxStampCtl("recvmsg, no control buffer", srv, 0, lo)
			lo = time.Now()
			t.Send("send", cli, []byte("little room"), 0, nil)
			t.rxStampCtl("recvmsg, 20-byte buffer", srv, 20, lo)
			t.Check(o.name+" off", srv.SetSockOptInt(socket.SOL_SOCKET, o.opt, 0))
			lo = time.Now()
			t.Send("send", cli, []byte("off"), 0, nil)
			t.rxStampCtl("recvmsg, off", srv, 256, lo)
		}})
	}
	cs = append(cs, Case{"tcpstamp/with TCP_INQ, MSG_PEEK and the end", false, func(t *T) {
		t.stampsOn()
		cli, srv := t.Pair()
		t.Check("TCP_INQ", srv.SetSockOptInt(socket.SOL_TCP, socket.TCP_INQ, 1))
		t.Check("SO_TIMESTAMPNS", srv.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
		t.Check("SO_TIMESTAMPING", srv.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx))
		lo := time.Now()
		t.Send("send", cli, []byte("inq"), 0, nil)
		t.rxStampCtlFlags("recvmsg MSG_PEEK", srv, 256, socket.MSG_PEEK, lo)
		t.rxStampCtl("recvmsg", srv, 256, lo)
		t.Check("shutdown", cli.Shutdown(socket.SHUT_WR))
		t.rxStampCtl("recvmsg at the end", srv, 256, lo)
	}})
	cs = append(cs, Case{"tcpstamp/accepted socket inherits", false, func(t *T) {
		t.stampsOn()
		l, a := t.Listener(4)
		t.Check("SO_TIMESTAMPNS on the listener", l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
		var clis [2]interface {
			Send([]byte, int) (int, error)
		}
		for i := range clis {
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			clis[i] = c
		}
		for i := range clis {
			srv := t.Accepted(fmt.Sprint("accept ", i), l, 5*time.Second)
			t.stampOpts(fmt.Sprint("accepted ", i), srv)
			lo := time.Now()
			_, err := clis[i].Send([]byte("child"), 0)
			t.Check("send", err)
			t.rxStampCtl(fmt.Sprint("recvmsg ", i), srv, 256, lo)
		}
	}})
	return cs
}
