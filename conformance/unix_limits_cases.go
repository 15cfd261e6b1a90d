package conformance

import (
	"fmt"
	"runtime"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// AF_UNIX corners against Linux (socket/unix_rights.go): ETOOMANYREFS
// once the descriptors in flight pass RLIMIT_NOFILE, MSG_CMSG_CLOEXEC,
// MSG_CTRUNC for credentials that find no room, the credentials a
// message carries when SO_PASSCRED is set after it was sent (or it was
// sent before accept), where MSG_WAITALL stops, SO_PEERCRED of
// socketpair, and abstract names.

// withoutResourceCaps runs f on a thread whose effective set lacks
// CAP_SYS_RESOURCE and CAP_SYS_ADMIN, which exempt a sender from
// ETOOMANYREFS; both sides look at the calling thread (capabilities are
// per thread). The thread gets them back afterwards.
func withoutResourceCaps(t *T, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved, cut [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		t.Logf("capget: %s", ErrName(err))
		return
	}
	cut = saved
	cut[0].Effective &^= 1<<21 | 1<<24 // CAP_SYS_ADMIN, CAP_SYS_RESOURCE
	if cut != saved {
		if err := unix.Capset(&hdr, &cut[0]); err != nil {
			t.Logf("capset: %s", ErrName(err))
			return
		}
		defer unix.Capset(&hdr, &saved[0])
	}
	f()
}

// unixSendFDs sends one byte with the descriptors fds.
func unixSendFDs(s sockapi.Sock, fds []int) error {
	oob := unix.UnixRights(fds...)
	switch v := s.(type) {
	case sockapi.HostSock:
		_, err := unix.SendmsgN(v.Fileno(), []byte("x"), oob, nil, unix.MSG_DONTWAIT)
		return err
	case sockapi.StackSock:
		_, err := v.SendMsgControl([]byte("x"), oob, socket.MSG_DONTWAIT, nil)
		return err
	}
	return nil
}

// unixPair is socketpair(AF_UNIX, ty) on the case's side. On the
// kernel the pair's descriptors are moved (dup3) onto the descriptors of
// two hostsock sockets, which then work on the pair.
func (t *T) unixPair(ty int) (a, b sockapi.Sock) {
	a, b = t.Socket(socket.AF_UNIX, ty, 0), t.Socket(socket.AF_UNIX, ty, 0)
	switch v := a.(type) {
	case sockapi.StackSock:
		x, y, err := v.Net().SocketPair(ty)
		t.Must("socketpair", err)
		return t.Track(sockapi.StackSock{Socket: x}), t.Track(sockapi.StackSock{Socket: y})
	case sockapi.HostSock:
		fds, err := unix.Socketpair(unix.AF_UNIX, ty|unix.SOCK_CLOEXEC, 0)
		t.Must("socketpair", err)
		for i, s := range []sockapi.Sock{a, b} {
			if err := unix.Dup3(fds[i], s.Fileno(), unix.O_CLOEXEC); err != nil {
				t.Must("dup3", err)
			}
			unix.Close(fds[i])
		}
	}
	return a, b
}

func unixCornerCases() []Case {
	SEQ := socket.SOCK_SEQPACKET
	sol := socket.SOL_SOCKET
	var cs []Case
	for _, ty := range []int{STREAM, SEQ} {
		ty := ty
		tn := unixTypeNames[ty]
		cs = append(cs, Case{Name: "unix/" + tn + "/ETOOMANYREFS past RLIMIT_NOFILE", Run: func(t *T) {
			var lim unix.Rlimit
			if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 150*socket.SCM_MAX_FD {
				t.Logf("RLIMIT_NOFILE too high to reach in a case: not compared")
				return
			}
			withoutResourceCaps(t, func() {
				c, s := t.unixPeers(ty)
				x := t.Socket(socket.AF_INET, DGRAM, 0)
				all := make([]int, socket.SCM_MAX_FD)
				for i := range all {
					all[i] = x.Fileno()
				}
				sent := 0
				var err error
				for sent < 160 {
					if err = unixSendFDs(c, all); err != nil {
						break
					}
					sent++
				}
				// The refusal comes once the descriptors already in
				// flight exceed the limit: after ceil((limit+1)/253) messages.
				want := (int(lim.Cur) + socket.SCM_MAX_FD) / socket.SCM_MAX_FD
				t.Logf("messages of 253 fds sent: as expected from RLIMIT_NOFILE %v; then %s", sent == want, ErrName(err))
				t.Logf("one more fd: %s", ErrName(unixSendFDs(c, all[:1])))
				t.Send("no fds", c, []byte("y"), 0, nil)
				Ready(s, false, 5*time.Second)
				t.unixRecvCtl("recvmsg", s, 8, unix.CmsgSpace(4*socket.SCM_MAX_FD), 0)
				// 253 fewer in flight: under the limit again when the
				// last message was the one that went past it.
				t.Logf("one fd after a receive: under the limit %v: %s",
					(sent-1)*socket.SCM_MAX_FD <= int(lim.Cur), ErrName(unixSendFDs(c, all[:1])))
				t.Check("close receiver", s.Close())
				t.Logf("one fd after the receiver closed: %s", ErrName(unixSendFDs(c, all[:1])))
			})
		}})
	}
	for _, ty := range []int{STREAM, SEQ} {
		ty := ty
		tn := unixTypeNames[ty]
		cs = append(cs, Case{Name: "unix/" + tn + "/credentials before accept and at EOF", Run: func(t *T) {
			l := t.Socket(socket.AF_UNIX, ty, 0)
			name := unixName()
			t.Must("bind", l.Bind(name))
			t.Must("listen", l.Listen(1))
			c := t.Socket(socket.AF_UNIX, ty, 0)
			t.Must("connect", c.Connect(name))
			t.Send("send before accept", c, []byte("before"), 0, nil)
			l.SetTimeout(5 * time.Second)
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			t.Send("send after accept", c, []byte("after"), 0, nil)
			t.Check("SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 64, 64, 0)
			t.unixRecvCtl("recvmsg", s, 64, 64, 0)
			t.Check("close client", c.Close())
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg at EOF", s, 64, 64, 0)
		}})
	}
	for _, ty := range []int{STREAM, SEQ, DGRAM} {
		ty := ty
		tn := unixTypeNames[ty]
		cs = append(cs, Case{Name: "unix/" + tn + "/MSG_CMSG_CLOEXEC", Run: func(t *T) {
			c, s := t.unixPeers(ty)
			x := t.Socket(socket.AF_INET, DGRAM, 0)
			two := unix.UnixRights(x.Fileno(), x.Fileno())
			for _, f := range []struct {
				name  string
				flags int
			}{{"no flag", 0}, {"MSG_CMSG_CLOEXEC", unix.MSG_CMSG_CLOEXEC}, {"MSG_CMSG_CLOEXEC|MSG_PEEK", unix.MSG_CMSG_CLOEXEC | unix.MSG_PEEK}, {"after the peek", 0}} {
				if f.name != "after the peek" {
					t.unixSendCtl("send 2 fds", c, []byte("fds"), two)
				}
				Ready(s, false, 5*time.Second)
				t.unixRecvCtl("recvmsg "+f.name, s, 8, 64, f.flags)
			}
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/SO_PASSCRED set after the send", Run: func(t *T) {
			c, s := t.unixPeers(ty)
			t.Send("send before SO_PASSCRED", c, []byte("early"), 0, nil)
			t.Check("receiver SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			t.Send("send after", c, []byte("late"), 0, nil)
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 16, 64, 0)
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 16, 64, 0)
			t.Check("receiver SO_PASSCRED off", s.SetSockOptInt(sol, socket.SO_PASSCRED, 0))
			t.Check("sender SO_PASSCRED", c.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			t.Send("send with the sender's SO_PASSCRED", c, []byte("snd"), 0, nil)
			t.Check("sender SO_PASSCRED off", c.SetSockOptInt(sol, socket.SO_PASSCRED, 0))
			t.Check("receiver SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg", s, 16, 64, 0)
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/MSG_CTRUNC for credentials", Run: func(t *T) {
			c, s := t.unixPeers(ty)
			t.Check("receiver SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			for _, sz := range []int{0, 15, 16, unix.CmsgLen(8), unix.CmsgLen(12), unix.CmsgSpace(12)} {
				t.Send("send", c, []byte("m"), 0, nil)
				Ready(s, false, 5*time.Second)
				t.unixRecvCtl(fmt.Sprintf("recvmsg control %d bytes", sz), s, 8, sz, 0)
			}
			t.Check("receiver SO_PASSCRED off", s.SetSockOptInt(sol, socket.SO_PASSCRED, 0))
			t.Send("send", c, []byte("m"), 0, nil)
			Ready(s, false, 5*time.Second)
			t.unixRecvCtl("recvmsg control 0 bytes without SO_PASSCRED", s, 8, 0, 0)
		}})
		cs = append(cs, Case{Name: "unix/" + tn + "/socketpair SO_PEERCRED and SO_PASSCRED", Run: func(t *T) {
			a, b := t.unixPair(ty)
			t.peerCred("end 0 SO_PEERCRED", a)
			t.peerCred("end 1 SO_PEERCRED", b)
			t.Check("SO_PASSCRED", b.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
			_, err := a.Send([]byte("hi"), 0)
			t.Check("send", err)
			t.unixRecvCtl("recvmsg", b, 8, 64, 0)
		}})
	}
	cs = append(cs, Case{Name: "unix/dgram/SO_PASSCRED on an unconnected receiver", Run: func(t *T) {
		r := t.Socket(socket.AF_UNIX, DGRAM, 0)
		name := unixName()
		t.Must("bind", r.Bind(name))
		t.Check("receiver SO_PASSCRED", r.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
		u := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Send("sendto from an unbound socket", u, []byte("a"), 0, name)
		sa, _ := u.GetSockName()
		t.Logf("sender's name after sendto: %q", sa.(*socket.SockaddrUnix).Name)
		Ready(r, false, 5*time.Second)
		t.unixRecvCtl("recvmsg", r, 8, 64, 0)
		_, from, err := r.RecvFrom(make([]byte, 8), socket.MSG_DONTWAIT)
		t.Logf("recvfrom on an empty queue: %s %v", ErrName(err), from)
		p := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("sender SO_PASSCRED", p.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
		t.Send("sendto with SO_PASSCRED", p, []byte("b"), 0, name)
		sa, _ = p.GetSockName()
		n := sa.(*socket.SockaddrUnix).Name
		t.Logf("sender autobound: %d bytes, abstract %v", len(n), len(n) > 0 && (n[0] == '@' || n[0] == 0))
		Ready(r, false, 5*time.Second)
		_, from, err = r.RecvFrom(make([]byte, 8), 0)
		t.Logf("recvfrom: %s, the sender's name %v", ErrName(err), from != nil && from.(*socket.SockaddrUnix).Name == n)
	}})
	cs = append(cs, Case{Name: "unix/stream/MSG_WAITALL stops at descriptors and credentials", Run: func(t *T) {
		c, s := t.unixPeers(STREAM)
		x := t.Socket(socket.AF_INET, DGRAM, 0)
		t.Send("send", c, []byte("ab"), 0, nil)
		t.unixSendCtl("send 1 fd", c, []byte("cd"), unix.UnixRights(x.Fileno()))
		t.Send("send", c, []byte("ef"), 0, nil)
		Ready(s, false, 5*time.Second)
		t.unixRecvCtl("recvmsg MSG_WAITALL", s, 6, 64, unix.MSG_WAITALL)
		t.unixRecvCtl("recvmsg MSG_WAITALL", s, 6, 64, unix.MSG_WAITALL)
		t.Send("send", c, []byte("gh"), 0, nil)
		t.Check("SO_PASSCRED", s.SetSockOptInt(sol, socket.SO_PASSCRED, 1))
		t.Send("send", c, []byte("ij"), 0, nil)
		t.unixRecvCtl("recvmsg MSG_WAITALL", s, 6, 64, unix.MSG_WAITALL)
		t.unixRecvCtl("recvmsg MSG_WAITALL", s, 6, 64, unix.MSG_WAITALL)
	}})
	// A name given with a leading NUL instead of "@", an abstract name of
	// 108 bytes (sun_path full, no terminator) and the empty name (the
	// family alone: autobind on bind, EINVAL on connect).
	cs = append(cs, Case{Name: "unix/names: leading NUL, 108 bytes, empty", Run: func(t *T) {
		tag := unixName().Name
		nul := "\x00" + tag[1:]
		s := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("bind with a leading NUL", s.Bind(&socket.SockaddrUnix{Name: nul}))
		if sa, err := s.GetSockName(); err == nil {
			t.Logf("getsockname is the @ name: %v", sa.(*socket.SockaddrUnix).Name == tag)
		}
		c := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("connect to it by its @ name", c.Connect(&socket.SockaddrUnix{Name: tag}))
		long := tag + string(make([]byte, 108-len(tag)-1)) + "z"
		l := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("bind a 108-byte abstract name", l.Bind(&socket.SockaddrUnix{Name: long}))
		t.Check("connect to it", t.Socket(socket.AF_UNIX, DGRAM, 0).Connect(&socket.SockaddrUnix{Name: long}))
		t.Check("bind a 109-byte name", t.Socket(socket.AF_UNIX, DGRAM, 0).Bind(&socket.SockaddrUnix{Name: long + "y"}))
		a := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("bind the empty name (autobind)", a.Bind(&socket.SockaddrUnix{}))
		if sa, err := a.GetSockName(); err == nil {
			n := sa.(*socket.SockaddrUnix).Name
			t.Logf("autobound name: @ and %d more bytes", len(n)-1)
		}
		t.Check("bind it again", a.Bind(&socket.SockaddrUnix{}))
		t.Check("bind the empty name on a named socket", l.Bind(&socket.SockaddrUnix{}))
		if sa, err := l.GetSockName(); err == nil {
			t.Logf("its name stays: %v", sa.(*socket.SockaddrUnix).Name == long)
		}
		t.Check("bind a name on an autobound socket", a.Bind(&socket.SockaddrUnix{Name: tag + "-2"}))
		t.Check("connect to the empty name", t.Socket(socket.AF_UNIX, DGRAM, 0).Connect(&socket.SockaddrUnix{}))
	}})
	cs = append(cs, Case{Name: "unix/abstract names", Run: func(t *T) {
		tag := unixName().Name // "@sockstack-conf-<pid>-<n>"
		s := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("bind the empty abstract name", s.Bind(&socket.SockaddrUnix{Name: "@"}))
		sa, _ := s.GetSockName()
		t.Logf("getsockname: %q", sa.(*socket.SockaddrUnix).Name)
		again := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("bind it again", again.Bind(&socket.SockaddrUnix{Name: "@"}))
		c := t.Socket(socket.AF_UNIX, DGRAM, 0)
		t.Check("connect to it", c.Connect(&socket.SockaddrUnix{Name: "@"}))
		t.Send("send", c, []byte("e"), 0, nil)
		t.unixRecv("recv", s, 8, socket.MSG_DONTWAIT)
		t.Check("close it", s.Close())
		t.Send("send after close", c, []byte("e"), 0, nil)
		t.Check("bind it after close", again.Bind(&socket.SockaddrUnix{Name: "@"}))
		for i, nm := range []string{tag + "\x00with NUL", "@" + string(make([]byte, 105)) + "x"} {
			s := t.Socket(socket.AF_UNIX, DGRAM, 0)
			label := [...]string{"a name with a NUL inside", "a 107-byte name of NULs"}[i]
			if err := s.Bind(&socket.SockaddrUnix{Name: nm}); err != nil {
				t.Logf("bind %s: %s", label, ErrName(err))
				continue
			}
			sa, _ := s.GetSockName()
			t.Logf("bind %s: ok, getsockname same %v", label, sa.(*socket.SockaddrUnix).Name == nm)
			c := t.Socket(socket.AF_UNIX, DGRAM, 0)
			t.Check("connect", c.Connect(&socket.SockaddrUnix{Name: nm}))
			t.Check("connect to the name cut at its NUL", c.Connect(&socket.SockaddrUnix{Name: nm[:len(nm)-1]}))
			st := t.Socket(socket.AF_UNIX, STREAM, 0)
			t.Check("stream connect to the dgram name", st.Connect(&socket.SockaddrUnix{Name: nm}))
		}
	}})
	return cs
}
