package interop

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/control"
	"github.com/sockstack/sockstack/wire"
)

// TestInteropUpIPv6 runs the real `sockstack up` binary dual-stack on a
// TAP: --addr with an IPv4 and an IPv6 prefix, and --slaac with router
// advertisements sent from the kernel's side. The kernel pings both of
// sockstack's configured addresses, talks to its echo service over IPv6,
// sees it REACHABLE in its neighbour table, and pings the address
// sockstack made from the advertised prefix.
func TestInteropUpIPv6(t *testing.T) {
	l := newLab6(t)
	needTools(t, "ping", "socat", "python3")
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	l.run(t, 5*time.Second, nil, "ip", "-6", "route", "add", slaacPrefix.String(), "dev", tapName)
	u := startUp(t, t.TempDir(), "--tap", tapName, "--netns", l.ns,
		"--addr", stackCIDR.String()+","+stack6CIDR.String(), "--slaac",
		"--gw", kernelIP.String(), "--serve", "echo", "--control", ctl)
	var rows []control.SocketInfo
	for deadline := time.Now().Add(15 * time.Second); control.Query(ctl, "netstat", &rows) != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("control socket never answered\n%s", u.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantContains(t, "up banner", u.output(), stack6CIDR.String(), "IPv6 by SLAAC")

	// The configured address leaves DAD about a second after start.
	l.waitUntil(t, "the kernel pings fd77::2", func() bool {
		_, err := l.try(5*time.Second, nil, "ping", "-6", "-c", "1", "-W", "1", stack6IP.String())
		return err == nil
	})
	out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", stack6IP.String())
	wantContains(t, "ping -6", out, "3 packets transmitted, 3 received")
	out = l.run(t, 15*time.Second, nil, "ping", "-c", "2", "-i", "0.2", stackIP.String())
	wantContains(t, "ping", out, "2 received")

	out = l.run(t, 15*time.Second, []byte("over six\n"), "socat", "-t", "2", "-", "TCP6:["+stack6IP.String()+"]:7")
	wantContains(t, "echo over IPv6", out, "over six")

	// sockstack's MAC from the kernel's neighbour table; it answered the
	// kernel's probes, so the entry is REACHABLE.
	neigh := l.run(t, 5*time.Second, nil, "ip", "-6", "neigh", "show", stack6IP.String(), "dev", tapName)
	wantContains(t, "ip -6 neigh", neigh, "REACHABLE")
	var mac net.HardwareAddr
	f := strings.Fields(neigh)
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			mac, _ = net.ParseMAC(f[i+1])
		}
	}
	if len(mac) != 6 {
		t.Fatalf("no lladdr in %q", neigh)
	}

	// SLAAC: the advertised prefix plus the modified EUI-64 of the MAC.
	l.background(t, "python3", "-c", pyRASender, tapName, slaacPrefix.Addr().String())
	iid := wire.EUI64(wire.MAC(mac))
	a := slaacPrefix.Addr().As16()
	copy(a[8:], iid[:])
	auto := netip.AddrFrom16(a)
	l.waitUntil(t, "the kernel pings sockstack's SLAAC address "+auto.String(), func() bool {
		_, err := l.try(5*time.Second, nil, "ping", "-6", "-c", "1", "-W", "1", auto.String())
		return err == nil
	})
	select {
	case err := <-u.done:
		t.Fatalf("up exited early: %v\n%s", err, u.output())
	default:
	}
}

// TestInteropUpQueuesOffload runs `sockstack up --create --queues 2
// --offload` (a multi-queue TAP it makes itself, with virtio-net
// headers) and has the kernel fetch a 16 MiB file over HTTP by several
// connections at once, checked by hash, and ping it.
func TestInteropUpQueuesOffload(t *testing.T) {
	l := newLab(t)
	needTools(t, "ping", "curl", "sha256sum")
	dir := t.TempDir()
	_, sum := randomFile(t, dir, "big.bin", 16<<20)
	const tap = "tapmq0"
	u := startUp(t, dir, "--tap", tap, "--create", "--netns", l.ns,
		"--addr", "10.79.0.2/24", "--queues", "2", "--offload", "--serve", "http", "--root", dir)
	wantContains(t, "up banner", u.output(), "2 queues", "offloads 0x")
	l.run(t, 5*time.Second, nil, "ip", "addr", "add", "10.79.0.1/24", "dev", tap)
	l.run(t, 5*time.Second, nil, "ip", "link", "set", tap, "up")
	out := l.run(t, 15*time.Second, nil, "ip", "-d", "link", "show", tap)
	wantContains(t, "ip -d link", out, "multi_queue")
	l.waitUntil(t, "the kernel pings up", func() bool {
		_, err := l.try(5*time.Second, nil, "ping", "-c", "1", "-W", "1", "10.79.0.2")
		return err == nil
	})
	// Four fetches at once: flows hash to both queues.
	script := `for i in 1 2 3 4; do curl -s http://10.79.0.2/big.bin | sha256sum & done; wait`
	out = l.run(t, time.Minute, nil, "sh", "-c", script)
	if n := strings.Count(out, sum); n != 4 {
		t.Fatalf("%d of 4 fetches matched %s:\n%s\n%s", n, sum, out, u.output())
	}
}
