package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// sendmsg(2) with a raw control buffer (socket.SendMsgControl against
// the kernel's sendmsg given the same bytes): per-datagram IP_TTL,
// IP_TOS, IP_RETOPTS, IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_DONTFRAG,
// UDP_SEGMENT and SOL_SOCKET messages, valid and not, malformed
// buffers, and TCP passing over the IP levels. What a send changed is
// read on the receiver with IP_RECVTTL / IP_RECVTOS / IP_RECVOPTS or
// IPV6_RECVHOPLIMIT / IPV6_RECVTCLASS. Loopback only.

// ctlSender is what both sides' sockets have for this.
type ctlSender interface {
	SendMsgControl(b, oob []byte, flags int, to socket.Sockaddr) (int, error)
}

// SendCtl logs one sendmsg with the control buffer oob; true when it
// sent.
func (t *T) SendCtl(step string, s sockapi.Sock, data, oob []byte, to socket.Sockaddr) bool {
	return t.sendCtlFlags(step, s, data, oob, 0, to)
}

func (t *T) sendCtlFlags(step string, s sockapi.Sock, data, oob []byte, flags int, to socket.Sockaddr) bool {
	v, ok := s.(ctlSender)
	if !ok {
		t.Logf("%s: no sendmsg on %T", step, s)
		return false
	}
	n, err := v.SendMsgControl(data, oob, flags, to)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return false
	}
	t.Logf("%s: %d", step, n)
	return true
}

// sendCtlPlain is SendCtl of a step's datagram followed by a plain one
// to r, read with their control messages: a send that failed shows as
// the plain datagram read first (it would come after anything sent).
func (t *T) sendCtlPlain(step string, s, r sockapi.Sock, data, oob []byte, to socket.Sockaddr) {
	sent := t.SendCtl(step, s, data, oob, to)
	t.Send("send plain", s, []byte("plain"), 0, to)
	t.RecvCtl("recvmsg", r, 64, 256, 0)
	if sent {
		t.RecvCtl("recvmsg", r, 64, 256, 0)
	}
}

func cmsgInt(level, typ, v int) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(int32(v)))
	return cmsg(level, typ, b)
}

// rawCmsg is a header with cmsg_len l (whatever the data's length) and
// data, not padded.
func rawCmsg(l uint64, level, typ int, data []byte) []byte {
	b := make([]byte, 16+len(data))
	binary.NativeEndian.PutUint64(b, l)
	binary.NativeEndian.PutUint32(b[8:], uint32(int32(level)))
	binary.NativeEndian.PutUint32(b[12:], uint32(int32(typ)))
	copy(b[16:], data)
	return b
}

func cat(bs ...[]byte) []byte {
	var o []byte
	for _, b := range bs {
		o = append(o, b...)
	}
	return o
}

func sendCtlCases() []Case {
	var cs []Case
	const (
		ip   = socket.SOL_IP
		ip6  = socket.IPPROTO_IPV6
		sol  = socket.SOL_SOCKET
		udpL = socket.SOL_UDP
	)
	set := func(t *T, s sockapi.Sock, level, name, v int, label string) {
		t.Check(label, s.SetSockOpt(level, name, v))
	}
	ttl7 := cmsgInt(ip, socket.IP_TTL, 7)
	// A UDP receiver R with IP_RECVTTL and IP_RECVTOS, a sender S; each
	// step sends, and a send that went is read with its TTL and TOS.
	type step struct {
		name string
		oob  []byte
	}
	udp4 := func(name string, steps []step, prep func(t *T, s sockapi.Sock)) Case {
		return Case{Name: "sendctl/udp " + name, Run: func(t *T) {
			s, r, _, ra := t.UDPPair()
			set(t, r, ip, socket.IP_RECVTTL, 1, "IP_RECVTTL")
			set(t, r, ip, socket.IP_RECVTOS, 1, "IP_RECVTOS")
			if prep != nil {
				prep(t, s)
			}
			for i, st := range steps {
				t.sendCtlPlain("sendmsg "+st.name, s, r, []byte(fmt.Sprintf("m%d", i)), st.oob, ra)
			}
		}}
	}
	cs = append(cs,
		udp4("IP_TTL", []step{
			{"IP_TTL 7", ttl7},
			{"IP_TTL 1", cmsgInt(ip, socket.IP_TTL, 1)},
			{"IP_TTL 255", cmsgInt(ip, socket.IP_TTL, 255)},
			{"IP_TTL 0", cmsgInt(ip, socket.IP_TTL, 0)},
			{"IP_TTL 256", cmsgInt(ip, socket.IP_TTL, 256)},
			{"IP_TTL -1", cmsgInt(ip, socket.IP_TTL, -1)},
			{"IP_TTL one byte", cmsg(ip, socket.IP_TTL, []byte{7})},
			{"IP_TTL eight bytes", cmsg(ip, socket.IP_TTL, []byte{7, 0, 0, 0, 0, 0, 0, 0})},
		}, nil),
		udp4("IP_TTL over the socket's IP_TTL 33 and IP_TOS 0x28", []step{
			{"IP_TTL 7", ttl7},
			{"IP_TOS 0x10", cmsgInt(ip, socket.IP_TOS, 0x10)},
			{"IP_TTL 9 and IP_TOS 0", cat(cmsgInt(ip, socket.IP_TTL, 9), cmsgInt(ip, socket.IP_TOS, 0))},
			{"IP_TTL 5 twice, the last 6", cat(cmsgInt(ip, socket.IP_TTL, 5), cmsgInt(ip, socket.IP_TTL, 6))},
		}, func(t *T, s sockapi.Sock) {
			set(t, s, ip, socket.IP_TTL, 33, "IP_TTL=33")
			set(t, s, ip, socket.IP_TOS, 0x28, "IP_TOS=0x28")
		}),
		udp4("IP_TOS", []step{
			{"IP_TOS 0x28", cmsgInt(ip, socket.IP_TOS, 0x28)},
			{"IP_TOS one byte 0xb8", cmsg(ip, socket.IP_TOS, []byte{0xb8})},
			{"IP_TOS 255", cmsgInt(ip, socket.IP_TOS, 255)},
			{"IP_TOS 256", cmsgInt(ip, socket.IP_TOS, 256)},
			{"IP_TOS -1", cmsgInt(ip, socket.IP_TOS, -1)},
			{"IP_TOS two bytes", cmsg(ip, socket.IP_TOS, []byte{0x28, 0})},
		}, nil),
		udp4("other levels and types", []step{
			{"IPV6_HOPLIMIT on AF_INET", cmsgInt(ip6, socket.IPV6_HOPLIMIT, 3)},
			{"IPV6_PKTINFO on AF_INET", cmsg(ip6, socket.IPV6_PKTINFO, make([]byte, 20))},
			{"IPV6_TCLASS 999 on AF_INET", cmsgInt(ip6, socket.IPV6_TCLASS, 999)},
			{"SOL_IP type 99", cmsgInt(ip, 99, 1)},
			{"IP_PKTINFO of 8 bytes", cmsg(ip, socket.IP_PKTINFO, make([]byte, 8))},
			{"IP_PKTINFO of 16 bytes", cmsg(ip, socket.IP_PKTINFO, make([]byte, 16))},
			{"IP_PROTOCOL 17", cmsgInt(ip, socket.IP_PROTOCOL, 17)},
			{"IP_PROTOCOL 0", cmsgInt(ip, socket.IP_PROTOCOL, 0)},
			{"level 200", cmsgInt(200, 1, 1)},
			{"SOL_UDP type 99", cmsgInt(udpL, 99, 1)},
			{"UDP_SEGMENT as an int", cmsgInt(udpL, socket.UDP_SEGMENT, 100)},
			{"SOL_IP type 99 before SOL_UDP type 99", cat(cmsgInt(ip, 99, 1), cmsgInt(udpL, 99, 1))},
			{"IP_TTL 7 then SOL_IP type 99", cat(ttl7, cmsgInt(ip, 99, 1))},
		}, nil),
		udp4("SOL_SOCKET", []step{
			{"SCM_RIGHTS", cmsgInt(sol, socket.SCM_RIGHTS, 0)},
			{"SCM_CREDENTIALS", cmsg(sol, socket.SCM_CREDENTIALS, make([]byte, 12))},
			{"SO_MARK 5", cmsgInt(sol, socket.SO_MARK, 5)},
			{"SO_MARK of 8 bytes", cmsg(sol, socket.SO_MARK, make([]byte, 8))},
			{"SO_PRIORITY 3", cmsgInt(sol, socket.SO_PRIORITY, 3)},
			{"SO_TIMESTAMPING 0", cmsgInt(sol, socket.SO_TIMESTAMPING_OLD, 0)},
			{"SO_TIMESTAMPING RX_SOFTWARE", cmsgInt(sol, socket.SO_TIMESTAMPING_OLD, 1<<3)},
			{"SO_TIMESTAMPING of 8 bytes", cmsg(sol, socket.SO_TIMESTAMPING_OLD, make([]byte, 8))},
			{"SCM_TXTIME without SO_TXTIME", cmsg(sol, socket.SCM_TXTIME, make([]byte, 8))},
			{"SOL_SOCKET type 99", cmsgInt(sol, 99, 0)},
			{"SO_MARK of 8 bytes, then IP_TTL 7", cat(cmsg(sol, socket.SO_MARK, make([]byte, 8)), ttl7)},
		}, nil),
		udp4("malformed buffers", []step{
			{"8 bytes", make([]byte, 8)},
			{"15 bytes", []byte("garbage garbage")},
			{"cmsg_len 0", rawCmsg(0, ip, socket.IP_TTL, []byte{7, 0, 0, 0})},
			{"cmsg_len 15", rawCmsg(15, ip, socket.IP_TTL, []byte{7, 0, 0, 0})},
			{"cmsg_len 16, no data", rawCmsg(16, ip, socket.IP_TTL, nil)},
			{"cmsg_len past the buffer", rawCmsg(24, ip, socket.IP_TTL, []byte{7, 0, 0, 0})},
			{"cmsg_len 2^63", rawCmsg(1<<63, ip, socket.IP_TTL, []byte{7, 0, 0, 0})},
			{"unpadded, 15 bytes after", cat(rawCmsg(20, ip, socket.IP_TTL, []byte{7, 0, 0, 0}), make([]byte, 15))},
			{"second header misaligned", cat(rawCmsg(20, ip, socket.IP_TTL, []byte{7, 0, 0, 0}), rawCmsg(20, ip, socket.IP_TOS, []byte{0x28, 0, 0, 0}))},
			{"second header aligned", cat(rawCmsg(20, ip, socket.IP_TTL, []byte{7, 0, 0, 0, 0, 0, 0, 0}), rawCmsg(20, ip, socket.IP_TOS, []byte{0x28, 0, 0, 0}))},
			{"second header cmsg_len 8", cat(ttl7, rawCmsg(8, ip, socket.IP_TOS, nil))},
			{"IP_TTL 7, bad second", cat(ttl7, rawCmsg(99, ip, socket.IP_TOS, []byte{1, 0, 0, 0}))},
			{"131071 zero bytes", make([]byte, 131071)},
			{"131072 zero bytes", make([]byte, 131072)},
		}, nil),
		udp4("IP_RETOPTS", []step{
			{"IP_RETOPTS record route", cmsg(ip, socket.IP_RETOPTS, []byte{7, 7, 4, 0, 0, 0, 0})},
			{"IP_RETOPTS NOPs", cmsg(ip, socket.IP_RETOPTS, []byte{1, 1, 1, 1})},
			{"IP_RETOPTS bad length", cmsg(ip, socket.IP_RETOPTS, []byte{7, 9, 4, 0})},
			{"IP_RETOPTS empty", cmsg(ip, socket.IP_RETOPTS, nil)},
			{"IP_RETOPTS 44 NOPs", cmsg(ip, socket.IP_RETOPTS, []byte("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x07\x07\x04\x00"))},
		}, nil),
	)
	// IP_RECVOPTS shows the options; the socket's IP_OPTIONS is replaced
	// for the datagram, then back.
	cs = append(cs, Case{Name: "sendctl/udp IP_RETOPTS over IP_OPTIONS", Run: func(t *T) {
		s, r, _, ra := t.UDPPair()
		set(t, r, ip, socket.IP_RECVOPTS, 1, "IP_RECVOPTS")
		t.Check("IP_OPTIONS NOPs", s.SetSockOpt(ip, socket.IP_OPTIONS, "\x01\x01\x01\x01"))
		t.SendCtl("sendmsg record route", s, []byte("rr"), cmsg(ip, socket.IP_RETOPTS, []byte{7, 7, 4, 0, 0, 0, 0}), ra)
		t.RecvCtl("recvmsg", r, 64, 256, 0)
		t.SendCtl("sendmsg empty", s, []byte("none"), cmsg(ip, socket.IP_RETOPTS, nil), ra)
		t.RecvCtl("recvmsg", r, 64, 256, 0)
		t.Send("send plain", s, []byte("plain"), 0, ra)
		t.RecvCtl("recvmsg", r, 64, 256, 0)
	}})

	// IPv6: R with IPV6_RECVHOPLIMIT and IPV6_RECVTCLASS.
	udp6 := func(name string, steps []step, prep func(t *T, s sockapi.Sock), ropts ...int) Case {
		return Case{Name: "sendctl/udp6 " + name, Run: func(t *T) {
			r := t.Socket6(DGRAM)
			r.SetTimeout(5 * time.Second)
			ra, _ := t.Bind6("bind", r, in6("::1", 0), "R")
			set(t, r, ip6, socket.IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT")
			set(t, r, ip6, socket.IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS")
			for _, o := range ropts {
				set(t, r, ip6, o, 1, fmt.Sprintf("receiver option %d", o))
			}
			s := t.Socket6(DGRAM)
			noAutoFlowLabel(s)
			if prep != nil {
				prep(t, s)
			}
			for i, st := range steps {
				t.sendCtlPlain("sendmsg "+st.name, s, r, []byte(fmt.Sprintf("m%d", i)), st.oob, ra)
			}
		}}
	}
	hop := func(v int) []byte { return cmsgInt(ip6, socket.IPV6_HOPLIMIT, v) }
	tc := func(v int) []byte { return cmsgInt(ip6, socket.IPV6_TCLASS, v) }
	cs = append(cs,
		udp6("IPV6_HOPLIMIT", []step{
			{"IPV6_HOPLIMIT 9", hop(9)},
			{"IPV6_HOPLIMIT 255", hop(255)},
			{"IPV6_HOPLIMIT 0", hop(0)},
			{"IPV6_HOPLIMIT -1", hop(-1)},
			{"IPV6_HOPLIMIT -2", hop(-2)},
			{"IPV6_HOPLIMIT 256", hop(256)},
			{"IPV6_HOPLIMIT one byte", cmsg(ip6, socket.IPV6_HOPLIMIT, []byte{9})},
			{"IPV6_2292HOPLIMIT 12", cmsgInt(ip6, socket.IPV6_2292HOPLIMIT, 12)},
		}, nil),
		udp6("IPV6_TCLASS over the socket's 0x28 and IPV6_UNICAST_HOPS 33", []step{
			{"IPV6_TCLASS 0xb8", tc(0xb8)},
			{"IPV6_TCLASS 0", tc(0)},
			{"IPV6_TCLASS -1", tc(-1)},
			{"IPV6_TCLASS -2", tc(-2)},
			{"IPV6_TCLASS 256", tc(256)},
			{"IPV6_TCLASS one byte", cmsg(ip6, socket.IPV6_TCLASS, []byte{4})},
			{"IPV6_HOPLIMIT 3 and IPV6_TCLASS 4", cat(hop(3), tc(4))},
		}, func(t *T, s sockapi.Sock) {
			set(t, s, ip6, socket.IPV6_TCLASS, 0x28, "IPV6_TCLASS=0x28")
			set(t, s, ip6, socket.IPV6_UNICAST_HOPS, 33, "IPV6_UNICAST_HOPS=33")
		}),
		udp6("IPV6_FLOWINFO over the socket's class 0x28", []step{
			{"IPV6_FLOWINFO class 0x0b", cmsg(ip6, socket.IPV6_FLOWINFO, flowinfo(0x0b, 0))},
			{"IPV6_FLOWINFO class 0x0b and IPV6_TCLASS 0x40", cat(cmsg(ip6, socket.IPV6_FLOWINFO, flowinfo(0x0b, 0)), tc(0x40))},
			{"IPV6_FLOWINFO class 0xf0, 8 bytes", cmsg(ip6, socket.IPV6_FLOWINFO, append(flowinfo(0xf0, 0), 1, 2, 3, 4))},
			{"IPV6_FLOWINFO label 0x12345", cmsg(ip6, socket.IPV6_FLOWINFO, flowinfo(0, 0x12345))},
			{"IPV6_FLOWINFO version bits", cmsg(ip6, socket.IPV6_FLOWINFO, []byte{0x60, 0, 0, 0})},
			{"IPV6_FLOWINFO of 2 bytes", cmsg(ip6, socket.IPV6_FLOWINFO, []byte{0, 0xb0})},
		}, func(t *T, s sockapi.Sock) {
			set(t, s, ip6, socket.IPV6_TCLASS, 0x28, "IPV6_TCLASS=0x28")
		}, socket.IPV6_FLOWINFO),
		// Malformed extension headers here; well-formed ones, which
		// are sent, in ext6_cases.go.
		udp6("IPV6_NEXTHOP and malformed extension headers", []step{
			{"IPV6_NEXTHOP ::1", cmsg(ip6, socket.IPV6_NEXTHOP, append([]byte{10, 0, 0, 0, 0, 0, 0, 0}, append(make([]byte, 15), 1, 0, 0, 0, 0)...))},
			{"IPV6_NEXTHOP 2 bytes", cmsg(ip6, socket.IPV6_NEXTHOP, []byte{10, 0})},
			{"IPV6_HOPOPTS 1 byte", cmsg(ip6, socket.IPV6_HOPOPTS, []byte{0})},
			{"IPV6_HOPOPTS hdrlen 1, 8 bytes", cmsg(ip6, socket.IPV6_HOPOPTS, []byte{0, 1, 1, 4, 0, 0, 0, 0})},
			{"IPV6_DSTOPTS hdrlen 1, 8 bytes", cmsg(ip6, socket.IPV6_DSTOPTS, []byte{0, 1, 1, 4, 0, 0, 0, 0})},
			{"IPV6_2292DSTOPTS 1 byte", cmsg(ip6, socket.IPV6_2292DSTOPTS, []byte{0})},
			{"IPV6_RTHDR type 0", cmsg(ip6, socket.IPV6_RTHDR, append([]byte{0, 2, 0, 1, 0, 0, 0, 0}, append(make([]byte, 15), 1)...))},
			{"IPV6_RTHDR type 2", cmsg(ip6, socket.IPV6_RTHDR, append([]byte{0, 2, 2, 1, 0, 0, 0, 0}, append(make([]byte, 15), 1)...))},
			{"IPV6_RTHDR 2 bytes", cmsg(ip6, socket.IPV6_RTHDR, []byte{0, 2})},
		}, nil),
		udp6("other levels and types", []step{
			{"IPV6_DONTFRAG 1", cmsgInt(ip6, socket.IPV6_DONTFRAG, 1)},
			{"IPV6_DONTFRAG 0", cmsgInt(ip6, socket.IPV6_DONTFRAG, 0)},
			{"IPV6_DONTFRAG 2", cmsgInt(ip6, socket.IPV6_DONTFRAG, 2)},
			{"IPV6_DONTFRAG -1", cmsgInt(ip6, socket.IPV6_DONTFRAG, -1)},
			{"IP_TTL 0 on AF_INET6", cmsgInt(ip, socket.IP_TTL, 0)},
			{"SOL_IP type 99 on AF_INET6", cmsgInt(ip, 99, 0)},
			{"SOL_IPV6 type 99", cmsgInt(ip6, 99, 0)},
			{"IPV6_PKTINFO of 16 bytes", cmsg(ip6, socket.IPV6_PKTINFO, make([]byte, 16))},
			{"IPV6_PKTINFO of 24 bytes", cmsg(ip6, socket.IPV6_PKTINFO, make([]byte, 24))},
			{"SOL_UDP type 99", cmsgInt(udpL, 99, 0)},
			{"SO_MARK of 2 bytes", cmsg(sol, socket.SO_MARK, make([]byte, 2))},
			{"cmsg_len 15", rawCmsg(15, ip6, socket.IPV6_HOPLIMIT, []byte{7, 0, 0, 0})},
		}, nil),
	)
	// v4-mapped: the IPv4 path reads SOL_IP and passes over SOL_IPV6.
	cs = append(cs, Case{Name: "sendctl/udp6 to a v4-mapped address", Run: func(t *T) {
		r := t.UDP()
		r.SetTimeout(5 * time.Second)
		ra := t.BindLocal(r, "R")
		set(t, r, ip, socket.IP_RECVTTL, 1, "IP_RECVTTL")
		set(t, r, ip, socket.IP_RECVTOS, 1, "IP_RECVTOS")
		s := t.Socket6(DGRAM)
		to := in6("::ffff:127.0.0.1", port(ra))
		for i, st := range []step{
			{"IP_TTL 7 and IP_TOS 0x28", cat(ttl7, cmsgInt(ip, socket.IP_TOS, 0x28))},
			{"IPV6_HOPLIMIT 9", hop(9)},
			{"IPV6_TCLASS 999", tc(999)},
			{"IP_TTL 0", cmsgInt(ip, socket.IP_TTL, 0)},
			{"SOL_IP type 99", cmsgInt(ip, 99, 0)},
		} {
			t.sendCtlPlain("sendmsg "+st.name, s, r, []byte(fmt.Sprintf("m%d", i)), st.oob, to)
		}
	}})
	// TCP reads SOL_SOCKET only; an error there is EINVAL.
	for _, fam := range []int{AF_INET, AF_INET6} {
		name := "tcp"
		if fam == AF_INET6 {
			name = "tcp6"
		}
		cs = append(cs, Case{Name: "sendctl/" + name + " passes over the IP levels", Run: func(t *T) {
			var c, sv sockapi.Sock
			if fam == AF_INET {
				c, sv = t.Pair()
			} else {
				l, la := t.listen6(in6("::1", 0), -1)
				c = t.Socket6(STREAM)
				t.Check("connect", c.Connect(la))
				sv = t.accept6(l)
				sv.SetTimeout(5 * time.Second)
			}
			for _, st := range []step{
				{"IP_TTL 0", cmsgInt(ip, socket.IP_TTL, 0)},
				{"IPV6_HOPLIMIT 999", hop(999)},
				{"SOL_IP type 99", cmsgInt(ip, 99, 0)},
				{"SOL_UDP type 99", cmsgInt(udpL, 99, 0)},
				{"SCM_RIGHTS", cmsgInt(sol, socket.SCM_RIGHTS, 0)},
				{"SO_MARK 5", cmsgInt(sol, socket.SO_MARK, 5)},
				{"SO_MARK of 8 bytes", cmsg(sol, socket.SO_MARK, make([]byte, 8))},
				{"SOL_SOCKET type 99", cmsgInt(sol, 99, 0)},
				{"SCM_TXTIME", cmsg(sol, socket.SCM_TXTIME, make([]byte, 8))},
				{"cmsg_len 15", rawCmsg(15, ip, socket.IP_TTL, []byte{7, 0, 0, 0})},
				{"8 bytes", make([]byte, 8)},
			} {
				t.SendCtl("sendmsg "+st.name, c, []byte("x"), st.oob, nil)
			}
			t.Send("send", c, []byte("end"), 0, nil)
			t.Recv("recv", sv, 10, socket.MSG_WAITALL)
		}})
	}
	// The destination is checked before the control messages.
	cs = append(cs, Case{Name: "sendctl/udp no destination before a bad message", Run: func(t *T) {
		for _, fam := range []int{AF_INET, AF_INET6} {
			s := t.Socket(fam, DGRAM, 0)
			t.SendCtl("sendmsg IP_TTL 0, no address", s, []byte("x"), cmsgInt(ip, socket.IP_TTL, 0), nil)
			t.SendCtl("sendmsg cmsg_len 15, no address", s, []byte("x"), rawCmsg(15, ip, socket.IP_TTL, []byte{7, 0, 0, 0}), nil)
			t.SendCtl("sendmsg SOL_UDP type 99, no address", s, []byte("x"), cmsgInt(udpL, 99, 0), nil)
			to := t.Loop(9)
			if fam == AF_INET6 {
				to = in6("::1", 9)
			}
			t.sendCtlFlags("sendmsg MSG_OOB, IP_TTL 0", s, []byte("x"), cmsgInt(ip, socket.IP_TTL, 0), socket.MSG_OOB, to)
			t.SendCtl("sendmsg 65536 bytes, IP_TTL 0", s, make([]byte, 65536), cmsgInt(ip, socket.IP_TTL, 0), to)
			t.SendCtl("sendmsg 65536 bytes, IPV6_HOPLIMIT 999", s, make([]byte, 65536), cmsgInt(ip6, socket.IPV6_HOPLIMIT, 999), to)
		}
	}})
	// Raw IPv4 carrying UDP (checksum 0: none, allowed on IPv4): the
	// receiver sees the per-datagram TTL and TOS.
	cs = append(cs, Case{Name: "sendctl/raw udp IP_TTL and IP_TOS", Root: true, Run: func(t *T) {
		r := t.UDP()
		r.SetTimeout(5 * time.Second)
		ra := t.BindLocal(r, "R")
		set(t, r, ip, socket.IP_RECVTTL, 1, "IP_RECVTTL")
		set(t, r, ip, socket.IP_RECVTOS, 1, "IP_RECVTOS")
		s := t.Socket(AF_INET, RAW, socket.IPPROTO_UDP)
		dgram := func(payload string) []byte {
			u := make([]byte, 8, 8+len(payload))
			binary.BigEndian.PutUint16(u[0:], 7)
			binary.BigEndian.PutUint16(u[2:], uint16(port(ra)))
			binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
			return append(u, payload...)
		}
		to := socket.Inet("127.0.0.1", 0)
		for i, st := range []step{
			{"IP_TTL 7 and IP_TOS 0x28", cat(ttl7, cmsgInt(ip, socket.IP_TOS, 0x28))},
			{"IP_TTL 0", cmsgInt(ip, socket.IP_TTL, 0)},
			{"UDP_SEGMENT as an int", cmsgInt(udpL, socket.UDP_SEGMENT, 100)},
		} {
			sent := t.SendCtl("sendmsg "+st.name, s, dgram(fmt.Sprintf("m%d", i)), st.oob, to)
			t.SendCtl("send plain", s, dgram("plain"), nil, to)
			t.RecvCtl("recvmsg", r, 64, 256, 0)
			if sent {
				t.RecvCtl("recvmsg", r, 64, 256, 0)
			}
		}
	}})
	// Raw IPv4: IP_TTL read, SOL_UDP passed over; the echo request's
	// reply shows nothing of it, so only the send results are compared.
	cs = append(cs, Case{Name: "sendctl/raw icmp", Root: true, Run: func(t *T) {
		s := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
		echo := []byte{8, 0, 0xf7, 0xfe, 0, 1, 0, 0} // checksum over this header
		to := socket.Inet("127.0.0.1", 0)
		for _, st := range []step{
			{"IP_TTL 7", ttl7},
			{"IP_TTL 0", cmsgInt(ip, socket.IP_TTL, 0)},
			{"SOL_UDP type 99", cmsgInt(udpL, 99, 0)},
			{"UDP_SEGMENT as an int", cmsgInt(udpL, socket.UDP_SEGMENT, 100)},
			{"IPV6_PKTINFO of 2 bytes", cmsg(ip6, socket.IPV6_PKTINFO, make([]byte, 2))},
			{"IP_PROTOCOL 300", cmsgInt(ip, socket.IP_PROTOCOL, 300)},
		} {
			t.SendCtl("sendmsg "+st.name, s, echo, st.oob, to)
		}
	}})
	return cs
}

// flowinfo is an IPv6 flow information word (network order): traffic
// class and flow label.
func flowinfo(class, label uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, class<<20|label&0xfffff)
}
