package link

import (
	"hash/crc32"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// ImpairApply chooses the directions an Impair acts on.
type ImpairApply uint8

const (
	ImpairBoth    ImpairApply = iota // frames written and frames received
	ImpairEgress                     // frames written only
	ImpairIngress                    // frames received only
)

// Defaults of ImpairConfig.
const (
	DefaultImpairQueue = 1000
	DefaultReorderHold = time.Millisecond
)

// ImpairConfig describes what an Impair does to frames. Probabilities are
// in [0, 1]. Each direction draws from its own PCG generator seeded from
// Seed, the same number of draws for every frame whatever is decided, so
// the same seed and the same frame sequence give the same decisions.
type ImpairConfig struct {
	Seed int64

	Loss      float64 // drop the frame
	Duplicate float64 // send it twice
	Reorder   float64 // hold it back until the next frame has passed
	Corrupt   float64 // on the wire: flip 1-3 distinct bits anywhere in the frame (see FCS below)
	// CorruptHost corrupts a frame after the receiving NIC's FCS check
	// (inside the host: memory, DMA): 1-3 bits of one 16-bit word of an
	// IPv4 packet, the error class the IP, UDP and TCP checksums are
	// specified to catch. Non-IPv4 frames are left alone.
	CorruptHost float64

	Delay  time.Duration // added to every frame
	Jitter time.Duration // plus a uniform random part in [0, Jitter); order is kept
	Rate   int64         // bits/s of a bottleneck; 0 = unlimited

	// MarkCE marks an ECN-capable IPv4 packet (ECT(0) or ECT(1)) CE
	// with this probability (one more draw per frame when set); CEQueue
	// marks every ECN-capable packet that finds at least CEQueue frames
	// waiting for Delay/Rate, as a router's step AQM would. Packets that
	// are not ECN-capable are never marked (RFC 3168 5).
	MarkCE  float64
	CEQueue int

	// QueueLimit bounds the frames waiting for Delay/Rate per direction;
	// frames beyond it are dropped (QueueDrops), as at a router's queue.
	// 0 means DefaultImpairQueue.
	QueueLimit int
	// ReorderHold is the longest a held-back frame waits for a successor;
	// 0 means DefaultReorderHold.
	ReorderHold time.Duration

	Clock clock.Clock // timers; default clock.Real{}
	Apply ImpairApply
}

// ImpairStats count an Impair's decisions for one direction.
type ImpairStats struct {
	Frames       atomic.Uint64 // frames that came in
	Dropped      atomic.Uint64 // lost by Loss
	Duplicated   atomic.Uint64
	Reordered    atomic.Uint64 // held back
	Corrupted    atomic.Uint64 // corrupted on the wire
	FCSDrops     atomic.Uint64 // of those, dropped by the modelled Ethernet FCS check
	HostCorrupt  atomic.Uint64 // corrupted after the FCS check (CorruptHost)
	BadDelivered atomic.Uint64 // frames passed on carrying a corruption (duplicates included)
	Delayed      atomic.Uint64 // waited in the delay/rate queue
	QueueDrops   atomic.Uint64 // dropped at a full delay/rate queue
	OutputErrors atomic.Uint64 // refused by the next stage (its own counters say why)
	CEMarked     atomic.Uint64 // ECN-capable packets marked CE (MarkCE, CEQueue)
}

// ImpairSnapshot is a plain copy of ImpairStats.
type ImpairSnapshot struct {
	Frames, Dropped, Duplicated, Reordered, Corrupted, Delayed, QueueDrops, OutputErrors uint64
	FCSDrops, HostCorrupt, BadDelivered                                                  uint64
	CEMarked                                                                             uint64
}

// Snapshot reads all counters.
func (s *ImpairStats) Snapshot() ImpairSnapshot {
	return ImpairSnapshot{s.Frames.Load(), s.Dropped.Load(), s.Duplicated.Load(), s.Reordered.Load(),
		s.Corrupted.Load(), s.Delayed.Load(), s.QueueDrops.Load(), s.OutputErrors.Load(),
		s.FCSDrops.Load(), s.HostCorrupt.Load(), s.BadDelivered.Load(), s.CEMarked.Load()}
}

// Impair is middleware that loses, duplicates, reorders, corrupts, delays
// and rate-limits frames. Without Delay, Jitter and Rate it works on the
// caller's goroutine and allocates nothing in steady state; with them, a
// scheduler goroutine per direction sends frames when they fall due.
type Impair struct {
	inner   Endpoint
	cfg     ImpairConfig
	egress  *impairPath // nil when the direction is not impaired
	ingress *impairPath
	recv    Receiver
	closed  atomic.Bool

	Egress, Ingress ImpairStats
}

// NewImpair wraps inner.
func NewImpair(inner Endpoint, cfg ImpairConfig) *Impair {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = DefaultImpairQueue
	}
	if cfg.ReorderHold <= 0 {
		cfg.ReorderHold = DefaultReorderHold
	}
	m := &Impair{inner: inner, cfg: cfg}
	if cfg.Apply != ImpairIngress {
		// Distinct second seed words give the directions independent streams.
		m.egress = newImpairPath(m, &m.Egress, 0x6567726573730001)
		m.egress.out = m.writeInner
	}
	if cfg.Apply != ImpairEgress {
		m.ingress = newImpairPath(m, &m.Ingress, 0x696e677265737302)
		m.ingress.out = m.deliver
	}
	return m
}

func (m *Impair) MTU() int               { return m.inner.MTU() }
func (m *Impair) Kind() Kind             { return m.inner.Kind() }
func (m *Impair) HardwareAddr() wire.MAC { return m.inner.HardwareAddr() }
func (m *Impair) Stats() *Stats          { return m.inner.Stats() }

// Inner is the wrapped endpoint.
func (m *Impair) Inner() Endpoint { return m.inner }

func (m *Impair) Attach(r Receiver) {
	m.recv = r
	if m.ingress == nil {
		m.inner.Attach(r)
		return
	}
	m.ingress.start()
	m.inner.Attach(m.ingress)
}

// WriteFrames impairs frames on their way out. Frames lost or queued by
// the impairment count as taken, like frames handed to a wire; an error
// of the inner endpoint (synchronous mode) is passed on.
func (m *Impair) WriteFrames(frames [][]byte) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if m.egress == nil {
		return m.inner.WriteFrames(frames)
	}
	if m.egress.started.CompareAndSwap(false, true) {
		m.egress.run()
	}
	return len(frames), m.egress.process(frames)
}

// WaitRoom passes to the inner endpoint.
func (m *Impair) WaitRoom(done <-chan struct{}) { waitRoom(m.inner, done) }

// Close closes the inner endpoint, then drops what the impairment still holds.
func (m *Impair) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	err := m.inner.Close()
	if m.egress != nil {
		m.egress.stop()
	}
	if m.ingress != nil {
		m.ingress.stop()
	}
	return err
}

func (m *Impair) writeInner(frames [][]byte) error {
	n, err := m.inner.WriteFrames(frames)
	if n < len(frames) {
		m.Egress.OutputErrors.Add(uint64(len(frames) - n))
	}
	return err
}

func (m *Impair) deliver(frames [][]byte) error {
	m.recv.DeliverFrames(frames)
	return nil
}

type impairEntry struct {
	b   []byte
	due time.Time
}

// impairPath is one direction. mu orders decisions and, in synchronous
// mode, output, so frames leave in decision order.
type impairPath struct {
	m         *Impair
	cfg       *ImpairConfig
	st        *ImpairStats
	out       func([][]byte) error
	scheduled bool
	bufSize   int
	started   atomic.Bool

	mu      sync.Mutex
	closed  bool
	rng     *rand.Rand
	batch   [][]byte
	used    [][]byte // owned buffers in batch, freed after output
	free    [][]byte
	held    []byte
	heldBad bool // held carries a corruption
	holding bool
	fcs     bool // the link has an Ethernet FCS that the receiver checks
	holdEnd time.Time
	hold    clock.Timer

	// Scheduled mode: a FIFO ring of frames with their due times.
	ring            []impairEntry
	rhead, rlen     int
	lastTx, lastDue time.Time
	wake            chan struct{}
	done            chan struct{}
	exited          chan struct{}
	timer           clock.Timer // used by the scheduler goroutine only
	sbatch          [][]byte
}

func newImpairPath(m *Impair, st *ImpairStats, seed2 uint64) *impairPath {
	c := &m.cfg
	p := &impairPath{m: m, cfg: c, st: st,
		rng:       rand.New(rand.NewPCG(uint64(c.Seed), seed2)),
		scheduled: c.Delay > 0 || c.Jitter > 0 || c.Rate > 0,
		bufSize:   m.inner.MTU() + wire.EthernetHeaderLen + 4,
		fcs:       m.inner.Kind() == KindEthernet,
	}
	if p.scheduled {
		p.ring = make([]impairEntry, c.QueueLimit)
		p.wake = make(chan struct{}, 1)
		p.done = make(chan struct{})
		p.exited = make(chan struct{})
	}
	return p
}

// start launches the scheduler (once).
func (p *impairPath) start() {
	if p.started.CompareAndSwap(false, true) {
		p.run()
	}
}

func (p *impairPath) run() {
	if p.scheduled {
		go p.scheduler()
	}
}

func (p *impairPath) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.hold != nil {
		p.hold.Stop()
	}
	p.mu.Unlock()
	if p.scheduled {
		close(p.done)
		if p.started.Swap(true) {
			<-p.exited
		} else {
			close(p.exited)
		}
	}
}

// DeliverFrames is the ingress path's receiver on the inner endpoint.
func (p *impairPath) DeliverFrames(frames [][]byte) { _ = p.process(frames) }

// The ingress path is an IdleReceiver for the inner endpoint when the
// receiver behind it is one and frames reach it on the inner endpoint's
// reading goroutine (no Delay, Jitter or Rate): the inner endpoint's
// "nothing more to read" then means the same with the impairment in
// between, so TCP may hold a hole's ACK for the next batch as it does
// without it. Scheduled frames arrive from the impairment's own
// goroutine, whenever they fall due: there the receiver is not told to
// hold. mu orders the calls with the reorder hold's timer deliveries.
func (p *impairPath) idleRecv() IdleReceiver {
	if p.scheduled {
		return nil
	}
	r, _ := p.m.recv.(IdleReceiver)
	return r
}

func (p *impairPath) HoldForIdle() {
	if r := p.idleRecv(); r != nil {
		p.mu.Lock()
		r.HoldForIdle()
		p.mu.Unlock()
	}
}

func (p *impairPath) Holding() bool {
	r := p.idleRecv()
	if r == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.Holding()
}

func (p *impairPath) Idle() {
	if r := p.idleRecv(); r != nil {
		p.mu.Lock()
		r.Idle()
		p.mu.Unlock()
	}
}

func (p *impairPath) getBuf(f []byte) []byte {
	var b []byte
	if k := len(p.free); k > 0 {
		b = p.free[k-1]
		p.free = p.free[:k-1]
	}
	if cap(b) < len(f) {
		b = make([]byte, 0, max(len(f), p.bufSize))
	}
	b = b[:len(f)]
	copy(b, f)
	return b
}

func (p *impairPath) putBuf(b []byte) { p.free = append(p.free, b[:0]) }

// process runs the decisions for each frame, in order.
func (p *impairPath) process(frames [][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	c := p.cfg
	now := time.Time{}
	if p.scheduled || c.Reorder > 0 {
		now = c.Clock.Now()
	}
	for _, f := range frames {
		p.st.Frames.Add(1)
		// A fixed number of draws per frame keeps the streams aligned.
		uLoss, uDup, uReo, uCor := p.rng.Float64(), p.rng.Float64(), p.rng.Float64(), p.rng.Float64()
		uJit, uBits := p.rng.Uint64(), p.rng.Uint64()
		// The high 53 bits of uBits (whose low bits pick the flip count)
		// decide CorruptHost, so adding it kept every seed's stream.
		uHost := float64(uBits>>11) / (1 << 53)
		pos := [3]uint64{p.rng.Uint64(), p.rng.Uint64(), p.rng.Uint64()}
		uCE := 1.0
		if c.MarkCE > 0 {
			uCE = p.rng.Float64()
		}
		if uLoss < c.Loss {
			p.st.Dropped.Add(1)
			continue
		}
		g, owned, bad := f, false, false
		if uCor < c.Corrupt && len(f) > 0 {
			g, owned, bad = p.getBuf(f), true, true
			corruptWire(g, uBits, pos)
			p.st.Corrupted.Add(1)
			// The receiving NIC checks the CRC-32 the sending NIC
			// appended (computed over the frame as sent): a mismatch
			// is dropped there, before any stack sees the frame.
			if p.fcs && crc32.ChecksumIEEE(g) != crc32.ChecksumIEEE(f) {
				p.st.FCSDrops.Add(1)
				p.putBuf(g)
				continue
			}
		}
		if uCE < c.MarkCE && p.ectOffset(g) >= 0 {
			// A router on the way marks it (and writes a new FCS).
			if !owned {
				g, owned = p.getBuf(f), true
			}
			p.markCE(g)
		}
		if uHost < c.CorruptHost && len(p.ipv4Region(g)) >= 2 {
			if !owned {
				g, owned = p.getBuf(f), true
			}
			corruptWord(p.ipv4Region(g), uBits, pos)
			p.st.HostCorrupt.Add(1)
			bad = true
		}
		if uReo < c.Reorder && !p.holding {
			if !owned {
				g = p.getBuf(f)
			}
			p.held, p.holding, p.heldBad = g, true, bad
			p.holdEnd = now.Add(c.ReorderHold)
			if p.hold == nil {
				p.hold = c.Clock.AfterFunc(c.ReorderHold, p.holdExpired)
			} else {
				p.hold.Reset(c.ReorderHold)
			}
			p.st.Reordered.Add(1)
			continue
		}
		var jit time.Duration
		if c.Jitter > 0 {
			jit = time.Duration(uJit % uint64(c.Jitter))
		}
		p.emit(g, owned, bad, now, jit)
		if uDup < c.Duplicate {
			p.st.Duplicated.Add(1)
			// A copy of its own: a receiver may change a frame in place.
			p.emit(p.getBuf(g), true, bad, now, jit)
		}
		if p.holding {
			p.holding = false
			p.hold.Stop()
			p.emit(p.held, true, p.heldBad, now, jit)
			p.held = nil
		}
	}
	return p.flush()
}

// ectOffset is the offset of the IPv4 header of an ECN-capable
// (ECT(0) or ECT(1)) packet in frame b, or -1.
func (p *impairPath) ectOffset(b []byte) int {
	off := 0
	if p.m.inner.Kind() == KindEthernet {
		if len(b) < wire.EthernetHeaderLen || b[12] != 0x08 || b[13] != 0x00 {
			return -1
		}
		off = wire.EthernetHeaderLen
	}
	if len(b) < off+20 || b[off]>>4 != 4 {
		return -1
	}
	if e := b[off+1] & 3; e == 0 || e == 3 {
		return -1 // not ECN-capable, or already marked
	}
	return off
}

// markCE sets CE in the ECN field of b's IPv4 header (ectOffset >= 0)
// and updates the header checksum incrementally (RFC 1624).
func (p *impairPath) markCE(b []byte) {
	off := p.ectOffset(b)
	if off < 0 {
		return
	}
	old := uint16(b[off])<<8 | uint16(b[off+1])
	b[off+1] |= 3
	nw := uint16(b[off])<<8 | uint16(b[off+1])
	hc := uint16(b[off+10])<<8 | uint16(b[off+11])
	hc = wire.UpdateChecksum(hc, old, nw)
	b[off+10], b[off+11] = byte(hc>>8), byte(hc)
	p.st.CEMarked.Add(1)
}

func (p *impairPath) countBad(bad bool) {
	if bad {
		p.st.BadDelivered.Add(1)
	}
}

// corruptWire flips 1-3 distinct bits anywhere in the frame, link header
// included: what noise on a wire does. The receiver's FCS model (see
// process) decides whether a stack ever sees the frame; on a link
// without an FCS (KindIP) every such frame is passed on.
func corruptWire(b []byte, uBits uint64, pos [3]uint64) {
	nbits := uint64(len(b)) * 8
	n := 1 + uBits%3
	if n > nbits {
		n = nbits
	}
	var flipped [3]uint64
	for i := uint64(0); i < n; i++ {
		at := pos[i] % nbits
		for j := uint64(0); j < i; j++ { // distinct bits: no flip undoes another
			if flipped[j] == at {
				at = (at + 1) % nbits
				j = ^uint64(0) // recheck from the start
			}
		}
		flipped[i] = at
		b[at/8] ^= 1 << (at % 8)
	}
}

// ipv4Region is the IPv4 packet inside frame b (up to its total length,
// so link padding is left out), or nil when b carries none.
func (p *impairPath) ipv4Region(b []byte) []byte {
	if p.m.inner.Kind() == KindEthernet {
		if len(b) < wire.EthernetHeaderLen || wire.Ethernet(b).EtherType() != wire.EtherTypeIPv4 {
			return nil
		}
		b = b[wire.EthernetHeaderLen:]
	}
	if len(b) < wire.IPv4MinHeaderLen || b[0]>>4 != 4 {
		return nil
	}
	if tl := int(b[2])<<8 | int(b[3]); tl >= wire.IPv4MinHeaderLen && tl <= len(b) {
		return b[:tl]
	}
	return b
}

// corruptWord flips 1-3 distinct bits of one 16-bit word of region. The
// Internet checksum detects every error confined to one word (short of
// turning 0x0000 into 0xffff); two flips of the same bit position in
// different words, one 0->1 and one 1->0, cancel in a ones' complement
// sum, which is why the wire has the FCS. This is the corruption past
// the FCS that the IP, UDP and TCP checksums are specified to catch.
func corruptWord(region []byte, uBits uint64, pos [3]uint64) {
	word := int(pos[0]%uint64(len(region)/2)) * 2 // aligned to the IP header
	n := 1 + uBits%3
	var done uint16
	for i := uint64(0); i < n; i++ {
		bit := uint16(1) << ((pos[1] >> (4 * i)) % 16)
		for done&bit != 0 {
			bit = bit<<1 | bit>>15
		}
		done |= bit
	}
	region[word] ^= byte(done >> 8)
	region[word+1] ^= byte(done)
}

// emit passes a frame on: into the output batch, or into the delay queue.
// bad says g carries a corruption, counted once g is passed on.
func (p *impairPath) emit(g []byte, owned, bad bool, now time.Time, jit time.Duration) {
	c := p.cfg
	if !p.scheduled {
		p.batch = append(p.batch, g)
		if owned {
			p.used = append(p.used, g)
		}
		p.countBad(bad)
		return
	}
	if p.rlen == len(p.ring) {
		p.st.QueueDrops.Add(1)
		if owned {
			p.putBuf(g)
		}
		return
	}
	p.countBad(bad)
	if !owned {
		g = p.getBuf(g)
	}
	if c.CEQueue > 0 && p.rlen >= c.CEQueue && p.ectOffset(g) >= 0 {
		p.markCE(g)
	}
	t := now
	if c.Rate > 0 {
		// The bottleneck sends one frame after another.
		if p.lastTx.After(t) {
			t = p.lastTx
		}
		t = t.Add(time.Duration(uint64(len(g)) * 8 * uint64(time.Second) / uint64(c.Rate)))
		p.lastTx = t
	}
	due := t.Add(c.Delay + jit)
	if due.Before(p.lastDue) {
		due = p.lastDue // jitter does not reorder
	}
	p.lastDue = due
	if due.After(now) {
		p.st.Delayed.Add(1)
	}
	p.ring[(p.rhead+p.rlen)%len(p.ring)] = impairEntry{g, due}
	p.rlen++
	if p.rlen == 1 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// flush sends the synchronous batch; called with mu held.
func (p *impairPath) flush() error {
	if len(p.batch) == 0 {
		return nil
	}
	err := p.out(p.batch)
	clear(p.batch)
	p.batch = p.batch[:0]
	for _, b := range p.used {
		p.putBuf(b)
	}
	clear(p.used)
	p.used = p.used[:0]
	return err
}

// holdExpired releases a held frame nobody overtook in time.
func (p *impairPath) holdExpired() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.holding {
		return
	}
	now := p.cfg.Clock.Now()
	if now.Before(p.holdEnd) {
		return // a stale firing; the timer was reset for a later frame
	}
	p.holding = false
	p.emit(p.held, true, p.heldBad, now, 0)
	p.held = nil
	_ = p.flush()
}

func (p *impairPath) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// scheduler sends queued frames when they fall due, in batches.
func (p *impairPath) scheduler() {
	defer close(p.exited)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		now := p.cfg.Clock.Now()
		for p.rlen > 0 && !p.ring[p.rhead].due.After(now) {
			e := &p.ring[p.rhead]
			p.sbatch = append(p.sbatch, e.b)
			*e = impairEntry{}
			p.rhead = (p.rhead + 1) % len(p.ring)
			p.rlen--
		}
		var wait time.Duration
		if p.rlen > 0 {
			wait = p.ring[p.rhead].due.Sub(now)
		}
		p.mu.Unlock()

		if len(p.sbatch) > 0 {
			_ = p.out(p.sbatch)
			p.mu.Lock()
			for _, b := range p.sbatch {
				p.putBuf(b)
			}
			p.mu.Unlock()
			clear(p.sbatch)
			p.sbatch = p.sbatch[:0]
			continue
		}
		if wait > 0 {
			if p.timer == nil {
				p.timer = p.cfg.Clock.AfterFunc(wait, p.poke)
			} else {
				p.timer.Reset(wait)
			}
		}
		select {
		case <-p.wake:
		case <-p.done:
			if p.timer != nil {
				p.timer.Stop()
			}
			return
		}
	}
}
