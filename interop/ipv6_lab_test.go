package interop

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// IPv6 over the TAP, with the kernel in the namespace as the peer, beyond
// ipv6_test.go (ping -6, ping6, SLAAC, python3 TCP, 200 MiB each way,
// curl -6): UDP over IPv6 to one dual-stack socket from both families, a
// 4000-byte UDP datagram in IPv6 fragments, sockstack's UDP6 client, and
// SLAAC with traffic through the advertised default router. The lab's
// link carries a unique local prefix that exists only inside the
// namespace; the IPv4 subnet stays on it too.
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

// startDualStack6 runs a dual-stack sockstack host on the lab's TAP:
// 10.77.0.2/24, fd77::2/64 and a link-local address, all usable (DAD
// done, and the kernel's link-local address too) before it returns. pcap, when set, receives every frame.
func (l *lab) startDualStack6(pcap string, opts stack.Options) *host {
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
	h := l.startDualStack6("", stack.Options{})
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
	h := l.startDualStack6("", stack.Options{IPv6SLAAC: true})
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
