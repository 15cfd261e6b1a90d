package conformance

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// sendmsg with IPV6_PKTINFO / IP_PKTINFO, the sticky IPV6_PKTINFO
// option and hop limit 0. Every datagram goes to loopback; the calls
// naming 2001:db8::7, 198.51.100.7, fe80::1 or ifindex 9999 fail before
// anything is sent (on Linux in ip6_datagram_send_ctl / the route
// lookup). Loopback is interface 1 on both sides.

// badIfindex is an interface index neither side has.
const badIfindex = 9999

// SendMsg logs a sendmsg(2) with one control message: socket.In6Pktinfo
// or socket.InPktinfo. The kernel side builds the cmsghdr itself.
func (t *T) SendMsg(step string, s sockapi.Sock, data []byte, to socket.Sockaddr, cm any) {
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		_, err = v.Socket.SendMsg(data, 0, to, cm)
	case sockapi.HostSock:
		var oob []byte
		switch m := cm.(type) {
		case socket.In6Pktinfo:
			oob = cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, in6Pktinfo(m))
		case socket.InPktinfo:
			b := make([]byte, 12)
			binary.NativeEndian.PutUint32(b, uint32(m.Ifindex))
			a4 := func(a netip.Addr) [4]byte {
				if a.Is4() {
					return a.As4()
				}
				return [4]byte{}
			}
			sd, ad := a4(m.SpecDst), a4(m.Addr)
			copy(b[4:], sd[:])
			copy(b[8:], ad[:])
			oob = cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, b)
		}
		err = unix.Sendmsg(v.Fileno(), data, oob, unixAddr(to), 0)
	default:
		err = fmt.Errorf("no sendmsg on %T", s)
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: ok", step)
}

func in6Pktinfo(m socket.In6Pktinfo) []byte {
	b := make([]byte, 20)
	if m.Addr.IsValid() {
		a := m.Addr.As16()
		copy(b, a[:])
	}
	binary.NativeEndian.PutUint32(b[16:], uint32(m.Ifindex))
	return b
}

func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafePointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func unixAddr(a socket.Sockaddr) unix.Sockaddr {
	v, ok := a.(*socket.SockaddrInet)
	if !ok {
		return nil
	}
	ad := v.AddrPort.Addr()
	if ad.Is4() {
		return &unix.SockaddrInet4{Port: int(v.AddrPort.Port()), Addr: ad.As4()}
	}
	return &unix.SockaddrInet6{Port: int(v.AddrPort.Port()), Addr: ad.As16()}
}

// SetSticky6 sets the sticky IPV6_PKTINFO option and logs it.
func (t *T) SetSticky6(step string, s sockapi.Sock, m socket.In6Pktinfo) {
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		err = v.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, m)
	case sockapi.HostSock:
		err = unix.SetsockoptString(v.Fileno(), unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, string(in6Pktinfo(m)))
	}
	t.Check(step, err)
}

// RecvHops logs one datagram with its IPV6_HOPLIMIT (the socket has
// IPV6_RECVHOPLIMIT on).
func (t *T) RecvHops(step string, s sockapi.Sock) {
	buf := make([]byte, 64)
	var n, hops int
	var from socket.Sockaddr
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		var info socket.Msg6Info
		n, _, from, info, err = v.RecvMsg6(buf, 0)
		hops = -1
		if info.HasHopLimit {
			hops = info.HopLimit
		}
	case sockapi.HostSock:
		var anc struct{ HopLimit int }
		a, e := hostRecv6(v, buf, &n, &from)
		anc.HopLimit, err = a, e
		hops = anc.HopLimit
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %q from %s hop limit %d", step, buf[:n], t.Addr(from), hops)
}

func hostRecv6(v sockapi.HostSock, buf []byte, n *int, from *socket.Sockaddr) (int, error) {
	k, _, f, anc, err := v.RecvMsg6(buf, 0)
	*n, *from = k, f
	return anc.HopLimit, err
}

// RecvPktinfo logs one datagram with its IP_PKTINFO interface index and
// addresses.
func (t *T) RecvPktinfo(step string, s sockapi.Sock) {
	buf := make([]byte, 64)
	switch v := s.(type) {
	case sockapi.StackSock:
		n, _, _, pi, ok, err := v.RecvMsgPktinfo(buf, 0)
		if err != nil {
			t.Logf("%s: %s", step, ErrName(err))
			return
		}
		if !ok {
			t.Logf("%s: %q, no IP_PKTINFO", step, buf[:n])
			return
		}
		t.Logf("%s: %q ifindex %d addr %v spec_dst %v", step, buf[:n], pi.Ifindex, pi.Addr, pi.SpecDst)
	case sockapi.HostSock:
		oob := make([]byte, 64)
		var n, oobn int
		var err error
		// Wait for the datagram (the kernel's loopback has delivered it
		// already; the poll is the bound).
		unix.Poll([]unix.PollFd{{Fd: int32(v.Fileno()), Events: unix.POLLIN}}, 5000)
		n, oobn, _, _, err = unix.Recvmsg(v.Fileno(), buf, oob, unix.MSG_DONTWAIT)
		if err != nil {
			t.Logf("%s: %s", step, ErrName(err))
			return
		}
		cms, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, cm := range cms {
			if cm.Header.Level == unix.IPPROTO_IP && cm.Header.Type == unix.IP_PKTINFO && len(cm.Data) >= 12 {
				t.Logf("%s: %q ifindex %d addr %v spec_dst %v", step, buf[:n], binary.NativeEndian.Uint32(cm.Data[0:4]),
					netip.AddrFrom4([4]byte(cm.Data[8:12])), netip.AddrFrom4([4]byte(cm.Data[4:8])))
				return
			}
		}
		t.Logf("%s: %q, no IP_PKTINFO", step, buf[:n])
	}
}

func pktinfoCases() []Case {
	v6 := func(name string, cm socket.In6Pktinfo, dst string) Case {
		return Case{Name: "inet6/pktinfo/udp " + name, Run: func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind receiver", r, in6("::", 0), "R")
			r.SetTimeout(5 * time.Second)
			s := t.Socket6(DGRAM)
			t.SendMsg("sendmsg", s, []byte("pktinfo"), in6(dst, port(ra)), cm)
			// What arrives (or, after a failed call, that the next
			// datagram is the first).
			t.SendMsg("sendmsg plain", s, []byte("plain"), in6(dst, port(ra)), socket.In6Pktinfo{})
			t.RecvFrom("recvfrom", r, 64, 0)
		}}
	}
	lo, mapped := netip.IPv6Loopback(), netip.MustParseAddr("::ffff:127.0.0.1")
	cs := []Case{
		v6("source ::1", socket.In6Pktinfo{Addr: lo}, "::1"),
		v6("unspecified source", socket.In6Pktinfo{Addr: netip.IPv6Unspecified()}, "::1"),
		v6("non-local source", socket.In6Pktinfo{Addr: netip.MustParseAddr("2001:db8::7")}, "::1"),
		v6("unknown ifindex", socket.In6Pktinfo{Ifindex: badIfindex}, "::1"),
		v6("unknown ifindex with source ::1", socket.In6Pktinfo{Addr: lo, Ifindex: badIfindex}, "::1"),
		v6("link-local source without ifindex", socket.In6Pktinfo{Addr: netip.MustParseAddr("fe80::1")}, "::1"),
		v6("IPv6 source to a v4-mapped peer", socket.In6Pktinfo{Addr: lo}, "::ffff:127.0.0.1"),
		v6("unspecified source to a v4-mapped peer", socket.In6Pktinfo{}, "::ffff:127.0.0.1"),
		v6("v4-mapped source to a v4-mapped peer", socket.In6Pktinfo{Addr: mapped}, "::ffff:127.0.0.1"),
		v6("v4-mapped source, unknown ifindex", socket.In6Pktinfo{Addr: mapped, Ifindex: badIfindex}, "::ffff:127.0.0.1"),
	}
	v4 := func(name string, cm socket.InPktinfo) Case {
		return Case{Name: "pktinfo/udp " + name, Run: func(t *T) {
			r := t.UDP()
			ra := t.BindLocal(r, "R")
			r.SetTimeout(5 * time.Second)
			s := t.UDP()
			t.SendMsg("sendmsg", s, []byte("pktinfo"), ra, cm)
			t.SendMsg("sendmsg plain", s, []byte("plain"), ra, socket.InPktinfo{})
			t.RecvFrom("recvfrom", r, 64, 0)
		}}
	}
	cs = append(cs,
		v4("spec_dst 127.0.0.1", socket.InPktinfo{SpecDst: netip.MustParseAddr("127.0.0.1")}),
		v4("spec_dst 127.0.0.5", socket.InPktinfo{SpecDst: netip.MustParseAddr("127.0.0.5")}),
		v4("non-local spec_dst", socket.InPktinfo{SpecDst: netip.MustParseAddr("198.51.100.7")}),
		v4("unknown ifindex", socket.InPktinfo{Ifindex: badIfindex}),
		v4("ipi_addr ignored", socket.InPktinfo{Addr: netip.MustParseAddr("198.51.100.7")}),
	)
	cs = append(cs, Case{Name: "pktinfo/udp IP_PKTINFO on receive", Run: func(t *T) {
		r := t.UDP()
		ra := t.BindLocal(r, "R")
		s := t.UDP()
		t.Send("sendto off", s, []byte("off"), 0, ra)
		t.RecvPktinfo("recvmsg", r)
		t.Check("IP_PKTINFO=1", r.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1))
		t.Send("sendto on", s, []byte("on"), 0, ra)
		t.RecvPktinfo("recvmsg", r)
		t.SendMsg("sendmsg from 127.0.0.5", s, []byte("five"), ra, socket.InPktinfo{SpecDst: netip.MustParseAddr("127.0.0.5")})
		t.RecvPktinfo("recvmsg", r)
	}})
	sticky := func(name string, m socket.In6Pktinfo) Case {
		return Case{Name: "inet6/pktinfo/udp sticky " + name, Run: func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind receiver", r, in6("::", 0), "R")
			r.SetTimeout(5 * time.Second)
			s := t.Socket6(DGRAM)
			t.SetSticky6("setsockopt IPV6_PKTINFO", s, m)
			_, err := s.GetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
			t.Logf("getsockopt IPV6_PKTINFO: %s", ErrName(err))
			t.Send("sendto", s, []byte("sticky"), 0, in6("::1", port(ra)))
			t.SendMsg("sendmsg ifindex 0", s, []byte("cmsg"), in6("::1", port(ra)), socket.In6Pktinfo{})
			t.RecvFrom("recvfrom", r, 64, 0)
		}}
	}
	cs = append(cs,
		sticky("::1", socket.In6Pktinfo{Addr: lo}),
		sticky("non-local address", socket.In6Pktinfo{Addr: netip.MustParseAddr("2001:db8::7")}),
		sticky("unknown ifindex", socket.In6Pktinfo{Ifindex: badIfindex}),
		Case{Name: "inet6/pktinfo/tcp sticky", Run: func(t *T) {
			s := t.Socket6(STREAM)
			t.SetSticky6("setsockopt IPV6_PKTINFO", s, socket.In6Pktinfo{Addr: lo})
		}},
		Case{Name: "inet6/hops0/udp datagram to itself", Run: func(t *T) {
			s := t.Socket6(DGRAM)
			a, _ := t.Bind6("bind", s, in6("::1", 0), "A")
			s.SetTimeout(5 * time.Second)
			t.Check("IPV6_RECVHOPLIMIT", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1))
			t.Check("IPV6_UNICAST_HOPS=0", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 0))
			t.Send("sendto", s, []byte("hop0"), 0, a)
			t.RecvHops("recvmsg", s)
			t.Check("IPV6_UNICAST_HOPS=-1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, -1))
			t.Send("sendto", s, []byte("default"), 0, a)
			t.RecvHops("recvmsg", s)
		}},
		Case{Name: "inet6/hops0/tcp connect and echo", Run: func(t *T) {
			l := t.Socket6(STREAM)
			a, _ := t.Bind6("bind", l, in6("::1", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.Socket6(STREAM)
			t.Check("IPV6_UNICAST_HOPS=0", c.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 0))
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			l.SetTimeout(5 * time.Second)
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			s.SetTimeout(5 * time.Second)
			t.Check("send", c.SendAll([]byte("hop limit 0"), 0))
			t.Recv("recv", s, 64, socket.MSG_WAITALL)
			t.GetInt("IPV6_UNICAST_HOPS", c, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
		}},
	)
	return cs
}
