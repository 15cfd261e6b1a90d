package socket

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recvFDs reads one message with a control buffer of oobSize bytes and
// returns the data, the passed descriptors, the credentials (if any) and
// the flags.
func recvFDs(t *testing.T, s *Socket, size, oobSize int) (data []byte, fds []int, cred *unix.Ucred, rflags int) {
	t.Helper()
	buf, oob := make([]byte, size), make([]byte, oobSize)
	n, oobn, rflags, _, err := s.RecvMsgControl(buf, oob, 0)
	if err != nil {
		t.Fatalf("recvmsg: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatalf("parse control: %v (% x)", err, oob[:oobn])
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.SCM_RIGHTS:
			f, err := unix.ParseUnixRights(&m)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, f...)
		case unix.SCM_CREDENTIALS:
			if cred, err = unix.ParseUnixCredentials(&m); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf[:min(n, size)], fds, cred, rflags
}

// TestUnixRightsPassTCP passes a connected TCP socket over each kind of
// AF_UNIX socket; the sender closes its copy and the receiver uses the
// new descriptor to talk to the TCP peer.
func TestUnixRightsPassTCP(t *testing.T) {
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		n := newNet(t)
		l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
		if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
			t.Fatal(err)
		}
		l.Listen(1)
		la, _ := l.GetSockName()
		cl, err := n.Socket(AF_INET, SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Connect(la); err != nil {
			t.Fatal(err)
		}
		srv, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()

		a, b, err := n.SocketPair(typ)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.SendMsgControl([]byte("take this"), unix.UnixRights(cl.Fileno()), 0, nil); err != nil {
			t.Fatalf("type %d: sendmsg: %v", typ, err)
		}
		if n.UnixInflight() != 1 {
			t.Fatalf("in flight %d", n.UnixInflight())
		}
		cl.Close() // the message keeps the connection open
		data, fds, _, rf := recvFDs(t, b, 64, 64)
		if string(data) != "take this" || len(fds) != 1 || rf != 0 {
			t.Fatalf("type %d: got %q fds %v flags %#x", typ, data, fds, rf)
		}
		got := n.Lookup(fds[0])
		if got == nil || got.Family() != AF_INET || got.Type() != SOCK_STREAM {
			t.Fatalf("received descriptor %d: %v", fds[0], got)
		}
		if err := got.SendAll([]byte("via passed fd"), 0); err != nil {
			t.Fatal(err)
		}
		srv.SetTimeout(5 * time.Second)
		buf := make([]byte, 64)
		k, err := srv.Recv(buf, 0)
		if err != nil || string(buf[:k]) != "via passed fd" {
			t.Fatalf("peer got %q %v", buf[:k], err)
		}
		got.Close() // the last reference: the peer sees EOF
		if k, err := srv.Recv(buf, 0); k != 0 || err != nil {
			t.Fatalf("EOF: %d %v", k, err)
		}
		a.Close()
		b.Close()
		if n.UnixInflight() != 0 {
			t.Fatalf("in flight %d", n.UnixInflight())
		}
	}
}

// TestUnixRightsNoLeak: references in messages nobody reads are closed
// with the receiving socket, references cut by MSG_CTRUNC at once; no
// socket stays open.
func TestUnixRightsNoLeak(t *testing.T) {
	n := newNet(t)
	base := len(n.Sockets())
	a, b, _ := n.SocketPair(SOCK_DGRAM)
	var fds []int
	for i := 0; i < 5; i++ {
		u, _ := n.Socket(AF_INET, SOCK_DGRAM, 0)
		if err := u.Bind(Inet("127.0.0.1", 40000+i)); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, u.Fileno())
	}
	if _, err := a.SendMsgControl([]byte("1"), unix.UnixRights(fds...), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendMsgControl([]byte("2"), unix.UnixRights(fds[:2]...), 0, nil); err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		n.Lookup(fd).Close()
	}
	if len(n.Sockets()) != base+2 || n.UnixInflight() != 7 {
		t.Fatalf("open %d (base %d), in flight %d", len(n.Sockets()), base, n.UnixInflight())
	}
	// Room for two descriptors: two installed, three closed, MSG_CTRUNC.
	_, got, _, rf := recvFDs(t, b, 8, unix.CmsgSpace(2*4))
	if len(got) != 2 || rf&MSG_CTRUNC == 0 {
		t.Fatalf("ctrunc: fds %v flags %#x", got, rf)
	}
	if len(n.Sockets()) != base+4 || n.UnixInflight() != 2 {
		t.Fatalf("after ctrunc: open %d, in flight %d", len(n.Sockets())-base, n.UnixInflight())
	}
	// Port 40004's socket was among the cut ones: closed, its port free.
	u, _ := n.Socket(AF_INET, SOCK_DGRAM, 0)
	if err := u.Bind(Inet("127.0.0.1", 40004)); err != nil {
		t.Fatalf("port of a cut descriptor still bound: %v", err)
	}
	u.Close()
	for _, fd := range got {
		n.Lookup(fd).Close()
	}
	// Closing the receiver with message "2" unread closes its references.
	b.Close()
	a.Close()
	if len(n.Sockets()) != base || n.UnixInflight() != 0 {
		t.Fatalf("leak: open %d more, in flight %d", len(n.Sockets())-base, n.UnixInflight())
	}
	for i := 0; i < 5; i++ {
		u, _ := n.Socket(AF_INET, SOCK_DGRAM, 0)
		if err := u.Bind(Inet("127.0.0.1", 40000+i)); err != nil {
			t.Fatalf("port %d still bound: %v", 40000+i, err)
		}
		u.Close()
	}
	// A plain recv (no control buffer) closes what the message carried.
	a, b, _ = n.SocketPair(SOCK_STREAM)
	u, _ = n.Socket(AF_UNIX, SOCK_DGRAM, 0)
	u.Bind(&SockaddrUnix{"@passed"})
	a.SendMsgControl([]byte("x"), unix.UnixRights(u.Fileno()), 0, nil)
	u.Close()
	if k, err := b.Recv(make([]byte, 4), 0); k != 1 || err != nil {
		t.Fatal(k, err)
	}
	if n.UnixInflight() != 0 {
		t.Fatalf("in flight %d", n.UnixInflight())
	}
	u, _ = n.Socket(AF_UNIX, SOCK_DGRAM, 0)
	if err := u.Bind(&SockaddrUnix{"@passed"}); err != nil {
		t.Fatalf("name of a dropped descriptor still bound: %v", err)
	}
	u.Close()
	a.Close()
	b.Close()
	if len(n.Sockets()) != base {
		t.Fatalf("open %d more", len(n.Sockets())-base)
	}
}

func TestUnixRightsErrnos(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_SEQPACKET)
	defer a.Close()
	defer b.Close()
	fds := make([]int, SCM_MAX_FD+1)
	for i := range fds {
		fds[i] = a.Fileno()
	}
	_, err := a.SendMsgControl([]byte("x"), unix.UnixRights(fds...), 0, nil)
	wantErr(t, "254 fds", err, syscall.EINVAL)
	// 253 in two messages of one buffer, then one more.
	two := append(unix.UnixRights(fds[:200]...), unix.UnixRights(fds[:53]...)...)
	if _, err := a.SendMsgControl([]byte("x"), two, 0, nil); err != nil {
		t.Fatalf("253 fds: %v", err)
	}
	_, err = a.SendMsgControl([]byte("x"), append(two, unix.UnixRights(a.Fileno())...), 0, nil)
	wantErr(t, "254 fds in three messages", err, syscall.EINVAL)
	_, err = a.SendMsgControl([]byte("x"), unix.UnixRights(9999), 0, nil)
	wantErr(t, "bad fd", err, syscall.EBADF)
	if n.UnixInflight() != SCM_MAX_FD {
		t.Fatalf("in flight %d, want 253 (refused sends keep nothing)", n.UnixInflight())
	}
	_, fds2, _, rf := recvFDs(t, b, 4, unix.CmsgSpace(SCM_MAX_FD*4))
	if len(fds2) != SCM_MAX_FD || rf != 0 {
		t.Fatalf("got %d fds flags %#x", len(fds2), rf)
	}
	for _, fd := range fds2 {
		if err := n.Lookup(fd).Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Other SOL_SOCKET types are EINVAL; other levels are passed over.
	_, err = a.SendMsgControl([]byte("x"), ctlInt(SOL_SOCKET, SO_MARK, 1), 0, nil)
	wantErr(t, "SO_MARK", err, syscall.EINVAL)
	if _, err = a.SendMsgControl([]byte("x"), ctlInt(IPPROTO_IP, IP_TTL, 1), 0, nil); err != nil {
		t.Fatalf("IP level: %v", err)
	}
	// Control buffer too short for a header: MSG_CTRUNC, nothing kept.
	a.SendMsgControl([]byte("y"), unix.UnixRights(a.Fileno()), 0, nil)
	recvFDs(t, b, 4, 0) // the "x"
	_, f3, _, rf := recvFDs(t, b, 4, 10)
	if len(f3) != 0 || rf&MSG_CTRUNC == 0 || n.UnixInflight() != 0 {
		t.Fatalf("tiny control: %v %#x in flight %d", f3, rf, n.UnixInflight())
	}
}

// TestUnixRightsStreamBoundary: a stream read does not run past bytes
// that came with descriptors, and a zero-byte stream send passes none.
func TestUnixRightsStreamBoundary(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_STREAM)
	defer a.Close()
	defer b.Close()
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	a.Send([]byte("before-"), 0)
	a.SendMsgControl([]byte("rights"), unix.UnixRights(u.Fileno()), 0, nil)
	a.Send([]byte("-after"), 0)
	data, fds, _, _ := recvFDs(t, b, 64, 64)
	if string(data) != "before-rights" || len(fds) != 1 {
		t.Fatalf("first read %q fds %v", data, fds)
	}
	data, fds, _, _ = recvFDs(t, b, 64, 64)
	if string(data) != "-after" || len(fds) != 0 {
		t.Fatalf("second read %q fds %v", data, fds)
	}
	// Peeking dups the descriptors; the real read gets its own.
	a.SendMsgControl([]byte("peek"), unix.UnixRights(u.Fileno()), 0, nil)
	buf, oob := make([]byte, 64), make([]byte, 64)
	if _, oobn, _, _, err := b.RecvMsgControl(buf, oob, MSG_PEEK); err != nil || oobn == 0 {
		t.Fatalf("peek: %v %d", err, oobn)
	}
	_, fds2, _, _ := recvFDs(t, b, 64, 64)
	if len(fds2) != 1 {
		t.Fatalf("after peek %v", fds2)
	}
	if k, err := a.SendMsgControl(nil, unix.UnixRights(u.Fileno()), 0, nil); k != 0 || err != nil || n.UnixInflight() != 0 {
		t.Fatalf("empty stream send: %d %v in flight %d", k, err, n.UnixInflight())
	}
}

func TestUnixCredentials(t *testing.T) {
	n := newNet(t)
	me := unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	l := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	u := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	none := Ucred{Pid: 0, Uid: ^uint32(0), Gid: ^uint32(0)}
	if v, err := u.GetSockOpt(SOL_SOCKET, SO_PEERCRED); err != nil || v != none {
		t.Fatalf("unconnected SO_PEERCRED %v %v", v, err)
	}
	l.Bind(&SockaddrUnix{"@cred"})
	l.Listen(1)
	if err := l.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.GetSockOptInt(SOL_SOCKET, SO_PASSCRED); v != 1 {
		t.Fatalf("SO_PASSCRED %d", v)
	}
	if err := u.Connect(&SockaddrUnix{"@cred"}); err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := Ucred{Pid: me.Pid, Uid: me.Uid, Gid: me.Gid}
	for _, x := range []*Socket{u, s, l} {
		if v, err := x.GetSockOpt(SOL_SOCKET, SO_PEERCRED); err != nil || v != want {
			t.Fatalf("SO_PEERCRED %v %v", v, err)
		}
	}
	// The accepted socket inherited SO_PASSCRED: every message carries
	// SCM_CREDENTIALS.
	u.Send([]byte("hi"), 0)
	_, _, cred, _ := recvFDs(t, s, 8, 64)
	if cred == nil || *cred != me {
		t.Fatalf("SCM_CREDENTIALS %+v", cred)
	}
	// Credentials first, then descriptors.
	d := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	c := unix.UnixCredentials(&me)
	if _, err := u.SendMsgControl([]byte("both"), append(c, unix.UnixRights(d.Fileno())...), 0, nil); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 8), make([]byte, 128)
	_, oobn, _, _, _ := s.RecvMsgControl(buf, oob, 0)
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	if len(msgs) != 2 || msgs[0].Header.Type != SCM_CREDENTIALS || msgs[1].Header.Type != SCM_RIGHTS {
		t.Fatalf("control %v", msgs)
	}
	// Someone else's credentials: EPERM.
	for _, bad := range []unix.Ucred{{Pid: me.Pid + 1, Uid: me.Uid, Gid: me.Gid}, {Pid: me.Pid, Uid: me.Uid + 1, Gid: me.Gid}, {Pid: me.Pid, Uid: me.Uid, Gid: me.Gid + 1}} {
		_, err := u.SendMsgControl([]byte("x"), unix.UnixCredentials(&bad), 0, nil)
		wantErr(t, "foreign credentials", err, syscall.EPERM)
	}
	_, err = u.SendMsgControl([]byte("x"), unix.UnixCredentials(&me)[:unix.CmsgSpace(8)], 0, nil)
	if !errors.Is(err, syscall.EINVAL) {
		// cmsg_len still says 12 bytes but the buffer is shorter.
		t.Fatalf("short credentials: %v", err)
	}
	// A datagram socket with SO_PASSCRED autobinds when it sends.
	d2 := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	d2.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
	d.Bind(&SockaddrUnix{"@credd"})
	d.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, 1)
	if _, err := d2.SendTo([]byte("z"), 0, &SockaddrUnix{"@credd"}); err != nil {
		t.Fatal(err)
	}
	if sn, _ := d2.GetSockName(); sn.(*SockaddrUnix).Name == "" {
		t.Fatal("no autobind with SO_PASSCRED")
	}
	_, _, cred, _ = recvFDs(t, d, 8, 64)
	if cred == nil || *cred != me {
		t.Fatalf("datagram SCM_CREDENTIALS %+v", cred)
	}
}

// TestUnixGC: sockets that only their own queues keep open (passed into
// themselves, or into each other) are closed by the collector, and
// nothing a descriptor reaches is touched.
func TestUnixGC(t *testing.T) {
	n := newNet(t)
	base := len(n.Sockets())
	// A pair: b is passed into its own queue (a send on a goes to b),
	// and u into a's.
	a, b, _ := n.SocketPair(SOCK_STREAM)
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := u.Bind(Inet("127.0.0.1", 41000)); err != nil {
		t.Fatal(err)
	}
	a.SendMsgControl([]byte("b"), unix.UnixRights(b.Fileno()), 0, nil)
	b.SendMsgControl([]byte("u"), unix.UnixRights(u.Fileno()), 0, nil)
	// Two datagram sockets passed into each other.
	c, _ := n.Socket(AF_UNIX, SOCK_DGRAM, 0)
	d, _ := n.Socket(AF_UNIX, SOCK_DGRAM, 0)
	c.Bind(&SockaddrUnix{"@gc-c"})
	d.Bind(&SockaddrUnix{"@gc-d"})
	c.SendMsgControl([]byte("c"), unix.UnixRights(c.Fileno()), 0, &SockaddrUnix{"@gc-d"})
	if _, err := d.SendMsgControl([]byte("d"), unix.UnixRights(d.Fileno()), 0, &SockaddrUnix{"@gc-c"}); err != nil {
		t.Fatal(err)
	}
	// A live carrier: e holds a reference and e's descriptor stays.
	e, f, _ := n.SocketPair(SOCK_DGRAM)
	defer e.Close()
	defer f.Close()
	f.SendMsgControl([]byte("keep"), unix.UnixRights(a.Fileno()), 0, nil)

	if got := n.UnixGC(); got != 0 {
		t.Fatalf("collected %d while every socket has a descriptor", got)
	}
	// Closing a socket runs the collector, as Linux's unix_release_sock
	// does while anything is in flight: b, c and d go with the closes.
	u.Close()
	b.Close()
	c.Close()
	d.Close()
	if got := n.UnixGC(); got != 0 {
		t.Fatalf("collected %d more after the closes collected", got)
	}
	if n.UnixInflight() != 2 {
		t.Fatalf("after the first collection: in flight %d", n.UnixInflight())
	}
	a.Close() // now only e's queue holds a, whose queue holds u
	if got := n.UnixGC(); got != 0 {
		t.Fatalf("collected %d of what e's queue reaches", got)
	}
	data, fds, _, _ := recvFDs(t, e, 8, 64)
	if string(data) != "keep" || len(fds) != 1 {
		t.Fatalf("%q %v", data, fds)
	}
	a2 := n.Lookup(fds[0])
	// a2's queue still has u (its peer b is closed: EOF after it).
	_, fu, _, _ := recvFDs(t, a2, 8, 64)
	if len(fu) != 1 || n.Lookup(fu[0]).Type() != SOCK_DGRAM {
		t.Fatalf("u not received: %v", fu)
	}
	n.Lookup(fu[0]).Close()
	a2.Close()
	if n.UnixInflight() != 0 || len(n.Sockets()) != base+2 {
		t.Fatalf("in flight %d, open %d more", n.UnixInflight(), len(n.Sockets())-base)
	}
	// c's and d's names are free again: both sockets were closed.
	for _, name := range []string{"@gc-c", "@gc-d"} {
		x := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		if err := x.Bind(&SockaddrUnix{name}); err != nil {
			t.Fatalf("%s still bound: %v", name, err)
		}
	}
	// The pair passed into itself, then closed: collected too.
	g, h, _ := n.SocketPair(SOCK_SEQPACKET)
	g.SendMsgControl([]byte("h"), unix.UnixRights(h.Fileno()), 0, nil)
	g.Close()
	h.Close()
	if got := n.UnixGC(); got != 0 || n.UnixInflight() != 0 {
		t.Fatalf("self-passed pair: collected %d after the closes, in flight %d", got, n.UnixInflight())
	}
}

// TestUnixGCOnSend: past unixGCFirst references in flight, a sendmsg
// with descriptors collects the unreachable cycles by itself.
func TestUnixGCOnSend(t *testing.T) {
	n := newNet(t)
	// Closes collect too; without that the cycles are left for the
	// send to find.
	unixGCOnClose = false
	defer func() { unixGCOnClose = true }()
	for i := 0; i < unixGCFirst; i++ {
		a, b, _ := n.SocketPair(SOCK_DGRAM)
		if _, err := a.SendMsgControl([]byte("x"), unix.UnixRights(b.Fileno()), 0, nil); err != nil {
			t.Fatal(err)
		}
		a.Close()
		b.Close()
	}
	if n.UnixInflight() != unixGCFirst {
		t.Fatalf("in flight %d", n.UnixInflight())
	}
	a, b, _ := n.SocketPair(SOCK_DGRAM)
	defer a.Close()
	defer b.Close()
	if _, err := a.SendMsgControl([]byte("x"), unix.UnixRights(a.Fileno()), 0, nil); err != nil {
		t.Fatal(err)
	}
	if n.UnixInflight() != 1 {
		t.Fatalf("in flight %d after the send that collects", n.UnixInflight())
	}
}

// TestUnixRightsConcurrent passes descriptors from one goroutine while
// another receives and closes them and a third collects; at the end
// nothing is in flight and no socket is left open.
func TestUnixRightsConcurrent(t *testing.T) {
	n := newNet(t)
	base := len(n.Sockets())
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		a, b, _ := n.SocketPair(typ)
		const msgs = 200
		done := make(chan error, 1)
		go func() {
			buf, oob := make([]byte, 8), make([]byte, 64)
			got := 0
			for got < msgs {
				_, oobn, _, _, err := b.RecvMsgControl(buf, oob, 0)
				if err != nil {
					done <- err
					return
				}
				cm, _ := unix.ParseSocketControlMessage(oob[:oobn])
				for _, m := range cm {
					fds, _ := unix.ParseUnixRights(&m)
					for _, fd := range fds {
						n.Lookup(fd).Close()
						got++
					}
				}
				n.UnixGC()
			}
			done <- nil
		}()
		for i := 0; i < msgs; i++ {
			u, _ := n.Socket(AF_UNIX, SOCK_DGRAM, 0)
			if _, err := a.SendMsgControl([]byte("m"), unix.UnixRights(u.Fileno()), 0, nil); err != nil {
				t.Fatal(err)
			}
			u.Close()
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		a.Close()
		b.Close()
	}
	if n.UnixInflight() != 0 || len(n.Sockets()) != base {
		t.Fatalf("in flight %d, open %d more", n.UnixInflight(), len(n.Sockets())-base)
	}
}
