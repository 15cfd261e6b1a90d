package socket

import (
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// SO_BUSY_POLL as Linux's: microseconds, a negative value is EINVAL,
// the stack's Options.BusyPoll (net.core.busy_read) is what a socket
// that never set it reads back, and an explicit 0 overrides it.
func TestBusyPollOption(t *testing.T) {
	for _, def := range []time.Duration{0, 30 * time.Microsecond} {
		st := stack.New(stack.Options{BusyPoll: def})
		n := New(st)
		for _, k := range []struct {
			name string
			typ  int
		}{{"tcp", SOCK_STREAM}, {"udp", SOCK_DGRAM}} {
			s := mustSocket(t, n, AF_INET, k.typ, 0)
			get := func() int {
				t.Helper()
				v, err := s.GetSockOptInt(SOL_SOCKET, SO_BUSY_POLL)
				if err != nil {
					t.Fatalf("%s: getsockopt: %v", k.name, err)
				}
				return v
			}
			if v := get(); v != int(def/time.Microsecond) {
				t.Errorf("%s, default %v: SO_BUSY_POLL reads %d", k.name, def, v)
			}
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, -1); err != syscall.EINVAL {
				t.Errorf("%s: SO_BUSY_POLL -1: %v, want EINVAL", k.name, err)
			}
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 50); err != nil {
				t.Fatalf("%s: SO_BUSY_POLL 50: %v", k.name, err)
			}
			if v := get(); v != 50 {
				t.Errorf("%s: SO_BUSY_POLL reads %d after setting 50", k.name, v)
			}
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 0); err != nil {
				t.Fatal(err)
			}
			if v := get(); v != 0 {
				t.Errorf("%s: SO_BUSY_POLL reads %d after setting 0 over a default of %v", k.name, v, def)
			}
			s.Close()
		}
		st.Close()
	}
}

// A blocking read on a busy-polling socket whose data comes from a link
// that cannot be polled (the loopback) waits as any other.
func TestBusyPollLoopbackRecv(t *testing.T) {
	n := New(stack.New(stack.Options{BusyPoll: time.Millisecond}))
	t.Cleanup(func() { n.Stack().Close() })
	cli, srv := tcpLoopPairOn(t, n)
	got := make(chan recvResult, 1)
	buf := make([]byte, 16)
	go func() {
		k, err := srv.Recv(buf, 0)
		got <- recvResult{k, err}
	}()
	if err := cli.SendAll([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || string(buf[:r.n]) != "hello" {
			t.Fatalf("Recv: %q, %v", buf[:r.n], r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking read did not return")
	}
}
