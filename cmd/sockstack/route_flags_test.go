package main

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func TestParseRule(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // stack.Rule's String, ip rule's listing
	}{
		{"pref 100 not fwmark 51820 lookup 51820", "100:\tnot from all fwmark 0xca6c lookup 51820"},
		{"pref 99 lookup main suppress_prefixlength 0", "99:\tfrom all lookup main suppress_prefixlength 0"},
		{"pref 5 from 10.1.0.0/16 to 192.0.2.1 iif lo oif wg0 prohibit", "5:\tfrom 10.1.0.0/16 to 192.0.2.1/32 iif lo oif wg0 prohibit"},
		{"fwmark 0x80000/0xff0000 table 52", "0:\tfrom all fwmark 0x80000/0xff0000 lookup 52"},
		{"priority 7 blackhole", "7:\tfrom all blackhole"},
	} {
		r, err := parseRule(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got := r.String(); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"pref 1", "fwmark x lookup 1", "lookup", "frob 1 lookup 2"} {
		if _, err := parseRule(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestApplyRouting(t *testing.T) {
	st := stack.New(stack.Options{})
	defer st.Close()
	a, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	b, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 1, 1}, wire.MAC{2, 0, 0, 0, 1, 2}, 1500)
	eth0, wg0 := st.AddNIC("eth0", a), st.AddNIC("wg0", b)
	eth0.AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	wg0.AddAddress(netip.MustParsePrefix("10.9.0.2/24"))
	err := applyRouting(st, eth0,
		[]string{"default via 10.0.0.1", "default dev wg0 table 51820", "198.51.100.0/24 via 10.0.0.1 metric 50"},
		[]string{"pref 100 not fwmark 51820 lookup 51820", "pref 99 lookup main suppress_prefixlength 0"})
	if err != nil {
		t.Fatal(err)
	}
	far := netip.MustParseAddr("192.0.2.7")
	if r, err := st.FindRouteFlow(far, stack.Flow{}); err != nil || r.NIC != wg0 {
		t.Fatalf("unmarked: %v %v, want wg0", r.NIC, err)
	}
	if r, err := st.FindRouteFlow(far, stack.Flow{Mark: 51820}); err != nil || r.NIC != eth0 {
		t.Fatalf("marked: %v %v, want eth0", r.NIC, err)
	}
	if err := applyRouting(st, eth0, []string{"default dev nosuch"}, nil); err == nil {
		t.Fatal("unknown device accepted")
	}
}
