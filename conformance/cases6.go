package conformance

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// AF_INET6 cases, run against the kernel on ::1: the socket calls,
// options, dual-stack and v4-mapped behaviour, IPV6_V6ONLY conflicts in
// bind, scope ids. Ports are labelled as in the IPv4 cases.

const AF_INET6 = socket.AF_INET6

func lo6(port int) *socket.SockaddrInet {
	return socket.InetAddr(netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port)))
}

func any6(port int) *socket.SockaddrInet {
	return socket.InetAddr(netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)))
}

func mapped4(port int) *socket.SockaddrInet {
	return socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), uint16(port)))
}

func lo4(port int) *socket.SockaddrInet { return socket.Inet("127.0.0.1", port) }

func port(a *socket.SockaddrInet) int { return int(a.AddrPort.Port()) }

// bind6 binds s to a, logs and labels the name.
func (t *T) bind6(s sockapi.Sock, a socket.Sockaddr, label string) *socket.SockaddrInet {
	t.Must("bind", s.Bind(a))
	n := t.Name(s)
	t.Label(n, label)
	t.Logf("name %s", t.Addr(n))
	return n
}

func v6only(t *T, s sockapi.Sock, on int) {
	t.Must(fmt.Sprintf("V6ONLY=%d", on), s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, on))
}

// Cases6 is the AF_INET6 table.
func Cases6() []Case {
	var cs []Case
	cs = append(cs, socket6Cases()...)
	cs = append(cs, bind6Cases()...)
	cs = append(cs, connect6Cases()...)
	cs = append(cs, udp6Cases()...)
	cs = append(cs, option6Cases()...)
	cs = append(cs, raw6Cases()...)
	return cs
}

func socket6Cases() []Case {
	type sc struct {
		name   string
		ty, pr int
		root   bool
	}
	var cs []Case
	for _, c := range []sc{
		{"tcp", STREAM, 0, false},
		{"tcp explicit", STREAM, socket.IPPROTO_TCP, false},
		{"udp", DGRAM, 0, false},
		{"udp explicit", DGRAM, socket.IPPROTO_UDP, false},
		{"stream with udp proto", STREAM, socket.IPPROTO_UDP, false},
		{"dgram with tcp proto", DGRAM, socket.IPPROTO_TCP, false},
		{"raw proto 0", RAW, 0, true},
		{"raw icmpv6", RAW, socket.IPPROTO_ICMPV6, true},
		{"raw proto 253", RAW, 253, true},
		{"seqpacket", socket.SOCK_SEQPACKET, 0, false},
		{"bad type 99", 99, 0, false},
	} {
		c := c
		cs = append(cs, Case{Name: "v6/socket/" + c.name, Root: c.root, Run: func(t *T) {
			s, err := t.TrySocket(AF_INET6, c.ty, c.pr)
			if err != nil {
				return
			}
			t.GetInt("SO_TYPE", s, socket.SOL_SOCKET, socket.SO_TYPE)
			t.GetInt("SO_DOMAIN", s, socket.SOL_SOCKET, socket.SO_DOMAIN)
			t.GetInt("SO_PROTOCOL", s, socket.SOL_SOCKET, socket.SO_PROTOCOL)
			n, err := s.GetSockName()
			t.Check("getsockname", err)
			if err == nil && c.ty != RAW {
				t.Logf("name %s family %d", t.Addr(n), n.Family())
			}
		}})
	}
	return cs
}

func bind6Cases() []Case {
	var cs []Case
	for _, ty := range []int{STREAM, DGRAM} {
		ty := ty
		p := "v6/bind/" + typeNames[ty] + "/"
		mk := func(t *T) sockapi.Sock { return t.Socket(AF_INET6, ty, 0) }
		mk4 := func(t *T) sockapi.Sock { return t.Socket(AF_INET, ty, 0) }
		add := func(name string, f func(t *T)) { cs = append(cs, Case{Name: p + name, Run: f}) }
		add("loopback", func(t *T) { t.bind6(mk(t), lo6(0), "P") })
		add("wildcard", func(t *T) { t.bind6(mk(t), any6(0), "P") })
		add("twice", func(t *T) {
			s := mk(t)
			t.bind6(s, lo6(0), "P")
			t.Check("bind again", s.Bind(lo6(0)))
		})
		add("in use", func(t *T) {
			a := t.bind6(mk(t), lo6(0), "P")
			t.Check("bind same", mk(t).Bind(a))
		})
		add("in use via wildcard", func(t *T) {
			a := t.bind6(mk(t), lo6(0), "P")
			t.Check("bind :: same port", mk(t).Bind(any6(port(a))))
		})
		add("dual-stack then 0.0.0.0", func(t *T) {
			a := t.bind6(mk(t), any6(0), "P")
			t.Check("bind 0.0.0.0", mk4(t).Bind(socket.Inet("0.0.0.0", port(a))))
		})
		add("dual-stack then 127.0.0.1", func(t *T) {
			a := t.bind6(mk(t), any6(0), "P")
			t.Check("bind 127.0.0.1", mk4(t).Bind(lo4(port(a))))
		})
		add("v6only then 0.0.0.0", func(t *T) {
			s := mk(t)
			v6only(t, s, 1)
			a := t.bind6(s, any6(0), "P")
			t.Check("bind 0.0.0.0", mk4(t).Bind(socket.Inet("0.0.0.0", port(a))))
		})
		add("0.0.0.0 then dual-stack", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 0.0.0.0", s4.Bind(socket.Inet("0.0.0.0", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			t.Check("bind ::", mk(t).Bind(any6(port(a))))
		})
		add("0.0.0.0 then v6only", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 0.0.0.0", s4.Bind(socket.Inet("0.0.0.0", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			s := mk(t)
			v6only(t, s, 1)
			t.Check("bind ::", s.Bind(any6(port(a))))
		})
		add("::1 beside 127.0.0.1", func(t *T) {
			a := t.bind6(mk(t), lo6(0), "P")
			t.Check("bind 127.0.0.1", mk4(t).Bind(lo4(port(a))))
		})
		add("mapped then 127.0.0.1", func(t *T) {
			a := t.bind6(mk(t), mapped4(0), "P")
			t.Check("bind 127.0.0.1", mk4(t).Bind(lo4(port(a))))
		})
		add("mapped on v6only", func(t *T) {
			s := mk(t)
			v6only(t, s, 1)
			t.Check("bind mapped", s.Bind(mapped4(0)))
		})
		add("AF_INET address", func(t *T) { t.Check("bind", mk(t).Bind(lo4(0))) })
		add("AF_INET6 address on AF_INET", func(t *T) { t.Check("bind", mk4(t).Bind(lo6(0))) })
		add("not local", func(t *T) {
			t.Check("bind", mk(t).Bind(socket.Inet6("2001:db8::77", 0)))
		})
		add("link-local without scope", func(t *T) {
			t.Check("bind", mk(t).Bind(socket.Inet6("fe80::1", 0)))
		})
		add("unknown scope id", func(t *T) {
			t.Check("bind", mk(t).Bind(socket.Inet6("fe80::1%9999", 0)))
		})
		add("unspecified name", func(t *T) {
			n, err := mk(t).GetSockName()
			t.Check("getsockname", err)
			t.Logf("name %s family %d", t.Addr(n), n.Family())
		})
		add("V6ONLY after bind", func(t *T) {
			s := mk(t)
			t.bind6(s, lo6(0), "P")
			t.Check("V6ONLY=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1))
			t.GetInt("V6ONLY", s, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
		})
		add("reuseaddr both", func(t *T) {
			s1, s2 := mk(t), mk(t)
			t.Check("reuseaddr 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			t.Check("reuseaddr 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			a := t.bind6(s1, lo6(0), "P")
			t.Check("bind same", s2.Bind(a))
		})
		add("reuseport both", func(t *T) {
			s1, s2 := mk(t), mk(t)
			t.Check("reuseport 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
			t.Check("reuseport 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
			a := t.bind6(s1, lo6(0), "P")
			t.Check("bind same", s2.Bind(a))
		})
	}
	return cs
}

// listen6 is a TCP listener on a (labelled L).
func (t *T) listen6(a socket.Sockaddr, only int) (sockapi.Sock, *socket.SockaddrInet) {
	l := t.Socket(AF_INET6, STREAM, 0)
	if only >= 0 {
		v6only(t, l, only)
	}
	n := t.bind6(l, a, "L")
	t.Must("listen", l.Listen(8))
	l.SetTimeout(5 * time.Second)
	return l, n
}

func (t *T) accept6(l sockapi.Sock) sockapi.Sock {
	s, from, err := l.Accept()
	t.Must("accept", err)
	t.Track(s)
	t.Label(from, "C")
	t.Logf("accepted from %s family %d", t.Addr(from), from.Family())
	n := t.Name(s)
	t.Logf("accepted name %s", t.Addr(n))
	return s
}

func (t *T) names(s sockapi.Sock) {
	n, err := s.GetSockName()
	if t.Check("getsockname", err) == nil {
		t.Logf("name %s family %d", t.Addr(n), n.Family())
	}
	p, err := s.GetPeerName()
	if t.Check("getpeername", err) == nil {
		t.Logf("peer %s family %d", t.Addr(p), p.Family())
	}
}

func connect6Cases() []Case {
	p := "v6/connect/tcp/"
	var cs []Case
	add := func(name string, f func(t *T)) { cs = append(cs, Case{Name: p + name, Run: f}) }
	cli := func(t *T, fam int) sockapi.Sock {
		s := t.Socket(fam, STREAM, 0)
		s.SetTimeout(5 * time.Second)
		return s
	}
	add("to ::1", func(t *T) {
		l, a := t.listen6(lo6(0), -1)
		c := cli(t, AF_INET6)
		t.Must("connect", c.Connect(a))
		t.names(c)
		t.accept6(l)
	})
	add("refused", func(t *T) {
		a := t.bind6(t.Socket(AF_INET6, STREAM, 0), lo6(0), "P")
		t.Check("connect", cli(t, AF_INET6).Connect(a))
	})
	add("v4 client to dual-stack listener", func(t *T) {
		l, a := t.listen6(any6(0), -1)
		c := cli(t, AF_INET)
		t.Must("connect", c.Connect(lo4(port(a))))
		t.accept6(l)
	})
	add("v4 client to v6only listener", func(t *T) {
		_, a := t.listen6(any6(0), 1)
		t.Check("connect", cli(t, AF_INET).Connect(lo4(port(a))))
	})
	add("mapped client to dual-stack listener", func(t *T) {
		l, a := t.listen6(any6(0), -1)
		c := cli(t, AF_INET6)
		t.Must("connect", c.Connect(mapped4(port(a))))
		t.names(c)
		t.accept6(l)
	})
	add("mapped client to AF_INET listener", func(t *T) {
		l4 := t.Socket(AF_INET, STREAM, 0)
		t.Must("bind", l4.Bind(lo4(0)))
		a := t.Name(l4)
		t.Label(a, "L")
		t.Must("listen", l4.Listen(4))
		c := cli(t, AF_INET6)
		t.Must("connect", c.Connect(mapped4(port(a))))
		t.names(c)
	})
	add("v6 client to AF_INET listener", func(t *T) {
		l4 := t.Socket(AF_INET, STREAM, 0)
		t.Must("bind", l4.Bind(socket.Inet("0.0.0.0", 0)))
		a := t.Name(l4)
		t.Label(a, "L")
		t.Must("listen", l4.Listen(4))
		t.Check("connect", cli(t, AF_INET6).Connect(lo6(port(a))))
	})
	add("v6only to mapped", func(t *T) {
		_, a := t.listen6(any6(0), -1)
		c := cli(t, AF_INET6)
		v6only(t, c, 1)
		t.Check("connect", c.Connect(mapped4(port(a))))
	})
	add("AF_INET address", func(t *T) {
		_, a := t.listen6(any6(0), -1)
		t.Check("connect", cli(t, AF_INET6).Connect(lo4(port(a))))
	})
	add("to ::", func(t *T) {
		l, a := t.listen6(lo6(0), -1)
		c := cli(t, AF_INET6)
		t.Must("connect", c.Connect(any6(port(a))))
		t.names(c)
		t.accept6(l)
	})
	add("link-local without scope", func(t *T) {
		t.Check("connect", cli(t, AF_INET6).Connect(socket.Inet6("fe80::1", 9)))
	})
	add("unconnected names", func(t *T) { t.names(cli(t, AF_INET6)) })
	add("data both ways", func(t *T) {
		l, a := t.listen6(lo6(0), -1)
		c := cli(t, AF_INET6)
		t.Must("connect", c.Connect(a))
		s := t.accept6(l)
		t.Send("send", c, []byte("hello over six"), 0, nil)
		t.Recv("recv", s, 64, 0)
		t.Send("reply", s, []byte("back"), 0, nil)
		t.Recv("recv reply", c, 64, 0)
		t.Check("shutdown", c.Shutdown(socket.SHUT_WR))
		t.Recv("eof", s, 64, 0)
	})
	add("dual-stack data", func(t *T) {
		l, a := t.listen6(any6(0), -1)
		c := cli(t, AF_INET)
		t.Must("connect", c.Connect(lo4(port(a))))
		s := t.accept6(l)
		t.Send("send", c, []byte("v4 to v6"), 0, nil)
		t.Recv("recv", s, 64, 0)
	})
	return cs
}

func udp6Cases() []Case {
	p := "v6/udp/"
	var cs []Case
	add := func(name string, f func(t *T)) { cs = append(cs, Case{Name: p + name, Run: f}) }
	srv := func(t *T, a socket.Sockaddr, only int) (sockapi.Sock, *socket.SockaddrInet) {
		s := t.Socket(AF_INET6, DGRAM, 0)
		if only >= 0 {
			v6only(t, s, only)
		}
		n := t.bind6(s, a, "S")
		s.SetTimeout(5 * time.Second)
		return s, n
	}
	add("sendto ::1", func(t *T) {
		s, a := srv(t, lo6(0), -1)
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Send("sendto", c, []byte("six"), 0, a)
		t.Label(t.Name(c), "C")
		t.RecvFrom("recvfrom", s, 64, 0)
	})
	add("v4 client to dual-stack", func(t *T) {
		s, a := srv(t, any6(0), -1)
		c := t.Socket(AF_INET, DGRAM, 0)
		t.Send("sendto", c, []byte("four"), 0, lo4(port(a)))
		t.Label(t.Name(c), "C")
		t.RecvFrom("recvfrom", s, 64, 0)
	})
	add("reply to mapped", func(t *T) {
		s, a := srv(t, any6(0), -1)
		c := t.Socket(AF_INET, DGRAM, 0)
		c.SetTimeout(5 * time.Second)
		t.Must("bind", c.Bind(lo4(0)))
		t.Label(t.Name(c), "C")
		t.Send("sendto", c, []byte("ping"), 0, lo4(port(a)))
		t.Send("reply", s, []byte("pong"), 0, mapped4(port(t.Name(c))))
		t.RecvFrom("recvfrom", c, 64, 0)
	})
	add("AF_INET destination", func(t *T) {
		s4 := t.Socket(AF_INET, DGRAM, 0)
		t.Must("bind", s4.Bind(lo4(0)))
		a := t.Name(s4)
		t.Label(a, "S")
		s4.SetTimeout(5 * time.Second)
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Send("sendto", c, []byte("x"), 0, a)
		t.Label(t.Name(c), "C")
		t.RecvFrom("recvfrom", s4, 64, 0)
	})
	add("v6only to mapped", func(t *T) {
		c := t.Socket(AF_INET6, DGRAM, 0)
		v6only(t, c, 1)
		t.Send("sendto", c, []byte("x"), 0, mapped4(9))
	})
	add("v6only receives no IPv4", func(t *T) {
		s, a := srv(t, any6(0), 1)
		s.SetTimeout(short)
		c := t.Socket(AF_INET, DGRAM, 0)
		t.Send("sendto", c, []byte("x"), 0, lo4(port(a)))
		t.RecvFrom("recvfrom", s, 64, 0)
	})
	add("connect and names", func(t *T) {
		_, a := srv(t, lo6(0), -1)
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Must("connect", c.Connect(a))
		t.names(c)
	})
	add("connect mapped and names", func(t *T) {
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Must("connect", c.Connect(mapped4(9)))
		t.names(c)
	})
	add("port unreachable", func(t *T) {
		a := t.bind6(t.Socket(AF_INET6, DGRAM, 0), lo6(0), "P")
		c := t.Socket(AF_INET6, DGRAM, 0)
		c.SetTimeout(time.Second)
		t.Must("connect", c.Connect(a))
		t.Send("send", c, []byte("x"), 0, nil)
		t.Recv("recv", c, 64, 0)
	})
	add("disconnect", func(t *T) {
		_, a := srv(t, lo6(0), -1)
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Must("connect", c.Connect(a))
		t.Check("connect AF_UNSPEC", c.Connect(socket.Unspec{}))
		t.names(c)
	})
	add("sendto without address", func(t *T) {
		t.Send("send", t.Socket(AF_INET6, DGRAM, 0), []byte("x"), 0, nil)
	})
	add("sendto port 0", func(t *T) {
		t.Send("sendto", t.Socket(AF_INET6, DGRAM, 0), []byte("x"), 0, lo6(0))
	})
	add("truncated", func(t *T) {
		s, a := srv(t, lo6(0), -1)
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Send("sendto", c, []byte("0123456789"), 0, a)
		t.Label(t.Name(c), "C")
		t.RecvFrom("recvfrom", s, 4, 0)
	})
	add("join unicast", func(t *T) {
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Check("join", c.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.IPv6Mreq{Multiaddr: netip.IPv6Loopback()}))
	})
	add("leave not joined", func(t *T) {
		c := t.Socket(AF_INET6, DGRAM, 0)
		t.Check("leave", c.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, socket.IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::1:2")}))
	})
	return cs
}

func option6Cases() []Case {
	type o6 struct {
		name   string
		level  int
		opt    int
		tcp    bool
		udp    bool
		values []int
	}
	V6 := socket.IPPROTO_IPV6
	var cs []Case
	for _, o := range []o6{
		{"IPV6_V6ONLY", V6, socket.IPV6_V6ONLY, true, true, []int{1, 0, 5}},
		{"IPV6_UNICAST_HOPS", V6, socket.IPV6_UNICAST_HOPS, false, true, []int{5, 255, -1, 256, -2}},
		{"IPV6_MULTICAST_HOPS", V6, socket.IPV6_MULTICAST_HOPS, false, true, []int{7, 255, -1, 256}},
		{"IPV6_MULTICAST_LOOP", V6, socket.IPV6_MULTICAST_LOOP, false, true, []int{0, 1, 2}},
		{"IPV6_MULTICAST_IF", V6, socket.IPV6_MULTICAST_IF, false, true, []int{0}},
		{"IPV6_TCLASS", V6, socket.IPV6_TCLASS, true, true, []int{0xb8, 0, -1, 256}},
		{"IPV6_CHECKSUM", V6, socket.IPV6_CHECKSUM, false, true, []int{2}},
		{"unknown IPv6 999", V6, 999, true, true, []int{1}},
	} {
		o := o
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			if ty == STREAM && !o.tcp || ty == DGRAM && !o.udp {
				continue
			}
			base := "v6/opt/" + typeNames[ty] + "/" + o.name
			cs = append(cs, Case{Name: base + " default", Run: func(t *T) {
				t.GetOpt("get", t.Socket(AF_INET6, ty, 0), o.level, o.opt)
			}})
			for _, v := range o.values {
				v := v
				cs = append(cs, Case{Name: fmt.Sprintf("%s=%d", base, v), Run: func(t *T) {
					s := t.Socket(AF_INET6, ty, 0)
					t.Check("set", s.SetSockOptInt(o.level, o.opt, v))
					t.GetOpt("get", s, o.level, o.opt)
				}})
			}
		}
	}
	for _, ty := range []int{STREAM, DGRAM} {
		ty := ty
		cs = append(cs, Case{Name: "v6/opt/" + typeNames[ty] + "/IPV6_V6ONLY on AF_INET", Run: func(t *T) {
			s := t.Socket(AF_INET, ty, 0)
			t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
			t.Check("set", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1))
		}})
	}
	return cs
}

func raw6Cases() []Case {
	var cs []Case
	add := func(name string, f func(t *T)) {
		cs = append(cs, Case{Name: "v6/raw/" + name, Root: true, Run: f})
	}
	icmp := func(t *T) sockapi.Sock { return t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6) }
	add("icmpv6 checksum offset", func(t *T) {
		s := icmp(t)
		t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
		t.Check("set -1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, -1))
		t.Check("set 4", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4))
	})
	add("proto 253 checksum offset", func(t *T) {
		s := t.Socket(AF_INET6, RAW, 253)
		t.GetOpt("default", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
		t.Check("set 4", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4))
		t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
		t.Check("set 1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 1))
		t.Check("set -1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, -1))
		t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
	})
	add("icmp6 filter", func(t *T) {
		s := icmp(t)
		t.GetOpt("default", s, socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER)
		var f socket.ICMP6Filter
		f[129>>5] |= 1 << (129 & 31)
		t.Check("set", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
		t.GetOpt("get", s, socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER)
	})
	add("icmp6 filter on udp", func(t *T) {
		s := t.Socket(AF_INET6, DGRAM, 0)
		var f socket.ICMP6Filter
		t.Check("set", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
	})
	add("echo to ::1", func(t *T) {
		s := icmp(t)
		s.SetTimeout(5 * time.Second)
		var f socket.ICMP6Filter
		for i := range f {
			f[i] = ^uint32(0)
		}
		f[129>>5] &^= 1 << (129 & 31) // only echo replies
		t.Check("filter", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
		t.Send("sendto", s, []byte{128, 0, 0, 0, 0x12, 0x34, 0, 1, 'h', 'i'}, 0, lo6(0))
		buf := make([]byte, 64)
		n, _, from, err := s.RecvMsg(buf, 0)
		if t.Check("recv", err) == nil {
			t.Logf("type %d code %d id %x len %d from %s", buf[0], buf[1], buf[4:6], n, t.Addr(from))
		}
	})
	return cs
}
