package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// SO_RCVLOWAT against Linux (socket/rcvlowat.go, tcp/rcvlowat.go): the
// value getsockopt reads back on TCP (capped at half of SO_RCVBUF when
// it is set; half of tcp_rmem[2] otherwise, a host setting: the case
// with that cap is a known difference), poll readiness of a loopback
// TCP pair below and at the mark, MSG_DONTWAIT and a receive ended by
// SO_RCVTIMEO returning what there is, and AF_UNIX stream sockets,
// whose poll ignores the mark. The cases run one call after another:
// a receive that waits for bytes still to come cannot be shown, only
// what it returns when it stops. Small writes go out at once
// (TCP_NODELAY) and Settled waits until the peer has them.
func rcvLowatCases() []Case {
	sol := socket.SOL_SOCKET
	lowat := socket.SO_RCVLOWAT
	// pair is a loopback TCP pair whose server is blocking (no timeout
	// of the harness: SO_RCVTIMEO bounds its waits) with the mark set.
	pair := func(t *T, mark int) (cli, srv sockapi.Sock) {
		cli, srv = t.Pair()
		t.Check("TCP_NODELAY", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
		t.Check("set SO_RCVLOWAT", srv.SetSockOptInt(sol, lowat, mark))
		t.GetInt("  read", srv, sol, lowat)
		return cli, srv
	}
	send := func(t *T, cli sockapi.Sock, data string) {
		t.Send("send "+data, cli, []byte(data), 0, nil)
		Settled(cli, 5*time.Second)
	}
	cs := []Case{
		{"rcvlowat/tcp set and read back", false, func(t *T) {
			s := t.TCP()
			t.GetInt("default", s, sol, lowat)
			for _, v := range []int{10, 0, 1, 65536, 100000} {
				t.Check("set", s.SetSockOptInt(sol, lowat, v))
				t.GetInt("  read", s, sol, lowat)
			}
		}},
		{"rcvlowat/tcp inherited by accepted sockets", false, func(t *T) {
			l, a := t.Listener(4)
			t.Check("set on the listener", l.SetSockOptInt(sol, lowat, 100))
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			s := t.Accepted("accept", l, 5*time.Second)
			t.GetInt("accepted", s, sol, lowat)
		}},
		{"rcvlowat/tcp capped at half of tcp_rmem[2]", false, func(t *T) {
			s := t.TCP()
			for _, v := range []int{-1, 1 << 30} {
				t.Check("set", s.SetSockOptInt(sol, lowat, v))
				t.GetInt("  read", s, sol, lowat)
			}
		}},
		{"rcvlowat/tcp capped at half of SO_RCVBUF", false, func(t *T) {
			s := t.TCP()
			t.Check("set SO_RCVBUF 10000", s.SetSockOptInt(sol, socket.SO_RCVBUF, 10000))
			for _, v := range []int{50000, 4000, -1, 0} {
				t.Check("set", s.SetSockOptInt(sol, lowat, v))
				t.GetInt("  read", s, sol, lowat)
			}
			t.GetInt("SO_RCVBUF", s, sol, socket.SO_RCVBUF)
		}},
		{"rcvlowat/tcp connected, set and read back", false, func(t *T) {
			_, srv := pair(t, 200)
			t.Check("set 0", srv.SetSockOptInt(sol, lowat, 0))
			t.GetInt("  read", srv, sol, lowat)
		}},
		{"rcvlowat/tcp poll below and at the mark", false, func(t *T) {
			cli, srv := pair(t, 10)
			send(t, cli, "abcd")
			t.PollEvents("poll 4 of 10", srv)
			send(t, cli, "efghij")
			t.PollEvents("poll 10 of 10", srv)
			t.Check("raise SO_RCVLOWAT to 11", srv.SetSockOptInt(sol, lowat, 11))
			t.PollEvents("poll 10 of 11", srv)
			t.Check("lower SO_RCVLOWAT to 5", srv.SetSockOptInt(sol, lowat, 5))
			t.PollEvents("poll 10 of 5", srv)
			t.Recv("recv", srv, 64, 0)
			t.PollEvents("poll empty", srv)
		}},
		{"rcvlowat/tcp poll at end of file below the mark", false, func(t *T) {
			cli, srv := pair(t, 100)
			send(t, cli, "abc")
			t.PollEvents("poll 3 of 100", srv)
			t.Check("shutdown SHUT_WR", cli.Shutdown(socket.SHUT_WR))
			Settled(cli, 5*time.Second)
			t.PollEvents("poll after FIN", srv)
			t.Recv("recv", srv, 64, 0)
			t.Recv("recv at EOF", srv, 64, 0)
		}},
		{"rcvlowat/tcp MSG_DONTWAIT below the mark", false, func(t *T) {
			cli, srv := pair(t, 100)
			send(t, cli, "0123456789")
			t.Recv("recv MSG_DONTWAIT|MSG_PEEK", srv, 64, socket.MSG_DONTWAIT|socket.MSG_PEEK)
			t.Recv("recv MSG_DONTWAIT", srv, 64, socket.MSG_DONTWAIT)
			t.Recv("recv MSG_DONTWAIT, nothing", srv, 64, socket.MSG_DONTWAIT)
			send(t, cli, "ab")
			srv.SetBlocking(false)
			t.Recv("recv O_NONBLOCK", srv, 64, 0)
		}},
		{"rcvlowat/tcp SO_RCVTIMEO returns what there is", false, func(t *T) {
			cli, srv := pair(t, 100)
			srv.SetBlocking(true)
			t.Check("set SO_RCVTIMEO", srv.SetSockOpt(sol, socket.SO_RCVTIMEO, short))
			send(t, cli, "0123456789")
			t.Recv("recv MSG_PEEK", srv, 64, socket.MSG_PEEK)
			t.Recv("recv", srv, 64, 0)
			t.Recv("recv, nothing", srv, 64, 0)
			send(t, cli, "abcdef")
			t.Recv("recv 4 of 6 (under the mark: the buffer's length)", srv, 4, 0)
			t.Recv("recv the rest", srv, 64, 0)
		}},
		{"rcvlowat/tcp MSG_WAITALL after the mark", false, func(t *T) {
			cli, srv := pair(t, 4)
			srv.SetBlocking(true)
			t.Check("set SO_RCVTIMEO", srv.SetSockOpt(sol, socket.SO_RCVTIMEO, short))
			send(t, cli, "0123456")
			t.Recv("recv MSG_WAITALL", srv, 64, socket.MSG_WAITALL)
		}},
		{"rcvlowat/unix stream", false, func(t *T) {
			_, c, s := t.unixConn(STREAM)
			t.Check("set SO_RCVLOWAT", s.SetSockOptInt(sol, lowat, 8))
			t.GetInt("  read", s, sol, lowat)
			t.Check("set -1 on the client", c.SetSockOptInt(sol, lowat, -1))
			t.GetInt("  read", c, sol, lowat)
			s.SetBlocking(true)
			t.Check("set SO_RCVTIMEO", s.SetSockOpt(sol, socket.SO_RCVTIMEO, short))
			t.Send("send abc", c, []byte("abc"), 0, nil)
			t.PollEvents("poll 3 of 8 (unix_poll ignores the mark)", s)
			t.unixRecv("recv MSG_PEEK (does not wait for the mark)", s, 64, socket.MSG_PEEK)
			t.unixRecv("recv", s, 64, 0)
			t.Send("send defghijk", c, []byte("defghijk"), 0, nil)
			t.unixRecv("recv", s, 64, 0)
			t.Send("send xy", c, []byte("xy"), 0, nil)
			t.unixRecv("recv MSG_DONTWAIT", s, 64, socket.MSG_DONTWAIT)
			t.Check("shutdown SHUT_WR", c.Shutdown(socket.SHUT_WR))
			t.unixRecv("recv at EOF", s, 64, 0)
		}},
		{"rcvlowat/udp stored only", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Check("set SO_RCVLOWAT", b.SetSockOptInt(sol, lowat, 100))
			t.GetInt("  read", b, sol, lowat)
			t.Send("send", a, []byte("abc"), 0, ba)
			t.Recv("recv", b, 64, 0)
		}},
	}
	return cs
}
