package socket

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// IP_OPTIONS on TCP sockets over loopback: the options of an AF_INET
// client and of an AF_INET6 one connected to a v4-mapped address reach
// the listener on the SYN, whose accepted socket echoes them (its
// getsockopt reads Record Route with the client's address filled in, as
// Linux's child reads them), and data flows both ways in segments cut
// to fit. An AF_INET6 socket to an IPv6 peer sends none: its child
// reads none.
func TestTCPIPOptionsLoopback(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	for _, tc := range []struct {
		name string
		fam  int
		lfam int
		bind Sockaddr
		echo string
	}{
		{"AF_INET", AF_INET, AF_INET, Inet("127.0.0.1", 0), "\x07\x07\x08\x7f\x00\x00\x01\x00"},
		{"AF_INET6 v4-mapped", AF_INET6, AF_INET, Inet("127.0.0.1", 0), "\x07\x07\x08\x7f\x00\x00\x01\x00"},
		{"AF_INET6 to IPv6", AF_INET6, AF_INET6, Inet("::1", 0), ""},
	} {
		l := mustSocket(t, n, tc.lfam, SOCK_STREAM, 0)
		if err := l.Bind(tc.bind); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(1); err != nil {
			t.Fatal(err)
		}
		la, _ := l.GetSockName()
		to := la
		if tc.fam == AF_INET6 && tc.lfam == AF_INET {
			ap := la.(*SockaddrInet).AddrPort
			to = InetAddr(netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port()))
		}
		c := mustSocket(t, n, tc.fam, SOCK_STREAM, 0)
		c.SetTimeout(10 * time.Second)
		l.SetTimeout(10 * time.Second)
		if err := c.SetSockOpt(SOL_IP, IP_OPTIONS, "\x07\x07\x04\x00\x00\x00\x00"); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := c.Connect(to); err != nil {
			t.Fatalf("%s: connect: %v", tc.name, err)
		}
		a, _, err := l.Accept()
		if err != nil {
			t.Fatalf("%s: accept: %v", tc.name, err)
		}
		a.SetTimeout(10 * time.Second)
		if v, err := a.GetSockOpt(SOL_IP, IP_OPTIONS); err != nil || v != tc.echo {
			t.Fatalf("%s: accepted socket's IP_OPTIONS %q %v, want %q", tc.name, v, err, tc.echo)
		}
		const size = 300 << 10
		for _, p := range [][2]*Socket{{c, a}, {a, c}} {
			done := make(chan error, 1)
			go func() { done <- p[0].SendAll(make([]byte, size), 0) }()
			buf := make([]byte, 64<<10)
			for got := 0; got < size; {
				k, err := p[1].Recv(buf, 0)
				if err != nil || k == 0 {
					t.Fatalf("%s: read after %d bytes: %v", tc.name, got, err)
				}
				got += k
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		a.Close()
		l.Close()
	}
}
