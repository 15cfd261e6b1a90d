//go:build !race

package socket

import (
	"testing"
	"time"
)

// Sending with sticky headers and receiving them as control messages
// allocates no more per datagram than a plain datagram once the pools
// are warm (not under -race, where sync.Pool drops at random).
func TestExt6Allocs(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	r.SetTimeout(5 * time.Second)
	p, oob := make([]byte, 64), make([]byte, 256)
	run := func(wantOob int) float64 {
		return testing.AllocsPerRun(50, func() {
			if _, err := s.SendTo([]byte("a"), 0, ra); err != nil {
				t.Fatal(err)
			}
			if _, oobn, _, _, err := r.RecvMsgControl(p, oob, 0); err != nil || oobn != wantOob {
				t.Fatalf("read: %v oobn %d", err, oobn)
			}
		})
	}
	off := run(0)
	s.SetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS, ext6Opt(1, 1))
	s.SetSockOpt(IPPROTO_IPV6, IPV6_DSTOPTS, ext6Opt(2, 2))
	setOpts(t, r, IPPROTO_IPV6, IPV6_RECVHOPOPTS, IPV6_RECVDSTOPTS)
	if on := run(2*16 + 8 + 16); on > off {
		t.Fatalf("%.1f allocations per datagram with extension headers, %.1f without", on, off)
	}
}
