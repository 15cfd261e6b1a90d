package interop

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// relayPy is the test's client and servers. Servers (namespace S): "sha"
// answers a TCP connection, once the client has ended its half, with the
// SHA-256 of what it received; "udpecho" echoes datagrams. Clients
// (namespace C): "shaclient" sends a file, shuts down writing and prints
// the answer; "reset" connects and prints how the connection ended;
// "connect" prints how a connect ended ("connected", "timeout" or the
// errno's name, e.g. ECONNREFUSED);
// "hold" opens N connections, says so, and on a line from stdin ends
// them as shaclient does; "udp" sends datagrams one at a time and
// checks each echo.
const relayPy = `
import errno, hashlib, os, select, socket, struct, sys, threading
mode = sys.argv[1]
def fam(h): return socket.AF_INET6 if ':' in h else socket.AF_INET
if mode == 'sha':
    def serve(c):
        h = hashlib.sha256()
        while True:
            b = c.recv(65536)
            if not b: break
            h.update(b)
        c.sendall(h.hexdigest().encode())
        c.close()
    ls = []
    for f, a in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        s = socket.socket(f, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if f == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((a, int(sys.argv[2]))); s.listen(64); ls.append(s)
    while True:
        r, _, _ = select.select(ls, [], [])
        for s in r:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
elif mode == 'rst':
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', int(sys.argv[2]))); s.listen(64)
    while True:
        c, _ = s.accept()
        c.recv(1)  # so the relay's connect has surely completed
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
elif mode == 'udpecho':
    ss = []
    for f, a in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        s = socket.socket(f, socket.SOCK_DGRAM)
        if f == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((a, int(sys.argv[2]))); ss.append(s)
    while True:
        r, _, _ = select.select(ss, [], [])
        for s in r:
            b, peer = s.recvfrom(65536)
            s.sendto(b, peer)
elif mode == 'udpttl':
    # answers each datagram with the TTL (hop limit) it arrived with
    ss = []
    for f, a in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        s = socket.socket(f, socket.SOCK_DGRAM)
        if f == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.IPPROTO_IPV6, 51, 1)  # IPV6_RECVHOPLIMIT
        else:
            s.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
        s.bind((a, int(sys.argv[2]))); ss.append(s)
    while True:
        r, _, _ = select.select(ss, [], [])
        for s in r:
            b, anc, _, peer = s.recvmsg(2048, 64)
            ttl = [struct.unpack('i', d[:4])[0] for l, ty, d in anc if ty in (2, 52)]
            s.sendto(str(ttl[0] if ttl else -1).encode(), peer)
elif mode == 'shaclient':
    host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    c = socket.create_connection((host, port), timeout=30)
    with open(path, 'rb') as fh:
        c.sendall(fh.read())
    c.shutdown(socket.SHUT_WR)
    out = b''
    while True:
        b = c.recv(4096)
        if not b: break
        out += b
    print(out.decode())
elif mode == 'reset':
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=30)
        if len(sys.argv) > 4: c.sendall(sys.argv[4].encode())
        b = c.recv(1)
        print('eof' if not b else 'data')
    except ConnectionResetError:
        print('reset')
    except ConnectionRefusedError:
        print('refused')
elif mode == 'connect':
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=float(sys.argv[4]))
        print('connected')
    except socket.timeout:
        print('timeout')
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e)))
elif mode == 'hold':
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cs = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
    for c in cs: c.sendall(b'x')
    print('holding', flush=True)
    sys.stdin.readline()
    for c in cs:
        c.shutdown(socket.SHUT_WR)
        print(c.recv(100).decode(), flush=True)
elif mode == 'udp':
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    s.settimeout(float(sys.argv[5]) if len(sys.argv) > 5 else 10)
    ok = 0
    for i in range(n):
        b = os.urandom(100 + i * 13)
        s.sendto(b, (host, port))
        try:
            got, peer = s.recvfrom(65536)
        except socket.timeout:
            print('timeout'); sys.exit(0)
        if got != b or peer[0] != host or peer[1] != port:
            print('mismatch', peer); sys.exit(1)
        ok += 1
    print('ok', ok)
`

// relayNS makes a network namespace and deletes it, with every process
// left in it, when the test ends.
func relayNS(t *testing.T, tag string) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns := "ssr" + tag + "-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	})
	return ns
}

// relayBaseSteps lay out the relay tests' two namespaces: C holds the
// TUN's kernel side (10.99.0.1, fd00:99::1) and routes 198.51.100.0/24
// and 2001:db8:77::/48 into it; S, where the relay runs, has
// 198.51.100.7 and 2001:db8:77::7 on lo.
func relayBaseSteps(c, s string) [][]string {
	return [][]string{
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
	}
}

// relayDeadSteps put 198.51.100.99 behind a veth pair in S where nobody
// answers ARP: the relay's kernel connect there times out, its echo
// gets a host unreachable.
func relayDeadSteps(s string) [][]string {
	return [][]string{
		{"ip", "-n", s, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "-n", s, "link", "set", "v0", "up"},
		{"ip", "-n", s, "link", "set", "v1", "up"},
		{"ip", "-n", s, "route", "add", "198.51.100.99/32", "dev", "v0"},
	}
}

func runSteps(t *testing.T, steps [][]string) {
	t.Helper()
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
}

var relayCountersRE = regexp.MustCompile(`relay: tcp relayed=(\d+) refused=(\d+) \(limit=(\d+) client-limit=(\d+) own=(\d+)\) connect-failed=(\d+) \(refused=(\d+) unreachable=(\d+) timed-out=(\d+) other=(\d+)\) handshake-failed=(\d+) bytes-out=(\d+) bytes-in=(\d+); udp flows=(\d+) expired=(\d+) datagrams-out=(\d+) datagrams-in=(\d+) dropped=(\d+) \(limit=(\d+) client-limit=(\d+) errors=(\d+) full=(\d+)\) flow-sockets=(\d+) via-flow-socket=(\d+)`)

// relayHeldRE is the relay stack's held-SYN counters line.
var relayHeldRE = regexp.MustCompile(`relay: held SYNs=(\d+) retransmitted=(\d+) queue-full=(\d+) completed=(\d+) reset=(\d+) icmp=(\d+) silent=(\d+) expired=(\d+) aborted=(\d+) complete-failed=(\d+)`)

// TestInteropRelay: `sockstack relay` between two namespaces the test
// made. C holds the TUN's kernel side and routes 198.51.100.0/24 and
// 2001:db8:77::/48 into it; the relay runs INSIDE S (so its kernel
// sockets can reach only S), where 198.51.100.7 and 2001:db8:77::7 run
// an HTTP server, a TCP server answering with the SHA-256 of what it got
// once the client half-closed, and a UDP echo. From C, over both
// families: curl downloads 4 MiB (SHA-256 checked), 4 MiB go up and the
// answer comes back after the client's half-close, UDP datagrams are
// echoed from the original destination, and the relay answers the
// client's SYN only once its own connect has: a port without a server is
// refused (ECONNREFUSED, not a connect that succeeds and is then reset),
// a destination the relay cannot reach is unreachable for the client
// too (EHOSTUNREACH, ENETUNREACH, by ICMP), one that does not answer
// makes the client's connect time out; the connection beyond
// --max-conns is refused and the flow beyond --max-udp-flows gets
// nothing; the counters the relay prints on SIGTERM match.
func TestInteropRelay(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "curl", "python3")
	c, s := relayNS(t, "c"), relayNS(t, "s")
	runSteps(t, relayBaseSteps(c, s))
	runSteps(t, relayDeadSteps(s))
	runSteps(t, [][]string{
		// Destinations S's kernel refuses to route: connect fails with
		// EHOSTUNREACH (unreachable) or EACCES (prohibit); to
		// 198.51.100.96 and 2001:db8:77::96 there is no route at all
		// (ENETUNREACH).
		{"ip", "-n", s, "route", "add", "unreachable", "198.51.100.98/32"},
		{"ip", "-n", s, "route", "add", "prohibit", "198.51.100.97/32"},
		{"ip", "-n", s, "-6", "route", "add", "unreachable", "2001:db8:77::98/128"},
	})
	const size = 4 << 20
	py, file, sum, clientRun := relayServers(t, s, c, "4MiB.bin", size, []string{"rst", "6"})
	dir := filepath.Dir(py)

	// The relay, in S, on the TUN in C.
	const maxConns, maxFlows = 3, 2
	bin := relayBin(t)
	r := startRelay(t, bin, s, c, "--offload", "--max-conns", fmt.Sprint(maxConns), "--max-udp-flows", fmt.Sprint(maxFlows), "--connect-timeout", "1s")

	hosts := []string{"198.51.100.7", "2001:db8:77::7"}
	relayed, dialRefused, dialUnreach := 0, 0, 0
	for _, h := range hosts {
		url := "http://" + h + ":8080/4MiB.bin"
		if strings.Contains(h, ":") {
			url = "http://[" + h + "]:8080/4MiB.bin"
		}
		got := filepath.Join(dir, "got.bin")
		start := time.Now()
		clientRun("curl", "-sS", "--max-time", "60", "-o", got, url)
		t.Logf("curl %s, 4 MiB through the relay: %.0f MB/s (with curl's start)", url, size/1e6/time.Since(start).Seconds())
		if g := fileHash(t, got); g != sum {
			t.Fatalf("curl %s through the relay: SHA-256 %s, want %s", url, g, sum)
		}
		// Half-close: the server answers only after the client's FIN
		// has crossed the relay, and the answer still reaches it.
		if g := clientRun("python3", py, "shaclient", h, "7", file); g != sum {
			t.Fatalf("%s: 4 MiB up: the server saw SHA-256 %q, sent %s", h, g, sum)
		}
		// Refused by S's kernel: the client's connect is refused, it
		// never succeeds.
		if g := clientRun("python3", py, "connect", h, "5", "10"); g != "ECONNREFUSED" {
			t.Fatalf("%s port 5 (no server in S): the client's connect gave %q, want ECONNREFUSED", h, g)
		}
		// A server that resets: so does the relay, to the client.
		if g := clientRun("python3", py, "reset", h, "6", "x"); g != "reset" {
			t.Fatalf("%s port 6 (a server that resets): the client saw %q, want a reset", h, g)
		}
		if g := clientRun("python3", py, "udp", h, "9", "20"); g != "ok 20" {
			t.Fatalf("%s: UDP echo through the relay: %s", h, g)
		}
		relayed += 3
		dialRefused++
	}
	// Destinations the relay's kernel cannot reach: the client's connect
	// fails as the relay's did, from an ICMP destination unreachable.
	for _, c := range []struct{ host, want string }{
		{"198.51.100.98", "EHOSTUNREACH"},   // unreachable route: host unreachable
		{"198.51.100.97", "EHOSTUNREACH"},   // prohibit route (EACCES): administratively prohibited
		{"198.51.100.96", "ENETUNREACH"},    // no route: network unreachable
		{"2001:db8:77::98", "EHOSTUNREACH"}, // unreachable route: address unreachable
		{"2001:db8:77::96", "ENETUNREACH"},  // no route
	} {
		if g := clientRun("python3", py, "connect", c.host, "80", "10"); g != c.want {
			t.Fatalf("%s (unreachable from S): the client's connect gave %q, want %s", c.host, g, c.want)
		}
		dialUnreach++
	}
	// A destination that does not answer: neither does the relay, and
	// the client's connect times out (its retransmitted SYNs are new
	// attempts, each given up after --connect-timeout).
	if g := clientRun("python3", py, "connect", "198.51.100.99", "80", "3"); g != "timeout" {
		t.Fatalf("198.51.100.99 (no answer in S): the client's connect gave %q, want a timeout", g)
	}
	// The flow beyond --max-udp-flows (a new client port) gets nothing.
	if g := clientRun("python3", py, "udp", hosts[0], "9", "1", "1"); g != "timeout" {
		t.Fatalf("UDP flow beyond --max-udp-flows: %s, want no answer", g)
	}
	// holdConns opens k relayed connections from C to host's port 7 and
	// keeps them until the function it returns ends them.
	holdConns := func(host string, k int) (release func()) {
		t.Helper()
		hold := inNetns(c, "python3", py, "hold", host, "7", fmt.Sprint(k))
		holdIn, err := hold.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		holdOut, err := hold.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		// Waited for only once its output is read (Wait closes the pipe).
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		waited := false
		t.Cleanup(func() {
			if !waited {
				hold.Process.Kill()
				hold.Wait()
			}
		})
		hr := bufio.NewReader(holdOut)
		if l, err := hr.ReadString('\n'); err != nil || strings.TrimSpace(l) != "holding" {
			t.Fatalf("hold: %q %v", l, err)
		}
		return func() {
			t.Helper()
			holdIn.Write([]byte("\n"))
			xsum := "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" // SHA-256 of "x"
			for i := 0; i < k; i++ {
				if l, err := hr.ReadString('\n'); err != nil || strings.TrimSpace(l) != xsum {
					t.Fatalf("held connection %d: %q %v", i, l, err)
				}
			}
			waited = true
			if err := hold.Wait(); err != nil {
				t.Fatalf("hold: %v", err)
			}
		}
	}
	// --max-conns relays at once; one more is refused.
	release := holdConns(hosts[0], maxConns)
	if g := clientRun("python3", py, "connect", hosts[0], "7", "10"); g != "ECONNREFUSED" {
		t.Fatalf("connection beyond --max-conns: the client's connect gave %q, want ECONNREFUSED", g)
	}
	release()
	relayed += maxConns

	m, held := r.stop(t)
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	h := func(i int) int { v, _ := strconv.Atoi(held[i]); return v }
	if n(9) < 1 {
		t.Errorf("tcp connects timed out: %d, want at least 1", n(9))
	}
	for _, w := range []struct {
		name      string
		got, want int
	}{
		{"tcp relayed", n(1), relayed},
		{"tcp refused by the relay", n(2), 1},
		{"tcp refused at the limit", n(3), 1},
		{"tcp refused at the client limit", n(4), 0},
		{"tcp refused to own address", n(5), 0},
		{"tcp connect refused", n(7), dialRefused},
		{"tcp connect unreachable", n(8), dialUnreach},
		{"tcp connect failed otherwise", n(10), 0},
		{"tcp connect failed", n(6), dialRefused + dialUnreach + n(9)},
		{"tcp handshakes failed", n(11), 0},
		{"udp flows", n(14), 2},
		{"udp datagrams out", n(16), 40},
		{"udp datagrams in", n(17), 40},
		{"udp dropped", n(18), 1},
		{"udp dropped at the limit", n(19), 1},
		{"udp dropped at the client limit", n(20), 0},
		// Each flow's first datagram comes through the socket on the
		// rule's port, the rest through the flow's own socket.
		{"udp dropped for a full kernel socket", n(22), 0},
		{"udp flows with their own socket", n(23), 2},
		{"udp datagrams through flow sockets", n(24), 38},
		// The stack's held SYNs: every relayed connection was completed,
		// every refusal a reset, every unreachable an ICMP error, every
		// timed-out connect a silent rejection; none waited too long.
		{"held SYNs completed", h(4), relayed},
		{"held SYNs reset", h(5), dialRefused + 1},
		{"held SYNs rejected by ICMP", h(6), dialUnreach},
		{"held SYNs silent", h(7), n(9)},
		{"held SYNs expired", h(8), 0},
		{"held SYNs beyond the backlog", h(3), 0},
		{"held SYNs", h(1), relayed + dialRefused + 1 + dialUnreach + n(9)},
	} {
		if w.got != w.want {
			t.Errorf("%s: %d, want %d", w.name, w.got, w.want)
		}
	}
	// Up: two 4 MiB uploads, the held bytes, the bytes to the resetting
	// server and curl's two requests;
	// down: two 4 MiB downloads with their HTTP headers and the SHA-256
	// answers.
	if up := n(12); up < 2*size+maxConns+2+2*32 || up > 2*size+maxConns+2+2*512 {
		t.Errorf("bytes to destinations %d, want 2*4 MiB + %d plus two HTTP requests", up, maxConns+2)
	}
	if down := n(13); down < 2*size+(2+maxConns)*64 || down > 2*size+4096 {
		t.Errorf("bytes from destinations %d, want 2*4 MiB plus headers and answers", down)
	}

	// --udp-timeout: with room for one flow, a second client's flow is
	// dropped until the first one has been idle for the timeout, then
	// it gets through. This relay opens the TUN without --offload after
	// one with it: the device must not keep sending partial checksums.
	pcap := filepath.Join(dir, "relay.pcap")
	r = startRelay(t, bin, s, c, "--max-udp-flows", "1", "--udp-timeout", "1s", "--pcap", pcap, "--max-conns-per-client", "1")
	if g := clientRun("python3", py, "udp", hosts[1], "9", "3"); g != "ok 3" {
		t.Fatalf("UDP echo through the second relay: %s", g)
	}
	tries := 0
	waitFor(t, "a new UDP flow gets through once the first expired", func() bool {
		tries++
		return clientRun("python3", py, "udp", hosts[0], "9", "1", "2") == "ok 1"
	})
	// --max-conns-per-client 1: while 10.99.0.1 holds its one
	// connection, its next is refused, and another client address
	// (C's IPv6 one) still gets through.
	release = holdConns(hosts[0], 1)
	if g := clientRun("python3", py, "connect", hosts[0], "7", "10"); g != "ECONNREFUSED" {
		t.Fatalf("second connection of one client beyond --max-conns-per-client 1: %q, want ECONNREFUSED", g)
	}
	if g := clientRun("python3", py, "connect", hosts[1], "7", "10"); g != "connected" {
		t.Fatalf("another client's connection under --max-conns-per-client 1: %q, want connected", g)
	}
	release()
	m, _ = r.stop(t)
	// The capture is raw IP (LINKTYPE_RAW, 101) with at least the
	// first flow's six datagrams: a 24-byte header and a record each.
	if b, err := os.ReadFile(pcap); err != nil || len(b) < 24+6*(16+28+100) || b[20] != 101 {
		t.Errorf("--pcap: %d bytes, err %v", len(b), err)
	}
	if n(4) != 1 || n(3) != 0 || n(1) != 2 {
		t.Errorf("--max-conns-per-client 1: refused at the client limit %d (want 1), at the limit %d (want 0), relayed %d (want 2)", n(4), n(3), n(1))
	}
	if n(14) != 2 || n(15) < 1 || n(19) != tries-1 {
		t.Errorf("after expiry: flows %d (want 2), expired %d (want at least 1), dropped at the limit %d (want %d)", n(14), n(15), n(19), tries-1)
	}
}

// relayRace is set under -race (relay_race_test.go).
var relayRace bool

// relayBin is the sockstack binary for the relay: sockstackBin, or one
// built with -race into the test's temporary directory when the tests
// run with it (a race makes it exit with status 66, which stop reports).
func relayBin(t *testing.T) string {
	t.Helper()
	if !relayRace {
		return sockstackBin(t)
	}
	bin := filepath.Join(t.TempDir(), "sockstack")
	out, err := exec.Command("go", "build", "-race", "-o", bin, "github.com/sockstack/sockstack/cmd/sockstack").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -race ./cmd/sockstack: %v\n%s", err, out)
	}
	return bin
}

// relayProc is a running `sockstack relay` in a namespace.
type relayProc struct {
	cmd     *exec.Cmd
	out     syncBuffer
	done    <-chan error
	copied  sync.WaitGroup
	stopped bool
}

// startRelay runs `sockstack relay` inside namespace s on the TUN tun0
// of namespace c, and waits until it says it runs.
func startRelay(t *testing.T, bin, s, c string, args ...string) *relayProc {
	t.Helper()
	r := &relayProc{cmd: exec.Command("ip", append([]string{"netns", "exec", s, bin, "relay", "--netns", c, "--tun", "tun0",
		"--addr", "10.99.0.2/24,fd00:99::2/64"}, args...)...)}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.out
	running := make(chan bool, 1)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	r.done = done
	r.copied.Add(1)
	go func() {
		defer r.copied.Done()
		// Waited for once its output has ended: Wait closes the pipe,
		// and lines not yet read (the counters) would be lost.
		defer func() { done <- r.cmd.Wait() }()
		sc := bufio.NewScanner(stdout)
		said := false
		for sc.Scan() {
			r.out.Write([]byte(sc.Text() + "\n"))
			if !said && strings.Contains(sc.Text(), "running; SIGINT or SIGTERM stops it") {
				said = true
				running <- true
			}
		}
		if !said {
			running <- false
		}
	}()
	t.Cleanup(func() {
		if !r.stopped {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("sockstack relay %s:\n%s", strings.Join(args, " "), r.out.String())
		}
	})
	select {
	case ok := <-running:
		if !ok {
			r.copied.Wait()
			t.Fatalf("sockstack relay exited:\n%s", r.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("sockstack relay did not start:\n%s", r.out.String())
	}
	return r
}

// stop ends the relay with SIGTERM and returns its counters lines,
// matched by relayCountersRE and relayHeldRE.
func (r *relayProc) stop(t *testing.T) (counters, held []string) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.stopped = true
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("relay exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		t.Fatal("relay did not stop on SIGTERM")
	}
	r.copied.Wait()
	m := relayCountersRE.FindStringSubmatch(r.out.String())
	hm := relayHeldRE.FindStringSubmatch(r.out.String())
	if m == nil || hm == nil {
		t.Fatalf("no counters in the relay's output:\n%s", r.out.String())
	}
	t.Logf("%s", m[0])
	t.Logf("%s", hm[0])
	return m, hm
}

// waitFor polls cond (the kernel's socket table has no notification)
// until it holds, for at most 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInteropRelayLoopGuard: the tun2socks set-up where the TUN carries
// the default route. Namespace C holds the TUN (default route into it,
// metric 1), the relay, and a client; its real interface is a veth to S
// (a second default route, metric 100, and table 200 for the relay's
// marked traffic: `ip rule add fwmark 7 lookup 200`), where the servers
// are. Without a guard the relay's own connect goes back into the TUN:
// the relay knows its SYN by its client address (the local address of
// its own upstream socket) and resets it at once, so its one connect is
// refused and so is the client's (ECONNREFUSED), without a second
// upstream connect (before, it relayed itself until --max-conns); a UDP
// datagram's loop is dropped the same way, and so is a ping's (the
// relay's own echo, known by its identifier and sequence number); all
// are counted (loops=) and one warning names the fix. With --mark 7, and then with
// --bind-device instead, the client reaches S over both families: data
// both ways match by SHA-256, UDP is echoed, pings are answered, and
// every held SYN is one of the client's connections (no looping).
func TestInteropRelayLoopGuard(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "curl", "python3")
	c, s := relayNS(t, "gc"), relayNS(t, "gs")
	runSteps(t, [][]string{
		{"ip", "-n", c, "link", "set", "lo", "up"},
		{"ip", "-n", s, "link", "set", "lo", "up"},
		{"ip", "-n", c, "tuntap", "add", "dev", "tun0", "mode", "tun"},
		{"ip", "-n", c, "addr", "add", "10.99.0.1/24", "dev", "tun0"},
		{"ip", "-n", c, "-6", "addr", "add", "fd00:99::1/64", "dev", "tun0", "nodad"},
		{"ip", "-n", c, "link", "set", "tun0", "up"},
		{"ip", "-n", c, "link", "add", "vc", "type", "veth", "peer", "name", "vs", "netns", s},
		{"ip", "-n", c, "addr", "add", "10.55.0.1/24", "dev", "vc"},
		{"ip", "-n", c, "-6", "addr", "add", "fd00:55::1/64", "dev", "vc", "nodad"},
		{"ip", "-n", c, "link", "set", "vc", "up"},
		{"ip", "-n", s, "addr", "add", "10.55.0.2/24", "dev", "vs"},
		{"ip", "-n", s, "-6", "addr", "add", "fd00:55::2/64", "dev", "vs", "nodad"},
		{"ip", "-n", s, "link", "set", "vs", "up"},
		{"ip", "-n", s, "addr", "add", "198.51.100.7/32", "dev", "lo"},
		{"ip", "-n", s, "-6", "addr", "add", "2001:db8:77::7/128", "dev", "lo"},
		// S's UDP echo answers from a wildcard socket: its source must be
		// the address the relay's connected socket sent to.
		{"ip", "-n", s, "route", "add", "10.55.0.1/32", "dev", "vs", "src", "198.51.100.7"},
		{"ip", "-n", s, "-6", "route", "add", "fd00:55::1/128", "dev", "vs", "src", "2001:db8:77::7"},
		// Everything into the TUN ...
		{"ip", "-n", c, "route", "add", "default", "dev", "tun0", "metric", "1"},
		{"ip", "-n", c, "-6", "route", "add", "default", "dev", "tun0", "metric", "1"},
		// ... the real interface's default behind it (for --bind-device) ...
		{"ip", "-n", c, "route", "add", "default", "via", "10.55.0.2", "dev", "vc", "metric", "100"},
		{"ip", "-n", c, "-6", "route", "add", "default", "via", "fd00:55::2", "dev", "vc", "metric", "100"},
		// ... and for the relay's marked sockets (--mark 7).
		{"ip", "-n", c, "route", "add", "default", "via", "10.55.0.2", "dev", "vc", "table", "200"},
		{"ip", "-n", c, "-6", "route", "add", "default", "via", "fd00:55::2", "dev", "vc", "table", "200"},
		{"ip", "-n", c, "rule", "add", "fwmark", "7", "lookup", "200"},
		{"ip", "-n", c, "-6", "rule", "add", "fwmark", "7", "lookup", "200"},
	})
	const size = 1 << 20
	py, file, sum, clientRun := relayServers(t, s, c, "1MiB.bin", size)
	bin := relayBin(t)
	num := func(m []string, i int) int { v, _ := strconv.Atoi(m[i]); return v }

	// No guard: the loop. The relay in C dials 198.51.100.7 through C's
	// default route, the TUN, so its own SYN arrives from its upstream
	// socket's address: reset at once, that connect is refused and the
	// refusal reaches the client. One upstream connect, not --max-conns.
	const maxConns = 4
	r := startRelay(t, bin, c, c, "--max-conns", fmt.Sprint(maxConns), "--connect-timeout", "5s")
	if g := clientRun("python3", py, "connect", "198.51.100.7", "7", "20"); g != "ECONNREFUSED" {
		t.Fatalf("without a guard: the client's connect gave %q, want ECONNREFUSED (the loop detected)", g)
	}
	// UDP: the flow's own datagram comes back and is dropped; the client
	// gets no echo.
	if g := clientRun("python3", py, "udp", "198.51.100.7", "9", "1", "1"); g != "timeout" {
		t.Fatalf("without a guard: UDP gave %q, want a timeout (the looped datagram dropped)", g)
	}
	// A ping: the relay's echo comes back into the TUN and is dropped
	// as its own (the host socket's identifier and sequence number),
	// once, not relayed again; the client gets no reply.
	if out, err := inNetns(c, "ping", "-n", "-c", "1", "-W", "2", "198.51.100.7").CombinedOutput(); err == nil || !strings.Contains(string(out), "0 received") {
		t.Fatalf("without a guard: ping answered: %v\n%s", err, out)
	}
	m, held := r.stop(t)
	lm := relayLoopsRE.FindStringSubmatch(r.out.String())
	if lm == nil {
		t.Fatalf("no loops counters:\n%s", r.out.String())
	}
	t.Logf("without a guard, one client connect: %d held SYNs, %d upstream connects (%d refused), %d refused at --max-conns; %s", num(held, 1), num(m, 6), num(m, 7), num(m, 3), lm[0])
	if ic := relayICMPRE.FindStringSubmatch(r.out.String()); ic == nil || num(lm, 4) != 1 || num(ic, 1) != 1 || num(ic, 4) != 1 {
		t.Errorf("without a guard: one ping: loops icmp %d (want 1: the relay's own echo, once), %v (want 1 request, 1 sent)", num(lm, 4), ic)
	}
	if num(lm, 2) < 1 || num(lm, 3) < 1 || num(m, 6) != 1 || num(m, 7) != 1 || num(m, 3) != 0 || num(m, 1) != 0 || num(held, 1) != 2 {
		t.Errorf("without a guard: loops tcp %d udp %d (want at least 1 each), upstream connects %d and refused %d (want 1: the client's only), refused at the limit %d (want 0), relayed %d (want 0), held SYNs %d (want 2: the client's and the relay's own)",
			num(lm, 2), num(lm, 3), num(m, 6), num(m, 7), num(m, 3), num(m, 1), num(held, 1))
	}
	if n := strings.Count(r.out.String(), "warning: routing loop"); n != 1 || !strings.Contains(r.out.String(), "--bind-device IFNAME") {
		t.Errorf("without a guard: %d loop warnings (want 1, naming --mark and --bind-device):\n%s", n, r.out.String())
	}

	for _, guard := range [][]string{{"--mark", "7"}, {"--bind-device", "vc"}} {
		r := startRelay(t, bin, c, c, append([]string{"--max-conns", fmt.Sprint(maxConns), "--connect-timeout", "5s"}, guard...)...)
		conns, dgrams := 0, 0
		for _, h := range []string{"198.51.100.7", "2001:db8:77::7"} {
			// Up: the server's SHA-256 of what it got.
			if g := clientRun("python3", py, "shaclient", h, "7", file); g != sum {
				t.Fatalf("%v, %s: 1 MiB up: the server saw SHA-256 %q, sent %s", guard, h, g, sum)
			}
			// Down: curl's file.
			url := "http://" + h + ":8080/1MiB.bin"
			if strings.Contains(h, ":") {
				url = "http://[" + h + "]:8080/1MiB.bin"
			}
			got := filepath.Join(t.TempDir(), "got.bin")
			clientRun("curl", "-sS", "--max-time", "30", "-o", got, url)
			if g := fileHash(t, got); g != sum {
				t.Fatalf("%v, %s: 1 MiB down: SHA-256 %s, want %s", guard, h, g, sum)
			}
			if g := clientRun("python3", py, "udp", h, "9", "5"); g != "ok 5" {
				t.Fatalf("%v, %s: UDP echo: %s", guard, h, g)
			}
			ping := []string{"ping"}
			if strings.Contains(h, ":") {
				ping = append(ping, "-6")
			}
			ping = append(ping, "-n", "-c", "2", "-i", "0.2", "-W", "3", h)
			if g := clientRun(ping...); !strings.Contains(g, "2 received") {
				t.Fatalf("%v, %s: ping: %s", guard, h, g)
			}
			conns += 2
			dgrams += 5
		}
		m, held := r.stop(t)
		if lm := relayLoopsRE.FindStringSubmatch(r.out.String()); lm == nil || lm[1] != "0" {
			t.Errorf("%v: loops %v, want 0", guard, lm)
		}
		// No looping: every held SYN and every relayed connection is
		// one of the client's, every flow one of its two.
		for _, w := range []struct {
			name      string
			got, want int
		}{
			{"held SYNs", num(held, 1), conns},
			{"held SYNs completed", num(held, 4), conns},
			{"tcp relayed", num(m, 1), conns},
			{"tcp refused by the relay", num(m, 2), 0},
			{"tcp connects failed", num(m, 6), 0},
			{"udp flows", num(m, 14), 2},
			{"udp datagrams out", num(m, 16), dgrams},
			{"udp datagrams in", num(m, 17), dgrams},
			{"udp dropped", num(m, 18), 0},
		} {
			if w.got != w.want {
				t.Errorf("%v: %s %d, want %d", guard, w.name, w.got, w.want)
			}
		}
	}
}

// relayLoopsRE is the relay's loop-detection counters line.
var relayLoopsRE = regexp.MustCompile(`relay: loops=(\d+) \(tcp=(\d+) udp=(\d+) icmp=(\d+)\)`)

// relayCacheRE is the relay's timeout-cache counters line.
var relayCacheRE = regexp.MustCompile(`relay: timeout-cache added=(\d+) hits=(\d+) full=(\d+)`)

// TestInteropRelayTimeoutCache: a kernel client connects through the
// relay to a destination that never answers (198.51.100.99, behind a
// veth in S, with a neighbour entry nobody owns), with --connect-timeout 1s and an
// 8s connect timeout of its own, so it sends its SYN at 0s and
// retransmits it (kernel 6.18: at 1s intervals four times,
// tcp_syn_linear_timeouts, then doubling: 0, 1, 2, 3, 4, 6s). With
// --timeout-cache 0 each retransmission after the relay's connect gave
// up is a new attempt and a new connect (the re-dial storm: 5 or 6
// connects for one client connect); with the cache (its default) there
// is one connect, every later SYN is answered as it was, with silence,
// and counted as a cache hit. The client's connect times out either way.
func TestInteropRelayTimeoutCache(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "python3")
	c, s := relayNS(t, "tc"), relayNS(t, "ts")
	runSteps(t, relayBaseSteps(c, s))
	runSteps(t, relayDeadSteps(s))
	// A permanent neighbour entry: the SYNs go out and nothing answers.
	// Without it the kernel's ARP gives up after 3 s and a relay connect
	// still pending then fails with EHOSTUNREACH, which the relay passes
	// to the client as an ICMP unreachable (a rare failure of this test).
	runSteps(t, [][]string{{"ip", "-n", s, "neigh", "add", "198.51.100.99", "lladdr", "02:00:00:00:00:99", "dev", "v0", "nud", "permanent"}})
	py := filepath.Join(t.TempDir(), "relay.py")
	if err := os.WriteFile(py, []byte(relayPy), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := relayBin(t)
	num := func(m []string, i int) int { v, _ := strconv.Atoi(m[i]); return v }
	run := func(args ...string) (timedOut, added, hits, heldSYNs int) {
		t.Helper()
		r := startRelay(t, bin, s, c, append([]string{"--connect-timeout", "1s"}, args...)...)
		b, err := exec.Command("ip", "netns", "exec", c, "python3", py, "connect", "198.51.100.99", "80", "8").CombinedOutput()
		if g := strings.TrimSpace(string(b)); err != nil || g != "timeout" {
			t.Fatalf("%v: the client's connect gave %q %v, want a timeout", args, g, err)
		}
		m, held := r.stop(t)
		cm := relayCacheRE.FindStringSubmatch(r.out.String())
		if cm == nil {
			t.Fatalf("no timeout-cache counters:\n%s", r.out.String())
		}
		t.Logf("%v: %s", args, cm[0])
		if num(m, 6) != num(m, 9) || num(held, 7) != num(m, 9) || num(m, 1) != 0 {
			t.Errorf("%v: connect-failed %d, timed-out %d, held SYNs silent %d, relayed %d: every attempt should be a silent timeout", args, num(m, 6), num(m, 9), num(held, 7), num(m, 1))
		}
		return num(m, 9), num(cm, 1), num(cm, 2), num(held, 1)
	}
	// The storm: every SYN after the first connect gave up connects again.
	timedOut, added, hits, heldSYNs := run("--timeout-cache", "0")
	dials := timedOut - hits
	t.Logf("--timeout-cache 0: %d connects for one client connect (%d SYNs held)", dials, heldSYNs)
	if dials < 3 || added != 0 || hits != 0 {
		t.Errorf("--timeout-cache 0: %d connects (want 3 or more), cache added %d hits %d (want 0)", dials, added, hits)
	}
	// With the cache: one connect, the rest answered from the cache.
	timedOut, added, hits, heldSYNs = run()
	dials = timedOut - hits
	t.Logf("--timeout-cache 10s (default): %d connect for one client connect, %d SYNs answered from the cache", dials, hits)
	if dials != 1 || added != 1 || hits < 2 || heldSYNs != 1+hits {
		t.Errorf("with the cache: %d connects (want 1), added %d (want 1), hits %d (want at least 2), held SYNs %d (want the first and each hit, %d)", dials, added, hits, heldSYNs, 1+hits)
	}
}

// inNetns is a command run in network namespace ns.
func inNetns(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// relayServers starts the relay tests' servers in namespace s (relay.py
// "sha" on port 7 and "udpecho" on 9, both families, an HTTP server on
// 8080 serving a random file of size bytes named name, and each of
// extra: relay.py's mode and port) and waits until the kernel lists
// them. It returns relay.py's path, the file and its SHA-256, and a
// runner of client commands in namespace c that fails the test on error
// and returns the trimmed output.
func relayServers(t *testing.T, s, c, name string, size int64, extra ...[]string) (py, file, sum string, clientRun func(args ...string) string) {
	t.Helper()
	dir := t.TempDir()
	py = filepath.Join(dir, "relay.py")
	if err := os.WriteFile(py, []byte(relayPy), 0o644); err != nil {
		t.Fatal(err)
	}
	file, sum = randomFile(t, dir, name, size)
	srvs := [][]string{
		{"python3", py, "sha", "7"},
		{"python3", py, "udpecho", "9"},
		{"python3", "-m", "http.server", "--bind", "::", "--directory", dir, "8080"},
	}
	want := []string{"0.0.0.0:7 ", "[::]:7 ", "0.0.0.0:9 ", "[::]:9 ", ":8080 "}
	for _, e := range extra {
		srvs = append(srvs, []string{"python3", py, e[0], e[1]})
		want = append(want, ":"+e[1]+" ")
	}
	for _, srv := range srvs {
		p := inNetns(s, srv...)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	}
	// The servers are up when the kernel in S lists their sockets.
	waitFor(t, "the servers in S listen", func() bool {
		out, _ := inNetns(s, "ss", "-Hltun").Output()
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				return false
			}
		}
		return true
	})
	clientRun = func(args ...string) string {
		t.Helper()
		b, err := inNetns(c, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	return py, file, sum, clientRun
}
