package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// create_server with dualstack_ipv6 takes IPv4 and IPv6 clients on one
// socket; create_connection tries each address of a name until one
// connects, and reports the last refusal when none does.
func TestCreateServerAndConnection(t *testing.T) {
	n := New(stack.New(stack.Options{DADTransmits: -1}))
	srv, err := n.CreateServer(Inet6("::", 0), -1, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if v, _ := srv.GetSockOptInt(IPPROTO_IPV6, IPV6_V6ONLY); v != 0 {
		t.Fatalf("dual stack: IPV6_V6ONLY %d", v)
	}
	if v, _ := srv.GetSockOptInt(SOL_SOCKET, SO_REUSEADDR); v != 1 {
		t.Fatalf("SO_REUSEADDR %d", v)
	}
	sa, _ := srv.GetSockName()
	port := int(sa.(*SockaddrInet).AddrPort.Port())
	srv.SetTimeout(5 * time.Second)
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := n.CreateConnection(host, port, 5*time.Second, nil)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if c.Timeout() != 5*time.Second {
			t.Fatalf("timeout %v", c.Timeout())
		}
		if _, _, err := srv.Accept(); err != nil {
			t.Fatalf("accept from %s: %v", host, err)
		}
		c.Close()
	}

	// An IPv4-only server: "both" has ::1 first, which is refused, then
	// 127.0.0.1, which connects.
	v4, err := n.CreateServer(Inet("127.0.0.1", 0), 4, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	if v, _ := v4.GetSockOptInt(SOL_SOCKET, SO_REUSEPORT); v != 1 {
		t.Fatalf("SO_REUSEPORT %d", v)
	}
	a4, _ := v4.GetSockName()
	p4 := int(a4.(*SockaddrInet).AddrPort.Port())
	n.Hosts().Add("both", netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1"))
	c, err := n.CreateConnection("both", p4, DefaultTimeout, Inet("127.0.0.1", 0))
	if err != nil {
		t.Fatalf("both: %v", err)
	}
	if ra, _ := c.GetPeerName(); ra.(*SockaddrInet).AddrPort.Addr() != netip.MustParseAddr("127.0.0.1") || c.Timeout() >= 0 {
		t.Fatalf("connected to %v, timeout %v", ra, c.Timeout())
	}
	c.Close()
	v4.Close()
	if _, err := n.CreateConnection("both", p4, time.Second, nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("nobody listening: %v, want ECONNREFUSED", err)
	}
	if _, err := n.CreateServer(Inet("127.0.0.1", 0), 1, false, true); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("dual stack on AF_INET: %v, want EINVAL", err)
	}
	if _, err := n.CreateConnection("no-such-host.invalid", 80, time.Second, nil); err == nil {
		t.Fatal("an unknown name connected")
	}
}
