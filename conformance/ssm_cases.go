package conformance

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// Source-specific multicast options (RFC 3678) with Linux's structs,
// given as raw uapi bytes on both sides so that the lengths are judged
// too. Every call names the loopback interface (127.0.0.1, index 1):
// nothing leaves the host, and lo sends no IGMP.

var (
	ssmGroup  = netip.MustParseAddr("232.1.2.3")
	ssmGroup6 = netip.MustParseAddr("ff15::8000:1")
	ssmLo     = netip.MustParseAddr("127.0.0.1")
	ssmSrcA   = netip.MustParseAddr("192.0.2.1")
	ssmSrcB   = netip.MustParseAddr("192.0.2.2")
)

// getBuf logs a getsockopt with a value-result buffer: the optlen and
// the filter it holds.
func (t *T) getBuf(step string, s sockapi.Sock, level, name int, buf []byte) {
	var n int
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		n, err = v.GetSockOptBuf(level, name, buf)
	case sockapi.HostSock:
		n, err = v.GetSockOptBuf(level, name, buf)
	default:
		err = fmt.Errorf("no getsockopt buffer on %T", s)
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	ne := binary.NativeEndian
	if name == socket.IP_MSFILTER {
		var srcs []netip.Addr
		for i := 16; i+4 <= n && i+4 <= len(buf) && len(srcs) < int(ne.Uint32(buf[12:])); i += 4 {
			srcs = append(srcs, netip.AddrFrom4([4]byte(buf[i:i+4])))
		}
		t.Logf("%s: optlen %d fmode %d numsrc %d %v", step, n, ne.Uint32(buf[8:]), ne.Uint32(buf[12:]), srcs)
		return
	}
	var srcs []string
	for i := 144; i+128 <= n && i+128 <= len(buf) && len(srcs) < int(ne.Uint32(buf[140:])); i += 128 {
		srcs = append(srcs, fmt.Sprintf("fam %d %x", ne.Uint16(buf[i:]), buf[i+4:i+24]))
	}
	t.Logf("%s: optlen %d fmode %d numsrc %d %v", step, n, ne.Uint32(buf[136:]), ne.Uint32(buf[140:]), srcs)
}

func mreqSrc(g, src netip.Addr) []byte {
	return socket.IPMreqSource{Multiaddr: g, Interface: ssmLo, Sourceaddr: src}.Marshal()
}

func gsr(g, src netip.Addr) []byte {
	return socket.GroupSourceReq{Interface: 1, Group: g, Source: src}.Marshal()
}

func ssmCases() []Case {
	ip := func(s sockapi.Sock, name int, b []byte) error { return s.SetSockOpt(socket.SOL_IP, name, b) }
	msf := func(g netip.Addr, mode uint32, room int, srcs ...netip.Addr) []byte {
		m := socket.IPMsfilter{Multiaddr: g, Interface: ssmLo, Fmode: mode, Slist: srcs}.Marshal()
		if room > len(srcs) {
			b := make([]byte, 16+4*room)
			copy(b, m)
			binary.NativeEndian.PutUint32(b[12:], uint32(room))
			return b
		}
		return m
	}
	gf := func(g netip.Addr, mode uint32, room int, srcs ...netip.Addr) []byte {
		m := socket.GroupFilter{Interface: 1, Group: g, Fmode: mode, Slist: srcs}.Marshal()
		if room > len(srcs) {
			b := make([]byte, 144+128*room)
			copy(b, m)
			binary.NativeEndian.PutUint32(b[140:], uint32(room))
			return b
		}
		return m
	}
	return []Case{
		{"ssm/IP_ADD_SOURCE_MEMBERSHIP and DROP", false, func(t *T) {
			s := t.UDP()
			t.Check("drop before any join", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add A", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add A again", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add B", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.Check("drop a source never added", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmLo)))
			t.Check("block on the include filter", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmLo)))
			t.Check("any-source join on top", s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.getBuf("IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("drop A", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("drop B (the last: a leave)", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.Check("drop B again", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.getBuf("IP_MSFILTER after", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
		}},
		{"ssm/IP_BLOCK_SOURCE and UNBLOCK", false, func(t *T) {
			s := t.UDP()
			t.Check("block before a join", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("join", s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.Check("block A", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("block A again", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add-source on the exclude filter", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.getBuf("IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("unblock B (never blocked)", ip(s, socket.IP_UNBLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcB)))
			t.Check("unblock A", ip(s, socket.IP_UNBLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("unblock A again", ip(s, socket.IP_UNBLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add-source on the emptied exclude list", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.Check("leave", s.SetSockOpt(socket.SOL_IP, socket.IP_DROP_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
		}},
		{"ssm/drop-source on an any-source join", false, func(t *T) {
			s := t.UDP()
			t.Check("join", s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.Check("drop A", ip(s, socket.IP_DROP_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.getBuf("IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("block A", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("add A", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.getBuf("IP_MSFILTER after", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
		}},
		{"ssm/source limit igmp_max_msf", false, func(t *T) {
			s := t.UDP()
			for i := 0; i < 10; i++ {
				t.Check(fmt.Sprintf("add source %d", i+1), ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))))
			}
			t.Check("add source 11", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			eleven := make([]netip.Addr, 11)
			for i := range eleven {
				eleven[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(30 + i)})
			}
			t.Check("IP_MSFILTER of 11", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0, eleven...)))
			t.Check("MCAST_MSFILTER of 11", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, socket.MCAST_EXCLUDE, 0, eleven...)))
			t.Check("IP_MSFILTER of 10", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0, eleven[:10]...)))
			t.getBuf("IP_MSFILTER room 2", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 2))
		}},
		{"ssm/option sizes", false, func(t *T) {
			s := t.UDP()
			t.Check("ip_mreq_source of 8", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, make([]byte, 8)))
			t.Check("ip_mreq_source of 16", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, append(mreqSrc(ssmGroup, ssmSrcA), 0, 0, 0, 0)))
			t.Check("group_req of 100", ip(s, socket.MCAST_JOIN_GROUP, make([]byte, 100)))
			t.Check("group_source_req of 263", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, ssmSrcA)[:263]))
			t.Check("ip_msfilter of 12", ip(s, socket.IP_MSFILTER, make([]byte, 12)))
			t.Check("ip_msfilter shorter than its count", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_INCLUDE, 0, ssmSrcA, ssmSrcB)[:20]))
			t.Check("group_filter of 100", ip(s, socket.MCAST_MSFILTER, make([]byte, 100)))
			t.getBuf("get ip_msfilter of 12", s, socket.SOL_IP, socket.IP_MSFILTER, make([]byte, 12))
			t.getBuf("get group_filter of 100", s, socket.SOL_IP, socket.MCAST_MSFILTER, make([]byte, 100))
		}},
		{"ssm/unicast group", false, func(t *T) {
			s := t.UDP()
			u := netip.MustParseAddr("10.1.2.3")
			t.Check("IP_ADD_SOURCE_MEMBERSHIP", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(u, ssmSrcA)))
			t.Check("IP_BLOCK_SOURCE", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(u, ssmSrcA)))
			t.Check("MCAST_JOIN_GROUP", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: u}.Marshal()))
			t.Check("MCAST_JOIN_SOURCE_GROUP", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(u, ssmSrcA)))
			t.Check("IP_MSFILTER", ip(s, socket.IP_MSFILTER, msf(u, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("MCAST_MSFILTER", ip(s, socket.MCAST_MSFILTER, gf(u, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.getBuf("get IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(u, 0, 1))
		}},
		{"ssm/MCAST_JOIN_GROUP and LEAVE at SOL_IP", false, func(t *T) {
			s := t.UDP()
			t.Check("AF_INET6 group", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("no family", ip(s, socket.MCAST_JOIN_GROUP, make([]byte, socket.SizeofGroupReq)))
			t.Check("unknown ifindex", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: badIfindex, Group: ssmGroup}.Marshal()))
			t.Check("leave before a join", ip(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("join", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("join again", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("IP_ADD_MEMBERSHIP of it", s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.getBuf("MCAST_MSFILTER", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(ssmGroup, 0, 2))
			t.Check("leave", ip(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("leave again", ip(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
		}},
		{"ssm/MCAST source calls at SOL_IP", false, func(t *T) {
			s := t.UDP()
			t.Check("block before a join", ip(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup, ssmSrcA)))
			t.Check("AF_INET6 source", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, netip.MustParseAddr("2001:db8::1"))))
			t.Check("AF_INET6 group", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, ssmSrcA)))
			t.Check("unknown ifindex", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: badIfindex, Group: ssmGroup, Source: ssmSrcA}.Marshal()))
			t.Check("join A", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, ssmSrcA)))
			t.Check("join A again", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, ssmSrcA)))
			t.Check("join B", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, ssmSrcB)))
			t.Check("block (mixing modes)", ip(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup, ssmLo)))
			t.Check("MCAST_JOIN_GROUP over it", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.getBuf("MCAST_MSFILTER room 1", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(ssmGroup, 0, 1))
			t.getBuf("MCAST_MSFILTER index 0", s, socket.SOL_IP, socket.MCAST_MSFILTER, socket.GroupFilter{Group: ssmGroup, Slist: make([]netip.Addr, 2)}.Marshal())
			t.Check("leave-source never joined", ip(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup, ssmLo)))
			t.Check("leave-source A", ip(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup, ssmSrcA)))
			t.Check("leave-source B", ip(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup, ssmSrcB)))
			t.Check("leave-source B again", ip(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup, ssmSrcB)))
			t.Check("any-source join", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("block A", ip(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup, ssmSrcA)))
			t.Check("unblock B", ip(s, socket.MCAST_UNBLOCK_SOURCE, gsr(ssmGroup, ssmSrcB)))
			t.Check("unblock A", ip(s, socket.MCAST_UNBLOCK_SOURCE, gsr(ssmGroup, ssmSrcA)))
			t.getBuf("MCAST_MSFILTER", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(ssmGroup, 0, 2))
		}},
		{"ssm/IP_MSFILTER set and get", false, func(t *T) {
			s := t.UDP()
			t.getBuf("get before a join", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 2))
			t.Check("set before a join", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("INCLUDE of nothing before a join", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_INCLUDE, 0)))
			t.Check("join", s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.getBuf("get", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 2))
			t.Check("mode 2", ip(s, socket.IP_MSFILTER, msf(ssmGroup, 2, 0, ssmSrcA)))
			t.Check("interface not ours", ip(s, socket.IP_MSFILTER, socket.IPMsfilter{Multiaddr: ssmGroup, Interface: netip.MustParseAddr("198.51.100.7"), Fmode: 1, Slist: []netip.Addr{ssmSrcA}}.Marshal()))
			t.Check("INCLUDE {A, B}", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_INCLUDE, 0, ssmSrcB, ssmSrcA)))
			t.getBuf("get room 1", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 1))
			t.getBuf("get room 0", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 0))
			t.getBuf("get room 4", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("EXCLUDE {A}", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.getBuf("get", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("add-source after it", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.Check("EXCLUDE {}", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0)))
			t.Check("add-source after it", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcB)))
			t.getBuf("get", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("INCLUDE {} (a leave)", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_INCLUDE, 0)))
			t.getBuf("get after", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
		}},
		{"ssm/MCAST_MSFILTER set and get at SOL_IP", false, func(t *T) {
			s := t.UDP()
			t.Check("set before a join", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("AF_INET6 group", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup6, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("join", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("INCLUDE {B, A}", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, socket.MCAST_INCLUDE, 0, ssmSrcB, ssmSrcA)))
			t.getBuf("get", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(ssmGroup, 0, 4))
			t.getBuf("get through IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 4))
			t.Check("mode 5", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, 5, 0, ssmSrcA)))
			t.Check("INCLUDE {} (a leave)", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, socket.MCAST_INCLUDE, 0)))
			t.getBuf("get after", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(ssmGroup, 0, 4))
		}},
		{"ssm/IP_MULTICAST_ALL", false, func(t *T) {
			s := t.UDP()
			t.GetOpt("default", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
			t.Check("set 0", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 0))
			t.GetOpt("get", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
			t.Check("set 2", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 2))
			t.Check("set 1", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 1))
			t.GetOpt("get", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
		}},
		{"ssm/on a tcp socket", false, func(t *T) {
			s := t.TCP()
			t.Check("IP_ADD_SOURCE_MEMBERSHIP", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("IP_BLOCK_SOURCE", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("MCAST_JOIN_GROUP", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("MCAST_JOIN_SOURCE_GROUP", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup, ssmSrcA)))
			t.Check("IP_MSFILTER", ip(s, socket.IP_MSFILTER, msf(ssmGroup, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("MCAST_MSFILTER", ip(s, socket.MCAST_MSFILTER, gf(ssmGroup, socket.MCAST_EXCLUDE, 0, ssmSrcA)))
			t.Check("IP_MULTICAST_ALL 0", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 0))
			t.GetOpt("IP_MULTICAST_ALL", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
		}},
		{"ssm/raw socket", true, func(t *T) {
			s, err := t.TrySocket(AF_INET, RAW, socket.IPPROTO_UDP)
			if err != nil {
				return
			}
			t.Check("add A", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("block A (mixing modes)", ip(s, socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmSrcA)))
			t.getBuf("IP_MSFILTER", s, socket.SOL_IP, socket.IP_MSFILTER, msf(ssmGroup, 0, 2))
			t.GetOpt("IP_MULTICAST_ALL", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
		}},
		{"ssm/AF_INET6 socket at SOL_IP", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.Check("IP_ADD_SOURCE_MEMBERSHIP", ip(s, socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("MCAST_JOIN_GROUP AF_INET", ip(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: netip.MustParseAddr("239.3.3.3")}.Marshal()))
			t.Check("MCAST_JOIN_SOURCE_GROUP AF_INET", ip(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(netip.MustParseAddr("232.3.3.3"), ssmSrcA)))
			t.getBuf("MCAST_MSFILTER at SOL_IP", s, socket.SOL_IP, socket.MCAST_MSFILTER, gf(netip.MustParseAddr("232.3.3.3"), 0, 2))
			t.GetOpt("IP_MULTICAST_ALL", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
		}},
		{"ssm/delivery by source on lo", false, func(t *T) {
			// Receivers on one port: INCLUDE {127.0.0.1}, INCLUDE {A},
			// EXCLUDE {127.0.0.1}, not joined (IP_MULTICAST_ALL on), not
			// joined with it off. The looped-back datagram comes from
			// 127.0.0.1.
			mk := func(label string) sockapi.Sock {
				r := t.UDP()
				t.Check(label+" SO_REUSEADDR", r.SetSockOpt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
				return r
			}
			rs := []sockapi.Sock{mk("inc-lo"), mk("inc-A"), mk("exc-lo"), mk("none"), mk("none-all-0")}
			t.Check("bind inc-lo", rs[0].Bind(socket.InetAddr(netip.AddrPortFrom(ssmGroup, 0))))
			port := t.Name(rs[0]).AddrPort.Port()
			t.Label(t.Name(rs[0]), "G")
			for i, r := range rs[1:] {
				t.Check(fmt.Sprintf("bind %d", i+2), r.Bind(socket.InetAddr(netip.AddrPortFrom(ssmGroup, port))))
			}
			t.Check("inc-lo add 127.0.0.1", ip(rs[0], socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmLo)))
			t.Check("inc-A add A", ip(rs[1], socket.IP_ADD_SOURCE_MEMBERSHIP, mreqSrc(ssmGroup, ssmSrcA)))
			t.Check("exc-lo join", rs[2].SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmGroup, Interface: ssmLo}))
			t.Check("exc-lo block 127.0.0.1", ip(rs[2], socket.IP_BLOCK_SOURCE, mreqSrc(ssmGroup, ssmLo)))
			t.Check("none-all-0 IP_MULTICAST_ALL 0", rs[4].SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 0))
			snd := t.UDP()
			if t.Check("IP_MULTICAST_IF lo", snd.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, ssmLo)) != nil {
				return
			}
			t.Send("sendto group", snd, []byte("ssm"), 0, socket.InetAddr(netip.AddrPortFrom(ssmGroup, port)))
			rs[0].SetTimeout(time.Second)
			t.Recv("inc-lo", rs[0], 10, 0)
			// The others had the datagram by now, or never will.
			for i, name := range []string{"inc-A", "exc-lo", "none", "none-all-0"} {
				rs[i+1].SetTimeout(short)
				t.Recv(name, rs[i+1], 10, 0)
			}
		}},
	}
}

// ssm6Cases: the protocol-independent calls at SOL_IPV6 on lo (index 1).
func ssm6Cases() []Case {
	ip6 := func(s sockapi.Sock, name int, b []byte) error { return s.SetSockOpt(socket.IPPROTO_IPV6, name, b) }
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	gf6 := func(g netip.Addr, mode uint32, room int, srcs ...netip.Addr) []byte {
		m := socket.GroupFilter{Interface: 1, Group: g, Fmode: mode, Slist: srcs}.Marshal()
		if room > len(srcs) {
			b := make([]byte, 144+128*room)
			copy(b, m)
			binary.NativeEndian.PutUint32(b[140:], uint32(room))
			return b
		}
		return m
	}
	return []Case{
		{"ssm6/MCAST_JOIN_GROUP and source calls", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.Check("AF_INET group", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup}.Marshal()))
			t.Check("unicast group", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: a6}.Marshal()))
			t.Check("short group_req", ip6(s, socket.MCAST_JOIN_GROUP, make([]byte, 100)))
			t.Check("block before a join", ip6(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup6, a6)))
			t.Check("join", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("join again", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("block A", ip6(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup6, a6)))
			t.Check("block A again", ip6(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup6, a6)))
			t.Check("join-source (mixing modes)", ip6(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, b6)))
			t.getBuf("MCAST_MSFILTER", s, socket.IPPROTO_IPV6, socket.MCAST_MSFILTER, gf6(ssmGroup6, 0, 2))
			t.Check("unblock B (never blocked)", ip6(s, socket.MCAST_UNBLOCK_SOURCE, gsr(ssmGroup6, b6)))
			t.Check("leave", ip6(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("leave again", ip6(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("join-source A", ip6(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, a6)))
			t.Check("join-source B", ip6(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, b6)))
			t.Check("AF_INET source", ip6(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, ssmSrcA)))
			t.getBuf("MCAST_MSFILTER", s, socket.IPPROTO_IPV6, socket.MCAST_MSFILTER, gf6(ssmGroup6, 0, 4))
			t.Check("leave-source A", ip6(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup6, a6)))
			t.Check("leave-source A again", ip6(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup6, a6)))
			t.Check("leave-source B (the last)", ip6(s, socket.MCAST_LEAVE_SOURCE_GROUP, gsr(ssmGroup6, b6)))
			t.getBuf("MCAST_MSFILTER after", s, socket.IPPROTO_IPV6, socket.MCAST_MSFILTER, gf6(ssmGroup6, 0, 4))
		}},
		{"ssm6/MCAST_MSFILTER and mld_max_msf", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.Check("set before a join", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, socket.MCAST_EXCLUDE, 0, a6)))
			t.Check("join", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			many := make([]netip.Addr, 65)
			for i := range many {
				many[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
			}
			t.Check("EXCLUDE of 65", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, socket.MCAST_EXCLUDE, 0, many...)))
			t.Check("EXCLUDE of 64", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, socket.MCAST_EXCLUDE, 0, many[:64]...)))
			t.Check("block a 65th", ip6(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup6, many[64])))
			t.getBuf("get room 1", s, socket.IPPROTO_IPV6, socket.MCAST_MSFILTER, gf6(ssmGroup6, 0, 1))
			t.Check("mode 3", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, 3, 0, a6)))
			t.Check("INCLUDE {} (a leave)", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, socket.MCAST_INCLUDE, 0)))
			t.getBuf("get after", s, socket.IPPROTO_IPV6, socket.MCAST_MSFILTER, gf6(ssmGroup6, 0, 1))
		}},
		{"ssm6/on a tcp6 socket", false, func(t *T) {
			s := t.Socket6(STREAM)
			t.Check("MCAST_JOIN_GROUP", ip6(s, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.Check("MCAST_BLOCK_SOURCE", ip6(s, socket.MCAST_BLOCK_SOURCE, gsr(ssmGroup6, a6)))
			t.Check("MCAST_JOIN_SOURCE_GROUP", ip6(s, socket.MCAST_JOIN_SOURCE_GROUP, gsr(ssmGroup6, b6)))
			t.Check("MCAST_MSFILTER", ip6(s, socket.MCAST_MSFILTER, gf6(ssmGroup6, socket.MCAST_EXCLUDE, 0, a6)))
			t.Check("MCAST_LEAVE_GROUP", ip6(s, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: 1, Group: ssmGroup6}.Marshal()))
			t.GetOpt("IPV6_MULTICAST_ALL", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
			t.GetOpt("IP_MULTICAST_ALL at SOL_IP, default", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
			t.Check("IPV6_MULTICAST_ALL 0", s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL, 0))
			t.GetOpt("IPV6_MULTICAST_ALL", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
			t.Check("IPV6_MULTICAST_ALL 7", s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL, 7))
			t.GetOpt("IPV6_MULTICAST_ALL", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
			t.Check("IP_MULTICAST_ALL at SOL_IP", s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_ALL, 0))
			t.GetOpt("IP_MULTICAST_ALL at SOL_IP", s, socket.SOL_IP, socket.IP_MULTICAST_ALL)
			t.GetOpt("IPV6_MULTICAST_ALL after", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
		}},
		{"ssm6/IPV6_MULTICAST_ALL", false, func(t *T) {
			s := t.Socket6(DGRAM)
			t.GetOpt("default", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
			t.Check("set 0", s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL, 0))
			t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
			t.Check("set 7", s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL, 7))
			t.GetOpt("get", s, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_ALL)
		}},
	}
}
