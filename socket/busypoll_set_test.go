package socket

import (
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// heldLink is a pipe end that can be polled: while held, the frames the
// pipe brings are kept and only a busy poll delivers them, so a socket
// call that returns with them can only have polled.
type heldLink struct {
	*link.PipeEnd
	mu     sync.Mutex
	r      link.Receiver
	hold   bool
	queued [][]byte
	held   int // frames ever held
	polls  int // BusyPoll calls
	onces  int // BusyPollOnce calls
	// tune is what the last call's waiter asked (link.BusyTuner).
	tune struct {
		frames int
		prefer bool
	}
}

func (h *heldLink) Attach(r link.Receiver) {
	h.r = r
	h.PipeEnd.Attach(h)
}

// DeliverFrames is the pipe's delivery: kept while held.
func (h *heldLink) DeliverFrames(frames [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		for _, f := range frames {
			h.queued = append(h.queued, append([]byte(nil), f...))
			h.held++
		}
		return
	}
	h.r.DeliverFrames(frames)
}

func (h *heldLink) setHold(on bool) {
	h.mu.Lock()
	h.hold = on
	h.mu.Unlock()
}

// arrived is how many frames were ever held; waiting is how many are.
func (h *heldLink) arrived() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

func (h *heldLink) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queued)
}

// release stops holding and delivers what is held.
func (h *heldLink) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	if len(h.queued) > 0 {
		h.r.DeliverFrames(h.queued)
		h.queued = nil
	}
}

func (h *heldLink) counts() (polls, onces int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polls, h.onces
}

// flush delivers what is held (h.mu held).
func (h *heldLink) flush(ready link.BusyWaiter) bool {
	if t, ok := ready.(link.BusyTuner); ok {
		h.tune.frames, h.tune.prefer = t.BusyTune()
	}
	if len(h.queued) > 0 {
		h.r.DeliverFrames(h.queued)
		h.queued = nil
	}
	return ready.BusyReady()
}

// BusyPoll spins as the TAP's does: until ready, or budget without a
// frame.
func (h *heldLink) BusyPoll(ready link.BusyWaiter, budget time.Duration) bool {
	h.mu.Lock()
	h.polls++
	h.mu.Unlock()
	end := time.Now().Add(budget)
	for {
		h.mu.Lock()
		got := len(h.queued) > 0
		ok := h.flush(ready)
		h.mu.Unlock()
		if ok {
			return true
		}
		if got {
			end = time.Now().Add(budget)
		} else if time.Now().After(end) {
			return false
		}
		runtime.Gosched()
	}
}

func (h *heldLink) BusyPollOnce(ready link.BusyWaiter) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onces++
	return h.flush(ready)
}

// newHeldPair is newPair with B's end a heldLink.
func newHeldPair(t *testing.T, optsB stack.Options) (p *pair, hl *heldLink) {
	t.Helper()
	ea, eb := link.NewPipe(macA, macB, 1500)
	hl = &heldLink{PipeEnd: eb}
	return newPairOn(t, ea, hl, stack.Options{}, optsB), hl
}

// busyConn is a TCP connection A → B and a UDP pair A → B on a held
// pair, each having carried data once with B's link not held (ARP is
// resolved, B's UDP socket knows the NIC its datagrams come in on).
type busyConn struct {
	hl           *heldLink
	ta, tb       *Socket // TCP: A's end, B's accepted end
	ua, ub       *Socket // UDP: A sends to B
	bAddrUDP     Sockaddr
	sentTCP, got int
}

func newBusyConn(t *testing.T, optsB stack.Options) *busyConn {
	t.Helper()
	p, hl := newHeldPair(t, optsB)
	c := &busyConn{hl: hl}
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(addrB, 7000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	c.ta = mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := c.ta.Connect(ap(addrB, 7000)); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	tb, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	c.tb = tb
	c.ua = mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	c.ub = mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	c.bAddrUDP = ap(addrB, 7001)
	if err := c.ub.Bind(c.bAddrUDP); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ua.SendTo([]byte("warm"), 0, c.bAddrUDP); err != nil {
		t.Fatal(err)
	}
	c.ub.SetTimeout(5 * time.Second)
	if s, err := recvStr(t, c.ub, 16, 0); err != nil || s != "warm" {
		t.Fatalf("warm-up datagram: %q, %v", s, err)
	}
	c.ub.SetTimeout(-1)
	return c
}

// heldTCP sends s from A over TCP and waits until B's link holds it.
func (c *busyConn) heldTCP(t *testing.T, s string) {
	t.Helper()
	c.hl.setHold(true)
	before := c.hl.arrived()
	if err := c.ta.SendAll([]byte(s), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.hl.arrived() > before })
}

// heldUDP sends s from A over UDP and waits until B's link holds it.
func (c *busyConn) heldUDP(t *testing.T, s string) {
	t.Helper()
	c.hl.setHold(true)
	before := c.hl.arrived()
	if _, err := c.ua.SendTo([]byte(s), 0, c.bAddrUDP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.hl.arrived() > before })
}

// A non-blocking read that finds nothing takes in what the link holds
// when the socket busy-polls (Linux's sk_busy_loop with nonblock), TCP
// and UDP; without SO_BUSY_POLL it fails with EAGAIN and the frames
// stay where they are.
func TestBusyPollNonblockingRecv(t *testing.T) {
	c := newBusyConn(t, stack.Options{})
	for _, k := range []struct {
		name string
		send func(*testing.T, string)
		s    *Socket
	}{{"tcp", c.heldTCP, c.tb}, {"udp", c.heldUDP, c.ub}} {
		k.send(t, k.name+"-1")
		if _, err := recvStr(t, k.s, 64, MSG_DONTWAIT); err != syscall.EAGAIN {
			t.Fatalf("%s: non-blocking read without busy polling: %v, want EAGAIN", k.name, err)
		}
		if c.hl.waiting() == 0 {
			t.Fatalf("%s: the held frames were delivered without a poll", k.name)
		}
		if _, o := c.hl.counts(); o != 0 {
			t.Fatalf("%s: %d one-pass polls with SO_BUSY_POLL off", k.name, o)
		}
		if err := k.s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 50); err != nil {
			t.Fatal(err)
		}
		if s, err := recvStr(t, k.s, 64, MSG_DONTWAIT); err != nil || s != k.name+"-1" {
			t.Fatalf("%s: non-blocking read with busy polling: %q, %v", k.name, s, err)
		}
		if _, o := c.hl.counts(); o != 1 {
			t.Fatalf("%s: %d one-pass polls, want 1", k.name, o)
		}
		// Nothing held: EAGAIN after one pass, no spinning.
		if _, err := recvStr(t, k.s, 64, MSG_DONTWAIT); err != syscall.EAGAIN {
			t.Fatalf("%s: non-blocking read with nothing sent: %v, want EAGAIN", k.name, err)
		}
		if p, o := c.hl.counts(); o != 2 || p != 0 {
			t.Fatalf("%s: %d one-pass and %d spinning polls, want 2 and 0", k.name, o, p)
		}
		if err := k.s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 0); err != nil {
			t.Fatal(err)
		}
		c.hl.mu.Lock()
		c.hl.onces = 0
		c.hl.mu.Unlock()
	}
}

// MSG_WAITALL's wait for the rest busy-polls as a plain blocking read
// does.
func TestBusyPollWaitAll(t *testing.T) {
	c := newBusyConn(t, stack.Options{})
	// Ten seconds: the wait for the rest spins until it comes.
	if err := c.tb.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 10_000_000); err != nil {
		t.Fatal(err)
	}
	c.heldTCP(t, "abc")
	got := make(chan recvResult, 1)
	buf := make([]byte, 6)
	go func() {
		n, err := c.tb.Recv(buf, MSG_WAITALL)
		got <- recvResult{n, err}
	}()
	// The first half comes by the read's poll; the second is sent once
	// the wait for the rest polls, and held too: only that poll can
	// deliver it.
	waitFor(t, func() bool { p, _ := c.hl.counts(); return p >= 2 })
	c.heldTCP(t, "def")
	select {
	case r := <-got:
		if r.err != nil || string(buf[:r.n]) != "abcdef" {
			t.Fatalf("MSG_WAITALL: %q, %v", buf[:r.n], r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("MSG_WAITALL did not return: its wait did not poll")
	}
}

// Poll, Select and Poller.Wait busy-poll the links of the sockets they
// watch, once per call, when the stack's BusyPollSelect
// (net.core.busy_poll) is set and the socket busy-polls; B's link holds
// every frame, so a call that reports the socket readable has polled.
// Without BusyPollSelect they sleep, and the frames stay held.
func TestBusyPollSelect(t *testing.T) {
	calls := []struct {
		name  string
		ready func(s *Socket, timeout time.Duration) (bool, error)
	}{
		{"poll", func(s *Socket, timeout time.Duration) (bool, error) {
			fds := []PollFD{{Socket: s, Events: waiter.EventIn}}
			n, err := Poll(fds, timeout)
			return n == 1 && fds[0].Revents&waiter.EventIn != 0, err
		}},
		{"select", func(s *Socket, timeout time.Duration) (bool, error) {
			r, _, _, err := Select([]*Socket{s}, nil, nil, timeout)
			return len(r) == 1, err
		}},
		{"poller", func(s *Socket, timeout time.Duration) (bool, error) {
			p := NewPoller()
			defer p.Close()
			if err := p.Add(s, waiter.EventIn, 7); err != nil {
				return false, err
			}
			ev := make([]PollEvent, 4)
			n, err := p.Wait(ev, timeout)
			return n == 1 && ev[0].Data == 7, err
		}},
	}
	t.Run("off", func(t *testing.T) {
		c := newBusyConn(t, stack.Options{BusyPoll: 50 * time.Microsecond})
		for _, call := range calls {
			c.heldUDP(t, call.name)
			ok, err := call.ready(c.ub, 20*time.Millisecond)
			if err != nil || ok {
				t.Fatalf("%s: readable %v, %v without BusyPollSelect", call.name, ok, err)
			}
			if p, o := c.hl.counts(); p+o != 0 {
				t.Fatalf("%s: %d polls without BusyPollSelect", call.name, p+o)
			}
			c.hl.release()
			if s, err := recvStr(t, c.ub, 64, 0); err != nil || s != call.name {
				t.Fatalf("%s: %q, %v", call.name, s, err)
			}
		}
	})
	t.Run("on", func(t *testing.T) {
		c := newBusyConn(t, stack.Options{BusyPollSelect: 100 * time.Microsecond})
		for _, s := range []*Socket{c.ub, c.tb} {
			if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 50); err != nil {
				t.Fatal(err)
			}
		}
		for _, call := range calls {
			for _, k := range []struct {
				name string
				send func(*testing.T, string)
				s    *Socket
			}{{"udp", c.heldUDP, c.ub}, {"tcp", c.heldTCP, c.tb}} {
				k.send(t, call.name)
				p0, _ := c.hl.counts()
				ok, err := call.ready(k.s, 10*time.Second)
				if err != nil || !ok {
					t.Fatalf("%s, %s: readable %v, %v", call.name, k.name, ok, err)
				}
				if p, _ := c.hl.counts(); p != p0+1 {
					t.Fatalf("%s, %s: %d polls, want 1", call.name, k.name, p-p0)
				}
				if s, err := recvStr(t, k.s, 64, MSG_DONTWAIT); err != nil || s != call.name {
					t.Fatalf("%s, %s: read %q, %v", call.name, k.name, s, err)
				}
			}
		}
	})
}

// Poll over sockets whose data comes in on different links makes one
// pass over each link in turn (Linux's poll does the same over NAPI
// contexts): the frames held on the second link make the call return.
func TestBusyPollSelectSeveralLinks(t *testing.T) {
	opts := stack.Options{BusyPollSelect: 10 * time.Millisecond}
	c1, c2 := newBusyConn(t, opts), newBusyConn(t, opts)
	for _, s := range []*Socket{c1.ub, c2.ub} {
		if err := s.SetSockOptInt(SOL_SOCKET, SO_BUSY_POLL, 50); err != nil {
			t.Fatal(err)
		}
	}
	c1.hl.setHold(true)
	c2.heldUDP(t, "second")
	fds := []PollFD{{Socket: c1.ub, Events: waiter.EventIn}, {Socket: c2.ub, Events: waiter.EventIn}}
	n, err := Poll(fds, 10*time.Second)
	if err != nil || n != 1 || fds[0].Revents != 0 || fds[1].Revents&waiter.EventIn == 0 {
		t.Fatalf("Poll: %d, %v, revents %v", n, err, fds)
	}
	_, o1 := c1.hl.counts()
	p2, o2 := c2.hl.counts()
	if o1 < 1 || o2 < 1 || p2 != 0 {
		t.Fatalf("one-pass polls %d and %d, spinning polls of the second link %d; want one pass over each link", o1, o2, p2)
	}
	if s, err := recvStr(t, c2.ub, 64, MSG_DONTWAIT); err != nil || s != "second" {
		t.Fatalf("read %q, %v", s, err)
	}
}

// The flow a socket gives a multi-queue link (BusyFlow) is its
// traffic's link.TupleFlowHash: a TCP connection's ends, and for an
// unconnected UDP socket its last datagram's ends, noted from the first
// call on.
func TestBusyFlow(t *testing.T) {
	c := newBusyConn(t, stack.Options{})
	la, _ := c.ta.GetSockName()
	if got, want := (*busyReady)(c.tb).BusyFlow(), link.TupleFlowHash(la.(*SockaddrInet).AddrPort, ap(addrB, 7000).AddrPort, 6); got == 0 || got != want {
		t.Errorf("TCP: BusyFlow %#x, want %#x", got, want)
	}
	if f := (*busyReady)(c.ub).BusyFlow(); f != 0 {
		t.Errorf("unconnected UDP before any datagram was noted: %#x", f)
	}
	if _, err := c.ua.SendTo([]byte("x"), 0, c.bAddrUDP); err != nil {
		t.Fatal(err)
	}
	c.ub.SetTimeout(5 * time.Second)
	if _, err := recvStr(t, c.ub, 16, 0); err != nil {
		t.Fatal(err)
	}
	ua, _ := c.ua.GetSockName()
	src := netip.AddrPortFrom(addrA, ua.(*SockaddrInet).AddrPort.Port())
	if got, want := (*busyReady)(c.ub).BusyFlow(), link.TupleFlowHash(src, ap(addrB, 7001).AddrPort, 17); got == 0 || got != want {
		t.Errorf("unconnected UDP: BusyFlow %#x, want %#x (the last datagram's)", got, want)
	}
}

// SO_BUSY_POLL_BUDGET and SO_PREFER_BUSY_POLL reach the link with a
// read's poll; a Poller's own parameters (EPIOCSPARAMS) make Wait poll
// its last socket's link with its own time, budget and preference even
// when the socket does not busy-poll, as Linux's epoll does, and without
// them Wait polls only a busy-polling socket's link.
func TestBusyPollTune(t *testing.T) {
	c := newBusyConn(t, stack.Options{})
	for _, o := range []struct{ name, v int }{{SO_BUSY_POLL, 50}, {SO_BUSY_POLL_BUDGET, 3}, {SO_PREFER_BUSY_POLL, 1}} {
		if err := c.tb.SetSockOptInt(SOL_SOCKET, o.name, o.v); err != nil {
			t.Fatal(err)
		}
	}
	c.heldTCP(t, "tuned")
	if s, err := recvStr(t, c.tb, 64, MSG_DONTWAIT); err != nil || s != "tuned" {
		t.Fatalf("non-blocking read: %q, %v", s, err)
	}
	if c.hl.tune.frames != 3 || !c.hl.tune.prefer {
		t.Fatalf("the read's poll asked %+v, want 3 frames, preferring", c.hl.tune)
	}

	// The UDP socket does not busy-poll: a Poller polls its link only
	// with parameters of its own.
	p := NewPoller()
	defer p.Close()
	if err := p.Add(c.ub, waiter.EventIn, 1); err != nil {
		t.Fatal(err)
	}
	ev := make([]PollEvent, 2)
	c.heldUDP(t, "first")
	c.hl.release()
	if n, err := p.Wait(ev, 10*time.Second); n != 1 || err != nil {
		t.Fatalf("Wait: %d, %v", n, err)
	}
	if s, err := recvStr(t, c.ub, 64, MSG_DONTWAIT); err != nil || s != "first" {
		t.Fatalf("read %q, %v", s, err)
	}
	c.heldUDP(t, "second")
	polls, _ := c.hl.counts()
	if n, err := p.Wait(ev, 20*time.Millisecond); n != 0 || err != nil {
		t.Fatalf("Wait without parameters: %d, %v; the held frame was polled", n, err)
	}
	if p2, _ := c.hl.counts(); p2 != polls {
		t.Fatalf("Wait without parameters polled %d times", p2-polls)
	}
	if err := p.SetBusyPollParams(BusyPollParams{Usecs: 100_000, Budget: 5, Prefer: 1}); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Wait(ev, 10*time.Second); n != 1 || err != nil {
		t.Fatalf("Wait with parameters: %d, %v", n, err)
	}
	if p2, _ := c.hl.counts(); p2 != polls+1 {
		t.Fatalf("Wait with parameters: %d polls, want 1", p2-polls)
	}
	if c.hl.tune.frames != 5 || !c.hl.tune.prefer {
		t.Fatalf("Wait's poll asked %+v, want the poller's 5 frames, preferring", c.hl.tune)
	}
	if s, err := recvStr(t, c.ub, 64, MSG_DONTWAIT); err != nil || s != "second" {
		t.Fatalf("read %q, %v", s, err)
	}
}
