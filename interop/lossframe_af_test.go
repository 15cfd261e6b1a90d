package interop

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// Frame mode with sockstack on AF_PACKET over a veth: the kernel →
// kernel path's own kind of link, where sockstack's writes may go in
// batches (sendmmsg, or a TPACKET_V3 transmit ring and one sendto) with
// PACKET_QDISC_BYPASS, instead of one write(2) per frame into a TAP.
// The kernel is 10.79.0.1 on vp0 in the lab namespace; sockstack is
// 10.79.0.2 on vp1, in a namespace of its own where the kernel has no
// address, through an AF_PACKET socket without offloads (frames of the
// MTU both ways). The drops, each per frame at the receiving side:
//
//   - sockstack's data and ACKs at vp0's ingress qdisc: bypassing
//     vp1's qdisc does not bypass the peer's ingress;
//   - the kernel's data and ACKs in sockstack's seeded link.Impair on
//     ingress: AF_PACKET takes its copy of a frame before vp1's ingress
//     qdisc would act, so a qdisc there cannot drop it for sockstack.
//
// vp0 has transmit checksums, TSO, GSO and GRO off, so its checksums are
// whole (the socket has no virtio-net header to say they are partial) and the kernel's data crosses the veth
// as frames and sockstack's arrives as frames; GRO is off on vp1 too,
// so the socket reads frames. The rounds, the kernel → kernel rounds
// between them and the checks are those of the TAP (frameRounds).

// afFrameLinks are the AF_PACKET variants of frame mode: sendmmsg and
// recvmmsg batches, TPACKET_V3 rings, and a TPACKET_V2 receive ring
// with the transmit ring. All send what the stack writes while a
// received batch is delivered in one system call (one sendmmsg, or one
// sendto of the transmit ring); they differ in how frames are read: a
// ring needs no system call, but a V3 ring hands a block over when it
// is full or its 1 ms timer fires, which at CUBIC's rates here (a few
// segments in flight) delays ACKs and data alike; a V2 ring hands each
// frame over as soon as the kernel has written it. The rings run when
// INTEROP_LOSS_AF_RING says so (1 or v3: the V3 ring; v2: the V2 ring;
// both), to keep the test's time down (afpacket adds about 80 s, a ring
// 110 s more).
var afFrameLinks = []struct {
	name    string
	ring    int // 0: none, else the receive ring's TPACKET version
	port    int
	enabled func(env string) bool
}{
	{"afpacket", 0, 5501, func(string) bool { return true }},
	{"afpacket_ring", 3, 5601, func(env string) bool { return env == "1" || env == "v3" || env == "both" }},
	{"afpacket_ring2", 2, 5701, func(env string) bool { return env == "v2" || env == "both" }},
}

// lossFrameAF runs frame mode's rounds with sockstack on AF_PACKET,
// each congestion control on each variant, after the TAP's; ns2 is the
// kernel → kernel namespace, dir holds the data files.
func lossFrameAF(t *testing.T, l *lab, ns2, dir string, pct float64) {
	ns3 := l.afFrameVeth(t, pct)
	for _, v := range afFrameLinks {
		if !v.enabled(os.Getenv("INTEROP_LOSS_AF_RING")) {
			continue
		}
		fl := frameLink{name: v.name, kdev: "vp0", kaddr: afKernelIP, saddr: afStackPrefix.Addr(), port: v.port,
			start: func(tc tcp.Config, ic link.ImpairConfig) (*host, *link.Impair) {
				return startStackAFImpaired(t, ns3, v.ring, tc, ic)
			},
			writeCalls: func(h *host) uint64 {
				return h.nic.Endpoint().(*link.Impair).Inner().(*link.AFPacket).WriteCalls()
			}}
		for i, cc := range frameCCs {
			t.Run(cc+"/"+fl.name, func(t *testing.T) { frameRounds(t, l, ns2, dir, fl, i, cc, pct) })
		}
	}
}

var (
	afKernelIP    = netip.MustParseAddr("10.79.0.1")
	afStackPrefix = netip.MustParsePrefix("10.79.0.2/24")
)

// afFrameVeth makes the veth vp0 (lab namespace, 10.79.0.1/24) – vp1 (a
// new namespace, returned) with the offloads off and pct percent of
// what vp0 receives dropped at its ingress.
func (l *lab) afFrameVeth(t *testing.T, pct float64) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns3 := "sst-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns3).Run() })
	for _, s := range [][]string{
		{"ip", "netns", "add", ns3},
		{"ip", "-n", l.ns, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1", "netns", ns3},
		// No IPv6 chatter (router solicitations, DAD) on the counted
		// devices.
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf.vp0.disable_ipv6=1"},
		{"ip", "netns", "exec", ns3, "sysctl", "-q", "-w", "net.ipv6.conf.vp1.disable_ipv6=1"},
		{"ip", "-n", l.ns, "addr", "add", "10.79.0.1/24", "dev", "vp0"},
		{"ip", "-n", l.ns, "link", "set", "vp0", "up"},
		{"ip", "-n", ns3, "link", "set", "vp1", "up"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// Checksums too: a socket without PACKET_VNET_HDR cannot tell a
	// frame whose checksum the kernel left partial for the device.
	ethtoolSet(t, l.ns, "vp0", []string{"tx", "tso", "gso", "gro"},
		[]string{"tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"})
	ethtoolSet(t, ns3, "vp1", []string{"gro"}, []string{"generic-receive-offload"})
	ingressDrop(t, l.ns, "vp0", pct) // what sockstack sends
	return ns3
}

// startStackAFImpaired runs a stack with TCP configuration tc on an
// AF_PACKET socket on vp1 in ns3 (no offloads, PACKET_QDISC_BYPASS,
// with ring non-zero rings, the receive ring of that TPACKET version),
// with the Impair ic between them.
func startStackAFImpaired(t *testing.T, ns3 string, ring int, tc tcp.Config, ic link.ImpairConfig) (*host, *link.Impair) {
	t.Helper()
	ep, err := link.OpenAFPacket("vp1", link.AFPacketOptions{Netns: ns3, QdiscBypass: true, Ring: ring != 0, RingVersion: ring})
	if err != nil {
		t.Fatal(err)
	}
	im := link.NewImpair(ep, ic)
	st := stack.New(stack.Options{Name: "sockstack", TCP: tc})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC("vp1", im)
	if err := h.nic.AddAddress(afStackPrefix); err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return h, im
}
