package socket

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

// Transparent proxying (stack/transparent.go has the divert rules): the
// socket options of Linux's TPROXY pattern, with its numbers.
//
// IP_TRANSPARENT (or IPV6_TRANSPARENT) lets a socket bind an address the
// host does not have and send from it, and makes a listener or an
// unconnected UDP socket eligible to receive what a rule diverts to its
// port. IP_FREEBIND (IPV6_FREEBIND) allows only the non-local bind.
// IP_RECVORIGDSTADDR (IPV6_RECVORIGDSTADDR) asks recvmsg for the
// datagram's original destination (RecvMsgOrigDst).
const (
	IP_FREEBIND        = 15
	IP_TRANSPARENT     = 19
	IP_RECVORIGDSTADDR = 20
	IP_ORIGDSTADDR     = IP_RECVORIGDSTADDR // the control message's type

	IPV6_RECVORIGDSTADDR = 74
	IPV6_ORIGDSTADDR     = IPV6_RECVORIGDSTADDR
	IPV6_TRANSPARENT     = 75
	IPV6_FREEBIND        = 78
)

// recvInfo bits of the original-destination options (inet6_pktinfo.go
// uses 1 to 16).
const (
	origDst4Bit = 32
	origDst6Bit = 64
)

// tproxyOpt reports whether (level, name) is one of the options above.
func tproxyOpt(level, name int) bool {
	switch level {
	case SOL_IP:
		return name == IP_TRANSPARENT || name == IP_FREEBIND || name == IP_RECVORIGDSTADDR
	case IPPROTO_IPV6:
		return name == IPV6_TRANSPARENT || name == IPV6_FREEBIND || name == IPV6_RECVORIGDSTADDR
	}
	return false
}

// setTransparentOpt is setsockopt for the options above on TCP and UDP
// sockets; handled is false for every other option or socket. The
// IPv6-level names exist only on AF_INET6 sockets (ENOPROTOOPT on
// AF_INET ones, as Linux); the IP-level ones on both. As in Linux, the
// two levels set one flag: IPV6_TRANSPARENT is IP_TRANSPARENT.
func (s *Socket) setTransparentOpt(level, name int, v any) (handled bool, err error) {
	if !tproxyOpt(level, name) {
		return false, nil
	}
	var ep endpointTP
	switch x := s.ep.(type) {
	case *tcpEP:
		if level == IPPROTO_IPV6 && !x.v6 {
			return true, syscall.ENOPROTOOPT
		}
		ep = endpointTP{tcp: x}
	case *dgramEP:
		if level == IPPROTO_IPV6 && !x.v6 {
			return true, syscall.ENOPROTOOPT
		}
		ep = endpointTP{dgram: x}
	default:
		return false, nil
	}
	i, err := intOpt(v)
	if err != nil {
		return true, err
	}
	on := i != 0
	switch name {
	case IP_TRANSPARENT, IPV6_TRANSPARENT:
		ep.setTransparent(on)
	case IP_FREEBIND, IPV6_FREEBIND:
		ep.setFreebind(on)
	case IP_RECVORIGDSTADDR:
		setBit(ep.recvInfo(), origDst4Bit, on)
	case IPV6_RECVORIGDSTADDR:
		setBit(ep.recvInfo(), origDst6Bit, on)
	}
	return true, nil
}

// getTransparentOpt is getsockopt for the options above: 0 or 1; the
// IPv6-level names on an AF_INET socket are EOPNOTSUPP, as Linux's
// ip_getsockopt answers a level it does not know.
func (s *Socket) getTransparentOpt(level, name int) (handled bool, v any, err error) {
	if !tproxyOpt(level, name) {
		return false, nil, nil
	}
	var ep endpointTP
	switch x := s.ep.(type) {
	case *tcpEP:
		if level == IPPROTO_IPV6 && !x.v6 {
			return true, nil, syscall.EOPNOTSUPP // ip_getsockopt: not SOL_IP
		}
		ep = endpointTP{tcp: x}
	case *dgramEP:
		if level == IPPROTO_IPV6 && !x.v6 {
			return true, nil, syscall.EOPNOTSUPP
		}
		ep = endpointTP{dgram: x}
	default:
		return false, nil, nil
	}
	switch name {
	case IP_TRANSPARENT, IPV6_TRANSPARENT:
		return true, b2i(ep.transparent()), nil
	case IP_FREEBIND, IPV6_FREEBIND:
		return true, b2i(ep.freebind()), nil
	case IP_RECVORIGDSTADDR:
		return true, b2i(ep.recvInfo().Load()&origDst4Bit != 0), nil
	default: // IPV6_RECVORIGDSTADDR
		return true, b2i(ep.recvInfo().Load()&origDst6Bit != 0), nil
	}
}

// endpointTP is a TCP or a datagram socket's endpoint, for the options.
type endpointTP struct {
	tcp   *tcpEP
	dgram *dgramEP
}

func (e endpointTP) setTransparent(on bool) {
	if e.tcp != nil {
		e.tcp.ep.SetTransparent(on)
	} else {
		e.dgram.ep.SetTransparent(on)
	}
}

func (e endpointTP) setFreebind(on bool) {
	if e.tcp != nil {
		e.tcp.ep.SetFreebind(on)
	} else {
		e.dgram.ep.SetFreebind(on)
	}
}

func (e endpointTP) transparent() bool {
	if e.tcp != nil {
		return e.tcp.ep.Transparent()
	}
	return e.dgram.ep.Transparent()
}

func (e endpointTP) freebind() bool {
	if e.tcp != nil {
		return e.tcp.ep.Freebind()
	}
	return e.dgram.ep.Freebind()
}

func (e endpointTP) recvInfo() *atomic.Uint32 {
	if e.tcp != nil {
		return &e.tcp.recvInfo
	}
	return &e.dgram.recvInfo
}

// RecvMsgOrigDst is recvmsg(2) on a UDP socket reading the
// IP_ORIGDSTADDR / IPV6_ORIGDSTADDR control message: orig is the
// address and port the datagram was sent to, which for a datagram a
// transparent rule diverted is not the socket's own. ok is false when
// the option for the datagram's family (IP_RECVORIGDSTADDR for IPv4,
// IPV6_RECVORIGDSTADDR for IPv6) is off: Linux sends no control
// message then. Other sockets give EOPNOTSUPP.
func (s *Socket) RecvMsgOrigDst(b []byte, flags int) (n, rflags int, from Sockaddr, orig *SockaddrInet, ok bool, err error) {
	d, isDgram := s.ep.(*dgramEP)
	if !isDgram || d.ep.Kind() != stack.KindUDP {
		return 0, 0, nil, nil, false, syscall.EOPNOTSUPP
	}
	var info stack.PacketInfo
	if n, rflags, from, info, err = s.recvDgramInfo(d, b, flags, nil); err != nil {
		return 0, 0, nil, nil, false, err
	}
	stack.PutRecvExt6(info.Ext6) // not read here
	info.Ext6 = nil
	bit := uint32(origDst6Bit)
	dst := info.Dst
	if dst.Is4() || dst.Is4In6() {
		bit = origDst4Bit
		dst = dst.Unmap()
	}
	if d.recvInfo.Load()&bit == 0 || !dst.IsValid() {
		return n, rflags, from, nil, false, nil
	}
	// The control message is a sockaddr_in for IPv4 (also on an
	// AF_INET6 socket), a sockaddr_in6 for IPv6.
	return n, rflags, from, &SockaddrInet{netip.AddrPortFrom(dst, info.DstPort)}, true, nil
}

// OrigDst is the original destination of an accepted TCP connection:
// its local address, which for a connection a transparent rule diverted
// is the address the client connected to (getsockname, as with Linux
// TPROXY). Other sockets give EOPNOTSUPP.
func (s *Socket) OrigDst() (netip.AddrPort, error) {
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return netip.AddrPort{}, syscall.EOPNOTSUPP
	}
	a := t.ep.LocalAddr()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), nil
}

// nonLocalSrc6 reports whether an IPV6_PKTINFO source the host does not
// have may be used: with IPV6_TRANSPARENT or IPV6_FREEBIND, as Linux's
// ipv6_can_nonlocal_bind allows it (EINVAL otherwise).
func (d *dgramEP) nonLocalSrc6() bool { return d.ep.Transparent() || d.ep.Freebind() }

// nonLocalSrc4 checks an IP_PKTINFO source the host does not have: the
// route takes it only for an IP_TRANSPARENT socket (Linux's
// FLOWI_FLAG_ANYSRC; IP_FREEBIND does not set it), else ENETUNREACH. A
// multicast, broadcast or 0/8 source is EINVAL either way, as in
// ip_route_output_key.
func (d *dgramEP) nonLocalSrc4(src netip.Addr) error {
	if src.IsMulticast() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || src.As4()[0] == 0 {
		return syscall.EINVAL
	}
	if !d.ep.Transparent() {
		return syscall.ENETUNREACH
	}
	return nil
}

// Held SYNs (tcp/holdsyn.go, docs/transparent.md): a TCP listener with
// SetHoldSYN answers no SYN itself. AcceptSYN hands out each new SYN as
// a SynRequest, which the caller completes (the SYN-ACK goes out) or
// rejects: a relay dials the original destination first and passes its
// answer on. Not a Linux socket option; a Go call of this package.

// Reject is how a held SYN is refused (tcp.Reject).
type Reject = tcp.Reject

// The rejections; the comments give what a Linux client's connect returns.
const (
	RejectReset           = tcp.RejectReset           // RST: ECONNREFUSED
	RejectSilent          = tcp.RejectSilent          // nothing: the client retransmits, then ETIMEDOUT
	RejectNetUnreach      = tcp.RejectNetUnreach      // ICMP(v6) net unreachable / no route: ENETUNREACH
	RejectHostUnreach     = tcp.RejectHostUnreach     // ICMP host / ICMPv6 address unreachable: EHOSTUNREACH
	RejectPortUnreach     = tcp.RejectPortUnreach     // ICMP(v6) port unreachable: ECONNREFUSED
	RejectAdminProhibited = tcp.RejectAdminProhibited // ICMP code 13: EHOSTUNREACH; ICMPv6 code 1: EACCES
)

// SetHoldSYN turns held SYNs on or off on a TCP socket, before or after
// listen (timeout 0: tcp.DefaultHoldSYNTimeout, 30s). Other sockets
// give EOPNOTSUPP; a connected one EINVAL.
func (s *Socket) SetHoldSYN(on bool, timeout time.Duration) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return syscall.EOPNOTSUPP
	}
	return t.ep.SetHoldSYN(on, timeout)
}

// SynRequest is a held SYN: a client's connection attempt, not yet
// answered.
type SynRequest struct {
	r  *tcp.SynRequest
	ls *Socket
	t  *tcpEP
}

// AcceptSYN waits for the next held SYN, as accept waits for a
// connection (non-blocking: EAGAIN; SO_RCVTIMEO and the read deadline
// bound it). A listener without SetHoldSYN gives EINVAL.
func (s *Socket) AcceptSYN() (*SynRequest, error) {
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return nil, syscall.EOPNOTSUPP
	}
	var r *tcp.SynRequest
	err := s.blocking(0, false, waiter.EventIn, func() error {
		var err error
		r, err = t.ep.NextSynRequest()
		return err
	})
	if err != nil {
		return nil, err
	}
	return &SynRequest{r: r, ls: s, t: t}, nil
}

// OrigDst is the address and port the client connected to: for a
// diverted SYN its original destination.
func (r *SynRequest) OrigDst() netip.AddrPort {
	a := r.r.Local()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Client is the client's address and port.
func (r *SynRequest) Client() netip.AddrPort {
	a := r.r.Remote()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Established reports that a SYN cookie completed the client's
// handshake already (tcp.SynRequest.Established): Complete hands the
// connection over, Reject resets it.
func (r *SynRequest) Established() bool { return r.r.Established() }

// Complete sends the SYN-ACK and returns the connection's socket, as
// accept would have. Its handshake is then in progress, as after a
// non-blocking connect: WaitHandshake waits for the client's ACK. The
// errors are tcp.SynRequest.Complete's (ETIMEDOUT: the request expired;
// ECONNABORTED: the listener closed; EALREADY: answered before).
func (r *SynRequest) Complete() (*Socket, error) {
	c, err := r.r.Complete()
	if err != nil {
		return nil, err
	}
	ls := r.ls
	ns := ls.net.register(ls.family, ls.typ, int(ls.proto), &tcpEP{ep: c, net: r.t.net, v6: r.t.v6})
	if ls.apartTCP() != nil {
		ls.apartAccepted(ns, r.t.sa(r.r.Remote()))
	}
	return ns, nil
}

// Reject refuses the SYN as how says; nothing else is sent.
func (r *SynRequest) Reject(how Reject) error { return r.r.Reject(how) }

// WaitHandshake waits, as a blocking connect does, until the handshake
// of a socket from SynRequest.Complete ends: nil when it is established,
// else its error (ECONNREFUSED: the client reset it; ETIMEDOUT: no ACK
// after the SYN-ACK retries). A non-blocking socket returns EINPROGRESS
// while it is under way; SO_SNDTIMEO and the write deadline bound the
// wait. On an established socket it returns nil at once.
func (s *Socket) WaitHandshake() error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	t, ok := s.ep.(*tcpEP)
	if !ok {
		return syscall.EOPNOTSUPP
	}
	done := func() bool {
		st := t.ep.State()
		return st != tcp.StateSynRcvd && st != tcp.StateSynSent
	}
	if done() {
		return s.ep.connectResult()
	}
	nonblock, callDL := s.mode(0, true)
	if nonblock {
		return syscall.EINPROGRESS
	}
	return s.awaitHandshake(callDL, done)
}
