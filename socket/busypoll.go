package socket

import (
	"slices"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/link"
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
//
// As on Linux, a non-blocking read that finds nothing reads what the
// link holds once (it never spins), and MSG_WAITALL's wait for the rest
// polls as a blocking read does. Poll, Select and Poller.Wait poll the
// links of the busy-polling sockets they watch (a Poller: the link of
// the socket it last reported), once per call before they sleep, for
// the stack's Options.BusyPollSelect, Linux's net.core.busy_poll (off
// by default). A send waiting for room does not poll (Linux's neither).
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

// SO_PREFER_BUSY_POLL and SO_BUSY_POLL_BUDGET, as Linux's (5.11). The
// budget is how many frames one pass of a poll reads before it looks at
// the socket again (0, the default: the link's read batch); 0 to 65535,
// else EINVAL; as on Linux it cannot be read back (ENOPROTOOPT).
// Preferring busy polling makes a non-blocking read whose one pass
// finds data keep the link for the lease, as a blocking read's
// poll always does: the link's goroutine then stays out while the
// application keeps polling, as Linux keeps the device's interrupts
// masked for a preferring socket (with gro_flush_timeout, here the
// 500 µs lease, to take it back). Linux asks CAP_NET_ADMIN to prefer or
// to raise the budget; sockstack's user owns the stack (as for
// SO_BUSY_POLL). Any socket keeps them; the ones that busy-poll use them.
const (
	SO_PREFER_BUSY_POLL = 69
	SO_BUSY_POLL_BUDGET = 70
)

// setBusyTune is setsockopt(SO_PREFER_BUSY_POLL or SO_BUSY_POLL_BUDGET).
func (s *Socket) setBusyTune(name int, v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	if name == SO_BUSY_POLL_BUDGET && (i < 0 || i > 0xffff) {
		return syscall.EINVAL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i == 0 && s.x == nil {
		return nil // the default: nothing to make
	}
	if name == SO_PREFER_BUSY_POLL {
		s.ext().busyPrefer = i != 0
	} else {
		s.ext().busyFrames = uint16(i)
	}
	return nil
}

// busyPreferOpt is getsockopt(SO_PREFER_BUSY_POLL). Linux (6.18) has
// no getsockopt for SO_BUSY_POLL_BUDGET: ENOPROTOOPT, here too.
func (s *Socket) busyPreferOpt() int {
	if _, prefer := s.busyTune(); prefer {
		return 1
	}
	return 0
}

// busyTune is the socket's SO_BUSY_POLL_BUDGET and SO_PREFER_BUSY_POLL.
func (s *Socket) busyTune() (frames int, prefer bool) {
	s.mu.Lock()
	x := s.rx()
	frames, prefer = int(x.busyFrames), x.busyPrefer
	s.mu.Unlock()
	return frames, prefer
}

// BusyTune is link.BusyTuner: how the socket's link is polled.
func (b *busyReady) BusyTune() (frames int, prefer bool) { return (*Socket)(b).busyTune() }

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

// busyTarget is the NIC a read on the socket busy-polls and its budget
// (0: none).
func (s *Socket) busyTarget() (dev int, budget time.Duration) {
	// The budget first: off (the default), a read takes no endpoint
	// lock for the interface.
	if budget = s.busyPollBudget(); budget <= 0 {
		return 0, 0
	}
	return s.busyDev(), budget
}

// busyDev is the NIC the socket's data comes in on (0: none known, or
// a kind that does not busy-poll).
func (s *Socket) busyDev() int {
	if rx, ok := s.ep.(busyRx); ok {
		return rx.rxInterface()
	}
	return 0
}

// BusyFlow is link.BusyWaiter: the socket's flow, for a multi-queue
// link to pick the queue it comes in on.
func (b *busyReady) BusyFlow() uint32 { return (*Socket)(b).busyFlow() }

// busyFlow is the link.TupleFlowHash of the socket's traffic: a TCP
// connection's (kept once known: its ends never change), a connected
// UDP socket's, or an unconnected one's last datagram's; 0 for anything
// else.
func (s *Socket) busyFlow() uint32 {
	var proto uint8
	switch ep := s.ep.(type) {
	case *tcpEP:
		s.mu.Lock()
		f := s.rx().busyFlow
		s.mu.Unlock()
		if f != 0 {
			return f
		}
		proto = 6
	case *dgramEP:
		if ep.raw || s.proto != 17 {
			return 0
		}
		proto = 17
	default:
		return 0
	}
	l, ok := s.ep.localAddr().(*SockaddrInet)
	ra, err := s.ep.remoteAddr()
	r, rok := ra.(*SockaddrInet)
	if !ok || err != nil || !rok {
		if d, isDgram := s.ep.(*dgramEP); isDgram {
			return d.ep.RxFlow() // not connected: where its datagrams come from
		}
		return 0
	}
	f := link.TupleFlowHash(l.AddrPort, r.AddrPort, proto)
	if proto == 6 && f != 0 {
		s.mu.Lock()
		s.ext().busyFlow = f
		s.mu.Unlock()
	}
	return f
}

// busyPollRead busy-polls the link of the socket's connection for
// budget (the socket's, from readWait) before a blocking read sleeps,
// within the deadline, and says whether the socket became readable.
func (s *Socket) busyPollRead(deadline time.Time, budget time.Duration) bool {
	dev := s.busyDev()
	if dev == 0 {
		return false
	}
	if !deadline.IsZero() {
		budget = min(budget, time.Until(deadline))
	}
	return budget > 0 && s.net.st.BusyPoll(dev, (*busyReady)(s), budget)
}

// busyPollNonblock is a non-blocking read's busy poll: it takes in what
// the link holds now and says whether the socket became readable
// (Linux's tcp_recvmsg and __skb_recv_udp call sk_busy_loop with
// nonblock set: one pass).
func (s *Socket) busyPollNonblock() bool {
	dev, _ := s.busyTarget()
	return dev != 0 && s.net.st.BusyPollOnce(dev, (*busyReady)(s))
}

// setWaiter is the link.BusyWaiter of Poll, Select and Poller.Wait: a
// token on their wake channel (a watched socket changed), and the flow
// of the socket whose link they poll. A Poller's parameters (tuned:
// frames and prefer) set how it polls; Poll and Select poll as the
// socket says. Values, not a pointer to the parameters: a Wait that does
// not poll allocates nothing.
type setWaiter struct {
	wake   chan struct{}
	s      *Socket
	tuned  bool
	frames int
	prefer bool
}

func (w *setWaiter) BusyReady() bool  { return len(w.wake) > 0 }
func (w *setWaiter) BusyFlow() uint32 { return w.s.busyFlow() }

// BusyTune is link.BusyTuner: a Poller's budget and preference, as
// Linux's epoll uses its own (epoll_params), or the socket's.
func (w *setWaiter) BusyTune() (frames int, prefer bool) {
	if w.tuned {
		return w.frames, w.prefer
	}
	return w.s.busyTune()
}

// busyPollSet busy-polls, for Poll, Select and Poller.Wait, the links of
// the given sockets that busy-poll, until wake holds a token or the
// stack's BusyPollSelect (net.core.busy_poll) passes, bounded by
// deadline (zero: none). Linux's do_poll and ep_poll do it once per
// call, before they sleep. pp is a Poller's parameters (nil for Poll and
// Select): with its own time it polls every socket's link, as epoll. It
// says whether a token came.
func busyPollSet(count int, sock func(i int) *Socket, wake chan struct{}, deadline time.Time, pp *BusyPollParams) bool {
	type target struct {
		n   *Net
		dev int
		s   *Socket // the first socket on it
	}
	var ts []target
	var budget time.Duration
	for i := range count {
		s := sock(i)
		if s == nil || s.closed.Load() {
			continue
		}
		var b time.Duration
		var dev int
		if pp != nil && pp.Usecs > 0 {
			b, dev = time.Duration(pp.Usecs)*time.Microsecond, s.busyDev()
		} else {
			if b = s.net.st.BusyPollSelect(); b <= 0 {
				continue
			}
			dev, _ = s.busyTarget()
		}
		if dev == 0 {
			continue
		}
		budget = max(budget, b)
		if !slices.ContainsFunc(ts, func(t target) bool { return t.n == s.net && t.dev == dev }) {
			ts = append(ts, target{s.net, dev, s})
		}
	}
	if len(ts) == 0 {
		return false
	}
	tw := setWaiter{wake: wake}
	if pp != nil {
		tw.tuned, tw.frames, tw.prefer = true, int(pp.Budget), pp.Prefer == 1
	}
	end := time.Now().Add(budget)
	if !deadline.IsZero() && deadline.Before(end) {
		end = deadline
	}
	if len(ts) == 1 {
		// One link: its poll spins itself, and keeps the link for the
		// next call when it returns with data.
		d := time.Until(end)
		w := tw
		w.s = ts[0].s
		return d > 0 && ts[0].n.st.BusyPoll(ts[0].dev, &w, d)
	}
	// Several links: one pass over each in turn, as Linux's poll does.
	ws := make([]setWaiter, len(ts))
	for {
		for i, t := range ts {
			ws[i] = tw
			ws[i].s = t.s
			if t.n.st.BusyPollOnce(t.dev, &ws[i]) {
				return true
			}
		}
		if len(wake) > 0 {
			return true
		}
		if !time.Now().Before(end) {
			return false
		}
	}
}
