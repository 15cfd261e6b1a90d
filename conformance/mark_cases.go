package conformance

import (
	"time"

	"github.com/sockstack/sockstack/socket"
)

// SO_MARK (socket/mark.go) against Linux: its default, what getsockopt
// reads back after setting it (a C int: a mark with the top bit set
// reads negative), on TCP and UDP of both families, and the mark of an
// accepted connection (its listener's, with tcp_fwmark_accept at its
// default 0). Linux wants CAP_NET_ADMIN to set it, so the cases need
// root on the kernel. The traffic goes to 127.0.0.1, which the local
// table (rule 0) routes before any fwmark rule of the host can. The
// routing it selects is compared in a namespace of its own by
// interop's TestPolicyRoutingMatchesKernel.
func markCases() []Case {
	var cs []Case
	sol := socket.SOL_SOCKET
	for _, fam := range []int{AF_INET, AF_INET6} {
		fam := fam
		fname := "inet"
		if fam == AF_INET6 {
			fname = "inet6"
		}
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			cs = append(cs, Case{"mark/" + fname + "/" + typeNames[ty] + "/set and read back", true, func(t *T) {
				s := t.Socket(fam, ty, 0)
				t.GetInt("default", s, sol, socket.SO_MARK)
				for _, v := range []int{51820, 0x80000, -1, 0} {
					t.Check("set", s.SetSockOptInt(sol, socket.SO_MARK, v))
					t.GetInt("  read", s, sol, socket.SO_MARK)
				}
			}})
		}
	}
	cs = append(cs, Case{"mark/tcp/accepted has the listener's mark", true, func(t *T) {
		l, a := t.Listener(4)
		t.Check("listener mark", l.SetSockOptInt(sol, socket.SO_MARK, 7))
		c := t.TCP()
		c.SetTimeout(5 * time.Second)
		t.Check("client mark", c.SetSockOptInt(sol, socket.SO_MARK, 9))
		t.Must("connect", c.Connect(a))
		l.SetTimeout(5 * time.Second)
		srv, _, err := l.Accept()
		t.Must("accept", err)
		t.Track(srv)
		t.GetInt("accepted", srv, sol, socket.SO_MARK)
		t.GetInt("client", c, sol, socket.SO_MARK)
		t.Check("client mark 0 while connected", c.SetSockOptInt(sol, socket.SO_MARK, 0))
		t.GetInt("client", c, sol, socket.SO_MARK)
	}})
	return cs
}
