package link

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// udpFrame builds an Ethernet/IPv4/UDP frame of flow (source port
// 1000+flow) carrying seq.
func flowFrame(flow int, seq uint32) []byte {
	b := make([]byte, wire.EthernetHeaderLen+20+8+8)
	wire.PutEthernet(b, macB, macA, wire.EtherTypeIPv4)
	ip := b[wire.EthernetHeaderLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, wire.ProtoUDP
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], uint16(1000+flow))
	binary.BigEndian.PutUint16(u[2:], 7)
	binary.BigEndian.PutUint16(u[4:], 16)
	binary.BigEndian.PutUint32(u[8:], seq)
	binary.BigEndian.PutUint32(u[12:], uint32(flow))
	return b
}

func flowSeq(f []byte) (int, uint32) {
	u := f[wire.EthernetHeaderLen+20:]
	return int(binary.BigEndian.Uint32(u[12:])), binary.BigEndian.Uint32(u[8:])
}

// queueRecorder is a MultiReceiver: each queue records on its own, with
// no lock of its own beyond the one that lets the test read it, so the
// race detector sees what the queues share.
type queueRecorder struct {
	mu     sync.Mutex
	queues []*queueRec
	total  chan int
	block  chan struct{} // when set, every delivery waits for it
	inside chan struct{} // a delivery reached the receiver
}

type queueRec struct {
	q     *queueRecorder
	id    int
	flows map[int][]uint32
}

func newQueueRecorder() *queueRecorder {
	return &queueRecorder{total: make(chan int, 1<<16), inside: make(chan struct{}, 1<<16)}
}

func (q *queueRecorder) RxQueue() Receiver {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := &queueRec{q: q, id: len(q.queues), flows: map[int][]uint32{}}
	q.queues = append(q.queues, r)
	return r
}

func (q *queueRecorder) DeliverFrames(frames [][]byte) { panic("the first queue must be a RxQueue") }

func (r *queueRec) DeliverFrames(frames [][]byte) {
	r.q.inside <- struct{}{}
	if r.q.block != nil {
		<-r.q.block
	}
	for _, f := range frames {
		flow, seq := flowSeq(f)
		r.flows[flow] = append(r.flows[flow], seq)
	}
	r.q.total <- len(frames)
}

func waitTotal(t *testing.T, ch chan int, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for got := 0; got < n; {
		select {
		case k := <-ch:
			got += k
		case <-deadline:
			t.Fatalf("timed out: %d of %d frames delivered", got, n)
		}
	}
}

// TestRSSSpreadsFlowsKeepsOrder: 64 flows through 4 workers from two
// delivering goroutines at once; every flow lands on exactly one worker,
// in order, and every worker gets some.
func TestRSSSpreadsFlowsKeepsOrder(t *testing.T) {
	const workers, flows, per = 4, 64, 100
	inner := &recorder{kind: KindEthernet}
	rss := NewRSS(inner, workers, flows*per) // room for all: nothing dropped
	rec := newQueueRecorder()
	rss.Attach(rec)
	defer rss.Close()
	var wg sync.WaitGroup
	for g := range 2 { // two link goroutines, flows split between them
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([][]byte, 0, 16)
			for seq := range uint32(per) {
				for fl := g; fl < flows; fl += 2 {
					batch = append(batch, flowFrame(fl, seq))
					if len(batch) == cap(batch) {
						inner.recv.DeliverFrames(batch)
						batch = batch[:0]
					}
				}
			}
			inner.recv.DeliverFrames(batch)
		}()
	}
	wg.Wait()
	dropped := int(rss.Dropped())
	if dropped != 0 {
		t.Errorf("%d frames dropped with room for all", dropped)
	}
	waitTotal(t, rec.total, flows*per-dropped)
	rss.Close()
	owner := map[int]int{}
	for _, q := range rec.queues {
		if len(q.flows) == 0 {
			t.Errorf("worker %d got no flow", q.id)
		}
		for fl, seqs := range q.flows {
			if w, ok := owner[fl]; ok {
				t.Errorf("flow %d on workers %d and %d", fl, w, q.id)
			}
			owner[fl] = q.id
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("flow %d reordered on worker %d: %d after %d", fl, q.id, seqs[i], seqs[i-1])
				}
			}
		}
	}
	if len(owner) != flows {
		t.Errorf("%d flows delivered, want %d", len(owner), flows)
	}
	var sum uint64
	for i := range workers {
		sum += rss.Delivered(i)
	}
	if int(sum) != flows*per-dropped {
		t.Errorf("delivered %d, want %d", sum, flows*per-dropped)
	}
}

// TestRSSDropsAtBound: with the worker stuck in the receiver, its queue
// takes qlen-1 more frames (the one being delivered holds a slot) and
// drops the rest, counted in Dropped and the endpoint's RxDropped.
func TestRSSDropsAtBound(t *testing.T) {
	const qlen = 8
	inner := &recorder{kind: KindEthernet}
	rss := NewRSS(inner, 1, qlen)
	rec := newQueueRecorder()
	rec.block = make(chan struct{})
	rss.Attach(rec)
	inner.recv.DeliverFrames([][]byte{flowFrame(1, 0)})
	<-rec.inside
	for seq := range uint32(qlen + 5) {
		inner.recv.DeliverFrames([][]byte{flowFrame(1, seq+1)})
	}
	if got := rss.Dropped(); got != 6 {
		t.Errorf("dropped %d, want 6", got)
	}
	if got := inner.stats.RxDropped.Load(); got != 6 {
		t.Errorf("RxDropped %d, want 6", got)
	}
	close(rec.block)
	waitTotal(t, rec.total, qlen)
	rss.Close()
	seqs := rec.queues[0].flows[1]
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("delivered %v, want 0..%d in order", seqs, qlen-1)
		}
	}
}

// TestRSSPlainReceiverSerialized: a receiver that is no MultiReceiver is
// called by one worker at a time (the race detector would see two).
func TestRSSPlainReceiverSerialized(t *testing.T) {
	inner := &recorder{kind: KindEthernet}
	rss := NewRSS(inner, 4, 0)
	c := newCollector()
	plain := &plainCounter{c: c}
	rss.Attach(plain)
	defer rss.Close()
	for seq := range uint32(50) {
		var b [][]byte
		for fl := range 16 {
			b = append(b, flowFrame(fl, seq))
		}
		inner.recv.DeliverFrames(b)
	}
	c.wait(t, 50*16-int(rss.Dropped()))
}

type plainCounter struct {
	c *collector
	n int // unsynchronized on purpose
}

func (p *plainCounter) DeliverFrames(frames [][]byte) {
	p.n += len(frames)
	p.c.DeliverFrames(frames)
}

// TestFlowHash: ports count for TCP/UDP, not for fragments; both IP
// versions and TUN frames.
func TestFlowHash(t *testing.T) {
	a, b := flowFrame(1, 0), flowFrame(2, 0)
	if FlowHash(a, KindEthernet) == FlowHash(b, KindEthernet) {
		t.Error("two UDP flows hash alike")
	}
	a2 := flowFrame(1, 99)
	if FlowHash(a, KindEthernet) != FlowHash(a2, KindEthernet) {
		t.Error("one flow hashes differently")
	}
	fa, fb := flowFrame(1, 0), flowFrame(2, 0)
	for _, f := range [][]byte{fa, fb} {
		binary.BigEndian.PutUint16(f[wire.EthernetHeaderLen+6:], 0x2000) // MF
	}
	if FlowHash(fa, KindEthernet) != FlowHash(fb, KindEthernet) {
		t.Error("fragments hashed by ports")
	}
	if FlowHash(a, KindEthernet) != FlowHash(a[wire.EthernetHeaderLen:], KindIP) {
		t.Error("Ethernet and TUN frames of one packet hash differently")
	}
	v6 := make([]byte, 48)
	v6[0], v6[6] = 0x60, wire.ProtoTCP
	h1 := FlowHash(v6, KindIP)
	v6[41] = 1
	if FlowHash(v6, KindIP) == h1 {
		t.Error("IPv6 TCP ports not hashed")
	}
	for _, f := range [][]byte{nil, {0x45}, make([]byte, 13), {0x60, 0, 0}} {
		FlowHash(f, KindEthernet)
		FlowHash(f, KindIP)
	}
}

// countRecv counts frames per RxQueue receiver, ticking on each batch.
type countRecv struct {
	total atomic.Int64
	tick  chan struct{}
}

func (c *countRecv) DeliverFrames([][]byte) {}
func (c *countRecv) RxQueue() Receiver      { return countQ{c} }

type countQ struct{ c *countRecv }

func (q countQ) DeliverFrames(frames [][]byte) {
	q.c.total.Add(int64(len(frames)))
	select {
	case q.c.tick <- struct{}{}:
	default:
	}
}

// BenchmarkRSS: frames of 32 flows through 2 workers, the producer
// waiting for the workers every 16 batches; no allocation per frame once
// the slots have their buffers.
func BenchmarkRSS(b *testing.B) {
	inner := &recorder{kind: KindEthernet}
	rss := NewRSS(inner, 2, 512)
	c := &countRecv{tick: make(chan struct{}, 1)}
	rss.Attach(c)
	defer rss.Close()
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = flowFrame(i, uint32(i))
	}
	sent := int64(0)
	catchUp := func() {
		for c.total.Load()+int64(rss.Dropped()) < sent {
			<-c.tick
		}
	}
	run := func(n int) {
		for i := range n {
			inner.recv.DeliverFrames(batch)
			sent += int64(len(batch))
			if i%16 == 15 {
				catchUp()
			}
		}
		catchUp()
	}
	run(128) // every slot of both workers gets its buffer
	b.ReportAllocs()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(rss.Dropped())/float64(sent), "dropped/frame")
}
