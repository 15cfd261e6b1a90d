package socket

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// TestIfreqMaskAndBroadcast: SIOCGIFNETMASK's mask for every edge of
// the prefix length (an impossible one is 0.0.0.0, not a panic) and
// SIOCGIFBRDADDR's directed broadcast (stack.DirectedBroadcast), host
// bits in the address or not.
func TestIfreqMaskAndBroadcast(t *testing.T) {
	for _, c := range []struct {
		bits int
		want string
	}{{0, "0.0.0.0"}, {1, "128.0.0.0"}, {8, "255.0.0.0"}, {23, "255.255.254.0"}, {24, "255.255.255.0"},
		{31, "255.255.255.254"}, {32, "255.255.255.255"}, {-1, "0.0.0.0"}, {33, "0.0.0.0"}} {
		if got := prefixMask4(c.bits); got != netip.MustParseAddr(c.want) {
			t.Errorf("mask /%d: %v, want %s", c.bits, got, c.want)
		}
	}
	for _, c := range []struct{ prefix, want string }{
		{"10.1.2.3/0", "255.255.255.255"}, {"10.1.2.3/8", "10.255.255.255"}, {"10.1.2.3/24", "10.1.2.255"},
		{"10.1.2.0/24", "10.1.2.255"}, {"192.168.7.9/30", "192.168.7.11"}, {"192.168.7.9/32", "192.168.7.9"},
	} {
		if got := stack.DirectedBroadcast(netip.MustParsePrefix(c.prefix)); got != netip.MustParseAddr(c.want) {
			t.Errorf("broadcast of %s: %v, want %s", c.prefix, got, c.want)
		}
	}
}
