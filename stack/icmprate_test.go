package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func closedPortFrom(src netip.Addr, sport uint16) []byte {
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Src: src}, udpPayload(src, hostAddr, sport, 9, nil))
}

// A burst of 200 datagrams to closed ports from one source draws a
// handful of port unreachables (Linux: icmp_ratelimit 1 s, burst 6),
// another source still gets its own, echo replies are not limited, and
// the bucket refills at one message per second.
func TestICMPRateLimitPerDestination(t *testing.T) {
	h := newHarness(t, Options{})
	st := &h.s.Stats().ICMP
	for i := 0; i < 200; i++ {
		h.ep.inject(closedPortFrom(peerAddr, uint16(1000+i)))
	}
	if n := len(h.ep.take()); n != 6 {
		t.Fatalf("200 datagrams to closed ports drew %d port unreachables, want 6", n)
	}
	if st.OutRateLimitedPeer.Load() != 194 || st.OutRateLimited.Load() != 194 {
		t.Fatalf("peer-limited %d, limited %d, want 194", st.OutRateLimitedPeer.Load(), st.OutRateLimited.Load())
	}
	other := netip.MustParseAddr("10.0.0.3")
	h.nic.SetStatic(other, wire.MAC{2, 0, 0, 0, 0, 3})
	for i := 0; i < 20; i++ {
		h.ep.inject(closedPortFrom(other, uint16(1000+i)))
	}
	if n := len(h.ep.take()); n != 6 {
		t.Fatalf("a second source got %d port unreachables, want its own 6", n)
	}
	for i := 0; i < 200; i++ {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(1, uint16(i), nil)))
	}
	if n := len(h.ep.take()); n != 200 {
		t.Fatalf("200 echo requests drew %d replies (echo replies are not limited)", n)
	}
	h.clk.Advance(time.Second)
	for i := 0; i < 5; i++ {
		h.ep.inject(closedPortFrom(peerAddr, 7))
	}
	if n := len(h.ep.take()); n != 1 {
		t.Fatalf("one second later: %d errors, want 1", n)
	}
}

// Types outside the rate mask are not limited at all.
func TestICMPRateMask(t *testing.T) {
	h := newHarness(t, Options{ICMPRateMask: 1 << wire.ICMPTimeExceeded})
	for i := 0; i < 100; i++ {
		h.ep.inject(closedPortFrom(peerAddr, uint16(i)))
	}
	if n := len(h.ep.take()); n != 100 {
		t.Fatalf("unmasked port unreachables: %d of 100 sent", n)
	}
}

// The per-destination table is bounded: 5,000 sources keep it at its
// size, evictions are counted, and every source still gets its first error.
func TestICMPRatePeerTableBounded(t *testing.T) {
	h := newHarness(t, Options{ICMPPeerTableSize: 64, ICMPRateLimit: 1 << 30, ICMPRateBurst: 1 << 30})
	if err := h.s.SetDefaultGateway(peerAddr); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := 0; i < n; i++ {
		src := netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		h.ep.inject(closedPortFrom(src, 1))
	}
	if got := len(h.ep.take()); got != n {
		t.Fatalf("%d errors for %d new sources", got, n)
	}
	l := h.s.icmpRL
	if len(l.sets)*icmpPeerWays != 64 {
		t.Fatalf("table holds %d entries, want 64", len(l.sets)*icmpPeerWays)
	}
	if ev := h.s.Stats().ICMP.RatePeerEvictions.Load(); ev < n-64 {
		t.Fatalf("evictions %d, want at least %d", ev, n-64)
	}
}
