package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// IP_RECVERR_RFC4884 / IPV6_RECVERR_RFC4884: the options, and ICMP errors
// with RFC 4884 extension structures, well formed and not, injected on
// each side's loopback by a raw socket (IPPROTO_RAW for ICMPv4, an
// ICMPv6 raw socket for ICMPv6; the kernel's side needs root). Each
// error quotes a UDP datagram from the receiving socket's own address
// and port, so both stacks hand it to that socket; ee_rfc4884 (the
// union over ee_data) is compared with the rest of the control message.

// ext4884 describes the ICMP error a case injects.
type ext4884 struct {
	typ, code uint8
	words     uint8 // the RFC 4884 length field: 32-bit words (IPv4), 64-bit words (IPv6)
	pointer   uint8 // an ICMPv4 parameter problem's pointer
	orig      int   // bytes of original datagram (inner IP header on) before the extension
	ext       []byte
}

// mplsExt is an extension structure (version 2) with one MPLS label
// stack object (RFC 4950: class 1, c-type 1) holding label 16, TC 0,
// S set, TTL 1; its checksum is set when sum.
func mplsExt(version uint8, sum bool) []byte {
	b := []byte{version << 4, 0, 0, 0, 0, 8, 1, 1, 0x00, 0x01, 0x01, 0x01}
	if sum {
		binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
	}
	return b
}

// withSum sets the extension header's checksum over b.
func withSum(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
	return b
}

// inject4 sends, from a raw IPPROTO_RAW socket, an ICMPv4 error to
// 127.0.0.1 quoting a UDP datagram from 127.0.0.1:sport.
func (t *T) inject4(e ext4884, sport int) {
	r := t.Socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
	orig := make([]byte, max(e.orig, 28))
	orig[0], orig[8], orig[9] = 0x45, 64, socket.IPPROTO_UDP
	binary.BigEndian.PutUint16(orig[2:], uint16(len(orig)))
	copy(orig[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	binary.BigEndian.PutUint16(orig[10:], wire.Checksum(orig[:20]))
	binary.BigEndian.PutUint16(orig[20:], uint16(sport))
	binary.BigEndian.PutUint16(orig[22:], 9)
	binary.BigEndian.PutUint16(orig[24:], uint16(len(orig)-20))
	for i := 28; i < len(orig); i++ {
		orig[i] = byte(i)
	}
	icmp := append([]byte{e.typ, e.code, 0, 0, e.pointer, e.words, 0, 0}, orig...)
	icmp = append(icmp, e.ext...)
	binary.BigEndian.PutUint16(icmp[2:], wire.Checksum(icmp))
	p := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, socket.IPPROTO_ICMP, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}, icmp...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:20]))
	t.Send("inject ICMP", r, p, 0, socket.Inet("127.0.0.1", 0))
}

// inject6 sends, from a raw ICMPv6 socket, an ICMPv6 error to ::1
// quoting a UDP datagram from [::1]:sport (the checksum is the
// socket's to fill).
func (t *T) inject6(e ext4884, sport int) {
	r := t.Socket(AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
	orig := make([]byte, max(e.orig, 48))
	orig[0], orig[6], orig[7] = 0x60, socket.IPPROTO_UDP, 64
	binary.BigEndian.PutUint16(orig[4:], uint16(len(orig)-40))
	orig[23], orig[39] = 1, 1
	binary.BigEndian.PutUint16(orig[40:], uint16(sport))
	binary.BigEndian.PutUint16(orig[42:], 9)
	binary.BigEndian.PutUint16(orig[44:], uint16(len(orig)-40))
	for i := 48; i < len(orig); i++ {
		orig[i] = byte(i)
	}
	icmp := append([]byte{e.typ, e.code, 0, 0, e.words, e.pointer, 0, 0}, orig...)
	icmp = append(icmp, e.ext...)
	t.Send("inject ICMPv6", r, icmp, 0, in6("::1", 0))
}

func rfc4884Cases() []Case {
	const (
		v4Unreach  = 3
		v4Exceeded = 11
		v4Param    = 12
		v6Unreach  = 1
		v6Exceeded = 3
		v6Param    = 4
	)
	good := mplsExt(2, true)
	badSum := mplsExt(2, true)
	badSum[3] ^= 0xff
	shortObj := withSum([]byte{0x20, 0, 0, 0, 0, 2, 1, 1})
	longObj := withSum([]byte{0x20, 0, 0, 0, 0, 12, 1, 1, 0, 1, 1, 1})
	// Linux checks nothing of a version other than 2, not its checksum.
	v1bad := mplsExt(1, true)
	v1bad[3] ^= 0xff
	trailing := withSum([]byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0, 1, 1, 1, 0, 0})
	v4 := func(name string, e ext4884, on bool) Case {
		return Case{Name: "recverr/rfc4884/udp " + name, Root: true, Run: func(t *T) {
			s := t.UDP()
			s.SetTimeout(5 * time.Second)
			a := t.BindLocal(s, "S")
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			if on {
				t.Check("IP_RECVERR_RFC4884=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1))
			}
			t.inject4(e, port(a))
			if e.typ == 4 {
				t.Quiesce() // a UDP socket hears no source quench: nothing to wait for
			} else {
				t.WaitErr(s)
			}
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 256, 0)
		}}
	}
	v6 := func(name string, e ext4884, on bool) Case {
		return Case{Name: "recverr/rfc4884/udp6 " + name, Root: true, Run: func(t *T) {
			s := t.Socket6(DGRAM)
			s.SetTimeout(5 * time.Second)
			a, _ := t.Bind6("bind", s, in6("::1", 0), "S")
			t.Check("IPV6_RECVERR=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			if on {
				t.Check("IPV6_RECVERR_RFC4884=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, 1))
			}
			t.inject6(e, port(a))
			t.WaitErr(s)
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 256, 0)
		}}
	}
	u := func(words uint8, ext []byte) ext4884 {
		return ext4884{typ: v4Unreach, code: 3, words: words, orig: int(words) * 4, ext: ext}
	}
	u6 := func(words uint8, ext []byte) ext4884 {
		return ext4884{typ: v6Unreach, code: 4, words: words, orig: int(words) * 8, ext: ext}
	}
	cs := []Case{
		v4("port unreachable, MPLS object", u(32, good), true),
		v4("port unreachable, MPLS object, option off", u(32, good), false),
		v4("port unreachable, 160-byte datagram", u(40, good), true),
		v4("port unreachable, bad checksum", u(32, badSum), true),
		v4("port unreachable, checksum zero", u(32, mplsExt(2, false)), true),
		v4("port unreachable, checksum zero, bad object", u(32, []byte{0x20, 0, 0, 0, 0, 1, 1, 1}), true),
		v4("port unreachable, version 1", u(32, mplsExt(1, true)), true),
		v4("port unreachable, version 1, bad checksum", u(32, v1bad), true),
		v4("port unreachable, object shorter than its header", u(32, shortObj), true),
		v4("port unreachable, object past the end", u(32, longObj), true),
		v4("port unreachable, 2 bytes after the object", u(32, trailing), true),
		v4("port unreachable, header only", u(32, withSum([]byte{0x20, 0, 0, 0})), true),
		v4("port unreachable, 3 bytes of extension", u(32, []byte{0x20, 0, 0}), true),
		v4("port unreachable, length under 128 bytes", ext4884{typ: v4Unreach, code: 3, words: 16, orig: 64, ext: good}, true),
		v4("port unreachable, no length", ext4884{typ: v4Unreach, code: 3, orig: 128, ext: good}, true),
		v4("port unreachable, length past the message", ext4884{typ: v4Unreach, code: 3, words: 64, orig: 128, ext: good}, true),
		v4("time exceeded, MPLS object", ext4884{typ: v4Exceeded, words: 32, orig: 128, ext: good}, true),
		v4("parameter problem, MPLS object", ext4884{typ: v4Param, pointer: 9, words: 32, orig: 128, ext: good}, true),
		v4("source quench with a length", ext4884{typ: 4, words: 32, orig: 128, ext: good}, true),
		v6("port unreachable, MPLS object", u6(16, good), true),
		v6("port unreachable, MPLS object, option off", u6(16, good), false),
		v6("port unreachable, bad checksum", u6(16, badSum), true),
		v6("port unreachable, version 1", u6(16, mplsExt(1, true)), true),
		v6("port unreachable, object past the end", u6(16, longObj), true),
		v6("port unreachable, length under 128 bytes", ext4884{typ: v6Unreach, code: 4, words: 8, orig: 64, ext: good}, true),
		v6("time exceeded, MPLS object", ext4884{typ: v6Exceeded, words: 16, orig: 128, ext: good}, true),
		v6("parameter problem, not covered", ext4884{typ: v6Param, words: 16, orig: 128, ext: good}, true),
	}
	cs = append(cs,
		Case{Name: "recverr/rfc4884/udp6 v4-mapped, IP_RECVERR_RFC4884", Root: true, Run: func(t *T) {
			rfc4884Mapped(t, socket.SOL_IP, socket.IP_RECVERR_RFC4884, good)
		}},
		Case{Name: "recverr/rfc4884/udp6 v4-mapped, IPV6_RECVERR_RFC4884 only", Root: true, Run: func(t *T) {
			rfc4884Mapped(t, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, good)
		}},
		Case{Name: "recverr/rfc4884/raw udp, MPLS object", Root: true, Run: func(t *T) {
			// A raw socket's payload starts after the quoted IP header:
			// ee_rfc4884.len counts from there.
			s := t.Socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
			s.SetTimeout(5 * time.Second)
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			t.Check("IP_RECVERR_RFC4884=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1))
			t.inject4(u(32, good), 7)
			t.WaitErr(s)
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 256, 8)
		}},
		Case{Name: "recverr/rfc4884/options udp", Run: func(t *T) {
			s := t.UDP()
			t.GetInt("IP_RECVERR_RFC4884", s, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
			for _, v := range []any{1, 2, -1, 0, 1, "", "\x01", "\x02", "\x01\x00", "\x02\x00\x00\x00", "\x01\x00\x00\x00\x07"} {
				t.Check(fmt.Sprintf("IP_RECVERR_RFC4884=%q", fmt.Sprint(v)), s.SetSockOpt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, v))
				t.GetInt("IP_RECVERR_RFC4884", s, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
			}
			t.Check("IPV6_RECVERR_RFC4884 on AF_INET", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, 1))
			t.GetInt("IPV6_RECVERR_RFC4884 on AF_INET", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
		}},
		Case{Name: "recverr/rfc4884/options udp6", Run: func(t *T) {
			s := t.Socket6(DGRAM)
			t.GetInt("IPV6_RECVERR_RFC4884", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
			for _, v := range []any{1, 2, -1, 0, 1, "", "\x01", "\x01\x00", "\x00\x00\x00\x00", "\x01\x00\x00\x00\x07"} {
				t.Check(fmt.Sprintf("IPV6_RECVERR_RFC4884=%q", fmt.Sprint(v)), s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, v))
				t.GetInt("IPV6_RECVERR_RFC4884", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
			}
			t.Check("IP_RECVERR_RFC4884=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1))
			t.GetInt("IP_RECVERR_RFC4884", s, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
			t.GetInt("IPV6_RECVERR_RFC4884", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
		}},
		Case{Name: "recverr/rfc4884/options tcp", Run: func(t *T) {
			s := t.TCP()
			t.GetInt("IP_RECVERR_RFC4884", s, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
			for _, v := range []any{1, 2, "", "\x01"} {
				t.Check(fmt.Sprintf("IP_RECVERR_RFC4884=%q", fmt.Sprint(v)), s.SetSockOpt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, v))
				t.GetInt("IP_RECVERR_RFC4884", s, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
			}
			t.Check("IPV6_RECVERR_RFC4884 on AF_INET", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, 1))
			s6 := t.Socket6(STREAM)
			t.GetInt("IPV6_RECVERR_RFC4884", s6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
			for _, v := range []any{1, -1, "\x01"} {
				t.Check(fmt.Sprintf("IPV6_RECVERR_RFC4884=%q", fmt.Sprint(v)), s6.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, v))
				t.GetInt("IPV6_RECVERR_RFC4884", s6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
			}
			t.Check("IP_RECVERR_RFC4884=1 on AF_INET6", s6.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1))
			t.GetInt("IP_RECVERR_RFC4884 on AF_INET6", s6, socket.SOL_IP, socket.IP_RECVERR_RFC4884)
		}},
		Case{Name: "recverr/rfc4884/options raw6", Root: true, Run: func(t *T) {
			s := t.Socket(AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
			t.Check("IP_RECVERR_RFC4884=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1))
			t.Check("IPV6_RECVERR_RFC4884=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884, 1))
			t.GetInt("IPV6_RECVERR_RFC4884", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR_RFC4884)
		}},
	)
	return cs
}

// rfc4884Mapped: an AF_INET6 socket on the wildcard hears an ICMPv4
// error about its v4 traffic; IP_RECVERR_RFC4884, not the IPv6 option,
// governs it.
func rfc4884Mapped(t *T, level, name int, ext []byte) {
	s := t.Socket6(DGRAM)
	s.SetTimeout(5 * time.Second)
	a, _ := t.Bind6("bind", s, in6("::", 0), "S")
	t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
	t.Check("RFC4884 option=1", s.SetSockOptInt(level, name, 1))
	t.inject4(ext4884{typ: 3, code: 3, words: 32, orig: 128, ext: ext}, port(a))
	t.WaitErr(s)
	t.recvErr("recvmsg MSG_ERRQUEUE", s, 256, 0)
}
