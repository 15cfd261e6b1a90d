package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Qdisc is a link's egress queue discipline. Enqueue and Dequeue free
// the packets they drop and count them.
type Qdisc interface {
	Enqueue(p *packet, now int64) bool // false: dropped
	Dequeue(now int64) *packet         // nil: empty
	Len() int                          // packets queued
	Backlog() int                      // bytes queued
	Stats() *QdiscStats
}

// QdiscStats are a queue's counters, as tc -s qdisc shows them.
type QdiscStats struct {
	Kind        string `json:"kind"`
	Enqueued    uint64 `json:"enqueued"`
	Dequeued    uint64 `json:"dequeued"`
	Overlimit   uint64 `json:"drops_overlimit"` // dropped at a full queue
	EarlyDrops  uint64 `json:"drops_early"`     // RED probabilistic drops
	CoDelDrops  uint64 `json:"drops_codel"`     // dropped by the CoDel control law
	NewFlows    uint64 `json:"new_flows,omitempty"`
	MaxBacklog  int    `json:"max_backlog_bytes"`
	MaxPackets  int    `json:"max_backlog_packets"`
	DropsByFlow uint64 `json:"drops_fattest_flow,omitempty"` // FQ-CoDel overlimit drops from the fattest flow
}

// Drops is the total dropped by the queue.
func (s *QdiscStats) Drops() uint64 { return s.Overlimit + s.EarlyDrops + s.CoDelDrops }

// QueueConfig selects and tunes a discipline.
type QueueConfig struct {
	Type       string        // droptail (default), red, codel, fq_codel
	Limit      int           // packets (droptail/red/codel default 1000, fq_codel 10240)
	LimitBytes int           // bytes, 0: no byte limit (droptail)
	Target     time.Duration // CoDel target, default 5ms
	Interval   time.Duration // CoDel interval, default 100ms
	MinTh      int           // RED thresholds in packets (default limit/4, limit*3/4)
	MaxTh      int
	MaxP       float64 // RED drop probability at MaxTh, default 0.1
	Weight     float64 // RED EWMA weight, default 0.002
	Quantum    int     // FQ-CoDel DRR quantum, default 1514
	Flows      int     // FQ-CoDel flow buckets, default 1024
}

func newQdisc(c QueueConfig, rng *rand.Rand, txTime func(int) int64) (Qdisc, error) {
	switch c.Type {
	case "", "droptail", "fifo":
		if c.Limit == 0 && c.LimitBytes == 0 {
			c.Limit = 1000
		}
		return &dropTail{limit: c.Limit, limitBytes: c.LimitBytes, st: QdiscStats{Kind: "droptail"}}, nil
	case "red":
		if c.Limit == 0 {
			c.Limit = 1000
		}
		r := &red{fifo: fifo{}, limit: c.Limit, minTh: float64(c.MinTh), maxTh: float64(c.MaxTh),
			maxP: c.MaxP, w: c.Weight, rng: rng, txTime: txTime, st: QdiscStats{Kind: "red"}}
		if r.minTh == 0 {
			r.minTh = float64(c.Limit) / 4
		}
		if r.maxTh == 0 {
			r.maxTh = float64(c.Limit) * 3 / 4
		}
		if r.maxP == 0 {
			r.maxP = 0.1
		}
		if r.w == 0 {
			r.w = 0.002
		}
		if r.maxTh <= r.minTh {
			return nil, fmt.Errorf("red: max_th %v must be above min_th %v", r.maxTh, r.minTh)
		}
		return r, nil
	case "codel":
		if c.Limit == 0 {
			c.Limit = 1000
		}
		q := &codelQ{limit: c.Limit, st: QdiscStats{Kind: "codel"}}
		q.cd.init(c.Target, c.Interval)
		return q, nil
	case "fq_codel":
		return newFQCoDel(c, rng), nil
	}
	return nil, fmt.Errorf("unknown queue type %q (droptail, red, codel, fq_codel)", c.Type)
}

// fifo is a ring of packets.
type fifo struct {
	ring    []*packet
	head, n int
	bytes   int
}

func (f *fifo) push(p *packet) {
	if f.n == len(f.ring) {
		nr := make([]*packet, max(16, 2*len(f.ring)))
		for i := 0; i < f.n; i++ {
			nr[i] = f.ring[(f.head+i)%len(f.ring)]
		}
		f.ring, f.head = nr, 0
	}
	f.ring[(f.head+f.n)%len(f.ring)] = p
	f.n++
	f.bytes += len(p.buf)
}

func (f *fifo) pop() *packet {
	if f.n == 0 {
		return nil
	}
	p := f.ring[f.head]
	f.ring[f.head] = nil
	f.head = (f.head + 1) % len(f.ring)
	f.n--
	f.bytes -= len(p.buf)
	return p
}

func (f *fifo) peek() *packet {
	if f.n == 0 {
		return nil
	}
	return f.ring[f.head]
}

func (st *QdiscStats) noteBacklog(n, b int) {
	st.MaxPackets = max(st.MaxPackets, n)
	st.MaxBacklog = max(st.MaxBacklog, b)
}

// dropTail is a FIFO that drops arrivals when full.
type dropTail struct {
	fifo
	limit, limitBytes int
	st                QdiscStats
}

func (q *dropTail) Enqueue(p *packet, now int64) bool {
	if (q.limit > 0 && q.n >= q.limit) || (q.limitBytes > 0 && q.bytes+len(p.buf) > q.limitBytes) {
		q.st.Overlimit++
		p.free()
		return false
	}
	p.enq = now
	q.push(p)
	q.st.Enqueued++
	q.st.noteBacklog(q.n, q.bytes)
	return true
}

func (q *dropTail) Dequeue(int64) *packet {
	p := q.pop()
	if p != nil {
		q.st.Dequeued++
	}
	return p
}
func (q *dropTail) Len() int           { return q.n }
func (q *dropTail) Backlog() int       { return q.bytes }
func (q *dropTail) Stats() *QdiscStats { return &q.st }

// red is Random Early Detection (Floyd and Jacobson 1993): the drop
// probability grows with the average queue between two thresholds.
type red struct {
	fifo
	limit              int
	minTh, maxTh, maxP float64
	w                  float64
	avg                float64
	count              int
	idleSince          int64 // when the queue went empty (-1: busy)
	rng                *rand.Rand
	txTime             func(int) int64
	st                 QdiscStats
}

func (q *red) Enqueue(p *packet, now int64) bool {
	if q.n == 0 && q.idleSince > 0 {
		// The average decays over an idle period as if small packets had
		// been sent at line rate meanwhile.
		if tx := q.txTime(500); tx > 0 {
			m := float64(now-q.idleSince) / float64(tx)
			q.avg *= math.Pow(1-q.w, m)
		} else {
			q.avg = 0
		}
		q.idleSince = 0
	} else {
		q.avg = (1-q.w)*q.avg + q.w*float64(q.n)
	}
	drop := false
	switch {
	case q.n >= q.limit:
		q.st.Overlimit++
		p.free()
		return false
	case q.avg >= q.maxTh:
		drop = true
		q.count = 0
	case q.avg >= q.minTh:
		q.count++
		pb := q.maxP * (q.avg - q.minTh) / (q.maxTh - q.minTh)
		pa := pb / math.Max(1-float64(q.count)*pb, 1e-9)
		if q.count*int(pb*1e6) >= 1e6 || q.rng.Float64() < pa {
			drop = true
			q.count = 0
		}
	default:
		q.count = -1
	}
	if drop {
		q.st.EarlyDrops++
		p.free()
		return false
	}
	p.enq = now
	q.push(p)
	q.st.Enqueued++
	q.st.noteBacklog(q.n, q.bytes)
	return true
}

func (q *red) Dequeue(now int64) *packet {
	p := q.pop()
	if p != nil {
		q.st.Dequeued++
		if q.n == 0 {
			q.idleSince = max(now, 1)
		}
	}
	return p
}
func (q *red) Len() int           { return q.n }
func (q *red) Backlog() int       { return q.bytes }
func (q *red) Stats() *QdiscStats { return &q.st }

// codel is the CoDel control state of one queue (RFC 8289): when the
// sojourn time stays above target for an interval, drop, and drop again
// at intervals shrinking with the square root of the drop count until
// the sojourn time falls back below target.
type codel struct {
	target, interval int64
	firstAbove       int64
	dropNext         int64
	count, lastCount uint32
	dropping         bool
	maxPacket        int
}

func (c *codel) init(target, interval time.Duration) {
	if target <= 0 {
		target = 5 * time.Millisecond
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	c.target, c.interval = int64(target), int64(interval)
	c.maxPacket = 1514
}

func (c *codel) controlLaw(t int64) int64 {
	return t + int64(float64(c.interval)/math.Sqrt(float64(c.count)))
}

// doDequeue takes the head of f and says whether it may be dropped.
func (c *codel) doDequeue(f *fifo, now int64) (*packet, bool) {
	p := f.pop()
	if p == nil {
		c.firstAbove = 0
		return nil, false
	}
	sojourn := now - p.enq
	if sojourn < c.target || f.bytes <= c.maxPacket {
		c.firstAbove = 0
		return p, false
	}
	if c.firstAbove == 0 {
		c.firstAbove = now + c.interval
		return p, false
	}
	return p, now >= c.firstAbove
}

// dequeue runs the CoDel state machine over f; drop frees and counts.
func (c *codel) dequeue(f *fifo, now int64, drop func(*packet)) *packet {
	p, ok := c.doDequeue(f, now)
	if p == nil {
		c.dropping = false
		return nil
	}
	if c.dropping {
		if !ok {
			c.dropping = false
		}
		for c.dropping && now >= c.dropNext {
			drop(p)
			c.count++
			p, ok = c.doDequeue(f, now)
			if p == nil || !ok {
				c.dropping = false
			} else {
				c.dropNext = c.controlLaw(c.dropNext)
			}
		}
		return p
	}
	if ok {
		drop(p)
		p, _ = c.doDequeue(f, now)
		c.dropping = true
		delta := c.count - c.lastCount
		if delta > 1 && now-c.dropNext < 16*c.interval {
			c.count = delta
		} else {
			c.count = 1
		}
		c.dropNext = c.controlLaw(now)
		c.lastCount = c.count
	}
	return p
}

// codelQ is a single CoDel queue with a packet limit.
type codelQ struct {
	fifo
	cd    codel
	limit int
	st    QdiscStats
}

func (q *codelQ) Enqueue(p *packet, now int64) bool {
	if q.n >= q.limit {
		q.st.Overlimit++
		p.free()
		return false
	}
	p.enq = now
	q.push(p)
	q.st.Enqueued++
	q.st.noteBacklog(q.n, q.bytes)
	return true
}

func (q *codelQ) Dequeue(now int64) *packet {
	p := q.cd.dequeue(&q.fifo, now, func(d *packet) { q.st.CoDelDrops++; d.free() })
	if p != nil {
		q.st.Dequeued++
	}
	return p
}
func (q *codelQ) Len() int           { return q.n }
func (q *codelQ) Backlog() int       { return q.bytes }
func (q *codelQ) Stats() *QdiscStats { return &q.st }

// fqFlow is one FQ-CoDel bucket.
type fqFlow struct {
	fifo
	cd      codel
	deficit int
	list    int // 0 none, 1 new, 2 old
	next    *fqFlow
}

// flowList is a FIFO list of flows (new or old).
type flowList struct{ head, tail *fqFlow }

func (l *flowList) pushBack(f *fqFlow) {
	f.next = nil
	if l.tail == nil {
		l.head = f
	} else {
		l.tail.next = f
	}
	l.tail = f
}

func (l *flowList) popFront() *fqFlow {
	f := l.head
	if f != nil {
		l.head = f.next
		if l.head == nil {
			l.tail = nil
		}
		f.next = nil
	}
	return f
}

// fqCoDel is FlowQueue-CoDel (RFC 8290): flows hashed into buckets, each
// a CoDel queue, served by deficit round robin with new flows first.
type fqCoDel struct {
	flows          []fqFlow
	newF, oldF     flowList
	quantum, limit int
	n, bytes       int
	perturb        uint32
	st             QdiscStats
}

func newFQCoDel(c QueueConfig, rng *rand.Rand) *fqCoDel {
	if c.Limit == 0 {
		c.Limit = 10240
	}
	if c.Quantum == 0 {
		c.Quantum = 1514
	}
	if c.Flows == 0 {
		c.Flows = 1024
	}
	q := &fqCoDel{flows: make([]fqFlow, c.Flows), quantum: c.Quantum, limit: c.Limit,
		perturb: rng.Uint32(), st: QdiscStats{Kind: "fq_codel"}}
	for i := range q.flows {
		q.flows[i].cd.init(c.Target, c.Interval)
	}
	return q
}

func (q *fqCoDel) Enqueue(p *packet, now int64) bool {
	f := &q.flows[flowKey(p.buf, q.perturb)%uint32(len(q.flows))]
	p.enq = now
	f.push(p)
	q.n++
	q.bytes += len(p.buf)
	q.st.Enqueued++
	if f.list == 0 {
		f.list = 1
		f.deficit = q.quantum
		q.newF.pushBack(f)
		q.st.NewFlows++
	}
	if q.n > q.limit {
		// Over the limit: drop from the head of the fattest flow (RFC 8290 4.1).
		fat := &q.flows[0]
		for i := range q.flows {
			if q.flows[i].bytes > fat.bytes {
				fat = &q.flows[i]
			}
		}
		d := fat.pop()
		q.n--
		q.bytes -= len(d.buf)
		q.st.Overlimit++
		q.st.DropsByFlow++
		dropped := d == p
		d.free()
		q.st.noteBacklog(q.n, q.bytes)
		return !dropped
	}
	q.st.noteBacklog(q.n, q.bytes)
	return true
}

func (q *fqCoDel) Dequeue(now int64) *packet {
	for {
		l := &q.newF
		if l.head == nil {
			l = &q.oldF
			if l.head == nil {
				return nil
			}
		}
		f := l.head
		if f.deficit <= 0 {
			f.deficit += q.quantum
			l.popFront()
			f.list = 2
			q.oldF.pushBack(f)
			continue
		}
		before := f.bytes
		beforeN := f.n
		p := f.cd.dequeue(&f.fifo, now, func(d *packet) { q.st.CoDelDrops++; d.free() })
		q.n -= beforeN - f.n
		q.bytes -= before - f.bytes
		if p == nil {
			l.popFront()
			if l == &q.newF && q.oldF.head != nil {
				// An emptied new flow goes to the old list once, so a flow
				// cannot stay "new" by sending one packet at a time.
				f.list = 2
				q.oldF.pushBack(f)
			} else {
				f.list = 0
			}
			continue
		}
		f.deficit -= len(p.buf)
		q.st.Dequeued++
		return p
	}
}
func (q *fqCoDel) Len() int           { return q.n }
func (q *fqCoDel) Backlog() int       { return q.bytes }
func (q *fqCoDel) Stats() *QdiscStats { return &q.st }

// headSojourn is how long the head packet has waited (for tests and
// samplers).
func (f *fifo) headSojourn(now int64) time.Duration {
	if p := f.peek(); p != nil {
		return time.Duration(now - p.enq)
	}
	return 0
}
