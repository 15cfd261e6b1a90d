package stack_test

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// plainLink hides an endpoint's offloads: only its Endpoint methods show.
type plainLink struct{ link.Endpoint }

// transfer sends n bytes from a to b over TCP and checks they arrive
// intact.
func transfer(t *testing.T, a, b *stack.Stack, n int) { transferTo(t, a, b, "10.0.0.2", 7000, n) }

// transferTo is transfer to b's listener on dst:port.
func transferTo(t *testing.T, a, b *stack.Stack, dst string, port, n int) {
	t.Helper()
	ln, _ := socket.New(b).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet(dst, port)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(1)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	got := make(chan []byte, 1)
	go func() {
		c, _, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var buf bytes.Buffer
		b := make([]byte, 256<<10)
		for {
			k, err := c.Recv(b, 0)
			buf.Write(b[:k])
			if err != nil || k == 0 {
				break
			}
		}
		got <- buf.Bytes()
	}()
	c, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err := c.Connect(socket.Inet(dst, port)); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); {
		k, err := c.Send(data[off:], 0)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		off += k
	}
	c.Shutdown(socket.SHUT_WR)
	r := <-got
	c.Close()
	if !bytes.Equal(r, data) {
		t.Fatalf("received %d bytes, want %d, equal %v", len(r), len(data), bytes.Equal(r, data[:min(len(r), len(data))]))
	}
}

func pair(t *testing.T, wrap bool) (*stack.Stack, *stack.Stack) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	t.Cleanup(func() { a.Close(); b.Close() })
	var la, lb link.Endpoint = ea, eb
	if wrap {
		la, lb = plainLink{ea}, plainLink{eb}
	}
	a.AddNIC("eth0", la).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", lb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	return a, b
}

// Over an in-memory link at MTU 1500 TCP hands super-segments, carried
// whole with partial checksums; the data arrives intact.
func TestOffloadInMemorySuperSegments(t *testing.T) {
	a, b := pair(t, false)
	transfer(t, a, b, 8<<20)
	if a.Stats().Link.OutGSOFrames.Load() == 0 {
		t.Fatal("no super-segments sent over the in-memory link")
	}
	if a.Stats().Link.OutGSOSegs.Load() != 0 {
		t.Fatal("segments cut in software on a link that carries super-segments")
	}
	if b.Stats().IP.InDiscards.Load() != 0 || b.TCP.Stats().InErrs != 0 {
		t.Fatal("receiver dropped packets")
	}
}

// In front of a link without offloads the stack cuts super-segments in
// software, and the receiver coalesces what a batch brings.
func TestOffloadSoftwareSegmentsAndGRO(t *testing.T) {
	a, b := pair(t, true)
	transfer(t, a, b, 8<<20)
	if a.Stats().Link.OutGSOSegs.Load() == 0 || a.Stats().Link.OutGSOFrames.Load() != 0 {
		t.Fatalf("GSO frames %d, software segments %d", a.Stats().Link.OutGSOFrames.Load(), a.Stats().Link.OutGSOSegs.Load())
	}
	if b.Stats().Link.InGROSegs.Load() == 0 {
		t.Fatal("receiver coalesced nothing")
	}
	if b.Stats().IP.InDiscards.Load() != 0 {
		t.Fatal("receiver dropped packets")
	}
}
