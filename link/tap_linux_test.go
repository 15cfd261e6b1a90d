package link

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for network namespaces and TAP/AF_PACKET")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
}

func needPing(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("ping not installed (apt-get install iputils-ping)")
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a network namespace deleted at the end of the test;
// it returns its name and a random subnet byte.
func newNetns(t testing.TB) (string, byte) {
	t.Helper()
	var r [4]byte
	rand.Read(r[:])
	name := "sst-" + hex.EncodeToString(r[:])
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, r[0]
}

// responder answers ARP requests and ICMP echo requests for one address,
// the way a stack would, using hand-made frames.
type responder struct {
	ep   Endpoint
	addr netip.Addr

	mu       sync.Mutex
	arps     int // ARP requests for addr
	echoes   int // echo requests to addr
	ownSeen  int // frames with our own source MAC (must stay 0)
	reply    []byte
	writeErr error
}

func (r *responder) DeliverFrames(frames [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range frames {
		if r.ep.Kind() == KindIP {
			r.ip(f, nil)
			continue
		}
		eth, err := wire.ParseEthernet(f)
		if err != nil {
			continue
		}
		if eth.Src == r.ep.HardwareAddr() {
			r.ownSeen++
		}
		switch eth.EtherType {
		case wire.EtherTypeARP:
			a, err := wire.ParseARP(f[eth.HeaderLen:])
			if err != nil || a.Op != wire.ARPRequest || a.TargetIP != r.addr {
				continue
			}
			r.arps++
			b := make([]byte, 14+wire.ARPLen)
			wire.PutEthernet(b, eth.Src, r.ep.HardwareAddr(), wire.EtherTypeARP)
			rep := wire.ARPInfo{Op: wire.ARPReply, SenderMAC: r.ep.HardwareAddr(), SenderIP: r.addr,
				TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
			rep.Put(b[14:])
			r.write(b)
		case wire.EtherTypeIPv4:
			r.ip(f[eth.HeaderLen:], &eth)
		}
	}
}

func (r *responder) ip(p []byte, eth *wire.EthernetInfo) {
	ip, err := wire.ParseIPv4(p)
	if err != nil || ip.Dst() != r.addr || ip.Protocol() != wire.ProtoICMP {
		return
	}
	icmp, err := wire.ParseICMPv4(ip.Payload())
	if err != nil || icmp.Type() != wire.ICMPEcho {
		return
	}
	r.echoes++
	hl := 0
	if eth != nil {
		hl = 14
	}
	b := make([]byte, hl+len(ip))
	if eth != nil {
		wire.PutEthernet(b, eth.Src, r.ep.HardwareAddr(), wire.EtherTypeIPv4)
	}
	out := wire.IPv4(b[hl:])
	copy(out, ip)
	out.SetSrc(ip.Dst())
	out.SetDst(ip.Src())
	out.SetTTL(64)
	out.FillChecksum()
	m := wire.ICMPv4(out.Payload())
	m.SetType(wire.ICMPEchoReply)
	m.FillChecksum()
	r.write(b)
}

func (r *responder) write(b []byte) {
	if _, err := r.ep.WriteFrames([][]byte{b}); err != nil && r.writeErr == nil {
		r.writeErr = err
	}
}

func (r *responder) counts() (arps, echoes, own int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arps, r.echoes, r.ownSeen, r.writeErr
}

// ping runs ping in the namespace and fails the test if no reply came.
func ping(t *testing.T, ns, addr string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, ns, err, out)
	}
	if !strings.Contains(string(out), " 0% packet loss") {
		t.Fatalf("ping lost packets:\n%s", out)
	}
}

func TestTAPAnswersKernelPing(t *testing.T) {
	needRoot(t)
	needPing(t)
	ns, x := newNetns(t)
	mac := wire.MAC{0x02, 0x53, 0x53, 0, 0, x}
	tap, err := OpenTAP("sst0", TAPOptions{Netns: ns, MTU: 1400, MAC: mac})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() }) // before the netns goes (Cleanup is LIFO)
	if tap.Name() != "sst0" || tap.Kind() != KindEthernet || tap.MTU() != 1400 || tap.HardwareAddr() != mac {
		t.Fatalf("name %q kind %d mtu %d mac %v", tap.Name(), tap.Kind(), tap.MTU(), tap.HardwareAddr())
	}
	sub := fmt.Sprintf("10.77.%d", x)
	run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.sst0.disable_ipv6=1")
	run(t, "ip", "-n", ns, "addr", "add", sub+".1/24", "dev", "sst0")
	run(t, "ip", "-n", ns, "link", "set", "sst0", "up")
	out, _ := exec.Command("ip", "-n", ns, "-o", "link", "show", "sst0").CombinedOutput()
	if !strings.Contains(string(out), "mtu 1400") {
		t.Fatalf("MTU not applied: %s", out)
	}

	r := &responder{ep: tap, addr: netip.MustParseAddr(sub + ".2")}
	tap.Attach(r)
	ping(t, ns, sub+".2")
	arps, echoes, own, werr := r.counts()
	if arps < 1 || echoes != 2 || own != 0 || werr != nil {
		t.Fatalf("arps %d echoes %d own %d write error %v", arps, echoes, own, werr)
	}
	s := tap.Stats().Snapshot()
	if s.RxFrames < 3 || s.TxFrames < 3 || s.TxDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Close interrupts the blocked reader and the device goes away with it.
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tap.WriteFrames([][]byte{make([]byte, 60)}); err != ErrClosed {
		t.Fatalf("write after Close: %v", err)
	}
	if err := exec.Command("ip", "-n", ns, "link", "show", "sst0").Run(); err == nil {
		t.Fatal("non-persistent TAP still there after Close")
	}
}

func TestTUNAnswersKernelPing(t *testing.T) {
	needRoot(t)
	needPing(t)
	ns, x := newNetns(t)
	tun, err := OpenTUN("", TAPOptions{Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	name := tun.Name()
	if !strings.HasPrefix(name, "tun") || tun.Kind() != KindIP || tun.MTU() != 1500 || tun.HardwareAddr() != (wire.MAC{}) {
		t.Fatalf("name %q kind %d mtu %d", name, tun.Kind(), tun.MTU())
	}
	sub := fmt.Sprintf("10.78.%d", x)
	run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf."+name+".disable_ipv6=1")
	run(t, "ip", "-n", ns, "addr", "add", sub+".1/24", "dev", name)
	run(t, "ip", "-n", ns, "link", "set", name, "up")
	r := &responder{ep: tun, addr: netip.MustParseAddr(sub + ".2")}
	tun.Attach(r)
	ping(t, ns, sub+".2")
	if arps, echoes, _, werr := r.counts(); arps != 0 || echoes != 2 || werr != nil {
		t.Fatalf("arps %d echoes %d write error %v", arps, echoes, werr)
	}
}

func TestTAPErrors(t *testing.T) {
	needRoot(t)
	_, err := OpenTAP("sst0", TAPOptions{Netns: "sst-no-such-namespace"})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing netns: %v", err)
	}
	_, err = OpenTAP("a-name-far-too-long-for-linux", TAPOptions{})
	if err == nil {
		t.Fatal("long name accepted")
	}
	// A second opener of a TAP in use is refused with a clear message.
	ns, _ := newNetns(t)
	run(t, "ip", "-n", ns, "tuntap", "add", "dev", "sst1", "mode", "tap")
	a, err := OpenTAP("sst1", TAPOptions{Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := OpenTAP("sst1", TAPOptions{Netns: ns}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second opener: %v", err)
	}
	// A TAP opened as TUN is refused.
	if _, err := OpenTUN("sst1", TAPOptions{Netns: ns}); err == nil {
		t.Fatal("TAP opened as TUN")
	}
}

func TestAFPacketAnswersKernelPing(t *testing.T) {
	needRoot(t)
	needPing(t)
	ns, x := newNetns(t)
	run(t, "ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	for _, dev := range []string{"va", "vb"} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf."+dev+".disable_ipv6=1")
	}
	sub := fmt.Sprintf("10.79.%d", x)
	run(t, "ip", "-n", ns, "addr", "add", sub+".1/24", "dev", "va")
	run(t, "ip", "-n", ns, "link", "set", "va", "up")
	run(t, "ip", "-n", ns, "link", "set", "vb", "up")

	ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Promisc: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	if ep.Name() != "vb" || ep.MTU() != 1500 || ep.HardwareAddr() == (wire.MAC{}) || ep.Ifindex() <= 0 {
		t.Fatalf("name %q mtu %d mac %v", ep.Name(), ep.MTU(), ep.HardwareAddr())
	}
	out, _ := exec.Command("ip", "-d", "-n", ns, "link", "show", "vb").CombinedOutput()
	if !strings.Contains(string(out), ep.HardwareAddr().String()) || !strings.Contains(string(out), "promiscuity 1") {
		t.Fatalf("vb: %s (want MAC %v and promiscuity 1)", out, ep.HardwareAddr())
	}
	r := &responder{ep: ep, addr: netip.MustParseAddr(sub + ".2")}
	ep.Attach(r)
	ping(t, ns, sub+".2")
	arps, echoes, own, werr := r.counts()
	if arps < 1 || echoes != 2 || werr != nil {
		t.Fatalf("arps %d echoes %d write error %v", arps, echoes, werr)
	}
	if own != 0 {
		t.Fatalf("read back %d of our own frames", own)
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAFPacket("no-such-if", AFPacketOptions{Netns: ns}); err == nil {
		t.Fatal("missing interface accepted")
	}
}

// TestTAPImpairPcap runs the kernel's ping through the middleware stack
// a program would use: TAP, impairment (delay) and a capture that tshark reads.
func TestTAPImpairPcap(t *testing.T) {
	needRoot(t)
	needPing(t)
	ns, x := newNetns(t)
	tap, err := OpenTAP("sst2", TAPOptions{Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	var capf strings.Builder
	pc, err := NewPcap(tap, &capf)
	if err != nil {
		t.Fatal(err)
	}
	m := NewImpair(pc, ImpairConfig{Delay: 5e6, Apply: ImpairEgress})
	t.Cleanup(func() { m.Close() })
	sub := fmt.Sprintf("10.80.%d", x)
	run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.sst2.disable_ipv6=1")
	run(t, "ip", "-n", ns, "addr", "add", sub+".1/24", "dev", "sst2")
	run(t, "ip", "-n", ns, "link", "set", "sst2", "up")
	r := &responder{ep: m, addr: netip.MustParseAddr(sub + ".2")}
	m.Attach(r)
	ping(t, ns, sub+".2")
	m.Close()
	if m.Egress.Delayed.Load() < 3 {
		t.Fatalf("impair %+v", m.Egress.Snapshot())
	}
	// ARP request + reply, 2 echo requests + 2 replies at least.
	checkTsharkAtLeast(t, []byte(capf.String()), 6)
}

func checkTsharkAtLeast(t *testing.T, file []byte, n int) {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark check")
		return
	}
	name := t.TempDir() + "/c.pcap"
	os.WriteFile(name, file, 0o644)
	out, err := exec.Command(path, "-r", name, "-Y", "icmp || arp", "-T", "fields", "-e", "frame.protocols").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if lines := strings.Count(string(out), "\n"); lines < n {
		t.Fatalf("tshark saw %d ICMP/ARP frames, want >= %d:\n%s", lines, n, out)
	}
}
