package socket

import "syscall"

// Urgent (out-of-band) data on TCP sockets, as Linux: recv with MSG_OOB
// returns the urgent byte and never blocks; SO_OOBINLINE keeps it in
// the stream; AtMark is ioctl(SIOCATMARK). Send with MSG_OOB is handled
// by the TCP endpoint's send.

// recvOOB is RecvMsg with MSG_OOB on a stream socket.
func (s *Socket) recvOOB(b []byte, flags int) (int, int, Sockaddr, error) {
	if u, ok := s.ep.(*unixEP); ok {
		n, err := u.recvOOB(b, flags&MSG_PEEK != 0) // unix_oob.go
		if err != nil {
			return 0, 0, nil, err
		}
		return n, 0, nil, nil // Linux sets no MSG_OOB in msg_flags here
	}
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return 0, 0, nil, syscall.EINVAL
	}
	n, trunc, err := t.ep.RecvOOB(b, flags&MSG_PEEK != 0)
	if err != nil {
		return 0, 0, nil, err
	}
	rflags := MSG_OOB
	if trunc {
		rflags |= MSG_TRUNC
	}
	return n, rflags, nil, nil
}

// AtMark is ioctl(SIOCATMARK): whether the next byte read is the one
// at the urgent mark (false on a listener, as Linux); ENOTTY on a socket
// that is not TCP.
func (s *Socket) AtMark() (bool, error) {
	if s.closed.Load() {
		return false, syscall.EBADF
	}
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return false, syscall.ENOTTY
	}
	return t.ep.AtMark()
}

// oobInline passes SO_OOBINLINE on to a TCP endpoint.
func (s *Socket) oobInline(name int, v any) {
	if name != SO_OOBINLINE {
		return
	}
	i, _ := v.(int)
	switch e := s.ep.(type) {
	case *tcpEP:
		e.ep.SetOOBInline(i != 0)
	case *unixEP:
		e.setOOBInline(i != 0) // unix_oob.go
	}
}
