package stack_test

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// pair6 is two hosts, fd00::1 and fd00::2, on an in-memory pipe (wrap:
// behind plainLink, which hides the pipe's offloads).
func pair6(t *testing.T, wrap bool) (*stack.Stack, *stack.Stack) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	opts := stack.Options{DADTransmits: -1}
	a, b := stack.New(opts), stack.New(opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	var la, lb link.Endpoint = ea, eb
	if wrap {
		la, lb = plainLink{ea}, plainLink{eb}
	}
	a.AddNIC("eth0", la).AddAddress(netip.MustParsePrefix("fd00::1/64"))
	b.AddNIC("eth0", lb).AddAddress(netip.MustParsePrefix("fd00::2/64"))
	return a, b
}

// transfer6 sends n bytes from a to b over TCP/IPv6 and checks they
// arrive intact.
func transfer6(t *testing.T, a, b *stack.Stack, n int) {
	t.Helper()
	ln, err := netconn.Listen(socket.New(b), "tcp6", "[fd00::2]:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		r, _ := io.ReadAll(c)
		got <- r
	}()
	d := &netconn.Dialer{Net: socket.New(a)}
	c, err := d.Dial("tcp6", "[fd00::2]:7000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	r := <-got
	c.Close()
	if !bytes.Equal(r, data) {
		t.Fatalf("received %d bytes, want %d", len(r), len(data))
	}
}

// Over an in-memory link TCP over IPv6 hands super-segments, carried
// whole with checksums partial over the IPv6 pseudo-header and taken
// whole by the receiver; the data arrives intact.
func TestOffload6InMemorySuperSegments(t *testing.T) {
	a, b := pair6(t, false)
	transfer6(t, a, b, 8<<20)
	if a.Stats().Link.OutGSOFrames.Load() == 0 || b.Stats().Link.InGSOFrames.Load() == 0 {
		t.Fatalf("super-segments sent %d, received whole %d", a.Stats().Link.OutGSOFrames.Load(), b.Stats().Link.InGSOFrames.Load())
	}
	if a.Stats().Link.OutGSOSegs.Load() != 0 {
		t.Fatal("segments cut in software on a link that carries super-segments")
	}
	if b.Stats().IP6.InDiscards.Load() != 0 || b.TCP.Stats().InErrs != 0 {
		t.Fatal("receiver dropped packets")
	}
}

// In front of a link without offloads the stack cuts IPv6 super-segments
// in software, and the receiver coalesces what a batch brings.
func TestOffload6SoftwareSegmentsAndGRO(t *testing.T) {
	a, b := pair6(t, true)
	transfer6(t, a, b, 8<<20)
	if a.Stats().Link.OutGSOSegs.Load() == 0 || a.Stats().Link.OutGSOFrames.Load() != 0 {
		t.Fatalf("GSO frames %d, software segments %d", a.Stats().Link.OutGSOFrames.Load(), a.Stats().Link.OutGSOSegs.Load())
	}
	if b.Stats().Link.InGROSegs.Load() == 0 {
		t.Fatal("receiver coalesced nothing")
	}
	if b.Stats().IP6.InDiscards.Load() != 0 || b.TCP.Stats().InErrs != 0 {
		t.Fatal("receiver dropped packets")
	}
}
