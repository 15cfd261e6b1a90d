package hostsock

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/sockstack/sockstack/socket"
)

// The source-specific structs reach the kernel in its layout, and
// GetMsfilter reads the filter back through IP_MSFILTER and
// MCAST_MSFILTER. Everything on lo: nothing leaves the host.
func TestSSMOptionsOnKernel(t *testing.T) {
	s := mustSocket(t, socket.SOCK_DGRAM)
	g := netip.MustParseAddr("232.9.9.9")
	lo4 := netip.MustParseAddr("127.0.0.1")
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if err := s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: g, Interface: lo4, Sourceaddr: a}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(socket.SOL_IP, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: 1, Group: g, Source: b}); err != nil {
		t.Fatal(err)
	}
	mode, srcs, err := s.GetMsfilter(g, 0, lo4)
	if err != nil || mode != socket.MCAST_INCLUDE || !slices.Equal(srcs, []netip.Addr{a, b}) {
		t.Fatalf("IP_MSFILTER: %d %v %v", mode, srcs, err)
	}
	if err := s.SetSockOpt(socket.SOL_IP, socket.MCAST_MSFILTER, socket.GroupFilter{Interface: 1, Group: g, Fmode: socket.MCAST_EXCLUDE, Slist: []netip.Addr{b}}); err != nil {
		t.Fatal(err)
	}
	mode, srcs, err = s.GetMsfilter(g, 1, netip.Addr{})
	if err != nil || mode != socket.MCAST_EXCLUDE || !slices.Equal(srcs, []netip.Addr{b}) {
		t.Fatalf("MCAST_MSFILTER: %d %v %v", mode, srcs, err)
	}
}
