package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func TestParseAddrs(t *testing.T) {
	got, err := parseAddrs("10.77.0.2/24, fd77::2/64")
	if err != nil || len(got) != 2 || got[0] != netip.MustParsePrefix("10.77.0.2/24") || got[1] != netip.MustParsePrefix("fd77::2/64") {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "10.77.0.2", "fe80::1%eth0/64", "::/0", "ff02::1/128", "::ffff:10.0.0.1/120", "10.0.0.1/24,"} {
		if _, err := parseAddrs(bad); err == nil || !strings.Contains(err.Error(), "want CIDRs") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

// configure turns IPv6 on for an IPv6 address or gateway and installs
// one default route per family.
func TestConfigureDualStack(t *testing.T) {
	a, b := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	defer b.Close()
	st := stack.New(stack.Options{Name: "t", DADTransmits: -1})
	defer st.Close()
	nic := st.AddNIC("tap0", a)
	f := &hostFlags{gw: "10.77.0.1, fe80::1%tap0"}
	addrs, _ := parseAddrs("10.77.0.2/24,fd77::2/64")
	if err := f.configure(st, nic, addrs); err != nil {
		t.Fatal(err)
	}
	if !f.v6 {
		t.Error("IPv6 not noted as on")
	}
	ll := false
	for _, a := range nic.Addrs6() {
		ll = ll || a.Prefix.Addr().IsLinkLocalUnicast()
	}
	if !ll {
		t.Errorf("no link-local address: %v", nic.Addrs6())
	}
	var gws []netip.Addr
	for _, r := range st.Routes() {
		if r.Prefix.Bits() == 0 {
			gws = append(gws, r.Gateway)
		}
	}
	if len(gws) != 2 {
		t.Fatalf("default routes %v", st.Routes())
	}
	f = &hostFlags{gw: "192.0.2.1"}
	if err := f.configure(st, nic, nil); err == nil || !strings.Contains(err.Error(), "--gw") {
		t.Errorf("an off-link gateway: %v", err)
	}
}

func TestUpFlagsIPv6(t *testing.T) {
	out, err := runCLI(t, "", "up", "--tap", "nosuchtap0", "--addr", "fd77::2/64,bogus")
	if err == nil || !strings.Contains(out+err.Error(), "want CIDRs") {
		t.Errorf("bad --addr: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "ping", "--slaac", "10.0.0.2")
	if err == nil || !strings.Contains(out+err.Error(), "--slaac applies only with --tap") {
		t.Errorf("--slaac without --tap: %v\n%s", err, out)
	}
}

// With duplicate address detection on, as on a TAP, the addresses are
// tentative when configure runs; an on-link IPv6 gateway (link-local, as
// the README's --gw 10.77.0.1,fe80::1, or inside an --addr prefix) must
// still be accepted.
func TestConfigureGatewayDuringDAD(t *testing.T) {
	for _, gw := range []string{"10.77.0.1,fe80::1", "fd77::1"} {
		a, b := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
		st := stack.New(stack.Options{Name: "t"})
		nic := st.AddNIC("tap0", a)
		f := &hostFlags{gw: gw}
		addrs, _ := parseAddrs("10.77.0.2/24,fd77::2/64")
		if err := f.configure(st, nic, addrs); err != nil {
			t.Errorf("--gw %s: %v", gw, err)
		}
		var v6 bool
		for _, r := range st.Routes() {
			v6 = v6 || r.Prefix.Bits() == 0 && r.Gateway.Is6()
		}
		if !v6 {
			t.Errorf("--gw %s: no IPv6 default route: %v", gw, st.Routes())
		}
		st.Close()
		b.Close()
	}
}
