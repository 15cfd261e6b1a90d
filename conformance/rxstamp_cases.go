package conformance

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
	"golang.org/x/sys/unix"
)

// Receive timestamps (socket/rxstamp.go; Linux's sock_set_timestamp,
// sock_set_timestamping, __sock_recv_timestamp): the option values and
// errnos, and which control messages a recvmsg gets, in what order, of
// what length, with MSG_CTRUNC when they do not fit. The times differ
// between the stacks, so a timestamp message shows only whether its
// time lies between a moment taken before the send and the end of the
// recvmsg, and whether its unused (hardware) slots are zero.

var rxStampOpts = []struct {
	name string
	opt  int
}{
	{"SO_TIMESTAMP", socket.SO_TIMESTAMP},
	{"SO_TIMESTAMPNS", socket.SO_TIMESTAMPNS},
	{"SO_TIMESTAMP_NEW", socket.SO_TIMESTAMP_NEW},
	{"SO_TIMESTAMPNS_NEW", socket.SO_TIMESTAMPNS_NEW},
	{"SO_TIMESTAMPING", socket.SO_TIMESTAMPING_OLD},
	{"SO_TIMESTAMPING_NEW", socket.SO_TIMESTAMPING_NEW},
}

// rxStampRx is SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE.
const rxStampRx = socket.SOF_TIMESTAMPING_RX_SOFTWARE | socket.SOF_TIMESTAMPING_SOFTWARE

// stampOpts logs every timestamp option's value on s.
func (t *T) stampOpts(step string, s sockapi.Sock) {
	var parts []string
	for _, o := range rxStampOpts {
		v, err := s.GetSockOptInt(socket.SOL_SOCKET, o.opt)
		if err != nil {
			parts = append(parts, o.name+" "+ErrName(err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %#x", o.name, v))
	}
	t.Logf("%s: %s", step, strings.Join(parts, ", "))
}

// stampCmsgText shows one SOL_SOCKET timestamp message (b holds it with
// its padding): name, length, and whether its time lies in [lo, hi].
func stampCmsgText(b []byte, lo, hi time.Time) (string, bool) {
	ne := binary.NativeEndian
	clen, level, typ := int(ne.Uint64(b)), int32(ne.Uint32(b[8:])), int32(ne.Uint32(b[12:]))
	if level != unix.SOL_SOCKET {
		return "", false
	}
	names := map[int32]string{29: "SCM_TIMESTAMP", 35: "SCM_TIMESTAMPNS", 37: "SCM_TIMESTAMPING",
		63: "SCM_TIMESTAMP_NEW", 64: "SCM_TIMESTAMPNS_NEW", 65: "SCM_TIMESTAMPING_NEW"}
	name, ok := names[typ]
	if !ok {
		return "", false
	}
	d := b[16:min(clen, len(b))]
	if len(d) < 16 {
		return fmt.Sprintf("%s len %d (cut)", name, clen), true
	}
	sec, sub := int64(ne.Uint64(d)), int64(ne.Uint64(d[8:]))
	if typ == 29 || typ == 63 {
		sub *= 1000 // a timeval
		lo = lo.Truncate(time.Microsecond)
	}
	at := time.Unix(sec, sub)
	txt := fmt.Sprintf("%s len %d within %v", name, clen, !at.Before(lo) && !at.After(hi))
	if typ == 37 || typ == 65 {
		rest := "zero"
		for _, c := range d[16:] {
			if c != 0 {
				rest = "set"
			}
		}
		txt += fmt.Sprintf(", other %d bytes %s", len(d)-16, rest)
	}
	return txt, true
}

// rxStampCtl logs one recvmsg (waiting first, up to 5 s) with a control
// buffer of oobSize bytes: length, flags, and each control message, a
// timestamp one checked against [lo, end of the call].
func (t *T) rxStampCtl(step string, s sockapi.Sock, oobSize int, lo time.Time) {
	t.rxStampCtlFlags(step, s, oobSize, 0, lo)
}

// rxStampCtlFlags is rxStampCtl with recvmsg flags (MSG_ERRQUEUE: waits
// for the error instead).
func (t *T) rxStampCtlFlags(step string, s sockapi.Sock, oobSize, flags int, lo time.Time) {
	if flags&socket.MSG_ERRQUEUE != 0 {
		t.WaitErr(s)
	} else {
		Ready(s, false, 5*time.Second)
	}
	buf := make([]byte, 2048)
	oob := make([]byte, oobSize)
	var n, oobn, rflags int
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		n, oobn, rflags, _, err = v.RecvMsgControl(buf, oob, flags|socket.MSG_DONTWAIT)
	case sockapi.HostSock:
		n, oobn, rflags, _, err = unix.Recvmsg(v.Fileno(), buf, oob, flags|unix.MSG_DONTWAIT)
	}
	hi := time.Now()
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %d bytes, flags %s", step, n, recvFlagsText(rflags))
	b := oob[:oobn]
	var parts []string
	for len(b) >= 16 {
		clen := int(binary.NativeEndian.Uint64(b))
		space := min((clen+7)&^7, len(b))
		if clen < 16 {
			break
		}
		if txt, ok := stampCmsgText(b[:space], lo, hi); ok {
			parts = append(parts, txt)
		} else {
			parts = append(parts, t.ipCmsgText(b[:space]))
		}
		b = b[space:]
	}
	if len(b) > 0 {
		parts = append(parts, fmt.Sprintf("%d stray bytes", len(b)))
	}
	if len(parts) == 0 {
		parts = append(parts, "no control")
	}
	t.Logf("%s: %s", step, strings.Join(parts, "; "))
}

// rxStampReceiver makes a bound UDP socket (IPv6 when v6) and a sender;
// it returns them and the receiver's address.
func (t *T) rxStampReceiver(v6 bool) (r, w sockapi.Sock, to socket.Sockaddr) {
	if v6 {
		r, w = t.Socket6(DGRAM), t.Socket6(DGRAM)
		to, _ = t.Bind6("bind", r, lo6(0), "R")
		noAutoFlowLabel(w)
		return r, w, to
	}
	w, r, _, to = t.UDPPair()
	return r, w, to
}

func rxStampCases() []Case {
	var cs []Case
	kinds := []struct {
		name        string
		root        bool
		fam, ty, pr int
	}{
		{"udp", false, AF_INET, DGRAM, 0},
		{"udp6", false, AF_INET6, DGRAM, 0},
		{"raw", true, AF_INET, RAW, 253},
		{"raw6", true, AF_INET6, RAW, 253},
		{"packet", true, socket.AF_PACKET, DGRAM, 0},
		{"unix stream", false, socket.AF_UNIX, STREAM, 0},
		{"unix dgram", false, socket.AF_UNIX, DGRAM, 0},
	}
	for _, k := range kinds {
		cs = append(cs, Case{"rxstamp/options " + k.name, k.root, func(t *T) {
			s := t.Socket(k.fam, k.ty, k.pr)
			t.stampOpts("fresh", s)
			for _, seq := range [][][2]int{
				{{socket.SO_TIMESTAMP, 1}},
				{{socket.SO_TIMESTAMPNS, 1}},
				{{socket.SO_TIMESTAMP_NEW, 1}},
				{{socket.SO_TIMESTAMPNS_NEW, 1}},
				{{socket.SO_TIMESTAMP, 1}, {socket.SO_TIMESTAMPNS, 1}},
				{{socket.SO_TIMESTAMPNS, 1}, {socket.SO_TIMESTAMP, 0}},
				{{socket.SO_TIMESTAMPNS_NEW, 1}, {socket.SO_TIMESTAMP, 5}},
				{{socket.SO_TIMESTAMP, 1}, {socket.SO_TIMESTAMPING_OLD, rxStampRx}},
				{{socket.SO_TIMESTAMP, -1}, {socket.SO_TIMESTAMPING_NEW, rxStampRx}},
				{{socket.SO_TIMESTAMPING_NEW, 0}, {socket.SO_TIMESTAMPNS, 1}},
			} {
				s := t.Socket(k.fam, k.ty, k.pr)
				var names []string
				for _, o := range seq {
					err := s.SetSockOpt(socket.SOL_SOCKET, o[0], o[1])
					names = append(names, fmt.Sprintf("%d=%d %s", o[0], o[1], ErrName(err)))
				}
				t.stampOpts(strings.Join(names, ", "), s)
			}
			for _, v := range []any{
				0, rxStampRx, socket.SOF_TIMESTAMPING_RX_SOFTWARE, socket.SOF_TIMESTAMPING_TX_SOFTWARE | socket.SOF_TIMESTAMPING_SOFTWARE,
				socket.SOF_TIMESTAMPING_OPT_STATS, socket.SOF_TIMESTAMPING_OPT_STATS | socket.SOF_TIMESTAMPING_OPT_TSONLY,
				socket.SOF_TIMESTAMPING_OPT_ID_TCP, socket.SOF_TIMESTAMPING_OPT_ID_TCP | socket.SOF_TIMESTAMPING_OPT_ID,
				socket.SOF_TIMESTAMPING_BIND_PHC, socket.SOF_TIMESTAMPING_OPT_RX_FILTER | rxStampRx,
				socket.SOF_TIMESTAMPING_TX_COMPLETION, 1 << 19, 1 << 30, -1,
				[]byte{0x18, 0}, []byte{0x18, 0, 0, 0, 0, 0}, []byte{0x18, 0, 0, 0, 0, 0, 0, 0},
			} {
				err := s.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, v)
				g, gerr := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD)
				t.Logf("SO_TIMESTAMPING %#v: %s, reads %#x %s", v, ErrName(err), g, ErrName(gerr))
			}
			for _, v := range []any{[]byte{1}, []byte{1, 0}, []byte{1, 0, 0, 0, 0, 0, 0, 0}} {
				t.Logf("SO_TIMESTAMP %x: %s", v, ErrName(s.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, v)))
			}
		}})
	}

	for _, v6 := range []bool{false, true} {
		fam := "udp"
		if v6 {
			fam = "udp6"
		}
		for _, o := range rxStampOpts {
			val := 1
			if o.opt == socket.SO_TIMESTAMPING_OLD || o.opt == socket.SO_TIMESTAMPING_NEW {
				val = rxStampRx
			}
			cs = append(cs, Case{"rxstamp/" + fam + " " + o.name, false, func(t *T) {
				t.stampsOn() // Linux stamps only once its deferred work turned stamping on
				r, w, to := t.rxStampReceiver(v6)
				t.Check(o.name, r.SetSockOpt(socket.SOL_SOCKET, o.opt, val))
				lo := time.Now()
				t.Send("send", w, []byte("stamp"), 0, to)
				t.rxStampCtl("recvmsg", r, 256, lo)
				t.Stamps("after recvmsg", r, time.Time{})
				lo = time.Now()
				t.Send("send", w, []byte("no room"), 0, to)
				t.rxStampCtl("recvmsg, no control buffer", r, 0, lo)
				lo = time.Now()
				t.Send("send", w, []byte("little room"), 0, to)
				t.rxStampCtl("recvmsg, 24-byte buffer", r, 24, lo)
				t.Check(o.name+" off", r.SetSockOpt(socket.SOL_SOCKET, o.opt, 0))
				lo = time.Now()
				t.Send("send", w, []byte("off"), 0, to)
				t.rxStampCtl("recvmsg, off", r, 256, lo)
				// SO_TIMESTAMP turned SIOCGSTAMP's stamping on.
				t.Stamps("after the read with it off", r, lo)
			}})
		}
		cs = append(cs, Case{"rxstamp/" + fam + " order with IP messages", false, func(t *T) {
			t.stampsOn() // Linux stamps only once its deferred work turned stamping on
			r, w, to := t.rxStampReceiver(v6)
			if v6 {
				t.Check("IPV6_RECVPKTINFO", r.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1))
				t.Check("IPV6_RECVHOPLIMIT", r.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1))
			} else {
				t.Check("IP_PKTINFO", r.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1))
				t.Check("IP_RECVTTL", r.SetSockOptInt(socket.SOL_IP, socket.IP_RECVTTL, 1))
			}
			t.Check("SO_TIMESTAMPNS", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
			t.Check("SO_TIMESTAMPING", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx))
			lo := time.Now()
			t.Send("send", w, []byte("all"), 0, to)
			t.rxStampCtl("recvmsg", r, 512, lo)
			lo = time.Now()
			t.Send("send", w, []byte("cut"), 0, to)
			t.rxStampCtl("recvmsg, 56-byte buffer", r, 56, lo)
			lo = time.Now()
			t.Send("send", w, []byte("cut"), 0, to)
			t.rxStampCtl("recvmsg, 96-byte buffer", r, 96, lo)
		}})
		cs = append(cs, Case{"rxstamp/" + fam + " SIOCGSTAMP gives the arrival", false, func(t *T) {
			t.stampsOn() // Linux stamps only once its deferred work turned stamping on
			r, w, to := t.rxStampReceiver(v6)
			t.Stamps("fresh", r, time.Time{})
			lo := time.Now()
			t.Send("send", w, []byte("one"), 0, to)
			t.Send("send", w, []byte("two"), 0, to)
			Ready(r, false, 5*time.Second)
			t.Quiesce()
			mid := time.Now() // both arrived before this
			t.Recv("recv", r, 64, 0)
			first := t.Stamps("after the first", r, lo)
			t.Logf("first arrived before the read: %v", !first.IsZero() && first.Before(mid))
			t.Recv("recv", r, 64, 0)
			second := t.Stamps("after the second", r, lo)
			t.Logf("second arrived before the read: %v", !second.IsZero() && second.Before(mid))
		}})
	}
	cs = append(cs, Case{"rxstamp/udp timestamping without RX_SOFTWARE", false, func(t *T) {
		t.stampsOn() // Linux stamps only once its deferred work turned stamping on
		// SOFTWARE alone reports a stamp the datagram has. SIOCGSTAMP
		// first makes every datagram carry one (on Linux, with the
		// host-wide stamping it turns on); OPT_RX_FILTER then hides it.
		r, w, to := t.rxStampReceiver(false)
		t.Stamps("fresh", r, time.Time{})
		t.Check("SO_TIMESTAMPING SOFTWARE", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_SOFTWARE))
		lo := time.Now()
		t.Send("send", w, []byte("a"), 0, to)
		t.rxStampCtl("recvmsg", r, 256, lo)
		t.Check("SO_TIMESTAMPING SOFTWARE|OPT_RX_FILTER", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			socket.SOF_TIMESTAMPING_SOFTWARE|socket.SOF_TIMESTAMPING_OPT_RX_FILTER))
		lo = time.Now()
		t.Send("send", w, []byte("b"), 0, to)
		t.rxStampCtl("recvmsg", r, 256, lo)
		t.Check("SO_TIMESTAMPING RX_SOFTWARE|SOFTWARE|OPT_RX_FILTER", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			rxStampRx|socket.SOF_TIMESTAMPING_OPT_RX_FILTER))
		lo = time.Now()
		t.Send("send", w, []byte("c"), 0, to)
		t.rxStampCtl("recvmsg", r, 256, lo)
	}})
	for _, v6 := range []bool{false, true} {
		name := "rxstamp/udp error queue"
		if v6 {
			name = "rxstamp/udp6 error queue"
		}
		cs = append(cs, Case{name, false, func(t *T) {
			t.stampsOn() // Linux stamps only once its deferred work turned stamping on
			s := t.UDP()
			fam, lvl, recverr, pktinfo := AF_INET, socket.SOL_IP, socket.IP_RECVERR, socket.IP_PKTINFO
			loop := "127.0.0.1"
			if v6 {
				s = t.Socket6(DGRAM)
				noAutoFlowLabel(s)
				fam, lvl, recverr, pktinfo, loop = AF_INET6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, socket.IPV6_RECVPKTINFO, "::1"
			}
			c := t.ClosedPort(fam, loop)
			t.Check("RECVERR", s.SetSockOptInt(lvl, recverr, 1))
			t.Check("PKTINFO", s.SetSockOptInt(lvl, pktinfo, 1))
			t.Check("SO_TIMESTAMPNS", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
			t.Check("SO_TIMESTAMPING", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx))
			lo := time.Now()
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.rxStampCtlFlags("recvmsg MSG_ERRQUEUE", s, 512, socket.MSG_ERRQUEUE, lo)
			t.Stamps("after MSG_ERRQUEUE", s, time.Time{})
		}})
	}
	cs = append(cs, Case{"rxstamp/raw icmp", true, func(t *T) {
		t.stampsOn() // Linux stamps only once its deferred work turned stamping on
		s := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
		t.Check("IP_RECVTTL", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVTTL, 1))
		t.Check("SO_TIMESTAMPNS_NEW", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS_NEW, 1))
		lo := time.Now()
		echo := []byte{8, 0, 0, 0, 0x12, 0x36, 0, 1, 'r', 'x'}
		sum := wire.Checksum(echo)
		echo[2], echo[3] = byte(sum>>8), byte(sum)
		t.Send("send echo", s, echo, 0, t.Loop(0))
		t.rxStampCtl("recvmsg (the request)", s, 256, lo)
		t.rxStampCtl("recvmsg (the reply)", s, 256, lo)
	}})
	cs = append(cs, Case{"rxstamp/packet", true, func(t *T) {
		t.stampsOn() // Linux stamps only once its deferred work turned stamping on
		p := t.Socket(socket.AF_PACKET, DGRAM, socket.Htons(socket.ETH_P_IP))
		t.Check("bind lo", p.Bind(&socket.SockaddrPacket{Ifindex: 1, Protocol: socket.ETH_P_IP}))
		t.Check("SO_TIMESTAMPING", p.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, rxStampRx))
		t.Check("SO_TIMESTAMP", p.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 1))
		// Other traffic on the host's loopback may come first: only
		// whether each frame has the two messages in this order shows.
		a, _, _, ba := t.UDPPair()
		lo := time.Now()
		t.Send("send", a, []byte("to be seen"), 0, ba)
		Ready(p, false, 5*time.Second)
		buf, oob := make([]byte, 2048), make([]byte, 256)
		var oobn, rflags int
		var err error
		switch v := p.(type) {
		case sockapi.StackSock:
			_, oobn, rflags, _, err = v.RecvMsgControl(buf, oob, socket.MSG_DONTWAIT)
		case sockapi.HostSock:
			_, oobn, rflags, _, err = unix.Recvmsg(v.Fileno(), buf, oob, unix.MSG_DONTWAIT)
		}
		hi := time.Now()
		if err != nil {
			t.Logf("recvmsg: %s", ErrName(err))
			return
		}
		var parts []string
		for b := oob[:oobn]; len(b) >= 16; {
			space := min((int(binary.NativeEndian.Uint64(b))+7)&^7, len(b))
			txt, _ := stampCmsgText(b[:space], lo.Add(-time.Minute), hi) // the frame may be older than the send
			parts = append(parts, txt)
			b = b[space:]
		}
		t.Logf("recvmsg: flags %s, %s", recvFlagsText(rflags), strings.Join(parts, "; "))
	}})
	return cs
}
