package sim

import (
	"math/rand/v2"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// LinkConfig describes one full-duplex link; both directions get the
// same parameters and independent random streams and queues.
type LinkConfig struct {
	Bandwidth  float64       // bits per second, 0: unlimited
	Delay      time.Duration // one-way propagation delay
	Jitter     time.Duration // plus uniform [0, Jitter); order is kept
	MTU        int           // IP MTU, default 1500
	Loss       float64       // Bernoulli loss probability
	GE         *GilbertElliott
	Reorder    float64       // probability a frame is held back by ReorderGap
	ReorderGap time.Duration // default 1ms
	Duplicate  float64
	Corrupt    float64 // probability one bit of the frame is flipped
	Queue      QueueConfig
	BlockICMP  bool // drop every ICMP frame (a firewall: makes PMTU black holes)
}

// GilbertElliott is the two-state bursty loss model: in Good a frame is
// lost with LossGood, in Bad with LossBad; after each frame the state
// flips Good→Bad with P and Bad→Good with R.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// DirStats count one direction of a link.
type DirStats struct {
	TxFrames   uint64 `json:"tx_frames"` // put on the wire
	TxBytes    uint64 `json:"tx_bytes"`
	RxFrames   uint64 `json:"rx_frames"` // delivered at the far end
	RxBytes    uint64 `json:"rx_bytes"`
	Lost       uint64 `json:"lost"` // random loss on the wire
	Corrupted  uint64 `json:"corrupted"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	DownDrops  uint64 `json:"down_drops"` // offered or in flight while the link was down
	MTUDrops   uint64 `json:"mtu_drops"`  // larger than the link MTU
	ICMPDrops  uint64 `json:"icmp_blocked"`
	// Sojourn is the time frames spent in the queue.
	SojournSum   time.Duration `json:"-"`
	SojournMax   time.Duration `json:"-"`
	SojournCount uint64        `json:"-"`
	BusyTime     time.Duration `json:"-"` // serialising frames
}

// Link joins two ports.
type Link struct {
	Name string
	Cfg  LinkConfig
	s    *Sim
	Ends [2]*Port
	dirs [2]*dir
	up   bool
	pcap *link.PcapWriter
	qs   [2][]QSample // sampled backlog per direction
}

// Port is one end of a link, owned by a host NIC or a switch.
type Port struct {
	Name string
	link *Link
	side int
	sink frameSink
}

// frameSink takes ownership of a frame arriving at a port.
type frameSink interface {
	recvFrame(pt *Port, p *packet)
}

// Link is the port's link.
func (pt *Port) Link() *Link { return pt.link }

// fire is a frame handed over by a goroutine outside the loop (bubble mode).
func (pt *Port) fire(_ uint64, p *packet) { pt.send(p) }

// send offers a frame to the port's outgoing direction (ownership passes).
func (pt *Port) send(p *packet) { pt.link.dirs[pt.side].enqueue(p) }

// dir is one direction: queue, transmitter, wire.
type dir struct {
	l       *Link
	to      *Port
	q       Qdisc
	busy    bool
	bw      float64
	rng     *rand.Rand
	geBad   bool
	lastArr int64
	St      DirStats
}

const (
	evTxDone  = 0
	evDeliver = 1
)

// NewLink makes a link between two fresh ports.
func (s *Sim) NewLink(name string, cfg LinkConfig) (*Link, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.ReorderGap == 0 {
		cfg.ReorderGap = time.Millisecond
	}
	l := &Link{Name: name, Cfg: cfg, s: s, up: true}
	for i := range 2 {
		l.Ends[i] = &Port{Name: name, link: l, side: i}
	}
	for i := range 2 {
		d := &dir{l: l, to: l.Ends[1-i], bw: cfg.Bandwidth, rng: s.Rand(name + []string{"/ab", "/ba"}[i])}
		q, err := newQdisc(cfg.Queue, s.Rand(name+[]string{"/qab", "/qba"}[i]), d.txTime)
		if err != nil {
			return nil, err
		}
		d.q = q
		l.dirs[i] = d
	}
	return l, nil
}

// txTime is how long n bytes take to serialise.
func (d *dir) txTime(n int) int64 {
	if d.bw <= 0 {
		return 0
	}
	return int64(float64(n) * 8 * 1e9 / d.bw)
}

func (d *dir) enqueue(p *packet) {
	l := d.l
	now := l.s.nowNS()
	switch {
	case !l.up:
		d.St.DownDrops++
		p.free()
		return
	case len(p.buf) > l.Cfg.MTU+wire.EthernetHeaderLen:
		d.St.MTUDrops++
		p.free()
		return
	case l.Cfg.BlockICMP && isICMP(p.buf):
		d.St.ICMPDrops++
		p.free()
		return
	}
	if !d.q.Enqueue(p, now) {
		return
	}
	if !d.busy {
		d.startTx(now)
	}
}

// startTx takes the next frame from the queue onto the wire.
func (d *dir) startTx(now int64) {
	p := d.q.Dequeue(now)
	if p == nil {
		d.busy = false
		return
	}
	d.busy = true
	so := time.Duration(now - p.enq)
	d.St.SojournSum += so
	d.St.SojournCount++
	d.St.SojournMax = max(d.St.SojournMax, so)
	d.St.TxFrames++
	d.St.TxBytes += uint64(len(p.buf))
	if d.l.pcap != nil {
		d.l.pcap.WriteFrame(Epoch.Add(time.Duration(now)), p.buf)
	}
	tx := d.txTime(len(p.buf))
	d.St.BusyTime += time.Duration(tx)
	d.l.s.scheduleAt(now+tx, d, evTxDone, p)
}

func (d *dir) fire(kind uint64, p *packet) {
	now := d.l.s.nowNS()
	if kind == evDeliver {
		if !d.l.up {
			d.St.DownDrops++
			p.free()
			return
		}
		d.St.RxFrames++
		d.St.RxBytes += uint64(len(p.buf))
		d.to.sink.recvFrame(d.to, p)
		return
	}
	// The last bit left: decide the frame's fate on the wire, then start
	// the next one.
	d.propagate(p, now)
	d.startTx(now)
}

func (d *dir) lost() bool {
	c := &d.l.Cfg
	if ge := c.GE; ge != nil {
		loss := ge.LossGood
		if d.geBad {
			loss = ge.LossBad
		}
		lost := loss > 0 && d.rng.Float64() < loss
		if d.geBad {
			d.geBad = !(d.rng.Float64() < ge.R)
		} else {
			d.geBad = d.rng.Float64() < ge.P
		}
		if lost {
			return true
		}
	}
	return c.Loss > 0 && d.rng.Float64() < c.Loss
}

func (d *dir) propagate(p *packet, now int64) {
	c := &d.l.Cfg
	if !d.l.up {
		d.St.DownDrops++
		p.free()
		return
	}
	if d.lost() {
		d.St.Lost++
		p.free()
		return
	}
	if c.Corrupt > 0 && d.rng.Float64() < c.Corrupt && len(p.buf) > 0 {
		i := d.rng.IntN(len(p.buf))
		p.buf[i] ^= 1 << d.rng.IntN(8)
		d.St.Corrupted++
	}
	copies := 1
	if c.Duplicate > 0 && d.rng.Float64() < c.Duplicate {
		copies = 2
		d.St.Duplicated++
	}
	for k := range copies {
		q := p
		if k == 1 {
			q = p.clone()
		}
		at := now + int64(c.Delay)
		if c.Jitter > 0 {
			at += d.rng.Int64N(int64(c.Jitter))
		}
		if c.Reorder > 0 && d.rng.Float64() < c.Reorder {
			// Held back: frames behind it overtake.
			at += int64(c.ReorderGap)
			d.St.Reordered++
		} else {
			at = max(at, d.lastArr)
			d.lastArr = at
		}
		d.l.s.scheduleAt(at, d, evDeliver, q)
	}
}

// SetUp takes the link up or down. Going down flushes both queues (as a
// carrier loss does) and loses frames in flight.
func (l *Link) SetUp(up bool) {
	l.up = up
	if up {
		return
	}
	now := l.s.nowNS()
	for _, d := range l.dirs {
		for {
			p := d.q.Dequeue(now)
			if p == nil {
				break
			}
			d.St.DownDrops++
			p.free()
		}
	}
}

// Up reports whether the link is up.
func (l *Link) Up() bool { return l.up }

// SetBandwidth changes the rate of both directions from the next frame on.
func (l *Link) SetBandwidth(bps float64) {
	l.Cfg.Bandwidth = bps
	for _, d := range l.dirs {
		d.bw = bps
	}
}

// Dir exposes one direction's counters and queue: 0 is from Ends[0] to Ends[1].
func (l *Link) Dir(i int) (*DirStats, Qdisc) { return &l.dirs[i].St, l.dirs[i].q }
