package socket

import (
	"encoding/binary"
	"sync"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// CAN_BCM: the broadcast manager of Linux's net/can/bcm.c. A socket
// connected to an interface writes struct bcm_msg_head commands
// followed by frames: TX_SETUP sends frames cyclically (count times at
// ival1, then at ival2), RX_SETUP watches an id and reports content
// changes (RX_CHANGED) and silence (RX_TIMEOUT). Cycles run on the
// stack's clock, so tests drive them in virtual time.

// BCM opcodes and flags (linux/can/bcm.h).
const (
	TX_SETUP   = 1
	TX_DELETE  = 2
	TX_READ    = 3
	TX_SEND    = 4
	RX_SETUP   = 5
	RX_DELETE  = 6
	RX_READ    = 7
	TX_STATUS  = 8
	TX_EXPIRED = 9
	RX_STATUS  = 10
	RX_TIMEOUT = 11
	RX_CHANGED = 12

	SETTIMER           = 0x0001
	STARTTIMER         = 0x0002
	TX_COUNTEVT        = 0x0004
	TX_ANNOUNCE        = 0x0008
	TX_CP_CAN_ID       = 0x0010
	RX_FILTER_ID       = 0x0020
	RX_CHECK_DLC       = 0x0040
	RX_NO_AUTOTIMER    = 0x0080
	RX_ANNOUNCE_RESUME = 0x0100
	TX_RESET_MULTI_IDX = 0x0200
	RX_RTR_FRAME       = 0x0400
	CAN_FD_FRAME       = 0x0800

	BCMMsgHeadLen  = 56  // sizeof(struct bcm_msg_head) on 64-bit Linux
	bcmMaxNFrames  = 256 // MAX_NFRAMES
	bcmMaxNotifies = 256 // queued notifications per socket
)

// BCMMsg is a struct bcm_msg_head with its frames.
type BCMMsg struct {
	Opcode uint32
	Flags  uint32
	Count  uint32
	Ival1  time.Duration // microsecond resolution, as struct bcm_timeval
	Ival2  time.Duration
	CANID  uint32
	Frames []wire.CANFrame
}

// Marshal packs m as Linux lays it out (host byte order); frames are
// 16 bytes, or 72 with CAN_FD_FRAME.
func (m *BCMMsg) Marshal() []byte {
	fs := CAN_MTU
	if m.Flags&CAN_FD_FRAME != 0 {
		fs = CANFD_MTU
	}
	b := make([]byte, BCMMsgHeadLen+fs*len(m.Frames))
	bcmPutHead(b, m, len(m.Frames))
	for i := range m.Frames {
		f := m.Frames[i]
		if fs == CANFD_MTU {
			f.Flags |= wire.CANFDFDF
		} else {
			f.Flags = 0
		}
		wire.PutCANFrame(b[BCMMsgHeadLen+i*fs:], &f)
	}
	return b
}

func bcmPutHead(b []byte, m *BCMMsg, nframes int) {
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], m.Opcode)
	ne.PutUint32(b[4:], m.Flags)
	ne.PutUint32(b[8:], m.Count)
	clear(b[12:16])
	putTv := func(o int, d time.Duration) {
		ne.PutUint64(b[o:], uint64(d/time.Second))
		ne.PutUint64(b[o+8:], uint64(d%time.Second/time.Microsecond))
	}
	putTv(16, m.Ival1)
	putTv(32, m.Ival2)
	ne.PutUint32(b[48:], m.CANID)
	ne.PutUint32(b[52:], uint32(nframes))
}

// ParseBCMMsg reads a message as a BCM socket gives it.
func ParseBCMMsg(b []byte) (BCMMsg, error) {
	var m BCMMsg
	if len(b) < BCMMsgHeadLen {
		return m, syscall.EINVAL
	}
	ne := binary.NativeEndian
	m.Opcode, m.Flags, m.Count = ne.Uint32(b[0:]), ne.Uint32(b[4:]), ne.Uint32(b[8:])
	m.Ival1, _ = bcmTv(b[16:])
	m.Ival2, _ = bcmTv(b[32:])
	m.CANID = ne.Uint32(b[48:])
	n := int(ne.Uint32(b[52:]))
	fs := CAN_MTU
	if m.Flags&CAN_FD_FRAME != 0 {
		fs = CANFD_MTU
	}
	if n > bcmMaxNFrames || len(b) < BCMMsgHeadLen+n*fs {
		return m, syscall.EINVAL
	}
	for i := range n {
		var f wire.CANFrame
		if err := wire.ParseCANFrame(b[BCMMsgHeadLen+i*fs:][:fs], &f); err != nil {
			return m, syscall.EINVAL
		}
		m.Frames = append(m.Frames, f)
	}
	return m, nil
}

// bcmTv reads a struct bcm_timeval; ok is false for the values
// bcm_is_invalid_tv refuses (negative, usec ≥ 1e6, seconds past 400 days).
func bcmTv(b []byte) (time.Duration, bool) {
	sec := int64(binary.NativeEndian.Uint64(b))
	usec := int64(binary.NativeEndian.Uint64(b[8:]))
	if sec < 0 || usec < 0 || usec >= 1000000 || sec > 400*24*3600 {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond, true
}

type bcmOp struct {
	e       *bcmEP
	rx      bool
	canID   uint32
	ifindex int
	flags   uint32
	count   uint32
	ival1   time.Duration
	ival2   time.Duration
	frames  []wire.CANFrame // tx: frames sent in turn; rx: [0] is the mask (and RTR reply)
	cur     int
	timer   clock.Timer
	gen     uint64
	// rx state
	last     wire.CANFrame
	haveLast bool
	throttle clock.Timer
	pendingF *wire.CANFrame // a change held back by ival2 throttling
	rxStamp  int64          // receive time of the newest frame (bcm.c's op->rx_stamp)
	thrGen   uint64
	thrBusy  bool
}

type bcmEP struct {
	n  *Net
	wq waiter.Queue

	mu      sync.Mutex
	bound   bool
	closed  bool
	ifindex int
	binds   []*bcmBinding
	txOps   []*bcmOp
	rxOps   []*bcmOp
	notes   []bcmNote // notifications waiting for recv
	clk     clock.Clock
	stamp   rxStamp // SIOCGSTAMP (ioctl.go)
	ts      tsOpts  // SO_TIMESTAMP* (rxstamp.go)

	Dropped uint64 // notifications lost to a full queue
}

// bcmNote is one notification and the receive time of the frame that
// made it (Unix nanoseconds; 0: a timer's or a read's, which bcm.c
// sends without a timestamp).
type bcmNote struct {
	b  []byte
	at int64
}

// bcmBinding receives one interface's frames for a BCM socket.
type bcmBinding struct {
	e       *bcmEP
	ifc     *link.CANIf
	ifindex int
}

func newBCM(n *Net) endpoint { return &bcmEP{n: n, clk: n.Stack().Clock()} }

func (e *bcmEP) stream() bool                        { return false }
func (e *bcmEP) waiter() *waiter.Queue               { return &e.wq }
func (e *bcmEP) listen(int) error                    { return syscall.EOPNOTSUPP }
func (e *bcmEP) accept() (endpoint, Sockaddr, error) { return nil, nil, syscall.EOPNOTSUPP }
func (e *bcmEP) bind(Sockaddr) error                 { return syscall.EOPNOTSUPP }
func (e *bcmEP) connectResult() error                { return nil }
func (e *bcmEP) shutdown(int) error                  { return syscall.EOPNOTSUPP }
func (e *bcmEP) setOption(level, name int, v any) error {
	if level == SOL_SOCKET {
		var rb, sb int
		return canSolSocket(name, v, &rb, &sb)
	}
	return syscall.ENOPROTOOPT // bcm.c has no options of its own
}
func (e *bcmEP) getOption(level, name int) (any, error) {
	if level == SOL_SOCKET {
		return canSolSocketGet(name, canDefaultRcvBuf, canDefaultRcvBuf)
	}
	return nil, syscall.ENOPROTOOPT
}

func (e *bcmEP) localAddr() Sockaddr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &SockaddrCAN{Ifindex: e.ifindex, Ifname: e.n.canIfName(e.ifindex)}
}

func (e *bcmEP) remoteAddr() (Sockaddr, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.bound {
		return nil, syscall.ENOTCONN
	}
	return &SockaddrCAN{Ifindex: e.ifindex, Ifname: e.n.canIfName(e.ifindex)}, nil
}

// connect is bcm_connect: a second connect is EISCONN, an unknown
// interface ENODEV; ifindex 0 means every CAN interface.
func (e *bcmEP) connect(a Sockaddr) error {
	sa, ok := a.(*SockaddrCAN)
	if !ok {
		return syscall.EINVAL
	}
	idx, err := e.n.canResolve(sa)
	if err != nil {
		return err
	}
	if idx != 0 && e.n.canIf(idx) == nil {
		return syscall.ENODEV
	}
	e.mu.Lock()
	if e.bound {
		e.mu.Unlock()
		return syscall.EISCONN
	}
	e.bound, e.ifindex = true, idx
	e.mu.Unlock()
	if idx != 0 {
		e.bindIf(idx, e.n.canIf(idx))
		return nil
	}
	e.n.can().joinAny(e)
	return nil
}

func (e *bcmEP) bindIf(index int, ifc *link.CANIf) {
	b := &bcmBinding{e: e, ifc: ifc, ifindex: index}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.binds = append(e.binds, b)
	e.mu.Unlock()
	ifc.AddReceiver(b)
}

func (e *bcmEP) close() {
	e.mu.Lock()
	e.closed = true
	for _, op := range append(e.txOps, e.rxOps...) {
		op.stopLocked()
	}
	e.txOps, e.rxOps = nil, nil
	rs := e.binds
	e.binds = nil
	any0 := e.bound && e.ifindex == 0
	e.mu.Unlock()
	for _, b := range rs {
		b.ifc.RemoveReceiver(b)
	}
	if any0 {
		e.n.can().leaveAny(e)
	}
	e.wq.Notify(waiter.EventIn | waiter.EventHUp)
}

func (op *bcmOp) stopLocked() {
	op.gen++
	op.thrGen++
	if op.timer != nil {
		op.timer.Stop()
	}
	if op.throttle != nil {
		op.throttle.Stop()
	}
}

func (e *bcmEP) readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := waiter.EventOut
	if len(e.notes) > 0 {
		r |= waiter.EventIn
	}
	return r & mask
}

func (e *bcmEP) findLocked(ops []*bcmOp, id uint32, ifindex int) (int, *bcmOp) {
	for i, op := range ops {
		if op.canID == id && op.ifindex == ifindex {
			return i, op
		}
	}
	return -1, nil
}

// notifyLocked queues a notification for recv, stamped at (0: none).
func (e *bcmEP) notifyLocked(opcode uint32, op *bcmOp, at int64, frames ...wire.CANFrame) {
	if len(e.notes) >= bcmMaxNotifies {
		e.Dropped++
		return
	}
	m := BCMMsg{Opcode: opcode, Flags: op.flags, Count: op.count, Ival1: op.ival1, Ival2: op.ival2, CANID: op.canID, Frames: frames}
	e.notes = append(e.notes, bcmNote{m.Marshal(), at})
}

// send is bcm_sendmsg.
func (e *bcmEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	e.mu.Lock()
	bound, ifindex := e.bound, e.ifindex
	e.mu.Unlock()
	if !bound {
		return 0, syscall.ENOTCONN
	}
	if to != nil {
		sa, ok := to.(*SockaddrCAN)
		if !ok {
			return 0, syscall.EINVAL
		}
		idx, err := e.n.canResolve(sa)
		if err != nil {
			return 0, err
		}
		if idx != 0 && e.n.canIf(idx) == nil {
			return 0, syscall.ENODEV
		}
		ifindex = idx
	}
	if len(b) < BCMMsgHeadLen {
		return 0, syscall.EINVAL
	}
	ne := binary.NativeEndian
	flagsH := ne.Uint32(b[4:])
	fs := CAN_MTU
	if flagsH&CAN_FD_FRAME != 0 {
		fs = CANFD_MTU
	}
	if (len(b)-BCMMsgHeadLen)%fs != 0 {
		return 0, syscall.EINVAL
	}
	m, err := ParseBCMMsg(b)
	if err != nil {
		return 0, err
	}
	if int(ne.Uint32(b[52:])) != len(m.Frames) || len(b) != BCMMsgHeadLen+len(m.Frames)*fs {
		return 0, syscall.EINVAL
	}
	_, ok1 := bcmTv(b[16:])
	_, ok2 := bcmTv(b[32:])
	switch m.Opcode {
	case TX_SETUP:
		if m.Flags&SETTIMER != 0 && (!ok1 || !ok2) {
			return 0, syscall.EINVAL
		}
		err = e.txSetup(&m, ifindex)
	case TX_DELETE, RX_DELETE:
		err = e.deleteOp(m.Opcode == RX_DELETE, m.CANID, ifindex)
	case TX_READ, RX_READ:
		err = e.readOp(m.Opcode == RX_READ, m.CANID, ifindex)
	case TX_SEND:
		if len(m.Frames) != 1 {
			return 0, syscall.EINVAL
		}
		err = e.sendFrames(ifindex, m.Frames[:1])
	case RX_SETUP:
		if m.Flags&SETTIMER != 0 && (!ok1 || !ok2) {
			return 0, syscall.EINVAL
		}
		err = e.rxSetup(&m, ifindex)
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// sendFrames puts frames on the interface (never under e.mu: local
// delivery may come back into this socket).
func (e *bcmEP) sendFrames(ifindex int, fs []wire.CANFrame) error {
	ifc := e.n.canIf(ifindex)
	if ifc == nil {
		return syscall.ENODEV
	}
	for i := range fs {
		if err := ifc.Send(&fs[i], e, true); err != nil {
			return err
		}
	}
	return nil
}

func (e *bcmEP) txSetup(m *BCMMsg, ifindex int) error {
	if len(m.Frames) < 1 || len(m.Frames) > bcmMaxNFrames {
		return syscall.EINVAL
	}
	if ifindex == 0 {
		// bcm.c: cyclic sending needs one interface.
		return syscall.ENODEV
	}
	fd := m.Flags&CAN_FD_FRAME != 0
	for i := range m.Frames {
		f := &m.Frames[i]
		if m.Flags&TX_CP_CAN_ID != 0 {
			f.ID = m.CANID
		}
		if !fd && f.Len > 8 || fd && f.Len > 64 {
			return syscall.EINVAL
		}
	}
	e.mu.Lock()
	_, op := e.findLocked(e.txOps, m.CANID, ifindex)
	if op != nil {
		if len(m.Frames) > len(op.frames) {
			e.mu.Unlock()
			return syscall.E2BIG
		}
		op.frames = append(op.frames[:0], m.Frames...)
		if m.Flags&TX_RESET_MULTI_IDX != 0 {
			op.cur = 0
		}
		op.flags = m.Flags
	} else {
		op = &bcmOp{e: e, canID: m.CANID, ifindex: ifindex, flags: m.Flags, frames: append([]wire.CANFrame(nil), m.Frames...)}
		e.txOps = append(e.txOps, op)
	}
	if m.Flags&SETTIMER != 0 {
		op.count, op.ival1, op.ival2 = m.Count, m.Ival1, m.Ival2
		// No interval at all stops the cycle.
		if op.ival1 == 0 && op.ival2 == 0 {
			op.stopLocked()
		}
	}
	var now []wire.CANFrame
	if m.Flags&TX_ANNOUNCE != 0 {
		now = append(now, op.nextFrameLocked())
		if op.count > 0 {
			op.count--
		}
	}
	if m.Flags&STARTTIMER != 0 {
		op.armTxLocked()
	}
	e.mu.Unlock()
	return e.sendFrames(ifindex, now)
}

func (op *bcmOp) nextFrameLocked() wire.CANFrame {
	f := op.frames[op.cur]
	op.cur = (op.cur + 1) % len(op.frames)
	return f
}

// armTxLocked schedules the next cyclic transmission: ival1 while count
// lasts, then ival2; neither: the cycle ends.
func (op *bcmOp) armTxLocked() {
	var d time.Duration
	switch {
	case op.ival1 > 0 && op.count > 0:
		d = op.ival1
	case op.ival2 > 0:
		d = op.ival2
	default:
		return
	}
	op.gen++
	gen := op.gen
	if op.timer != nil {
		op.timer.Stop()
	}
	op.timer = op.e.clk.AfterFunc(d, func() { op.txFire(gen) })
}

// txFire is bcm_tx_timeout_handler.
func (op *bcmOp) txFire(gen uint64) {
	e := op.e
	e.mu.Lock()
	if gen != op.gen || e.closed {
		e.mu.Unlock()
		return
	}
	var f wire.CANFrame
	send := false
	notify := false
	if op.ival1 > 0 && op.count > 0 {
		op.count--
		if op.count == 0 && op.flags&TX_COUNTEVT != 0 {
			e.notifyLocked(TX_EXPIRED, op, 0)
			notify = true
		}
		f, send = op.nextFrameLocked(), true
	} else if op.ival2 > 0 {
		f, send = op.nextFrameLocked(), true
	}
	op.armTxLocked()
	ifindex := op.ifindex
	e.mu.Unlock()
	if notify {
		e.wq.Notify(waiter.EventIn)
	}
	if send {
		_ = e.sendFrames(ifindex, []wire.CANFrame{f})
	}
}

func (e *bcmEP) deleteOp(rx bool, id uint32, ifindex int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ops := &e.txOps
	if rx {
		ops = &e.rxOps
	}
	i, op := e.findLocked(*ops, id, ifindex)
	if op == nil {
		return syscall.EINVAL
	}
	op.stopLocked()
	*ops = append((*ops)[:i], (*ops)[i+1:]...)
	return nil
}

func (e *bcmEP) readOp(rx bool, id uint32, ifindex int) error {
	e.mu.Lock()
	ops, code := e.txOps, uint32(TX_STATUS)
	if rx {
		ops, code = e.rxOps, RX_STATUS
	}
	_, op := e.findLocked(ops, id, ifindex)
	if op == nil {
		e.mu.Unlock()
		return syscall.EINVAL
	}
	e.notifyLocked(code, op, 0, op.frames...)
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
	return nil
}

func (e *bcmEP) rxSetup(m *BCMMsg, ifindex int) error {
	if len(m.Frames) > bcmMaxNFrames {
		return syscall.EINVAL
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, op := e.findLocked(e.rxOps, m.CANID, ifindex)
	if op == nil {
		op = &bcmOp{e: e, rx: true, canID: m.CANID, ifindex: ifindex}
		e.rxOps = append(e.rxOps, op)
	}
	op.flags = m.Flags
	op.frames = append(op.frames[:0], m.Frames...)
	op.haveLast = false
	if m.Flags&SETTIMER != 0 {
		op.ival1, op.ival2 = m.Ival1, m.Ival2
		if op.ival1 == 0 {
			op.gen++
			if op.timer != nil {
				op.timer.Stop()
			}
		}
	}
	if m.Flags&STARTTIMER != 0 {
		op.armRxLocked()
	}
	return nil
}

// armRxLocked (re)starts the RX_TIMEOUT watch of ival1.
func (op *bcmOp) armRxLocked() {
	if op.ival1 <= 0 {
		return
	}
	op.gen++
	gen := op.gen
	if op.timer != nil {
		op.timer.Stop()
	}
	op.timer = op.e.clk.AfterFunc(op.ival1, func() { op.rxTimeout(gen) })
}

// rxTimeout is bcm_rx_timeout_handler: no frame for ival1.
func (op *bcmOp) rxTimeout(gen uint64) {
	e := op.e
	e.mu.Lock()
	if gen != op.gen || e.closed {
		e.mu.Unlock()
		return
	}
	e.notifyLocked(RX_TIMEOUT, op, 0)
	if op.flags&RX_ANNOUNCE_RESUME != 0 {
		// The next frame is reported as a change even if it is not.
		op.haveLast = false
	}
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
}

// ReceiveCAN runs every rx op of the socket that matches the frame.
func (b *bcmBinding) ReceiveCAN(_ *link.CANIf, f *wire.CANFrame, local bool, origin any) {
	e := b.e
	e.mu.Lock()
	if e.closed || f.IsErr() {
		e.mu.Unlock()
		return
	}
	var reply []wire.CANFrame
	notified := false
	for _, op := range e.rxOps {
		if op.canID != f.ID&^CAN_RTR_FLAG || (op.ifindex != 0 && op.ifindex != b.ifindex) {
			continue
		}
		if (op.flags&CAN_FD_FRAME != 0) != f.IsFD() {
			continue
		}
		if op.flags&RX_RTR_FRAME != 0 {
			// Answer a remote request with the stored frame.
			if f.IsRTR() && len(op.frames) > 0 && origin != any(e) {
				r := op.frames[0]
				r.ID = op.canID
				reply = append(reply, r)
			}
			continue
		}
		if f.IsRTR() {
			continue
		}
		op.rxStamp = max(b.ifc.Bus().Clock().Now().UnixNano(), 1)
		if op.flags&RX_NO_AUTOTIMER == 0 {
			op.armRxLocked()
		}
		if op.changedLocked(f) {
			op.last = *f
			op.haveLast = true
			if op.throttledLocked(f) {
				continue
			}
			e.notifyLocked(RX_CHANGED, op, op.rxStamp, *f)
			notified = true
		}
	}
	ifindex := b.ifindex
	e.mu.Unlock()
	if notified {
		e.wq.Notify(waiter.EventIn)
	}
	if len(reply) > 0 {
		_ = e.sendFrames(ifindex, reply)
	}
}

// changedLocked is the content filter: with RX_FILTER_ID or no mask
// every frame counts; else the masked data (and with RX_CHECK_DLC the
// length) must differ from the last frame.
func (op *bcmOp) changedLocked(f *wire.CANFrame) bool {
	if op.flags&RX_FILTER_ID != 0 || len(op.frames) == 0 || !op.haveLast {
		return true
	}
	mask := &op.frames[0]
	if op.flags&RX_CHECK_DLC != 0 && f.Len != op.last.Len {
		return true
	}
	n := max(int(f.Len), int(op.last.Len))
	for i := 0; i < n; i++ {
		if (f.Data[i]^op.last.Data[i])&mask.Data[i] != 0 {
			return true
		}
	}
	return false
}

// throttledLocked holds changes back to one per ival2; the newest waits
// for the end of the period.
func (op *bcmOp) throttledLocked(f *wire.CANFrame) bool {
	if op.ival2 <= 0 {
		return false
	}
	if op.thrBusy {
		c := *f
		op.pendingF = &c
		return true
	}
	op.thrBusy = true
	op.thrGen++
	gen := op.thrGen
	if op.throttle != nil {
		op.throttle.Stop()
	}
	op.throttle = op.e.clk.AfterFunc(op.ival2, func() { op.throttleEnd(gen) })
	return false
}

func (op *bcmOp) throttleEnd(gen uint64) {
	e := op.e
	e.mu.Lock()
	if gen != op.thrGen || e.closed {
		e.mu.Unlock()
		return
	}
	op.thrBusy = false
	p := op.pendingF
	op.pendingF = nil
	if p != nil {
		e.notifyLocked(RX_CHANGED, op, op.rxStamp, *p)
		// The period starts again with this report.
		op.throttledLocked(p)
	}
	e.mu.Unlock()
	if p != nil {
		e.wq.Notify(waiter.EventIn)
	}
}

// recv gives the next notification (a bcm_msg_head and its frames).
func (e *bcmEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	n, full, _, idx, err := e.recvNote(b, flags)
	if err != nil || flags&msgNoFrom != 0 {
		return n, full, nil, err
	}
	return n, full, &SockaddrCAN{Ifindex: idx, Ifname: e.n.canIfName(idx)}, nil
}

// recvNote is recv that also gives the notification's receive time
// (0: none) and the socket's interface.
func (e *bcmEP) recvNote(b []byte, flags int) (n, full int, at int64, ifindex int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.notes) == 0 {
		return 0, 0, 0, 0, syscall.EAGAIN
	}
	m := e.notes[0]
	n = copy(b, m.b)
	if flags&MSG_PEEK == 0 {
		e.notes[0] = bcmNote{}
		e.notes = e.notes[1:]
	}
	// SIOCGSTAMP (ioctl.go): the frame's arrival; a timer's note has
	// none, and the first request after it takes its own time.
	e.stamp.recvd(m.at, e.ts.cmsgs(m.at))
	return n, len(m.b), m.at, e.ifindex, nil
}

// recvBCMControl is recvmsg(2) on a CAN_BCM socket with a control
// buffer: the notification and the timestamps SO_TIMESTAMP* and
// SO_TIMESTAMPING ask for (bcm_recvmsg's sock_recv_cmsgs): a change
// carries its frame's receive time, a timer's notification none, which
// SO_TIMESTAMP stamps with the time of the read, as Linux.
func (s *Socket) recvBCMControl(e *bcmEP, p []byte, w *cmsgWriter, flags int) (int, int, Sockaddr, error) {
	return s.recvStamped(w, flags, false, &e.ts, e.clk, func() (n, full, rflags int, at int64, from Sockaddr, err error) {
		var idx int
		if n, full, at, idx, err = e.recvNote(p, flags); err != nil {
			return
		}
		return n, full, 0, at, &SockaddrCAN{Ifindex: idx, Ifname: e.n.canIfName(idx)}, nil
	}) // rxstamp.go
}
