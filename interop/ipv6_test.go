package interop

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/httpd"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// IPv6 over the TAP with the kernel in the namespace: fd00:77::1/64 is
// the kernel, fd00:77::2/64 sockstack, both with link-local addresses.
var (
	kernel6 = netip.MustParseAddr("fd00:77::1")
	stack6  = netip.MustParseAddr("fd00:77::2")
)

// enable6 turns IPv6 back on for the lab's TAP (newLab turns it off for
// the IPv4 tests, so the kernel sends no IPv6 chatter there) and gives
// the kernel fd00:77::1/64, without DAD so it is usable at once.
func (l *lab) enable6(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		missing(t, "IPv6 in the kernel")
	}
	for _, kv := range []string{"accept_dad=0", "dad_transmits=0", "disable_ipv6=0"} {
		l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv6.conf."+tapName+"."+kv)
	}
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", kernel6.String()+"/64", "dev", tapName, "nodad")
}

// startStack6 is startStack with IPv6: a link-local and fd00:77::2/64,
// both through DAD against the kernel.
func (l *lab) startStack6(t *testing.T, opts stack.Options, pcap ...string) *host {
	t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	var ep link.Endpoint = tap
	flush := func() {}
	if len(pcap) > 0 {
		f, err := os.Create(pcap[0])
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
	h := &host{st: st, net: socket.New(st), flush: flush}
	h.nic = st.AddNIC(tapName, ep)
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
	return h
}

// waitDAD waits (bounded) until no address of n is tentative: DAD runs
// on the stack's clock and announces nothing when it ends.
func waitDAD(t *testing.T, n *stack.NIC) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy := false
		for _, a := range n.Addrs6() {
			busy = busy || a.Tentative
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DAD did not finish: %+v", n.Addrs6())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func linkLocal(n *stack.NIC) netip.Addr {
	for _, a := range n.Addrs6() {
		if a.Prefix.Addr().IsLinkLocalUnicast() {
			return a.Prefix.Addr()
		}
	}
	return netip.Addr{}
}

// kernelLL is the kernel's link-local address on the TAP.
func (l *lab) kernelLL(t *testing.T) netip.Addr {
	out := l.run(t, 5*time.Second, nil, "ip", "-6", "-o", "addr", "show", "dev", tapName, "scope", "link")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("no kernel link-local address:\n%s", out)
	return netip.Addr{}
}

// check6Errors fails the test when the kernel counted IPv6 or ICMPv6
// errors in what sockstack sent.
func (l *lab) check6Errors(t *testing.T) {
	t.Helper()
	out := l.run(t, 5*time.Second, nil, "nstat", "-az", "Icmp6InErrors", "Ip6InHdrErrors", "Icmp6InCsumErrors", "Ip6InAddrErrors", "Ip6ReasmFails")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] != "0" {
			t.Errorf("kernel nstat: %s = %s", f[0], f[1])
		}
	}
}

func TestInteropIPv6Ping(t *testing.T) {
	l := newLab(t)
	needTools(t, "ping", "nstat")
	l.enable6(t)
	pcap := t.TempDir() + "/ipv6.pcap"
	h := l.startStack6(t, stack.Options{}, pcap)
	ll := linkLocal(h.nic)
	t.Run("ping_-6_global", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", stack6.String())
		wantContains(t, "ping -6", out, "3 packets transmitted, 3 received", "ttl=64")
	})
	t.Run("ping_-6_link-local", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", ll.String()+"%"+tapName)
		wantContains(t, "ping -6 link-local", out, "3 packets transmitted, 3 received")
	})
	t.Run("ping_-6_-s_4000_fragments_both_ways", func(t *testing.T) {
		frag0 := h.st.Stats().IP6.FragCreates.Load()
		out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", stack6.String())
		wantContains(t, "ping -6 -s 4000", out, "3 packets transmitted, 3 received", "4008 bytes from")
		if got := h.st.Stats().IP6.FragCreates.Load() - frag0; got < 9 {
			t.Errorf("sockstack created %d IPv6 fragments for 3 replies, want >= 9", got)
		}
	})
	t.Run("ip_-6_neigh_REACHABLE", func(t *testing.T) {
		out := l.run(t, 5*time.Second, nil, "ip", "-6", "neigh", "show", "dev", tapName)
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, stack6.String()+" ") {
				wantContains(t, "ip -6 neigh", line, h.nic.HardwareAddr().String(), "REACHABLE")
				return
			}
		}
		t.Fatalf("sockstack not in the kernel's neighbour table:\n%s", out)
	})
	t.Run("tshark_no_malformed_ipv6", func(t *testing.T) {
		needTshark(t)
		h.flush()
		bad := tshark(t, "-r", pcap, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
			"-Y", `_ws.malformed || _ws.expert.severity >= warning || icmpv6.checksum.status == "Bad"`)
		if strings.TrimSpace(bad) != "" {
			t.Fatalf("tshark flags:\n%s", bad)
		}
		for _, f := range []string{"icmpv6.type == 135", "icmpv6.type == 136", "icmpv6.type == 129", "ipv6.fragment"} {
			if strings.TrimSpace(tshark(t, "-r", pcap, "-Y", f)) == "" {
				t.Errorf("no packet matches %q", f)
			}
		}
	})
	l.check6Errors(t)
}

// ping6 sends three echo requests from a sockstack ping socket to dst.
func ping6(t *testing.T, h *host, dst netip.Addr, size int) {
	t.Helper()
	s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(3 * time.Second)
	buf := make([]byte, 65536)
	for seq := 1; seq <= 3; seq++ {
		msg := make([]byte, 8+size)
		msg[0] = wire.ICMPv6EchoRequest
		wire.ICMPv6(msg).SetSeq(uint16(seq))
		if _, err := s.SendTo(msg, 0, socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
			t.Fatal(err)
		}
		n, _, err := s.RecvFrom(buf, 0)
		if err != nil || n != len(msg) || buf[0] != wire.ICMPv6EchoReply || int(wire.ICMPv6(buf).Seq()) != seq {
			t.Fatalf("echo %d: %d bytes %v", seq, n, err)
		}
	}
}

func TestInteropIPv6SockstackPing(t *testing.T) {
	l := newLab(t)
	needTools(t, "nstat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	kll := l.kernelLL(t)
	t.Run("ping6_to_kernel_global", func(t *testing.T) { ping6(t, h, kernel6, 56) })
	t.Run("ping6_to_kernel_link-local", func(t *testing.T) { ping6(t, h, kll.WithZone(tapName), 56) })
	t.Run("ping6_-s_4000_to_kernel", func(t *testing.T) { ping6(t, h, kernel6, 4000) })
	if i, ok := h.nic.Neighbor6(kernel6); !ok || (i.State != stack.NeighReachable && i.State != stack.NeighDelay) {
		t.Errorf("kernel's entry in sockstack: %+v %v", i, ok)
	}
	l.check6Errors(t)
}

// pyRA sends one router advertisement from the kernel's link-local
// address: prefix fd00:99::/64 (on-link, autonomous), MTU 1400, router
// lifetime 600 s. The kernel fills the ICMPv6 checksum.
const pyRA = `
import socket, struct, sys
ifname, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 600, 0, 0)
ra += struct.pack("!BB", 1, 1) + mac
ra += struct.pack("!BBHI", 5, 1, 0, 1400)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, "fd00:99::")
s.sendto(ra, ("ff02::1", 0, 0, idx))
print("sent RA")
`

func TestInteropIPv6SLAAC(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "ping", "nstat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{IPv6SLAAC: true})
	kmac := strings.Fields(l.run(t, 5*time.Second, nil, "cat", "/sys/class/net/"+tapName+"/address"))[0]
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", "fd00:99::1/64", "dev", tapName, "nodad")
	wantContains(t, "RA", l.run(t, 10*time.Second, nil, "python3", "-c", pyRA, tapName, kmac), "sent RA")
	slaac := wire.AddrWithIID(netip.MustParsePrefix("fd00:99::/64"), wire.EUI64(h.nic.HardwareAddr()))
	deadline := time.Now().Add(10 * time.Second)
	for !h.st.IsLocal(slaac) {
		if time.Now().After(deadline) {
			t.Fatalf("no SLAAC address %v: %+v", slaac, h.nic.Addrs6())
		}
		time.Sleep(20 * time.Millisecond) // DAD of the new address: no event to wait on
	}
	kll := l.kernelLL(t)
	r, err := h.st.FindRoute(netip.MustParseAddr("2001:db8:77::1"))
	if err != nil || r.Gateway != kll || r.MTU != 1400 {
		t.Fatalf("default route from the RA: %+v %v (router %v)", r, err, kll)
	}
	out := l.run(t, 15*time.Second, nil, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", slaac.String())
	wantContains(t, "ping -6 SLAAC address", out, "3 packets transmitted, 3 received")
	l.check6Errors(t)
}

// A dual-stack echo server as the Python tutorials write it: getaddrinfo
// with AF_UNSPEC and AI_PASSIVE, the first address that binds, an
// AF_INET6 socket with IPV6_V6ONLY off taking both families.
const pyDualStackServer = `
import socket, sys
port = int(sys.argv[1])
for res in socket.getaddrinfo(None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE):
    af, socktype, proto, canonname, sa = res
    if af != socket.AF_INET6:
        continue
    s = socket.socket(af, socktype, proto)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(sa)
    s.listen(4)
    break
for _ in range(2):
    conn, addr = s.accept()
    with conn:
        data = conn.recv(1024)
        conn.sendall(data + (" from %s" % addr[0]).encode())
`

const pyDualStackClient = `
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
for res in socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM):
    af, socktype, proto, canonname, sa = res
    with socket.socket(af, socktype, proto) as s:
        s.settimeout(5)
        s.connect(sa)
        s.sendall(b"Hello, world")
        print("Received", s.recv(1024).decode(), "family", int(af))
`

func TestInteropIPv6DualStackPython(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "ss", "socat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})

	t.Run("sockstack_clients_to_python_dual-stack_server", func(t *testing.T) {
		l.background(t, "python3", "-c", pyDualStackServer, "7007")
		l.waitListen(t, "tcp", 7007)
		for _, c := range []struct {
			fam  int
			addr netip.Addr
			want string
		}{{socket.AF_INET6, kernel6, "from fd00:77::2"}, {socket.AF_INET, kernelIP, "from ::ffff:10.77.0.2"}} {
			s, err := h.net.Socket(c.fam, socket.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			s.SetTimeout(5 * time.Second)
			if err := s.Connect(socket.InetAddr(netip.AddrPortFrom(c.addr, 7007))); err != nil {
				t.Fatalf("connect %v: %v", c.addr, err)
			}
			s.SendAll([]byte("Hello, world"), 0)
			buf := make([]byte, 256)
			n, err := s.Recv(buf, socket.MSG_WAITALL)
			if n == 0 && err != nil {
				t.Fatal(err)
			}
			wantContains(t, "python server", string(buf[:n]), "Hello, world", c.want)
			s.Close()
		}
	})

	t.Run("python_clients_to_sockstack_dual-stack_server", func(t *testing.T) {
		ais, err := h.net.GetAddrInfo("", "7008", socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
		if err != nil {
			t.Fatal(err)
		}
		var ls *socket.Socket
		for _, ai := range ais {
			if ai.Family != socket.AF_INET6 {
				continue
			}
			if ls, err = h.net.Socket(ai.Family, ai.Type, ai.Proto); err != nil {
				t.Fatal(err)
			}
			if err := ls.Bind(ai.Addr); err != nil {
				t.Fatal(err)
			}
			ls.Listen(4)
			break
		}
		defer ls.Close()
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 2; i++ {
				c, from, err := ls.Accept()
				if err != nil {
					done <- err
					return
				}
				buf := make([]byte, 64)
				n, _ := c.Recv(buf, 0)
				c.SendAll(append(buf[:n], []byte(" from "+from.(*socket.SockaddrInet).AddrPort.Addr().String())...), 0)
				c.Close()
			}
			done <- nil
		}()
		out := l.run(t, 10*time.Second, nil, "python3", "-c", pyDualStackClient, stack6.String(), "7008")
		wantContains(t, "python client v6", out, "Received Hello, world from fd00:77::1 family 10")
		out = l.run(t, 10*time.Second, nil, "python3", "-c", pyDualStackClient, stackIP.String(), "7008")
		wantContains(t, "python client v4", out, "Received Hello, world from ::ffff:10.77.0.1 family 2")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("udp_echo_socat_over_ipv6", func(t *testing.T) {
		u, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		if err := u.Bind(socket.Inet6("::", 7)); err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := u.RecvFrom(buf, 0)
				if err != nil {
					return
				}
				u.SendTo(buf[:n], 0, from)
			}
		}()
		out := l.run(t, 10*time.Second, []byte("hello over udp6\n"), "socat", "-t", "2", "-", "UDP6:["+stack6.String()+"]:7")
		wantContains(t, "socat udp6", out, "hello over udp6")
	})
	l.check6Errors(t)
}

// bulk6 sends path from sockstack to the kernel (toKernel) or back over
// IPv6 and returns the SHA-256 of what arrived.
func bulk6(t *testing.T, l *lab, h *host, port int, path string, toKernel bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if toKernel {
		c := l.cmd(ctx, "sh", "-c", fmt.Sprintf("socat -u TCP6-LISTEN:%d,reuseaddr - | sha256sum", port))
		var out syncBuffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		l.waitListen(t, "tcp", port)
		s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetTimeout(5 * time.Minute)
		if err := s.Connect(socket.InetAddr(netip.AddrPortFrom(kernel6, uint16(port)))); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(path)
		defer f.Close()
		buf := make([]byte, 1<<20)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if err := s.SendAll(buf[:n], 0); err != nil {
					t.Fatal(err)
				}
			}
			if err == io.EOF {
				break
			}
		}
		s.Shutdown(socket.SHUT_WR)
		if err := c.Wait(); err != nil {
			t.Fatalf("kernel: %v %s", err, out.String())
		}
		return strings.Fields(out.String() + " x")[0]
	}
	ls, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Bind(socket.Inet6("::", port))
	ls.Listen(1)
	ls.SetTimeout(10 * time.Second)
	c := l.cmd(ctx, "socat", "-u", "OPEN:"+path, fmt.Sprintf("TCP6:[%v]:%d", stack6, port))
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetTimeout(5 * time.Minute)
	got, _ := recvHashed(t, conn)
	c.Wait()
	return got
}

// TestInteropIPv6Bulk: 200 MiB each way over IPv6 by SHA-256, without and
// with 2% loss both ways.
func TestInteropIPv6Bulk(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "tc", "nstat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	const size = 200 << 20
	path, sum := randomFile(t, t.TempDir(), "200MiB.bin", size)
	for _, loss := range []float64{0, 2} {
		suffix := ""
		if loss > 0 {
			suffix = fmt.Sprintf("_loss_%g%%", loss)
			l.loss(t, loss)
		}
		t.Run("200MiB_sockstack_to_kernel"+suffix, func(t *testing.T) {
			start := time.Now()
			if got := bulk6(t, l, h, 6001, path, true); got != sum {
				t.Fatalf("kernel got SHA-256 %s, sent %s", got, sum)
			}
			t.Logf("200 MiB over IPv6 sockstack -> kernel in %v: %.2f Gbit/s", time.Since(start).Round(time.Millisecond), gbps(size, time.Since(start)))
		})
		t.Run("200MiB_kernel_to_sockstack"+suffix, func(t *testing.T) {
			start := time.Now()
			if got := bulk6(t, l, h, 6002, path, false); got != sum {
				t.Fatalf("sockstack got SHA-256 %s, kernel sent %s", got, sum)
			}
			t.Logf("200 MiB over IPv6 kernel -> sockstack in %v: %.2f Gbit/s", time.Since(start).Round(time.Millisecond), gbps(size, time.Since(start)))
		})
	}
	l.check6Errors(t)
}

// TestInteropIPv6HTTP: curl -6 downloads 50 MiB from sockstack's HTTP
// server over IPv6, compared by SHA-256.
func TestInteropIPv6HTTP(t *testing.T) {
	l := newLab(t)
	needTools(t, "curl", "nstat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	root := t.TempDir()
	_, sum := randomFile(t, root, "50MiB.bin", 50<<20)
	s, err := httpd.Serve(h.net, netip.AddrPortFrom(netip.IPv6Unspecified(), 80), httpd.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	dst := t.TempDir() + "/got.bin"
	start := time.Now()
	l.run(t, 2*time.Minute, nil, "curl", "-6", "-sS", "--max-time", "100", "-o", dst, "http://["+stack6.String()+"]/50MiB.bin")
	d := time.Since(start)
	if got := fileHash(t, dst); got != sum {
		t.Fatalf("curl -6 downloaded SHA-256 %s, want %s", got, sum)
	}
	t.Logf("curl -6 50 MiB from sockstack in %v (%.2f Gbit/s)", d.Round(time.Millisecond), gbps(50<<20, d))
	l.check6Errors(t)
}

// TestInteropIPv6DADConflict: the kernel already holds the address
// sockstack wants; the kernel defends it against sockstack's DAD probe
// and sockstack does not assign it.
func TestInteropIPv6DADConflict(t *testing.T) {
	l := newLab(t)
	l.enable6(t)
	taken := netip.MustParseAddr("fd00:77::99")
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", taken.String()+"/64", "dev", tapName, "nodad")
	h := l.startStack6(t, stack.Options{})
	if err := h.nic.AddAddress(netip.PrefixFrom(taken, 64)); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, h.nic)
	if h.st.IsLocal(taken) {
		t.Fatal("sockstack assigned an address the kernel holds")
	}
	if got := h.st.Stats().ND.DADFailures.Load(); got != 1 {
		t.Fatalf("DAD failures %d, want 1", got)
	}
	if !h.st.IsLocal(stack6) {
		t.Fatal("the free address was not assigned")
	}
}

// pySendFrames sends raw Ethernet frames (hex, one per argument) on an
// interface through an AF_PACKET socket: crafted packets from the
// namespace, as scapy would send them.
const pySendFrames = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for h in sys.argv[2:]:
    s.send(bytes.fromhex(h))
print("sent", len(sys.argv) - 2)
`

// TestInteropIPv6Crafted: crafted IPv6 packets from the kernel's side of
// the TAP: a routing header type 0 with segments left, an unknown
// destination option of action 10, a hop-by-hop header out of place, an
// over-long extension chain, and overlapping fragments. sockstack answers
// with the Parameter Problems RFC 8200 / 5095 ask for (the kernel counts
// them in) and drops the rest, counted.
func TestInteropIPv6Crafted(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "nstat")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	kmacS := strings.Fields(l.run(t, 5*time.Second, nil, "cat", "/sys/class/net/"+tapName+"/address"))[0]
	kmac, err := wire.ParseMAC(kmacS)
	if err != nil {
		t.Fatal(err)
	}
	// Make sure sockstack knows the kernel (its errors go back by ND).
	ping6(t, h, kernel6, 8)
	// The crafted datagrams come "from" a kernel UDP socket: an ICMPv6
	// error about a datagram no socket sent counts in the kernel's
	// Icmp6InErrors (udpv6_err finds no socket), which is checked below.
	l.background(t, "python3", "-c", "import socket,time\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('"+kernel6.String()+"',5555))\ntime.sleep(60)")
	l.waitListen(t, "udp", 5555)
	udp := make([]byte, 8+4)
	wire.PutUDP(udp, 5555, 9, 4)
	frame := func(nh uint8, pl []byte) string {
		f := make([]byte, 14+40+len(pl))
		wire.PutEthernet(f, h.nic.HardwareAddr(), kmac, wire.EtherTypeIPv6)
		hd := wire.IPv6Header{PayloadLen: len(pl), NextHeader: nh, HopLimit: 64, Src: kernel6, Dst: stack6}
		hd.Put(f[14:])
		copy(f[54:], pl)
		return hex.EncodeToString(f)
	}
	cat := func(bs ...[]byte) []byte {
		var o []byte
		for _, b := range bs {
			o = append(o, b...)
		}
		return o
	}
	rh0 := cat([]byte{wire.ProtoUDP, 2, 0, 1, 0, 0, 0, 0}, make([]byte, 16))
	opt := []byte{wire.ProtoUDP, 0, 0x9e, 2, 0, 0, 1, 0}
	lateHBH := cat([]byte{wire.ProtoHopByHop, 0, 1, 4, 0, 0, 0, 0}, []byte{wire.ProtoUDP, 0, 1, 4, 0, 0, 0, 0})
	var long []byte
	for i := 0; i < 10; i++ {
		next := wire.ProtoIPv6Opts
		if i == 9 {
			next = wire.ProtoUDP
		}
		long = append(long, next, 0, 1, 4, 0, 0, 0, 0)
	}
	fr1 := make([]byte, 8+16)
	wire.PutIPv6Frag(fr1, wire.ProtoUDP, 0, true, 77)
	fr2 := make([]byte, 8+16)
	wire.PutIPv6Frag(fr2, wire.ProtoUDP, 8, false, 77) // overlaps the first
	st := h.st.Stats()
	pp0 := st.ICMP6.OutParmProblems.Load()
	args := []string{"python3", "-c", pySendFrames, tapName,
		frame(wire.ProtoIPv6Route, cat(rh0, udp)),
		frame(wire.ProtoIPv6Opts, cat(opt, udp)),
		frame(wire.ProtoIPv6Opts, cat(lateHBH, udp)),
		frame(wire.ProtoIPv6Opts, cat(long, udp)),
		frame(wire.ProtoIPv6Frag, fr1), frame(wire.ProtoIPv6Frag, fr2)}
	wantContains(t, "send", l.run(t, 10*time.Second, nil, args...), "sent 6")
	deadline := time.Now().Add(5 * time.Second)
	for st.ICMP6.OutParmProblems.Load()-pp0 < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the frames arrive on the TAP's goroutine
	}
	if got := st.ICMP6.OutParmProblems.Load() - pp0; got != 3 {
		t.Errorf("sockstack sent %d Parameter Problems, want 3 (RH0, option 10, late hop-by-hop)", got)
	}
	if st.IP6.InRoutingHeader.Load() != 1 || st.IP6.InExtLimit.Load() != 1 || st.IP.ReasmOverlaps.Load() != 1 {
		t.Errorf("counters: routing %d, ext limit %d, overlaps %d", st.IP6.InRoutingHeader.Load(), st.IP6.InExtLimit.Load(), st.IP.ReasmOverlaps.Load())
	}
	out := l.run(t, 5*time.Second, nil, "nstat", "-az", "Icmp6InParmProblems")
	if !strings.Contains(out, "Icmp6InParmProblems") || strings.Contains(out, "Icmp6InParmProblems             0") {
		t.Errorf("the kernel received no Parameter Problem:\n%s", out)
	}
	l.check6Errors(t)
}

// TestInteropIPv6Offload: 64 MiB each way over IPv6 between sockstack on
// a TAP with offloads and the kernel, compared by SHA-256. TCP over IPv6
// goes as super-segments both ways (GSO_TCPV6 in the virtio-net header,
// checksums partial over the IPv6 pseudo-header), and the kernel counts
// no checksum or header error in what it received.
func TestInteropIPv6Offload(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "nstat")
	l.enable6(t)
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TUNSETOFFLOAD flags taken: %#x", tap.OffloadFlags())
	st := bulk6Offload(t, l, tapName, tap, "TAP, offloads", 6011)
	ls := &st.Stats().Link
	if ls.OutGSOFrames.Load() == 0 {
		t.Error("no IPv6 super-segment was handed to the kernel")
	}
	if tap.OffloadFlags()&0x04 != 0 && ls.InGSOFrames.Load() == 0 {
		t.Error("the kernel sent no IPv6 super-segment although TSO6 was taken")
	}
	checkOffload6Clean(t, l, st)
	l.check6Errors(t)
}

// bulk6Offload puts sockstack on ep (an offloading link named name)
// with stack6/64 and moves 64 MiB each way over IPv6 between it and the
// kernel through port and port+1, compared by SHA-256; it logs the
// rates and the offload counters and returns the stack.
func bulk6Offload(t *testing.T, l *lab, name string, ep link.Endpoint, what string, port int) *stack.Stack {
	t.Helper()
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close)
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(name, ep)
	if err := h.nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	if err := h.nic.AddAddress(netip.PrefixFrom(stack6, 64)); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, h.nic)
	const size = 64 << 20
	path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
	start := time.Now()
	if got := bulk6(t, l, h, port, path, true); got != sum {
		t.Fatalf("kernel got SHA-256 %s, sent %s", got, sum)
	}
	t.Logf("64 MiB over IPv6 sockstack -> kernel (%s): %.2f Gbit/s", what, gbps(size, time.Since(start)))
	start = time.Now()
	if got := bulk6(t, l, h, port+1, path, false); got != sum {
		t.Fatalf("sockstack got SHA-256 %s, kernel sent %s", got, sum)
	}
	t.Logf("64 MiB over IPv6 kernel -> sockstack (%s): %.2f Gbit/s", what, gbps(size, time.Since(start)))
	ls := &st.Stats().Link
	t.Logf("super-segments sent whole %d, cut in software %d, received whole %d, coalesced %d from %d, bad offload %d",
		ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), ls.InGSOFrames.Load(), ls.InGROFrames.Load(), ls.InGROSegs.Load(), ls.InBadOffload.Load())
	return st
}

// checkOffload6Clean fails if sockstack saw malformed offload state or
// dropped IPv6 packets, or if the kernel counted a checksum or header
// error.
func checkOffload6Clean(t *testing.T, l *lab, st *stack.Stack) {
	t.Helper()
	if st.Stats().Link.InBadOffload.Load() != 0 {
		t.Error("frames with malformed offload state")
	}
	if d := st.Stats().IP6.InDiscards.Load(); d != 0 {
		t.Errorf("sockstack dropped %d IPv6 packets (bad TCP checksum or header)", d)
	}
	out := l.run(t, 5*time.Second, nil, "nstat", "-az", "TcpInCsumErrors", "TcpInErrs", "Ip6InHdrErrors", "Ip6InDiscards", "Icmp6InCsumErrors")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] != "0" {
			t.Errorf("kernel nstat: %s = %s", f[0], f[1])
		}
	}
}

// TestInteropIPv6AFPacketOffload: TestInteropIPv6Offload over an
// AF_PACKET socket with virtio-net headers on a veth (sockstack on vp1 in
// a namespace of its own whose kernel has IPv6 off there; the kernel at
// fd00:77::1 on vp0 in the lab namespace): 64 MiB each way by SHA-256,
// super-segments whole both ways, no checksum error in the kernel.
func TestInteropIPv6AFPacketOffload(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "nstat", "sysctl")
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		missing(t, "IPv6 in the kernel")
	}
	ns2 := l.ns + "-p6"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns2).Run() })
	for _, s := range [][]string{
		{"ip", "netns", "add", ns2},
		{"ip", "-n", l.ns, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1", "netns", ns2},
		{"ip", "netns", "exec", ns2, "sysctl", "-q", "-w", "net.ipv6.conf.vp1.disable_ipv6=1"},
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf.vp0.accept_dad=0"},
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf.vp0.disable_ipv6=0"},
		{"ip", "-n", l.ns, "-6", "addr", "add", kernel6.String() + "/64", "dev", "vp0", "nodad"},
		{"ip", "-n", l.ns, "link", "set", "vp0", "up"},
		{"ip", "-n", ns2, "link", "set", "vp1", "up"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	ep, err := link.OpenAFPacket("vp1", link.AFPacketOptions{Netns: ns2, Offload: true, QdiscBypass: true})
	if err != nil {
		t.Fatal(err)
	}
	st := bulk6Offload(t, l, "vp1", ep, "AF_PACKET, veth, offloads", 6021)
	ls := &st.Stats().Link
	if ls.OutGSOFrames.Load() == 0 || ls.InGSOFrames.Load() == 0 {
		t.Error("IPv6 super-segments did not cross the AF_PACKET socket whole")
	}
	checkOffload6Clean(t, l, st)
}
