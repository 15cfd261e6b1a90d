package tcp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// fakeLender lends every payload; each loan counts its release.
type fakeLender struct {
	lent, released int
	refuse         bool
}

type fakeLoan struct {
	l    *fakeLender
	done bool
	t    *testing.T
}

func (f *fakeLoan) Release() {
	if f.done {
		f.t.Fatal("loan released twice")
	}
	f.done = true
	f.l.released++
}

func (l *fakeLender) lender(t *testing.T) Lender { return lenderFunc{l, t} }

type lenderFunc struct {
	l *fakeLender
	t *testing.T
}

func (f lenderFunc) Lend(p []byte) Loan {
	if f.l.refuse {
		return nil
	}
	f.l.lent++
	return &fakeLoan{l: f.l, t: f.t}
}

// pattern is n bytes of the stream from offset from.
func pattern(from, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((from + i) * 7 / 3)
	}
	return b
}

// lendScript is a connection receiving through a batch whose link lends
// its buffers.
func lendScript(t *testing.T, cfg Config) (*script, *Endpoint, uint32, *Batch, *fakeLender) {
	s := newScript(t, cfg)
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	fl := &fakeLender{}
	b := s.p.NewBatch()
	b.SetLender(fl.lender(t))
	return s, c, iss, b, fl
}

// TestLentSuperSegments: in-order super-segments are kept in the link's
// buffers, read back in order (partial reads, peeks, across buffers),
// and every buffer goes back once read, with its memory uncharged.
func TestLentSuperSegments(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	mem0 := s.p.Stats().MemBytes
	seq, off := uint32(1001), 0
	for range 3 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, superSeg)})
		seq += superSeg
		off += superSeg
	}
	b.Flush()
	if fl.lent != 3 || s.p.Stats().LentSegs != 3 {
		t.Fatalf("lent %d (LentSegs %d), want 3", fl.lent, s.p.Stats().LentSegs)
	}
	if m := s.p.Stats().MemBytes - mem0; m != 3*lentBufBytes {
		t.Fatalf("charged %d, want %d", m, 3*lentBufBytes)
	}
	peek := make([]byte, superSeg+10)
	if n, _ := c.Read(peek, true); n != len(peek) || !bytes.Equal(peek, pattern(0, len(peek))) {
		t.Fatalf("peek across buffers: %d bytes, content ok %v", n, bytes.Equal(peek, pattern(0, len(peek))))
	}
	got := make([]byte, 0, off)
	buf := make([]byte, 1000)
	for len(got) < off {
		n, err := c.Read(buf, false)
		if n == 0 || err != nil {
			t.Fatalf("read after %d: %d, %v", len(got), n, err)
		}
		got = append(got, buf[:n]...)
		if want := len(got) / superSeg; fl.released != want {
			t.Fatalf("after %d bytes read, %d buffers given back, want %d", len(got), fl.released, want)
		}
	}
	if !bytes.Equal(got, pattern(0, off)) {
		t.Fatal("bytes read differ from bytes sent")
	}
	if s.p.Stats().MemBytes != mem0 && s.p.Stats().MemBytes-mem0 > 64<<10 {
		t.Fatalf("memory still charged: %d", s.p.Stats().MemBytes-mem0)
	}
	// The queue is empty: lending starts again.
	s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, lendMin)})
	b.Flush()
	if fl.lent != 4 {
		t.Fatalf("lent %d after the queue emptied, want 4", fl.lent)
	}
	c.Close()
	if fl.released != 4 {
		t.Fatalf("close gave back %d of 4 buffers", fl.released)
	}
}

// TestLentFlatten: a segment that cannot be kept (out of order, urgent)
// after kept ones moves the kept bytes into the ring first, so the
// stream stays in order; the buffers go back at once.
func TestLentFlatten(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(s *script, b *Batch, iss, seq uint32, off int) (uint32, int)
	}{
		{"out_of_order", func(s *script, b *Batch, iss, seq uint32, off int) (uint32, int) {
			s.injectBatch(b, seg{flags: fA, seq: seq + 1000, ack: iss + 1, win: 65535, data: pattern(off+1000, lendMin)})
			s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, 1000)})
			return seq + 1000 + lendMin, off + 1000 + lendMin
		}},
		{"urgent", func(s *script, b *Batch, iss, seq uint32, off int) (uint32, int) {
			x := seg{flags: fA | wire.TCPFlagURG, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, lendMin), urg: 10}
			h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: x.seq, Ack: x.ack, Flags: x.flags, Window: x.win, Urgent: x.urg}
			buf := make([]byte, h.Len()+len(x.data))
			copy(buf[h.Put(buf):], x.data)
			b.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, buf)
			return seq + lendMin, off + lendMin
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
			c.SetOOBInline(true)
			seq, off := uint32(1001), 0
			for range 2 {
				s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, superSeg)})
				seq += superSeg
				off += superSeg
			}
			b.Flush() // the ACK opens the window for what follows
			seq, off = tc.next(s, b, iss, seq, off)
			b.Flush()
			if fl.released != 2 {
				t.Fatalf("%d of 2 kept buffers given back when the stream went back to the ring", fl.released)
			}
			got := make([]byte, 0, off)
			buf := make([]byte, 1<<20)
			for len(got) < off {
				n, err := c.Read(buf, false)
				if n == 0 || err != nil {
					t.Fatalf("read after %d of %d: %d, %v", len(got), off, n, err)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, pattern(0, off)) {
				t.Fatal("bytes read differ from bytes sent")
			}
		})
	}
}

// TestLentQueueFull: a connection keeps at most maxLent buffers; the
// next payload is copied (LentQueueFull), the stream still in order.
func TestLentQueueFull(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 16 << 20, MaxRecvBuf: 16 << 20})
	seq, off := uint32(1001), 0
	for range maxLent + 1 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, lendMin)})
		seq += lendMin
		off += lendMin
		b.Flush()
	}
	if fl.lent != maxLent || s.p.Stats().LentQueueFull != 1 {
		t.Fatalf("lent %d (want %d), LentQueueFull %d (want 1)", fl.lent, maxLent, s.p.Stats().LentQueueFull)
	}
	if fl.released != maxLent {
		t.Fatalf("%d buffers given back when the stream went to the ring, want %d", fl.released, maxLent)
	}
	got := readAll(c)
	if !bytes.Equal(got, pattern(0, off)) {
		t.Fatalf("read %d bytes of %d, equal %v", len(got), off, bytes.Equal(got, pattern(0, off)))
	}
}

// TestLendNotOffered: without a lender, or when the lender refuses,
// payloads are copied as before.
func TestLendNotOffered(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	fl.refuse = true
	s.injectBatch(b, seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: pattern(0, superSeg)})
	b.Flush()
	if s.p.Stats().LentSegs != 0 {
		t.Fatal("a refused loan counted as kept")
	}
	if got := readAll(c); !bytes.Equal(got, pattern(0, superSeg)) {
		t.Fatal("copied bytes differ")
	}
}

// TestLentAfterRing: buffers are kept after bytes already in the ring
// (a small segment came first), read back in order across the two; a
// later small segment is copied behind them.
func TestLentAfterRing(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	seq, off := uint32(1001), 0
	in := func(n int) {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, n)})
		seq += uint32(n)
		off += n
		b.Flush()
	}
	in(500)      // ring
	in(superSeg) // kept after it
	in(superSeg) // kept
	if fl.lent != 2 {
		t.Fatalf("lent %d, want 2 (after bytes in the ring)", fl.lent)
	}
	// A read across the ring and the first buffer.
	buf := make([]byte, 700)
	if n, _ := c.Read(buf, false); n != 700 || !bytes.Equal(buf, pattern(0, 700)) {
		t.Fatalf("read across ring and buffer: %d bytes, equal %v", n, bytes.Equal(buf[:n], pattern(0, n)))
	}
	in(300) // small: copied behind the kept buffers, which stay
	if fl.released != 0 {
		t.Fatalf("%d buffers given back for a small segment", fl.released)
	}
	in(superSeg) // kept, behind the copy
	if fl.lent != 3 {
		t.Fatalf("lent %d, want 3", fl.lent)
	}
	got := append([]byte(nil), pattern(0, 700)...)
	got = append(got, readAll(c)...)
	if !bytes.Equal(got, pattern(0, off)) {
		t.Fatalf("read %d bytes of %d, equal %v", len(got), off, bytes.Equal(got, pattern(0, min(off, len(got)))))
	}
	if fl.released != 3 {
		t.Fatalf("%d of 3 buffers given back after reading all", fl.released)
	}
}

// TestLentRandom: random mixes of kept and copied segments, out-of-order
// arrivals and reads of random sizes (peeks too) give back the stream
// in order, and every lent buffer once.
func TestLentRandom(t *testing.T) {
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 8 << 20, MaxRecvBuf: 8 << 20})
		seq, off := uint32(1001), 0
		var got []byte
		buf := make([]byte, 200<<10)
		for range 200 {
			switch k := r.IntN(10); {
			case k < 5: // in order, large or small
				n := lendMin + r.IntN(superSeg-lendMin)
				if r.IntN(3) == 0 {
					n = 1 + r.IntN(3000)
				}
				s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, n)})
				seq += uint32(n)
				off += n
			case k < 6: // a hole filled later in the same batch
				n1, n2 := 1+r.IntN(2000), lendMin+r.IntN(20000)
				s.injectBatch(b, seg{flags: fA, seq: seq + uint32(n1), ack: iss + 1, win: 65535, data: pattern(off+n1, n2)})
				s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, n1)})
				seq += uint32(n1 + n2)
				off += n1 + n2
			case k < 9: // read some
				peek := r.IntN(4) == 0
				n, _ := c.Read(buf[:1+r.IntN(len(buf)-1)], peek)
				if n > 0 && !peek {
					got = append(got, buf[:n]...)
				} else if n > 0 {
					// peeked: the same bytes must come again
					p := append([]byte(nil), buf[:n]...)
					m, _ := c.Read(buf[:n], false)
					if m != n || !bytes.Equal(buf[:n], p) {
						t.Fatalf("seed %d: read after peek differs", seed)
					}
					got = append(got, buf[:n]...)
				}
			default:
				b.Flush()
				s.out()
			}
		}
		b.Flush()
		got = append(got, readAll(c)...)
		if !bytes.Equal(got, pattern(0, off)) {
			t.Fatalf("seed %d: read %d bytes of %d, equal %v", seed, len(got), off, bytes.Equal(got, pattern(0, min(off, len(got)))))
		}
		if fl.released != fl.lent {
			t.Fatalf("seed %d: %d buffers lent, %d given back", seed, fl.lent, fl.released)
		}
		c.Close()
	}
}

// staticLender lends without allocating: one loan value for all.
type staticLender struct{ loan *countLoan }

type countLoan struct{ n int }

func (l *countLoan) Release()             { l.n++ }
func (s staticLender) Lend(p []byte) Loan { return s.loan }

// TestLentNoAlloc: keeping payloads in lent buffers and reading them
// back allocates nothing once the connection's queue exists.
func TestLentNoAlloc(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4 << 20})
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	b := s.p.NewBatch()
	cl := &countLoan{}
	b.SetLender(staticLender{cl})
	s.h.hook = func(*Segment) {} // ACKs are not kept
	const segs = 8
	raw := make([][]byte, segs)
	data := make([]byte, superSeg)
	seq := uint32(1001)
	build := func() {
		for i := range raw {
			h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: seq, Ack: iss + 1, Flags: fA, Window: 65535}
			if raw[i] == nil {
				raw[i] = make([]byte, h.Len()+len(data))
			}
			copy(raw[i][h.Put(raw[i]):], data)
			seq += superSeg
		}
	}
	rb := make([]byte, 1<<20)
	round := func() {
		build()
		for _, r := range raw {
			b.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, r)
		}
		b.Flush()
		for {
			n, _ := c.Read(rb, false)
			if n == 0 {
				break
			}
		}
	}
	round()
	if a := testing.AllocsPerRun(20, round); a != 0 {
		t.Fatalf("%.1f allocations per %d lent segments", a, segs)
	}
	// AllocsPerRun runs round once more than asked, to warm up.
	if cl.n != 22*segs || s.p.Stats().LentSegs != 22*segs {
		t.Fatalf("released %d, lent %d, want %d", cl.n, s.p.Stats().LentSegs, 22*segs)
	}
}

// TestLentSmallBehind: small in-order segments after kept buffers are
// copied behind them into TCP's own buffers, consecutive ones into the
// same buffer, instead of moving everything into the ring; memory is
// charged for the buffers and uncharged when they are read.
func TestLentSmallBehind(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	mem0 := s.p.Stats().MemBytes
	seq, off := uint32(1001), 0
	in := func(n int) {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, n)})
		seq += uint32(n)
		off += n
		b.Flush()
	}
	in(superSeg)
	for range 10 {
		in(3000) // 30,000 bytes: one copy buffer
	}
	in(5000) // does not fit: a second one
	if fl.released != 0 {
		t.Fatalf("%d kept buffers given back for small segments", fl.released)
	}
	if m := s.p.Stats().MemBytes - mem0; m != lentBufBytes+2*copyBufLen {
		t.Fatalf("charged %d, want %d", m, lentBufBytes+2*copyBufLen)
	}
	if got := readAll(c); !bytes.Equal(got, pattern(0, off)) {
		t.Fatalf("read %d of %d bytes, equal %v", len(got), off, bytes.Equal(got, pattern(0, min(off, len(got)))))
	}
	if fl.released != 1 || s.p.Stats().MemBytes != mem0 {
		t.Fatalf("after reading: %d of 1 kept buffers back, %d bytes still charged", fl.released, s.p.Stats().MemBytes-mem0)
	}
}

// out is how many loans are not given back.
func (l *fakeLender) out() int { return l.lent - l.released }

// lentQueued reads e's queue of lent buffers without lock (which would
// make an epBusy): nil when e holds no epBusy.
func lentQueued(e *Endpoint) *lentQueue {
	e.mu.m.Lock()
	defer e.mu.m.Unlock()
	if e.epBusy == nil {
		return nil
	}
	return e.lentQ
}

// TestLentLoansReturned: however a connection holding unread lent
// buffers ends (the application reads them, closes, aborts with
// SO_LINGER 0, the peer resets, the listener closes before accept),
// every loan goes back, with its memory, and the queue is dropped.
func TestLentLoansReturned(t *testing.T) {
	// fill queues three lent buffers and a copied small payload.
	fill := func(s *script, b *Batch, iss uint32, fl *fakeLender) uint32 {
		t.Helper()
		seq, off := uint32(1001), 0
		for _, n := range []int{superSeg, superSeg, 700, superSeg} {
			s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, n)})
			seq += uint32(n)
			off += n
		}
		b.Flush()
		if fl.lent != 3 || fl.out() != 3 {
			t.Fatalf("lent %d, %d out; want 3 and 3", fl.lent, fl.out())
		}
		return seq
	}
	for _, tc := range []struct {
		name string
		end  func(s *script, c *Endpoint, seq uint32)
	}{
		{"read", func(s *script, c *Endpoint, seq uint32) {
			if got := readAll(c); !bytes.Equal(got, pattern(0, 3*superSeg+700)) {
				t.Fatalf("read %d bytes, equal %v", len(got), bytes.Equal(got, pattern(0, min(len(got), 3*superSeg+700))))
			}
		}},
		{"close", func(s *script, c *Endpoint, seq uint32) {
			c.Close() // unread data: RST (Linux)
		}},
		{"linger0_after_partial_read", func(s *script, c *Endpoint, seq uint32) {
			buf := make([]byte, superSeg+100) // the first buffer and part of the second
			if n, _ := c.Read(buf, false); n != len(buf) {
				t.Fatalf("read %d", n)
			}
			if err := c.SetLinger(true, 0); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}},
		{"rst_then_read", func(s *script, c *Endpoint, seq uint32) {
			s.inject(seg{flags: fR, seq: seq})
			if c.State() != StateClosed {
				t.Fatalf("state %v after RST", c.State())
			}
			// Queued bytes stay readable after a reset (as in Linux).
			if got := readAll(c); !bytes.Equal(got, pattern(0, 3*superSeg+700)) {
				t.Fatalf("read %d bytes after RST", len(got))
			}
		}},
		{"rst_then_close", func(s *script, c *Endpoint, seq uint32) {
			s.inject(seg{flags: fR, seq: seq})
			c.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
			mem0 := s.p.Stats().MemBytes
			seq := fill(s, b, iss, fl)
			if lentQueued(c) == nil {
				t.Fatal("lent bytes unread, but no queue")
			}
			tc.end(s, c, seq)
			if fl.out() != 0 {
				t.Fatalf("%d of %d loans not given back", fl.out(), fl.lent)
			}
			if lentQueued(c) != nil {
				t.Fatal("queue kept after it drained")
			}
			if m := s.p.Stats().MemBytes; m > mem0 {
				t.Fatalf("%d bytes still charged (%d before the data)", m, mem0)
			}
		})
	}
	t.Run("listener_closed_before_accept", func(t *testing.T) {
		s := newScript(t, Config{RecvBuf: 4 << 20})
		l := s.p.NewEndpoint()
		if err := l.Bind(s.local); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(4); err != nil {
			t.Fatal(err)
		}
		s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(1)})
		iss := s.expectOne("SYN-ACK").h.Seq
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
		fl := &fakeLender{}
		b := s.p.NewBatch()
		b.SetLender(fl.lender(t))
		fill(s, b, iss, fl) // queued on the child in the accept queue
		l.Close()
		if fl.out() != 0 {
			t.Fatalf("%d of %d loans not given back", fl.out(), fl.lent)
		}
	})
}

// TestLentBusyRelease: an endpoint holding unread lent buffers keeps its
// epBusy however long it stays idle (the queue hangs off it), and the
// data is read intact later; once a read drains the queue, the idle
// connection holds no epBusy.
func TestLentBusyRelease(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	seq, off := uint32(1001), 0
	for range 2 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(off, superSeg)})
		seq += superSeg
		off += superSeg
	}
	b.Flush()
	s.clk.Advance(time.Second) // delayed ACK and every other timer
	s.out()
	if !holdsBusy(c) || lentQueued(c) == nil {
		t.Fatalf("idle with unread lent bytes: epBusy held %v, queue %v", holdsBusy(c), lentQueued(c) != nil)
	}
	// A first read starts the receive auto-tuning's round; the second,
	// a round later, ends it, so no bytes read this round remain counted
	// (epBusy.copied) and the connection can go idle.
	buf := make([]byte, 2*superSeg)
	n1, _ := c.Read(buf[:1000], false)
	s.clk.Advance(time.Second)
	n2, _ := c.Read(buf[n1:], false)
	if n1+n2 != off || !bytes.Equal(buf[:off], pattern(0, off)) {
		t.Fatalf("read %d+%d of %d bytes, equal %v", n1, n2, off, bytes.Equal(buf[:n1+n2], pattern(0, n1+n2)))
	}
	if fl.out() != 0 {
		t.Fatalf("%d loans out after reading everything", fl.out())
	}
	s.clk.Advance(time.Second)
	s.out()
	if holdsBusy(c) {
		c.mu.m.Lock()
		t.Logf("epBusy: %+v", c.epBusy.epBusyVals)
		c.mu.m.Unlock()
		t.Fatal("idle connection with its lent queue drained still holds epBusy")
	}
}
