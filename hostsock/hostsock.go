// Package hostsock is the socket interface of package socket implemented
// with the host kernel's sockets (golang.org/x/sys/unix). It lets code
// written against sockstack run unchanged on the kernel, and it is the
// oracle of the differential conformance suite.
//
// Modes follow Python's socket module, as package socket does: the
// descriptor is always non-blocking underneath; a blocking socket waits
// in poll(2) without a bound, a socket with a timeout waits up to it and
// fails with *socket.TimeoutError, a non-blocking socket returns EAGAIN.
package hostsock

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// Net hands out kernel sockets.
type Net struct{}

// New returns the kernel's socket layer.
func New() *Net { return &Net{} }

// Socket creates a kernel socket; proto 0 picks the default for the type.
func (n *Net) Socket(family, typ, proto int) (*Socket, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	if proto == 0 {
		// Report the protocol the kernel chose, as package socket does.
		if p, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err == nil {
			proto = p
		}
	}
	s := newSocket(fd, family, typ&0xf, proto)
	if typ&unix.SOCK_NONBLOCK != 0 {
		s.SetBlocking(false) // the descriptor is always O_NONBLOCK: the calls wait, or not
	}
	return s, nil
}

// Socket is one kernel socket.
type Socket struct {
	fd     int
	family int
	typ    int
	proto  int

	// ops holds a read lock while the descriptor is in use, so Close
	// waits for calls in progress before the number can be reused.
	ops    sync.RWMutex
	closed atomic.Bool
	wake   int // eventfd that interrupts waits on Close; -1 until needed
	wakeMu sync.Mutex

	mu       sync.Mutex
	timeout  time.Duration // <0 blocking; 0 non-blocking; >0 timeout
	rcvTimeo time.Duration // SO_RCVTIMEO applied by our waits
	sndTimeo time.Duration
}

func newSocket(fd, family, typ, proto int) *Socket {
	return &Socket{fd: fd, family: family, typ: typ, proto: proto, timeout: -1, wake: -1}
}

// Fileno is the kernel descriptor.
func (s *Socket) Fileno() int { return s.fd }

// Family, Type and Proto are what the socket was made with.
func (s *Socket) Family() int { return s.family }
func (s *Socket) Type() int   { return s.typ }
func (s *Socket) Proto() int  { return s.proto }

// SetBlocking(false) is SetTimeout(0); SetBlocking(true) is no timeout.
func (s *Socket) SetBlocking(b bool) {
	if b {
		s.SetTimeout(-1)
	} else {
		s.SetTimeout(0)
	}
}

// SetTimeout sets the mode like Python's settimeout: d > 0 is a timeout
// for each call, 0 is non-blocking, d < 0 is blocking.
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

var errTimeout = &socket.TimeoutError{}

// enter takes the descriptor for one call; it fails with EBADF once closed.
func (s *Socket) enter() error {
	s.ops.RLock()
	if s.closed.Load() {
		s.ops.RUnlock()
		return syscall.EBADF
	}
	return nil
}

func (s *Socket) leave() { s.ops.RUnlock() }

// mode says how a call waits: nonblock, or until deadline (zero: forever).
func (s *Socket) mode(flags int, write bool) (nonblock bool, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if flags&socket.MSG_DONTWAIT != 0 || s.timeout == 0 {
		return true, time.Time{}
	}
	d := s.timeout
	if d < 0 {
		d = s.rcvTimeo
		if write {
			d = s.sndTimeo
		}
	}
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	return false, deadline
}

func (s *Socket) wakeFD() (int, error) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wake < 0 {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return -1, err
		}
		s.wake = fd
	}
	return s.wake, nil
}

// wait polls for events until they hold, the deadline passes or the
// socket is closed.
func (s *Socket) wait(events int16, deadline time.Time) error {
	wfd, err := s.wakeFD()
	if err != nil {
		return err
	}
	for {
		ms := -1
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return errTimeout
			}
			ms = int((d + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: events}, {Fd: int32(wfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if s.closed.Load() || fds[1].Revents != 0 {
			return syscall.EBADF
		}
		if n > 0 && fds[0].Revents != 0 {
			return nil
		}
	}
}

// blocking runs op, waiting for events between EAGAIN results according
// to the socket's mode. The caller holds enter.
func (s *Socket) blocking(flags int, write bool, events int16, op func() error) error {
	err := op()
	if err != unix.EAGAIN {
		return err
	}
	nonblock, deadline := s.mode(flags, write)
	if nonblock {
		return err
	}
	for {
		if err := s.wait(events, deadline); err != nil {
			return err
		}
		if err = op(); err != unix.EAGAIN {
			return err
		}
	}
}

// rawAddr encodes a socket address for the kernel.
type rawAddr struct {
	buf [unix.SizeofSockaddrAny]byte
	len uint32
}

func encode(a socket.Sockaddr) (*rawAddr, error) {
	r := &rawAddr{}
	switch v := a.(type) {
	case *socket.SockaddrInet:
		ad := v.AddrPort.Addr()
		if !ad.IsValid() {
			return nil, syscall.EINVAL
		}
		port := v.AddrPort.Port()
		if ad.Is4() {
			sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf[0]))
			sa.Family = unix.AF_INET
			sa.Port = htons(port)
			sa.Addr = ad.As4()
			r.len = unix.SizeofSockaddrInet4
		} else {
			// AF_INET6, v4-mapped addresses included; the zone is the
			// scope id (an interface name or index).
			sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf[0]))
			sa.Family = unix.AF_INET6
			sa.Port = htons(port)
			sa.Addr = ad.As16()
			if z := ad.Zone(); z != "" {
				id, err := scopeID(z)
				if err != nil {
					return nil, err
				}
				sa.Scope_id = id
			}
			r.len = unix.SizeofSockaddrInet6
		}
	case *SockaddrInet6: // inet6.go: with flow information
		if err := r.putInet6(v.AddrPort, v.FlowInfo); err != nil {
			return nil, err
		}
	case socket.Unspec, *socket.Unspec:
		sa := (*unix.RawSockaddr)(unsafe.Pointer(&r.buf[0]))
		sa.Family = unix.AF_UNSPEC
		r.len = unix.SizeofSockaddrInet4
	case *socket.SockaddrUnix:
		sa := (*unix.RawSockaddrUnix)(unsafe.Pointer(&r.buf[0]))
		sa.Family = unix.AF_UNIX
		name := v.Name
		if len(name) > len(sa.Path) {
			return nil, syscall.EINVAL
		}
		for i := 0; i < len(name); i++ {
			sa.Path[i] = int8(name[i])
		}
		switch {
		case len(name) == 0:
			r.len = 2 // the family alone: autobind, as the kernel reads it
		case name[0] == '@' || name[0] == 0:
			sa.Path[0] = 0 // abstract name: no terminator
			r.len = uint32(2 + len(name))
		case len(name) == len(sa.Path):
			r.len = uint32(2 + len(name)) // a path filling sun_path: no room for one
		default:
			r.len = uint32(2 + len(name) + 1)
		}
	case *socket.SockaddrPacket:
		sa := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.buf[0]))
		sa.Family = unix.AF_PACKET
		sa.Protocol = htons(v.Protocol)
		sa.Ifindex = int32(v.Ifindex)
		sa.Pkttype = v.PktType
		sa.Halen = 6
		copy(sa.Addr[:], v.HWAddr[:])
		r.len = unix.SizeofSockaddrLinklayer
	default:
		return nil, syscall.EAFNOSUPPORT
	}
	return r, nil
}

// decode turns a kernel address into the socket package's types.
func decode(buf []byte, n uint32) socket.Sockaddr {
	if n < 2 {
		return nil
	}
	fam := *(*uint16)(unsafe.Pointer(&buf[0]))
	switch fam {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&buf[0]))
		return socket.InetAddr(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port)))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&buf[0]))
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(zoneName(sa.Scope_id))
		}
		if f := htonl(sa.Flowinfo); f != 0 {
			return &SockaddrInet6{AddrPort: netip.AddrPortFrom(a, ntohs(sa.Port)), FlowInfo: f} // inet6.go
		}
		return socket.InetAddr(netip.AddrPortFrom(a, ntohs(sa.Port)))
	case unix.AF_UNIX:
		sa := (*unix.RawSockaddrUnix)(unsafe.Pointer(&buf[0]))
		l := int(n) - 2
		if l <= 0 {
			return &socket.SockaddrUnix{}
		}
		b := make([]byte, 0, l)
		for i := 0; i < l; i++ {
			b = append(b, byte(sa.Path[i]))
		}
		if b[0] == 0 {
			b[0] = '@'
		} else if i := indexZero(b); i >= 0 {
			b = b[:i]
		}
		return &socket.SockaddrUnix{Name: string(b)}
	case unix.AF_PACKET:
		sa := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&buf[0]))
		p := &socket.SockaddrPacket{Ifindex: int(sa.Ifindex), Protocol: ntohs(sa.Protocol), PktType: sa.Pkttype}
		copy(p.HWAddr[:], sa.Addr[:6])
		return p
	case unix.AF_UNSPEC:
		return socket.Unspec{}
	}
	return nil
}

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return v<<8 | v>>8 }

func errnoOf(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Bind assigns the local address.
func (s *Socket) Bind(a socket.Sockaddr) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if a == nil {
		return syscall.EINVAL
	}
	r, err := encode(a)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(s.fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(r.len))
	return errnoOf(e)
}

// Listen marks a stream socket as accepting connections.
func (s *Socket) Listen(backlog int) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return unix.Listen(s.fd, backlog)
}

// Accept waits for a connection and returns a new (blocking) socket for it.
func (s *Socket) Accept() (*Socket, socket.Sockaddr, error) {
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.leave()
	var nfd int
	var from socket.Sockaddr
	err := s.blocking(0, false, unix.POLLIN, func() error {
		var buf [unix.SizeofSockaddrAny]byte
		l := uint32(len(buf))
		r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(unsafe.Pointer(&l)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if e != 0 {
			return e
		}
		nfd = int(r)
		from = decode(buf[:], l)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return newSocket(nfd, s.family, s.typ, s.proto), from, nil
}

// Connect connects to a. A blocking stream socket waits for the
// handshake; a non-blocking one returns EINPROGRESS and the result later
// appears in SO_ERROR.
func (s *Socket) Connect(a socket.Sockaddr) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if a == nil {
		return syscall.EINVAL
	}
	r, err := encode(a)
	if err != nil {
		return err
	}
	var e syscall.Errno
	for {
		_, _, e = unix.Syscall(unix.SYS_CONNECT, uintptr(s.fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(r.len))
		if e != unix.EINTR {
			break
		}
	}
	if e != unix.EINPROGRESS {
		return errnoOf(e)
	}
	nonblock, deadline := s.mode(0, true)
	if nonblock {
		return e
	}
	for {
		if err := s.wait(unix.POLLOUT, deadline); err != nil {
			return err
		}
		// Finish with a second connect(2), as a blocking connect would:
		// it reports the handshake's result, consumes the pending error
		// and leaves the socket in the state a blocking call leaves it
		// (connected, or unconnected and ready to retry after an error).
		_, _, e = unix.Syscall(unix.SYS_CONNECT, uintptr(s.fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(r.len))
		switch e {
		case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
			continue // still in progress
		case unix.EISCONN:
			return nil
		}
		return errnoOf(e)
	}
}

// ConnectEx is connect_ex: the errno instead of an error (0 on success).
func (s *Socket) ConnectEx(a socket.Sockaddr) syscall.Errno {
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

func (s *Socket) stream() bool { return s.typ == unix.SOCK_STREAM }

// Send sends on a connected socket; a blocking stream socket returns
// once everything is queued.
func (s *Socket) Send(b []byte, flags int) (int, error) { return s.SendTo(b, flags, nil) }

// SendTo sends to a (nil: the connected peer).
func (s *Socket) SendTo(b []byte, flags int, a socket.Sockaddr) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var r *rawAddr
	if a != nil {
		var err error
		if r, err = encode(a); err != nil {
			return 0, err
		}
	}
	kflags := (flags &^ socket.MSG_DONTWAIT) | unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
	send := func(p []byte) (int, error) {
		var bp, ap unsafe.Pointer
		var al uint32
		if len(p) > 0 {
			bp = unsafe.Pointer(&p[0])
		}
		if r != nil {
			ap, al = unsafe.Pointer(&r.buf[0]), r.len
		}
		for {
			n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(bp), uintptr(len(p)), uintptr(kflags), uintptr(ap), uintptr(al))
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				return 0, e
			}
			return int(n), nil
		}
	}
	if !s.stream() {
		var n int
		err := s.blocking(flags, true, unix.POLLOUT, func() error {
			var err error
			n, err = send(b)
			return err
		})
		return n, err
	}
	total := 0
	for {
		var n int
		err := s.blocking(flags, true, unix.POLLOUT, func() error {
			var err error
			n, err = send(b[total:])
			return err
		})
		total += n
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		nonblock, _ := s.mode(flags, true)
		if total == len(b) || nonblock {
			return total, nil
		}
	}
}

// SendAll sends all of b, blocking as needed.
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

// Recv reads into b.
func (s *Socket) Recv(b []byte, flags int) (int, error) {
	n, _, _, err := s.RecvMsg(b, flags)
	return n, err
}

// RecvFrom is Recv that also returns the sender.
func (s *Socket) RecvFrom(b []byte, flags int) (int, socket.Sockaddr, error) {
	n, _, from, err := s.RecvMsg(b, flags)
	return n, from, err
}

// RecvInto is recv_into.
func (s *Socket) RecvInto(b []byte, flags int) (int, error) { return s.Recv(b, flags) }

// RecvMsg reads like recvmsg(2) without a control buffer; rflags carries
// MSG_TRUNC for a cut datagram and MSG_CTRUNC when control messages were
// dropped for want of room.
func (s *Socket) RecvMsg(b []byte, flags int) (n, rflags int, from socket.Sockaddr, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, nil, err
	}
	defer s.leave()
	kflags := (flags &^ (socket.MSG_DONTWAIT | socket.MSG_WAITALL)) | unix.MSG_DONTWAIT
	recv := func(p []byte) (e error) {
		n, _, rflags, from, e = s.recvmsg(p, nil, kflags)
		return e
	}
	err = s.blocking(flags, false, unix.POLLIN, func() error { return recv(b) })
	if err != nil {
		return 0, 0, nil, err
	}
	if !s.stream() {
		return n, rflags & (unix.MSG_TRUNC | unix.MSG_CTRUNC), from, nil
	}
	rflags &= unix.MSG_CTRUNC
	from = nil // package socket gives no address for stream reads
	// MSG_WAITALL: keep reading until b is full, EOF or an error.
	if flags&socket.MSG_WAITALL != 0 && flags&socket.MSG_PEEK == 0 && n > 0 {
		got := n
		for got < len(b) {
			err := s.blocking(flags, false, unix.POLLIN, func() error { return recv(b[got:]) })
			if err != nil || n == 0 {
				break
			}
			got += n
		}
		n = got
	}
	return n, rflags, nil, nil
}

// Shutdown closes one or both directions.
func (s *Socket) Shutdown(how int) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return unix.Shutdown(s.fd, how)
}

// Close releases the socket, interrupting calls that wait on it. A
// second Close fails with EBADF.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return syscall.EBADF
	}
	s.wakeMu.Lock()
	if s.wake >= 0 {
		var one = [8]byte{1}
		unix.Write(s.wake, one[:])
	}
	s.wakeMu.Unlock()
	s.ops.Lock() // wait for calls in progress to leave
	defer s.ops.Unlock()
	err := unix.Close(s.fd)
	s.wakeMu.Lock()
	if s.wake >= 0 {
		unix.Close(s.wake)
		s.wake = -1
	}
	s.wakeMu.Unlock()
	return err
}

// Dup returns a second socket object on a duplicated descriptor.
func (s *Socket) Dup() (*Socket, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ns := newSocket(fd, s.family, s.typ, s.proto)
	s.mu.Lock()
	ns.timeout, ns.rcvTimeo, ns.sndTimeo = s.timeout, s.rcvTimeo, s.sndTimeo
	s.mu.Unlock()
	return ns, nil
}

func (s *Socket) name(sys uintptr) (socket.Sockaddr, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var buf [unix.SizeofSockaddrAny]byte
	l := uint32(len(buf))
	_, _, e := unix.Syscall(sys, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return nil, e
	}
	return decode(buf[:], l), nil
}

// GetSockName is the local address.
func (s *Socket) GetSockName() (socket.Sockaddr, error) { return s.name(unix.SYS_GETSOCKNAME) }

// GetPeerName is the connected peer (ENOTCONN when none).
func (s *Socket) GetPeerName() (socket.Sockaddr, error) { return s.name(unix.SYS_GETPEERNAME) }

// scopeID is the interface index a zone names (a name or a number).
func scopeID(z string) (uint32, error) {
	if ifi, err := net.InterfaceByName(z); err == nil {
		return uint32(ifi.Index), nil
	}
	id, err := strconv.ParseUint(z, 10, 32)
	if err != nil {
		return 0, syscall.ENODEV
	}
	return uint32(id), nil
}

// zoneName names an interface index, or gives the number.
func zoneName(id uint32) string {
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}

// recvmsg is one recvmsg(2) on the socket into p, with ancillary data into
// oob (nil: none): the byte count, the control bytes, msg_flags and the
// source. EINTR is retried.
func (s *Socket) recvmsg(p, oob []byte, kflags int) (n, oobn, rflags int, from socket.Sockaddr, err error) {
	var name [unix.SizeofSockaddrAny]byte
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
	}
	iov.SetLen(len(p))
	var msg unix.Msghdr
	msg.Name = &name[0]
	msg.Namelen = uint32(len(name))
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msg)), uintptr(kflags))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, 0, 0, nil, e
		}
		return int(r), int(msg.Controllen), int(msg.Flags), decode(name[:], msg.Namelen), nil
	}
}
