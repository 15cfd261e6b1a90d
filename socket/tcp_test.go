package socket

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

func TestTCPEchoAcrossPipe(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(netip.IPv4Unspecified(), 7321)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(16); err != nil {
		t.Fatal(err)
	}
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			n, err := c.Recv(buf, 0)
			if err != nil || n == 0 {
				return
			}
			c.SendAll(buf[:n], 0)
		}
	}()
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(ap(addrB, 7321)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendAll([]byte("Hello, world"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	n, err := c.Recv(buf, MSG_WAITALL)
	if err != nil || string(buf[:n]) != "Hello, world" {
		t.Fatalf("echo %q %v", buf[:n], err)
	}
	if err := c.Shutdown(SHUT_WR); err != nil {
		t.Fatal(err)
	}
	n, err = c.Recv(buf, 0)
	if n != 0 || err != nil {
		t.Fatalf("after server close: %d %v, want EOF", n, err)
	}
}

func TestTCPBulkHash(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	l.Bind(ap(addrB, 5001))
	l.Listen(1)
	const size = 32 << 20
	got := make(chan [32]byte, 1)
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		h := sha256.New()
		buf := make([]byte, 65536)
		for {
			n, err := c.Recv(buf, 0)
			if err != nil || n == 0 {
				break
			}
			h.Write(buf[:n])
		}
		c.Close()
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := c.Connect(ap(addrB, 5001)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	start := time.Now()
	if err := c.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	c.Shutdown(SHUT_WR)
	h := <-got
	t.Logf("32 MiB in %v", time.Since(start))
	if h != sha256.Sum256(data) {
		t.Fatal("hash differs")
	}
}

func TestTCPConnectRefused(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(ap(addrB, 1)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to closed port: %v", err)
	}
	var _ = io.EOF
	var _ = bytes.Equal
}
