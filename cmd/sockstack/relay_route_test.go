package main

import (
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// udpSource is the source address a connected UDP socket with the loop
// guard of o gets for dst: what the kernel's own connect picks.
func udpSource(t *testing.T, o relayOpts, dst netip.Addr) netip.Addr {
	t.Helper()
	fam := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16(), Port: 9}
	if dst.Is4() {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: dst.As4(), Port: 9}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := o.guard(fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("connect %v: %v", dst, err)
	}
	return sockname(fd).Addr()
}

// The route lookup picks the source address the kernel's connect would,
// with the loop guard: in a namespace where the main table and table
// 200 (`ip rule add fwmark 7 lookup 200`) route 198.51.100.0/24 through
// different interfaces from different addresses, and a device of its
// own, each lookup agrees with a connected UDP socket carrying the same
// SO_MARK / SO_BINDTODEVICE; a destination without a route has no
// source (the connect would fail too).
func TestRelayRouteSource(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, SO_MARK)")
	}
	ns := testNetns(t, "ssroute", [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "d1", "type", "veth", "peer", "name", "p1"}, {"link", "add", "d2", "type", "veth", "peer", "name", "p2"},
		{"link", "set", "p1", "up"}, {"link", "set", "p2", "up"},
		{"addr", "add", "10.1.0.1/24", "dev", "d1"}, {"addr", "add", "10.2.0.1/24", "dev", "d2"},
		{"-6", "addr", "add", "fd01::1/64", "dev", "d1", "nodad"}, {"-6", "addr", "add", "fd02::1/64", "dev", "d2", "nodad"},
		{"link", "set", "d1", "up"}, {"link", "set", "d2", "up"},
		{"route", "add", "198.51.100.0/24", "via", "10.1.0.2", "dev", "d1"},
		{"route", "add", "198.51.100.0/24", "via", "10.2.0.2", "dev", "d2", "table", "200"},
		{"-6", "route", "add", "2001:db8:77::/48", "via", "fd01::2", "dev", "d1"},
		{"-6", "route", "add", "2001:db8:77::/48", "via", "fd02::2", "dev", "d2", "table", "200"},
		{"rule", "add", "fwmark", "7", "lookup", "200"}, {"-6", "rule", "add", "fwmark", "7", "lookup", "200"},
	})
	err := inNetns(ns, func() error {
		for _, c := range []struct {
			o    relayOpts
			dst  string
			want string
		}{
			{relayOpts{}, "198.51.100.7", "10.1.0.1"},
			{relayOpts{mark: 7}, "198.51.100.7", "10.2.0.1"},
			{relayOpts{bindDevice: "d2"}, "10.2.0.9", "10.2.0.1"},
			{relayOpts{}, "2001:db8:77::7", "fd01::1"},
			{relayOpts{mark: 7}, "2001:db8:77::7", "fd02::1"},
			{relayOpts{}, "127.0.0.1", "127.0.0.1"},
		} {
			dst := netip.MustParseAddr(c.dst)
			rs := newRouteSource(c.o)
			got, ok := rs.source(dst)
			rs.close()
			if kern := udpSource(t, c.o, dst); !ok || got != kern || got.String() != c.want {
				t.Errorf("%+v to %v: route lookup %v %v, the kernel's connect %v, want %s", c.o, dst, got, ok, kern, c.want)
			}
		}
		rs := newRouteSource(relayOpts{})
		defer rs.close()
		if got, ok := rs.source(netip.MustParseAddr("203.0.113.1")); ok {
			t.Errorf("no route to 203.0.113.1, yet source %v", got)
		}
		// The socket serves lookup after lookup.
		for range 100 {
			if got, ok := rs.source(netip.MustParseAddr("198.51.100.9")); !ok || got != netip.MustParseAddr("10.1.0.1") {
				t.Fatalf("repeated lookup: %v %v", got, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRelaySourceLookup: the source address for an upstream
// connect, by a route lookup (the relay's way) and by connecting a
// throwaway UDP socket (its way before).
func BenchmarkRelaySourceLookup(b *testing.B) {
	dst := netip.MustParseAddr("127.0.0.1")
	b.Run("route_lookup", func(b *testing.B) {
		rs := newRouteSource(relayOpts{})
		defer rs.close()
		for b.Loop() {
			if _, ok := rs.source(dst); !ok {
				b.Fatal("no source")
			}
		}
	})
	b.Run("udp_socket", func(b *testing.B) {
		t := &testing.T{}
		for b.Loop() {
			udpSource(t, relayOpts{}, dst)
		}
	})
}
