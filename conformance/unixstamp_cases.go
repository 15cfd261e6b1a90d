package conformance

import (
	"time"

	"github.com/sockstack/sockstack/socket"
)

// Receive timestamps on AF_UNIX sockets (socket/unix_stamp.go): which
// control messages a recvmsg gets with each timestamp option, beside
// SCM_CREDENTIALS, on each socket type.

func unixStampCases() []Case {
	var cs []Case
	for _, ty := range []int{socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET} {
		tn := unixTypeNames[ty]
		for _, o := range rxStampOpts {
			cs = append(cs, Case{"unixstamp/" + tn + " " + o.name, false, func(t *T) {
				a, b := t.unixPair(ty)
				v := 1
				if o.opt == socket.SO_TIMESTAMPING_OLD || o.opt == socket.SO_TIMESTAMPING_NEW {
					v = rxStampRx
				}
				t.Must("set", b.SetSockOpt(socket.SOL_SOCKET, o.opt, v))
				t.stampOpts("options", b)
				lo := time.Now()
				t.Send("send", a, []byte("hello"), 0, nil)
				t.Send("send", a, []byte("world"), 0, nil)
				t.rxStampCtl("recv", b, 256, lo)
				t.rxStampCtl("recv", b, 256, lo)
				t.Send("send", a, []byte("x"), 0, nil)
				t.rxStampCtl("recv short", b, 20, lo)
				t.Must("passcred", b.SetSockOpt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1))
				t.Send("send", a, []byte("y"), 0, nil)
				t.rxStampCtl("recv with credentials", b, 256, lo)
			}})
		}
	}
	cs = append(cs, Case{"unixstamp/dgram option set after the send", false, func(t *T) {
		a, b := t.unixPair(socket.SOCK_DGRAM)
		t.Send("send", a, []byte("early"), 0, nil)
		lo := time.Now()
		t.Must("set", b.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
		t.rxStampCtl("recv", b, 256, lo)
	}})
	cs = append(cs, Case{"unixstamp/dgram SO_TIMESTAMP and SO_TIMESTAMPING", false, func(t *T) {
		a, b := t.unixPair(socket.SOCK_DGRAM)
		t.Must("set", b.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 1))
		t.Must("set", b.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx))
		t.stampOpts("options", b)
		lo := time.Now()
		t.Send("send", a, []byte("x"), 0, nil)
		t.rxStampCtl("recv", b, 256, lo)
		t.Must("set", b.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 0))
		t.Send("send", a, []byte("y"), 0, nil)
		t.rxStampCtl("recv", b, 256, lo)
	}})
	return cs
}
