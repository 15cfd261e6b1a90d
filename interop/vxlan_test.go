package interop

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// upProc is a `sockstack up` child process.
type upProc struct {
	cmd   *exec.Cmd
	vxlan string // the UDP address its VXLAN endpoint reported
	mu    sync.Mutex
	out   []string
	done  chan error
}

func (u *upProc) output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.out, "\n")
}

var vxlanAddrRE = regexp.MustCompile(`VXLAN vni \d+ on udp (\S+),`)

// startUp runs `sockstack up ARGS...` in dir until it says it is running;
// the test's cleanup stops it with SIGTERM (and kills it if it hangs).
func startUp(t *testing.T, dir string, args ...string) *upProc {
	t.Helper()
	u := &upProc{cmd: exec.Command(sockstackBin(t), append([]string{"up"}, args...)...), done: make(chan error, 1)}
	u.cmd.Dir = dir
	stdout, err := u.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	u.cmd.Stderr = u.cmd.Stdout
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		said := false
		for sc.Scan() {
			u.mu.Lock()
			u.out = append(u.out, sc.Text())
			if m := vxlanAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				u.vxlan = m[1]
			}
			u.mu.Unlock()
			if !said && strings.Contains(sc.Text(), "running; SIGINT or SIGTERM stops it") {
				said = true
				running <- true
			}
		}
		if !said {
			running <- false
		}
		u.done <- u.cmd.Wait()
	}()
	t.Cleanup(func() {
		u.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-u.done:
		case <-time.After(30 * time.Second):
			u.cmd.Process.Kill()
			<-u.done
		}
		if t.Failed() {
			t.Logf("sockstack up %s:\n%s", strings.Join(args, " "), u.output())
		}
	})
	select {
	case ok := <-running:
		if !ok {
			t.Fatalf("sockstack up %s exited:\n%s", strings.Join(args, " "), u.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("sockstack up %s did not start:\n%s", strings.Join(args, " "), u.output())
	}
	return u
}

// stop ends the process with SIGTERM and returns all it printed.
func (u *upProc) stop(t *testing.T) string {
	t.Helper()
	u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-u.done:
		u.done <- err // for the cleanup
		if err != nil {
			t.Errorf("sockstack up exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sockstack up did not stop on SIGTERM")
	}
	return u.output()
}

// Two `sockstack up` processes on loopback share VXLAN segment 4242
// (each on its own loopback address; B floods to A, A has no remote and
// answers what it learns). A third sockstack process, the client tools
// joined to the same segment with both as remotes, pings both (ARP is
// flooded to both remotes), fetches a file from A's HTTP service and
// talks to B's echo service. A client on another VNI reaches nothing.
func TestInteropVXLANUpProcesses(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("one segment, three processes\n", 4000)
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startUp(t, dir, "--vxlan-local", "127.0.0.1:0", "--vni", "4242", "--addr", "192.168.91.1/24", "--serve", "http,echo", "--root", dir)
	b := startUp(t, dir, "--vxlan-local", "127.0.0.2:0", "--vxlan-remote", a.vxlan, "--vni", "4242", "--addr", "192.168.91.2/24", "--serve", "echo")
	if a.vxlan == "" || b.vxlan == "" {
		t.Fatalf("VXLAN addresses %q %q", a.vxlan, b.vxlan)
	}
	bin := sockstackBin(t)
	client := func(vni string, args ...string) (string, error) {
		full := append([]string{args[0], "--vxlan-local", "127.0.0.3:0", "--vxlan-remote", a.vxlan, "--vxlan-remote", b.vxlan,
			"--vni", vni, "--addr", "192.168.91.3/24"}, args[1:]...)
		cmd := exec.Command(bin, full...)
		cmd.Dir = dir
		timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		defer timer.Stop()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, ip := range []string{"192.168.91.1", "192.168.91.2"} {
		out, err := client("4242", "ping", "-c", "3", "-i", "0.2", ip)
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping %s across VXLAN: %v\n%s", ip, err, out)
		}
	}
	out, err := client("4242", "http", "get", "-o", filepath.Join(dir, "got.txt"), "http://192.168.91.1/hello.txt")
	if err != nil {
		t.Fatalf("http get: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "got.txt")); string(got) != body {
		t.Fatalf("http get fetched %d bytes, want %d\n%s", len(got), len(body), out)
	}
	out, err = client("4242", "echo", "192.168.91.2", "hello", "overlay")
	if err != nil || !strings.Contains(out, "hello overlay") {
		t.Fatalf("echo to B: %v\n%s", err, out)
	}
	out, err = client("4243", "ping", "-c", "1", "-W", "1", "192.168.91.1")
	if err == nil || strings.Contains(out, " 0% packet loss") {
		t.Errorf("a client on VNI 4243 reached VNI 4242: %v\n%s", err, out)
	}
	sa, sb := a.stop(t), b.stop(t)
	// A served one HTTP connection, B one echo connection.
	if !strings.Contains(sa, "passive 1") || !strings.Contains(sb, "passive 1") {
		t.Errorf("summaries:\nA: %s\nB: %s", sa, sb)
	}
}

// kernelVXLANPeer makes two namespaces joined by a veth pair: A holds
// 10.78.0.1 (where a sockstack VTEP listens), B holds 10.78.0.2 and the
// kernel's vx0 (VNI 42, 192.168.78.2/24) whose remote is A's 10.78.0.1:4789.
func kernelVXLANPeer(t *testing.T, tag string) (nsA, nsB string) {
	return kernelVXLANPeerFamily(t, tag, false)
}

// kernelVXLANPeerFamily is kernelVXLANPeer over an IPv6 underlay when
// six: fd00:78::1 in A, fd00:78::2 in B, the kernel's vxlan device on
// that underlay (the overlay stays 192.168.78.0/24).
func kernelVXLANPeerFamily(t *testing.T, tag string, six bool) (nsA, nsB string) {
	needRoot(t)
	needTools(t, "ip", "ping", "curl", "ethtool")
	suffix := fmt.Sprint(os.Getpid())
	nsA, nsB = "ssvxa"+tag+suffix, "ssvxb"+tag+suffix
	ipc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ipc("netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ipc("netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	va, vb := "vxa"+tag+suffix, "vxb"+tag+suffix
	if len(va) > 15 {
		va, vb = va[:15], vb[:15]
	}
	ipc("link", "add", va, "type", "veth", "peer", "name", vb)
	ipc("link", "set", va, "netns", nsA)
	ipc("link", "set", vb, "netns", nsB)
	aAddr, bAddr := "10.78.0.1", "10.78.0.2"
	if six {
		aAddr, bAddr = "fd00:78::1", "fd00:78::2"
		ipc("-n", nsA, "addr", "add", aAddr+"/64", "dev", va, "nodad")
	} else {
		ipc("-n", nsA, "addr", "add", aAddr+"/24", "dev", va)
	}
	ipc("-n", nsA, "link", "set", va, "up")
	ipc("-n", nsA, "link", "set", "lo", "up")
	if six {
		ipc("-n", nsB, "addr", "add", bAddr+"/64", "dev", vb, "nodad")
	} else {
		ipc("-n", nsB, "addr", "add", bAddr+"/24", "dev", vb)
	}
	ipc("-n", nsB, "link", "set", vb, "up")
	// A veth offloads checksums, so the kernel would leave the inner
	// TCP checksum of an encapsulated segment unfinished (a real NIC
	// fills it): make it compute them before encapsulation.
	if out, err := exec.Command("ip", "netns", "exec", nsB, "ethtool", "-K", vb, "tx", "off").CombinedOutput(); err != nil {
		t.Fatalf("ethtool: %v\n%s", err, out)
	}
	ipc("-n", nsB, "link", "set", "lo", "up")
	ipc("-n", nsB, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", bAddr,
		"remote", aAddr, "dstport", "4789", "dev", vb)
	ipc("-n", nsB, "addr", "add", "192.168.78.2/24", "dev", "vx0")
	ipc("-n", nsB, "link", "set", "vx0", "up")
	return nsA, nsB
}

// runIn runs a command in namespace ns and fails the test on error.
func runIn(t *testing.T, ns string, limit time.Duration, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The Linux kernel's vxlan device and a sockstack host (a link.VXLAN in
// this process, its socket in namespace A) share one VXLAN segment: the
// kernel pings and curls sockstack's 192.168.78.1 across the overlay.
func TestInteropVXLANKernel(t *testing.T) {
	vxlanKernel(t, "l", false)
}

// The same over an IPv6 underlay: sockstack's endpoint on
// [fd00:78::1]:4789, the kernel's vxlan device on fd00:78::2; both take
// 1430 bytes as the inner MTU.
func TestInteropVXLANKernelIPv6Underlay(t *testing.T) {
	vxlanKernel(t, "6", true)
}

func vxlanKernel(t *testing.T, tag string, six bool) {
	nsA, nsB := kernelVXLANPeerFamily(t, tag, six)
	local, remote := "10.78.0.1:4789", "10.78.0.2:4789"
	if six {
		local, remote = "[fd00:78::1]:4789", "[fd00:78::2]:4789"
	}
	vx, err := link.NewVXLAN(link.VXLANConfig{
		Local:   netip.MustParseAddrPort(local),
		Remotes: []netip.AddrPort{netip.MustParseAddrPort(remote)},
		VNI:     42, MAC: wire.MAC{2, 0x5e, 0, 0, 0x78, 1}, Netns: nsA,
	})
	if err != nil {
		t.Fatal(err)
	}
	if six {
		out, err := exec.Command("ip", "netns", "exec", nsB, "cat", "/sys/class/net/vx0/mtu").Output()
		if err != nil {
			t.Fatal(err)
		}
		if km := strings.TrimSpace(string(out)); km != fmt.Sprint(vx.MTU()) {
			t.Errorf("inner MTU: sockstack %d, the kernel's vxlan device %s", vx.MTU(), km)
		}
	}
	st := stack.New(stack.Options{Name: "vxhost"})
	t.Cleanup(st.Close)
	if err := st.AddNIC("vx0", vx).AddAddress(netip.MustParsePrefix("192.168.78.1/24")); err != nil {
		t.Fatal(err)
	}
	ln, err := netconn.Listen(socket.New(st), "tcp", "192.168.78.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("across the overlay\n", 5000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	out := runIn(t, nsB, 20*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.78.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping across VXLAN:\n%s", out)
	}
	got := runIn(t, nsB, 30*time.Second, "curl", "-sS", "--max-time", "20", "http://192.168.78.1:8080/")
	if got != body {
		t.Fatalf("curl got %d bytes, want %d", len(got), len(body))
	}
	if vx.Learned.Load() == 0 {
		t.Error("the VXLAN endpoint learned no MAC from the kernel")
	}
	t.Logf("vxlan: rx %d frames, tx %d, learned %d, flooded %d", vx.Stats().RxFrames.Load(), vx.Stats().TxFrames.Load(), vx.Learned.Load(), vx.Flooded.Load())
}

// The same with `sockstack up --netns A --vxlan-local ... --serve http` as
// a child process: the kernel in namespace B pings it and curls a file
// from its HTTP service across the overlay.
func TestInteropVXLANKernelUp(t *testing.T) {
	nsA, nsB := kernelVXLANPeer(t, "u")
	dir := t.TempDir()
	body := strings.Repeat("the kernel and sockstack up on one segment\n", 3000)
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, dir, "--netns", nsA, "--vxlan-local", "10.78.0.1:4789", "--vxlan-remote", "10.78.0.2:4789", "--vni", "42",
		"--addr", "192.168.78.1/24", "--serve", "http", "--root", dir)
	out := runIn(t, nsB, 20*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.78.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping across VXLAN:\n%s", out)
	}
	got := runIn(t, nsB, 30*time.Second, "curl", "-sS", "--max-time", "20", "http://192.168.78.1/hello.txt")
	if got != body {
		t.Fatalf("curl got %d bytes, want %d", len(got), len(body))
	}
	if sum := u.stop(t); !strings.Contains(sum, "passive 1") {
		t.Errorf("summary: %s", sum)
	}
}
