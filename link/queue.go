package link

import "sync"

// queue is a bounded frame queue with its own delivery goroutine: the
// model of a wire. Writers copy frames into pooled buffers; the goroutine
// hands everything queued to the receiver in one batch, so there is one
// goroutine hand-off per batch, not per frame.
type queue struct {
	mu       sync.Mutex
	ready    sync.Cond // signalled when frames arrive or the queue closes
	room     sync.Cond // signalled when the consumer drains
	frames   [][]byte
	metas    []Meta         // offload state of frames[i] (in-memory GSO)
	rels     []func([]byte) // frames[i] was taken, not copied: give it back here
	ntaken   int            // frames queued with a non-nil rels[i]
	nmeta    int            // frames queued with a non-zero Meta
	free     [][]byte
	limit    int
	closed   bool
	recv     Receiver
	stats    *Stats // receiver side counters
	bufSize  int
	done     chan struct{}
	attached chan struct{}
}

func newQueue(limit, bufSize int, stats *Stats) *queue {
	q := &queue{limit: limit, bufSize: bufSize, stats: stats, done: make(chan struct{}), attached: make(chan struct{})}
	q.ready.L = &q.mu
	q.room.L = &q.mu
	return q
}

// attach starts delivery to r.
func (q *queue) attach(r Receiver) {
	q.mu.Lock()
	q.recv = r
	q.mu.Unlock()
	close(q.attached)
	go q.run()
}

// push copies frames in; it returns how many fit.
func (q *queue) push(frames [][]byte) (int, bool) { return q.pushMeta(frames, nil, nil) }

// pushMeta is push with each frame's offload state (meta may be nil),
// counting in st (may be nil) what was taken and what refused.
func (q *queue) pushMeta(frames [][]byte, meta []Meta, st *Stats) (int, bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, false
	}
	n := 0
	for _, f := range frames {
		if len(q.frames) >= q.limit {
			break
		}
		var b []byte
		if k := len(q.free); k > 0 {
			b = q.free[k-1]
			q.free = q.free[:k-1]
		}
		if cap(b) < len(f) {
			b = make([]byte, len(f), max(len(f), q.bufSize))
		}
		b = b[:len(f)]
		copy(b, f)
		q.frames = append(q.frames, b)
		var m Meta
		if meta != nil {
			m = meta[n]
		}
		if m != (Meta{}) {
			q.nmeta++
		}
		q.metas = append(q.metas, m)
		q.rels = append(q.rels, nil)
		n++
	}
	if n > 0 && len(q.frames) == n {
		q.ready.Signal()
	}
	if st != nil {
		// Counted while the queue is held, so the counts are in step with
		// WaitRoom: stack/room.go tells by them whether a refusal came
		// after a wait for room ended and whether anything left since.
		var bytes uint64
		for _, f := range frames[:n] {
			bytes += uint64(len(f))
		}
		st.TxFrames.Add(uint64(n))
		st.TxBytes.Add(bytes)
		st.TxDropped.Add(uint64(len(frames) - n))
	}
	q.mu.Unlock()
	return n, true
}

// take queues f itself, not a copy, with its offload state, counting
// in st; once f has been delivered, release gets it back (a frame still
// queued when the queue closes is left to the collector). A refused f is
// not taken.
func (q *queue) take(f []byte, m Meta, release func([]byte), st *Stats) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		st.TxDropped.Add(1)
		return ErrClosed
	}
	if len(q.frames) >= q.limit {
		st.TxDropped.Add(1) // under the lock, as pushMeta counts (room.go)
		q.mu.Unlock()
		return ErrQueueFull
	}
	q.frames = append(q.frames, f)
	if m != (Meta{}) {
		q.nmeta++
	}
	q.metas = append(q.metas, m)
	q.rels = append(q.rels, release)
	q.ntaken++
	if len(q.frames) == 1 {
		q.ready.Signal()
	}
	st.TxFrames.Add(1)
	st.TxBytes.Add(uint64(len(f)))
	q.mu.Unlock()
	return nil
}

// waitRoom blocks until the queue is below its limit.
func (q *queue) waitRoom(done <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) < q.limit || q.closed {
		return
	}
	if done != nil {
		// Wake the wait when done closes (rare: only a full queue gets here).
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-done:
				q.mu.Lock()
				q.room.Broadcast()
				q.mu.Unlock()
			case <-stop:
			}
		}()
	}
	for len(q.frames) >= q.limit && !q.closed {
		select {
		case <-done:
			return
		default:
		}
		q.room.Wait()
	}
}

func (q *queue) run() {
	defer close(q.done)
	var batch [][]byte
	var metas []Meta
	var rels []func([]byte)
	var seg segmenter
	for {
		q.mu.Lock()
		for len(q.frames) == 0 && !q.closed {
			q.ready.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		// Swap slices: the writer fills a fresh one while we deliver.
		batch, q.frames = q.frames, batch[:0]
		metas, q.metas = q.metas, metas[:0]
		rels, q.rels = q.rels, rels[:0]
		withMeta := q.nmeta > 0
		taken := q.ntaken > 0
		q.nmeta, q.ntaken = 0, 0
		q.room.Broadcast()
		q.mu.Unlock()

		var bytes uint64
		for _, f := range batch {
			bytes += uint64(len(f))
		}
		q.stats.RxFrames.Add(uint64(len(batch)))
		q.stats.RxBytes.Add(bytes)
		if withMeta {
			deliverMeta(q.recv, batch, metas, &seg, q.stats)
		} else {
			q.recv.DeliverFrames(batch)
		}

		all := len(batch)
		if taken {
			// Taken frames go back to their writer; only copies stay here.
			k := 0
			for i, f := range batch {
				if r := rels[i]; r != nil {
					r(f)
				} else {
					batch[k] = f
					k++
				}
			}
			batch = batch[:k]
		}
		q.mu.Lock()
		q.free = append(q.free, batch...)
		q.mu.Unlock()
		clear(batch[:all])
		clear(rels)
		batch = batch[:0]
		metas = metas[:0]
		rels = rels[:0]
	}
}

func (q *queue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.ready.Broadcast()
	q.room.Broadcast()
	started := q.recv != nil
	q.mu.Unlock()
	if started {
		<-q.done
	}
}

// pushCounted pushes frames into q for a writer, counting what was taken
// and what was refused in the writer's transmit counters.
func pushCounted(q *queue, frames [][]byte, st *Stats) (int, error) {
	return pushCountedMeta(q, frames, nil, st)
}

// pushCountedMeta is pushCounted with each frame's offload state.
func pushCountedMeta(q *queue, frames [][]byte, meta []Meta, st *Stats) (int, error) {
	n, ok := q.pushMeta(frames, meta, st)
	if !ok {
		st.TxDropped.Add(uint64(len(frames)))
		return 0, ErrClosed
	}
	if n < len(frames) {
		return n, ErrQueueFull
	}
	return n, nil
}
