package interop

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// relayICMPRE is the relay's ICMP counters line (relay_icmp.go).
var relayICMPRE = regexp.MustCompile(`relay: icmp echo-requests=(\d+) \(diverted=(\d+) no-socket=(\d+)\) sent=(\d+) replies=(\d+) timed-out=(\d+) dropped=(\d+) \(limit=(\d+) errors=(\d+)\) stray=(\d+) reply-errors=(\d+) icmp-errors=(\d+) \(rate-limited=(\d+)\); udp-unreachables sent=(\d+) rate-limited=(\d+)`)

// udpRefusedPy sends one datagram on a UDP socket connected to
// (argv[1], argv[2]) and prints how its next recv ends: "refused"
// (ECONNREFUSED), another errno's name, "timeout" or "answer". With
// argv[3] "recverr" the socket has IP_RECVERR (IPV6_RECVERR): Linux
// reports host and network unreachables (soft errors) only then.
const udpRefusedPy = `
import errno, socket, sys
h, p = sys.argv[1], int(sys.argv[2])
v6 = ':' in h
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 3: s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 25 if v6 else 11, 1)
s.connect((h, p)); s.settimeout(3)
s.send(b'anyone there?')
try:
    s.recv(100); print('answer')
except ConnectionRefusedError: print('refused')
except socket.timeout: print('timeout')
except OSError as e: print(errno.errorcode[e.errno])
`

// TestInteropRelayICMP: `sockstack relay` between two namespaces the
// test made, as TestInteropRelay (C holds the TUN and routes
// 198.51.100.0/24 and 2001:db8:77::/48 into it; the relay runs in S,
// where 198.51.100.7 and 2001:db8:77::7 are on lo). The kernel's ping
// from C gets its 3 replies over each family, from the destination's
// address, also with 3000 bytes of data (fragmented on the TUN both
// ways), through the relay's ICMP ping sockets (ping_group_range
// opened in S) and then through its raw sockets; a destination the
// relay's host cannot reach gets the host unreachable the relay's
// kernel reported (no ARP answer), or none (a blackhole route), and
// one nothing answers times out at the relay; a UDP client connected to a closed port of the destination
// gets ECONNREFUSED on its next recv, over both families, as through a
// real path; with --no-icmp none of this happens. The counters match.
func TestInteropRelayICMP(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "python3", "sysctl")
	c, s := relayNS(t, "c"), relayNS(t, "s")
	runSteps(t, [][]string{
		{"ip", "-n", c, "link", "set", "lo", "up"},
		{"ip", "-n", c, "tuntap", "add", "dev", "tun0", "mode", "tun"},
		{"ip", "-n", c, "addr", "add", "10.99.0.1/24", "dev", "tun0"},
		{"ip", "-n", c, "-6", "addr", "add", "fd00:99::1/64", "dev", "tun0", "nodad"},
		{"ip", "-n", c, "link", "set", "tun0", "up"},
		{"ip", "-n", c, "route", "add", "198.51.100.0/24", "dev", "tun0"},
		{"ip", "-n", c, "-6", "route", "add", "2001:db8:77::/48", "dev", "tun0"},
		{"ip", "-n", s, "link", "set", "lo", "up"},
		{"ip", "-n", s, "addr", "add", "198.51.100.7/32", "dev", "lo"},
		{"ip", "-n", s, "-6", "addr", "add", "2001:db8:77::7/128", "dev", "lo"},
		// 198.51.100.99 is behind a veth pair where nobody answers ARP
		// (the host's kernel reports host unreachable); 198.51.100.95
		// there has a permanent neighbour entry, so its echoes go out
		// and nothing ever answers; 2001:db8:77::99 is blackholed.
		{"ip", "-n", s, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "-n", s, "link", "set", "v0", "up"},
		{"ip", "-n", s, "link", "set", "v1", "up"},
		{"ip", "-n", s, "route", "add", "198.51.100.99/32", "dev", "v0"},
		{"ip", "-n", s, "route", "add", "198.51.100.95/32", "dev", "v0"},
		{"ip", "-n", s, "neigh", "add", "198.51.100.95", "lladdr", "02:00:00:00:00:95", "dev", "v0", "nud", "permanent"},
		{"ip", "-n", s, "-6", "route", "add", "blackhole", "2001:db8:77::99/128"},
		// Destinations the relay's UDP sockets cannot connect to: an
		// unreachable route (EHOSTUNREACH), no route at all (ENETUNREACH).
		{"ip", "-n", s, "route", "add", "unreachable", "198.51.100.98/32"},
		{"ip", "-n", s, "-6", "route", "add", "unreachable", "2001:db8:77::98/128"},
		// Unprivileged ping sockets for every group, in S only (the
		// sysctl is the namespace's).
		{"ip", "netns", "exec", s, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"},
	})
	inNS := func(ns string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	}
	run := func(args ...string) (string, error) {
		b, err := inNS(c, args...).CombinedOutput()
		return string(b), err
	}
	hosts := []string{"198.51.100.7", "2001:db8:77::7"}
	pingOK := func(n, size int) {
		t.Helper()
		for _, h := range hosts {
			args := []string{"ping", "-n", "-c", strconv.Itoa(n), "-s", strconv.Itoa(size), "-i", "0.2", "-W", "3", h}
			if strings.Contains(h, ":") {
				args = append([]string{"ping", "-6"}, args[1:]...)
			}
			out, err := run(args...)
			if err != nil || !strings.Contains(out, strconv.Itoa(n)+" received") {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if i := strings.Index(out, "rtt "); i >= 0 {
				t.Logf("%s: %s", strings.Join(args, " "), strings.TrimSpace(out[i:])) // a figure, not asserted
			}
			// Every reply is from the destination itself.
			if got := strings.Count(out, strconv.Itoa(size+8)+" bytes from "+h+": icmp_seq="); got != n {
				t.Fatalf("%s: %d replies from %s\n%s", strings.Join(args, " "), got, h, out)
			}
		}
	}
	pingNone := func(h string, wait int) string {
		t.Helper()
		args := []string{"ping", "-n", "-c", "1", "-W", strconv.Itoa(wait), h}
		out, err := run(args...)
		if err == nil || !strings.Contains(out, "0 received") {
			t.Fatalf("%s answered: %v\n%s", h, err, out)
		}
		if i := strings.Index(out, "packets transmitted"); i >= 0 {
			j := strings.LastIndex(out[:i], "\n")
			t.Logf("%s: %s", strings.Join(args, " "), strings.TrimSpace(strings.SplitN(out[j+1:], "\n", 2)[0]))
		}
		return out
	}
	// pingUnreach: the relay's host cannot resolve 198.51.100.99 (no
	// ARP answer); its kernel's host unreachable reaches the client's
	// ping as the relay got it.
	pingUnreach := func() {
		t.Helper()
		if out := pingNone("198.51.100.99", 8); !strings.Contains(out, "icmp_seq=1 Destination Host Unreachable") {
			t.Fatalf("ping 198.51.100.99: no host unreachable\n%s", out)
		}
	}
	udp := func(h string, opt ...string) string {
		t.Helper()
		out, err := run(append([]string{"python3", "-c", udpRefusedPy, h, "9999"}, opt...)...)
		t.Logf("udp client to %s: %s", h, strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("udp client to %s: %v\n%s", h, err, out)
		}
		return strings.TrimSpace(out)
	}
	icmpCounters := func(r *relayProc) []int {
		t.Helper()
		r.stop(t)
		m := relayICMPRE.FindStringSubmatch(r.out.String())
		if m == nil {
			t.Fatalf("no ICMP counters:\n%s", r.out.String())
		}
		t.Logf("%s", m[0])
		v := make([]int, len(m)-1)
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		return v
	}
	const (
		cRequests = iota
		cDiverted
		cNoSocket
		cSent
		cReplies
		cTimedOut
		cDropped
		cLimit
		cErrors
		cStray
		cReplyErrs
		cICMPErrs
		cICMPErrsRL
		cUnreach
		cUnreachRL
	)
	bin := relayBin(t)

	// Ping sockets (auto picks them: ping_group_range allows).
	r := startRelay(t, bin, s, c, "--echo-timeout", "10s")
	if !strings.Contains(r.out.String(), "IPv4 echo requests are relayed from an ICMP ping socket") ||
		!strings.Contains(r.out.String(), "IPv6 echo requests are relayed from an ICMP ping socket") {
		t.Fatalf("not ping sockets:\n%s", r.out.String())
	}
	pingOK(3, 56)
	pingOK(2, 3000) // fragmented both ways on the TUN
	pingUnreach()
	pingNone("2001:db8:77::99", 2)
	for _, h := range hosts {
		if got := udp(h); got != "refused" {
			t.Fatalf("UDP to a closed port of %s: %s, want refused", h, got)
		}
	}
	// Destinations the relay's kernel has no route to: the client gets
	// the host or network unreachable, which Linux reports to a
	// connected socket with IP_RECVERR only (not fatal for UDP).
	if got := udp("198.51.100.98"); got != "timeout" {
		t.Fatalf("UDP to 198.51.100.98 without IP_RECVERR: %s, want timeout", got)
	}
	for _, c := range []struct{ h, want string }{
		{"198.51.100.98", "EHOSTUNREACH"}, {"2001:db8:77::98", "EHOSTUNREACH"}, {"198.51.100.96", "ENETUNREACH"},
	} {
		if got := udp(c.h, "recverr"); got != c.want {
			t.Fatalf("UDP to %s: %s, want %s", c.h, got, c.want)
		}
	}
	v := icmpCounters(r)
	if v[cRequests] != 12 || v[cDiverted] != 12 || v[cNoSocket] != 0 || v[cReplies] != 10 || v[cStray] != 0 || v[cReplyErrs] != 0 ||
		v[cTimedOut] != 0 || v[cICMPErrs] != 1 || v[cICMPErrsRL] != 0 || v[cErrors] != 1 || v[cSent] != 11 || v[cDropped] != 1 || v[cLimit] != 0 ||
		v[cUnreach] != 6 || v[cUnreachRL] != 0 {
		t.Fatalf("counters %v", v)
	}

	// Raw sockets; an echo nothing answers times out.
	r = startRelay(t, bin, s, c, "--echo-socket", "raw", "--echo-timeout", "5s")
	if !strings.Contains(r.out.String(), "IPv4 echo requests are relayed from a raw ICMP socket") {
		t.Fatalf("not raw sockets:\n%s", r.out.String())
	}
	pingOK(2, 56)
	pingUnreach()
	pingNone("198.51.100.95", 7)
	v = icmpCounters(r)
	if v[cRequests] != 6 || v[cReplies] != 4 || v[cSent] != 6 || v[cICMPErrs] != 1 || v[cTimedOut] != 1 {
		t.Fatalf("raw: counters %v", v)
	}

	// The limit of one outstanding echo: the unanswered echo to .95
	// holds it while a second ping is refused.
	r = startRelay(t, bin, s, c, "--max-echoes", "1", "--echo-timeout", "30s")
	pingNone("198.51.100.95", 1)
	pingNone("198.51.100.7", 2) // the one place is taken
	v = icmpCounters(r)
	if v[cRequests] != 2 || v[cSent] != 1 || v[cLimit] != 1 || v[cDropped] != 1 {
		t.Fatalf("--max-echoes 1: counters %v", v)
	}

	// --no-icmp: echoes are not diverted, UDP clients learn nothing.
	r = startRelay(t, bin, s, c, "--no-icmp")
	pingNone("198.51.100.7", 2)
	if got := udp("198.51.100.7"); got != "timeout" {
		t.Fatalf("--no-icmp: UDP to a closed port: %s, want timeout", got)
	}
	v = icmpCounters(r)
	if v[cRequests] != 0 || v[cDiverted] != 0 || v[cUnreach] != 0 {
		t.Fatalf("--no-icmp: counters %v", v)
	}
}
