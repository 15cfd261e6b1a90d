package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
)

// IPv6 forwarding against the kernel, and compared with a Linux router.
// Two namespaces of the test's own, A and B, each a kernel host on one
// side of a TAP; sockstack, in this process, opens both TAPs and routes
// between them. The second link (B) has MTU 1280.
//
//	A  fd00:a::1/64  ft0 ── sockstack fd00:a::2 | fd00:b::2 ── ft0 fd00:b::1/64  B (MTU 1280)
//
// The same addresses in three more namespaces with a kernel router in
// the middle (veths) give the packets Linux answers with; the ICMP lines
// ping prints must match.
var (
	f6A      = "fd00:a::1"
	f6B      = "fd00:b::1"
	f6RouteA = netip.MustParsePrefix("fd00:a::2/64")
	f6RouteB = netip.MustParsePrefix("fd00:b::2/64")
)

func TestInteropForward6(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "sysctl")
	var rb [4]byte
	rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	nsA, nsB := "sf6a-"+id, "sf6b-"+id
	for _, ns := range []string{nsA, nsB} {
		f6NS(t, ns)
	}
	f6Run(t, nsA,
		[]string{"ip", "tuntap", "add", "dev", "ft0", "mode", "tap"},
		[]string{"ip", "link", "set", "ft0", "up"},
		[]string{"ip", "-6", "addr", "add", f6A + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:b::/64", "via", "fd00:a::2"})
	f6Run(t, nsB,
		[]string{"ip", "tuntap", "add", "dev", "ft0", "mode", "tap"},
		[]string{"ip", "link", "set", "ft0", "mtu", "1280", "up"},
		[]string{"ip", "-6", "addr", "add", f6B + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:a::/64", "via", "fd00:b::2"})

	st := stack.New(stack.Options{Name: "router6", Forwarding: true})
	t.Cleanup(st.Close) // runs before the namespaces go
	for i, ns := range []string{nsA, nsB} {
		tap, err := link.OpenTAP("ft0", link.TAPOptions{Netns: ns})
		if err != nil {
			t.Fatal(err)
		}
		nic := st.AddNIC("ft"+strconv.Itoa(i), tap)
		if err := nic.EnableIPv6(); err != nil {
			t.Fatal(err)
		}
		if err := nic.AddAddress([]netip.Prefix{f6RouteA, f6RouteB}[i]); err != nil {
			t.Fatal(err)
		}
		waitDAD(t, nic)
	}
	if m := st.NICByName("ft1").MTU(); m != 1280 {
		t.Fatalf("sockstack's second NIC has MTU %d, want the TAP's 1280", m)
	}
	got := f6Scenario(t, nsA, "fd00:a::2")
	s := st.Stats()
	if n := s.IP6.ForwDatagrams.Load(); n < 4 {
		t.Errorf("ForwDatagrams %d, want at least the 2 requests and 2 replies", n)
	}
	if n := s.IP6.InHopLimitExceeded.Load(); n != 1 {
		t.Errorf("InHopLimitExceeded %d, want 1", n)
	}
	if n := s.IP6.InTooBigErrors.Load(); n != 1 {
		t.Errorf("InTooBigErrors %d, want 1", n)
	}

	// The same with Linux as the router.
	lA, lR, lB := "lf6a-"+id, "lf6r-"+id, "lf6b-"+id
	for _, ns := range []string{lA, lR, lB} {
		f6NS(t, ns)
	}
	f6Run(t, lR,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		[]string{"ip", "link", "add", "ra", "type", "veth", "peer", "name", "ft0", "netns", lA},
		[]string{"ip", "link", "add", "rb", "mtu", "1280", "type", "veth", "peer", "name", "ft0", "mtu", "1280", "netns", lB},
		[]string{"ip", "link", "set", "ra", "up"},
		[]string{"ip", "link", "set", "rb", "up"},
		[]string{"ip", "-6", "addr", "add", f6RouteA.String(), "dev", "ra", "nodad"},
		[]string{"ip", "-6", "addr", "add", f6RouteB.String(), "dev", "rb", "nodad"})
	f6Run(t, lA,
		[]string{"ip", "link", "set", "ft0", "up"},
		[]string{"ip", "-6", "addr", "add", f6A + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:b::/64", "via", "fd00:a::2"})
	f6Run(t, lB,
		[]string{"ip", "link", "set", "ft0", "up"},
		[]string{"ip", "-6", "addr", "add", f6B + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:a::/64", "via", "fd00:b::2"})
	want := f6Scenario(t, lA, "fd00:a::2")
	t.Logf("sockstack router: %q; Linux router: %q", got, want)
	for i, what := range []string{"hop limit 1", "too big"} {
		if got[i] != want[i] {
			t.Errorf("%s: sockstack router: %q; Linux router: %q", what, got[i], want[i])
		}
	}
	for _, c := range []struct {
		name string
		want uint64
	}{
		// Linux (6.18 checked) counts a packet refused as too big in
		// Ip6OutForwDatagrams as well; ForwDatagrams counts what left.
		{"Ip6OutForwDatagrams", s.IP6.ForwDatagrams.Load() + s.IP6.InTooBigErrors.Load()},
		{"Ip6InTooBigErrors", s.IP6.InTooBigErrors.Load()}, {"Icmp6OutTimeExcds", s.ICMP6.OutTimeExcds.Load()}} {
		if v := f6SNMP(t, lR, c.name); v != c.want {
			out, _ := f6Exec(lR, "cat", "/proc/net/snmp6")
			t.Errorf("%s: Linux router %d, sockstack %d; the Linux router's counters:\n%s", c.name, v, c.want, nonZero(out))
		}
	}

	// Rules by input interface (ip -6 rule iif ... prohibit |
	// unreachable | blackhole): the same answers from both routers.
	for _, c := range []struct {
		action stack.RuleAction
		want   string // "": no ICMP error at all
	}{
		{stack.RuleProhibit, "Destination unreachable: Administratively prohibited"},
		{stack.RuleUnreachable, "Destination unreachable: No route"},
		{stack.RuleBlackhole, ""},
	} {
		r := stack.Rule{Priority: 100, IIF: "ft0", To: netip.MustParsePrefix("fd00:b::/64"), Action: c.action}
		if err := st.AddRule(r); err != nil {
			t.Fatal(err)
		}
		ours := f6PingErr(t, nsA)
		st.DelRule(r)
		lrule := []string{"ip", "-6", "rule", "add", "pref", "100", "iif", "ra", "to", "fd00:b::/64", c.action.String()}
		f6Run(t, lR, lrule)
		theirs := f6PingErr(t, lA)
		lrule[3] = "del"
		f6Run(t, lR, lrule)
		if ours != theirs {
			t.Errorf("%v rule: sockstack router %q, Linux router %q", c.action, ours, theirs)
		}
		if want := "From fd00:a::2 icmp_seq=1 " + c.want; c.want == "" && ours != "" || c.want != "" && ours != want {
			t.Errorf("%v rule: sockstack router %q, want %q", c.action, ours, want)
		}
	}
	// Neither kernel host saw anything malformed.
	for _, ns := range []string{nsA, nsB} {
		for _, name := range []string{"Icmp6InErrors", "Icmp6InCsumErrors", "Ip6InHdrErrors"} {
			if v := f6SNMP(t, ns, name); v != 0 {
				t.Errorf("%s in %s: %d", name, ns, v)
			}
		}
	}
}

// f6PingErr pings B once from ns and returns ping's line about an
// ICMP error ("" if there was none).
func f6PingErr(t *testing.T, ns string) string {
	t.Helper()
	out, err := f6Exec(ns, "ping", "-6", "-n", "-c", "1", "-W", "1", f6B)
	if err == nil {
		t.Fatalf("ping from %s answered through a refusing rule:\n%s", ns, out)
	}
	return strings.TrimSpace(regexp.MustCompile(`(?m)^From .*$`).FindString(out))
}

// nonZero keeps the lines of a counter file whose value is not 0.
func nonZero(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] != "0" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// f6Scenario pings B from ns through the router at router: plain pings
// must be answered; a hop limit of 1 and a 1400-byte ping with
// fragmentation forbidden must draw the router's ICMP errors, whose
// lines of ping's output it returns; the kernel must have learnt the
// path MTU.
func f6Scenario(t *testing.T, ns, router string) [2]string {
	t.Helper()
	if out, err := f6Exec(ns, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "3", f6B); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", f6B, ns, err, out)
	}
	var lines [2]string
	for i, args := range [][]string{
		{"-t", "1"},
		{"-M", "do", "-s", "1400"},
	} {
		cmd := append([]string{"ping", "-6", "-n", "-c", "1", "-W", "3"}, args...)
		out, _ := f6Exec(ns, append(cmd, f6B)...) // no reply: exit status 1
		m := regexp.MustCompile(`(?m)^From (\S+) icmp_seq=1 (.*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s in %s: no ICMP error reported:\n%s", strings.Join(cmd, " "), ns, out)
		}
		if m[1] != router {
			t.Errorf("%s in %s: error from %s, want the router %s", strings.Join(cmd, " "), ns, m[1], router)
		}
		lines[i] = strings.TrimSpace(m[0])
	}
	if !strings.Contains(lines[0], "Time exceeded: Hop limit") {
		t.Errorf("hop limit 1 in %s: %q", ns, lines[0])
	}
	if !strings.Contains(lines[1], "Packet too big: mtu=1280") {
		t.Errorf("too big in %s: %q", ns, lines[1])
	}
	out, err := f6Exec(ns, "ip", "-6", "route", "get", f6B)
	if err != nil || !strings.Contains(out, "mtu 1280") {
		t.Errorf("%s's route to %s learnt no path MTU (%v): %s", ns, f6B, err, out)
	}
	// At the learnt MTU the pings go through.
	if out, err := f6Exec(ns, "ping", "-6", "-n", "-c", "1", "-W", "3", "-M", "do", "-s", "1232", f6B); err != nil {
		t.Errorf("1280-byte ping from %s: %v\n%s", ns, err, out)
	}
	return lines
}

// f6NS makes a namespace with lo up and DAD off (the addresses are
// usable at once), deleted when the test ends.
func f6NS(t *testing.T, ns string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	f6Run(t, ns,
		[]string{"ip", "link", "set", "lo", "up"},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0"})
}

// f6Run runs each command in ns and fails the test on the first error.
func f6Run(t *testing.T, ns string, cmds ...[]string) {
	t.Helper()
	for _, c := range cmds {
		if out, err := f6Exec(ns, c...); err != nil {
			t.Fatalf("%s in %s: %v: %s", strings.Join(c, " "), ns, err, out)
		}
	}
}

// f6Exec runs one command in ns, bounded to 20 s.
func f6Exec(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// f6SNMP reads one counter of ns's /proc/net/snmp6.
func f6SNMP(t *testing.T, ns, name string) uint64 {
	t.Helper()
	out, err := f6Exec(ns, "cat", "/proc/net/snmp6")
	if err != nil {
		t.Fatalf("snmp6 of %s: %v", ns, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	t.Fatalf("no %s in %s's snmp6", name, ns)
	return 0
}

// Redirects (RFC 4861 8.2): the router sends a packet back out of the
// link it came in on, and tells the source of the better first hop. A
// (br0 fd00:a::1/64) and C (fe80::c, fd00:a::3/64, fd00:c::1 on lo)
// share a bridged link with the router; A reaches fd00:c::/64 through
// the router's link-local address, the router through C. After a ping
// A's kernel must have taken the redirect: its route to fd00:c::1 goes
// via fe80::c. The same with Linux as the router.
func TestInteropForward6Redirect(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "sysctl")
	var rb [4]byte
	rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])

	// sockstack on a TAP in A's bridge.
	nsA := f6RedirectLink(t, "sr6a-"+id, "sr6c-"+id)
	f6Run(t, nsA,
		[]string{"ip", "tuntap", "add", "dev", "ft0", "mode", "tap"},
		[]string{"ip", "link", "set", "ft0", "master", "br0"},
		[]string{"ip", "link", "set", "ft0", "up"})
	tap, err := link.OpenTAP("ft0", link.TAPOptions{Netns: nsA})
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "router6", Forwarding: true})
	t.Cleanup(st.Close)
	nic := st.AddNIC("ft0", tap)
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := nic.AddAddress(f6RouteA); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, nic)
	st.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("fd00:c::/64"), Gateway: netip.MustParseAddr("fe80::c"), NIC: nic})
	ll := linkLocal(nic)
	got := f6RedirectPing(t, nsA, ll.String())
	if n := st.Stats().ICMP6.OutRedirects.Load(); n == 0 {
		t.Error("sockstack counted no redirect sent")
	}

	// Linux as the router: R with a veth into A's bridge.
	lA, lR := f6RedirectLink(t, "lr6a-"+id, "lr6c-"+id), "lr6r-"+id
	f6NS(t, lR)
	f6Run(t, lR,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		[]string{"ip", "link", "add", "r0", "type", "veth", "peer", "name", "vr", "netns", lA},
		[]string{"ip", "link", "set", "r0", "addrgenmode", "none"},
		[]string{"ip", "link", "set", "r0", "up"},
		[]string{"ip", "-6", "addr", "add", "fe80::2/64", "dev", "r0", "nodad"},
		[]string{"ip", "-6", "addr", "add", f6RouteA.String(), "dev", "r0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:c::/64", "via", "fe80::c", "dev", "r0"})
	f6Run(t, lA,
		[]string{"ip", "link", "set", "vr", "master", "br0"},
		[]string{"ip", "link", "set", "vr", "up"})
	want := f6RedirectPing(t, lA, "fe80::2")
	if v := f6SNMP(t, lR, "Icmp6OutRedirects"); v == 0 {
		t.Error("the Linux router sent no redirect")
	}
	t.Logf("route after the redirect: sockstack router %q; Linux router %q", got, want)
}

// f6RedirectLink makes A (bridge br0) and C (on it by a veth) and
// returns A's name.
func f6RedirectLink(t *testing.T, nsA, nsC string) string {
	t.Helper()
	f6NS(t, nsA)
	f6NS(t, nsC)
	f6Run(t, nsA,
		[]string{"ip", "link", "add", "br0", "type", "bridge"},
		[]string{"ip", "link", "add", "vc", "type", "veth", "peer", "name", "c0", "netns", nsC},
		[]string{"ip", "link", "set", "vc", "master", "br0"},
		[]string{"ip", "link", "set", "vc", "up"},
		[]string{"ip", "link", "set", "br0", "up"},
		[]string{"ip", "-6", "addr", "add", f6A + "/64", "dev", "br0", "nodad"})
	f6Run(t, nsC,
		[]string{"ip", "link", "set", "c0", "addrgenmode", "none"},
		[]string{"ip", "link", "set", "c0", "up"},
		[]string{"ip", "-6", "addr", "add", "fe80::c/64", "dev", "c0", "nodad"},
		[]string{"ip", "-6", "addr", "add", "fd00:a::3/64", "dev", "c0", "nodad"},
		[]string{"ip", "-6", "addr", "add", "fd00:c::1/128", "dev", "lo"})
	return nsA
}

// f6RedirectPing routes fd00:c::/64 from A through router (a link-local
// address), pings fd00:c::1 and checks that A took a redirect to
// fe80::c; it returns the route A then has.
func f6RedirectPing(t *testing.T, nsA, router string) string {
	t.Helper()
	f6Run(t, nsA, []string{"ip", "-6", "route", "add", "fd00:c::/64", "via", router, "dev", "br0"})
	if out, err := f6Exec(nsA, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "3", "fd00:c::1"); err != nil {
		t.Fatalf("ping fd00:c::1 from %s through %s: %v\n%s", nsA, router, err, out)
	}
	if v := f6SNMP(t, nsA, "Icmp6InRedirects"); v == 0 {
		t.Errorf("%s received no redirect from %s", nsA, router)
	}
	out, err := f6Exec(nsA, "ip", "-6", "route", "get", "fd00:c::1")
	if err != nil || !strings.Contains(out, "via fe80::c ") {
		t.Errorf("%s's route to fd00:c::1 after the redirect from %s (%v): %s", nsA, router, err, out)
	}
	for _, name := range []string{"Icmp6InErrors", "Icmp6InCsumErrors"} {
		if v := f6SNMP(t, nsA, name); v != 0 {
			t.Errorf("%s in %s: %d", name, nsA, v)
		}
	}
	return strings.TrimSpace(out)
}
