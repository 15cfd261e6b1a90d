package interop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/stack"
)

// Transparent proxying from the outside, as a tun2socks-style program
// runs it: the kernel of the lab's namespace routes the documentation
// prefixes 198.51.100.0/24 and 2001:db8:77::/48 into the TUN (they
// never leave the namespace); sockstack diverts everything addressed to
// them to its transparent listener and UDP socket on port 9000, which
// report each connection's and datagram's original destination back;
// the kernel's clients (python3, curl, socat) check it, and that the
// answers come from the address they sent to. A third documentation
// prefix, 203.0.113.0/24, diverted to a port with no transparent
// listener, is refused.

var (
	tproxyPrefix4 = netip.MustParsePrefix("198.51.100.0/24")
	tproxyPrefix6 = netip.MustParsePrefix("2001:db8:77::/48")
)

const tproxyPort = 9000

// tproxyServeTCP answers each accepted connection: an HTTP GET with a
// body naming the conn's local address (the original destination), any
// other first line with "orig=<local> got=<line>".
func tproxyServeTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			orig := c.LocalAddr().(*net.TCPAddr).AddrPort()
			orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			var n int64
			if _, err := fmt.Sscanf(line, "ECHO %d", &n); err == nil {
				// A bulk echo through the diverted connection.
				c.SetDeadline(time.Now().Add(60 * time.Second))
				io.CopyN(c, r, n)
				return
			}
			if strings.HasPrefix(line, "GET ") {
				for { // the request's headers
					h, err := r.ReadString('\n')
					if err != nil || h == "\r\n" || h == "\n" {
						break
					}
				}
				body := "orig=" + orig.String() + "\n"
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
				return
			}
			fmt.Fprintf(c, "orig=%s got=%s\n", orig, line)
		}()
	}
}

// tproxyServeUDP answers each datagram from its original destination
// with "orig=<orig> got=<payload>".
// tproxyServers runs the transparent servers on port 9000 of h, both
// families: TCP (tproxyServeTCP) and UDP (tproxyServeUDP), until the
// test ends.
func tproxyServers(t *testing.T, h *host) {
	t.Helper()
	for _, nw := range [][2]string{{"tcp4", "0.0.0.0:9000"}, {"tcp6", "[::]:9000"}} {
		ln, err := netconn.ListenTransparent(h.net, nw[0], nw[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go tproxyServeTCP(ln)
	}
	for _, nw := range [][2]string{{"udp4", "0.0.0.0:9000"}, {"udp6", "[::]:9000"}} {
		u, err := netconn.ListenTransparentUDP(h.net, nw[0], nw[1])
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		t.Cleanup(func() { u.Close(); <-done })
		go func() { defer close(done); tproxyServeUDP(t, u, h) }()
	}
}

func tproxyServeUDP(t *testing.T, u *netconn.UDPConn, h *host) {
	buf := make([]byte, 2048)
	for {
		n, src, orig, err := u.ReadMsgOrigDst(buf)
		if err != nil {
			return
		}
		if !orig.IsValid() {
			t.Errorf("datagram from %v without its original destination", src)
			continue
		}
		msg := fmt.Sprintf("orig=%s got=%s", orig, buf[:n])
		if _, err := netconn.WriteFromTo(h.net, []byte(msg), orig, src); err != nil {
			t.Errorf("answer from %v to %v: %v", orig, src, err)
		}
	}
}

// tproxyClient is the kernel side's python3 client: for each
// "tcp|udp addr port" line it connects or sends, and prints "OK ..." when
// the answer names the original destination (and, for UDP, came from it).
const tproxyClient = `
import socket, sys
fails = 0
for line in sys.argv[1:]:
    proto, addr, port = line.split()
    port = int(port)
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    want = ('[%s]:%d' % (addr, port)) if fam == socket.AF_INET6 else ('%s:%d' % (addr, port))
    if proto == 'tcp':
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((addr, port))
        peer = s.getpeername()
        s.sendall(b'hello ' + want.encode() + b'\n')
        got = b''
        while not got.endswith(b'\n'):
            d = s.recv(4096)
            if not d:
                break
            got += d
        s.close()
        ok = got.decode() == 'orig=%s got=hello %s\n' % (want, want) and peer[0] == addr and peer[1] == port
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(10)
        s.sendto(b'q ' + want.encode(), (addr, port))
        got, src = s.recvfrom(4096)
        s.close()
        ok = got.decode() == 'orig=%s got=q %s' % (want, want) and src[0] == addr and src[1] == port
        peer = src
    print(('OK' if ok else 'BAD'), proto, want, 'answer', repr(got), 'from', peer)
    if not ok:
        fails += 1
sys.exit(1 if fails else 0)
`

// TestInteropTransparent: the kernel connects to and sends to several
// addresses and ports of the diverted prefixes, IPv4 and IPv6; every
// connection reaches sockstack's one transparent listener with its
// original destination, every answer comes from it.
func TestInteropTransparent(t *testing.T) {
	for _, offload := range []bool{false, true} {
		name := "plain"
		if offload {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) { testTransparent(t, offload) })
	}
}

// tproxyBulk sends 16 MiB of random bytes through a diverted connection
// and checks that the echo is the same (SHA-256), while it is sent.
const tproxyBulk = `
import socket, sys, os, hashlib, threading
addr, port, n = sys.argv[1], int(sys.argv[2]), 16 << 20
data = os.urandom(n)
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.create_connection((addr, port), timeout=30)
s.sendall(b'ECHO %d\n' % n)
def send():
    s.sendall(data)
th = threading.Thread(target=send); th.start()
h, got = hashlib.sha256(), 0
while got < n:
    d = s.recv(1 << 16)
    if not d:
        break
    h.update(d); got += len(d)
th.join(); s.close()
ok = got == n and h.hexdigest() == hashlib.sha256(data).hexdigest()
print('OK' if ok else 'BAD', got)
sys.exit(0 if ok else 1)
`

func testTransparent(t *testing.T, offload bool) {
	needRoot(t)
	needTools(t, "python3", "curl", "socat")
	l, h := tunLab(t, offload)
	for _, s := range [][]string{
		{"ip", "-n", l.ns, "route", "add", tproxyPrefix4.String(), "dev", tapName},
		{"ip", "-n", l.ns, "-6", "route", "add", tproxyPrefix6.String(), "dev", tapName},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	for _, pf := range []netip.Prefix{tproxyPrefix4, tproxyPrefix6} {
		if err := h.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: pf, ToPort: tproxyPort}); err != nil {
			t.Fatal(err)
		}
	}
	tproxyServers(t, h)

	cases := []string{
		"tcp 198.51.100.7 443", "tcp 198.51.100.200 22", "tcp 198.51.100.1 8080",
		"udp 198.51.100.53 53", "udp 198.51.100.9 5353",
		"tcp 2001:db8:77::5 443", "tcp 2001:db8:77:1::9 25",
		"udp 2001:db8:77::53 53",
	}
	out, err := l.try(60*time.Second, nil, append([]string{"python3", "-c", tproxyClient}, cases...)...)
	t.Logf("python3 client:\n%s", out)
	if err != nil {
		t.Fatalf("python3 client: %v", err)
	}
	if n := strings.Count(out, "OK "); n != len(cases) {
		t.Fatalf("%d of %d cases OK", n, len(cases))
	}

	// A bulk echo both ways through diverted connections, both families.
	for _, dst := range [][2]string{{"198.51.100.44", "5001"}, {"2001:db8:77::44", "5001"}} {
		if out, err := l.try(90*time.Second, nil, "python3", "-c", tproxyBulk, dst[0], dst[1]); err != nil || !strings.HasPrefix(out, "OK") {
			t.Fatalf("bulk echo via %s: %q %v", dst[0], out, err)
		}
	}

	// curl: an HTTP request to a diverted address, both families.
	for _, u := range []string{"http://198.51.100.80:80/", "http://[2001:db8:77::80]:8080/"} {
		got := l.run(t, 30*time.Second, nil, "curl", "-sS", "--max-time", "10", u)
		want := "orig=" + strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/") + "\n"
		if got != want {
			t.Fatalf("curl %s: %q, want %q", u, got, want)
		}
	}
	// socat: a line to another address.
	got := l.run(t, 30*time.Second, []byte("ping\n"), "socat", "-t", "5", "-T", "10", "-", "TCP:198.51.100.99:7")
	if got != "orig=198.51.100.99:7 got=ping\n" {
		t.Fatalf("socat: %q", got)
	}

	st := h.st.Stats()
	t.Logf("diverted: TCP segments %d, UDP datagrams %d; UDP with no socket %d", st.TProxy.DivertedTCP.Load(), st.TProxy.DivertedUDP.Load(), st.TProxy.UDPNoSocket.Load())
	if st.TProxy.DivertedUDP.Load() != 3 || st.TProxy.UDPNoSocket.Load() != 0 {
		t.Errorf("DivertedUDP %d, want 3", st.TProxy.DivertedUDP.Load())
	}

	// A diverted SYN with no transparent listener on the port is refused
	// (RST): the kernel's connect fails at once with ECONNREFUSED. The
	// third documentation prefix, 203.0.113.0/24, also stays inside the
	// namespace.
	l.run(t, 10*time.Second, nil, "ip", "route", "add", "203.0.113.0/24", "dev", tapName)
	if err := h.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP, Dst: netip.MustParsePrefix("203.0.113.0/24"), ToPort: 9001}); err != nil {
		t.Fatal(err)
	}
	out, err = l.try(30*time.Second, nil, "python3", "-c", `
import socket, sys
s = socket.socket(); s.settimeout(10)
try:
    s.connect(('203.0.113.9', 80))
except ConnectionRefusedError:
    print('refused'); sys.exit(0)
except Exception as e:
    print('other', repr(e)); sys.exit(1)
print('connected'); sys.exit(1)
`)
	if err != nil || strings.TrimSpace(out) != "refused" {
		t.Fatalf("no listener: %q %v", out, err)
	}
	if n := h.st.TCP.Stats().TProxyNoListener; n != 1 {
		t.Fatalf("TProxyNoListener %d, want 1", n)
	}
}

// TestInteropTransparentThroughput: 512 MiB from the kernel to sockstack
// over a TUN with offloads, to a diverted address (the transparent
// listener) and to sockstack's own address (a plain listener), one after
// the other. Figures only.
func TestInteropTransparentThroughput(t *testing.T) {
	needTools(t, "socat")
	l, h := tunLab(t, true)
	l.run(t, 10*time.Second, nil, "ip", "route", "add", tproxyPrefix4.String(), "dev", tapName)
	if err := h.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP, Dst: tproxyPrefix4, ToPort: tproxyPort}); err != nil {
		t.Fatal(err)
	}
	const size = 512 << 20
	measure := func(transparent bool, dst string) float64 {
		listen := netconn.Listen
		addr := fmt.Sprintf("0.0.0.0:%d", tproxyPort+1)
		if transparent {
			listen = netconn.ListenTransparent
			addr = fmt.Sprintf("0.0.0.0:%d", tproxyPort)
		}
		ln, err := listen(h.net, "tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := l.cmd(ctx, "socat", "-b262144", "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), "TCP:"+dst)
		done := startCmd(t, c)
		start := time.Now()
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Minute))
		n, err := io.Copy(io.Discard, conn)
		d := time.Since(start)
		if err != nil || n != size {
			t.Fatalf("received %d bytes: %v", n, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if transparent && conn.LocalAddr().String() != dst {
			t.Fatalf("diverted conn named %v, want %s", conn.LocalAddr(), dst)
		}
		return gbps(size, d)
	}
	div := measure(true, "198.51.100.44:5001")
	own := measure(false, fmt.Sprintf("%v:%d", stackIP, tproxyPort+1))
	ls := &h.st.Stats().Link
	t.Logf("512 MiB kernel -> sockstack over a TUN with offloads: diverted %.2f Gbit/s, to its own address %.2f Gbit/s (ratio %.2f); received whole %d, coalesced %d",
		div, own, div/own, ls.InGSOFrames.Load(), ls.InGROFrames.Load())
}

// pyTransparentProbe sends crafted packets from the namespace to the
// diverted prefix (the kernel routes them into the TUN) and prints each
// TCP answer seen on the TUN as "TCP src sport dport flags": a SYN with
// a bad TCP checksum (sport 41001), a good SYN (41002), and a UDP
// datagram with a bad checksum (to port 53).
const pyTransparentProbe = `
import sys, threading, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, UDP, Raw, send, AsyncSniffer
iface = sys.argv[1]
ready = threading.Event()
sn = AsyncSniffer(iface=iface, lfilter=lambda p: IP in p and TCP in p and p[TCP].dport in (41001, 41002),
                  timeout=3, started_callback=ready.set)
sn.start()
if not ready.wait(10):
    print("sniffer did not start"); sys.exit(1)
send([IP(dst="198.51.100.7")/TCP(sport=41001, dport=443, flags="S", seq=1, chksum=0x1234),
      IP(dst="198.51.100.7")/TCP(sport=41002, dport=443, flags="S", seq=1),
      IP(dst="198.51.100.53")/UDP(sport=41003, dport=53, chksum=0x1234)/Raw(b"bad")], verbose=0)
sn.join()
for p in sn.results:
    print("TCP %s %d %d %s" % (p[IP].src, p[TCP].sport, p[TCP].dport, p[TCP].flags))
`

// TestInteropTransparentScapy: packets crafted in the namespace and
// diverted by a rule still pass sockstack's input checks: a SYN with a
// bad checksum and a UDP datagram with one are dropped and counted, a
// good SYN is answered with a SYN-ACK from the original destination.
func TestInteropTransparentScapy(t *testing.T) {
	needScapy(t)
	l, h := tunLab(t, false)
	l.run(t, 10*time.Second, nil, "ip", "route", "add", tproxyPrefix4.String(), "dev", tapName)
	if err := h.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: tproxyPrefix4, ToPort: tproxyPort}); err != nil {
		t.Fatal(err)
	}
	ln, err := netconn.ListenTransparent(h.net, "tcp4", "0.0.0.0:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u, err := netconn.ListenTransparentUDP(h.net, "udp4", "0.0.0.0:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	st := h.st.Stats()
	discards, udpCsum := st.IP.InDiscards.Load(), st.UDP.InCsumErrors.Load()
	out := l.run(t, 60*time.Second, nil, scapyPython, "-c", pyTransparentProbe, tapName)
	t.Logf("answers seen on the TUN:\n%s", out)
	if strings.Contains(out, " 41001 ") {
		t.Error("a SYN with a bad checksum was answered")
	}
	if !strings.Contains(out, "TCP 198.51.100.7 443 41002 SA") {
		t.Error("no SYN-ACK from the original destination 198.51.100.7:443 to the good SYN")
	}
	if d := st.IP.InDiscards.Load() - discards; d != 1 {
		t.Errorf("IP.InDiscards +%d, want 1 (the bad TCP checksum)", d)
	}
	if d := st.UDP.InCsumErrors.Load() - udpCsum; d != 1 {
		t.Errorf("UDP.InCsumErrors +%d, want 1", d)
	}
	u.SetReadDeadline(time.Now())
	if _, _, _, err := u.ReadMsgOrigDst(make([]byte, 16)); err == nil {
		t.Error("the datagram with a bad checksum was delivered")
	}
}

// TestInteropTProxyUpDivert runs the real `sockstack up` binary with
// --divert on the lab's TAP: the kernel routes 198.51.100.0/24 to the
// stack, connects to arbitrary addresses and ports there, and reaches
// the echo service on port 7, which `up` made transparent.
func TestInteropTProxyUpDivert(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat")
	bin := sockstackBin(t)
	l.run(t, 10*time.Second, nil, "ip", "route", "add", tproxyPrefix4.String(), "via", stackIP.String(), "dev", tapName)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := exec.CommandContext(ctx, bin, append(append([]string{"up"}, l.tapArgs()...),
		"--serve", "echo", "--divert", "tcp:"+tproxyPrefix4.String()+":7")...)
	up.WaitDelay = 2 * time.Second
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	up.Stderr = up.Stdout
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	running := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "running; SIGINT or SIGTERM stops it") {
			running = true
			break
		}
	}
	rest := make(chan struct{})
	go func() {
		defer close(rest)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	stop := func() error {
		up.Process.Signal(syscall.SIGTERM)
		<-rest
		return up.Wait()
	}
	if !running {
		stop()
		t.Fatalf("up never ran:\n%s", strings.Join(lines, "\n"))
	}
	if all := strings.Join(lines, "\n"); !strings.Contains(all, "divert tcp 198.51.100.0/24 all ports -> port 7 (to the service there)") {
		stop()
		t.Fatalf("up did not report the rule:\n%s", all)
	}
	for _, dst := range []string{"198.51.100.7:443", "198.51.100.200:22", "198.51.100.1:7"} {
		got, err := l.try(30*time.Second, []byte("through "+dst+"\n"), "socat", "-t", "5", "-T", "10", "-", "TCP:"+dst)
		if err != nil || got != "through "+dst+"\n" {
			stop()
			t.Fatalf("socat to %s: %q %v", dst, got, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("up: %v\n%s", err, strings.Join(lines, "\n"))
	}
}

// pyTransparentFrag6 sends, from the namespace to the diverted IPv6
// prefix, datagrams whose chain goes on after the fragment header
// (fragment, destination options, UDP), in two fragments and as an
// atomic fragment, and a SYN the same way; it prints each TCP answer
// seen on the TUN as "TCP src sport dport flags".
const pyTransparentFrag6 = `
import sys, threading, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrDestOpt, PadN, TCP, UDP, Raw, send, AsyncSniffer
iface, src = sys.argv[1], sys.argv[2]
def fragmentable(dst, l4):
    # The destination options header and what follows, checksummed
    # against the real addresses; then cut after the fixed header.
    return bytes(IPv6(src=src, dst=dst)/IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])/l4)[40:]
def frags(dst, fp, ident, cut):
    if cut is None:
        return [IPv6(src=src, dst=dst)/IPv6ExtHdrFragment(nh=60, offset=0, m=0, id=ident)/Raw(fp)]
    return [IPv6(src=src, dst=dst)/IPv6ExtHdrFragment(nh=60, offset=0, m=1, id=ident)/Raw(fp[:cut]),
            IPv6(src=src, dst=dst)/IPv6ExtHdrFragment(nh=60, offset=cut//8, m=0, id=ident)/Raw(fp[cut:])]
ready = threading.Event()
sn = AsyncSniffer(iface=iface, lfilter=lambda p: IPv6 in p and TCP in p and p[TCP].dport == 41010,
                  timeout=3, started_callback=ready.set)
sn.start()
if not ready.wait(10):
    print("sniffer did not start"); sys.exit(1)
pkts = frags("2001:db8:77::53", fragmentable("2001:db8:77::53", UDP(sport=41011, dport=53)/Raw(b"two fragments" * 20)), 7001, 64)
pkts += frags("2001:db8:77::54", fragmentable("2001:db8:77::54", UDP(sport=41012, dport=54)/Raw(b"atomic")), 7002, None)
pkts += frags("2001:db8:77::7", fragmentable("2001:db8:77::7", TCP(sport=41010, dport=443, flags="S", seq=1,
    options=[("MSS", 1440), ("SAckOK", b""), ("NOP", None), ("NOP", None)])), 7003, 32)  # 36 bytes: 4 in the second fragment
send(pkts, verbose=0)
sn.join()
for p in sn.results:
    print("TCP %s %d %d %s" % (p[IPv6].src, p[TCP].sport, p[TCP].dport, p[TCP].flags))
`

// TestInteropTProxyIPv6FragmentChain: IPv6 packets crafted in the
// namespace whose extension-header chain continues after the fragment
// header are diverted, as Linux's TPROXY (which sees them defragmented)
// diverts them: two datagrams reach the transparent UDP socket with
// their original destinations, and the SYN is answered from its own.
func TestInteropTProxyIPv6FragmentChain(t *testing.T) {
	needScapy(t)
	l, h := tunLab(t, false)
	l.run(t, 10*time.Second, nil, "ip", "-6", "route", "add", tproxyPrefix6.String(), "dev", tapName)
	if err := h.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: tproxyPrefix6, ToPort: tproxyPort}); err != nil {
		t.Fatal(err)
	}
	ln, err := netconn.ListenTransparent(h.net, "tcp6", "[::]:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u, err := netconn.ListenTransparentUDP(h.net, "udp6", "[::]:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	out := l.run(t, 60*time.Second, nil, scapyPython, "-c", pyTransparentFrag6, tapName, kernel6.String())
	t.Logf("answers seen on the TUN:\n%s", out)
	if !strings.Contains(out, "TCP 2001:db8:77::7 443 41010 SA") {
		t.Error("no SYN-ACK from the original destination [2001:db8:77::7]:443")
	}
	want := map[string]int{"[2001:db8:77::53]:53": 260, "[2001:db8:77::54]:54": 6}
	u.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure bound; the datagrams are queued by now
	for range want {
		b := make([]byte, 1024)
		n, src, orig, err := u.ReadMsgOrigDst(b)
		if err != nil {
			t.Fatalf("diverted datagrams: %v (still missing %v)", err, want)
		}
		if src.Addr() != kernel6 || want[orig.String()] != n {
			t.Fatalf("%d bytes from %v to %v; want one of %v", n, src, orig, want)
		}
		delete(want, orig.String())
	}
	if n := h.st.Stats().TProxy.DivertedUDP.Load(); n != 2 {
		t.Errorf("DivertedUDP %d, want 2", n)
	}
}
