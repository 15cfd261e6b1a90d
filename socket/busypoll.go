package socket

import (
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// SO_BUSY_POLL, as Linux's: a blocking read on the socket, finding
// nothing, first reads and delivers the frames of the link its
// connection receives on, on its own goroutine, for up to the option's
// microseconds without a frame, before it sleeps (link.BusyPoller,
// stack.BusyPoll). The stack's Options.BusyPoll is the default, as
// net.core.busy_read is Linux's. Linux wants CAP_NET_ADMIN to raise it;
// sockstack runs inside its user's process, which owns the stack, so
// the user holds that right (as for SO_MARK).
//
// What it is for: on a link to the kernel (a TAP, a TUN, an AF_PACKET
// socket) the reading goroutine otherwise wakes the reader for every
// batch, and each wake-up of a goroutine lets the Go runtime wake a
// thread for it on another core, the one the kernel peer needs. Busy
// polling does the link's work where the data will be read
// (BENCHMARKS.md, "Busy polling"). TCP sockets and datagram sockets
// (UDP, ping, raw) poll the link their data last came in on; other
// kinds keep the value and report it back.
const SO_BUSY_POLL = 46

// setBusyPoll is setsockopt(SO_BUSY_POLL): microseconds, not negative.
func (s *Socket) setBusyPoll(v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	if i < 0 {
		return syscall.EINVAL
	}
	s.mu.Lock()
	x := s.ext()
	x.busyPoll, x.busySet = time.Duration(i)*time.Microsecond, true
	s.mu.Unlock()
	return nil
}

// busyPollBudget is the socket's SO_BUSY_POLL, or the stack's default.
func (s *Socket) busyPollBudget() time.Duration {
	s.mu.Lock()
	x := s.rx()
	d, set := x.busyPoll, x.busySet
	s.mu.Unlock()
	if set {
		return d
	}
	return s.net.st.BusyPollDefault()
}

// busyRx is an endpoint that can tell which interface its data comes
// in on (a TCP connection).
type busyRx interface{ rxInterface() int }

func (t *tcpEP) rxInterface() int { return t.ep.RxInterface() }

func (d *dgramEP) rxInterface() int { return d.ep.RxInterface() }

// busyReady is a Socket as the link's busy poller waits on it.
type busyReady Socket

// BusyReady is link.BusyWaiter: the socket has something for a read.
func (b *busyReady) BusyReady() bool {
	return (*Socket)(b).Readiness(waiter.EventIn|waiter.EventErr|waiter.EventHUp) != 0
}

// busyPollRead busy-polls the link of the socket's connection before a
// blocking read sleeps, within the deadline, and says whether the
// socket became readable.
func (s *Socket) busyPollRead(deadline time.Time) bool {
	rx, ok := s.ep.(busyRx)
	if !ok {
		return false
	}
	// The budget first: off (the default), a wait takes no endpoint
	// lock for the interface.
	budget := s.busyPollBudget()
	if budget <= 0 {
		return false
	}
	dev := rx.rxInterface()
	if dev == 0 {
		return false
	}
	if !deadline.IsZero() {
		budget = min(budget, time.Until(deadline))
	}
	return budget > 0 && s.net.st.BusyPoll(dev, (*busyReady)(s), budget)
}
