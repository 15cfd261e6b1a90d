package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
)

// sockstack as an SRv6 endpoint (RFC 8986 End) between two kernel hosts,
// the topology of TestInteropForward6 (both links MTU 1500 here):
//
//	A  fd00:a::1  ft0 ── sockstack fd00:a::2 | fd00:b::2 ── ft0 fd00:b::1  B
//
// A's kernel routes B through an inserted SRH (seg6 inline: segments
// B, sockstack; destination sockstack, one segment left); sockstack
// decrements it, puts B in the destination and forwards; B's kernel,
// with seg6_enabled, takes the SRH with none left. Replies come back
// plainly forwarded. Then the same with a Linux router in the middle.
func TestInteropSRv6End(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "sysctl", "socat", "tcpdump")
	var rb [4]byte
	rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	nsA, nsB := "se6a-"+id, "se6b-"+id
	for _, ns := range []string{nsA, nsB} {
		f6NS(t, ns)
		f6Run(t, ns,
			[]string{"ip", "tuntap", "add", "dev", "ft0", "mode", "tap"},
			[]string{"ip", "link", "set", "ft0", "up"})
	}
	se6Hosts(t, nsA, nsB)

	st := stack.New(stack.Options{Name: "srv6end", Forwarding: true, Seg6Enabled: true})
	t.Cleanup(st.Close) // before the namespaces go
	var nics []*stack.NIC
	for i, ns := range []string{nsA, nsB} {
		tap, err := link.OpenTAP("ft0", link.TAPOptions{Netns: ns})
		if err != nil {
			t.Fatal(err)
		}
		nic := st.AddNIC("ft"+strconv.Itoa(i), tap)
		if err := nic.EnableIPv6(); err != nil {
			t.Fatal(err)
		}
		if err := nic.AddAddress([]netip.Prefix{f6RouteA, f6RouteB}[i]); err != nil {
			t.Fatal(err)
		}
		waitDAD(t, nic)
		nics = append(nics, nic)
	}
	s := st.Stats()

	// sockstack's SRv6 off on the incoming NIC: the SRH is dropped.
	nics[0].SetSeg6Enabled(false)
	if out, err := f6Exec(nsA, "ping", "-6", "-n", "-c", "1", "-W", "1", f6B); err == nil {
		t.Fatalf("answered with sockstack's SRv6 off:\n%s", out)
	}
	if s.IP6.Seg6Disabled.Load() == 0 {
		t.Error("Seg6Disabled not counted")
	}
	nics[0].SetSeg6Enabled(true)

	// B's kernel decides what a host without SRv6 does with an SRH
	// whose segments are all done: seg6_enabled is the smaller of all
	// and the interface, and off the packet is dropped.
	f6Run(t, nsB, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.seg6_enabled=1"})
	if out, err := f6Exec(nsA, "ping", "-6", "-n", "-c", "1", "-W", "1", f6B); err == nil {
		t.Fatalf("B's kernel took an SRH with seg6_enabled on for all but off for ft0:\n%s", out)
	}
	f6Run(t, nsB, []string{"sysctl", "-q", "-w", "net.ipv6.conf.ft0.seg6_enabled=1"})

	before := s.IP6.Seg6End.Load()
	ours := se6Traffic(t, nsA, nsB)
	if n := s.IP6.Seg6End.Load() - before; n < 2+4 {
		t.Errorf("Seg6End %d, want the pings and the UDP and TCP packets from A", n)
	}
	se6Decap(t, nsA)
	if n := s.IP6.Seg6Decap.Load(); n < 2 {
		t.Errorf("Seg6Decap %d, want the 2 pings", n)
	}
	t.Logf("sockstack: Seg6End %d, Seg6Decap %d, ForwDatagrams %d, Seg6Disabled %d", s.IP6.Seg6End.Load(), s.IP6.Seg6Decap.Load(), s.IP6.ForwDatagrams.Load(), s.IP6.Seg6Disabled.Load())

	// The same with a Linux router as the endpoint.
	lA, lR, lB := "le6a-"+id, "le6r-"+id, "le6b-"+id
	for _, ns := range []string{lA, lR, lB} {
		f6NS(t, ns)
	}
	f6Run(t, lR,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.seg6_enabled=1"},
		[]string{"ip", "link", "add", "ra", "type", "veth", "peer", "name", "ft0", "netns", lA},
		[]string{"ip", "link", "add", "rb", "type", "veth", "peer", "name", "ft0", "netns", lB},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.ra.seg6_enabled=1"},
		[]string{"ip", "link", "set", "ra", "up"},
		[]string{"ip", "link", "set", "rb", "up"},
		[]string{"ip", "-6", "addr", "add", f6RouteA.String(), "dev", "ra", "nodad"},
		[]string{"ip", "-6", "addr", "add", f6RouteB.String(), "dev", "rb", "nodad"})
	for _, ns := range []string{lA, lB} {
		f6Run(t, ns, []string{"ip", "link", "set", "ft0", "up"})
	}
	se6Hosts(t, lA, lB)
	f6Run(t, lB,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.seg6_enabled=1"},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.ft0.seg6_enabled=1"})
	theirs := se6Traffic(t, lA, lB)
	se6Decap(t, lA)
	if ours != theirs {
		t.Errorf("the SRH B received: through sockstack %q, through Linux %q", ours, theirs)
	}
	t.Logf("the SRH B received: %q", ours)
}

// se6Hosts gives A and B (ft0 up) their addresses and routes: A reaches
// B through an SRH inserted by its kernel with the router's fd00:a::2 as
// the one segment before B.
func se6Hosts(t *testing.T, a, b string) {
	t.Helper()
	f6Run(t, a,
		[]string{"ip", "-6", "addr", "add", f6A + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:b::/64", "via", "fd00:a::2"},
		[]string{"ip", "-6", "route", "add", f6B + "/128", "encap", "seg6", "mode", "inline", "segs", "fd00:a::2", "dev", "ft0"})
	f6Run(t, b,
		[]string{"ip", "-6", "addr", "add", f6B + "/64", "dev", "ft0", "nodad"},
		[]string{"ip", "-6", "route", "add", "fd00:a::/64", "via", "fd00:b::2"})
}

// se6Traffic runs pings, a UDP and a TCP echo from A to B (the request
// through the endpoint, the answer back) while B captures, and returns
// the routing header tcpdump printed for what reached B (all of it
// alike: segments left 0).
func se6Traffic(t *testing.T, a, b string) string {
	t.Helper()
	pcap := filepath.Join(t.TempDir(), "b.pcap")
	stop := se6Capture(t, b, pcap)
	if out, err := f6Exec(a, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "3", f6B); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", f6B, a, err, out)
	}
	se6Echo(t, a, b, "udp", 7901, "udp-through-srv6")
	se6Echo(t, a, b, "tcp", 7902, "tcp-through-srv6")
	stop()
	out, err := exec.Command("tcpdump", "-r", pcap, "-n", "-v", "src", "host", f6A, "and", "dst", "host", f6B).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`RT6 \([^)]*\)`)
	var rt string
	var n int
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "> "+f6B) {
			continue
		}
		n++
		m := re.FindString(line)
		switch {
		case m == "":
			t.Errorf("%s: reached B without an SRH: %s", a, line)
		case !strings.Contains(m, "segleft=0"):
			t.Errorf("%s: reached B with segments left: %s", a, m)
		case rt == "":
			rt = m
		case m != rt:
			t.Errorf("%s: SRHs differ: %q and %q", a, rt, m)
		}
	}
	if n < 2+2+3 {
		t.Errorf("%s: B captured %d packets to it, want the pings, UDP and TCP:\n%s", a, n, out)
	}
	return rt
}

// se6Decap has A's kernel encapsulate instead (seg6 mode encap: an
// outer header to the router, an SRH with no segments left over the
// whole packet); the router takes the inner packet out and forwards it
// to B, as Linux's ipv6_srh_rcv does with segments left 0 over IPv6.
func se6Decap(t *testing.T, a string) {
	t.Helper()
	f6Run(t, a, []string{"ip", "-6", "route", "replace", f6B + "/128", "encap", "seg6", "mode", "encap", "segs", "fd00:a::2", "dev", "ft0"})
	if out, err := f6Exec(a, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "3", f6B); err != nil {
		t.Errorf("ping %s from %s, encapsulated: %v\n%s", f6B, a, err, out)
	}
}

// se6Echo runs socat's echo on B's port (proto "udp" or "tcp") and
// sends msg from A to it, expecting it back.
func se6Echo(t *testing.T, a, b, proto string, port int, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := strconv.Itoa(port)
	listen := "UDP6-RECVFROM:" + p + ",bind=[" + f6B + "],fork"
	if proto == "tcp" {
		listen = "TCP6-LISTEN:" + p + ",bind=[" + f6B + "],reuseaddr"
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", b, "socat", listen, "EXEC:cat")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	// The listener's socket, seen by ss in B, before the first send.
	for try := 0; ; try++ {
		o, _ := f6Exec(b, "ss", "-H", "-ln", "--"+proto, "sport = :"+p)
		if strings.Contains(o, p) {
			break
		}
		if try == 100 {
			t.Fatalf("socat in %s never listened on %s port %s", b, proto, p)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition in another namespace
	}
	o, err := f6Exec(a, "sh", "-c", "echo "+msg+" | socat -t 2 -T 5 - "+strings.ToUpper(proto)+"6:["+f6B+"]:"+p)
	if out := strings.TrimSpace(o); out != msg {
		t.Errorf("%s echo from %s: got %q (%v)", proto, a, out, err)
	}
}

// se6Capture starts tcpdump on ft0 in ns writing to path, waits until it
// listens, and returns its stop (which flushes the file).
func se6Capture(t *testing.T, ns, path string) func() {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", "ft0", "-n", "-U", "--immediate-mode", "-w", path, "ip6")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ready := make(chan struct{})
	go func() {
		b := make([]byte, 4096)
		var seen string
		for {
			n, err := r.Read(b)
			seen += string(b[:n])
			if strings.Contains(seen, "listening on") {
				close(ready)
				for err == nil {
					_, err = r.Read(b)
				}
				return
			}
			if err != nil {
				close(ready)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start")
	}
	done := false
	stop := func() {
		if done {
			return
		}
		done = true
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		r.Close()
	}
	t.Cleanup(stop)
	return stop
}
