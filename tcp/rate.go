package tcp

import (
	"sync"
	"time"
)

// Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation,
// Linux's tcp_rate.c): each segment of new data remembers how much had
// been delivered, and when, at the moment it left; the ACK that
// delivers it gives a rate sample over that interval. BBR builds its
// model from these samples, HyStart++ takes one RTT sample per ACK.

// rateRec is the delivery state when a segment of new data left.
type rateRec struct {
	end         uint32
	appLimited  bool
	delivered   int64
	deliveredAt time.Duration
	firstTxAt   time.Duration
	sentAt      time.Duration
}

// rateRing holds the records of the flight, in sequence (= send) order.
// A connection holds one only while data is in flight.
type rateRing struct {
	r                      []rateRec // len is a power of two
	head, n                int
	deliveredAt, firstTxAt time.Duration
}

const (
	rateRingMin     = 16
	rateRingClasses = 10 // pooled sizes 16 .. 8192 records
)

// rateRingPools recycle rings by size, so that a connection whose
// flight empties and fills again (every request, every idle period)
// allocates nothing in steady state, and an idle one holds no ring.
var rateRingPools [rateRingClasses]sync.Pool

func init() {
	for k := range rateRingPools {
		n := rateRingMin << k
		rateRingPools[k].New = func() any { return &rateRing{r: make([]rateRec, n)} }
	}
}

// ringClass is the pool index of a ring of n records, or -1.
func ringClass(n int) int {
	for k := 0; k < rateRingClasses; k++ {
		if rateRingMin<<k == n {
			return k
		}
	}
	return -1
}

func putRing(g *rateRing) {
	if k := ringClass(len(g.r)); k >= 0 {
		rateRingPools[k].Put(g)
	}
}

// rateState is the per-connection part that outlives an idle period.
type rateState struct {
	delivered  int64 // bytes delivered (acknowledged or SACKed) so far
	appLimited int64 // while non-zero, samples are app-limited until delivered passes it
	ring       *rateRing
}

// rateSample is what one ACK tells (Linux's struct rate_sample).
type rateSample struct {
	valid          bool          // delivered and interval make a rate
	delivered      int64         // bytes delivered over interval
	interval       time.Duration // the longer of the send and ACK intervals
	priorDelivered int64         // delivered when the sampled segment left
	rtt            time.Duration // of the sampled segment; 0 if none
	appLimited     bool
	acked          int // bytes newly delivered by this ACK
	lost           int // bytes newly marked lost by this ACK
	priorInFlight  int // bytes in flight before this ACK
}

// onSend records a segment of new data [seq, end) leaving at now;
// idle says nothing was in flight before it.
func (r *rateState) onSend(end uint32, idle bool, now time.Duration) {
	g := r.ring
	if g == nil {
		g = rateRingPools[0].Get().(*rateRing)
		g.head, g.n = 0, 0
		r.ring = g
		idle = true
	}
	if idle {
		g.firstTxAt, g.deliveredAt = now, now
	}
	if g.n == len(g.r) {
		var nr []rateRec
		var spare *rateRing
		if k := ringClass(len(g.r)); k >= 0 && k+1 < rateRingClasses {
			spare = rateRingPools[k+1].Get().(*rateRing)
			nr = spare.r
		} else {
			nr = make([]rateRec, 2*len(g.r))
		}
		for i := 0; i < g.n; i++ {
			nr[i] = g.r[(g.head+i)&(len(g.r)-1)]
		}
		if spare != nil {
			spare.r = g.r // the smaller array goes back to its pool
			putRing(spare)
		}
		g.r, g.head = nr, 0
	}
	g.r[(g.head+g.n)&(len(g.r)-1)] = rateRec{end: end, appLimited: r.appLimited != 0,
		delivered: r.delivered, deliveredAt: g.deliveredAt, firstTxAt: g.firstTxAt, sentAt: now}
	g.n++
}

// onAck counts acked newly delivered bytes, the highest of them ending
// at high, and fills rs from the newest segment they complete.
func (r *rateState) onAck(acked int, high uint32, minRTT time.Duration, now time.Duration, rs *rateSample) {
	rs.valid, rs.rtt, rs.acked = false, 0, acked
	if acked <= 0 {
		return
	}
	r.delivered += int64(acked)
	if r.appLimited != 0 && r.delivered > r.appLimited {
		r.appLimited = 0
	}
	g := r.ring
	if g == nil {
		return
	}
	g.deliveredAt = now
	var p rateRec
	found := false
	for g.n > 0 {
		x := &g.r[g.head]
		if !seqLEQ(x.end, high) {
			break
		}
		p, found = *x, true
		g.head = (g.head + 1) & (len(g.r) - 1)
		g.n--
	}
	if !found {
		return
	}
	g.firstTxAt = p.sentAt
	rs.priorDelivered = p.delivered
	rs.delivered = r.delivered - p.delivered
	rs.appLimited = p.appLimited
	rs.rtt = max(now-p.sentAt, time.Microsecond)
	rs.interval = max(p.sentAt-p.firstTxAt, now-p.deliveredAt)
	// An interval shorter than the minimum RTT cannot be right (ACK
	// compression): Linux discards such a sample.
	if m := min(minRTT, rs.rtt); m > 0 && rs.interval < m {
		return
	}
	rs.valid = rs.interval > 0
}

// forget drops the records (an RTO resends everything: their send
// times no longer date what an ACK delivers), and the ring itself when
// nothing is in flight.
func (r *rateState) forget() {
	if g := r.ring; g != nil {
		putRing(g)
		r.ring = nil
	}
}

// checkAppLimited marks the samples to come as app-limited when the
// application, not cwnd, limits what is in flight (Linux's
// tcp_rate_check_app_limited).
func (r *rateState) checkAppLimited(inflight int) {
	r.appLimited = max(r.delivered+int64(inflight), 1)
}
