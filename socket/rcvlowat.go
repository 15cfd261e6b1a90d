package socket

import (
	"errors"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// SO_RCVLOWAT, as Linux: on a TCP socket the TCP endpoint keeps it
// (capped, tcp/rcvlowat.go) and its readiness follows it; on TCP and
// AF_UNIX stream sockets a receive returns once min(SO_RCVLOWAT, len)
// bytes are copied, or at end of file, an error, a timeout, or with a
// non-blocking call at once with what there is. Other sockets only keep
// it (setStored). AF_UNIX poll ignores it, as Linux's unix_poll.

// setRcvLowat is setsockopt(SO_RCVLOWAT).
func (s *Socket) setRcvLowat(v any) error {
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return s.setStored(SO_RCVLOWAT, v)
	}
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	t.ep.SetRcvLowat(i)
	return nil
}

// rcvLowat is getsockopt(SO_RCVLOWAT).
func (s *Socket) rcvLowat() int {
	if t, ok := s.ep.(*tcpEP); ok {
		return t.ep.RcvLowat()
	}
	i, _ := s.getStored(SO_RCVLOWAT).(int)
	return max(i, 1)
}

// recvTarget is how many bytes a stream receive of size bytes copies
// before it returns (Linux's sock_rcvlowat): all of them with
// MSG_WAITALL, else SO_RCVLOWAT's worth, at most size and at least 1.
func (s *Socket) recvTarget(flags, size int) int {
	if flags&MSG_WAITALL != 0 {
		return max(size, 1)
	}
	switch e := s.ep.(type) {
	case *tcpEP:
	case *unixEP:
		if !e.stream() {
			return 1
		}
	default:
		return 1
	}
	return max(min(s.rcvLowat(), size), 1)
}

// recvMore continues a TCP receive that has copied n bytes of b until it
// has target, as tcp_recvmsg: it waits for more (the call's timeout,
// SO_RCVTIMEO and the read deadline bound the whole call, not each wait)
// and returns what it has at end of file, on an error (left pending for
// the next call), at the urgent mark, on a timeout, or at once when the
// call does not block.
func (s *Socket) recvMore(b []byte, n, target, flags int) int {
	t, _ := s.ep.(*tcpEP)
	nonblock, callDL := s.mode(flags, false)
	var e *waiter.Entry
	var wq *waiter.Queue
	var timer *time.Timer
	defer func() {
		if e != nil {
			s.putEntry(wq, e)
		}
		if timer != nil {
			timer.Stop()
		}
	}()
	for n < target {
		if s.waitReady(waiter.EventErr) {
			break // the error is the next call's (Linux keeps sk_err when it returns bytes)
		}
		if t != nil {
			if at, _ := t.ep.AtMark(); at {
				break // tcp_recvmsg stops before the urgent byte once it has copied some
			}
		}
		m, _, _, err := s.ep.recv(b[n:], flags)
		if err == nil {
			if m == 0 {
				break // end of file
			}
			n += m
			continue
		}
		if !errors.Is(err, syscall.EAGAIN) || nonblock {
			break
		}
		if e == nil {
			// Registered before the wait's own readiness check: a
			// segment arriving in between still wakes it.
			e = s.getEntry()
			wq = s.ep.waiter()
			wq.Register(e, waiter.EventIn|waiter.EventErr|waiter.EventHUp)
			continue
		}
		deadline, fromDL, busy := s.readWait(callDL)
		if busy > 0 && s.busyPollRead(deadline, busy) {
			continue // busy polling took data in (busypoll.go)
		}
		if s.wait(waiter.EventIn, deadline, fromDL, e, &timer) != nil {
			break // timeout, deadline or close: the bytes copied so far
		}
	}
	return n
}

// peekShort says a blocking MSG_PEEK on TCP that found n bytes, fewer
// than its target, must wait for more: Linux's tcp_recvmsg peeks until
// the target too. It need not when the socket is readable all the same
// (end of file, shutdown, a full buffer or window): more may never come.
func (s *Socket) peekShort(n, target int) bool {
	if n >= target {
		return false
	}
	if _, ok := s.ep.(*tcpEP); !ok {
		return false
	}
	return s.ep.readiness(waiter.EventIn|waiter.EventErr) == 0
}
