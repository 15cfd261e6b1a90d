package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// SOCK_NONBLOCK and SOCK_CLOEXEC in socket(2)'s and socketpair(2)'s type
// and in accept4(2)'s flags: the socket does not wait and is
// close-on-exec; its type is the bare type; other bits are EINVAL.
func TestSockTypeFlags(t *testing.T) {
	n := newNet(t)
	u, err := n.Socket(AF_INET, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.Type() != SOCK_DGRAM || !u.CloseOnExec() {
		t.Fatalf("type %#x, close-on-exec %v", u.Type(), u.CloseOnExec())
	}
	if err := u.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Recv(make([]byte, 8), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("recv on a SOCK_NONBLOCK socket: %v, want EAGAIN", err)
	}
	if _, err := n.Socket(AF_INET, SOCK_STREAM|0x100, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("type with 0x100: %v, want EINVAL", err)
	}
	a, b, err := n.SocketPair(SOCK_STREAM | SOCK_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Recv(make([]byte, 8), 0); !errors.Is(err, syscall.EAGAIN) || b.CloseOnExec() {
		t.Fatalf("socketpair SOCK_NONBLOCK: recv %v, close-on-exec %v", err, b.CloseOnExec())
	}
	if _, _, err := n.SocketPair(SOCK_STREAM | 0x100); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("socketpair type with 0x100: %v, want EINVAL", err)
	}

	l, _ := n.Socket(AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	l.Listen(4)
	if _, _, err := l.Accept4(0x100); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("accept4 with 0x100: %v, want EINVAL", err)
	}
	la, _ := l.GetSockName()
	c, _ := n.Socket(AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(10 * time.Second)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(10 * time.Second)
	s, _, err := l.Accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(make([]byte, 8), 0); !errors.Is(err, syscall.EAGAIN) || !s.CloseOnExec() {
		t.Fatalf("accept4 SOCK_NONBLOCK|SOCK_CLOEXEC: recv %v, close-on-exec %v", err, s.CloseOnExec())
	}
	if l.CloseOnExec() {
		t.Fatal("the listener became close-on-exec")
	}
}
