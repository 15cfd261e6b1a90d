package netconn

import (
	"io"
	"net"
	"testing"
)

// Go's net semantics over IPv6: Listen(":0") accepts both families,
// "tcp6" / "udp6" are IPv6 only, literals in brackets.
func TestIPv6TCP(t *testing.T) {
	n := newHost(t)
	l := mustListen(t, n, "tcp", ":0")
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	for _, c := range []struct{ network, addr, wantLocal string }{
		{"tcp6", net.JoinHostPort("::1", itoa(port)), "::1"},
		{"tcp", net.JoinHostPort("::1", itoa(port)), "::1"},
		{"tcp4", net.JoinHostPort("127.0.0.1", itoa(port)), "127.0.0.1"},
		{"tcp", "localhost:" + itoa(port), ""},
	} {
		conn, err := Dial(n, c.network, c.addr)
		if err != nil {
			t.Fatalf("%s %s: %v", c.network, c.addr, err)
		}
		if _, err := conn.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 2)
		if _, err := io.ReadFull(conn, b); err != nil || string(b) != "hi" {
			t.Fatalf("%s: %q %v", c.network, b, err)
		}
		if la := conn.LocalAddr().(*net.TCPAddr); c.wantLocal != "" && la.IP.String() != c.wantLocal {
			t.Errorf("%s: local %v", c.network, la)
		}
		conn.Close()
	}
	// tcp6 refuses an IPv4 literal, tcp4 an IPv6 one.
	if _, err := Dial(n, "tcp6", "127.0.0.1:"+itoa(port)); err == nil {
		t.Error("tcp6 dialled an IPv4 address")
	}
	if _, err := Dial(n, "tcp4", "[::1]:"+itoa(port)); err == nil {
		t.Error("tcp4 dialled an IPv6 address")
	}
	// A tcp6 listener takes no IPv4.
	l6 := mustListen(t, n, "tcp6", "[::]:0")
	defer l6.Close()
	if _, err := Dial(n, "tcp4", "127.0.0.1:"+itoa(l6.Addr().(*net.TCPAddr).Port)); err == nil {
		t.Error("IPv4 reached a tcp6 listener")
	}
}

func TestIPv6UDP(t *testing.T) {
	n := newHost(t)
	pc, err := ListenPacket(n, "udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := Dial(n, "udp6", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("dgram6"))
	b := make([]byte, 16)
	k, from, err := pc.ReadFrom(b)
	if err != nil || string(b[:k]) != "dgram6" {
		t.Fatalf("%q %v", b[:k], err)
	}
	if ua := from.(*net.UDPAddr); !ua.IP.Equal(net.IPv6loopback) {
		t.Fatalf("from %v", from)
	}
}

func itoa(i int) string { return fmtInt(i) }

func fmtInt(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
