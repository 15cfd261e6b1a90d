package socket

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

func TestUDPEchoAcrossPipe(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := srv.Bind(ap(netip.IPv4Unspecified(), 7)); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	cli.SetTimeout(5 * time.Second)
	srv.SetTimeout(5 * time.Second)
	msg := []byte("Hello, world")
	if _, err := cli.SendTo(msg, 0, ap(addrB, 7)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := srv.RecvFrom(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("got %q", buf[:n])
	}
	fa := from.(*SockaddrInet).AddrPort
	if fa.Addr() != addrA || fa.Port() < 49152 {
		t.Fatalf("from %v: want 10.0.0.1 with an ephemeral port", fa)
	}
	if _, err := srv.SendTo(buf[:n], 0, from); err != nil {
		t.Fatal(err)
	}
	n, _, err = cli.RecvFrom(buf, 0)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("echo: %q %v", buf[:n], err)
	}
}

func TestUDPBindErrors(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s1 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s1.Bind(ap(addrA, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := s1.Bind(ap(addrA, 5001)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bind twice: %v, want EINVAL", err)
	}
	s2 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s2.Bind(ap(netip.IPv4Unspecified(), 5000)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind in use: %v, want EADDRINUSE", err)
	}
	s3 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s3.Bind(ap(netip.MustParseAddr("10.9.9.9"), 0)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("bind foreign: %v, want EADDRNOTAVAIL", err)
	}
	s4 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s4.Bind(ap(netip.IPv4Unspecified(), 0)); err != nil {
		t.Fatal(err)
	}
	sa, _ := s4.GetSockName()
	if port := sa.(*SockaddrInet).AddrPort.Port(); port < 49152 {
		t.Fatalf("ephemeral port %d outside 49152-65535", port)
	}
	if _, err := s4.GetPeerName(); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("getpeername unconnected: %v", err)
	}
}

func TestUDPTruncationAndBoundaries(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.Bind(ap(addrB, 9999))
	srv.SetTimeout(5 * time.Second)
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	cli.SendTo([]byte("0123456789"), 0, ap(addrB, 9999))
	cli.SendTo([]byte("abc"), 0, ap(addrB, 9999))
	buf := make([]byte, 4)
	n, rflags, _, err := srv.RecvMsg(buf, 0)
	if err != nil || n != 4 || string(buf[:n]) != "0123" || rflags&MSG_TRUNC == 0 {
		t.Fatalf("short buffer: n=%d %q flags=%#x err=%v", n, buf[:n], rflags, err)
	}
	// The rest of the first datagram is gone; the next call gets the second.
	n, err = srv.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("second datagram: %q %v", buf[:n], err)
	}
	// MSG_TRUNC returns the real length.
	cli.SendTo([]byte("0123456789"), 0, ap(addrB, 9999))
	n, err = srv.Recv(buf, MSG_TRUNC)
	if err != nil || n != 10 {
		t.Fatalf("MSG_TRUNC: n=%d err=%v", n, err)
	}
}

func TestUDPNonBlockingAndTimeout(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	s.Bind(ap(addrA, 0))
	s.SetBlocking(false)
	if _, err := s.Recv(make([]byte, 10), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("non-blocking recv: %v, want EAGAIN", err)
	}
	s.SetTimeout(20 * time.Millisecond)
	_, err := s.Recv(make([]byte, 10), 0)
	var te *TimeoutError
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("timeout recv: %v", err)
	}
	s.SetBlocking(true)
	if _, err := s.Recv(make([]byte, 10), MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("MSG_DONTWAIT: %v", err)
	}
}

func TestUDPBroadcastNeedsSOBroadcast(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	rcv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	rcv.Bind(ap(netip.IPv4Unspecified(), 6000))
	rcv.SetTimeout(5 * time.Second)
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	bc := netip.MustParseAddr("10.0.0.255")
	if _, err := s.SendTo([]byte("x"), 0, ap(bc, 6000)); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("broadcast without SO_BROADCAST: %v, want EACCES", err)
	}
	if _, err := s.SendTo([]byte("x"), 0, ap(netip.MustParseAddr("255.255.255.255"), 6000)); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("limited broadcast without SO_BROADCAST: %v, want EACCES", err)
	}
	if err := s.SetSockOptInt(SOL_SOCKET, SO_BROADCAST, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("hello all"), 0, ap(bc, 6000)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := rcv.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "hello all" {
		t.Fatalf("broadcast receive: %q %v", buf[:n], err)
	}
}

func TestUDPConnectedRefused(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	s.SetTimeout(5 * time.Second)
	if err := s.Connect(ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(make([]byte, 10), 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("recv after port unreachable: %v, want ECONNREFUSED", err)
	}
	// The error is reported once.
	s.SetBlocking(false)
	if _, err := s.Recv(make([]byte, 10), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("second recv: %v, want EAGAIN", err)
	}
	if got := p.sb.Stats().UDP.NoPorts.Load(); got != 1 {
		t.Fatalf("NoPorts = %d", got)
	}
}

func TestUDPConnectedFiltersPeer(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	s.Bind(ap(addrA, 7000))
	s.Connect(ap(addrB, 7001))
	other := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	other.Bind(ap(addrB, 7002))
	peer := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	peer.Bind(ap(addrB, 7001))
	other.SendTo([]byte("stranger"), 0, ap(addrA, 7000))
	peer.SendTo([]byte("friend"), 0, ap(addrA, 7000))
	s.SetTimeout(5 * time.Second)
	buf := make([]byte, 100)
	n, err := s.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "friend" {
		t.Fatalf("connected socket got %q %v, want only the peer's datagram", buf[:n], err)
	}
	peer.SendTo([]byte("again"), 0, ap(addrA, 7000))
	n, _ = s.Recv(buf, 0)
	if string(buf[:n]) != "again" {
		t.Fatalf("got %q", buf[:n])
	}
}

func TestUDPReceiveQueueBounded(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	r := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	r.Bind(ap(addrB, 8000))
	r.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 4096) // 8192 after doubling
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	for i := 0; i < 20; i++ {
		s.SendTo(make([]byte, 1000), 0, ap(addrB, 8000))
	}
	// Wait for the 20 datagrams to be accounted for: queued or dropped.
	deadline := time.Now().Add(5 * time.Second)
	for p.sb.Stats().UDP.InDatagrams.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := p.sb.Stats().UDP.RcvbufErrors.Load(); got == 0 {
		t.Fatalf("no receive-buffer drops counted")
	}
	r.SetBlocking(false)
	got := 0
	for {
		if _, err := r.Recv(make([]byte, 2000), 0); err != nil {
			break
		}
		got++
	}
	if got == 0 || got+int(p.sb.Stats().UDP.RcvbufErrors.Load()) != 20 {
		t.Fatalf("queued %d + dropped %d != 20", got, p.sb.Stats().UDP.RcvbufErrors.Load())
	}
}

func TestUDPFragmentedRoundTrip(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.Bind(ap(addrB, 9000))
	srv.SetTimeout(5 * time.Second)
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	for _, size := range []int{1472, 1473, 4000, 9000, 65507} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := cli.SendTo(msg, 0, ap(addrB, 9000)); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		buf := make([]byte, 70000)
		n, err := srv.Recv(buf, 0)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("size %d: got %d bytes, %v", size, n, err)
		}
	}
	if _, err := cli.SendTo(make([]byte, 65508), 0, ap(addrB, 9000)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("65508-byte datagram: %v, want EMSGSIZE", err)
	}
}

func TestPingSocketAndRaw(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	for _, typ := range []int{SOCK_DGRAM, SOCK_RAW} {
		s := mustSocket(t, p.a, AF_INET, typ, IPPROTO_ICMP)
		s.SetTimeout(5 * time.Second)
		msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}
		if typ == SOCK_RAW {
			// Raw sockets send what the application built, checksum included.
			c := checksum(msg)
			msg[2], msg[3] = byte(c>>8), byte(c)
		}
		if _, err := s.SendTo(msg, 0, ap(addrB, 0)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		for {
			n, err := s.Recv(buf, 0)
			if err != nil {
				t.Fatalf("type %d: %v", typ, err)
			}
			b := buf[:n]
			if typ == SOCK_RAW {
				b = b[int(b[0]&15)*4:] // raw sockets receive the IP header
			}
			if b[0] == 0 && string(b[8:]) == "ping" {
				break
			}
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestDoubleCloseAndBadFamily(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s, _ := p.a.Socket(AF_INET, SOCK_DGRAM, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("double close: %v", err)
	}
	if _, err := p.a.Socket(99, SOCK_DGRAM, 0); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Fatalf("bad family: %v", err)
	}
	if _, err := p.a.Socket(AF_INET, SOCK_STREAM, IPPROTO_UDP); !errors.Is(err, syscall.EPROTONOSUPPORT) {
		t.Fatalf("stream/udp: %v", err)
	}
	if _, err := p.a.Socket(AF_INET, 99, 0); !errors.Is(err, syscall.EINVAL) { // Linux: EINVAL for an unknown type
		t.Fatalf("bad type: %v", err)
	}
	s2 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s2.SetSockOptInt(SOL_SOCKET, 12345, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("unknown option: %v", err)
	}
	if err := s2.SetSockOptInt(SOL_IP, IP_TTL, 256); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("TTL 256: %v", err)
	}
}
