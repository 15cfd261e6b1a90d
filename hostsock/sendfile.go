package hostsock

import (
	"os"

	"golang.org/x/sys/unix"
)

// SendFile is sendfile(2) on the kernel's socket: count bytes of f from
// *offset (moved on), or from f's position (moved on) when offset is
// nil. The descriptor itself is non-blocking; a blocking socket waits
// for room as the emulated mode says.
func (s *Socket) SendFile(f *os.File, offset *int64, count int) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, unix.EBADF // a closed *os.File: no descriptor to pass
	}
	nonblock, deadline := s.mode(0, true)
	total := 0
	for {
		var n int
		var serr error
		if cerr := rc.Control(func(fd uintptr) { n, serr = unix.Sendfile(s.fd, int(fd), offset, count-total) }); cerr != nil {
			return partial(total, unix.EBADF) // closed meanwhile
		}
		total += max(n, 0)
		switch {
		case serr == unix.EINTR:
			continue
		case serr == unix.EAGAIN && !nonblock:
			if werr := s.wait(unix.POLLOUT, deadline); werr != nil {
				return partial(total, werr)
			}
			continue
		case serr != nil:
			return partial(total, serr)
		case n == 0 || total >= count || nonblock:
			return total, nil
		}
	}
}

// partial is what a call that moved some bytes returns: their count;
// the error only when it moved none.
func partial(n int, err error) (int, error) {
	if n > 0 {
		return n, nil
	}
	return 0, err
}
