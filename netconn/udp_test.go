package netconn

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

func TestUDPPacketConnRoundTrip(t *testing.T) {
	p := newPair(t)
	pc, err := ListenPacket(p.b, "udp", ":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Package net on a dual-stack host listens on [::] for "udp" ":port".
	if got := pc.LocalAddr().String(); got != "[::]:9999" {
		t.Errorf("LocalAddr = %s", got)
	}
	if _, ok := pc.LocalAddr().(*net.UDPAddr); !ok {
		t.Errorf("LocalAddr is %T, want *net.UDPAddr", pc.LocalAddr())
	}

	d := Dialer{Net: p.a}
	c, err := d.Dial("udp", "10.0.0.2:9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la := c.LocalAddr().(*net.UDPAddr)
	if la.AddrPort().Addr() != addrA || la.Port == 0 {
		t.Errorf("dialed LocalAddr = %v", la)
	}
	if c.RemoteAddr().String() != "10.0.0.2:9999" {
		t.Errorf("RemoteAddr = %v", c.RemoteAddr())
	}

	c.SetDeadline(time.Now().Add(10 * time.Second))
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello over sockstack")
	if n, err := c.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write: %d %v", n, err)
	}
	buf := make([]byte, 100)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("ReadFrom got %q", buf[:n])
	}
	if from.String() != la.String() {
		t.Errorf("from %v, want %v", from, la)
	}
	if _, err := pc.WriteTo([]byte("reply"), from); err != nil {
		t.Fatal(err)
	}
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "reply" {
		t.Fatalf("Read: %q %v", buf[:n], err)
	}

	// The AddrPort forms, and an empty datagram (not EOF).
	u := pc.(*UDPConn)
	if _, err := c.Write(nil); err != nil {
		t.Fatal(err)
	}
	n, ap, err := u.ReadFromUDPAddrPort(buf)
	if err != nil || n != 0 || ap != la.AddrPort() {
		t.Fatalf("ReadFromUDPAddrPort: %d %v %v", n, ap, err)
	}
	if _, err := u.WriteToUDPAddrPort([]byte("ap"), ap); err != nil {
		t.Fatal(err)
	}
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "ap" {
		t.Fatalf("Read: %q %v", buf[:n], err)
	}

	// A dialed UDPConn refuses WriteTo, like net.UDPConn.
	if _, err := c.(*UDPConn).WriteTo(msg, from); !errors.Is(err, net.ErrWriteToConnected) {
		t.Errorf("WriteTo on dialed conn: %v", err)
	}
	// Wrong address type.
	if _, err := pc.WriteTo(msg, &net.TCPAddr{}); err == nil {
		t.Error("WriteTo with *net.TCPAddr succeeded")
	}
}

func TestUDPReadDeadline(t *testing.T) {
	p := newPair(t)
	pc, err := ListenPacket(p.b, "udp4", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	// A deadline in the past fails at once, even with data queued.
	c, err := Dial(p.a, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("x"))
	buf := make([]byte, 10)
	if _, _, err := pc.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("y"))
	// Wait for "y" to be queued: readable means a datagram is there.
	u := pc.(*UDPConn)
	if _, err := u.Socket().Recv(buf, socket.MSG_PEEK); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Unix(1, 0))
	_, _, err = pc.ReadFrom(buf)
	checkDeadlineErr(t, err, "read")

	// Clearing the deadline makes the queued datagram readable again.
	pc.SetReadDeadline(time.Time{})
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("after clearing deadline: %q %v", buf[:n], err)
	}

	// A future deadline expires while blocked.
	pc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, _, err = pc.ReadFrom(buf)
	checkDeadlineErr(t, err, "read")

	// A past deadline set while a read is blocked wakes it.
	pc.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFrom(buf)
		done <- err
	}()
	waitBlocked(t, u.Socket())
	pc.SetReadDeadline(time.Unix(1, 0))
	checkDeadlineErr(t, <-done, "read")
}

func TestUDPCloseUnblocksRead(t *testing.T) {
	p := newPair(t)
	pc, err := ListenPacket(p.b, "udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFrom(make([]byte, 10))
		done <- err
	}()
	waitBlocked(t, pc.(*UDPConn).Socket())
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	checkClosedErr(t, <-done, "read")
	_, _, err = pc.ReadFrom(make([]byte, 10))
	checkClosedErr(t, err, "read")
	_, err = pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9})
	checkClosedErr(t, err, "write")
	if err := pc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestListenPacketErrors(t *testing.T) {
	p := newPair(t)
	pc, err := ListenPacket(p.a, "udp", "10.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = ListenPacket(p.a, "udp", ":5000")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" {
		t.Fatalf("second bind: %v, want *net.OpError listen", err)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second bind: %v, want EADDRINUSE", err)
	}
	if _, err := ListenPacket(p.a, "udp", "10.9.9.9:0"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("foreign address: %v, want EADDRNOTAVAIL", err)
	}
	if _, err := ListenPacket(p.a, "tcp", ":0"); err == nil {
		t.Error("ListenPacket tcp succeeded")
	}
	if _, err := ListenPacket(p.a, "bogus", ":0"); err == nil {
		t.Error("ListenPacket bogus succeeded")
	}
}

func TestResolve(t *testing.T) {
	p := newPair(t)
	pc, err := ListenPacket(p.a, "udp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("localhost bound to %v", ap)
	}
	c, err := Dial(p.a, "udp", "localhost:"+strconv.Itoa(int(ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != ap.String() {
		t.Errorf("RemoteAddr %v, want %v", c.RemoteAddr(), ap)
	}

	// Unknown names are a *net.DNSError inside a dial OpError.
	_, err = Dial(p.a, "udp", "no.such.host.invalid:53")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("unknown host: %v, want DNSError not found", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("unknown host: %v, want OpError dial", err)
	}

	// A custom Resolver is used for names.
	d := Dialer{Net: p.a, Resolver: fakeResolver{"b.test": addrB}}
	c2, err := d.DialContext(context.Background(), "udp", "b.test:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.RemoteAddr().String() != "10.0.0.2:7" {
		t.Errorf("RemoteAddr %v", c2.RemoteAddr())
	}

	// Service names and bad ports.
	if _, err := Dial(p.a, "udp", "10.0.0.2:domain"); err != nil {
		t.Errorf("service name: %v", err)
	}
	if _, err := Dial(p.a, "udp", "10.0.0.2"); err == nil {
		t.Error("missing port accepted")
	}
}

type fakeResolver map[string]netip.Addr

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
