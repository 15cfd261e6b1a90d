package conformance

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// AF_INET6 cases: the socket calls on ::1, dual-stack sockets and
// v4-mapped peers, IPV6_V6ONLY in bind conflicts, scope ids, and the
// IPPROTO_IPV6 options with the errno of each misuse. Every address is
// loopback (::1, 127.0.0.1, their v4-mapped and unspecified forms) or
// one that makes the call fail before anything is sent (2001:db8::7 of
// the documentation prefix in bind, link-local fe80::1 that lo does not
// have). Nothing here may send to a non-loopback address: the host may
// have IPv6 routes (a default route sends 2001:db8::7 out, fe80::/64 on
// eth0 takes an unscoped fe80::1), so there is no sendto or TCP connect
// to either and no multicast join without an interface (its MLD report
// would leave by the route's device).

// in6 is an AF_INET6 address; IPv4 literals become v4-mapped.
func in6(addr string, port int) *socket.SockaddrInet { return socket.Inet6(addr, port) }

// Socket6 is an AF_INET6 socket, ending the case on failure.
func (t *T) Socket6(ty int) sockapi.Sock { return t.Socket(AF_INET6, ty, 0) }

// Bind6 binds s to a, logs the result and, on success, the name (with
// label for its port); it reports success.
func (t *T) Bind6(step string, s sockapi.Sock, a socket.Sockaddr, label string) (*socket.SockaddrInet, bool) {
	if t.Check(step, s.Bind(a)) != nil {
		return nil, false
	}
	n := t.Name(s)
	t.Label(n, label)
	t.Logf("name %s", t.Addr(n))
	return n, true
}

// V6Only sets IPV6_V6ONLY and logs it.
func (t *T) V6Only(s sockapi.Sock, on int) {
	t.Check(fmt.Sprintf("IPV6_V6ONLY=%d", on), s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, on))
}

func inet6Cases() []Case {
	var cs []Case
	cs = append(cs, inet6SocketCases()...)
	cs = append(cs, inet6BindCases()...)
	cs = append(cs, inet6ConnectCases()...)
	cs = append(cs, inet6DataCases()...)
	cs = append(cs, inet6OptionCases()...)
	cs = append(cs, inet6RawCases()...)
	cs = append(cs, inet6TTLCases()...) // inet6_ttl_cases.go
	return cs
}

func inet6SocketCases() []Case {
	type sc struct {
		name   string
		ty, pr int
	}
	list := []sc{
		{"dgram", DGRAM, 0},
		{"udp explicit", DGRAM, socket.IPPROTO_UDP},
		{"tcp explicit", STREAM, socket.IPPROTO_TCP},
		{"stream with udp proto", STREAM, socket.IPPROTO_UDP},
		{"dgram with tcp proto", DGRAM, socket.IPPROTO_TCP},
		{"seqpacket", socket.SOCK_SEQPACKET, 0},
		{"bad type 99", 99, 0},
	}
	var cs []Case
	for _, c := range list {
		c := c
		cs = append(cs, Case{Name: "inet6/socket/" + c.name, Run: func(t *T) {
			s, err := t.TrySocket(AF_INET6, c.ty, c.pr)
			if err != nil {
				return
			}
			t.Logf("family %d type %d proto %d", s.Family(), s.Type(), s.Proto())
			t.GetInt("SO_DOMAIN", s, socket.SOL_SOCKET, socket.SO_DOMAIN)
			t.GetInt("SO_PROTOCOL", s, socket.SOL_SOCKET, socket.SO_PROTOCOL)
			t.GetInt("IPV6_V6ONLY", s, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
			n, err := s.GetSockName()
			if t.Check("getsockname", err) == nil {
				t.Logf("name %s", t.Addr(n))
			}
			t.Logf("peer %s", peer(t, s))
		}})
	}
	return cs
}

func inet6BindCases() []Case {
	var cs []Case
	for _, ty := range []int{STREAM, DGRAM} {
		ty := ty
		p := "inet6/bind/" + typeNames[ty] + "/"
		mk := func(t *T) sockapi.Sock { return t.Socket6(ty) }
		mk4 := func(t *T) sockapi.Sock { return t.Socket(AF_INET, ty, 0) }
		add := func(name string, run func(t *T)) { cs = append(cs, Case{Name: p + name, Run: run}) }
		add("::1", func(t *T) { t.Bind6("bind", mk(t), in6("::1", 0), "P") })
		add("::", func(t *T) { t.Bind6("bind", mk(t), in6("::", 0), "P") })
		add("twice", func(t *T) {
			s := mk(t)
			t.Bind6("bind", s, in6("::1", 0), "P")
			t.Check("bind again", s.Bind(in6("::1", 0)))
		})
		add("address in use", func(t *T) {
			a, _ := t.Bind6("bind", mk(t), in6("::1", 0), "P")
			t.Check("bind same", mk(t).Bind(a))
		})
		add("in use via wildcard", func(t *T) {
			a, _ := t.Bind6("bind", mk(t), in6("::1", 0), "P")
			t.Check("bind :: same port", mk(t).Bind(in6("::", port(a))))
		})
		add("dual-stack :: then 0.0.0.0", func(t *T) {
			a, _ := t.Bind6("bind ::", mk(t), in6("::", 0), "P")
			t.Check("bind 0.0.0.0 same port", mk4(t).Bind(socket.Inet("0.0.0.0", port(a))))
		})
		add("dual-stack :: then 127.0.0.1", func(t *T) {
			a, _ := t.Bind6("bind ::", mk(t), in6("::", 0), "P")
			t.Check("bind 127.0.0.1 same port", mk4(t).Bind(socket.Inet("127.0.0.1", port(a))))
		})
		add("v6only :: then 0.0.0.0", func(t *T) {
			s := mk(t)
			t.V6Only(s, 1)
			a, _ := t.Bind6("bind ::", s, in6("::", 0), "P")
			t.Check("bind 0.0.0.0 same port", mk4(t).Bind(socket.Inet("0.0.0.0", port(a))))
		})
		add("0.0.0.0 then dual-stack ::", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 0.0.0.0", s4.Bind(socket.Inet("0.0.0.0", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			t.Check("bind :: same port", mk(t).Bind(in6("::", port(a))))
		})
		add("0.0.0.0 then v6only ::", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 0.0.0.0", s4.Bind(socket.Inet("0.0.0.0", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			s := mk(t)
			t.V6Only(s, 1)
			t.Bind6("bind :: same port", s, in6("::", port(a)), "P")
		})
		add("127.0.0.1 then dual-stack ::", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 127.0.0.1", s4.Bind(socket.Inet("127.0.0.1", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			t.Check("bind :: same port", mk(t).Bind(in6("::", port(a))))
		})
		add("127.0.0.1 then ::1", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 127.0.0.1", s4.Bind(socket.Inet("127.0.0.1", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			t.Bind6("bind ::1 same port", mk(t), in6("::1", port(a)), "P")
		})
		add("::1 then 127.0.0.1", func(t *T) {
			a, _ := t.Bind6("bind ::1", mk(t), in6("::1", 0), "P")
			t.Check("bind 127.0.0.1 same port", mk4(t).Bind(socket.Inet("127.0.0.1", port(a))))
		})
		add("v4-mapped", func(t *T) { t.Bind6("bind", mk(t), in6("::ffff:127.0.0.1", 0), "P") })
		add("v4-mapped with V6ONLY", func(t *T) {
			s := mk(t)
			t.V6Only(s, 1)
			t.Check("bind", s.Bind(in6("::ffff:127.0.0.1", 0)))
		})
		add("v4-mapped any", func(t *T) { t.Bind6("bind", mk(t), in6("::ffff:0.0.0.0", 0), "P") })
		add("v4-mapped non-local", func(t *T) { t.Check("bind", mk(t).Bind(in6("::ffff:198.51.100.7", 0))) })
		add("v4-mapped in use by AF_INET", func(t *T) {
			s4 := mk4(t)
			t.Must("bind 127.0.0.1", s4.Bind(socket.Inet("127.0.0.1", 0)))
			a := t.Name(s4)
			t.Label(a, "P")
			t.Check("bind ::ffff:127.0.0.1 same port", mk(t).Bind(in6("::ffff:127.0.0.1", port(a))))
		})
		add("sockaddr_in on AF_INET6", func(t *T) { t.Check("bind", mk(t).Bind(socket.Inet("127.0.0.1", 0))) })
		add("sockaddr_in6 on AF_INET", func(t *T) { t.Check("bind", mk4(t).Bind(in6("::1", 0))) })
		add("non-local", func(t *T) { t.Check("bind 2001:db8::7", mk(t).Bind(in6("2001:db8::7", 0))) })
		add("link-local without scope", func(t *T) { t.Check("bind fe80::1", mk(t).Bind(in6("fe80::1", 0))) })
		add("link-local on lo", func(t *T) { t.Check("bind fe80::1%lo", mk(t).Bind(in6("fe80::1%lo", 0))) })
		add("link-local unknown scope id", func(t *T) { t.Check("bind fe80::1%999", mk(t).Bind(in6("fe80::1%999", 0))) })
		add("scope id on global address", func(t *T) { t.Bind6("bind ::1%lo", mk(t), in6("::1%lo", 0), "P") })
		add("unknown scope id on global address", func(t *T) { t.Bind6("bind ::1%999", mk(t), in6("::1%999", 0), "P") })
		add("multicast", func(t *T) { t.Bind6("bind ff02::1:3%lo", mk(t), in6("ff02::1:3%lo", 0), "P") })
		add("V6ONLY after bind", func(t *T) {
			s := mk(t)
			t.Bind6("bind", s, in6("::1", 0), "P")
			t.V6Only(s, 1)
			t.GetInt("IPV6_V6ONLY", s, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
		})
		add("reuseaddr both", func(t *T) {
			s1, s2 := mk(t), mk(t)
			t.Check("reuseaddr 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			t.Check("reuseaddr 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			a, _ := t.Bind6("bind", s1, in6("::1", 0), "P")
			t.Check("bind same", s2.Bind(a))
		})
		add("reuseport both", func(t *T) {
			s1, s2 := mk(t), mk(t)
			t.Check("reuseport 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
			t.Check("reuseport 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
			a, _ := t.Bind6("bind", s1, in6("::1", 0), "P")
			t.Check("bind same", s2.Bind(a))
		})
		add("port freed by close", func(t *T) {
			s := mk(t)
			a, _ := t.Bind6("bind", s, in6("::1", 0), "P")
			t.Check("close", s.Close())
			t.Check("bind same", mk(t).Bind(a))
		})
		add("AF_UNSPEC", func(t *T) { t.Check("bind", mk(t).Bind(socket.Unspec{})) })
	}
	return cs
}

func inet6ConnectCases() []Case {
	listen6 := func(t *T, addr string, only int) (sockapi.Sock, *socket.SockaddrInet) {
		l := t.Socket6(STREAM)
		if only >= 0 {
			t.V6Only(l, only)
		}
		a, ok := t.Bind6("bind", l, in6(addr, 0), "L")
		if !ok {
			t.Stop()
		}
		t.Must("listen", l.Listen(8))
		return l, a
	}
	names := func(t *T, s sockapi.Sock) {
		t.Logf("name %s", t.Addr(t.Name(s)))
		t.Logf("peer %s", peer(t, s))
	}
	return []Case{
		{"inet6/connect/tcp to ::1", false, func(t *T) {
			_, a := listen6(t, "::1", -1)
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
			names(t, c)
		}},
		{"inet6/connect/tcp to :: means loopback", false, func(t *T) {
			_, a := listen6(t, "::", -1)
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Check("connect [::]:L", c.Connect(in6("::", port(a))))
			names(t, c)
		}},
		{"inet6/connect/tcp refused", false, func(t *T) {
			// Port of a bound, never listening socket: nobody answers there.
			b := t.Socket6(STREAM)
			a, _ := t.Bind6("bind", b, in6("::1", 0), "P")
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
		}},
		{"inet6/connect/tcp v4-mapped to AF_INET listener", false, func(t *T) {
			l, a := t.Listener(8)
			_ = l
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Check("connect ::ffff:127.0.0.1:L", c.Connect(in6("::ffff:127.0.0.1", port(a))))
			names(t, c)
		}},
		{"inet6/connect/tcp v4-mapped with V6ONLY", false, func(t *T) {
			_, a := t.Listener(8)
			c := t.Socket6(STREAM)
			t.V6Only(c, 1)
			c.SetTimeout(5 * time.Second)
			t.Check("connect ::ffff:127.0.0.1:L", c.Connect(in6("::ffff:127.0.0.1", port(a))))
		}},
		{"inet6/connect/tcp sockaddr_in", false, func(t *T) {
			_, a := t.Listener(8)
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Check("connect 127.0.0.1:L", c.Connect(a))
		}},
		{"inet6/connect/tcp link-local without scope", false, func(t *T) {
			c := t.Socket6(STREAM)
			t.Check("connect fe80::1", c.Connect(in6("fe80::1", 9)))
		}},
		{"inet6/connect/tcp bound ::1 to v4-mapped", false, func(t *T) {
			_, a := t.Listener(8)
			c := t.Socket6(STREAM)
			t.Bind6("bind", c, in6("::1", 0), "P")
			c.SetTimeout(5 * time.Second)
			t.Check("connect ::ffff:127.0.0.1:L", c.Connect(in6("::ffff:127.0.0.1", port(a))))
		}},
		{"inet6/connect/tcp bound v4-mapped to ::1", false, func(t *T) {
			_, a := listen6(t, "::1", -1)
			c := t.Socket6(STREAM)
			t.Bind6("bind", c, in6("::ffff:127.0.0.1", 0), "P")
			c.SetTimeout(5 * time.Second)
			t.Check("connect [::1]:L", c.Connect(a))
		}},
		{"inet6/connect/udp to ::1", false, func(t *T) {
			b := t.Socket6(DGRAM)
			a, _ := t.Bind6("bind", b, in6("::1", 0), "B")
			c := t.Socket6(DGRAM)
			t.Check("connect", c.Connect(a))
			names(t, c)
		}},
		{"inet6/connect/udp to :: means loopback", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Check("connect [::]:9", c.Connect(in6("::", 9)))
			names(t, c)
		}},
		{"inet6/connect/udp sockaddr_in", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Check("connect 127.0.0.1:9", c.Connect(socket.Inet("127.0.0.1", 9)))
			names(t, c)
		}},
		{"inet6/connect/udp sockaddr_in with V6ONLY", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.V6Only(c, 1)
			t.Check("connect 127.0.0.1:9", c.Connect(socket.Inet("127.0.0.1", 9)))
		}},
		{"inet6/connect/udp v4-mapped", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Check("connect ::ffff:127.0.0.1:9", c.Connect(in6("::ffff:127.0.0.1", 9)))
			names(t, c)
		}},
		{"inet6/connect/udp v4-mapped with V6ONLY", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.V6Only(c, 1)
			t.Check("connect ::ffff:127.0.0.1:9", c.Connect(in6("::ffff:127.0.0.1", 9)))
		}},
		{"inet6/connect/udp bound ::1 to v4-mapped", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Bind6("bind", c, in6("::1", 0), "P")
			t.Check("connect ::ffff:127.0.0.1:9", c.Connect(in6("::ffff:127.0.0.1", 9)))
		}},
		{"inet6/connect/udp link-local without scope", false, func(t *T) {
			t.Check("connect fe80::1", t.Socket6(DGRAM).Connect(in6("fe80::1", 9)))
		}},
		{"inet6/connect/udp AF_UNSPEC disconnects", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Check("connect", c.Connect(in6("::1", 9)))
			t.Check("connect unspec", c.Connect(socket.Unspec{}))
			names(t, c)
		}},
		{"inet6/connect/udp reconnect ::1 to v4-mapped", false, func(t *T) {
			c := t.Socket6(DGRAM)
			t.Check("connect [::1]:9", c.Connect(in6("::1", 9)))
			t.Check("connect ::ffff:127.0.0.1:9", c.Connect(in6("::ffff:127.0.0.1", 9)))
			names(t, c)
		}},
	}
}

func inet6DataCases() []Case {
	return []Case{
		{"inet6/data/tcp echo on ::1", false, func(t *T) {
			l := t.Socket6(STREAM)
			a, _ := t.Bind6("bind", l, in6("::1", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			l.SetTimeout(5 * time.Second)
			s, from, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			t.Label(from, "C")
			t.Logf("accepted from %s", t.Addr(from))
			s.SetTimeout(5 * time.Second)
			t.Check("send", c.SendAll([]byte("hello six"), 0))
			t.Recv("server recv", s, 64, socket.MSG_WAITALL)
			t.Logf("server name %s peer %s", t.Addr(t.Name(s)), peer(t, s))
		}},
		{"inet6/data/tcp dual-stack listener, AF_INET client", false, func(t *T) {
			l := t.Socket6(STREAM)
			a, _ := t.Bind6("bind", l, in6("::", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(socket.Inet("127.0.0.1", port(a))))
			l.SetTimeout(5 * time.Second)
			s, from, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			t.Label(from, "C")
			t.Logf("accepted from %s", t.Addr(from))
			t.Logf("server name %s peer %s", t.Addr(t.Name(s)), peer(t, s))
			s.SetTimeout(5 * time.Second)
			t.Check("send", s.SendAll([]byte("mapped"), 0))
			t.Recv("client recv", c, 6, socket.MSG_WAITALL)
		}},
		{"inet6/data/tcp v6only listener refuses AF_INET client", false, func(t *T) {
			l := t.Socket6(STREAM)
			t.V6Only(l, 1)
			a, _ := t.Bind6("bind", l, in6("::", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Check("connect 127.0.0.1:L", c.Connect(socket.Inet("127.0.0.1", port(a))))
		}},
		{"inet6/data/tcp AF_INET6 client to AF_INET listener", false, func(t *T) {
			l, a := t.Listener(1)
			c := t.Socket6(STREAM)
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(in6("::ffff:127.0.0.1", port(a))))
			l.SetTimeout(5 * time.Second)
			s, from, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			t.Label(from, "C")
			t.Logf("accepted from %s", t.Addr(from))
			t.Logf("client name %s peer %s", t.Addr(t.Name(c)), peer(t, c))
		}},
		{"inet6/data/udp on ::1 with names", false, func(t *T) {
			a, b := t.Socket6(DGRAM), t.Socket6(DGRAM)
			aa, _ := t.Bind6("bind a", a, in6("::1", 0), "A")
			ba, _ := t.Bind6("bind b", b, in6("::1", 0), "B")
			_ = aa
			b.SetTimeout(5 * time.Second)
			t.Send("sendto", a, []byte("datagram"), 0, ba)
			t.RecvFrom("recvfrom", b, 64, 0)
		}},
		{"inet6/data/udp truncated and peeked", false, func(t *T) {
			a, b := t.Socket6(DGRAM), t.Socket6(DGRAM)
			t.Bind6("bind a", a, in6("::1", 0), "A")
			ba, _ := t.Bind6("bind b", b, in6("::1", 0), "B")
			b.SetTimeout(5 * time.Second)
			t.Send("sendto", a, []byte("0123456789"), 0, ba)
			t.RecvFrom("peek", b, 4, socket.MSG_PEEK)
			t.RecvFrom("recv", b, 4, 0)
		}},
		{"inet6/data/udp dual-stack receiver, AF_INET sender", false, func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind ::", r, in6("::", 0), "R")
			s := t.UDP()
			t.BindLocal(s, "S")
			r.SetTimeout(5 * time.Second)
			s.SetTimeout(5 * time.Second)
			t.Send("sendto 127.0.0.1:R", s, []byte("four"), 0, socket.Inet("127.0.0.1", port(ra)))
			buf := make([]byte, 16)
			n, from, err := r.RecvFrom(buf, 0)
			if t.Check("recvfrom", err) != nil {
				return
			}
			t.Logf("got %q from %s", buf[:n], t.Addr(from))
			t.Send("reply to the mapped sender", r, []byte("back"), 0, from)
			t.RecvFrom("AF_INET recvfrom", s, 16, 0)
		}},
		{"inet6/data/udp v6only receiver, AF_INET sender", false, func(t *T) {
			r := t.Socket6(DGRAM)
			t.V6Only(r, 1)
			ra, _ := t.Bind6("bind ::", r, in6("::", 0), "R")
			s := t.UDP()
			t.Send("sendto 127.0.0.1:R", s, []byte("four"), 0, socket.Inet("127.0.0.1", port(ra)))
			t.Quiesce()
			t.Recv("recv", r, 16, socket.MSG_DONTWAIT)
		}},
		{"inet6/data/udp sendto sockaddr_in", false, func(t *T) {
			r := t.UDP()
			ra := t.BindLocal(r, "R")
			r.SetTimeout(5 * time.Second)
			s := t.Socket6(DGRAM)
			t.Send("sendto 127.0.0.1:R", s, []byte("plain4"), 0, ra)
			t.RecvFrom("recvfrom", r, 16, 0)
			t.Logf("sender name %s", t.Addr(t.Name(s)))
		}},
		{"inet6/data/udp sendto v4-mapped", false, func(t *T) {
			r := t.UDP()
			ra := t.BindLocal(r, "R")
			r.SetTimeout(5 * time.Second)
			s := t.Socket6(DGRAM)
			t.Send("sendto ::ffff:127.0.0.1:R", s, []byte("mapped"), 0, in6("::ffff:127.0.0.1", port(ra)))
			t.RecvFrom("recvfrom", r, 16, 0)
			t.Logf("sender name %s", t.Addr(t.Name(s)))
		}},
		{"inet6/data/udp sendto v4-mapped with V6ONLY", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.V6Only(s, 1)
			t.Send("sendto ::ffff:127.0.0.1:9", s, []byte("x"), 0, in6("::ffff:127.0.0.1", 9))
			t.Send("sendto 127.0.0.1:9", s, []byte("x"), 0, socket.Inet("127.0.0.1", 9))
		}},
		{"inet6/data/udp sendto from bound ::1 to v4-mapped", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.Bind6("bind", s, in6("::1", 0), "P")
			t.Send("sendto ::ffff:127.0.0.1:9", s, []byte("x"), 0, in6("::ffff:127.0.0.1", 9))
		}},
		{"inet6/data/udp autobind on sendto", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.Send("sendto [::1]:9", s, []byte("x"), 0, in6("::1", 9))
			t.Logf("name %s", t.Addr(t.Name(s)))
		}},
		{"inet6/data/udp largest datagram", false, func(t *T) {
			r := t.Socket6(DGRAM)
			t.Check("SO_RCVBUF", r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1<<20))
			ra, _ := t.Bind6("bind", r, in6("::1", 0), "R")
			r.SetTimeout(5 * time.Second)
			s := t.Socket6(DGRAM)
			t.Send("sendto 65527", s, make([]byte, 65527), 0, ra)
			t.Send("sendto 65528", s, make([]byte, 65528), 0, ra)
			t.RecvFrom("recvfrom", r, 0, socket.MSG_TRUNC)
		}},
		{"inet6/data/tcp listen autobinds ::", false, func(t *T) {
			l := t.Socket6(STREAM)
			t.Check("listen", l.Listen(1))
			t.Logf("name %s", t.Addr(t.Name(l)))
		}},
		{"inet6/data/unbound names", false, func(t *T) {
			for _, ty := range []int{STREAM, DGRAM} {
				s := t.Socket6(ty)
				t.Logf("%s name %s", typeNames[ty], t.Addr(t.Name(s)))
				t.Logf("%s peer %s", typeNames[ty], peer(t, s))
			}
		}},
		{"inet6/data/tcp v6only :: beside 0.0.0.0 on one port", false, func(t *T) {
			l6 := t.Socket6(STREAM)
			t.V6Only(l6, 1)
			a, _ := t.Bind6("bind ::", l6, in6("::", 0), "L")
			t.Must("listen 6", l6.Listen(1))
			l4 := t.TCP()
			t.Check("bind 0.0.0.0 same port", l4.Bind(socket.Inet("0.0.0.0", port(a))))
			t.Check("listen 4", l4.Listen(1))
			c4, c6 := t.TCP(), t.Socket6(STREAM)
			c4.SetTimeout(5 * time.Second)
			c6.SetTimeout(5 * time.Second)
			t.Check("connect 127.0.0.1:L", c4.Connect(socket.Inet("127.0.0.1", port(a))))
			t.Check("connect [::1]:L", c6.Connect(in6("::1", port(a))))
			for _, x := range []struct {
				name string
				l    sockapi.Sock
			}{{"v4 listener", l4}, {"v6 listener", l6}} {
				x.l.SetTimeout(5 * time.Second)
				s, from, err := x.l.Accept()
				if t.Check(x.name+" accept", err) == nil {
					t.Track(s)
					t.Logf("%s accepted from %s", x.name, t.Addr(from))
				}
			}
		}},
		{"inet6/bind/udp reuseaddr :: and 0.0.0.0", false, func(t *T) {
			s6, s4 := t.Socket6(DGRAM), t.UDP()
			t.Check("reuseaddr 6", s6.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			t.Check("reuseaddr 4", s4.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			a, _ := t.Bind6("bind ::", s6, in6("::", 0), "P")
			t.Check("bind 0.0.0.0 same port", s4.Bind(socket.Inet("0.0.0.0", port(a))))
		}},
		{"inet6/bind/tcp reuseaddr :: and 0.0.0.0", false, func(t *T) {
			s6, s4 := t.Socket6(STREAM), t.TCP()
			t.Check("reuseaddr 6", s6.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			t.Check("reuseaddr 4", s4.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			a, _ := t.Bind6("bind ::", s6, in6("::", 0), "P")
			t.Check("bind 0.0.0.0 same port", s4.Bind(socket.Inet("0.0.0.0", port(a))))
		}},
		{"inet6/data/tcp dual-stack peer names after AF_INET connect", false, func(t *T) {
			l := t.Socket6(STREAM)
			a, _ := t.Bind6("bind ::", l, in6("::", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(socket.Inet("127.0.0.1", port(a))))
			t.Label(t.Name(c), "C")
			l.SetTimeout(5 * time.Second)
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			t.Logf("accepted family %d", s.Family())
			t.GetInt("accepted IPV6_V6ONLY", s, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
			t.GetInt("accepted IP_TTL", s, socket.SOL_IP, socket.IP_TTL)
			t.GetInt("accepted IPV6_UNICAST_HOPS", s, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
		}},
		{"inet6/data/V6ONLY after connect and listen", false, func(t *T) {
			l := t.Socket6(STREAM)
			t.Bind6("bind", l, in6("::1", 0), "L")
			t.Must("listen", l.Listen(1))
			t.V6Only(l, 1)
			u := t.Socket6(DGRAM)
			t.Check("connect", u.Connect(in6("::1", 9)))
			t.V6Only(u, 1)
		}},
	}
}

// The IPPROTO_IPV6 options (and IP ones on an AF_INET6 socket): default,
// then each value set and read back.
func inet6OptionTable() []optDef {
	V6, IP := socket.IPPROTO_IPV6, socket.SOL_IP
	grp := netip.MustParseAddr("ff02::1:3")
	return []optDef{
		od("IPV6_V6ONLY", V6, socket.IPV6_V6ONLY, both, ints(1, 0, 2, -1)...),
		od("IPV6_UNICAST_HOPS", V6, socket.IPV6_UNICAST_HOPS, both, ints(1, 255, 0, 256, -1, -2)...),
		od("IPV6_MULTICAST_HOPS", V6, socket.IPV6_MULTICAST_HOPS, both, ints(0, 255, 256, -1, -2)...),
		od("IPV6_MULTICAST_LOOP", V6, socket.IPV6_MULTICAST_LOOP, both, ints(0, 1, 2, -1)...),
		od("IPV6_MULTICAST_IF", V6, socket.IPV6_MULTICAST_IF, both, ints(0, 999)...),
		od("IPV6_TCLASS", V6, socket.IPV6_TCLASS, both, ints(0x28, 255, 256, -1, -2)...),
		od("IPV6_RECVPKTINFO", V6, unix.IPV6_RECVPKTINFO, both, ints(1, 0)...),
		od("IPV6_CHECKSUM", V6, socket.IPV6_CHECKSUM, both, ints(2)...),
		od("IPV6_MTU", V6, unix.IPV6_MTU, udpOnly, ints(1280)...),
		od("IPV6_JOIN_GROUP", V6, socket.IPV6_JOIN_GROUP, both,
			socket.IPv6Mreq{Multiaddr: grp, Interface: 999},
			socket.IPv6Mreq{Multiaddr: netip.IPv6Loopback()},
			7),
		od("IPV6_LEAVE_GROUP", V6, socket.IPV6_LEAVE_GROUP, udpOnly, socket.IPv6Mreq{Multiaddr: grp}),
		od("ICMP6_FILTER", socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, udpOnly, socket.ICMP6Filter{}),
		od("unknown IPV6 9999", V6, 9999, both, ints(1)...),
		od("IP_TTL", IP, socket.IP_TTL, both, ints(5)...),
		od("IP_TOS", IP, socket.IP_TOS, both, ints(0x10)...),
	}
}

func inet6OptionCases() []Case {
	var cs []Case
	for _, o := range inet6OptionTable() {
		o := o
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			if (ty == STREAM && !o.tcp) || (ty == DGRAM && !o.udp) {
				continue
			}
			base := "inet6/opt/" + typeNames[ty] + "/" + o.name
			cs = append(cs, Case{Name: base + " default", Run: func(t *T) {
				t.GetOpt("get", t.Socket6(ty), o.level, o.opt)
			}})
			for _, v := range o.values {
				v := v
				cs = append(cs, Case{Name: fmt.Sprintf("%s=%s", base, FormatValue(v)), Run: func(t *T) {
					s := t.Socket6(ty)
					t.Check("set", s.SetSockOpt(o.level, o.opt, v))
					t.GetOpt("get", s, o.level, o.opt)
				}})
			}
		}
	}
	// The IPv6 options on AF_INET sockets.
	for _, o := range []optDef{
		od("IPV6_V6ONLY", socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, both, ints(1)...),
		od("IPV6_UNICAST_HOPS", socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, both, ints(5)...),
	} {
		o := o
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			cs = append(cs, Case{Name: "inet6/opt/AF_INET " + typeNames[ty] + "/" + o.name, Run: func(t *T) {
				s := t.Socket(AF_INET, ty, 0)
				t.Check("set", s.SetSockOpt(o.level, o.opt, o.values[0]))
				t.GetOpt("get", s, o.level, o.opt)
			}})
		}
	}
	return cs
}

// Raw ICMPv6 and raw IPv6 sockets (root on the kernel).
func inet6RawCases() []Case {
	return []Case{
		{"inet6/raw/icmpv6 socket", true, func(t *T) {
			s, err := t.TrySocket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
			if err != nil {
				return
			}
			t.Logf("proto %d", s.Proto())
			t.GetInt("IPV6_CHECKSUM", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
			t.Check("IPV6_CHECKSUM=4", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 4))
			t.GetOpt("ICMP6_FILTER", s, socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER)
			var f socket.ICMP6Filter
			f[0] = 0xffff0000
			f[4] = 1
			t.Check("ICMP6_FILTER set", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
			t.GetOpt("ICMP6_FILTER", s, socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER)
			t.Check("ICMP6_FILTER int", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, 1))
			t.Logf("name %s", t.Addr(t.Name(s)))
		}},
		{"inet6/raw/proto 253 IPV6_CHECKSUM", true, func(t *T) {
			s := t.Socket(AF_INET6, RAW, 253)
			t.GetInt("default", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
			for _, v := range []int{2, 3, -1, 0} {
				t.Check(fmt.Sprintf("set %d", v), s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, v))
				t.GetInt("get", s, socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM)
			}
			t.Check("ICMP6_FILTER on proto 253", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, socket.ICMP6Filter{}))
		}},
		{"inet6/raw/bind", true, func(t *T) {
			s := t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
			t.Check("bind ::1", s.Bind(in6("::1", 0)))
			t.Logf("name %s", t.Addr(t.Name(s)))
			t.Check("bind non-local", t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6).Bind(in6("2001:db8::7", 0)))
			t.Check("listen", s.Listen(1))
		}},
		{"inet6/raw/echo request to ::1", true, func(t *T) {
			s := t.Socket(AF_INET6, RAW, socket.IPPROTO_ICMPV6)
			var f socket.ICMP6Filter
			for i := range f {
				f[i] = ^uint32(0)
			}
			f[128/32] &^= 1 << (128 % 32) // echo request only: the kernel answers too
			f[129/32] &^= 1 << (129 % 32)
			t.Check("ICMP6_FILTER", s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, f))
			// Echo request id 0x1234 seq 1; the stack fills the checksum.
			t.Send("sendto", s, []byte{128, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}, 0, in6("::1", 0))
			s.SetTimeout(2 * time.Second)
			buf := make([]byte, 200)
			for i := 0; i < 2; i++ {
				n, from, err := s.RecvFrom(buf, 0)
				if err != nil {
					t.Logf("recv: %s", ErrName(err))
					return
				}
				t.Logf("recv: %d bytes from %s type %d payload %q", n, t.Addr(from), buf[0], buf[8:n])
			}
		}},
	}
}
