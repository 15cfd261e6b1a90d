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

// SO_BUSY_POLL_BUDGET (0 to 65535, else EINVAL, never read back) and
// SO_PREFER_BUSY_POLL (a boolean, 0 by default) on every kind of
// socket; a Poller's parameters are checked as EPIOCSPARAMS checks
// them.
func TestBusyPollTuneOptions(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	t.Cleanup(func() { n.Stack().Close() })
	for _, k := range []struct {
		name       string
		typ, proto int
	}{{"tcp", SOCK_STREAM, 0}, {"udp", SOCK_DGRAM, 0}, {"raw", SOCK_RAW, 1}} {
		s := mustSocket(t, n, AF_INET, k.typ, k.proto)
		get := func(name int) int {
			t.Helper()
			v, err := s.GetSockOptInt(SOL_SOCKET, name)
			if err != nil {
				t.Fatalf("%s: getsockopt(%d): %v", k.name, name, err)
			}
			return v
		}
		if p := get(SO_PREFER_BUSY_POLL); p != 0 {
			t.Errorf("%s: SO_PREFER_BUSY_POLL reads %d by default", k.name, p)
		}
		for _, v := range []int{-1, 65536} {
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL_BUDGET, v); err != syscall.EINVAL {
				t.Errorf("%s: SO_BUSY_POLL_BUDGET %d: %v, want EINVAL", k.name, v, err)
			}
		}
		for _, v := range []int{65535, 8, 0} {
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL_BUDGET, v); err != nil {
				t.Errorf("%s: SO_BUSY_POLL_BUDGET %d: %v", k.name, v, err)
			}
		}
		// Linux has no getsockopt for it.
		if _, err := s.GetSockOptInt(SOL_SOCKET, SO_BUSY_POLL_BUDGET); err != syscall.ENOPROTOOPT {
			t.Errorf("%s: getsockopt(SO_BUSY_POLL_BUDGET): %v, want ENOPROTOOPT", k.name, err)
		}
		for _, c := range []struct{ set, want int }{{7, 1}, {0, 0}, {1, 1}} {
			if err := s.SetSockOptInt(SOL_SOCKET, SO_PREFER_BUSY_POLL, c.set); err != nil || get(SO_PREFER_BUSY_POLL) != c.want {
				t.Errorf("%s: SO_PREFER_BUSY_POLL %d: %v, reads %d", k.name, c.set, err, get(SO_PREFER_BUSY_POLL))
			}
		}
		s.Close()
	}

	p := NewPoller()
	if bp, err := p.BusyPollParams(); err != nil || bp != (BusyPollParams{}) {
		t.Errorf("a new Poller's parameters: %+v, %v", bp, err)
	}
	for _, bad := range []BusyPollParams{{Usecs: 1 << 31}, {Prefer: 2}} {
		if err := p.SetBusyPollParams(bad); err != syscall.EINVAL {
			t.Errorf("SetBusyPollParams(%+v): %v, want EINVAL", bad, err)
		}
	}
	good := BusyPollParams{Usecs: 1<<31 - 1, Budget: 65535, Prefer: 1}
	if err := p.SetBusyPollParams(good); err != nil {
		t.Fatal(err)
	}
	if bp, err := p.BusyPollParams(); err != nil || bp != good {
		t.Errorf("parameters read back %+v, %v; set %+v", bp, err, good)
	}
	p.Close()
	if err := p.SetBusyPollParams(good); err != syscall.EBADF {
		t.Errorf("SetBusyPollParams after Close: %v, want EBADF", err)
	}
	if _, err := p.BusyPollParams(); err != syscall.EBADF {
		t.Errorf("BusyPollParams after Close: %v, want EBADF", err)
	}
}
