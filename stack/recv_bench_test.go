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

// The receive paths the hardening touched (martian checks, options,
// echo) allocate nothing per packet.
func TestReceivePathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; runs without -race")
	}
	h := newHarness(t, Options{})
	h.ep.discard = true
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	udp := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 64)))}
	echo := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(1, 1, make([]byte, 56)))}
	rr := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Options: append([]byte{ipOptRR, 39, 4}, make([]byte, 37)...)}, echoPayload(1, 1, make([]byte, 56)))}
	martian := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: loopAddr}, udpPayload(peerAddr, loopAddr, 1, 5000, nil))}
	buf := make([]byte, 2048)
	for name, f := range map[string]func(){
		"udp":          func() { h.nic.DeliverFrames(udp); e.RecvFrom(buf, false) },
		"echo":         func() { h.nic.DeliverFrames(echo) },
		"echo with RR": func() { h.nic.DeliverFrames(rr) },
		"martian":      func() { h.nic.DeliverFrames(martian) },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %.1f allocations per packet", name, a)
		}
	}
}
