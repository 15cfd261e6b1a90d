package conformance

import "github.com/sockstack/sockstack/socket"

// SO_BUSY_POLL, SO_PREFER_BUSY_POLL and SO_BUSY_POLL_BUDGET
// (socket/busypoll.go) against Linux: the defaults (the host's
// net.core.busy_read for SO_BUSY_POLL, 0 on a stock one), the values
// that fail, what reads back, and that the budget cannot be read back at
// all (Linux has no getsockopt for it). Linux wants CAP_NET_ADMIN to
// prefer or to raise the budget, so the cases need root on the kernel.
func busyPollCases() []Case {
	var cs []Case
	sol := socket.SOL_SOCKET
	fams := []struct {
		name string
		fam  int
	}{{"inet", AF_INET}, {"inet6", AF_INET6}}
	for _, f := range fams {
		for _, ty := range []int{STREAM, DGRAM} {
			fam, ty := f.fam, ty
			cs = append(cs, Case{"busypoll/" + f.name + "/" + typeNames[ty] + "/options", true, func(t *T) {
				s := t.Socket(fam, ty, 0)
				t.GetInt("SO_BUSY_POLL default", s, sol, socket.SO_BUSY_POLL)
				t.GetInt("SO_PREFER_BUSY_POLL default", s, sol, socket.SO_PREFER_BUSY_POLL)
				t.GetInt("SO_BUSY_POLL_BUDGET default", s, sol, socket.SO_BUSY_POLL_BUDGET)
				for _, v := range []int{-1, 50, 0} {
					t.Check("set SO_BUSY_POLL", s.SetSockOptInt(sol, socket.SO_BUSY_POLL, v))
					t.GetInt("  read", s, sol, socket.SO_BUSY_POLL)
				}
				for _, v := range []int{7, 0, 1} {
					t.Check("set SO_PREFER_BUSY_POLL", s.SetSockOptInt(sol, socket.SO_PREFER_BUSY_POLL, v))
					t.GetInt("  read", s, sol, socket.SO_PREFER_BUSY_POLL)
				}
				for _, v := range []int{-1, 65536, 65535, 8, 0} {
					t.Check("set SO_BUSY_POLL_BUDGET", s.SetSockOptInt(sol, socket.SO_BUSY_POLL_BUDGET, v))
					t.GetInt("  read", s, sol, socket.SO_BUSY_POLL_BUDGET)
				}
			}})
		}
	}
	return cs
}
