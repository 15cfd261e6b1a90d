package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// The socket calls of held SYNs: the errors of misuse, and a held
// connection completed and rejected through the socket layer, with the
// client's connect getting ECONNREFUSED for the rejection.
func TestSocketHoldSYN(t *testing.T) {
	p := tproxyPair(t)
	divertTCP(t, p.sb, 9000)
	u := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := u.SetHoldSYN(true, 0); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("SetHoldSYN on UDP: %v, want EOPNOTSUPP", err)
	}
	if _, err := u.AcceptSYN(); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("AcceptSYN on UDP: %v, want EOPNOTSUPP", err)
	}
	plain := transparentListener(t, p.b, 9001, true)
	if _, err := plain.AcceptSYN(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("AcceptSYN without SetHoldSYN: %v, want EINVAL", err)
	}
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.SetSockOpt(SOL_IP, IP_TRANSPARENT, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.SetHoldSYN(true, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(ap(netip.IPv4Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(16); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(0)
	if _, err := l.AcceptSYN(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("non-blocking AcceptSYN with nothing held: %v, want EAGAIN", err)
	}
	l.SetTimeout(10 * time.Second)
	for _, reject := range []bool{false, true} {
		c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
		c.SetTimeout(10 * time.Second)
		done := make(chan error, 1)
		go func() { done <- c.Connect(InetAddr(origA)) }()
		r, err := l.AcceptSYN()
		if err != nil {
			t.Fatal(err)
		}
		if r.OrigDst() != origA || r.Client().Addr() != addrA {
			t.Fatalf("request for %v from %v", r.OrigDst(), r.Client())
		}
		if reject {
			if err := r.Reject(RejectReset); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("client's connect after a reset: %v, want ECONNREFUSED", err)
			}
			continue
		}
		ns, err := r.Complete()
		if err != nil {
			t.Fatal(err)
		}
		ns.SetTimeout(10 * time.Second)
		if err := ns.WaitHandshake(); err != nil {
			t.Fatalf("WaitHandshake: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("client's connect: %v", err)
		}
		if sa, err := ns.GetSockName(); err != nil || sa.(*SockaddrInet).AddrPort != origA {
			t.Fatalf("getsockname %v, %v; want %v", sa, err, origA)
		}
		if _, err := r.Complete(); !errors.Is(err, syscall.EALREADY) {
			t.Fatalf("second Complete: %v", err)
		}
		ns.Close()
		c.Close()
	}
	if st := p.sb.TCP.HoldSYNStats(); st.Completed != 1 || st.Reset != 1 {
		t.Fatalf("stats %+v", st)
	}
}
