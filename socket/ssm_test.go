package socket

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

var (
	ssmG     = netip.MustParseAddr("232.1.2.3")
	ssmOther = netip.MustParseAddr("10.0.0.99")
)

func mreqSource(g, ifa, src netip.Addr) []byte {
	b := make([]byte, SizeofIPMreqSource)
	x, y, z := g.As4(), ifa.As4(), src.As4()
	copy(b, x[:])
	copy(b[4:], y[:])
	copy(b[8:], z[:])
	return b
}

func groupSourceReq(ifindex uint32, g, src netip.Addr) []byte {
	b := make([]byte, SizeofGroupSourceReq)
	binary.NativeEndian.PutUint32(b, ifindex)
	putStorage(b[8:], g)
	putStorage(b[136:], src)
	return b
}

// Every option's errors, with raw uapi bytes and with the Go structs.
func TestSSMOptionErrors(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	any4 := netip.IPv4Unspecified()
	set := func(what string, name int, v any, want syscall.Errno) {
		t.Helper()
		err := s.SetSockOpt(SOL_IP, name, v)
		if want == 0 {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return
		}
		errIs(t, what, err, want)
	}
	set("short ip_mreq_source", IP_ADD_SOURCE_MEMBERSHIP, make([]byte, 8), syscall.EINVAL)
	set("unicast group", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmOther, any4, addrA), syscall.EINVAL)
	set("block before a join", IP_BLOCK_SOURCE, mreqSource(ssmG, any4, addrA), syscall.EINVAL)
	set("drop before a join", IP_DROP_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, addrA), syscall.EINVAL)
	set("interface not ours", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmG, ssmOther, addrA), syscall.ENODEV)
	set("add source", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, addrA), 0)
	set("add it again", IP_ADD_SOURCE_MEMBERSHIP, IPMreqSource{Multiaddr: ssmG, Interface: any4, Sourceaddr: addrA}, syscall.EADDRNOTAVAIL)
	set("drop one never added", IP_DROP_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, ssmOther), syscall.EADDRNOTAVAIL)
	set("block on an include filter", IP_BLOCK_SOURCE, mreqSource(ssmG, any4, ssmOther), syscall.EINVAL)
	set("any-source join on top", IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: ssmG}, syscall.EADDRINUSE)
	for i := 0; i < 9; i++ {
		set("fill", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})), 0)
	}
	set("11th source", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, ssmOther), syscall.ENOBUFS)
	mode, srcs, err := s.GetMsfilter(ssmG, 0, any4)
	if err != nil || mode != MCAST_INCLUDE || len(srcs) != 10 || srcs[0] != addrA {
		t.Fatalf("GetMsfilter: %d %v %v", mode, srcs, err)
	}
	// IP_MSFILTER through the raw getsockopt: room for two of ten.
	buf := make([]byte, 16+8)
	copy(buf, ssmG.AsSlice())
	binary.NativeEndian.PutUint32(buf[12:], 2)
	n, err := s.GetSockOptBuf(SOL_IP, IP_MSFILTER, buf)
	if err != nil || n != 24 || binary.NativeEndian.Uint32(buf[8:]) != MCAST_INCLUDE || binary.NativeEndian.Uint32(buf[12:]) != 10 || netip.AddrFrom4([4]byte(buf[16:20])) != addrA {
		t.Fatalf("IP_MSFILTER get: %d %v %x", n, err, buf)
	}
	_, err = s.GetSockOptBuf(SOL_IP, IP_MSFILTER, buf[:12])
	errIs(t, "short IP_MSFILTER get", err, syscall.EINVAL)
	// IP_MSFILTER set: ENOBUFS past 10, EINVAL for a short buffer or a
	// bad mode, INCLUDE of nothing leaves.
	msf := func(g netip.Addr, mode uint32, srcs ...netip.Addr) []byte {
		b := make([]byte, 16+4*max(len(srcs), 1))
		copy(b, g.AsSlice())
		binary.NativeEndian.PutUint32(b[8:], mode)
		binary.NativeEndian.PutUint32(b[12:], uint32(len(srcs)))
		for i, a := range srcs {
			copy(b[16+4*i:], a.AsSlice())
		}
		return b
	}
	big := msf(ssmG, MCAST_EXCLUDE, make([]netip.Addr, 11)...)
	set("IP_MSFILTER of 11", IP_MSFILTER, big, syscall.ENOBUFS)
	set("IP_MSFILTER shorter than its count", IP_MSFILTER, msf(ssmG, MCAST_EXCLUDE, addrA, ssmOther)[:20], syscall.EINVAL)
	set("IP_MSFILTER mode 2", IP_MSFILTER, msf(ssmG, 2, addrA), syscall.EINVAL)
	set("IP_MSFILTER unicast", IP_MSFILTER, msf(ssmOther, MCAST_EXCLUDE, addrA), syscall.EINVAL)
	set("IP_MSFILTER EXCLUDE {other}", IP_MSFILTER, msf(ssmG, MCAST_EXCLUDE, ssmOther), 0)
	if mode, srcs, _ := s.GetMsfilter(ssmG, 0, any4); mode != MCAST_EXCLUDE || !slices.Equal(srcs, []netip.Addr{ssmOther}) {
		t.Fatalf("after IP_MSFILTER: %d %v", mode, srcs)
	}
	set("unblock", IP_UNBLOCK_SOURCE, mreqSource(ssmG, any4, ssmOther), 0)
	set("add source on a (now empty) exclude list", IP_ADD_SOURCE_MEMBERSHIP, mreqSource(ssmG, any4, addrA), syscall.EINVAL)
	set("IP_MSFILTER INCLUDE {} leaves", IP_MSFILTER, msf(ssmG, MCAST_INCLUDE), 0)
	set("IP_MSFILTER INCLUDE {} again", IP_MSFILTER, msf(ssmG, MCAST_INCLUDE), syscall.EADDRNOTAVAIL)
	_, _, err = s.GetMsfilter(ssmG, 0, any4)
	errIs(t, "get after leaving", err, syscall.EADDRNOTAVAIL)

	// The protocol-independent ones at SOL_IP.
	gr := func(ifindex uint32, g netip.Addr) []byte {
		b := make([]byte, SizeofGroupReq)
		binary.NativeEndian.PutUint32(b, ifindex)
		putStorage(b[8:], g)
		return b
	}
	set("short group_req", MCAST_JOIN_GROUP, make([]byte, 100), syscall.EINVAL)
	set("group_req of AF_INET6", MCAST_JOIN_GROUP, gr(0, netip.MustParseAddr("ff3e::1")), syscall.EINVAL)
	set("group_req unknown ifindex", MCAST_JOIN_GROUP, gr(99, ssmG), syscall.ENODEV)
	set("MCAST_JOIN_GROUP", MCAST_JOIN_GROUP, gr(2, ssmG), 0)
	set("MCAST_JOIN_GROUP twice", MCAST_JOIN_GROUP, GroupReq{Interface: 2, Group: ssmG}, syscall.EADDRINUSE)
	set("MCAST_BLOCK_SOURCE", MCAST_BLOCK_SOURCE, groupSourceReq(2, ssmG, addrA), 0)
	set("MCAST_JOIN_SOURCE_GROUP on exclude", MCAST_JOIN_SOURCE_GROUP, groupSourceReq(2, ssmG, ssmOther), syscall.EINVAL)
	set("MCAST_UNBLOCK_SOURCE never blocked", MCAST_UNBLOCK_SOURCE, groupSourceReq(2, ssmG, ssmOther), syscall.EADDRNOTAVAIL)
	set("group_source_req of AF_INET6 source", MCAST_BLOCK_SOURCE, groupSourceReq(2, ssmG, netip.MustParseAddr("2001:db8::1")), syscall.EADDRNOTAVAIL)
	set("short group_source_req", MCAST_BLOCK_SOURCE, make([]byte, 200), syscall.EINVAL)
	set("MCAST_LEAVE_GROUP", MCAST_LEAVE_GROUP, gr(2, ssmG), 0)
	set("MCAST_LEAVE_GROUP again", MCAST_LEAVE_GROUP, gr(2, ssmG), syscall.EADDRNOTAVAIL)
	set("MCAST_JOIN_SOURCE_GROUP", MCAST_JOIN_SOURCE_GROUP, groupSourceReq(2, ssmG, addrA), 0)
	set("MCAST_LEAVE_SOURCE_GROUP", MCAST_LEAVE_SOURCE_GROUP, groupSourceReq(2, ssmG, addrA), 0)
	set("MCAST_LEAVE_SOURCE_GROUP: gone with its last source", MCAST_LEAVE_SOURCE_GROUP, groupSourceReq(2, ssmG, addrA), syscall.EINVAL)

	// IP_MULTICAST_ALL: 1 by default, 0 or 1 only.
	if v, err := s.GetSockOpt(SOL_IP, IP_MULTICAST_ALL); err != nil || v != 1 {
		t.Fatalf("IP_MULTICAST_ALL default %v %v", v, err)
	}
	set("IP_MULTICAST_ALL 2", IP_MULTICAST_ALL, 2, syscall.EINVAL)
	set("IP_MULTICAST_ALL 0", IP_MULTICAST_ALL, 0, 0)
	if v, _ := s.GetSockOpt(SOL_IP, IP_MULTICAST_ALL); v != 0 {
		t.Fatalf("IP_MULTICAST_ALL after 0: %v", v)
	}
	if got := p.sb.Stats().IGMP.SourceLimit.Load(); got != 2 {
		t.Fatalf("SourceLimit %d, want 2", got)
	}
}

// A datagram from host A reaches the socket whose filter includes A,
// not the one whose filter leaves A out; a filter change takes effect
// for the next datagram.
func TestSSMSourceFilteredDelivery(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	mk := func() *Socket {
		s := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
		s.SetSockOptInt(SOL_SOCKET, SO_REUSEADDR, 1)
		if err := s.Bind(ap(netip.IPv4Unspecified(), 5008)); err != nil {
			t.Fatal(err)
		}
		s.SetTimeout(5 * time.Second)
		return s
	}
	r1, r2 := mk(), mk()
	if err := r1.SetSockOpt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, IPMreqSource{Multiaddr: ssmG, Interface: addrB, Sourceaddr: addrA}); err != nil {
		t.Fatal(err)
	}
	if err := r2.SetSockOpt(SOL_IP, MCAST_JOIN_SOURCE_GROUP, GroupSourceReq{Interface: 2, Group: ssmG, Source: ssmOther}); err != nil {
		t.Fatal(err)
	}
	snd := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	buf := make([]byte, 64)
	recv := func(who string, s *Socket, want string) {
		t.Helper()
		n, err := s.Recv(buf, 0)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("%s: %q %v, want %q", who, buf[:n], err, want)
		}
	}
	snd.SendTo([]byte("one"), 0, ap(ssmG, 5008))
	recv("r1 (INCLUDE A)", r1, "one") // B has processed "one" for both
	// r2 now excludes only ssmOther: A's next datagram is its first.
	if err := r2.SetMsfilter(ssmG, 2, netip.Addr{}, MCAST_EXCLUDE, []netip.Addr{ssmOther}); err != nil {
		t.Fatal(err)
	}
	snd.SendTo([]byte("two"), 0, ap(ssmG, 5008))
	recv("r1", r1, "two")
	recv("r2 (EXCLUDE other)", r2, "two")
}

// A TCP socket may join source-specifically, as in Linux (only
// IP_ADD_MEMBERSHIP is EPROTO); close drops the membership. An
// AF_INET6 socket's IP_MULTICAST_ALL is 0 by default (inet6_create
// leaves it), its IPV6_MULTICAST_ALL 1.
func TestSSMTCPAndDualStack(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	errIs(t, "IP_ADD_MEMBERSHIP on tcp", s.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: ssmG}), syscall.EPROTO)
	if v, err := s.GetSockOpt(SOL_IP, IP_MULTICAST_ALL); err != nil || v != 1 {
		t.Fatalf("tcp IP_MULTICAST_ALL %v %v", v, err)
	}
	if err := s.SetSockOpt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, IPMreqSource{Multiaddr: ssmG, Interface: addrB, Sourceaddr: addrA}); err != nil {
		t.Fatal(err)
	}
	errIs(t, "MCAST_JOIN_GROUP after it", s.SetSockOpt(SOL_IP, MCAST_JOIN_GROUP, GroupReq{Interface: 2, Group: ssmG}), syscall.EADDRINUSE)
	nic := p.sb.NICByName("eth0")
	if m, srcs, ok := nic.InterfaceFilter(ssmG); !ok || m != MCAST_INCLUDE || !slices.Equal(srcs, []netip.Addr{addrA}) {
		t.Fatalf("interface filter %d %v %v", m, srcs, ok)
	}
	s.Close()
	if _, _, ok := nic.InterfaceFilter(ssmG); ok {
		t.Fatal("the TCP socket's membership outlived it")
	}
	d := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if v, _ := d.GetSockOpt(SOL_IP, IP_MULTICAST_ALL); v != 0 {
		t.Fatalf("AF_INET6 IP_MULTICAST_ALL %v, want 0", v)
	}
	if v, _ := d.GetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_ALL); v != 1 {
		t.Fatalf("IPV6_MULTICAST_ALL %v, want 1", v)
	}
}
