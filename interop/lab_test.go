package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// The one subnet the suite uses, inside namespaces it creates.
var (
	kernelCIDR = "10.77.0.1/24"
	kernelIP   = netip.MustParseAddr("10.77.0.1")
	stackCIDR  = netip.MustParsePrefix("10.77.0.2/24")
	stackIP    = stackCIDR.Addr()
)

const tapName = "tap0"

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interop tests need root (network namespaces and TAP devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing(t, "/dev/net/tun")
	}
}

// missing fails in CI (the tools are installed there) and skips elsewhere.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI installs it; see the workflow)", what)
	}
	t.Skipf("%s is missing: install it to run this test", what)
}

// needTools checks that each program is on PATH.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing(t, n)
		}
	}
}

// lab is one network namespace with a TAP whose kernel side is 10.77.0.1/24.
type lab struct {
	t  *testing.T
	ns string
}

// newLab creates the namespace and TAP; t.Cleanup deletes them (after
// later cleanups, such as closing a stack, have run) and checks that the
// kernel counted no checksum errors.
func newLab(t *testing.T) *lab { t.Helper(); return newLabIPv6(t, false) }

// newLabIPv6 is newLab; ipv6 leaves IPv6 on for the TAP (the IPv6 labs
// of ipv6_lab_test.go), which the IPv4 labs turn off so that the
// kernel's own IPv6 traffic (DAD, router solicitations) stays out of
// their captures.
func newLabIPv6(t *testing.T, ipv6 bool) *lab {
	t.Helper()
	needRoot(t)
	needTools(t, "ip")
	var b [4]byte
	rand.Read(b[:])
	l := &lab{t: t, ns: "sst-" + hex.EncodeToString(b[:])}
	steps := [][]string{
		{"ip", "netns", "add", l.ns},
		{"ip", "-n", l.ns, "link", "set", "lo", "up"},
		{"ip", "-n", l.ns, "tuntap", "add", "dev", tapName, "mode", "tap"},
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf." + tapName + ".disable_ipv6=1"},
		{"ip", "-n", l.ns, "addr", "add", kernelCIDR, "dev", tapName},
		{"ip", "-n", l.ns, "link", "set", tapName, "up"},
	}
	t.Cleanup(func() {
		// Processes left in the namespace (servers) would keep it alive.
		if out, err := exec.Command("ip", "netns", "pids", l.ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if p, err := os.FindProcess(pid); err == nil {
						p.Kill()
					}
				}
			}
		}
		exec.Command("ip", "netns", "del", l.ns).Run()
	})
	for i, s := range steps {
		if i == 3 && ipv6 {
			continue
		}
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			if i == 3 {
				continue // no IPv6 in this kernel: nothing to disable
			}
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// Registered after the deletion, so it runs before it.
	t.Cleanup(l.checkCsumErrors)
	return l
}

// checkCsumErrors fails the test if the kernel saw a bad checksum in
// anything sockstack sent.
func (l *lab) checkCsumErrors() {
	t := l.t
	if _, err := exec.LookPath("nstat"); err != nil {
		return
	}
	out, err := exec.Command("ip", "netns", "exec", l.ns, "nstat", "-az", "*CsumErrors").Output()
	if err != nil {
		t.Errorf("nstat: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasSuffix(f[0], "CsumErrors") && f[1] != "0" {
			t.Errorf("kernel nstat: %s = %s (sockstack sent packets with bad checksums)", f[0], f[1])
		}
	}
}

// cmd makes a command run in the namespace, bounded by ctx.
func (l *lab) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ns}, args...)...)
	c.WaitDelay = 2 * time.Second
	return c
}

// run runs a kernel-side command to completion within limit and returns
// its output; failure ends the test.
func (l *lab) run(t *testing.T, limit time.Duration, stdin []byte, args ...string) string {
	t.Helper()
	out, err := l.try(limit, stdin, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (l *lab) try(limit time.Duration, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := l.cmd(ctx, args...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", limit)
	}
	return string(out), err
}

// background starts a kernel-side server; it is killed at cleanup.
func (l *lab) background(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := l.cmd(ctx, args...)
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() {
		cancel()
		c.Wait()
		if t.Failed() && out.Len() > 0 {
			t.Logf("output of %s:\n%s", args[0], out.String())
		}
	})
	return c
}

// waitTCP waits until the kernel listens on port (ss), bounded.
func (l *lab) waitListen(t *testing.T, proto string, port int) {
	t.Helper()
	flag := "-ltn"
	if proto == "udp" {
		flag = "-lun"
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := l.try(2*time.Second, nil, "ss", "-H", flag, "sport", "= :"+strconv.Itoa(port))
		if strings.TrimSpace(out) != "" {
			return
		}
		// No event tells when another process has bound its socket.
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s port %d in the namespace", proto, port)
}

// loss makes the kernel side drop pct percent of frames both ways, silently
// (like loss on a wire): netem where the kernel has it, otherwise an htb
// root qdisc and an ingress qdisc with a classic-BPF cls_bpf filter that
// drops when a random number is under the threshold.
func (l *lab) loss(t *testing.T, pct float64) {
	t.Helper()
	spec := fmt.Sprintf("%g%%", pct)
	if _, err := l.try(5*time.Second, nil, "tc", "qdisc", "replace", "dev", tapName, "root", "netem", "loss", spec); err == nil {
		if _, err := l.try(5*time.Second, nil, "tc", "qdisc", "add", "dev", tapName, "handle", "ffff:", "ingress"); err != nil {
			t.Fatalf("ingress qdisc: %v", err)
		}
		l.run(t, 5*time.Second, nil, "tc", "filter", "add", "dev", tapName, "parent", "ffff:", "protocol", "all", "prio", "1", "bpf", "bytecode", lossBPF(pct), "da")
		return
	}
	l.qdiscLoss(t, tapName, pct)
	l.run(t, 5*time.Second, nil, "tc", "qdisc", "add", "dev", tapName, "handle", "ffff:", "ingress")
	l.run(t, 5*time.Second, nil, "tc", "filter", "add", "dev", tapName, "parent", "ffff:", "protocol", "all", "prio", "1", "bpf", "bytecode", lossBPF(pct), "da")
}

// qdiscLoss drops pct percent of what dev (in the lab namespace) sends,
// inside an htb root qdisc, so the sender's TCP takes the frames as sent
// (a drop before the qdisc, at clsact, would be reported back to it as
// local congestion, not lost on the wire).
func (l *lab) qdiscLoss(t *testing.T, dev string, pct float64) {
	t.Helper()
	l.run(t, 5*time.Second, nil, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1")
	l.run(t, 5*time.Second, nil, "tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit", "quantum", "60000")
	l.run(t, 5*time.Second, nil, "tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "all", "prio", "1", "bpf", "bytecode", lossBPF(pct), "da")
}

// lossBPF is classic BPF: load a random u32 (ancillary offset -4040 =
// SKF_AD_RANDOM); when it is below the threshold return TC_ACT_SHOT (2),
// else TC_ACT_UNSPEC (-1).
func lossBPF(pct float64) string {
	thr := uint64(pct / 100 * (1 << 32))
	if thr > 1<<32-1 {
		thr = 1<<32 - 1
	}
	const ldRandom = 0xfffff038 // -4040 as u32
	return fmt.Sprintf("4,32 0 0 %d,53 1 0 %d,6 0 0 2,6 0 0 4294967295", ldRandom, thr)
}

// host is a sockstack host on the lab's TAP, in this process.
type host struct {
	st    *stack.Stack
	net   *socket.Net
	nic   *stack.NIC
	flush func() // writes out the capture so far
	// busyPoll, when set, is the SO_BUSY_POLL of the sockets the
	// throughput tests receive on (recvZerosSocat).
	busyPoll time.Duration
}

// startStack opens the TAP inside the namespace and runs a stack on it at
// 10.77.0.2/24; it is closed at cleanup, before the namespace goes. pcap,
// when set, receives every frame.
func (l *lab) startStack(pcap string) *host {
	l.t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, NoIOURing: *noIOURing})
	if err != nil {
		l.t.Fatal(err)
	}
	var ep link.Endpoint = tap
	flush := func() {}
	if pcap != "" {
		f, err := os.Create(pcap)
		if err != nil {
			l.t.Fatal(err)
		}
		pw, err := link.NewPcapWriter(f, link.LinkTypeEthernet, link.PcapOptions{Unbuffered: true}) // whole records only, for readers during the test
		if err != nil {
			l.t.Fatal(err)
		}
		ep = link.NewSniffer(tap, func(_ link.Direction, fr []byte) { pw.WriteFrame(time.Now(), fr) })
		l.t.Cleanup(func() { pw.Flush(); f.Close() })
		flush = func() { pw.Flush() }
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	h := &host{st: st, net: socket.New(st), flush: flush}
	h.nic = st.AddNIC(tapName, ep)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		st.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(st.Close)
	return h
}

// sockstackBin is the sockstack command, built once per test binary.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func sockstackBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sockstack-interop-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sockstack")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/sockstack/sockstack/cmd/sockstack").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/sockstack: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// sockstack runs the sockstack command (in the root namespace; --netns
// puts its TAP in the lab) and returns its output.
func (l *lab) sockstack(t *testing.T, limit time.Duration, stdin []byte, args ...string) (string, error) {
	bin := sockstackBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.WaitDelay = 2 * time.Second
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", limit)
	}
	return string(out), err
}

// tapArgs are the flags that put a sockstack tool on the lab's TAP.
func (l *lab) tapArgs() []string {
	return []string{"--tap", tapName, "--netns", l.ns, "--addr", stackCIDR.String()}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// randomFile writes n random bytes to a new file in dir and returns its
// path and SHA-256.
func randomFile(t *testing.T, dir, name string, n int64) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func fileHash(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
