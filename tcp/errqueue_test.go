package tcp

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/waiter"
)

// icmpAboutSYN is a host unreachable from router quoting the SYN's TCP
// header (as the stack hands it: from the TCP header on).
func icmpAboutSYN(quote []byte) *NetError {
	return &NetError{Kind: ErrHostUnreach, Errno: syscall.EHOSTUNREACH, Origin: 2, Type: 3, Code: 1, Info: 0,
		Offender: netip.MustParseAddr("10.9.9.9"), Quote: quote}
}

// An ICMP error that ends a connect is queued for MSG_ERRQUEUE under
// IP_RECVERR, as Linux's tcp_v4_err does with ip_icmp_error: the quoted
// TCP header as payload, the ICMP fields, the offender, the remote as
// destination. POLLERR shows while it is queued; reading it clears the
// pending error (sock_dequeue_err_skb), and a second read is EAGAIN.
// Without IP_RECVERR nothing is queued.
func TestErrQueueOnFailedConnect(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := newScript(t, Config{})
		e := s.p.NewEndpoint()
		e.SetRecvErr(false, on)
		e.Connect(s.remote)
		syn := s.expectOne("SYN")
		quote := []byte("the quoted SYN header..")
		s.p.HandleNetError(syn.local, s.remote, syn.h.Seq, icmpAboutSYN(quote))
		if e.State() != StateClosed {
			t.Fatalf("RECVERR %v: %v", on, e.State())
		}
		if !on {
			if n := e.ErrQueueLen(); n != 0 {
				t.Fatalf("%d queued without IP_RECVERR", n)
			}
			continue
		}
		if e.ErrQueueLen() != 1 || e.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr == 0 {
			t.Fatalf("queued %d, POLLERR %v", e.ErrQueueLen(), e.Readiness(waiter.EventIn|waiter.EventErr))
		}
		buf := make([]byte, 100)
		n, full, m, err := e.ReadErr(buf)
		want := ErrQueueEntry{Errno: syscall.EHOSTUNREACH, Origin: 2, Type: 3, Code: 1,
			Offender: netip.MustParseAddr("10.9.9.9"), Dst: s.remote}
		if err != nil || m != want || !bytes.Equal(buf[:n], quote) || full != len(quote) {
			t.Fatalf("read %x (%d) %+v %v, want %x %+v", buf[:n], full, m, err, quote, want)
		}
		if err := e.SoError(); err != nil {
			t.Fatalf("SO_ERROR after the queue was read: %v", err)
		}
		if e.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr != 0 {
			t.Fatal("POLLERR with the queue empty")
		}
		if _, _, _, err := e.ReadErr(buf); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("second read %v, want EAGAIN", err)
		}
		e.lock()
		if e.errq != nil {
			t.Fatal("an empty queue kept")
		}
		e.unlock()
	}
}

// A synchronized connection's errors are not queued (Linux calls
// ip_icmp_error only in SYN_SENT and SYN_RECV): with IP_RECVERR the
// error becomes the pending error only.
func TestErrQueueNotWhenSynchronized(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetRecvErr(false, true)
	c.Write([]byte("x"))
	s.out()
	s.p.HandleNetError(s.local, s.remote, iss+1, icmpAboutSYN([]byte("0123456789abcdefghij")))
	if c.ErrQueueLen() != 0 {
		t.Fatalf("%d queued on an established connection", c.ErrQueueLen())
	}
	if err := c.SoError(); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("SO_ERROR %v", err)
	}
}

// The queue holds errQueueMax errors; one more is dropped and counted
// (ErrQueueFull), and a blocking wait is not ended by queued errors
// alone once the pending error is read.
func TestErrQueueBounded(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	e.SetRecvErr(false, true)
	for i := 0; i <= errQueueMax; i++ {
		if err := e.Connect(s.remote); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatalf("attempt %d: connect %v", i, err)
		}
		syn := s.expectOne("SYN")
		s.p.HandleNetError(syn.local, s.remote, syn.h.Seq, icmpAboutSYN([]byte("syn")))
		if err := e.Connect(s.remote); !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Fatalf("attempt %d: connect reports %v", i, err)
		}
	}
	if n := e.ErrQueueLen(); n != errQueueMax {
		t.Fatalf("%d queued, want %d", n, errQueueMax)
	}
	if d := s.p.Stats().ErrQueueFull; d != 1 {
		t.Fatalf("ErrQueueFull %d, want 1", d)
	}
	e.SoError()
	if e.WaitReadiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr != 0 {
		t.Fatal("queued errors alone end a blocking wait")
	}
	if e.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr == 0 {
		t.Fatal("no POLLERR with errors queued")
	}
}
