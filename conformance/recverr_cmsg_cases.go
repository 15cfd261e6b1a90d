package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// The IP-level control messages of an error-queue read (Linux's
// ip_recv_error / ipv6_recv_error give, for an error of ICMP origin, the
// ones the socket asked for, describing the ICMP packet; none for a
// local error), compared byte for byte (loopback is interface 1 on
// both sides).

// ipCmsgText decodes one control message other than IP_RECVERR and
// shows its bytes.
func (t *T) ipCmsgText(b []byte) string {
	ne := binary.NativeEndian
	clen := int(ne.Uint64(b))
	level, typ := int32(ne.Uint32(b[8:])), int32(ne.Uint32(b[12:]))
	shown := append([]byte(nil), b...)
	d := b[16:clen]
	ifx := func(off int) string {
		if off+4 > len(d) {
			return "?"
		}
		return fmt.Sprint(ne.Uint32(d[off:]))
	}
	// A labelled port (a socket of the case) differs per side: shown
	// by its label and masked in the bytes.
	port := func() string {
		p := binary.BigEndian.Uint16(d[2:])
		if l, ok := t.ports[p]; ok {
			copy(shown[16+2:], "\xee\xee")
			return l
		}
		return fmt.Sprint(p)
	}
	var text string
	switch {
	case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(d) >= 12:
		text = fmt.Sprintf("SOL_IP/IP_PKTINFO ifindex %s spec_dst %v addr %v", ifx(0), netip.AddrFrom4([4]byte(d[4:8])), netip.AddrFrom4([4]byte(d[8:12])))
	case level == unix.IPPROTO_IP && typ == unix.IP_ORIGDSTADDR && len(d) >= 8:
		text = fmt.Sprintf("SOL_IP/IP_ORIGDSTADDR family %d %v port %s", ne.Uint16(d), netip.AddrFrom4([4]byte(d[4:8])), port())
	case level == unix.IPPROTO_IP && typ == unix.IP_TTL && len(d) >= 4:
		text = fmt.Sprintf("SOL_IP/IP_TTL %d", int32(ne.Uint32(d)))
	case level == unix.IPPROTO_IP && typ == unix.IP_TOS && len(d) >= 1:
		text = fmt.Sprintf("SOL_IP/IP_TOS %#x", d[0])
	case level == unix.IPPROTO_IP && typ == unix.IP_RECVOPTS:
		text = fmt.Sprintf("SOL_IP/IP_RECVOPTS %x", d)
	case level == unix.IPPROTO_IP && typ == unix.IP_RETOPTS:
		text = fmt.Sprintf("SOL_IP/IP_RETOPTS %x", d)
	case level == unix.IPPROTO_IPV6 && typ == socket.IPV6_FLOWINFO && len(d) >= 4:
		text = fmt.Sprintf("SOL_IPV6/IPV6_FLOWINFO %#08x", binary.BigEndian.Uint32(d))
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(d) >= 20:
		text = fmt.Sprintf("SOL_IPV6/IPV6_PKTINFO addr %v ifindex %s", netip.AddrFrom16([16]byte(d[:16])), ifx(16))
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_HOPLIMIT && len(d) >= 4:
		text = fmt.Sprintf("SOL_IPV6/IPV6_HOPLIMIT %d", int32(ne.Uint32(d)))
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_TCLASS && len(d) >= 4:
		text = fmt.Sprintf("SOL_IPV6/IPV6_TCLASS %d", int32(ne.Uint32(d)))
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_ORIGDSTADDR && len(d) >= 28:
		text = fmt.Sprintf("SOL_IPV6/IPV6_ORIGDSTADDR family %d %v port %s scope %d", ne.Uint16(d), netip.AddrFrom16([16]byte(d[8:24])), port(), ne.Uint32(d[24:]))
	default:
		text = fmt.Sprintf("level %d type %d", level, typ)
	}
	return fmt.Sprintf("%s len %d: %s", text, clen, hex.EncodeToString(shown))
}

func recverrCmsgCases() []Case {
	opt := func(t *T, s sockapi.Sock, level, name int, label string) {
		t.Check(label, s.SetSockOptInt(level, name, 1))
	}
	v4 := func(name string, payload string, opts func(t *T, s sockapi.Sock)) Case {
		return Case{Name: "recverr/cmsg/udp " + name, Run: func(t *T) {
			s := t.UDP()
			s.SetTimeout(5 * time.Second)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			opt(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1")
			opts(t, s)
			t.Send("sendto closed", s, []byte(payload), 0, c)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.RecvErr("recvmsg MSG_ERRQUEUE empty", s, 64)
		}}
	}
	v6 := func(name, dst, payload string, opts func(t *T, s sockapi.Sock)) Case {
		return Case{Name: "recverr/cmsg/udp6 " + name, Run: func(t *T) {
			s := t.Socket6(DGRAM)
			s.SetTimeout(5 * time.Second)
			var c *socket.SockaddrInet
			if strings.HasPrefix(dst, "::ffff:") {
				c = t.ClosedPort(AF_INET, "127.0.0.1")
				c = in6(dst, port(c))
				opt(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1")
			} else {
				c = t.ClosedPort(AF_INET6, dst)
				opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, "IPV6_RECVERR=1")
			}
			opts(t, s)
			t.Send("sendto closed", s, []byte(payload), 0, c)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}}
	}
	pktinfo := func(t *T, s sockapi.Sock) { opt(t, s, socket.SOL_IP, socket.IP_PKTINFO, "IP_PKTINFO=1") }
	origDst := func(t *T, s sockapi.Sock) {
		opt(t, s, socket.SOL_IP, socket.IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR=1")
	}
	all6 := func(t *T, s sockapi.Sock) {
		opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1")
		opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT=1")
		opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, "IPV6_RECVTCLASS=1")
		opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR=1")
	}
	cs := []Case{
		v4("IP_PKTINFO", "hello", pktinfo),
		v4("IP_RECVORIGDSTADDR", "hello", origDst),
		v4("IP_RECVORIGDSTADDR, 3-byte payload", "abc", origDst),
		v4("IP_PKTINFO and IP_RECVORIGDSTADDR", "hello", func(t *T, s sockapi.Sock) { origDst(t, s); pktinfo(t, s) }),
		v6("::1, IPV6_RECVPKTINFO", "::1", "hello6", func(t *T, s sockapi.Sock) {
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1")
		}),
		v6("::1, IPV6_RECVHOPLIMIT", "::1", "hello6", func(t *T, s sockapi.Sock) {
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT=1")
		}),
		v6("::1, IPV6_RECVTCLASS", "::1", "hello6", func(t *T, s sockapi.Sock) {
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, "IPV6_RECVTCLASS=1")
		}),
		v6("::1, all four", "::1", "hello6", all6),
		v6("::1, IP_PKTINFO only", "::1", "hello6", pktinfo),
		v6("v4-mapped, IPV6_RECVPKTINFO", "::ffff:127.0.0.1", "mapped", func(t *T, s sockapi.Sock) {
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1")
		}),
		v6("v4-mapped, IP_PKTINFO", "::ffff:127.0.0.1", "mapped", pktinfo),
		v6("v4-mapped, all four and IP_PKTINFO", "::ffff:127.0.0.1", "mapped", func(t *T, s sockapi.Sock) { all6(t, s); pktinfo(t, s) }),
		v6("v4-mapped, IP_RECVORIGDSTADDR", "::ffff:127.0.0.1", "mapped", origDst),
		{Name: "recverr/cmsg/udp IP_PKTINFO, connected, IP_TOS", Run: func(t *T) {
			s := t.UDP()
			s.SetTimeout(5 * time.Second)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			opt(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1")
			pktinfo(t, s)
			t.Check("IP_TOS=0x20", s.SetSockOptInt(socket.SOL_IP, socket.IP_TOS, 0x20))
			t.Check("connect", s.Connect(c))
			t.Send("send", s, []byte("hello"), 0, nil)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}},
		{Name: "recverr/cmsg/udp6 local EMSGSIZE, IPV6_RECVPKTINFO and IPV6_RECVHOPLIMIT", Run: func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind receiver", r, in6("::1", 0), "R")
			s := t.Socket6(DGRAM)
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, "IPV6_RECVERR=1")
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, "IPV6_DONTFRAG=1")
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO=1")
			opt(t, s, socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT=1")
			t.Send("sendto 65527 bytes", s, make([]byte, 65527), 0, ra)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}},
		{Name: "recverr/cmsg/raw udp closed port, IP_PKTINFO", Root: true, Run: func(t *T) {
			s := t.Socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			opt(t, s, socket.SOL_IP, socket.IP_RECVERR, "IP_RECVERR=1")
			pktinfo(t, s)
			t.sendRawUDP(s, port(c))
			t.WaitErr(s)
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 64, 4)
		}},
	}
	return cs
}
