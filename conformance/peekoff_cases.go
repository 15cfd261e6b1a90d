package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// SO_PEEK_OFF: where MSG_PEEK starts reading, advanced by each peek and
// pulled back by each read; -1 (the default) turns it off. UDP, TCP and
// AF_UNIX sockets have it; raw and packet sockets answer EOPNOTSUPP.

const soPeekOff = socket.SO_PEEK_OFF

func (t *T) peekOff(step string, s sockapi.Sock, v int) {
	t.Check(step+" set "+itoaConf(v), s.SetSockOptInt(socket.SOL_SOCKET, soPeekOff, v))
	t.GetInt(step+" get", s, socket.SOL_SOCKET, soPeekOff)
}

func itoaConf(v int) string {
	if v < 0 {
		return "-" + itoaConf(-v)
	}
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoaConf(v/10) + string(rune('0'+v%10))
}

func peekOffCases() []Case {
	stream := func(t *T, cli, srv sockapi.Sock) {
		t.GetInt("default", srv, socket.SOL_SOCKET, soPeekOff)
		t.peekOff("on", srv, 0)
		t.Must("sendall", cli.SendAll([]byte("abcdefghij"), 0))
		Settled(cli, 5*time.Second)
		t.Quiesce()
		t.Recv("peek 3", srv, 3, socket.MSG_PEEK)
		t.GetInt("after peek", srv, socket.SOL_SOCKET, soPeekOff)
		t.Recv("peek 3", srv, 3, socket.MSG_PEEK)
		t.GetInt("after peek", srv, socket.SOL_SOCKET, soPeekOff)
		t.Recv("read 2", srv, 2, 0)
		t.GetInt("after read", srv, socket.SOL_SOCKET, soPeekOff)
		t.Recv("peek 10", srv, 10, socket.MSG_PEEK)
		t.GetInt("after peek", srv, socket.SOL_SOCKET, soPeekOff)
		t.Recv("peek at the end", srv, 10, socket.MSG_PEEK|socket.MSG_DONTWAIT)
		t.Recv("read 10", srv, 10, 0)
		t.GetInt("after read", srv, socket.SOL_SOCKET, soPeekOff)
		t.peekOff("off", srv, -1)
		t.peekOff("other negative", srv, -5)
		t.peekOff("large", srv, 1<<30)
	}
	return []Case{
		{"peekoff/tcp", false, func(t *T) {
			cli, srv := t.Pair()
			stream(t, cli, srv)
		}},
		{"peekoff/unix stream", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			stream(t, c, s)
		}},
		{"peekoff/udp", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.GetInt("default", b, socket.SOL_SOCKET, soPeekOff)
			t.peekOff("on", b, 0)
			for _, m := range []string{"first", "second!", "third"} {
				t.Send("send", a, []byte(m), 0, ba)
			}
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.RecvFrom("peek 3", b, 3, socket.MSG_PEEK)
			t.GetInt("after peek", b, socket.SOL_SOCKET, soPeekOff)
			t.RecvFrom("peek 64", b, 64, socket.MSG_PEEK)
			t.GetInt("after peek", b, socket.SOL_SOCKET, soPeekOff)
			t.RecvFrom("peek 64", b, 64, socket.MSG_PEEK)
			t.GetInt("after peek", b, socket.SOL_SOCKET, soPeekOff)
			t.RecvFrom("read", b, 64, 0)
			t.GetInt("after read", b, socket.SOL_SOCKET, soPeekOff)
			t.RecvFrom("peek 64", b, 64, socket.MSG_PEEK)
			t.GetInt("after peek", b, socket.SOL_SOCKET, soPeekOff)
			t.RecvFrom("peek 64", b, 64, socket.MSG_PEEK|socket.MSG_DONTWAIT)
			t.RecvFrom("read", b, 64, 0)
			t.RecvFrom("read", b, 64, 0)
			t.GetInt("after reads", b, socket.SOL_SOCKET, soPeekOff)
		}},
		{"peekoff/unix dgram", false, func(t *T) {
			r := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			name := unixName()
			t.Must("bind", r.Bind(name))
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.peekOff("on", r, 0)
			for _, m := range []string{"first", "second!"} {
				t.Send("send", w, []byte(m), 0, name)
			}
			t.Recv("peek 3", r, 3, socket.MSG_PEEK)
			t.GetInt("after peek", r, socket.SOL_SOCKET, soPeekOff)
			t.Recv("peek 64", r, 64, socket.MSG_PEEK)
			t.GetInt("after peek", r, socket.SOL_SOCKET, soPeekOff)
			t.Recv("read", r, 64, 0)
			t.GetInt("after read", r, socket.SOL_SOCKET, soPeekOff)
			t.Recv("peek 64", r, 64, socket.MSG_PEEK)
		}},
		{"peekoff/raw", true, func(t *T) {
			s := t.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
			t.GetInt("default", s, socket.SOL_SOCKET, soPeekOff)
			t.Check("set", s.SetSockOptInt(socket.SOL_SOCKET, soPeekOff, 0))
		}},
	}
}
