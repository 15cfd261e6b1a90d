package tcp

// Lent receive buffers. A link that reads super-segments of up to 64 KB
// can lend the buffer a segment was read into (link.Lender, through the
// stack): an in-order payload of lendMin bytes or more is then queued as
// it lies, not copied into the receive ring, and the buffer goes back to
// the link's pool when the application has read it. The copy from the
// link's buffer into the ring was a fifth of the receiving process's CPU
// time in bulk transfers from the kernel.
//
// The readable bytes are those in the ring, then those in the lent
// buffers (epBusy.lentQ says there are some); buffers are kept only
// while no out-of-order data waits in the ring. Anything else (out-of-
// order data, urgent data, memory pressure) first copies the lent
// buffers into the ring after its bytes, in order (flattenLent), and the
// old path goes on from there; a small in-order segment is copied into a
// buffer of TCP's own queued behind them (copyBehind). The queue of lent
// buffers hangs off the endpoint's epBusy (lentQ) only while it holds
// unread bytes: taken (getLentQ) by the first kept buffer, given back
// when a read or a flatten drains it, so an idle connection holds neither
// (busyIdle sees a nil pointer) and one with unread lent bytes keeps its
// epBusy (a non-nil pointer is not zero).

import "sync"

// Loan is a lent receive buffer; Release gives it back.
type Loan interface{ Release() }

// Lender lends the buffer a payload lies in, or returns nil.
type Lender interface{ Lend(p []byte) Loan }

// SetLender sets the lender of the frames this batch delivers (the
// link's buffers); nil: none.
func (b *Batch) SetLender(l Lender) { b.lender = l }

const (
	// lendMin is the smallest payload kept in a lent buffer: the buffer
	// (lentBufBytes) then holds at most about twice the bytes it carries,
	// so a peer sending small segments cannot make buffers cost more
	// than the window allows.
	lendMin = 32 << 10
	// lentBufBytes is what a lent buffer is charged to the memory total.
	lentBufBytes = 64<<10 + 128
	// maxLent bounds a connection's queue of lent buffers; past it
	// payloads are copied.
	maxLent = 256
)

type lentChunk struct {
	data []byte
	loan Loan
}

// lentQueue holds a connection's lent buffers; q[head:] is unread, in
// order, and never empty while the endpoint points to it (e.lentQ).
// Used under the endpoint's lock.
type lentQueue struct {
	q     []lentChunk
	head  int
	bytes int // unread bytes in q[head:]
}

// lentPool recycles drained queues, with their arrays.
var lentPool = sync.Pool{New: func() any { return new(lentQueue) }}

// getLentQ and putLentQ keep one drained queue at hand per Protocol
// before the pool: a bulk receiver drains its queue and starts another
// many times a second, and a swap is cheaper than the pool's round trip
// (which also drops items at random under the race detector).
func (p *Protocol) getLentQ() *lentQueue {
	if q := p.lent.Swap(nil); q != nil {
		return q
	}
	return lentPool.Get().(*lentQueue)
}

func (p *Protocol) putLentQ(q *lentQueue) {
	if !p.lent.CompareAndSwap(nil, q) {
		lentPool.Put(q)
	}
}

// dropLentQ gives back e's drained queue (every chunk already given
// back and zeroed, so the pooled array holds no loan), so that an idle endpoint can drop its epBusy.
func (e *Endpoint) dropLentQ() {
	q := e.lentQ
	q.q, q.head, q.bytes = q.q[:0], 0, 0
	e.lentQ = nil
	e.p.putLentQ(q)
}

// keepLent queues data (in order, at RCV.NXT) in the buffer it lies in,
// if the batch's link lends it; false: copy it.
func (e *Endpoint) keepLent(data []byte) bool {
	if len(e.ooo) > 0 || e.finOOO || e.urg.state != urgNone ||
		e.p.memTotal()+lentBufBytes > e.p.cfg.MemLimit {
		return false
	}
	if len(data) < lendMin {
		return e.lentQ != nil && e.copyBehind(data)
	}
	if e.batch == nil || e.batch.lender == nil {
		return false
	}
	q := e.lentQ
	if q != nil && len(q.q)-q.head >= maxLent {
		e.p.st.LentQueueFull.Add(1)
		return false
	}
	loan := e.batch.lender.Lend(data)
	if loan == nil {
		return false
	}
	if q == nil {
		q = e.p.getLentQ()
		e.lentQ = q
	}
	q.q = append(q.q, lentChunk{data, loan})
	q.bytes += len(data)
	e.p.memAdd(lentBufBytes)
	e.p.st.LentSegs.Add(1)
	return true
}

// copyBuf is a buffer of TCP's own that small in-order payloads are
// copied into while lent buffers are queued: they queue behind those
// instead of moving them all into the ring (a few hundred small segments
// per GiB from the kernel, each of which cost a copy of everything
// queued). Consecutive small payloads share one, so they cost about
// their bytes.
type copyBuf [copyBufLen]byte

const copyBufLen = lendMin

var copyBufs = sync.Pool{New: func() any { return new(copyBuf) }}

// Release gives the buffer back to the pool.
func (b *copyBuf) Release() { copyBufs.Put(b) }

// copyBehind queues a small payload behind the lent buffers: at the end
// of the last one if that is a copyBuf with room, else in a new one.
func (e *Endpoint) copyBehind(data []byte) bool {
	q := e.lentQ
	last := &q.q[len(q.q)-1]
	if _, ok := last.loan.(*copyBuf); ok && cap(last.data)-len(last.data) >= len(data) {
		last.data = append(last.data, data...) // into the buffer's unused tail
		q.bytes += len(data)
		return true
	}
	if len(q.q)-q.head >= maxLent {
		e.p.st.LentQueueFull.Add(1)
		return false
	}
	b := copyBufs.Get().(*copyBuf)
	n := copy(b[:], data)
	q.q = append(q.q, lentChunk{b[:n], b})
	q.bytes += n
	e.p.memAdd(copyBufLen)
	return true
}

// ringReadable is how many of the readable bytes are in the ring: the
// rest are in lent buffers.
func (e *Endpoint) ringReadable() int {
	if e.lentQ == nil {
		return e.rcvLen
	}
	return e.rcvLen - e.lentQ.bytes
}

// copyRcv copies the first len(b) readable bytes: from the ring, then
// from the lent buffers.
func (e *Endpoint) copyRcv(b []byte) {
	k := min(len(b), e.ringReadable())
	e.rcv.copyOut(b[:k], 0)
	b = b[k:]
	if len(b) == 0 {
		return
	}
	q := e.lentQ
	for _, c := range q.q[q.head:] {
		if len(b) == 0 {
			return
		}
		b = b[copy(b, c.data):]
	}
}

// dropRcv consumes the first n readable bytes: from the ring, then from
// the lent buffers, giving back the ones read to the end.
func (e *Endpoint) dropRcv(n int) {
	k := min(n, e.ringReadable())
	e.rcv.consume(k)
	n -= k
	q := e.lentQ
	if q == nil {
		return
	}
	q.bytes -= n
	for n > 0 && q.head < len(q.q) {
		c := &q.q[q.head]
		k := min(n, len(c.data))
		c.data = c.data[k:]
		n -= k
		if len(c.data) == 0 {
			e.giveBack(c)
			q.head++
		}
	}
	if q.head == len(q.q) {
		e.dropLentQ()
	}
}

func (e *Endpoint) giveBack(c *lentChunk) {
	if _, ok := c.loan.(*copyBuf); ok {
		e.p.memAdd(-copyBufLen)
	} else {
		e.p.memAdd(-lentBufBytes)
	}
	c.loan.Release()
	*c = lentChunk{}
}

// flattenLent copies what the lent buffers hold into the receive ring
// after its own bytes, in order, and gives them back: the ring path goes
// on from there.
func (e *Endpoint) flattenLent() {
	q := e.lentQ
	if q == nil {
		return
	}
	off := e.rcvLen - q.bytes
	e.growRing(&e.rcv, e.rcvLen, off, max(e.rcvCap, e.rcvLen))
	for i := q.head; i < len(q.q); i++ {
		c := &q.q[i]
		e.rcv.copyIn(c.data, off)
		off += len(c.data)
		e.giveBack(c)
	}
	q.head = len(q.q)
	e.dropLentQ()
}

// releaseLent gives back every lent buffer (the data is discarded) and
// the queue.
func (e *Endpoint) releaseLent() {
	q := e.lentQ
	if q == nil {
		return
	}
	for i := q.head; i < len(q.q); i++ {
		e.giveBack(&q.q[i])
	}
	q.head = len(q.q)
	e.dropLentQ()
}
