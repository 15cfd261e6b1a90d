package socket

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
	"weak"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// AF_CAN sockets over sockstack's CAN buses (link.CANBus), with the
// semantics of Linux's SocketCAN (net/can/af_can.c, raw.c, isotp.c,
// bcm.c): socket(AF_CAN, SOCK_RAW, CAN_RAW), socket(AF_CAN, SOCK_DGRAM,
// CAN_ISOTP), socket(AF_CAN, SOCK_DGRAM, CAN_BCM).
//
// A Net gets CAN interfaces with AttachCAN; they are numbered from
// CANIfindexBase so they never meet the stack's NIC ids. Addresses are
// SockaddrCAN: an interface index (0: every CAN interface, for binding
// CAN_RAW), or a name that bind and sendto look up the way Python's
// socket module resolves ('vcan0',).

// CANIfindexBase is the index of the first CAN interface of a Net.
const CANIfindexBase = 1000

// SockaddrCAN is struct sockaddr_can.
type SockaddrCAN struct {
	Ifindex int
	Ifname  string // used when Ifindex is 0 and the name is not empty
	RxID    uint32 // CAN_ISOTP: the id the socket receives on
	TxID    uint32 // CAN_ISOTP: the id it sends with
}

func (a *SockaddrCAN) Family() int { return AF_CAN }
func (a *SockaddrCAN) String() string {
	if a.Ifname != "" {
		return a.Ifname
	}
	return fmt.Sprintf("can%d", a.Ifindex)
}

// CANFilter is struct can_filter: a frame matches when
// (frame id & Mask) == (ID & Mask); CAN_INV_FILTER in ID inverts that.
type CANFilter struct {
	ID   uint32
	Mask uint32
}

// canSpace is the CAN side of a Net: its interfaces and the sockets
// bound to all of them. Kept beside Net (keyed by it) so the socket
// layer's own structure stays as it is.
type canSpace struct {
	mu  sync.Mutex
	ifs []*link.CANIf
	any []canAnyBinder // sockets bound to ifindex 0, joined to new interfaces
}

type canAnyBinder interface {
	bindIf(index int, ifc *link.CANIf)
}

// joinAny binds b to every CAN interface there is and to those added later
// (ifindex 0).
func (cs *canSpace) joinAny(b canAnyBinder) {
	cs.mu.Lock()
	cs.any = append(cs.any, b)
	ifs := append([]*link.CANIf(nil), cs.ifs...)
	cs.mu.Unlock()
	for i, ifc := range ifs {
		b.bindIf(CANIfindexBase+i, ifc)
	}
}

// leaveAny undoes joinAny for interfaces added from now on.
func (cs *canSpace) leaveAny(b canAnyBinder) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, x := range cs.any {
		if x == b {
			cs.any = append(cs.any[:i], cs.any[i+1:]...)
			return
		}
	}
}

// canSpaces maps a Net (weakly, so a dropped Net is not kept alive) to
// its CAN side.
var canSpaces sync.Map // weak.Pointer[Net] -> *canSpace

func (n *Net) can() *canSpace {
	k := weak.Make(n)
	if v, ok := canSpaces.Load(k); ok {
		return v.(*canSpace)
	}
	v, loaded := canSpaces.LoadOrStore(k, &canSpace{})
	if !loaded {
		runtime.AddCleanup(n, func(k weak.Pointer[Net]) { canSpaces.Delete(k) }, k)
	}
	return v.(*canSpace)
}

// AttachCAN gives the Net a CAN interface (a node on a bus) and returns
// its index. Sockets bound to every interface start receiving from it.
func (n *Net) AttachCAN(ifc *link.CANIf) int {
	cs := n.can()
	cs.mu.Lock()
	cs.ifs = append(cs.ifs, ifc)
	idx := CANIfindexBase + len(cs.ifs) - 1
	anyb := append([]canAnyBinder(nil), cs.any...)
	cs.mu.Unlock()
	for _, b := range anyb {
		b.bindIf(idx, ifc)
	}
	return idx
}

// CANInterface names one CAN interface of a Net.
type CANInterface struct {
	Index int
	Name  string
	If    *link.CANIf
}

// CANInterfaces lists the Net's CAN interfaces.
func (n *Net) CANInterfaces() []CANInterface {
	cs := n.can()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]CANInterface, len(cs.ifs))
	for i, ifc := range cs.ifs {
		out[i] = CANInterface{CANIfindexBase + i, ifc.Name(), ifc}
	}
	return out
}

// CANIfindex is if_nametoindex for CAN interfaces (ENODEV if unknown).
func (n *Net) CANIfindex(name string) (int, error) {
	for _, c := range n.CANInterfaces() {
		if c.Name == name {
			return c.Index, nil
		}
	}
	return 0, syscall.ENODEV
}

func (n *Net) canIf(index int) *link.CANIf {
	cs := n.can()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	i := index - CANIfindexBase
	if i < 0 || i >= len(cs.ifs) {
		return nil
	}
	return cs.ifs[i]
}

func (n *Net) canIfName(index int) string {
	if ifc := n.canIf(index); ifc != nil {
		return ifc.Name()
	}
	return ""
}

// canResolve turns an address into an interface index: the index if
// set, else the name (ENODEV when unknown).
func (n *Net) canResolve(a *SockaddrCAN) (int, error) {
	if a.Ifindex != 0 || a.Ifname == "" {
		return a.Ifindex, nil
	}
	return n.CANIfindex(a.Ifname)
}

// newCAN makes an AF_CAN endpoint. As af_can.c's can_create: a protocol
// outside 0..CAN_NPROTO-1 is EINVAL, an unknown one EPROTONOSUPPORT, one
// with the wrong socket type EPROTOTYPE.
func (n *Net) newCAN(typ, proto int) (endpoint, error) {
	if proto < 0 || proto >= CAN_NPROTO {
		return nil, syscall.EINVAL
	}
	switch proto {
	case CAN_RAW:
		if typ != SOCK_RAW {
			return nil, syscall.EPROTOTYPE
		}
		return newCANRaw(n), nil
	case CAN_ISOTP:
		if typ != SOCK_DGRAM {
			return nil, syscall.EPROTOTYPE
		}
		return newISOTP(n), nil
	case CAN_BCM:
		if typ != SOCK_DGRAM {
			return nil, syscall.EPROTOTYPE
		}
		return newBCM(n), nil
	}
	return nil, syscall.EPROTONOSUPPORT
}

// canRxEntry is one received frame waiting in a socket.
type canRxEntry struct {
	f       wire.CANFrame
	ifindex int32
	flags   int32
	ts      time.Time
}

// canRing is a bounded FIFO of received frames; it grows to its limit
// by doubling, so steady state allocates nothing.
type canRing struct {
	buf     []canRxEntry
	head, n int
	limit   int
}

func (r *canRing) push() *canRxEntry {
	if r.n == len(r.buf) {
		if len(r.buf) >= r.limit {
			return nil
		}
		nb := make([]canRxEntry, min(max(2*len(r.buf), 16), r.limit))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	e := &r.buf[(r.head+r.n)%len(r.buf)]
	r.n++
	return e
}

func (r *canRing) front() *canRxEntry { return &r.buf[r.head] }

func (r *canRing) pop() {
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// Receive queue sizing: every queued frame is charged what it pins (its
// ring slot) plus stack.DgramOverhead, Linux's per-skb overhead, as the
// other datagram queues are (docs/DECISIONS.md "Receive queues charge
// true size"); an empty queue still takes one frame.
const (
	canDefaultRcvBuf = 212992
	canTruesize      = int(unsafe.Sizeof(canRxEntry{})) + stack.DgramOverhead
)

func canQueueLimit(rcvbuf int) int { return max(rcvbuf/canTruesize, 1) }

// CAN_RAW ----------------------------------------------------------------

type canRawEP struct {
	n  *Net
	wq waiter.Queue

	mu       sync.Mutex
	bound    bool
	ifindex  int
	bindings []*canRawBinding
	filters  []CANFilter
	errMask  uint32
	loopback bool
	recvOwn  bool
	fdFrames bool
	join     bool
	ts       tsOpts // SO_TIMESTAMP* (rxstamp.go), read by RecvMsgControl and RecvMsgCAN
	rcvbuf   int
	sndbuf   int
	q        canRing
	closed   bool
	scratch  [wire.CANFDMTU]byte
	Drops    uint64  // frames lost to a full receive queue
	stamp    rxStamp // SIOCGSTAMP (ioctl.go)
}

// canRawBinding receives one interface's frames for a socket.
type canRawBinding struct {
	ep      *canRawEP
	ifc     *link.CANIf
	ifindex int
}

func newCANRaw(n *Net) *canRawEP {
	e := &canRawEP{n: n, loopback: true, rcvbuf: canDefaultRcvBuf, sndbuf: canDefaultRcvBuf,
		filters: []CANFilter{{0, 0}}}
	e.q.limit = canQueueLimit(e.rcvbuf)
	return e
}

func (e *canRawEP) stream() bool          { return false }
func (e *canRawEP) waiter() *waiter.Queue { return &e.wq }

func (e *canRawEP) listen(int) error                    { return syscall.EOPNOTSUPP }
func (e *canRawEP) accept() (endpoint, Sockaddr, error) { return nil, nil, syscall.EOPNOTSUPP }
func (e *canRawEP) connect(Sockaddr) error              { return syscall.EOPNOTSUPP }
func (e *canRawEP) connectResult() error                { return nil }
func (e *canRawEP) shutdown(int) error                  { return syscall.EOPNOTSUPP }
func (e *canRawEP) remoteAddr() (Sockaddr, error)       { return nil, syscall.ENOTCONN }

func (e *canRawEP) localAddr() Sockaddr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &SockaddrCAN{Ifindex: e.ifindex, Ifname: e.n.canIfName(e.ifindex)}
}

// bind is raw_bind: a missing or foreign address is EINVAL, an unknown
// interface ENODEV; binding again moves the socket.
func (e *canRawEP) bind(a Sockaddr) error {
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
	e.unbind()
	e.mu.Lock()
	e.bound, e.ifindex = true, idx
	e.mu.Unlock()
	if idx != 0 {
		e.bindIf(idx, e.n.canIf(idx))
		return nil
	}
	e.n.can().joinAny(e)
	return nil
}

func (e *canRawEP) bindIf(index int, ifc *link.CANIf) {
	b := &canRawBinding{ep: e, ifc: ifc, ifindex: index}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.bindings = append(e.bindings, b)
	e.mu.Unlock()
	ifc.AddReceiver(b)
}

func (e *canRawEP) unbind() {
	e.mu.Lock()
	bs := e.bindings
	e.bindings = nil
	wasAny := e.bound && e.ifindex == 0
	e.mu.Unlock()
	for _, b := range bs {
		b.ifc.RemoveReceiver(b)
	}
	if wasAny {
		e.n.can().leaveAny(e)
	}
}

func (e *canRawEP) close() {
	e.unbind()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
}

func (e *canRawEP) readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r waiter.EventMask
	if e.q.n > 0 {
		r |= waiter.EventIn
	}
	r |= waiter.EventOut
	return r & mask
}

// canFilterMatch is af_can's test of one filter against a frame id.
func canFilterMatch(id uint32, f CANFilter) bool {
	inv := f.ID&CAN_INV_FILTER != 0
	mask := f.Mask & (CAN_EFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG)
	want := f.ID &^ CAN_INV_FILTER & mask
	if inv {
		return id&mask != want
	}
	return id&mask == want
}

// ReceiveCAN is raw_rcv with af_can's filter lists in front of it.
func (b *canRawBinding) ReceiveCAN(_ *link.CANIf, f *wire.CANFrame, local bool, origin any) {
	e := b.ep
	e.mu.Lock()
	if e.closed || (origin == any(e) && !e.recvOwn) || (f.IsFD() && !e.fdFrames) {
		e.mu.Unlock()
		return
	}
	matches := 0
	if f.IsErr() {
		// Error frames match only the error mask (a filter with
		// CAN_ERR_FLAG in its mask is an error filter too, as in af_can).
		if f.ID&e.errMask&CAN_ERR_MASK != 0 {
			matches = 1
		}
		for _, fl := range e.filters {
			if fl.Mask&CAN_ERR_FLAG != 0 && f.ID&fl.Mask&CAN_ERR_MASK != 0 {
				matches++
			}
		}
	} else {
		for _, fl := range e.filters {
			if fl.Mask&CAN_ERR_FLAG == 0 && canFilterMatch(f.ID, fl) {
				matches++
			}
		}
	}
	// One copy per socket however many filters match; with
	// CAN_RAW_JOIN_FILTERS only when every filter matched.
	if matches == 0 || (e.join && len(e.filters) > 1 && matches < len(e.filters)) {
		e.mu.Unlock()
		return
	}
	slot := e.q.push()
	if slot == nil {
		e.Drops++
		e.mu.Unlock()
		return
	}
	slot.f = *f
	slot.ifindex = int32(b.ifindex)
	slot.flags = 0
	if local {
		slot.flags |= MSG_DONTROUTE
	}
	if origin == any(e) {
		slot.flags |= MSG_CONFIRM
	}
	slot.ts = b.ifc.Bus().Clock().Now()
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
}

// send is raw_sendmsg: the interface comes from the address or the
// binding (none: ENXIO); the buffer must be one whole frame: 16 bytes, or
// 72 with CAN_RAW_FD_FRAMES (EINVAL otherwise).
func (e *canRawEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	e.mu.Lock()
	idx := e.ifindex
	fd := e.fdFrames
	loop := e.loopback
	e.mu.Unlock()
	if to != nil {
		sa, ok := to.(*SockaddrCAN)
		if !ok {
			return 0, syscall.EINVAL
		}
		var err error
		if idx, err = e.n.canResolve(sa); err != nil {
			return 0, err
		}
	}
	// The size is checked before the interface, as raw_sendmsg does.
	if len(b) != CAN_MTU && !(fd && len(b) == CANFD_MTU) {
		return 0, syscall.EINVAL
	}
	ifc := e.n.canIf(idx)
	if ifc == nil {
		return 0, syscall.ENXIO
	}
	var f wire.CANFrame
	if err := wire.ParseCANFrame(b, &f); err != nil {
		return 0, syscall.EINVAL
	}
	if err := ifc.Send(&f, e, loop); err != nil {
		return 0, err
	}
	return len(b), nil
}

// recv gives one frame (its struct, 16 or 72 bytes); a shorter buffer
// gets the frame cut and MSG_TRUNC, as raw_recvmsg does.
func (e *canRawEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	n, full, idx, _, _, err := e.recvFrame(b, flags)
	if err != nil {
		return 0, 0, nil, err
	}
	if flags&msgNoFrom != 0 {
		return n, full, nil, nil
	}
	return n, full, &SockaddrCAN{Ifindex: idx, Ifname: e.n.canIfName(idx)}, nil
}

func (e *canRawEP) recvFrame(b []byte, flags int) (n, full, ifindex, rflags int, ts time.Time, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.q.n == 0 {
		return 0, 0, 0, 0, time.Time{}, syscall.EAGAIN
	}
	ent := e.q.front()
	full = wire.PutCANFrame(e.scratch[:], &ent.f)
	n = copy(b, e.scratch[:full])
	ifindex, rflags, ts = int(ent.ifindex), int(ent.flags), ent.ts
	if flags&MSG_PEEK == 0 {
		e.q.pop()
	}
	at := ts.UnixNano()
	e.stamp.recvd(at, e.ts.cmsgs(at)) // SIOCGSTAMP (ioctl.go), left alone when control messages give the time
	return n, full, ifindex, rflags, ts, nil
}

// CANMsg is what RecvMsgCAN reports beside the bytes: the receiving
// interface, MSG_DONTROUTE / MSG_CONFIRM / MSG_TRUNC in Flags, and the
// receive time (what SO_TIMESTAMP's control message carries; zero
// unless SO_TIMESTAMP or SO_TIMESTAMPNS is on).
type CANMsg struct {
	Ifindex int
	Flags   int
	Time    time.Time
}

// RecvMsgCAN is recvmsg(2) on a CAN_RAW socket: one frame into b, with
// the receive flags and timestamp. It blocks like Recv.
func (s *Socket) RecvMsgCAN(b []byte, flags int) (int, CANMsg, error) {
	e, ok := s.ep.(*canRawEP)
	if !ok {
		return 0, CANMsg{}, syscall.EOPNOTSUPP
	}
	var n, full int
	var m CANMsg
	err := s.blocking(flags, false, waiter.EventIn, func() error {
		var err error
		n, full, m.Ifindex, m.Flags, m.Time, err = e.recvFrame(b, flags)
		return err
	})
	if err != nil {
		return 0, CANMsg{}, err
	}
	if full > n {
		m.Flags |= MSG_TRUNC
	}
	if e.ts.v.Load()&tsRcv == 0 {
		m.Time = time.Time{}
	}
	return n, m, nil
}

// recvCANControl is recvmsg(2) on a CAN_RAW socket with a control
// buffer: the frame, its interface, the receive flags, and the
// timestamps SO_TIMESTAMP* and SO_TIMESTAMPING ask for (raw_recvmsg's
// sock_recv_cmsgs).
func (s *Socket) recvCANControl(e *canRawEP, p []byte, w *cmsgWriter, flags int) (int, int, Sockaddr, error) {
	return s.recvStamped(w, flags, false, &e.ts, e.n.st.Clock(), func() (n, full, rflags int, at int64, from Sockaddr, err error) {
		var idx int
		var ts time.Time
		if n, full, idx, rflags, ts, err = e.recvFrame(p, flags); err != nil {
			return
		}
		return n, full, rflags, ts.UnixNano(), &SockaddrCAN{Ifindex: idx, Ifname: e.n.canIfName(idx)}, nil
	})
}

// parseCANFilters takes []CANFilter, or the packed array of struct
// can_filter a C or Python program passes (8 bytes each, host order).
func parseCANFilters(v any) ([]CANFilter, error) {
	switch x := v.(type) {
	case []CANFilter:
		if len(x) > CAN_RAW_FILTER_MAX {
			return nil, syscall.EINVAL
		}
		return append([]CANFilter{}, x...), nil
	case CANFilter:
		return []CANFilter{x}, nil
	case []byte:
		if len(x)%8 != 0 || len(x)/8 > CAN_RAW_FILTER_MAX {
			return nil, syscall.EINVAL
		}
		out := make([]CANFilter, len(x)/8)
		for i := range out {
			out[i] = CANFilter{binary.NativeEndian.Uint32(x[8*i:]), binary.NativeEndian.Uint32(x[8*i+4:])}
		}
		return out, nil
	case nil:
		return []CANFilter{}, nil
	}
	return nil, syscall.EINVAL
}

func canU32Opt(v any) (uint32, error) {
	switch x := v.(type) {
	case uint32:
		return x, nil
	case []byte:
		if len(x) != 4 {
			return 0, syscall.EINVAL
		}
		return binary.NativeEndian.Uint32(x), nil
	}
	i, err := intOpt(v)
	return uint32(i), err
}

// canSolSocket handles the SOL_SOCKET options every CAN socket has
// (the timestamp options are the Socket's, rxstamp.go).
func canSolSocket(name int, v any, rcvbuf, sndbuf *int) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	switch name {
	case SO_RCVBUF:
		// Linux doubles the value and keeps a floor of 2304 bytes.
		*rcvbuf = max(min(i, canDefaultRcvBuf)*2, 2304)
	case SO_SNDBUF:
		*sndbuf = max(min(i, canDefaultRcvBuf)*2, 4608)
	case SO_REUSEADDR, SO_BROADCAST, SO_KEEPALIVE, SO_PRIORITY:
	default:
		return syscall.ENOPROTOOPT
	}
	return nil
}

// SO_PRIORITY is accepted and ignored on CAN sockets (one queue per node).
const SO_PRIORITY = 12

func canSolSocketGet(name int, rcvbuf, sndbuf int) (any, error) {
	switch name {
	case SO_RCVBUF:
		return rcvbuf, nil
	case SO_SNDBUF:
		return sndbuf, nil
	}
	return nil, syscall.ENOPROTOOPT
}

// setOption is raw_setsockopt: any level but SOL_CAN_RAW is EINVAL
// there, an unknown name ENOPROTOOPT, a value of the wrong size EINVAL.
func (e *canRawEP) setOption(level, name int, v any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if level == SOL_SOCKET {
		err := canSolSocket(name, v, &e.rcvbuf, &e.sndbuf)
		e.q.limit = canQueueLimit(e.rcvbuf)
		return err
	}
	if level != SOL_CAN_RAW {
		return syscall.EINVAL
	}
	switch name {
	case CAN_RAW_FILTER:
		fs, err := parseCANFilters(v)
		if err != nil {
			return err
		}
		e.filters = fs
		return nil
	case CAN_RAW_ERR_FILTER:
		m, err := canU32Opt(v)
		if err != nil {
			return err
		}
		e.errMask = m & CAN_ERR_MASK
		return nil
	case CAN_RAW_LOOPBACK, CAN_RAW_RECV_OWN_MSGS, CAN_RAW_FD_FRAMES, CAN_RAW_JOIN_FILTERS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		on := i != 0
		switch name {
		case CAN_RAW_LOOPBACK:
			e.loopback = on
		case CAN_RAW_RECV_OWN_MSGS:
			e.recvOwn = on
		case CAN_RAW_FD_FRAMES:
			e.fdFrames = on
		case CAN_RAW_JOIN_FILTERS:
			e.join = on
		}
		return nil
	}
	return syscall.ENOPROTOOPT
}

func (e *canRawEP) getOption(level, name int) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if level == SOL_SOCKET {
		return canSolSocketGet(name, e.rcvbuf, e.sndbuf)
	}
	if level != SOL_CAN_RAW {
		return nil, syscall.EINVAL
	}
	switch name {
	case CAN_RAW_FILTER:
		return append([]CANFilter{}, e.filters...), nil
	case CAN_RAW_ERR_FILTER:
		return int(e.errMask), nil
	case CAN_RAW_LOOPBACK:
		return b2i(e.loopback), nil
	case CAN_RAW_RECV_OWN_MSGS:
		return b2i(e.recvOwn), nil
	case CAN_RAW_FD_FRAMES:
		return b2i(e.fdFrames), nil
	case CAN_RAW_JOIN_FILTERS:
		return b2i(e.join), nil
	}
	return nil, syscall.ENOPROTOOPT
}

// CANDrops is the number of frames a CAN_RAW socket lost to its full
// receive queue (what SO_RXQ_OVFL reports).
func (s *Socket) CANDrops() uint64 {
	e, ok := s.ep.(*canRawEP)
	if !ok {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Drops
}
