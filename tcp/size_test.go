package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The endpoint's size is most of the memory of an idle connection (issue
// 10: a million connections). 704 is a Go size class, and an object over
// 512 bytes holding pointers carries an 8-byte malloc header: a field that
// pushes the struct past 696 costs 64 bytes per endpoint (the 768
// class), so a regression fails here. State that is zero while idle
// belongs in epBusy (busy.go), options in epOpts (opts.go), rarely used
// state in a side struct made on first use (listenState, undoState).
func TestEndpointSize(t *testing.T) {
	const limit = 704 - 8
	if n := unsafe.Sizeof(Endpoint{}); n > limit {
		t.Fatalf("Endpoint is %d bytes, over %d (the next size class costs 64 bytes per connection)", n, limit)
	}
}

// epBusy is held by every connection with work to do; 512 is its size
// class (no malloc header up to 512 bytes).
func TestBusySize(t *testing.T) {
	if n := unsafe.Sizeof(epBusy{}); n > 512 {
		t.Fatalf("epBusy is %d bytes, over 512", n)
	}
}

// CUBIC's state is allocated per connection beside the endpoint; 112 is
// its size class.
func TestCubicSize(t *testing.T) {
	if n := unsafe.Sizeof(cubic{}); n > 112 {
		t.Fatalf("cubic is %d bytes, over 112", n)
	}
}

// An established connection that has not grown or cut its window holds
// no CUBIC state (lazyCC); the first congestion event makes it, and a
// control that samples every ACK (BBR) set later is made at once.
func TestLazyCongestionControl(t *testing.T) {
	n := newPair(3, Config{})
	n.delay = time.Millisecond
	c, s := n.connect(t)
	if c.cc != nil || s.cc != nil {
		t.Fatalf("idle connection made its control: client %T, server %T", c.cc, s.cc)
	}
	src := newStream(4, 256<<10)
	k := newSink()
	ok := n.run(time.Minute, func() bool {
		if err := src.pump(c); err != nil {
			t.Fatal(err)
		}
		if err := k.drain(s); err != nil {
			t.Fatal(err)
		}
		return src.left == 0 && k.n == 256<<10
	})
	if !ok {
		t.Fatalf("transfer stalled at %d bytes", k.n)
	}
	c.lock()
	_, isCubic := c.cc.(*cubic)
	cwnd := c.ccs.Cwnd
	c.unlock()
	if !isCubic || cwnd <= initCwndSegs*c.sndMSS {
		t.Fatalf("after a bulk transfer: control %T, cwnd %d (initial %d)", c.cc, cwnd, initCwndSegs*c.sndMSS)
	}
	if err := s.SetCongestion("bbr"); err != nil {
		t.Fatal(err)
	}
	s.lock()
	_, isBBR := s.cc.(*bbr)
	s.unlock()
	if !isBBR {
		t.Fatalf("TCP_CONGESTION bbr on an established connection: control %T", s.cc)
	}
}

// Options are shared until set: setting one on an endpoint changes
// neither the Protocol's defaults nor its listener's children made
// before, and a child inherits what its listener set.
func TestOptionsCopyOnWrite(t *testing.T) {
	n := newPair(5, Config{})
	a := n.a.NewEndpoint()
	b := n.a.NewEndpoint()
	if err := a.SetKeepIdle(17 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.SetUserTimeout(1234); err != nil {
		t.Fatal(err)
	}
	if got := b.KeepIdle(); got != n.a.cfg.KeepIdle {
		t.Fatalf("another endpoint's TCP_KEEPIDLE %v, want the default %v", got, n.a.cfg.KeepIdle)
	}
	if n.a.defOpts.keepIdle != n.a.cfg.KeepIdle || n.a.defOpts.userTimeout != 0 {
		t.Fatalf("defaults changed: %+v", n.a.defOpts)
	}
	if a.KeepIdle() != 17*time.Second || a.UserTimeout() != 1234 {
		t.Fatalf("set options read back %v %d", a.KeepIdle(), a.UserTimeout())
	}
	l := n.b.NewEndpoint()
	if err := l.Bind(netip.AddrPortFrom(ipB, 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetKeepCnt(7); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	dial := func() *Endpoint {
		c := n.a.NewEndpoint()
		if err := c.Connect(netip.AddrPortFrom(ipB, 80)); !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		var s *Endpoint
		if !n.run(time.Minute, func() bool {
			if s == nil {
				s, _, _ = l.Accept()
			}
			return s != nil
		}) {
			t.Fatal("no connection accepted")
		}
		return s
	}
	s1 := dial()
	if s1.KeepCnt() != 7 {
		t.Fatalf("child's TCP_KEEPCNT %d, want the listener's 7", s1.KeepCnt())
	}
	if err := s1.SetKeepCnt(9); err != nil {
		t.Fatal(err)
	}
	if err := l.SetKeepCnt(5); err != nil {
		t.Fatal(err)
	}
	s2 := dial()
	if l.KeepCnt() != 5 || s1.KeepCnt() != 9 || s2.KeepCnt() != 5 {
		t.Fatalf("TCP_KEEPCNT listener %d, first child %d, second child %d; want 5 9 5", l.KeepCnt(), s1.KeepCnt(), s2.KeepCnt())
	}
}

// Endpoints that set the same options share one copy; past
// maxSharedOpts distinct sets, a new set is the endpoint's own and is
// counted.
func TestOptionsShared(t *testing.T) {
	n := newPair(6, Config{})
	a, b := n.a.NewEndpoint(), n.a.NewEndpoint()
	for _, e := range []*Endpoint{a, b} {
		if err := e.SetKeepIdle(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := e.SetKeepIntvl(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if a.epOpts != b.epOpts {
		t.Fatal("equal option sets not shared")
	}
	for i := 1; i <= maxSharedOpts+1; i++ {
		if err := a.SetUserTimeout(i); err != nil {
			t.Fatal(err)
		}
	}
	// The table holds the keepidle set and the keepidle+keepintvl set,
	// then 254 of the 257 user-timeout sets.
	if got := n.a.Stats().OptsUnshared; got != 3 {
		t.Fatalf("OptsUnshared %d, want 3 (the table holds %d sets)", got, maxSharedOpts)
	}
	if a.UserTimeout() != maxSharedOpts+1 || b.UserTimeout() != 0 {
		t.Fatalf("user timeouts %d %d", a.UserTimeout(), b.UserTimeout())
	}
}

// holdsBusy reads whether e holds its epBusy, without lock (which would
// make one).
func holdsBusy(e *Endpoint) bool {
	e.mu.m.Lock()
	defer e.mu.m.Unlock()
	return e.epBusy != nil
}

// An idle connection holds no epBusy: after the handshake, and again
// after data both ways once everything is acknowledged; the next write
// and the next segment take one again, and the data arrives intact.
func TestIdleReleasesBusy(t *testing.T) {
	n := newPair(7, Config{})
	n.delay = time.Millisecond
	c, s := n.connect(t)
	n.run(time.Second, func() bool { return false })
	if holdsBusy(c) || holdsBusy(s) {
		t.Fatalf("idle after the handshake: client holds epBusy %v, server %v", holdsBusy(c), holdsBusy(s))
	}
	for round := 0; round < 3; round++ {
		src := newStream(uint64(10+round), 64<<10)
		k := newSink()
		if !n.run(time.Minute, func() bool {
			if err := src.pump(c); err != nil {
				t.Fatal(err)
			}
			if err := k.drain(s); err != nil {
				t.Fatal(err)
			}
			return src.left == 0 && k.n == 64<<10
		}) {
			t.Fatalf("round %d: transfer stalled at %d bytes", round, k.n)
		}
		if string(k.h.Sum(nil)) != string(src.h.Sum(nil)) {
			t.Fatalf("round %d: data differs", round)
		}
		n.run(time.Second, func() bool { return false }) // the last ACKs
		if holdsBusy(c) || holdsBusy(s) {
			s.mu.m.Lock()
			if s.epBusy != nil {
				t.Logf("server: %+v; ooo %v, scoreboard %+v, txq %+v", s.epBusy.epBusyVals, s.ooo, s.sb, s.txq)
			}
			s.mu.m.Unlock()
			t.Fatalf("round %d: idle after the transfer, client holds epBusy %v, server %v", round, holdsBusy(c), holdsBusy(s))
		}
	}
	if got := c.Info().BytesAcked; got != 3*64<<10 {
		t.Fatalf("client BytesAcked %d, want %d", got, 3*64<<10)
	}
}

// A connection whose state is not zero keeps its epBusy: a listener
// (its accept queue) and a connection with unacknowledged data.
func TestBusyKeptWhileNeeded(t *testing.T) {
	n := newPair(8, Config{})
	n.delay = 10 * time.Millisecond
	l := n.b.NewEndpoint()
	if err := l.Bind(netip.AddrPortFrom(ipB, 81)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	if !holdsBusy(l) {
		t.Fatal("listener dropped its epBusy (and with it its listenState)")
	}
	c, s := n.connect(t)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if !holdsBusy(c) {
		t.Fatal("sender with data in flight dropped its epBusy")
	}
	b := make([]byte, 16)
	var got int
	n.run(time.Minute, func() bool {
		k, _ := s.Read(b[got:], false)
		got += k
		return got == 5
	})
	if string(b[:got]) != "hello" {
		t.Fatalf("read %q", b[:got])
	}
}

// Code that takes e.mu directly, not through lock, finds the epBusy of
// an idle connection too: SetListenIPv4 on a connection reads e.ls.
func TestMutexGivesBusy(t *testing.T) {
	n := newPair(9, Config{})
	c, _ := n.connect(t)
	n.run(time.Second, func() bool { return false })
	if holdsBusy(c) {
		t.Fatal("idle connection holds its epBusy")
	}
	c.SetListenIPv4(5, 0) // not listening: nothing to do, and no panic
	if holdsBusy(c) {
		t.Fatal("epBusy kept after unlock")
	}
}
