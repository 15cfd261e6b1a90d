package conformance

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// AF_UNIX against Linux (socket/unix.go, socket/unix_rights.go):
// SOCK_SEQPACKET's errnos, message boundaries, MSG_TRUNC and EOF;
// SO_PASSCRED and SO_PEERCRED; SCM_RIGHTS limits and how many passed
// descriptors fit in a control buffer; SCM_CREDENTIALS checks. Names
// are abstract ("@sockstack-conf-<pid>-<n>"), so nothing is left on
// disk and the two sides do not meet. Descriptor numbers and
// credentials differ per side and are not printed: a received
// descriptor shows as its count, credentials as "self" when they are
// the process's.

var unixSeq atomic.Int32

// unixName is a fresh abstract name.
func unixName() *socket.SockaddrUnix {
	return &socket.SockaddrUnix{Name: fmt.Sprintf("@sockstack-conf-%d-%d", os.Getpid(), unixSeq.Add(1))}
}

// unixConn is a listener of type ty, a connected client and the
// accepted socket, all with a 5 s timeout.
func (t *T) unixConn(ty int) (l, c, s sockapi.Sock) {
	l = t.Socket(socket.AF_UNIX, ty, 0)
	name := unixName()
	t.Must("bind", l.Bind(name))
	t.Must("listen", l.Listen(4))
	c = t.Socket(socket.AF_UNIX, ty, 0)
	c.SetTimeout(5 * time.Second)
	t.Must("connect", c.Connect(name))
	l.SetTimeout(5 * time.Second)
	s, _, err := l.Accept()
	t.Must("accept", err)
	t.Track(s)
	s.SetTimeout(5 * time.Second)
	return l, c, s
}

// unixRecv logs one recvmsg: count, data, flags.
func (t *T) unixRecv(step string, s sockapi.Sock, size, flags int) {
	buf := make([]byte, size)
	n, rfl, _, err := s.RecvMsg(buf, flags)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %d %q flags %s", step, n, buf[:min(n, size)], recvFlagsText(rfl))
}

// credText shows a ucred: "self" for the process's, else its numbers.
func credText(pid int32, uid, gid uint32) string {
	if int(pid) == os.Getpid() && int(uid) == os.Getuid() && int(gid) == os.Getgid() {
		return "self"
	}
	return fmt.Sprintf("pid %d uid %d gid %d", pid, int32(uid), int32(gid))
}

// peerCred logs SO_PEERCRED.
func (t *T) peerCred(step string, s sockapi.Sock) {
	switch v := s.(type) {
	case sockapi.HostSock:
		c, err := unix.GetsockoptUcred(v.Fileno(), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			t.Logf("%s: %s", step, ErrName(err))
			return
		}
		t.Logf("%s: %s", step, credText(c.Pid, c.Uid, c.Gid))
	case sockapi.StackSock:
		x, err := v.GetSockOpt(socket.SOL_SOCKET, socket.SO_PEERCRED)
		if err != nil {
			t.Logf("%s: %s", step, ErrName(err))
			return
		}
		c, ok := x.(socket.Ucred)
		if !ok {
			t.Logf("%s: %T", step, x)
			return
		}
		t.Logf("%s: %s", step, credText(c.Pid, c.Uid, c.Gid))
	}
}

// unixRecvCtl logs one recvmsg with an oobSize-byte control buffer: the
// data, the flags, and each control message (SCM_RIGHTS as a count and
// its cmsg_len, SCM_CREDENTIALS as credText). Received descriptors are
// closed.
func (t *T) unixRecvCtl(step string, s sockapi.Sock, size, oobSize, flags int) {
	buf, oob := make([]byte, size), make([]byte, oobSize)
	var n, oobn, rfl int
	var err error
	var closeFD func(int)
	var cloexec func(int) bool // FD_CLOEXEC of a received descriptor
	switch v := s.(type) {
	case sockapi.HostSock:
		n, oobn, rfl, _, err = unix.Recvmsg(v.Fileno(), buf, oob, flags|unix.MSG_DONTWAIT)
		closeFD = func(fd int) { unix.Close(fd) }
		cloexec = func(fd int) bool {
			f, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			return err == nil && f&unix.FD_CLOEXEC != 0
		}
	case sockapi.StackSock:
		n, oobn, rfl, _, err = v.RecvMsgControl(buf, oob, flags|socket.MSG_DONTWAIT)
		closeFD = func(fd int) {
			if x := v.Net().Lookup(fd); x != nil {
				x.Close()
			}
		}
		cloexec = func(fd int) bool {
			x := v.Net().Lookup(fd)
			return x != nil && x.CloseOnExec()
		}
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	var parts []string
	ne := binary.NativeEndian
	for off := 0; off+16 <= oobn; {
		l := int(ne.Uint64(oob[off:]))
		level, typ := int32(ne.Uint32(oob[off+8:])), int32(ne.Uint32(oob[off+12:]))
		if l < 16 || off+l > oobn {
			parts = append(parts, fmt.Sprintf("bad cmsg_len %d", l))
			break
		}
		data := oob[off+16 : off+l]
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SCM_RIGHTS:
			ce := 0
			for i := 0; i+4 <= len(data); i += 4 {
				fd := int(int32(ne.Uint32(data[i:])))
				if cloexec(fd) {
					ce++
				}
				closeFD(fd)
			}
			p := fmt.Sprintf("SCM_RIGHTS %d fds len %d", len(data)/4, l)
			if ce > 0 {
				p += fmt.Sprintf(" (%d close-on-exec)", ce)
			}
			parts = append(parts, p)
		case level == unix.SOL_SOCKET && typ == unix.SCM_CREDENTIALS && len(data) == 12:
			parts = append(parts, "SCM_CREDENTIALS "+credText(int32(ne.Uint32(data)), ne.Uint32(data[4:]), ne.Uint32(data[8:])))
		default:
			parts = append(parts, fmt.Sprintf("level %d type %d len %d", level, typ, l))
		}
		off += (l + 7) &^ 7
	}
	ctl := "none"
	if len(parts) > 0 {
		ctl = strings.Join(parts, "; ")
	}
	t.Logf("%s: %d %q flags %s oobn %d control %s", step, n, buf[:min(n, size)], recvFlagsText(rfl), oobn, ctl)
}

// unixSendCtl logs one sendmsg with a raw control buffer to the
// connected peer.
func (t *T) unixSendCtl(step string, s sockapi.Sock, data, oob []byte) {
	var n int
	var err error
	switch v := s.(type) {
	case sockapi.HostSock:
		n, err = unix.SendmsgN(v.Fileno(), data, oob, nil, 0)
	case sockapi.StackSock:
		n, err = v.SendMsgControl(data, oob, 0, nil)
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %d", step, n)
}

var unixTypeNames = map[int]string{STREAM: "stream", DGRAM: "dgram", socket.SOCK_SEQPACKET: "seqpacket"}

func unixCases() []Case {
	SEQ := socket.SOCK_SEQPACKET
	sol := socket.SOL_SOCKET
	var cs []Case
	cs = append(cs, Case{Name: "unix/seqpacket/socket", Run: func(t *T) {
		s, err := t.TrySocket(socket.AF_UNIX, SEQ, 0)
		if err != nil {
			return
		}
		t.GetInt("SO_TYPE", s, sol, socket.SO_TYPE)
		t.GetInt("SO_DOMAIN", s, sol, socket.SO_DOMAIN)
		t.GetInt("SO_PROTOCOL", s, sol, socket.SO_PROTOCOL)
		t.GetInt("SO_ACCEPTCONN", s, sol, socket.SO_ACCEPTCONN)
	}})
	cs = append(cs, Case{Name: "unix/seqpacket/unconnected", Run: func(t *T) {
		s := t.Socket(socket.AF_UNIX, SEQ, 0)
		s.SetBlocking(false)
		t.Send("send", s, []byte("x"), 0, nil)
		t.Send("sendto", s, []byte("x"), 0, unixName())
		t.unixRecv("recv", s, 4, 0)
		_, _, err := s.Accept()
		t.Check("accept", err)
		t.Check("listen unbound", s.Listen(1))
		_, err = s.GetPeerName()
		t.Check("getpeername", err)
		t.Check("connect to nobody", s.Connect(unixName()))
		st := t.Socket(socket.AF_UNIX, STREAM, 0)
		name := unixName()
		t.Must("bind stream", st.Bind(name))
		t.Must("listen stream", st.Listen(1))
		t.Check("connect to a stream listener", s.Connect(name))
		d := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("listen dgram", d.Listen(1))
	}})
	cs = append(cs, Case{Name: "unix/seqpacket/boundaries and MSG_TRUNC", Run: func(t *T) {
		l, c, s := t.unixConn(SEQ)
		t.GetInt("listener SO_ACCEPTCONN", l, sol, socket.SO_ACCEPTCONN)
		t.GetInt("accepted SO_TYPE", s, sol, socket.SO_TYPE)
		for _, m := range []string{"first message", "", "second", "ab", "cd"} {
			t.Send("send "+fmt.Sprintf("%q", m), c, []byte(m), 0, nil)
		}
		t.unixRecv("recv 5", s, 5, 0)
		t.unixRecv("recv 64 (empty message)", s, 64, 0)
		t.unixRecv("recv 2 MSG_PEEK|MSG_TRUNC", s, 2, socket.MSG_PEEK|socket.MSG_TRUNC)
		t.unixRecv("recv 64", s, 64, 0)
		t.unixRecv("recv 64", s, 64, 0)
		t.unixRecv("recv 64", s, 64, 0)
		s.SetBlocking(false)
		t.unixRecv("recv empty non-blocking", s, 64, 0)
		t.unixRecv("recv 0-byte buffer non-blocking", s, 0, 0)
		t.Send("sendto with an address", c, []byte("addr"), 0, unixName())
		t.unixRecv("recv", s, 64, 0)
		// recvfrom names the sender: the client is unbound, the
		// accepted socket has the listener's name.
		t.Send("send back", s, []byte("back"), 0, nil)
		t.Send("send", c, []byte("fwd"), 0, nil)
		for _, x := range []sockapi.Sock{c, s} {
			_, from, err := x.RecvFrom(make([]byte, 8), 0)
			if err != nil {
				t.Logf("recvfrom: %s", ErrName(err))
				continue
			}
			ln, _ := l.GetSockName()
			t.Logf("recvfrom: %s", unixFromText(from, ln))
		}
	}})
	cs = append(cs, Case{Name: "unix/seqpacket/EOF and EPIPE", Run: func(t *T) {
		_, c, s := t.unixConn(SEQ)
		t.Send("send", c, []byte("last"), 0, nil)
		t.Check("shutdown SHUT_WR", c.Shutdown(socket.SHUT_WR))
		t.Send("send after SHUT_WR", c, []byte("x"), 0, nil)
		t.unixRecv("recv", s, 64, 0)
		t.unixRecv("recv at EOF", s, 64, 0)
		t.Send("send back", s, []byte("back"), 0, nil)
		t.unixRecv("client recv", c, 64, 0)
		t.Check("close client", c.Close())
		t.unixRecv("recv after close", s, 64, 0)
		t.Send("send to closed peer", s, []byte("x"), 0, nil)
	}})
	cs = append(cs, Case{Name: "unix/seqpacket/peer closed with data unread", Run: func(t *T) {
		_, c, s := t.unixConn(SEQ)
		t.Send("send to server", c, []byte("unread"), 0, nil)
		t.Send("send to client", s, []byte("queued"), 0, nil)
		t.Check("close server", s.Close())
		t.unixRecv("client recv", c, 64, 0)
		t.unixRecv("client recv", c, 64, 0)
		t.unixRecv("client recv", c, 64, 0)
	}})
	cs = append(cs, Case{Name: "unix/seqpacket/EMSGSIZE", Run: func(t *T) {
		_, c, _ := t.unixConn(SEQ)
		t.Check("SO_SNDBUF 1000", c.SetSockOptInt(sol, socket.SO_SNDBUF, 1000))
		t.GetInt("SO_SNDBUF", c, sol, socket.SO_SNDBUF)
		t.Send("send 4576", c, make([]byte, 4576), 0, nil)
		t.Send("send 4577", c, make([]byte, 4577), 0, nil)
	}})
	for _, ty := range []int{STREAM, SEQ, DGRAM} {
		ty := ty
		tn := unixTypeNames[ty]
		cs = append(cs, Case{Name: "unix/" + tn + "/SO_PASSCRED and SO_PEERCRED", Run: func(t *T) {
			u := t.Socket(socket.AF_UNIX, ty, 0)
			t.GetInt("SO_PASSCRED default", u, sol, socket.SO_PASSCRED)
			t.peerCred("unconnected SO_PEERCRED", u)
			t.Check("SO_PASSCRED 1", u.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			t.GetInt("SO_PASSCRED", u, sol, socket.SO_PASSCRED)
			t.Check("SO_PASSCRED 0", u.SetSockOptInt(sol, socket.SO_PASSCRED, 0))
			t.GetInt("SO_PASSCRED", u, sol, socket.SO_PASSCRED)
			t.Check("set SO_PEERCRED", u.SetSockOptInt(sol, socket.SO_PEERCRED, 1))
			if ty == DGRAM {
				r := t.Socket(socket.AF_UNIX, DGRAM, 0)
				name := unixName()
				t.Must("bind", r.Bind(name))
				t.Check("SO_PASSCRED on receiver", r.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
				t.Must("connect", u.Connect(name))
				t.peerCred("connected SO_PEERCRED", u)
				t.Send("send", u, []byte("hi"), 0, nil)
				Ready(r, false, 5*time.Second)
				t.unixRecvCtl("recvmsg", r, 8, 64, 0)
				return
			}
			l, c, s := t.unixConn(ty)
			t.peerCred("listener SO_PEERCRED", l)
			t.peerCred("client SO_PEERCRED", c)
			t.peerCred("accepted SO_PEERCRED", s)
			t.GetInt("accepted SO_PASSCRED", s, sol, socket.SO_PASSCRED)
			t.Check("SO_PASSCRED on accepted", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			t.Send("send", c, []byte("hi"), 0, nil)
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 8, 64, 0)
			t.Send("send", c, []byte("hi"), 0, nil)
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg control 20 bytes", s, 8, 20, 0)
			t.Check("close client", c.Close())
			t.peerCred("accepted SO_PEERCRED after the peer closed", s)
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/SCM_RIGHTS in the control buffer", Run: func(t *T) {
			c, s := t.unixPeers(ty)
			x := t.Socket(socket.AF_INET, DGRAM, 0)
			fd := x.Fileno()
			three := unix.UnixRights(fd, fd, fd)
			for _, sz := range []int{unix.CmsgSpace(12), unix.CmsgSpace(8), unix.CmsgLen(4), 17, 16, 0} {
				t.unixSendCtl("send 3 fds", c, []byte("fds"), three)
				Ready(s, false, 5*time.Second)
				t.unixRecvCtl(fmt.Sprintf("recvmsg control %d bytes", sz), s, 8, sz, 0)
			}
			t.Check("SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			for _, sz := range []int{unix.CmsgSpace(12) + unix.CmsgSpace(12), unix.CmsgSpace(12) + unix.CmsgSpace(4), unix.CmsgSpace(12) + 16, unix.CmsgSpace(12)} {
				t.unixSendCtl("send 3 fds", c, []byte("fds"), three)
				Ready(s, false, 5*time.Second)
				t.unixRecvCtl(fmt.Sprintf("recvmsg with creds, control %d bytes", sz), s, 8, sz, 0)
			}
			t.unixSendCtl("send 3 fds", c, []byte("fds"), three)
			Ready(s, false, 5*time.Second)
			t.unixRecv("plain recv", s, 8, 0)
			s.SetBlocking(false)
			t.unixRecvCtl("recvmsg on an empty queue", s, 8, 64, 0)
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/SCM_RIGHTS limits", Run: func(t *T) {
			c, _ := t.unixPeers(ty)
			fd := c.Fileno()
			many := func(k int) []int {
				f := make([]int, k)
				for i := range f {
					f[i] = fd
				}
				return f
			}
			t.unixSendCtl("253 fds", c, []byte("x"), unix.UnixRights(many(253)...))
			t.unixSendCtl("254 fds", c, []byte("x"), unix.UnixRights(many(254)...))
			t.unixSendCtl("200+54 fds in two messages", c, []byte("x"), append(unix.UnixRights(many(200)...), unix.UnixRights(many(54)...)...))
			t.unixSendCtl("0 fds", c, []byte("x"), unix.UnixRights())
			t.unixSendCtl("a closed fd", c, []byte("x"), unix.UnixRights(999999))
			t.unixSendCtl("cmsg_len past the buffer", c, []byte("x"), unix.UnixRights(fd)[:16])
			t.unixSendCtl("SO_MARK message", c, []byte("x"), ctlMsg(sol, socket.SO_MARK, 4))
			t.unixSendCtl("SOL_IP message", c, []byte("x"), ctlMsg(socket.IPPROTO_IP, socket.IP_TTL, 4))
			if ty == STREAM {
				t.unixSendCtl("no bytes with fds", c, nil, unix.UnixRights(fd))
			}
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/SCM_CREDENTIALS sent", Run: func(t *T) {
			c, s := t.unixPeers(ty)
			t.Check("SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			me := unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
			t.unixSendCtl("own credentials", c, []byte("me"), unix.UnixCredentials(&me))
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 8, 64, 0)
			t.unixSendCtl("credentials 8 bytes", c, []byte("x"), ctlMsg(sol, unix.SCM_CREDENTIALS, 8))
			if os.Geteuid() == 0 {
				// Root may name another process on Linux (then it must
				// exist); sockstack never allows it. Not compared.
				t.Logf("foreign credentials: not compared as root")
				return
			}
			other := me
			other.Uid++
			t.unixSendCtl("foreign uid", c, []byte("x"), unix.UnixCredentials(&other))
			other = me
			other.Pid = 1
			t.unixSendCtl("foreign pid", c, []byte("x"), unix.UnixCredentials(&other))
		}})
	}
	return append(cs, unixCornerCases()...) // unix_limits_cases.go
}

// ctlMsg is one control message of level/typ with dlen zero bytes.
func ctlMsg(level, typ, dlen int) []byte {
	b := make([]byte, unix.CmsgSpace(dlen))
	ne := binary.NativeEndian
	ne.PutUint64(b, uint64(unix.CmsgLen(dlen)))
	ne.PutUint32(b[8:], uint32(level))
	ne.PutUint32(b[12:], uint32(typ))
	return b
}

// unixFromText shows a recvfrom address: empty, the listener's name, or
// another (the names differ per side only by their number).
func unixFromText(from, listener socket.Sockaddr) string {
	u, ok := from.(*socket.SockaddrUnix)
	switch {
	case from == nil:
		return "nil"
	case !ok:
		return fmt.Sprintf("%T", from)
	case u.Name == "":
		return "unnamed"
	case listener != nil && u.Name == listener.(*socket.SockaddrUnix).Name:
		return "the listener's name"
	}
	return "another name"
}

// unixPeers is a sending socket c and its receiving peer s of type ty:
// a datagram socket connected to a bound one, or the two ends of a
// stream or seqpacket connection.
func (t *T) unixPeers(ty int) (c, s sockapi.Sock) {
	if ty != DGRAM {
		_, c, s = t.unixConn(ty)
		return c, s
	}
	s = t.Socket(socket.AF_UNIX, DGRAM, 0)
	name := unixName()
	t.Must("bind", s.Bind(name))
	c = t.Socket(socket.AF_UNIX, DGRAM, 0)
	t.Must("connect", c.Connect(name))
	return c, s
}
