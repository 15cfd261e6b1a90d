package socket

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// sameFDs is k copies of fd.
func sameFDs(fd, k int) []int {
	f := make([]int, k)
	for i := range f {
		f[i] = fd
	}
	return f
}

// recvFDsFlags is recvFDs with recvmsg flags.
func recvFDsFlags(t *testing.T, s *Socket, oobSize, flags int) (fds []int, rflags int) {
	t.Helper()
	buf, oob := make([]byte, 64), make([]byte, oobSize)
	_, oobn, rflags, _, err := s.RecvMsgControl(buf, oob, flags)
	if err != nil {
		t.Fatalf("recvmsg: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.SCM_RIGHTS {
			f, err := unix.ParseUnixRights(&m)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, f...)
		}
	}
	return fds, rflags
}

func closeFDs(t *testing.T, n *Net, fds []int) {
	t.Helper()
	for _, fd := range fds {
		if err := n.Lookup(fd).Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnixTooManyRefs: a sendmsg with SCM_RIGHTS is ETOOMANYREFS once
// the references already in flight exceed RLIMIT_NOFILE (the message's
// own are not counted, as in Linux's too_many_unix_fds), unless the
// sender is capable; receiving brings the count back under the limit.
func TestUnixTooManyRefs(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		n := newNet(t)
		capable := false
		n.unix.nofile = func() uint64 { return 300 }
		n.unix.capable = func() bool { return capable }
		a, b, _ := n.SocketPair(typ)
		x := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
		all := unix.UnixRights(sameFDs(x.Fileno(), SCM_MAX_FD)...)
		for i := 0; i < 2; i++ { // 0, then 253 in flight before: both under 300
			if _, err := a.SendMsgControl([]byte("x"), all, 0, nil); err != nil {
				t.Fatalf("type %d: send %d: %v", typ, i, err)
			}
		}
		if got := n.UnixInflight(); got != 2*SCM_MAX_FD {
			t.Fatalf("in flight %d", got)
		}
		_, err := a.SendMsgControl([]byte("x"), unix.UnixRights(x.Fileno()), 0, nil)
		wantErr(t, "506 in flight", err, syscall.ETOOMANYREFS)
		if got := n.UnixInflight(); got != 2*SCM_MAX_FD {
			t.Fatalf("refused send kept references: in flight %d", got)
		}
		if st := n.UnixRightsStats(); st.TooManyRefs != 1 || st.TooManyFDs != 0 {
			t.Fatalf("stats %+v", st)
		}
		// Data without descriptors is not limited.
		if _, err := a.Send([]byte("y"), 0); err != nil {
			t.Fatalf("plain send: %v", err)
		}
		capable = true
		if _, err := a.SendMsgControl([]byte("z"), unix.UnixRights(x.Fileno()), 0, nil); err != nil {
			t.Fatalf("capable sender: %v", err)
		}
		capable = false
		fds, _ := recvFDsFlags(t, b, unix.CmsgSpace(4*SCM_MAX_FD), 0)
		if len(fds) != SCM_MAX_FD {
			t.Fatalf("type %d: received %d fds", typ, len(fds))
		}
		closeFDs(t, n, fds)
		if _, err := a.SendMsgControl([]byte("w"), unix.UnixRights(x.Fileno()), 0, nil); err != nil {
			t.Fatalf("254 in flight: %v", err)
		}
		if _, err := a.SendMsgControl([]byte("w"), unix.UnixRights(sameFDs(x.Fileno(), SCM_MAX_FD+1)...), 0, nil); err != syscall.EINVAL {
			t.Fatalf("254 fds: %v", err)
		}
		if st := n.UnixRightsStats(); st.TooManyRefs != 1 || st.TooManyFDs != 1 {
			t.Fatalf("stats %+v", st)
		}
		a.Close()
		b.Close()
		if got := n.UnixInflight(); got != 0 {
			t.Fatalf("after close: in flight %d", got)
		}
	}
}

// TestUnixTooManyRefsDefaults: without the test hooks the limit is the
// process's soft RLIMIT_NOFILE and the exemption the thread's
// CAP_SYS_RESOURCE / CAP_SYS_ADMIN.
func TestUnixTooManyRefsDefaults(t *testing.T) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if got := nofileLimit(); got != r.Cur {
		t.Fatalf("nofileLimit %d, rlimit %d", got, r.Cur)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	want := data[0].Effective&(1<<21|1<<24) != 0
	if got := resourceCapable(); got != want {
		t.Fatalf("resourceCapable %v, effective %#x", got, data[0].Effective)
	}
}

// TestUnixCmsgCloexec: MSG_CMSG_CLOEXEC makes the received descriptors
// close-on-exec; without it they are not, as in Linux.
func TestUnixCmsgCloexec(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_DGRAM)
	defer a.Close()
	defer b.Close()
	x := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if x.CloseOnExec() {
		t.Fatal("new socket is close-on-exec")
	}
	two := unix.UnixRights(x.Fileno(), x.Fileno())
	for _, flags := range []int{0, MSG_CMSG_CLOEXEC, MSG_CMSG_CLOEXEC | MSG_PEEK} {
		a.SendMsgControl([]byte("f"), two, 0, nil)
		fds, _ := recvFDsFlags(t, b, 64, flags)
		if flags&MSG_PEEK != 0 {
			more, _ := recvFDsFlags(t, b, 64, 0) // take it off the queue
			if len(more) != 2 || n.Lookup(more[0]).CloseOnExec() {
				t.Fatalf("after peek: %v", more)
			}
			closeFDs(t, n, more)
		}
		if len(fds) != 2 {
			t.Fatalf("flags %#x: %v", flags, fds)
		}
		for _, fd := range fds {
			if got, want := n.Lookup(fd).CloseOnExec(), flags&MSG_CMSG_CLOEXEC != 0; got != want {
				t.Fatalf("flags %#x: fd %d close-on-exec %v", flags, fd, got)
			}
		}
		closeFDs(t, n, fds)
		// A closed descriptor's flag is gone, also when its number is
		// looked at through the closed Socket.
		if n.Lookup(fds[0]) != nil {
			t.Fatal("closed fd still in the table")
		}
	}
	if x.CloseOnExec() {
		t.Fatal("the sender's descriptor became close-on-exec")
	}
	if err := x.SetCloseOnExec(true); err != nil || !x.CloseOnExec() {
		t.Fatalf("F_SETFD: %v %v", err, x.CloseOnExec())
	}
	if err := x.SetCloseOnExec(false); err != nil || x.CloseOnExec() {
		t.Fatalf("clear: %v %v", err, x.CloseOnExec())
	}
	x.SetCloseOnExec(true)
	x.Close()
	if x.CloseOnExec() {
		t.Fatal("closed socket close-on-exec")
	}
	wantErr(t, "closed", x.SetCloseOnExec(true), syscall.EBADF)
}

// TestUnixCloexecBounded: the flags of closed descriptors are swept, so
// the table does not grow with every descriptor ever received.
func TestUnixCloexecBounded(t *testing.T) {
	n := newNet(t)
	for i := 0; i < 1000; i++ {
		s := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		s.SetCloseOnExec(true)
		s.Close()
	}
	n.unix.fdmu.Lock()
	size := len(n.unix.cloexec)
	n.unix.fdmu.Unlock()
	if size > 128 {
		t.Fatalf("%d entries for no open descriptor", size)
	}
}

// TestUnixCredsAtSend: a message carries credentials only when the
// sender or the receiver had SO_PASSCRED at the send (or the receiver
// was a connection not yet accepted); a receiver that turns SO_PASSCRED
// on later sees pid 0 and the overflow ids for it, as in Linux. A
// stream read with SO_PASSCRED does not join bytes sent with other
// credentials; without it, it does.
func TestUnixCredsAtSend(t *testing.T) {
	ouid, ogid := overflowIDs()
	none := unix.Ucred{Pid: 0, Uid: ouid, Gid: ogid}
	self := unix.Ucred{Pid: int32(processCred().Pid), Uid: processCred().Uid, Gid: processCred().Gid}
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		n := newNet(t)
		a, b, _ := n.SocketPair(typ)
		a.Send([]byte("early"), 0)
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		a.Send([]byte("late"), 0)
		for _, want := range []struct {
			data string
			cred unix.Ucred
		}{{"early", none}, {"late", self}} {
			data, _, cred, _ := recvFDs(t, b, 64, 64)
			if string(data) != want.data || cred == nil || *cred != want.cred {
				t.Fatalf("type %d: got %q creds %+v, want %q %+v", typ, data, cred, want.data, want.cred)
			}
		}
		// The sender's SO_PASSCRED is enough.
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 0)
		a.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		a.Send([]byte("snd"), 0)
		a.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 0)
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		if data, _, cred, _ := recvFDs(t, b, 64, 64); string(data) != "snd" || cred == nil || *cred != self {
			t.Fatalf("type %d: sender's SO_PASSCRED: %q %+v", typ, data, cred)
		}
		if typ != SOCK_STREAM {
			continue
		}
		// Without SO_PASSCRED a stream read joins them.
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 0)
		a.Send([]byte("ab"), 0)
		a.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		a.Send([]byte("cd"), 0)
		if data, _, cred, _ := recvFDs(t, b, 64, 64); string(data) != "abcd" || cred != nil {
			t.Fatalf("joined read: %q %+v", data, cred)
		}
		// Steady traffic keeps one run per change of credentials.
		for i := 0; i < 100; i++ {
			a.Send([]byte("x"), 0)
			recvFDs(t, b, 64, 64)
		}
		e := b.ep.(*unixEP)
		e.mu.Lock()
		runs := len(e.creds)
		e.mu.Unlock()
		if runs != 0 {
			t.Fatalf("%d credential runs left with nothing queued", runs)
		}
	}
}

// TestUnixCredsEmbryo: bytes sent before accept carry credentials (the
// server end has no socket yet, so Linux attaches them).
func TestUnixCredsEmbryo(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_SEQPACKET} {
		n := newNet(t)
		l := mustSocket(t, n, AF_UNIX, typ, 0)
		l.Bind(&SockaddrUnix{Name: "@embryo"})
		l.Listen(1)
		c := mustSocket(t, n, AF_UNIX, typ, 0)
		if err := c.Connect(&SockaddrUnix{Name: "@embryo"}); err != nil {
			t.Fatal(err)
		}
		c.Send([]byte("before"), 0)
		s, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Send([]byte("after"), 0)
		s.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		if data, _, cred, _ := recvFDs(t, s, 64, 64); string(data) != "before" || cred == nil || cred.Pid != processCred().Pid {
			t.Fatalf("type %d: before accept: %q %+v", typ, data, cred)
		}
		if data, _, cred, _ := recvFDs(t, s, 64, 64); string(data) != "after" || cred == nil || cred.Pid != 0 {
			t.Fatalf("type %d: after accept: %q %+v", typ, data, cred)
		}
	}
}

// TestUnixCmsgCloexecFlag: MSG_CMSG_CLOEXEC comes back in the flags,
// as Linux's msg_flags has it.
func TestUnixCmsgCloexecFlag(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_DGRAM)
	a.Send([]byte("x"), 0)
	if _, rf := recvFDsFlags(t, b, 64, MSG_CMSG_CLOEXEC); rf != MSG_CMSG_CLOEXEC {
		t.Fatalf("flags %#x", rf)
	}
}

// TestUnixCtruncNoControl: a recvmsg without a control buffer sets
// MSG_CTRUNC when SO_PASSCRED is on or descriptors came, and closes
// those descriptors (Linux's scm_recv without msg_control); with
// neither, no flag.
func TestUnixCtruncNoControl(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		n := newNet(t)
		a, b, _ := n.SocketPair(typ)
		x := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		recv := func(what string, oobSize, want int) {
			t.Helper()
			buf := make([]byte, 8)
			_, oobn, rf, _, err := b.RecvMsgControl(buf, make([]byte, oobSize), MSG_DONTWAIT)
			if err != nil || rf != want || (oobSize < 16 && oobn != 0) {
				t.Fatalf("type %d, %s: flags %#x oobn %d %v, want flags %#x", typ, what, rf, oobn, err, want)
			}
		}
		a.Send([]byte("m"), 0)
		recv("nothing", 0, 0)
		a.SendMsgControl([]byte("m"), unix.UnixRights(x.Fileno()), 0, nil)
		x.Close() // the message holds the last reference
		recv("fds, no buffer", 0, MSG_CTRUNC)
		if got := n.UnixInflight(); got != 0 || len(n.Sockets()) != 2 {
			t.Fatalf("type %d: in flight %d, %d sockets open", typ, got, len(n.Sockets()))
		}
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		a.Send([]byte("m"), 0)
		recv("SO_PASSCRED, no buffer", 0, MSG_CTRUNC)
		a.Send([]byte("m"), 0)
		recv("SO_PASSCRED, 15 bytes", 15, MSG_CTRUNC)
		a.Send([]byte("m"), 0)
		recv("SO_PASSCRED, header and 8 bytes", 24, MSG_CTRUNC)
		a.Send([]byte("m"), 0)
		recv("SO_PASSCRED, room", unix.CmsgSpace(12), 0)
		a.Close()
		b.Close()
	}
}

// waitReader waits until a reader blocks in s (nothing left to read and
// a waiter for EventIn).
func waitReader(t *testing.T, s *Socket) {
	t.Helper()
	e := s.ep.(*unixEP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		empty := e.rx.n == 0
		e.mu.Unlock()
		if empty && e.wq.Waiting(waiter.EventIn) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never blocked")
		}
		runtime.Gosched()
	}
}

// TestUnixWaitAll: a stream recvmsg with MSG_WAITALL waits until its
// buffer is full, but ends after bytes that came with descriptors and
// before bytes sent with other credentials (SO_PASSCRED), as Linux's
// unix_stream_read_generic; non-blocking, it returns what there is.
func TestUnixWaitAll(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_STREAM)
	b.SetTimeout(10 * time.Second)
	x := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	type res struct {
		data string
		fds  int
		err  error
	}
	read := func(flags int) chan res {
		ch := make(chan res, 1)
		go func() {
			buf, oob := make([]byte, 6), make([]byte, 64)
			k, oobn, _, _, err := b.RecvMsgControl(buf, oob, MSG_WAITALL|flags)
			fds := 0
			if msgs, _ := unix.ParseSocketControlMessage(oob[:oobn]); len(msgs) > 0 {
				f, _ := unix.ParseUnixRights(&msgs[0])
				fds = len(f)
				closeFDs(t, n, f)
			}
			ch <- res{string(buf[:k]), fds, err}
		}()
		return ch
	}
	a.Send([]byte("ab"), 0)
	ch := read(0)
	waitReader(t, b)
	a.Send([]byte("cd"), 0)
	waitReader(t, b)
	a.Send([]byte("efgh"), 0)
	if r := <-ch; r.data != "abcdef" || r.err != nil {
		t.Fatalf("waitall: %+v", r)
	}
	b.Recv(make([]byte, 8), 0) // "gh"

	a.Send([]byte("ab"), 0)
	ch = read(0)
	waitReader(t, b)
	a.SendMsgControl([]byte("cd"), unix.UnixRights(x.Fileno()), 0, nil)
	a.Send([]byte("ef"), 0)
	if r := <-ch; r.data != "abcd" || r.fds != 1 || r.err != nil {
		t.Fatalf("waitall with fds: %+v", r)
	}
	b.Recv(make([]byte, 8), 0) // "ef"

	a.Send([]byte("ab"), 0)
	b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
	a.Send([]byte("cd"), 0)
	if r := <-read(0); r.data != "ab" || r.err != nil {
		t.Fatalf("waitall across credentials: %+v", r)
	}
	if r := <-read(MSG_DONTWAIT); r.data != "cd" || r.err != nil {
		t.Fatalf("waitall non-blocking: %+v", r)
	}
	if got := n.UnixInflight(); got != 0 {
		t.Fatalf("in flight %d", got)
	}
}

// TestUnixRecvMsgCtrunc: the plain RecvMsg (no control buffer) reports
// MSG_CTRUNC as Linux's recvmsg with msg_controllen 0 does, when
// descriptors came (they are closed) or SO_PASSCRED is on; Recv with
// MSG_CMSG_CLOEXEC, a flag of its own bit, reads as usual.
func TestUnixRecvMsgCtrunc(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		n := newNet(t)
		a, b, _ := n.SocketPair(typ)
		x := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		recv := func(what string, want int) {
			t.Helper()
			buf := make([]byte, 8)
			k, rf, _, err := b.RecvMsg(buf, MSG_DONTWAIT)
			if err != nil || k != 1 || rf != want {
				t.Fatalf("type %d, %s: %d bytes, flags %#x, %v; want 1 byte, flags %#x", typ, what, k, rf, err, want)
			}
		}
		a.Send([]byte("m"), 0)
		recv("nothing", 0)
		a.SendMsgControl([]byte("m"), unix.UnixRights(x.Fileno()), 0, nil)
		x.Close()
		recv("descriptors", MSG_CTRUNC)
		if got := n.UnixInflight(); got != 0 || len(n.Sockets()) != 2 {
			t.Fatalf("type %d: in flight %d, %d sockets open", typ, got, len(n.Sockets()))
		}
		b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
		a.Send([]byte("m"), 0)
		recv("SO_PASSCRED", MSG_CTRUNC)
		a.Send([]byte("m"), 0)
		if k, err := b.Recv(make([]byte, 8), MSG_DONTWAIT|MSG_CMSG_CLOEXEC); k != 1 || err != nil {
			t.Fatalf("type %d: Recv with MSG_CMSG_CLOEXEC: %d, %v", typ, k, err)
		}
		a.Close()
		b.Close()
	}
}

// TestRecvMsgCloexecEchoed: recvmsg hands MSG_CMSG_CLOEXEC back in its
// flags on any socket, as Linux's ___sys_recvmsg.
func TestRecvMsgCloexecEchoed(t *testing.T) {
	n := newNet(t)
	a := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	b := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := b.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	to, _ := b.GetSockName()
	b.SetTimeout(10 * time.Second) // a failure, not a hang
	for i, recv := range []func() (int, error){
		func() (int, error) {
			_, rf, _, err := b.RecvMsg(make([]byte, 8), MSG_CMSG_CLOEXEC)
			return rf, err
		},
		func() (int, error) {
			_, _, rf, _, err := b.RecvMsgControl(make([]byte, 8), make([]byte, 64), MSG_CMSG_CLOEXEC)
			return rf, err
		},
	} {
		if _, err := a.SendTo([]byte("x"), 0, to); err != nil {
			t.Fatal(err)
		}
		rf, err := recv()
		if err != nil || rf != MSG_CMSG_CLOEXEC {
			t.Fatalf("call %d: flags %#x, %v; want MSG_CMSG_CLOEXEC", i, rf, err)
		}
	}
}
