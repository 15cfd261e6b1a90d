package socket

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

func newNet(t testing.TB) *Net {
	t.Helper()
	st := stack.New(stack.Options{Name: "h1"})
	t.Cleanup(st.Close)
	return New(st)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func TestUnixStreamEcho(t *testing.T) {
	n := newNet(t)
	srv := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	if err := srv.Bind(&SockaddrUnix{"/tmp/echo.sock"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(5); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, from, err := srv.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if from.(*SockaddrUnix).Name != "@client" {
			done <- errors.New("accept from " + from.String())
			return
		}
		buf := make([]byte, 64)
		for {
			k, err := c.Recv(buf, 0)
			if err != nil || k == 0 {
				done <- err
				return
			}
			if err := c.SendAll(buf[:k], 0); err != nil {
				done <- err
				return
			}
		}
	}()
	cli := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	if err := cli.Bind(&SockaddrUnix{"\x00client"}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Connect(&SockaddrUnix{"/tmp/echo.sock"}); err != nil {
		t.Fatal(err)
	}
	if pn, _ := cli.GetPeerName(); pn.(*SockaddrUnix).Name != "/tmp/echo.sock" {
		t.Fatalf("peer name %v", pn)
	}
	msg := []byte("hello over AF_UNIX")
	if err := cli.SendAll(msg, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if k, err := cli.Recv(got, MSG_WAITALL); err != nil || !bytes.Equal(got[:k], msg) {
		t.Fatalf("echo %q %v", got[:k], err)
	}
	if err := cli.Shutdown(SHUT_WR); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Server closed: EOF, then EPIPE on write.
	if k, err := cli.Recv(got, 0); k != 0 || err != nil {
		t.Fatalf("after peer close: %d %v, want EOF", k, err)
	}
	_, err := cli.Send([]byte("x"), 0)
	wantErr(t, "send after peer close", err, syscall.EPIPE)
}

func TestUnixNamesAndErrors(t *testing.T) {
	n := newNet(t)
	s1 := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	c := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	wantErr(t, "connect missing path", c.Connect(&SockaddrUnix{"/nope"}), syscall.ENOENT)
	wantErr(t, "connect missing abstract", c.Connect(&SockaddrUnix{"@nope"}), syscall.ECONNREFUSED)
	if err := s1.Bind(&SockaddrUnix{"/srv"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "connect bound but not listening", c.Connect(&SockaddrUnix{"/srv"}), syscall.ECONNREFUSED)
	s2 := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	wantErr(t, "bind in use", s2.Bind(&SockaddrUnix{"/srv"}), syscall.EADDRINUSE)
	wantErr(t, "bind twice", s1.Bind(&SockaddrUnix{"/other"}), syscall.EINVAL)
	d := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if err := d.Bind(&SockaddrUnix{"/dgram"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "stream connect to dgram", c.Connect(&SockaddrUnix{"/dgram"}), syscall.EPROTOTYPE)

	// A path stays taken after close until unlinked; abstract names free on close.
	s1.Close()
	wantErr(t, "bind stale path", s2.Bind(&SockaddrUnix{"/srv"}), syscall.EADDRINUSE)
	wantErr(t, "connect stale path", c.Connect(&SockaddrUnix{"/srv"}), syscall.ECONNREFUSED)
	if err := n.Unlink("/srv"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "unlink twice", n.Unlink("/srv"), syscall.ENOENT)
	if err := s2.Bind(&SockaddrUnix{"/srv"}); err != nil {
		t.Fatalf("bind after unlink: %v", err)
	}
	a1 := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if err := a1.Bind(&SockaddrUnix{"@abs"}); err != nil {
		t.Fatal(err)
	}
	a2 := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	wantErr(t, "abstract in use (NUL form)", a2.Bind(&SockaddrUnix{"\x00abs"}), syscall.EADDRINUSE)
	a1.Close()
	if err := a2.Bind(&SockaddrUnix{"@abs"}); err != nil {
		t.Fatalf("abstract after close: %v", err)
	}
	// Autobind: empty name gets an abstract one.
	a3 := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if err := a3.Bind(&SockaddrUnix{""}); err != nil {
		t.Fatal(err)
	}
	if sn, _ := a3.GetSockName(); len(sn.(*SockaddrUnix).Name) != 6 || sn.(*SockaddrUnix).Name[0] != '@' {
		t.Fatalf("autobind name %q", sn)
	}
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'a'
	}
	wantErr(t, "name too long", a3.Connect(&SockaddrUnix{"/" + string(long)}), syscall.EINVAL)
	_, err := n.Socket(AF_UNIX, 6, 0) // SOCK_DCCP
	wantErr(t, "dccp", err, syscall.ESOCKTNOSUPPORT)
	_, err = n.Socket(AF_UNIX, SOCK_STREAM, 6)
	wantErr(t, "bad proto", err, syscall.EPROTONOSUPPORT)
}

func TestUnixStreamBacklog(t *testing.T) {
	n := newNet(t)
	srv := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	srv.Bind(&SockaddrUnix{"@bl"})
	if err := srv.Listen(1); err != nil {
		t.Fatal(err)
	}
	// Backlog 1 lets two connections wait, as Linux does.
	for i := 0; i < 2; i++ {
		c := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
		if err := c.Connect(&SockaddrUnix{"@bl"}); err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
	}
	nb := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	nb.SetBlocking(false)
	wantErr(t, "non-blocking connect to a full backlog", nb.Connect(&SockaddrUnix{"@bl"}), syscall.EINPROGRESS)
	if nb.Readiness(waiter.EventOut) != 0 {
		t.Fatal("queued connect is writable before accept")
	}
	blk := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	connected := make(chan error, 1)
	go func() { connected <- blk.Connect(&SockaddrUnix{"@bl"}) }()
	select {
	case err := <-connected:
		t.Fatalf("blocking connect to a full backlog returned %v", err)
	default:
	}
	for i := 0; i < 2; i++ {
		c, _, err := srv.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Two accepts made room for both waiting connectors, in order.
	if r := nb.Readiness(waiter.EventOut); r&waiter.EventOut == 0 {
		t.Fatalf("non-blocking connector not writable after accept: %v", r)
	}
	if v, _ := nb.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != 0 {
		t.Fatalf("SO_ERROR %d", v)
	}
	if err := <-connected; err != nil {
		t.Fatalf("blocking connect: %v", err)
	}
	// Listener closes with connections queued: refused / reset.
	late := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	late.SetBlocking(false)
	late.Connect(&SockaddrUnix{"@bl"})
	srv.Close()
	_, err := blk.Recv(make([]byte, 1), 0)
	wantErr(t, "queued connection when the listener closes", err, syscall.ECONNRESET)
	if v, _ := late.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != int(syscall.ECONNREFUSED) {
		t.Fatalf("pending connector SO_ERROR %d, want ECONNREFUSED", v)
	}
}

func TestUnixStreamFlowControl(t *testing.T) {
	n := newNet(t)
	a, b, err := n.SocketPair(SOCK_STREAM)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	sb, _ := a.GetSockOptInt(SOL_SOCKET, SO_SNDBUF)
	a.SetBlocking(false)
	chunk := make([]byte, 1000)
	total := 0
	for {
		k, err := a.Send(chunk, 0)
		total += k
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if total > 1<<20 {
			t.Fatal("writer never blocked")
		}
	}
	// Each 1000-byte write is charged 2304 bytes (its truesize), so four
	// reach SO_SNDBUF 8192, as on Linux 6.18.
	if want := (sb + 2303) / 2304 * 1000; total != want || sb != 8192 {
		t.Fatalf("queued %d bytes with SO_SNDBUF %d, want %d", total, sb, want)
	}
	if a.Readiness(waiter.EventOut) != 0 {
		t.Fatal("writable with a full buffer")
	}
	// A blocking writer waits until the reader drains.
	a.SetBlocking(true)
	sent := make(chan error, 1)
	big := bytes.Repeat([]byte{7}, 3*sb)
	go func() { sent <- a.SendAll(big, 0) }()
	got := 0
	buf := make([]byte, 8192)
	for got < total+len(big) {
		k, err := b.Recv(buf, 0)
		if err != nil || k == 0 {
			t.Fatalf("recv: %d %v", k, err)
		}
		got += k
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// Closing with unread data resets the peer.
	a.Send([]byte("unread"), 0)
	b.Close()
	_, err = a.Recv(buf, 0)
	wantErr(t, "peer closed with unread data", err, syscall.ECONNRESET)
	if k, err := a.Recv(buf, 0); k != 0 || err != nil {
		t.Fatalf("then EOF: %d %v", k, err)
	}
	r := a.Readiness(waiter.EventIn | waiter.EventOut | waiter.EventRdHUp)
	if r&waiter.EventHUp == 0 || r&waiter.EventRdHUp == 0 {
		t.Fatalf("readiness after peer close %#x", r)
	}
}

func TestUnixDgram(t *testing.T) {
	n := newNet(t)
	srv := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if err := srv.Bind(&SockaddrUnix{"/run/log"}); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	cli.Bind(&SockaddrUnix{"@cli"})
	for _, m := range []string{"one", "two", "three"} {
		if _, err := cli.SendTo([]byte(m), 0, &SockaddrUnix{"/run/log"}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 3)
	k, rflags, from, err := srv.RecvMsg(buf, 0)
	if err != nil || string(buf[:k]) != "one" || rflags != 0 || from.(*SockaddrUnix).Name != "@cli" {
		t.Fatalf("first: %q %x %v %v", buf[:k], rflags, from, err)
	}
	k, err = srv.Recv(buf[:2], MSG_PEEK)
	if err != nil || string(buf[:k]) != "tw" {
		t.Fatalf("peek %q %v", buf[:k], err)
	}
	k, rflags, _, _ = srv.RecvMsg(buf[:2], 0)
	if string(buf[:k]) != "tw" || rflags&MSG_TRUNC == 0 {
		t.Fatalf("truncated: %q %x", buf[:k], rflags)
	}
	k, _ = srv.Recv(buf[:1], MSG_TRUNC)
	if k != 5 {
		t.Fatalf("MSG_TRUNC length %d, want 5", k)
	}
	_, err = cli.SendTo([]byte("x"), 0, &SockaddrUnix{"/missing"})
	wantErr(t, "sendto missing path", err, syscall.ENOENT)
	_, err = cli.Send([]byte("x"), 0)
	wantErr(t, "send unconnected", err, syscall.ENOTCONN)

	// The queue is bounded: a non-blocking sender gets EAGAIN, a blocking one waits.
	if err := cli.Connect(&SockaddrUnix{"/run/log"}); err != nil {
		t.Fatal(err)
	}
	cli.SetBlocking(false)
	sent := 0
	for ; sent < 100; sent++ {
		if _, err := cli.Send([]byte{byte(sent)}, 0); err != nil {
			wantErr(t, "full queue", err, syscall.EAGAIN)
			break
		}
	}
	if sent != unixMaxDgramQ+1 {
		t.Fatalf("queued %d datagrams, want %d", sent, unixMaxDgramQ+1)
	}
	if cli.Readiness(waiter.EventOut) != 0 {
		t.Fatal("writable while the receiver is full")
	}
	cli.SetBlocking(true)
	done := make(chan error, 1)
	go func() { _, err := cli.Send([]byte{200}, 0); done <- err }()
	for i := 0; i <= sent; i++ {
		srv.SetTimeout(5 * time.Second)
		k, err := srv.Recv(buf, 0)
		if err != nil || k != 1 {
			t.Fatal(k, err)
		}
		if i < sent && buf[0] != byte(i) {
			t.Fatalf("datagram %d is %d", i, buf[0])
		}
		if i == sent && buf[0] != 200 {
			t.Fatalf("last datagram %d", buf[0])
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Another socket may not send to a connected one that is not its peer.
	other := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	cli2 := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	cli2.Bind(&SockaddrUnix{"@cli2"})
	cli2.Connect(&SockaddrUnix{"@cli"})
	_, err = other.SendTo([]byte("x"), 0, &SockaddrUnix{"@cli2"})
	wantErr(t, "send to a socket connected elsewhere", err, syscall.EPERM)
	// Peer gone: ECONNREFUSED once, then not connected.
	srv.Close()
	_, err = cli.Send([]byte("x"), 0)
	wantErr(t, "send to closed peer", err, syscall.ECONNREFUSED)
	_, err = cli.Send([]byte("x"), 0)
	wantErr(t, "send after refusal", err, syscall.ENOTCONN)
}

func TestUnixDgramPairAndSoError(t *testing.T) {
	n := newNet(t)
	a, b, err := n.SocketPair(SOCK_DGRAM)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	a.Send([]byte("ab"), 0)
	a.Send([]byte("c"), 0)
	buf := make([]byte, 10)
	if k, _ := b.Recv(buf, 0); string(buf[:k]) != "ab" {
		t.Fatalf("boundary: %q", buf[:k])
	}
	if k, _ := b.Recv(buf, 0); string(buf[:k]) != "c" {
		t.Fatalf("boundary: %q", buf[:k])
	}
	b.SetTimeout(0)
	_, err = b.Recv(buf, 0)
	wantErr(t, "empty", err, syscall.EAGAIN)
	if _, _, err := n.SocketPair(SOCK_RAW); err == nil {
		t.Fatal("socketpair SOCK_RAW worked")
	}
}
