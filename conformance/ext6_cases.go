package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// IPv6 Hop-by-Hop and Destination Options headers of an application
// (RFC 3542 sections 6 and 9): the sticky options' validation and
// getsockopt, and what a receiver with IPV6_RECVHOPOPTS and
// IPV6_RECVDSTOPTS reads (the headers whole, next header bytes
// included) for sticky headers and for sendmsg control messages, all
// over ::1. The headers hold experimental options (type 0x1e, skipped
// by a receiver), never more than 7 bytes of padding (which both drop).

// GetBytesOpt logs a byte-string option (up to 2048 bytes) as hex; the
// kernel side reads it with a raw getsockopt (x/sys/unix's string read
// stops at a zero byte).
func (t *T) GetBytesOpt(step string, s sockapi.Sock, level, name int) {
	var b []byte
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		var x any
		if x, err = v.GetSockOpt(level, name); err == nil {
			str, _ := x.(string)
			b = []byte(str)
		}
	case sockapi.HostSock:
		buf := make([]byte, 2048+4)
		binary.NativeEndian.PutUint32(buf[2048:], 2048)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(v.Fileno()), uintptr(level), uintptr(name),
			uintptr(unsafePointer(&buf[0])), uintptr(unsafePointer(&buf[2048])), 0)
		if e != 0 {
			err = e
		} else {
			b = buf[:binary.NativeEndian.Uint32(buf[2048:])]
		}
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %x", step, b)
}

// optsHdr is an options header of n*8 bytes with next header nh: one
// experimental option of 4 bytes of fill, then one of 6 per 8 bytes.
func optsHdr(nh byte, n int, fill byte) []byte {
	h := make([]byte, n*8)
	h[0], h[1], h[2], h[3] = nh, byte(n-1), 0x1e, 4
	for i := 4; i < 8; i++ {
		h[i] = fill
	}
	for i := 8; i < len(h); i += 8 {
		h[i], h[i+1] = 0x1e, 6
		for j := i + 2; j < i+8; j++ {
			h[j] = fill
		}
	}
	return h
}

func ext6Cases() []Case {
	var cs []Case
	ip6 := socket.IPPROTO_IPV6
	set := func(t *T, s sockapi.Sock, name int, v any, label string) {
		t.Check(label, s.SetSockOpt(ip6, name, v))
	}
	names := []struct {
		name string
		opt  int
	}{{"IPV6_HOPOPTS", socket.IPV6_HOPOPTS}, {"IPV6_DSTOPTS", socket.IPV6_DSTOPTS}, {"IPV6_RTHDRDSTOPTS", socket.IPV6_RTHDRDSTOPTS}}
	kinds := []struct {
		name    string
		fam, ty int
		pr      int
		root    bool
	}{
		{"udp6", AF_INET6, DGRAM, 0, false},
		{"raw6", AF_INET6, RAW, socket.IPPROTO_UDP, true},
		{"udp", AF_INET, DGRAM, 0, false},
	}
	for _, k := range kinds {
		for _, o := range names {
			cs = append(cs, Case{Name: "ext6/opt/" + k.name + "/" + o.name, Root: k.root, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, k.pr)
				t.GetBytesOpt("get default", s, ip6, o.opt)
				set(t, s, o.opt, "\x00", "set 1 byte")
				set(t, s, o.opt, string(make([]byte, 12)), "set 12 bytes")
				set(t, s, o.opt, string(optsHdr(0, 2, 1)[:8]), "set hdrlen 1 in 8 bytes")
				set(t, s, o.opt, string(make([]byte, 2048)), "set 2048 bytes")
				set(t, s, o.opt, string(optsHdr(0, 1, 2)), "set 8 bytes")
				t.GetBytesOpt("get", s, ip6, o.opt)
				set(t, s, o.opt, string(append(optsHdr(0x11, 1, 3), 9, 9, 9, 9, 9, 9, 9, 9)), "set hdrlen 0 in 16 bytes")
				t.GetBytesOpt("get", s, ip6, o.opt)
				set(t, s, o.opt, string(optsHdr(0, 255, 4)), "set 2040 bytes")
				t.GetBytesOpt("get", s, ip6, o.opt)
				set(t, s, o.opt, "", "set empty")
				t.GetBytesOpt("get", s, ip6, o.opt)
			}})
		}
		for _, o := range []struct {
			name string
			opt  int
		}{{"IPV6_RECVHOPOPTS", socket.IPV6_RECVHOPOPTS}, {"IPV6_RECVDSTOPTS", socket.IPV6_RECVDSTOPTS}} {
			cs = append(cs, Case{Name: "ext6/opt/" + k.name + "/" + o.name, Root: k.root, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, k.pr)
				t.GetInt("get default", s, ip6, o.opt)
				set(t, s, o.opt, 1, "set 1")
				t.GetInt("get", s, ip6, o.opt)
				set(t, s, o.opt, 7, "set 7")
				t.GetInt("get", s, ip6, o.opt)
				set(t, s, o.opt, 0, "set 0")
				t.GetInt("get", s, ip6, o.opt)
			}})
		}
	}

	// A receiver on ::1 with the given options; a sender prepared by prep
	// sends "hello6" and then whatever more does.
	type rx struct {
		r  sockapi.Sock
		ra *socket.SockaddrInet
	}
	recv6 := func(t *T, ropts ...int) rx {
		r := t.Socket6(DGRAM)
		r.SetTimeout(5 * time.Second)
		ra, _ := t.Bind6("bind", r, in6("::1", 0), "R")
		for _, o := range ropts {
			set(t, r, o, 1, fmt.Sprintf("set %d", o))
		}
		return rx{r, ra}
	}
	both := []int{socket.IPV6_RECVHOPLIMIT, socket.IPV6_RECVHOPOPTS, socket.IPV6_RECVDSTOPTS}
	hop8, hop16 := string(optsHdr(0, 1, 0xaa)), string(optsHdr(0, 2, 0xab))
	dst8, dst24 := string(optsHdr(0, 1, 0xbb)), string(optsHdr(0, 3, 0xbc))
	rthd := string(optsHdr(0, 1, 0xcc))
	sticky := func(name string, ropts []int, opts ...struct {
		opt int
		v   string
	}) Case {
		return Case{Name: "ext6/udp6 sticky " + name, Run: func(t *T) {
			x := recv6(t, ropts...)
			s := t.Socket6(DGRAM)
			for _, o := range opts {
				set(t, s, o.opt, o.v, fmt.Sprintf("set %d (%d bytes)", o.opt, len(o.v)))
			}
			t.Send("send", s, []byte("hello6"), 0, x.ra)
			t.RecvCtl("recvmsg", x.r, 64, 256, 0)
			// Removed again: a plain datagram.
			for _, o := range opts {
				set(t, s, o.opt, "", fmt.Sprintf("remove %d", o.opt))
			}
			t.Send("send", s, []byte("plain"), 0, x.ra)
			t.RecvCtl("recvmsg", x.r, 64, 256, 0)
		}}
	}
	type ov = struct {
		opt int
		v   string
	}
	cs = append(cs,
		sticky("IPV6_HOPOPTS", both, ov{socket.IPV6_HOPOPTS, hop8}),
		sticky("IPV6_DSTOPTS", both, ov{socket.IPV6_DSTOPTS, dst24}),
		sticky("IPV6_HOPOPTS and IPV6_DSTOPTS", both, ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop16}),
		sticky("all three, IPV6_RTHDRDSTOPTS not sent", both, ov{socket.IPV6_RTHDRDSTOPTS, rthd}, ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop8}),
		sticky("IPV6_RTHDRDSTOPTS alone", both, ov{socket.IPV6_RTHDRDSTOPTS, rthd}),
		sticky("both, receiver asks for IPV6_RECVDSTOPTS only", []int{socket.IPV6_RECVDSTOPTS}, ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop8}),
		sticky("both, receiver asks for IPV6_RECVHOPOPTS only", []int{socket.IPV6_RECVHOPOPTS, socket.IPV6_RECVTCLASS}, ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop8}),
		sticky("both, receiver asks for nothing", nil, ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop8}),
		sticky("both, receiver with IPV6_RECVPKTINFO and IPV6_RECVORIGDSTADDR", []int{socket.IPV6_RECVORIGDSTADDR, socket.IPV6_RECVPKTINFO, socket.IPV6_RECVDSTOPTS, socket.IPV6_RECVHOPOPTS},
			ov{socket.IPV6_DSTOPTS, dst8}, ov{socket.IPV6_HOPOPTS, hop8}),
	)
	// A control buffer too small for both headers: cut, MSG_CTRUNC.
	cs = append(cs, Case{Name: "ext6/udp6 short control buffer", Run: func(t *T) {
		x := recv6(t, both...)
		s := t.Socket6(DGRAM)
		set(t, s, socket.IPV6_HOPOPTS, hop16, "IPV6_HOPOPTS")
		set(t, s, socket.IPV6_DSTOPTS, dst24, "IPV6_DSTOPTS")
		for _, n := range []int{24, 40, 60} {
			t.Send("send", s, []byte("hello6"), 0, x.ra)
			t.RecvCtl(fmt.Sprintf("recvmsg, %d-byte buffer", n), x.r, 64, n, 0)
		}
	}})
	// sendmsg control messages: validated, sent, replacing the sticky set.
	type step struct {
		what string
		oob  []byte
	}
	ctl := func(name string, prep []ov, steps []step) Case {
		return Case{Name: "ext6/udp6 sendmsg " + name, Run: func(t *T) {
			x := recv6(t, both...)
			s := t.Socket6(DGRAM)
			for _, o := range prep {
				set(t, s, o.opt, o.v, fmt.Sprintf("sticky %d", o.opt))
			}
			for _, st := range steps {
				t.sendCtlPlain(st.what, s, x.r, []byte("ctl"), st.oob, x.ra)
			}
		}}
	}
	c := func(typ int, h string) []byte { return cmsg(ip6, typ, []byte(h)) }
	cs = append(cs,
		ctl("headers", nil, []step{
			{"IPV6_HOPOPTS", c(socket.IPV6_HOPOPTS, hop8)},
			{"IPV6_DSTOPTS", c(socket.IPV6_DSTOPTS, dst24)},
			{"IPV6_DSTOPTS and IPV6_HOPOPTS", cat(c(socket.IPV6_DSTOPTS, dst8), c(socket.IPV6_HOPOPTS, hop16))},
			{"IPV6_RTHDRDSTOPTS", c(socket.IPV6_RTHDRDSTOPTS, rthd)},
			{"IPV6_2292HOPOPTS", c(socket.IPV6_2292HOPOPTS, hop8)},
			{"IPV6_2292DSTOPTS", c(socket.IPV6_2292DSTOPTS, dst8)},
			{"IPV6_HOPOPTS with 8 bytes more", c(socket.IPV6_HOPOPTS, hop8+"\x01\x02\x03\x04\x05\x06\x07\x08")},
			{"IPV6_HOPOPTS twice", cat(c(socket.IPV6_HOPOPTS, hop8), c(socket.IPV6_HOPOPTS, hop16))},
			{"IPV6_HOPOPTS and IPV6_2292HOPOPTS", cat(c(socket.IPV6_HOPOPTS, hop8), c(socket.IPV6_2292HOPOPTS, hop8))},
			{"IPV6_DSTOPTS twice", cat(c(socket.IPV6_DSTOPTS, dst8), c(socket.IPV6_DSTOPTS, dst24))},
			{"IPV6_DSTOPTS then IPV6_2292DSTOPTS", cat(c(socket.IPV6_DSTOPTS, dst8), c(socket.IPV6_2292DSTOPTS, dst24))},
			{"IPV6_2292DSTOPTS then IPV6_DSTOPTS", cat(c(socket.IPV6_2292DSTOPTS, dst8), c(socket.IPV6_DSTOPTS, dst24))},
			{"IPV6_HOPOPTS empty", cmsg(ip6, socket.IPV6_HOPOPTS, nil)},
			{"IPV6_DSTOPTS hdrlen 2 in 16 bytes", cmsg(ip6, socket.IPV6_DSTOPTS, []byte(dst24[:16]))},
		}),
		ctl("over sticky IPV6_HOPOPTS and IPV6_DSTOPTS", []ov{{socket.IPV6_HOPOPTS, hop16}, {socket.IPV6_DSTOPTS, dst24}}, []step{
			{"IPV6_DSTOPTS", c(socket.IPV6_DSTOPTS, dst8)},
			{"IPV6_HOPOPTS", c(socket.IPV6_HOPOPTS, hop8)},
			{"IPV6_RTHDRDSTOPTS", c(socket.IPV6_RTHDRDSTOPTS, rthd)},
			{"IPV6_HOPLIMIT 5 only", cmsgInt(ip6, socket.IPV6_HOPLIMIT, 5)},
		}),
	)
	// The headers count against the MTU (::1's 65536 on both) with
	// IPV6_DONTFRAG, and against the 65535-byte payload without it;
	// Destination Options twice (Linux's ip6_append_data), and
	// IPV6_RTHDRDSTOPTS, not sent, not at all.
	for _, o := range []struct {
		name string
		opt  int
		v    string
	}{{"IPV6_DSTOPTS", socket.IPV6_DSTOPTS, dst24}, {"IPV6_HOPOPTS", socket.IPV6_HOPOPTS, hop16}, {"IPV6_RTHDRDSTOPTS", socket.IPV6_RTHDRDSTOPTS, rthd}} {
		cs = append(cs, Case{Name: "ext6/udp6 sizes with " + o.name, Run: func(t *T) {
			x := recv6(t)
			s := t.Socket6(DGRAM)
			set(t, s, o.opt, o.v, o.name)
			n := len(o.v)
			for _, l := range []int{65535 - 8 - 2*n, 65535 - 8 - 2*n + 1, 65535 - 8 - n, 65535 - 8 - n + 1, 65535 - 8 + 1} {
				t.Send(fmt.Sprintf("send %d", l), s, make([]byte, l), 0, x.ra)
			}
			set(t, s, socket.IPV6_DONTFRAG, 1, "IPV6_DONTFRAG")
			for _, l := range []int{65536 - 40 - 8 - 2*n, 65536 - 40 - 8 - 2*n + 1, 65536 - 40 - 8 - n, 65536 - 40 - 8 - n + 1} {
				t.Send(fmt.Sprintf("send %d, IPV6_DONTFRAG", l), s, make([]byte, l), 0, x.ra)
			}
		}})
	}
	// Too big with IPV6_DONTFRAG and with IPV6_RECVERR: what the error
	// queue says of the MTU.
	cs = append(cs, Case{Name: "ext6/udp6 EMSGSIZE on the error queue", Run: func(t *T) {
		x := recv6(t)
		s := t.Socket6(DGRAM)
		set(t, s, socket.IPV6_RECVERR, 1, "IPV6_RECVERR")
		t.Send("send 65528, no headers", s, make([]byte, 65528), 0, x.ra)
		t.RecvCtl("error queue", s, 64, 256, socket.MSG_ERRQUEUE|recvNoWait)
		set(t, s, socket.IPV6_HOPOPTS, hop16, "IPV6_HOPOPTS")
		set(t, s, socket.IPV6_DSTOPTS, dst24, "IPV6_DSTOPTS")
		t.Send("send 65500", s, make([]byte, 65500), 0, x.ra)
		t.RecvCtl("error queue", s, 64, 256, socket.MSG_ERRQUEUE|recvNoWait)
		set(t, s, socket.IPV6_DONTFRAG, 1, "IPV6_DONTFRAG")
		t.Send("send 65450, IPV6_DONTFRAG", s, make([]byte, 65450), 0, x.ra)
		t.RecvCtl("error queue", s, 64, 256, socket.MSG_ERRQUEUE|recvNoWait)
	}})
	// A raw ICMPv6 socket sends its headers, sticky or per datagram; a
	// raw ICMPv6 receiver of echo requests only shows them. (Ping
	// sockets, which send none, are refused to root by this host's
	// net.ipv4.ping_group_range: socket/inet6_ext_test.go has them.)
	cs = append(cs, Case{Name: "ext6/raw icmpv6 sender", Root: true, Run: func(t *T) {
		rr := t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
		rr.SetTimeout(5 * time.Second)
		var f socket.ICMP6Filter
		for i := range f {
			f[i] = 0xffffffff
		}
		f[128>>5] &^= 1 << (128 & 31)
		t.Check("ICMP6_FILTER echo requests only", rr.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
		for _, o := range both {
			set(t, rr, o, 1, fmt.Sprintf("set %d", o))
		}
		echo := []byte{128, 0, 0, 0, 0, 0, 0, 1, 'p'}
		rs := t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
		set(t, rs, socket.IPV6_HOPOPTS, hop16, "raw IPV6_HOPOPTS")
		t.Send("raw send", rs, echo, 0, in6("::1", 0))
		t.recvCtl("raw recvmsg", rr, 64, 256, 0, 2, 4)
		t.SendCtl("raw sendmsg IPV6_DSTOPTS", rs, echo, c(socket.IPV6_DSTOPTS, dst24), in6("::1", 0))
		t.recvCtl("raw recvmsg", rr, 64, 256, 0, 2, 4)
	}})
	// Raw IPv6 sockets: a raw UDP receiver gets the headers too; a raw
	// sender sends its sticky ones.
	cs = append(cs, Case{Name: "ext6/raw6 receive and send", Root: true, Run: func(t *T) {
		r := t.Socket(AF_INET6, RAW, socket.IPPROTO_UDP)
		r.SetTimeout(5 * time.Second)
		for _, o := range both {
			set(t, r, o, 1, fmt.Sprintf("set %d", o))
		}
		x := recv6(t, both...)
		s := t.Socket6(DGRAM)
		set(t, s, socket.IPV6_HOPOPTS, hop8, "IPV6_HOPOPTS")
		set(t, s, socket.IPV6_DSTOPTS, dst8, "IPV6_DSTOPTS")
		t.Send("send", s, []byte("hello6"), 0, x.ra)
		t.RecvCtl("recvmsg", x.r, 64, 256, 0)
		t.recvCtl("raw recvmsg", r, 64, 256, 0, 0, 8) // the UDP header differs per side
		// A raw ICMPv6-free protocol (253, experiments) from a raw sender
		// with sticky headers, to a raw receiver of 253.
		rr := t.Socket(AF_INET6, RAW, 253)
		rr.SetTimeout(5 * time.Second)
		for _, o := range both {
			set(t, rr, o, 1, fmt.Sprintf("set %d", o))
		}
		rs := t.Socket(AF_INET6, RAW, 253)
		set(t, rs, socket.IPV6_HOPOPTS, hop16, "raw IPV6_HOPOPTS")
		set(t, rs, socket.IPV6_DSTOPTS, dst24, "raw IPV6_DSTOPTS")
		t.Send("raw send", rs, []byte("raw253"), 0, in6("::1", 0))
		t.RecvCtl("raw 253 recvmsg", rr, 64, 256, 0)
	}})
	cs = append(cs, srv6Cases()...)       // srv6_cases.go
	return append(cs, ext6MoreCases()...) // ext6_tcp_cases.go
}
