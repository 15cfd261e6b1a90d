package socket

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// AF_INET6 sockets. The endpoints are IPv4's (stack and tcp take either
// family); this file adds the address rules: sockaddr_in6 with the scope
// id as the address's zone ("fe80::1%eth0"), IPv4 peers of a dual-stack
// socket shown v4-mapped (::ffff:a.b.c.d), and the IPPROTO_IPV6 options.

// IPv6 protocol numbers and options (Linux's values).
const (
	IPPROTO_IPV6   = 41
	IPPROTO_ICMPV6 = 58

	IPV6_CHECKSUM        = 7
	IPV6_UNICAST_HOPS    = 16
	IPV6_MULTICAST_IF    = 17
	IPV6_MULTICAST_HOPS  = 18
	IPV6_MULTICAST_LOOP  = 19
	IPV6_JOIN_GROUP      = 20
	IPV6_LEAVE_GROUP     = 21
	IPV6_ADD_MEMBERSHIP  = IPV6_JOIN_GROUP
	IPV6_DROP_MEMBERSHIP = IPV6_LEAVE_GROUP
	IPV6_MTU             = 24
	IPV6_V6ONLY          = 26
	IPV6_RECVPKTINFO     = 49
	IPV6_PKTINFO         = 50
	IPV6_RECVHOPLIMIT    = 51
	IPV6_HOPLIMIT        = 52
	IPV6_RECVTCLASS      = 66
	IPV6_TCLASS          = 67

	ICMP6_FILTER = 1 // level IPPROTO_ICMPV6
)

// IPv6Mreq is the IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP value (struct ipv6_mreq).
type IPv6Mreq struct {
	Multiaddr netip.Addr
	Interface int // ifindex; 0: chosen by route
}

// ICMP6Filter is the ICMP6_FILTER value: a set bit blocks the type
// (ICMP6_FILTER_WILLBLOCK), bit t%32 of word t/32.
type ICMP6Filter [8]uint32

// Inet6 makes an AF_INET6 address from an IPv6 literal (with an optional
// %zone) and a port; IPv4 literals become v4-mapped.
func Inet6(addr string, port int) *SockaddrInet {
	a, err := netip.ParseAddr(addr)
	if err != nil || CheckPort(port) != nil {
		return &SockaddrInet{}
	}
	return &SockaddrInet{netip.AddrPortFrom(mapped(a), uint16(port))}
}

// mapped shows an IPv4 address as an IPv4-mapped IPv6 address.
func mapped(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

func sa6(ap netip.AddrPort) *SockaddrInet {
	return &SockaddrInet{netip.AddrPortFrom(mapped(ap.Addr()), ap.Port())}
}

// newInet6 picks the endpoint for an AF_INET6 socket.
func (n *Net) newInet6(typ, proto int) (endpoint, int, error) {
	switch typ {
	case SOCK_STREAM:
		if proto == 0 {
			proto = IPPROTO_TCP
		}
		if proto != IPPROTO_TCP {
			return nil, 0, syscall.EPROTONOSUPPORT
		}
		ep := n.st.TCP.NewEndpoint()
		ep.SetInet6()
		return &tcpEP{ep: ep, net: n, v6: true}, proto, nil
	case SOCK_DGRAM:
		var d *stack.DgramEndpoint
		switch proto {
		case 0, IPPROTO_UDP:
			proto = IPPROTO_UDP
			d = n.st.NewDgram(stack.KindUDP, 17)
		case IPPROTO_ICMPV6:
			d = n.st.NewDgram(stack.KindPing, IPPROTO_ICMPV6)
		default:
			return nil, 0, syscall.EPROTONOSUPPORT
		}
		d.SetInet6()
		return &dgramEP{ep: d, v6: true}, proto, nil
	case SOCK_RAW:
		if proto <= 0 || proto > 255 {
			return nil, 0, syscall.EPROTONOSUPPORT
		}
		d := n.st.NewDgram(stack.KindRaw, uint8(proto))
		d.SetInet6()
		return &dgramEP{ep: d, raw: true, v6: true}, proto, nil
	case SOCK_SEQPACKET:
		return nil, 0, syscall.ESOCKTNOSUPPORT
	}
	return nil, 0, syscall.EINVAL
}

// inet6Addr reads an address given to an AF_INET6 socket: AF_INET6
// (v4-mapped ones come back as IPv4 for the stack), the scope id checked
// against the NICs (ENODEV), a link-local address without one refused
// with EINVAL where Linux refuses it (bind, stream connect). allowV4
// accepts a plain AF_INET address too (UDP connect and sendto do, as
// Linux's ip6_datagram_connect / udpv6_sendmsg).
func inet6Addr(st *stack.Stack, a Sockaddr, allowV4, needScope bool) (netip.AddrPort, error) {
	switch v := a.(type) {
	case *SockaddrInet:
		ap := v.AddrPort
		ad := ap.Addr()
		switch {
		case !ad.IsValid():
			return netip.AddrPort{}, syscall.EINVAL
		case ad.Is4():
			// A sockaddr_in given to an AF_INET6 socket is too short for
			// sockaddr_in6: Linux says EINVAL (UDP connect and sendto
			// take it as IPv4).
			if !allowV4 {
				return netip.AddrPort{}, syscall.EINVAL
			}
			return ap, nil
		case ad.Is4In6():
			return netip.AddrPortFrom(ad.Unmap(), ap.Port()), nil
		}
		if z := ad.Zone(); z != "" && !ad.IsLinkLocalUnicast() && !ad.IsLinkLocalMulticast() {
			// Linux ignores (and does not check) a scope id on a global address.
			ap = netip.AddrPortFrom(ad.WithZone(""), ap.Port())
		} else if z != "" {
			if st.NICByName(z) == nil {
				if id, ok := zoneIndex(z); !ok || st.NICByID(id) == nil {
					return netip.AddrPort{}, syscall.ENODEV
				}
			}
		} else if needScope && ad.IsLinkLocalUnicast() {
			return netip.AddrPort{}, syscall.EINVAL
		}
		return ap, nil
	case Unspec, *Unspec:
		return netip.AddrPort{}, nil
	}
	return netip.AddrPort{}, syscall.EAFNOSUPPORT
}

func zoneIndex(z string) (int, bool) {
	id := 0
	for _, c := range z {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + int(c-'0')
	}
	return id, z != ""
}

// setOption6 is the IPPROTO_IPV6 / IPPROTO_ICMPV6 half of a datagram
// socket's setsockopt.
func (d *dgramEP) setOption6(level, name int, v any) error {
	e := d.ep
	if level == IPPROTO_ICMPV6 {
		if name != ICMP6_FILTER || !d.raw {
			return syscall.ENOPROTOOPT
		}
		if e.Proto() != IPPROTO_ICMPV6 {
			return syscall.EOPNOTSUPP // rawv6_setsockopt on another protocol
		}
		f, ok := v.(ICMP6Filter)
		if !ok {
			return syscall.EINVAL
		}
		e.SetICMP6Filter(f)
		return nil
	}
	if !d.v6 {
		return syscall.ENOPROTOOPT
	}
	switch name {
	case IPV6_V6ONLY:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		return e.SetV6Only(i != 0)
	case IPV6_MTU:
		// The fragment size cap (frag_size): 0 or at least 1280. Sends
		// already fit the path MTU; the value is checked, not kept.
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i < 1280 {
			return syscall.EINVAL
		}
		return nil
	case IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		bit := recvBit(name)
		for {
			old := d.recvInfo.Load()
			nv := old &^ bit
			if i != 0 {
				nv |= bit
			}
			if d.recvInfo.CompareAndSwap(old, nv) {
				return nil
			}
		}
	case IPV6_UNICAST_HOPS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		return e.SetHopLimit(i)
	case IPV6_MULTICAST_HOPS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		return e.SetMulticastHops(i)
	case IPV6_MULTICAST_LOOP:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i != 1 {
			return syscall.EINVAL
		}
		e.SetMulticastLoop(i != 0)
		return nil
	case IPV6_MULTICAST_IF:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i == 0 {
			e.SetMulticastIf(nil)
			return nil
		}
		nic := d.netNIC(i)
		if nic == nil {
			return syscall.ENODEV
		}
		e.SetMulticastIf(nic)
		return nil
	case IPV6_TCLASS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i < -1 || i > 255 {
			return syscall.EINVAL
		}
		e.SetTClass(max(i, 0))
		return nil
	case IPV6_CHECKSUM:
		if !d.raw {
			return syscall.ENOPROTOOPT
		}
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		return e.SetChecksumOffset(i)
	case IPV6_PKTINFO:
		return d.setSticky(v) // inet6_pktinfo.go
	case IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS, IPV6_RTHDR, IPV6_DSTOPTS:
		return d.setExt6(name, v) // inet6_ext.go
	case IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP:
		m, ok := v.(IPv6Mreq)
		if !ok || !m.Multiaddr.Is6() || !m.Multiaddr.IsMulticast() {
			return syscall.EINVAL
		}
		var nic *stack.NIC
		if m.Interface != 0 {
			if nic = d.netNIC(m.Interface); nic == nil {
				return syscall.ENODEV
			}
		}
		if name == IPV6_JOIN_GROUP {
			return e.JoinGroup6(m.Multiaddr, nic)
		}
		return e.LeaveGroup6(m.Multiaddr, nic)
	}
	return syscall.ENOPROTOOPT
}

func (d *dgramEP) netNIC(i int) *stack.NIC { return d.ep.Stack().NICByID(i) }

func (d *dgramEP) getOption6(level, name int) (any, error) {
	e := d.ep
	if level == IPPROTO_ICMPV6 {
		if name != ICMP6_FILTER || !d.raw {
			return nil, syscall.ENOPROTOOPT
		}
		if e.Proto() != IPPROTO_ICMPV6 {
			return nil, syscall.EOPNOTSUPP
		}
		return ICMP6Filter(e.ICMP6Filter()), nil
	}
	if !d.v6 {
		return nil, syscall.EOPNOTSUPP // as Linux for IPPROTO_IPV6 on an AF_INET socket
	}
	switch name {
	case IPV6_V6ONLY:
		return b2i(e.V6Only()), nil
	case IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS:
		return b2i(d.recvInfo.Load()&recvBit(name) != 0), nil
	case IPV6_MTU:
		// The path MTU of the connected peer; ENOTCONN before, as Linux.
		ra, err := e.RemoteAddr()
		if err != nil {
			return nil, syscall.ENOTCONN
		}
		return e.Stack().PathMTU(ra.Addr()), nil
	case IPV6_UNICAST_HOPS:
		return e.HopLimit(), nil
	case IPV6_MULTICAST_HOPS:
		return e.MulticastHops(), nil
	case IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS, IPV6_RTHDR, IPV6_DSTOPTS:
		return d.getExt6(name), nil // inet6_ext.go
	case IPV6_MULTICAST_LOOP:
		return b2i(e.MulticastLoop()), nil
	case IPV6_MULTICAST_IF:
		if n := e.MulticastIf(); n != nil {
			return n.ID(), nil
		}
		return 0, nil
	case IPV6_TCLASS:
		return e.TClass(), nil
	case IPV6_CHECKSUM:
		if !d.raw {
			return nil, syscall.ENOPROTOOPT
		}
		return e.ChecksumOffset(), nil
	}
	return nil, syscall.ENOPROTOOPT
}

// setOption6 is a stream socket's IPPROTO_IPV6 setsockopt.
// tcpLoopOff is the recvInfo bit of a stream socket's
// IPV6_MULTICAST_LOOP 0 (kept and reported only, as on Linux).
const tcpLoopOff = 8

func (t *tcpEP) setOption6(name int, v any) error {
	if !t.v6 {
		return syscall.ENOPROTOOPT
	}
	switch name {
	case IPV6_RECVERR_RFC4884:
		on, err := rfc4884Opt(v, true) // recverr.go
		if err == nil {
			t.ep.SetRecvErrRFC4884(true, on)
		}
		return err
	case IPV6_MULTICAST_LOOP:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i != 1 {
			return syscall.EINVAL
		}
		for {
			old := t.recvInfo.Load()
			nv := old &^ tcpLoopOff
			if i == 0 {
				nv |= tcpLoopOff
			}
			if t.recvInfo.CompareAndSwap(old, nv) {
				return nil
			}
		}
	case IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP:
		// Linux refuses group membership on a stream socket (EPROTO),
		// after checking the value (EINVAL).
		if _, ok := v.(IPv6Mreq); !ok {
			return syscall.EINVAL
		}
		return syscall.EPROTO
	case IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS:
		// Accepted and reported, as Linux; a stream has no per-packet
		// ancillary data to give.
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		for bit := recvBit(name); ; {
			old := t.recvInfo.Load()
			nv := old &^ bit
			if i != 0 {
				nv |= bit
			}
			if t.recvInfo.CompareAndSwap(old, nv) {
				return nil
			}
		}
	case IPV6_V6ONLY:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		return t.ep.SetV6Only(i != 0)
	case IPV6_RECVERR:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		t.ep.SetRecvErr(true, i != 0) // recverr.go
		return nil
	case IPV6_PKTINFO:
		// Checked and taken, as Linux; TCP sends by its route.
		if _, ok := v.(In6Pktinfo); !ok {
			return syscall.EINVAL
		}
		return nil
	case IPV6_TCLASS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i < -1 || i > 255 {
			return syscall.EINVAL
		}
		return t.setOption(SOL_IP, IP_TOS, max(i, 0))
	case IPV6_UNICAST_HOPS:
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i < -1 || i > 255 {
			return syscall.EINVAL
		}
		// 0 is kept and sent (Linux's np->hop_limit takes 0..255).
		return t.ep.SetTTL(i)
	case IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS, IPV6_RTHDR, IPV6_DSTOPTS:
		return t.setExt6(name, v) // inet6_ext.go
	}
	return syscall.ENOPROTOOPT
}

func (t *tcpEP) getOption6(name int) (any, error) {
	if !t.v6 {
		return nil, syscall.EOPNOTSUPP
	}
	switch name {
	case IPV6_MULTICAST_HOPS:
		return 1, nil // Linux reports the default; setting it is ENOPROTOOPT
	case IPV6_MULTICAST_IF:
		return 0, nil
	case IPV6_MULTICAST_LOOP:
		return b2i(t.recvInfo.Load()&tcpLoopOff == 0), nil
	case IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS:
		return b2i(t.recvInfo.Load()&recvBit(name) != 0), nil
	case IPV6_V6ONLY:
		return b2i(t.ep.V6Only()), nil
	case IPV6_RECVERR:
		return b2i(t.ep.RecvErr(true)), nil
	case IPV6_RECVERR_RFC4884:
		return b2i(t.ep.RecvErrRFC4884(true)), nil
	case IPV6_TCLASS:
		return t.getOption(SOL_IP, IP_TOS)
	case IPV6_UNICAST_HOPS:
		return t.getOption(SOL_IP, IP_TTL)
	case IPV6_HOPOPTS, IPV6_RTHDRDSTOPTS, IPV6_RTHDR, IPV6_DSTOPTS:
		return t.getExt6(name), nil // inet6_ext.go
	}
	return nil, syscall.ENOPROTOOPT
}

// mappedIn reports a v4-mapped address in a.
func mappedIn(a Sockaddr) bool {
	v, ok := a.(*SockaddrInet)
	return ok && v.AddrPort.Addr().Is4In6()
}

func recvBit(name int) uint32 {
	switch name {
	case IPV6_RECVPKTINFO:
		return 1
	case IPV6_RECVHOPLIMIT:
		return 2
	}
	return 4
}

// Msg6Info is the ancillary data recvmsg(2) gives an AF_INET6 datagram
// socket that asked for it: IPV6_PKTINFO (destination address and
// interface index), IPV6_HOPLIMIT, IPV6_TCLASS. The Has fields say which
// options were on.
type Msg6Info struct {
	HasPktInfo  bool
	Addr        netip.Addr
	Ifindex     int // the NIC holding Addr (0 for a group)
	HasHopLimit bool
	HopLimit    int
	HasTClass   bool
	TClass      int
}

// RecvMsg6 is recvmsg(2) on an AF_INET6 datagram socket with its
// ancillary data; other sockets give EOPNOTSUPP.
func (s *Socket) RecvMsg6(b []byte, flags int) (n, rflags int, from Sockaddr, info Msg6Info, err error) {
	d, ok := s.ep.(*dgramEP)
	if !ok || !d.v6 {
		return 0, 0, nil, info, syscall.EOPNOTSUPP
	}
	var pi stack.PacketInfo
	if n, rflags, from, pi, err = s.recvDgramInfo(d, b, flags, nil); err != nil {
		return 0, 0, nil, info, err
	}
	stack.PutRecvExt6(pi.Ext6) // not read here
	pi.Ext6 = nil
	bits := d.recvInfo.Load()
	if bits&1 != 0 {
		info.HasPktInfo = true
		info.Addr = mapped(pi.Dst)
		info.Ifindex = pi.IfIndex // the NIC it came in on
		if info.Ifindex == 0 {
			info.Ifindex = d.ep.Stack().IfIndexOf(pi.Dst)
		}
	}
	if bits&2 != 0 {
		info.HasHopLimit, info.HopLimit = true, int(pi.HopLimit)
	}
	if bits&4 != 0 {
		info.HasTClass, info.TClass = true, int(pi.TClass)
	}
	return n, rflags, from, info, nil
}

// plainInet4 reports an AF_INET address (not v4-mapped) in a.
func plainInet4(a Sockaddr) bool {
	v, ok := a.(*SockaddrInet)
	return ok && v.AddrPort.Addr().Is4()
}
