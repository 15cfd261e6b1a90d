package netconn

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

func TestUnixStreamAndDatagram(t *testing.T) {
	n := newHost(t)
	l, err := Listen(n, "unix", "/run/echo.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if a, ok := l.Addr().(*net.UnixAddr); !ok || a.Name != "/run/echo.sock" || a.Net != "unix" {
		t.Errorf("Addr %#v", l.Addr())
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := Dial(n, "unix", "/run/echo.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uc := c.(*UnixConn)
	if _, err := c.Write([]byte("over unix")); err != nil {
		t.Fatal(err)
	}
	if err := uc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "over unix" {
		t.Fatalf("echo %q %v", got, err)
	}
	if _, err := Dial(n, "unix", "/run/nobody.sock"); !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial missing path: %v", err)
	}

	// unixgram: a PacketConn with *net.UnixAddr senders.
	srv, err := ListenPacket(n, "unixgram", "/run/dgram.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d := Dialer{Net: n, LocalAddr: &net.UnixAddr{Name: "/run/client.sock", Net: "unixgram"}}
	cc, err := d.Dial("unixgram", "/run/dgram.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.Write([]byte("dgram")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	k, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "dgram" {
		t.Fatalf("ReadFrom %q %v", buf[:k], err)
	}
	if ua, ok := from.(*net.UnixAddr); !ok || ua.Name != "/run/client.sock" {
		t.Fatalf("from %#v", from)
	}
	if _, err := srv.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	k, err = cc.Read(buf)
	if err != nil || string(buf[:k]) != "back" {
		t.Fatalf("Read %q %v", buf[:k], err)
	}
}

func TestControlAndLocalAddr(t *testing.T) {
	p := newPair(t)
	var lcalls, dcalls int
	lc := ListenConfig{Net: p.b, Control: func(network, address string, s *socket.Socket) error {
		lcalls++
		return s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1<<17)
	}}
	l, err := lc.Listen(context.Background(), "tcp", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	d := Dialer{Net: p.a, LocalAddr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 40000},
		Control: func(network, address string, s *socket.Socket) error {
			dcalls++
			if network != "tcp" || address != l.Addr().String() {
				t.Errorf("Control(%q, %q)", network, address)
			}
			return nil
		}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalAddr().String() != "10.0.0.1:40000" {
		t.Errorf("LocalAddr %v, want the bound 10.0.0.1:40000", c.LocalAddr())
	}
	if lcalls != 1 || dcalls != 1 {
		t.Errorf("Control called %d (listen) and %d (dial) times", lcalls, dcalls)
	}
	// A failing Control aborts the dial with its error.
	boom := errors.New("boom")
	d.Control = func(string, string, *socket.Socket) error { return boom }
	if _, err := d.Dial("tcp", l.Addr().String()); !errors.Is(err, boom) {
		t.Errorf("failing Control: %v", err)
	}
	// A local address in use.
	d.Control = nil
	if _, err := d.Dial("tcp", l.Addr().String()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("LocalAddr in use: %v, want EADDRINUSE", err)
	}
}
