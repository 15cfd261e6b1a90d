package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

func stackReady(s *socket.Socket, out bool, d time.Duration) bool {
	mask := waiter.EventIn
	if out {
		mask = waiter.EventOut
	}
	mask |= waiter.EventErr | waiter.EventHUp
	e := waiter.NewEntry()
	s.Waiter().Register(e, mask)
	defer s.Waiter().Unregister(e)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if s.Readiness(mask) != 0 {
			return true
		}
		select {
		case <-e.C:
		case <-timer.C:
			return s.Readiness(mask) != 0
		}
	}
}

// Settled waits up to d until the data s has sent is acknowledged (or
// the connection is gone). The kernel's loopback has delivered a segment
// before send returns; sockstack's loopback delivers on its own
// goroutine, so a case that looks at the peer right after a send must
// wait here, or it sees the timing of the harness, not the stack.
func Settled(s sockapi.Sock, d time.Duration) bool {
	v, ok := s.(sockapi.StackSock)
	if !ok {
		return true // kernel loopback: already delivered
	}
	settled := func() bool {
		x, err := v.GetSockOpt(socket.SOL_TCP, socket.TCP_INFO)
		if err != nil {
			return true
		}
		info, ok := x.(tcp.Info)
		return !ok || info.BytesInFlight == 0
	}
	// Acknowledgements free send space (EventOut); a reset raises
	// EventErr/EventHUp. A short poll covers any other wakeup missed.
	e := waiter.NewEntry()
	v.Waiter().Register(e, waiter.EventOut|waiter.EventErr|waiter.EventHUp)
	defer v.Waiter().Unregister(e)
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !settled() {
		select {
		case <-e.C:
		case <-tick.C:
		case <-timer.C:
			return settled()
		}
	}
	return true
}

// Quiesce lets sockstack's loopback run dry: it sends datagrams to itself
// through the loopback queue, one after another. The queue is FIFO with a
// single delivery goroutine, so when a datagram comes back everything
// queued before it has been handled; the replies those packets caused
// are behind it, and the next round covers them. Rounds bound the depth
// of the chains waited for (SYN-ACK, ACK, RST: three). The kernel
// delivers loopback packets before send returns: nothing to do there.
func (t *T) Quiesce() {
	if t.Env.Name != "sockstack" {
		return
	}
	s, err := t.Env.API.Socket(AF_INET, DGRAM, 0)
	if err != nil {
		return
	}
	defer s.Close()
	if s.Bind(t.Loop(0)) != nil {
		return
	}
	me, err := s.GetSockName()
	if err != nil {
		return
	}
	s.SetTimeout(5 * time.Second)
	buf := make([]byte, 1)
	for i := 0; i < 8; i++ {
		if _, err := s.SendTo([]byte{byte(i)}, 0, me); err != nil {
			return
		}
		if _, err := s.Recv(buf, 0); err != nil {
			return
		}
	}
}
