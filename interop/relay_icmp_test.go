package interop

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// relayICMPRE is the relay's ICMP counters line (relay_icmp.go).
var relayICMPRE = regexp.MustCompile(`relay: icmp echo-requests=(\d+) \(diverted=(\d+) no-socket=(\d+)\) sent=(\d+) replies=(\d+) timed-out=(\d+) dropped=(\d+) \(limit=(\d+) errors=(\d+)\) stray=(\d+) reply-errors=(\d+) icmp-errors=(\d+) \(rate-limited=(\d+)\); udp-unreachables sent=(\d+) rate-limited=(\d+); ttl-exceeded echo=(\d+) udp=(\d+) \(not sent=(\d+)\)`)

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

// udpHopsPy sends one datagram with TTL (hop limit) argv[3] on a UDP
// socket connected to (argv[1], argv[2]) and prints the answer (the
// udpttl server's: the TTL it read), "timeout" or the errno's name; with
// argv[4] "recverr" the socket has IP_RECVERR (IPV6_RECVERR), to learn
// of a time exceeded (EHOSTUNREACH).
const udpHopsPy = `
import errno, socket, sys
h, p, ttl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v6 = ':' in h
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
else: s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
if len(sys.argv) > 4: s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 25 if v6 else 11, 1)
s.connect((h, p)); s.settimeout(3)
s.send(b'hops?')
try: print(s.recv(100).decode())
except socket.timeout: print('timeout')
except OSError as e: print(errno.errorcode[e.errno])
`

// echoHopsPy (in S) prints "ready", then the TTL (hop limit) of the
// first echo request to argv[1] its raw socket sees, or "none" after
// 10 seconds.
const echoHopsPy = `
import select, socket, sys, time
dst = sys.argv[1]
v6 = ':' in dst
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, 51, 1)  # IPV6_RECVHOPLIMIT
    s.setsockopt(socket.IPPROTO_IPV6, 49, 1)  # IPV6_RECVPKTINFO
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
print('ready', flush=True)
end = time.time() + 10
while time.time() < end:
    if not select.select([s], [], [], 0.5)[0]: continue
    b, anc, _, _ = s.recvmsg(4096, 256)
    if v6:
        info = [d for l, t, d in anc if t == 50]
        hl = [int.from_bytes(d[:4], sys.byteorder) for l, t, d in anc if t == 52]
        if b[0] == 128 and info and socket.inet_ntop(socket.AF_INET6, info[0][:16]) == dst and hl:
            print(hl[0]); sys.exit(0)
    elif b[(b[0] & 15) * 4] == 8 and socket.inet_ntoa(b[16:20]) == dst:
        print(b[8]); sys.exit(0)
print('none')
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
// real path; the relay forwards as a router: a ping or a datagram sent
// with TTL (hop limit) 9 reaches the destination with 8, one sent with
// 1 gets a time exceeded from the relay's address (ping prints it, a
// UDP socket with IP_RECVERR fails with EHOSTUNREACH); with --no-icmp
// none of this happens. The counters match.
func TestInteropRelayICMP(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "python3", "sysctl")
	c, s := relayNS(t, "c"), relayNS(t, "s")
	runSteps(t, relayBaseSteps(c, s))
	runSteps(t, relayDeadSteps(s)) // 198.51.100.99: the relay's kernel reports host unreachable
	runSteps(t, [][]string{
		// 198.51.100.95, behind the same veth, has a permanent
		// neighbour entry, so its echoes go out and nothing ever
		// answers; 2001:db8:77::99 is blackholed.
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
	// The servers; udpttl on port 10 answers with the TTL it read.
	relayServers(t, s, c, "unused.bin", 1, []string{"udpttl", "10"})
	run := func(args ...string) (string, error) {
		b, err := inNetns(c, args...).CombinedOutput()
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
	pingNone := func(h string, wait int, opt ...string) string {
		t.Helper()
		args := append(append([]string{"ping", "-n", "-c", "1", "-W", strconv.Itoa(wait)}, opt...), h)
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
	udpHops := func(h, ttl string, opt ...string) string {
		t.Helper()
		out, err := run(append([]string{"python3", "-c", udpHopsPy, h, "10", ttl}, opt...)...)
		if err != nil {
			t.Fatalf("udp client to %s, TTL %s: %v\n%s", h, ttl, err, out)
		}
		return strings.TrimSpace(out)
	}
	// echoHops pings h once with TTL ttl and returns the TTL the echo
	// request had in S.
	echoHops := func(h, ttl string) string {
		t.Helper()
		cmd := inNetns(s, "python3", "-c", echoHopsPy, h)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		// Waited for only once its output is read: Wait closes the
		// pipe, and a line not yet read would be lost.
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(out)
		l, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(l) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("echo watcher: %q %v\n%s", l, err, stderr.String())
		}
		if o, err := run("ping", "-n", "-c", "1", "-W", "3", "-t", ttl, h); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("ping -t %s %s: %v\n%s", ttl, h, err, o)
		}
		l, err = br.ReadString('\n')
		if werr := cmd.Wait(); err != nil || werr != nil {
			t.Fatalf("echo watcher: %q %v %v\n%s", l, err, werr, stderr.String())
		}
		return strings.TrimSpace(l)
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
		cTTLEcho
		cTTLUDP
		cTTLNotSent
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
	// Hops: the relay forwards as a router. What the client sends with
	// TTL 9 arrives with 8; with TTL 1 the client gets a time exceeded
	// from the relay's address (ping prints it; a UDP socket with
	// IP_RECVERR fails with EHOSTUNREACH) and nothing is sent on.
	for _, h := range hosts {
		if got := udpHops(h, "9"); got != "8" {
			t.Fatalf("UDP to %s with TTL 9: the destination read %s, want 8", h, got)
		}
		if got := udpHops(h, "1", "recverr"); got != "EHOSTUNREACH" {
			t.Fatalf("UDP to %s with TTL 1: %s, want EHOSTUNREACH (time exceeded)", h, got)
		}
		if got := echoHops(h, "9"); got != "8" {
			t.Fatalf("ping -t 9 %s: the destination's echo request had TTL %s, want 8", h, got)
		}
		relayAddr, says := "10.99.0.2", "Time to live exceeded"
		if strings.Contains(h, ":") {
			relayAddr, says = "fd00:99::2", "Time exceeded: Hop limit"
		}
		if out := pingNone(h, 3, "-t", "1"); !strings.Contains(out, "From "+relayAddr+" icmp_seq=1 "+says) {
			t.Fatalf("ping -t 1 %s: no time exceeded from the relay\n%s", h, out)
		}
	}
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
	// The TTL-1 echoes were diverted but not taken as requests.
	if v[cRequests] != 14 || v[cDiverted] != 16 || v[cNoSocket] != 0 || v[cReplies] != 12 || v[cStray] != 0 || v[cReplyErrs] != 0 ||
		v[cTimedOut] != 0 || v[cICMPErrs] != 1 || v[cICMPErrsRL] != 0 || v[cErrors] != 1 || v[cSent] != 13 || v[cDropped] != 1 || v[cLimit] != 0 ||
		v[cUnreach] != 6 || v[cUnreachRL] != 0 || v[cTTLEcho] != 2 || v[cTTLUDP] != 2 || v[cTTLNotSent] != 0 {
		t.Fatalf("counters %v", v)
	}

	// Raw sockets; an echo nothing answers times out.
	r = startRelay(t, bin, s, c, "--echo-socket", "raw", "--echo-timeout", "5s")
	if !strings.Contains(r.out.String(), "IPv4 echo requests are relayed from a raw ICMP socket") {
		t.Fatalf("not raw sockets:\n%s", r.out.String())
	}
	pingOK(2, 56)
	for _, h := range hosts { // the TTL as a control message on the raw socket
		if got := echoHops(h, "9"); got != "8" {
			t.Fatalf("raw: ping -t 9 %s: the destination's echo request had TTL %s, want 8", h, got)
		}
	}
	pingUnreach()
	pingNone("198.51.100.95", 7)
	v = icmpCounters(r)
	if v[cRequests] != 8 || v[cReplies] != 6 || v[cSent] != 8 || v[cICMPErrs] != 1 || v[cTimedOut] != 1 {
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
