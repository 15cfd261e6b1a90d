package hostsock

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

func mustSocket(t *testing.T, typ int) *Socket {
	t.Helper()
	s, err := New().Socket(socket.AF_INET, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var lo = socket.Inet("127.0.0.1", 0)

func TestUDPEchoAndNames(t *testing.T) {
	a, b := mustSocket(t, socket.SOCK_DGRAM), mustSocket(t, socket.SOCK_DGRAM)
	if a.Proto() != socket.IPPROTO_UDP {
		t.Fatalf("proto %d", a.Proto())
	}
	if err := b.Bind(lo); err != nil {
		t.Fatal(err)
	}
	bn, err := b.GetSockName()
	if err != nil || bn.(*socket.SockaddrInet).AddrPort.Port() == 0 {
		t.Fatalf("getsockname %v %v", bn, err)
	}
	if _, err := a.SendTo([]byte("hello"), 0, bn); err != nil {
		t.Fatal(err)
	}
	b.SetTimeout(5 * time.Second)
	buf := make([]byte, 3)
	n, fl, from, err := b.RecvMsg(buf, 0)
	if err != nil || n != 3 || fl&socket.MSG_TRUNC == 0 || string(buf) != "hel" {
		t.Fatalf("recvmsg %d %x %q %v", n, fl, buf, err)
	}
	an, _ := a.GetSockName()
	if from.(*socket.SockaddrInet).AddrPort.Port() != an.(*socket.SockaddrInet).AddrPort.Port() {
		t.Fatalf("from %v, sender %v", from, an)
	}
	if _, err := a.GetPeerName(); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("getpeername: %v", err)
	}
}

func TestTimeoutAndNonBlocking(t *testing.T) {
	s := mustSocket(t, socket.SOCK_DGRAM)
	if err := s.Bind(lo); err != nil {
		t.Fatal(err)
	}
	s.SetBlocking(false)
	if _, err := s.Recv(make([]byte, 10), 0); err != syscall.EAGAIN {
		t.Fatalf("non-blocking recv: %v", err)
	}
	s.SetTimeout(20 * time.Millisecond)
	_, err := s.Recv(make([]byte, 10), 0)
	var te *socket.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("timeout recv: %v", err)
	}
	s.SetBlocking(true)
	if err := s.SetSockOpt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(make([]byte, 10), 0); !errors.As(err, &te) {
		t.Fatalf("SO_RCVTIMEO recv: %v", err)
	}
}

func TestCloseWakesBlockedRecv(t *testing.T) {
	s, err := New().Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(lo); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := s.Recv(make([]byte, 10), 0)
		done <- err
	}()
	// Close waits for the receiver to leave, so it returns only after the
	// wakeup reached it (or it had not yet started and then fails EBADF).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != syscall.EBADF {
		t.Fatalf("blocked recv after close: %v", err)
	}
	if err := s.Close(); err != syscall.EBADF {
		t.Fatalf("double close: %v", err)
	}
}

func TestTCPConnectAcceptShutdown(t *testing.T) {
	l := mustSocket(t, socket.SOCK_STREAM)
	if err := l.Bind(lo); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	la, _ := l.GetSockName()
	c := mustSocket(t, socket.SOCK_STREAM)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	srv, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cn, _ := c.GetSockName()
	if from.String() != cn.String() {
		t.Fatalf("accept from %v, client %v", from, cn)
	}
	if err := c.SendAll(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(socket.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	n, err := srv.Recv(buf, socket.MSG_WAITALL)
	if err != nil || n != len(buf) {
		t.Fatalf("waitall recv %d %v", n, err)
	}
	if n, err := srv.Recv(buf, 0); n != 0 || err != nil {
		t.Fatalf("recv at EOF %d %v", n, err)
	}
	d, err := srv.Dup()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.GetPeerName(); err != nil {
		t.Fatalf("peer after closing a dup: %v", err)
	}
	l2 := mustSocket(t, socket.SOCK_STREAM)
	l2.Bind(lo)
	l2a, _ := l2.GetSockName()
	c2 := mustSocket(t, socket.SOCK_STREAM)
	if err := c2.Connect(l2a); err != syscall.ECONNREFUSED {
		t.Fatalf("connect to unlistened port: %v", err)
	}
}
