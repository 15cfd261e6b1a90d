package socket

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// seqConn is a seqpacket listener on name, a connected client and the
// accepted server socket.
func seqConn(t *testing.T, n *Net, name string) (l, c, s *Socket) {
	t.Helper()
	l = mustSocket(t, n, AF_UNIX, SOCK_SEQPACKET, 0)
	if err := l.Bind(&SockaddrUnix{name}); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	c = mustSocket(t, n, AF_UNIX, SOCK_SEQPACKET, 0)
	if err := c.Connect(&SockaddrUnix{name}); err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l, c, s
}

func TestUnixSeqpacketBoundariesAndTrunc(t *testing.T) {
	n := newNet(t)
	_, c, s := seqConn(t, n, "@seq")
	for _, m := range []string{"first message", "", "second"} {
		if k, err := c.Send([]byte(m), 0); err != nil || k != len(m) {
			t.Fatalf("send %q: %d %v", m, k, err)
		}
	}
	if v, _ := s.GetSockOptInt(SOL_SOCKET, SO_TYPE); v != SOCK_SEQPACKET {
		t.Fatalf("SO_TYPE %d, want 5", v)
	}
	buf := make([]byte, 5)
	k, rf, _, err := s.RecvMsg(buf, 0)
	if err != nil || k != 5 || rf&MSG_TRUNC == 0 || string(buf[:k]) != "first" {
		t.Fatalf("short read: %d %#x %v %q", k, rf, err, buf[:k])
	}
	// The rest of the first message is gone; the empty one is a message.
	k, rf, _, err = s.RecvMsg(make([]byte, 64), 0)
	if err != nil || k != 0 || rf != 0 {
		t.Fatalf("empty message: %d %#x %v", k, rf, err)
	}
	// MSG_TRUNC in flags returns the real length; MSG_PEEK keeps it.
	k, rf, _, err = s.RecvMsg(buf[:2], MSG_PEEK|MSG_TRUNC)
	if err != nil || k != 6 || rf&MSG_TRUNC == 0 {
		t.Fatalf("peek trunc: %d %#x %v", k, rf, err)
	}
	b64 := make([]byte, 64)
	k, err = s.Recv(b64, 0)
	if err != nil || string(b64[:k]) != "second" {
		t.Fatalf("second: %d %v %q", k, err, b64[:k])
	}
	// A message is not split across reads nor joined to the next.
	c.Send([]byte("ab"), 0)
	c.Send([]byte("cd"), 0)
	if k, _ := s.Recv(b64, 0); string(b64[:k]) != "ab" {
		t.Fatalf("joined: %q", b64[:k])
	}
	if k, _ := s.Recv(b64, 0); string(b64[:k]) != "cd" {
		t.Fatalf("joined: %q", b64[:k])
	}
	// EOF after shutdown, then after close: 0-length reads.
	if err := c.Shutdown(SHUT_WR); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(time.Second)
	if k, err := s.Recv(b64, 0); k != 0 || err != nil {
		t.Fatalf("after SHUT_WR: %d %v", k, err)
	}
	if _, err := c.Send([]byte("x"), 0); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("send after SHUT_WR: %v", err)
	}
	c.Close()
	if k, err := s.Recv(b64, 0); k != 0 || err != nil {
		t.Fatalf("after close: %d %v", k, err)
	}
	if _, err := s.Send([]byte("x"), 0); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("send to closed peer: %v", err)
	}
}

func TestUnixSeqpacketErrnos(t *testing.T) {
	n := newNet(t)
	u := mustSocket(t, n, AF_UNIX, SOCK_SEQPACKET, 0)
	_, err := u.Send([]byte("x"), 0)
	wantErr(t, "send unconnected", err, syscall.ENOTCONN)
	_, err = u.SendTo([]byte("x"), 0, &SockaddrUnix{"@nobody"})
	wantErr(t, "sendto unconnected", err, syscall.ENOTCONN)
	_, err = u.Recv(make([]byte, 4), 0)
	wantErr(t, "recv unconnected", err, syscall.ENOTCONN)
	_, _, err = u.Accept()
	wantErr(t, "accept unlistening", err, syscall.EINVAL)
	wantErr(t, "connect nobody", u.Connect(&SockaddrUnix{"@nobody"}), syscall.ECONNREFUSED)

	st := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	st.Bind(&SockaddrUnix{"@stream"})
	st.Listen(1)
	wantErr(t, "connect to abstract stream", u.Connect(&SockaddrUnix{"@stream"}), syscall.ECONNREFUSED)
	st2 := mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)
	st2.Bind(&SockaddrUnix{"/tmp/stream"})
	st2.Listen(1)
	wantErr(t, "connect to path stream", u.Connect(&SockaddrUnix{"/tmp/stream"}), syscall.EPROTOTYPE)

	_, c, s := seqConn(t, n, "@seqe")
	// An address on a connected seqpacket socket is ignored (Linux).
	if k, err := c.SendTo([]byte("hi"), 0, &SockaddrUnix{"@elsewhere"}); err != nil || k != 2 {
		t.Fatalf("sendto connected: %d %v", k, err)
	}
	if k, err := s.Recv(make([]byte, 4), 0); err != nil || k != 2 {
		t.Fatalf("recv: %d %v", k, err)
	}
	c.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1000) // 4608, Linux's minimum
	_, err = c.Send(make([]byte, 5000), 0)
	wantErr(t, "too big", err, syscall.EMSGSIZE)

	// Non-blocking: EAGAIN on an empty queue and when the peer's unread
	// messages fill our send buffer; the receiver's read makes room.
	s.SetBlocking(false)
	_, err = s.Recv(make([]byte, 4), 0)
	wantErr(t, "empty", err, syscall.EAGAIN)
	c.SetBlocking(false)
	sent := 0
	for i := 0; i < 100; i++ {
		if _, err = c.Send(make([]byte, 1000), 0); err != nil {
			break
		}
		sent++
	}
	wantErr(t, "full", err, syscall.EAGAIN)
	if sent == 0 || c.Readiness(waiter.EventOut) != 0 {
		t.Fatalf("sent %d, writable %v", sent, c.Readiness(waiter.EventOut))
	}
	if s.Readiness(waiter.EventIn) == 0 {
		t.Fatal("receiver not readable")
	}
	for i := 0; i < sent; i++ {
		if k, err := s.Recv(make([]byte, 2000), 0); err != nil || k != 1000 {
			t.Fatalf("drain %d: %d %v", i, k, err)
		}
	}
	if c.Readiness(waiter.EventOut) == 0 {
		t.Fatal("not writable after the drain")
	}
	// A timeout: a blocking recv with SO_RCVTIMEO ends with EAGAIN.
	s.SetBlocking(true)
	s.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, 10*time.Millisecond)
	_, err = s.Recv(make([]byte, 4), 0)
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("timeout: %v", err)
	}
}

func TestUnixSeqpacketPairAndBlocking(t *testing.T) {
	n := newNet(t)
	a, b, err := n.SocketPair(SOCK_SEQPACKET)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if v, _ := a.GetSockOptInt(SOL_SOCKET, SO_TYPE); v != SOCK_SEQPACKET {
		t.Fatalf("SO_TYPE %d", v)
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 100)
		k, err := b.Recv(buf, 0) // blocks until the message comes
		if err != nil {
			got <- nil
			return
		}
		got <- buf[:k]
	}()
	if _, err := a.Send([]byte("hello seqpacket"), 0); err != nil {
		t.Fatal(err)
	}
	if m := <-got; !bytes.Equal(m, []byte("hello seqpacket")) {
		t.Fatalf("got %q", m)
	}
	// The peer closed with a message unread: ECONNRESET, then EOF.
	b.Send([]byte("unread"), 0)
	b2, c2, _ := n.SocketPair(SOCK_SEQPACKET)
	defer b2.Close()
	c2.Send([]byte("x"), 0)
	b2.Send([]byte("y"), 0)
	c2.Close()
	_, err = b2.Recv(make([]byte, 4), 0)
	wantErr(t, "reset", err, syscall.ECONNRESET)
	if k, err := b2.Recv(make([]byte, 4), 0); err != nil || k != 1 {
		t.Fatalf("queued after reset: %d %v", k, err)
	}
	if k, err := b2.Recv(make([]byte, 4), 0); err != nil || k != 0 {
		t.Fatalf("EOF: %d %v", k, err)
	}
	if r := b2.Readiness(waiter.EventIn | waiter.EventHUp); r&waiter.EventHUp == 0 || r&waiter.EventIn == 0 {
		t.Fatalf("readiness after close: %v", r)
	}
}

// TestUnixSeqpacketPoller: a poller wakes for a seqpacket message sent
// from another goroutine, for a connection to a seqpacket listener, and
// for the end of the peer.
func TestUnixSeqpacketPoller(t *testing.T) {
	n := newNet(t)
	l := mustSocket(t, n, AF_UNIX, SOCK_SEQPACKET, 0)
	l.Bind(&SockaddrUnix{"@seqpoll"})
	l.Listen(1)
	p := NewPoller()
	defer p.Close()
	if err := p.Add(l, waiter.EventIn, 1); err != nil {
		t.Fatal(err)
	}
	ev := make([]PollEvent, 4)
	if k, _ := p.Wait(ev, 0); k != 0 {
		t.Fatalf("idle listener ready: %v", ev[:k])
	}
	c := mustSocket(t, n, AF_UNIX, SOCK_SEQPACKET, 0)
	go c.Connect(&SockaddrUnix{"@seqpoll"})
	if k, err := p.Wait(ev, -1); k != 1 || err != nil || ev[0].Data != 1 {
		t.Fatalf("listener: %d %v %v", k, err, ev[:k])
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.Remove(l)
	p.Add(s, waiter.EventIn, 2)
	go c.Send([]byte("wake"), 0)
	if k, err := p.Wait(ev, -1); k != 1 || err != nil || ev[0].Data != 2 || ev[0].Events&waiter.EventIn == 0 {
		t.Fatalf("message: %d %v %v", k, err, ev[:k])
	}
	s.Recv(make([]byte, 8), 0)
	if k, _ := p.Wait(ev, 0); k != 0 {
		t.Fatalf("drained socket ready: %v", ev[:k])
	}
	go c.Close()
	if k, err := p.Wait(ev, -1); k != 1 || err != nil || ev[0].Events&waiter.EventHUp == 0 {
		t.Fatalf("peer closed: %d %v %v", k, err, ev[:k])
	}
}

// TestUnixSeqpacketBlockingSend: a blocking send waits while the peer's
// unread messages fill the send buffer and goes on when they are read;
// with SO_SNDTIMEO it times out instead.
func TestUnixSeqpacketBlockingSend(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_SEQPACKET)
	defer a.Close()
	defer b.Close()
	a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096) // 8192
	msg := make([]byte, 3000)
	sent := 0
	a.SetBlocking(false)
	for {
		if _, err := a.Send(msg, 0); err != nil {
			wantErr(t, "fill", err, syscall.EAGAIN)
			break
		}
		sent++
	}
	a.SetBlocking(true)
	a.SetSockOpt(SOL_SOCKET, SO_SNDTIMEO, 10*time.Millisecond)
	_, err := a.Send(msg, 0)
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("send timeout: %v", err)
	}
	a.SetSockOpt(SOL_SOCKET, SO_SNDTIMEO, time.Duration(0))
	done := make(chan error, 1)
	go func() {
		_, err := a.Send([]byte("after the wait"), 0)
		done <- err
	}()
	buf := make([]byte, 4000)
	for i := 0; i < sent; i++ {
		if k, err := b.Recv(buf, 0); err != nil || k != 3000 {
			t.Fatalf("drain: %d %v", k, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if k, _ := b.Recv(buf, 0); string(buf[:k]) != "after the wait" {
		t.Fatalf("got %q", buf[:k])
	}
}
