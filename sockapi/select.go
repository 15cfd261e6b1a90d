package sockapi

import (
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// Select is select(2) over the readable set r and the writable set w:
// it returns the sockets of each that are ready (readable includes end
// of stream and a pending error, as on Linux). timeout < 0 waits
// forever, 0 only looks. All sockets must be of one kind: sockstack's
// (socket.Select) or the kernel's (select(2) itself on their
// descriptors); a mixed set is EINVAL, a closed socket EBADF.
func Select(r, w []Sock, timeout time.Duration) (rr, wr []Sock, err error) {
	var stack, host int
	for _, set := range [][]Sock{r, w} {
		for _, s := range set {
			switch s.(type) {
			case StackSock:
				stack++
			case HostSock:
				host++
			default:
				return nil, nil, syscall.EINVAL
			}
		}
	}
	if stack > 0 && host > 0 {
		return nil, nil, syscall.EINVAL
	}
	if host > 0 {
		return selectHost(r, w, timeout)
	}
	sr := make([]*socket.Socket, len(r))
	for i, s := range r {
		sr[i] = s.(StackSock).Socket
	}
	sw := make([]*socket.Socket, len(w))
	for i, s := range w {
		sw[i] = s.(StackSock).Socket
	}
	gr, gw, _, err := socket.Select(sr, sw, nil, timeout)
	if err != nil {
		return nil, nil, err
	}
	return pickStack(r, gr), pickStack(w, gw), nil
}

// pickStack keeps the entries of set whose socket is in ready, in set's order.
func pickStack(set []Sock, ready []*socket.Socket) []Sock {
	var out []Sock
	for _, s := range set {
		for _, x := range ready {
			if s.(StackSock).Socket == x {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// selectHost is select(2) on the kernel's descriptors. An interrupted
// call is restarted with what is left of the timeout.
func selectHost(r, w []Sock, timeout time.Duration) (rr, wr []Sock, err error) {
	nfd := 0
	fill := func(set []Sock, fs *unix.FdSet) error {
		fs.Zero()
		for _, s := range set {
			fd := s.Fileno()
			if fd < 0 {
				return syscall.EBADF
			}
			if fd >= unix.FD_SETSIZE {
				return syscall.EINVAL // select(2) cannot name it
			}
			fs.Set(fd)
			nfd = max(nfd, fd+1)
		}
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		var rs, ws unix.FdSet
		if err := fill(r, &rs); err != nil {
			return nil, nil, err
		}
		if err := fill(w, &ws); err != nil {
			return nil, nil, err
		}
		var tv *unix.Timeval
		if timeout >= 0 {
			left := max(time.Until(deadline), 0)
			if timeout == 0 {
				left = 0
			}
			t := unix.NsecToTimeval(left.Nanoseconds())
			tv = &t
		}
		_, err := unix.Select(nfd, &rs, &ws, nil, tv)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, s := range r {
			if rs.IsSet(s.Fileno()) {
				rr = append(rr, s)
			}
		}
		for _, s := range w {
			if ws.IsSet(s.Fileno()) {
				wr = append(wr, s)
			}
		}
		return rr, wr, nil
	}
}
