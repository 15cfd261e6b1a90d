package hostsock

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/socket"
)

// The kernel on ::1: v4-mapped addresses go to it as AF_INET6 and come
// back as such, so the conformance suite can compare dual-stack sockets.
func TestIPv6Loopback(t *testing.T) {
	l, err := New().Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Skipf("no IPv6 in this kernel: %v", err)
	}
	defer l.Close()
	if err := l.Bind(socket.Inet6("::", 0)); err != nil {
		t.Fatal(err)
	}
	l.Listen(4)
	name, _ := l.GetSockName()
	port := int(name.(*socket.SockaddrInet).AddrPort.Port())
	c, _ := New().Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer c.Close()
	c.SetBlocking(true)
	if err := c.Connect(socket.Inet("127.0.0.1", port)); err != nil {
		t.Fatal(err)
	}
	l.SetBlocking(true)
	a, from, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := from.(*socket.SockaddrInet).AddrPort.Addr(); got != netip.MustParseAddr("::ffff:127.0.0.1") {
		t.Fatalf("peer %v", from)
	}
	if v, err := a.GetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY); err != nil || v != 0 {
		t.Fatalf("V6ONLY %v %v", v, err)
	}
}
