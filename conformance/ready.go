package conformance

import (
	"time"

	"github.com/sockstack/sockstack/socket"
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
