package stack

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// Receive-path benchmarks: a frame injected on eth0 and run to
// completion, as the link goroutine does it.

// BenchmarkReceiveUDP delivers a datagram to a bound socket and reads it.
func BenchmarkReceiveUDP(b *testing.B) {
	h := newHarness(&testing.T{}, Options{})
	defer h.s.Close()
	h.ep.discard = true
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 64)))
	frames := [][]byte{f}
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.nic.DeliverFrames(frames)
		if _, _, _, err := e.RecvFrom(buf, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveNotForUs drops a packet for another host (the cheapest
// path through the IP checks).
func BenchmarkReceiveNotForUs(b *testing.B) {
	h := newHarness(&testing.T{}, Options{})
	defer h.s.Close()
	h.ep.discard = true
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: netip.MustParseAddr("10.0.0.99")}, make([]byte, 16))
	frames := [][]byte{f}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.nic.DeliverFrames(frames)
	}
}

// BenchmarkReceiveEcho answers a ping (receive, build, send).
func BenchmarkReceiveEcho(b *testing.B) {
	h := newHarness(&testing.T{}, Options{})
	defer h.s.Close()
	h.ep.discard = true
	f := ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(1, 1, make([]byte, 56)))
	frames := [][]byte{f}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.nic.DeliverFrames(frames)
	}
}
