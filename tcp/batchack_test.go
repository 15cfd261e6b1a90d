package tcp

import (
	"testing"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// injectBatch is inject through a Batch (a link's receive batch).
func (s *script) injectBatch(b *Batch, x seg) {
	s.t.Helper()
	h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: x.seq, Ack: x.ack, Flags: x.flags, Window: x.win, Options: x.opts}
	buf := make([]byte, h.Len()+len(x.data))
	copy(buf[h.Put(buf):], x.data)
	b.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, buf)
}

// superSeg is what a kernel's TSO/GRO hands over as one segment: 45
// full segments' worth of payload.
const superSeg = 45 * 1460

// TestBatchAckSuperSegments: in-order super-segments of one receive
// batch are acknowledged once, at the end of the batch, while they stay
// under a quarter of the receive buffer; counting full-sized segments
// alone (16) would acknowledge every one of them.
func TestBatchAckSuperSegments(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4 << 20})
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	b := s.p.NewBatch()
	seq := uint32(1001)
	for range 4 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
		seq += superSeg
	}
	s.expectNone("within the batch")
	b.Flush()
	check(t, "end of batch", s.expectOne("one ACK"), fA, iss+1, seq, 0)
	if got := len(readAll(c)); got != 4*superSeg {
		t.Fatalf("read %d, want %d", got, 4*superSeg)
	}
}

// TestBatchAckLimit: a batch leaves at most a quarter of the receive
// buffer unacknowledged; past it the ACK goes out at once.
func TestBatchAckLimit(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 1 << 20})
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	b := s.p.NewBatch()
	seq := uint32(1001)
	// 1 MiB / 4 = 262,144 bytes: the fourth super-segment reaches it.
	for range 3 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
		seq += superSeg
	}
	s.expectNone("under the limit")
	s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
	seq += superSeg
	check(t, "at the limit", s.expectOne("ACK"), fA, iss+1, seq, 0)
	s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
	seq += superSeg
	s.expectNone("after the limit's ACK")
	b.Flush()
	check(t, "end of batch", s.expectOne("ACK"), fA, iss+1, seq, 0)
	// Out-of-order data is acknowledged at the end of the batch, not
	// left to the delayed ACK.
	s.injectBatch(b, seg{flags: fA, seq: seq + 1460, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("ooo within the batch")
	b.Flush()
	check(t, "ooo", s.expectOne("dup ACK at the batch's end"), fA, iss+1, seq, 0)
	if got := len(readAll(c)); got != 5*superSeg {
		t.Fatalf("read %d, want %d", got, 5*superSeg)
	}
}

// TestBatchWakesReaderOnce: the reader of a connection is woken once per
// receive batch, at its end, not at every segment of it; outside a
// batch every segment wakes it.
func TestBatchWakesReaderOnce(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4 << 20})
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	wakes := 0
	en := &waiter.Entry{Fn: func(waiter.EventMask) { wakes++ }}
	c.Waiter().Register(en, waiter.EventIn)
	defer c.Waiter().Unregister(en)
	b := s.p.NewBatch()
	seq := uint32(1001)
	for range 3 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
		seq += superSeg
	}
	if wakes != 0 {
		t.Fatalf("reader woken %d times within the batch", wakes)
	}
	b.Flush()
	if wakes != 1 {
		t.Fatalf("reader woken %d times at the end of the batch, want 1", wakes)
	}
	s.out()
	s.inject(seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	if wakes != 2 {
		t.Fatalf("reader woken %d times after a segment outside a batch, want 2", wakes)
	}
	if got := len(readAll(c)); got != 3*superSeg+100 {
		t.Fatalf("read %d", got)
	}
}

// TestBatchAckReaderWaiting: with a reader waiting, the batch still
// acknowledges at its end instead of leaving the ACK to the read: an
// ACK that waits for the reader's goroutine to be scheduled and to copy
// the data stretches the round trip the sender measures, which held a
// kernel bbr sender back (BENCHMARKS.md, "bbr kernel → sockstack").
// With nobody waiting to read, the ACK goes out at the end of the batch
// as well.
func TestBatchAckReaderWaiting(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4 << 20})
	_, c, iss := s.passiveOpen(peerSynOpts(1))
	en := waiter.NewEntry()
	c.Waiter().Register(en, waiter.EventIn)
	b := s.p.NewBatch()
	seq := uint32(1001)
	for range 3 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
		seq += superSeg
	}
	s.expectNone("inside the batch")
	b.Flush()
	a := s.expectOne("end of the batch, a reader waiting")
	check(t, "end of the batch, a reader waiting", a, fA, iss+1, seq, 0)
	<-en.C
	c.Waiter().Unregister(en)
	buf := make([]byte, 1<<20)
	if n, err := c.Read(buf, false); n != 3*superSeg || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	s.out()

	// Nobody waits to read: the same.
	for range 2 {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, superSeg)})
		seq += superSeg
	}
	s.expectNone("inside the second batch")
	b.Flush()
	a = s.expectOne("end of the second batch")
	check(t, "end of the second batch", a, fA, iss+1, seq, 0)
}

// TestBatchReorderNoDupAck: two segments of one batch that arrive
// swapped (as a veth whose sender runs on two CPUs delivers them) draw
// one cumulative ACK at the batch's end and no duplicate ACK with a SACK
// block, which a sender would count toward a spurious retransmission.
// A hole still open at the batch's end is reported then, with its SACK
// block, and its filling is acknowledged at the end of the next batch.
func TestBatchReorderNoDupAck(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 1 << 20})
	_, c, iss := s.passiveOpen(sackOpts)
	b := s.p.NewBatch()
	s.injectBatch(b, seg{flags: fA, seq: 1001 + 1460, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.injectBatch(b, seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("within the batch")
	b.Flush()
	a := s.expectOne("ACK at the batch's end")
	check(t, "swapped pair", a, fA, iss+1, 1001+2*1460, 0)
	if a.h.Options.NumSACK != 0 {
		t.Fatalf("cumulative ACK carries SACK blocks %v", a.h.Options.SACK[:a.h.Options.NumSACK])
	}
	seq := uint32(1001 + 2*1460)
	s.injectBatch(b, seg{flags: fA, seq: seq + 1460, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	b.Flush()
	a = s.expectOne("dup ACK for a hole left open")
	check(t, "hole", a, fA, iss+1, seq, 0)
	if a.h.Options.NumSACK != 1 || a.h.Options.SACK[0] != (wire.SACKBlock{Left: seq + 1460, Right: seq + 2*1460}) {
		t.Fatalf("dup ACK SACK blocks %d %v", a.h.Options.NumSACK, a.h.Options.SACK)
	}
	s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("the filling segment, within its batch")
	b.Flush()
	check(t, "filled", s.expectOne("ACK of the filled hole"), fA, iss+1, seq+2*1460, 0)
	if got := len(readAll(c)); got != 4*1460 {
		t.Fatalf("read %d, want %d", got, 4*1460)
	}
}

// With SetHold, the ACK a hole still open at a batch's end owes waits
// for the next batch: a segment that fills it there draws one cumulative
// ACK and no duplicate; a hole still open then is reported at that
// batch's end, and Idle sends a held ACK at once.
func TestBatchHoldOOOAck(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 1 << 20})
	_, c, iss := s.passiveOpen(sackOpts)
	b := s.p.NewBatch()
	b.SetHold(true)
	const mss = 1460
	seq := uint32(1001)
	data := func(at uint32) seg {
		return seg{flags: fA, seq: at, ack: iss + 1, win: 65535, data: make([]byte, mss)}
	}
	held := func() uint64 { return s.p.Stats().AcksHeld }

	// Swapped across two batches: no duplicate ACK at all.
	s.injectBatch(b, data(seq+mss))
	b.Flush()
	s.expectNone("a hole at the first batch's end")
	if !b.Holding() || held() != 1 {
		t.Fatalf("holding %v, AcksHeld %d", b.Holding(), held())
	}
	s.injectBatch(b, data(seq))
	b.Flush()
	a := s.expectOne("ACK once the next batch filled the hole")
	check(t, "filled", a, fA, iss+1, seq+2*mss, 0)
	if a.h.Options.NumSACK != 0 {
		t.Fatalf("cumulative ACK carries SACK blocks %v", a.h.Options.SACK[:a.h.Options.NumSACK])
	}
	if b.Holding() {
		t.Fatal("still holding after the hole was filled")
	}
	seq += 2 * mss

	// The next batch brings nothing for this connection: the held ACK
	// goes at its end, with its SACK block.
	s.injectBatch(b, data(seq+mss))
	b.Flush()
	s.expectNone("held")
	b.Flush()
	a = s.expectOne("held ACK at the next batch's end")
	check(t, "hole", a, fA, iss+1, seq, 0)
	if a.h.Options.NumSACK != 1 || a.h.Options.SACK[0] != (wire.SACKBlock{Left: seq + mss, Right: seq + 2*mss}) {
		t.Fatalf("dup ACK SACK blocks %d %v", a.h.Options.NumSACK, a.h.Options.SACK)
	}

	// Held only once: the same hole still open at the next batch's end
	// (more data beyond it) is reported there.
	s.injectBatch(b, data(seq+2*mss))
	b.Flush()
	a = s.expectOne("a hole already reported is not held again")
	check(t, "hole again", a, fA, iss+1, seq, 0)

	// Idle: the link has nothing more to read; the held ACK goes now.
	s.injectBatch(b, data(seq))
	b.Flush()
	check(t, "filled", s.expectOne("cumulative ACK"), fA, iss+1, seq+3*mss, 0)
	seq += 3 * mss
	s.injectBatch(b, data(seq+mss))
	b.Flush()
	s.expectNone("held until idle")
	b.Idle()
	check(t, "idle", s.expectOne("ACK at idle"), fA, iss+1, seq, 0)
	b.Idle()
	s.expectNone("nothing held after idle")
	s.injectBatch(b, data(seq))
	b.Flush()
	check(t, "filled", s.expectOne("cumulative ACK"), fA, iss+1, seq+2*mss, 0)
	if got := len(readAll(c)); got != 7*mss {
		t.Fatalf("read %d, want %d", got, 7*mss)
	}
	// No hole left: nothing of the hold is left to keep the busy state
	// from being dropped when the rest is idle (busy.go).
	c.mu.m.Lock()
	if b := c.epBusy; b != nil && (b.heldHole || b.heldAt != 0 || b.ackHeld) {
		c.mu.m.Unlock()
		t.Fatalf("hold state left after the holes were filled: held %v, hole %v at %d", b.ackHeld, b.heldHole, b.heldAt)
	}
	c.mu.m.Unlock()
}
