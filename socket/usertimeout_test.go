package socket

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// TestTCPUserTimeoutOption: TCP_USER_TIMEOUT is set and read back in
// milliseconds; a negative value is EINVAL, as in Linux.
func TestTCPUserTimeoutOption(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if v, err := s.GetSockOptInt(SOL_TCP, TCP_USER_TIMEOUT); err != nil || v != 0 {
		t.Fatalf("default %d %v", v, err)
	}
	if err := s.SetSockOptInt(SOL_TCP, TCP_USER_TIMEOUT, 30000); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSockOptInt(SOL_TCP, TCP_USER_TIMEOUT); err != nil || v != 30000 {
		t.Fatalf("read back %d %v", v, err)
	}
	if err := s.SetSockOptInt(SOL_TCP, TCP_USER_TIMEOUT, -1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative: %v", err)
	}
	if v, _ := s.GetSockOptInt(SOL_TCP, TCP_USER_TIMEOUT); v != 30000 {
		t.Fatalf("changed by a bad value: %d", v)
	}
}
