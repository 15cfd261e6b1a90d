package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
	"golang.org/x/sys/unix"
)

// IP_RECVTTL, IP_RECVTOS, IP_RECVOPTS, IP_RETOPTS and IPV6_FLOWINFO:
// the options' validation, and the control messages of recvmsg(2)
// (socket.RecvMsgControl against the kernel's recvmsg with the same
// control buffer size) compared byte for byte. Datagrams with IPv4 options are built by an
// IPPROTO_RAW socket and sent to 127.0.0.1 only (root on the kernel).
// The kernel labels IPv6 flows by itself (net.ipv6.auto_flowlabels)
// with a hash nobody can predict, sockstack never does: the kernel's
// IPv6 senders of these cases turn that off (IPV6_AUTOFLOWLABEL 0, not
// in the transcript), so that a flow information word is the traffic
// class the case chose.

// ipv6AutoFlowLabel is Linux's IPV6_AUTOFLOWLABEL.
const ipv6AutoFlowLabel = 70

// noAutoFlowLabel turns the kernel's automatic flow labels off on s.
func noAutoFlowLabel(s sockapi.Sock) {
	if v, ok := s.(sockapi.HostSock); ok {
		unix.SetsockoptInt(v.Fileno(), unix.IPPROTO_IPV6, ipv6AutoFlowLabel, 0)
	}
}

// RecvCtl logs one recvmsg with a control buffer of oobSize bytes: data,
// sender, MSG_* flags and each control message (see cmsgText). It waits
// (up to 5 s) for s to be readable first unless flags has MSG_ERRQUEUE.
func (t *T) RecvCtl(step string, s sockapi.Sock, size, oobSize, flags int) {
	t.recvCtl(step, s, size, oobSize, flags, 0, 0)
}

// recvNoWait is RecvCtl without the wait: for a read that should find
// nothing (after a later datagram was read).
const recvNoWait = 1 << 30

// recvCtl is RecvCtl showing the data's bytes [mask, maskEnd) as 0xee:
// they differ per side (a port).
func (t *T) recvCtl(step string, s sockapi.Sock, size, oobSize, flags, mask, maskEnd int) {
	switch {
	case flags&recvNoWait != 0:
		flags &^= recvNoWait
	case flags&socket.MSG_ERRQUEUE == 0:
		Ready(s, false, 5*time.Second)
	default:
		t.WaitErr(s)
	}
	buf := make([]byte, size)
	oob := make([]byte, oobSize)
	var n, oobn, rflags int
	var from socket.Sockaddr
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		n, oobn, rflags, from, err = v.RecvMsgControl(buf, oob, flags|socket.MSG_DONTWAIT)
	case sockapi.HostSock:
		var sa unix.Sockaddr
		n, oobn, rflags, sa, err = unix.Recvmsg(v.Fileno(), buf, oob, flags|unix.MSG_DONTWAIT)
		from = fromUnix(sa)
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	shown := buf[:min(n, size)]
	for i := mask; i < maskEnd && i < len(shown); i++ {
		shown[i] = 0xee
	}
	t.Logf("%s: %d %q from %s flags %s", step, n, shown, t.Addr(from), recvFlagsText(rflags))
	if oobn == 0 {
		t.Logf("%s: no control", step)
		return
	}
	t.Logf("%s: %s", step, t.cmsgText(oob[:oobn]))
}

// udp4WithOpts builds an IPv4 UDP datagram from 127.0.0.1:7 to
// 127.0.0.1:dport with IP options opts (a multiple of 4 bytes), TTL ttl
// and TOS tos.
func udp4WithOpts(opts []byte, dport int, ttl, tos byte, payload string) []byte {
	hl := 20 + len(opts)
	p := make([]byte, hl+8+len(payload))
	p[0], p[1], p[8], p[9] = 0x40|byte(hl/4), tos, ttl, socket.IPPROTO_UDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], 0x4242) // a fixed identification: both sides keep it
	copy(p[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	copy(p[20:], opts)
	binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:hl]))
	u := p[hl:]
	binary.BigEndian.PutUint16(u[0:], 7)
	binary.BigEndian.PutUint16(u[2:], uint16(dport))
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return p
}

// sendRaw4 sends p from an IPPROTO_RAW socket to 127.0.0.1.
func (t *T) sendRaw4(step string, p []byte) {
	r := t.Socket(AF_INET, RAW, socket.IPPROTO_RAW)
	t.Send(step, r, p, 0, socket.Inet("127.0.0.1", 0))
}

func recvOptsCases() []Case {
	var cs []Case
	set := func(t *T, s sockapi.Sock, level, name int, label string, v any) {
		t.Check(label, s.SetSockOpt(level, name, v))
	}
	// Validation: 1 / a byte / no bytes / any int / -1, on each kind.
	type kind struct {
		name    string
		fam, ty int
		pr      int
		root    bool
	}
	kinds := []kind{
		{"udp", AF_INET, DGRAM, 0, false},
		{"tcp", AF_INET, STREAM, 0, false},
		{"raw", AF_INET, RAW, socket.IPPROTO_UDP, true},
		{"udp6", AF_INET6, DGRAM, 0, false},
		{"tcp6", AF_INET6, STREAM, 0, false},
		{"raw6", AF_INET6, RAW, socket.IPPROTO_UDP, true},
	}
	v4opts := []struct {
		name string
		opt  int
	}{{"IP_RECVTTL", socket.IP_RECVTTL}, {"IP_RECVTOS", socket.IP_RECVTOS}, {"IP_RECVOPTS", socket.IP_RECVOPTS}, {"IP_RETOPTS", socket.IP_RETOPTS}}
	for _, k := range kinds {
		for _, o := range v4opts {
			cs = append(cs, Case{Name: "recvopts/opt/" + k.name + "/" + o.name, Root: k.root, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, k.pr)
				t.GetInt("get default", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set 1", 1)
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set 0 as one byte", "\x00")
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set 5 as one byte", "\x05")
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set no bytes", "")
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set 1 as three bytes", "\x01\x00\x00")
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set -1", -1)
				t.GetInt("get", s, socket.SOL_IP, o.opt)
				set(t, s, socket.SOL_IP, o.opt, "set 256 as five bytes", "\x00\x01\x00\x00\x07")
				t.GetInt("get", s, socket.SOL_IP, o.opt)
			}})
		}
		for _, o := range []struct {
			name string
			opt  int
		}{{"IPV6_FLOWINFO", socket.IPV6_FLOWINFO}, {"IPV6_FLOWINFO_SEND", socket.IPV6_FLOWINFO_SEND}} {
			cs = append(cs, Case{Name: "recvopts/opt/" + k.name + "/" + o.name, Root: k.root, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, k.pr)
				t.GetInt("get default", s, socket.IPPROTO_IPV6, o.opt)
				set(t, s, socket.IPPROTO_IPV6, o.opt, "set 1", 1)
				t.GetInt("get", s, socket.IPPROTO_IPV6, o.opt)
				set(t, s, socket.IPPROTO_IPV6, o.opt, "set 1 as one byte", "\x01")
				t.GetInt("get", s, socket.IPPROTO_IPV6, o.opt)
				set(t, s, socket.IPPROTO_IPV6, o.opt, "set 0", 0)
				t.GetInt("get", s, socket.IPPROTO_IPV6, o.opt)
				set(t, s, socket.IPPROTO_IPV6, o.opt, "set 7", 7)
				t.GetInt("get", s, socket.IPPROTO_IPV6, o.opt)
			}})
		}
	}

	// Normal reads on UDP.
	udp4 := func(name string, oobSize int, send func(t *T, s sockapi.Sock), opts func(t *T, r sockapi.Sock)) Case {
		return Case{Name: "recvopts/udp " + name, Run: func(t *T) {
			r, s, ra, _ := t.UDPPair()
			opts(t, r)
			send(t, s)
			t.Send("send", s, []byte("hello"), 0, ra)
			t.RecvCtl("recvmsg", r, 64, oobSize, 0)
		}}
	}
	on := func(names ...int) func(t *T, r sockapi.Sock) {
		return func(t *T, r sockapi.Sock) {
			for _, n := range names {
				set(t, r, socket.SOL_IP, n, fmt.Sprintf("set option %d", n), 1)
			}
		}
	}
	ttl33 := func(t *T, s sockapi.Sock) { set(t, s, socket.SOL_IP, socket.IP_TTL, "IP_TTL=33", 33) }
	tos28 := func(t *T, s sockapi.Sock) { set(t, s, socket.SOL_IP, socket.IP_TOS, "IP_TOS=0x28", 0x28) }
	both := func(t *T, s sockapi.Sock) { ttl33(t, s); tos28(t, s) }
	all := []int{socket.IP_RECVORIGDSTADDR, socket.IP_RETOPTS, socket.IP_RECVOPTS, socket.IP_RECVTOS, socket.IP_RECVTTL, socket.IP_PKTINFO}
	cs = append(cs,
		udp4("IP_RECVTTL", 256, ttl33, on(socket.IP_RECVTTL)),
		udp4("IP_RECVTOS", 256, tos28, on(socket.IP_RECVTOS)),
		udp4("IP_RECVTTL and IP_RECVTOS", 256, both, on(socket.IP_RECVTOS, socket.IP_RECVTTL)),
		udp4("IP_RECVOPTS and IP_RETOPTS, no options", 256, both, on(socket.IP_RECVOPTS, socket.IP_RETOPTS)),
		udp4("all six", 256, both, on(all...)),
		udp4("all six, 40-byte control buffer", 40, both, on(all...)),
		udp4("all six, 60-byte control buffer", 60, both, on(all...)),
		udp4("all six, 12-byte control buffer", 12, both, on(all...)),
		udp4("all six, no control buffer", 0, both, on(all...)),
		Case{Name: "recvopts/udp IP_PKTINFO and IP_RECVTTL, plain recvmsg", Run: func(t *T) {
			r, s, ra, _ := t.UDPPair()
			on(socket.IP_PKTINFO, socket.IP_RECVTTL)(t, r)
			t.Send("send", s, []byte("hello"), 0, ra)
			Ready(r, false, 5*time.Second)
			t.unixRecv("recvmsg without a control buffer", r, 8, 0)
			t.Send("send", s, []byte("hello"), 0, ra)
			Ready(r, false, 5*time.Second)
			t.unixRecv("recvmsg without a control buffer, MSG_TRUNC", r, 2, socket.MSG_TRUNC)
			set(t, r, socket.SOL_IP, socket.IP_PKTINFO, "IP_PKTINFO=0", 0)
			set(t, r, socket.SOL_IP, socket.IP_RECVTTL, "IP_RECVTTL=0", 0)
			t.Send("send", s, []byte("hello"), 0, ra)
			Ready(r, false, 5*time.Second)
			t.unixRecv("options off", r, 8, 0)
		}},
		udp4("IP_RECVTTL off again", 256, both, func(t *T, r sockapi.Sock) {
			on(socket.IP_RECVTTL, socket.IP_RECVTOS)(t, r)
			set(t, r, socket.SOL_IP, socket.IP_RECVTTL, "IP_RECVTTL=0", 0)
		}),
	)
	// IPv4 to an AF_INET6 socket: IPV6_PKTINFO, then ip_cmsg_recv's.
	cs = append(cs, Case{Name: "recvopts/udp6 v4-mapped, IPV6_RECVPKTINFO, IP_RECVTTL, IP_RECVTOS, IPV6_RECVHOPLIMIT", Run: func(t *T) {
		r := t.Socket6(DGRAM)
		ra, _ := t.Bind6("bind", r, in6("::ffff:127.0.0.1", 0), "R")
		for _, o := range []struct {
			level, name int
		}{{socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO}, {socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT}, {socket.SOL_IP, socket.IP_RECVTTL}, {socket.SOL_IP, socket.IP_RECVTOS}, {socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO}} {
			set(t, r, o.level, o.name, fmt.Sprintf("set %d/%d", o.level, o.name), 1)
		}
		s := t.UDP()
		both(t, s)
		t.Send("send", s, []byte("mapped"), 0, socket.Inet("127.0.0.1", port(ra)))
		t.RecvCtl("recvmsg", r, 64, 256, 0)
	}})
	// IPv6: IPV6_FLOWINFO after IPV6_HOPLIMIT and IPV6_TCLASS.
	udp6 := func(name string, tclass int, opts ...int) Case {
		return Case{Name: "recvopts/udp6 " + name, Run: func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind", r, in6("::1", 0), "R")
			for _, o := range opts {
				set(t, r, socket.IPPROTO_IPV6, o, fmt.Sprintf("set %d", o), 1)
			}
			s := t.Socket6(DGRAM)
			noAutoFlowLabel(s)
			if tclass >= 0 {
				set(t, s, socket.IPPROTO_IPV6, socket.IPV6_TCLASS, fmt.Sprintf("IPV6_TCLASS=%#x", tclass), tclass)
			}
			t.Send("send", s, []byte("hello6"), 0, ra)
			t.RecvCtl("recvmsg", r, 64, 256, 0)
		}}
	}
	cs = append(cs, Case{Name: "recvopts/raw6 IPV6_FLOWINFO and IPV6_RECVTCLASS", Root: true, Run: func(t *T) {
		r := t.Socket(AF_INET6, RAW, socket.IPPROTO_UDP)
		set(t, r, socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, "IPV6_FLOWINFO=1", 1)
		set(t, r, socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, "IPV6_RECVTCLASS=1", 1)
		u := t.Socket6(DGRAM)
		ua, _ := t.Bind6("bind", u, in6("::1", 0), "U")
		s := t.Socket6(DGRAM)
		noAutoFlowLabel(s)
		set(t, s, socket.IPPROTO_IPV6, socket.IPV6_TCLASS, "IPV6_TCLASS=0x88", 0x88)
		t.Send("send", s, []byte("raw6"), 0, ua)
		// The UDP header's ports and checksum differ per side.
		t.recvCtl("raw recvmsg", r, 64, 256, 0, 0, 8)
	}})
	cs = append(cs, Case{Name: "recvopts/udp6 v4-mapped with IPv4 options", Root: true, Run: func(t *T) {
		r := t.Socket6(DGRAM)
		ra, _ := t.Bind6("bind", r, in6("::ffff:127.0.0.1", 0), "R")
		on(socket.IP_RETOPTS, socket.IP_RECVOPTS)(t, r)
		set(t, r, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1", 1)
		t.sendRaw4("send with options", udp4WithOpts([]byte{1, 7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}, port(ra), 64, 0, "m"))
		t.RecvCtl("recvmsg", r, 64, 256, 0)
	}})
	cs = append(cs,
		udp6("IPV6_FLOWINFO, traffic class 0x28", 0x28, socket.IPV6_FLOWINFO),
		udp6("IPV6_FLOWINFO, traffic class 0", -1, socket.IPV6_FLOWINFO),
		udp6("IPV6_FLOWINFO with the other four", 0xb8, socket.IPV6_RECVORIGDSTADDR, socket.IPV6_FLOWINFO, socket.IPV6_RECVTCLASS,
			socket.IPV6_RECVHOPLIMIT, socket.IPV6_RECVPKTINFO),
		udp6("IP_RECVTTL does nothing for IPv6", 0x28, socket.IPV6_RECVTCLASS),
	)

	// Datagrams with IPv4 options, from a raw socket.
	withOpts := func(name string, opts []byte, raw bool) Case {
		return Case{Name: "recvopts/udp options " + name, Root: true, Run: func(t *T) {
			r := t.UDP()
			r.SetTimeout(5 * time.Second)
			ra := t.BindLocal(r, "R")
			on(socket.IP_RETOPTS, socket.IP_RECVOPTS, socket.IP_RECVTTL)(t, r)
			var rs sockapi.Sock
			if raw {
				rs = t.Socket(AF_INET, RAW, socket.IPPROTO_UDP)
				on(socket.IP_RETOPTS, socket.IP_RECVOPTS, socket.IP_RECVTOS)(t, rs)
			}
			t.sendRaw4("send with options", udp4WithOpts(opts, port(ra), 61, 0x10, "opts"))
			t.RecvCtl("recvmsg", r, 64, 256, 0)
			if raw {
				hl := 20 + len(opts)
				t.recvCtl("raw recvmsg", rs, 128, 256, 0, hl+2, hl+4) // the UDP destination port
			}
		}}
	}
	rr := func(l, ptr byte, fill ...byte) []byte {
		o := append([]byte{7, l, ptr}, make([]byte, l-3)...)
		copy(o[3:], fill)
		return o
	}
	pad := func(b ...[]byte) []byte {
		var o []byte
		for _, x := range b {
			o = append(o, x...)
		}
		for len(o)%4 != 0 {
			o = append(o, 0)
		}
		return o
	}
	nop := []byte{1}
	cs = append(cs,
		withOpts("NOP and Record Route with two slots", pad(nop, rr(11, 4)), true),
		withOpts("Record Route with three slots, one used", pad(rr(15, 8, 10, 1, 2, 3)), false),
		withOpts("Record Route with one slot", pad(rr(7, 4)), false),
		withOpts("Record Route full", pad(rr(7, 8, 10, 9, 9, 9)), false),
		withOpts("Record Route with one slot and two bytes", pad(rr(9, 4)), false),
		withOpts("four NOPs", []byte{1, 1, 1, 1}, true),
		withOpts("NOP, END and bytes after it", []byte{1, 0, 0x55, 0x55}, true),
		withOpts("Router Alert", []byte{148, 4, 0, 0}, false),
		withOpts("Timestamp full, overflow counter", pad([]byte{68, 8, 9, 0x20, 0, 0, 0, 1}), true),
		withOpts("Timestamp prespecified, another host", pad([]byte{68, 12, 5, 3, 198, 51, 100, 7, 0, 0, 0, 0}), false),
		withOpts("Timestamp prespecified full, and Record Route", pad([]byte{68, 12, 13, 3, 198, 51, 100, 7, 0, 0, 0, 9}, rr(11, 4)), false),
	)

	// The error queue: the ICMP's TTL and TOS.
	errq := func(name string, opts ...int) Case {
		return Case{Name: "recvopts/recverr udp " + name, Run: func(t *T) {
			s := t.UDP()
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			set(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1", 1)
			on(opts...)(t, s)
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.RecvCtl("recvmsg MSG_ERRQUEUE", s, 64, 256, socket.MSG_ERRQUEUE)
		}}
	}
	cs = append(cs,
		errq("IP_RECVTTL", socket.IP_RECVTTL),
		errq("IP_RECVTOS", socket.IP_RECVTOS),
		errq("all six", all...),
		Case{Name: "recvopts/recverr udp IP_RECVTTL, RecvErr", Run: func(t *T) {
			s := t.UDP()
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			set(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1", 1)
			on(socket.IP_RECVTTL)(t, s)
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}},
		Case{Name: "recvopts/recverr udp6 v4-mapped, IP_RECVTTL and IP_RECVTOS", Run: func(t *T) {
			s := t.Socket6(DGRAM)
			c := t.ClosedPort(AF_INET6, "::ffff:127.0.0.1")
			set(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1", 1)
			on(socket.IP_RECVTTL, socket.IP_RECVTOS)(t, s)
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1", 1)
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.RecvCtl("recvmsg MSG_ERRQUEUE", s, 64, 256, socket.MSG_ERRQUEUE)
		}},
		Case{Name: "recvopts/recverr udp6 ::1 closed port, IPV6_FLOWINFO", Run: func(t *T) {
			s := t.Socket6(DGRAM)
			noAutoFlowLabel(s)
			c := t.ClosedPort(AF_INET6, "::1")
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, "IPV6_RECVERR=1", 1)
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, "IPV6_FLOWINFO=1", 1)
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT=1", 1)
			t.Send("sendto closed", s, []byte("hello6"), 0, c)
			t.RecvCtl("recvmsg MSG_ERRQUEUE", s, 64, 256, socket.MSG_ERRQUEUE)
		}},
		Case{Name: "recvopts/recverr udp injected ICMP error with Record Route", Root: true, Run: func(t *T) {
			s := t.UDP()
			a := t.BindLocal(s, "S")
			set(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1", 1)
			on(socket.IP_RETOPTS, socket.IP_RECVOPTS, socket.IP_RECVTTL, socket.IP_RECVTOS)(t, s)
			t.injectOpts4(pad(nop, rr(11, 4)), port(a))
			t.RecvCtl("recvmsg MSG_ERRQUEUE", s, 64, 256, socket.MSG_ERRQUEUE)
		}},
		Case{Name: "recvopts/recverr udp6 injected ICMPv6 error, IPV6_FLOWINFO", Root: true, Run: func(t *T) {
			s := t.Socket6(DGRAM)
			a, _ := t.Bind6("bind", s, in6("::1", 0), "S")
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, "IPV6_RECVERR=1", 1)
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, "IPV6_FLOWINFO=1", 1)
			set(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, "IPV6_RECVTCLASS=1", 1)
			r := t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
			noAutoFlowLabel(r)
			set(t, r, socket.IPPROTO_IPV6, socket.IPV6_TCLASS, "IPV6_TCLASS=0x48", 0x48)
			t.inject6on(r, port(a))
			t.RecvCtl("recvmsg MSG_ERRQUEUE", s, 64, 256, socket.MSG_ERRQUEUE)
		}},
	)
	// An accepted socket inherits them.
	for _, fam := range []int{AF_INET, AF_INET6} {
		cs = append(cs, Case{Name: fmt.Sprintf("recvopts/tcp accepted socket inherits the options, family %d", fam), Run: func(t *T) {
			l := t.Socket(fam, STREAM, 0)
			var a *socket.SockaddrInet
			if fam == AF_INET6 {
				a, _ = t.Bind6("bind", l, in6("::1", 0), "L")
				set(t, l, socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, "IPV6_FLOWINFO=1", 1)
				set(t, l, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1", 1)
			} else {
				a = t.BindLocal(l, "L")
			}
			on(socket.IP_RECVTTL, socket.IP_RETOPTS, socket.IP_PKTINFO)(t, l)
			t.Must("listen", l.Listen(1))
			c := t.Socket(fam, STREAM, 0)
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			l.SetTimeout(5 * time.Second)
			srv, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(srv)
			for _, o := range []int{socket.IP_RECVTTL, socket.IP_RECVTOS, socket.IP_RETOPTS, socket.IP_PKTINFO} {
				t.GetInt(fmt.Sprintf("accepted get %d", o), srv, socket.SOL_IP, o)
			}
			if fam == AF_INET6 {
				t.GetInt("accepted IPV6_FLOWINFO", srv, socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO)
				t.GetInt("accepted IPV6_RECVPKTINFO", srv, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO)
			}
		}})
	}
	// TCP takes the options and gives no control message.
	cs = append(cs, Case{Name: "recvopts/tcp IP_RECVTTL and IP_RECVTOS give nothing", Run: func(t *T) {
		cli, srv := t.Pair()
		on(socket.IP_RECVTTL, socket.IP_RECVTOS, socket.IP_RECVOPTS, socket.IP_RETOPTS)(t, srv)
		t.Check("send", cli.SendAll([]byte("tcp"), 0))
		t.RecvCtl("recvmsg", srv, 64, 256, 0)
	}})
	cs = append(cs, recvOptsOrigDstCases()...)
	return cs
}

// injectOpts4 sends, from an IPPROTO_RAW socket, an ICMP port
// unreachable to 127.0.0.1 whose own header carries opts, quoting a UDP
// datagram from 127.0.0.1:sport.
func (t *T) injectOpts4(opts []byte, sport int) {
	orig := udp4WithOpts(nil, 9, 64, 0, "quoted")
	binary.BigEndian.PutUint16(orig[20:], uint16(sport))
	binary.BigEndian.PutUint16(orig[22:], 9)
	orig[26], orig[27] = 0, 0
	icmp := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, orig...)
	binary.BigEndian.PutUint16(icmp[2:], wire.Checksum(icmp))
	p := udp4WithOpts(opts, 0, 64, 0xc0, "")
	hl := 20 + len(opts)
	p = append(p[:hl], icmp...)
	p[9] = socket.IPPROTO_ICMP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:hl]))
	t.sendRaw4("inject ICMP", p)
}

// inject6on sends from the raw ICMPv6 socket r an ICMPv6 port
// unreachable to ::1 quoting a UDP datagram from [::1]:sport.
func (t *T) inject6on(r sockapi.Sock, sport int) {
	orig := make([]byte, 48)
	orig[0], orig[6], orig[7] = 0x60, socket.IPPROTO_UDP, 64
	binary.BigEndian.PutUint16(orig[4:], 8)
	orig[23], orig[39] = 1, 1
	binary.BigEndian.PutUint16(orig[40:], uint16(sport))
	binary.BigEndian.PutUint16(orig[42:], 9)
	binary.BigEndian.PutUint16(orig[44:], 8)
	icmp := append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, orig...)
	t.Send("inject ICMPv6", r, icmp, 0, in6("::1", 0))
}
