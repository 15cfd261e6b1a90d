package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Echo divert rules through the socket API (stack/transparent_icmp.go):
// host A pings an address behind host B; B's transparent raw socket
// reads the request with its original destination and answers from
// it, which a socket without IP_TRANSPARENT may not do (ENETUNREACH for
// an IP_PKTINFO source, EINVAL for an IPV6_PKTINFO one, as Linux).
func TestTransparentEchoSockets(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		t.Run(name, func(t *testing.T) {
			var p *pair
			var dst netip.Addr
			fam, proto, level, opt := AF_INET, IPPROTO_ICMP, SOL_IP, IP_TRANSPARENT
			req, rep := wire.ICMPEcho, wire.ICMPEchoReply
			if v6 {
				p = newPair6(t)
				dst = netip.MustParseAddr("2001:db8:77::7")
				p.sa.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("2001:db8:77::/48"), Gateway: v6B, NIC: p.sa.NICByName("eth0")})
				fam, proto, level, opt = AF_INET6, IPPROTO_ICMPV6, IPPROTO_IPV6, IPV6_TRANSPARENT
				req, rep = wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply
			} else {
				p = tproxyPair(t)
				dst = netip.MustParseAddr("198.51.100.7")
			}
			if err := p.sb.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentICMPEcho, Dst: netip.PrefixFrom(dst, 24)}); err != nil {
				t.Fatal(err)
			}
			plain := mustSocket(t, p.b, fam, SOCK_RAW, proto)
			raw := mustSocket(t, p.b, fam, SOCK_RAW, proto)
			if err := raw.SetSockOpt(level, opt, 1); err != nil {
				t.Fatal(err)
			}
			if v6 {
				if err := raw.SetSockOpt(IPPROTO_IPV6, IPV6_RECVPKTINFO, 1); err != nil {
					t.Fatal(err)
				}
				// Neighbour discovery reaches raw ICMPv6 sockets too: echo requests only.
				var f ICMP6Filter
				for i := range f {
					f[i] = ^uint32(0)
				}
				f[wire.ICMPv6EchoRequest>>5] &^= 1 << (wire.ICMPv6EchoRequest & 31)
				if err := raw.SetSockOpt(IPPROTO_ICMPV6, ICMP6_FILTER, f); err != nil {
					t.Fatal(err)
				}
			}
			raw.SetTimeout(5 * time.Second)
			ping := mustSocket(t, p.a, fam, SOCK_DGRAM, proto)
			ping.SetTimeout(5 * time.Second)
			if _, err := ping.SendTo([]byte{req, 0, 0, 0, 0, 0, 0, 1, 'h', 'i'}, 0, ap(dst, 0)); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 256)
			var m []byte
			var from Sockaddr
			if v6 {
				n, _, f, info, err := raw.RecvMsg6(b, 0)
				if err != nil || !info.HasPktInfo || info.Addr != dst {
					t.Fatalf("recvmsg: %v, pktinfo %+v", err, info)
				}
				m, from = b[:n], f
			} else {
				n, f, err := raw.RecvFrom(b, 0)
				if err != nil {
					t.Fatal(err)
				}
				ip := wire.IPv4(b[:n])
				if ip.Dst() != dst {
					t.Fatalf("to %v", ip.Dst())
				}
				m, from = ip.Payload(), f
			}
			if m[0] != req || string(m[8:]) != "hi" {
				t.Fatalf("request %x", m)
			}
			reply := append([]byte(nil), m...)
			reply[0], reply[2], reply[3] = rep, 0, 0
			if !v6 {
				wire.ICMPv4(reply).FillChecksum()
			}
			var src any = InPktinfo{SpecDst: dst}
			want := syscall.ENETUNREACH
			if v6 {
				src, want = In6Pktinfo{Addr: dst}, syscall.EINVAL
			}
			if _, err := plain.SendMsg(reply, 0, from, src); !errors.Is(err, want) {
				t.Fatalf("without IP_TRANSPARENT: %v, want %v", err, want)
			}
			if _, err := raw.SendMsg(reply, 0, from, src); err != nil {
				t.Fatal(err)
			}
			n, got, err := ping.RecvFrom(b, 0)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if a := got.(*SockaddrInet).AddrPort.Addr().Unmap(); a != dst || b[0] != rep || string(b[8:n]) != "hi" {
				t.Fatalf("reply %x from %v", b[:n], a)
			}
			if st := p.sb.Stats(); st.TProxy.DivertedEcho.Load() != 1 || st.ICMP.OutEchoReps.Load()+st.ICMP6.OutEchoReplies.Load() != 0 {
				t.Fatal("counters")
			}
		})
	}
}
