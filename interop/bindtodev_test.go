package interop

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// SO_BINDTODEVICE on TCP against the kernel: one sockstack host with two
// TAPs, each into a namespace of the test's own whose kernel holds the
// same service address 192.0.2.80 behind it. sockstack's main table
// reaches the service through the first TAP (the second's route has a
// higher metric): an unbound client reaches the first namespace's
// server, a client bound to either TAP that TAP's namespace only (the
// server sees the TAP's address as the peer). A sockstack listener bound
// to the first TAP takes the first namespace's kernel client and resets
// the second's.

// bdNS makes a namespace with a TAP (kernel side addr/24 and the service
// address 192.0.2.80/32), deleted when the test ends.
func bdNS(t *testing.T, tap, addr string) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns := "ssbd-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, s := range []string{
		"link set lo up",
		"tuntap add dev " + tap + " mode tap",
		"addr add " + addr + "/24 dev " + tap,
		"addr add 192.0.2.80/32 dev " + tap,
		"link set " + tap + " up",
	} {
		args := append([]string{"-n", ns}, strings.Fields(s)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return ns
}

// nsSocket makes a kernel IPv4 TCP socket inside ns.
func nsSocket(t *testing.T, ns string) int { return nsSocketType(t, ns, unix.SOCK_STREAM) }

// nsSocketType makes a kernel IPv4 socket of type typ inside ns.
func nsSocketType(t *testing.T, ns string, typ int) int {
	t.Helper()
	nsfd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns: %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	// Back to the test's namespace at once: the socket stays in ns.
	if e := unix.Setns(orig, unix.CLONE_NEWNET); e != nil {
		t.Fatalf("setns back: %v", e) // the thread stays locked and dies with the goroutine
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// nsListener is a kernel listener on 192.0.2.80:port inside ns.
func nsListener(t *testing.T, ns string, port int) net.Listener {
	t.Helper()
	fd := nsSocket(t, ns)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{192, 0, 2, 80}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// bdLab is sockstack with two TAPs, each into a namespace of its own
// (bdNS), and the service routes through the first (metric 0) and the
// second (metric 100).
func bdLab(t *testing.T) (nsA, nsB string, st *stack.Stack, nics [2]*stack.NIC, n *socket.Net) {
	t.Helper()
	needRoot(t)
	needTools(t, "ip")
	nsA = bdNS(t, "bdtap0", "10.70.0.1")
	nsB = bdNS(t, "bdtap1", "10.71.0.1")
	st = stack.New(stack.Options{Name: "sockstack", ARPRetryTime: 200 * time.Millisecond})
	t.Cleanup(st.Close)
	for i, c := range []struct{ ns, tap, addr string }{{nsA, "bdtap0", "10.70.0.2/24"}, {nsB, "bdtap1", "10.71.0.2/24"}} {
		ep, err := link.OpenTAP(c.tap, link.TAPOptions{Netns: c.ns})
		if err != nil {
			t.Fatal(err)
		}
		nics[i] = st.AddNIC(c.tap, ep)
		if err := nics[i].AddAddress(netip.MustParsePrefix(c.addr)); err != nil {
			t.Fatal(err)
		}
	}
	svc := netip.MustParsePrefix("192.0.2.80/32")
	st.AddRoute(stack.Route{Prefix: svc, Gateway: netip.MustParseAddr("10.70.0.1"), NIC: nics[0]})
	st.AddRoute(stack.Route{Prefix: svc, Gateway: netip.MustParseAddr("10.71.0.1"), NIC: nics[1], Metric: 100})
	return nsA, nsB, st, nics, socket.New(st)
}

func TestInteropBindToDeviceTCP(t *testing.T) {
	nsA, nsB, _, _, n := bdLab(t)

	const port = 7080
	lA, lB := nsListener(t, nsA, port), nsListener(t, nsB, port)
	accepted := map[string]chan string{"A": make(chan string, 8), "B": make(chan string, 8)}
	for name, l := range map[string]net.Listener{"A": lA, "B": lB} {
		ch := accepted[name]
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				// Echo one byte: the connection carries data both ways.
				b := make([]byte, 1)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Read(b); err == nil {
					c.Write(b)
				}
				ch <- c.RemoteAddr().(*net.TCPAddr).IP.String()
				c.Close()
			}
		}()
	}
	for _, c := range []struct {
		dev, want, from string
	}{
		{"", "A", "10.70.0.2"},
		{"bdtap1", "B", "10.71.0.2"},
		{"bdtap0", "A", "10.70.0.2"},
	} {
		s, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.SetTimeout(10 * time.Second)
		if c.dev != "" {
			if err := s.SetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, c.dev); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Connect(socket.Inet("192.0.2.80", port)); err != nil {
			t.Fatalf("bound to %q: connect: %v", c.dev, err)
		}
		if _, err := s.Send([]byte{'z'}, 0); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if k, err := s.Recv(b, 0); err != nil || k != 1 || b[0] != 'z' {
			t.Fatalf("bound to %q: echo %d %q %v", c.dev, k, b, err)
		}
		select {
		case from := <-accepted[c.want]:
			if from != c.from {
				t.Fatalf("bound to %q: namespace %s saw the client as %s, want %s", c.dev, c.want, from, c.from)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("bound to %q: namespace %s accepted nothing", c.dev, c.want)
		}
		s.Close()
	}
	for name, ch := range accepted {
		select {
		case from := <-ch:
			t.Fatalf("namespace %s accepted an unexpected connection from %s", name, from)
		default:
		}
	}

	// A sockstack listener bound to bdtap0: the kernel client of A gets
	// in, B's is reset.
	l, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.SetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, "bdtap0"); err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	dialFrom := func(ns string, dst [4]byte) error {
		fd := nsSocket(t, ns)
		defer unix.Close(fd)
		tv := unix.Timeval{Sec: 10}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		return unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: dst})
	}
	if err := dialFrom(nsB, [4]byte{10, 71, 0, 2}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("kernel client of B to a listener bound to bdtap0: %v, want ECONNREFUSED", err)
	}
	if err := dialFrom(nsA, [4]byte{10, 70, 0, 2}); err != nil {
		t.Fatalf("kernel client of A to a listener bound to bdtap0: %v", err)
	}
	l.SetTimeout(10 * time.Second)
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE); err != nil || v != "bdtap0" {
		t.Fatalf("accepted socket bound to %v %v, want bdtap0", v, err)
	}
	c.Close()
}

// SO_BINDTODEVICE on UDP against the kernel, in bdLab: two sockstack
// sockets on one port, bound to the two TAPs (no conflict, as on Linux),
// each take what the kernel of their namespace sends, even a datagram
// for the other TAP's address; IP_PKTINFO names the TAP it came in on;
// the answers leave by the bound TAP, though the main table prefers the
// first.
func TestInteropBindToDeviceUDP(t *testing.T) {
	nsA, nsB, _, nics, n := bdLab(t)
	// B's kernel reaches sockstack's first address through the second TAP.
	if out, err := exec.Command("ip", "-n", nsB, "route", "add", "10.70.0.0/24", "via", "10.71.0.2").CombinedOutput(); err != nil {
		t.Fatalf("ip route add: %v: %s", err, out)
	}
	const port = 7081
	var us [2]*socket.Socket
	for i, dev := range []string{"bdtap0", "bdtap1"} {
		u, err := n.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		u.SetTimeout(10 * time.Second)
		if err := u.SetSockOpt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev); err != nil {
			t.Fatal(err)
		}
		if err := u.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1); err != nil {
			t.Fatal(err)
		}
		if err := u.Bind(socket.Inet("0.0.0.0", port)); err != nil {
			t.Fatalf("bind on %s: %v", dev, err)
		}
		us[i] = u
	}
	// Kernel senders: a UDP socket on 192.0.2.80 in each namespace,
	// which also hears the answer.
	kernel := func(ns string) int {
		fd := nsSocketType(t, ns, unix.SOCK_DGRAM)
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{192, 0, 2, 80}}); err != nil {
			t.Fatal(err)
		}
		tv := unix.Timeval{Sec: 10}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return fd
	}
	kA, kB := kernel(nsA), kernel(nsB)
	for _, c := range []struct {
		name string
		fd   int
		to   [4]byte
		want int // the socket (and TAP) it must reach
	}{
		{"A to the first TAP's address", kA, [4]byte{10, 70, 0, 2}, 0},
		{"B to the second TAP's address", kB, [4]byte{10, 71, 0, 2}, 1},
		{"B to the first TAP's address, in by the second", kB, [4]byte{10, 70, 0, 2}, 1},
	} {
		if err := unix.Sendto(c.fd, []byte(c.name), 0, &unix.SockaddrInet4{Port: port, Addr: c.to}); err != nil {
			t.Fatalf("%s: sendto: %v", c.name, err)
		}
		u := us[c.want]
		b := make([]byte, 128)
		k, _, from, pi, ok, err := u.RecvMsgPktinfo(b, 0)
		if err != nil || string(b[:k]) != c.name {
			t.Fatalf("%s: socket on %s read %q %v", c.name, nics[c.want].Name(), b[:k], err)
		}
		if !ok || pi.Ifindex != nics[c.want].ID() || pi.Addr != netip.AddrFrom4(c.to) {
			t.Fatalf("%s: IP_PKTINFO %+v (%v), want ifindex %d addr %v", c.name, pi, ok, nics[c.want].ID(), netip.AddrFrom4(c.to))
		}
		// The answer leaves by the socket's TAP, to that namespace's kernel.
		if _, err := u.SendTo([]byte("re: "+c.name), 0, from); err != nil {
			t.Fatal(err)
		}
		k, _, err = unix.Recvfrom(c.fd, b, 0)
		if err != nil {
			t.Fatalf("%s: no answer reached the kernel: %v", c.name, err)
		}
		if string(b[:k]) != "re: "+c.name {
			t.Fatalf("%s: the kernel read %q", c.name, b[:k])
		}
	}
	for i, u := range us {
		u.SetBlocking(false)
		if _, _, err := u.RecvFrom(make([]byte, 8), 0); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("socket on %s: a datagram too many (%v)", nics[i].Name(), err)
		}
	}
}
