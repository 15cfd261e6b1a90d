package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// IPv6 extension headers beyond the datagram sockets' sticky and
// per-datagram ones (ext6_cases.go), over ::1: TCP sockets with sticky
// headers (getsockopt, inheritance by accepted sockets, the MSS they
// take: TCP_MAXSEG with a user MSS of 1000 so that the half-window bound
// of loopback does not hide it), UDP_SEGMENT with headers, and the
// receive side of routing headers (IPV6_RECVRTHDR) and of the RFC 2292
// options. The routing header datagrams come from a raw IPPROTO_ROUTING
// socket (root): a type 0 routing header with no segments left, a
// Destination Options header after it, then UDP.

func ext6MoreCases() []Case {
	var cs []Case
	ip6 := socket.IPPROTO_IPV6
	set := func(t *T, s sockapi.Sock, name int, v any, label string) {
		t.Check(label, s.SetSockOpt(ip6, name, v))
	}
	hop8, hop16 := string(optsHdr(0, 1, 0xaa)), string(optsHdr(0, 2, 0xab))
	dst8, dst24 := string(optsHdr(0, 1, 0xbb)), string(optsHdr(0, 3, 0xbc))
	rthd := string(optsHdr(0, 1, 0xcc))
	type ov = struct {
		opt int
		v   string
	}
	names := []struct {
		name string
		opt  int
	}{{"IPV6_HOPOPTS", socket.IPV6_HOPOPTS}, {"IPV6_DSTOPTS", socket.IPV6_DSTOPTS}, {"IPV6_RTHDRDSTOPTS", socket.IPV6_RTHDRDSTOPTS}}

	// TCP: the options' validation and getsockopt on AF_INET6 and
	// AF_INET stream sockets.
	for _, fam := range []struct {
		name string
		f    int
	}{{"tcp6", AF_INET6}, {"tcp", AF_INET}} {
		for _, o := range names {
			cs = append(cs, Case{Name: "ext6/opt/" + fam.name + "/" + o.name, Run: func(t *T) {
				s := t.Socket(fam.f, STREAM, 0)
				t.GetBytesOpt("get default", s, ip6, o.opt)
				set(t, s, o.opt, "\x00", "set 1 byte")
				set(t, s, o.opt, string(make([]byte, 12)), "set 12 bytes")
				set(t, s, o.opt, string(optsHdr(0, 2, 1)[:8]), "set hdrlen 1 in 8 bytes")
				set(t, s, o.opt, string(optsHdr(0, 1, 2)), "set 8 bytes")
				t.GetBytesOpt("get", s, ip6, o.opt)
				set(t, s, o.opt, string(append(optsHdr(0x11, 1, 3), 9, 9, 9, 9, 9, 9, 9, 9)), "set hdrlen 0 in 16 bytes")
				t.GetBytesOpt("get", s, ip6, o.opt)
				t.Check("listen", s.Listen(4))
				set(t, s, o.opt, string(optsHdr(0, 2, 4)), "set 16 bytes on a listener")
				t.GetBytesOpt("get", s, ip6, o.opt)
				set(t, s, o.opt, "", "set empty")
				t.GetBytesOpt("get", s, ip6, o.opt)
			}})
		}
	}

	// A connection over ::1: the client's headers, the listener's
	// inherited by the accepted socket, the MSS less the headers' room,
	// a change on the client's connection. (IPV6_RTHDRDSTOPTS and the
	// MSS after changes Linux does not sync: the quirk cases below.)
	type conn struct{ c, s sockapi.Sock }
	dial := func(t *T, lopts, copts []ov, timeout time.Duration) (conn, bool) {
		l, la := t.listen6(lo6(0), -1)
		for _, o := range lopts {
			set(t, l, o.opt, o.v, fmt.Sprintf("listener %d (%d bytes)", o.opt, len(o.v)))
		}
		c := t.Socket(AF_INET6, STREAM, 0)
		c.SetTimeout(timeout)
		t.Check("TCP_MAXSEG 1000", c.SetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG, 1000))
		for _, o := range copts {
			set(t, c, o.opt, o.v, fmt.Sprintf("client %d (%d bytes)", o.opt, len(o.v)))
		}
		if t.Check("connect", c.Connect(la)) != nil {
			return conn{}, false
		}
		c.SetTimeout(5 * time.Second)
		s, _, err := l.Accept()
		t.Must("accept", err)
		t.Track(s)
		s.SetTimeout(5 * time.Second)
		return conn{c, s}, true
	}
	tcpConn := func(name string, lopts, copts []ov) Case {
		return Case{Name: "ext6/tcp6 " + name, Run: func(t *T) {
			x, _ := dial(t, lopts, copts, 5*time.Second)
			c, s := x.c, x.s
			for _, o := range names {
				t.GetBytesOpt("client "+o.name, c, ip6, o.opt)
				t.GetBytesOpt("accepted "+o.name, s, ip6, o.opt)
			}
			t.GetInt("client TCP_MAXSEG", c, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.GetInt("accepted TCP_MAXSEG", s, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.Send("send", c, []byte("with"), 0, nil)
			t.Recv("recv", s, 64, 0)
			t.Send("reply", s, []byte("echoed"), 0, nil)
			t.Recv("recv reply", c, 64, 0)
			set(t, c, socket.IPV6_DSTOPTS, dst24, "client IPV6_DSTOPTS connected")
			t.GetInt("client TCP_MAXSEG after", c, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.GetBytesOpt("client IPV6_DSTOPTS after", c, ip6, socket.IPV6_DSTOPTS)
			t.Send("send after", c, []byte("after"), 0, nil)
			t.Recv("recv after", s, 64, 0)
			set(t, c, socket.IPV6_HOPOPTS, hop16, "client IPV6_HOPOPTS connected")
			t.GetInt("client TCP_MAXSEG with both", c, socket.SOL_TCP, socket.TCP_MAXSEG)
			set(t, c, socket.IPV6_HOPOPTS, "", "client IPV6_HOPOPTS none")
			t.GetInt("client TCP_MAXSEG without Hop-by-Hop", c, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.Send("reply after", s, []byte("again"), 0, nil)
			t.Recv("recv reply after", c, 64, 0)
		}}
	}
	cs = append(cs,
		tcpConn("client IPV6_HOPOPTS", nil, []ov{{socket.IPV6_HOPOPTS, hop8}}),
		tcpConn("client IPV6_HOPOPTS and IPV6_DSTOPTS", nil, []ov{{socket.IPV6_HOPOPTS, hop16}, {socket.IPV6_DSTOPTS, dst8}}),
		tcpConn("listener IPV6_DSTOPTS and IPV6_HOPOPTS", []ov{{socket.IPV6_DSTOPTS, dst8}, {socket.IPV6_HOPOPTS, hop8}}, nil),
		tcpConn("none", nil, nil),
	)
	// Quirks of Linux (known differences, ext6_known_test.go).
	cs = append(cs,
		// Removing the last header leaves the MSS where it was: Linux's
		// ipv6_update_options syncs it only when a header is left.
		Case{Name: "ext6/tcp6 MSS after the last header is removed", Run: func(t *T) {
			x, _ := dial(t, nil, []ov{{socket.IPV6_DSTOPTS, dst24}}, 5*time.Second)
			t.GetInt("client TCP_MAXSEG", x.c, socket.SOL_TCP, socket.TCP_MAXSEG)
			set(t, x.c, socket.IPV6_DSTOPTS, "", "client IPV6_DSTOPTS none")
			t.GetInt("client TCP_MAXSEG none", x.c, socket.SOL_TCP, socket.TCP_MAXSEG)
		}},
		// An accepted socket's change: Linux skips the MSS sync (its
		// inet_daddr is LOOPBACK4_IPV6, which ipv6_update_options takes
		// for a v4-mapped socket's placeholder).
		Case{Name: "ext6/tcp6 accepted socket sets a header", Run: func(t *T) {
			x, _ := dial(t, []ov{{socket.IPV6_DSTOPTS, dst8}}, nil, 5*time.Second)
			t.GetInt("accepted TCP_MAXSEG", x.s, socket.SOL_TCP, socket.TCP_MAXSEG)
			set(t, x.s, socket.IPV6_HOPOPTS, hop16, "accepted IPV6_HOPOPTS connected")
			t.GetInt("accepted TCP_MAXSEG after", x.s, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.Send("reply", x.s, []byte("again"), 0, nil)
			t.Recv("recv reply", x.c, 64, 0)
		}},
		// IPV6_RTHDRDSTOPTS without a routing header on TCP: Linux's
		// connection does not come up.
		Case{Name: "ext6/tcp6 IPV6_RTHDRDSTOPTS", Run: func(t *T) {
			x, ok := dial(t, nil, []ov{{socket.IPV6_RTHDRDSTOPTS, rthd}}, time.Second)
			if ok {
				t.GetInt("client TCP_MAXSEG", x.c, socket.SOL_TCP, socket.TCP_MAXSEG)
			}
		}},
	)
	// A dual-stack socket connected to a v4-mapped peer keeps the
	// headers and sends none; Linux still takes their room off the MSS
	// when one is set on the connection (a quirk).
	cs = append(cs, Case{Name: "ext6/tcp6 to a v4-mapped peer", Run: func(t *T) {
		l, la := t.Listener(4)
		c := t.Socket(AF_INET6, STREAM, 0)
		c.SetTimeout(5 * time.Second)
		t.Check("TCP_MAXSEG 1000", c.SetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG, 1000))
		set(t, c, socket.IPV6_HOPOPTS, hop16, "IPV6_HOPOPTS")
		t.Must("connect", c.Connect(in6("::ffff:127.0.0.1", port(la))))
		s, _, err := l.Accept()
		t.Must("accept", err)
		t.Track(s)
		s.SetTimeout(5 * time.Second)
		t.GetBytesOpt("client", c, ip6, socket.IPV6_HOPOPTS)
		t.GetInt("client TCP_MAXSEG", c, socket.SOL_TCP, socket.TCP_MAXSEG)
		t.Send("send", c, []byte("mapped"), 0, nil)
		t.Recv("recv", s, 64, 0)
	}}, Case{Name: "ext6/tcp6 to a v4-mapped peer, set connected", Run: func(t *T) {
		l, la := t.Listener(4)
		c := t.Socket(AF_INET6, STREAM, 0)
		c.SetTimeout(5 * time.Second)
		t.Check("TCP_MAXSEG 1000", c.SetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG, 1000))
		t.Must("connect", c.Connect(in6("::ffff:127.0.0.1", port(la))))
		_, _, err := l.Accept()
		t.Must("accept", err)
		set(t, c, socket.IPV6_DSTOPTS, dst8, "IPV6_DSTOPTS connected")
		t.GetInt("client TCP_MAXSEG after", c, socket.SOL_TCP, socket.TCP_MAXSEG)
	}})

	// UDP_SEGMENT with headers: each datagram carries them; the size
	// checks.
	recv6 := func(t *T, ropts ...int) (sockapi.Sock, *socket.SockaddrInet) {
		r := t.Socket6(DGRAM)
		r.SetTimeout(5 * time.Second)
		ra, _ := t.Bind6("bind", r, in6("::1", 0), "R")
		for _, o := range ropts {
			set(t, r, o, 1, fmt.Sprintf("set %d", o))
		}
		return r, ra
	}
	both := []int{socket.IPV6_RECVHOPOPTS, socket.IPV6_RECVDSTOPTS}
	gso := func(name string, opts []ov, g int, sizes []int) Case {
		return Case{Name: "ext6/udp6 UDP_SEGMENT " + name, Run: func(t *T) {
			r, ra := recv6(t, both...)
			s := t.Socket6(DGRAM)
			for _, o := range opts {
				set(t, s, o.opt, o.v, fmt.Sprintf("set %d (%d bytes)", o.opt, len(o.v)))
			}
			t.Check(fmt.Sprintf("UDP_SEGMENT %d", g), s.SetSockOptInt(socket.SOL_UDP, socket.UDP_SEGMENT, g))
			for _, n := range sizes {
				if t.Send(fmt.Sprintf("send %d", n), s, make([]byte, n), 0, ra) < 0 {
					continue
				}
				for i := 0; i < (n+g-1)/g; i++ {
					t.RecvCtl(fmt.Sprintf("recvmsg %d", i), r, 16, 256, 0)
				}
			}
			t.Send("plain", s, []byte("end"), 0, ra)
			t.RecvCtl("recvmsg plain", r, 16, 256, 0)
		}}
	}
	cs = append(cs,
		gso("with IPV6_HOPOPTS and IPV6_DSTOPTS", []ov{{socket.IPV6_HOPOPTS, hop16}, {socket.IPV6_DSTOPTS, dst24}}, 1000, []int{2500, 1000, 999, 3000}),
		gso("with IPV6_RTHDRDSTOPTS", []ov{{socket.IPV6_RTHDRDSTOPTS, rthd}}, 1200, []int{2500}),
		gso("limits with headers", []ov{{socket.IPV6_HOPOPTS, hop16}, {socket.IPV6_DSTOPTS, dst24}},
			65536-40-40-8, []int{65536 - 40 - 40 - 8, 65536 - 40 - 40 - 8 + 1, 65535 - 8 - 16 - 48, 65535 - 8 - 16 - 48 + 1}),
		gso("over the MTU with headers", []ov{{socket.IPV6_HOPOPTS, hop16}, {socket.IPV6_DSTOPTS, dst24}},
			65536-40-40-8+1, []int{65536 - 40 - 40 - 8 + 1, 100}),
	)
	// Past UDPMaxSegments with headers (sent only: the receiver's queue
	// need not hold 128 datagrams).
	cs = append(cs, Case{Name: "ext6/udp6 UDP_SEGMENT segments with headers", Run: func(t *T) {
		_, ra := recv6(t)
		s := t.Socket6(DGRAM)
		set(t, s, socket.IPV6_DSTOPTS, dst8, "IPV6_DSTOPTS")
		t.Check("UDP_SEGMENT 400", s.SetSockOptInt(socket.SOL_UDP, socket.UDP_SEGMENT, 400))
		t.Send("send 128 segments", s, make([]byte, 128*400), 0, ra)
		t.Send("send 129 segments", s, make([]byte, 128*400+1), 0, ra)
	}})
	cs = append(cs, Case{Name: "ext6/udp6 UDP_SEGMENT message with IPV6_HOPOPTS message", Run: func(t *T) {
		r, ra := recv6(t, both...)
		s := t.Socket6(DGRAM)
		oob := cat(cmsg(socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 700)), cmsg(ip6, socket.IPV6_HOPOPTS, []byte(hop8)))
		if t.SendCtl("sendmsg 1500", s, make([]byte, 1500), oob, ra) {
			for i := 0; i < 3; i++ {
				t.RecvCtl(fmt.Sprintf("recvmsg %d", i), r, 16, 256, 0)
			}
		}
		set(t, s, socket.IPV6_DSTOPTS, dst8, "sticky IPV6_DSTOPTS")
		if t.SendCtl("sendmsg 1500 again", s, make([]byte, 1500), oob, ra) {
			for i := 0; i < 3; i++ {
				t.RecvCtl(fmt.Sprintf("recvmsg %d", i), r, 16, 256, 0)
			}
		}
	}})

	// Receive: options' getsockopt, then datagrams behind a routing header.
	for _, o := range []struct {
		name string
		opt  int
	}{{"IPV6_RECVRTHDR", socket.IPV6_RECVRTHDR}, {"IPV6_2292PKTINFO", socket.IPV6_2292PKTINFO}, {"IPV6_2292HOPLIMIT", socket.IPV6_2292HOPLIMIT},
		{"IPV6_2292HOPOPTS", socket.IPV6_2292HOPOPTS}, {"IPV6_2292DSTOPTS", socket.IPV6_2292DSTOPTS}, {"IPV6_2292RTHDR", socket.IPV6_2292RTHDR}} {
		for _, k := range []struct {
			name    string
			fam, ty int
		}{{"udp6", AF_INET6, DGRAM}, {"udp", AF_INET, DGRAM}, {"tcp6", AF_INET6, STREAM}} {
			cs = append(cs, Case{Name: "ext6/opt/" + k.name + "/" + o.name, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, 0)
				t.GetInt("get default", s, ip6, o.opt)
				set(t, s, o.opt, 1, "set 1")
				t.GetInt("get", s, ip6, o.opt)
				set(t, s, o.opt, 5, "set 5")
				t.GetInt("get", s, ip6, o.opt)
				set(t, s, o.opt, 0, "set 0")
				t.GetInt("get", s, ip6, o.opt)
			}})
		}
	}
	rthdrSend := func(t *T, rs sockapi.Sock, dport int, d1 bool) {
		rt := []byte{socket.IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 0}
		var p []byte
		if d1 {
			rt[0] = 60
			p = append(append(p, rt...), optsHdr(socket.IPPROTO_UDP, 2, 0xd1)...)
		} else {
			p = append(p, rt...)
		}
		u := make([]byte, 8+5)
		wire.PutUDP(u, 4000, uint16(dport), 5)
		copy(u[8:], "rthdr")
		one := [16]byte{15: 1}
		wire.UDP(u).FillChecksum(wire.PseudoHeaderSum6(one, one, wire.ProtoUDP, len(u)))
		t.Send("raw send", rs, append(p, u...), 0, in6("::1", 0))
	}
	rx := func(name string, ropts []int, sticky []ov, d1 bool) Case {
		return Case{Name: "ext6/recv routing header " + name, Root: true, Run: func(t *T) {
			r, ra := recv6(t, ropts...)
			rs := t.Socket(AF_INET6, RAW, int(wire.ProtoIPv6Route))
			for _, o := range sticky {
				set(t, rs, o.opt, o.v, fmt.Sprintf("raw sticky %d", o.opt))
			}
			rthdrSend(t, rs, port(ra), d1)
			t.RecvCtl("recvmsg", r, 16, 512, 0)
			// A plain datagram after it.
			s := t.Socket6(DGRAM)
			t.Send("plain", s, []byte("plain"), 0, ra)
			t.RecvCtl("recvmsg plain", r, 16, 512, 0)
		}}
	}
	all := []ov{{socket.IPV6_HOPOPTS, hop8}, {socket.IPV6_DSTOPTS, dst8}}
	rfc2292 := []int{socket.IPV6_2292PKTINFO, socket.IPV6_2292HOPLIMIT, socket.IPV6_2292HOPOPTS, socket.IPV6_2292DSTOPTS, socket.IPV6_2292RTHDR}
	cs = append(cs,
		rx("IPV6_RECVRTHDR only", []int{socket.IPV6_RECVRTHDR}, all, true),
		rx("IPV6_RECVRTHDR, IPV6_RECVDSTOPTS, IPV6_RECVHOPOPTS", []int{socket.IPV6_RECVRTHDR, socket.IPV6_RECVDSTOPTS, socket.IPV6_RECVHOPOPTS, socket.IPV6_RECVHOPLIMIT}, all, true),
		rx("IPV6_RECVDSTOPTS only", []int{socket.IPV6_RECVDSTOPTS}, all, true),
		rx("IPV6_RECVRTHDR, routing header alone", []int{socket.IPV6_RECVRTHDR, socket.IPV6_RECVDSTOPTS}, nil, false),
		rx("RFC 2292 options", rfc2292, all, true),
		rx("RFC 2292 options, no Destination Options after", rfc2292, all, false),
		rx("RFC 2292 options, routing header alone", rfc2292, nil, false),
		rx("RFC 2292 and RFC 3542 options", append([]int{socket.IPV6_RECVPKTINFO, socket.IPV6_RECVRTHDR, socket.IPV6_RECVDSTOPTS, socket.IPV6_RECVHOPOPTS, socket.IPV6_RECVTCLASS, socket.IPV6_RECVORIGDSTADDR}, rfc2292...), all, true),
	)
	// The RFC 2292 options on a plain datagram and on sticky headers
	// without a routing header.
	cs = append(cs, Case{Name: "ext6/udp6 RFC 2292 options", Run: func(t *T) {
		r, ra := recv6(t, rfc2292...)
		s := t.Socket6(DGRAM)
		t.Send("plain", s, []byte("plain"), 0, ra)
		t.RecvCtl("recvmsg plain", r, 16, 512, 0)
		set(t, s, socket.IPV6_HOPOPTS, hop16, "IPV6_HOPOPTS")
		set(t, s, socket.IPV6_DSTOPTS, dst24, "IPV6_DSTOPTS")
		t.Send("with headers", s, []byte("hdrs"), 0, ra)
		t.RecvCtl("recvmsg with headers", r, 16, 512, 0)
		t.Send("short buffer", s, []byte("hdrs"), 0, ra)
		t.RecvCtl("recvmsg, 100-byte buffer", r, 16, 100, 0)
	}})
	return cs
}
