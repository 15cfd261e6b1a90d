package socket

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// TestTCPLevelOptions: the TCP-level options of tcpopts.go set and read
// back through the socket API on IPv4 and IPv6 TCP sockets, with
// Linux's rounding and errnos; a UDP socket knows none of them.
func TestTCPLevelOptions(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	type step struct{ opt, set, get int }
	steps := []step{
		{TCP_QUICKACK, 0, 0}, {TCP_QUICKACK, 1, 1},
		{TCP_SYNCNT, 3, 3},
		{TCP_LINGER2, 500, 120}, {TCP_LINGER2, -4, -1}, {TCP_LINGER2, 0, 60},
		{TCP_DEFER_ACCEPT, 5, 7}, {TCP_DEFER_ACCEPT, -1, 0},
		{TCP_WINDOW_CLAMP, 10, 1152}, {TCP_WINDOW_CLAMP, 0, 0},
		{TCP_NOTSENT_LOWAT, 16384, 16384}, {TCP_NOTSENT_LOWAT, -1, -1},
		{TCP_INQ, 1, 1},
		{TCP_FASTOPEN, 100000, 4096},
		{TCP_FASTOPEN_CONNECT, 1, 1},
	}
	bad := []step{{TCP_SYNCNT, 0, 0}, {TCP_SYNCNT, 128, 0}, {TCP_INQ, 2, 0}, {TCP_FASTOPEN, -1, 0}, {TCP_FASTOPEN_CONNECT, 2, 0}}
	for _, fam := range []int{AF_INET, AF_INET6} {
		s := mustSocket(t, n, fam, SOCK_STREAM, 0)
		if v, err := s.GetSockOptInt(SOL_TCP, TCP_SYNCNT); err != nil || v != 6 {
			t.Fatalf("family %d: TCP_SYNCNT default %d %v", fam, v, err)
		}
		for _, x := range steps {
			if err := s.SetSockOptInt(SOL_TCP, x.opt, x.set); err != nil {
				t.Fatalf("family %d: set %d to %d: %v", fam, x.opt, x.set, err)
			}
			if v, err := s.GetSockOptInt(SOL_TCP, x.opt); err != nil || v != x.get {
				t.Fatalf("family %d: option %d set %d reads %d %v, want %d", fam, x.opt, x.set, v, err, x.get)
			}
		}
		for _, x := range bad {
			if err := s.SetSockOptInt(SOL_TCP, x.opt, x.set); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("family %d: option %d = %d: %v, want EINVAL", fam, x.opt, x.set, err)
			}
		}
		if err := s.SetSockOpt(SOL_TCP, TCP_QUICKACK, []byte{1}); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("short optval: %v", err)
		}
	}
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := u.SetSockOptInt(SOL_TCP, TCP_QUICKACK, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("UDP: %v", err)
	}
}

// tcpConn connects a client on p.a to a listener on p.b and accepts.
func tcpConn(t *testing.T, p *pair, port int, lopts func(l *Socket)) (cli, srv *Socket) {
	t.Helper()
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(netip.IPv4Unspecified(), port)); err != nil {
		t.Fatal(err)
	}
	if lopts != nil {
		lopts(l)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	cli = mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	cli.SetTimeout(5 * time.Second)
	if err := cli.Connect(ap(addrB, port)); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	srv, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.SetTimeout(5 * time.Second)
	return cli, srv
}

// TestTCPInqControlMessage: with TCP_INQ on, recvmsg carries a
// TCP_CM_INQ control message with the bytes left to read; an accepted
// socket inherits TCP_INQ from its listener.
func TestTCPInqControlMessage(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	cli, srv := tcpConn(t, p, 7401, func(l *Socket) {
		if err := l.SetSockOptInt(SOL_TCP, TCP_INQ, 1); err != nil {
			t.Fatal(err)
		}
	})
	if v, _ := srv.GetSockOptInt(SOL_TCP, TCP_INQ); v != 1 {
		t.Fatalf("accepted socket TCP_INQ %d", v)
	}
	if err := cli.SendAll([]byte("hello world"), 0); err != nil {
		t.Fatal(err)
	}
	inq := func(size int) (string, int) {
		t.Helper()
		buf, oob := make([]byte, size), make([]byte, 64)
		n, oobn, _, _, err := srv.RecvMsgControl(buf, oob, MSG_WAITALL)
		if err != nil {
			t.Fatal(err)
		}
		if oobn != 24 {
			t.Fatalf("control %d bytes: %x", oobn, oob[:oobn])
		}
		ne := binary.NativeEndian
		if l, lv, ty := ne.Uint64(oob), ne.Uint32(oob[8:]), ne.Uint32(oob[12:]); l != 20 || lv != SOL_TCP || ty != TCP_CM_INQ {
			t.Fatalf("control header len %d level %d type %d", l, lv, ty)
		}
		return string(buf[:n]), int(int32(ne.Uint32(oob[16:])))
	}
	if d, v := inq(5); d != "hello" || v != 6 {
		t.Fatalf("read %q, TCP_CM_INQ %d; want hello, 6", d, v)
	}
	if d, v := inq(6); d != " world" || v != 0 {
		t.Fatalf("read %q, TCP_CM_INQ %d; want \" world\", 0", d, v)
	}
	srv.SetSockOptInt(SOL_TCP, TCP_INQ, 0)
	cli.SendAll([]byte("x"), 0)
	buf, oob := make([]byte, 8), make([]byte, 64)
	if _, oobn, _, _, err := srv.RecvMsgControl(buf, oob, 0); err != nil || oobn != 0 {
		t.Fatalf("TCP_INQ off: control %d bytes, %v", oobn, err)
	}
}

// TestNotsentLowatBlocksWriter: with the receiver's window closed, a
// writer under TCP_NOTSENT_LOWAT stops (EAGAIN, no POLLOUT) with room
// left in its send buffer, and a blocked write and poll resume once
// the receiver reads and the unsent bytes go.
func TestNotsentLowatBlocksWriter(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	cli, srv := tcpConn(t, p, 7402, func(l *Socket) {
		l.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 8192) // a window that closes soon
	})
	if err := cli.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := cli.SetSockOptInt(SOL_TCP, TCP_NOTSENT_LOWAT, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1000)
	queued := 0
	for {
		n, err := cli.Send(chunk, MSG_DONTWAIT)
		if errors.Is(err, syscall.EAGAIN) {
			// The peer's window may still be draining our segments:
			// EAGAIN counts once nothing more goes out.
			if nsd, _ := cli.Ioctl(SIOCOUTQNSD, 0); nsd >= 4096 {
				break
			}
			fds := []PollFD{{Socket: cli, Events: waiter.EventOut}}
			Poll(fds, 100*time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		queued += n
		if queued > 1<<20 {
			t.Fatal("the writer never stopped")
		}
	}
	outq, _ := cli.Ioctl(SIOCOUTQ, 0)
	if outq > 256<<10 {
		t.Fatalf("%d bytes queued: the send buffer, not the bound, stopped the writer", outq)
	}
	fds := []PollFD{{Socket: cli, Events: waiter.EventOut}}
	if n, _ := Poll(fds, 0); n != 0 {
		t.Fatalf("POLLOUT with the unsent bytes over the bound: %v", fds[0].Revents)
	}
	done := make(chan error, 1)
	go func() {
		_, err := cli.Send(chunk, 0) // blocks until the bound lets it
		done <- err
	}()
	// Read everything the client sends; the blocked write then goes.
	buf := make([]byte, 64<<10)
	got := 0
	for got < queued+len(chunk) {
		n, err := srv.Recv(buf, 0)
		if err != nil || n == 0 {
			t.Fatalf("recv after %d bytes: %v", got, err)
		}
		got += n
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked write never resumed")
	}
	if n, _ := Poll(fds, 5*time.Second); n != 1 || fds[0].Revents&waiter.EventOut == 0 {
		t.Fatalf("no POLLOUT once sent: %v", fds[0].Revents)
	}
}
