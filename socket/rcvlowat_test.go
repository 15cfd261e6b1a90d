package socket

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// lowatPair is a connected TCP pair over a stack's loopback (call it
// inside a synctest bubble: the stack's goroutines and timers are then
// the bubble's, and synctest.Wait means the loopback has run dry).
func lowatPair(t *testing.T) (cli, srv *Socket) {
	t.Helper()
	n := New(stack.New(stack.Options{}))
	t.Cleanup(func() { n.Stack().Close() })
	l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	la, _ := l.GetSockName()
	cli = mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	// Nagle would hold small writes behind a delayed ACK, and the
	// bubble's time only moves when the test waits for it.
	cli.SetSockOptInt(IPPROTO_TCP, TCP_NODELAY, 1)
	if err := cli.Connect(la); err != nil {
		t.Fatal(err)
	}
	srv, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return cli, srv
}

func lowatSend(t *testing.T, s *Socket, b []byte) {
	t.Helper()
	if err := s.SendAll(b, 0); err != nil {
		t.Fatal(err)
	}
	synctest.Wait() // delivered to the peer
}

type recvResult struct {
	n   int
	err error
}

func lowatRecv(s *Socket, b []byte, flags int) chan recvResult {
	ch := make(chan recvResult, 1)
	go func() {
		n, err := s.Recv(b, flags)
		ch <- recvResult{n, err}
	}()
	return ch
}

func TestRcvLowatBlockingRecv(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := lowatPair(t)
		if err := srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 100); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789"), 20)
		lowatSend(t, cli, data[:40])
		b := make([]byte, 200)
		ch := lowatRecv(srv, b, 0)
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("recv returned %d, %v with 40 of SO_RCVLOWAT's 100 bytes", r.n, r.err)
		default:
		}
		lowatSend(t, cli, data[40:100])
		r := <-ch
		if r.err != nil || r.n != 100 || !bytes.Equal(b[:100], data[:100]) {
			t.Fatalf("recv: %d %v %q", r.n, r.err, b[:max(r.n, 0)])
		}
		// A buffer smaller than the mark needs only its own length.
		lowatSend(t, cli, data[100:130])
		n, err := srv.Recv(b[:20], 0)
		if n != 20 || err != nil {
			t.Fatalf("recv of 20 with 30 there: %d %v", n, err)
		}
		// MSG_WAITALL still means the whole buffer.
		ch = lowatRecv(srv, b[:150], MSG_WAITALL)
		lowatSend(t, cli, data[130:])
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("MSG_WAITALL recv returned %d, %v with 80 of 150 bytes", r.n, r.err)
		default:
		}
		lowatSend(t, cli, data[:70])
		if r := <-ch; r.n != 150 || r.err != nil {
			t.Fatalf("MSG_WAITALL: %d %v", r.n, r.err)
		}
	})
}

func TestRcvLowatPeekWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := lowatPair(t)
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 10)
		lowatSend(t, cli, []byte("abcd"))
		b := make([]byte, 64)
		ch := lowatRecv(srv, b, MSG_PEEK)
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("MSG_PEEK returned %d, %v below the mark", r.n, r.err)
		default:
		}
		lowatSend(t, cli, []byte("efghijkl"))
		if r := <-ch; r.n != 12 || r.err != nil || string(b[:12]) != "abcdefghijkl" {
			t.Fatalf("peek: %d %v %q", r.n, r.err, b[:max(r.n, 0)])
		}
		// Nothing was consumed.
		if n, err := srv.Recv(b, 0); n != 12 || err != nil {
			t.Fatalf("recv after peek: %d %v", n, err)
		}
		// A timeout ends a short peek with what it saw.
		srv.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, time.Second)
		lowatSend(t, cli, []byte("xyz"))
		if n, err := srv.Recv(b, MSG_PEEK); n != 3 || err != nil {
			t.Fatalf("peek with SO_RCVTIMEO: %d %v", n, err)
		}
	})
}

func TestRcvLowatNonblockingPartial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := lowatPair(t)
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 100)
		lowatSend(t, cli, []byte("0123456789"))
		b := make([]byte, 200)
		if n, err := srv.Recv(b, MSG_DONTWAIT|MSG_PEEK); n != 10 || err != nil {
			t.Fatalf("MSG_DONTWAIT|MSG_PEEK: %d %v", n, err)
		}
		if n, err := srv.Recv(b, MSG_DONTWAIT); n != 10 || err != nil {
			t.Fatalf("MSG_DONTWAIT: %d %v", n, err)
		}
		if _, err := srv.Recv(b, MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("MSG_DONTWAIT on nothing: %v", err)
		}
		srv.SetBlocking(false)
		lowatSend(t, cli, []byte("abc"))
		if n, err := srv.Recv(b, 0); n != 3 || err != nil {
			t.Fatalf("O_NONBLOCK: %d %v", n, err)
		}
	})
}

func TestRcvLowatTimeoutReturnsPartial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := lowatPair(t)
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 100)
		srv.SetSockOpt(SOL_SOCKET, SO_RCVTIMEO, time.Second)
		lowatSend(t, cli, []byte("0123456789"))
		b := make([]byte, 200)
		start := time.Now()
		ch := lowatRecv(srv, b, 0)
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("recv returned %d, %v before its timeout", r.n, r.err)
		default:
		}
		lowatSend(t, cli, []byte("abc"))
		r := <-ch
		if r.n != 13 || r.err != nil || string(b[:13]) != "0123456789abc" {
			t.Fatalf("recv after SO_RCVTIMEO: %d %v %q", r.n, r.err, b[:max(r.n, 0)])
		}
		if d := time.Since(start); d != time.Second { // the bubble's clock: exact
			t.Fatalf("returned after %v, want SO_RCVTIMEO's 1s", d)
		}
		// With nothing at all, the timeout is EAGAIN as before.
		if _, err := srv.Recv(b, 0); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("recv of nothing: %v", err)
		}
		// End of file returns what there is.
		lowatSend(t, cli, []byte("xyz"))
		ch = lowatRecv(srv, b, 0)
		cli.Shutdown(SHUT_WR)
		if r := <-ch; r.n != 3 || r.err != nil {
			t.Fatalf("recv before EOF: %d %v", r.n, r.err)
		}
	})
}

func TestRcvLowatReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := lowatPair(t)
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 100)
		lowatSend(t, cli, make([]byte, 99))
		if r := srv.Readiness(waiter.EventIn); r != 0 {
			t.Fatalf("readable with 99 of 100 bytes: %v", r)
		}
		p := []PollFD{{Socket: srv, Events: waiter.EventIn}}
		if k, err := Poll(p, 0); k != 0 || err != nil {
			t.Fatalf("poll with 99 of 100 bytes: %d %v (%v)", k, err, p[0].Revents)
		}
		lowatSend(t, cli, make([]byte, 1))
		if r := srv.Readiness(waiter.EventIn); r == 0 {
			t.Fatal("not readable at the mark")
		}
		// Lowering the mark below what is queued wakes a waiter.
		b := make([]byte, 100)
		if n, _ := srv.Recv(b, 0); n != 100 {
			t.Fatalf("recv %d", n)
		}
		lowatSend(t, cli, make([]byte, 50))
		if r := srv.Readiness(waiter.EventIn); r != 0 {
			t.Fatalf("readable with 50 of 100: %v", r)
		}
		e := waiter.NewEntry()
		srv.Waiter().Register(e, waiter.EventIn)
		defer srv.Waiter().Unregister(e)
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 50)
		select {
		case <-e.C:
		default:
			t.Fatal("setting SO_RCVLOWAT to what is queued woke no one")
		}
		if srv.Readiness(waiter.EventIn) == 0 {
			t.Fatal("not readable after lowering the mark")
		}
		// End of file is readable whatever the mark.
		srv.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 1000)
		if r := srv.Readiness(waiter.EventIn); r != 0 {
			t.Fatalf("readable with 50 of 1000: %v", r)
		}
		cli.Shutdown(SHUT_WR)
		synctest.Wait()
		if srv.Readiness(waiter.EventIn) == 0 {
			t.Fatal("not readable after FIN")
		}
	})
}

func TestRcvLowatSockopt(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	t.Cleanup(func() { n.Stack().Close() })
	get := func(s *Socket) int {
		v, err := s.GetSockOptInt(SOL_SOCKET, SO_RCVLOWAT)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	half := 6 << 20 / 2 // tcp.Config's default MaxRecvBuf, halved
	tcpS := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	for _, c := range []struct{ set, want int }{{10, 10}, {0, 1}, {-1, half}, {1 << 30, half}, {1, 1}} {
		tcpS.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, c.set)
		if v := get(tcpS); v != c.want {
			t.Errorf("tcp: set %d, got %d, want %d", c.set, v, c.want)
		}
	}
	// Without SO_RCVBUF the buffer grows to hold the mark.
	tcpS.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 1<<20)
	if v, _ := tcpS.GetSockOptInt(SOL_SOCKET, SO_RCVBUF); v < 1<<20 {
		t.Errorf("SO_RCVBUF %d after SO_RCVLOWAT 1 MiB", v)
	}
	// With SO_RCVBUF the cap is half of it, and the buffer stays.
	b := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	b.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 10000) // kept doubled: 20000
	b.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 50000)
	if v := get(b); v != 10000 {
		t.Errorf("SO_RCVLOWAT with SO_RCVBUF 10000: %d, want 10000", v)
	}
	if v, _ := b.GetSockOptInt(SOL_SOCKET, SO_RCVBUF); v != 20000 {
		t.Errorf("SO_RCVBUF changed to %d", v)
	}
	// UDP and AF_UNIX keep the value uncapped.
	for _, s := range []*Socket{mustSocket(t, n, AF_INET, SOCK_DGRAM, 0), mustSocket(t, n, AF_UNIX, SOCK_STREAM, 0)} {
		s.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, -1)
		if v := get(s); v != 1<<31-1 {
			t.Errorf("type %d: -1 read back as %d", s.Type(), v)
		}
	}
}

func TestRcvLowatUnixStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(stack.New(stack.Options{}))
		t.Cleanup(func() { n.Stack().Close() })
		a, b, err := n.SocketPair(SOCK_STREAM)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		b.SetSockOptInt(SOL_SOCKET, SO_RCVLOWAT, 8)
		a.Send([]byte("abc"), 0)
		// Poll ignores the mark on AF_UNIX, as Linux's unix_poll.
		if b.Readiness(waiter.EventIn) == 0 {
			t.Fatal("AF_UNIX: not readable with 3 bytes")
		}
		buf := make([]byte, 64)
		// MSG_PEEK does not wait for the mark (unix_stream_read_generic
		// ends a peek after the queue's last message).
		if n, err := b.Recv(buf, MSG_PEEK); n != 3 || err != nil {
			t.Fatalf("AF_UNIX MSG_PEEK: %d %v", n, err)
		}
		ch := lowatRecv(b, buf, 0)
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("AF_UNIX recv returned %d, %v below the mark", r.n, r.err)
		default:
		}
		a.Send([]byte("defgh"), 0)
		if r := <-ch; r.n != 8 || r.err != nil || string(buf[:8]) != "abcdefgh" {
			t.Fatalf("AF_UNIX recv: %d %v %q", r.n, r.err, buf[:max(r.n, 0)])
		}
		a.Send([]byte("xy"), 0)
		if n, err := b.Recv(buf, MSG_DONTWAIT); n != 2 || err != nil {
			t.Fatalf("AF_UNIX MSG_DONTWAIT: %d %v", n, err)
		}
		a.Send([]byte("zz"), 0)
		a.Shutdown(SHUT_WR)
		if n, err := b.Recv(buf, 0); n != 2 || err != nil {
			t.Fatalf("AF_UNIX recv before EOF: %d %v", n, err)
		}
	})
}
