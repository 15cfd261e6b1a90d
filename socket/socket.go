package socket

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// Net is the socket layer of one stack: it hands out sockets and their
// descriptor numbers.
type Net struct {
	st *stack.Stack

	mu     sync.Mutex
	fds    map[int]*Socket
	nextFD int
	unix   *unixSpace
}

// New puts a socket layer on a stack.
func New(st *stack.Stack) *Net {
	n := &Net{st: st, fds: map[int]*Socket{}, nextFD: 3, unix: newUnixSpace()}
	n.unix.now = func() int64 { return st.Clock().Now().UnixNano() }
	return n
}

// Stack is the host under the sockets.
func (n *Net) Stack() *stack.Stack { return n.st }

// endpoint is what each kind of socket implements; every method is
// non-blocking, and the Socket turns EAGAIN into waiting.
type endpoint interface {
	bind(Sockaddr) error
	listen(backlog int) error
	accept() (endpoint, Sockaddr, error)
	connect(Sockaddr) error // EINPROGRESS when a stream handshake started
	connectResult() error   // SO_ERROR after EINPROGRESS
	send(b []byte, flags int, to Sockaddr, wait <-chan struct{}) (int, error)
	recv(b []byte, flags int) (n, full int, from Sockaddr, err error)
	shutdown(how int) error
	close()
	readiness(mask waiter.EventMask) waiter.EventMask
	waiter() *waiter.Queue
	localAddr() Sockaddr
	remoteAddr() (Sockaddr, error)
	setOption(level, name int, v any) error
	getOption(level, name int) (any, error)
	stream() bool
}

// Socket is one socket, used like a Python socket object.
type Socket struct {
	net    *Net
	family int
	typ    int
	proto  int32        // 32 bits: nwait fits beside it
	nwait  atomic.Int32 // calls holding cancel: added to under mu, so dropCancel (under mu) sees every holder
	ep     endpoint

	mu      sync.Mutex
	timeout time.Duration // <0 blocking; 0 non-blocking; >0 timeout
	cancel  chan struct{} // closed on Close; made on first need (idle sockets are many)
	closed  atomic.Bool
	fd      int32                        // 32 bits: beside closed, the Socket fits 96 bytes (idle sockets are many)
	x       *sockExtra                   // rarely used state, made on first use; guarded by mu
	went    atomic.Pointer[waiter.Entry] // a blocking call's waiter entry, kept for the next
}

// sockExtra holds what most sockets never set, so an idle socket stays small.
type sockExtra struct {
	rcvTimeo, sndTimeo time.Duration // SO_RCVTIMEO, SO_SNDTIMEO (0 = none)
	rdl, wdl           time.Time     // deadlines (net.Conn adapters)
	stored             map[int]any   // SOL_SOCKET options kept but not acted on
	device             string        // SO_BINDTODEVICE
	refs               *atomic.Int32 // shared with duplicates (Dup); nil if never duplicated
	apart              *inetApart    // AF_INET6 stream: IPv4 and IPv6 TTL/TOS (inet6_apart.go)
	busyPoll           time.Duration // SO_BUSY_POLL when busySet (busypoll.go)
	busySet            bool
	busyPrefer         bool   // SO_PREFER_BUSY_POLL (busypoll.go)
	busyFrames         uint16 // SO_BUSY_POLL_BUDGET (busypoll.go)
	busyFlow           uint32 // a TCP connection's link.TupleFlowHash, once known (busypoll.go)
}

var noExtra sockExtra

// ext returns the extra state for writing, making it; call with mu held.
func (s *Socket) ext() *sockExtra {
	if s.x == nil {
		s.x = new(sockExtra)
	}
	return s.x
}

// rx returns the extra state for reading (zero values when never set);
// call with mu held.
func (s *Socket) rx() *sockExtra {
	if s.x == nil {
		return &noExtra
	}
	return s.x
}

// Socket creates a socket; proto 0 picks the default for the type.
func (n *Net) Socket(family, typ, proto int) (*Socket, error) {
	typ, flags, err := splitType(typ)
	if err != nil {
		return nil, err
	}
	var ep endpoint
	switch family {
	case AF_INET:
		ep, proto, err = n.newInet(typ, proto)
	case AF_UNIX:
		ep, err = n.newUnix(typ, proto)
	case AF_PACKET:
		ep, err = n.newPacket(typ, proto)
	case AF_CAN:
		ep, err = n.newCAN(typ, proto)
	case AF_INET6:
		ep, proto, err = n.newInet6(typ, proto) // inet6.go
	default:
		err = syscall.EAFNOSUPPORT
	}
	if err != nil {
		return nil, err
	}
	return n.register(family, typ, proto, ep).applyTypeFlags(flags), nil
}

// splitType takes SOCK_NONBLOCK and SOCK_CLOEXEC off a socket type, as
// Linux's __sys_socket: any other bit beyond the type is EINVAL.
func splitType(typ int) (base, flags int, err error) {
	flags = typ &^ sockTypeMask
	if flags&^(SOCK_NONBLOCK|SOCK_CLOEXEC) != 0 {
		return 0, 0, syscall.EINVAL
	}
	return typ & sockTypeMask, flags, nil
}

// applyTypeFlags gives a new socket the O_NONBLOCK and FD_CLOEXEC that
// SOCK_NONBLOCK and SOCK_CLOEXEC ask for.
func (s *Socket) applyTypeFlags(flags int) *Socket {
	if flags&SOCK_NONBLOCK != 0 {
		s.SetBlocking(false)
	}
	if flags&SOCK_CLOEXEC != 0 {
		s.SetCloseOnExec(true)
	}
	return s
}

func (n *Net) register(family, typ, proto int, ep endpoint) *Socket {
	s := &Socket{net: n, family: family, typ: typ, proto: int32(proto), ep: ep, timeout: -1}
	n.mu.Lock()
	for {
		if n.nextFD > math.MaxInt32 {
			n.nextFD = 3 // a Socket keeps its descriptor in 32 bits
		}
		if _, used := n.fds[n.nextFD]; !used {
			break
		}
		n.nextFD++
	}
	s.fd = int32(n.nextFD)
	n.fds[n.nextFD] = s
	n.nextFD++
	n.mu.Unlock()
	return s
}

// Lookup returns the socket with descriptor fd.
func (n *Net) Lookup(fd int) *Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fds[fd]
}

// Sockets lists open sockets (for netstat).
func (n *Net) Sockets() []*Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Socket, 0, len(n.fds))
	for _, s := range n.fds {
		out = append(out, s)
	}
	return out
}

// closedChan is the cancel channel of a socket closed before anyone waited.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// cancelChan is closed when the socket closes. Every call must be paired
// with doneCancel, so that dropCancel knows whether anyone holds it.
func (s *Socket) cancelChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		s.cancel = make(chan struct{})
	}
	s.nwait.Add(1)
	return s.cancel
}

// doneCancel ends a use of cancelChan's channel.
func (s *Socket) doneCancel() { s.nwait.Add(-1) }

// dropCancel lets the channel go if no call holds it, so that a dialed
// connection does not keep what its blocking connect waited on (112
// bytes per idle connection, issue 10). Only connect drops it: a socket
// that reads or writes blocking waits again and again, and would make a
// channel per wait.
func (s *Socket) dropCancel() {
	s.mu.Lock()
	if s.nwait.Load() == 0 && !s.closed.Load() {
		// Close has not begun (it sets closed before taking mu): the
		// next waiter makes a new channel, and Close closes that one.
		s.cancel = nil
	}
	s.mu.Unlock()
}

// Fileno is the descriptor number (per Net, starting at 3 like a process).
func (s *Socket) Fileno() int { return int(s.fd) }

// Family, Type and Proto are what the socket was made with.
func (s *Socket) Family() int { return s.family }
func (s *Socket) Type() int   { return s.typ }
func (s *Socket) Proto() int  { return int(s.proto) }

// Net is the socket layer the socket belongs to.
func (s *Socket) Net() *Net { return s.net }

// SetBlocking(false) is SetTimeout(0); SetBlocking(true) is no timeout.
func (s *Socket) SetBlocking(b bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b {
		s.timeout = -1
	} else {
		s.timeout = 0
	}
}

// SetTimeout sets the mode like Python's settimeout: d > 0 is a timeout
// for each call, 0 is non-blocking, d < 0 (None) is blocking.
func (s *Socket) SetTimeout(d time.Duration) {
	s.mu.Lock()
	s.timeout = d
	s.mu.Unlock()
}

// Timeout is the current mode (-1: blocking).
func (s *Socket) Timeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeout
}

// SetReadDeadline and SetWriteDeadline bound blocking calls by an
// absolute time (for the net.Conn adapters); zero removes the bound.
func (s *Socket) SetReadDeadline(t time.Time) {
	s.mu.Lock()
	if !t.IsZero() || s.x != nil { // clearing a deadline never set costs nothing
		s.ext().rdl = t
	}
	s.mu.Unlock()
	s.ep.waiter().Notify(waiter.EventIn | waiter.EventOut) // re-evaluate waits
}

func (s *Socket) SetWriteDeadline(t time.Time) {
	s.mu.Lock()
	if !t.IsZero() || s.x != nil {
		s.ext().wdl = t
	}
	s.mu.Unlock()
	s.ep.waiter().Notify(waiter.EventIn | waiter.EventOut)
}

// TimeoutError is returned when a call runs past its timeout or deadline.
// It matches syscall.EAGAIN with errors.Is, as SO_RCVTIMEO does in Linux.
type TimeoutError struct{ Deadline bool }

func (e *TimeoutError) Error() string   { return "timed out" }
func (e *TimeoutError) Timeout() bool   { return true }
func (e *TimeoutError) Temporary() bool { return true }
func (e *TimeoutError) Is(t error) bool { return t == syscall.EAGAIN || t == syscall.EWOULDBLOCK }

var errTimeout = &TimeoutError{}
var errDeadline = &TimeoutError{Deadline: true}

// mode returns how a call should wait: nonblock, or the deadline from
// the socket's timeout or SO_RCVTIMEO/SO_SNDTIMEO (zero = forever). It is
// computed once per call; net.Conn deadlines are read by connDeadline at
// every wakeup, since they can move while the call waits.
func (s *Socket) mode(flags int, write bool) (nonblock bool, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if flags&MSG_DONTWAIT != 0 || s.timeout == 0 {
		return true, time.Time{}
	}
	d := s.timeout
	if d < 0 {
		d = s.rx().rcvTimeo
		if write {
			d = s.rx().sndTimeo
		}
	}
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	return false, deadline
}

// effectiveDeadline combines the call's deadline with the current
// net.Conn deadline; fromDL says the latter is the nearer one.
func (s *Socket) effectiveDeadline(callDL time.Time, write bool) (time.Time, bool) {
	s.mu.Lock()
	dl := s.rx().rdl
	if write {
		dl = s.rx().wdl
	}
	s.mu.Unlock()
	if !dl.IsZero() && (callDL.IsZero() || dl.Before(callDL)) {
		return dl, true
	}
	return callDL, false
}

// readWait is effectiveDeadline for a read, with the socket's busy
// polling budget read under the same lock (busypoll.go).
func (s *Socket) readWait(callDL time.Time) (deadline time.Time, fromDL bool, busy time.Duration) {
	s.mu.Lock()
	x := s.rx()
	dl, b, set := x.rdl, x.busyPoll, x.busySet
	s.mu.Unlock()
	if !set {
		b = s.net.st.BusyPollDefault()
	}
	if !dl.IsZero() && (callDL.IsZero() || dl.Before(callDL)) {
		return dl, true, b
	}
	return callDL, false, b
}

// wait blocks until an event of mask holds, the deadline passes or the
// socket closes. It re-checks readiness after registering, so no wakeup
// is lost.
func (s *Socket) wait(mask waiter.EventMask, deadline time.Time, fromDL bool, e *waiter.Entry, timer **time.Timer) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	if s.waitReady(mask) {
		return nil
	}
	return s.waitSignal(deadline, fromDL, e, timer)
}

// waitSignal waits for e to be notified, the deadline or Close, without
// looking at readiness first.
func (s *Socket) waitSignal(deadline time.Time, fromDL bool, e *waiter.Entry, timer **time.Timer) error {
	var tc <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			if fromDL {
				return errDeadline
			}
			return errTimeout
		}
		if *timer == nil {
			*timer = time.NewTimer(d)
		} else {
			(*timer).Reset(d)
		}
		tc = (*timer).C
	}
	cancel := s.cancelChan()
	defer s.doneCancel()
	select {
	case <-e.C:
		return nil
	case <-cancel:
		return syscall.EBADF
	case <-tc:
		if fromDL {
			return errDeadline
		}
		return errTimeout
	}
}

// waitReady is readiness as a blocking call sees it: on a datagram or
// TCP socket an error queued for MSG_ERRQUEUE alone does not end the wait
// (it shows only in poll), as in Linux.
func (s *Socket) waitReady(mask waiter.EventMask) bool {
	switch d := s.ep.(type) {
	case *dgramEP:
		return d.ep.WaitReadiness(mask) != 0
	case *tcpEP:
		return d.ep.WaitReadiness(mask) != 0 // tcp/errqueue.go
	}
	return s.ep.readiness(mask) != 0
}

// getEntry returns the socket's cached waiter entry, or a new one while
// another call of the socket waits with it. A bulk transfer waits once
// per full send buffer or empty receive queue; a fresh entry and channel
// for each wait would be garbage per wait. The cache is per socket, not a
// global pool: a channel belongs to the synctest bubble that made it, as
// the socket does.
func (s *Socket) getEntry() *waiter.Entry {
	if e := s.went.Swap(nil); e != nil {
		return e
	}
	return waiter.NewEntry()
}

// putEntry unregisters e and caches it. Once Unregister returns no
// notifier holds e, so a wake-up left in its channel is the last one.
func (s *Socket) putEntry(wq *waiter.Queue, e *waiter.Entry) {
	wq.Unregister(e)
	select {
	case <-e.C:
	default:
	}
	s.went.CompareAndSwap(nil, e)
}

// blocking runs op until it does not return EAGAIN, waiting for mask in
// between, according to the socket's mode.
func (s *Socket) blocking(flags int, write bool, mask waiter.EventMask, op func() error) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	err := op()
	if !errors.Is(err, syscall.EAGAIN) {
		return err
	}
	nonblock, callDL := s.mode(flags, write)
	if nonblock {
		if !write && s.busyPollNonblock() {
			return op() // the link held data for it (busypoll.go)
		}
		return err
	}
	e := s.getEntry()
	wq := s.ep.waiter()
	wq.Register(e, mask|waiter.EventErr|waiter.EventHUp)
	defer s.putEntry(wq, e)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// A peek past SO_PEEK_OFF, or past what a peek steps over on an
	// AF_UNIX stream with out-of-band data, waits for new data, not for
	// readiness: the socket is readable all the while (peekoff.go,
	// unix_oob.go).
	edge := !write && flags&MSG_PEEK != 0 && (s.peekOffOn() || s.unixOOBPeek())
	if edge {
		// Data that came before the entry was registered signalled
		// nobody: look once more.
		if err = op(); !errors.Is(err, syscall.EAGAIN) {
			return err
		}
	}
	for {
		// Read the net.Conn deadline after registering, so a
		// SetReadDeadline racing with us always wakes this wait.
		var deadline time.Time
		var fromDL bool
		var busy time.Duration
		if write {
			deadline, fromDL = s.effectiveDeadline(callDL, true)
		} else {
			deadline, fromDL, busy = s.readWait(callDL)
		}
		if busy > 0 && !edge && s.busyPollRead(deadline, busy) {
			err = nil // readable: busy polling took its data in (busypoll.go)
		} else if edge {
			err = s.waitSignal(deadline, fromDL, e, &timer)
		} else {
			err = s.wait(mask, deadline, fromDL, e, &timer)
		}
		if err != nil {
			return err
		}
		if s.closed.Load() {
			// Close both cancels the wait and wakes it through the
			// endpoint; whichever the wait saw, the call fails as
			// closed (a closed UDP endpoint reads as empty, not EAGAIN).
			return syscall.EBADF
		}
		err = op()
		if !errors.Is(err, syscall.EAGAIN) {
			return err
		}
	}
}

// Bind assigns the local address.
func (s *Socket) Bind(a Sockaddr) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	if a == nil {
		return syscall.EINVAL
	}
	if s.family == AF_INET && a.Family() == AF_UNSPEC {
		// Linux accepts AF_UNSPEC with INADDR_ANY on an AF_INET socket,
		// for old programs that left the family zero.
		a = Inet("0.0.0.0", 0)
	}
	if a.Family() != s.family && s.family == AF_CAN {
		return syscall.EINVAL // can/raw.c, isotp.c: a foreign address is EINVAL
	}
	if s.family == AF_INET6 && a.Family() == AF_UNSPEC {
		return syscall.EINVAL // a struct sockaddr is shorter than sockaddr_in6 (Linux checks the length first)
	}
	if a.Family() != s.family && !(s.family == AF_INET6 && a.Family() == AF_INET) {
		return syscall.EAFNOSUPPORT // (an AF_INET6 socket refuses sockaddr_in itself: inet6.go)
	}
	return s.ep.bind(a)
}

// Listen marks a stream socket as accepting connections.
func (s *Socket) Listen(backlog int) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	if err := s.ep.listen(backlog); err != nil {
		return err
	}
	if t := s.apartTCP(); t != nil {
		s.apartListen(t)
	}
	return nil
}

// Accept4 is accept4(2): Accept, the new socket non-blocking and
// close-on-exec as flags (SOCK_NONBLOCK, SOCK_CLOEXEC) say; any other
// flag is EINVAL.
func (s *Socket) Accept4(flags int) (*Socket, Sockaddr, error) {
	if flags&^(SOCK_NONBLOCK|SOCK_CLOEXEC) != 0 {
		return nil, nil, syscall.EINVAL
	}
	ns, from, err := s.Accept()
	if err != nil {
		return nil, nil, err
	}
	return ns.applyTypeFlags(flags), from, nil
}

// Accept waits for a connection and returns a new socket for it.
func (s *Socket) Accept() (*Socket, Sockaddr, error) {
	var nep endpoint
	var from Sockaddr
	err := s.blocking(0, false, waiter.EventIn, func() error {
		var err error
		nep, from, err = s.ep.accept()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	ns := s.net.register(s.family, s.typ, int(s.proto), nep)
	if s.apartTCP() != nil {
		s.apartAccepted(ns, from)
	}
	return ns, from, nil
}

// Connect connects to a. A blocking stream socket waits for the
// handshake; a non-blocking one returns EINPROGRESS and becomes writable
// when done, with the result in SO_ERROR.
func (s *Socket) Connect(a Sockaddr) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	if a == nil {
		return syscall.EINVAL
	}
	if t := s.apartTCP(); t != nil {
		s.apartConnect(t, a) // before the SYN leaves
	}
	err := s.ep.connect(a)
	if err != syscall.EINPROGRESS {
		return err
	}
	nonblock, callDL := s.mode(0, true)
	if nonblock {
		return err
	}
	return s.awaitHandshake(callDL, func() bool {
		return s.ep.readiness(waiter.EventOut|waiter.EventErr|waiter.EventHUp) != 0
	})
}

// awaitHandshake is the wait of a blocking connect (and of
// WaitHandshake): until done reports the handshake over, bounded by
// callDL, SO_SNDTIMEO and the write deadline; then its result.
func (s *Socket) awaitHandshake(callDL time.Time, done func() bool) error {
	e := waiter.NewEntry()
	wq := s.ep.waiter()
	wq.Register(e, waiter.EventOut|waiter.EventErr|waiter.EventHUp)
	defer wq.Unregister(e)
	defer s.dropCancel()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for !done() { // checked after Register: an end just before it is not missed
		deadline, fromDL := s.effectiveDeadline(callDL, true)
		if err := s.wait(waiter.EventOut, deadline, fromDL, e, &timer); err != nil {
			return err
		}
	}
	return s.ep.connectResult()
}

// ConnectEx is connect_ex: it returns the errno instead of an error (0 on success).
func (s *Socket) ConnectEx(a Sockaddr) syscall.Errno {
	err := s.Connect(a)
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	if errors.Is(err, syscall.EAGAIN) {
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// Send sends data on a connected socket. A blocking stream socket
// returns once everything is queued (like send(2)); otherwise a partial
// count may come back.
func (s *Socket) Send(b []byte, flags int) (int, error) { return s.SendTo(b, flags, nil) }

// SendTo sends a datagram to a (nil: the connected peer).
func (s *Socket) SendTo(b []byte, flags int, a Sockaddr) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	if !s.ep.stream() {
		var wait chan struct{}
		if nb, _ := s.mode(flags, true); !nb {
			wait = s.cancelChan()
			defer s.doneCancel()
		}
		var n int
		err := s.blocking(flags, true, waiter.EventOut, func() error {
			var err error
			n, err = s.ep.send(b, flags, a, wait)
			return err
		})
		return n, err
	}
	total := 0
	for {
		var n int
		err := s.blocking(flags, true, waiter.EventOut, func() error {
			// With bytes already queued, a pending error is left for the
			// next call (Linux returns the count and keeps sk_err).
			if total > 0 && s.streamErrPending() {
				return syscall.EPIPE
			}
			var err error
			n, err = s.ep.send(b[total:], flags, a, nil)
			return err
		})
		total += n
		if err != nil {
			if total > 0 {
				s.sendEnded()
				return total, nil
			}
			return total, err
		}
		nonblock, _ := s.mode(flags, true)
		if total == len(b) {
			return total, nil
		}
		if nonblock {
			if total > 0 {
				s.sendEnded()
			}
			return total, nil
		}
	}
}

// streamErrPending tells whether a stream send that has queued bytes
// stops for a pending error: on TCP only sk_err, as tcp_sendmsg, not a
// report on the error queue (a transmit timestamp), which also makes
// the socket show POLLERR.
func (s *Socket) streamErrPending() bool {
	if t, ok := s.ep.(*tcpEP); ok {
		return t.ep.ErrPending()
	}
	return s.ep.readiness(waiter.EventErr) != 0
}

// sendEnded is the end of a stream send that queued only part of its
// bytes: a TCP transmit timestamp marks its last byte queued
// (tcptxstamp.go).
func (s *Socket) sendEnded() {
	if t, ok := s.ep.(*tcpEP); ok && t.stamp.Load() != nil {
		t.ep.TxStampMarkTail()
	}
}

// SendAll sends all of b, blocking as needed (a timeout applies to each wait).
func (s *Socket) SendAll(b []byte, flags int) error {
	for len(b) > 0 {
		n, err := s.Send(b, flags)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Recv reads into b. Stream sockets return what is there (0 at end of
// stream); datagram sockets return one datagram, truncated to len(b).
func (s *Socket) Recv(b []byte, flags int) (int, error) {
	n, _, _, err := s.RecvMsg(b, flags|msgNoFrom)
	return n, err
}

// msgNoFrom tells endpoints the caller does not want the sender's
// address, sparing an allocation per datagram. Its bit is Linux's
// kernel-internal MSG_SPLICE_PAGES, which no recvmsg flag a caller
// passes can be (MSG_CMSG_CLOEXEC, 1 << 30, is one).
const msgNoFrom = 1 << 27

// msgWaited tells endpoints the call is blocking and has waited for
// readiness, so a state that ends a wait (SHUT_RD) ends the call.
const msgWaited = 1 << 29

// RecvFrom is Recv that also returns the sender.
func (s *Socket) RecvFrom(b []byte, flags int) (int, Sockaddr, error) {
	n, _, from, err := s.RecvMsg(b, flags)
	return n, from, err
}

// RecvInto is recv_into: Recv into the caller's buffer.
func (s *Socket) RecvInto(b []byte, flags int) (int, error) { return s.Recv(b, flags) }

// RecvMsg reads like recvmsg(2): rflags has MSG_TRUNC when a datagram
// was longer than b. With MSG_TRUNC in flags, a datagram socket returns
// the datagram's real length, as Linux does.
func (s *Socket) RecvMsg(b []byte, flags int) (n, rflags int, from Sockaddr, err error) {
	if s.closed.Load() {
		return 0, 0, nil, syscall.EBADF
	}
	if flags&MSG_OOB != 0 && s.ep.stream() {
		return s.recvOOB(b, flags) // socket/oob.go
	}
	if flags&MSG_ERRQUEUE != 0 {
		switch s.ep.(type) {
		case *dgramEP, *tcpEP:
			n, rflags, from, _, err = s.RecvErr(b, flags) // recverr.go
			return n, rflags, from, err
		case *packetEP:
			n, _, rflags, from, err = s.RecvMsgControl(b, nil, flags) // packet_txstamp.go
			return n, rflags, from, err
		}
	}
	switch e := s.ep.(type) {
	case *unixEP:
		// Without a control buffer: credentials and descriptors that
		// came are dropped (the descriptors closed) and MSG_CTRUNC says
		// so, as Linux's scm_recv with msg_controllen 0.
		n, _, rflags, from, err = s.recvUnixControl(e, b, nil, flags)
		return n, rflags, from, err
	case *dgramEP:
		if e.recvInfo.Load() != 0 || e.ep.UDPGRO() {
			// Receive options on: the control messages they ask for do
			// not fit in no buffer, and MSG_CTRUNC says so, as Linux's
			// put_cmsg does.
			n, _, rflags, from, err = s.RecvMsgControl(b, nil, flags)
			return n, rflags, from, err
		}
	}
	var full int
	f := flags
	peekTarget := 1                                          // a blocking MSG_PEEK on TCP waits for SO_RCVLOWAT's bytes (rcvlowat.go)
	if flags&MSG_PEEK != 0 && len(b) > 1 && !s.peekOffOn() { // with SO_PEEK_OFF each retry would move on
		if _, ok := s.ep.(*tcpEP); ok {
			if nb, _ := s.mode(flags, false); !nb {
				peekTarget = min(s.rcvLowat(), len(b))
			}
		}
	}
	op := func() error {
		var e error
		n, full, from, e = s.ep.recv(b, f)
		f |= msgWaited // later calls follow a wait: the call blocks
		if e == nil && n > 0 && peekTarget > 1 && s.peekShort(n, peekTarget) {
			return syscall.EAGAIN
		}
		return e
	}
	err = s.blocking(flags, false, waiter.EventIn, op)
	if err != nil && peekTarget > 1 && n > 0 && errors.Is(err, syscall.EAGAIN) {
		err = nil // a timeout ends a short peek with what it saw, as tcp_recvmsg
	}
	if err != nil {
		return 0, 0, nil, err
	}
	if !s.ep.stream() {
		if full > n {
			rflags |= MSG_TRUNC
			if flags&MSG_TRUNC != 0 {
				n = full
			}
		}
		return n, rflags | flags&MSG_CMSG_CLOEXEC, from, nil // echoed, as ___sys_recvmsg does
	}
	// Keep reading until the target is copied (all of b with
	// MSG_WAITALL, else SO_RCVLOWAT's bytes), EOF, an error or a timeout.
	if flags&MSG_PEEK == 0 && n > 0 && n < len(b) {
		if target := s.recvTarget(flags, len(b)); n < target {
			n = s.recvMore(b, n, target, flags) // rcvlowat.go
		}
	}
	return n, rflags | flags&MSG_CMSG_CLOEXEC, from, nil
}

// Shutdown closes one or both directions.
func (s *Socket) Shutdown(how int) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	if how < SHUT_RD || how > SHUT_RDWR {
		return syscall.EINVAL
	}
	return s.ep.shutdown(how)
}

// Close releases the socket. A second Close fails with EBADF.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return syscall.EBADF
	}
	s.mu.Lock()
	if s.cancel == nil {
		s.cancel = closedChan
	} else {
		close(s.cancel)
	}
	s.mu.Unlock()
	s.closeEndpoint()
	s.net.mu.Lock()
	delete(s.net.fds, int(s.fd))
	s.net.mu.Unlock()
	if _, ok := s.ep.(*unixEP); ok && unixGCOnClose && s.net.UnixInflight() > 0 {
		// A closed descriptor may leave a cycle of sockets that only
		// messages in flight hold (unix_rights.go), as Linux's
		// unix_release_sock runs unix_gc.
		s.net.UnixGC()
	}
	return nil
}

// Dup returns a second socket object for the same endpoint, with its own
// descriptor. The endpoint closes when both are closed.
func (s *Socket) Dup() (*Socket, error) {
	if s.closed.Load() {
		return nil, syscall.EBADF
	}
	// The endpoint is shared; a reference count, made the first time the
	// socket is duplicated, closes it with the last descriptor.
	s.mu.Lock()
	x := s.ext()
	if x.refs == nil {
		x.refs = new(atomic.Int32)
		x.refs.Store(1)
	}
	refs := x.refs
	timeout := s.timeout
	if s.apartTCP() != nil && x.apart == nil {
		x.apart = &inetApart{ttl4: -1, hops6: -1} // made now to be shared
	}
	apart := x.apart
	s.mu.Unlock()
	refs.Add(1)
	ns := s.net.register(s.family, s.typ, int(s.proto), s.ep)
	ns.mu.Lock()
	ns.ext().refs = refs
	ns.x.apart = apart
	ns.timeout = timeout
	ns.mu.Unlock()
	return ns, nil
}

// closeEndpoint closes the endpoint unless a duplicate still uses it.
func (s *Socket) closeEndpoint() {
	s.mu.Lock()
	refs := s.rx().refs
	s.mu.Unlock()
	if refs != nil && refs.Add(-1) != 0 {
		return
	}
	s.ep.close()
}

// GetSockName is the local address.
func (s *Socket) GetSockName() (Sockaddr, error) {
	if s.closed.Load() {
		return nil, syscall.EBADF
	}
	return s.ep.localAddr(), nil
}

// GetPeerName is the connected peer (ENOTCONN when none).
func (s *Socket) GetPeerName() (Sockaddr, error) {
	if s.closed.Load() {
		return nil, syscall.EBADF
	}
	return s.ep.remoteAddr()
}

// Readiness reports the poll events that hold now.
func (s *Socket) Readiness(mask waiter.EventMask) waiter.EventMask {
	if s.closed.Load() {
		return 0
	}
	r := s.ep.readiness(mask)
	if mask&waiter.EventPri != 0 {
		r |= s.errQueuePri() // SO_SELECT_ERR_QUEUE (txstamp.go)
	}
	return r
}

// Waiter is the socket's event queue (for pollers).
func (s *Socket) Waiter() *waiter.Queue { return s.ep.waiter() }

// Drops is the number of datagrams or frames this socket's receive queue
// refused because it was full (what Linux shows in /proc/net/udp's drops
// column); 0 for sockets that make the sender wait instead.
func (s *Socket) Drops() uint64 {
	switch e := s.ep.(type) {
	case *dgramEP:
		return e.ep.Drops()
	case *packetEP:
		return e.Drops()
	case *canRawEP:
		return s.CANDrops()
	}
	return 0
}
