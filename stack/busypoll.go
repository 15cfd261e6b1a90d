package stack

import (
	"time"

	"github.com/sockstack/sockstack/link"
)

// BusyPoll reads and delivers the frames of NIC id's link on the
// caller's goroutine until ready reports true or budget passes without
// a frame (link.BusyPoller), and says whether it did. False at once
// when the link cannot be polled (no such NIC, a link that is not a
// BusyPoller, another caller polling it). A blocking socket read calls
// it before sleeping (SO_BUSY_POLL, Options.BusyPoll).
func (s *Stack) BusyPoll(id int, ready link.BusyWaiter, budget time.Duration) bool {
	if budget <= 0 {
		return false
	}
	n := s.NICByID(id)
	if n == nil {
		return false
	}
	p, ok := n.ep.(link.BusyPoller)
	return ok && p.BusyPoll(ready, budget)
}

// BusyPollOnce reads and delivers what NIC id's link holds now, on the
// caller's goroutine, and says whether ready then reports true
// (link.BusyPoller). A non-blocking socket read that finds nothing
// calls it (Linux's sk_busy_loop with nonblock).
func (s *Stack) BusyPollOnce(id int, ready link.BusyWaiter) bool {
	n := s.NICByID(id)
	if n == nil {
		return false
	}
	p, ok := n.ep.(link.BusyPoller)
	return ok && p.BusyPollOnce(ready)
}

// BusyPollSelect is Options.BusyPollSelect: how long Poll, Select and
// Poller.Wait busy-poll before they sleep.
func (s *Stack) BusyPollSelect() time.Duration { return max(s.opts.BusyPollSelect, 0) }

// BusyPollDefault is Options.BusyPoll: a socket's busy polling budget
// when it does not set SO_BUSY_POLL.
func (s *Stack) BusyPollDefault() time.Duration { return max(s.opts.BusyPoll, 0) }

// RxInterface is the NIC the endpoint's last queued datagram came in
// on (0: none yet); a blocking read busy-polls its link (SO_BUSY_POLL).
func (e *DgramEndpoint) RxInterface() int { return int(e.rxDev.Load()) }

// RxFlow is the link.TupleFlowHash of the last UDP datagram queued (0:
// none since the first call): an unconnected socket's busy poll picks a
// multi-queue link's queue by it. The first call starts the noting.
func (e *DgramEndpoint) RxFlow() uint32 {
	if !e.wantFlow.Load() {
		e.wantFlow.Store(true)
	}
	return e.rxFlow.Load()
}
