package tcp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

func TestFinInOtherStates(t *testing.T) {
	// SYN_RCVD: an ACK carrying a FIN completes the handshake and closes
	// the peer's side.
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(4)
	s.inject(seg{flags: fS, seq: 1000, win: 65535})
	sa := s.expectOne("SYN-ACK")
	s.inject(seg{flags: fFA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	check(t, "ACK of FIN", s.expectOne("ACK"), fA, sa.h.Seq+1, 1002, 0)
	c, _, err := l.Accept()
	if err != nil || c.State() != StateCloseWait {
		t.Fatal(err, c.State())
	}
	// CLOSE_WAIT: a retransmitted FIN is acknowledged again.
	s.inject(seg{flags: fFA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	check(t, "dup FIN", s.expectOne("ACK"), fA, sa.h.Seq+1, 1002, 0)
	// LAST_ACK: same.
	c.Close()
	s.out()
	s.inject(seg{flags: fFA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	if a := s.expectOne("ACK"); a.h.Ack != 1002 {
		t.Fatal(a)
	}
	if c.State() != StateLastAck {
		t.Fatal(c.State())
	}
	// SYN_SENT: a FIN without SYN is dropped.
	e := s.p.NewEndpoint()
	e.Connect(s.remote)
	syn := s.expectOne("SYN")
	s.local = syn.local
	s.inject(seg{flags: fF, seq: 1, win: 100})
	s.expectNone("FIN in SYN_SENT")
	if e.State() != StateSynSent {
		t.Fatal(e.State())
	}
}

func TestRSTInSynRcvd(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(4)
	s.inject(seg{flags: fS, seq: 1000, win: 65535})
	s.expectOne("SYN-ACK")
	s.inject(seg{flags: fR, seq: 1001})
	if len(s.p.Table()) != 1 || l.synQLen.Load() != 0 {
		t.Fatalf("half-open connection survived a RST: %v", s.p.Table())
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatal(err)
	}
}

func TestProtocolClose(t *testing.T) {
	s := newScript(t, Config{})
	l, c, _ := s.passiveOpen(noOpts)
	s.p.Close()
	if r := s.expectOne("RST"); r.h.Flags&fR == 0 {
		t.Fatal(r)
	}
	if c.State() != StateClosed || l.State() != StateClosed {
		t.Fatal(c.State(), l.State())
	}
	if s.clk.Pending() != 0 {
		t.Fatalf("%d timers left", s.clk.Pending())
	}
}

// FuzzHandleSegment feeds arbitrary bytes to a listener and an
// established connection: nothing may panic.
func FuzzHandleSegment(f *testing.F) {
	h := wire.TCPHeader{SrcPort: 40000, DstPort: 8080, Seq: 1001, Flags: fA, Window: 100, Options: wire.TCPOptions{NumSACK: 2, HasTS: true}}
	b := make([]byte, h.Len()+3)
	h.Put(b)
	f.Add(b)
	f.Add([]byte{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5, 0xb4})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(sackOpts)
		c.Write(make([]byte, 5000))
		if len(data) >= 12 {
			// Aim some inputs at the connection's sequence space.
			if data[0]&1 == 0 {
				binary.BigEndian.PutUint32(data[4:], 1001+uint32(data[1]))
				binary.BigEndian.PutUint32(data[8:], iss+uint32(data[2])*100)
			}
			if len(data) >= 4 {
				binary.BigEndian.PutUint16(data[0:], 40000)
				binary.BigEndian.PutUint16(data[2:], 8080)
			}
		}
		s.p.HandleSegment(remoteIP, localIP, 0, data)
		s.clk.Advance(time.Second)
		s.p.HandleSegment(remoteIP, localIP, 0, data)
		s.clk.Advance(time.Minute)
		c.Info()
		readAll(c)
	})
}

// stuckAfter only detects a deadlock (no progress at all); it is not a
// timing assertion, so it is far longer than a loaded machine needs.
const stuckAfter = 2 * time.Minute

func notifyKick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// TestConcurrentRealClock runs several connections at once with real
// timers and goroutines (meant for -race).
func TestConcurrentRealClock(t *testing.T) { concurrentRealClock(t, false) }

// TestConcurrentRealClockDeferred is TestConcurrentRealClock with
// segments leaving after the lock (txdefer.go), ACKs and timers queuing
// behind the flusher, and every flush handed to the queues' own
// goroutines (a budget below zero).
func TestConcurrentRealClockDeferred(t *testing.T) {
	old := flushBudget
	flushBudget = -1
	defer func() { flushBudget = old }()
	n := concurrentRealClock(t, true)
	if st := n.a.Stats(); st.DeferredSegs == 0 || st.FlushHandOffs == 0 {
		t.Fatalf("%d segments deferred, %d flushes handed to a queue's goroutine", st.DeferredSegs, st.FlushHandOffs)
	}
	n.a.Close()
	n.b.Close()
}

func concurrentRealClock(t *testing.T, deferOut bool) *pairNet {
	n := newPairClock(9, Config{}, clock.Real{})
	n.ha.deferOut, n.hb.deferOut = deferOut, deferOut
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(16)
	const conns = 4
	size := 2 << 20
	if testing.Short() || raceEnabled {
		size = 256 << 10
	}
	// Every send kicks the pump, which otherwise waits: segments come
	// from the endpoints' calls and from real timers on their own
	// goroutines, and the link has no delay, so a queued segment is due.
	kick := make(chan struct{}, 1)
	n.ha.hook = func(s *Segment) { n.send(n.b, s); notifyKick(kick) }
	n.hb.hook = func(s *Segment) { n.send(n.a, s); notifyKick(kick) }
	stop := make(chan struct{})
	var pumpWG sync.WaitGroup
	pumpWG.Add(1)
	go func() {
		defer pumpWG.Done()
		for {
			if n.flush() == 0 {
				select {
				case <-stop:
					return
				case <-kick:
				}
			}
		}
	}()
	defer func() { close(stop); pumpWG.Wait() }()
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	var sums [conns][2][]byte // written, read
	for i := 0; i < conns; i++ {
		c := n.a.NewEndpoint()
		c.Connect(netip.AddrPortFrom(ipB, 80))
		var srv *Endpoint
		en := waiter.NewEntry()
		l.Waiter().Register(en, waiter.EventIn)
		for srv == nil {
			var err error
			srv, _, err = l.Accept()
			if err != nil {
				select {
				case <-en.C:
				case <-time.After(stuckAfter):
					t.Fatal("accept timed out")
				}
			}
		}
		l.Waiter().Unregister(en)
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			ent := waiter.NewEntry()
			c.Waiter().Register(ent, waiter.EventOut)
			defer c.Waiter().Unregister(ent)
			src := newStream(uint64(i), size)
			for src.left > 0 {
				k, err := c.Write(src.buf[src.off:min(len(src.buf), src.off+src.left)])
				if k > 0 {
					src.h.Write(src.buf[src.off : src.off+k])
					src.off += k
					src.left -= k
					if src.off == len(src.buf) {
						src.fill()
					}
				}
				if errors.Is(err, syscall.EAGAIN) {
					select {
					case <-ent.C:
					case <-time.After(stuckAfter):
						errs <- errors.New("writer stuck")
						return
					}
				} else if err != nil {
					errs <- err
					return
				}
			}
			c.Shutdown(ShutWr)
			sums[i][0] = src.h.Sum(nil)
		}()
		go func() { // reader
			defer wg.Done()
			ent := waiter.NewEntry()
			srv.Waiter().Register(ent, waiter.EventIn)
			defer srv.Waiter().Unregister(ent)
			buf := make([]byte, 32<<10)
			got := 0
			h := sha256.New()
			for {
				k, err := srv.Read(buf, false)
				got += k
				h.Write(buf[:k])
				if k == 0 && err == nil {
					break
				}
				if errors.Is(err, syscall.EAGAIN) {
					select {
					case <-ent.C:
					case <-time.After(stuckAfter):
						errs <- errors.New("reader stuck")
						return
					}
				} else if err != nil {
					errs <- err
					return
				}
			}
			if got != size {
				errs <- errors.New("short read")
			}
			sums[i][1] = h.Sum(nil)
			srv.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, s := range sums {
		if !bytes.Equal(s[0], s[1]) {
			t.Fatalf("connection %d: the bytes read differ from those written", i)
		}
	}
	_ = n.a.Table()
	_ = n.b.Stats()
	return n
}
