package tcp

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// pathNet joins two Protocols by a path with a bottleneck from A to B:
// packets are serialized at rate through a drop-tail queue of qlimit
// packets, after random loss; both directions add delay. The queue may
// mark ECN-capable packets CE above a threshold (as a router with a
// step AQM does). Everything runs on one manual clock, so a run is
// exact and fast.
type pathNet struct {
	clk    *clock.Manual
	a, b   *Protocol
	ha, hb *fakeHost
	q      pathHeap
	n      uint64
	rng    *rand.Rand

	rate   int64 // bottleneck bytes per second (IP packet sizes); 0: none
	qlimit int   // bottleneck queue, packets
	delay  time.Duration
	loss   float64 // random loss on A→B, before the queue
	markCE int     // mark ECT packets CE when this many are queued (0: never)

	busy     time.Duration   // the bottleneck is sending until then
	departs  []time.Duration // departure times of queued packets
	lossDrop int
	tailDrop int
	ceMarks  int
	maxQueue int
	wireA2B  int64 // bytes that crossed the bottleneck
}

type pathPkt struct {
	at       time.Duration
	n        uint64
	dst      *Protocol
	src, dip netip.Addr
	tos      uint8
	b        []byte
}

type pathHeap []*pathPkt

func (h pathHeap) Len() int { return len(h) }
func (h pathHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].n < h[j].n
}
func (h pathHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)   { *h = append(*h, x.(*pathPkt)) }
func (h *pathHeap) Pop() any {
	o := *h
	x := o[len(o)-1]
	*h = o[:len(o)-1]
	return x
}

// newPath makes the path: rate in bits per second, queue in packets,
// rtt the round-trip propagation delay.
func newPath(seed uint64, cfgA, cfgB Config, bits int64, queue int, rtt time.Duration) *pathNet {
	clk := clock.NewManual(epoch)
	n := &pathNet{clk: clk, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)),
		rate: bits / 8, qlimit: queue, delay: rtt / 2}
	n.ha = newFakeHost(clk, ipA)
	n.hb = newFakeHost(clk, ipB)
	cfgA.Seed, cfgB.Seed = []byte{1, byte(seed)}, []byte{2, byte(seed)}
	n.a = NewProtocol(n.ha, cfgA)
	n.b = NewProtocol(n.hb, cfgB)
	n.ha.hook = func(s *Segment) { n.send(n.b, s, true) }
	n.hb.hook = func(s *Segment) { n.send(n.a, s, false) }
	return n
}

func (n *pathNet) now() time.Duration { return n.clk.Now().Sub(epoch) }

func (n *pathNet) send(dst *Protocol, s *Segment, bottleneck bool) {
	now := n.now()
	hl := s.Header.Len()
	l := hl + len(s.Payload[0]) + len(s.Payload[1])
	tos := s.TOS
	at := now + n.delay
	if bottleneck {
		if n.loss > 0 && n.rng.Float64() < n.loss {
			n.lossDrop++
			return
		}
		if n.rate > 0 {
			k := 0
			for k < len(n.departs) && n.departs[k] <= now {
				k++
			}
			n.departs = n.departs[k:]
			if len(n.departs) >= n.qlimit {
				n.tailDrop++
				return
			}
			if n.markCE > 0 && len(n.departs) >= n.markCE && tos&3 != 0 {
				tos |= 3
				n.ceMarks++
			}
			d := max(n.busy, now) + time.Duration(int64(l+20)*int64(time.Second)/n.rate)
			n.busy = d
			n.departs = append(n.departs, d)
			n.maxQueue = max(n.maxQueue, len(n.departs))
			n.wireA2B += int64(l + 20)
			at = d + n.delay
		}
	}
	p := &pathPkt{at: at, dst: dst, src: s.Local.Addr(), dip: s.Remote.Addr(), tos: tos, b: make([]byte, l)}
	s.Header.Put(p.b)
	copy(p.b[hl+copy(p.b[hl:], s.Payload[0]):], s.Payload[1])
	n.n++
	p.n = n.n
	heap.Push(&n.q, p)
}

// step delivers the next due packet or advances time to it (at most 1 ms).
func (n *pathNet) step() {
	now := n.now()
	if len(n.q) > 0 && n.q[0].at <= now {
		p := heap.Pop(&n.q).(*pathPkt)
		p.dst.HandleSegment(p.src, p.dip, p.tos, p.b)
		return
	}
	d := time.Millisecond
	if len(n.q) > 0 {
		d = min(d, n.q[0].at-now)
	}
	n.clk.Advance(d)
}

// connect makes an established pair: client (sender) on A, server on B.
func (n *pathNet) connect(t testing.TB, cc string) (client, server *Endpoint) {
	t.Helper()
	l := n.b.NewEndpoint()
	if err := l.Bind(netip.AddrPortFrom(ipB, 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	client = n.a.NewEndpoint()
	if cc != "" {
		if err := client.SetCongestion(cc); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Connect(netip.AddrPortFrom(ipB, 80)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	end := n.now() + time.Minute
	for server == nil || client.State() != StateEstablished {
		if n.now() > end {
			t.Fatal("handshake did not complete")
		}
		if server == nil {
			server, _, _ = l.Accept()
		}
		n.step()
	}
	l.Close()
	return client, server
}

// bulk sends from client to server for d of virtual time, calling each
// (if set) after every step; it returns the bytes the server read.
func (n *pathNet) bulk(t testing.TB, c, s *Endpoint, d time.Duration, each func()) int {
	t.Helper()
	src, dst := newStream(3, 1<<40), newSink()
	end := n.now() + d
	for n.now() < end {
		if err := src.pump(c); err != nil {
			t.Fatal(err)
		}
		n.step()
		if err := dst.drain(s); err != nil {
			t.Fatal(err)
		}
		if each != nil {
			each()
		}
	}
	return dst.n
}
