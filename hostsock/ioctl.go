package hostsock

import (
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
