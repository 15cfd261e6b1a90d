package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// A dual-stack AF_INET6 socket keeps the IPv4 options (IP_TTL, IP_TOS,
// IP_MULTICAST_TTL: for v4-mapped traffic) apart from their IPv6
// counterparts (IPV6_UNICAST_HOPS, IPV6_TCLASS, IPV6_MULTICAST_HOPS), as
// Linux's inet_sock and ipv6_pinfo do: setting one never shows in the
// other, before and after connect, and an accepted socket inherits both.
func inet6TTLCases() []Case {
	V6, IP := socket.IPPROTO_IPV6, socket.SOL_IP
	type pair struct {
		name       string
		l4, o4, o6 int // level of the IPv4 option, the IPv4 and IPv6 names
		v4, v6     int // values to set
		udpOnly    bool
	}
	pairs := []pair{
		{"IP_TTL and IPV6_UNICAST_HOPS", IP, socket.IP_TTL, socket.IPV6_UNICAST_HOPS, 5, 9, false},
		{"IP_TOS and IPV6_TCLASS", IP, socket.IP_TOS, socket.IPV6_TCLASS, 0x10, 0x28, false},
		{"IP_MULTICAST_TTL and IPV6_MULTICAST_HOPS", IP, socket.IP_MULTICAST_TTL, socket.IPV6_MULTICAST_HOPS, 3, 7, true},
	}
	both := func(t *T, s sockapi.Sock, p pair, when string) {
		t.GetInt(when+": v4 option", s, p.l4, p.o4)
		t.GetInt(when+": v6 option", s, V6, p.o6)
	}
	var cs []Case
	for _, p := range pairs {
		p := p
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			if ty == STREAM && p.udpOnly {
				continue
			}
			cs = append(cs, Case{Name: "inet6/apart/" + typeNames[ty] + "/" + p.name, Run: func(t *T) {
				s := t.Socket6(ty)
				t.Check("set v4", s.SetSockOptInt(p.l4, p.o4, p.v4))
				both(t, s, p, "after v4")
				t.Check("set v6", s.SetSockOptInt(V6, p.o6, p.v6))
				both(t, s, p, "after v6")
				t.Check("reset v4", s.SetSockOptInt(p.l4, p.o4, -1))
				both(t, s, p, "after v4 -1")
				t.Check("reset v6", s.SetSockOptInt(V6, p.o6, -1))
				both(t, s, p, "after v6 -1")
			}})
		}
	}
	for _, p := range pairs[:2] {
		p := p
		cs = append(cs, Case{Name: "inet6/apart/tcp " + p.name + " after a v4-mapped connect and in the accepted socket", Run: func(t *T) {
			l := t.Socket6(STREAM)
			t.Check("listener set v4", l.SetSockOptInt(p.l4, p.o4, p.v4))
			t.Check("listener set v6", l.SetSockOptInt(V6, p.o6, p.v6))
			a, _ := t.Bind6("bind ::", l, in6("::", 0), "L")
			t.Must("listen", l.Listen(1))
			c := t.Socket6(STREAM)
			t.Check("client set v4", c.SetSockOptInt(p.l4, p.o4, p.v4+4))
			t.Check("client set v6", c.SetSockOptInt(V6, p.o6, p.v6+4))
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(in6("127.0.0.1", port(a))))
			both(t, c, p, "connected client")
			t.Check("client set v6 again", c.SetSockOptInt(V6, p.o6, p.v6+8))
			both(t, c, p, "connected client")
			l.SetTimeout(5 * time.Second)
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			both(t, s, p, "accepted")
		}})
	}
	cs = append(cs,
		Case{Name: "inet6/apart/udp datagrams carry their family's TTL and TOS", Root: true, Run: func(t *T) {
			s := t.Socket6(DGRAM)
			t.Check("IP_TTL=5", s.SetSockOptInt(IP, socket.IP_TTL, 5))
			t.Check("IP_TOS=0x10", s.SetSockOptInt(IP, socket.IP_TOS, 0x10))
			t.Check("IPV6_UNICAST_HOPS=9", s.SetSockOptInt(V6, socket.IPV6_UNICAST_HOPS, 9))
			t.Check("IPV6_TCLASS=0x28", s.SetSockOptInt(V6, socket.IPV6_TCLASS, 0x28))
			// IPv4: a raw socket shows the header (other UDP on the
			// host is skipped by port).
			r4, err := t.TrySocket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
			if err != nil {
				return
			}
			r4.SetTimeout(5 * time.Second)
			u4 := t.UDP()
			a4, _ := t.Bind6("bind 127.0.0.1", u4, socket.Inet("127.0.0.1", 0), "P")
			t.Send("sendto v4-mapped", s, []byte("v4"), 0, in6("127.0.0.1", port(a4)))
			buf := make([]byte, 2048)
			for i := 0; i < 100; i++ {
				n, _, err := r4.RecvFrom(buf, 0)
				if err != nil {
					t.Logf("raw IPv4: %s", ErrName(err))
					break
				}
				if hl := int(buf[0]&15) * 4; n >= hl+8 && int(buf[hl+2])<<8|int(buf[hl+3]) == port(a4) {
					t.Logf("v4-mapped datagram: ttl %d tos %#x", buf[8], buf[1])
					break
				}
			}
			// IPv6: the receiver's IPV6_HOPLIMIT.
			u6 := t.Socket6(DGRAM)
			a6, _ := t.Bind6("bind ::1", u6, in6("::1", 0), "Q")
			u6.SetTimeout(5 * time.Second)
			t.Check("IPV6_RECVHOPLIMIT", u6.SetSockOptInt(V6, socket.IPV6_RECVHOPLIMIT, 1))
			t.Send("sendto ::1", s, []byte("v6"), 0, a6)
			t.RecvHops("recvmsg", u6)
		}},
	)
	return cs
}
