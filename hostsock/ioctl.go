package hostsock

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// Ioctl is ioctl(2) with an int argument, as socket.Socket.Ioctl: the
// int the kernel stores for a query, or arg for FIONBIO, which sets the
// mode this package emulates (the descriptor itself stays non-blocking).
func (s *Socket) Ioctl(req uint, arg int) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if req == socket.FIONBIO {
		s.SetBlocking(arg == 0)
		return 0, nil
	}
	return unix.IoctlGetInt(s.fd, req)
}

// IoctlTimestamp is socket.Socket.IoctlTimestamp on the kernel's
// socket: SIOCGSTAMP reads a struct timeval, SIOCGSTAMPNS a struct
// timespec; another request is ENOTTY without asking the kernel.
func (s *Socket) IoctlTimestamp(req uint) (time.Time, error) {
	if err := s.enter(); err != nil {
		return time.Time{}, err
	}
	defer s.leave()
	switch req {
	case socket.SIOCGSTAMP:
		var tv unix.Timeval
		if err := s.ioctlPtr(req, unsafe.Pointer(&tv)); err != nil {
			return time.Time{}, err
		}
		return time.Unix(tv.Unix()), nil
	case socket.SIOCGSTAMPNS:
		var ts unix.Timespec
		if err := s.ioctlPtr(req, unsafe.Pointer(&ts)); err != nil {
			return time.Time{}, err
		}
		return time.Unix(ts.Unix()), nil
	}
	return time.Time{}, syscall.ENOTTY
}
