package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// tcpLoopPair is a connected TCP pair on one stack's loopback.
func tcpLoopPair(t *testing.T) (cli, srv *Socket) {
	t.Helper()
	return tcpLoopPairOn(t, New(stack.New(stack.Options{})))
}

// tcpLoopPairOn is tcpLoopPair on n's stack.
func tcpLoopPairOn(t *testing.T, n *Net) (cli, srv *Socket) {
	t.Helper()
	l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	a, _ := l.GetSockName()
	cli = mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := cli.Connect(a); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	srv, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return cli, srv
}

func recvStr(t *testing.T, s *Socket, size, flags int) (string, error) {
	t.Helper()
	b := make([]byte, size)
	n, err := s.Recv(b, flags)
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// A blocking peek that has seen everything queued waits for new bytes
// (the socket stays readable meanwhile, so readiness cannot be what it
// waits for), and a timeout ends it with EAGAIN. The conformance cases
// compare the values with Linux, without blocking.
func TestPeekOffBlockingPeekWaitsForMore(t *testing.T) {
	for _, kind := range []string{"tcp", "udp", "unix"} {
		t.Run(kind, func(t *testing.T) {
			var tx, rx *Socket
			var to Sockaddr
			switch kind {
			case "tcp":
				tx, rx = tcpLoopPair(t)
			case "udp":
				var n *Net
				n, rx, to = loopReceiver(t, AF_INET)
				tx = mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
			case "unix":
				n := New(stack.New(stack.Options{}))
				var err error
				tx, rx, err = n.SocketPair(SOCK_STREAM)
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := rx.SetSockOptInt(SOL_SOCKET, SO_PEEK_OFF, 0); err != nil {
				t.Fatal(err)
			}
			send := func(m string) {
				if _, err := tx.SendTo([]byte(m), 0, to); err != nil {
					t.Fatal(err)
				}
			}
			send("abc")
			rx.SetTimeout(5 * time.Second)
			if got, err := recvStr(t, rx, 16, MSG_PEEK); got != "abc" || err != nil {
				t.Fatalf("first peek %q %v", got, err)
			}
			done := make(chan string, 1)
			go func() {
				got, err := recvStr(t, rx, 16, MSG_PEEK)
				if err != nil {
					got = err.Error()
				}
				done <- got
			}()
			send("def")
			if got := <-done; got != "def" {
				t.Fatalf("blocking peek past the end: %q, want the new bytes", got)
			}
			if off, _ := rx.GetSockOptInt(SOL_SOCKET, SO_PEEK_OFF); off != 6 {
				t.Fatalf("offset %d after peeking 6 bytes", off)
			}
			rx.SetTimeout(20 * time.Millisecond)
			if _, err := recvStr(t, rx, 16, MSG_PEEK); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("peek with nothing new: %v, want the timeout", err)
			}
			rx.SetTimeout(5 * time.Second)
			if got, err := recvStr(t, rx, 3, 0); got != "abc" || err != nil {
				t.Fatalf("read %q %v", got, err) // a read starts at the head
			}
			if off, _ := rx.GetSockOptInt(SOL_SOCKET, SO_PEEK_OFF); off != 3 {
				t.Fatalf("offset %d after reading 3 of 6 peeked", off)
			}
		})
	}
}

// The offset belongs to the socket, not the descriptor: a dup shares it;
// raw sockets have none.
func TestPeekOffSharedAndUnsupported(t *testing.T) {
	n, s, _ := loopReceiver(t, AF_INET)
	d, err := s.Dup()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, _ := d.GetSockOptInt(SOL_SOCKET, SO_PEEK_OFF); v != -1 {
		t.Fatalf("default %d", v)
	}
	if err := s.SetSockOptInt(SOL_SOCKET, SO_PEEK_OFF, 7); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.GetSockOptInt(SOL_SOCKET, SO_PEEK_OFF); v != 7 {
		t.Fatalf("dup sees %d, want 7", v)
	}
	raw := mustSocket(t, n, AF_INET, SOCK_RAW, IPPROTO_ICMP)
	if err := raw.SetSockOptInt(SOL_SOCKET, SO_PEEK_OFF, 0); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("raw: %v, want EOPNOTSUPP", err)
	}
}
