package tcp

import (
	"container/heap"
	"crypto/sha256"
	"errors"
	"hash"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
)

// pkt is a segment on the simulated wire.
type pkt struct {
	at       time.Duration
	n        uint64
	dst      *Protocol
	src, dip netip.Addr
	b        []byte
}

type pktHeap []*pkt

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].n < h[j].n
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(*pkt)) }
func (h *pktHeap) Pop() any {
	o := *h
	x := o[len(o)-1]
	*h = o[:len(o)-1]
	return x
}

// pairNet joins two Protocols through an impaired in-memory wire, driven
// by one goroutine on a manual clock.
type pairNet struct {
	mu               sync.Mutex // timers of a real clock send from other goroutines
	clk              *clock.Manual
	real             clock.Clock // if set, used instead of clk
	a, b             *Protocol
	ha, hb           *fakeHost
	q                pktHeap
	n                uint64
	rng              *rand.Rand
	loss, reord, dup float64
	delay            time.Duration
	free             []*pkt
	delivered        uint64
	batches          map[*Protocol]*Batch // deliver in batches (flush only)
}

var (
	ipA = netip.MustParseAddr("10.0.0.1")
	ipB = netip.MustParseAddr("10.0.0.2")
)

func newPair(seed uint64, cfg Config) *pairNet {
	return newPairClock(seed, cfg, nil)
}

// newPairClock uses real (a real clock) when not nil.
func newPairClock(seed uint64, cfg Config, real clock.Clock) *pairNet {
	clk := clock.NewManual(epoch)
	n := &pairNet{clk: clk, real: real, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	var hc clock.Clock = clk
	if real != nil {
		hc = real
	}
	n.ha = newFakeHost(hc, ipA)
	n.hb = newFakeHost(hc, ipB)
	ca, cb := cfg, cfg
	ca.Seed, cb.Seed = []byte{1, byte(seed)}, []byte{2, byte(seed)}
	n.a = NewProtocol(n.ha, ca)
	n.b = NewProtocol(n.hb, cb)
	n.ha.hook = func(s *Segment) { n.send(n.b, s) }
	n.hb.hook = func(s *Segment) { n.send(n.a, s) }
	return n
}

func (n *pairNet) now() time.Duration {
	if n.real != nil {
		return n.real.Now().Sub(epoch)
	}
	return n.clk.Now().Sub(epoch)
}

func (n *pairNet) send(dst *Protocol, s *Segment) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.loss > 0 && n.rng.Float64() < n.loss {
		return
	}
	copies := 1
	if n.dup > 0 && n.rng.Float64() < n.dup {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		var p *pkt
		if k := len(n.free); k > 0 {
			p = n.free[k-1]
			n.free = n.free[:k-1]
		} else {
			p = &pkt{}
		}
		hl := s.Header.Len()
		l := hl + len(s.Payload[0]) + len(s.Payload[1])
		if cap(p.b) < l {
			p.b = make([]byte, l, max(l, 2048))
		}
		p.b = p.b[:l]
		s.Header.Put(p.b)
		copy(p.b[hl+copy(p.b[hl:], s.Payload[0]):], s.Payload[1])
		p.dst, p.src, p.dip = dst, s.Local.Addr(), s.Remote.Addr()
		p.at = n.now() + n.delay
		if n.reord > 0 && n.rng.Float64() < n.reord {
			p.at += time.Duration(n.rng.IntN(3000)+100) * time.Microsecond
		}
		n.n++
		p.n = n.n
		heap.Push(&n.q, p)
	}
}

// step delivers due packets or advances time; it reports false when
// nothing at all is pending (no packets; timers may still be).
func (n *pairNet) step() {
	now := n.now()
	n.mu.Lock()
	if len(n.q) > 0 && n.q[0].at <= now {
		p := heap.Pop(&n.q).(*pkt)
		n.delivered++
		n.mu.Unlock()
		p.dst.HandleSegment(p.src, p.dip, 0, p.b)
		n.mu.Lock()
		n.free = append(n.free, p)
		n.mu.Unlock()
		return
	}
	d := time.Millisecond
	if len(n.q) > 0 {
		d = min(d, n.q[0].at-now)
	}
	n.mu.Unlock()
	if n.real != nil {
		return
	}
	n.clk.Advance(d)
}

// run steps until cond holds or virtual time passes limit.
func (n *pairNet) run(limit time.Duration, cond func() bool) bool {
	end := n.now() + limit
	for !cond() {
		if n.now() > end {
			return false
		}
		n.step()
	}
	return true
}

// connect makes an established pair: client on A, server on B.
func (n *pairNet) connect(t testing.TB) (client, server *Endpoint) {
	t.Helper()
	l := n.b.NewEndpoint()
	if err := l.Bind(netip.AddrPortFrom(ipB, 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(128); err != nil {
		t.Fatal(err)
	}
	client = n.a.NewEndpoint()
	if err := client.Connect(netip.AddrPortFrom(ipB, 80)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	ok := n.run(5*time.Minute, func() bool {
		if server == nil {
			server, _, _ = l.Accept()
		}
		return server != nil && client.State() == StateEstablished
	})
	if !ok {
		t.Fatalf("handshake did not complete: client %v", client.State())
	}
	l.Close()
	return client, server
}

// stream is a deterministic byte source with a running hash.
type stream struct {
	rng  *rand.Rand
	buf  []byte
	off  int
	left int
	h    hash.Hash
}

func newStream(seed uint64, total int) *stream {
	s := &stream{rng: rand.New(rand.NewPCG(seed, 7)), buf: make([]byte, 64<<10), left: total, h: sha256.New()}
	s.fill()
	return s
}

func (s *stream) fill() {
	for i := 0; i+8 <= len(s.buf); i += 8 {
		v := s.rng.Uint64()
		for j := 0; j < 8; j++ {
			s.buf[i+j] = byte(v >> (8 * j))
		}
	}
	s.off = 0
}

// pump writes what the endpoint takes.
func (s *stream) pump(e *Endpoint) error {
	for s.left > 0 {
		chunk := s.buf[s.off:min(len(s.buf), s.off+s.left)]
		n, err := e.Write(chunk)
		if n > 0 {
			s.h.Write(chunk[:n])
			s.off += n
			s.left -= n
			if s.off == len(s.buf) {
				s.fill()
			}
		}
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return nil
			}
			return err
		}
	}
	return nil
}

// sink reads and hashes.
type sink struct {
	buf []byte
	n   int
	eof bool
	h   hash.Hash
}

func newSink() *sink { return &sink{buf: make([]byte, 64<<10), h: sha256.New()} }

func (k *sink) drain(e *Endpoint) error {
	for {
		n, err := e.Read(k.buf, false)
		if n > 0 {
			k.h.Write(k.buf[:n])
			k.n += n
			continue
		}
		if err == nil {
			k.eof = true
			return nil
		}
		if errors.Is(err, syscall.EAGAIN) {
			return nil
		}
		return err
	}
}

// transfer sends size bytes each way and closes; it checks the hashes.
func transfer(t *testing.T, n *pairNet, size int, limit time.Duration) {
	t.Helper()
	c, s := n.connect(t)
	sc, ss := newStream(1, size), newStream(2, size)
	kc, ks := newSink(), newSink()
	closedC, closedS := false, false
	var ferr error
	ok := n.run(limit, func() bool {
		for _, x := range []struct {
			src  *stream
			e    *Endpoint
			done *bool
		}{{sc, c, &closedC}, {ss, s, &closedS}} {
			if err := x.src.pump(x.e); err != nil && ferr == nil {
				ferr = err
			}
			if x.src.left == 0 && !*x.done {
				*x.done = true
				x.e.Shutdown(ShutWr)
			}
		}
		if err := ks.drain(s); err != nil && ferr == nil {
			ferr = err
		}
		if err := kc.drain(c); err != nil && ferr == nil {
			ferr = err
		}
		return ferr != nil || (ks.eof && kc.eof)
	})
	if ferr != nil {
		t.Fatalf("error: %v (client %+v)", ferr, c.Info())
	}
	if !ok {
		t.Fatalf("timeout at %v: A->B %d/%d, B->A %d/%d; client %+v server %+v", n.now(), ks.n, size, kc.n, size, c.Info(), s.Info())
	}
	if ks.n != size || kc.n != size || string(ks.h.Sum(nil)) != string(sc.h.Sum(nil)) || string(kc.h.Sum(nil)) != string(ss.h.Sum(nil)) {
		t.Fatalf("data mismatch: %d/%d bytes", ks.n, kc.n)
	}
	c.Close()
	s.Close()
	// Both ends finish: the client (closing first... both closed at once)
	// goes through TIME_WAIT or CLOSED.
	if !n.run(5*time.Minute, func() bool {
		cs, ss := c.State(), s.State()
		return (cs == StateClosed || cs == StateTimeWait) && (ss == StateClosed || ss == StateTimeWait)
	}) {
		t.Fatalf("close did not finish: %v %v", c.State(), s.State())
	}
}

// TestTransferClean: no retransmission on a clean link, with segments
// sent at once and with writers flushing after the lock (txdefer.go),
// where one sent ahead of its turn would show as a retransmission.
func TestTransferClean(t *testing.T) {
	for _, deferOut := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "deferred"}[deferOut], func(t *testing.T) {
			n := newPair(1, Config{})
			if deferOut {
				deferHosts(t, n.ha, n.hb)
			}
			n.delay = 100 * time.Microsecond
			transfer(t, n, 4<<20, time.Minute)
			if st := n.a.Stats(); st.RetransSegs != 0 {
				t.Fatalf("retransmissions on a clean link: %+v", st)
			}
		})
	}
}

func TestTransferNewReno(t *testing.T) {
	n := newPair(3, Config{CongestionControl: "newreno"})
	n.delay = time.Millisecond
	n.loss = 0.02
	transfer(t, n, 2<<20, 10*time.Minute)
	if st := n.a.Stats(); st.FastRetrans == 0 {
		t.Fatalf("no fast retransmit with 2%% loss: %+v", st)
	}
}

func TestTorture(t *testing.T) {
	size := 100 << 20
	seeds := 20
	if testing.Short() || raceEnabled {
		size, seeds = 1<<20, 4
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run("", func(t *testing.T) {
			cfg := Config{}
			if seed%2 == 0 {
				cfg.CongestionControl = "newreno"
			}
			n := newPair(seed, cfg)
			n.delay = time.Millisecond
			n.loss, n.reord, n.dup = 0.05, 0.03, 0.01
			transfer(t, n, size, time.Duration(size>>10)*time.Millisecond+10*time.Minute)
		})
	}
}

func TestBatchAcks(t *testing.T) {
	count := func(batch bool) (uint64, uint64) {
		n := newPair(6, Config{})
		if batch {
			n.useBatches()
		}
		c, s := n.connect(t)
		src, dst := newStream(1, 4<<20), newSink()
		before := n.b.Stats().OutSegs
		for dst.n < 4<<20 {
			src.pump(c)
			if n.flush() == 0 {
				n.clk.Advance(time.Millisecond)
			}
			dst.drain(s)
		}
		if string(dst.h.Sum(nil)) != string(src.h.Sum(nil)) {
			t.Fatal("data mismatch")
		}
		return n.b.Stats().OutSegs - before, n.a.Stats().OutSegs
	}
	plain, _ := count(false)
	batched, _ := count(true)
	t.Logf("ACK segments for 4 MiB: %d per segment pair, %d batched", plain, batched)
	if batched*2 > plain {
		t.Fatalf("batching did not reduce ACKs: %d vs %d", batched, plain)
	}
}

func TestAutoTuning(t *testing.T) {
	n := newPair(4, Config{})
	n.delay = 5 * time.Millisecond
	c, s := n.connect(t)
	src, dst := newStream(1, 16<<20), newSink()
	ok := n.run(10*time.Minute, func() bool {
		src.pump(c)
		dst.drain(s)
		return dst.n == 16<<20
	})
	if !ok {
		t.Fatal("transfer did not finish")
	}
	ci, si := c.Info(), s.Info()
	if si.RcvSpace <= 128<<10 || si.RcvSpace > 6<<20 {
		t.Fatalf("receive buffer not tuned: %d", si.RcvSpace)
	}
	if ci.SndBuf <= 16<<10 || ci.SndBuf > 4<<20 {
		t.Fatalf("send buffer not tuned: %d", ci.SndBuf)
	}
	if ci.RTT < 10*time.Millisecond || ci.RTT > 20*time.Millisecond {
		t.Fatalf("RTT %v", ci.RTT)
	}
	t.Logf("rcv buffer %d, snd buffer %d, cwnd %d, %v virtual", si.RcvSpace, ci.SndBuf, ci.SndCwnd, n.now())
}

func TestConnectReusesTimeWait(t *testing.T) {
	n := newPair(5, Config{})
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(8)
	src := netip.AddrPortFrom(ipA, 5000)
	for i := 0; i < 3; i++ {
		c := n.a.NewEndpoint()
		c.SetReuseAddr(true)
		if err := c.Bind(src); err != nil {
			t.Fatalf("round %d bind: %v", i, err)
		}
		if err := c.Connect(netip.AddrPortFrom(ipB, 80)); !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatalf("round %d connect: %v", i, err)
		}
		var s *Endpoint
		if !n.run(time.Minute, func() bool {
			if s == nil {
				s, _, _ = l.Accept()
			}
			return s != nil && c.State() == StateEstablished
		}) {
			t.Fatalf("round %d: no connection", i)
		}
		c.Close() // the client closes first: TIME_WAIT here
		n.run(time.Second, func() bool { return s.State() == StateCloseWait })
		s.Close()
		if !n.run(time.Minute, func() bool { return inTimeWait(c) && s.State() == StateClosed }) {
			t.Fatalf("round %d: states %v %v", i, c.State(), s.State())
		}
		n.clk.Advance(time.Second)
	}
	if st := n.a.Stats(); st.TimeWaitReused != 2 {
		t.Fatalf("TimeWaitReused %d", st.TimeWaitReused)
	}
}

func TestNoLeaks(t *testing.T) {
	n := newPair(8, Config{})
	n.delay = 50 * time.Microsecond
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(64)
	for i := 0; i < 50; i++ {
		c := n.a.NewEndpoint()
		c.Connect(netip.AddrPortFrom(ipB, 80))
		var s *Endpoint
		n.run(time.Second, func() bool {
			if s == nil {
				s, _, _ = l.Accept()
			}
			return s != nil && c.State() == StateEstablished
		})
		if s == nil {
			t.Fatal("no connection")
		}
		c.Write([]byte("ping"))
		n.run(time.Second, func() bool { return s.Readiness(waiter.EventIn) != 0 })
		readAll(s)
		switch i % 3 {
		case 0: // client closes first
			c.Close()
			n.run(time.Second, func() bool { return s.State() == StateCloseWait })
			s.Close()
		case 1: // server closes first
			s.Close()
			n.run(time.Second, func() bool { return c.State() == StateCloseWait })
			c.Close()
		default: // abort
			c.SetLinger(true, 0)
			c.Close()
			s.Close()
		}
	}
	n.run(3*time.Minute, func() bool { return false })
	l.Close()
	for _, p := range []*Protocol{n.a, n.b} {
		p.mu.RLock()
		nc, np, nl := p.conns.len(), len(p.ports), len(p.listeners)
		p.mu.RUnlock()
		if nc != 0 || np != 0 || nl != 0 {
			t.Fatalf("left behind: %d conns, %d ports, %d listeners; table %v", nc, np, nl, p.Table())
		}
		if st := p.Stats(); st.CurrEstab != 0 {
			t.Fatalf("CurrEstab %d", st.CurrEstab)
		}
	}
	if k := n.clk.Pending(); k != 0 {
		t.Fatalf("%d timers still pending", k)
	}
}
