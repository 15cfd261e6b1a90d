package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Any IGMP message (checksum fixed up so that parsing gets past it) to a
// host with source-specific and any-source groups, then the timers it
// started: no panic, and the host keeps at most one report timer per
// group plus the interface's.
func FuzzReceiveIGMP(f *testing.F) {
	q := make([]byte, 20)
	n := wire.PutIGMPv3Query(q, ssmGroup, 10, []netip.Addr{ssmS1, ssmS2})
	f.Add(q[:n])
	f.Add([]byte{0x11, 100, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x22, 0, 0, 0, 0, 0, 0, 1, 5, 0, 0, 1, 232, 1, 1, 1, 10, 0, 0, 5})
	f.Fuzz(func(t *testing.T, m []byte) {
		if len(m) < 4 || len(m) > 1400 {
			return
		}
		h := newHarness(t, Options{})
		e := h.s.NewDgram(KindUDP, 17)
		defer e.Close()
		e.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true)
		e.JoinGroupOn(h.nic, netip.MustParseAddr("239.1.1.1"))
		m = append([]byte(nil), m...)
		m[2], m[3] = 0, 0
		c := wire.Checksum(m)
		m[2], m[3] = byte(c>>8), byte(c)
		for _, dst := range []netip.Addr{allHosts, ssmGroup} {
			h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoIGMP, TTL: 1, Dst: dst, Options: []byte{0x94, 4, 0, 0}}, m))
		}
		if p := h.nic.PendingReports(); p > 3 {
			t.Fatalf("%d report timers for 2 groups", p)
		}
		h.clk.Advance(time.Hour)
		h.ep.take()
	})
}
