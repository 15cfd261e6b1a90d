package conformance

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const (
	AF_INET = socket.AF_INET
	STREAM  = socket.SOCK_STREAM
	DGRAM   = socket.SOCK_DGRAM
	RAW     = socket.SOCK_RAW
)

// short is the timeout of cases that expect one to expire (never asserted
// as a duration, only as the "timeout" result).
const short = 50 * time.Millisecond

var typeNames = map[int]string{STREAM: "tcp", DGRAM: "udp"}

// Cases is the whole table.
func Cases() []Case {
	var cs []Case
	cs = append(cs, socketCases()...)
	cs = append(cs, bindCases()...)
	cs = append(cs, connectCases()...)
	cs = append(cs, dataCases()...)
	cs = append(cs, shutdownCases()...)
	cs = append(cs, listenCases()...)
	cs = append(cs, timeoutCases()...)
	cs = append(cs, miscCases()...)
	cs = append(cs, multicastCases()...)
	cs = append(cs, rawCases()...)
	cs = append(cs, optionCases()...)
	cs = append(cs, Cases6()...)              // cases6.go
	cs = append(cs, inet6Cases()...)          // inet6_cases.go
	cs = append(cs, pktinfoCases()...)        // pktinfo_cases.go
	cs = append(cs, transparentCases()...)    // transparent_cases.go
	cs = append(cs, recverrCases()...)        // recverr_cases.go
	cs = append(cs, recvOptsCases()...)       // recvopts_cases.go
	cs = append(cs, ipOptionsCases()...)      // ipoptions_cases.go
	cs = append(cs, ipoptReplyCases()...)     // ipopt_reply_cases.go
	cs = append(cs, sendCtlCases()...)        // sendctl_cases.go
	cs = append(cs, ext6Cases()...)           // ext6_cases.go
	cs = append(cs, markCases()...)           // mark_cases.go
	cs = append(cs, busyPollCases()...)       // busypoll_cases.go
	cs = append(cs, bindDevCases()...)        // bindtodev_cases.go
	cs = append(cs, unixCases()...)           // unix_cases.go
	cs = append(cs, ssmCases()...)            // ssm_cases.go
	cs = append(cs, ssm6Cases()...)           // ssm_cases.go
	cs = append(cs, ioctlCases()...)          // ioctl_cases.go
	cs = append(cs, ifreqCases()...)          // ifreq_cases.go
	cs = append(cs, mtuCases()...)            // ioctl_cases.go
	cs = append(cs, peekOffCases()...)        // peekoff_cases.go
	cs = append(cs, sendfileCases()...)       // sendfile_cases.go
	cs = append(cs, rcvLowatCases()...)       // rcvlowat_cases.go
	cs = append(cs, tcpOptsCases()...)        // tcpopts_cases.go
	cs = append(cs, urgPeekCases()...)        // urgpeek_cases.go
	cs = append(cs, stampCases()...)          // stamp_cases.go
	cs = append(cs, rxStampCases()...)        // rxstamp_cases.go
	cs = append(cs, txStampCases()...)        // txstamp_cases.go
	cs = append(cs, tcpStampCases()...)       // tcpstamp_cases.go
	cs = append(cs, tcpTxStampCases()...)     // tcptxstamp_cases.go
	cs = append(cs, tcpTxStampReadCases()...) // tcptxstamp_cases.go
	cs = append(cs, dgramFileCases()...)      // sendfile_dgram_cases.go
	cs = append(cs, unixOutqCases()...)       // unixoutq_cases.go
	cs = append(cs, unixOOBCases()...)        // unixoob_cases.go
	cs = append(cs, unixStampCases()...)      // unixstamp_cases.go
	return cs
}

func socketCases() []Case {
	type sc struct {
		name        string
		fam, ty, pr int
	}
	list := []sc{
		{"tcp", AF_INET, STREAM, 0},
		{"tcp explicit", AF_INET, STREAM, socket.IPPROTO_TCP},
		{"udp", AF_INET, DGRAM, 0},
		{"udp explicit", AF_INET, DGRAM, socket.IPPROTO_UDP},
		{"stream with udp proto", AF_INET, STREAM, socket.IPPROTO_UDP},
		{"dgram with tcp proto", AF_INET, DGRAM, socket.IPPROTO_TCP},
		{"raw proto 0", AF_INET, RAW, 0},
		{"seqpacket", AF_INET, socket.SOCK_SEQPACKET, 0},
		{"bad type 99", AF_INET, 99, 0},
		{"bad family 99", 99, STREAM, 0},
		{"inet6 stream", socket.AF_INET6, STREAM, 0},
		{"unix stream", socket.AF_UNIX, STREAM, 0},
		{"unix dgram", socket.AF_UNIX, DGRAM, 0},
		{"tcp SOCK_NONBLOCK", AF_INET, STREAM | socket.SOCK_NONBLOCK, 0},
		{"udp SOCK_NONBLOCK|SOCK_CLOEXEC", AF_INET, DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0},
		{"unix stream SOCK_CLOEXEC", socket.AF_UNIX, STREAM | socket.SOCK_CLOEXEC, 0},
		{"tcp with type flag 0x100", AF_INET, STREAM | 0x100, 0},
		{"unix with type flag 0x40000000", socket.AF_UNIX, STREAM | 0x40000000, 0},
	}
	var cs []Case
	for _, c := range list {
		c := c
		cs = append(cs, Case{Name: "socket/" + c.name, Run: func(t *T) {
			s, err := t.TrySocket(c.fam, c.ty, c.pr)
			if err != nil {
				return
			}
			t.Logf("family %d type %d proto %d", s.Family(), s.Type(), s.Proto())
			t.GetInt("SO_TYPE", s, socket.SOL_SOCKET, socket.SO_TYPE)
			t.GetInt("SO_DOMAIN", s, socket.SOL_SOCKET, socket.SO_DOMAIN)
			t.GetInt("SO_PROTOCOL", s, socket.SOL_SOCKET, socket.SO_PROTOCOL)
		}})
	}
	return cs
}

func bindCases() []Case {
	var cs []Case
	for _, ty := range []int{STREAM, DGRAM} {
		ty := ty
		p := "bind/" + typeNames[ty] + "/"
		mk := func(t *T) sockapi.Sock { return t.Socket(AF_INET, ty, 0) }
		cs = append(cs,
			Case{p + "twice", false, func(t *T) {
				s := mk(t)
				t.BindLocal(s, "P")
				t.Check("bind again", s.Bind(t.Loop(0)))
				t.Logf("name %s", t.Addr(t.Name(s)))
			}},
			Case{p + "address in use", false, func(t *T) {
				a := t.BindLocal(mk(t), "P")
				t.Check("bind same", mk(t).Bind(a))
			}},
			Case{p + "in use via wildcard", false, func(t *T) {
				a := t.BindLocal(mk(t), "P")
				w := socket.InetAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), a.AddrPort.Port()))
				t.Check("bind 0.0.0.0 same port", mk(t).Bind(w))
			}},
			Case{p + "in use on other loopback address", false, func(t *T) {
				a := t.BindLocal(mk(t), "P")
				t.Check("bind 127.0.0.2 same port", mk(t).Bind(socket.Inet("127.0.0.2", int(a.AddrPort.Port()))))
			}},
			Case{p + "reuseaddr both", false, func(t *T) {
				s1, s2 := mk(t), mk(t)
				t.Check("reuseaddr 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
				t.Check("reuseaddr 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
				a := t.BindLocal(s1, "P")
				t.Check("bind same", s2.Bind(a))
			}},
			Case{p + "reuseaddr second only", false, func(t *T) {
				s1, s2 := mk(t), mk(t)
				t.Check("reuseaddr 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
				a := t.BindLocal(s1, "P")
				t.Check("bind same", s2.Bind(a))
			}},
			Case{p + "reuseport both", false, func(t *T) {
				s1, s2 := mk(t), mk(t)
				t.Check("reuseport 1", s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
				t.Check("reuseport 2", s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
				a := t.BindLocal(s1, "P")
				t.Check("bind same", s2.Bind(a))
			}},
			Case{p + "port freed by close", false, func(t *T) {
				s1 := mk(t)
				a := t.BindLocal(s1, "P")
				t.Check("close", s1.Close())
				t.Check("bind same", mk(t).Bind(a))
			}},
			Case{p + "non-local address", false, func(t *T) {
				// TEST-NET-2: bind fails before anything could be sent.
				t.Check("bind 198.51.100.7", mk(t).Bind(socket.Inet("198.51.100.7", 0)))
			}},
			Case{p + "127.0.0.2", false, func(t *T) {
				s := mk(t)
				t.Check("bind", s.Bind(socket.Inet("127.0.0.2", 0)))
				t.Logf("name %s", t.Addr(t.Name(s)))
			}},
			Case{p + "wildcard port 0 then getsockname", false, func(t *T) {
				s := mk(t)
				t.Logf("before %s", t.Addr(t.Name(s)))
				t.Check("bind", s.Bind(socket.Inet("0.0.0.0", 0)))
				t.Logf("after %s", t.Addr(t.Name(s)))
			}},
			Case{p + "loopback port 0 then getsockname", false, func(t *T) {
				s := mk(t)
				t.Check("bind", s.Bind(t.Loop(0)))
				t.Logf("after %s", t.Addr(t.Name(s)))
			}},
			Case{p + "AF_UNSPEC any", false, func(t *T) {
				t.Check("bind unspec", mk(t).Bind(socket.Unspec{}))
			}},
			Case{p + "IPv6 address", false, func(t *T) {
				t.Check("bind ::1", mk(t).Bind(socket.InetAddr(netip.MustParseAddrPort("[::1]:0"))))
			}},
			Case{p + "limited broadcast", false, func(t *T) {
				t.Check("bind 255.255.255.255", mk(t).Bind(socket.Inet("255.255.255.255", 0)))
			}},
			Case{p + "multicast address", false, func(t *T) {
				t.Check("bind 224.0.0.251", mk(t).Bind(socket.Inet("224.0.0.251", 0)))
			}},
			Case{p + "after close", false, func(t *T) {
				s := mk(t)
				s.Close()
				t.Check("bind", s.Bind(t.Loop(0)))
			}},
			Case{p + "ephemeral ports distinct and in range", false, func(t *T) {
				seen := map[uint16]bool{}
				inRange, distinct := true, true
				for i := 0; i < 20; i++ {
					s := mk(t)
					t.Must("bind", s.Bind(t.Loop(0)))
					port := t.Name(s).AddrPort.Port()
					if int(port) < t.Env.PortLow || int(port) > t.Env.PortHigh {
						inRange = false
					}
					if seen[port] {
						distinct = false
					}
					seen[port] = true
				}
				t.Logf("in range %v distinct %v", inRange, distinct)
			}},
		)
	}
	cs = append(cs,
		Case{"bind/udp/after connect", false, func(t *T) {
			s := t.UDP()
			t.Check("connect", s.Connect(t.Loop(9)))
			t.Check("bind", s.Bind(t.Loop(0)))
		}},
		Case{"bind/tcp/after connect", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("bind", cli.Bind(t.Loop(0)))
		}},
		Case{"bind/tcp/reuseaddr both, first listening", false, func(t *T) {
			s1, s2 := t.TCP(), t.TCP()
			s1.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
			s2.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
			a := t.BindLocal(s1, "P")
			t.Check("listen", s1.Listen(1))
			t.Check("bind same", s2.Bind(a))
		}},
		Case{"bind/tcp/port of a connected pair's client", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("bind client's address", t.TCP().Bind(t.Name(cli)))
		}},
		Case{"bind/tcp and udp same port", false, func(t *T) {
			a := t.BindLocal(t.TCP(), "P")
			t.Check("udp bind same", t.UDP().Bind(a))
		}},
	)
	return cs
}

func connectCases() []Case {
	closedPort := func(t *T) *socket.SockaddrInet {
		// A TCP socket bound but not listening keeps the port ours.
		return t.BindLocal(t.TCP(), "X")
	}
	return []Case{
		{"connect/tcp refused", false, func(t *T) {
			a := closedPort(t)
			s := t.TCP()
			t.Check("connect", s.Connect(a))
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			_, err := s.GetPeerName()
			t.Check("getpeername", err)
		}},
		{"connect/tcp refused via connect_ex", false, func(t *T) {
			a := closedPort(t)
			t.Logf("connect_ex: %d", t.TCP().ConnectEx(a))
		}},
		{"connect/tcp refused twice", false, func(t *T) {
			a := closedPort(t)
			s := t.TCP()
			t.Check("connect", s.Connect(a))
			t.Check("connect again", s.Connect(a))
		}},
		{"connect/tcp non-blocking to non-listening port, SO_ERROR", false, func(t *T) {
			a := closedPort(t)
			s := t.TCP()
			s.SetBlocking(false)
			t.Check("connect", s.Connect(a))
			t.Logf("writable %v", Ready(s, true, 5*time.Second))
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.GetInt("SO_ERROR again", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}},
		{"connect/tcp non-blocking to listener, SO_ERROR", false, func(t *T) {
			_, a := t.Listener(4)
			s := t.TCP()
			s.SetBlocking(false)
			t.Check("connect", s.Connect(a))
			t.Logf("writable %v", Ready(s, true, 5*time.Second))
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			p, err := s.GetPeerName()
			t.Check("getpeername", err)
			if err == nil {
				t.Logf("peer %s", t.Addr(p))
			}
			t.Check("connect again", s.Connect(a))
		}},
		{"connect/tcp twice", false, func(t *T) {
			cli, _ := t.Pair()
			p, err := cli.GetPeerName()
			t.Must("getpeername", err)
			t.Check("connect again", cli.Connect(p))
		}},
		{"connect/tcp on listening socket", false, func(t *T) {
			l, a := t.Listener(4)
			t.Check("connect", l.Connect(a))
		}},
		{"connect/tcp AF_UNSPEC on unconnected", false, func(t *T) {
			t.Check("connect unspec", t.TCP().Connect(socket.Unspec{}))
		}},
		{"connect/tcp names", false, func(t *T) {
			cli, srv := t.Pair()
			t.Logf("cli name %s peer %s", t.Addr(t.Name(cli)), peer(t, cli))
			t.Logf("srv name %s peer %s", t.Addr(t.Name(srv)), peer(t, srv))
		}},
		{"connect/tcp to 0.0.0.0", false, func(t *T) {
			l, a := t.Listener(4)
			_ = l
			s := t.TCP()
			s.SetTimeout(5 * time.Second)
			t.Check("connect", s.Connect(socket.Inet("0.0.0.0", int(a.AddrPort.Port()))))
			t.Logf("peer %s", peer(t, s))
		}},
		{"connect/tcp after close", false, func(t *T) {
			_, a := t.Listener(4)
			s := t.TCP()
			s.Close()
			t.Check("connect", s.Connect(a))
		}},
		{"connect/udp names", false, func(t *T) {
			_, b, _, ba := t.UDPPair()
			_ = b
			s := t.UDP()
			t.Logf("before %s", t.Addr(t.Name(s)))
			t.Check("connect", s.Connect(ba))
			t.Logf("name %s peer %s", t.Addr(t.Name(s)), peer(t, s))
		}},
		{"connect/udp to 0.0.0.0", false, func(t *T) {
			s := t.UDP()
			t.Check("connect", s.Connect(socket.Inet("0.0.0.0", 9)))
			t.Logf("name %s peer %s", t.Addr(t.Name(s)), peer(t, s))
		}},
		{"connect/udp to port 0", false, func(t *T) {
			s := t.UDP()
			t.Check("connect", s.Connect(t.Loop(0)))
			t.Logf("peer %s", peer(t, s))
		}},
		{"connect/udp AF_UNSPEC dissolves", false, func(t *T) {
			_, _, _, ba := t.UDPPair()
			s := t.UDP()
			t.Check("connect", s.Connect(ba))
			t.Check("connect unspec", s.Connect(socket.Unspec{}))
			t.Logf("peer %s name %s", peer(t, s), t.Addr(t.Name(s)))
			t.Send("send", s, []byte("x"), 0, nil)
		}},
		{"connect/udp reconnect", false, func(t *T) {
			_, _, aa, ba := t.UDPPair()
			s := t.UDP()
			t.Check("connect B", s.Connect(ba))
			t.Check("connect A", s.Connect(aa))
			t.Logf("peer %s", peer(t, s))
		}},
		{"connect/udp loopback broadcast without SO_BROADCAST", false, func(t *T) {
			t.Check("connect 127.255.255.255", t.UDP().Connect(socket.Inet("127.255.255.255", 9)))
		}},
		{"connect/udp limited broadcast without SO_BROADCAST", false, func(t *T) {
			t.Check("connect 255.255.255.255", t.UDP().Connect(socket.Inet("255.255.255.255", 9)))
		}},
		{"connect/udp ICMP port unreachable", false, func(t *T) {
			s := t.UDP()
			x := t.BindLocal(t.UDP(), "X")
			t.Logf("close bound: %s", ErrName(t.socks[len(t.socks)-1].Close()))
			t.Check("connect", s.Connect(x))
			s.SetTimeout(5 * time.Second)
			t.Send("send", s, []byte("ping"), 0, nil)
			t.Recv("recv", s, 10, 0)
			t.Recv("recv again", s, 10, socket.MSG_DONTWAIT)
		}},
		{"connect/udp ICMP unreachable via SO_ERROR", false, func(t *T) {
			s := t.UDP()
			x := t.BindLocal(t.UDP(), "X")
			t.socks[len(t.socks)-1].Close()
			t.Check("connect", s.Connect(x))
			t.Send("send", s, []byte("ping"), 0, nil)
			t.Logf("readable %v", Ready(s, false, 5*time.Second))
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.GetInt("SO_ERROR again", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}},
		{"connect/udp unconnected send to closed port", false, func(t *T) {
			s := t.UDP()
			x := t.BindLocal(t.UDP(), "X")
			t.socks[len(t.socks)-1].Close()
			t.Send("sendto", s, []byte("ping"), 0, x)
			s.SetTimeout(short)
			t.Recv("recv", s, 10, 0)
		}},
	}
}

func peer(t *T, s sockapi.Sock) string {
	p, err := s.GetPeerName()
	if err != nil {
		return ErrName(err)
	}
	return t.Addr(p)
}

func dataCases() []Case {
	return []Case{
		{"data/tcp send on unconnected", false, func(t *T) {
			t.Send("send", t.TCP(), []byte("x"), 0, nil)
		}},
		{"data/tcp sendto with address on unconnected", false, func(t *T) {
			_, a := t.Listener(4)
			t.Send("sendto", t.TCP(), []byte("x"), 0, a)
		}},
		{"data/tcp recv on unconnected", false, func(t *T) {
			t.Recv("recv", t.TCP(), 10, 0)
		}},
		{"data/tcp send on listener", false, func(t *T) {
			l, _ := t.Listener(4)
			t.Send("send", l, []byte("x"), 0, nil)
		}},
		{"data/tcp recv on listener", false, func(t *T) {
			l, _ := t.Listener(4)
			t.Recv("recv", l, 10, 0)
		}},
		{"data/tcp echo", false, func(t *T) {
			cli, srv := t.Pair()
			t.Send("send", cli, []byte("hello"), 0, nil)
			t.Recv("recv", srv, 100, socket.MSG_WAITALL&0)
			t.Send("reply", srv, []byte("world"), 0, nil)
			t.Recv("recv reply", cli, 100, 0)
		}},
		{"data/tcp recv with short buffer", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("hello world"), 0))
			t.Recv("recv 5 waitall", srv, 5, socket.MSG_WAITALL)
			t.Recv("recv 6 waitall", srv, 6, socket.MSG_WAITALL)
			t.Recv("recv empty nonblocking", srv, 6, socket.MSG_DONTWAIT)
		}},
		{"data/tcp peek", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("abc"), 0))
			Ready(srv, false, 5*time.Second)
			t.Recv("peek", srv, 10, socket.MSG_PEEK)
			t.Recv("recv", srv, 10, 0)
		}},
		{"data/tcp recv after peer closed", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("close peer", cli.Close())
			t.Recv("recv", srv, 10, 0)
			t.Recv("recv again", srv, 10, 0)
		}},
		{"data/tcp recv pending data after peer closed", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("bye"), 0))
			t.Check("close peer", cli.Close())
			Ready(srv, false, 5*time.Second)
			t.Recv("recv", srv, 10, socket.MSG_WAITALL)
			t.Recv("recv eof", srv, 10, 0)
		}},
		{"data/tcp recv after peer reset (linger 0)", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("linger 0", cli.SetSockOpt(socket.SOL_SOCKET, socket.SO_LINGER, socket.Linger{OnOff: true, Linger: 0}))
			t.Check("close peer", cli.Close())
			t.Recv("recv", srv, 10, 0)
			t.Recv("recv again", srv, 10, 0)
			t.GetInt("SO_ERROR", srv, socket.SOL_SOCKET, socket.SO_ERROR)
		}},
		{"data/tcp send after peer reset", false, func(t *T) {
			cli, srv := t.Pair()
			cli.SetSockOpt(socket.SOL_SOCKET, socket.SO_LINGER, socket.Linger{OnOff: true, Linger: 0})
			cli.Close()
			Ready(srv, false, 5*time.Second)
			t.Send("send", srv, []byte("x"), 0, nil)
		}},
		{"data/tcp getpeername after peer closed", false, func(t *T) {
			cli, srv := t.Pair()
			cli.Close()
			t.Recv("recv", srv, 10, 0)
			t.Logf("peer %s", peer(t, srv))
		}},
		{"data/tcp recv empty non-blocking", false, func(t *T) {
			_, srv := t.Pair()
			srv.SetBlocking(false)
			t.Recv("recv", srv, 10, 0)
		}},
		{"data/tcp recv MSG_DONTWAIT on blocking", false, func(t *T) {
			_, srv := t.Pair()
			srv.SetBlocking(true)
			t.Recv("recv", srv, 10, socket.MSG_DONTWAIT)
		}},
		{"data/tcp recv MSG_OOB without urgent data", false, func(t *T) {
			_, srv := t.Pair()
			t.Recv("recv", srv, 10, socket.MSG_OOB|socket.MSG_DONTWAIT)
		}},
		{"data/tcp 1 MiB transfer", false, func(t *T) {
			cli, srv := t.Pair()
			data := make([]byte, 1<<20)
			for i := range data {
				data[i] = byte(i * 7)
			}
			done := make(chan error, 1)
			go func() { done <- cli.SendAll(data, 0) }()
			got := make([]byte, len(data))
			n, err := srv.Recv(got, socket.MSG_WAITALL)
			t.Logf("recv %d %s equal %v", n, ErrName(err), bytes.Equal(got, data))
			t.Check("sendall", <-done)
		}},
		{"data/tcp zero-length send", false, func(t *T) {
			cli, srv := t.Pair()
			t.Send("send", cli, nil, 0, nil)
			srv.SetBlocking(false)
			t.Recv("recv", srv, 10, 0)
		}},
		{"data/tcp recv zero-length buffer", false, func(t *T) {
			cli, srv := t.Pair()
			cli.SendAll([]byte("abc"), 0)
			Ready(srv, false, 5*time.Second)
			t.Recv("recv 0", srv, 0, 0)
			t.Recv("recv", srv, 10, 0)
		}},
		{"data/udp recvfrom with short buffer", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Send("sendto", a, []byte("hello world"), 0, ba)
			t.RecvFrom("recvfrom 5", b, 5, 0)
			b.SetBlocking(false)
			t.RecvFrom("recvfrom rest", b, 100, 0)
		}},
		{"data/udp recv MSG_TRUNC", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Send("sendto", a, []byte("hello world"), 0, ba)
			t.RecvFrom("recvfrom 5 MSG_TRUNC", b, 5, socket.MSG_TRUNC)
		}},
		{"data/udp peek", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Send("sendto", a, []byte("abc"), 0, ba)
			t.RecvFrom("peek", b, 10, socket.MSG_PEEK)
			t.RecvFrom("recv", b, 10, 0)
		}},
		{"data/udp boundaries", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			for _, m := range []string{"one", "two", "three"} {
				t.Send("sendto", a, []byte(m), 0, ba)
			}
			for i := 0; i < 3; i++ {
				t.RecvFrom("recvfrom", b, 100, 0)
			}
		}},
		{"data/udp zero-length datagram", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Send("sendto", a, nil, 0, ba)
			t.RecvFrom("recvfrom", b, 100, 0)
		}},
		{"data/udp largest datagram", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			t.Send("sendto 65507", a, make([]byte, 65507), 0, ba)
			t.Send("sendto 65508", a, make([]byte, 65508), 0, ba)
			t.RecvFrom("recvfrom", b, 10, socket.MSG_TRUNC)
		}},
		{"data/udp send unconnected", false, func(t *T) {
			t.Send("send", t.UDP(), []byte("x"), 0, nil)
		}},
		{"data/udp sendto port 0", false, func(t *T) {
			t.Send("sendto", t.UDP(), []byte("x"), 0, t.Loop(0))
		}},
		{"data/udp sendto on connected to another address", false, func(t *T) {
			a, b, aa, ba := t.UDPPair()
			_ = a
			s := t.UDP()
			t.Check("connect", s.Connect(ba))
			t.Send("sendto A", s, []byte("to A"), 0, aa)
			t.RecvFrom("A recv", a, 100, 0)
			t.Send("send", s, []byte("to B"), 0, nil)
			t.RecvFrom("B recv", b, 100, 0)
		}},
		{"data/udp connected filters senders", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			c := t.UDP()
			t.Check("connect to A", b.Connect(t.Name(a)))
			t.Send("from C", c, []byte("C"), 0, ba)
			t.Send("from A", a, []byte("A"), 0, ba)
			t.RecvFrom("recv", b, 10, 0)
			t.RecvFrom("recv again", b, 10, socket.MSG_DONTWAIT)
		}},
		{"data/udp recv empty non-blocking", false, func(t *T) {
			s := t.UDP()
			t.BindLocal(s, "A")
			s.SetBlocking(false)
			t.Recv("recv", s, 10, 0)
		}},
		{"data/udp recv unbound non-blocking", false, func(t *T) {
			t.Recv("recv", t.UDP(), 10, socket.MSG_DONTWAIT)
		}},
		{"data/udp recv MSG_OOB", false, func(t *T) {
			s := t.UDP()
			t.BindLocal(s, "A")
			t.Recv("recv", s, 10, socket.MSG_OOB|socket.MSG_DONTWAIT)
		}},
		{"data/udp implicit bind by sendto", false, func(t *T) {
			_, b, _, ba := t.UDPPair()
			_ = b
			s := t.UDP()
			t.Send("sendto", s, []byte("x"), 0, ba)
			t.Logf("name %s", t.Addr(t.Name(s)))
		}},
		{"data/closed socket", false, func(t *T) {
			s := t.UDP()
			s.Close()
			t.Send("send", s, []byte("x"), 0, t.Loop(9))
			t.Recv("recv", s, 10, 0)
			_, err := s.GetSockName()
			t.Check("getsockname", err)
			_, err = s.GetPeerName()
			t.Check("getpeername", err)
			t.GetInt("getsockopt", s, socket.SOL_SOCKET, socket.SO_TYPE)
			t.Check("setsockopt", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
			t.Check("shutdown", s.Shutdown(socket.SHUT_RDWR))
			t.Check("listen", s.Listen(1))
			_, err = s.Dup()
			t.Check("dup", err)
		}},
	}
}

func shutdownCases() []Case {
	var cs []Case
	for _, how := range []int{socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR} {
		how := how
		hn := []string{"SHUT_RD", "SHUT_WR", "SHUT_RDWR"}[how]
		cs = append(cs, Case{"shutdown/tcp " + hn + " then both views", false, func(t *T) {
			cli, srv := t.Pair()
			t.Check("shutdown", cli.Shutdown(how))
			if how != socket.SHUT_RD {
				t.Recv("peer recv", srv, 10, 0)
			} else {
				t.Recv("peer recv non-blocking", srv, 10, socket.MSG_DONTWAIT)
			}
			t.Send("peer send", srv, []byte("late"), 0, nil)
			Settled(srv, 5*time.Second) // "late" has reached cli (or been refused)
			t.Recv("own recv", cli, 10, 0)
			t.Send("own send", cli, []byte("x"), 0, nil)
			t.Logf("peer %s", peer(t, cli))
			t.Check("shutdown again", cli.Shutdown(how))
		}})
		cs = append(cs, Case{"shutdown/tcp unconnected " + hn, false, func(t *T) {
			t.Check("shutdown", t.TCP().Shutdown(how))
		}})
		cs = append(cs, Case{"shutdown/udp unconnected " + hn, false, func(t *T) {
			t.Check("shutdown", t.UDP().Shutdown(how))
		}})
		cs = append(cs, Case{"shutdown/udp connected " + hn, false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			_ = a
			s := t.UDP()
			t.Check("connect", s.Connect(ba))
			t.Check("shutdown", s.Shutdown(how))
			t.Send("send", s, []byte("x"), 0, nil)
			t.Recv("recv", s, 10, socket.MSG_DONTWAIT)
			_ = b
		}})
	}
	cs = append(cs,
		Case{"shutdown/tcp bad how", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("shutdown 3", cli.Shutdown(3))
			t.Check("shutdown -1", cli.Shutdown(-1))
		}},
		Case{"shutdown/tcp listener SHUT_RD then accept", false, func(t *T) {
			l, _ := t.Listener(4)
			t.Check("shutdown", l.Shutdown(socket.SHUT_RD))
			l.SetBlocking(false)
			_, _, err := l.Accept()
			t.Check("accept", err)
		}},
		Case{"shutdown/tcp listener SHUT_WR", false, func(t *T) {
			l, a := t.Listener(4)
			t.Check("shutdown", l.Shutdown(socket.SHUT_WR))
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
		}},
		Case{"shutdown/tcp SHUT_WR, peer replies, then EOF", false, func(t *T) {
			cli, srv := t.Pair()
			t.Must("sendall", cli.SendAll([]byte("request"), 0))
			t.Check("shutdown", cli.Shutdown(socket.SHUT_WR))
			t.Recv("peer recv", srv, 7, socket.MSG_WAITALL)
			t.Recv("peer recv eof", srv, 10, 0)
			t.Must("peer sendall", srv.SendAll([]byte("response"), 0))
			t.Check("peer close", srv.Close())
			t.Recv("recv", cli, 8, socket.MSG_WAITALL)
			t.Recv("recv eof", cli, 10, 0)
		}},
	)
	return cs
}

func listenCases() []Case {
	return []Case{
		{"listen/udp", false, func(t *T) {
			t.Check("listen", t.UDP().Listen(1))
		}},
		{"listen/unbound tcp auto-binds", false, func(t *T) {
			s := t.TCP()
			t.Check("listen", s.Listen(1))
			t.Logf("name %s", t.Addr(t.Name(s)))
		}},
		{"listen/twice", false, func(t *T) {
			l, _ := t.Listener(1)
			t.Check("listen again", l.Listen(5))
		}},
		{"listen/after connect", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("listen", cli.Listen(1))
		}},
		{"listen/SO_ACCEPTCONN", false, func(t *T) {
			s := t.TCP()
			t.GetInt("before", s, socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
			t.BindLocal(s, "L")
			t.Check("listen", s.Listen(1))
			t.GetInt("after", s, socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
			t.GetInt("udp", t.UDP(), socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
		}},
		{"accept/not listening", false, func(t *T) {
			s := t.TCP()
			t.BindLocal(s, "L")
			_, _, err := s.Accept()
			t.Check("accept", err)
		}},
		{"accept/udp", false, func(t *T) {
			_, _, err := t.UDP().Accept()
			t.Check("accept", err)
		}},
		{"socket/SOCK_NONBLOCK: recv, accept and connect do not wait", false, func(t *T) {
			u, err := t.TrySocket(AF_INET, DGRAM|socket.SOCK_NONBLOCK, 0)
			if err != nil {
				return
			}
			t.BindLocal(u, "U")
			t.Recv("udp recv", u, 8, 0)
			l, err := t.TrySocket(AF_INET, STREAM|socket.SOCK_NONBLOCK, 0)
			if err != nil {
				return
			}
			a := t.BindLocal(l, "L")
			t.Check("listen", l.Listen(4))
			_, _, err = l.Accept()
			t.Check("accept", err)
			c, err := t.TrySocket(AF_INET, STREAM|socket.SOCK_NONBLOCK, 0)
			if err != nil {
				return
			}
			t.Check("connect", c.Connect(a))
		}},
		{"accept/non-blocking empty", false, func(t *T) {
			l, _ := t.Listener(4)
			l.SetBlocking(false)
			_, _, err := l.Accept()
			t.Check("accept", err)
		}},
		{"accept/non-blocking with pending connection", false, func(t *T) {
			l, a := t.Listener(4)
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
			t.Logf("readable %v", Ready(l, false, 5*time.Second))
			l.SetBlocking(false)
			s, from, err := l.Accept()
			t.Check("accept", err)
			if err == nil {
				t.Track(s)
				t.Label(t.Name(c), "C")
				t.Logf("from %s name %s timeout %v", t.Addr(from), t.Addr(t.Name(s)), s.Timeout())
			}
			_, _, err = l.Accept()
			t.Check("accept again", err)
		}},
		{"accept/after close", false, func(t *T) {
			l, _ := t.Listener(4)
			l.Close()
			_, _, err := l.Accept()
			t.Check("accept", err)
		}},
		{"accept/listener closed with pending connection", false, func(t *T) {
			l, a := t.Listener(4)
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
			Ready(l, false, 5*time.Second)
			t.Check("close listener", l.Close())
			t.Recv("client recv", c, 10, 0)
		}},
		{"listen/backlog overflow", false, backlogCase(1, 5)},
		{"listen/backlog 0", false, backlogCase(0, 3)},
		{"listen/backlog 3", false, backlogCase(3, 7)},
	}
}

// backlogCase connects n non-blocking clients to a listener with the
// given backlog, then counts completed handshakes and accepts.
func backlogCase(backlog, n int) func(t *T) {
	return func(t *T) {
		l, a := t.Listener(backlog)
		var cs []sockapi.Sock
		for i := 0; i < n; i++ {
			c := t.TCP()
			c.SetBlocking(false)
			c.Connect(a)
			// The kernel's loopback runs the handshake within connect;
			// let sockstack's finish too, so the listener sees the
			// clients one at a time in both.
			t.Quiesce()
			cs = append(cs, c)
		}
		// A handshake the listener ignores stays in SYN_SENT: the
		// client's first SYN retransmission is 1 s away, so 300 ms
		// separates "completed" from "dropped" on both sides.
		ready := make([]bool, len(cs))
		for i, c := range cs {
			ready[i] = Ready(c, true, 300*time.Millisecond)
		}
		// Count once sockstack's loopback has run dry: a reset that
		// follows a completed handshake must have arrived, or the
		// count depends on the harness's timing.
		t.Quiesce()
		connected := 0
		for i, c := range cs {
			if ready[i] {
				if v, err := c.GetSockOptInt(socket.SOL_SOCKET, socket.SO_ERROR); err == nil && v == 0 {
					if _, err := c.GetPeerName(); err == nil {
						connected++
					}
				}
			}
		}
		l.SetBlocking(false)
		accepted := 0
		for {
			s, _, err := l.Accept()
			if err != nil {
				break
			}
			t.Track(s)
			accepted++
		}
		t.Logf("backlog %d clients %d connected %d accepted %d", backlog, n, connected, accepted)
	}
}

func timeoutCases() []Case {
	return []Case{
		{"timeout/udp recv", false, func(t *T) {
			s := t.UDP()
			t.BindLocal(s, "A")
			s.SetTimeout(short)
			t.Recv("recv", s, 10, 0)
			t.Logf("timeout %v", s.Timeout())
		}},
		{"timeout/tcp recv", false, func(t *T) {
			_, srv := t.Pair()
			srv.SetTimeout(short)
			t.Recv("recv", srv, 10, 0)
		}},
		{"timeout/accept", false, func(t *T) {
			l, _ := t.Listener(4)
			l.SetTimeout(short)
			_, _, err := l.Accept()
			t.Check("accept", err)
		}},
		{"timeout/SO_RCVTIMEO recv", false, func(t *T) {
			s := t.UDP()
			t.BindLocal(s, "A")
			t.Check("set", s.SetSockOpt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, short))
			t.Recv("recv", s, 10, 0)
		}},
		{"timeout/SO_RCVTIMEO tcp accept", false, func(t *T) {
			l, _ := t.Listener(4)
			t.Check("set", l.SetSockOpt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, short))
			_, _, err := l.Accept()
			t.Check("accept", err)
		}},
		{"timeout/modes", false, func(t *T) {
			s := t.UDP()
			t.Logf("default %v", s.Timeout())
			s.SetBlocking(false)
			t.Logf("non-blocking %v", s.Timeout())
			s.SetTimeout(2 * time.Second)
			t.Logf("timeout %v", s.Timeout())
			s.SetBlocking(true)
			t.Logf("blocking %v", s.Timeout())
		}},
		{"timeout/connect with timeout succeeds", false, func(t *T) {
			_, a := t.Listener(4)
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			t.Check("connect", c.Connect(a))
		}},
		{"timeout/send blocks when peer does not read", false, func(t *T) {
			cli, _ := t.Pair()
			cli.SetTimeout(short)
			// Fill the send path until a send times out.
			buf := make([]byte, 64<<10)
			var err error
			for i := 0; i < 1000 && err == nil; i++ {
				_, err = cli.Send(buf, 0)
			}
			t.Logf("send: %s", ErrName(err))
		}},
		{"timeout/non-blocking send fills up", false, func(t *T) {
			cli, _ := t.Pair()
			cli.SetBlocking(false)
			buf := make([]byte, 64<<10)
			var err error
			for i := 0; i < 1000 && err == nil; i++ {
				_, err = cli.Send(buf, 0)
			}
			t.Logf("send: %s", ErrName(err))
		}},
	}
}

func miscCases() []Case {
	return []Case{
		{"close/double", false, func(t *T) {
			s := t.UDP()
			t.Check("close", s.Close())
			t.Check("close again", s.Close())
		}},
		{"close/double tcp connected", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("close", cli.Close())
			t.Check("close again", cli.Close())
		}},
		{"dup/survives close of original", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			_ = a
			d, err := b.Dup()
			t.Check("dup", err)
			if err != nil {
				return
			}
			t.Track(d)
			t.Logf("dup name %s", t.Addr(t.Name(d)))
			t.Check("close original", b.Close())
			t.Send("sendto", a, []byte("hi"), 0, ba)
			d.SetTimeout(5 * time.Second)
			t.RecvFrom("dup recv", d, 10, 0)
			t.Check("close dup", d.Close())
		}},
		{"dup/tcp connection stays open", false, func(t *T) {
			cli, srv := t.Pair()
			d, err := cli.Dup()
			t.Check("dup", err)
			if err != nil {
				return
			}
			t.Track(d)
			t.Check("close original", cli.Close())
			t.Send("send on dup", d, []byte("hi"), 0, nil)
			t.Recv("peer recv", srv, 2, socket.MSG_WAITALL)
			t.Check("close dup", d.Close())
			t.Recv("peer recv eof", srv, 10, 0)
		}},
		{"names/unbound", false, func(t *T) {
			t.Logf("tcp %s udp %s", t.Addr(t.Name(t.TCP())), t.Addr(t.Name(t.UDP())))
			t.Logf("tcp peer %s udp peer %s", peer(t, t.TCP()), peer(t, t.UDP()))
		}},
		{"names/unconnected bound", false, func(t *T) {
			s := t.UDP()
			t.BindLocal(s, "A")
			t.Logf("peer %s", peer(t, s))
		}},
		{"broadcast/loopback without SO_BROADCAST", false, func(t *T) {
			t.Send("sendto 127.255.255.255", t.UDP(), []byte("x"), 0, socket.Inet("127.255.255.255", 9))
		}},
		{"broadcast/limited without SO_BROADCAST", false, func(t *T) {
			// Fails before anything is sent.
			t.Send("sendto 255.255.255.255", t.UDP(), []byte("x"), 0, socket.Inet("255.255.255.255", 9))
		}},
		{"broadcast/loopback with SO_BROADCAST", false, func(t *T) {
			r := t.UDP()
			t.Check("bind wildcard", r.Bind(socket.Inet("0.0.0.0", 0)))
			port := int(t.Name(r).AddrPort.Port())
			t.Label(t.Name(r), "R")
			s := t.UDP()
			t.Check("SO_BROADCAST", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1))
			t.Send("sendto 127.255.255.255", s, []byte("bcast"), 0, socket.Inet("127.255.255.255", port))
			r.SetTimeout(time.Second)
			t.Recv("recv", r, 10, 0)
		}},
		{"sockopt/SO_ERROR on fresh sockets", false, func(t *T) {
			t.GetInt("tcp", t.TCP(), socket.SOL_SOCKET, socket.SO_ERROR)
			t.GetInt("udp", t.UDP(), socket.SOL_SOCKET, socket.SO_ERROR)
		}},
		{"sockopt/SO_RCVTIMEO rounding", false, func(t *T) {
			s := t.UDP()
			for _, d := range []time.Duration{1500 * time.Microsecond, 1 * time.Microsecond, 2500 * time.Millisecond} {
				t.Check(fmt.Sprintf("set %v", d), s.SetSockOpt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, d))
				t.GetOpt("get", s, socket.SOL_SOCKET, socket.SO_RCVTIMEO)
			}
		}},
		{"sockopt/TCP_MAXSEG connected", false, func(t *T) {
			cli, srv := t.Pair()
			t.GetInt("client", cli, socket.SOL_TCP, socket.TCP_MAXSEG)
			t.GetInt("server", srv, socket.SOL_TCP, socket.TCP_MAXSEG)
		}},
		{"sockopt/SO_BINDTODEVICE lo", true, func(t *T) {
			s := t.UDP()
			t.Check("set lo", s.SetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, "lo"))
			t.GetOpt("get", s, socket.SOL_SOCKET, socket.SO_BINDTODEVICE)
			t.Check("set nosuchdev", s.SetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, "nosuchdev0"))
		}},
		{"sockopt/TCP on udp socket", false, func(t *T) {
			s := t.UDP()
			t.Check("set TCP_NODELAY", s.SetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY, 1))
			t.GetInt("get TCP_NODELAY", s, socket.SOL_TCP, socket.TCP_NODELAY)
		}},
	}
}

func multicastCases() []Case {
	group := netip.MustParseAddr("239.1.2.3")
	lo := netip.MustParseAddr("127.0.0.1")
	mreq := socket.IPMreq{Multiaddr: group, Interface: lo}
	add := func(s sockapi.Sock, m socket.IPMreq) error {
		return s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, m)
	}
	drop := func(s sockapi.Sock, m socket.IPMreq) error {
		return s.SetSockOpt(socket.SOL_IP, socket.IP_DROP_MEMBERSHIP, m)
	}
	return []Case{
		{"multicast/join twice", false, func(t *T) {
			s := t.UDP()
			t.Check("join", add(s, mreq))
			t.Check("join again", add(s, mreq))
		}},
		{"multicast/drop not joined", false, func(t *T) {
			t.Check("drop", drop(t.UDP(), mreq))
		}},
		{"multicast/join, drop, drop", false, func(t *T) {
			s := t.UDP()
			t.Check("join", add(s, mreq))
			t.Check("drop", drop(s, mreq))
			t.Check("drop again", drop(s, mreq))
		}},
		{"multicast/join unicast address", false, func(t *T) {
			t.Check("join", add(t.UDP(), socket.IPMreq{Multiaddr: netip.MustParseAddr("10.1.2.3"), Interface: lo}))
		}},
		{"multicast/join on non-local interface address", false, func(t *T) {
			t.Check("join", add(t.UDP(), socket.IPMreq{Multiaddr: group, Interface: netip.MustParseAddr("198.51.100.7")}))
		}},
		{"multicast/join on tcp socket", false, func(t *T) {
			t.Check("join", add(t.TCP(), mreq))
		}},
		{"multicast/two sockets join same group", false, func(t *T) {
			t.Check("join 1", add(t.UDP(), mreq))
			t.Check("join 2", add(t.UDP(), mreq))
		}},
		{"multicast/IP_MULTICAST_IF", false, func(t *T) {
			s := t.UDP()
			t.GetOpt("default", s, socket.SOL_IP, socket.IP_MULTICAST_IF)
			t.Check("set 127.0.0.1", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, lo))
			t.GetOpt("get", s, socket.SOL_IP, socket.IP_MULTICAST_IF)
			t.Check("set non-local", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, netip.MustParseAddr("198.51.100.7")))
			t.Check("set 0.0.0.0", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, netip.IPv4Unspecified()))
			t.GetOpt("get", s, socket.SOL_IP, socket.IP_MULTICAST_IF)
		}},
		{"multicast/loopback delivery on lo", false, func(t *T) {
			r := t.UDP()
			t.Check("bind group", r.Bind(socket.InetAddr(netip.AddrPortFrom(group, 0))))
			port := t.Name(r).AddrPort.Port()
			t.Label(t.Name(r), "G")
			t.Check("join", add(r, mreq))
			s := t.UDP()
			// Only send when the interface is pinned to loopback.
			if t.Check("IP_MULTICAST_IF lo", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, lo)) != nil {
				return
			}
			t.Send("sendto group", s, []byte("mc"), 0, socket.InetAddr(netip.AddrPortFrom(group, port)))
			r.SetTimeout(time.Second)
			t.Recv("recv", r, 10, 0)
		}},
	}
}

func rawCases() []Case {
	return []Case{
		{"raw/icmp socket", true, func(t *T) {
			s, err := t.TrySocket(AF_INET, RAW, socket.IPPROTO_ICMP)
			if err != nil {
				return
			}
			t.Logf("proto %d", s.Proto())
			t.GetInt("IP_HDRINCL", s, socket.SOL_IP, socket.IP_HDRINCL)
			t.Logf("name %s", t.Addr(t.Name(s)))
			t.Logf("peer %s", peer(t, s))
		}},
		{"raw/IPPROTO_RAW hdrincl", true, func(t *T) {
			s, err := t.TrySocket(AF_INET, RAW, socket.IPPROTO_RAW)
			if err != nil {
				return
			}
			t.GetInt("IP_HDRINCL", s, socket.SOL_IP, socket.IP_HDRINCL)
		}},
		{"raw/bind and connect", true, func(t *T) {
			s := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
			t.Check("bind", s.Bind(t.Loop(0)))
			t.Logf("name %s", t.Addr(t.Name(s)))
			t.Check("bind non-local", t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP).Bind(socket.Inet("198.51.100.7", 0)))
			t.Check("listen", s.Listen(1))
		}},
		{"raw/echo request to loopback", true, func(t *T) {
			s := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
			// Echo request, id 0x1234 seq 1, with its checksum.
			msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}
			var sum uint32
			for i := 0; i < len(msg); i += 2 {
				sum += uint32(msg[i])<<8 | uint32(msg[i+1])
			}
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			msg[2], msg[3] = byte(^sum>>8), byte(^sum)
			t.Send("sendto", s, msg, 0, t.Loop(0))
			s.SetTimeout(2 * time.Second)
			buf := make([]byte, 200)
			for i := 0; i < 2; i++ {
				n, from, err := s.RecvFrom(buf, 0)
				if err != nil {
					t.Logf("recv: %s", ErrName(err))
					return
				}
				ihl := int(buf[0]&0xf) * 4
				if n < ihl+8 {
					t.Logf("recv: short %d", n)
					return
				}
				t.Logf("recv: %d bytes from %s icmp type %d payload %q", n, t.Addr(from), buf[ihl], buf[ihl+8:n])
			}
		}},
	}
}
