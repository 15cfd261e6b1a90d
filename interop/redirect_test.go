package interop

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Redirects from a real router. The lab's namespace becomes a Linux
// router R: a bridge br0 joins the TAP (sockstack) and a veth to a second
// namespace H, so all three share one link. sockstack reaches the
// networks behind H (10.79.0.0/24, fd00:79::/64, on H's loopback) through
// R, as its routes say; R forwards each such packet back out of br0, the
// interface it came in on, and tells the sender of the better first hop
// with an ICMP redirect (IPv6: always; IPv4: net.ipv4.conf.*.send_redirects,
// on by default).
//
//	sockstack 10.78.0.2  fd00:78::2  (LL from its MAC)
//	R (br0)   10.78.0.1  fd00:78::1  fe80::1   forwarding on
//	H (h0)    10.78.0.3  fd00:78::3  fe80::3   lo: 10.79.0.1, fd00:79::1, fd00:79::2
var (
	rdStack4  = netip.MustParsePrefix("10.78.0.2/24")
	rdStack6  = netip.MustParsePrefix("fd00:78::2/64")
	rdRouter4 = netip.MustParseAddr("10.78.0.1")
	rdRouter6 = netip.MustParseAddr("fd00:78::1")
	rdRouterL = netip.MustParseAddr("fe80::1")
	rdHostLL  = netip.MustParseAddr("fe80::3")
	rdFar4    = netip.MustParseAddr("10.79.0.1")
	rdFar6    = netip.MustParseAddr("fd00:79::1")
	rdFar6b   = netip.MustParseAddr("fd00:79::2")
)

// rdLab is the three-party link: l.ns is R, hns is H.
type rdLab struct {
	*lab
	hns string
}

func newRedirectLab(t *testing.T) *rdLab {
	t.Helper()
	l := newLab(t) // the TAP's own IPv6 is off: it is only a bridge port
	if _, err := exec.LookPath("sysctl"); err != nil {
		missing(t, "sysctl")
	}
	r := &rdLab{lab: l, hns: l.ns + "-h"}
	// Registered after newLab's cleanup, so it runs first.
	t.Cleanup(func() { exec.Command("ip", "netns", "del", r.hns).Run() })
	R, H := l.ns, r.hns
	steps := [][]string{
		{"ip", "netns", "add", H},
		{"ip", "-n", H, "link", "set", "lo", "up"},
		{"ip", "-n", R, "addr", "flush", "dev", tapName},
		{"ip", "-n", R, "link", "add", "br0", "type", "bridge"},
		// Only the fixed link-local addresses: the redirect's source
		// must be the gateway sockstack's route names.
		{"ip", "-n", R, "link", "set", "br0", "addrgenmode", "none"},
		{"ip", "-n", R, "link", "set", tapName, "master", "br0"},
		{"ip", "-n", R, "link", "add", "vh", "type", "veth", "peer", "name", "h0", "netns", H},
		{"ip", "netns", "exec", R, "sysctl", "-q", "-w", "net.ipv6.conf.vh.disable_ipv6=1"},
		{"ip", "-n", R, "link", "set", "vh", "master", "br0"},
		{"ip", "-n", R, "link", "set", "vh", "up"},
		{"ip", "netns", "exec", R, "sysctl", "-q", "-w", "net.ipv6.conf.br0.accept_dad=0"},
		{"ip", "netns", "exec", R, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "netns", "exec", R, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", R, "sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=1"},
		{"ip", "-n", R, "link", "set", "br0", "up"},
		{"ip", "-n", R, "addr", "add", "10.78.0.1/24", "dev", "br0"},
		{"ip", "-n", R, "-6", "addr", "add", "fe80::1/64", "dev", "br0", "nodad"},
		{"ip", "-n", R, "-6", "addr", "add", "fd00:78::1/64", "dev", "br0", "nodad"},
		{"ip", "-n", R, "route", "add", "10.79.0.0/24", "via", "10.78.0.3", "dev", "br0"},
		{"ip", "-n", R, "-6", "route", "add", "fd00:79::/64", "via", "fe80::3", "dev", "br0"},
		{"ip", "-n", H, "link", "set", "h0", "addrgenmode", "none"},
		{"ip", "netns", "exec", H, "sysctl", "-q", "-w", "net.ipv6.conf.h0.accept_dad=0"},
		{"ip", "-n", H, "link", "set", "h0", "up"},
		{"ip", "-n", H, "addr", "add", "10.78.0.3/24", "dev", "h0"},
		{"ip", "-n", H, "-6", "addr", "add", "fe80::3/64", "dev", "h0", "nodad"},
		{"ip", "-n", H, "-6", "addr", "add", "fd00:78::3/64", "dev", "h0", "nodad"},
		{"ip", "-n", H, "addr", "add", "10.79.0.1/32", "dev", "lo"},
		{"ip", "-n", H, "-6", "addr", "add", "fd00:79::1/128", "dev", "lo"},
		{"ip", "-n", H, "-6", "addr", "add", "fd00:79::2/128", "dev", "lo"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return r
}

// startStack runs sockstack on the TAP with routes to H's networks
// through R (by R's link-local address for IPv6, as a learned default
// router would be).
func (r *rdLab) startStack(t *testing.T) *host {
	t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: r.ns})
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, tap)
	t.Cleanup(st.Close)
	if err := h.nic.AddAddress(rdStack4); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.AddAddress(rdStack6); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, h.nic)
	st.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("10.79.0.0/24"), Gateway: rdRouter4, NIC: h.nic})
	st.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("fd00:79::/64"), Gateway: rdRouterL, NIC: h.nic})
	return h
}

// snmp reads a counter of a namespace's /proc/net/snmp (IPv4: "Ip
// ForwDatagrams", "Icmp InEchos") or snmp6 ("Ip6OutForwDatagrams").
func (r *rdLab) snmp(t *testing.T, ns, name string) int64 {
	t.Helper()
	file, group := "/proc/net/snmp6", ""
	if g, n, ok := strings.Cut(name, " "); ok {
		file, group, name = "/proc/net/snmp", g+":", n
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", file).Output()
	if err != nil {
		t.Fatalf("%s in %s: %v", file, ns, err)
	}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if group == "" {
			if f[0] == name {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
			continue
		}
		if f[0] != group {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i := range header {
			if header[i] == name && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no counter %q in %s of %s", name, file, ns)
	return 0
}

// ping4 sends three echo requests from a sockstack ping socket to dst
// and waits for each reply.
func ping4(t *testing.T, h *host, dst netip.Addr) {
	t.Helper()
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(3 * time.Second)
	buf := make([]byte, 2048)
	for seq := 1; seq <= 3; seq++ {
		msg := make([]byte, 8+16)
		msg[0] = wire.ICMPEcho
		wire.ICMPv4(msg).SetSeq(uint16(seq))
		if _, err := s.SendTo(msg, 0, socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
			t.Fatal(err)
		}
		n, _, err := s.RecvFrom(buf, 0)
		if err != nil || n != len(msg) || buf[0] != wire.ICMPEchoReply {
			t.Fatalf("echo %d to %v: %d bytes %v", seq, dst, n, err)
		}
	}
}

// TestInteropRedirect6FromLinuxRouter: the Linux router forwards
// sockstack's first echo to fd00:79::1 back onto the link and sends an
// NDP redirect naming H (fe80::3) as the better first hop. sockstack
// accepts it (Redirect6.Accepted), its destination cache maps the
// destination to fe80::3, and the next echoes go straight to H: H counts
// them, R forwards none of them.
func TestInteropRedirect6FromLinuxRouter(t *testing.T) {
	r := newRedirectLab(t)
	h := r.startStack(t)
	ping6(t, h, rdFar6, 16) // through R: R forwards and redirects
	r.waitUntil(t, "sockstack's destination cache has the redirect", func() bool {
		return h.st.Redirects6()[rdFar6] == rdHostLL
	})
	st := &h.st.Stats().Redirect6
	if a := st.Accepted.Load(); a < 1 {
		t.Fatalf("Redirect6.Accepted %d after the cache took the redirect", a)
	}
	if rr, err := h.st.FindRoute(rdFar6); err != nil || rr.NextHop.WithZone("") != rdHostLL {
		t.Fatalf("route to %v: %+v %v, want next hop %v", rdFar6, rr, err, rdHostLL)
	}
	fwd := r.snmp(t, r.ns, "Ip6OutForwDatagrams")
	echos := r.snmp(t, r.hns, "Icmp6InEchos")
	ping6(t, h, rdFar6, 16)
	if d := r.snmp(t, r.ns, "Ip6OutForwDatagrams") - fwd; d != 0 {
		t.Errorf("the router forwarded %d packets after the redirect: sockstack still sends through it", d)
	}
	if d := r.snmp(t, r.hns, "Icmp6InEchos") - echos; d != 3 {
		t.Errorf("H counted %d echo requests, want 3 (straight from sockstack)", d)
	}
	// A destination the redirect did not name still goes through R.
	fwd = r.snmp(t, r.ns, "Ip6OutForwDatagrams")
	ping6(t, h, rdFar6b, 16)
	if d := r.snmp(t, r.ns, "Ip6OutForwDatagrams") - fwd; d < 1 {
		t.Errorf("the router forwarded nothing for %v, which no redirect named", rdFar6b)
	}
	for _, c := range []struct {
		name string
		v    uint64
	}{{"BadSource", st.BadSource.Load()}, {"BadHopLimit", st.BadHopLimit.Load()}, {"NotFirstHop", st.NotFirstHop.Load()}, {"BadOptions", st.BadOptions.Load()}} {
		if c.v != 0 {
			t.Errorf("Redirect6.%s = %d: Linux's redirect was judged invalid", c.name, c.v)
		}
	}
}

// scapyRedirect sends, from H's interface, an NDP redirect to sockstack
// from src saying that dst is better reached through H (fe80::3).
func (r *rdLab) scapyRedirect(t *testing.T, stackMAC wire.MAC, src, dst netip.Addr) {
	t.Helper()
	script := fmt.Sprintf(`
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IPv6, ICMPv6ND_Redirect, ICMPv6NDOptDstLLAddr, sendp, get_if_hwaddr
mac = get_if_hwaddr("h0")
p = Ether(src=mac, dst=%q)/IPv6(src=%q, dst=%q, hlim=255)/ICMPv6ND_Redirect(tgt=%q, dst=%q)/ICMPv6NDOptDstLLAddr(lladdr=mac)
sendp(p, iface="h0", verbose=0)
`, stackMAC.String(), src, rdStack6.Addr(), rdHostLL, dst)
	out, err := exec.Command("ip", "netns", "exec", r.hns, "/usr/bin/python3", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("scapy: %v: %s", err, out)
	}
}

// TestInteropRedirect6Invalid: redirects crafted with scapy from H, one
// from a global source (RFC 4861 8.1: must be link-local) and one from a
// link-local address that is not sockstack's first hop for the
// destination, are dropped and counted (Redirect6.BadSource,
// Redirect6.NotFirstHop); the destination cache stays empty and the
// destination is still reached through R. (scapy: the kernel router
// sends only valid redirects.)
func TestInteropRedirect6Invalid(t *testing.T) {
	needTools(t, "/usr/bin/python3")
	if err := exec.Command("/usr/bin/python3", "-c", "import scapy.all").Run(); err != nil {
		missing(t, "python3-scapy")
	}
	r := newRedirectLab(t)
	h := r.startStack(t)
	ping6(t, h, rdHostLL, 16) // H is a resolved neighbour; nothing redirected yet
	st := &h.st.Stats().Redirect6
	in := h.st.Stats().ICMP6.InRedirects.Load()
	r.scapyRedirect(t, h.nic.HardwareAddr(), rdRouter6, rdFar6b) // R's global address
	r.waitUntil(t, "Redirect6.BadSource counts the global source", func() bool { return st.BadSource.Load() == 1 })
	r.scapyRedirect(t, h.nic.HardwareAddr(), rdHostLL, rdFar6b) // link-local, not the first hop
	r.waitUntil(t, "Redirect6.NotFirstHop counts H's own redirect", func() bool { return st.NotFirstHop.Load() == 1 })
	if got := h.st.Stats().ICMP6.InRedirects.Load() - in; got != 2 {
		t.Errorf("ICMP6.InRedirects rose by %d, want 2", got)
	}
	if a := st.Accepted.Load(); a != 0 {
		t.Errorf("Redirect6.Accepted %d", a)
	}
	if c := h.st.Redirects6(); len(c) != 0 {
		t.Fatalf("destination cache %v after invalid redirects", c)
	}
	if rr, err := h.st.FindRoute(rdFar6b); err != nil || rr.NextHop.WithZone("") != rdRouterL {
		t.Fatalf("route to %v: %+v %v, want next hop %v", rdFar6b, rr, err, rdRouterL)
	}
	// The first echo goes through R (which then redirects it, validly:
	// the later ones may go straight to H).
	fwd := r.snmp(t, r.ns, "Ip6OutForwDatagrams")
	ping6(t, h, rdFar6b, 16)
	if d := r.snmp(t, r.ns, "Ip6OutForwDatagrams") - fwd; d < 1 {
		t.Errorf("the router forwarded none of the echoes: sockstack went around it")
	}
}

// TestInteropRedirect4Ignored: the same Linux router sends an IPv4
// redirect for 10.79.0.1 (send_redirects); sockstack counts it
// (ICMP.InRedirects) and ignores it, as Linux with accept_redirects=0
// (docs/DECISIONS.md): the route keeps R as next hop and later echoes
// are still forwarded by R.
func TestInteropRedirect4Ignored(t *testing.T) {
	r := newRedirectLab(t)
	h := r.startStack(t)
	sent := r.snmp(t, r.ns, "Icmp OutRedirects")
	ping4(t, h, rdFar4)
	r.waitUntil(t, "sockstack counts the router's redirect", func() bool {
		return h.st.Stats().ICMP.InRedirects.Load() >= 1
	})
	if d := r.snmp(t, r.ns, "Icmp OutRedirects") - sent; d < 1 {
		t.Fatalf("the router sent %d redirects", d)
	}
	if rr, err := h.st.FindRoute(rdFar4); err != nil || rr.NextHop != rdRouter4 {
		t.Fatalf("route to %v after the redirect: %+v %v, want next hop %v", rdFar4, rr, err, rdRouter4)
	}
	fwd := r.snmp(t, r.ns, "Ip ForwDatagrams")
	echos := r.snmp(t, r.hns, "Icmp InEchos")
	ping4(t, h, rdFar4)
	if d := r.snmp(t, r.ns, "Ip ForwDatagrams") - fwd; d != 3 {
		t.Errorf("the router forwarded %d of the 3 echoes after its redirect, want all 3", d)
	}
	if d := r.snmp(t, r.hns, "Icmp InEchos") - echos; d != 3 {
		t.Errorf("H counted %d echo requests, want 3", d)
	}
}
