package socket

import (
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// sendmsg(2) with IPV6_PKTINFO / IP_PKTINFO: the datagram's source
// address and outgoing interface chosen per call, with the errors
// Linux gives (ip6_datagram_send_ctl, ip_cmsg_send): EINVAL for a
// source that is not the host's (or not on that interface when its
// scope is the link or the node), ENODEV for an unknown ifindex,
// EINVAL for an IPv6 link-local source without an ifindex.

// IP_PKTINFO is IPPROTO_IP option 8: on, recvmsg reports in_pktinfo;
// as a control message to sendmsg, InPktinfo.
const IP_PKTINFO = 8

// In6Pktinfo is struct in6_pktinfo: an IPV6_PKTINFO control message
// for SendMsg, or the sticky IPV6_PKTINFO option's value.
type In6Pktinfo struct {
	Addr    netip.Addr // source (:: : chosen by route)
	Ifindex int        // outgoing interface (0: chosen by route)
}

// InPktinfo is struct in_pktinfo, an IP_PKTINFO control message for
// SendMsg on an AF_INET socket: SpecDst is the source (0.0.0.0: chosen
// by route), Ifindex the outgoing interface; Addr is ignored on send.
type InPktinfo struct {
	Ifindex       int
	SpecDst, Addr netip.Addr
}

// SendMsg is sendmsg(2) with typed control messages: In6Pktinfo,
// InPktinfo, UDPSegment and those of sendctl.go (IPTTL, IPTOS,
// IPRetOpts, IPv6HopLimit, IPv6TClass, IPv6DontFrag). Each is read as
// Linux reads the raw message of that name (SendMsgControl): the IPv4
// path (AF_INET, or AF_INET6 to a v4-mapped address) passes over the
// IPv6 messages but a v4-mapped IPV6_PKTINFO, the IPv6 path over the
// IPv4 ones; a stream socket ignores them all, as Linux's TCP does. A
// value of another Go type is EINVAL.
func (s *Socket) SendMsg(b []byte, flags int, to Sockaddr, cmsgs ...any) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	d, ok := s.ep.(*dgramEP)
	if !ok {
		return s.SendTo(b, flags, to)
	}
	n, err := s.sendMsgDgram(d, b, flags, to, nil, cmsgs)
	if err == nil {
		d.txStamped(d.ts.sockReq(), b, sendDst(d, to)) // txstamp.go
	}
	return n, err
}

// sendMsgDgram is sendmsg on a datagram socket with a raw control
// buffer oob or typed messages cmsgs.
func (s *Socket) sendMsgDgram(d *dgramEP, b []byte, flags int, to Sockaddr, oob []byte, cmsgs []any) (int, error) {
	var ap netip.AddrPort
	if to != nil {
		var err error
		if ap, err = d.addr(to, !d.raw, false); err != nil {
			return 0, err
		}
	}
	if len(oob) >= cmsgHdrLen || len(cmsgs) > 0 {
		// These fail before the control messages are read, as in
		// udp_sendmsg, raw_sendmsg and udpv6_sendmsg: on the IPv4 path
		// a datagram over 64 KB and MSG_OOB, then no destination.
		dst := ap.Addr()
		ra, rerr := d.ep.RemoteAddr()
		if !dst.IsValid() {
			dst = ra.Addr()
		}
		if !d.v6 || dst.Is4() || dst.Is4In6() {
			if len(b) > 0xffff {
				return 0, syscall.EMSGSIZE
			}
			if flags&MSG_OOB != 0 {
				return 0, syscall.EOPNOTSUPP
			}
		}
		if !ap.IsValid() && rerr != nil {
			return 0, syscall.EDESTADDRREQ
		}
	}
	o, err := d.sendOptsCtl(ap, oob, cmsgs)
	if err != nil {
		return 0, err
	}
	var wait chan struct{}
	if nb, _ := s.mode(flags, true); !nb {
		wait = s.cancelChan()
		defer s.doneCancel()
	}
	var n int
	err = s.blocking(flags, true, waiter.EventOut, func() error {
		var err error
		n, err = d.ep.SendMsg(b, ap, o, wait)
		return err
	})
	return n, err
}

// sendOpts is sendOptsCtl without a raw buffer.
func (d *dgramEP) sendOpts(ap netip.AddrPort, cmsgs []any) (stack.SendOpts, error) {
	return d.sendOptsCtl(ap, nil, cmsgs)
}

// sendOptsCtl reads the control messages (raw oob, then typed cmsgs)
// against the destination ap (invalid: the connected peer) into
// stack.SendOpts.
func (d *dgramEP) sendOptsCtl(ap netip.AddrPort, oob []byte, cmsgs []any) (stack.SendOpts, error) {
	st := d.ep.Stack()
	var c ctlState
	dst := ap.Addr()
	if !dst.IsValid() {
		if ra, err := d.ep.RemoteAddr(); err == nil {
			dst = ra.Addr()
		}
	}
	v4 := dst.Is4() || dst.Is4In6()
	c.path = path6
	if !d.v6 || v4 {
		c.path = path4
	}
	// The interface before the control messages (Linux's flowi6_oif):
	// the destination's scope id, else the sticky IPV6_PKTINFO's.
	if z := dst.Zone(); z != "" {
		if n := st.NICByName(z); n != nil {
			c.oif = n.ID()
		} else if id, ok := zoneIndex(z); ok {
			c.oif = id
		}
	} else if d.v6 && !v4 {
		c.oif = int(d.sticky.Load())
	}
	if len(oob) >= cmsgHdrLen {
		if d.ep.Kind() == stack.KindUDP {
			if err := d.udpCtl(&c, oob); err != nil { // sendctl.go
				return c.o, err
			}
		}
		if err := walkCmsgs(oob, func(level, typ int, data []byte) error {
			if level == SOL_SOCKET {
				return c.sockCmsg(typ, data) // mark.go
			}
			return d.decodeCmsg(&c, level, typ, data) // sendctl.go
		}); err != nil {
			return c.o, err
		}
	}
	for _, m := range cmsgs {
		if err := d.applyCmsg(&c, m); err != nil {
			return c.o, err
		}
	}
	o := c.o
	if !c.seen6 && c.oif != 0 && o.NIC == nil {
		// Without a control message nothing checks the interface before
		// the route, which fails for an unknown one (ENETUNREACH).
		if o.NIC = st.NICByID(c.oif); o.NIC == nil {
			return o, syscall.ENETUNREACH
		}
	}
	return o, nil
}

// pktinfo6 reads one IPV6_PKTINFO message; oif is the interface chosen
// before it (0: none).
func (d *dgramEP) pktinfo6(o *stack.SendOpts, m In6Pktinfo, oif int) error {
	st := d.ep.Stack()
	if m.Ifindex != 0 {
		if oif != 0 && oif != m.Ifindex {
			return syscall.EINVAL // two interfaces for one datagram
		}
		oif = m.Ifindex
	}
	var nic *stack.NIC
	if oif != 0 {
		if nic = st.NICByID(oif); nic == nil {
			return syscall.ENODEV
		}
	}
	a := m.Addr
	if !a.IsValid() {
		a = netip.IPv6Unspecified()
	}
	if !a.Is6() || a.Is4In6() {
		return syscall.EINVAL
	}
	a = a.WithZone("")
	if nic == nil && a.IsLinkLocalUnicast() {
		return syscall.EINVAL // a link-local source needs its interface
	}
	if !a.IsUnspecified() {
		// Link- and node-scope sources must be on that very interface.
		strict := nic
		if !a.IsLinkLocalUnicast() && !a.IsLoopback() {
			strict = nil
		}
		if !st.HasAddrOn(a, strict) && !d.nonLocalSrc6() { // transparent.go
			return syscall.EINVAL
		}
		o.Src = a
	}
	o.NIC = nic
	return nil
}

// pktinfo4 is IP_PKTINFO (or IPV6_PKTINFO with a v4-mapped source for
// an IPv4 destination): src and ifindex are not checked here; the route
// then fails with ENODEV for an unknown ifindex and ENETUNREACH for a
// source the host does not have (ip_route_output_key), as on Linux.
func (d *dgramEP) pktinfo4(o *stack.SendOpts, ifindex int, src netip.Addr) error {
	st := d.ep.Stack()
	if ifindex != 0 {
		if o.NIC = st.NICByID(ifindex); o.NIC == nil {
			return syscall.ENODEV
		}
	}
	if src.IsValid() && !src.IsUnspecified() {
		if !src.Is4() {
			return syscall.ENETUNREACH
		}
		if !st.HasAddrOn(src, nil) {
			if err := d.nonLocalSrc4(src); err != nil { // transparent.go
				return err
			}
		}
		o.Src = src
	}
	return nil
}

// setSticky is setsockopt(IPV6_PKTINFO) on a datagram socket. Linux
// keeps the value and checks nothing in it (unless the socket is bound
// to a device); UDP then sends through its interface, and its address
// is not used.
func (d *dgramEP) setSticky(v any) error {
	m, ok := v.(In6Pktinfo)
	if !ok || m.Ifindex < 0 {
		return syscall.EINVAL
	}
	d.sticky.Store(int32(m.Ifindex))
	return nil
}

// ipPktinfoBit is IP_PKTINFO's bit in recvInfo (the IPV6_RECV* options
// use 1, 2, 4 and a stream socket's IPV6_MULTICAST_LOOP 0 uses 8).
const ipPktinfoBit = 16

func setBit(u *atomic.Uint32, bit uint32, on bool) {
	for {
		old := u.Load()
		nv := old &^ bit
		if on {
			nv |= bit
		}
		if u.CompareAndSwap(old, nv) {
			return
		}
	}
}

// RecvMsgPktinfo is recvmsg(2) on an AF_INET datagram socket with the
// IP_PKTINFO control message (ok false when the option is off):
// Addr is the datagram's destination, SpecDst the local address a reply
// goes from (the NIC's address for a broadcast or group), Ifindex the
// NIC holding it. Other sockets give EOPNOTSUPP.
func (s *Socket) RecvMsgPktinfo(b []byte, flags int) (n, rflags int, from Sockaddr, pi InPktinfo, ok bool, err error) {
	d, isDgram := s.ep.(*dgramEP)
	if !isDgram || d.v6 {
		return 0, 0, nil, pi, false, syscall.EOPNOTSUPP
	}
	var info stack.PacketInfo
	if n, rflags, from, info, err = s.recvDgramInfo(d, b, flags, nil); err != nil {
		return 0, 0, nil, pi, false, err
	}
	stack.PutRecvExt6(info.Ext6) // not read here
	info.Ext6 = nil
	if d.recvInfo.Load()&ipPktinfoBit == 0 {
		return n, rflags, from, pi, false, nil
	}
	st := d.ep.Stack()
	pi.Addr, pi.SpecDst = info.Dst, info.Dst
	pi.Ifindex = st.IfIndexOf(info.Dst)
	if pi.Ifindex == 0 {
		// A broadcast or a group: the local address a reply would use.
		if r, err := st.FindRoute(info.Dst); err == nil && r.NIC != nil {
			pi.Ifindex, pi.SpecDst = r.NIC.ID(), r.Src
		}
	}
	if info.IfIndex != 0 {
		pi.Ifindex = info.IfIndex // the NIC it came in on, as Linux's skb->dev
	}
	return n, rflags, from, pi, true, nil
}
