package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// SIOCGSTAMP and SIOCGSTAMPNS (socket/ioctl.go, Linux's sock_gettstamp):
// the receive time of the last datagram read (its arrival). The two
// stacks' clocks are read at different moments, so the transcript
// shows the errno, or that the time lies between a moment taken before
// the datagram was sent (or the socket made) and the end of the ioctl,
// whether SIOCGSTAMP is SIOCGSTAMPNS cut to microseconds, and whether a
// later answer repeats or follows an earlier one.

type stamper interface {
	IoctlTimestamp(req uint) (time.Time, error)
}

var stampName = map[uint]string{socket.SIOCGSTAMP: "SIOCGSTAMP", socket.SIOCGSTAMPNS: "SIOCGSTAMPNS"}

// stampOne is one timestamp ioctl; ok is false (and the errno logged)
// when it failed.
func (t *T) stampOne(step string, s sockapi.Sock, req uint) (time.Time, bool) {
	v, is := s.(stamper)
	if !is {
		t.Logf("%s %s: no ioctl on %T", step, stampName[req], s)
		return time.Time{}, false
	}
	got, err := v.IoctlTimestamp(req)
	if err != nil {
		t.Logf("%s %s: %s", step, stampName[req], ErrName(err))
		return time.Time{}, false
	}
	return got, true
}

// Stamps logs SIOCGSTAMPNS then SIOCGSTAMP on s: whether the time lies
// in [lo, end of the ioctls] and whether the two agree. It returns the
// nanosecond time (zero when the ioctl failed).
func (t *T) Stamps(step string, s sockapi.Sock, lo time.Time) time.Time {
	ns, ok := t.stampOne(step, s, socket.SIOCGSTAMPNS)
	us, uok := t.stampOne(step, s, socket.SIOCGSTAMP)
	hi := time.Now()
	if ok {
		t.Logf("%s SIOCGSTAMPNS: within %v", step, !ns.Before(lo) && !ns.After(hi))
	}
	if uok {
		// A timeval is the timespec cut to microseconds.
		t.Logf("%s SIOCGSTAMP: within %v, SIOCGSTAMPNS in microseconds %v", step,
			!us.Before(lo.Truncate(time.Microsecond)) && !us.After(hi), ok && us.Equal(ns.Truncate(time.Microsecond)))
	}
	return ns
}

// stampCmp logs how a later time compares with an earlier one.
func (t *T) stampCmp(step string, earlier, later time.Time) {
	switch {
	case earlier.IsZero() || later.IsZero():
		t.Logf("%s: nothing to compare", step)
	case later.Equal(earlier):
		t.Logf("%s: the same time", step)
	case later.After(earlier):
		t.Logf("%s: later", step)
	default:
		t.Logf("%s: earlier", step)
	}
}

func stampCases() []Case {
	return []Case{
		{"stamp/udp read", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Stamps("fresh", b, time.Time{})
			lo := time.Now()
			t.Send("send", a, []byte("one"), 0, ba)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.Stamps("queued, not read", b, lo)
			t.Recv("recv", b, 64, 0)
			first := t.Stamps("after recv", b, lo)
			again := t.Stamps("again", b, lo)
			t.stampCmp("again", first, again)
			t.Recv("recv empty", b, 64, socket.MSG_DONTWAIT)
			t.stampCmp("after a failed recv", first, t.Stamps("after a failed recv", b, lo))
			lo2 := time.Now()
			t.Send("send", a, []byte("two"), 0, ba)
			t.Send("send", a, nil, 0, ba)
			Ready(b, false, 5*time.Second)
			t.Recv("recv", b, 64, 0)
			second := t.Stamps("second datagram", b, lo2)
			t.stampCmp("second datagram", first, second)
			t.Recv("recv empty datagram", b, 64, 0)
			t.Stamps("empty datagram", b, lo2)
			t.Stamps("sender, which read nothing", a, time.Time{})
		}},
		{"stamp/udp peek", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			lo := time.Now()
			t.Send("send", a, []byte("one"), 0, ba)
			t.Send("send", a, []byte("two"), 0, ba)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.Recv("peek", b, 64, socket.MSG_PEEK)
			// Whether Linux stamped a datagram on arrival before the
			// first SIOCGSTAMP depends on other sockets of the host
			// (netstamp_needed_key), so these times are not compared.
			t.Stamps("after peek", b, lo)
			t.Recv("recv", b, 64, 0)
			t.Stamps("after recv", b, lo)
			t.peekOff("SO_PEEK_OFF", b, 0)
			t.Recv("peek with offset", b, 64, socket.MSG_PEEK)
			t.Stamps("after peek with offset", b, lo)
			t.Recv("peek past the last", b, 64, socket.MSG_PEEK|socket.MSG_DONTWAIT)
		}},
		{"stamp/udp6 read", false, func(t *T) {
			a, b := t.Socket6(DGRAM), t.Socket6(DGRAM)
			t.Bind6("bind", a, lo6(0), "A")
			bb, _ := t.Bind6("bind", b, lo6(0), "B")
			b.SetTimeout(5 * time.Second)
			t.Stamps("fresh", b, time.Time{})
			lo := time.Now()
			t.Send("send", a, []byte("six"), 0, bb)
			t.Recv("recv", b, 64, 0)
			t.Stamps("after recv", b, lo)
		}},
		{"stamp/udp error queue", false, func(t *T) {
			s := t.UDP()
			s.SetTimeout(5 * time.Second)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			lo := time.Now()
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.WaitErr(s)
			t.Stamps("error queued", s, lo)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.Stamps("after MSG_ERRQUEUE", s, lo)
		}},
		{"stamp/tcp", false, func(t *T) {
			t.Stamps("fresh", t.TCP(), time.Time{})
			l, _ := t.Listener(4)
			t.Stamps("listener", l, time.Time{})
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("hello"), 0))
			t.Recv("recv", srv, 64, 0)
			t.Stamps("after recv", srv, time.Time{})
			t.Stamps("sender", cli, time.Time{})
		}},
		{"stamp/unix", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			t.Must("sendall", c.SendAll([]byte("hi"), 0))
			t.Recv("recv", s, 64, 0)
			t.Stamps("stream", s, time.Time{})
			r := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			name := unixName()
			t.Must("bind", r.Bind(name))
			t.Send("send", t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0), []byte("x"), 0, name)
			t.Recv("recv", r, 64, 0)
			t.Stamps("dgram", r, time.Time{})
		}},
		{"stamp/closed and unknown requests", false, func(t *T) {
			u := t.UDP()
			v, _ := u.(stamper)
			if v == nil {
				t.Logf("no ioctl on %T", u)
				return
			}
			_, err := v.IoctlTimestamp(socket.SIOCINQ)
			t.Logf("SIOCINQ as a timestamp request: %s", ErrName(err))
			t.Check("close", u.Close())
			_, err = v.IoctlTimestamp(socket.SIOCGSTAMP)
			t.Logf("SIOCGSTAMP after close: %s", ErrName(err))
		}},
		{"stamp/raw icmp read", true, func(t *T) {
			lo := time.Now() // before the socket: whatever it reads came after
			s := t.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
			s.SetTimeout(5 * time.Second)
			t.Stamps("fresh", s, lo)
			echo := []byte{8, 0, 0, 0, 0x12, 0x35, 0, 1, 's', 't', 'a', 'm', 'p'}
			sum := wire.Checksum(echo)
			echo[2], echo[3] = byte(sum>>8), byte(sum)
			t.Send("send echo", s, echo, 0, t.Loop(0))
			n, err := s.Recv(make([]byte, 256), 0)
			t.Logf("recv: %s, something %v", ErrName(err), n > 0)
			t.Stamps("after recv", s, lo)
		}},
		{"stamp/packet read", true, func(t *T) {
			lo := time.Now()
			p := t.Socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.Htons(socket.ETH_P_IP))
			p.SetTimeout(5 * time.Second)
			t.Check("bind lo", p.Bind(&socket.SockaddrPacket{Ifindex: 1, Protocol: socket.ETH_P_IP}))
			t.Stamps("fresh", p, lo)
			a, _, _, ba := t.UDPPair()
			t.Send("send", a, []byte("to be seen"), 0, ba)
			n, err := p.Recv(make([]byte, 2048), 0)
			t.Logf("recv: %s, something %v", ErrName(err), n > 0)
			t.Stamps("after recv", p, lo)
		}},
	}
}
