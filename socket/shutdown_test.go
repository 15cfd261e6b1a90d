package socket

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// A UDP socket shut for reading, as in Linux: a non-blocking receive on
// an empty queue is EAGAIN, a blocking one returns 0, and datagrams that
// arrive later are still queued and read.
func TestUDPShutRdLikeLinux(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	b := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := b.Bind(ap(addrA, 6000)); err != nil {
		t.Fatal(err)
	}
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s.Connect(ap(addrA, 6000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(SHUT_RD); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := s.Recv(buf, MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("non-blocking recv after SHUT_RD: %v, want EAGAIN", err)
	}
	s.SetTimeout(5 * time.Second)
	if n, err := s.Recv(buf, 0); n != 0 || err != nil {
		t.Fatalf("blocking recv after SHUT_RD: %d %v, want 0", n, err)
	}
	if _, err := b.SendTo([]byte("hi"), 0, s.mustName(t)); err != nil {
		t.Fatal(err)
	}
	// Poll (bounded): readiness holds since the shutdown, so it cannot
	// say when the datagram has crossed the asynchronous loopback.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := s.Recv(buf, MSG_DONTWAIT)
		if errors.Is(err, syscall.EAGAIN) && time.Now().Before(deadline) {
			runtime.Gosched()
			continue
		}
		if err != nil || string(buf[:n]) != "hi" {
			t.Fatalf("datagram after SHUT_RD: %q %v", buf[:n], err)
		}
		break
	}
}

func (s *Socket) mustName(t *testing.T) Sockaddr {
	t.Helper()
	a, err := s.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
