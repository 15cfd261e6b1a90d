package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

var (
	ssmGroup = netip.MustParseAddr("232.1.1.1")
	ssmS1    = netip.MustParseAddr("10.0.0.5")
	ssmS2    = netip.MustParseAddr("10.0.0.6")
	ssmS3    = netip.MustParseAddr("10.0.0.7")
)

// recString renders records as "TYPE group [srcs]" for comparisons.
func recString(recs []wire.GroupRecord) string {
	names := map[uint8]string{1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}
	var b []string
	for _, r := range recs {
		b = append(b, fmt.Sprintf("%s %v %v", names[r.Type], r.Group, r.Srcs))
	}
	return strings.Join(b, "; ")
}

// v3Reports lists the IGMPv3 reports among frames, one string each, and
// checks their addressing (224.0.0.22, TTL 1, Router Alert).
func v3Reports(t *testing.T, frames [][]byte) []string {
	t.Helper()
	var out []string
	for _, f := range frames {
		if wire.Ethernet(f).EtherType() != wire.EtherTypeIPv4 {
			continue
		}
		ip := parseOut(t, f)
		if ip.Protocol() != wire.ProtoIGMP || ip.Payload()[0] != wire.IGMPv3Report {
			continue
		}
		if ip.Dst() != allV3Routers || ip.TTL() != 1 || ip.HeaderLen() != 24 || wire.Checksum(ip.Payload()) != 0 {
			t.Fatalf("report addressing: dst %v ttl %d hl %d", ip.Dst(), ip.TTL(), ip.HeaderLen())
		}
		var recs []wire.GroupRecord
		if err := wire.ParseIGMPv3Report(ip.Payload(), func(r wire.GroupRecord) {
			r.Srcs = slices.Clone(r.Srcs)
			recs = append(recs, r)
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, recString(recs))
	}
	return out
}

func wantReports(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: reports\n%q\nwant\n%q", what, got, want)
	}
}

func TestSSMFilterMerge(t *testing.T) {
	f := func(mode int, srcs ...netip.Addr) sockFilter { return sockFilter{mode: mode, srcs: srcs} }
	cases := []struct {
		name string
		fs   []sockFilter
		mode int
		srcs []netip.Addr
		kref int
	}{
		{"include union", []sockFilter{f(ModeInclude, ssmS1), f(ModeInclude, ssmS2, ssmS1)}, ModeInclude, []netip.Addr{ssmS1, ssmS2}, 0},
		{"exclude intersection", []sockFilter{f(ModeExclude, ssmS1, ssmS2), f(ModeExclude, ssmS2, ssmS3)}, ModeExclude, []netip.Addr{ssmS2}, 0},
		{"exclude minus include", []sockFilter{f(ModeExclude, ssmS1, ssmS2), f(ModeInclude, ssmS2)}, ModeExclude, []netip.Addr{ssmS1}, 0},
		{"any-source wins", []sockFilter{f(ModeExclude), f(ModeExclude, ssmS1)}, ModeExclude, nil, 0},
		{"kernel join", []sockFilter{f(ModeExclude, ssmS1)}, ModeExclude, nil, 1},
		{"nothing", nil, ModeInclude, nil, 0},
	}
	for _, c := range cases {
		g := &ifGroup{filters: map[*DgramEndpoint]sockFilter{}, kernelRefs: c.kref}
		for i, x := range c.fs {
			g.filters[&DgramEndpoint{proto: uint8(i)}] = x
		}
		m, s := g.merge()
		if m != c.mode || !slices.Equal(s, c.srcs) {
			t.Errorf("%s: mode %d %v, want %d %v", c.name, m, s, c.mode, c.srcs)
		}
	}
}

// State-change reports: sent at once, retransmitted once (QRV 2) within
// the unsolicited report interval, records as Linux orders them.
func TestIGMPv3StateChangeReports(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	step := func(what string, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		wantReports(t, what, v3Reports(t, h.ep.take()), want)
		h.clk.Advance(unsolicitedV3)
		wantReports(t, what+" retransmission", v3Reports(t, h.ep.take()), want)
		h.clk.Advance(10 * unsolicitedV3)
		wantReports(t, what+" after", v3Reports(t, h.ep.take()))
	}
	step("add S1", a.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true), "ALLOW 232.1.1.1 [10.0.0.5]")
	step("add S2", a.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, true, true), "ALLOW 232.1.1.1 [10.0.0.6]")
	step("drop S1", a.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, false, false), "BLOCK 232.1.1.1 [10.0.0.5]")
	// A second socket's any-source join switches the interface to EXCLUDE.
	b := h.s.NewDgram(KindUDP, 17)
	defer b.Close()
	step("any-source join", b.JoinGroupOn(h.nic, ssmGroup), "TO_EX 232.1.1.1 []")
	step("block S3", b.ChangeSource(h.nic, ssmGroup, ssmS3, ModeExclude, true, false), "BLOCK 232.1.1.1 [10.0.0.7]")
	step("unblock S3", b.ChangeSource(h.nic, ssmGroup, ssmS3, ModeExclude, false, false), "ALLOW 232.1.1.1 [10.0.0.7]")
	step("any-source leave", b.LeaveGroupOn(h.nic, ssmGroup), "TO_IN 232.1.1.1 [10.0.0.6]")
	step("last source dropped", a.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, false, false), "BLOCK 232.1.1.1 [10.0.0.6]")
	if _, _, ok := h.nic.InterfaceFilter(ssmGroup); ok || h.nic.isMember(ssmGroup) {
		t.Fatal("group still joined after the last source went")
	}
	// Any-source join and leave of a fresh group: TO_EX, then TO_IN.
	step("join", a.JoinGroup(netip.MustParseAddr("239.1.1.1"), hostAddr), "TO_EX 239.1.1.1 []")
	step("leave", a.LeaveGroup(netip.MustParseAddr("239.1.1.1"), hostAddr), "TO_IN 239.1.1.1 []")
	if h.s.Stats().IGMP.OutV3Reports.Load() != 20 {
		t.Fatalf("OutV3Reports %d", h.s.Stats().IGMP.OutV3Reports.Load())
	}
}

// A change while a retransmission is pending is merged into it: the
// retransmission carries both sources.
func TestIGMPv3ChangesMerge(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	a.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true)
	a.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, true, true)
	wantReports(t, "two adds", v3Reports(t, h.ep.take()), "ALLOW 232.1.1.1 [10.0.0.5]", "ALLOW 232.1.1.1 [10.0.0.5 10.0.0.6]")
	h.clk.Advance(unsolicitedV3)
	wantReports(t, "retransmission", v3Reports(t, h.ep.take()), "ALLOW 232.1.1.1 [10.0.0.6]")
	h.clk.Advance(unsolicitedV3)
	wantReports(t, "quiet", v3Reports(t, h.ep.take()))
}

func v3Query(group netip.Addr, code uint8, srcs ...netip.Addr) []byte {
	b := make([]byte, 12+4*len(srcs))
	n := wire.PutIGMPv3Query(b, group, code, srcs)
	dst := group
	if !group.IsValid() || group.IsUnspecified() {
		dst = allHosts
	}
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoIGMP, TTL: 1, Dst: dst, Options: []byte{0x94, 4, 0, 0}}, b[:n])
}

// Current-state reports: a general query gets every group's IS_IN /
// IS_EX in one report; a group query that group's; a group-and-source
// query the queried sources the filter admits.
func TestIGMPv3QueriesAnswered(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	g2 := netip.MustParseAddr("239.2.2.2")
	a.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true)
	a.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, true, true)
	a.JoinGroupOn(h.nic, g2)
	a.ChangeSource(h.nic, g2, ssmS3, ModeExclude, true, false)
	h.clk.Advance(5 * time.Second)
	h.ep.take()

	h.ep.inject(v3Query(netip.IPv4Unspecified(), 10)) // 1 s
	if h.nic.PendingReports() != 1 {
		t.Fatalf("%d timers for a general query, want the interface's one", h.nic.PendingReports())
	}
	h.clk.Advance(time.Second)
	wantReports(t, "general", v3Reports(t, h.ep.take()), "IS_IN 232.1.1.1 [10.0.0.5 10.0.0.6]; IS_EX 239.2.2.2 [10.0.0.7]")

	h.ep.inject(v3Query(ssmGroup, 10))
	h.clk.Advance(time.Second)
	wantReports(t, "group", v3Reports(t, h.ep.take()), "IS_IN 232.1.1.1 [10.0.0.5 10.0.0.6]")

	h.ep.inject(v3Query(ssmGroup, 10, ssmS2, ssmS3))
	h.ep.inject(v3Query(g2, 10, ssmS2, ssmS3))
	h.clk.Advance(time.Second)
	got := v3Reports(t, h.ep.take())
	slices.Sort(got)
	wantReports(t, "group and source", got, "IS_IN 232.1.1.1 [10.0.0.6]", "IS_IN 239.2.2.2 [10.0.0.6]")

	// Two group-and-source queries before the answer: the sources merge.
	h.ep.inject(v3Query(ssmGroup, 10, ssmS1))
	h.ep.inject(v3Query(ssmGroup, 20, ssmS2))
	h.clk.Advance(2 * time.Second)
	wantReports(t, "merged sources", v3Reports(t, h.ep.take()), "IS_IN 232.1.1.1 [10.0.0.5 10.0.0.6]")

	// A query for a group we are not in: nothing.
	h.ep.inject(v3Query(netip.MustParseAddr("239.9.9.9"), 10))
	h.clk.Advance(time.Second)
	wantReports(t, "not a member", v3Reports(t, h.ep.take()))
	// Six: the query to a group we are not in never got past IP.
	if h.s.Stats().IGMP.InV3Queries.Load() != 6 {
		t.Fatalf("InV3Queries %d", h.s.Stats().IGMP.InV3Queries.Load())
	}
}

// Malformed and ignored IGMP messages are counted and change nothing.
func TestIGMPv3Malformed(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	a.JoinGroupOn(h.nic, ssmGroup)
	h.clk.Advance(5 * time.Second)
	h.ep.take()
	st := &h.s.Stats().IGMP
	inject := func(m []byte) {
		c := wire.Checksum(m)
		m[2], m[3] = byte(c>>8), byte(c)
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoIGMP, TTL: 1, Dst: allHosts}, m))
	}
	ten := make([]byte, 10)
	ten[0], ten[1] = igmpQuery, 10
	inject(ten) // 9-11 octets: no version
	q := make([]byte, 12)
	q[0], q[1], q[11] = igmpQuery, 10, 3 // three sources, none there
	inject(q)
	gs := make([]byte, 16)
	gs[0], gs[1], gs[11] = igmpQuery, 10, 1 // a general query with a source
	copy(gs[12:], []byte{10, 0, 0, 5})
	inject(gs)
	uq := make([]byte, 12)
	uq[0], uq[1] = igmpQuery, 10
	copy(uq[4:], []byte{10, 0, 0, 9}) // a unicast group
	inject(uq)
	eq(t, "bad queries", st.InBadQueries.Load(), uint64(4))
	r := make([]byte, 16)
	r[0], r[7] = wire.IGMPv3Report, 2 // two records, one there
	inject(r)
	eq(t, "bad v3 reports", st.InBadV3Reports.Load(), uint64(1))
	h.clk.Advance(30 * time.Second)
	wantReports(t, "after malformed", v3Reports(t, h.ep.take()))
	if h.nic.IGMPVersion() != 3 {
		t.Fatal("a malformed query changed the version")
	}
}

// A v2 query switches the host to IGMPv2 until the older-querier
// timeout (RV*QI+QRI) runs out; a v1 query to IGMPv1; a forced version
// stays.
func TestIGMPCompatibilityMode(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	h.ep.inject(igmpFrame(igmpQuery, 100, netip.IPv4Unspecified(), allHosts))
	eq(t, "version after a v2 query", h.nic.IGMPVersion(), 2)
	eq(t, "V2Compat", h.s.Stats().IGMP.V2Compat.Load(), uint64(1))
	// In v2 mode an SSM join is a plain v2 join; the leave a v2 leave.
	if err := a.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true); err != nil {
		t.Fatal(err)
	}
	if r := igmpReports(t, h.ep.take()); len(r) != 1 || r[0] != ssmGroup {
		t.Fatalf("v2 reports on join: %v", r)
	}
	a.LeaveGroupOn(h.nic, ssmGroup)
	var leaves int
	for _, f := range h.ep.take() {
		ip := parseOut(t, f)
		if ip.Protocol() == wire.ProtoIGMP && ip.Payload()[0] == igmpLeave && ip.Dst() == allRouters {
			leaves++
		}
	}
	eq(t, "leaves", leaves, 1)
	h.clk.Advance(2*olderQuerierQI + 10*time.Second + time.Millisecond)
	eq(t, "version after the timeout", h.nic.IGMPVersion(), 3)
	a.JoinGroupOn(h.nic, ssmGroup)
	wantReports(t, "v3 again", v3Reports(t, h.ep.take()), "TO_EX 232.1.1.1 []")

	// IGMPv1 query (max resp 0).
	h.ep.inject(igmpFrame(igmpQuery, 0, netip.IPv4Unspecified(), allHosts))
	eq(t, "version after a v1 query", h.nic.IGMPVersion(), 1)
	h.clk.Advance(10 * time.Second)
	var v1 int
	for _, f := range h.ep.take() {
		ip := parseOut(t, f)
		if ip.Protocol() == wire.ProtoIGMP && ip.Payload()[0] == igmpReportV1 {
			v1++
		}
	}
	eq(t, "v1 reports", v1, 1)

	f := newHarness(t, Options{ForceIGMPVersion: 3})
	f.ep.inject(igmpFrame(igmpQuery, 100, netip.IPv4Unspecified(), allHosts))
	eq(t, "forced version", f.nic.IGMPVersion(), 3)
	g := newHarness(t, Options{ForceIGMPVersion: 2})
	e := g.s.NewDgram(KindUDP, 17)
	defer e.Close()
	e.JoinGroupOn(g.nic, ssmGroup)
	if r := igmpReports(t, g.ep.take()); len(r) != 1 {
		t.Fatalf("forced v2 join: %v", r)
	}
}

// Delivery follows each socket's filter: INCLUDE takes only its sources,
// EXCLUDE all but its blocked ones; a socket that joined nothing gets the
// group only with IP_MULTICAST_ALL on, and only what the interface
// filter lets in.
func TestSSMDeliveryFilter(t *testing.T) {
	h := newHarness(t, Options{})
	mk := func() *DgramEndpoint {
		e := h.s.NewDgram(KindUDP, 17)
		e.SetReuseAddr(true)
		if err := e.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 5000)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	inc, exc, none, noAll := mk(), mk(), mk(), mk()
	noAll.SetMulticastAll(false)
	inc.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true)
	exc.JoinGroupOn(h.nic, ssmGroup)
	exc.ChangeSource(h.nic, ssmGroup, ssmS1, ModeExclude, true, false)
	exc.ChangeSource(h.nic, ssmGroup, ssmS3, ModeExclude, true, false)
	send := func(src netip.Addr) {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Src: src, Dst: ssmGroup}, udpPayload(src, ssmGroup, 9, 5000, []byte("x"))))
	}
	got := func(e *DgramEndpoint) []netip.Addr {
		var out []netip.Addr
		b := make([]byte, 16)
		for {
			_, _, from, err := e.RecvFrom(b, false)
			if err != nil {
				return out
			}
			out = append(out, from.Addr())
		}
	}
	send(ssmS1)
	send(ssmS2)
	send(ssmS3) // the interface excludes S3: nobody
	want := func(name string, e *DgramEndpoint, w ...netip.Addr) {
		t.Helper()
		if g := got(e); !slices.Equal(g, w) {
			t.Fatalf("%s got %v, want %v", name, g, w)
		}
	}
	want("INCLUDE {S1}", inc, ssmS1)
	want("EXCLUDE {S1,S3}", exc, ssmS2)
	want("not joined, IP_MULTICAST_ALL on", none, ssmS1, ssmS2)
	want("not joined, IP_MULTICAST_ALL off", noAll)
	if m, s, _ := h.nic.InterfaceFilter(ssmGroup); m != ModeExclude || !slices.Equal(s, []netip.Addr{ssmS3}) {
		t.Fatalf("interface filter %d %v", m, s)
	}
	// A raw socket is filtered too.
	raw := h.s.NewDgram(KindRaw, wire.ProtoUDP)
	defer raw.Close()
	raw.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, true, true)
	send(ssmS1)
	send(ssmS2)
	want("raw INCLUDE {S2}", raw, ssmS2)
}

// Every misuse fails as Linux's ip_mc_source / ip_mc_msfilter do, and
// the source limit is counted.
func TestSSMErrors(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	is := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	is("block without a join", e.ChangeSource(h.nic, ssmGroup, ssmS1, ModeExclude, true, false), syscall.EINVAL)
	is("source on a unicast group", e.ChangeSource(h.nic, ssmS2, ssmS1, ModeInclude, true, true), syscall.EINVAL)
	is("add S1", e.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true), nil)
	is("add S1 again", e.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, true, true), syscall.EADDRNOTAVAIL)
	is("drop a source never added", e.ChangeSource(h.nic, ssmGroup, ssmS2, ModeInclude, false, false), syscall.EADDRNOTAVAIL)
	is("block on an INCLUDE filter", e.ChangeSource(h.nic, ssmGroup, ssmS2, ModeExclude, true, false), syscall.EINVAL)
	is("any-source join over it", e.JoinGroupOn(h.nic, ssmGroup), syscall.EADDRINUSE)
	for i := 0; i < 9; i++ {
		is("add", e.ChangeSource(h.nic, ssmGroup, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), ModeInclude, true, true), nil)
	}
	is("11th source", e.ChangeSource(h.nic, ssmGroup, ssmS3, ModeInclude, true, true), syscall.ENOBUFS)
	is("filter of 11", e.SetMsfilter(h.nic, ssmGroup, ModeInclude, make([]netip.Addr, 11)), syscall.ENOBUFS)
	eq(t, "SourceLimit", h.s.Stats().IGMP.SourceLimit.Load(), uint64(2))
	is("bad mode", e.SetMsfilter(h.nic, ssmGroup, 7, nil), syscall.EINVAL)
	is("msfilter without a join", e.SetMsfilter(h.nic, netip.MustParseAddr("239.5.5.5"), ModeExclude, nil), syscall.EINVAL)
	is("INCLUDE{} without a join", e.SetMsfilter(h.nic, netip.MustParseAddr("239.5.5.5"), ModeInclude, nil), syscall.EADDRNOTAVAIL)
	is("switch to EXCLUDE {S2}", e.SetMsfilter(h.nic, ssmGroup, ModeExclude, []netip.Addr{ssmS2}), nil)
	m, s, err := e.Msfilter(h.nic, ssmGroup)
	if err != nil || m != ModeExclude || !slices.Equal(s, []netip.Addr{ssmS2}) {
		t.Fatalf("msfilter get: %d %v %v", m, s, err)
	}
	_, _, err = e.Msfilter(h.nic, netip.MustParseAddr("239.5.5.5"))
	is("get without a join", err, syscall.EADDRNOTAVAIL)
	is("INCLUDE{} leaves", e.SetMsfilter(h.nic, ssmGroup, ModeInclude, nil), nil)
	if h.nic.isMember(ssmGroup) {
		t.Fatal("still a member")
	}
	// An any-source membership's empty filter may switch mode: a drop
	// switches it to INCLUDE (and fails), as Linux does.
	is("join", e.JoinGroupOn(h.nic, ssmGroup), nil)
	is("drop on any-source", e.ChangeSource(h.nic, ssmGroup, ssmS1, ModeInclude, false, false), syscall.EADDRNOTAVAIL)
	if m, _, _ := e.Msfilter(h.nic, ssmGroup); m != ModeInclude {
		t.Fatalf("mode after the failed drop: %d", m)
	}
	is("leave", e.LeaveGroupOn(h.nic, ssmGroup), nil)
	is("leave again", e.LeaveGroupOn(h.nic, ssmGroup), syscall.EADDRNOTAVAIL)
}

// MLDv2 for IPv6: a source-specific join is an ALLOW record to ff02::16
// with its source; an MLDv1 query switches to MLDv1 reports.
func TestMLDv2SourceReports(t *testing.T) {
	h := newH6(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	g := netip.MustParseAddr("ff3e::8000:1")
	s1 := netip.MustParseAddr("2001:db8::5")
	if err := e.ChangeSource(h.nic, g, s1, ModeInclude, true, true); err != nil {
		t.Fatal(err)
	}
	recs := func() []string {
		var out []string
		for _, r := range h.only(wire.ICMPv6MLDv2Report) {
			if r.ip.Dst() != wire.IPv6AllMLDv2 || r.ip.HopLimit() != 1 {
				t.Fatalf("report to %v hop limit %d", r.ip.Dst(), r.ip.HopLimit())
			}
			var rs []wire.GroupRecord
			wire.ParseMLDv2Records(r.icmp, func(x wire.GroupRecord) {
				x.Srcs = slices.Clone(x.Srcs)
				rs = append(rs, x)
			})
			out = append(out, recString(rs))
		}
		return out
	}
	wantReports(t, "join", recs(), "ALLOW ff3e::8000:1 [2001:db8::5]")
	h.clk.Advance(time.Second)
	wantReports(t, "retransmission", recs(), "ALLOW ff3e::8000:1 [2001:db8::5]")
	// An MLDv2 group-and-source query.
	b := make([]byte, 64)
	n := wire.PutMLDQuery(b, g, time.Second)
	b[27] = 1
	copy(b[28:44], s1.AsSlice())
	hbh := []byte{wire.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0}
	h.ep.inject(frame6(wire.IPv6MulticastMAC(g), routerMC, routerLL, g, wire.ProtoHopByHop, 1, append(hbh, b[:n+16]...), 8))
	h.clk.Advance(time.Second)
	wantReports(t, "group and source query", recs(), "IS_IN ff3e::8000:1 [2001:db8::5]")
	// An MLDv1 query (24 octets): MLDv1 from now on.
	n = wire.PutMLDQuery(b, netip.Addr{}, time.Second)
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoHopByHop, 1, append(hbh, b[:wire.MLDv1Len]...), 8))
	eq(t, "MLD version", h.nic.MLDVersion(), 1)
	h.clk.Advance(time.Second)
	if len(h.only(wire.ICMPv6MLDReport)) == 0 {
		t.Fatal("no MLDv1 report answering the MLDv1 query")
	}
	e.LeaveGroupOn(h.nic, g)
	if d := h.only(wire.ICMPv6MLDDone); len(d) != 1 || d[0].ip.Dst() != wire.IPv6AllRouters {
		t.Fatalf("done: %+v", d)
	}
	_ = n
}

// IPv6 delivery follows the socket filters too (inet6_mc_check), and a
// malformed MLD query is counted.
func TestMLDv2DeliveryFilter(t *testing.T) {
	h := newH6(t, Options{})
	g := netip.MustParseAddr("ff3e::8000:2")
	s1, s2 := netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db8::6")
	mk := func() *DgramEndpoint {
		e := h.s.NewDgram(KindUDP, 0)
		e.SetInet6()
		e.SetReuseAddr(true)
		if err := e.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 6000)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	inc, exc, noAll := mk(), mk(), mk()
	noAll.SetMulticastAll(false)
	inc.ChangeSource(h.nic, g, s1, ModeInclude, true, true)
	exc.JoinGroupOn(h.nic, g)
	exc.ChangeSource(h.nic, g, s1, ModeExclude, true, false)
	for _, src := range []netip.Addr{s1, s2} {
		h.ep.inject(frame6(wire.IPv6MulticastMAC(g), peerMAC, src, g, wire.ProtoUDP, 5, udp6(src, g, 9, 6000, []byte("x")), -1))
	}
	got := func(e *DgramEndpoint) []netip.Addr {
		var out []netip.Addr
		b := make([]byte, 16)
		for {
			_, _, from, err := e.RecvFrom(b, false)
			if err != nil {
				return out
			}
			out = append(out, from.Addr().WithZone(""))
		}
	}
	if g := got(inc); !slices.Equal(g, []netip.Addr{s1}) {
		t.Fatalf("INCLUDE {s1} got %v", g)
	}
	if g := got(exc); !slices.Equal(g, []netip.Addr{s2}) {
		t.Fatalf("EXCLUDE {s1} got %v", g)
	}
	if g := got(noAll); len(g) != 0 {
		t.Fatalf("IPV6_MULTICAST_ALL off, not joined, got %v", g)
	}
	// A 26-octet query: neither MLDv1 nor MLDv2.
	b := make([]byte, 26)
	b[0] = wire.ICMPv6MLDQuery
	hbh := []byte{wire.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0}
	h.ep.inject(frame6(wire.IPv6MulticastMAC(wire.IPv6AllNodes), routerMC, routerLL, wire.IPv6AllNodes, wire.ProtoHopByHop, 1, append(hbh, b...), 8))
	eq(t, "MLDBadQueries", h.s.Stats().IGMP.MLDBadQueries.Load(), uint64(1))
	eq(t, "MLD version", h.nic.MLDVersion(), 2)
}

// In IGMPv1 compatibility mode every query is a general one answered
// within 10 s, as an IGMPv1 host and Linux's igmp_heard_query do: a v1
// query's group field and a v3 query's group are not looked at.
func TestIGMPv1ModeQueriesGeneral(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	g1, g2 := netip.MustParseAddr("239.1.1.1"), netip.MustParseAddr("239.1.1.2")
	a.JoinGroupOn(h.nic, g1)
	a.JoinGroupOn(h.nic, g2)
	h.clk.Advance(5 * time.Second)
	h.ep.take()
	v1Reports := func() int {
		n := 0
		for _, f := range h.ep.take() {
			if ip := parseOut(t, f); ip.Protocol() == wire.ProtoIGMP && ip.Payload()[0] == igmpReportV1 {
				n++
			}
		}
		return n
	}
	h.ep.inject(igmpFrame(igmpQuery, 0, g1, g1)) // a v1 query naming g1
	eq(t, "version", h.nic.IGMPVersion(), 1)
	eq(t, "groups reported after a v1 query naming one", h.nic.PendingReports(), 2)
	h.clk.Advance(10 * time.Second)
	eq(t, "v1 reports", v1Reports(), 2)
	h.ep.inject(v3Query(g1, 10)) // 1 s, for g1 only as v3 reads it
	eq(t, "groups reported after a v3 group query in v1 mode", h.nic.PendingReports(), 2)
	h.clk.Advance(10 * time.Second)
	eq(t, "v1 reports", v1Reports(), 2)
}

// In IGMPv2 mode a v3 query's octets past the eighth are ignored (RFC
// 2236 2.5): a source count past the end does not drop it. Its Max Resp
// Code is read as v3 encodes it (Linux): 0 is an answer at once, not the
// 10 s a v2 code of 0 would mean.
func TestIGMPv2ModeV3Query(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	g := netip.MustParseAddr("239.1.1.1")
	a.JoinGroupOn(h.nic, g)
	h.clk.Advance(5 * time.Second)
	h.ep.inject(igmpFrame(igmpQuery, 10, netip.IPv4Unspecified(), allHosts))
	h.clk.Advance(time.Second)
	h.ep.take()
	eq(t, "version", h.nic.IGMPVersion(), 2)
	q := make([]byte, 12)
	q[0], q[11] = igmpQuery, 5 // max resp code 0; five sources, none there
	copy(q[4:8], g.AsSlice())
	c := wire.Checksum(q)
	q[2], q[3] = byte(c>>8), byte(c)
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoIGMP, TTL: 1, Dst: g, Options: []byte{0x94, 4, 0, 0}}, q))
	h.clk.Advance(time.Millisecond)
	if r := igmpReports(t, h.ep.take()); len(r) != 1 || r[0] != g {
		t.Fatalf("v2 reports within 1 ms of a v3 query with max resp code 0: %v", r)
	}
	eq(t, "bad queries", h.s.Stats().IGMP.InBadQueries.Load(), uint64(0))
}

// mldQueryFrame is an MLD query from a link-local router with a hop-by-hop
// header carrying Router Alert value ra.
func mldQueryFrame(dst netip.Addr, ra uint16, q []byte) []byte {
	hbh := []byte{wire.ProtoICMPv6, 0, wire.IPv6OptRouterAlert, 2, byte(ra >> 8), byte(ra), 1, 0}
	return frame6(wire.IPv6MulticastMAC(dst), routerMC, routerLL, dst, wire.ProtoHopByHop, 1, append(hbh, q...), 8)
}

// An MLD query whose Router Alert is not MLD's (value 0) is dropped, as
// Linux's __mld_query_work does.
func TestMLDQueryRouterAlertValue(t *testing.T) {
	h := newH6(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	g := netip.MustParseAddr("ff15::1:2")
	if err := e.JoinGroupOn(h.nic, g); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(5 * time.Second)
	h.sent()
	b := make([]byte, wire.MLDv2QueryMin)
	wire.PutMLDQuery(b, g, time.Second)
	bad := h.s.Stats().IGMP.MLDBadQueries.Load()
	h.ep.inject(mldQueryFrame(g, 1, b))
	eq(t, "bad queries", h.s.Stats().IGMP.MLDBadQueries.Load(), bad+1)
	h.clk.Advance(2 * time.Second)
	eq(t, "reports to a query with Router Alert 1", len(h.only(wire.ICMPv6MLDv2Report)), 0)
	h.ep.inject(mldQueryFrame(g, 0, b))
	h.clk.Advance(2 * time.Second)
	eq(t, "reports to a query with Router Alert 0", len(h.only(wire.ICMPv6MLDv2Report)), 1)
}

// In MLDv1 mode an MLDv2 query's Max Resp Code is read as MLDv1
// milliseconds, at most 32767 (Linux's MLDV1_MRD_MAX_COMPAT), not in
// its float form (0xffff would be 8388 s).
func TestMLDv1ModeV2QueryDelay(t *testing.T) {
	h := newH6(t, Options{Seed: []byte("mldv1")})
	e := h.s.NewDgram(KindUDP, 0)
	e.SetInet6()
	defer e.Close()
	g := netip.MustParseAddr("ff15::1:2")
	if err := e.JoinGroupOn(h.nic, g); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(5 * time.Second)
	b := make([]byte, wire.MLDv2QueryMin)
	wire.PutMLDQuery(b, netip.Addr{}, time.Second)
	h.ep.inject(mldQueryFrame(wire.IPv6AllNodes, 0, b[:wire.MLDv1Len]))
	h.clk.Advance(2 * time.Second)
	eq(t, "MLD version", h.nic.MLDVersion(), 1)
	h.sent()
	wire.PutMLDQuery(b, g, 0)
	b[4], b[5] = 0xff, 0xff
	h.ep.inject(mldQueryFrame(g, 0, b))
	rt := h.nic.igmpTimers[g]
	if rt == nil {
		t.Fatal("no report timer for the MLDv2 query in MLDv1 mode")
	}
	if d := rt.due.Sub(h.clk.Now()); d > 32767*time.Millisecond {
		t.Fatalf("report due in %v, want at most 32.767 s", d)
	}
}
