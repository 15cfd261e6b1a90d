package netconn

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// transparentPair routes 198.51.100.0/24 from host a through host b,
// which diverts TCP and UDP to it to port 9000.
func transparentPair(t *testing.T) *pair {
	t.Helper()
	p := newPair(t)
	sa, sb := p.a.Stack(), p.b.Stack()
	pf := netip.MustParsePrefix("198.51.100.0/24")
	sa.AddRoute(stack.Route{Prefix: pf, Gateway: addrB, NIC: sa.NICByName("eth0")})
	if err := sb.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP, Dst: pf, ToPort: 9000}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestListenTransparent is the tun2socks loop: accept, read LocalAddr
// as the original destination, answer with it.
func TestListenTransparent(t *testing.T) {
	p := transparentPair(t)
	l, err := ListenTransparent(p.b, "tcp4", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, c.LocalAddr().String())
			}()
		}
	}()
	for _, dst := range []string{"198.51.100.7:443", "198.51.100.200:8080"} {
		c, err := Dial(p.a, "tcp4", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != dst {
			t.Fatalf("proxy saw %q (%v), want %s", got, err, dst)
		}
		if c.RemoteAddr().String() != dst {
			t.Fatalf("client's peer %v", c.RemoteAddr())
		}
	}
}

// TestListenTransparentUDP: ReadMsgOrigDst gives the original
// destination, and WriteFromTo answers from it.
func TestListenTransparentUDP(t *testing.T) {
	p := transparentPair(t)
	u, err := ListenTransparentUDP(p.b, "udp4", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	cl, err := ListenPacket(p.a, "udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.SetDeadline(time.Now().Add(5 * time.Second))
	dst := netip.MustParseAddrPort("198.51.100.53:53")
	if _, err := cl.WriteTo([]byte("query"), net.UDPAddrFromAddrPort(dst)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, src, orig, err := u.ReadMsgOrigDst(buf)
	if err != nil || string(buf[:n]) != "query" || orig != dst {
		t.Fatalf("read %q from %v orig %v: %v", buf[:n], src, orig, err)
	}
	if _, err := WriteFromTo(p.b, []byte("answer"), orig, src); err != nil {
		t.Fatal(err)
	}
	n, from, err := cl.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "answer" || from.String() != dst.String() {
		t.Fatalf("client got %q from %v: %v", buf[:n], from, err)
	}
}
