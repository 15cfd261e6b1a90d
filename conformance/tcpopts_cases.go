package conformance

import (
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// TCP-level options of tcp/tcpopts.go: TCP_QUICKACK, TCP_SYNCNT,
// TCP_LINGER2, TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP, TCP_NOTSENT_LOWAT,
// TCP_INQ, TCP_FASTOPEN and TCP_FASTOPEN_CONNECT: defaults, the values
// read back after a set (Linux rounds and clamps several), the errnos
// of bad values and states, what an accepted socket inherits, a
// deferred accept over loopback and TCP_INQ's control message.

// tcpOptNames names the options in transcripts.
var tcpOptNames = []struct {
	name string
	opt  int
}{
	{"TCP_QUICKACK", socket.TCP_QUICKACK},
	{"TCP_SYNCNT", socket.TCP_SYNCNT},
	{"TCP_LINGER2", socket.TCP_LINGER2},
	{"TCP_DEFER_ACCEPT", socket.TCP_DEFER_ACCEPT},
	{"TCP_WINDOW_CLAMP", socket.TCP_WINDOW_CLAMP},
	{"TCP_NOTSENT_LOWAT", socket.TCP_NOTSENT_LOWAT},
	{"TCP_INQ", socket.TCP_INQ},
	{"TCP_FASTOPEN", socket.TCP_FASTOPEN},
	{"TCP_FASTOPEN_CONNECT", socket.TCP_FASTOPEN_CONNECT},
}

// tcpOptValues are the values each option is set to, in order: the
// edges of its range and past them.
var tcpOptValues = map[int][]int{
	socket.TCP_QUICKACK:         {0, 1, 2, 3, -1},
	socket.TCP_SYNCNT:           {0, 1, 6, 127, 128, 255, -1},
	socket.TCP_LINGER2:          {30, 0, 120, 121, 100000, -5, -1},
	socket.TCP_DEFER_ACCEPT:     {1, 2, 3, 4, 5, 7, 8, 10, 60, 100, 1000, 100000, 0, -1},
	socket.TCP_WINDOW_CLAMP:     {100000, 1, 1000, 5000, -1, 0},
	socket.TCP_NOTSENT_LOWAT:    {1, 16384, 1 << 30, -1, 0},
	socket.TCP_INQ:              {1, 0, 2, -1},
	socket.TCP_FASTOPEN:         {5, 0, 4096, 100000, -1},
	socket.TCP_FASTOPEN_CONNECT: {1, 0, 2, -1},
}

// tcpOpts logs every option of s.
func (t *T) tcpOpts(step string, s sockapi.Sock) {
	for _, o := range tcpOptNames {
		t.GetInt(step+" "+o.name, s, socket.SOL_TCP, o.opt)
	}
}

// setTCPOpt sets one option, logging the result and the value read back.
func (t *T) setTCPOpt(s sockapi.Sock, name string, opt, v int) {
	step := fmt.Sprintf("set %s %d", name, v)
	t.Check(step, s.SetSockOptInt(socket.SOL_TCP, opt, v))
	t.GetInt(step+": reads", s, socket.SOL_TCP, opt)
}

// tcpOptSweep sets every option of a fresh socket of family fam to
// each of its values.
func (t *T) tcpOptSweep(fam int) {
	for _, o := range tcpOptNames {
		s := t.Socket(fam, STREAM, 0)
		for _, v := range tcpOptValues[o.opt] {
			t.setTCPOpt(s, o.name, o.opt, v)
		}
		// An optval shorter than an int.
		t.Check("set "+o.name+" 1 byte", s.SetSockOpt(socket.SOL_TCP, o.opt, []byte{1}))
		s.Close()
	}
}

func tcpOptsCases() []Case {
	return []Case{
		{"tcpopts/defaults", false, func(t *T) {
			t.tcpOpts("tcp", t.TCP())
			t.tcpOpts("tcp6", t.Socket(AF_INET6, STREAM, 0))
			l, _ := t.Listener(4)
			t.tcpOpts("listener", l)
		}},
		{"tcpopts/set and read back", false, func(t *T) { t.tcpOptSweep(AF_INET) }},
		{"tcpopts/set and read back ipv6", false, func(t *T) { t.tcpOptSweep(AF_INET6) }},
		{"tcpopts/udp", false, func(t *T) {
			u := t.UDP()
			for _, o := range tcpOptNames {
				t.Check("set "+o.name, u.SetSockOptInt(socket.SOL_TCP, o.opt, 1))
			}
		}},
		{"tcpopts/listener", false, func(t *T) {
			l, _ := t.Listener(4)
			for _, o := range []int{socket.TCP_FASTOPEN, socket.TCP_FASTOPEN_CONNECT, socket.TCP_WINDOW_CLAMP, socket.TCP_DEFER_ACCEPT} {
				for _, v := range []int{0, 3} {
					t.setTCPOpt(l, optName(o), o, v)
				}
			}
		}},
		{"tcpopts/connected", false, func(t *T) {
			cli, srv := t.Pair()
			for _, s := range []sockapi.Sock{cli, srv} {
				for _, o := range []int{socket.TCP_FASTOPEN, socket.TCP_FASTOPEN_CONNECT, socket.TCP_DEFER_ACCEPT, socket.TCP_SYNCNT, socket.TCP_LINGER2, socket.TCP_NOTSENT_LOWAT, socket.TCP_INQ} {
					for _, v := range []int{0, 1} {
						t.setTCPOpt(s, optName(o), o, v)
					}
				}
				t.Check("set TCP_WINDOW_CLAMP 0", s.SetSockOptInt(socket.SOL_TCP, socket.TCP_WINDOW_CLAMP, 0))
				t.setTCPOpt(s, "TCP_WINDOW_CLAMP", socket.TCP_WINDOW_CLAMP, 5000)
				t.Check("set TCP_WINDOW_CLAMP 0 again", s.SetSockOptInt(socket.SOL_TCP, socket.TCP_WINDOW_CLAMP, 0))
			}
		}},
		{"tcpopts/inherited by accept", false, func(t *T) {
			l, a := t.Listener(4)
			set := map[int]int{
				socket.TCP_SYNCNT: 3, socket.TCP_LINGER2: 30, socket.TCP_DEFER_ACCEPT: 5,
				socket.TCP_WINDOW_CLAMP: 50000, socket.TCP_NOTSENT_LOWAT: 1000, socket.TCP_INQ: 1,
				socket.TCP_FASTOPEN: 5,
			}
			for _, o := range tcpOptNames {
				if v, ok := set[o.opt]; ok {
					t.Check("set "+o.name, l.SetSockOptInt(socket.SOL_TCP, o.opt, v))
				}
			}
			cli := t.TCP()
			cli.SetTimeout(5 * time.Second)
			t.Must("connect", cli.Connect(a))
			t.Must("send", cli.SendAll([]byte("x"), 0)) // past the deferral
			srv := t.Accepted("accept", l, 5*time.Second)
			for _, o := range tcpOptNames {
				if o.opt != socket.TCP_WINDOW_CLAMP && o.opt != socket.TCP_QUICKACK {
					t.GetInt("accepted "+o.name, srv, socket.SOL_TCP, o.opt)
				}
			}
			t.GetInt("accepted TCP_WINDOW_CLAMP", srv, socket.SOL_TCP, socket.TCP_WINDOW_CLAMP)
		}},
		{"tcpopts/defer accept holds a connection until data", false, func(t *T) {
			l, cli := t.deferredConn(30)
			t.Quiesce()
			t.PollEvents("listener after the handshake", l)
			t.Check("accept before data", acceptNow(l))
			t.Must("send", cli.SendAll([]byte("hello"), 0))
			Ready(l, false, 5*time.Second)
			t.PollEvents("listener after data", l)
			srv := t.Accepted("accept", l, 5*time.Second)
			t.Recv("recv", srv, 64, 0)
		}},
		{"tcpopts/defer accept takes a FIN as data", false, func(t *T) {
			l, cli := t.deferredConn(30)
			t.Quiesce()
			t.Check("accept before the FIN", acceptNow(l))
			t.Check("shutdown", cli.Shutdown(socket.SHUT_WR))
			Ready(l, false, 5*time.Second)
			srv := t.Accepted("accept", l, 5*time.Second)
			t.Recv("recv eof", srv, 64, 0)
		}},
		{"tcpopts/quickack inherited by accept", false, func(t *T) {
			l, a := t.Listener(4)
			t.Check("set TCP_QUICKACK 0", l.SetSockOptInt(socket.SOL_TCP, socket.TCP_QUICKACK, 0))
			t.GetInt("listener TCP_QUICKACK", l, socket.SOL_TCP, socket.TCP_QUICKACK)
			cli := t.TCP()
			cli.SetTimeout(5 * time.Second)
			t.Check("client TCP_QUICKACK 0", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_QUICKACK, 0))
			t.Must("connect", cli.Connect(a))
			t.GetInt("client TCP_QUICKACK after connect", cli, socket.SOL_TCP, socket.TCP_QUICKACK)
			srv := t.Accepted("accept", l, 5*time.Second)
			t.GetInt("accepted TCP_QUICKACK", srv, socket.SOL_TCP, socket.TCP_QUICKACK)
			t.Check("accepted TCP_QUICKACK 1", srv.SetSockOptInt(socket.SOL_TCP, socket.TCP_QUICKACK, 1))
			t.GetInt("accepted TCP_QUICKACK", srv, socket.SOL_TCP, socket.TCP_QUICKACK)
		}},
		{"tcpopts/defer accept runs out", false, func(t *T) {
			l, _ := t.deferredConn(1)
			t.Quiesce()
			t.Check("accept at once", acceptNow(l))
			// After one SYN-ACK period the SYN-ACK goes again and the
			// client's ACK to it is accepted without data.
			srv := t.Accepted("accept after the deferral", l, 10*time.Second)
			t.Recv("recv", srv, 64, socket.MSG_DONTWAIT)
		}},
		{"tcpopts/notsent lowat stops the writer and poll", false, func(t *T) {
			l, a := t.Listener(4)
			t.Check("listener SO_RCVBUF", l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096))
			cli := t.TCP()
			cli.SetTimeout(5 * time.Second)
			t.Must("connect", cli.Connect(a))
			srv := t.Accepted("accept", l, 5*time.Second)
			t.Check("set TCP_NOTSENT_LOWAT", cli.SetSockOptInt(socket.SOL_TCP, socket.TCP_NOTSENT_LOWAT, 8192))
			t.PollEvents("fresh", cli)
			chunk := make([]byte, 1000)
			total := 0
			for i := 0; i < 4096; i++ {
				n, err := cli.Send(chunk, socket.MSG_DONTWAIT)
				if err != nil {
					// Unsent bytes may still be leaving into the window:
					// stop once the window is closed.
					t.Quiesce()
					if n, err = cli.Send(chunk, socket.MSG_DONTWAIT); err != nil {
						t.Logf("writer stopped: %s", ErrName(err))
						break
					}
				}
				total += n
			}
			t.Quiesce()
			nsd, _ := cli.Ioctl(socket.SIOCOUTQNSD, 0)
			t.Logf("unsent at or above the bound: %v", nsd >= 8192)
			t.Logf("under 64 KiB queued: %v", total < 64<<10)
			t.PollEvents("stopped", cli)
			buf := make([]byte, 64<<10)
			for got := 0; got < total; {
				n, err := srv.Recv(buf, 0)
				if err != nil || n == 0 {
					t.Logf("recv: %d %v", n, err)
					break
				}
				got += n
			}
			Ready(cli, true, 5*time.Second)
			t.PollEvents("drained", cli)
		}},
		{"tcpopts/inq control message", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("set TCP_INQ", srv.SetSockOptInt(socket.SOL_TCP, socket.TCP_INQ, 1))
			t.Must("sendall", cli.SendAll([]byte("hello world"), 0))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.RecvCtl("recv 5", srv, 5, 64, 0)
			t.RecvCtl("peek 2", srv, 2, 64, socket.MSG_PEEK)
			t.RecvCtl("recv rest, no room for control", srv, 64, 0, 0)
			t.RecvCtl("recv nothing", srv, 64, 64, recvNoWait)
			t.Must("sendall", cli.SendAll([]byte("bye"), 0))
			t.Check("shutdown", cli.Shutdown(socket.SHUT_WR))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.RecvCtl("recv 1 before the FIN", srv, 1, 64, 0)
			t.RecvCtl("recv to the FIN", srv, 64, 64, 0)
			t.RecvCtl("recv eof", srv, 64, 64, 0)
			t.Check("clear TCP_INQ", srv.SetSockOptInt(socket.SOL_TCP, socket.TCP_INQ, 0))
			t.RecvCtl("recv eof without", srv, 64, 64, 0)
		}},
	}
}

// acceptNow is a non-blocking accept; the accepted socket is tracked.
func acceptNow(l sockapi.Sock) error {
	l.SetTimeout(time.Millisecond)
	s, _, err := l.Accept()
	if err == nil {
		s.Close()
	}
	return err
}

func optName(opt int) string {
	for _, o := range tcpOptNames {
		if o.opt == opt {
			return o.name
		}
	}
	return fmt.Sprint(opt)
}

// deferredConn is a listener with TCP_DEFER_ACCEPT secs and a client
// connected to it (5 s timeout).
func (t *T) deferredConn(secs int) (l, cli sockapi.Sock) {
	l, a := t.Listener(4)
	t.Check(fmt.Sprintf("set TCP_DEFER_ACCEPT %d", secs), l.SetSockOptInt(socket.SOL_TCP, socket.TCP_DEFER_ACCEPT, secs))
	cli = t.TCP()
	cli.SetTimeout(5 * time.Second)
	t.Must("connect", cli.Connect(a))
	return l, cli
}
