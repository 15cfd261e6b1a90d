package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// Loss: sockstack against the kernel with the same congestion control
// on both sides, next to the kernel against itself, over paths with the
// same random loss, in two modes (TestInteropLossSameCC).
//
// Both modes: the lab namespace holds the kernel end of sockstack's TAP
// and one end (vk0) of a veth pair to a second namespace, and every
// transfer crosses one lossy device with loss on its data and on its
// ACKs.
//
// Burst mode (lossBurst): the same qdisc rule on both devices (lossDev:
// a classic-BPF random drop in an htb root qdisc for what the lab's
// kernel sends, and in an ingress qdisc for what it receives). The
// kernel keeps its defaults: its TCP hands the qdisc GSO packets of up
// to 64 KB (it does so even with TSO and GSO turned off on the device,
// and then segments after the qdisc), so a drop on a path where the
// kernel sends takes a whole burst, while sockstack's plain TAP writes
// one frame per segment and each of its data segments is dropped on its
// own: sockstack sees more, smaller loss events than the kernel at the
// same rate. With offloads sockstack's super-segments are dropped whole
// too, the same loss process as the kernel's; both are measured.
// (Bounding the kernel's packets to one segment, gso_max_segs 1, makes
// its TCP Small Queues stall the veth at well under 1 Gbit/s without
// loss.)
//
// Frame mode (lossFrame, lossframe_test.go): what a wire does, every
// direction loses the same share of its frames, checked per frame; the
// fair comparison, with sockstack on the plain TAP and on AF_PACKET
// over a veth (lossframe_af_test.go).

// lossPct is the random loss of each direction of each path, in
// percent: 2, or INTEROP_LOSS_PCT (to see the same paths without loss,
// or with more).
// lossRounds is how many times each transfer runs.
const lossRounds = 3

// median is v's median: the mean of the middle two of an even count.
func median(v []float64) float64 {
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	if k := len(w); k%2 == 0 {
		return (w[k/2-1] + w[k/2]) / 2
	}
	return w[len(w)/2]
}

// sendHashed sends data from sockstack to a kernel socat on port that
// hashes it, with congestion control cc on both ends, and returns the
// time from connect to the kernel's hash.
func sendHashed(t *testing.T, ctx context.Context, l *lab, h *host, port int, cc, opt string, data []byte, sum string) time.Duration {
	t.Helper()
	return sendHashedTo(t, ctx, l, h, kernelIP, port, cc, opt, data, sum)
}

func lossPct(t *testing.T) float64 {
	if v := os.Getenv("INTEROP_LOSS_PCT"); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 100 {
			t.Fatalf("INTEROP_LOSS_PCT=%q: want a percentage", v)
		}
		return p
	}
	return 2
}

// lossDev makes the lab's kernel drop pct percent of the frames it sends
// and receives on dev, silently (an htb root qdisc's filter drop is not
// reported to the sender, unlike a clsact egress drop).
func (l *lab) lossDev(t *testing.T, dev string, pct float64) {
	t.Helper()
	bpf := lossBPF(pct)
	for _, c := range [][]string{
		// No default class: what the filter passes goes to htb's direct
		// queue, unshaped.
		{"tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb"},
		{"tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "all", "prio", "1", "bpf", "bytecode", bpf, "da"},
		{"tc", "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"},
		{"tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "prio", "1", "bpf", "bytecode", bpf, "da"},
	} {
		l.run(t, 5*time.Second, nil, c...)
	}
}

// qdiscDrops is the drop count of dev's root qdisc and its ingress
// qdisc, from tc -s.
func qdiscDrops(t *testing.T, ns, dev string) (egress, ingress int64) {
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("tc -s qdisc: %v", err)
	}
	var cur *int64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "qdisc" && f[1] == "htb":
			cur = &egress
		case len(f) > 1 && f[0] == "qdisc" && f[1] == "ingress":
			cur = &ingress
		case len(f) > 0 && f[0] == "qdisc":
			cur = nil
		}
		for i := 0; cur != nil && i+2 < len(f); i++ {
			if f[i] == "(dropped" {
				var n int64
				fmt.Sscanf(strings.TrimSuffix(f[i+1], ","), "%d", &n)
				*cur += n
			}
		}
	}
	return egress, ingress
}

// kernelHasCC reports whether the kernel offers congestion control cc,
// loading tcp_<cc> first when the kernel has modules.
func kernelHasCC(cc string) bool {
	has := func() bool {
		b, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_available_congestion_control")
		for _, f := range strings.Fields(string(b)) {
			if f == cc {
				return true
			}
		}
		return false
	}
	if has() {
		return true
	}
	if _, err := exec.LookPath("modprobe"); err == nil {
		exec.Command("modprobe", "tcp_"+cc).Run()
	}
	return has()
}

// kernelHashedOverVeth sends the file at path from the lab's kernel to a
// hashing socat in ns2 over the veth, with socket options opt, checks
// the hash against sum and returns the time from connect to the hash.
func (l *lab) kernelHashedOverVeth(t *testing.T, ctx context.Context, ns2 string, port int, opt, path, sum string, limit time.Duration) time.Duration {
	t.Helper()
	done, out := hashSink(t, ctx, ns2, port, opt)
	start := time.Now()
	if o, err := l.try(limit, nil, "socat", "-b262144", "-u", "OPEN:"+path, fmt.Sprintf("TCP:10.78.0.2:%d%s", port, opt)); err != nil {
		t.Fatalf("kernel sender: %v\n%s", err, o)
	}
	if err := <-done; err != nil {
		t.Fatalf("kernel receiver: %v\n%s", err, out.String())
	}
	d := time.Since(start)
	if got := strings.Fields(out.String() + " x")[0]; got != sum {
		t.Fatalf("kernel over the veth received SHA-256 %s, sent %s", got, sum)
	}
	return d
}

// startStackTAP runs a stack with TCP configuration tc on the lab's
// TAP, opened with offloads (super-segments both ways) or without (one
// frame per segment).
func (l *lab) startStackTAP(tc tcp.Config, offload bool) *host {
	l.t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, Offload: offload, NoIOURing: *noIOURing})
	if err != nil {
		l.t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "sockstack", TCP: tc})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, tap)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		st.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(st.Close)
	return h
}

// hashSink runs "socat -u TCP-LISTEN:port,opt - | sha256sum" in ns and
// returns where its result arrives and its output.
func hashSink(t *testing.T, ctx context.Context, ns string, port int, opt string) (<-chan error, *syncBuffer) {
	t.Helper()
	c := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c",
		fmt.Sprintf("socat -b262144 -u TCP-LISTEN:%d,reuseaddr%s - | sha256sum", port, opt))
	c.WaitDelay = 2 * time.Second
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	done := startCmd(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		o, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-H", "-ltn", fmt.Sprintf("sport = :%d", port)).Output()
		if strings.TrimSpace(string(o)) != "" {
			return done, &out
		}
		time.Sleep(20 * time.Millisecond) // no event tells when socat has bound
	}
	t.Fatalf("nothing listens on port %d in %s", port, ns)
	return nil, nil
}

// TestInteropLossSameCC: with 2% random loss on each direction of each
// path and the same congestion control on both ends (CUBIC, then BBR),
// data checked by SHA-256 in each of sockstack → kernel and kernel →
// sockstack over sockstack's link, and kernel → kernel over a veth pair, several
// rounds in one run (32 MiB, three rounds; frame mode's BBR 128 MiB,
// seven), in two modes:
//   - burst: the lab's qdiscs drop what they see (lossDev), so where the
//     kernel sends a drop takes a whole GSO packet; sockstack's TAP
//     plain and with offloads;
//   - frame: every direction loses 2% of its Ethernet frames, the
//     fair comparison (lossframe_test.go); sockstack on the plain TAP
//     (one write(2) per frame), then on AF_PACKET over a veth, the
//     kernel → kernel path's kind of link, with batched sendmmsg and
//     recvmmsg (frame/<cc>/afpacket; with INTEROP_LOSS_AF_RING set
//     also TPACKET_V3 rings, frame/<cc>/afpacket_ring,
//     lossframe_af_test.go).
//
// The medians and their ratios to kernel → kernel are logged (timings
// are benchmarks, not assertions); the test fails on a wrong hash, a
// transfer that does not end within its bound, or loss that was not
// applied as described (frame mode: not per frame, or not at the rate).
func TestInteropLossSameCC(t *testing.T) {
	t.Run("burst", lossBurst)
	t.Run("frame", lossFrame)
}

// lossBurst: the burst mode of TestInteropLossSameCC, sockstack's TAP
// opened plain and then with offloads.
func lossBurst(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "tc")
	ns2 := l.vethPair(t)
	pct := lossPct(t)
	l.lossDev(t, tapName, pct)
	l.lossDev(t, "vk0", pct)
	const size = 32 << 20
	const limit = 3 * time.Minute
	path, sum := randomFile(t, t.TempDir(), "32MiB.bin", size)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type variant struct {
		cc      string
		offload bool
	}
	// Plain first: a persistent TAP keeps the offloads an earlier
	// opener asked for (TUNSETOFFLOAD), and a plain reader after an
	// offload one got no answer to its SYN.
	vs := []variant{{"cubic", false}, {"bbr", false}, {"cubic", true}, {"bbr", true}}
	for i, v := range vs {
		cc := v.cc
		name := cc + "/plain_tap"
		if v.offload {
			name = cc + "/offload_tap"
		}
		t.Run(name, func(t *testing.T) {
			if !kernelHasCC(cc) {
				t.Skipf("the kernel has no %s congestion control (not built in, and modprobe tcp_%s did not add it): skipping the %s half", cc, cc, cc)
			}
			// A namespace may choose only among the allowed controls
			// (EPERM for cubic here); the per-socket option, which the
			// test always sets as root, works for any.
			for _, ns := range []string{l.ns, ns2} {
				if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control="+cc).CombinedOutput(); err != nil {
					t.Logf("namespaced sysctl tcp_congestion_control=%s in %s: %v %s(TCP_CONGESTION is set per socket instead)", cc, ns, err, out)
				}
			}
			opt := ",setsockopt-string=6:13:" + cc // IPPROTO_TCP, TCP_CONGESTION
			h := l.startStackTAP(tcp.Config{CongestionControl: cc}, v.offload)
			defer h.st.Close() // frees the TAP for the next half
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			// The three transfers take turns, lossRounds times, and the
			// medians are compared: other work on the machine then
			// weighs on all three alike.
			var sk, ks, kk []float64
			// Drops of sockstack's data and of the kernel's ACKs on the TAP,
			// of the kernel's data and ACKs on the veth, over all rounds (one
			// round may see a hundred ACKs only, and none of them dropped).
			var tapData, tapAcks, vethData, vethAcks int64
			for r := 0; r < lossRounds; r++ {
				port := 5301 + 10*i + 3*r

				// sockstack -> kernel.
				te0, ti0 := qdiscDrops(t, l.ns, tapName)
				before := h.st.TCP.Stats()
				d := sendHashed(t, ctx, l, h, port, cc, opt, data, sum)
				after := h.st.TCP.Stats()
				te1, ti1 := qdiscDrops(t, l.ns, tapName)
				sk = append(sk, gbps(size, d))
				t.Logf("round %d: sockstack -> kernel %.3f Gbit/s; TAP drops: data %d, ACKs %d; our fast recoveries %d, timeouts %d, TLPs %d, RACK reordering timeouts %d",
					r, gbps(size, d), ti1-ti0, te1-te0, after.FastRetrans-before.FastRetrans, after.Timeouts-before.Timeouts,
					after.TLPProbes-before.TLPProbes, after.RACKReoTimeouts-before.RACKReoTimeouts)
				tapData, tapAcks = tapData+ti1-ti0, tapAcks+te1-te0

				// kernel -> sockstack.
				got, n, d := recvFromKernelOpt(t, l, h, port+1, path, opt, limit)
				if n != size || got != sum {
					t.Fatalf("sockstack received %d bytes, SHA-256 %s", n, got)
				}
				ks = append(ks, gbps(size, d))
				t.Logf("round %d: kernel -> sockstack %.3f Gbit/s", r, gbps(size, d))

				// kernel -> kernel over the veth.
				ve0, vi0 := qdiscDrops(t, l.ns, "vk0")
				d = l.kernelHashedOverVeth(t, ctx, ns2, port+2, opt, path, sum, limit)
				ve1, vi1 := qdiscDrops(t, l.ns, "vk0")
				kk = append(kk, gbps(size, d))
				t.Logf("round %d: kernel -> kernel (veth) %.3f Gbit/s; veth drops: data %d, ACKs %d", r, gbps(size, d), ve1-ve0, vi1-vi0)
				vethData, vethAcks = vethData+ve1-ve0, vethAcks+vi1-vi0
			}
			if pct > 0 && (tapData == 0 || tapAcks == 0 || vethData == 0 || vethAcks == 0) {
				t.Errorf("loss not applied on both paths: TAP drops data %d, ACKs %d; veth drops data %d, ACKs %d", tapData, tapAcks, vethData, vethAcks)
			}
			msk, mks, mkk := median(sk), median(ks), median(kk)
			t.Logf("%s, %g%% loss each way, medians of %d: sockstack->kernel %.3f, kernel->sockstack %.3f, kernel->kernel %.3f Gbit/s; ratios to kernel->kernel %.2f / %.2f",
				name, pct, lossRounds, msk, mks, mkk, msk/mkk, mks/mkk)
		})
	}
}
