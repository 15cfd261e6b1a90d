package tcp

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/waiter"
)

// On a synchronized connection a soft ICMP error (here a port
// unreachable, soft there by RFC 5927) without IP_RECVERR waits in
// SO_ERROR only: no POLLERR, a receive says EAGAIN. With IP_RECVERR it
// is the pending error (Linux's tcp_v4_err): POLLERR, the next receive
// returns it, and the connection goes on.
func TestRecvErrSoftErrorPending(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(noOpts)
		c.SetRecvErr(false, on)
		if c.RecvErr(false) != on || c.RecvErr(true) {
			t.Fatalf("IP_RECVERR %v reads %v, IPV6_RECVERR %v", on, c.RecvErr(false), c.RecvErr(true))
		}
		c.Write([]byte("x"))
		s.p.HandleError(s.local, s.remote, iss+1, ErrPortUnreach, 0)
		if c.State() != StateEstablished {
			t.Fatalf("IP_RECVERR %v: %v after a soft error", on, c.State())
		}
		pollErr := c.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr != 0
		_, err := c.Read(make([]byte, 8), false)
		if !on {
			if pollErr || !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("without IP_RECVERR: POLLERR %v, read %v", pollErr, err)
			}
			if err := c.SoError(); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("without IP_RECVERR: SO_ERROR %v", err)
			}
			continue
		}
		if !pollErr || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("IP_RECVERR: POLLERR %v, read %v, want ECONNREFUSED", pollErr, err)
		}
		if _, err := c.Read(make([]byte, 8), false); !errors.Is(err, syscall.EAGAIN) || c.State() != StateEstablished {
			t.Fatalf("after the error was read: %v, %v", err, c.State())
		}
	}
}

// With IP_RECVERR a soft error made pending on an established connection
// fails the next send, once, before anything is queued (Linux's
// tcp_sendmsg checks sk_err first); the send after it goes through.
func TestRecvErrSendFailsOnPendingError(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetRecvErr(false, true)
	c.Write([]byte("x"))
	s.p.HandleError(s.local, s.remote, iss+1, ErrHostUnreach, 0)
	if n, err := c.Write([]byte("yz")); n != 0 || !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("send with a pending error: %d, %v; want 0, EHOSTUNREACH", n, err)
	}
	if err := c.SoError(); err != nil {
		t.Fatalf("SO_ERROR after the send returned the error: %v", err)
	}
	if n, err := c.Write([]byte("yz")); n != 2 || err != nil || c.State() != StateEstablished {
		t.Fatalf("next send: %d, %v, %v", n, err, c.State())
	}
}

// After SHUT_WR a pending error still comes before EPIPE, as Linux's
// sk_stream_error (sock_error, else EPIPE).
func TestRecvErrSendAfterShutdownReportsPendingError(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetRecvErr(false, true)
	c.Write([]byte("x"))
	c.Shutdown(ShutWr)
	s.p.HandleError(s.local, s.remote, iss+1, ErrNetUnreach, 0)
	if _, err := c.Write([]byte("y")); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("send after SHUT_WR with a pending error: %v, want ENETUNREACH", err)
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("second send after SHUT_WR: %v, want EPIPE", err)
	}
}
