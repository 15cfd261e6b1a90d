package socket

import (
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// TestLoopbackMTU: the loopback's MTU is Linux's lo's, 65,536. TCP over
// 127.0.0.1 still advertises 65,495 (an IPv4 packet is at most 65,535
// bytes whatever the MTU) and sends 65,483 with timestamps; over ::1 it
// advertises 65,536 - 40 - 20 = 65,476 and sends 65,464.
func TestLoopbackMTU(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	defer n.Stack().Close()
	if m := n.Stack().NICByName("lo").MTU(); m != 65536 {
		t.Errorf("lo MTU %d, want 65536", m)
	}
	for _, c := range []struct {
		fam  int
		addr func(string, int) *SockaddrInet
		host string
		mss  int
	}{
		{AF_INET, Inet, "127.0.0.1", 65483},
		{AF_INET6, Inet6, "::1", 65464},
	} {
		l := mustSocket(t, n, c.fam, SOCK_STREAM, 0)
		if err := l.Bind(c.addr(c.host, 7100)); err != nil {
			t.Fatal(err)
		}
		l.Listen(1)
		s := mustSocket(t, n, c.fam, SOCK_STREAM, 0)
		if err := s.Connect(c.addr(c.host, 7100)); err != nil {
			t.Fatal(err)
		}
		a, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		for name, x := range map[string]*Socket{"connecting": s, "accepted": a} {
			if v, err := x.GetSockOpt(SOL_TCP, TCP_MAXSEG); err != nil || v != c.mss {
				t.Errorf("%s, %s side: TCP_MAXSEG %v %v, want %d", c.host, name, v, err, c.mss)
			}
		}
		a.Close()
		s.Close()
		l.Close()
	}
}
