package link

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// Work spread over cores. A link with several receive queues (a multi-
// queue TAP, AF_PACKET sockets in a fanout group, or RSS below in front
// of any endpoint) delivers from one goroutine per queue at once; frames
// of one flow always take the same queue, so a flow stays in order while
// different flows are processed in parallel, as a NIC's receive-side
// scaling does for Linux.

// MultiReceiver is a Receiver that takes frames from several goroutines
// at once: each delivering goroutine gets a receiver of its own from
// RxQueue (the stack's NIC keeps per-goroutine receive state there).
// A plain Receiver, which assumes one goroutine, is called under a lock.
type MultiReceiver interface {
	Receiver
	RxQueue() Receiver
}

// queueReceivers returns one receiver per delivering goroutine.
func queueReceivers(r Receiver, n int) []Receiver {
	rs := make([]Receiver, n)
	if mr, ok := r.(MultiReceiver); ok {
		for i := range rs {
			rs[i] = mr.RxQueue()
		}
		return rs
	}
	mu := new(sync.Mutex)
	for i := range rs {
		if m, ok := r.(MetaReceiver); ok {
			rs[i] = &lockedMetaReceiver{lockedReceiver{mu, r}, m}
		} else {
			rs[i] = &lockedReceiver{mu, r}
		}
	}
	return rs
}

// lockedReceiver serializes the queues' deliveries to a plain Receiver.
type lockedReceiver struct {
	mu *sync.Mutex
	r  Receiver
}

func (l *lockedReceiver) DeliverFrames(frames [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.DeliverFrames(frames)
}

type lockedMetaReceiver struct {
	lockedReceiver
	m MetaReceiver
}

func (l *lockedMetaReceiver) DeliverFramesMeta(frames [][]byte, metas []Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m.DeliverFramesMeta(frames, metas)
}

// FlowHash hashes a frame's flow: the IPv4 or IPv6 addresses, protocol
// and, for TCP, UDP, UDP-Lite and SCTP (not for a fragment, which may
// lack them), the ports; the addresses alone for other IP packets; the
// Ethernet addresses for anything else. Frames of one flow hash alike.
func FlowHash(f []byte, kind Kind) uint32 {
	et, p, ok := framePayload(f, kind)
	if !ok {
		return hashBytes(2166136261, f)
	}
	h := uint32(2166136261)
	switch {
	case et == wire.EtherTypeIPv4 && len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0x0f) * 4
		proto := p[9]
		h = hashBytes(h, p[12:20])
		h = hashBytes(h, p[9:10])
		frag := binary.BigEndian.Uint16(p[6:8])&0x3fff != 0
		if !frag && hasPorts(proto) && ihl >= 20 && len(p) >= ihl+4 {
			h = hashBytes(h, p[ihl:ihl+4])
		}
	case et == wire.EtherTypeIPv6 && len(p) >= 40 && p[0]>>4 == 6:
		proto := p[6]
		h = hashBytes(h, p[8:40])
		h = hashBytes(h, p[6:7])
		if hasPorts(proto) && len(p) >= 44 {
			h = hashBytes(h, p[40:44])
		}
	case kind == KindEthernet:
		h = hashBytes(h, f[:12])
	default:
		h = hashBytes(h, p[:min(len(p), 20)])
	}
	return mix32(h)
}

// framePayload is frame f's EtherType and what follows its link header
// (past one VLAN tag); a bare IP frame's type comes from its version.
// ok is false for an Ethernet frame shorter than its header.
func framePayload(f []byte, kind Kind) (et uint16, p []byte, ok bool) {
	off := 0
	et = wire.EtherTypeIPv4
	if kind == KindEthernet {
		if len(f) < wire.EthernetHeaderLen {
			return 0, nil, false
		}
		et = binary.BigEndian.Uint16(f[12:14])
		off = wire.EthernetHeaderLen
		if et == 0x8100 && len(f) >= off+4 { // one VLAN tag
			et = binary.BigEndian.Uint16(f[16:18])
			off += 4
		}
	}
	p = f[off:]
	if kind == KindIP && len(p) > 0 && p[0]>>4 == 6 {
		et = wire.EtherTypeIPv6
	}
	return et, p, true
}

func hasPorts(proto uint8) bool {
	return proto == wire.ProtoTCP || proto == wire.ProtoUDP || proto == 132 || proto == 136
}

// hashBytes is FNV-1a.
func hashBytes(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// mix32 spreads FNV's weak low bits (a queue is picked by modulo).
func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// DefaultRSSQueueLen is the frames each RSS worker holds at most.
const DefaultRSSQueueLen = 256

// RSS is receive-side scaling in software in front of any endpoint:
// every received frame is hashed by flow (FlowHash) to one of N worker
// goroutines, each with a bounded queue, so the receiver runs different
// flows on different cores and each flow in order. A frame that finds its
// worker's queue full is dropped and counted (Dropped, and the wrapped
// endpoint's RxDropped). Transmission goes to the wrapped endpoint
// unchanged.
type RSS struct {
	Endpoint
	kind    Kind
	workers []*rssWorker
	dropped atomic.Uint64
	closed  atomic.Bool
	wg      sync.WaitGroup
}

type rssSlot struct {
	buf  []byte
	n    int
	meta Meta
}

type rssWorker struct {
	rss *RSS
	r   Receiver

	mu         sync.Mutex
	slots      []rssSlot
	head, tail uint64 // slots[head:tail) (mod len) are queued
	wake       chan struct{}
	done       chan struct{}

	delivered atomic.Uint64

	// Worker goroutine only.
	frames  [][]byte
	metas   []Meta
	hasMeta bool
	sg      segmenter
}

// NewRSS spreads ep's received frames over workers goroutines (at least
// 1), each queueing at most qlen frames (DefaultRSSQueueLen if 0).
func NewRSS(ep Endpoint, workers, qlen int) *RSS {
	workers = max(workers, 1)
	if qlen <= 0 {
		qlen = DefaultRSSQueueLen
	}
	s := &RSS{Endpoint: ep, kind: ep.Kind()}
	for range workers {
		s.workers = append(s.workers, &rssWorker{rss: s, slots: make([]rssSlot, qlen),
			wake: make(chan struct{}, 1), done: make(chan struct{}),
			frames: make([][]byte, qlen), metas: make([]Meta, qlen)})
	}
	return s
}

// Workers is the number of worker goroutines.
func (s *RSS) Workers() int { return len(s.workers) }

// Dropped counts frames dropped at a full worker queue.
func (s *RSS) Dropped() uint64 { return s.dropped.Load() }

// Delivered is how many frames worker i handed to the receiver.
func (s *RSS) Delivered(i int) uint64 { return s.workers[i].delivered.Load() }

// Offloads passes the wrapped endpoint's offloads on: frames are copied
// whole with their offload state.
func (s *RSS) Offloads() Offloads {
	if o, ok := s.Endpoint.(Offloader); ok {
		return o.Offloads()
	}
	return Offloads{}
}

// WriteFramesMeta passes frames with offload state to the wrapped endpoint.
func (s *RSS) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	if mw, ok := s.Endpoint.(MetaWriter); ok {
		return mw.WriteFramesMeta(frames, meta)
	}
	return 0, ErrBadOffload
}

// Attach starts the workers, each with its own receiver (see
// MultiReceiver), then the wrapped endpoint's delivery.
func (s *RSS) Attach(r Receiver) {
	rs := queueReceivers(r, len(s.workers))
	for i, w := range s.workers {
		w.r = rs[i]
		_, w.hasMeta = w.r.(MetaReceiver)
		s.wg.Add(1)
		go w.run()
	}
	s.Endpoint.Attach(rssIn{s})
}

// rssIn is what the wrapped endpoint delivers to.
type rssIn struct{ s *RSS }

func (in rssIn) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		in.s.enqueue(f, Meta{})
	}
	in.s.kick()
}

func (in rssIn) DeliverFramesMeta(frames [][]byte, metas []Meta) {
	for i, f := range frames {
		in.s.enqueue(f, metas[i])
	}
	in.s.kick()
}

func (s *RSS) enqueue(f []byte, m Meta) {
	w := s.workers[0]
	if len(s.workers) > 1 {
		w = s.workers[FlowHash(f, s.kind)%uint32(len(s.workers))]
	}
	w.mu.Lock()
	if w.tail-w.head == uint64(len(w.slots)) {
		w.mu.Unlock()
		s.dropped.Add(1)
		s.Endpoint.Stats().RxDropped.Add(1)
		return
	}
	sl := &w.slots[w.tail%uint64(len(w.slots))]
	if cap(sl.buf) < len(f) {
		sl.buf = make([]byte, max(len(f), 2048)) // grows once per slot
	}
	sl.n = copy(sl.buf[:cap(sl.buf)], f)
	sl.meta = m
	w.tail++
	w.mu.Unlock()
}

// kick wakes the workers with queued frames once per delivered batch.
func (s *RSS) kick() {
	for _, w := range s.workers {
		w.mu.Lock()
		queued := w.tail != w.head
		w.mu.Unlock()
		if queued {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (w *rssWorker) run() {
	defer w.rss.wg.Done()
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		for {
			w.mu.Lock()
			head, tail := w.head, w.tail
			w.mu.Unlock()
			if head == tail {
				break
			}
			// Slots in [head, tail) belong to this goroutine until head moves.
			k := 0
			anyMeta := false
			for i := head; i < tail; i++ {
				sl := &w.slots[i%uint64(len(w.slots))]
				w.frames[k] = sl.buf[:sl.n]
				w.metas[k] = sl.meta
				anyMeta = anyMeta || sl.meta != (Meta{})
				k++
			}
			if anyMeta {
				deliverMeta(w.r, w.frames[:k], w.metas[:k], &w.sg, w.rss.Endpoint.Stats())
			} else {
				w.r.DeliverFrames(w.frames[:k])
			}
			clear(w.frames[:k])
			w.delivered.Add(uint64(k))
			w.mu.Lock()
			w.head = tail
			w.mu.Unlock()
		}
	}
}

// Close closes the wrapped endpoint, then stops the workers (frames still
// queued are dropped with them).
func (s *RSS) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.Endpoint.Close()
	for _, w := range s.workers {
		close(w.done)
	}
	s.wg.Wait()
	return err
}

// WaitRoom passes to the wrapped endpoint.
func (s *RSS) WaitRoom(done <-chan struct{}) { waitRoom(s.Endpoint, done) }
