package hostsock

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/socket"
)

// Link-local addresses and multicast need an interface with both, which
// lo is not; these tests re-run themselves in a network namespace of
// their own (unshare --net, gone with the process) holding a veth pair
// v0 (fe80::1) - v1 (fe80::2).
const netnsEnv = "HOSTSOCK_IN_NETNS"

// inNetns reports whether the caller is the run inside the namespace
// and should go on; the outer run has then relayed the inner one's
// result (and fails with its output when it failed).
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace with a veth pair needs root (os.Geteuid() != 0)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) from util-linux")
	}
	script := "set -e; ip link set lo up; ip link add v0 type veth peer name v1; " +
		"ip link set v0 up; ip link set v1 up; " +
		"ip addr add fe80::1/64 dev v0 nodad; ip addr add fe80::2/64 dev v1 nodad; " +
		"exec \"$0\" -test.run '^" + t.Name() + "$' -test.count=1 -test.v"
	cmd := exec.Command("unshare", "--net", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
	t.Logf("passed in a network namespace:\n%s", out)
	return false
}

func ifIndex(t *testing.T, name string) int {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

// Scope ids travel both ways: bind and sendto by name or number,
// getsockname / recvfrom / getpeername give the name back.
func TestInet6LinkLocalScope(t *testing.T) {
	if !inNetns(t) {
		return
	}
	r := socket6(t, socket.SOCK_DGRAM, 0)
	wantErr(t, "bind fe80::1 without scope", r.Bind(socket.Inet6("fe80::1", 0)), syscall.EINVAL)
	wantErr(t, "bind fe80::1%v1 (the other end's)", r.Bind(socket.Inet6("fe80::1%v1", 0)), syscall.EADDRNOTAVAIL)
	rp := bound6(t, r, socket.Inet6("fe80::1%v0", 0))
	if rp.Addr().String() != "fe80::1%v0" {
		t.Fatalf("getsockname %v", rp)
	}
	s := socket6(t, socket.SOCK_DGRAM, 0)
	numeric := socket.InetAddr(netip.AddrPortFrom(rp.Addr().WithZone(itoa(ifIndex(t, "v1"))), rp.Port()))
	if err := s.Connect(numeric); err != nil {
		t.Fatal(err)
	}
	pn, err := s.GetPeerName()
	if err != nil || pn.(*socket.SockaddrInet).AddrPort.Addr().String() != "fe80::1%v1" {
		t.Fatalf("getpeername %v %v (numeric zone given, name expected back)", pn, err)
	}
	if _, err := s.Send([]byte("scoped"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := r.RecvFrom(buf, 0)
	if err != nil || string(buf[:n]) != "scoped" {
		t.Fatalf("recv %q %v", buf[:n], err)
	}
	if fa := from.(*socket.SockaddrInet).AddrPort.Addr().String(); fa != "fe80::2%v0" {
		t.Fatalf("from %s, want fe80::2%%v0", fa)
	}
	// TCP across the pair, scoped.
	l := socket6(t, socket.SOCK_STREAM, 0)
	lp := bound6(t, l, socket.Inet6("fe80::1%v0", 0))
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	c := socket6(t, socket.SOCK_STREAM, 0)
	wantErr(t, "tcp connect without scope", c.Connect(socket.Inet6("fe80::1", int(lp.Port()))), syscall.EINVAL)
	if err := c.Connect(socket.Inet6("fe80::1%v1", int(lp.Port()))); err != nil {
		t.Fatal(err)
	}
	a, afrom, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if afrom.(*socket.SockaddrInet).AddrPort.Addr().String() != "fe80::2%v0" {
		t.Fatalf("accept from %v", afrom)
	}
}

// Joining a group on v0 receives what v1 sends to it.
func TestInet6Multicast(t *testing.T) {
	if !inNetns(t) {
		return
	}
	grp := netip.MustParseAddr("ff02::1:3")
	r := socket6(t, socket.SOCK_DGRAM, 0)
	rp := bound6(t, r, socket.Inet6("::", 0))
	m := socket.IPv6Mreq{Multiaddr: grp, Interface: ifIndex(t, "v0")}
	if err := r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, m); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "join twice", r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, m), syscall.EADDRINUSE)
	wantErr(t, "join unicast", r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
		socket.IPv6Mreq{Multiaddr: netip.IPv6Loopback(), Interface: ifIndex(t, "v0")}), syscall.EINVAL)
	s := socket6(t, socket.SOCK_DGRAM, 0)
	if err := s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifIndex(t, "v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("group"), 0, socket.InetAddr(netip.AddrPortFrom(grp, rp.Port()))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := r.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "group" {
		t.Fatalf("recv %q %v", buf[:n], err)
	}
	if err := r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, m); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "leave twice", r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, m), syscall.EADDRNOTAVAIL)
}
