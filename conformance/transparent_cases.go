package conformance

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// The transparent-proxy socket options (socket/transparent.go) against
// Linux: what getsockopt reads before and after setting them, at both
// levels; which family takes which level; and bind() to an address the
// host does not have (198.51.100.7, 2001:db8:77::7: documentation
// addresses, nothing is sent) without them, with IP_TRANSPARENT and with
// IP_FREEBIND; and sendmsg with IP_PKTINFO / IPV6_PKTINFO naming those
// addresses as the source, whose datagram (when the kernel takes it)
// goes from them to loopback only. IP_TRANSPARENT needs CAP_NET_ADMIN on
// Linux, so the cases that set it need root on the kernel.

func transparentCases() []Case {
	var cs []Case
	foreign4 := socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:0"))
	foreign6 := socket.InetAddr(netip.MustParseAddrPort("[2001:db8:77::7]:0"))
	ip, ip6 := socket.SOL_IP, socket.IPPROTO_IPV6
	type opt struct {
		name         string
		level, name2 int
	}
	opts4 := []opt{
		{"IP_TRANSPARENT", ip, socket.IP_TRANSPARENT},
		{"IP_FREEBIND", ip, socket.IP_FREEBIND},
		{"IP_RECVORIGDSTADDR", ip, socket.IP_RECVORIGDSTADDR},
	}
	opts6 := []opt{
		{"IPV6_TRANSPARENT", ip6, socket.IPV6_TRANSPARENT},
		{"IPV6_FREEBIND", ip6, socket.IPV6_FREEBIND},
		{"IPV6_RECVORIGDSTADDR", ip6, socket.IPV6_RECVORIGDSTADDR},
	}
	for _, fam := range []int{AF_INET, AF_INET6} {
		fam := fam
		fname := "inet"
		foreign := foreign4
		if fam == AF_INET6 {
			fname, foreign = "inet6", foreign6
		}
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			p := "transparent/" + fname + "/" + typeNames[ty] + "/"
			mk := func(t *T) sockapi.Sock { return t.Socket(fam, ty, 0) }
			cs = append(cs,
				Case{p + "defaults", false, func(t *T) {
					s := mk(t)
					for _, o := range append(append([]opt{}, opts4...), opts6...) {
						t.GetInt(o.name, s, o.level, o.name2)
					}
				}},
				Case{p + "set and read back", true, func(t *T) {
					for _, o := range append(append([]opt{}, opts4...), opts6...) {
						s := mk(t)
						t.Check(o.name+"=1", s.SetSockOptInt(o.level, o.name2, 1))
						for _, r := range append(append([]opt{}, opts4...), opts6...) {
							t.GetInt("  "+r.name, s, r.level, r.name2)
						}
						t.Check(o.name+"=0", s.SetSockOptInt(o.level, o.name2, 0))
						t.GetInt("  "+o.name, s, o.level, o.name2)
					}
				}},
				Case{p + "bind foreign address", true, func(t *T) {
					t.Check("plain", mk(t).Bind(foreign))
					for _, o := range []opt{opts4[0], opts4[1]} {
						s := mk(t)
						t.Check(o.name, s.SetSockOptInt(o.level, o.name2, 1))
						if t.Check("bind", s.Bind(foreign)) == nil {
							n := t.Name(s)
							t.Logf("name %s", t.Addr(n))
						}
					}
				}},
			)
		}
	}
	// The option value's width, as other int options: a one-byte value.
	cs = append(cs, Case{"transparent/inet/udp/values", true, func(t *T) {
		for _, v := range []int{2, -1} {
			s := t.UDP()
			t.Check(fmt.Sprintf("IP_TRANSPARENT=%d", v), s.SetSockOptInt(ip, socket.IP_TRANSPARENT, v))
			t.GetInt("IP_TRANSPARENT", s, ip, socket.IP_TRANSPARENT)
		}
	}})
	// sendmsg with a source the host does not have (IP_PKTINFO's
	// spec_dst, IPV6_PKTINFO's address): refused without the options;
	// IPv4 takes it with IP_TRANSPARENT only, IPv6 with either option.
	// The datagram goes to a receiver on loopback, from the foreign
	// address; the receiver shows which datagram came first.
	pktinfo := func(fam int, o opt) Case {
		fname, oname := "inet", "no option"
		if fam == AF_INET6 {
			fname = "inet6"
		}
		if o.name != "" {
			oname = o.name
		}
		return Case{Name: "transparent/" + fname + "/udp/pktinfo non-local source, " + oname, Root: true, Run: func(t *T) {
			s := t.Socket(fam, DGRAM, 0)
			if o.name != "" {
				t.Check(o.name, s.SetSockOptInt(o.level, o.name2, 1))
			}
			if fam == AF_INET {
				r := t.UDP()
				ra := t.BindLocal(r, "R")
				r.SetTimeout(5 * time.Second)
				t.SendMsg("sendmsg", s, []byte("foreign"), ra, socket.InPktinfo{SpecDst: foreign4.AddrPort.Addr()})
				t.SendMsg("sendmsg plain", s, []byte("plain"), ra, socket.InPktinfo{})
				t.RecvFrom("recvfrom", r, 64, 0)
				return
			}
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind receiver", r, in6("::", 0), "R")
			r.SetTimeout(5 * time.Second)
			t.SendMsg("sendmsg", s, []byte("foreign"), in6("::1", port(ra)), socket.In6Pktinfo{Addr: foreign6.AddrPort.Addr()})
			t.SendMsg("sendmsg plain", s, []byte("plain"), in6("::1", port(ra)), socket.In6Pktinfo{})
			t.RecvFrom("recvfrom", r, 64, 0)
		}}
	}
	cs = append(cs,
		pktinfo(AF_INET, opt{}), pktinfo(AF_INET, opts4[0]), pktinfo(AF_INET, opts4[1]),
		pktinfo(AF_INET6, opt{}), pktinfo(AF_INET6, opts6[0]), pktinfo(AF_INET6, opts6[1]),
	)
	return cs
}
