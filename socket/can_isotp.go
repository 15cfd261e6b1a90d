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

// CAN_ISOTP: ISO 15765-2 transport over CAN, with the behaviour of
// Linux's net/can/isotp.c. A message of up to isotpMaxPDU bytes goes as
// one single frame (SF) or a first frame (FF) followed by consecutive
// frames (CF) paced by the receiver's flow control (FC: block size and
// STmin). Errors are reported as Linux reports them: the sender gets
// ECOMM when no flow control (N_Bs) or no echo of its own frame (N_As)
// comes within a second, EMSGSIZE on an overflow flow control, EBADMSG
// on a malformed one; the receiver gets ETIMEDOUT when a consecutive
// frame is late (N_Cr) and EILSEQ on a wrong sequence number. Pending
// errors come back from the next recv (or SO_ERROR), once.

// ISO-TP socket options and flags (linux/can/isotp.h).
const (
	CAN_ISOTP_OPTS     = 1
	CAN_ISOTP_RECV_FC  = 2
	CAN_ISOTP_TX_STMIN = 3
	CAN_ISOTP_RX_STMIN = 4
	CAN_ISOTP_LL_OPTS  = 5

	CAN_ISOTP_LISTEN_MODE   = 0x0001
	CAN_ISOTP_EXTEND_ADDR   = 0x0002
	CAN_ISOTP_TX_PADDING    = 0x0004
	CAN_ISOTP_RX_PADDING    = 0x0008
	CAN_ISOTP_CHK_PAD_LEN   = 0x0010
	CAN_ISOTP_CHK_PAD_DATA  = 0x0020
	CAN_ISOTP_HALF_DUPLEX   = 0x0040
	CAN_ISOTP_FORCE_TXSTMIN = 0x0080
	CAN_ISOTP_FORCE_RXSTMIN = 0x0100
	CAN_ISOTP_RX_EXT_ADDR   = 0x0200
	CAN_ISOTP_WAIT_TX_DONE  = 0x0400
	CAN_ISOTP_SF_BROADCAST  = 0x0800
	CAN_ISOTP_CF_BROADCAST  = 0x1000
	isotpAllFlags           = 0x1FFF

	CAN_ISOTP_DEFAULT_PAD_CONTENT  = 0xCC
	CAN_ISOTP_DEFAULT_FRAME_TXTIME = 50000 // ns
)

// ISOTPOptions is struct can_isotp_options.
type ISOTPOptions struct {
	Flags        uint32
	FrameTxTime  uint32 // ns between frames when STmin is 0
	ExtAddress   uint8
	TxPadContent uint8
	RxPadContent uint8
	RxExtAddress uint8
}

// ISOTPFCOptions is struct can_isotp_fc_options: what this socket asks
// of a sender in its flow control frames.
type ISOTPFCOptions struct {
	BS     uint8
	STmin  uint8
	WFTmax uint8
}

// ISOTPLLOptions is struct can_isotp_ll_options: the link layer.
type ISOTPLLOptions struct {
	MTU     uint8 // CAN_MTU (classic) or CANFD_MTU
	TxDL    uint8 // frame payload used for sending: 8, or 12..64 on CAN FD
	TxFlags uint8 // CAN FD flags of sent frames (CANFD_BRS)
}

const (
	isotpMaxPDU    = 8300        // DEFAULT_MAX_PDU_SIZE of isotp.c
	isotpTimeout   = time.Second // N_As, N_Bs and N_Cr
	isotpMaxQueued = 64          // received messages waiting for recv
)

// PCI types.
const (
	isotpSF = 0x00
	isotpFF = 0x10
	isotpCF = 0x20
	isotpFC = 0x30

	isotpFCCTS = 0
	isotpFCWT  = 1
	isotpFCOVF = 2
)

// tx states
const (
	isotpIdle = iota
	isotpWaitFC
	isotpSending  // CFs go out
	isotpWaitEcho // the last frame is on its way
)

type isotpEP struct {
	n  *Net
	wq waiter.Queue

	mu      sync.Mutex
	bound   bool
	closed  bool
	ifindex int
	ifc     *link.CANIf
	rxID    uint32
	txID    uint32
	opt     ISOTPOptions
	fc      ISOTPFCOptions
	ll      ISOTPLLOptions
	txStmin uint32 // ns, CAN_ISOTP_TX_STMIN
	rxStmin uint32 // ns, CAN_ISOTP_RX_STMIN
	pending error  // reported once by recv or SO_ERROR
	clk     clock.Clock
	stamp   rxStamp // SIOCGSTAMP (ioctl.go)
	ts      tsOpts  // SO_TIMESTAMP* (rxstamp.go)

	// transmit
	txState   int
	txBuf     []byte
	txLen     int
	txOff     int
	txSN      uint8
	txBS      int // frames left in the block (0: unlimited)
	txGap     time.Duration
	txTimer   clock.Timer
	txGen     uint64
	txDone    bool  // a WAIT_TX_DONE sender may collect its result
	txResult  error // that result
	txWaiting bool  // a WAIT_TX_DONE send is in progress

	// receive
	rxActive bool
	rxBuf    []byte
	rxLen    int
	rxOff    int
	rxSN     uint8
	rxBS     int
	rxTimer  clock.Timer
	rxGen    uint64
	rxLastCF time.Time // arrival of the last CF, for CAN_ISOTP_FORCE_RXSTMIN
	msgs     [][]byte  // completed messages
	msgAt    []int64   // when each was completed (Unix ns): its last frame's arrival
	free     [][]byte  // their buffers, for reuse

	frame wire.CANFrame // scratch for building a frame (under mu)

	// counters
	RxDropped uint64 // messages lost to a full queue
	RxErrors  uint64 // malformed or out-of-sequence frames
}

func newISOTP(n *Net) endpoint {
	return &isotpEP{n: n, clk: n.Stack().Clock(),
		opt: ISOTPOptions{FrameTxTime: CAN_ISOTP_DEFAULT_FRAME_TXTIME,
			TxPadContent: CAN_ISOTP_DEFAULT_PAD_CONTENT, RxPadContent: CAN_ISOTP_DEFAULT_PAD_CONTENT},
		ll: ISOTPLLOptions{MTU: CAN_MTU, TxDL: 8}}
}

func (e *isotpEP) stream() bool                        { return false }
func (e *isotpEP) waiter() *waiter.Queue               { return &e.wq }
func (e *isotpEP) listen(int) error                    { return syscall.EOPNOTSUPP }
func (e *isotpEP) accept() (endpoint, Sockaddr, error) { return nil, nil, syscall.EOPNOTSUPP }
func (e *isotpEP) connect(Sockaddr) error              { return syscall.EOPNOTSUPP }
func (e *isotpEP) shutdown(int) error                  { return syscall.EOPNOTSUPP }
func (e *isotpEP) remoteAddr() (Sockaddr, error)       { return nil, syscall.ENOTCONN }
func (e *isotpEP) localAddr() Sockaddr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &SockaddrCAN{Ifindex: e.ifindex, Ifname: e.n.canIfName(e.ifindex), RxID: e.rxID, TxID: e.txID}
}

// connectResult is SO_ERROR: the pending error, cleared by reading.
func (e *isotpEP) connectResult() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.pending
	e.pending = nil
	return err
}

// isotpIDOK is what isotp_bind accepts as an id: no error or RTR flag,
// and an 11-bit id without the EFF flag.
func isotpIDOK(id uint32) bool {
	if id&(CAN_ERR_FLAG|CAN_RTR_FLAG) != 0 {
		return false
	}
	if id&CAN_EFF_FLAG == 0 && id > CAN_SFF_MASK {
		return false
	}
	return true
}

// bind is isotp_bind: ifindex 0 is ENODEV, an unknown interface ENODEV,
// rx id equal to tx id or an id with flag bits EADDRNOTAVAIL, a second
// bind EINVAL.
func (e *isotpEP) bind(a Sockaddr) error {
	sa, ok := a.(*SockaddrCAN)
	if !ok {
		return syscall.EINVAL
	}
	e.mu.Lock()
	flags := e.opt.Flags
	if e.bound {
		e.mu.Unlock()
		return syscall.EINVAL
	}
	e.mu.Unlock()
	if !isotpIDOK(sa.TxID) || (flags&CAN_ISOTP_SF_BROADCAST == 0 && (!isotpIDOK(sa.RxID) || sa.RxID == sa.TxID)) {
		return syscall.EADDRNOTAVAIL
	}
	idx, err := e.n.canResolve(sa)
	if err != nil {
		return err
	}
	if idx == 0 {
		return syscall.ENODEV
	}
	ifc := e.n.canIf(idx)
	if ifc == nil {
		return syscall.ENODEV
	}
	e.mu.Lock()
	if e.bound {
		e.mu.Unlock()
		return syscall.EINVAL
	}
	e.bound, e.ifindex, e.ifc = true, idx, ifc
	e.rxID, e.txID = sa.RxID, sa.TxID
	e.txBuf = make([]byte, isotpMaxPDU)
	e.rxBuf = make([]byte, isotpMaxPDU)
	e.mu.Unlock()
	ifc.AddReceiver(e)
	return nil
}

func (e *isotpEP) close() {
	e.mu.Lock()
	e.closed = true
	ifc := e.ifc
	e.stopTimersLocked()
	e.mu.Unlock()
	if ifc != nil {
		ifc.RemoveReceiver(e)
	}
	e.wq.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
}

func (e *isotpEP) stopTimersLocked() {
	e.txGen++
	e.rxGen++
	if e.txTimer != nil {
		e.txTimer.Stop()
	}
	if e.rxTimer != nil {
		e.rxTimer.Stop()
	}
}

func (e *isotpEP) readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r waiter.EventMask
	if len(e.msgs) > 0 {
		r |= waiter.EventIn
	}
	if e.pending != nil {
		r |= waiter.EventErr
	}
	if e.txState == isotpIdle {
		r |= waiter.EventOut
	}
	return r & mask
}

// Layout helpers: the PCI starts after the extended address byte.
func (e *isotpEP) txAE() int {
	if e.opt.Flags&CAN_ISOTP_EXTEND_ADDR != 0 {
		return 1
	}
	return 0
}

func (e *isotpEP) fd() bool { return e.ll.MTU == CANFD_MTU }

// startFrameLocked prepares e.frame with the tx id and the extended
// address; it returns the PCI offset.
func (e *isotpEP) startFrameLocked() int {
	e.frame = wire.CANFrame{ID: e.txID}
	if e.fd() {
		e.frame.Flags = wire.CANFDFDF | e.ll.TxFlags&(wire.CANFDBRS)
	}
	ae := e.txAE()
	if ae == 1 {
		e.frame.Data[0] = e.opt.ExtAddress
	}
	return ae
}

// finishFrameLocked sets the length, padding as configured: with
// CAN_ISOTP_TX_PADDING classic frames are filled to 8 bytes; CAN FD
// frames are always filled to the next valid length.
func (e *isotpEP) finishFrameLocked(n int) {
	pad := n
	if e.opt.Flags&CAN_ISOTP_TX_PADDING != 0 {
		pad = max(n, 8)
	}
	if e.fd() {
		pad = wire.CANFDDLCToLen(wire.CANFDLenToDLC(pad))
	}
	for i := n; i < pad; i++ {
		e.frame.Data[i] = e.opt.TxPadContent
	}
	e.frame.Len = uint8(pad)
}

// sendFrame queues e.frame (copied by the caller out of the lock).
func (e *isotpEP) sendFrame(ifc *link.CANIf, f *wire.CANFrame) error {
	return ifc.Send(f, e, true)
}

// send is isotp_sendmsg.
func (e *isotpEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	e.mu.Lock()
	if !e.bound {
		e.mu.Unlock()
		return 0, syscall.EADDRNOTAVAIL
	}
	// The result of an earlier WAIT_TX_DONE send that waited for us.
	if e.txWaiting {
		if !e.txDone {
			e.mu.Unlock()
			return 0, syscall.EAGAIN
		}
		e.txWaiting, e.txDone = false, false
		err := e.txResult
		e.txResult = nil
		if err != nil {
			e.pending = nil
			e.mu.Unlock()
			return 0, err
		}
		e.mu.Unlock()
		return len(b), nil
	}
	if e.txState != isotpIdle {
		e.mu.Unlock()
		return 0, syscall.EAGAIN
	}
	if len(b) == 0 || len(b) > isotpMaxPDU {
		e.mu.Unlock()
		return 0, syscall.EINVAL
	}
	ae := e.txAE()
	txdl := int(e.ll.TxDL)
	// Single frame: up to 7 bytes (minus the address) in 8 bytes; on
	// CAN FD with a larger TX_DL the escape form (0x00, length) holds more.
	sfMax := 7 - ae
	if txdl > 8 {
		sfMax = txdl - 2 - ae
	}
	ifc := e.ifc
	copy(e.txBuf, b)
	e.txLen = len(b)
	if len(b) <= sfMax {
		if flags&MSG_DONTWAIT == 0 && e.opt.Flags&CAN_ISOTP_WAIT_TX_DONE != 0 {
			e.txWaiting = true
		}
		off := e.startFrameLocked()
		if len(b) <= 7-ae {
			e.frame.Data[off] = isotpSF | byte(len(b))
			copy(e.frame.Data[off+1:], b)
			e.finishFrameLocked(off + 1 + len(b))
		} else {
			e.frame.Data[off] = isotpSF
			e.frame.Data[off+1] = byte(len(b))
			copy(e.frame.Data[off+2:], b)
			e.finishFrameLocked(off + 2 + len(b))
		}
		e.txOff = e.txLen
		e.txState = isotpWaitEcho
		e.armTxLocked(isotpTimeout)
		f := e.frame
		e.mu.Unlock()
		if err := e.sendFrame(ifc, &f); err != nil {
			e.txFinish(err, false)
			return 0, err
		}
		return e.sendResult(len(b), flags)
	}
	if e.opt.Flags&CAN_ISOTP_CF_BROADCAST == 0 && e.opt.Flags&CAN_ISOTP_SF_BROADCAST != 0 {
		// A broadcast socket sends single frames only.
		e.mu.Unlock()
		return 0, syscall.EINVAL
	}
	if flags&MSG_DONTWAIT == 0 && e.opt.Flags&CAN_ISOTP_WAIT_TX_DONE != 0 {
		e.txWaiting = true
	}
	off := e.startFrameLocked()
	var n int
	if len(b) <= 4095 {
		e.frame.Data[off] = isotpFF | byte(len(b)>>8)
		e.frame.Data[off+1] = byte(len(b))
		n = copy(e.frame.Data[off+2:txdl], b)
		e.finishFrameLocked(off + 2 + n)
	} else {
		e.frame.Data[off] = isotpFF
		e.frame.Data[off+1] = 0
		binary.BigEndian.PutUint32(e.frame.Data[off+2:], uint32(len(b)))
		n = copy(e.frame.Data[off+6:txdl], b)
		e.finishFrameLocked(off + 6 + n)
	}
	e.txOff = n
	e.txSN = 1
	if e.opt.Flags&CAN_ISOTP_CF_BROADCAST != 0 {
		// No flow control: CFs follow the FF's echo at the configured STmin.
		e.txState = isotpWaitEcho
		e.txBS = 0
		e.txGap = time.Duration(e.txStmin) + time.Duration(e.opt.FrameTxTime)
	} else {
		e.txState = isotpWaitFC
	}
	e.armTxLocked(isotpTimeout)
	f := e.frame
	e.mu.Unlock()
	if err := e.sendFrame(ifc, &f); err != nil {
		e.txFinish(err, false)
		return 0, err
	}
	return e.sendResult(len(b), flags)
}

// sendResult returns at once, or (WAIT_TX_DONE) lets the socket wait
// until the transfer ends.
func (e *isotpEP) sendResult(n, flags int) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.txWaiting {
		return n, nil
	}
	if e.txDone {
		e.txWaiting, e.txDone = false, false
		err := e.txResult
		e.txResult = nil
		if err != nil {
			e.pending = nil
			return 0, err
		}
		return n, nil
	}
	return 0, syscall.EAGAIN
}

func (e *isotpEP) armTxLocked(d time.Duration) {
	e.txGen++
	gen := e.txGen
	fn := func() { e.txTimerFired(gen) }
	if e.txTimer != nil {
		e.txTimer.Stop()
	}
	e.txTimer = e.clk.AfterFunc(d, fn)
}

// txTimerFired is either the timeout (N_As / N_Bs) or, while sending,
// the STmin gap before the next CF.
func (e *isotpEP) txTimerFired(gen uint64) {
	e.mu.Lock()
	if gen != e.txGen || e.closed {
		e.mu.Unlock()
		return
	}
	if e.txState == isotpSending {
		e.sendCFLocked() // unlocks
		return
	}
	if e.txState == isotpIdle {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	// No flow control or no echo in time: 'communication error on send'.
	e.txFinish(syscall.ECOMM, true)
}

// txFinish ends the transfer with err (nil: success).
func (e *isotpEP) txFinish(err error, report bool) {
	e.mu.Lock()
	e.txState = isotpIdle
	e.txGen++
	if e.txTimer != nil {
		e.txTimer.Stop()
	}
	if err != nil && report {
		e.pending = err
	}
	if e.txWaiting {
		e.txDone = true
		e.txResult = err
	}
	e.mu.Unlock()
	e.wq.Notify(waiter.EventOut | waiter.EventErr)
}

// sendCFLocked sends the next consecutive frame; called with mu held,
// returns with it released.
func (e *isotpEP) sendCFLocked() {
	off := e.startFrameLocked()
	e.frame.Data[off] = isotpCF | e.txSN&0x0F
	e.txSN = (e.txSN + 1) & 0x0F
	room := int(e.ll.TxDL) - off - 1
	n := copy(e.frame.Data[off+1:off+1+room], e.txBuf[e.txOff:e.txLen])
	e.txOff += n
	e.finishFrameLocked(off + 1 + n)
	e.txState = isotpWaitEcho
	e.armTxLocked(isotpTimeout) // N_As: the echo must come back
	f := e.frame
	ifc := e.ifc
	e.mu.Unlock()
	if err := e.sendFrame(ifc, &f); err != nil {
		e.txFinish(err, true)
	}
}

// ReceiveCAN takes frames from the interface: the echo of our own
// frames drives transmission; frames with the rx id are ISO-TP PDUs.
func (e *isotpEP) ReceiveCAN(_ *link.CANIf, f *wire.CANFrame, local bool, origin any) {
	if origin == any(e) {
		e.echo()
		return
	}
	e.mu.Lock()
	if e.closed || f.IsErr() || f.IsRTR() || f.ID != e.rxID || (f.IsFD() && !e.fd()) {
		e.mu.Unlock()
		return
	}
	ae := 0
	if e.opt.Flags&(CAN_ISOTP_EXTEND_ADDR|CAN_ISOTP_RX_EXT_ADDR) != 0 {
		ae = 1
		want := e.opt.ExtAddress
		if e.opt.Flags&CAN_ISOTP_RX_EXT_ADDR != 0 {
			want = e.opt.RxExtAddress
		}
		if f.Len < 1 || f.Data[0] != want {
			e.mu.Unlock()
			return
		}
	}
	if int(f.Len) <= ae {
		e.RxErrors++
		e.mu.Unlock()
		return
	}
	switch f.Data[ae] & 0xF0 {
	case isotpFC:
		e.rcvFCLocked(f, ae) // unlocks
	case isotpSF:
		e.rcvSFLocked(f, ae)
	case isotpFF:
		e.rcvFFLocked(f, ae) // unlocks
	case isotpCF:
		e.rcvCFLocked(f, ae) // unlocks
	default:
		e.RxErrors++
		e.mu.Unlock()
	}
}

// echo: our last frame was sent; go on with the transfer.
func (e *isotpEP) echo() {
	e.mu.Lock()
	if e.txState != isotpWaitEcho {
		e.mu.Unlock()
		return
	}
	if e.txOff >= e.txLen {
		e.mu.Unlock()
		e.txFinish(nil, false)
		return
	}
	if e.txBS > 0 {
		e.txBS--
		if e.txBS == 0 {
			// Block done: the receiver must send the next FC.
			e.txState = isotpWaitFC
			e.armTxLocked(isotpTimeout)
			e.mu.Unlock()
			return
		}
	}
	e.txState = isotpSending
	if e.txGap > 0 {
		e.armTxLocked(e.txGap)
		e.mu.Unlock()
		return
	}
	e.sendCFLocked()
}

func (e *isotpEP) rcvFCLocked(f *wire.CANFrame, ae int) {
	if e.txState != isotpWaitFC {
		e.mu.Unlock()
		return
	}
	if int(f.Len) < ae+3 {
		e.mu.Unlock()
		e.txFinish(syscall.EBADMSG, true)
		return
	}
	fs := f.Data[ae] & 0x0F
	switch fs {
	case isotpFCCTS:
		e.txBS = int(f.Data[ae+1])
		st := f.Data[ae+2]
		gap := isotpSTmin(st)
		if e.opt.Flags&CAN_ISOTP_FORCE_TXSTMIN != 0 {
			gap = time.Duration(e.txStmin)
		}
		// As isotp.c: the gap is STmin plus the frame's transmission time.
		e.txGap = gap + time.Duration(e.opt.FrameTxTime)
		e.txState = isotpSending
		// The first CF of a block goes at once.
		e.sendCFLocked()
	case isotpFCWT:
		// Wait: the timer starts again.
		e.armTxLocked(isotpTimeout)
		e.mu.Unlock()
	case isotpFCOVF:
		e.mu.Unlock()
		e.txFinish(syscall.EMSGSIZE, true)
	default:
		e.mu.Unlock()
		e.txFinish(syscall.EBADMSG, true)
	}
}

// isotpSTmin decodes the STmin byte: 0-127 ms, 0xF1-0xF9 100-900 µs,
// reserved values as the longest, 127 ms (ISO 15765-2).
func isotpSTmin(v uint8) time.Duration {
	switch {
	case v <= 0x7F:
		return time.Duration(v) * time.Millisecond
	case v >= 0xF1 && v <= 0xF9:
		return time.Duration(v-0xF0) * 100 * time.Microsecond
	}
	return 127 * time.Millisecond
}

// checkPadLocked applies CAN_ISOTP_CHK_PAD_LEN / _DATA to a frame whose
// used bytes end at used.
func (e *isotpEP) checkPadLocked(f *wire.CANFrame, used int) bool {
	if e.opt.Flags&CAN_ISOTP_CHK_PAD_LEN != 0 && !f.IsFD() && f.Len != 8 {
		return false
	}
	if e.opt.Flags&CAN_ISOTP_CHK_PAD_DATA != 0 {
		for i := used; i < int(f.Len); i++ {
			if f.Data[i] != e.opt.RxPadContent {
				return false
			}
		}
	}
	return true
}

func (e *isotpEP) rcvSFLocked(f *wire.CANFrame, ae int) {
	n := int(f.Data[ae] & 0x0F)
	off := ae + 1
	if n == 0 && f.IsFD() && int(f.Len) > 8 {
		// Escape SF of CAN FD: the length is in the next byte.
		if int(f.Len) < ae+2 {
			e.badFrameLocked()
			return
		}
		n = int(f.Data[ae+1])
		off = ae + 2
	}
	if n == 0 || off+n > int(f.Len) || !e.checkPadLocked(f, off+n) {
		e.badFrameLocked()
		return
	}
	if e.opt.Flags&CAN_ISOTP_HALF_DUPLEX != 0 && e.txState != isotpIdle {
		e.mu.Unlock()
		return
	}
	// A new SF ends any reception in progress.
	e.rxActive = false
	e.queueMsgLocked(f.Data[off : off+n]) // unlocks
}

func (e *isotpEP) badFrameLocked() {
	e.RxErrors++
	if e.opt.Flags&(CAN_ISOTP_CHK_PAD_LEN|CAN_ISOTP_CHK_PAD_DATA) != 0 {
		e.pending = syscall.EBADMSG
	}
	e.mu.Unlock()
	e.wq.Notify(waiter.EventErr | waiter.EventIn)
}

// queueMsgLocked hands a complete message to recv; unlocks.
func (e *isotpEP) queueMsgLocked(b []byte) {
	if len(e.msgs) >= isotpMaxQueued {
		e.RxDropped++
		e.mu.Unlock()
		return
	}
	var m []byte
	if k := len(e.free); k > 0 && cap(e.free[k-1]) >= len(b) {
		m = e.free[k-1][:len(b)]
		e.free = e.free[:k-1]
	} else {
		m = make([]byte, len(b))
	}
	copy(m, b)
	e.msgs = append(e.msgs, m)
	e.msgAt = append(e.msgAt, max(e.clk.Now().UnixNano(), 1))
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
}

// sendFCLocked sends a flow control frame with status fs; unlocks.
func (e *isotpEP) sendFCLocked(fs uint8) {
	if e.opt.Flags&CAN_ISOTP_LISTEN_MODE != 0 {
		e.mu.Unlock()
		return
	}
	off := e.startFrameLocked()
	e.frame.Data[off] = isotpFC | fs
	e.frame.Data[off+1] = e.fc.BS
	e.frame.Data[off+2] = e.fc.STmin
	e.finishFrameLocked(off + 3)
	f := e.frame
	ifc := e.ifc
	e.mu.Unlock()
	_ = e.sendFrame(ifc, &f)
}

func (e *isotpEP) rcvFFLocked(f *wire.CANFrame, ae int) {
	if int(f.Len) < ae+2 {
		e.badFrameLocked()
		return
	}
	n := int(f.Data[ae]&0x0F)<<8 | int(f.Data[ae+1])
	off := ae + 2
	if n == 0 {
		if int(f.Len) < ae+6 {
			e.badFrameLocked()
			return
		}
		n = int(binary.BigEndian.Uint32(f.Data[ae+2:]))
		off = ae + 6
	}
	// An FF must carry a message too long for an SF, and fill its frame.
	if n <= int(f.Len)-off || (!f.IsFD() && f.Len != 8) || !e.checkPadLocked(f, int(f.Len)) {
		e.badFrameLocked()
		return
	}
	if n > isotpMaxPDU {
		e.rxActive = false
		e.sendFCLocked(isotpFCOVF)
		return
	}
	e.rxActive = true
	e.rxLen = n
	e.rxOff = copy(e.rxBuf[:n], f.Data[off:f.Len])
	e.rxSN = 1
	e.rxBS = int(e.fc.BS)
	e.armRxLocked()
	e.sendFCLocked(isotpFCCTS)
}

func (e *isotpEP) armRxLocked() {
	e.rxGen++
	gen := e.rxGen
	if e.rxTimer != nil {
		e.rxTimer.Stop()
	}
	e.rxTimer = e.clk.AfterFunc(isotpTimeout, func() { e.rxTimeout(gen) })
}

// rxTimeout is N_Cr: the next CF did not come.
func (e *isotpEP) rxTimeout(gen uint64) {
	e.mu.Lock()
	if gen != e.rxGen || !e.rxActive || e.closed {
		e.mu.Unlock()
		return
	}
	e.rxActive = false
	e.pending = syscall.ETIMEDOUT
	e.mu.Unlock()
	e.wq.Notify(waiter.EventErr | waiter.EventIn)
}

func (e *isotpEP) rcvCFLocked(f *wire.CANFrame, ae int) {
	if !e.rxActive {
		e.mu.Unlock()
		return
	}
	if e.opt.Flags&CAN_ISOTP_FORCE_RXSTMIN != 0 {
		// A CF closer to the last one than rx_stmin is ignored, as
		// isotp.c does for senders that do not honour STmin.
		now := e.clk.Now()
		if !e.rxLastCF.IsZero() && now.Sub(e.rxLastCF) < time.Duration(e.rxStmin) {
			e.RxErrors++
			e.mu.Unlock()
			return
		}
		e.rxLastCF = now
	}
	if sn := f.Data[ae] & 0x0F; sn != e.rxSN {
		// Wrong sequence number: 'illegal byte sequence', reception ends.
		e.rxActive = false
		e.rxGen++
		e.rxTimer.Stop()
		e.pending = syscall.EILSEQ
		e.RxErrors++
		e.mu.Unlock()
		e.wq.Notify(waiter.EventErr | waiter.EventIn)
		return
	}
	e.rxSN = (e.rxSN + 1) & 0x0F
	want := min(e.rxLen-e.rxOff, int(f.Len)-ae-1)
	if want < 0 || !e.checkPadLocked(f, ae+1+want) {
		e.badFrameLocked()
		return
	}
	e.rxOff += copy(e.rxBuf[e.rxOff:e.rxLen], f.Data[ae+1:ae+1+want])
	if e.rxOff >= e.rxLen {
		e.rxActive = false
		e.rxGen++
		e.rxTimer.Stop()
		e.queueMsgLocked(e.rxBuf[:e.rxLen])
		return
	}
	e.armRxLocked()
	if e.rxBS > 0 {
		e.rxBS--
		if e.rxBS == 0 {
			e.rxBS = int(e.fc.BS)
			e.sendFCLocked(isotpFCCTS)
			return
		}
	}
	e.mu.Unlock()
}

// recv gives one message, or the pending error first (as
// skb_recv_datagram does); a short buffer cuts it (MSG_TRUNC).
func (e *isotpEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	n, full, _, from, err := e.recvMsg(b, flags)
	return n, full, from, err
}

// recvMsg is recv that also gives the message's completion time.
func (e *isotpEP) recvMsg(b []byte, flags int) (n, full int, at int64, from Sockaddr, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		err := e.pending
		e.pending = nil
		return 0, 0, 0, nil, err
	}
	if len(e.msgs) == 0 {
		return 0, 0, 0, nil, syscall.EAGAIN
	}
	m := e.msgs[0]
	n, full, at = copy(b, m), len(m), e.msgAt[0]
	e.stamp.recvd(at, e.ts.cmsgs(at)) // SIOCGSTAMP (ioctl.go): the last frame's arrival
	if flags&MSG_PEEK == 0 {
		copy(e.msgs, e.msgs[1:])
		e.msgs[len(e.msgs)-1] = nil
		e.msgs = e.msgs[:len(e.msgs)-1]
		e.msgAt = e.msgAt[:copy(e.msgAt, e.msgAt[1:])]
		if len(e.free) < 4 {
			e.free = append(e.free, m[:0])
		}
	}
	if flags&msgNoFrom != 0 {
		return n, full, at, nil, nil
	}
	return n, full, at, &SockaddrCAN{Ifindex: e.ifindex, Ifname: e.n.canIfName(e.ifindex), RxID: e.rxID, TxID: e.txID}, nil
}

// recvISOTPControl is recvmsg(2) on a CAN_ISOTP socket with a control
// buffer: the message and the timestamps SO_TIMESTAMP* and
// SO_TIMESTAMPING ask for, with the arrival of its last frame
// (isotp_recvmsg's sock_recv_cmsgs).
func (s *Socket) recvISOTPControl(e *isotpEP, p []byte, w *cmsgWriter, flags int) (int, int, Sockaddr, error) {
	return s.recvStamped(w, flags, false, &e.ts, e.clk, func() (n, full, rflags int, at int64, from Sockaddr, err error) {
		n, full, at, from, err = e.recvMsg(p, flags)
		return n, full, 0, at, from, err
	}) // rxstamp.go
}

// setOption is isotp_setsockopt: SOL_CAN_ISOTP only (EINVAL otherwise),
// not after bind (EISCONN), values checked as Linux checks them.
func (e *isotpEP) setOption(level, name int, v any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if level == SOL_SOCKET {
		var rb, sb int
		return canSolSocket(name, v, &rb, &sb)
	}
	if level != SOL_CAN_ISOTP {
		return syscall.EINVAL
	}
	if e.bound {
		return syscall.EISCONN
	}
	switch name {
	case CAN_ISOTP_OPTS:
		o, ok := v.(ISOTPOptions)
		if !ok {
			return syscall.EINVAL
		}
		if o.Flags&^isotpAllFlags != 0 {
			return syscall.EINVAL
		}
		if o.Flags&CAN_ISOTP_SF_BROADCAST != 0 && o.Flags&CAN_ISOTP_CF_BROADCAST != 0 {
			return syscall.EINVAL
		}
		if o.Flags&CAN_ISOTP_RX_EXT_ADDR == 0 {
			o.RxExtAddress = o.ExtAddress
		}
		e.opt = o
	case CAN_ISOTP_RECV_FC:
		o, ok := v.(ISOTPFCOptions)
		if !ok {
			return syscall.EINVAL
		}
		e.fc = o
	case CAN_ISOTP_TX_STMIN, CAN_ISOTP_RX_STMIN:
		u, err := canU32Opt(v)
		if err != nil {
			return err
		}
		if name == CAN_ISOTP_TX_STMIN {
			e.txStmin = u
		} else {
			e.rxStmin = u
		}
	case CAN_ISOTP_LL_OPTS:
		o, ok := v.(ISOTPLLOptions)
		if !ok {
			return syscall.EINVAL
		}
		if o.MTU != CAN_MTU && o.MTU != CANFD_MTU {
			return syscall.EINVAL
		}
		if o.TxDL < 8 || !wire.CANFDValidLen(int(o.TxDL)) || (o.MTU == CAN_MTU && o.TxDL != 8) {
			return syscall.EINVAL
		}
		e.ll = o
	default:
		return syscall.ENOPROTOOPT
	}
	return nil
}

func (e *isotpEP) getOption(level, name int) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if level == SOL_SOCKET {
		return canSolSocketGet(name, canDefaultRcvBuf, canDefaultRcvBuf)
	}
	if level != SOL_CAN_ISOTP {
		return nil, syscall.EINVAL
	}
	switch name {
	case CAN_ISOTP_OPTS:
		return e.opt, nil
	case CAN_ISOTP_RECV_FC:
		return e.fc, nil
	case CAN_ISOTP_TX_STMIN:
		return int(e.txStmin), nil
	case CAN_ISOTP_RX_STMIN:
		return int(e.rxStmin), nil
	case CAN_ISOTP_LL_OPTS:
		return e.ll, nil
	}
	return nil, syscall.ENOPROTOOPT
}
