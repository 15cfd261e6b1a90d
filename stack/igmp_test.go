package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func igmpFrame(typ, maxResp uint8, group, dst netip.Addr) []byte {
	m := make([]byte, 8)
	m[0], m[1] = typ, maxResp
	g := group.As4()
	copy(m[4:], g[:])
	c := wire.Checksum(m)
	m[2], m[3] = byte(c>>8), byte(c)
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoIGMP, TTL: 1, Dst: dst, Options: []byte{0x94, 4, 0, 0}}, m)
}

// igmpReports lists the groups of the IGMP reports among frames.
func igmpReports(t *testing.T, frames [][]byte) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, f := range frames {
		if wire.Ethernet(f).EtherType() != wire.EtherTypeIPv4 {
			continue
		}
		ip := parseOut(t, f)
		if ip.Protocol() == wire.ProtoIGMP && ip.Payload()[0] == igmpReportV2 {
			out = append(out, netip.AddrFrom4([4]byte(ip.Payload()[4:8])))
		}
	}
	return out
}

func joinGroups(t *testing.T, h *harness, n int) []netip.Addr {
	e := h.s.NewDgram(KindUDP, 17)
	t.Cleanup(func() { e.Close() })
	var gs []netip.Addr
	for i := 0; i < n; i++ {
		g := netip.AddrFrom4([4]byte{239, 1, 1, byte(i + 1)})
		if err := e.JoinGroup(g, hostAddr); err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	if r := igmpReports(t, h.ep.take()); len(r) != n {
		t.Fatalf("%d unsolicited reports on join, want %d", len(r), n)
	}
	return gs
}

// 20,000 general queries with 10 groups joined leave one timer per group
// (not one per group per query), and draw one report per group.
func TestIGMPQueryFloodOneTimerPerGroup(t *testing.T) {
	h := newHarness(t, Options{ForceIGMPVersion: 2})
	joinGroups(t, h, 10)
	base := h.clk.Pending()
	q := igmpFrame(igmpQuery, 100, netip.IPv4Unspecified(), allHosts)
	for i := 0; i < 20000; i++ {
		h.ep.inject(q)
	}
	if n := h.nic.PendingReports(); n != 10 {
		t.Fatalf("%d groups with a pending report, want 10", n)
	}
	if n := h.clk.Pending() - base; n > 10 {
		t.Fatalf("%d timers pending after 20,000 queries, want at most 10", n)
	}
	h.clk.Advance(10 * time.Second)
	if r := igmpReports(t, h.ep.take()); len(r) != 10 {
		t.Fatalf("%d reports after the queries, want 10", len(r))
	}
	if h.s.Stats().IGMP.InQueries.Load() != 20000 {
		t.Fatalf("queries counted: %d", h.s.Stats().IGMP.InQueries.Load())
	}
}

// A query asking for a quicker answer than the time left shortens the
// timer; one asking for a slower answer leaves it.
func TestIGMPTimerOnlyShortened(t *testing.T) {
	h := newHarness(t, Options{ForceIGMPVersion: 2})
	g := joinGroups(t, h, 1)[0]
	h.ep.inject(igmpFrame(igmpQuery, 255, g, g)) // 25.5 s
	due := h.nic.igmpTimers[g].due
	h.ep.inject(igmpFrame(igmpQuery, 255, netip.IPv4Unspecified(), allHosts))
	if h.nic.igmpTimers[g].due != due {
		t.Fatal("an equally slow query moved the timer")
	}
	h.ep.inject(igmpFrame(igmpQuery, 1, g, g)) // 100 ms
	if d := h.nic.igmpTimers[g].due.Sub(h.clk.Now()); d > 100*time.Millisecond {
		t.Fatalf("after a 100 ms query the report is due in %v", d)
	}
	h.clk.Advance(100 * time.Millisecond)
	if r := igmpReports(t, h.ep.take()); len(r) != 1 || r[0] != g {
		t.Fatalf("reports within 100 ms: %v", r)
	}
	h.clk.Advance(30 * time.Second)
	if r := igmpReports(t, h.ep.take()); len(r) != 0 {
		t.Fatalf("a second report for one query: %v", r)
	}
}

// Another host's report for the group cancels ours (RFC 2236 3).
func TestIGMPReportSuppressed(t *testing.T) {
	h := newHarness(t, Options{ForceIGMPVersion: 2})
	gs := joinGroups(t, h, 2)
	h.ep.inject(igmpFrame(igmpQuery, 100, netip.IPv4Unspecified(), allHosts))
	h.ep.inject(igmpFrame(igmpReportV2, 0, gs[0], gs[0]))
	h.clk.Advance(10 * time.Second)
	r := igmpReports(t, h.ep.take())
	if len(r) != 1 || r[0] != gs[1] {
		t.Fatalf("reports %v, want only %v", r, gs[1])
	}
	if h.s.Stats().IGMP.ReportsSuppressed.Load() != 1 {
		t.Fatalf("suppressed = %d", h.s.Stats().IGMP.ReportsSuppressed.Load())
	}
}

// One socket joins at most MaxMemberships groups (Linux's
// igmp_max_memberships, 20): the next join fails with ENOBUFS, counted.
func TestIGMPMembershipLimit(t *testing.T) {
	h := newHarness(t, Options{ForceIGMPVersion: 2})
	joinGroups(t, h, 20)
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	for i := 0; i < 20; i++ {
		if err := e.JoinGroup(netip.AddrFrom4([4]byte{239, 2, 0, byte(i)}), hostAddr); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	if err := e.JoinGroup(netip.MustParseAddr("239.3.0.0"), hostAddr); !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("21st join: %v, want ENOBUFS", err)
	}
	if h.s.Stats().IGMP.MembershipLimit.Load() != 1 {
		t.Fatal("limit not counted")
	}
}
