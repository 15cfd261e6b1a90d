package socket

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// IP_RECVERR / IPV6_RECVERR and recvmsg(MSG_ERRQUEUE), with Linux's
// numbers and layout: an ICMP error about a datagram the socket sent (or
// a local error, EMSGSIZE under IP_PMTUDISC_DO) is queued; RecvErr reads
// it as Linux's ip_recv_error / ipv6_recv_error do.

// Option numbers (Linux's).
const (
	IP_MTU_DISCOVER   = 10
	IP_RECVERR        = 11
	IPV6_MTU_DISCOVER = 23
	IPV6_RECVERR      = 25
	IPV6_DONTFRAG     = 62

	// MSG_ERRQUEUE asks recvmsg for the error queue.
	MSG_ERRQUEUE = 0x2000
)

// IP_MTU_DISCOVER / IPV6_MTU_DISCOVER values.
const (
	IP_PMTUDISC_DONT      = stack.PMTUDiscDont
	IP_PMTUDISC_WANT      = stack.PMTUDiscWant
	IP_PMTUDISC_DO        = stack.PMTUDiscDo
	IP_PMTUDISC_PROBE     = stack.PMTUDiscProbe
	IP_PMTUDISC_INTERFACE = stack.PMTUDiscInterface
	IP_PMTUDISC_OMIT      = stack.PMTUDiscOmit
)

// sock_extended_err origins.
const (
	SO_EE_ORIGIN_NONE  = stack.EEOriginNone
	SO_EE_ORIGIN_LOCAL = stack.EEOriginLocal
	SO_EE_ORIGIN_ICMP  = stack.EEOriginICMP
	SO_EE_ORIGIN_ICMP6 = stack.EEOriginICMP6
)

// SockExtendedErr is the IP_RECVERR (IPV6_RECVERR) control message:
// struct sock_extended_err and the offender address after it.
type SockExtendedErr struct {
	Errno  syscall.Errno
	Origin uint8
	Type   uint8
	Code   uint8
	Pad    uint8
	Info   uint32
	Data   uint32
	// RFC4884Len and RFC4884Flags are ee_rfc4884, the union over
	// ee_data (IP_RECVERR_RFC4884): where the RFC 4884 extension
	// structure starts in the payload, and SO_EE_RFC4884_FLAG_INVALID.
	RFC4884Len   uint16
	RFC4884Flags uint8
	// Ancillary is the control messages before this one, in Linux's
	// layout: for an ICMP error, the IP-level ones the socket asked for
	// (IP_PKTINFO, IPV6_HOPLIMIT, ...) describing the ICMP packet
	// (recverr_cmsg.go).
	Ancillary []byte
	// Offender is the ICMP message's sender (SO_EE_OFFENDER); nil for a
	// local error, whose sockaddr Linux leaves zero.
	Offender *SockaddrInet
	// Level and CmsgType name the control message: SOL_IP / IP_RECVERR
	// on an AF_INET socket, IPPROTO_IPV6 / IPV6_RECVERR on AF_INET6
	// (also for an IPv4 error, with v4-mapped addresses).
	Level, CmsgType int
	// scope is the offender's sin6_scope_id: the index of the NIC its
	// zone names (a link-local offender).
	scope uint32
}

// Cmsg is msg_control as Linux writes it on a 64-bit host: Ancillary,
// then this control message: a cmsghdr (cmsg_len, level, type), the 16
// bytes of sock_extended_err and a sockaddr_in (sockaddr_in6), padded
// to CMSG_SPACE.
func (e *SockExtendedErr) Cmsg() []byte {
	salen := 16
	if e.Level == IPPROTO_IPV6 {
		salen = 28
	}
	dlen := 16 + salen
	const hdr = 16
	out := make([]byte, len(e.Ancillary)+hdr+(dlen+7)&^7)
	copy(out, e.Ancillary)
	b := out[len(e.Ancillary):]
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], uint64(hdr+dlen))
	ne.PutUint32(b[8:], uint32(e.Level))
	ne.PutUint32(b[12:], uint32(e.CmsgType))
	d := b[hdr:]
	ne.PutUint32(d[0:], uint32(e.Errno))
	d[4], d[5], d[6], d[7] = e.Origin, e.Type, e.Code, e.Pad
	ne.PutUint32(d[8:], e.Info)
	ne.PutUint32(d[12:], e.Data)
	if e.RFC4884Len != 0 || e.RFC4884Flags != 0 {
		ne.PutUint16(d[12:], e.RFC4884Len)
		d[14], d[15] = e.RFC4884Flags, 0
	}
	if e.Offender != nil {
		putSockaddr(d[16:16+salen], e.Offender.AddrPort, e.Level == IPPROTO_IPV6)
		if salen == 28 {
			ne.PutUint32(d[16+24:], e.scope)
		}
	}
	return out
}

// putSockaddr writes a sockaddr_in (v6 false) or sockaddr_in6.
func putSockaddr(b []byte, ap netip.AddrPort, v6 bool) {
	ne := binary.NativeEndian
	if !v6 {
		ne.PutUint16(b[0:], AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		a := ap.Addr().Unmap().As4()
		copy(b[4:8], a[:])
		return
	}
	ne.PutUint16(b[0:], AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a := mapped(ap.Addr()).As16()
	copy(b[8:24], a[:])
}

// RecvErr is recvmsg(2) with MSG_ERRQUEUE: the oldest queued error's
// payload (the failed datagram after its transport header: for UDP its
// data, for a ping socket from the echo header on, for a raw socket
// after the IP header), from the failed packet's destination (with the
// UDP port; port 0 for ping and raw, and for a local error of an
// unconnected IPv4 socket), rflags MSG_ERRQUEUE (and MSG_TRUNC), and the
// control message. EAGAIN when the queue is empty, whatever the
// socket's blocking mode: Linux never waits for an error. A TCP socket
// has an error queued only by a failed connect under RECVERR, its
// payload from the quoted TCP header on. Other sockets: EOPNOTSUPP.
func (s *Socket) RecvErr(b []byte, flags int) (n, rflags int, from Sockaddr, ee SockExtendedErr, err error) {
	return s.recvErr(b, flags, nil)
}

// recvErr is RecvErr; a non-nil at gets when a datagram socket's error
// was queued (rxstamp.go; 0: not recorded).
func (s *Socket) recvErr(b []byte, flags int, at *int64) (n, rflags int, from Sockaddr, ee SockExtendedErr, err error) {
	if s.closed.Load() {
		return 0, 0, nil, ee, syscall.EBADF
	}
	switch d := s.ep.(type) {
	case *tcpEP:
		// Linux queues an ICMP error on a TCP socket only when it ends a
		// connection attempt under RECVERR (tcp/errqueue.go); the payload
		// is the quoted packet from its TCP header on.
		n, full, m, ctl, err := d.ep.ReadErrCtl(b)
		if err != nil {
			return 0, 0, nil, ee, err
		}
		d.stampRec().read(d.net.st.Clock()) // ip_recv_error sets sk_stamp
		if at != nil {
			*at = m.At // a transmit timestamp report's time (0: an ICMP error)
		}
		ee = SockExtendedErr{Errno: m.Errno, Origin: m.Origin, Type: m.Type, Code: m.Code, Info: m.Info, Data: m.Data,
			RFC4884Len: ctl.RFC4884Len, RFC4884Flags: ctl.RFC4884Flags}
		c := stack.TCPErrCarrier(&ctl)
		ee.Ancillary = errAncillary(d.net.st, d.v6, d.recvInfo.Load(), &c, m.Origin == SO_EE_ORIGIN_ICMP)
		n, rflags, from, ee = errQueueRead(n, full, flags, ee, d.v6, m.Offender, m.Dst, d.sa, d.net.st)
		return n, rflags, from, ee, nil
	case *dgramEP:
		n, full, m, c, t, err := d.ep.ReadErrAt(b)
		if err != nil {
			return 0, 0, nil, ee, err
		}
		d.stamp.recvd(t, d.ts.cmsgs(t)) // ip_recv_error's sock_recv_timestamp
		if at != nil {
			*at = t
		}
		ee = SockExtendedErr{Errno: m.Errno, Origin: m.Origin, Type: m.Type, Code: m.Code, Info: m.Info, Data: m.Data,
			RFC4884Len: m.RFC4884Len, RFC4884Flags: m.RFC4884Flags}
		offender := m.Offender
		switch m.Origin {
		case SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6:
			ee.Ancillary = errAncillary(d.ep.Stack(), d.v6, d.recvInfo.Load(), &c, m.V4)
		case SO_EE_ORIGIN_TIMESTAMPING:
			offender, ee.Ancillary = d.stampErrCtl(&m, &c) // txstamp.go
		}
		n, rflags, from, ee = errQueueRead(n, full, flags, ee, d.v6, offender, m.Dst, d.sa, d.ep.Stack())
		return n, rflags, from, ee, nil
	}
	return 0, 0, nil, ee, syscall.EOPNOTSUPP
}

// errQueueRead completes a read of the error queue, the same for every
// socket type: n bytes of a full-byte payload were copied (MSG_TRUNC
// asks for the full length), the control message's level and type
// follow the socket's family, a link-local offender carries its NIC as
// the scope, and from is the failed packet's destination.
func errQueueRead(n, full, flags int, ee SockExtendedErr, v6 bool, offender netip.Addr, dst netip.AddrPort, sa func(netip.AddrPort) *SockaddrInet, st *stack.Stack) (int, int, Sockaddr, SockExtendedErr) {
	rflags := MSG_ERRQUEUE
	if full > n {
		rflags |= MSG_TRUNC
		if flags&MSG_TRUNC != 0 {
			n = full
		}
	}
	ee.Level, ee.CmsgType = SOL_IP, IP_RECVERR
	if v6 {
		ee.Level, ee.CmsgType = IPPROTO_IPV6, IPV6_RECVERR
	}
	if offender.IsValid() {
		ee.Offender = sa(netip.AddrPortFrom(offender, 0))
		if z := offender.Zone(); z != "" {
			if nic := st.NICByName(z); nic != nil {
				ee.scope = uint32(nic.ID())
			}
		}
	}
	var from Sockaddr
	if dst.IsValid() {
		from = sa(dst)
	}
	return n, rflags, from, ee
}

// ErrQueueLen is the number of errors queued on a datagram or TCP
// socket (IP_RECVERR), 0 for others.
func (s *Socket) ErrQueueLen() int {
	switch d := s.ep.(type) {
	case *dgramEP:
		return d.ep.ErrQueueLen()
	case *tcpEP:
		return d.ep.ErrQueueLen()
	}
	return 0
}

// ErrQueueDrops counts the errors a datagram socket did not queue
// because its receive buffer was full.
func (s *Socket) ErrQueueDrops() uint64 {
	if d, ok := s.ep.(*dgramEP); ok {
		return d.ep.ErrQueueDrops()
	}
	return 0
}

// setRecvErrOpt handles IP_RECVERR and IP_MTU_DISCOVER (level SOL_IP)
// and IPV6_RECVERR, IPV6_MTU_DISCOVER and IPV6_DONTFRAG (IPPROTO_IPV6)
// on a datagram socket; ok false for other options.
func (d *dgramEP) setRecvErrOpt(level, name int, v any) (ok bool, err error) {
	v6opt := level == IPPROTO_IPV6
	switch {
	case level == SOL_IP && (name == IP_RECVERR || name == IP_MTU_DISCOVER || name == IP_RECVERR_RFC4884):
	case v6opt && (name == IPV6_RECVERR || name == IPV6_MTU_DISCOVER || name == IPV6_DONTFRAG || name == IPV6_RECVERR_RFC4884):
	default:
		return false, nil
	}
	if v6opt && !d.v6 || level == SOL_IP && d.v6 && d.raw {
		// Linux: no IPv6 options on AF_INET; an AF_INET6 raw socket
		// takes no SOL_IP options (ipv6_setsockopt).
		return true, syscall.ENOPROTOOPT
	}
	if name == IP_RECVERR_RFC4884 && !v6opt || name == IPV6_RECVERR_RFC4884 && v6opt {
		on, err := rfc4884Opt(v, v6opt)
		if err == nil {
			d.ep.SetRecvErrRFC4884(v6opt, on)
		}
		return true, err
	}
	i, err := intOpt(v)
	if err != nil {
		return true, err
	}
	switch name {
	case IP_RECVERR, IPV6_RECVERR:
		d.ep.SetRecvErr(v6opt, i != 0)
		return true, nil
	case IP_MTU_DISCOVER, IPV6_MTU_DISCOVER:
		return true, d.ep.SetPMTUDisc(v6opt, i)
	}
	d.ep.SetDontFrag(i != 0)
	return true, nil
}

// getRecvErrOpt is setRecvErrOpt's getsockopt.
func (d *dgramEP) getRecvErrOpt(level, name int) (ok bool, v any, err error) {
	v6opt := level == IPPROTO_IPV6
	switch {
	case level == SOL_IP && (name == IP_RECVERR || name == IP_MTU_DISCOVER || name == IP_RECVERR_RFC4884):
	case v6opt && (name == IPV6_RECVERR || name == IPV6_MTU_DISCOVER || name == IPV6_DONTFRAG || name == IPV6_RECVERR_RFC4884):
	default:
		return false, nil, nil
	}
	if v6opt && !d.v6 {
		return true, nil, syscall.EOPNOTSUPP // as getOption6
	}
	if level == SOL_IP && d.v6 && d.raw {
		return true, nil, syscall.ENOPROTOOPT
	}
	switch name {
	case IP_RECVERR, IPV6_RECVERR:
		return true, b2i(d.ep.RecvErr(v6opt)), nil
	case IP_RECVERR_RFC4884, IPV6_RECVERR_RFC4884:
		return true, b2i(d.ep.RecvErrRFC4884(v6opt)), nil
	case IP_MTU_DISCOVER, IPV6_MTU_DISCOVER:
		return true, d.ep.PMTUDisc(v6opt), nil
	}
	return true, b2i(d.ep.DontFrag()), nil
}

// rfc4884Opt is the value of IP_RECVERR_RFC4884 (v6 false) or
// IPV6_RECVERR_RFC4884: 0 or 1, else EINVAL. A string is the option's
// raw bytes: IPv4 reads an int from 4 bytes or more, one byte from
// fewer, and takes no bytes as 0 (do_ip_setsockopt); IPv6 wants a whole
// int (do_ipv6_setsockopt). A uint8 is a one-byte value.
func rfc4884Opt(v any, v6 bool) (bool, error) {
	var i int
	switch x := v.(type) {
	case string:
		switch {
		case len(x) >= 4:
			i = int(int32(binary.NativeEndian.Uint32([]byte(x[:4]))))
		case v6:
			return false, syscall.EINVAL
		case len(x) >= 1:
			i = int(x[0])
		}
	case uint8:
		if v6 {
			return false, syscall.EINVAL
		}
		i = int(x)
	default:
		var err error
		if i, err = intOpt(v); err != nil {
			return false, err
		}
	}
	if i < 0 || i > 1 {
		return false, syscall.EINVAL
	}
	return i == 1, nil
}
