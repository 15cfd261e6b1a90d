package socket

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
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

// TestTCPECNThroughStack: with ECN asked for (tcp.ECNOn) on both hosts
// and a link that marks every ECN-capable packet from A CE, the IP
// layer carries ECT(0) out and CE in: B counts CE-marked segments, A
// reduces cwnd on the echoed ECE, and the data arrives intact.
func TestTCPECNThroughStack(t *testing.T) {
	ea, eb := link.NewPipe(macA, macB, 1500)
	im := link.NewImpair(ea, link.ImpairConfig{MarkCE: 1, Apply: link.ImpairEgress})
	opts := stack.Options{TCP: tcp.Config{ECN: tcp.ECNOn}}
	sa, sb := stack.New(opts), stack.New(opts)
	na, nb := sa.AddNIC("eth0", im), sb.AddNIC("eth0", eb)
	if err := na.AddAddress(netip.PrefixFrom(addrA, 24)); err != nil {
		t.Fatal(err)
	}
	if err := nb.AddAddress(netip.PrefixFrom(addrB, 24)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	a, b := New(sa), New(sb)
	l := mustSocket(t, b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(netip.IPv4Unspecified(), 7391)); err != nil {
		t.Fatal(err)
	}
	l.Listen(4)
	const size = 1 << 20
	got := make(chan int, 1)
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, buf := 0, make([]byte, 64<<10)
		for {
			k, err := c.Recv(buf, 0)
			if err != nil || k == 0 {
				break
			}
			n += k
		}
		got <- n
	}()
	c := mustSocket(t, a, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(20 * time.Second)
	if err := c.Connect(ap(addrB, 7391)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendAll(make([]byte, size), 0); err != nil {
		t.Fatal(err)
	}
	c.Shutdown(SHUT_WR)
	if n := <-got; n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	sta, stb := sa.TCP.Stats(), sb.TCP.Stats()
	if stb.InCEPkts == 0 || sta.ECNCwndReductions == 0 || im.Egress.CEMarked.Load() == 0 {
		t.Fatalf("CE marked %d, received with CE %d, reductions %d", im.Egress.CEMarked.Load(), stb.InCEPkts, sta.ECNCwndReductions)
	}
	if sta.RetransSegs != 0 {
		t.Fatalf("%d retransmissions: ECN marks are not losses", sta.RetransSegs)
	}
}
