package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// Offloads over a real TAP: the endpoint opened with virtio-net headers
// (link.TAPOptions.Offload) exchanges TCP super-segments and partial
// checksums with the kernel. newLab's cleanup fails the test if the
// kernel counted a bad checksum.

// startOffloadStack is startStack with the TAP's offloads on.
func (l *lab) startOffloadStack() *host {
	l.t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, Offload: true})
	if err != nil {
		l.t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, tap)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		st.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(st.Close)
	l.t.Logf("TUNSETOFFLOAD flags taken: %#x", tap.OffloadFlags())
	return h
}

// TestInteropOffloadTAP: 64 MiB each way between sockstack and the
// kernel over a TAP with offloads, compared by SHA-256; super-segments
// go whole both ways.
func TestInteropOffloadTAP(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	h := l.startOffloadStack()
	const size = 64 << 20
	path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
	got, d := sendToKernel(t, l, h, 5101, path, 2*time.Minute)
	if got != sum {
		t.Fatalf("kernel received SHA-256 %s, sent %s", got, sum)
	}
	t.Logf("64 MiB sockstack -> kernel: %.2f Gbit/s", gbps(size, d))
	got, n, d := recvFromKernel(t, l, h, 5102, path, 2*time.Minute)
	if n != size || got != sum {
		t.Fatalf("sockstack received %d bytes, SHA-256 %s; kernel sent %d, %s", n, got, size, sum)
	}
	t.Logf("64 MiB kernel -> sockstack: %.2f Gbit/s", gbps(size, d))
	ls := &h.st.Stats().Link
	t.Logf("super-segments sent whole %d, cut in software %d, received whole %d, coalesced %d from %d, bad offload %d",
		ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InGROSegs.Load(), ls.InBadOffload.Load())
	if ls.OutGSOFrames.Load() == 0 {
		t.Error("no super-segment was handed to the kernel")
	}
	if ls.InGSOFrames.Load() == 0 {
		t.Error("the kernel sent no super-segment (TSO4 not taken?)")
	}
	if ls.InBadOffload.Load() != 0 {
		t.Error("frames with malformed offload state")
	}
}

// vethPair makes a second namespace joined to the lab's by a veth pair:
// 10.78.0.1 in the lab, 10.78.0.2 in the new one. It returns the new
// namespace's name.
func (l *lab) vethPair(t *testing.T) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns2 := "sst-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns2).Run() })
	for _, s := range [][]string{
		{"ip", "netns", "add", ns2},
		{"ip", "-n", l.ns, "link", "add", "vk0", "type", "veth", "peer", "name", "vk1", "netns", ns2},
		{"ip", "-n", l.ns, "addr", "add", "10.78.0.1/24", "dev", "vk0"},
		{"ip", "-n", ns2, "addr", "add", "10.78.0.2/24", "dev", "vk1"},
		{"ip", "-n", l.ns, "link", "set", "vk0", "up"},
		{"ip", "-n", ns2, "link", "set", "vk1", "up"},
		{"ip", "-n", ns2, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return ns2
}

// kernelToKernel times size bytes from /dev/zero over TCP from the lab
// namespace to ns2 across the veth pair (socat both ends).
func (l *lab) kernelToKernel(t *testing.T, ns2 string, port int, size int64) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", ns2, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port), "OPEN:/dev/null")
	srv.WaitDelay = 2 * time.Second
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", ns2, "ss", "-H", "-ltn", fmt.Sprintf("sport = :%d", port)).Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		time.Sleep(20 * time.Millisecond) // no event tells when socat has bound
	}
	start := time.Now()
	l.run(t, 3*time.Minute, nil, "socat", "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), fmt.Sprintf("TCP:10.78.0.2:%d", port))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// TestInteropOffloadThroughput: one TCP connection each way, sockstack
// on a TAP with offloads against the kernel, next to the kernel against
// itself over a veth pair, in the same run (1 GiB each, /dev/zero to
// /dev/null). Figures only: timings are never asserted.
func TestInteropOffloadThroughput(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.startOffloadStack()
	ns2 := l.vethPair(t)
	const size = 1 << 30
	var out, in float64
	t.Run("sockstack_to_kernel", func(t *testing.T) {
		_, d := sendZeros(t, l, h, 5103, size)
		out = gbps(size, d)
		t.Logf("1 GiB sockstack -> kernel (TAP, offloads): %.2f Gbit/s", out)
	})
	t.Run("kernel_to_sockstack", func(t *testing.T) {
		d := recvZeros(t, l, h, 5104, size)
		in = gbps(size, d)
		t.Logf("1 GiB kernel -> sockstack (TAP, offloads): %.2f Gbit/s", in)
	})
	d := l.kernelToKernel(t, ns2, 5105, size)
	kk := gbps(size, d)
	t.Logf("1 GiB kernel -> kernel (veth): %.2f Gbit/s", kk)
	t.Logf("ratios to kernel<->kernel: sockstack->kernel %.2f, kernel->sockstack %.2f", out/kk, in/kk)
}

// sendZeros sends size zero bytes from sockstack to a kernel socat.
func sendZeros(t *testing.T, l *lab, h *host, port int, size int64) (int64, time.Duration) {
	return sendZerosTo(t, l, h, kernelIP.String(), port, size)
}

func sendZerosTo(t *testing.T, l *lab, h *host, kaddr string, port int, size int64) (int64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port), "OPEN:/dev/null")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	l.waitListen(t, "tcp", port)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(time.Minute)
	start := time.Now()
	if err := s.Connect(socket.Inet(kaddr, port)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var sent int64
	for ; sent < size; sent += int64(len(buf)) {
		if err := s.SendAll(buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	s.Shutdown(socket.SHUT_WR)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return sent, time.Since(start)
}

// recvZeros has a kernel socat send size zero bytes to sockstack.
func recvZeros(t *testing.T, l *lab, h *host, port int, size int64) time.Duration {
	return recvZerosFrom(t, l, h, stackIP.String(), port, size)
}

func recvZerosFrom(t *testing.T, l *lab, h *host, saddr string, port int, size int64) time.Duration {
	t.Helper()
	return recvZerosSocat(t, l, h, port, size, "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), fmt.Sprintf("TCP:%v:%d", saddr, port))
}

// recvZerosSocat listens on sockstack's port, runs the kernel's socat
// with args (which must send size bytes there), counts what arrives
// and returns the time it took.
func recvZerosSocat(t *testing.T, l *lab, h *host, port int, size int64, args ...string) time.Duration {
	t.Helper()
	ls, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Bind(socket.Inet("0.0.0.0", port))
	ls.Listen(1)
	ls.SetTimeout(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := l.cmd(ctx, append([]string{"socat"}, args...)...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	start := time.Now()
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetTimeout(time.Minute)
	buf := make([]byte, 1<<20)
	var got int64
	for {
		n, err := conn.Recv(buf, 0)
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		if n == 0 {
			break
		}
		got += int64(n)
	}
	d := time.Since(start)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != size {
		t.Fatalf("received %d bytes, want %d", got, size)
	}
	return d
}

// afpacketStack puts a stack on a veth whose other end is in the lab
// namespace (kernel 10.79.0.1/24 on vp0); the stack is 10.79.0.2/24 on
// vp1, through an AF_PACKET socket with offloads, in a namespace of its
// own where the kernel has no address.
func (l *lab) afpacketStack(t *testing.T) *host {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns2 := "sst-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns2).Run() })
	for _, s := range [][]string{
		{"ip", "netns", "add", ns2},
		{"ip", "-n", l.ns, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1", "netns", ns2},
		{"ip", "-n", l.ns, "addr", "add", "10.79.0.1/24", "dev", "vp0"},
		{"ip", "-n", l.ns, "link", "set", "vp0", "up"},
		{"ip", "-n", ns2, "link", "set", "vp1", "up"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	ep, err := link.OpenAFPacket("vp1", link.AFPacketOptions{Netns: ns2, Offload: true, QdiscBypass: true})
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC("vp1", ep)
	if err := h.nic.AddAddress(netip.MustParsePrefix("10.79.0.2/24")); err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return h
}

// TestInteropAFPacketOffload: sockstack on an AF_PACKET socket with
// PACKET_VNET_HDR and PACKET_QDISC_BYPASS on a veth, 1 GiB each way
// against the kernel, next to the kernel against itself over another
// veth pair in the same run. Super-segments must cross whole both ways;
// the figures are logged, never asserted.
func TestInteropAFPacketOffload(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.afpacketStack(t)
	ns2 := l.vethPair(t)
	const size = 1 << 30
	_, d := sendZerosTo(t, l, h, "10.79.0.1", 5201, size)
	out := gbps(size, d)
	t.Logf("1 GiB sockstack -> kernel (AF_PACKET, veth, offloads): %.2f Gbit/s", out)
	d = recvZerosFrom(t, l, h, "10.79.0.2", 5202, size)
	in := gbps(size, d)
	t.Logf("1 GiB kernel -> sockstack (AF_PACKET, veth, offloads): %.2f Gbit/s", in)
	kk := gbps(size, l.kernelToKernel(t, ns2, 5203, size))
	t.Logf("1 GiB kernel -> kernel (veth): %.2f Gbit/s", kk)
	t.Logf("ratios to kernel<->kernel: sockstack->kernel %.2f, kernel->sockstack %.2f", out/kk, in/kk)
	ls := &h.st.Stats().Link
	t.Logf("super-segments sent whole %d, received whole %d, coalesced %d, bad offload %d",
		ls.OutGSOFrames.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InBadOffload.Load())
	if ls.OutGSOFrames.Load() == 0 || ls.InGSOFrames.Load() == 0 {
		t.Error("super-segments did not cross the AF_PACKET socket whole")
	}
	if ls.InBadOffload.Load() != 0 {
		t.Error("frames with malformed offload state")
	}
}
