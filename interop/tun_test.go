package interop

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// The stack on a layer 3 TUN device, as VPNs and tun2socks run it: no
// Ethernet, no ARP or neighbor discovery, bare IPv4 and IPv6 packets,
// with the kernel on the other side of the device. The lab's TAP is
// replaced by a TUN of the same name, so the TAP tests' helpers (the
// kernel at 10.77.0.1 and fd00:77::1, sockstack at 10.77.0.2 and
// fd00:77::2) work unchanged.

// tunLab makes the lab's device a TUN and starts a stack on it, with
// the device's offloads (virtio-net headers) when offload is set.
func tunLab(t *testing.T, offload bool) (*lab, *host) {
	t.Helper()
	l := newLabIPv6(t, true)
	for _, s := range [][]string{
		{"ip", "-n", l.ns, "link", "del", tapName},
		{"ip", "-n", l.ns, "tuntap", "add", "dev", tapName, "mode", "tun"},
		{"ip", "-n", l.ns, "addr", "add", kernelCIDR, "dev", tapName},
		{"ip", "-n", l.ns, "link", "set", tapName, "up"},
		{"ip", "-n", l.ns, "-6", "addr", "add", kernel6.String() + "/64", "dev", tapName, "nodad"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	tun, err := link.OpenTUN(tapName, link.TAPOptions{Netns: l.ns, Offload: offload, NoIOURing: *noIOURing})
	if err != nil {
		t.Fatal(err)
	}
	if tun.Kind() != link.KindIP {
		t.Fatalf("OpenTUN gave a device of kind %d", tun.Kind())
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, tun)
	t.Cleanup(st.Close)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.AddAddress(netip.PrefixFrom(stack6, 64)); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, h.nic)
	if offload {
		t.Logf("TUNSETOFFLOAD flags taken: %#x", tun.OffloadFlags())
	}
	return l, h
}

// TestInteropTUN: over a TUN, plain and with offloads: the kernel pings
// sockstack over IPv4 and IPv6, and 64 MiB go each way over TCP on both
// families, compared by SHA-256. With offloads the super-segments must
// cross the device whole both ways; on either the kernel must count no
// checksum error (the lab's cleanup checks) and no frame may be dropped
// as malformed.
func TestInteropTUN(t *testing.T) {
	for _, offload := range []bool{false, true} {
		name := "plain"
		if offload {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			needTools(t, "socat", "sha256sum", "ss", "ping")
			l, h := tunLab(t, offload)
			l.run(t, 10*time.Second, nil, "ping", "-c", "2", "-W", "5", stackIP.String())
			l.run(t, 10*time.Second, nil, "ping", "-6", "-c", "2", "-W", "5", stack6.String())
			const size = 64 << 20
			path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
			if got, d := sendToKernel(t, l, h, 5201, path, 2*time.Minute); got != sum {
				t.Fatalf("IPv4: kernel received SHA-256 %s, sent %s", got, sum)
			} else {
				t.Logf("64 MiB sockstack -> kernel, IPv4: %.2f Gbit/s", gbps(size, d))
			}
			if got, n, d := recvFromKernel(t, l, h, 5202, path, 2*time.Minute); n != size || got != sum {
				t.Fatalf("IPv4: sockstack received %d bytes, SHA-256 %s; kernel sent %d, %s", n, got, size, sum)
			} else {
				t.Logf("64 MiB kernel -> sockstack, IPv4: %.2f Gbit/s", gbps(size, d))
			}
			for _, toKernel := range []bool{true, false} {
				start := time.Now()
				if got := bulk6(t, l, h, 5203, path, toKernel); got != sum {
					t.Fatalf("IPv6 (to the kernel: %v): SHA-256 %s, sent %s", toKernel, got, sum)
				}
				t.Logf("64 MiB over IPv6, sockstack to the kernel %v: %.2f Gbit/s", toKernel, gbps(size, time.Since(start)))
			}
			ls := &h.st.Stats().Link
			t.Logf("super-segments sent whole %d, cut in software %d, received whole %d, coalesced %d from %d, bad offload %d",
				ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InGROSegs.Load(), ls.InBadOffload.Load())
			if ls.InBadOffload.Load() != 0 {
				t.Error("packets with malformed offload state")
			}
			if offload && (ls.OutGSOFrames.Load() == 0 || ls.InGSOFrames.Load() == 0) {
				t.Error("super-segments did not cross the TUN whole both ways")
			}
			if !offload && (ls.OutGSOFrames.Load() != 0 || ls.InGSOFrames.Load() != 0) {
				t.Error("super-segments on a TUN without offloads")
			}
			if d := h.nic.Endpoint().Stats().Snapshot(); d.RxDropped != 0 {
				t.Errorf("the TUN endpoint dropped %d packets on receive", d.RxDropped)
			}
			l.check6Errors(t)
		})
	}
}

// TestInteropTUNThroughput: one TCP connection each way, sockstack on a
// TUN with offloads against the kernel, next to the kernel against
// itself over a veth pair in the same run, under each congestion
// control of throughputCCs (throughputVsKernel). Figures only.
func TestInteropTUNThroughput(t *testing.T) {
	needTools(t, "socat", "ss")
	l, h := tunLab(t, true)
	throughputVsKernel(t, l, h, "TUN, offloads", kernelIP.String(), stackIP.String(), 5204)
}

// TestInteropUpTUN: `sockstack up --tun` with offloads and both
// families on a TUN the test made: the kernel pings it over IPv4 and
// IPv6 and downloads a file from its HTTP service over each, compared by
// SHA-256; its capture is raw IP (LINKTYPE_RAW) and tshark decodes the
// pings and the TCP in it. A name that is not a TUN is refused.
func TestInteropUpTUN(t *testing.T) {
	needTools(t, "ping", "curl", "tshark")
	l := newLabIPv6(t, true)
	for _, s := range [][]string{
		{"ip", "-n", l.ns, "tuntap", "add", "dev", "tun7", "mode", "tun"},
		{"ip", "-n", l.ns, "addr", "add", "10.97.0.1/24", "dev", "tun7"},
		{"ip", "-n", l.ns, "link", "set", "tun7", "up"},
		{"ip", "-n", l.ns, "-6", "addr", "add", "fd00:97::1/64", "dev", "tun7", "nodad"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// The lab's TAP is not a TUN: up says so and does not start.
	if out, err := l.sockstack(t, 30*time.Second, nil, "up", "--netns", l.ns, "--tun", tapName, "--addr", "10.77.0.2/24"); err == nil || !strings.Contains(out, "TUN "+tapName) {
		t.Fatalf("up --tun on a TAP: err %v, output:\n%s", err, out)
	}
	dir := t.TempDir()
	_, sum := randomFile(t, dir, "4MiB.bin", 4<<20)
	pcap := dir + "/up.pcap"
	u := startUp(t, dir, "--netns", l.ns, "--tun", "tun7", "--offload", "--addr", "10.97.0.2/24,fd00:97::2/64",
		"--serve", "http", "--root", dir, "--pcap", pcap)
	if out := u.output(); !strings.Contains(out, "TUN tun7") {
		t.Errorf("the banner does not name the TUN:\n%s", out)
	}
	l.waitUntil(t, "the kernel pings up over IPv6 (its address leaves DAD)", func() bool {
		_, err := l.try(5*time.Second, nil, "ping", "-6", "-c", "1", "-W", "1", "fd00:97::2")
		return err == nil
	})
	l.run(t, 10*time.Second, nil, "ping", "-c", "2", "-W", "5", "10.97.0.2")
	for _, url := range []string{"http://10.97.0.2/4MiB.bin", "http://[fd00:97::2]/4MiB.bin"} {
		dst := t.TempDir() + "/got.bin"
		l.run(t, time.Minute, nil, "curl", "-sS", "--max-time", "50", "-o", dst, url)
		if got := fileHash(t, dst); got != sum {
			t.Fatalf("curl %s: SHA-256 %s, want %s", url, got, sum)
		}
	}
	u.stop(t)
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.protocols").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	for _, want := range []string{"raw:ip:icmp", "raw:ipv6:icmpv6", "raw:ip:tcp:http", "raw:ipv6:tcp:http"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the capture has no %s packet; tshark saw:\n%s", want, firstLines(string(out), 20))
		}
	}
}

// firstLines is s cut to its first n lines.
func firstLines(s string, n int) string {
	ls := strings.SplitN(s, "\n", n+1)
	return strings.Join(ls[:min(n, len(ls))], "\n")
}
