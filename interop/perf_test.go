package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
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
func (l *lab) startOffloadStack() *host { l.t.Helper(); return l.startOffloadStackQ(0) }

// startOffloadStackQ is startOffloadStack on a TAP with queues queues.
func (l *lab) startOffloadStackQ(queues int) *host {
	l.t.Helper()
	if queues > 1 {
		// The lab's device was made single-queue: make it again.
		for _, s := range [][]string{
			{"ip", "-n", l.ns, "link", "del", tapName},
			{"ip", "-n", l.ns, "tuntap", "add", "dev", tapName, "mode", "tap", "multi_queue"},
			{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf." + tapName + ".disable_ipv6=1"},
			{"ip", "-n", l.ns, "addr", "add", kernelCIDR, "dev", tapName},
			{"ip", "-n", l.ns, "link", "set", tapName, "up"},
		} {
			if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
				l.t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
			}
		}
	}
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, Offload: true, Queues: queues, NoIOURing: *noIOURing})
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
	t.Logf("super-segments sent whole %d, cut in software %d, received whole %d, coalesced %d from %d, bad offload %d; TCP frames gathered from the send ring %d",
		ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InGROSegs.Load(), ls.InBadOffload.Load(), ls.OutVecFrames.Load())
	if ls.OutGSOFrames.Load() == 0 {
		t.Error("no super-segment was handed to the kernel")
	}
	if ls.OutVecFrames.Load() == 0 {
		t.Error("no TCP frame was gathered by the TAP's writev")
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
func (l *lab) vethPair(t *testing.T) string { t.Helper(); return l.vethPairRPS(t, false) }

// vethPairRPS is vethPair with RPS on both ends (setRPS) if rps.
func (l *lab) vethPairRPS(t *testing.T, rps bool) string {
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
	if rps {
		setRPS(t, l.ns, "vk0")
		setRPS(t, ns2, "vk1")
	}
	return ns2
}

// kernelToKernel times size bytes from /dev/zero over TCP from the lab
// namespace to ns2 across the veth pair (socat both ends).
func (l *lab) kernelToKernel(t *testing.T, ns2 string, port int, size int64) time.Duration {
	return l.kernelToKernelCC(t, ns2, port, size, "")
}

// kernelToKernelCC is kernelToKernel with the sender's congestion
// control set to cc per socket (TCP_CONGESTION; "" keeps the default).
func (l *lab) kernelToKernelCC(t *testing.T, ns2 string, port int, size int64, cc string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", ns2, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port), "OPEN:/dev/null")
	srv.WaitDelay = 2 * time.Second
	done := startCmd(t, srv)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", ns2, "ss", "-H", "-ltn", fmt.Sprintf("sport = :%d", port)).Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		time.Sleep(20 * time.Millisecond) // no event tells when socat has bound
	}
	start := time.Now()
	l.run(t, 3*time.Minute, nil, "socat", "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), fmt.Sprintf("TCP:10.78.0.2:%d%s", port, ccOpt(cc)))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// ccOpt is the socat address option that sets TCP_CONGESTION to cc
// (IPPROTO_TCP 6, TCP_CONGESTION 13), or nothing for "".
func ccOpt(cc string) string {
	if cc == "" {
		return ""
	}
	return ",setsockopt-string=6:13:" + cc
}

// throughputCCs are the congestion controls the throughput tests run
// under, the same on both ends of each comparison: cubic (most Linux
// distributions' default) and bbr (this machine's default). The
// kernel's bbr sender holds itself back toward sockstack more than
// toward a kernel receiver (BENCHMARKS.md), so one figure per
// congestion control says which one a ratio belongs to.
var throughputCCs = []string{"cubic", "bbr"}

// throughputSize is what each transfer of the throughput tests carries:
// 1 GiB, about half a second here, so both congestion controls cost a
// few seconds per test.
const throughputSize = 1 << 30

// TestInteropOffloadThroughput: one TCP connection each way, sockstack
// on a TAP with offloads against the kernel, next to the kernel against
// itself over a veth pair, in the same run, under each congestion
// control of throughputCCs (1 GiB each, /dev/zero to /dev/null).
// Figures only: timings are never asserted.
func TestInteropOffloadThroughput(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.startOffloadStack()
	throughputVsKernel(t, l, h, "TAP, offloads", kernelIP.String(), stackIP.String(), 5103)
}

// throughputRounds is how many times throughputVsKernel measures each
// direction, alternating with the kernel against itself.
var throughputRounds = flag.Int("interop.throughput-rounds", 3,
	"throughput tests against the kernel: rounds of sockstack's two transfers, each followed by the kernel's own")

// throughputVsKernel times throughputSize bytes each way between
// sockstack (h at saddr, on a link named by what) and the kernel (at
// kaddr), and the kernel against itself over a veth pair, for each
// congestion control of throughputCCs: the kernel's sender (to
// sockstack and to the other kernel) and sockstack's sender take it by
// TCP_CONGESTION per socket. It logs the figures, sockstack's CPU per
// GiB and the ratios per congestion control, on ports port..port+5.
// The kernel against itself runs first and after each round of
// sockstack's two transfers (-interop.throughput-rounds, 3), and the
// ratios are of the medians: this machine's veth figure drifts by up
// to 2x within minutes, and one measurement on one side of sockstack's
// made the ratio follow that drift. Each round's ratios, to the mean of
// the kernel's figures around it, are logged too. With -interop.one-p
// (the default) each round also times both transfers with sockstack's
// process on one P, and with -interop.busy-poll (50µs) the receiving
// one with SO_BUSY_POLL, with their own medians and ratios.
// Figures only: timings are never asserted.
func throughputVsKernel(t *testing.T, l *lab, h *host, what, kaddr, saddr string, port int) {
	t.Helper()
	ns2 := l.vethPairRPS(t, *vethRPS)
	const size = throughputSize
	rounds := max(*throughputRounds, 1)
	var summary []string
	t.Logf("RPS on the veth ends (-interop.veth-rps): %v", *vethRPS)
	for i, cc := range throughputCCs {
		if !kernelHasCC(cc) {
			t.Logf("the kernel has no %s congestion control: its figures are left out", cc)
			summary = append(summary, cc+": not measured (not in the kernel)")
			continue
		}
		p := port + 3*i
		kernel := func(when string) float64 {
			k0, r0 := readNetCounters(t, l.ns), readNetCounters(t, ns2)
			kk := gbps(size, l.kernelToKernelCC(t, ns2, p+2, size, cc))
			t.Logf("%d MiB kernel -> kernel %s (veth, %s): %.2f Gbit/s", size>>20, when, cc, kk)
			t.Logf("kernel -> kernel %s: sender %s; receiver %s", when, reorderSince(t, l.ns, k0), reorderSince(t, ns2, r0))
			return kk
		}
		// send and recv time one transfer each way; suffix names the
		// subtest, and one runs it with the Go scheduler on one P.
		send := func(suffix string, one bool) (out float64, ran bool) {
			t.Run(cc+"/sockstack_to_kernel"+suffix, func(t *testing.T) {
				ran = true
				defer onePRun(one)()
				c, k0 := cpuNow(t), readNetCounters(t, l.ns)
				t0, calls := h.st.TCP.Stats(), linkCalls(h)
				_, d := sendZerosCC(t, l, h, kaddr, p, size, cc)
				if c := calls(); c.counted {
					t.Log(c)
				}
				out = gbps(size, d)
				t1 := h.st.TCP.Stats()
				t.Logf("%d MiB sockstack -> kernel (%s, %s%s): %.2f Gbit/s, sockstack %v", size>>20, what, cc, suffix, out, c.since(t, size))
				t.Logf("sockstack: %d segments written after the lock, %d flushes handed to a queue's goroutine, %d ACKs whose bytes waited for a flush", t1.DeferredSegs-t0.DeferredSegs, t1.FlushHandOffs-t0.FlushHandOffs, t1.SndReleaseHeld-t0.SndReleaseHeld)
				t.Logf("kernel (receiver): %s", reorderSince(t, l.ns, k0))
			})
			return out, ran
		}
		recv := func(suffix string, one bool, busy time.Duration) (in float64, ofo uint64, ran bool) {
			t.Run(cc+"/kernel_to_sockstack"+suffix, func(t *testing.T) {
				ran = true
				defer onePRun(one)()
				if busy > 0 {
					h.busyPoll = busy
					defer func() { h.busyPoll = 0 }()
					bp, ok := h.nic.Endpoint().(interface{ BusyPollStats() link.BusyPollStats })
					if !ok {
						t.Fatalf("the %s endpoint cannot be busy-polled", what)
					}
					b0 := bp.BusyPollStats()
					defer func() {
						b1 := bp.BusyPollStats()
						t.Logf("busy polling (SO_BUSY_POLL %v): %d polls, %d frames read by them, %d leases ended by the reading goroutine", busy, b1.Polls-b0.Polls, b1.Frames-b0.Frames, b1.Reclaimed-b0.Reclaimed)
						if b1.Frames == b0.Frames {
							t.Error("no frame was read by a busy-polling receive")
						}
					}()
				}
				c, k0 := cpuNow(t), readNetCounters(t, l.ns)
				s0, ofo0, calls := h.nic.Endpoint().Stats().Snapshot(), h.st.TCP.Stats().OFOQueued, linkCalls(h)
				d := recvZerosCC(t, l, h, saddr, p+1, size, cc)
				if c := calls(); c.counted {
					t.Log(c)
				}
				in = gbps(size, d)
				t.Logf("%d MiB kernel -> sockstack (%s, %s%s): %.2f Gbit/s, sockstack %v", size>>20, what, cc, suffix, in, c.since(t, size))
				logFrames(t, h, s0)
				ofo = h.st.TCP.Stats().OFOQueued - ofo0
				t.Logf("sockstack (receiver): %d segments queued out of order; kernel (sender): %s", ofo, reorderSince(t, l.ns, k0))
			})
			return in, ofo, ran
		}
		kks := []float64{kernel("first")}
		var outs, ins, outs1, ins1, insB []float64
		var inOFO uint64
		filtered := false
		for r := range rounds {
			// -test.run may leave both transfers out.
			out, ranOut := send("", false)
			in, ofo, ranIn := recv("", false, 0)
			if !ranOut && !ranIn {
				filtered = true
				break
			}
			inOFO += ofo
			outs, ins = append(outs, out), append(ins, in)
			if *oneP {
				out1, _ := send("_one_p", true)
				in1, _, _ := recv("_one_p", true, 0)
				outs1, ins1 = append(outs1, out1), append(ins1, in1)
			}
			if *busyPoll > 0 {
				inb, _, _ := recv("_busy_poll", false, *busyPoll)
				insB = append(insB, inb)
			}
			kks = append(kks, kernel(fmt.Sprintf("after round %d", r+1)))
			around := (kks[r] + kks[r+1]) / 2
			t.Logf("%s round %d: ratios to kernel<->kernel around it (%.2f Gbit/s): sockstack->kernel %.2f, kernel->sockstack %.2f", cc, r+1, around, out/around, in/around)
		}
		if filtered {
			summary = append(summary, cc+": filtered out by -test.run")
			continue
		}
		kk, out, in := median(kks), median(outs), median(ins)
		t.Logf("%s: ratios of the medians to kernel<->kernel: sockstack->kernel %.2f, kernel->sockstack %.2f", cc, out/kk, in/kk)
		line := fmt.Sprintf("%s: s->k %s, k->s %s, k->k %s Gbit/s (median [min-max] of %d, %d); ratios of the medians %.2f / %.2f; out of order at sockstack %d",
			cc, spread(outs), spread(ins), spread(kks), rounds, len(kks), out/kk, in/kk, inOFO)
		if len(outs1) > 0 {
			out1, in1 := median(outs1), median(ins1)
			t.Logf("%s, sockstack on one P: ratios of the medians to kernel<->kernel: sockstack->kernel %.2f, kernel->sockstack %.2f", cc, out1/kk, in1/kk)
			line += fmt.Sprintf("; on one P (GOMAXPROCS=1): s->k %s, k->s %s Gbit/s, ratios %.2f / %.2f", spread(outs1), spread(ins1), out1/kk, in1/kk)
		}
		if len(insB) > 0 {
			inb := median(insB)
			t.Logf("%s, sockstack receiving with SO_BUSY_POLL %v: ratio of the median to kernel<->kernel: kernel->sockstack %.2f", cc, *busyPoll, inb/kk)
			line += fmt.Sprintf("; receiving with SO_BUSY_POLL %v: k->s %s Gbit/s, ratio %.2f", *busyPoll, spread(insB), inb/kk)
		}
		summary = append(summary, line)
	}
	t.Logf("%s, %d MiB each, RPS %v: %s", what, size>>20, *vethRPS, strings.Join(summary, "; "))
}

// oneP adds to each round of throughputVsKernel the same two transfers
// with the Go scheduler on one P (runtime.GOMAXPROCS(1) for their
// duration). On a machine of two cores whose other work is the kernel
// peer (its sender or receiver, its softirqs), a second P lets the Go
// runtime wake a second thread for every goroutine a batch readies (the
// reader woken by the link's goroutine), which takes the kernel's core
// and adds wake-ups to every round trip (BENCHMARKS.md, "One P against
// two").
var oneP = flag.Bool("interop.one-p", true,
	"throughput tests against the kernel: also time each round's transfers with GOMAXPROCS=1")

// busyPoll adds to each round of throughputVsKernel a kernel ->
// sockstack transfer whose receiving socket sets SO_BUSY_POLL to it
// (0: none): the reader processes the link's frames itself instead of
// being woken by the link's goroutine (socket/busypoll.go).
var busyPoll = flag.Duration("interop.busy-poll", 50*time.Microsecond,
	"throughput tests against the kernel: also time each round's kernel->sockstack transfer with SO_BUSY_POLL of this (0: not)")

// onePRun sets GOMAXPROCS to 1 when one is set and returns what puts
// it back.
func onePRun(one bool) func() {
	if !one {
		return func() {}
	}
	prev := runtime.GOMAXPROCS(1)
	return func() { runtime.GOMAXPROCS(prev) }
}

// sendZerosTo sends size zero bytes from sockstack to a kernel socat
// listening on kaddr:port.
func sendZerosTo(t *testing.T, l *lab, h *host, kaddr string, port int, size int64) (int64, time.Duration) {
	return sendZerosCC(t, l, h, kaddr, port, size, "")
}

// sendZerosCC is sendZerosTo with sockstack's sender on congestion
// control cc ("" keeps the stack's default).
func sendZerosCC(t *testing.T, l *lab, h *host, kaddr string, port int, size int64, cc string) (int64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port), "OPEN:/dev/null")
	done := startCmd(t, c)
	l.waitListen(t, "tcp", port)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cc != "" {
		if err := s.SetSockOpt(socket.SOL_TCP, socket.TCP_CONGESTION, cc); err != nil {
			t.Fatalf("TCP_CONGESTION %s: %v", cc, err)
		}
	}
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

// recvZerosFrom has a kernel socat send size zero bytes to sockstack
// listening on saddr:port.
func recvZerosFrom(t *testing.T, l *lab, h *host, saddr string, port int, size int64) time.Duration {
	t.Helper()
	return recvZerosCC(t, l, h, saddr, port, size, "")
}

// recvZerosCC is recvZerosFrom with the kernel's sender on congestion
// control cc ("" keeps the kernel's default).
func recvZerosCC(t *testing.T, l *lab, h *host, saddr string, port int, size int64, cc string) time.Duration {
	t.Helper()
	return recvZerosSocat(t, l, h, port, size, "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), fmt.Sprintf("TCP:%v:%d%s", saddr, port, ccOpt(cc)))
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
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		t.Fatalf("bind port %d: %v", port, err) // e.g. EADDRINUSE: a connection of an earlier transfer still holds it
	}
	if err := ls.Listen(1); err != nil {
		t.Fatal(err)
	}
	ls.SetTimeout(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := l.cmd(ctx, append([]string{"socat"}, args...)...)
	done := startCmd(t, c)
	start := time.Now()
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetTimeout(time.Minute)
	if h.busyPoll > 0 {
		if err := conn.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BUSY_POLL, int(h.busyPoll/time.Microsecond)); err != nil {
			t.Fatalf("SO_BUSY_POLL: %v", err)
		}
	}
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

// afMode picks how TestInteropAFPacketOffload's AF_PACKET socket reads
// and writes: "mmsg" (recvmmsg/sendmmsg, the link's default), "v3"
// (TPACKET_V3 receive ring and a transmit ring) or "v2" (TPACKET_V2
// receive ring, a frame handed over as soon as written, and a transmit
// ring) or "v2rx" (the TPACKET_V2 receive ring, sendmmsg to send);
// BENCHMARKS.md compares them.
// noIOURing opens the throughput and loss tests' TAP and TUN devices
// with one write(2) per frame (link.TAPOptions.NoIOURing), to compare
// with the io_uring batches.
var noIOURing = flag.Bool("interop.no-io-uring", false,
	"TAP and TUN of the throughput and loss tests: one write(2) per frame, no io_uring")

var afMode = flag.String("interop.af-mode", "mmsg",
	"AF_PACKET mode of TestInteropAFPacketOffload: mmsg, v3 (TPACKET_V3 rings), v2 (TPACKET_V2 rings) or v2rx (TPACKET_V2 receive ring, sendmmsg)")

// afReorderWait sets AFPacketOptions.ReorderWait in the AF_PACKET
// throughput tests (0: the default; negative: none), for A/B runs.
var afReorderWait = flag.Duration("interop.reorder-wait", 0,
	"AF_PACKET throughput tests: the reader's wait for a reordered frame (0: link.DefaultReorderWait, negative: none)")

// withAFMode sets opts' ring options for mode (afMode's values), and
// the reorder wait of -interop.reorder-wait.
func withAFMode(t *testing.T, opts link.AFPacketOptions, mode string) link.AFPacketOptions {
	t.Helper()
	opts.ReorderWait = *afReorderWait
	switch mode {
	case "mmsg":
		opts.Ring = false
	case "v3":
		opts.Ring, opts.RingVersion = true, 3
	case "v2":
		opts.Ring, opts.RingVersion = true, 2
	case "v2rx":
		opts.Ring, opts.RingVersion, opts.RingNoTx = true, 2, true
	default:
		t.Fatalf("-interop.af-mode %q: want mmsg, v3, v2 or v2rx", mode)
	}
	return opts
}

// afpacketStack puts a stack on a veth whose other end is in the lab
// namespace (kernel 10.79.0.1/24 on vp0); the stack is 10.79.0.2/24 on
// vp1, through an AF_PACKET socket with offloads, in a namespace of its
// own where the kernel has no address.
func (l *lab) afpacketStack(t *testing.T) *host {
	t.Helper()
	return l.afpacketStackOpts(t, link.AFPacketOptions{Offload: true, QdiscBypass: true})
}

// afpacketStackOpts is afpacketStack with the socket options opts.
func (l *lab) afpacketStackOpts(t *testing.T, opts link.AFPacketOptions) *host {
	t.Helper()
	return l.afpacketStackRPS(t, opts, false)
}

// afpacketStackRPS is afpacketStackOpts with RPS on both veth ends
// (setRPS) if rps.
func (l *lab) afpacketStackRPS(t *testing.T, opts link.AFPacketOptions, rps bool) *host {
	t.Helper()
	return l.afpacketStackWith(t, opts, rps, stack.Options{})
}

// afpacketStackWith is afpacketStackRPS with the stack's options so (its
// name is sockstack's).
func (l *lab) afpacketStackWith(t *testing.T, opts link.AFPacketOptions, rps bool, so stack.Options) *host {
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
	if rps {
		setRPS(t, l.ns, "vp0")
		setRPS(t, ns2, "vp1")
	}
	opts.Netns = ns2
	ep, err := link.OpenAFPacket("vp1", opts)
	if err != nil {
		t.Fatal(err)
	}
	so.Name = "sockstack"
	st := stack.New(so)
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
// PACKET_VNET_HDR and PACKET_QDISC_BYPASS on a veth, one connection each
// way against the kernel, next to the kernel against itself over another
// veth pair in the same run, under each congestion control of
// throughputCCs (throughputVsKernel). Super-segments must cross whole
// both ways; the figures are logged, never asserted.
func TestInteropAFPacketOffload(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.afpacketStackRPS(t, withAFMode(t, link.AFPacketOptions{Offload: true, QdiscBypass: true}, *afMode), *vethRPS)
	t.Logf("AF_PACKET mode (-interop.af-mode): %s", *afMode)
	throughputVsKernel(t, l, h, "AF_PACKET "+*afMode+", veth, offloads", "10.79.0.1", "10.79.0.2", 5201)
	ls := &h.st.Stats().Link
	t.Logf("super-segments sent whole %d, received whole %d, coalesced %d, bad offload %d; TCP frames gathered from the send ring %d",
		ls.OutGSOFrames.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InBadOffload.Load(), ls.OutVecFrames.Load())
	if ls.OutGSOFrames.Load() == 0 || ls.InGSOFrames.Load() == 0 {
		t.Error("super-segments did not cross the AF_PACKET socket whole")
	}
	if *afMode == "mmsg" && ls.OutVecFrames.Load() == 0 {
		t.Error("no TCP frame was gathered by sendmmsg (a ring copies, the default must not)")
	}
	if ls.InBadOffload.Load() != 0 {
		t.Error("frames with malformed offload state")
	}
	if ep, ok := h.nic.Endpoint().(*link.AFPacket); ok {
		t.Logf("kernel drops %d, rings %+v, waits for a reordered frame %+v", ep.KernelDrops(), ep.RingStats(), ep.ReorderWaitStats())
	}
}

// Several connections at once: size bytes in all, split evenly over
// conns connections, on ports port..port+conns-1 (kernel listeners) or
// one sockstack port. The time runs from the first connect to the last
// byte received.

// sendZerosN sends from sockstack to conns kernel socat listeners.
func sendZerosN(t *testing.T, l *lab, h *host, kaddr string, port, conns int, size int64) time.Duration {
	t.Helper()
	if conns == 1 {
		_, d := sendZerosTo(t, l, h, kaddr, port, size)
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var dones []<-chan error
	for i := range conns {
		c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port+i), "OPEN:/dev/null")
		dones = append(dones, startCmd(t, c))
	}
	for i := range conns {
		l.waitListen(t, "tcp", port+i)
	}
	per := size / int64(conns)
	errs := make(chan error, conns)
	start := time.Now()
	for i := range conns {
		go func() {
			s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			s.SetTimeout(time.Minute)
			if err := s.Connect(socket.Inet(kaddr, port+i)); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 1<<20)
			for sent := int64(0); sent < per; sent += int64(len(buf)) {
				if err := s.SendAll(buf[:min(int64(len(buf)), per-sent)], 0); err != nil {
					errs <- err
					return
				}
			}
			s.Shutdown(socket.SHUT_WR)
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// recvZerosN has conns kernel socat clients send to one sockstack port.
func recvZerosN(t *testing.T, l *lab, h *host, saddr string, port, conns int, size int64) time.Duration {
	t.Helper()
	if conns == 1 {
		return recvZerosFrom(t, l, h, saddr, port, size)
	}
	ls, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		t.Fatalf("bind port %d: %v", port, err) // e.g. EADDRINUSE: a connection of an earlier transfer still holds it
	}
	if err := ls.Listen(conns); err != nil {
		t.Fatal(err)
	}
	ls.SetTimeout(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	per := size / int64(conns)
	var dones []<-chan error
	start := time.Now()
	for range conns {
		c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", per), fmt.Sprintf("TCP:%v:%d", saddr, port))
		dones = append(dones, startCmd(t, c))
	}
	got := make(chan int64, conns)
	for range conns {
		conn, _, err := ls.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer conn.Close()
			conn.SetTimeout(time.Minute)
			buf := make([]byte, 1<<20)
			var n int64
			for {
				k, err := conn.Recv(buf, 0)
				if err != nil || k == 0 {
					break
				}
				n += int64(k)
			}
			got <- n
		}()
	}
	var total int64
	for range conns {
		total += <-got
	}
	d := time.Since(start)
	for _, done := range dones {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if total != per*int64(conns) {
		t.Fatalf("received %d bytes, want %d", total, per*int64(conns))
	}
	return d
}

// kernelToKernelN is kernelToKernel over conns connections at once.
func (l *lab) kernelToKernelN(t *testing.T, ns2 string, port, conns int, size int64) time.Duration {
	t.Helper()
	if conns == 1 {
		return l.kernelToKernel(t, ns2, port, size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var dones []<-chan error
	for i := range conns {
		srv := exec.CommandContext(ctx, "ip", "netns", "exec", ns2, "socat", "-b262144", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port+i), "OPEN:/dev/null")
		srv.WaitDelay = 2 * time.Second
		dones = append(dones, startCmd(t, srv))
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < conns && time.Now().Before(deadline); {
		out, _ := exec.Command("ip", "netns", "exec", ns2, "ss", "-H", "-ltn", fmt.Sprintf("sport = :%d", port+i)).Output()
		if strings.TrimSpace(string(out)) != "" {
			i++
			continue
		}
		time.Sleep(20 * time.Millisecond) // no event tells when socat has bound
	}
	per := size / int64(conns)
	start := time.Now()
	for i := range conns {
		c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", per), fmt.Sprintf("TCP:10.78.0.2:%d", port+i))
		dones = append(dones, startCmd(t, c))
	}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// throughputTable measures 1 and 8 connections each way between h
// (at saddr) and the kernel (at kaddr), and the kernel against itself
// over the veth pair to ns2, and logs them with their ratios.
func throughputTable(t *testing.T, l *lab, h *host, what, kaddr, saddr, ns2 string, port int) {
	const size = 1 << 30
	for _, conns := range []int{1, 8} {
		c := cpuNow(t)
		out := gbps(size, sendZerosN(t, l, h, kaddr, port, conns, size))
		cout := c.since(t, size)
		port += conns
		c = cpuNow(t)
		in := gbps(size, recvZerosN(t, l, h, saddr, port, conns, size))
		cin := c.since(t, size)
		port++
		kk := gbps(size, l.kernelToKernelN(t, ns2, port, conns, size))
		port += conns
		t.Logf("%s, %d connection(s), 1 GiB: sockstack->kernel %.2f Gbit/s, kernel->sockstack %.2f Gbit/s, kernel->kernel (veth) %.2f Gbit/s; ratios %.2f / %.2f",
			what, conns, out, in, kk, out/kk, in/kk)
		t.Logf("%s, %d connection(s): sockstack process sending %v; receiving %v", what, conns, cout, cin)
	}
}

// TestInteropOffloadThroughputQueues: TestInteropOffloadThroughput on a
// TAP with 2 queues (one per core here), 1 and 8 connections each way.
// Figures only.
func TestInteropOffloadThroughputQueues(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.startOffloadStackQ(2)
	ns2 := l.vethPair(t)
	throughputTable(t, l, h, "TAP, offloads, 2 queues", kernelIP.String(), stackIP.String(), ns2, 5300)
	logQueues(t, h)
}

// logQueues logs what each queue of h's link carried.
func logQueues(t *testing.T, h *host) {
	q, ok := h.nic.Endpoint().(interface {
		Queues() int
		QueueStats(int) link.QueueSnapshot
	})
	if !ok {
		return
	}
	for i := range q.Queues() {
		s := q.QueueStats(i)
		t.Logf("queue %d: received %d frames, sent %d", i, s.RxFrames, s.TxFrames)
	}
}

// TestInteropAFPacketOffloadVariants: TestInteropAFPacketOffload with a
// fanout of 2 sockets, with TPACKET_V3 rings, with TPACKET_V2 rings, and
// with a fanout and rings; 1 and 8 connections each way. Figures only.
func TestInteropAFPacketOffloadVariants(t *testing.T) {
	for _, v := range []struct {
		name string
		opts link.AFPacketOptions
	}{
		{"fanout2", link.AFPacketOptions{Offload: true, QdiscBypass: true, Queues: 2}},
		{"ring", link.AFPacketOptions{Offload: true, QdiscBypass: true, Ring: true, RingVersion: 3}},
		{"fanout2_ring", link.AFPacketOptions{Offload: true, QdiscBypass: true, Queues: 2, Ring: true, RingVersion: 3}},
		{"ring_v2", link.AFPacketOptions{Offload: true, QdiscBypass: true, Ring: true, RingVersion: 2}},
		{"fanout2_ring_v2", link.AFPacketOptions{Offload: true, QdiscBypass: true, Queues: 2, Ring: true, RingVersion: 2}},
	} {
		t.Run(v.name, func(t *testing.T) {
			l := newLab(t)
			needTools(t, "socat", "ss")
			h := l.afpacketStackOpts(t, v.opts)
			ns2 := l.vethPair(t)
			throughputTable(t, l, h, "AF_PACKET (veth), offloads, "+v.name, "10.79.0.1", "10.79.0.2", ns2, 5400)
			logQueues(t, h)
			if r, ok := h.nic.Endpoint().(*link.AFPacket); ok {
				t.Logf("frames the kernel dropped at a full ring or socket buffer: %d; rings %+v", r.KernelDrops(), r.RingStats())
			}
			ls := &h.st.Stats().Link
			t.Logf("super-segments sent whole %d, received whole %d, bad offload %d",
				ls.OutGSOFrames.Load(), ls.InGSOFrames.Load(), ls.InBadOffload.Load())
			if ls.InBadOffload.Load() != 0 {
				t.Error("frames with malformed offload state")
			}
		})
	}
}

// sendFileTo sends the file at path from sockstack to a kernel socat on
// kaddr:port that pipes it into sha256sum, and returns the digest.
func sendFileTo(t *testing.T, l *lab, h *host, kaddr string, port int, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := l.cmd(ctx, "sh", "-c", fmt.Sprintf("socat -u TCP-LISTEN:%d,reuseaddr - | sha256sum", port))
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	done := startCmd(t, c)
	l.waitListen(t, "tcp", port)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(time.Minute)
	if err := s.Connect(socket.Inet(kaddr, port)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	s.Shutdown(socket.SHUT_WR)
	if err := <-done; err != nil {
		t.Fatalf("kernel side: %v\n%s", err, out.String())
	}
	return strings.Fields(out.String() + " x")[0]
}

// TestInteropAFPacketRingIntegrity: 64 MiB of random bytes each way
// through TPACKET_V3 rings with offloads and a fanout of 2, compared by
// SHA-256. The transmit ring's slots are reused as soon as the kernel
// frees them; a slot freed while the kernel still referenced its bytes
// would show here as a wrong digest.
//
// The receive rings lend their frames to TCP in place (link/tpacket_linux.go):
// a block given back to the kernel while TCP still held a payload in it
// would show here too.
//
// Run on both kinds of receive ring: TPACKET_V3 blocks and TPACKET_V2
// slots (a slot given back while lent would show the same way).
func TestInteropAFPacketRingIntegrity(t *testing.T) {
	for _, v := range []struct {
		name    string
		version int
	}{{"v3", 3}, {"v2", 2}} {
		t.Run(v.name, func(t *testing.T) {
			h := afpacketIntegrity(t, link.AFPacketOptions{Offload: true, QdiscBypass: true, Ring: true, RingVersion: v.version, Queues: 2})
			rs := h.nic.Endpoint().(*link.AFPacket).RingStats()
			t.Logf("rings: %+v; TCP payloads kept in lent memory %d; link %+v", rs, h.st.TCP.Stats().LentSegs, h.nic.Endpoint().Stats().Snapshot())
			if rs.Lent == 0 {
				t.Error("no frame was lent from the receive rings")
			}
		})
	}
}

// TestInteropAFPacketIntegrity: the same through recvmmsg/sendmmsg with a
// fanout of 2, where TCP keeps received super-segments in the socket's
// lent read buffers (link/lend.go, tcp/lend.go) instead of copying them:
// a buffer read into again while TCP still held it would show here.
func TestInteropAFPacketIntegrity(t *testing.T) {
	h := afpacketIntegrity(t, link.AFPacketOptions{Offload: true, QdiscBypass: true, Queues: 2})
	if n := h.st.TCP.Stats().LentSegs; n == 0 {
		t.Error("no payload was kept in a lent buffer")
	} else {
		t.Logf("payloads kept in lent buffers: %d", n)
	}
}

// afpacketIntegrity sends 64 MiB of random bytes each way over an
// AF_PACKET endpoint with opts and compares SHA-256.
func afpacketIntegrity(t *testing.T, opts link.AFPacketOptions) *host {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	h := l.afpacketStackOpts(t, opts)
	const size = 64 << 20
	path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
	if got := sendFileTo(t, l, h, "10.79.0.1", 5501, path); got != sum {
		t.Fatalf("kernel received SHA-256 %s, sent %s", got, sum)
	}
	kernelSendsFile(t, l, h, "10.79.0.2", 5502, path, sum, size)
	return h
}

// kernelSendsFile has a kernel socat send the file at path (size bytes,
// SHA-256 sum) to a sockstack listener on port of h, reachable at
// saddr, and compares what arrives; the receiving socket takes
// h.busyPoll as its SO_BUSY_POLL.
func kernelSendsFile(t *testing.T, l *lab, h *host, saddr string, port int, path, sum string, size int64) {
	t.Helper()
	ls, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		t.Fatalf("bind port %d: %v", port, err) // e.g. EADDRINUSE: a connection of an earlier transfer still holds it
	}
	if err := ls.Listen(1); err != nil {
		t.Fatal(err)
	}
	ls.SetTimeout(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := startCmd(t, l.cmd(ctx, "socat", "-u", "OPEN:"+path, fmt.Sprintf("TCP:%s:%d", saddr, port)))
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetTimeout(time.Minute)
	if h.busyPoll > 0 {
		if err := conn.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BUSY_POLL, int(h.busyPoll/time.Microsecond)); err != nil {
			t.Fatalf("SO_BUSY_POLL: %v", err)
		}
	}
	got, n := recvHashed(t, conn)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n != size || got != sum {
		t.Fatalf("sockstack received %d bytes, SHA-256 %s; kernel sent %d, %s", n, got, size, sum)
	}
}
