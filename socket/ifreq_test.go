package socket

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
)

// The conformance cases compare lo with Linux's; these cover what the
// kernel's loopback cannot show: an Ethernet NIC (flags, MAC, directed
// broadcast), a TUN-like IP NIC, a NIC without an IPv4 address, and the
// if_nameindex family of calls.
func TestIoctlIfreqInterfaces(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	ta, _ := link.NewIPPipe(1400)
	tun := p.sa.AddNIC("tun0", ta)
	if err := tun.AddAddress(netip.MustParsePrefix("192.0.2.9/32")); err != nil {
		t.Fatal(err)
	}
	eb, _ := link.NewPipe(macB, macA, 9000)
	p.sa.AddNIC("bare0", eb) // no IPv4 address
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	get := func(req uint, name string) Ifreq {
		t.Helper()
		r := Ifreq{Name: name}
		if err := s.IoctlIfreq(req, &r); err != nil {
			t.Fatalf("%#x %s: %v", req, name, err)
		}
		return r
	}
	if r := get(SIOCGIFFLAGS, "eth0"); r.Flags != IFF_UP|IFF_BROADCAST|IFF_RUNNING|IFF_MULTICAST {
		t.Fatalf("eth0 flags %#x", r.Flags)
	}
	if r := get(SIOCGIFHWADDR, "eth0"); r.HWFamily != ARPHRD_ETHER || !bytes.Equal(r.HWAddr, macA[:]) {
		t.Fatalf("eth0 hwaddr %d % x", r.HWFamily, r.HWAddr)
	}
	if r := get(SIOCGIFADDR, "eth0"); r.Addr != addrA {
		t.Fatalf("eth0 addr %v", r.Addr)
	}
	if r := get(SIOCGIFNETMASK, "eth0"); r.Addr != netip.MustParseAddr("255.255.255.0") {
		t.Fatalf("eth0 mask %v", r.Addr)
	}
	if r := get(SIOCGIFBRDADDR, "eth0"); r.Addr != netip.MustParseAddr("10.0.0.255") {
		t.Fatalf("eth0 broadcast %v", r.Addr)
	}
	if r := get(SIOCGIFMTU, "eth0"); r.MTU != 1500 {
		t.Fatalf("eth0 mtu %d", r.MTU)
	}
	if r := get(SIOCGIFFLAGS, "tun0"); r.Flags != IFF_UP|IFF_POINTOPOINT|IFF_RUNNING|IFF_NOARP|IFF_MULTICAST {
		t.Fatalf("tun0 flags %#x", r.Flags)
	}
	if r := get(SIOCGIFHWADDR, "tun0"); r.HWFamily != ARPHRD_NONE || r.HWAddr != nil {
		t.Fatalf("tun0 hwaddr %d % x", r.HWFamily, r.HWAddr)
	}
	if r := get(SIOCGIFBRDADDR, "tun0"); r.Addr != netip.IPv4Unspecified() {
		t.Fatalf("tun0 /32 broadcast %v", r.Addr)
	}
	r := Ifreq{Name: "bare0"}
	if err := s.IoctlIfreq(SIOCGIFADDR, &r); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("no IPv4 address: %v, want EADDRNOTAVAIL", err)
	}
	if r := get(SIOCGIFMTU, "bare0"); r.MTU != 9000 {
		t.Fatalf("bare0 mtu %d", r.MTU)
	}
	want := []IfNameIndexEntry{{1, "lo"}, {2, "eth0"}, {3, "tun0"}, {4, "bare0"}}
	got := p.a.IfNameIndex()
	if len(got) != len(want) {
		t.Fatalf("if_nameindex %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("if_nameindex %v, want %v", got, want)
		}
		if idx, err := p.a.IfNameToIndex(want[i].Name); idx != want[i].Index || err != nil {
			t.Fatalf("if_nametoindex %s: %d %v", want[i].Name, idx, err)
		}
		if name, err := p.a.IfIndexToName(want[i].Index); name != want[i].Name || err != nil {
			t.Fatalf("if_indextoname %d: %q %v", want[i].Index, name, err)
		}
		r := Ifreq{Index: want[i].Index}
		if err := s.IoctlIfreq(SIOCGIFNAME, &r); err != nil || r.Name != want[i].Name {
			t.Fatalf("SIOCGIFNAME %d: %q %v", want[i].Index, r.Name, err)
		}
	}
	if _, err := p.a.IfNameToIndex("nope"); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("if_nametoindex unknown: %v", err)
	}
	if _, err := p.a.IfIndexToName(77); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("if_indextoname unknown: %v", err)
	}
	conf, err := s.IfConf()
	if err != nil {
		t.Fatal(err)
	}
	wantConf := []Ifreq{{Name: "lo", Addr: netip.MustParseAddr("127.0.0.1")}, {Name: "eth0", Addr: addrA}, {Name: "tun0", Addr: netip.MustParseAddr("192.0.2.9")}}
	if len(conf) != len(wantConf) {
		t.Fatalf("SIOCGIFCONF %+v", conf)
	}
	for i := range wantConf {
		if conf[i].Name != wantConf[i].Name || conf[i].Addr != wantConf[i].Addr {
			t.Fatalf("SIOCGIFCONF %+v, want %+v", conf, wantConf)
		}
	}
	s.Close()
	if err := s.IoctlIfreq(SIOCGIFINDEX, &Ifreq{Name: "lo"}); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("closed: %v", err)
	}
}
