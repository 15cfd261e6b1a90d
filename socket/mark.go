package socket

import "encoding/binary"

// SO_MARK is the socket's mark (Linux's sk_mark): the stack's policy
// rules select its packets by it (stack/route.go, "ip rule add fwmark
// N lookup T"). Linux wants CAP_NET_ADMIN or CAP_NET_RAW; sockstack
// runs inside its user's process, which owns the stack, so the user
// holds that right. TCP and datagram sockets route by it; other kinds
// keep the value and report it back, as Linux's do for the queues and
// filters sockstack has not. (SO_MARK, 36, is in sendctl.go.)

// setMark is setsockopt(SO_MARK): an int taken as Linux's u32.
func (s *Socket) setMark(v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	m := uint32(i)
	switch ep := s.ep.(type) {
	case *tcpEP:
		ep.ep.SetMark(m)
	case *dgramEP:
		ep.ep.SetMark(m)
	default:
		s.mu.Lock()
		x := s.ext()
		if x.stored == nil {
			x.stored = map[int]any{}
		}
		x.stored[SO_MARK] = int(int32(m))
		s.mu.Unlock()
	}
	return nil
}

// mark is getsockopt(SO_MARK): a C int, so a mark with the top bit set
// reads back negative, as on Linux.
func (s *Socket) mark() int {
	switch ep := s.ep.(type) {
	case *tcpEP:
		return int(int32(ep.ep.Mark()))
	case *dgramEP:
		return int(int32(ep.ep.Mark()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.rx().stored[SO_MARK].(int)
	return v
}

// sockCmsg is the package's sockCmsg for a datagram send: an SO_MARK
// message also routes this datagram by its mark, as Linux's
// __sock_cmsg_send puts it in sockc.mark, which udp_sendmsg and
// raw_sendmsg give the route lookup in place of sk_mark.
func (c *ctlState) sockCmsg(typ int, data []byte) error {
	if err := sockCmsg(typ, data); err != nil {
		return err
	}
	if typ == SO_MARK {
		c.o.Mark, c.o.MarkSet = binary.NativeEndian.Uint32(data), true
	}
	return nil
}
