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
