package link

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// CANBus is an in-memory CAN bus: any number of node interfaces (CANIf),
// each a controller with a transmit queue. A frame sent by one node is
// delivered to every other node, and echoed to the sender's own node as
// a local frame (what SocketCAN's loopback delivers to other sockets of
// the same host). When several frames are pending, the one with the
// lowest arbitration key (lowest id) goes first, as bitwise arbitration
// decides on a real bus.
//
// Without a bit rate a frame is delivered at once (the caller runs the
// delivery to completion, frames queued meanwhile by the receivers are
// sent after it, in arbitration order). With a bit rate each frame
// occupies the bus for its exact bit count (stuff bits included) and is
// delivered when its last bit is sent, timed by the bus's clock.
//
// Error injection hits a transmission with probability ErrorRate (seeded,
// so runs repeat): the sender's transmit error counter rises by 8, every
// other node's receive error counter by 1, and the frame is sent again;
// success lowers them by 1, as ISO 11898-1 fault confinement says. A
// node whose transmit error counter passes 255 goes bus-off: its queue
// is flushed, sends fail with ENETDOWN until it restarts.
type CANBus struct {
	name string
	clk  clock.Clock
	opts CANBusOptions
	rng  *rand.Rand

	mu      sync.Mutex
	nodes   []*CANIf
	running bool // a drainer (or the bit-timing timer) owns transmission
	timer   clock.Timer
	cur     canTx // the frame on the bus (owned by the running drainer)
	curNode *CANIf
	curErr  bool
	events  canEvents // error frames of the transmission being completed
	start   time.Time
	busy    time.Duration // bus time used by frames and error frames
	tap     atomic.Pointer[canTapHolder]

	Frames      atomic.Uint64 // frames delivered
	ErrorFrames atomic.Uint64 // transmissions destroyed by an injected error
}

// CANBusOptions configure a bus. The zero value is an instant bus with
// the real clock and no errors.
type CANBusOptions struct {
	Clock        clock.Clock
	Bitrate      int           // nominal bit rate (bit/s); 0: frames take no time
	DataBitrate  int           // CAN FD data phase with BRS (default Bitrate)
	ErrorRate    float64       // probability that a transmission is destroyed
	Seed         uint64        // for error injection
	TxQueueLen   int           // per node (default 64); a full queue refuses with ENOBUFS
	RestartDelay time.Duration // automatic restart after bus-off (0: only Restart)
}

// canTx is one queued transmission.
type canTx struct {
	f      wire.CANFrame
	origin any  // the sending socket, so it can recognise its own frame
	loop   bool // echo to the sender's own node (CAN_RAW_LOOPBACK)
}

// CANReceiver takes frames from a node. local is set for a frame the
// node itself sent (its echo), origin is what the sender passed to Send.
// The frame is valid only during the call.
type CANReceiver interface {
	ReceiveCAN(ifc *CANIf, f *wire.CANFrame, local bool, origin any)
}

// CAN controller states.
const (
	CANStateActive  = "ERROR-ACTIVE"
	CANStateWarning = "ERROR-WARNING"
	CANStatePassive = "ERROR-PASSIVE"
	CANStateBusOff  = "BUS-OFF"
)

// CANIf is one node's controller on a bus, known by its name (vcan0).
type CANIf struct {
	bus   *CANBus
	name  string
	index int

	// guarded by bus.mu
	q          []canTx // ring
	head, n    int
	tec, rec   int
	busOff     bool
	down       atomic.Bool
	lastState  string
	rxers      atomic.Pointer[[]CANReceiver]
	restartTmr clock.Timer

	TxFrames  atomic.Uint64
	RxFrames  atomic.Uint64
	TxDropped atomic.Uint64 // refused: transmit queue full
	TxFlushed atomic.Uint64 // lost when the node went bus-off
	BusErrors atomic.Uint64 // transmissions of this node destroyed by errors
	BusOffs   atomic.Uint64
}

// NewCANBus makes a bus.
func NewCANBus(name string, opts CANBusOptions) *CANBus {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.DataBitrate == 0 {
		opts.DataBitrate = opts.Bitrate
	}
	if opts.TxQueueLen <= 0 {
		opts.TxQueueLen = 64
	}
	b := &CANBus{name: name, clk: opts.Clock, opts: opts,
		rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	b.start = b.clk.Now()
	return b
}

// Name is the bus's name.
func (b *CANBus) Name() string { return b.name }

// Clock is the bus's clock (receivers stamp frames with it).
func (b *CANBus) Clock() clock.Clock { return b.clk }

// Attach adds a node interface called name.
func (b *CANBus) Attach(name string) *CANIf {
	n := &CANIf{bus: b, name: name, q: make([]canTx, b.opts.TxQueueLen), lastState: CANStateActive}
	empty := []CANReceiver{}
	n.rxers.Store(&empty)
	b.mu.Lock()
	n.index = len(b.nodes)
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	return n
}

// Nodes lists the bus's interfaces.
func (b *CANBus) Nodes() []*CANIf {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*CANIf(nil), b.nodes...)
}

// Busy is the bus time frames have used so far (bit-rate model only).
func (b *CANBus) Busy() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy
}

// Load is the share of time since the bus was made (or ResetLoad) that
// it carried bits.
func (b *CANBus) Load() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	el := b.clk.Now().Sub(b.start)
	if el <= 0 {
		return 0
	}
	return float64(b.busy) / float64(el)
}

// ResetLoad starts a new load measurement window.
func (b *CANBus) ResetLoad() {
	b.mu.Lock()
	b.busy = 0
	b.start = b.clk.Now()
	b.mu.Unlock()
}

// FrameTime is how long f occupies the bus in the bit-rate model (0
// without a bit rate).
func (b *CANBus) FrameTime(f *wire.CANFrame) time.Duration {
	if b.opts.Bitrate <= 0 {
		return 0
	}
	nom, data := wire.CANFrameBits(f)
	d := time.Duration(nom) * time.Second / time.Duration(b.opts.Bitrate)
	if data > 0 {
		d += time.Duration(data) * time.Second / time.Duration(b.opts.DataBitrate)
	}
	return d
}

// CANTap sees every frame the bus carries, when it is delivered.
type CANTap func(ts time.Time, f *wire.CANFrame)

type canTapHolder struct{ fn CANTap }

// SetTap installs fn (nil removes it); used for pcap capture.
func (b *CANBus) SetTap(fn CANTap) {
	if fn == nil {
		b.tap.Store(nil)
		return
	}
	b.tap.Store(&canTapHolder{fn})
}

// Name, Index and Bus identify the interface.
func (n *CANIf) Name() string   { return n.name }
func (n *CANIf) Index() int     { return n.index }
func (n *CANIf) Bus() *CANBus   { return n.bus }
func (n *CANIf) String() string { return n.name }

// AddReceiver registers r for the node's frames.
func (n *CANIf) AddReceiver(r CANReceiver) {
	n.bus.mu.Lock()
	old := *n.rxers.Load()
	nw := make([]CANReceiver, len(old), len(old)+1)
	copy(nw, old)
	nw = append(nw, r)
	n.rxers.Store(&nw)
	n.bus.mu.Unlock()
}

// RemoveReceiver unregisters r.
func (n *CANIf) RemoveReceiver(r CANReceiver) {
	n.bus.mu.Lock()
	old := *n.rxers.Load()
	nw := make([]CANReceiver, 0, len(old))
	for _, x := range old {
		if x != r {
			nw = append(nw, x)
		}
	}
	n.rxers.Store(&nw)
	n.bus.mu.Unlock()
}

// ErrorCounters are the transmit and receive error counters.
func (n *CANIf) ErrorCounters() (tec, rec int) {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	return n.tec, n.rec
}

// State is the controller's fault confinement state.
func (n *CANIf) State() string {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	return n.stateLocked()
}

func (n *CANIf) stateLocked() string {
	switch {
	case n.busOff:
		return CANStateBusOff
	case n.tec >= 128 || n.rec >= 128:
		return CANStatePassive
	case n.tec >= 96 || n.rec >= 96:
		return CANStateWarning
	}
	return CANStateActive
}

// SetDown takes the interface down (sends fail with ENETDOWN, nothing is
// received) or up again.
func (n *CANIf) SetDown(down bool) {
	n.down.Store(down)
}

// Send queues f for transmission. origin is passed back to receivers
// (the sending socket); loop asks for the local echo. A full queue is
// ENOBUFS, a node that is down or bus-off ENETDOWN, as Linux's can_send
// reports them.
func (n *CANIf) Send(f *wire.CANFrame, origin any, loop bool) error {
	b := n.bus
	b.mu.Lock()
	if n.down.Load() || n.busOff {
		b.mu.Unlock()
		return syscall.ENETDOWN
	}
	if n.n == len(n.q) {
		b.mu.Unlock()
		n.TxDropped.Add(1)
		return syscall.ENOBUFS
	}
	t := &n.q[(n.head+n.n)%len(n.q)]
	t.f = *f
	t.origin = origin
	t.loop = loop
	n.n++
	if b.running {
		b.mu.Unlock()
		return nil
	}
	b.running = true
	if b.opts.Bitrate > 0 {
		b.startLocked()
		b.mu.Unlock()
		return nil
	}
	b.drainLocked()
	return nil
}

// pickLocked runs arbitration among the heads of the node queues.
func (b *CANBus) pickLocked() *CANIf {
	var win *CANIf
	var key uint32
	for _, n := range b.nodes {
		if n.n == 0 {
			continue
		}
		k := wire.CANArbKey(&n.q[n.head].f)
		if win == nil || k < key {
			win, key = n, k
		}
	}
	return win
}

// hitLocked decides whether the transmission is destroyed.
func (b *CANBus) hitLocked() bool {
	return b.opts.ErrorRate > 0 && b.rng.Float64() < b.opts.ErrorRate
}

// drainLocked sends every pending frame at once, in arbitration order;
// it returns with b.mu unlocked and running cleared. Receivers run
// without the lock, so they may send (their frames join the queue).
func (b *CANBus) drainLocked() {
	for {
		n := b.pickLocked()
		if n == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.cur = n.q[n.head]
		if b.hitLocked() {
			ev := b.errorLocked(n)
			b.mu.Unlock()
			b.deliverEvents(ev)
			b.mu.Lock()
			continue
		}
		b.successLocked(n)
		b.mu.Unlock()
		b.deliver(n, &b.cur)
		b.mu.Lock()
	}
}

// startLocked puts the winner of arbitration on the bus for its frame
// time (bit-rate model); completion runs from the clock.
func (b *CANBus) startLocked() {
	n := b.pickLocked()
	if n == nil {
		b.running = false
		return
	}
	b.curNode = n
	b.cur = n.q[n.head]
	d := b.FrameTime(&b.cur.f)
	if b.curErr = b.hitLocked(); b.curErr {
		// The error is found somewhere in the frame; on average half way,
		// then an error flag and delimiter (14 bits) and intermission (3).
		d = d/2 + 17*time.Second/time.Duration(b.opts.Bitrate)
	}
	b.busy += d
	if b.timer == nil {
		b.timer = b.clk.AfterFunc(d, b.complete)
	} else {
		b.timer.Reset(d)
	}
}

// complete ends the transmission on the bus (bit-rate model).
func (b *CANBus) complete() {
	b.mu.Lock()
	n := b.curNode
	if b.curErr {
		ev := b.errorLocked(n)
		b.mu.Unlock()
		b.deliverEvents(ev)
	} else {
		b.successLocked(n)
		b.mu.Unlock()
		b.deliver(n, &b.cur)
	}
	b.mu.Lock()
	b.startLocked()
	b.mu.Unlock()
}

// successLocked pops the frame and updates the error counters.
func (b *CANBus) successLocked(n *CANIf) {
	n.head = (n.head + 1) % len(n.q)
	n.n--
	n.q[(n.head+len(n.q)-1)%len(n.q)].origin = nil // do not keep the socket alive
	if n.tec > 0 {
		n.tec--
	}
	for _, o := range b.nodes {
		if o != n && o.rec > 0 && !o.busOff {
			if o.rec > 127 {
				o.rec = 119 // ISO 11898-1: back below the passive limit
			} else {
				o.rec--
			}
		}
	}
}

// canEvents are the error frames a destroyed transmission produces, one
// per node at most: each controller reports what it saw to its sockets.
type canEvents struct {
	nodes  [64]*CANIf
	frames [64]wire.CANFrame
	k      int
}

func (e *canEvents) add(n *CANIf, f wire.CANFrame) {
	if e.k < len(e.nodes) {
		e.nodes[e.k], e.frames[e.k] = n, f
		e.k++
	}
}

// errorLocked applies fault confinement for a destroyed transmission by
// n and returns the error frames to report.
func (b *CANBus) errorLocked(n *CANIf) *canEvents {
	b.ErrorFrames.Add(1)
	n.BusErrors.Add(1)
	ev := &b.events
	ev.k = 0
	n.tec += 8
	for _, o := range b.nodes {
		if o != n && !o.busOff && !o.down.Load() && o.rec < 255 {
			o.rec++
		}
	}
	for _, o := range b.nodes {
		if o.busOff || o.down.Load() {
			continue
		}
		f := wire.CANFrame{ID: wire.CANErrFlag | wire.CANErrProt | wire.CANErrBusError | wire.CANErrCnt, Len: wire.CANErrDLC}
		f.Data[2] = wire.CANErrProtStuff
		f.Data[3] = wire.CANErrProtLocCRCSeq
		f.Data[6], f.Data[7] = uint8(min(o.tec, 255)), uint8(min(o.rec, 255))
		st := o.stateLocked()
		if o == n && o.tec > 255 {
			// Bus-off: drop the queue and wait for a restart.
			o.busOff = true
			o.BusOffs.Add(1)
			o.TxFlushed.Add(uint64(o.n))
			for i := range o.q {
				o.q[i].origin = nil
			}
			o.head, o.n = 0, 0
			st = CANStateBusOff
			f.ID |= wire.CANErrBusOff
			if d := b.opts.RestartDelay; d > 0 {
				if o.restartTmr == nil {
					o.restartTmr = b.clk.AfterFunc(d, o.Restart)
				} else {
					o.restartTmr.Reset(d)
				}
			}
		}
		if st != o.lastState {
			f.ID |= wire.CANErrCrtl
			switch st {
			case CANStateWarning:
				f.Data[1] = wire.CANErrCrtlTxWarning | wire.CANErrCrtlRxWarning
			case CANStatePassive:
				f.Data[1] = wire.CANErrCrtlTxPassive | wire.CANErrCrtlRxPassive
			case CANStateActive:
				f.Data[1] = wire.CANErrCrtlActive
			}
			o.lastState = st
		}
		ev.add(o, f)
	}
	return ev
}

// Restart brings a bus-off node back (error counters cleared), as
// `ip link set canX type can restart` does; its sockets get an error
// frame with CAN_ERR_RESTARTED.
func (n *CANIf) Restart() {
	b := n.bus
	b.mu.Lock()
	if !n.busOff {
		b.mu.Unlock()
		return
	}
	n.busOff = false
	n.tec, n.rec = 0, 0
	n.lastState = CANStateActive
	b.mu.Unlock()
	f := wire.CANFrame{ID: wire.CANErrFlag | wire.CANErrRestarted, Len: wire.CANErrDLC}
	n.receive(&f, false, nil)
}

func (b *CANBus) deliverEvents(ev *canEvents) {
	for i := 0; i < ev.k; i++ {
		ev.nodes[i].receive(&ev.frames[i], false, nil)
	}
}

// deliver hands a transmitted frame to every other node, then to the
// sender's own node as its local echo (only if the sender asked for
// loopback).
func (b *CANBus) deliver(from *CANIf, t *canTx) {
	b.Frames.Add(1)
	if h := b.tap.Load(); h != nil {
		h.fn(b.clk.Now(), &t.f)
	}
	from.TxFrames.Add(1)
	b.mu.Lock()
	nodes := b.nodes
	b.mu.Unlock()
	for _, o := range nodes {
		if o == from {
			continue
		}
		o.RxFrames.Add(1)
		o.receive(&t.f, false, t.origin)
	}
	// The echo comes last: it is the sender's transmit confirmation, and
	// by then every other node (a bridge too) has the frame.
	if t.loop {
		from.receive(&t.f, true, t.origin)
	}
}

func (n *CANIf) receive(f *wire.CANFrame, local bool, origin any) {
	if n.down.Load() {
		return
	}
	for _, r := range *n.rxers.Load() {
		r.ReceiveCAN(n, f, local, origin)
	}
}
