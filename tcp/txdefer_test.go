package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// deferPair is a pair whose routes let segments leave after the lock.
func deferPair(t *testing.T, seed uint64, cfg Config) *pairNet {
	n := newPair(seed, cfg)
	deferHosts(t, n.ha, n.hb)
	return n
}

// deferHosts offers Route.Defer on hs for the test. Every flush stays
// with the unlocker (no budget): a hand-off to a queue's goroutine
// would race the test's single goroutine and its manual clock
// (TestConcurrentRealClockDeferred covers hand-offs).
func deferHosts(t *testing.T, hs ...*fakeHost) {
	for _, h := range hs {
		h.deferOut = true
	}
	old := flushBudget
	flushBudget = 0
	t.Cleanup(func() { flushBudget = old })
}

// Loss, reordering and duplicates with flushers: the data arrives intact
// both ways.
func TestDeferredTorture(t *testing.T) {
	size, seeds := 8<<20, 6
	if testing.Short() || raceEnabled {
		size, seeds = 1<<20, 3
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run("", func(t *testing.T) {
			n := deferPair(t, seed, Config{})
			n.delay = time.Millisecond
			n.loss, n.reord, n.dup = 0.05, 0.03, 0.01
			transfer(t, n, size, time.Duration(size>>10)*time.Millisecond+10*time.Minute)
		})
	}
}

// While a write flushes, the ACKs it takes in make more segments: they
// join its queue and leave after the ones before them, never ahead; the
// flush runs with the endpoint unlocked.
func TestDeferredSendOrder(t *testing.T) {
	n := deferPair(t, 5, Config{})
	c, s := n.connect(t)
	var (
		depth, maxDepth int
		unlocked        int
		next            uint32 // the next new sequence number expected
		started         bool
		outOfOrder      []uint32
	)
	n.ha.fail = func(seg *Segment) error {
		depth++
		defer func() { depth-- }()
		maxDepth = max(maxDepth, depth)
		if c.mu.m.TryLock() {
			c.mu.m.Unlock()
			unlocked++
			// Take what the wire has due for both ends in the meantime
			// (without moving the clock): the client's ACK processing
			// makes segments now.
			for range 8 {
				n.mu.Lock()
				due := len(n.q) > 0 && n.q[0].at <= n.now()
				n.mu.Unlock()
				if !due {
					break
				}
				n.step()
			}
		}
		if n := len(seg.Payload[0]) + len(seg.Payload[1]); n > 0 {
			if started && seg.Header.Seq != next && seqGT(seg.Header.Seq, next) {
				outOfOrder = append(outOfOrder, seg.Header.Seq)
			}
			if !started || seqGT(seg.Header.Seq+uint32(n), next) {
				next, started = seg.Header.Seq+uint32(n), true
			}
		}
		return nil
	}
	const size = 2 << 20
	src, k := newStream(7, size), newSink()
	ok := n.run(time.Minute, func() bool {
		if err := src.pump(c); err != nil {
			t.Fatal(err)
		}
		if err := k.drain(s); err != nil {
			t.Fatal(err)
		}
		return k.n == size
	})
	n.ha.fail = nil
	if !ok {
		t.Fatalf("%d of %d bytes arrived", k.n, size)
	}
	if !bytes.Equal(k.h.Sum(nil), src.h.Sum(nil)) {
		t.Fatal("the bytes arrived differ from those written")
	}
	if unlocked == 0 {
		t.Fatal("no segment left with the endpoint unlocked")
	}
	if maxDepth > 1 {
		t.Fatalf("a segment was sent from inside another's send (depth %d): it did not queue", maxDepth)
	}
	if len(outOfOrder) > 0 {
		t.Fatalf("%d segments left ahead of earlier ones (first at %d)", len(outOfOrder), outOfOrder[0])
	}
	if st := n.a.Stats(); st.RetransSegs != 0 {
		t.Fatalf("retransmissions: %+v", st)
	}
}

// A Protocol whose routes never defer makes no flush queues: a
// simulator's thousand hosts do not carry them.
func TestFlushQueuesOnlyWhenDeferring(t *testing.T) {
	n := newPair(6, Config{})
	transfer(t, n, 256<<10, time.Minute)
	if n.a.txqs.Load() != nil || n.b.txqs.Load() != nil {
		t.Fatal("flush queues made without a deferring route")
	}
	d := deferPair(t, 6, Config{})
	transfer(t, d, 256<<10, time.Minute)
	if d.a.txqs.Load() == nil {
		t.Fatal("no flush queues on a deferring route")
	}
}

// A flusher writes at least flushBudget segments, then hands what others
// keep queuing to the queue's goroutine and returns: whoever unlocked
// the endpoint (a getsockopt, the timer wheel) does not write for as
// long as a writer keeps the queue full. The goroutine writes the rest,
// in order, and frees the queue.
func TestFlushBudgetHandsOff(t *testing.T) {
	if flushBudget <= 0 {
		t.Fatalf("flushBudget %d: the default is a bound", flushBudget)
	}
	h := newFakeHost(clock.NewManual(epoch), localIP)
	h.deferOut = true
	p := NewProtocol(h, Config{})
	defer p.Close()
	e := p.NewEndpoint()
	e.txDefer = true
	total := 4 * flushBudget
	var (
		mu       sync.Mutex
		seqs     []uint32
		byCaller int // segments written before the hand-off: the caller's
		queued   int
		wrote    = make(chan struct{}, total)
		// The queue's goroutine waits until the caller's count is read:
		// it could otherwise write everything before the caller returns.
		counted = make(chan struct{})
	)
	defer func() {
		select {
		case <-counted:
		default:
			close(counted)
		}
	}()
	// queue adds one segment numbered by queued; e is locked.
	queue := func() {
		seg := p.segPool.Get().(*Segment)
		*seg = Segment{}
		seg.Header.Seq = uint32(queued)
		queued++
		if !e.deferSeg(seg) {
			t.Errorf("segment %d not queued", queued-1)
		}
	}
	// A writer that queues one more segment for each one written, as
	// an application keeping the send buffer full would.
	h.hook = func(seg *Segment) {
		// The caller writes nothing after its hand-off, so a write
		// after one is the goroutine's.
		if p.st.FlushHandOffs.Load() > 0 {
			<-counted
		}
		mu.Lock()
		if p.st.FlushHandOffs.Load() == 0 {
			byCaller++
		}
		seqs = append(seqs, seg.Header.Seq)
		mu.Unlock()
		e.lock()
		if queued < total {
			queue()
		}
		e.mu.unlockNoFlush()
		wrote <- struct{}{}
	}
	e.lock()
	for range 8 {
		queue()
	}
	e.mu.unlockNoFlush()
	q := e.claimFlush()
	if q == nil {
		t.Fatal("no flush to claim with segments queued")
	}
	e.flushTx(q)
	mu.Lock()
	if byCaller != len(seqs) {
		t.Errorf("%d segments written by the caller, %d in all, before it returned", byCaller, len(seqs))
	}
	mu.Unlock()
	close(counted)
	for i := 0; i < total; i++ {
		select {
		case <-wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d segments written (%d by the unlocker)", i, total, byCaller)
		}
	}
	if byCaller < flushBudget || byCaller >= total {
		t.Fatalf("the unlocker wrote %d of %d segments, want at least %d and not all", byCaller, total, flushBudget)
	}
	if n := p.Stats().FlushHandOffs; n != 1 {
		t.Fatalf("%d hand-offs, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("segment %d written as %d: order lost", i, s)
		}
	}
	// The goroutine frees the queue after the last segment, just after
	// the last write returned.
	deadline := time.Now().Add(10 * time.Second)
	for e.flushPending() {
		if time.Now().After(deadline) {
			t.Fatal("the queue still serves the endpoint after its last segment")
		}
		runtime.Gosched()
	}
	t.Logf("the unlocker wrote %d segments, the queue's goroutine %d", byCaller, total-byCaller)
}

// holdingHost is a fakeHost that is an OutputHolder, logging holds.
type holdingHost struct {
	*fakeHost
	log []string
}

func (h *holdingHost) FlushOutput(link int) { h.log = append(h.log, fmt.Sprintf("flush %d", link)) }

func (h *holdingHost) HoldOutput(link int, start bool) {
	if start {
		h.log = append(h.log, fmt.Sprintf("hold %d", link))
	} else {
		h.log = append(h.log, fmt.Sprintf("release %d", link))
	}
}

// A flusher holds the host's output from before its first segment to
// after its last, so a link can send them in one system call.
func TestFlushHoldsOutput(t *testing.T) {
	h := &holdingHost{fakeHost: newFakeHost(clock.NewManual(epoch), localIP)}
	h.deferOut = true
	h.hook = func(seg *Segment) { h.log = append(h.log, "out") }
	p := NewProtocol(h, Config{})
	defer p.Close()
	e := p.NewEndpoint()
	e.txDefer, e.txHold = true, 3
	e.lock()
	for range 5 {
		seg := p.segPool.Get().(*Segment)
		*seg = Segment{}
		if !e.deferSeg(seg) {
			t.Fatal("segment not queued")
		}
	}
	e.unlock() // the unlocker flushes
	want := []string{"hold 3", "out", "out", "out", "out", "out", "release 3"}
	if !slices.Equal(h.log, want) {
		t.Fatalf("host saw %v, want %v", h.log, want)
	}
}

// A retransmission queued for the flusher and acknowledged before the
// flusher hands it over still points into the send ring: the ACK must
// not let the ring go of its bytes then, or a write copies new bytes
// over them while the host copies the segment (a data race the race
// detector caught over AF_PACKET). The bytes go, and waiting writers
// are woken, when the flusher is done.
func TestDeferredRetransmitAckedKeepsBytes(t *testing.T) {
	s := newScript(t, Config{})
	deferHosts(t, s.h)
	_, c, iss := s.passiveOpen(wire.TCPOptions{HasMSS: true, MSS: 1460})
	if err := c.SetSendBuf(4096); err != nil {
		t.Fatal(err)
	}
	c.lock()
	size := c.sndCap
	c.unlock()
	data := bytes.Repeat([]byte("abcdefg"), size/7+1)[:size]
	if n, err := c.Write(data); n != size || err != nil {
		t.Fatalf("write: %d, %v; want %d", n, err, size)
	}
	if len(c.snd.buf) != size {
		t.Fatalf("ring of %d bytes for a %d-byte buffer: the test needs them equal", len(c.snd.buf), size)
	}
	s.out()

	// The RTO retransmits the first segment; its flusher stops in the
	// host until released.
	entered, release := make(chan []byte, 1), make(chan struct{})
	after := make(chan []byte, 1)
	var once sync.Once
	s.h.hook = func(seg *Segment) {
		if seg.Header.Seq != iss+1 || len(seg.Payload[0])+len(seg.Payload[1]) == 0 {
			return
		}
		once.Do(func() {
			entered <- append(append([]byte(nil), seg.Payload[0]...), seg.Payload[1]...)
			<-release
			after <- append(append([]byte(nil), seg.Payload[0]...), seg.Payload[1]...)
		})
	}
	fired := make(chan struct{})
	go func() { s.clk.Advance(3 * time.Second); close(fired) }()
	var before []byte
	select {
	case before = <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no retransmission")
	}
	if !bytes.Equal(before, data[:len(before)]) {
		t.Fatal("the retransmission does not carry the first bytes")
	}
	// The peer acknowledges 1000 bytes of it meanwhile, and the
	// application writes what room that would free: at the ring's
	// start, where the retransmission's bytes are.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 1000, win: 65535})
	n, err := c.Write(bytes.Repeat([]byte("X"), 1000))
	t.Logf("write during the flush: %d, %v", n, err)
	if n != 0 || !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("write during the flush took %d bytes (%v): the acknowledged bytes a queued segment points to were freed", n, err)
	}
	close(release)
	if got := <-after; !bytes.Equal(got, before) {
		t.Fatalf("the retransmission's bytes changed while the host copied them: %q, were %q", got[:16], before[:16])
	}
	<-fired
	// Flushed: the acknowledged bytes are let go, and the room is there.
	c.lock()
	sb, una := c.sbSeq, c.sndUna
	c.unlock()
	if sb != una || una != iss+1+1000 {
		t.Fatalf("after the flush the ring starts at %d, SND.UNA %d; want both %d", sb-iss, una-iss, 1001)
	}
	if st := s.p.Stats(); st.SndReleaseHeld != 1 {
		t.Fatalf("SndReleaseHeld %d, want 1", st.SndReleaseHeld)
	}
	if n, err := c.Write(bytes.Repeat([]byte("X"), 1000)); n != 1000 || err != nil {
		t.Fatalf("write after the flush: %d, %v; want 1000", n, err)
	}
}

// An endpoint with nothing queued takes no flush queue's lock: not for
// an ACK that frees its send ring, nor on unlocking. Endpoints hash to
// queues, so the queue may be busy with another connection's flush;
// here the test holds its lock throughout.
func TestIdleEndpointSkipsFlushQueueLock(t *testing.T) {
	s := newScript(t, Config{})
	deferHosts(t, s.h)
	_, c, iss := s.passiveOpen(wire.TCPOptions{HasMSS: true, MSS: 1460})
	if n, err := c.Write(bytes.Repeat([]byte("a"), 1000)); n != 1000 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	s.out()
	q := c.flushQ()
	q.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 1000, win: 65535})
		c.lock()
		c.unlock()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Log(string(buf[:runtime.Stack(buf, true)]))
		q.mu.Unlock()
		<-done
		t.Fatal("the ACK or the unlock waited for the flush queue's lock with nothing of the endpoint queued")
	}
	q.mu.Unlock()
	c.lock()
	sb, una := c.sbSeq, c.sndUna
	c.unlock()
	if sb != iss+1+1000 || una != sb {
		t.Fatalf("after the ACK the ring starts at %d, SND.UNA %d; want both 1001", sb-iss, una-iss)
	}
}
