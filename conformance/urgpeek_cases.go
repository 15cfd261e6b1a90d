package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// MSG_PEEK on TCP with an urgent byte in the stream (tcp/peekoff.go,
// tcp/urgent.go): a peek stops at the urgent mark as a read does,
// wherever SO_PEEK_OFF makes it start; one that starts on an
// out-of-band urgent byte skips it, and the offset then advances by the
// bytes copied only (Linux's tcp_recvmsg_locked moves it by what it
// copied, not by the hole), so the next peek starts one byte early.

// urgStream sends "abc", then "d" with MSG_OOB, then tail (if any), and
// waits until the receiver has all of it.
func (t *T) urgStream(cli sockapi.Sock, tail string) {
	t.Must("sendall", cli.SendAll([]byte("abc"), 0))
	t.Send("send oob", cli, []byte("d"), socket.MSG_OOB, nil)
	if tail != "" {
		t.Must("sendall", cli.SendAll([]byte(tail), 0))
	}
	Settled(cli, 5*time.Second)
	t.Quiesce()
}

// peekStep logs a non-blocking peek of up to size bytes and SO_PEEK_OFF
// after it.
func (t *T) peekStep(step string, s sockapi.Sock, size int) {
	t.Recv(step, s, size, socket.MSG_PEEK|socket.MSG_DONTWAIT)
	t.GetInt(step+" SO_PEEK_OFF", s, socket.SOL_SOCKET, soPeekOff)
}

func urgPeekCases() []Case {
	return []Case{
		{"urgpeek/tcp peek stops at the mark", false, func(t *T) {
			cli, srv := t.Pair()
			t.urgStream(cli, "ef")
			t.Recv("peek", srv, 64, socket.MSG_PEEK)
			t.Recv("peek 2", srv, 2, socket.MSG_PEEK)
			t.Recv("read", srv, 64, 0)
			t.Recv("peek at the mark", srv, 64, socket.MSG_PEEK)
			t.Recv("read", srv, 64, 0)
		}},
		{"urgpeek/tcp SO_PEEK_OFF before the mark", false, func(t *T) {
			cli, srv := t.Pair()
			t.urgStream(cli, "ef")
			t.peekOff("on", srv, 1)
			t.peekStep("peek", srv, 64)
			t.peekStep("peek at the mark", srv, 64)
			t.peekStep("peek one byte early", srv, 64)
			t.peekStep("peek at the end", srv, 64)
			t.Recv("read", srv, 64, 0)
			t.GetInt("after read SO_PEEK_OFF", srv, socket.SOL_SOCKET, soPeekOff)
			t.Recv("read", srv, 64, 0)
			t.GetInt("after read SO_PEEK_OFF", srv, socket.SOL_SOCKET, soPeekOff)
		}},
		{"urgpeek/tcp SO_PEEK_OFF at and past the mark", false, func(t *T) {
			cli, srv := t.Pair()
			t.urgStream(cli, "efg")
			t.peekOff("at", srv, 3)
			t.peekStep("peek", srv, 64)
			t.peekOff("past", srv, 4)
			t.peekStep("peek", srv, 64)
			t.peekOff("before", srv, 2)
			t.peekStep("peek 1", srv, 1)
			t.peekStep("peek 1 more", srv, 1)
			t.peekOff("at", srv, 3)
			t.peekStep("peek 1", srv, 1)
			t.Recv("read", srv, 64, 0)
			t.Recv("oob", srv, 8, socket.MSG_OOB)
			t.Recv("read", srv, 64, 0)
		}},
		{"urgpeek/tcp SO_PEEK_OFF only the urgent byte", false, func(t *T) {
			cli, srv := t.Pair()
			t.urgStream(cli, "")
			t.peekOff("at", srv, 3)
			t.peekStep("peek", srv, 64)
			t.Recv("oob", srv, 8, socket.MSG_OOB)
			t.peekStep("peek after oob", srv, 64)
			t.Must("sendall", cli.SendAll([]byte("xy"), 0))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.peekStep("peek more", srv, 64)
			t.Recv("read", srv, 64, 0)
			t.GetInt("after read SO_PEEK_OFF", srv, socket.SOL_SOCKET, soPeekOff)
			t.Recv("read", srv, 64, 0)
			t.GetInt("after read SO_PEEK_OFF", srv, socket.SOL_SOCKET, soPeekOff)
		}},
		{"urgpeek/tcp SO_PEEK_OFF inline", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("SO_OOBINLINE", srv.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1))
			t.urgStream(cli, "ef")
			t.peekOff("on", srv, 1)
			t.peekStep("peek", srv, 64)
			t.peekStep("peek at the mark", srv, 64)
			t.peekOff("past", srv, 4)
			t.peekStep("peek", srv, 64)
			t.Recv("read", srv, 64, 0)
			t.Recv("read", srv, 64, 0)
		}},
	}
}
