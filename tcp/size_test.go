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
// 10: a million connections). 1280 is a Go size class, and an object over
// 512 bytes holding pointers carries an 8-byte malloc header: a field that
// pushes the struct past 1272 costs 128 bytes per endpoint (the 1408
// class), so a regression fails here. Rarely used state belongs in a side
// struct made on first use (listenState, undoState).
func TestEndpointSize(t *testing.T) {
	const limit = 1280 - 8
	if n := unsafe.Sizeof(Endpoint{}); n > limit {
		t.Fatalf("Endpoint is %d bytes, over %d (the next size class costs 128 bytes per connection)", n, limit)
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
	c.mu.Lock()
	_, isCubic := c.cc.(*cubic)
	cwnd := c.ccs.Cwnd
	c.mu.Unlock()
	if !isCubic || cwnd <= initCwndSegs*c.sndMSS {
		t.Fatalf("after a bulk transfer: control %T, cwnd %d (initial %d)", c.cc, cwnd, initCwndSegs*c.sndMSS)
	}
	if err := s.SetCongestion("bbr"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	_, isBBR := s.cc.(*bbr)
	s.mu.Unlock()
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
