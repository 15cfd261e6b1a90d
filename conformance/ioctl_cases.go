package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// ioctl(2) on sockets (socket/ioctl.go): the queue lengths (SIOCINQ /
// FIONREAD, SIOCOUTQ, SIOCOUTQNSD), SIOCATMARK and FIONBIO per socket
// type and state, and ENOTTY for requests a protocol does not know.
// Values that depend on timing are read once the peer has settled.

// ioctlName names the requests in transcripts.
var ioctlName = map[uint]string{
	socket.SIOCINQ: "SIOCINQ", socket.SIOCOUTQ: "SIOCOUTQ", socket.SIOCOUTQNSD: "SIOCOUTQNSD",
	socket.SIOCATMARK: "SIOCATMARK", socket.FIONBIO: "FIONBIO", tcgets: "TCGETS",
}

const tcgets = 0x5401 // a terminal's request: no socket knows it

// Ioctl logs one ioctl: the int it returned, or the error.
func (t *T) Ioctl(step string, s sockapi.Sock, req uint, arg int) int {
	v, err := s.Ioctl(req, arg)
	if err != nil {
		t.Logf("%s %s: %s", step, ioctlName[req], ErrName(err))
		return -1
	}
	t.Logf("%s %s: %d", step, ioctlName[req], v)
	return v
}

// queues logs SIOCINQ, SIOCOUTQ, SIOCOUTQNSD and SIOCATMARK of s.
func (t *T) queues(step string, s sockapi.Sock) {
	for _, r := range []uint{socket.SIOCINQ, socket.SIOCOUTQ, socket.SIOCOUTQNSD, socket.SIOCATMARK} {
		t.Ioctl(step, s, r, 0)
	}
}

func ioctlCases() []Case {
	return []Case{
		{"ioctl/tcp unconnected", false, func(t *T) {
			s := t.TCP()
			t.queues("fresh", s)
			t.Ioctl("fresh", s, tcgets, 0)
		}},
		{"ioctl/tcp listener", false, func(t *T) {
			l, _ := t.Listener(4)
			t.queues("listener", l)
		}},
		{"ioctl/tcp queued bytes", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("hello world"), 0))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.queues("sender", cli)
			t.queues("receiver", srv)
			t.Recv("recv 5", srv, 5, 0)
			t.Ioctl("after 5", srv, socket.SIOCINQ, 0)
			t.Recv("recv rest", srv, 64, 0)
			t.Ioctl("drained", srv, socket.SIOCINQ, 0)
		}},
		{"ioctl/tcp after the peer's FIN", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("bye"), 0))
			t.Check("shutdown", cli.Shutdown(socket.SHUT_WR))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Ioctl("data and FIN", srv, socket.SIOCINQ, 0)
			t.Recv("recv", srv, 64, 0)
			t.Ioctl("only FIN", srv, socket.SIOCINQ, 0)
			t.Recv("recv eof", srv, 64, 0)
		}},
		{"ioctl/tcp urgent byte out of band", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("abc"), 0))
			t.Send("send oob", cli, []byte("d"), socket.MSG_OOB, nil)
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Ioctl("before the mark", srv, socket.SIOCINQ, 0)
			t.Ioctl("before the mark", srv, socket.SIOCATMARK, 0)
			t.Recv("recv", srv, 64, 0)
			t.Ioctl("at the mark", srv, socket.SIOCINQ, 0)
			t.Ioctl("at the mark", srv, socket.SIOCATMARK, 0)
			t.Recv("recv oob", srv, 8, socket.MSG_OOB)
			t.Ioctl("oob read", srv, socket.SIOCINQ, 0)
			t.Must("sendall", cli.SendAll([]byte("ef"), 0))
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Ioctl("more after the mark", srv, socket.SIOCINQ, 0)
			t.Recv("recv", srv, 64, 0)
			t.Ioctl("past the mark", srv, socket.SIOCINQ, 0)
			t.Ioctl("past the mark", srv, socket.SIOCATMARK, 0)
		}},
		{"ioctl/tcp urgent byte inline", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("SO_OOBINLINE", srv.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1))
			t.Must("sendall", cli.SendAll([]byte("abc"), 0))
			t.Send("send oob", cli, []byte("d"), socket.MSG_OOB, nil)
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Ioctl("inline", srv, socket.SIOCINQ, 0)
			t.Ioctl("inline", srv, socket.SIOCATMARK, 0)
			t.Recv("recv", srv, 64, 0)
			t.Ioctl("at the mark", srv, socket.SIOCINQ, 0)
			t.Ioctl("at the mark", srv, socket.SIOCATMARK, 0)
		}},
		{"ioctl/tcp FIONBIO", false, func(t *T) {
			cli, srv := t.Pair()
			t.Ioctl("on", srv, socket.FIONBIO, 1)
			t.Recv("recv empty", srv, 8, 0)
			t.Ioctl("off", srv, socket.FIONBIO, 0)
			t.Must("sendall", cli.SendAll([]byte("x"), 0))
			t.Recv("recv blocking", srv, 8, 0)
			t.Ioctl("on a listener", t.TCP(), socket.FIONBIO, 1)
		}},
		{"ioctl/udp next datagram", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.queues("empty", b)
			t.Ioctl("empty", b, tcgets, 0)
			t.Send("send 5", a, []byte("12345"), 0, ba)
			t.Send("send 100", a, make([]byte, 100), 0, ba)
			t.Send("send 0", a, nil, 0, ba)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.Ioctl("sender", a, socket.SIOCOUTQ, 0)
			for i := 0; i < 3; i++ {
				t.Ioctl("queued", b, socket.SIOCINQ, 0)
				t.Recv("recv", b, 200, 0)
			}
			t.Ioctl("drained", b, socket.SIOCINQ, 0)
		}},
		{"ioctl/udp6 next datagram", false, func(t *T) {
			a, b := t.Socket6(DGRAM), t.Socket6(DGRAM)
			t.Bind6("bind", a, lo6(0), "A")
			bb, _ := t.Bind6("bind", b, lo6(0), "B")
			b.SetTimeout(5 * time.Second)
			t.Send("send 7", a, []byte("1234567"), 0, bb)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.Ioctl("queued", b, socket.SIOCINQ, 0)
		}},
		{"ioctl/raw icmp next datagram", true, func(t *T) {
			s := t.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
			s.SetTimeout(5 * time.Second)
			t.Ioctl("empty", s, socket.SIOCINQ, 0)
			echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}
			sum := wire.Checksum(echo)
			echo[2], echo[3] = byte(sum>>8), byte(sum)
			t.Send("send echo", s, echo, 0, t.Loop(0))
			Ready(s, false, 5*time.Second)
			t.Quiesce()
			t.Ioctl("queued (IP header included)", s, socket.SIOCINQ, 0)
			t.Ioctl("queued", s, socket.SIOCOUTQ, 0)
			t.Ioctl("queued", s, socket.SIOCATMARK, 0)
		}},
		{"ioctl/unix stream", false, func(t *T) {
			l, c, s := t.unixConn(socket.SOCK_STREAM)
			t.queues("listener", l)
			t.queues("fresh", s)
			t.Must("sendall", c.SendAll([]byte("hello"), 0))
			t.Must("sendall", c.SendAll([]byte("world!"), 0))
			t.Ioctl("receiver", s, socket.SIOCINQ, 0)
			t.unixOutq("sender", c)
			t.Recv("recv", s, 64, 0)
			t.Ioctl("drained", s, socket.SIOCINQ, 0)
			t.unixOutq("read by the peer", c)
		}},
		{"ioctl/unix seqpacket", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_SEQPACKET)
			t.Must("send", c.SendAll([]byte("abc"), 0))
			t.Must("send", c.SendAll([]byte("defgh"), 0))
			t.Ioctl("two messages", s, socket.SIOCINQ, 0)
			t.unixOutq("sender", c)
			t.Recv("recv", s, 64, 0)
			t.Ioctl("one message", s, socket.SIOCINQ, 0)
			t.Recv("recv", s, 64, 0)
			t.unixOutq("both read", c)
		}},
		{"ioctl/unix dgram", false, func(t *T) {
			r := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			name := unixName()
			t.Must("bind", r.Bind(name))
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.Ioctl("empty", r, socket.SIOCINQ, 0)
			t.Send("send 3", w, []byte("abc"), 0, name)
			t.Send("send 9", w, []byte("123456789"), 0, name)
			t.Ioctl("queued", r, socket.SIOCINQ, 0)
			t.unixOutq("sender", w)
			t.Recv("recv", r, 64, 0)
			t.Ioctl("queued", r, socket.SIOCINQ, 0)
			t.unixOutq("one read", w)
			t.Recv("recv", r, 64, 0)
			t.unixOutq("both read", w)
			t.Ioctl("unknown", r, tcgets, 0)
		}},
	}
}

// unixOutq logs whether SIOCOUTQ of an AF_UNIX socket is zero: Linux
// counts the kernel memory of the unread messages, sockstack their bytes.
func (t *T) unixOutq(step string, s sockapi.Sock) {
	v, err := s.Ioctl(socket.SIOCOUTQ, 0)
	if err != nil {
		t.Logf("%s SIOCOUTQ: %s", step, ErrName(err))
		return
	}
	t.Logf("%s SIOCOUTQ: zero %v", step, v == 0)
}

// IP_MTU and IPV6_MTU (socket/ipmtu.go): the path MTU toward a
// connected socket's peer, ENOTCONN without one.
func mtuCases() []Case {
	return []Case{
		{"opt/IP_MTU", false, func(t *T) {
			u := t.UDP()
			t.GetInt("udp unconnected", u, socket.SOL_IP, socket.IP_MTU)
			t.Check("connect", u.Connect(t.Loop(9)))
			t.GetInt("udp connected", u, socket.SOL_IP, socket.IP_MTU)
			t.Check("set", u.SetSockOptInt(socket.SOL_IP, socket.IP_MTU, 1000))
			l, _ := t.Listener(4)
			t.GetInt("tcp listener", l, socket.SOL_IP, socket.IP_MTU)
			cli, srv := t.Pair()
			t.GetInt("tcp client", cli, socket.SOL_IP, socket.IP_MTU)
			t.GetInt("tcp accepted", srv, socket.SOL_IP, socket.IP_MTU)
		}},
		{"opt/IPV6_MTU on tcp6", false, func(t *T) {
			l, a := t.listen6(lo6(0), 1)
			t.GetInt("listener", l, socket.IPPROTO_IPV6, socket.IPV6_MTU)
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			t.GetInt("connected", c, socket.IPPROTO_IPV6, socket.IPV6_MTU)
		}},
	}
}
