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

// TestTCPCongestionBBR: TCP_CONGESTION takes "bbr" (next to "cubic" and
// "reno"), reads it back, and a paced BBR connection moves 4 MiB intact
// over the in-memory pipe on the real clock.
func TestTCPCongestionBBR(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(netip.IPv4Unspecified(), 7390)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	got := make(chan []byte, 1)
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var b bytes.Buffer
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Recv(buf, 0)
			if err != nil || n == 0 {
				break
			}
			b.Write(buf[:n])
		}
		got <- b.Bytes()
	}()
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	for _, name := range []string{"reno", "cubic", "bbr"} {
		if err := c.SetSockOpt(SOL_TCP, TCP_CONGESTION, name); err != nil {
			t.Fatalf("TCP_CONGESTION %q: %v", name, err)
		}
		if v, err := c.GetSockOpt(SOL_TCP, TCP_CONGESTION); err != nil || v != name {
			t.Fatalf("TCP_CONGESTION reads %v %v, want %q", v, err, name)
		}
	}
	if err := c.SetSockOpt(SOL_TCP, TCP_CONGESTION, "nosuchcc"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unknown congestion control: %v, want ENOENT", err)
	}
	c.SetTimeout(20 * time.Second)
	if err := c.Connect(ap(addrB, 7390)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	if err := c.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	c.Shutdown(SHUT_WR)
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("received %d bytes, not what was sent", len(b))
	}
}
