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
// "hold" opens N connections, says so, and on a line from stdin ends
// them as shaclient does; "udp" sends datagrams one at a time and
// checks each echo.
const relayPy = `
import hashlib, os, select, socket, struct, sys, threading
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

func runSteps(t *testing.T, steps [][]string) {
	t.Helper()
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
}

var relayCountersRE = regexp.MustCompile(`relay: tcp relayed=(\d+) refused=(\d+) \(limit=(\d+) connect-failed=(\d+) timed-out=(\d+)\) bytes-out=(\d+) bytes-in=(\d+); udp flows=(\d+) expired=(\d+) datagrams-out=(\d+) datagrams-in=(\d+) dropped=(\d+) \(limit=(\d+) errors=(\d+)\) flow-sockets=(\d+) via-flow-socket=(\d+)`)

// TestInteropRelay: `sockstack relay` between two namespaces the test
// made. C holds the TUN's kernel side and routes 198.51.100.0/24 and
// 2001:db8:77::/48 into it; the relay runs INSIDE S (so its kernel
// sockets can reach only S), where 198.51.100.7 and 2001:db8:77::7 run
// an HTTP server, a TCP server answering with the SHA-256 of what it got
// once the client half-closed, and a UDP echo. From C, over both
// families: curl downloads 4 MiB (SHA-256 checked), 4 MiB go up and the
// answer comes back after the client's half-close, UDP datagrams are
// echoed from the original destination, a port without a server resets
// the client's connection, the connection beyond --max-conns is reset
// and the flow beyond --max-udp-flows gets nothing; the counters the
// relay prints on SIGTERM match.
func TestInteropRelay(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "curl", "python3")
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
		// 198.51.100.99 is behind a veth pair in S where nobody answers
		// ARP: a kernel connect there times out.
		{"ip", "-n", s, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "-n", s, "link", "set", "v0", "up"},
		{"ip", "-n", s, "link", "set", "v1", "up"},
		{"ip", "-n", s, "route", "add", "198.51.100.99/32", "dev", "v0"},
	})
	dir := t.TempDir()
	py := filepath.Join(dir, "relay.py")
	if err := os.WriteFile(py, []byte(relayPy), 0o644); err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	file, sum := randomFile(t, dir, "4MiB.bin", size)
	inNS := func(ns string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	}
	for _, srv := range [][]string{
		{"python3", py, "sha", "7"},
		{"python3", py, "udpecho", "9"},
		{"python3", py, "rst", "6"},
		{"python3", "-m", "http.server", "--bind", "::", "--directory", dir, "8080"},
	} {
		p := inNS(s, srv...)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	}
	// The servers are up when the kernel in S lists their sockets.
	waitFor(t, "the servers in S listen", func() bool {
		out, _ := inNS(s, "ss", "-Hltun").Output()
		o := string(out)
		return strings.Contains(o, "0.0.0.0:7 ") && strings.Contains(o, "[::]:7 ") && strings.Contains(o, "0.0.0.0:9 ") &&
			strings.Contains(o, "[::]:9 ") && strings.Contains(o, ":8080 ") && strings.Contains(o, ":6 ")
	})

	// The relay, in S, on the TUN in C.
	const maxConns, maxFlows = 3, 2
	bin := relayBin(t)
	r := startRelay(t, bin, s, c, "--offload", "--max-conns", fmt.Sprint(maxConns), "--max-udp-flows", fmt.Sprint(maxFlows), "--connect-timeout", "1s")

	clientRun := func(args ...string) string {
		t.Helper()
		b, err := inNS(c, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	hosts := []string{"198.51.100.7", "2001:db8:77::7"}
	relayed, refused, connectFailed := 0, 0, 0
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
		if g := clientRun("python3", py, "reset", h, "5"); g != "reset" && g != "refused" {
			t.Fatalf("%s port 5 (no server in S): the client saw %q, want a reset", h, g)
		}
		// A server that resets: so does the relay, to the client.
		if g := clientRun("python3", py, "reset", h, "6", "x"); g != "reset" {
			t.Fatalf("%s port 6 (a server that resets): the client saw %q, want a reset", h, g)
		}
		if g := clientRun("python3", py, "udp", h, "9", "20"); g != "ok 20" {
			t.Fatalf("%s: UDP echo through the relay: %s", h, g)
		}
		relayed += 3
		refused++
		connectFailed++
	}
	// A destination that does not answer: the connect times out and the
	// client's connection is reset.
	if g := clientRun("python3", py, "reset", "198.51.100.99", "80"); g != "reset" && g != "refused" {
		t.Fatalf("198.51.100.99 (no answer in S): the client saw %q, want a reset", g)
	}
	refused++
	connectFailed++
	// The flow beyond --max-udp-flows (a new client port) gets nothing.
	if g := clientRun("python3", py, "udp", hosts[0], "9", "1", "1"); g != "timeout" {
		t.Fatalf("UDP flow beyond --max-udp-flows: %s, want no answer", g)
	}
	// --max-conns relays at once; one more is reset.
	hold := inNS(c, "python3", py, "hold", hosts[0], "7", fmt.Sprint(maxConns))
	holdIn, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	holdOut, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holdDone := startCmd(t, hold)
	hr := bufio.NewReader(holdOut)
	if l, err := hr.ReadString('\n'); err != nil || strings.TrimSpace(l) != "holding" {
		t.Fatalf("hold: %q %v", l, err)
	}
	if g := clientRun("python3", py, "reset", hosts[0], "7"); g != "reset" {
		t.Fatalf("connection beyond --max-conns: the client saw %q, want a reset", g)
	}
	holdIn.Write([]byte("\n"))
	xsum := "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" // SHA-256 of "x"
	for i := 0; i < maxConns; i++ {
		if l, err := hr.ReadString('\n'); err != nil || strings.TrimSpace(l) != xsum {
			t.Fatalf("held connection %d: %q %v", i, l, err)
		}
	}
	if err := <-holdDone; err != nil {
		t.Fatalf("hold: %v", err)
	}
	relayed += maxConns
	refused++

	m := r.stop(t)
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	for _, w := range []struct {
		name      string
		got, want int
	}{
		{"tcp relayed", n(1), relayed},
		{"tcp refused", n(2), refused},
		{"tcp refused at the limit", n(3), 1},
		{"tcp connect failed", n(4), connectFailed},
		{"tcp connect timed out", n(5), 1},
		{"udp flows", n(8), 2},
		{"udp datagrams out", n(10), 40},
		{"udp datagrams in", n(11), 40},
		{"udp dropped", n(12), 1},
		{"udp dropped at the limit", n(13), 1},
		// Each flow's first datagram comes through the socket on the
		// rule's port, the rest through the flow's own socket.
		{"udp flows with their own socket", n(15), 2},
		{"udp datagrams through flow sockets", n(16), 38},
	} {
		if w.got != w.want {
			t.Errorf("%s: %d, want %d", w.name, w.got, w.want)
		}
	}
	// Up: two 4 MiB uploads, the held bytes, the bytes to the resetting
	// server and curl's two requests;
	// down: two 4 MiB downloads with their HTTP headers and the SHA-256
	// answers.
	if up := n(6); up < 2*size+maxConns+2+2*32 || up > 2*size+maxConns+2+2*512 {
		t.Errorf("bytes to destinations %d, want 2*4 MiB + %d plus two HTTP requests", up, maxConns+2)
	}
	if down := n(7); down < 2*size+(2+maxConns)*64 || down > 2*size+4096 {
		t.Errorf("bytes from destinations %d, want 2*4 MiB plus headers and answers", down)
	}

	// --udp-timeout: with room for one flow, a second client's flow is
	// dropped until the first one has been idle for the timeout, then
	// it gets through. This relay opens the TUN without --offload after
	// one with it: the device must not keep sending partial checksums.
	pcap := filepath.Join(dir, "relay.pcap")
	r = startRelay(t, bin, s, c, "--max-udp-flows", "1", "--udp-timeout", "1s", "--pcap", pcap)
	if g := clientRun("python3", py, "udp", hosts[1], "9", "3"); g != "ok 3" {
		t.Fatalf("UDP echo through the second relay: %s", g)
	}
	tries := 0
	waitFor(t, "a new UDP flow gets through once the first expired", func() bool {
		tries++
		return clientRun("python3", py, "udp", hosts[0], "9", "1", "2") == "ok 1"
	})
	m = r.stop(t)
	// The capture is raw IP (LINKTYPE_RAW, 101) with at least the
	// first flow's six datagrams: a 24-byte header and a record each.
	if b, err := os.ReadFile(pcap); err != nil || len(b) < 24+6*(16+28+100) || b[20] != 101 {
		t.Errorf("--pcap: %d bytes, err %v", len(b), err)
	}
	if n(8) != 2 || n(9) < 1 || n(13) != tries-1 {
		t.Errorf("after expiry: flows %d (want 2), expired %d (want at least 1), dropped at the limit %d (want %d)", n(8), n(9), n(13), tries-1)
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
	r.done = startCmd(t, r.cmd)
	r.copied.Add(1)
	go func() {
		defer r.copied.Done()
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

// stop ends the relay with SIGTERM and returns its counters line,
// matched by relayCountersRE.
func (r *relayProc) stop(t *testing.T) []string {
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
	if m == nil {
		t.Fatalf("no counters in the relay's output:\n%s", r.out.String())
	}
	t.Logf("%s", m[0])
	return m
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
