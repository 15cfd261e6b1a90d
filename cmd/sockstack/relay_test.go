package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// relay's flag errors name the problem and show the usage line; none of
// them opens a device.
func TestRelayFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"relay"}, []string{"relay needs --tun NAME", "usage: sockstack relay --tun NAME", "example: ip netns exec S sockstack relay"}},
		{[]string{"relay", "--tun", "tun0"}, []string{"relay needs --addr CIDR"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "banana"}, []string{`--addr: bad address "banana"`}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-conns", "0"}, []string{"--max-conns 0: want at least 1"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-udp-flows", "-1"}, []string{"--max-udp-flows -1: want at least 1"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--udp-timeout", "0s"}, []string{"--udp-timeout 0s: want a positive duration"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-conns-per-client", "-1"}, []string{"--max-conns-per-client -1: want 0 (no limit) or more"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-udp-flows-per-client", "-2"}, []string{"--max-udp-flows-per-client -2: want 0 (no limit) or more"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--connect-timeout", "-1s"}, []string{"--connect-timeout -1s: want a positive duration"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--timeout-cache", "-1s"}, []string{"--timeout-cache -1s: want 0 (off) or a positive duration"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--udp-timeout", "soon"}, []string{`invalid argument "soon" for "--udp-timeout"`, "usage: sockstack relay"}},
		{[]string{"relay", "--tap", "tap0", "--addr", "10.0.0.2/24"}, []string{"unknown flag: --tap", "usage: sockstack relay"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "extra"}, []string{"unknown command \"extra\"", "usage: sockstack relay"}},
		{[]string{"relay", "--netns", "sockstack-no-such-ns", "--tun", "tun0", "--addr", "10.0.0.2/24"}, []string{"--netns sockstack-no-such-ns: no such network namespace"}},
	} {
		out, err := runCLI(t, "", c.args...)
		if err == nil {
			t.Errorf("%v: no error; output %q", c.args, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", c.args, err, w)
			}
		}
		if strings.Contains(err.Error(), "panic") || strings.Contains(err.Error(), "runtime error") {
			t.Errorf("%v: internal error %q", c.args, err)
		}
	}
}

// newTestRelay is a relay with no stack, for its parts alone.
func newTestRelay(t *testing.T) *relay {
	return &relay{ctx: context.Background(), o: relayOpts{maxConns: 8, maxFlows: 8, udpTimeout: time.Minute, dialTimeout: 5 * time.Second},
		conns: map[net.Conn]struct{}{}, flows: map[flowKey]*udpFlow{}, clientConns: map[netip.Addr]int{}, clientFlows: map[netip.Addr]int{}}
}

// loopPair is two ends of a loopback TCP connection.
func loopPair(t *testing.T) (a, b *net.TCPConn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	x, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	y, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close(); y.Close() })
	return x.(*net.TCPConn), y.(*net.TCPConn)
}

// loopRelay runs the relay's pipe between two loopback connections, as
// relayHeld does between the client's and the kernel's. It returns the
// client and the destination.
func loopRelay(t *testing.T, r *relay) (client, dest *net.TCPConn, done chan struct{}) {
	cl, c := loopPair(t)
	k, d := loopPair(t)
	r.active++
	r.conns[c], r.conns[k] = struct{}{}, struct{}{}
	done = make(chan struct{})
	go func() {
		r.pipe(c, k)
		r.active--
		close(done)
	}()
	return cl, d, done
}

// A failed kernel connect is passed on to the client as the destination's
// network answered it, and counted by kind.
func TestRelayRejection(t *testing.T) {
	r := newTestRelay(t)
	sys := func(e syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", e)}
	}
	for _, c := range []struct {
		err  error
		want socket.Reject
	}{
		{sys(syscall.ECONNREFUSED), socket.RejectReset},
		{sys(syscall.EHOSTUNREACH), socket.RejectHostUnreach},
		{sys(syscall.ENETUNREACH), socket.RejectNetUnreach},
		{sys(syscall.EACCES), socket.RejectAdminProhibited},
		{sys(syscall.EPERM), socket.RejectAdminProhibited},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, socket.RejectSilent},
		{sys(syscall.EADDRNOTAVAIL), socket.RejectReset},
	} {
		if got := r.rejection(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
	s := &r.stats
	if s.dialFailed.Load() != 7 || s.dialRefused.Load() != 1 || s.dialUnreach.Load() != 4 || s.dialTimeout.Load() != 1 || s.dialOther.Load() != 1 {
		t.Fatalf("counters: %s", s)
	}
	// A real refused connect, on loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := net.Dial("tcp", addr); err == nil || r.rejection(err) != socket.RejectReset {
		t.Fatalf("dial of a closed port: %v", err)
	}
}

// A destination that ends its half first still gets what the client
// sends after that: the relay passes the FIN on and keeps the other way
// open until the client ends too.
func TestRelayTCPDestinationHalfClosesFirst(t *testing.T) {
	r := newTestRelay(t)
	cl, d, done := loopRelay(t, r)
	if _, err := d.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(cl)
	if err != nil || string(got) != "hello" {
		t.Fatalf("client read %q, %v; want hello, EOF", got, err)
	}
	if _, err := cl.Write([]byte("request after the answer")); err != nil {
		t.Fatal(err)
	}
	cl.CloseWrite()
	got, err = io.ReadAll(d)
	if err != nil || string(got) != "request after the answer" {
		t.Fatalf("destination read %q, %v; want the request, EOF", got, err)
	}
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != 0 || len(r.conns) != 0 {
		t.Fatalf("after the relay: active %d, conns %d; want 0, 0", r.active, len(r.conns))
	}
}

// A UDP flow with no traffic for --udp-timeout ends: both its goroutines
// return, both its sockets close and its place is free again; a flow
// beyond --max-udp-flows is refused and counted.
func TestRelayUDPFlowExpires(t *testing.T) {
	st := stack.New(stack.Options{Name: "relay"})
	t.Cleanup(st.Close)
	r := newTestRelay(t)
	r.n = socket.New(st)
	r.o.maxFlows = 1
	r.o.udpTimeout = 20 * time.Millisecond
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	key := flowKey{client: netip.MustParseAddrPort("127.0.0.1:4000"), orig: dst.LocalAddr().(*net.UDPAddr).AddrPort()}
	fl := r.flow(key)
	if fl == nil {
		t.Fatalf("no flow: %s", &r.stats)
	}
	if fl.s == nil {
		t.Errorf("flow without its stack socket: %s", &r.stats)
	}
	if !r.toKernel(fl, []byte("ping"), 0, false) {
		t.Fatalf("send failed: %s", &r.stats)
	}
	b := make([]byte, 16)
	if n, _, err := dst.ReadFromUDP(b); err != nil || string(b[:n]) != "ping" {
		t.Fatalf("destination read %q, %v", b[:n], err)
	}
	other := key
	other.client = netip.MustParseAddrPort("127.0.0.1:4001")
	if r.flow(other) != nil || r.stats.flowLimit.Load() != 1 {
		t.Fatalf("second flow beyond --max-udp-flows 1 not refused: %s", &r.stats)
	}
	r.wg.Wait() // the flow's goroutines end only when it expires
	r.mu.Lock()
	left := len(r.flows)
	r.mu.Unlock()
	if left != 0 || r.stats.expired.Load() != 1 {
		t.Fatalf("after expiry: %d flows, %s", left, &r.stats)
	}
	if _, err := fl.k.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("expired flow's kernel socket: write %v, want closed", err)
	}
	if fl.s != nil {
		if _, err := fl.s.Send([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
			t.Fatalf("expired flow's stack socket: send %v, want EBADF", err)
		}
	}
	if r.flow(other) == nil {
		t.Fatalf("no place for a new flow after expiry: %s", &r.stats)
	}
	r.mu.Lock()
	r.closed = true
	for _, fl := range r.flows {
		fl.close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// --max-conns-per-client: one client address takes at most its share of
// --max-conns; others still get theirs, and a place given back is free
// again. Each refusal is counted by its limit.
func TestRelayAdmitPerClient(t *testing.T) {
	r := newTestRelay(t)
	r.o.maxConns, r.o.maxConnsPerClient = 3, 2
	a, b, c := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.3"), netip.MustParseAddr("fd00:99::1")
	for i, w := range []struct {
		client netip.Addr
		ok     bool
	}{{a, true}, {a, true}, {a, false}, {b, true}, {c, false}} {
		if got := r.admit(w.client); got != w.ok {
			t.Fatalf("admission %d (%v): %v, want %v; %s", i, w.client, got, w.ok, &r.stats)
		}
	}
	if r.stats.clientLimit.Load() != 1 || r.stats.overLimit.Load() != 1 || r.stats.refused.Load() != 2 {
		t.Fatalf("counters: %s", &r.stats)
	}
	r.release(a)
	if !r.admit(c) {
		t.Fatalf("no place after a release: %s", &r.stats)
	}
	r.release(a)
	r.release(b)
	r.release(c)
	if r.active != 0 || len(r.clientConns) != 0 {
		t.Fatalf("after every release: active %d, per client %v", r.active, r.clientConns)
	}
	// Without the flag, one client may take every place.
	r.o.maxConnsPerClient = 0
	for range 3 {
		if !r.admit(a) {
			t.Fatalf("refused without a per-client limit: %s", &r.stats)
		}
	}
}

// --max-udp-flows-per-client: a client's flow beyond its share is
// refused and counted while another client's is opened; once the
// client's flow expires, its next one gets through.
func TestRelayUDPFlowsPerClient(t *testing.T) {
	st := stack.New(stack.Options{Name: "relay"})
	t.Cleanup(st.Close)
	r := newTestRelay(t)
	r.n = socket.New(st)
	r.o.maxFlows, r.o.maxFlowsPerClient = 4, 1
	r.o.udpTimeout = 20 * time.Millisecond
	d1, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	d2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	o1, o2 := d1.LocalAddr().(*net.UDPAddr).AddrPort(), d2.LocalAddr().(*net.UDPAddr).AddrPort()
	a, b := netip.MustParseAddrPort("127.0.0.1:4000"), netip.MustParseAddrPort("127.0.0.2:4000")
	if r.flow(flowKey{a, o1}) == nil {
		t.Fatalf("first flow refused: %s", &r.stats)
	}
	if r.flow(flowKey{a, o2}) != nil || r.stats.flowCliLimit.Load() != 1 || r.stats.flowLimit.Load() != 0 {
		t.Fatalf("second flow of one client not refused: %s", &r.stats)
	}
	if r.flow(flowKey{b, o2}) == nil {
		t.Fatalf("another client's flow refused: %s", &r.stats)
	}
	r.wg.Wait() // both flows expire
	r.mu.Lock()
	left := len(r.clientFlows)
	r.mu.Unlock()
	if left != 0 || r.stats.expired.Load() != 2 {
		t.Fatalf("after expiry: per-client counts %d, %s", left, &r.stats)
	}
	if r.flow(flowKey{a, o2}) == nil {
		t.Fatalf("no flow for the client after its first expired: %s", &r.stats)
	}
	r.mu.Lock()
	r.closed = true
	for _, fl := range r.flows {
		fl.close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// One flow whose kernel socket has no room must not hold up the others:
// the loop that takes every flow's first datagram does not wait for
// room (the datagram is dropped and counted), so a new flow's datagram
// behind it still goes out. The full socket is a real one: a datagram
// socket pair whose peer never reads. Before, the loop waited for room
// forever and the new flow's datagram never left.
func TestRelayBlockedUDPSendDoesNotDelayNewFlows(t *testing.T) {
	// A client stack routing 198.51.100.0/24 to the relay's stack over a
	// pipe; the relay's loop on its transparent UDP socket.
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	cs, rs := stack.New(stack.Options{}), stack.New(stack.Options{})
	t.Cleanup(cs.Close)
	t.Cleanup(rs.Close)
	if err := cs.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	pf := netip.MustParsePrefix("198.51.100.0/24")
	cs.AddRoute(stack.Route{Prefix: pf, Gateway: netip.MustParseAddr("10.0.0.2"), NIC: cs.NICByName("eth0")})
	if err := rs.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentUDP, Dst: pf, ToPort: relayPort}); err != nil {
		t.Fatal(err)
	}
	r := newTestRelay(t)
	r.n = socket.New(rs)
	u, us, err := listenRelayUDP(r.n, "udp4", "0.0.0.0:1")
	if err != nil {
		t.Fatal(err)
	}

	// The stuck flow: its kernel socket's peer queue is full.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := syscall.Write(fds[0], make([]byte, 512)); err == syscall.EAGAIN {
			break
		} else if err != nil || i > 1<<16 {
			t.Fatalf("filling the pair: %v after %d", err, i)
		}
	}
	f := os.NewFile(uintptr(fds[0]), "stuck")
	stuck, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	stuckKey := flowKey{netip.MustParseAddrPort("10.0.0.1:5000"), netip.MustParseAddrPort("198.51.100.8:9")}
	// No stack socket of its own (as when it cannot be made): all its
	// datagrams come through the shared loop.
	r.flows[stuckKey] = &udpFlow{k: stuck}

	// The new flow's destination: a loopback socket stands for 198.51.100.7:9.
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	r.dialUDP = func(orig netip.AddrPort) (net.Conn, error) {
		if orig != netip.MustParseAddrPort("198.51.100.7:9") {
			return nil, syscall.ENETUNREACH
		}
		return net.DialUDP("udp", nil, dst.LocalAddr().(*net.UDPAddr))
	}
	r.wg.Add(1)
	go r.udpLoop(us)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		r.mu.Lock()
		r.closed = true
		for _, fl := range r.flows {
			fl.close()
		}
		r.mu.Unlock()
		u.Close()
		r.wg.Wait()
	}
	defer stop()

	client := socket.New(cs)
	for _, c := range []struct {
		port int
		to   string
		msg  string
	}{{5000, "198.51.100.8:9", "stuck"}, {5001, "198.51.100.7:9", "new flow"}} {
		s, err := client.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(c.port)))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendTo([]byte(c.msg), 0, socket.InetAddr(netip.MustParseAddrPort(c.to))); err != nil {
			t.Fatal(err)
		}
	}
	// A bound only so that a regression fails instead of hanging.
	dst.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 64)
	n, _, err := dst.ReadFromUDP(b)
	if err != nil || string(b[:n]) != "new flow" {
		t.Fatalf("the new flow's datagram: %q, %v (the stuck flow held up the loop: %s)", b[:n], err, &r.stats)
	}
	// The loop counts a datagram after it was sent, so possibly after
	// the destination read it: the counters are read once it ended.
	stop()
	if r.stats.udpFull.Load() != 1 || r.stats.drops.Load() != 1 || r.stats.dgramOut.Load() != 1 {
		t.Fatalf("counters: %s; want the stuck datagram dropped as full", &r.stats)
	}
}

// The loop guard's flags that the kernel refuses are errors at once,
// naming the flag and the cause, before any device is opened.
func TestRelayGuardFlagErrors(t *testing.T) {
	base := []string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mark", "lots"}, `invalid argument "lots" for "--mark"`},
		{[]string{"--mark", "-1"}, `invalid argument "-1" for "--mark"`},
		{[]string{"--bind-device", "sockstack-none-x"}, "--bind-device sockstack-none-x: an interface name has at most 15 characters"},
		{[]string{"--bind-device", "ssnoif0"}, "--bind-device ssnoif0: no such interface in the relay's network namespace"},
	} {
		_, err := runCLI(t, "", append(base, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}

// relayGuardHelper, set in the environment, makes the test binary check
// the loop guard's flags (as relay does before it starts) and print the
// error: the unprivileged half of TestRelayGuardNeedsPrivilege.
const relayGuardHelper = "SOCKSTACK_RELAY_GUARD_HELPER"

func init() {
	if os.Getenv(relayGuardHelper) == "" {
		return
	}
	for _, o := range []relayOpts{{mark: 7}, {bindDevice: "lo"}} {
		fmt.Printf("%v\n", checkUpstream(o))
	}
	os.Exit(0)
}

// Without CAP_NET_ADMIN, --mark fails with EPERM and says what it needs.
// As root the test binary runs itself as nobody (no capabilities);
// otherwise the check runs in the test itself.
func TestRelayGuardNeedsPrivilege(t *testing.T) {
	var lines []string
	if os.Geteuid() != 0 {
		for _, o := range []relayOpts{{mark: 7}, {bindDevice: "lo"}} {
			lines = append(lines, fmt.Sprint(checkUpstream(o)))
		}
	} else {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		// A copy nobody may run: the test binary's own directory is
		// private to root.
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "relay.test")
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), relayGuardHelper+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the test binary as nobody: %v\n%s", err, out)
		}
		lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	if len(lines) != 2 {
		t.Fatalf("output %q", lines)
	}
	if !strings.Contains(lines[0], "--mark 7: setting SO_MARK needs CAP_NET_ADMIN") || !strings.Contains(lines[0], "operation not permitted") {
		t.Errorf("--mark without privilege: %s", lines[0])
	}
	// Binding to a device needs no privilege since Linux 5.7 (only
	// changing a binding does).
	if lines[1] != "<nil>" {
		t.Errorf("--bind-device lo without privilege: %s", lines[1])
	}
}

// Every upstream socket carries the guard: the TCP dial's and each UDP
// flow's kernel socket have SO_MARK and SO_BINDTODEVICE set.
func TestRelayGuardOnUpstreamSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_MARK needs CAP_NET_ADMIN: run as root (TestRelayGuardNeedsPrivilege covers the refusal)")
	}
	st := stack.New(stack.Options{Name: "relay"})
	t.Cleanup(st.Close)
	r := newTestRelay(t)
	r.n = socket.New(st)
	r.o.mark, r.o.bindDevice = 0x5eed, "lo"
	if err := checkUpstream(r.o); err != nil {
		t.Fatal(err)
	}
	check := func(what string, c net.Conn) {
		t.Helper()
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mark int
		var dev string
		var gerr error
		rc.Control(func(fd uintptr) {
			if mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK); gerr == nil {
				dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			}
		})
		if gerr != nil || mark != 0x5eed || dev != "lo" {
			t.Errorf("%s: SO_MARK %#x, SO_BINDTODEVICE %q, %v; want 0x5eed, lo", what, mark, dev, gerr)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := net.Dialer{Control: r.o.control}
	k, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	check("tcp", k)
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	fl := r.flow(flowKey{client: netip.MustParseAddrPort("127.0.0.1:4000"), orig: dst.LocalAddr().(*net.UDPAddr).AddrPort()})
	if fl == nil {
		t.Fatalf("no flow: %s", &r.stats)
	}
	check("udp flow", fl.k)
	r.mu.Lock()
	r.closed = true
	for _, fl := range r.flows {
		fl.close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// --timeout-cache: a destination whose connect timed out is answered
// with silence, counted as a timed-out connect, without a new connect,
// until the entry expires; per destination; at most
// relayTimeoutCacheMax of them, a timed-out destination beyond is not
// remembered (counted) until expired entries make room.
func TestRelayTimeoutCache(t *testing.T) {
	r := newTestRelay(t)
	r.o.timeoutCache = 10 * time.Second
	var now time.Duration
	r.now = func() time.Duration { return now }
	dead := netip.MustParseAddrPort("198.51.100.99:80")
	if r.cachedTimeout(dead) {
		t.Fatal("a destination never tried is cached")
	}
	r.rememberTimeout(dead)
	now = 9 * time.Second
	if !r.cachedTimeout(dead) || !r.cachedTimeout(netip.MustParseAddrPort("[::ffff:198.51.100.99]:80")) {
		t.Fatal("a timed-out destination (or its IPv4-mapped form) is not cached")
	}
	if r.cachedTimeout(netip.MustParseAddrPort("198.51.100.99:81")) {
		t.Fatal("another port of the destination is cached")
	}
	s := &r.stats
	if s.tcAdded.Load() != 1 || s.tcHits.Load() != 2 || s.dialTimeout.Load() != 2 || s.dialFailed.Load() != 2 {
		t.Fatalf("counters: %s; %s", s, s.cacheString())
	}
	now = 10 * time.Second
	if r.cachedTimeout(dead) {
		t.Fatal("the entry outlived --timeout-cache")
	}
	r.mu.Lock()
	left := len(r.timedOut)
	r.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d entries after expiry", left)
	}

	// The bound: full of live entries, one more is not remembered.
	for i := range relayTimeoutCacheMax {
		r.rememberTimeout(netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), uint16(i+1)))
	}
	extra := netip.MustParseAddrPort("203.0.113.2:1")
	r.rememberTimeout(extra)
	if s.tcFull.Load() != 1 || r.cachedTimeout(extra) || len(r.timedOut) != relayTimeoutCacheMax {
		t.Fatalf("beyond the bound: %s, %d entries", s.cacheString(), len(r.timedOut))
	}
	// Once they expired, there is room again.
	now += r.o.timeoutCache
	r.rememberTimeout(extra)
	if s.tcFull.Load() != 1 || len(r.timedOut) != 1 {
		t.Fatalf("after expiry: %s, %d entries", s.cacheString(), len(r.timedOut))
	}
	now++
	if !r.cachedTimeout(extra) {
		t.Fatal("not cached after room was made")
	}

	// Off (0): nothing is remembered.
	r = newTestRelay(t)
	r.rememberTimeout(dead)
	if r.cachedTimeout(dead) || r.stats.tcAdded.Load() != 0 {
		t.Fatalf("--timeout-cache 0 cached: %s", r.stats.cacheString())
	}
}

// relayPair is a client stack (10.0.0.1) routing 198.51.100.0/24 over a
// pipe to a relay's stack (10.0.0.2), which diverts TCP and UDP to it to
// relayPort, as the TUN's stack does.
func relayPair(t *testing.T) (client *socket.Net, r *relay) {
	t.Helper()
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	cs, rs := stack.New(stack.Options{}), stack.New(stack.Options{})
	t.Cleanup(cs.Close)
	t.Cleanup(rs.Close)
	if err := cs.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	pf := netip.MustParsePrefix("198.51.100.0/24")
	cs.AddRoute(stack.Route{Prefix: pf, Gateway: netip.MustParseAddr("10.0.0.2"), NIC: cs.NICByName("eth0")})
	if err := rs.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: pf, ToPort: relayPort}); err != nil {
		t.Fatal(err)
	}
	r = newTestRelay(t)
	r.n = socket.New(rs)
	return socket.New(cs), r
}

// boundSocket is a socket of n bound to 10.0.0.1:port.
func boundSocket(t *testing.T, n *socket.Net, typ, port int) *socket.Socket {
	t.Helper()
	s, err := n.Socket(socket.AF_INET, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(port)))); err != nil {
		t.Fatal(err)
	}
	return s
}

// The loop: a SYN or a datagram whose client address is the local
// address of one of the relay's live upstream sockets is its own
// traffic come back through the TUN. The SYN is reset at once (the
// connect that sent it fails with ECONNREFUSED, and so does the client's
// behind it), the datagram dropped, no upstream socket is opened for
// either, each is counted, and the warning naming the fix is printed
// once. Once that upstream socket has closed, its address is a client
// like any other. Before, the SYN was relayed again (another upstream
// connect, until --max-conns) and the datagram opened another flow.
func TestRelayLoopRejected(t *testing.T) {
	client, r := relayPair(t)
	var warn strings.Builder
	r.warn = &warn
	// A SYN wrongly relayed must not leave the test either: with the
	// relay's context ended its connect fails before any socket.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ctx = ctx
	dials := 0
	r.dialUDP = func(netip.AddrPort) (net.Conn, error) {
		dials++
		return nil, syscall.ENETUNREACH // never leaves the test
	}
	l, err := netconn.ListenTransparentHeld(r.n, "tcp4", "0.0.0.0:1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, us, err := listenRelayUDP(r.n, "udp4", "0.0.0.0:1")
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(2)
	go r.acceptLoop(l)
	go r.udpLoop(us)
	defer func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		l.Close()
		u.Close()
		r.wg.Wait()
	}()
	// Stand-ins for the relay's own upstream sockets, as dialUpstream
	// and flow record them.
	up1, up2 := netip.MustParseAddrPort("10.0.0.1:40001"), netip.MustParseAddrPort("10.0.0.1:40002")
	r.addUpstream(up1)
	r.addUpstream(netip.MustParseAddrPort("[::ffff:10.0.0.1]:40002")) // an IPv6 socket's form
	dst := socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:80"))
	for _, port := range []int{40001, 40002} {
		s := boundSocket(t, client, socket.SOCK_STREAM, port)
		s.SetTimeout(20 * time.Second) // a regression fails, not hangs
		if err := s.Connect(dst); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect from upstream address :%d: %v, want ECONNREFUSED", port, err)
		}
	}
	r.mu.Lock()
	active := r.active
	r.mu.Unlock()
	if r.stats.loopTCP.Load() != 2 || active != 0 || r.stats.refused.Load() != 0 || r.stats.dialFailed.Load() != 0 {
		t.Fatalf("after two looped SYNs: %s; %s; active %d", r.stats.loopString(), &r.stats, active)
	}
	// UDP: dropped before any flow (or its kernel socket) is made. The
	// loop goroutine counts it after the datagram was taken, so the
	// count is read once the loops have stopped.
	cs := boundSocket(t, client, socket.SOCK_DGRAM, 40001)
	if _, err := cs.SendTo([]byte("loop"), 0, socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:53"))); err != nil {
		t.Fatal(err)
	}
	// The address of a closed upstream socket is an ordinary client's.
	r.dropUpstream(up2)
	if r.isUpstream(up2) || !r.isUpstream(up1) {
		t.Fatalf("after dropping %v: upstream set %v", up2, r.upstream)
	}
	if got := strings.Count(warn.String(), "routing loop"); got != 1 {
		t.Fatalf("warning printed %d times, want once:\n%s", got, warn.String())
	}
	for _, w := range []string{"--mark N", "ip rule add fwmark N lookup TABLE", "--bind-device IFNAME", "docs/transparent.md", "10.0.0.1:40001"} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("warning does not name %q:\n%s", w, warn.String())
		}
	}
	// A second datagram from an ordinary client address after the
	// looped one: once its flow is attempted (dialUDP), the looped one
	// has surely been taken before it.
	other := boundSocket(t, client, socket.SOCK_DGRAM, 40003)
	if _, err := other.SendTo([]byte("ordinary"), 0, socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:53"))); err != nil {
		t.Fatal(err)
	}
	for r.stats.udpSendErrs.Load() == 0 { // set by the failed dial, no notification to wait on
		time.Sleep(time.Millisecond)
	}
	r.mu.Lock()
	nflows := len(r.flows)
	r.mu.Unlock()
	if r.stats.loopUDP.Load() != 1 || dials != 1 || nflows != 0 {
		t.Fatalf("UDP: %s, %d flow dials (want 1: the ordinary client's), %d flows", r.stats.loopString(), dials, nflows)
	}
}

// The upstream TCP socket's local address is chosen and recorded before
// its connect (bindUpstream): it is the address the destination sees,
// it is in the upstream set while the connection lives, and dropped
// after; a failed connect leaves nothing recorded.
func TestRelayUpstreamAddressRecorded(t *testing.T) {
	r := newTestRelay(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		k, local, err := r.dialUpstream(l.Addr().(*net.TCPAddr).AddrPort())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		peer := a.RemoteAddr().(*net.TCPAddr).AddrPort()
		if local != orig4(peer) || !r.isUpstream(peer) {
			t.Errorf("%s: recorded %v, the destination sees %v (in the set: %v)", host, local, peer, r.isUpstream(peer))
		}
		k.Close()
		a.Close()
		r.dropUpstream(local)
		if r.isUpstream(peer) {
			t.Errorf("%s: %v still recorded after the drop", host, peer)
		}
		// Refused: nothing stays.
		addr := l.Addr().(*net.TCPAddr).AddrPort()
		l.Close()
		if _, _, err := r.dialUpstream(addr); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: dial of a closed port: %v", host, err)
		}
	}
	if len(r.upstream) != 0 {
		t.Fatalf("upstream set left with %v", r.upstream)
	}
	// Two live sockets may share a local address (SO_REUSEADDR, ports
	// exhausted): the first one closing leaves the other's recorded.
	a := netip.MustParseAddrPort("10.0.0.1:40000")
	r.addUpstream(a)
	r.addUpstream(a)
	r.dropUpstream(a)
	if !r.isUpstream(a) {
		t.Fatal("a shared address forgotten while one of its sockets lives")
	}
	r.dropUpstream(a)
	if r.isUpstream(a) || len(r.upstream) != 0 {
		t.Fatalf("upstream set left with %v", r.upstream)
	}
}

// An idle UDP flow holds no buffer: each of 1000 flows carries a
// datagram each way on both its paths (the client's first datagram
// through the shared loop, its second through the flow's own socket,
// each echoed), then idles; no relay buffer is out, and the heap the
// flows hold (after GC) is far below one 64 KiB buffer each. Before,
// every flow held two 64 KiB buffers for its whole life (about 128 KiB
// per flow).
func TestRelayIdleUDPFlowsHoldNoBuffers(t *testing.T) {
	const flows = 1000
	client, r := relayPair(t)
	r.o.maxFlows = flows
	r.o.udpTimeout = time.Hour
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	r.dialUDP = func(orig netip.AddrPort) (net.Conn, error) {
		return net.DialUDP("udp", nil, dst.LocalAddr().(*net.UDPAddr))
	}
	go func() { // the destination: an echo
		b := make([]byte, 2048)
		for {
			n, from, err := dst.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			dst.WriteToUDPAddrPort(b[:n], from)
		}
	}()
	u, us, err := listenRelayUDP(r.n, "udp4", "0.0.0.0:1")
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go r.udpLoop(us)
	defer func() {
		r.mu.Lock()
		r.closed = true
		for _, fl := range r.flows {
			fl.close()
		}
		r.mu.Unlock()
		u.Close()
		r.wg.Wait()
	}()
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties sync.Pool's victim cache
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// The client sockets exist before the first measure: only what the
	// relay holds per flow is counted.
	socks := make([]*socket.Socket, flows)
	for i := range socks {
		socks[i] = boundSocket(t, client, socket.SOCK_DGRAM, 20000+i)
		socks[i].SetTimeout(20 * time.Second) // a regression fails, not hangs
	}
	orig := socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:9"))
	b := make([]byte, 64)
	before := heap()
	for i, s := range socks {
		for _, msg := range []string{"first", "second"} {
			if _, err := s.SendTo([]byte(msg), 0, orig); err != nil {
				t.Fatal(err)
			}
			if n, err := s.Recv(b, 0); err != nil || string(b[:n]) != msg {
				t.Fatalf("flow %d, %s datagram: echo %q, %v; %s", i, msg, b[:n], err, &r.stats)
			}
		}
	}
	// All idle: each flow's goroutines wait for their next datagram.
	after := heap()
	per := (int64(after) - int64(before)) / flows
	t.Logf("%d idle UDP flows: heap in use %d -> %d bytes, %d bytes per flow; relay buffers out: %d", flows, before, after, per, r.bufsOut.Load())
	if r.stats.flowSocks.Load() != flows || r.stats.flowSockOut.Load() != flows || r.stats.dgramIn.Load() != 2*flows {
		t.Fatalf("not every flow used both paths: %s", &r.stats)
	}
	if out := r.bufsOut.Load(); out != 0 {
		t.Errorf("%d relay buffers out with every flow idle, want 0", out)
	}
	if per >= 32<<10 {
		t.Errorf("%d bytes of heap per idle flow, want well under one 64 KiB buffer", per)
	}
}

// Reading a flow's kernel socket allocates nothing per datagram: the
// buffer comes from the pool and goes back, the poller's callback is
// made once per flow. A read that finds nothing within the deadline
// holds no buffer.
func TestRelayKernelReadNoAlloc(t *testing.T) {
	r := newTestRelay(t)
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	k, err := net.DialUDP("udp", nil, dst.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	to := k.LocalAddr().(*net.UDPAddr).AddrPort()
	kr := r.newKernelReader(k)
	msg := []byte("answer")
	read := func() {
		if _, err := dst.WriteToUDPAddrPort(msg, to); err != nil {
			t.Fatal(err)
		}
		b, n, err := kr.read()
		if err != nil || string((*b)[:n]) != "answer" {
			t.Fatalf("read %v", err)
		}
		r.putBuf(b)
	}
	read() // the pool's first buffer
	if a := testing.AllocsPerRun(100, read); a != 0 {
		t.Errorf("%v allocations per datagram, want 0", a)
	}
	k.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := kr.read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing there: %v, want the deadline", err)
	}
	if out := r.bufsOut.Load(); out != 0 {
		t.Fatalf("%d buffers out after the reads", out)
	}
}
