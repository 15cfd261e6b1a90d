package stack

import (
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// A TCP segment with a bad checksum is dropped before TCP sees it, and
// counted in TCP's InErrs as well as the IP layer's InDiscards, as
// Linux counts it in TcpInErrs.
func TestTCPBadChecksumCounted(t *testing.T) {
	h := newHarness(t, Options{})
	syn := synPayload(peerAddr, hostAddr, 40000, 80)
	syn[16] ^= 0xff // checksum
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP}, syn))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered a segment with a bad checksum (%d frames)", len(out))
	}
	if got := h.s.TCP.Stats().InErrs; got != 1 {
		t.Fatalf("TCP InErrs %d, want 1", got)
	}
	if got := h.s.Stats().IP.InDiscards.Load(); got != 1 {
		t.Fatalf("IP InDiscards %d, want 1", got)
	}
}
