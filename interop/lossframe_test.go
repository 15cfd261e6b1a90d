package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/tcp"
)

// Frame mode of TestInteropLossSameCC: every direction of every path
// loses the same share of its Ethernet frames, as a wire would, and each
// drop happens at the receiving side of its direction:
//
//   - kernel → kernel over the veth: TSO and GSO are off on vk0, so the
//     kernel's GSO packets are cut into frames in validate_xmit_skb,
//     after the qdisc and before veth_xmit; GRO is off on both ends, so
//     an ingress qdisc sees the frames. The data is dropped at vk1's
//     ingress (second namespace), the ACKs at vk0's ingress.
//   - sockstack → kernel over the plain TAP: sockstack writes one frame
//     per segment and the TAP's ingress qdisc drops its data; the
//     kernel's ACKs are dropped in sockstack's link as they are read
//     (link.Impair on ingress).
//   - kernel → sockstack: the kernel's TAP egress still sees GSO
//     packets (a plain TAP has no TSO, so the kernel cuts them after the
//     qdisc), so its data is dropped in sockstack's link as frames are
//     read from the TAP (the same link.Impair, seeded); sockstack's ACKs
//     at the TAP's ingress.
//
// So the TAP's ingress drops what sockstack sends and the Impair what
// sockstack receives, both per frame, in both transfers. The test
// checks, and fails otherwise, that the devices passed frames (bytes
// per packet of vk0's and the TAP's link counters at most 1514 + slack:
// those count one per skb, unlike a qdisc's packet count, which counts a
// GSO packet's segments) and that each of the six drop points dropped
// its share of what it saw (within half to one and a half times the
// expected count, or four binomial standard deviations where wider: a
// drop of whole 64 KB bursts would be 40× too few).
//
// CUBIC moves 32 MiB per transfer, three rounds; BBR 128 MiB, seven
// rounds (its throughput here varies far more between transfers). The
// log gives each direction's median and range over the rounds; with
// INTEROP_LOSS_TRACE set it also samples both senders while they send
// (sockstack's tcp.Protocol.CCDebug every millisecond, the kernel's
// ss -tin every 10 ms, and the kernel sender's TcpExt counters).
//
// sockstack's TAP with offloads is not measured in this mode: its
// super-segments reach the kernel whole, and an Impair between the
// stack and the TAP declares no offloads, so the stack would cut them
// itself and the TAP would carry what the plain TAP carries.
//
// The same rounds run again with sockstack on AF_PACKET over a veth
// (lossframe_af_test.go), whose writes go in batches, where the TAP
// takes one write(2) per frame; frameRounds is the body of both, a
// frameLink says where sockstack is.

// qdiscCounts are one qdisc's counters from tc -s.
type qdiscCounts struct{ bytes, pkts, drops int64 }

func (a qdiscCounts) sub(b qdiscCounts) qdiscCounts {
	return qdiscCounts{a.bytes - b.bytes, a.pkts - b.pkts, a.drops - b.drops}
}

// ingressCounts reads the ingress qdisc of dev in ns.
func ingressCounts(t *testing.T, ns, dev string) qdiscCounts {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev, "ingress").Output()
	if err != nil {
		t.Fatalf("tc -s qdisc show dev %s ingress: %v", dev, err)
	}
	var c qdiscCounts
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "Sent %d bytes %d pkt (dropped %d,", &c.bytes, &c.pkts, &c.drops); err == nil {
			return c
		}
	}
	t.Fatalf("no counters in tc -s output for %s ingress:\n%s", dev, out)
	return c
}

// linkCounts are a device's counters, one packet per skb.
type linkCounts struct {
	rxBytes, rxPkts, txBytes, txPkts, txDropped int64
}

func (a linkCounts) sub(b linkCounts) linkCounts {
	return linkCounts{a.rxBytes - b.rxBytes, a.rxPkts - b.rxPkts, a.txBytes - b.txBytes, a.txPkts - b.txPkts, a.txDropped - b.txDropped}
}

func devCounts(t *testing.T, ns, dev string) linkCounts {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("ip -s link show %s: %v", dev, err)
	}
	var v []struct {
		Stats64 struct {
			RX struct{ Bytes, Packets int64 }          `json:"rx"`
			TX struct{ Bytes, Packets, Dropped int64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v) != 1 {
		t.Fatalf("ip -j -s link show %s: %v\n%s", dev, err, out)
	}
	s := v[0].Stats64
	return linkCounts{s.RX.Bytes, s.RX.Packets, s.TX.Bytes, s.TX.Packets, s.TX.Dropped}
}

// ingressDrop adds an ingress qdisc to dev in ns whose classic-BPF
// filter drops pct percent of what arrives, silently.
func ingressDrop(t *testing.T, ns, dev string, pct float64) {
	t.Helper()
	for _, c := range [][]string{
		{"tc", "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"},
		{"tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "prio", "1", "bpf", "bytecode", lossBPF(pct), "da"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
}

// ethtoolSet sets features of dev in ns and checks that each is off
// afterwards (ethtool -k names them by their long names).
func ethtoolSet(t *testing.T, ns, dev string, short []string, long []string) {
	t.Helper()
	args := []string{"netns", "exec", ns, "ethtool", "-K", dev}
	for _, f := range short {
		args = append(args, f, "off")
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K %s: %v: %s", dev, err, out)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", dev).Output()
	if err != nil {
		t.Fatalf("ethtool -k %s: %v", dev, err)
	}
	for _, name := range long {
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == name+":" {
				found = true
				if f[1] != "off" {
					t.Fatalf("%s: %s is %s after ethtool -K ... off", dev, name, f[1])
				}
			}
		}
		if !found {
			t.Fatalf("%s: ethtool -k does not list %s:\n%s", dev, name, out)
		}
	}
}

// maxFrameAvg is the most bytes per packet a device's counters may show
// for frames of a 1500-byte MTU (1514 with the Ethernet header) before
// the test calls them bursts.
const maxFrameAvg = 1600

// dropShare checks that a drop point dropped its share of what it saw.
func dropShare(t *testing.T, what string, seen, dropped int64, pct float64) {
	t.Helper()
	if pct == 0 {
		if dropped != 0 {
			t.Errorf("%s: %d drops without loss", what, dropped)
		}
		return
	}
	// Half the expected count either way, or four standard deviations
	// of the binomial count where that is wider (small counts, at a
	// small INTEROP_LOSS_PCT): whole-burst drops fall far below.
	want := pct / 100 * float64(seen)
	tol := max(want/2, 4*math.Sqrt(want))
	if seen == 0 || math.Abs(float64(dropped)-want) > tol || dropped == 0 && want >= 5 {
		t.Errorf("%s: %d of %d frames dropped (%.2f%%), want about %g%%: not per-frame loss", what, dropped, seen, 100*float64(dropped)/float64(max(seen, 1)), pct)
	}
}

func avg(bytes, pkts int64) float64 { return float64(bytes) / float64(max(pkts, 1)) }

// frameLink is sockstack's side of a frame-mode path: its link, the
// kernel's end of it in the lab namespace (kdev: its ingress qdisc drops
// what sockstack sends, its rx and tx counters count sockstack's frames
// and the kernel's), and the addresses of both ends.
type frameLink struct {
	name         string // subtest name: plain_tap, afpacket, ...
	kdev         string
	kaddr, saddr netip.Addr
	port         int // first port of the link's transfers
	// start runs a stack with TCP configuration tc on the link, with
	// the Impair ic between them.
	start func(tc tcp.Config, ic link.ImpairConfig) (*host, *link.Impair)
	// writeCalls, when set, counts the link's write system calls (how
	// many frames each carried is then logged).
	writeCalls func(h *host) uint64
}

// frameCCs are the congestion controls of frame mode, in order.
var frameCCs = []string{"cubic", "bbr"}

func lossFrame(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "tc", "ethtool")
	ns2 := l.vethPair(t)
	pct := lossPct(t)
	// The kernel cuts its GSO packets before veth_xmit; neither end
	// merges what it receives.
	ethtoolSet(t, l.ns, "vk0", []string{"tso", "gso", "gro"},
		[]string{"tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"})
	ethtoolSet(t, ns2, "vk1", []string{"gro"}, []string{"generic-receive-offload"})
	ingressDrop(t, ns2, "vk1", pct)    // kernel → kernel data
	ingressDrop(t, l.ns, "vk0", pct)   // kernel → kernel ACKs
	ingressDrop(t, l.ns, tapName, pct) // what sockstack sends
	dir := t.TempDir()
	tap := frameLink{name: "plain_tap", kdev: tapName, kaddr: kernelIP, saddr: stackIP, port: 5401,
		start: func(tc tcp.Config, ic link.ImpairConfig) (*host, *link.Impair) { return l.startStackImpaired(tc, ic) },
		writeCalls: func(h *host) uint64 {
			return h.nic.Endpoint().(*link.Impair).Inner().(*link.TAP).WriteCalls()
		}}
	for i, cc := range frameCCs {
		t.Run(cc+"/"+tap.name, func(t *testing.T) { frameRounds(t, l, ns2, dir, tap, i, cc, pct) })
	}
	lossFrameAF(t, l, ns2, dir, pct) // lossframe_af_test.go
}

// frameRounds runs frame mode's rounds for congestion control cc (the
// i-th of frameCCs) with sockstack on fl: sockstack → kernel, kernel →
// sockstack, then kernel → kernel over the veth to ns2, in turn.
func frameRounds(t *testing.T, l *lab, ns2, dir string, fl frameLink, i int, cc string, pct float64) {
	if !kernelHasCC(cc) {
		t.Skipf("the kernel has no %s congestion control (not built in, and modprobe tcp_%s did not add it): skipping the %s half", cc, cc, cc)
	}
	const limit = 3 * time.Minute
	opt := ",setsockopt-string=6:13:" + cc // IPPROTO_TCP, TCP_CONGESTION
	// BBR's throughput under per-frame loss varies from one transfer to
	// the next far more than CUBIC's (32 MiB took 0.3 s, and the medians
	// of three such moved by ±30%; a round now and then runs at half
	// speed, in every direction, when the kernel's receiving socat falls
	// behind on this machine's two busy cores and closes its window):
	// longer transfers, more rounds, about 25 s in all.
	size, rounds := int64(32<<20), lossRounds
	if cc == "bbr" {
		size, rounds = 128<<20, 7
	}
	path, sum := randomFile(t, dir, fmt.Sprintf("%s-%s-%dMiB.bin", cc, fl.name, size>>20), size)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	trace := os.Getenv("INTEROP_LOSS_TRACE") != ""
	// What sockstack receives loses pct percent of its frames in
	// sockstack's link, seeded.
	h, im := fl.start(tcp.Config{CongestionControl: cc},
		link.ImpairConfig{Seed: int64(1 + i), Loss: pct / 100, Apply: link.ImpairIngress})
	defer h.st.Close() // frees the link for the next half
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var sk, ks, kk, skCPU, ksCPU, skM, ksM, kkM []float64
	// Over all rounds: what each drop point saw and dropped.
	var skData, skAcks, ksData, ksAcks, kkData, kkAcks [2]int64
	var skLink, ksLink, kkLink linkCounts
	var txFrames, txCalls uint64
	for r := 0; r < rounds; r++ {
		port := fl.port + 10*i + 3*r

		// sockstack -> kernel: data at kdev's ingress, ACKs in the
		// Impair.
		q0, l0, i0 := ingressCounts(t, l.ns, fl.kdev), devCounts(t, l.ns, fl.kdev), im.Ingress.Snapshot()
		before := h.st.TCP.Stats()
		f0, w0 := h.nic.Endpoint().Stats().TxFrames.Load(), uint64(0)
		if fl.writeCalls != nil {
			w0 = fl.writeCalls(h)
		}
		c0, m0 := cpuNow(t), machineBusy(t)
		var stop func() string
		if trace {
			stop = sampleStack(h, fl.kaddr, port)
		}
		d := sendHashedTo(t, ctx, l, h, fl.kaddr, port, cc, opt, data, sum)
		if trace {
			t.Logf("round %d: sockstack -> kernel, sockstack's sender sampled: %s", r, stop())
		}
		after := h.st.TCP.Stats()
		cpu, mcpu := c0.since(t, size), machineBusy(t).perGiB(m0, size)
		batch := ""
		if fl.writeCalls != nil {
			f, w := h.nic.Endpoint().Stats().TxFrames.Load()-f0, fl.writeCalls(h)-w0
			txFrames, txCalls = txFrames+f, txCalls+w
			batch = fmt.Sprintf("; %d frames written in %d system calls (%.2f each)", f, w, float64(f)/float64(max(w, 1)))
		}
		q, lc, i1 := ingressCounts(t, l.ns, fl.kdev).sub(q0), devCounts(t, l.ns, fl.kdev).sub(l0), im.Ingress.Snapshot()
		sk, skCPU, skM = append(sk, gbps(size, d)), append(skCPU, cpu.total), append(skM, mcpu)
		skData[0], skData[1] = skData[0]+q.pkts, skData[1]+q.drops
		skAcks[0], skAcks[1] = skAcks[0]+int64(i1.Frames-i0.Frames), skAcks[1]+int64(i1.Dropped-i0.Dropped)
		skLink = skLink.add(lc)
		t.Logf("round %d: sockstack -> kernel %.3f Gbit/s; sockstack %.2f CPU s/GiB, machine %.2f busy CPU s/GiB; data frames %d (%.0f B each), dropped %d; ACK frames %d (%.0f B each), dropped %d; our fast recoveries %d, timeouts %d, TLPs %d, RACK reordering timeouts %d, retransmitted segments %d, D-SACKs received %d, lost retransmissions %d, DSACK undos %d%s",
			r, gbps(size, d), cpu.total, mcpu, q.pkts, avg(lc.rxBytes, lc.rxPkts), q.drops, i1.Frames-i0.Frames, avg(lc.txBytes, lc.txPkts), i1.Dropped-i0.Dropped,
			after.FastRetrans-before.FastRetrans, after.Timeouts-before.Timeouts, after.TLPProbes-before.TLPProbes,
			after.RACKReoTimeouts-before.RACKReoTimeouts, after.RetransSegs-before.RetransSegs, after.DSACKsRecv-before.DSACKsRecv,
			after.LostRetransmit-before.LostRetransmit, after.DSACKUndo-before.DSACKUndo, batch)

		// kernel -> sockstack: data in the Impair, ACKs at kdev's
		// ingress.
		q0, l0, i0 = ingressCounts(t, l.ns, fl.kdev), devCounts(t, l.ns, fl.kdev), im.Ingress.Snapshot()
		c0, m0 = cpuNow(t), machineBusy(t)
		held0 := h.st.TCP.Stats().AcksHeld
		got, n, d := recvHashedAt(t, l, h, fl.saddr, port+1, path, opt, limit)
		held := h.st.TCP.Stats().AcksHeld - held0
		cpu, mcpu = c0.since(t, size), machineBusy(t).perGiB(m0, size)
		if n != size || got != sum {
			t.Fatalf("sockstack received %d bytes, SHA-256 %s", n, got)
		}
		q, lc, i1 = ingressCounts(t, l.ns, fl.kdev).sub(q0), devCounts(t, l.ns, fl.kdev).sub(l0), im.Ingress.Snapshot()
		ks, ksCPU, ksM = append(ks, gbps(size, d)), append(ksCPU, cpu.total), append(ksM, mcpu)
		ksData[0], ksData[1] = ksData[0]+int64(i1.Frames-i0.Frames), ksData[1]+int64(i1.Dropped-i0.Dropped)
		ksAcks[0], ksAcks[1] = ksAcks[0]+q.pkts, ksAcks[1]+q.drops
		ksLink = ksLink.add(lc)
		t.Logf("round %d: kernel -> sockstack %.3f Gbit/s; sockstack %.2f CPU s/GiB, machine %.2f busy CPU s/GiB; data frames %d (%.0f B each), dropped %d; ACK frames %d (%.0f B each), dropped %d; %s tx_dropped %d; ACKs of a hole held for the next batch %d",
			r, gbps(size, d), cpu.total, mcpu, i1.Frames-i0.Frames, avg(lc.txBytes, lc.txPkts), i1.Dropped-i0.Dropped, q.pkts, avg(lc.rxBytes, lc.rxPkts), q.drops, fl.kdev, lc.txDropped, held)
		// The Impair passes the fd link's idle calls on (link.IdleReceiver),
		// so TCP may hold a hole's ACK until the link has read what it
		// has: with a hole in every fiftieth frame some are held. Without
		// the calls the stack never learns it may, and holds none.
		if held == 0 && i1.Dropped > i0.Dropped {
			t.Errorf("round %d: %d of the kernel's frames dropped, no ACK of a hole held: the idle calls did not reach the stack through the Impair", r, i1.Dropped-i0.Dropped)
		}

		// kernel -> kernel over the veth: data at vk1's ingress, ACKs
		// at vk0's.
		qd0, qa0, l0 := ingressCounts(t, ns2, "vk1"), ingressCounts(t, l.ns, "vk0"), devCounts(t, l.ns, "vk0")
		var ext0 map[string]int64
		if trace {
			stop = sampleSS(l.ns, port+2)
			ext0 = tcpExt(t, l.ns)
		}
		m0 = machineBusy(t)
		d = l.kernelHashedOverVeth(t, ctx, ns2, port+2, opt, path, sum, limit)
		mcpu = machineBusy(t).perGiB(m0, size)
		if trace {
			t.Logf("round %d: kernel -> kernel, the kernel's sender sampled (ss -tin): %s", r, stop())
			t.Logf("round %d: kernel -> kernel, the sender's namespace TcpExt: %s", r, extDelta(ext0, tcpExt(t, l.ns)))
		}
		qd, qa, lc := ingressCounts(t, ns2, "vk1").sub(qd0), ingressCounts(t, l.ns, "vk0").sub(qa0), devCounts(t, l.ns, "vk0").sub(l0)
		kk, kkM = append(kk, gbps(size, d)), append(kkM, mcpu)
		kkData[0], kkData[1] = kkData[0]+qd.pkts, kkData[1]+qd.drops
		kkAcks[0], kkAcks[1] = kkAcks[0]+qa.pkts, kkAcks[1]+qa.drops
		kkLink = kkLink.add(lc)
		t.Logf("round %d: kernel -> kernel (veth) %.3f Gbit/s; machine %.2f busy CPU s/GiB; data frames %d (%.0f B each through veth_xmit, %.0f at the ingress), dropped %d; ACK frames %d, dropped %d",
			r, gbps(size, d), mcpu, qd.pkts, avg(lc.txBytes, lc.txPkts), avg(qd.bytes, qd.pkts), qd.drops, qa.pkts, qa.drops)
	}
	// Per frame: one skb per frame where the devices count them.
	for _, c := range []struct {
		what        string
		bytes, pkts int64
	}{
		{"sockstack's data frames received on " + fl.kdev, skLink.rxBytes, skLink.rxPkts},
		{"the kernel's data frames sent on " + fl.kdev, ksLink.txBytes, ksLink.txPkts},
		{"the kernel's data through veth_xmit", kkLink.txBytes, kkLink.txPkts},
	} {
		if a := avg(c.bytes, c.pkts); a > maxFrameAvg || c.pkts == 0 {
			t.Errorf("%s: %d packets of %.0f bytes on average: not frames", c.what, c.pkts, a)
		}
	}
	if fl.writeCalls != nil && (txCalls == 0 || txCalls > txFrames) {
		t.Errorf("sockstack's link wrote %d frames in %d system calls", txFrames, txCalls)
	}
	dropShare(t, "sockstack -> kernel data ("+fl.kdev+" ingress)", skData[0], skData[1], pct)
	dropShare(t, "sockstack -> kernel ACKs (Impair)", skAcks[0], skAcks[1], pct)
	dropShare(t, "kernel -> sockstack data (Impair)", ksData[0], ksData[1], pct)
	dropShare(t, "kernel -> sockstack ACKs ("+fl.kdev+" ingress)", ksAcks[0], ksAcks[1], pct)
	dropShare(t, "kernel -> kernel data (vk1 ingress)", kkData[0], kkData[1], pct)
	dropShare(t, "kernel -> kernel ACKs (vk0 ingress)", kkAcks[0], kkAcks[1], pct)
	msk, mks, mkk := median(sk), median(ks), median(kk)
	t.Logf("frame/%s/%s, %d MiB, %g%% of frames lost each way, medians (min-max) of %d: sockstack->kernel %s, kernel->sockstack %s, kernel->kernel %s Gbit/s; ratios of medians to kernel->kernel %.2f / %.2f; sockstack's CPU s/GiB %s / %s; machine's busy CPU s/GiB %s / %s / %s",
		cc, fl.name, size>>20, pct, rounds, spread(sk), spread(ks), spread(kk), msk/mkk, mks/mkk,
		spread(skCPU), spread(ksCPU), spread(skM), spread(ksM), spread(kkM))
}

// sendHashedTo sends data from sockstack to a kernel socat at
// kaddr:port that hashes it, with congestion control cc on both ends,
// and returns the time from connect to the kernel's hash.
func sendHashedTo(t *testing.T, ctx context.Context, l *lab, h *host, kaddr netip.Addr, port int, cc, opt string, data []byte, sum string) time.Duration {
	t.Helper()
	done, out := hashSink(t, ctx, l.ns, port, opt)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetSockOpt(socket.SOL_TCP, socket.TCP_CONGESTION, cc); err != nil {
		t.Fatalf("TCP_CONGESTION %s: %v", cc, err)
	}
	s.SetTimeout(3 * time.Minute)
	start := time.Now()
	if err := s.Connect(socket.InetAddr(netip.AddrPortFrom(kaddr, uint16(port)))); err != nil {
		t.Fatal(err)
	}
	if err := s.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	s.Shutdown(socket.SHUT_WR)
	if err := <-done; err != nil {
		t.Fatalf("kernel side: %v\n%s", err, out.String())
	}
	d := time.Since(start)
	if got := strings.Fields(out.String() + " x")[0]; got != sum {
		t.Fatalf("kernel received SHA-256 %s, sent %s", got, sum)
	}
	return d
}

// recvHashedAt listens on sockstack's port, has the kernel's socat send
// the file at path to saddr:port (opt: socat address options, may be
// empty), and returns the SHA-256 of what arrived, its length and the
// time.
func recvHashedAt(t *testing.T, l *lab, h *host, saddr netip.Addr, port int, path, opt string, limit time.Duration) (string, int64, time.Duration) {
	t.Helper()
	ls := listenTCP(t, h, port)
	defer ls.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := l.cmd(ctx, "socat", "-u", "OPEN:"+path, fmt.Sprintf("TCP:%v:%d%s", saddr, port, opt))
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	done := startCmd(t, c)
	start := time.Now()
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer conn.Close()
	conn.SetTimeout(limit)
	got, total := recvHashed(t, conn)
	d := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("kernel socat: %v\n%s", err, out.String())
	}
	return got, total, d
}

// recvHashed reads conn to its end and returns the SHA-256 (hex) of what
// came and its length; a receive error ends the test.
// listenTCP is a TCP listener of h on port (any address), whose Accept
// waits at most 10 s.
func listenTCP(t *testing.T, h *host, port int) *socket.Socket {
	t.Helper()
	ls, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		ls.Close()
		t.Fatalf("bind port %d: %v", port, err)
	}
	if err := ls.Listen(1); err != nil {
		ls.Close()
		t.Fatal(err)
	}
	ls.SetTimeout(10 * time.Second)
	return ls
}

func recvHashed(t *testing.T, conn *socket.Socket) (string, int64) {
	t.Helper()
	hs := sha256.New()
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := conn.Recv(buf, 0)
		if err != nil {
			t.Fatalf("recv after %d bytes: %v", total, err)
		}
		if n == 0 {
			return hex.EncodeToString(hs.Sum(nil)), total
		}
		hs.Write(buf[:n])
		total += int64(n)
	}
}

func (a linkCounts) add(b linkCounts) linkCounts {
	return linkCounts{a.rxBytes + b.rxBytes, a.rxPkts + b.rxPkts, a.txBytes + b.txBytes, a.txPkts + b.txPkts, a.txDropped + b.txDropped}
}

// spread is "median (min-max)" of v.
func spread(v []float64) string {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.3f (%.3f-%.3f)", median(v), lo, hi)
}

// series collects named samples and prints each as median (min-max).
type series struct {
	mu    sync.Mutex
	n     int
	v     map[string][]float64
	names []string
}

func (s *series) add(k string, x float64) {
	if s.v == nil {
		s.v = map[string][]float64{}
	}
	if _, ok := s.v[k]; !ok {
		s.names = append(s.names, k)
	}
	s.v[k] = append(s.v[k], x)
}

func (s *series) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples:", s.n)
	for _, k := range s.names {
		v := s.v[k]
		lo, hi := v[0], v[0]
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		fmt.Fprintf(&b, " %s %.4g (%.4g-%.4g);", k, median(v), lo, hi)
	}
	return b.String()
}

// sample calls f every period until the returned stop is called, which
// returns the summary (INTEROP_LOSS_TRACE: where each sender spends its
// time, for BENCHMARKS.md).
func sample(period time.Duration, f func(*series)) func() string {
	s := &series{}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
				s.mu.Lock()
				f(s)
				s.mu.Unlock()
			}
		}
	}()
	return func() string {
		close(quit)
		<-done
		return s.String()
	}
}

// sampleStack samples sockstack's sender to the kernel's kaddr:port.
func sampleStack(h *host, kaddr netip.Addr, port int) func() string {
	return sample(time.Millisecond, func(s *series) {
		for _, d := range h.st.TCP.CCDebug() {
			if int(d.Remote.Port()) != port || d.Remote.Addr() != kaddr {
				continue
			}
			s.n++
			b2f := func(b bool) float64 {
				if b {
					return 1
				}
				return 0
			}
			s.add("cwnd_segs", float64(d.Cwnd)/1448)
			s.add("inflight_segs", float64(d.InFlight)/1448)
			s.add("outstanding_segs", float64(d.Outstanding)/1448)
			s.add("snd_wnd_segs", float64(d.SndWnd)/1448)
			s.add("unsent_segs", float64(d.Unsent)/1448)
			s.add("rwnd_limited", b2f(d.Outstanding+1448 > d.SndWnd))
			s.add("cwnd_limited", b2f(d.InFlight+1448 > d.Cwnd))
			s.add("pace_held", b2f(d.PaceHeld))
			s.add("pacing_gbps", float64(d.PacingRate)*8/1e9)
			s.add("bbr_bw_gbps", float64(d.BBRBW)*8/1e9)
			s.add("bbr_mrtt_us", float64(d.BBRMinRTT.Microseconds()))
			s.add("srtt_us", float64(d.SRTT.Microseconds()))
			s.add("pacing_gain", d.BBRPacingGain)
			s.add("extra_acked_segs", float64(d.BBRExtraAcked)/1448)
			s.add("in_recovery", b2f(d.InRecovery))
			s.add("conservation", b2f(d.PacketConservation))
			s.add("lost_segs", float64(d.LostBytes)/1448)
			s.add("sacked_segs", float64(d.Sacked)/1448)
			s.add("reo_wnd_us", float64(d.ReoWnd.Microseconds()))
			s.add("reord_seen", b2f(d.ReorderingSeen))
			s.add("probe_bw", b2f(d.BBRMode == "PROBE_BW"))
		}
	})
}

// sampleSS samples the kernel's sender in ns to 10.78.0.2:port with
// ss -tin.
func sampleSS(ns string, port int) func() string {
	return sample(10*time.Millisecond, func(s *series) {
		out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-tinH", "dst", "10.78.0.2", "dport", "=", fmt.Sprint(port)).Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			return
		}
		f := strings.Fields(string(out))
		num := func(v string) (float64, bool) {
			mult := 1.0
			v, _, _ = strings.Cut(v, "(") // rwnd_limited:10ms(5.0%)
			switch {
			case strings.HasSuffix(v, "Gbps"):
				v, mult = strings.TrimSuffix(v, "Gbps"), 1
			case strings.HasSuffix(v, "Mbps"):
				v, mult = strings.TrimSuffix(v, "Mbps"), 1e-3
			case strings.HasSuffix(v, "Kbps"):
				v, mult = strings.TrimSuffix(v, "Kbps"), 1e-6
			case strings.HasSuffix(v, "bps"):
				v, mult = strings.TrimSuffix(v, "bps"), 1e-9
			case strings.HasSuffix(v, "ms"):
				v, mult = strings.TrimSuffix(v, "ms"), 1000 // µs
			}
			x, err := strconv.ParseFloat(v, 64)
			return x * mult, err == nil
		}
		s.n++
		seen := map[string]bool{}
		for i, w := range f {
			if (w == "pacing_rate" || w == "delivery_rate") && i+1 < len(f) {
				if x, ok := num(f[i+1]); ok {
					s.add(w+"_gbps", x)
				}
				continue
			}
			w = strings.TrimPrefix(strings.TrimSuffix(w, ")"), "bbr:(")
			for _, kv := range strings.Split(w, ",") {
				k, v, ok := strings.Cut(kv, ":")
				if !ok {
					continue
				}
				switch k {
				case "rtt", "retrans": // rtt:avg/var, retrans:now/total
					a, b, _ := strings.Cut(v, "/")
					if k == "rtt" {
						v = a
						k = "rtt_ms"
					} else {
						v = b
					}
				case "bw":
					k = "bbr_bw_gbps"
				case "mrtt":
					k = "bbr_mrtt_ms"
				case "minrtt":
					k = "minrtt_ms"
				case "busy", "rwnd_limited", "sndbuf_limited":
					k += "_us"
				case "cwnd", "unacked", "sacked", "lost", "reordering", "reord_seen", "pacing_gain", "cwnd_gain", "dsack_dups", "notsent", "snd_wnd", "rcv_space", "app_limited":
				default:
					continue
				}
				if x, ok := num(v); ok && !seen[k] {
					seen[k] = true
					s.add(k, x)
				}
			}
		}
	})
}

// tcpExt reads the TcpExt counters of namespace ns.
func tcpExt(t *testing.T, ns string) map[string]int64 {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").Output()
	if err != nil {
		t.Fatalf("/proc/net/netstat in %s: %v", ns, err)
	}
	m := map[string]int64{}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		k, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(k) == 0 || k[0] != "TcpExt:" || len(k) != len(v) {
			continue
		}
		for j := 1; j < len(k); j++ {
			n, _ := strconv.ParseInt(v[j], 10, 64)
			m[k[j]] = n
		}
	}
	return m
}

// extDelta lists the loss-recovery counters that moved.
func extDelta(a, b map[string]int64) string {
	var s []string
	for _, k := range []string{"TCPLossProbes", "TCPLossProbeRecovery", "TCPSackRecovery", "TCPFastRetrans", "TCPLostRetransmit",
		"TCPSACKReorder", "TCPRenoReorder", "TCPTSReorder", "TCPDSACKRecv", "TCPDSACKRecvSegments", "TCPDSACKUndo", "TCPSpuriousRTOs",
		"TCPTimeouts", "TCPLossFailures", "TCPSackFailures", "TCPRetransFail", "TCPSpuriousRtxHostQueues", "TCPOFOQueue", "TCPOFODrop", "PruneCalled", "RcvPruned", "OfoPruned"} {
		if d := b[k] - a[k]; d != 0 {
			s = append(s, fmt.Sprintf("%s %d", k, d))
		}
	}
	return strings.Join(s, ", ")
}

// machineBusy is the CPU time the whole machine spent busy (every
// core, every process, interrupts included) from /proc/stat, in clock
// ticks: on a machine of two cores the lossy transfers are bound by it
// (sender, the kernel's receive path, socat and sha256sum together),
// and its cost per GiB compares one sender's whole path with the
// other's, other load on the machine included.
type busyTicks int64

func machineBusy(t *testing.T) busyTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("/proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var n int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		n += x
	}
	return busyTicks(n)
}

// perGiB is the busy CPU seconds since b0 per GiB of n bytes (USER_HZ
// is 100 on Linux).
func (b busyTicks) perGiB(b0 busyTicks, n int64) float64 {
	return float64(b-b0) / 100 / (float64(n) / (1 << 30))
}
