package tcp

import (
	"net/netip"
	"testing"
)

// The packed keys must tell apart every pair of 4-tuples that the old
// map of netip.AddrPort pairs told apart.
func TestConnTableKeys(t *testing.T) {
	ap := netip.MustParseAddrPort
	keys := []connKey{
		{ap("10.0.0.1:80"), ap("10.0.0.2:1000")},
		{ap("10.0.0.2:1000"), ap("10.0.0.1:80")},
		{ap("10.0.0.1:1000"), ap("10.0.0.2:80")},
		{ap("[::ffff:10.0.0.1]:80"), ap("[::ffff:10.0.0.2]:1000")},
		{ap("10.0.0.1:80"), ap("[::ffff:10.0.0.2]:1000")},
		{ap("[::ffff:10.0.0.1]:80"), ap("10.0.0.2:1000")},
		{ap("[fe80::1]:80"), ap("[fe80::2]:1000")},
		{ap("[fe80::1%eth0]:80"), ap("[fe80::2]:1000")},
		{ap("[fe80::1]:80"), ap("[fe80::2%eth0]:1000")},
		{ap("[fe80::1]:80"), ap("[fe80::2%eth1]:1000")},
		{netip.AddrPort{}, ap("[::]:1000")},
		{ap("[::]:0"), ap("[::]:1000")},
	}
	tab := newConnTable()
	eps := make([]*Endpoint, len(keys))
	for i, k := range keys {
		eps[i] = new(Endpoint)
		if !tab.put(k, eps[i]) {
			t.Fatalf("put %v: taken", k)
		}
		if tab.put(k, new(Endpoint)) {
			t.Fatalf("put %v twice with another endpoint succeeded", k)
		}
	}
	if tab.len() != len(keys) {
		t.Fatalf("len %d, want %d", tab.len(), len(keys))
	}
	for i, k := range keys {
		if got := tab.get(k); got != eps[i] {
			t.Fatalf("get %v: entry %p, want %p", k, got, eps[i])
		}
	}
	n := 0
	tab.each(func(*Endpoint) { n++ })
	if n != len(keys) {
		t.Fatalf("each visited %d, want %d", n, len(keys))
	}
	for i, k := range keys {
		tab.del(k, new(Endpoint)) // not the holder: no effect
		tab.del(k, eps[i])
		if tab.get(k) != nil {
			t.Fatalf("%v still there after del", k)
		}
	}
	if tab.len() != 0 {
		t.Fatalf("len %d after deleting all", tab.len())
	}
}
