package tcp

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sockstack/sockstack/clock"
)

// A hierarchical timing wheel (Varghese & Lauck) holds every
// connection's retransmission/probe/keepalive timer and its delayed-ACK
// timer, so that a million connections are a million list entries
// inside their endpoints, not a million runtime timers. One clock timer
// drives the wheel, armed at the earliest deadline, so virtual clocks
// work as before and deadlines stay exact (the wheel only sorts by
// millisecond; each entry keeps its precise deadline).
//
// Level 0 has 256 slots of 1 ms; levels 1-3 have 64 slots each of 256
// ms, 16.4 s and 17.5 min; later deadlines (beyond 18.6 h) wait in an
// overflow list. An entry lives in the lowest level whose span, counted
// from the current tick, contains it, and moves down when the wheel
// reaches its slot.

const (
	wheelTick    = time.Millisecond
	wheelL0Bits  = 8
	wheelLnBits  = 6
	wheelLevels  = 4 // level 0 and three upper levels
	wheelL0Slots = 1 << wheelL0Bits
	wheelLnSlots = 1 << wheelLnBits
)

// wheelShift is the tick shift of a slot at each level, and the block
// above level 3 (the overflow period).
var wheelShift = [wheelLevels + 1]uint{0, 8, 14, 20, 26}

// Timer kinds: which endpoint handler an entry calls.
const (
	wheelNone    uint8 = iota // a timer of the wheel's own tests
	wheelRetrans              // Endpoint.onTimer
	wheelDelack               // Endpoint.onDelayedAck
)

// wheelTimer is one timer, embedded in its endpoint.
type wheelTimer struct {
	next, prev *wheelTimer
	at         time.Duration
	kind       uint8 // which of its endpoint's timers it is (endpoint)
	queued     bool
	lvl        int8 // wheelLevels: the overflow list
	slot       uint8
}

// endpoint is the Endpoint t is embedded in, found from t's address
// and kind rather than kept in a pointer: 8 bytes less per timer, two
// timers per connection (issue 10).
func (t *wheelTimer) endpoint() *Endpoint {
	off := unsafe.Offsetof(Endpoint{}.timer)
	if t.kind == wheelDelack {
		off = unsafe.Offsetof(Endpoint{}.dackTimer)
	}
	return (*Endpoint)(unsafe.Add(unsafe.Pointer(t), -int(off)))
}

type wheelList struct{ head *wheelTimer }

// timerWheel is a Protocol's wheel. Its lock is taken under endpoint
// locks, never the other way round: handlers run after it is released.
type timerWheel struct {
	mu      sync.Mutex
	clk     clock.Clock
	now     func() time.Duration
	drv     clock.Timer
	armedAt time.Duration // when drv fires; 0: not armed
	cur     int64         // the current tick: earlier slots are empty
	l0      [wheelL0Slots]wheelList
	ln      [wheelLevels - 1][wheelLnSlots]wheelList
	over    wheelList
	bits0   [wheelL0Slots / 64]uint64
	bitsn   [wheelLevels - 1]uint64
	count   [wheelLevels + 1]int
	spare   []*wheelTimer // the fired-list buffer, reused

	arms, fires atomic.Uint64 // for benchmarks and tests
	testFire    func(*wheelTimer)
}

func newTimerWheel(clk clock.Clock, now func() time.Duration) *timerWheel {
	w := &timerWheel{clk: clk, now: now}
	w.cur = int64(now() / wheelTick)
	return w
}

// arm (re)schedules t at at.
func (w *timerWheel) arm(t *wheelTimer, at time.Duration) {
	w.mu.Lock()
	w.arms.Add(1)
	if t.queued {
		w.unlink(t)
	}
	t.at = at
	w.place(t)
	if w.armedAt == 0 || at < w.armedAt {
		w.setDriver(at)
	}
	w.mu.Unlock()
}

// stop unschedules t; a handler already on its way may still run (the
// endpoint handlers check their deadlines).
func (w *timerWheel) stop(t *wheelTimer) {
	w.mu.Lock()
	if t.queued {
		w.unlink(t)
	}
	w.mu.Unlock()
}

func (w *timerWheel) list(lvl int8, slot uint8) *wheelList {
	switch {
	case lvl == 0:
		return &w.l0[slot]
	case lvl == wheelLevels:
		return &w.over
	default:
		return &w.ln[lvl-1][slot]
	}
}

func (w *timerWheel) unlink(t *wheelTimer) {
	l := w.list(t.lvl, t.slot)
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	if l.head == nil {
		switch {
		case t.lvl == 0:
			w.bits0[t.slot/64] &^= 1 << (t.slot % 64)
		case t.lvl < wheelLevels:
			w.bitsn[t.lvl-1] &^= 1 << t.slot
		}
	}
	w.count[t.lvl]--
	t.next, t.prev, t.queued = nil, nil, false
}

// place puts t in the slot its deadline belongs to, counted from cur.
func (w *timerWheel) place(t *wheelTimer) {
	tick := max(int64(t.at/wheelTick), w.cur) // overdue: the current slot
	lvl := int8(wheelLevels)
	for l := 0; l < wheelLevels; l++ {
		if tick>>wheelShift[l+1] == w.cur>>wheelShift[l+1] {
			lvl = int8(l)
			break
		}
	}
	var slot uint8
	switch {
	case lvl == 0:
		slot = uint8(tick & (wheelL0Slots - 1))
		w.bits0[slot/64] |= 1 << (slot % 64)
	case lvl < wheelLevels:
		slot = uint8((tick >> wheelShift[lvl]) & (wheelLnSlots - 1))
		w.bitsn[lvl-1] |= 1 << slot
	}
	t.lvl, t.slot, t.queued = lvl, slot, true
	l := w.list(lvl, slot)
	t.prev, t.next = nil, l.head
	if l.head != nil {
		l.head.prev = t
	}
	l.head = t
	w.count[lvl]++
}

func (w *timerWheel) setDriver(at time.Duration) {
	w.armedAt = at
	d := max(at-w.now(), 0)
	if w.drv == nil {
		w.drv = w.clk.AfterFunc(d, w.run)
	} else {
		w.drv.Reset(d)
	}
}

// run is the driver: it advances the wheel to now, fires what is due
// and re-arms for the next deadline.
func (w *timerWheel) run() {
	w.mu.Lock()
	now := w.now()
	fired := w.spare[:0]
	w.spare = nil
	fired = w.advance(now, fired)
	w.armedAt = 0
	if next, ok := w.earliest(); ok {
		w.setDriver(next)
	}
	w.mu.Unlock()
	w.fires.Add(uint64(len(fired)))
	for i, t := range fired {
		fired[i] = nil
		if w.testFire != nil {
			w.testFire(t)
			continue
		}
		switch t.kind {
		case wheelRetrans:
			t.endpoint().onTimer()
		case wheelDelack:
			t.endpoint().onDelayedAck()
		}
	}
	w.mu.Lock()
	if w.spare == nil {
		w.spare = fired[:0]
	}
	w.mu.Unlock()
}

// advance moves cur to now's tick, cascading upper slots down as their
// time comes, and collects the entries due by now.
func (w *timerWheel) advance(now time.Duration, fired []*wheelTimer) []*wheelTimer {
	nowTick := int64(now / wheelTick)
	for w.cur < nowTick {
		// Every entry of the current slot is due: its tick has passed.
		fired = w.collect(0, uint8(w.cur&(wheelL0Slots-1)), now, fired)
		// Jump over empty levels: with level 0 empty, nothing happens
		// before the next boundary of the lowest occupied level.
		next := w.cur + 1
		if w.count[0] == 0 {
			l := 1
			for l < wheelLevels && w.count[l] == 0 {
				l++
			}
			next = ((w.cur >> wheelShift[l]) + 1) << wheelShift[l]
		}
		w.cur = min(next, nowTick)
		w.cascade(w.cur)
	}
	return w.collect(0, uint8(w.cur&(wheelL0Slots-1)), now, fired)
}

// cascade re-places the entries of the upper slots that begin at tick.
func (w *timerWheel) cascade(tick int64) {
	for l := wheelLevels; l >= 1; l-- {
		if tick&(1<<wheelShift[l]-1) != 0 {
			continue
		}
		var lst *wheelList
		if l == wheelLevels {
			lst = &w.over
		} else {
			lst = &w.ln[l-1][(tick>>wheelShift[l])&(wheelLnSlots-1)]
		}
		for t := lst.head; t != nil; {
			nx := t.next
			w.unlink(t)
			w.place(t)
			t = nx
		}
	}
}

// collect unlinks the entries of a level-0 slot due by now.
func (w *timerWheel) collect(lvl int8, slot uint8, now time.Duration, fired []*wheelTimer) []*wheelTimer {
	for t := w.list(lvl, slot).head; t != nil; {
		nx := t.next
		if t.at <= now {
			w.unlink(t)
			fired = append(fired, t)
		}
		t = nx
	}
	return fired
}

// earliest is when the driver must next run: the exact earliest
// deadline in level 0, or the start of the first occupied upper slot
// (to cascade it).
func (w *timerWheel) earliest() (time.Duration, bool) {
	if w.count[0] > 0 {
		start := uint(w.cur & (wheelL0Slots - 1))
		for i := start / 64; i < uint(len(w.bits0)); i++ {
			b := w.bits0[i]
			if i == start/64 {
				b &^= 1<<(start%64) - 1
			}
			if b == 0 {
				continue
			}
			slot := uint8(i*64 + uint(bits.TrailingZeros64(b)))
			best := time.Duration(-1)
			for t := w.l0[slot].head; t != nil; t = t.next {
				if best < 0 || t.at < best {
					best = t.at
				}
			}
			return best, true
		}
	}
	for l := 1; l < wheelLevels; l++ {
		if w.count[l] == 0 {
			continue
		}
		from := uint((w.cur >> wheelShift[l]) & (wheelLnSlots - 1))
		b := w.bitsn[l-1] &^ (1<<(from+1) - 1)
		if b == 0 {
			continue
		}
		slot := int64(bits.TrailingZeros64(b))
		block := w.cur >> wheelShift[l+1] << wheelShift[l+1]
		return time.Duration(block+slot<<wheelShift[l]) * wheelTick, true
	}
	if w.count[wheelLevels] > 0 {
		return time.Duration((w.cur>>wheelShift[wheelLevels]+1)<<wheelShift[wheelLevels]) * wheelTick, true
	}
	return 0, false
}

// close stops the driver.
func (w *timerWheel) close() {
	w.mu.Lock()
	if w.drv != nil {
		w.drv.Stop()
	}
	w.armedAt = 0
	w.mu.Unlock()
}
