package interop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/httpd"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// IPv6 over the TAP, with the kernel in the namespace as the peer. The
// lab's link carries a unique local prefix that exists only inside the
// namespace; the IPv4 subnet stays on it too, for the dual-stack tests.
var (
	kernel6CIDR = "fd77::1/64"
	kernel6IP   = netip.MustParseAddr("fd77::1")
	stack6CIDR  = netip.MustParsePrefix("fd77::2/64")
	stack6IP    = stack6CIDR.Addr()
	slaacPrefix = netip.MustParsePrefix("fd77:5::/64") // advertised by the RA sender
	farKernel6  = netip.MustParseAddr("fd77:9::1")     // on the kernel's lo: reached through the default router
)

// newLab6 is a lab with IPv6 on the TAP: fd77::1/64 on the kernel side
// (its link-local address comes with carrier, when a stack opens the
// TAP: startStack6 waits for it). At cleanup, before the
// namespace goes, the kernel's Icmp6InErrors and Ip6InHdrErrors must be 0.
func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLabIPv6(t, true)
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", kernel6CIDR, "dev", tapName, "nodad")
	t.Cleanup(l.checkICMP6Errors)
	return l
}

// waitUntil polls cond (a state of another process or of the kernel,
// which sends no event) for up to 15 s.
func (l *lab) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkICMP6Errors fails the test if the kernel counted an ICMPv6 input
// error or an IPv6 header error: sockstack sent something malformed.
func (l *lab) checkICMP6Errors() {
	t := l.t
	if _, err := exec.LookPath("nstat"); err != nil {
		return
	}
	out, err := l.try(5*time.Second, nil, "nstat", "-az", "Icmp6InErrors", "Ip6InHdrErrors", "Icmp6InCsumErrors")
	if err != nil {
		t.Errorf("nstat: %v\n%s", err, out)
		return
	}
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "Icmp6InErrors" || f[0] == "Ip6InHdrErrors" || f[0] == "Icmp6InCsumErrors") {
			seen++
			if f[1] != "0" {
				t.Errorf("kernel nstat: %s = %s (sockstack sent a malformed IPv6 / ICMPv6 packet)", f[0], f[1])
			}
		}
	}
	if seen != 3 {
		t.Errorf("nstat did not report the three IPv6 error counters:\n%s", out)
	}
}

// startStack6 runs a dual-stack sockstack host on the lab's TAP:
// 10.77.0.2/24, fd77::2/64 and a link-local address, all usable (DAD
// done, and the kernel's link-local address too) before it returns. pcap, when set, receives every frame.
func (l *lab) startStack6(pcap string, opts stack.Options) *host {
	t := l.t
	t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	var ep link.Endpoint = tap
	flush := func() {}
	if pcap != "" {
		f, err := os.Create(pcap)
		if err != nil {
			t.Fatal(err)
		}
		pw, err := link.NewPcapWriter(f, link.LinkTypeEthernet, link.PcapOptions{Unbuffered: true})
		if err != nil {
			t.Fatal(err)
		}
		ep = link.NewSniffer(tap, func(_ link.Direction, fr []byte) { pw.WriteFrame(time.Now(), fr) })
		t.Cleanup(func() { pw.Flush(); f.Close() })
		flush = func() { pw.Flush() }
	}
	opts.Name = "sockstack"
	st := stack.New(opts)
	t.Cleanup(st.Close)
	h := &host{st: st, net: socket.New(st), flush: flush}
	h.nic = st.AddNIC(tapName, ep)
	for _, p := range []netip.Prefix{stackCIDR, stack6CIDR} {
		if err := h.nic.AddAddress(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	l.waitUntil(t, "the kernel's link-local address leaves DAD", func() bool {
		out, _ := l.try(2*time.Second, nil, "ip", "-6", "-o", "addr", "show", "dev", tapName, "scope", "link")
		return strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
	})
	l.waitUntil(t, "sockstack's IPv6 addresses leave DAD", func() bool {
		ll, ok := false, true
		for _, a := range h.nic.Addrs6() {
			ok = ok && !a.Tentative
			ll = ll || a.Prefix.Addr().IsLinkLocalUnicast()
		}
		return ll && ok
	})
	return h
}

// linkLocal is sockstack's link-local address on the TAP.
func (h *host) linkLocal(t *testing.T) netip.Addr {
	t.Helper()
	for _, a := range h.nic.Addrs6() {
		if a.Prefix.Addr().IsLinkLocalUnicast() {
			return a.Prefix.Addr()
		}
	}
	t.Fatal("sockstack has no link-local address")
	return netip.Addr{}
}

// tshark6 checks a capture: no malformed packet, no error-level expert
// item, no bad IPv6 upper-layer checksum (ICMPv6, UDP, TCP).
func tshark6(t *testing.T, pcap string) {
	t.Helper()
	needTools(t, "tshark")
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "tshark", append([]string{"-n", "-r", pcap}, args...)...)
		var stderr strings.Builder
		c.Stderr = &stderr // "Running as user root ..." goes there
		out, err := c.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	bad := run("-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-Y", "_ws.malformed || _ws.expert.severity == error || tcp.checksum.status == 0 || udp.checksum.status == 0 || icmpv6.checksum.status == 0")
	if strings.TrimSpace(bad) != "" {
		t.Fatalf("tshark flags packets:\n%s", bad)
	}
	if n := run("-Y", "ipv6"); strings.Count(n, "\n") < 5 {
		t.Fatalf("the capture holds almost no IPv6:\n%s", n)
	}
}

// TestInterop6Ping: the kernel's ping -6 to sockstack's global and
// link-local addresses, 4000 bytes in fragments both ways; the kernel's
// neighbour entry for sockstack ends REACHABLE; the capture is clean.
func TestInterop6Ping(t *testing.T) {
	l := newLab6(t)
	needTools(t, "ping")
	pcap := filepath.Join(t.TempDir(), "ping6.pcap")
	h := l.startStack6(pcap, stack.Options{})
	t.Run("ping_-6_global", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", stack6IP.String())
		wantContains(t, "ping -6", out, "3 packets transmitted, 3 received", "from "+stack6IP.String())
	})
	t.Run("ping_-6_link-local", func(t *testing.T) {
		ll := h.linkLocal(t).String() + "%" + tapName
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", ll)
		wantContains(t, "ping -6 link-local", out, "3 packets transmitted, 3 received")
	})
	t.Run("ping_-6_-s_4000_fragments_both_ways", func(t *testing.T) {
		frag0 := h.st.Stats().IP6.FragCreates.Load()
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", stack6IP.String())
		wantContains(t, "ping -6 -s 4000", out, "3 packets transmitted, 3 received", "4008 bytes from")
		if got := h.st.Stats().IP6.FragCreates.Load() - frag0; got < 9 {
			t.Errorf("sockstack created %d fragments for 3 replies of 4048 bytes on a 1500-byte link, want >= 9", got)
		}
	})
	t.Run("ip_-6_neigh_shows_sockstack_REACHABLE", func(t *testing.T) {
		out := l.run(t, 5*time.Second, nil, "ip", "-6", "neigh", "show", "dev", tapName, stack6IP.String())
		wantContains(t, "ip -6 neigh", out, "REACHABLE")
	})
	h.flush()
	t.Run("tshark_no_malformed_or_bad_checksum", func(t *testing.T) { tshark6(t, pcap) })
}

// TestInterop6SockstackPing: sockstack's ICMPv6 ping socket to the
// kernel, small and 4000 bytes (fragmented by sockstack, reassembled by
// the kernel, and back).
func TestInterop6SockstackPing(t *testing.T) {
	l := newLab6(t)
	h := l.startStack6("", stack.Options{})
	for _, size := range []int{56, 4000} {
		t.Run(fmt.Sprintf("ping6_%d_bytes_to_kernel", size), func(t *testing.T) {
			s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetTimeout(5 * time.Second)
			for seq := 1; seq <= 3; seq++ {
				msg := make([]byte, 8+size)
				msg[0] = 128 // echo request; id and checksum filled by the ping socket
				msg[7] = byte(seq)
				for i := 8; i < len(msg); i++ {
					msg[i] = byte(i)
				}
				if _, err := s.SendTo(msg, 0, socket.Inet6(kernel6IP.String(), 0)); err != nil {
					t.Fatalf("sendto: %v", err)
				}
				buf := make([]byte, 65536)
				n, from, err := s.RecvFrom(buf, 0)
				if err != nil {
					t.Fatalf("echo reply %d: %v", seq, err)
				}
				if buf[0] != 129 || n != len(msg) || buf[7] != byte(seq) || string(buf[8:n]) != string(msg[8:]) {
					t.Fatalf("reply %d: type %d, %d bytes, seq %d (sent %d bytes)", seq, buf[0], n, buf[7], len(msg))
				}
				if fa := from.(*socket.SockaddrInet).AddrPort.Addr(); fa != kernel6IP {
					t.Fatalf("reply from %v", fa)
				}
			}
		})
	}
}

// serveEcho6 runs a dual-stack echo server on sockstack ([::]:port, TCP
// and UDP) until the test ends.
func serveEcho6(t *testing.T, h *host, port int) {
	t.Helper()
	u, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Bind(socket.Inet6("::", port)); err != nil {
		t.Fatal(err)
	}
	ls, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Bind(socket.Inet6("::", port)); err != nil {
		t.Fatal(err)
	}
	if err := ls.Listen(8); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	t.Cleanup(func() { u.Close(); ls.Close(); <-done; <-done })
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 65536)
		for {
			n, from, err := u.RecvFrom(buf, 0)
			if err != nil {
				if errors.Is(err, syscall.EBADF) {
					return // closed at cleanup
				}
				continue
			}
			u.SendTo(buf[:n], 0, from)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			c, _, err := ls.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetTimeout(30 * time.Second)
				buf := make([]byte, 16384)
				for {
					n, err := c.Recv(buf, 0)
					if err != nil || n == 0 {
						return
					}
					if c.SendAll(buf[:n], 0) != nil {
						return
					}
				}
			}()
		}
	}()
}

// The tutorial's client: getaddrinfo on the host name, the first address
// that connects, one line echoed; it prints the family and the peer.
const pyGaiClient = `
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ty = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
for fam, st, pr, _, sa in socket.getaddrinfo(host, port, socket.AF_UNSPEC, ty):
    s = socket.socket(fam, st, pr)
    s.settimeout(5)
    s.connect(sa)
    s.sendall(sys.argv[4].encode())
    data = s.recv(65536)
    if proto == "tcp":
        while len(data) < len(sys.argv[4]):
            more = s.recv(65536)
            if not more:
                break
            data += more
    print("family", fam.name, "peer", s.getpeername()[0], "got", data.decode())
    break
`

// The tutorial's dual-stack server: getaddrinfo(None, port, AF_UNSPEC,
// SOCK_STREAM, 0, AI_PASSIVE), the first address that binds (with
// V6ONLY off, so :: takes both families); it echoes n connections and
// prints each peer.
const pyGaiServer = `
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
infos = socket.getaddrinfo(None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
infos.sort(key=lambda i: i[0] != socket.AF_INET6)
fam, st, pr, _, sa = infos[0]
s = socket.socket(fam, st, pr)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(sa)
s.listen(4)
print("listening", fam.name, flush=True)
for _ in range(n):
    c, peer = s.accept()
    data = c.recv(65536)
    c.sendall(data)
    c.close()
    print("peer", peer[0], flush=True)
`

// TestInterop6DualStack: python3's getaddrinfo client and server against
// sockstack in both directions and both families; UDP echo over IPv6 and
// IPv4 to one dual-stack socket, and a 4000-byte datagram in fragments.
func TestInterop6DualStack(t *testing.T) {
	l := newLab6(t)
	needTools(t, "python3", "ss")
	h := l.startStack6("", stack.Options{})
	serveEcho6(t, h, 7)
	for _, c := range []struct{ name, host, proto, fam string }{
		{"python3_tcp_client_v6_to_sockstack_dual-stack_echo", stack6IP.String(), "tcp", "AF_INET6"},
		{"python3_tcp_client_v4_to_sockstack_dual-stack_echo", stackIP.String(), "tcp", "AF_INET"},
		{"python3_udp_client_v6_to_sockstack_dual-stack_echo", stack6IP.String(), "udp", "AF_INET6"},
		{"python3_udp_client_v4_to_sockstack_dual-stack_echo", stackIP.String(), "udp", "AF_INET"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := l.run(t, 15*time.Second, nil, "python3", "-c", pyGaiClient, c.host, "7", c.proto, "hello dual stack")
			wantContains(t, "python3", out, "family "+c.fam+" peer "+c.host+" got hello dual stack")
		})
	}
	t.Run("python3_udp_4000_bytes_over_ipv6_fragments", func(t *testing.T) {
		msg := strings.Repeat("0123456789", 400)
		out := l.run(t, 15*time.Second, nil, "python3", "-c", pyGaiClient, stack6IP.String(), "7", "udp", msg)
		wantContains(t, "python3", out, "got "+msg)
	})
	t.Run("python3_dual-stack_server_sockstack_clients_both_families", func(t *testing.T) {
		l.background(t, "python3", "-c", pyGaiServer, "8007", "2")
		l.waitListen(t, "tcp", 8007)
		for _, dst := range []netip.Addr{kernel6IP, kernelIP} {
			fam := socket.AF_INET6
			if dst.Is4() {
				fam = socket.AF_INET
			}
			s, err := h.net.Socket(fam, socket.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			s.SetTimeout(10 * time.Second)
			if err := s.Connect(socket.InetAddr(netip.AddrPortFrom(dst, 8007))); err != nil {
				t.Fatalf("connect %v: %v", dst, err)
			}
			if err := s.SendAll([]byte("to python over "+dst.String()), 0); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			n, err := s.Recv(buf, socket.MSG_WAITALL)
			s.Close()
			if err != nil || string(buf[:n]) != "to python over "+dst.String() {
				t.Fatalf("echo from python over %v: %q %v", dst, buf[:n], err)
			}
		}
	})
	t.Run("sockstack_udp6_to_kernel_socat_echo", func(t *testing.T) {
		needTools(t, "socat")
		l.background(t, "socat", "UDP6-RECVFROM:7007,fork,reuseaddr", "PIPE")
		l.waitListen(t, "udp", 7007)
		s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetTimeout(5 * time.Second)
		if _, err := s.SendTo([]byte("udp6 to socat"), 0, socket.Inet6(kernel6IP.String(), 7007)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil || string(buf[:n]) != "udp6 to socat" || from.(*socket.SockaddrInet).AddrPort.Addr() != kernel6IP {
			t.Fatalf("echo %q from %v: %v", buf[:n], from, err)
		}
	})
}

// TestInterop6SLAAC: a router advertisement sent by the kernel side (a
// python3 raw ICMPv6 socket in the namespace: prefix fd77:5::/64 with
// the A and L flags, router lifetime 1800 s, MTU 1500) gives sockstack
// an address in the prefix and the kernel as default router; the kernel
// pings the new address, and sockstack reaches an address that is not
// on the link (fd77:9::1 on the kernel's lo) through the default router.
func TestInterop6SLAAC(t *testing.T) {
	l := newLab6(t)
	needTools(t, "python3", "ping")
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", farKernel6.String()+"/128", "dev", "lo")
	l.run(t, 5*time.Second, nil, "ip", "-6", "route", "add", slaacPrefix.String(), "dev", tapName)
	h := l.startStack6("", stack.Options{IPv6SLAAC: true})
	l.background(t, "python3", "-c", pyRASender, tapName, slaacPrefix.Addr().String())
	var got netip.Addr
	l.waitUntil(t, "sockstack configures an address from the advertised prefix", func() bool {
		for _, a := range h.nic.Addrs6() {
			if slaacPrefix.Contains(a.Prefix.Addr()) && a.SLAAC && !a.Tentative {
				got = a.Prefix.Addr()
				return true
			}
		}
		return false
	})
	t.Logf("SLAAC address %v", got)
	out := l.run(t, 5*time.Second, nil, "ip", "-6", "-o", "addr", "show", "dev", tapName, "scope", "link")
	f := strings.Fields(out)
	var router netip.Addr
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			router = netip.MustParsePrefix(f[i+1]).Addr()
		}
	}
	l.waitUntil(t, "sockstack takes the kernel as default router", func() bool {
		for _, r := range h.nic.DefaultRouters() {
			if r.WithZone("") == router {
				return true
			}
		}
		return false
	})
	t.Run("ping_-6_the_SLAAC_address", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", got.String())
		wantContains(t, "ping -6", out, "3 packets transmitted, 3 received")
	})
	t.Run("sockstack_udp_through_the_default_router", func(t *testing.T) {
		needTools(t, "socat", "ss")
		l.background(t, "socat", "UDP6-RECVFROM:7008,fork,reuseaddr", "PIPE")
		l.waitListen(t, "udp", 7008)
		s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetTimeout(5 * time.Second)
		if _, err := s.SendTo([]byte("via router"), 0, socket.Inet6(farKernel6.String(), 7008)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := s.Recv(buf, 0)
		if err != nil || string(buf[:n]) != "via router" {
			t.Fatalf("echo %q: %v", buf[:n], err)
		}
	})
}

// pyRASender advertises a prefix on an interface every 200 ms until it
// is killed (the kernel fills the ICMPv6 checksum; hop limit 255 as RFC
// 4861 requires; the source is the interface's link-local address).
const pyRASender = `
import socket, struct, sys, time
ifname, prefix = sys.argv[1], sys.argv[2]
ifi = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifi)
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
pi = struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 3600, 1800, 0) + socket.inet_pton(socket.AF_INET6, prefix)
mtu = struct.pack("!BBHI", 5, 1, 0, 1500)
while True:
    s.sendto(ra + pi + mtu, ("ff02::1", 0, 0, ifi))
    time.sleep(0.2)
`

// bulk6 sends path from sockstack to the kernel's socat (sha256sum) over
// IPv6 and returns the kernel's hash.
func bulk6ToKernel(t *testing.T, l *lab, h *host, port int, path string, limit time.Duration) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := l.cmd(ctx, "sh", "-c", fmt.Sprintf("socat -u TCP6-LISTEN:%d,reuseaddr - | sha256sum", port))
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	l.waitListen(t, "tcp", port)
	s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(limit)
	start := time.Now()
	if err := s.Connect(socket.Inet6(kernel6IP.String(), port)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := s.SendAll(buf[:n], 0); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Shutdown(socket.SHUT_WR)
	if err := <-done; err != nil {
		t.Fatalf("kernel side: %v\n%s", err, out.String())
	}
	return strings.Fields(out.String() + " x")[0], time.Since(start)
}

// bulk6FromKernel has the kernel's socat send path to sockstack over
// IPv6 and returns the hash and size of what arrived.
func bulk6FromKernel(t *testing.T, l *lab, h *host, port int, path string, limit time.Duration) (string, int64, time.Duration) {
	t.Helper()
	ls, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Bind(socket.Inet6("::", port)); err != nil {
		t.Fatal(err)
	}
	if err := ls.Listen(1); err != nil {
		t.Fatal(err)
	}
	ls.SetTimeout(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := l.cmd(ctx, "socat", "-u", "OPEN:"+path, fmt.Sprintf("TCP6:[%v]:%d", stack6IP, port))
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	start := time.Now()
	conn, from, err := ls.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer conn.Close()
	if fa := from.(*socket.SockaddrInet).AddrPort.Addr(); fa != kernel6IP {
		t.Fatalf("accepted from %v, want %v", fa, kernel6IP)
	}
	conn.SetTimeout(limit)
	hs := sha256.New()
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := conn.Recv(buf, 0)
		if err != nil {
			t.Fatalf("recv after %d bytes: %v", total, err)
		}
		if n == 0 {
			break
		}
		hs.Write(buf[:n])
		total += int64(n)
	}
	d := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("kernel socat: %v\n%s", err, out.String())
	}
	return hex.EncodeToString(hs.Sum(nil)), total, d
}

// TestInterop6Bulk: 200 MiB each way over IPv6 between sockstack and the
// kernel's socat, compared by SHA-256, without and with 2% loss on the
// kernel side (both directions). No capture here (400 MiB of it); the
// ping test checks a capture with tshark.
func TestInterop6Bulk(t *testing.T) {
	l := newLab6(t)
	needTools(t, "socat", "sha256sum", "ss", "tc")
	h := l.startStack6("", stack.Options{})
	const size = 200 << 20
	path, sum := randomFile(t, t.TempDir(), "200MiB.bin", size)
	for _, loss := range []float64{0, 2} {
		suffix := ""
		if loss > 0 {
			suffix = fmt.Sprintf("_loss_%g%%", loss)
			l.loss(t, loss)
		}
		t.Run("200MiB_sockstack_to_kernel_over_ipv6"+suffix, func(t *testing.T) {
			got, d := bulk6ToKernel(t, l, h, 5001, path, 5*time.Minute)
			if got != sum {
				t.Fatalf("kernel received data with SHA-256 %s, sent %s", got, sum)
			}
			t.Logf("200 MiB sockstack -> kernel over IPv6 in %v: %.2f Gbit/s", d.Round(time.Millisecond), gbps(size, d))
		})
		t.Run("200MiB_kernel_to_sockstack_over_ipv6"+suffix, func(t *testing.T) {
			got, n, d := bulk6FromKernel(t, l, h, 5002, path, 5*time.Minute)
			if n != size || got != sum {
				t.Fatalf("sockstack received %d bytes with SHA-256 %s; kernel sent %d, %s", n, got, size, sum)
			}
			t.Logf("200 MiB kernel -> sockstack over IPv6 in %v: %.2f Gbit/s", d.Round(time.Millisecond), gbps(size, d))
		})
	}
	ts := h.st.TCP.Stats()
	t.Logf("sockstack TCP: retrans %d, fast retrans %d, SACK recoveries %d, timeouts %d", ts.RetransSegs, ts.FastRetrans, ts.SACKRecovery, ts.Timeouts)
}

// TestInterop6CurlHTTP: curl -6 fetches 50 MiB from sockstack's HTTP
// file handler served on [::]:80, checked by SHA-256.
func TestInterop6CurlHTTP(t *testing.T) {
	l := newLab6(t)
	needTools(t, "curl", "sha256sum")
	h := l.startStack6("", stack.Options{})
	dir := t.TempDir()
	_, sum := randomFile(t, dir, "50MiB.bin", 50<<20)
	ln, err := netconn.Listen(h.net, "tcp6", "[::]:80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpd.Handler(h.net, dir), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	out := l.run(t, 3*time.Minute, nil, "sh", "-c", fmt.Sprintf("curl -6 -sS --fail -o - 'http://[%v]/50MiB.bin' | sha256sum", stack6IP))
	if got := strings.Fields(out + " x")[0]; got != sum {
		t.Fatalf("curl -6 got SHA-256 %s, file has %s\n%s", got, sum, out)
	}
}
