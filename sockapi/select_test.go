package sockapi

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// TestSelect runs the same select(2) sequence on sockstack's sockets and
// on the kernel's (over 127.0.0.1): a listener becomes readable when a
// connection waits, a connected socket is writable at once and readable
// only once data or the peer's FIN has arrived.
func TestSelect(t *testing.T) {
	st := stack.New(stack.Options{Name: "sel"})
	t.Cleanup(st.Close)
	for _, k := range []struct {
		name string
		api  API
	}{{"sockstack", Stack(socket.New(st))}, {"kernel", Host()}} {
		t.Run(k.name, func(t *testing.T) {
			mk := func() Sock {
				s, err := k.api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			ls := mk()
			if err := ls.Bind(socket.Inet("127.0.0.1", 0)); err != nil {
				t.Fatal(err)
			}
			if err := ls.Listen(4); err != nil {
				t.Fatal(err)
			}
			addr, err := ls.GetSockName()
			if err != nil {
				t.Fatal(err)
			}
			rr, wr, err := Select([]Sock{ls}, nil, 0)
			if err != nil || len(rr) != 0 || len(wr) != 0 {
				t.Fatalf("idle listener: %d readable, %d writable, %v", len(rr), len(wr), err)
			}
			c := mk()
			if err := c.Connect(addr); err != nil {
				t.Fatal(err)
			}
			if rr, _, err = Select([]Sock{ls}, nil, 5*time.Second); err != nil || len(rr) != 1 {
				t.Fatalf("listener with a connection waiting: %d readable, %v", len(rr), err)
			}
			a, _, err := ls.Accept()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			rr, wr, err = Select([]Sock{a, c}, []Sock{a, c}, 0)
			if err != nil || len(rr) != 0 || len(wr) != 2 {
				t.Fatalf("fresh connection: %d readable (want 0), %d writable (want 2), %v", len(rr), len(wr), err)
			}
			start := time.Now()
			if rr, _, err = Select([]Sock{a}, nil, 30*time.Millisecond); err != nil || len(rr) != 0 {
				t.Fatalf("select with a timeout: %d readable, %v", len(rr), err)
			}
			if time.Since(start) < 30*time.Millisecond {
				t.Fatal("select returned before its timeout with nothing ready")
			}
			if _, err := c.Send([]byte("hi"), 0); err != nil {
				t.Fatal(err)
			}
			if rr, _, err = Select([]Sock{ls, c, a}, nil, 5*time.Second); err != nil || len(rr) != 1 || rr[0] != a {
				t.Fatalf("after a send: readable %v, %v; want the accepted socket", rr, err)
			}
			buf := make([]byte, 8)
			if n, err := a.Recv(buf, 0); err != nil || string(buf[:n]) != "hi" {
				t.Fatalf("recv: %q %v", buf[:n], err)
			}
			c.Close()
			if rr, _, err = Select([]Sock{a}, nil, 5*time.Second); err != nil || len(rr) != 1 {
				t.Fatalf("after the peer's close: %d readable, %v (end of stream is readable)", len(rr), err)
			}
			if n, err := a.Recv(buf, 0); n != 0 || err != nil {
				t.Fatalf("recv at end of stream: %d %v", n, err)
			}
		})
	}
	t.Run("mixed_kinds", func(t *testing.T) {
		s, err := Stack(socket.New(st)).Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		h, err := Host().Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, _, err := Select([]Sock{s}, []Sock{h}, 0); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("a set of both kinds: %v, want EINVAL", err)
		}
	})
}
