package interop

import (
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

// UDP segmentation offload over an AF_PACKET socket with virtio-net
// headers (PACKET_VNET_HDR) on a veth: the AF_PACKET twin of the TAP's
// USO tests (uso_test.go). sockstack is 10.88.0.2 on vu1, in a namespace
// (and fd00:88::2) of its own whose kernel has no address there; the
// kernel is 10.88.0.1 (fd00:88::1) on vu0 in the lab namespace.
var (
	afuStack   = netip.MustParsePrefix("10.88.0.2/24")
	afuKernel  = netip.MustParseAddr("10.88.0.1")
	afuStack6  = netip.MustParsePrefix("fd00:88::2/64")
	afuKernel6 = netip.MustParseAddr("fd00:88::1")
)

func startAFPacketUSO(t *testing.T, l *lab, ring bool, opts stack.Options) (*host, *link.AFPacket) {
	t.Helper()
	ns2 := l.ns + "-pu"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns2).Run() })
	for _, s := range [][]string{
		{"ip", "netns", "add", ns2},
		{"ip", "-n", l.ns, "link", "add", "vu0", "type", "veth", "peer", "name", "vu1", "netns", ns2},
		{"ip", "netns", "exec", ns2, "sysctl", "-q", "-w", "net.ipv6.conf.vu1.disable_ipv6=1"},
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf.vu0.accept_dad=0"},
		{"ip", "-n", l.ns, "addr", "add", afuKernel.String() + "/24", "dev", "vu0"},
		{"ip", "-n", l.ns, "-6", "addr", "add", afuKernel6.String() + "/64", "dev", "vu0", "nodad"},
		{"ip", "-n", l.ns, "link", "set", "vu0", "up"},
		{"ip", "-n", ns2, "link", "set", "vu1", "up"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", l.ns, "ethtool", "-k", "vu0").CombinedOutput(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "udp-segmentation") || strings.Contains(line, "udp-gro") || strings.Contains(line, "generic-receive") {
				t.Logf("vu0 %s", strings.TrimSpace(line))
			}
		}
	}
	ep, err := link.OpenAFPacket("vu1", link.AFPacketOptions{Netns: ns2, Offload: true, QdiscBypass: true, Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("AF_PACKET offloads: %+v", ep.Offloads())
	opts.Name = "sockstack"
	opts.DADTransmits = -1
	st := stack.New(opts)
	t.Cleanup(st.Close)
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC("vu1", ep)
	if err := h.nic.AddAddress(afuStack); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.AddAddress(afuStack6); err != nil {
		t.Fatal(err)
	}
	return h, ep
}

// TestInteropAFPacketUSO: over AF_PACKET with offloads, sockstack's
// UDP_SEGMENT sends (100 of 20 datagrams of 1200 bytes) leave as one
// GSO_UDP_L4 frame each and the kernel's receiver gets all 2000
// datagrams intact; the kernel's UDP_SEGMENT sends come to sockstack as
// GSO_UDP_L4 frames (fewer frames than datagrams) and a UDP_GRO socket
// reads each send whole.
// Both ways of moving frames (recvmmsg/sendmmsg, TPACKET_V3 rings), IPv4
// and IPv6.
func TestInteropAFPacketUSO(t *testing.T) {
	for _, c := range []struct {
		name     string
		ring, v6 bool
	}{{"mmsg", false, false}, {"ring", true, false}, {"mmsg_ipv6", false, true}, {"ring_ipv6", true, true}} {
		t.Run(c.name, func(t *testing.T) { afpacketUSO(t, c.ring, c.v6) })
	}
}

func afpacketUSO(t *testing.T, ring, v6 bool) {
	l := newLab(t)
	needTools(t, "python3", "ss", "sysctl")
	h, ep := startAFPacketUSO(t, l, ring, stack.Options{UDPRecvBuf: 32 << 20})
	fam, kaddr, saddr, unspec := socket.AF_INET, afuKernel, afuStack.Addr(), netip.IPv4Unspecified()
	if v6 {
		fam, kaddr, saddr, unspec = socket.AF_INET6, afuKernel6, afuStack6.Addr(), netip.IPv6Unspecified()
	}
	if !ep.Offloads().UDPGSO {
		t.Error("AF_PACKET with Offload does not declare UDP segmentation offload")
	}
	const rounds, segs, seg = 100, 20, 1200

	// sockstack -> kernel.
	var out syncBuffer
	c := l.cmd(t.Context(), "python3", "-c", pyUSORecv, kaddr.String(), "5311", fmt.Sprint(rounds*segs), fmt.Sprint(seg))
	c.Stdout = &out
	done := startCmd(t, c)
	l.waitListen(t, "udp", 5311)
	s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(20 * time.Second)
	if err := s.SetSockOpt(socket.SOL_UDP, socket.UDP_SEGMENT, seg); err != nil {
		t.Fatal(err)
	}
	resolveKernel(t, h, kaddr)
	to := socket.InetAddr(netip.AddrPortFrom(kaddr, 5311))
	buf := make([]byte, 65536)
	for r := 0; r < rounds; r++ {
		usoFill(buf[:segs*seg], r*segs, segs, seg)
		if _, err := s.SendTo(buf[:segs*seg], 0, to); err != nil {
			t.Fatalf("send %d: %v", r, err)
		}
	}
	ls := &h.st.Stats().Link
	if err := <-done; err != nil {
		t.Fatalf("kernel receiver: %v (received, bad: %s); sent whole %d, cut in software %d, link out %d dropped %d",
			err, strings.TrimSpace(out.String()), ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(),
			ep.Stats().TxFrames.Load(), ep.Stats().TxDropped.Load())
	}
	t.Logf("sockstack -> kernel: received (datagrams, bad) %s; super-datagrams sent whole %d, cut in software %d",
		strings.TrimSpace(out.String()), ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load())
	if ls.OutGSOFrames.Load() != rounds {
		t.Errorf("%d of %d UDP_SEGMENT sends crossed the AF_PACKET socket whole", ls.OutGSOFrames.Load(), rounds)
	}

	// kernel -> sockstack, read whole with UDP_GRO.
	r, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetTimeout(20 * time.Second)
	if err := r.Bind(socket.InetAddr(netip.AddrPortFrom(unspec, 5312))); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSockOpt(socket.SOL_UDP, socket.UDP_GRO, true); err != nil {
		t.Fatal(err)
	}
	rx0, in0 := ep.Stats().RxFrames.Load(), ls.InGSOFrames.Load()
	l.run(t, time.Minute, nil, "python3", "-c", pyUSOSend, saddr.String(), "5312", fmt.Sprint(rounds), fmt.Sprint(segs), fmt.Sprint(seg))
	reads, whole := readNumbered(t, r, rounds*segs, seg, func() string {
		return fmt.Sprintf("frames in %d, GSO frames in %d, bad offload %d",
			ep.Stats().RxFrames.Load()-rx0, ls.InGSOFrames.Load()-in0, ls.InBadOffload.Load())
	})
	rx := ep.Stats().RxFrames.Load() - rx0
	t.Logf("kernel -> sockstack: %d datagrams in %d frames (%d GSO frames), %d reads (%d whole); bad offload frames %d",
		rounds*segs, rx, ls.InGSOFrames.Load()-in0, reads, whole, ls.InBadOffload.Load())
	if rx >= rounds*segs {
		t.Errorf("the kernel's super-datagrams came cut (%d frames for %d datagrams)", rx, rounds*segs)
	}
	if whole == 0 {
		t.Errorf("no read returned a whole UDP_SEGMENT send")
	}
	if ls.InBadOffload.Load() != 0 {
		t.Error("frames with malformed offload state")
	}
}
