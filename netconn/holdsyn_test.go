package netconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// A held-SYN listener: the client's dial waits until the request is
// answered; completed, it is an ordinary conn whose LocalAddr is the
// original destination; rejected, the client's dial fails with the
// errno of the rejection.
func TestListenTransparentHeld(t *testing.T) {
	p := transparentPair(t)
	l, err := ListenTransparentHeld(p.b, "tcp4", ":9000", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct {
		dst  string
		how  socket.Reject
		want syscall.Errno // 0: complete
	}{
		{"198.51.100.7:443", 0, 0},
		{"198.51.100.8:25", socket.RejectReset, syscall.ECONNREFUSED},
		{"198.51.100.9:80", socket.RejectHostUnreach, syscall.EHOSTUNREACH},
		{"198.51.100.10:80", socket.RejectNetUnreach, syscall.ENETUNREACH},
	} {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := DialTimeout(p.a, "tcp4", c.dst, 20*time.Second)
			done <- result{c, err}
		}()
		l.SetDeadline(time.Now().Add(10 * time.Second))
		r, err := l.Next()
		if err != nil {
			t.Fatalf("%s: %v", c.dst, err)
		}
		if r.OrigDst().String() != c.dst || r.Client().Addr() != addrA {
			t.Fatalf("request for %v from %v, want %s from %v", r.OrigDst(), r.Client(), c.dst, addrA)
		}
		select {
		case res := <-done:
			t.Fatalf("%s: the dial ended (%v) before the request was answered", c.dst, res.err)
		default:
		}
		if c.want != 0 {
			if err := r.Reject(c.how); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if !errors.Is(res.err, c.want) {
				t.Fatalf("%s rejected with %v: dial %v, want %v", c.dst, c.how, res.err, c.want)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pc, err := r.Complete(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if pc.LocalAddr().String() != c.dst {
			t.Fatalf("proxy conn at %v", pc.LocalAddr())
		}
		io.WriteString(pc, "hello")
		pc.Close()
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		res.c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(res.c)
		res.c.Close()
		if err != nil || string(got) != "hello" {
			t.Fatalf("client read %q, %v", got, err)
		}
		if err := r.Reject(socket.RejectReset); !errors.Is(err, syscall.EALREADY) {
			t.Fatalf("reject after complete: %v", err)
		}
	}
	st := p.b.Stack().TCP.HoldSYNStats()
	if st.Completed != 1 || st.Reset != 1 || st.ICMP != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Next honours the deadline and Close; a request of a closed listener
// can no longer be completed.
func TestListenTransparentHeldClose(t *testing.T) {
	p := transparentPair(t)
	l, err := ListenTransparentHeld(p.b, "tcp4", ":9000", 0)
	if err != nil {
		t.Fatal(err)
	}
	l.SetDeadline(time.Now().Add(-time.Second))
	if _, err := l.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Next past the deadline: %v", err)
	}
	l.SetDeadline(time.Time{})
	go DialTimeout(p.a, "tcp4", "198.51.100.7:443", 5*time.Second)
	r, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.Next(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := r.Complete(context.Background()); !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("Complete after Close: %v, want ECONNABORTED", err)
	}
}
