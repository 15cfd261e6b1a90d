package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// policyStack is a host with three NICs: eth0 10.0.0.1/24 (default
// route via 10.0.0.254), eth1 10.1.0.1/24, wg0 10.9.0.1/24, and IPv6
// fd00::1/64 on eth0, fd01::1/64 on eth1.
func policyStack(t *testing.T) (*Stack, *NIC, *NIC, *NIC) {
	t.Helper()
	s := New(Options{DADTransmits: -1})
	t.Cleanup(s.Close)
	mk := func(name, a string) *NIC {
		n := s.AddNIC(name, &chanEP{mtu: 1500, discard: true})
		for _, p := range []string{a} {
			if err := n.AddAddress(netip.MustParsePrefix(p)); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	eth0 := mk("eth0", "10.0.0.1/24")
	eth1 := mk("eth1", "10.1.0.1/24")
	wg0 := mk("wg0", "10.9.0.1/24")
	if err := eth0.AddAddress(netip.MustParsePrefix("fd00::1/64")); err != nil {
		t.Fatal(err)
	}
	if err := eth1.AddAddress(netip.MustParsePrefix("fd01::1/64")); err != nil {
		t.Fatal(err)
	}
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.254"), NIC: eth0})
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd00::fe"), NIC: eth0})
	return s, eth0, eth1, wg0
}

var (
	far  = netip.MustParseAddr("192.0.2.7")
	far6 = netip.MustParseAddr("2001:db8::7")
)

func wantNIC(t *testing.T, s *Stack, dst netip.Addr, f Flow, want *NIC) ResolvedRoute {
	t.Helper()
	r, err := s.FindRouteFlow(dst, f)
	if err != nil {
		t.Fatalf("%v %+v: %v, want %s", dst, f, err, want.Name())
	}
	if r.NIC != want {
		t.Fatalf("%v %+v: through %s, want %s", dst, f, r.NIC.Name(), want.Name())
	}
	return r
}

func wantErr(t *testing.T, s *Stack, dst netip.Addr, f Flow, want syscall.Errno) {
	t.Helper()
	r, err := s.FindRouteFlow(dst, f)
	if !errors.Is(err, want) {
		t.Fatalf("%v %+v: route %v err %v, want %v", dst, f, r.NIC, err, want)
	}
}

func TestRulesDefault(t *testing.T) {
	s, eth0, _, _ := policyStack(t)
	got := s.Rules()
	if len(got) != 3 || got[0].Table != TableLocal || got[1].Table != TableMain || got[1].Priority != 32766 || got[2].Table != TableDefault || got[2].Priority != 32767 {
		t.Fatalf("default rules %v", got)
	}
	if s.pr.snap.Load() != nil {
		t.Fatal("default rules published a policy: the per-packet lookup would take the slow path")
	}
	wantNIC(t, s, far, Flow{Mark: 7}, eth0)
	// A route in another table changes nothing while no rule names it.
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: eth0, Table: 100})
	if s.pr.snap.Load() != nil {
		t.Fatal("a table no rule looks up published a policy")
	}
}

// The WireGuard / Tailscale split tunnel: marked traffic (the tunnel's
// own socket) takes main, everything else the tunnel's table.
func TestRuleFwmarkSplitTunnel(t *testing.T) {
	s, eth0, eth1, wg0 := policyStack(t)
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: wg0, Table: 51820})
	if err := s.AddRule(Rule{Priority: 100, Mark: 51820, Invert: true, Table: 51820}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRule(Rule{Priority: 100, Mark: 51820, Invert: true, Table: 51820}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate rule: %v, want EEXIST", err)
	}
	if err := s.AddRule(Rule{Priority: 99, Table: TableMain, Suppress: true, SuppressPrefixLen: 0}); err != nil {
		t.Fatal(err)
	}
	wantNIC(t, s, far, Flow{}, wg0)
	wantNIC(t, s, far, Flow{Mark: 51820}, eth0)
	// suppress_prefixlength 0 keeps main's specific routes.
	wantNIC(t, s, netip.MustParseAddr("10.1.0.9"), Flow{}, eth1)
	// The host's own addresses stay local (rule 0).
	if r := wantNIC(t, s, netip.MustParseAddr("10.1.0.1"), Flow{}, s.lo); !r.Local {
		t.Fatal("own address not local")
	}
	// Without a matching route in 51820 for IPv6, the lookup falls
	// through to main.
	wantNIC(t, s, far6, Flow{}, eth0)
	if err := s.DelRule(Rule{Priority: 100, Mark: 51820, Invert: true, Table: 51820}); err != nil {
		t.Fatal(err)
	}
	if err := s.DelRule(Rule{Priority: 100, Mark: 51820, Invert: true, Table: 51820}); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("second delete: %v, want ESRCH", err)
	}
	wantNIC(t, s, far, Flow{}, eth0)
}

func TestRuleOrderAndFallthrough(t *testing.T) {
	s, eth0, eth1, wg0 := policyStack(t)
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("192.0.2.0/24"), NIC: eth1, Table: 10})
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: wg0, Table: 20})
	// Same priority: in the order added; 10 first.
	for _, r := range []Rule{{Priority: 500, Table: 10}, {Priority: 500, Table: 20}} {
		if err := s.AddRule(r); err != nil {
			t.Fatal(err)
		}
	}
	rules := s.Rules()
	if len(rules) != 5 || rules[1].Table != 10 || rules[2].Table != 20 || rules[3].Table != TableMain {
		t.Fatalf("order %v", rules)
	}
	wantNIC(t, s, far, Flow{}, eth1)                                // table 10
	wantNIC(t, s, netip.MustParseAddr("198.51.100.1"), Flow{}, wg0) // 10 has none: 20
	// A lower priority goes first.
	if err := s.AddRule(Rule{Priority: 400, To: netip.MustParsePrefix("192.0.2.0/25"), Table: TableMain}); err != nil {
		t.Fatal(err)
	}
	wantNIC(t, s, far, Flow{}, eth0)
	wantNIC(t, s, netip.MustParseAddr("192.0.2.200"), Flow{}, eth1)
	// A rule naming an empty table falls through.
	if err := s.AddRule(Rule{Priority: 300, Table: 77}); err != nil {
		t.Fatal(err)
	}
	wantNIC(t, s, far, Flow{}, eth0)
	// No rule gives a route: ENETUNREACH.
	for _, r := range s.Rules() {
		if r.Table == TableMain || r.Table == 20 {
			if err := s.DelRule(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantErr(t, s, netip.MustParseAddr("198.51.100.1"), Flow{}, syscall.ENETUNREACH)
}

func TestRuleSelectors(t *testing.T) {
	s, eth0, eth1, wg0 := policyStack(t)
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: eth1, Table: 1})
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("::/0"), NIC: eth1, Table: 1})
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: wg0, Table: 2})
	must := func(r Rule) {
		t.Helper()
		if err := s.AddRule(r); err != nil {
			t.Fatal(err)
		}
	}
	must(Rule{Priority: 10, From: netip.MustParsePrefix("10.1.0.1/32"), Table: 1})
	must(Rule{Priority: 11, Mark: 0x100, Mask: 0xff00, Table: 2})
	must(Rule{Priority: 12, OIF: "eth1", Table: 1})
	must(Rule{Priority: 13, IIF: "eth1", Table: 2})
	must(Rule{Priority: 14, From: netip.MustParsePrefix("fd01::/64"), Table: 1})

	wantNIC(t, s, far, Flow{}, eth0)
	wantNIC(t, s, far, Flow{Src: netip.MustParseAddr("10.1.0.1")}, eth1)
	wantNIC(t, s, far, Flow{Src: netip.MustParseAddr("10.0.0.1")}, eth0)
	wantNIC(t, s, far, Flow{Mark: 0x1ff}, wg0) // 0x1ff & 0xff00 == 0x100
	wantNIC(t, s, far, Flow{Mark: 0x200}, eth0)
	wantNIC(t, s, far, Flow{Oif: eth1}, eth1)
	// iif: a forwarded packet from eth1; the host's own are "lo".
	r, err := s.forwardRoute(netip.MustParseAddr("10.1.0.9"), far, eth1)
	if err != nil || r.NIC != wg0 {
		t.Fatalf("forwarded from eth1: %v %v, want wg0", r.NIC, err)
	}
	r, err = s.forwardRoute(netip.MustParseAddr("10.0.0.9"), far, eth0)
	if err != nil || r.NIC != eth0 {
		t.Fatalf("forwarded from eth0: %v %v, want eth0", r.NIC, err)
	}
	must(Rule{Priority: 5, IIF: "lo", Mark: 9, Table: 2})
	wantNIC(t, s, far, Flow{Mark: 9}, wg0)
	// An IPv4 prefix selects IPv4 only; an IPv6 one IPv6 only.
	wantNIC(t, s, far6, Flow{Src: netip.MustParseAddr("fd01::1")}, eth1)
	wantNIC(t, s, far6, Flow{Src: netip.MustParseAddr("fd00::1")}, eth0)
	// A v4-mapped source is the IPv4 one.
	wantNIC(t, s, far, Flow{Src: netip.MustParseAddr("::ffff:10.1.0.1")}, eth1)
	if err := s.AddRule(Rule{From: netip.MustParsePrefix("10.0.0.0/8"), To: netip.MustParsePrefix("::/0")}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("mixed families: %v, want EINVAL", err)
	}
	if err := s.AddRule(Rule{Action: RuleProhibit, Table: 5}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("prohibit with a table: %v, want EINVAL", err)
	}
}

// Linux's errnos for a rule's action to a local sender: fib4_rule_action
// and fib6_rule_action.
func TestRuleActions(t *testing.T) {
	for _, c := range []struct {
		a    RuleAction
		want syscall.Errno
	}{{RuleBlackhole, syscall.EINVAL}, {RuleUnreachable, syscall.ENETUNREACH}, {RuleProhibit, syscall.EACCES}} {
		t.Run(c.a.String(), func(t *testing.T) {
			s, eth0, _, _ := policyStack(t)
			if err := s.AddRule(Rule{Priority: 10, Mark: 3, Action: c.a}); err != nil {
				t.Fatal(err)
			}
			wantErr(t, s, far, Flow{Mark: 3}, c.want)
			wantErr(t, s, far6, Flow{Mark: 3}, c.want)
			wantNIC(t, s, far, Flow{}, eth0)
			// The host's own addresses: rule 0 comes first.
			wantNIC(t, s, netip.MustParseAddr("10.0.0.1"), Flow{Mark: 3}, s.lo)
			// The packet path gives the same errno.
			err := s.WritePacket(&OutPacket{Dst: far, Proto: 17, Mark: 3, Parts: [3][]byte{make([]byte, 8)}})
			if !errors.Is(err, c.want) {
				t.Fatalf("WritePacket: %v, want %v", err, c.want)
			}
		})
	}
}

func TestRouteMetric(t *testing.T) {
	s, eth0, eth1, wg0 := policyStack(t)
	p := netip.MustParsePrefix("198.51.100.0/24")
	s.AddRoute(Route{Prefix: p, NIC: eth1, Metric: 200})
	s.AddRoute(Route{Prefix: p, NIC: wg0, Metric: 100})
	s.AddRoute(Route{Prefix: p, NIC: eth0, Metric: 300})
	dst := netip.MustParseAddr("198.51.100.1")
	wantNIC(t, s, dst, Flow{}, wg0)
	if r, _ := s.FindRoute(dst); r.NIC != wg0 {
		t.Fatalf("FindRoute: %v, want wg0 (lowest metric)", r.NIC)
	}
	// A longer prefix beats a lower metric.
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("198.51.100.0/25"), NIC: eth0, Metric: 1000})
	wantNIC(t, s, dst, Flow{}, eth0)
	if err := s.DelRoute(Route{Prefix: netip.MustParsePrefix("198.51.100.0/25"), NIC: eth0, Metric: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := s.DelRoute(Route{Prefix: p, NIC: wg0, Metric: 100}); err != nil {
		t.Fatal(err)
	}
	wantNIC(t, s, dst, Flow{}, eth1)
	// The same route with another metric is a second one; with the same
	// metric it is replaced.
	s.AddRoute(Route{Prefix: p, NIC: eth1, Metric: 200, MTU: 1400})
	n := 0
	for _, r := range s.Routes() {
		if r.Prefix == p && r.NIC == eth1 {
			n++
			if r.MTU != 1400 {
				t.Fatalf("not replaced: %v", r)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d routes for %v via eth1, want 1", n, p)
	}
	// Metrics order the routes of one table: table 7 too.
	s.AddRoute(Route{Prefix: p, NIC: eth0, Metric: 5, Table: 7})
	s.AddRoute(Route{Prefix: p, NIC: wg0, Metric: 1, Table: 7})
	if err := s.AddRule(Rule{Priority: 1, Table: 7}); err != nil {
		t.Fatal(err)
	}
	wantNIC(t, s, dst, Flow{}, wg0)
}

// The default table (rule 32767) is looked up after main.
func TestRuleDefaultTable(t *testing.T) {
	s, eth0, eth1, _ := policyStack(t)
	if err := s.DelRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.254"), NIC: eth0}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s, far, Flow{}, syscall.ENETUNREACH)
	s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: eth1, Table: TableDefault})
	if s.pr.snap.Load() == nil {
		t.Fatal("a default-table route did not publish a policy")
	}
	wantNIC(t, s, far, Flow{}, eth1)
	// FindRoute goes through the rules too.
	if r, err := s.FindRoute(far); err != nil || r.NIC != eth1 {
		t.Fatalf("FindRoute: %v %v, want eth1", r.NIC, err)
	}
}

// The per-packet lookup with only the default rules: no allocation.
func TestRouteOutNoAlloc(t *testing.T) {
	s, _, _, _ := policyStack(t)
	p := &OutPacket{Dst: far}
	if n := testing.AllocsPerRun(100, func() { s.routeOut(far, p) }); n != 0 {
		t.Fatalf("%v allocations per lookup without rules", n)
	}
	s.AddRule(Rule{Priority: 5, Mark: 1, Table: 9})
	p.Mark = 1
	if n := testing.AllocsPerRun(100, func() { s.routeOut(far, p) }); n != 0 {
		t.Fatalf("%v allocations per lookup with rules", n)
	}
}

func BenchmarkRouteOut(b *testing.B) {
	for _, rules := range []bool{false, true} {
		name := "default-rules"
		if rules {
			name = "fwmark-rules"
		}
		b.Run(name, func(b *testing.B) {
			s := New(Options{})
			defer s.Close()
			n := s.AddNIC("eth0", &chanEP{mtu: 1500, discard: true})
			n.AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
			s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.254"), NIC: n})
			if rules {
				s.AddRoute(Route{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NIC: n, Table: 51820})
				s.AddRule(Rule{Priority: 100, Mark: 51820, Invert: true, Table: 51820})
				s.AddRule(Rule{Priority: 99, Table: TableMain, Suppress: true})
			}
			p := &OutPacket{Dst: far, Src: netip.MustParseAddr("10.0.0.1")}
			b.ReportAllocs()
			for b.Loop() {
				s.routeOut(far, p)
			}
		})
	}
}

// Forwarded packets: rules see the input NIC (iif), and a refusing
// rule answers as Linux's ip_error: prohibit with ICMP communication
// administratively prohibited, unreachable with network unreachable,
// blackhole with nothing.
func TestRuleForwarded(t *testing.T) {
	h := newHarness(t, Options{Forwarding: true})
	dst := netip.MustParseAddr("10.0.0.50")
	h.nic.SetStatic(dst, wire.MAC{2, 0, 0, 0, 0, 0x50})
	h.ep.take()
	send := func() [][]byte {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: dst, TTL: 9}, make([]byte, 10)))
		return h.ep.take()
	}
	// A rule for the host's own packets (iif lo) does not touch them.
	if err := h.s.AddRule(Rule{Priority: 10, IIF: "lo", Action: RuleProhibit}); err != nil {
		t.Fatal(err)
	}
	if out := send(); len(out) != 1 || parseOut(t, out[0]).Dst() != dst {
		t.Fatalf("iif lo rule: %d frames, want the forwarded packet", len(out))
	}
	if err := h.s.WritePacket(&OutPacket{Dst: dst, Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 8)}}); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("own packet under iif lo prohibit: %v, want EACCES", err)
	}
	// (It would refuse the ICMP errors below too: they are the host's.)
	h.s.DelRule(Rule{Priority: 10, IIF: "lo", Action: RuleProhibit})
	for _, c := range []struct {
		a    RuleAction
		code int // -1: nothing sent
	}{{RuleProhibit, int(wire.ICMPAdminProhibited)}, {RuleUnreachable, int(wire.ICMPNetUnreach)}, {RuleBlackhole, -1}} {
		r := Rule{Priority: 20, IIF: "eth0", Action: c.a}
		if err := h.s.AddRule(r); err != nil {
			t.Fatal(err)
		}
		out := send()
		if c.code < 0 {
			if len(out) != 0 {
				t.Fatalf("%v: %d frames, want none", c.a, len(out))
			}
		} else {
			if len(out) != 1 {
				t.Fatalf("%v: %d frames, want an ICMP error", c.a, len(out))
			}
			m, _ := wire.ParseICMPv4(parseOut(t, out[0]).Payload())
			if m.Type() != wire.ICMPDestUnreach || int(m.Code()) != c.code {
				t.Fatalf("%v: ICMP type %d code %d, want 3/%d", c.a, m.Type(), m.Code(), c.code)
			}
		}
		h.s.DelRule(r)
	}
}
