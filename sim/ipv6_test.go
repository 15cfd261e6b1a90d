package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Traceroute over IPv6 through three routers names each router by the
// address it received the probe on (its ICMPv6 time exceeded), then the
// target by its echo reply; each router sent exactly one time exceeded.
func TestTraceroute6(t *testing.T) {
	_, n := runScenario(t, "../scenarios/traceroute6.yaml", 1, 0)
	f := n.Flows[0]
	want := []string{"fd00:1::1", "fd00:2::2", "fd00:3::2", "fd00:4::2"}
	if !f.Completed || strings.Join(f.Hops, " ") != strings.Join(want, " ") {
		t.Fatalf("hops %v (completed %v, %s), want %v", f.Hops, f.Completed, f.Err, want)
	}
	for _, h := range []string{"r1", "r2", "r3"} {
		st := n.Host(h).Stack.Stats()
		if v := st.IP6.InHopLimitExceeded.Load(); v != 1 {
			t.Errorf("%s: IP6.InHopLimitExceeded %d, want 1", h, v)
		}
		if st.IP.TTLExceeded.Load() != 0 {
			t.Errorf("%s: an IPv4 TTL exceeded in an IPv6 scenario", h)
		}
	}
	if st := n.Host("src").Stack.Stats(); st.ICMP6.InTimeExcds.Load() != 3 {
		t.Errorf("src: ICMP6.InTimeExcds %d, want 3", st.ICMP6.InTimeExcds.Load())
	}
	p := n.Flows[1]
	if p.Kind != "ping" || !p.Completed || p.DgramsRecv != 3 || p.LatMinMs < 24 {
		t.Errorf("ping6: completed %v, %d replies, min RTT %.2f ms (want 3, at least 24 ms)", p.Completed, p.DgramsRecv, p.LatMinMs)
	}
}

// The dual-stack dumbbell: an IPv4 and an IPv6 transfer share an
// FQ-CoDel bottleneck about equally (the queue hashes both families'
// 5-tuples), and every IPv6 workload (ping, UDP, churn) works. The
// bottleneck's capture holds both transfers, read back by the
// time-sequence analysis.
func TestDualStackDumbbell(t *testing.T) {
	sc, err := LoadScenario("../scenarios/dumbbell-dualstack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.Capture(dir, []string{"bottleneck"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(time.Duration(sc.Duration)); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Flow{}
	for _, f := range n.Flows {
		byName[f.Workload] = f
		if !f.Completed || f.Err != "" {
			t.Errorf("%s: completed %v, error %q", f.Workload, f.Completed, f.Err)
		}
	}
	b4, b6 := byName["bulk4"], byName["bulk6"]
	if !b4.HashOK || !b6.HashOK {
		t.Fatalf("hashes: IPv4 %v, IPv6 %v", b4.HashOK, b6.HashOK)
	}
	if !strings.HasPrefix(b4.Server, "10.") || !strings.HasPrefix(b6.Server, "[fd00:") {
		t.Errorf("servers %s and %s: want one IPv4, one IPv6", b4.Server, b6.Server)
	}
	share := b6.GoodputBps / (b4.GoodputBps + b6.GoodputBps)
	if share < 0.4 || share > 0.6 {
		t.Errorf("IPv6 share of the bottleneck %.2f (IPv4 %.1f, IPv6 %.1f Mbit/s), want 0.4..0.6", share, b4.GoodputBps/1e6, b6.GoodputBps/1e6)
	}
	if sum := (b4.GoodputBps + b6.GoodputBps) / 1e6; sum < 16 || sum > 20 {
		t.Errorf("together %.1f Mbit/s over a 20 Mbit/s link", sum)
	}
	if p := byName["ping6"]; p.DgramsRecv != 20 || p.LatMaxMs > 100 {
		t.Errorf("ping6: %d replies, max %.1f ms (FQ-CoDel keeps it near 44 ms)", p.DgramsRecv, p.LatMaxMs)
	}
	if u := byName["udp6"]; u.DgramsRecv == 0 || u.DgramsRecv != u.DgramsSent || !strings.HasPrefix(u.Client, "[fd00:1:1::2]") {
		t.Errorf("udp6: %d of %d datagrams from %s", u.DgramsRecv, u.DgramsSent, u.Client)
	}
	if c := byName["churn6"]; c.Requests != 20 || c.FailedConns != 0 {
		t.Errorf("churn6: %d requests, %d failed", c.Requests, c.FailedConns)
	}
	if v := n.Host("r1").Stack.Stats().IP6.ForwDatagrams.Load(); v == 0 {
		t.Error("r1 forwarded no IPv6")
	}
	fh, err := os.Open(filepath.Join(dir, "bottleneck.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	recs, err := ReadPcap(fh, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got4, got6 bool
	for _, c := range Connections(recs) {
		if c.Bytes == 15e6 {
			got4 = got4 || c.Dst.Addr().Is4()
			got6 = got6 || c.Dst.Addr().Is6()
		}
	}
	if !got4 || !got6 {
		t.Errorf("capture analysis: IPv4 transfer %v, IPv6 transfer %v", got4, got6)
	}
}

// The capture analysis reads IPv6 TCP as it reads IPv4: a 1 MB transfer
// over IPv6, its bytes, retransmissions and RTT.
func TestTraceConnFromCapture6(t *testing.T) {
	sc, err := ParseScenario([]byte(`name: x
hosts: [{name: a}, {name: b}]
links:
  - {name: ab, a: a, a_addr: "fd00::1/64", b: b, b_addr: "fd00::2/64", bandwidth: 100Mbit, delay: 10ms}
workloads:
  - {type: bulk, from: a, to: b, port: 5001, bytes: 1MB}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.Capture(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "ab.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadPcap(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := Connections(recs)
	if len(cs) == 0 || cs[0].Bytes != 1e6 || cs[0].Dst != netip.MustParseAddrPort("[fd00::2]:5001") {
		t.Fatalf("connections: %v", cs)
	}
	ct := TraceConn(recs, cs[0].Src, cs[0].Dst)
	if ct.Bytes != 1e6+2 || ct.Retrans != 0 {
		t.Errorf("highest sequence %d (want 1e6+2), %d retransmissions", ct.Bytes, ct.Retrans)
	}
	rs := ct.RTTSamples()
	if len(rs) < 100 || rs[0].RTT < 20*time.Millisecond {
		t.Errorf("%d RTT samples, first %v", len(rs), rs)
	}
}

// ip6Frame is an Ethernet + IPv6 + UDP frame from fd00::src, port
// 1000+src, carrying its send time (ns) in the payload.
func ip6Frame(src byte, size int) []byte {
	f := make([]byte, size)
	binary.BigEndian.PutUint16(f[12:], wire.EtherTypeIPv6)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(size-14-40))
	ip[6] = wire.ProtoUDP
	ip[7] = 64
	ip[8], ip[9], ip[23] = 0xfd, 0, src
	ip[24], ip[25], ip[39] = 0xfd, 0, 0x99
	binary.BigEndian.PutUint16(ip[40:], 1000+uint16(src))
	binary.BigEndian.PutUint16(ip[42:], 53)
	return f
}

// The flow classifier separates IPv6 flows by address and port, keeps a
// flow's packets together, and isICMP spares neighbour discovery.
func TestFlowKeyIPv6(t *testing.T) {
	a, b := ip6Frame(1, 200), ip6Frame(2, 200)
	if flowKey(a, 7) == 0 || flowKey(a, 7) == flowKey(b, 7) {
		t.Errorf("keys %x %x: want distinct, non-zero", flowKey(a, 7), flowKey(a, 7))
	}
	c := ip6Frame(1, 1200) // same flow, other size
	if flowKey(a, 7) != flowKey(c, 7) {
		t.Error("one flow's packets hash apart")
	}
	d := ip6Frame(1, 200)
	binary.BigEndian.PutUint16(d[14+40:], 999) // other source port
	if flowKey(a, 7) == flowKey(d, 7) {
		t.Error("ports not hashed")
	}
	icmp := func(typ uint8) []byte {
		f := ip6Frame(1, 100)
		f[14+6] = wire.ProtoICMPv6
		f[14+40] = typ
		return f
	}
	for typ, want := range map[uint8]bool{wire.ICMPv6EchoRequest: true, wire.ICMPv6TimeExceeded: true, 2: true,
		wire.ICMPv6NeighborSolic: false, wire.ICMPv6MLDv2Report: false, wire.ICMPv6EchoReply: true, wire.ICMPv6NeighborAdvert: false, wire.ICMPv6RouterAdvert: false} {
		if isICMP(icmp(typ)) != want {
			t.Errorf("isICMP(ICMPv6 type %d) = %v", typ, !want)
		}
	}
	if isICMP(a) {
		t.Error("UDP over IPv6 taken for ICMP")
	}
}

// FQ-CoDel isolates a sparse IPv6 flow from an IPv6 flow that overloads
// the link (its classifier reads IPv6 5-tuples).
func TestFQCoDelIsolation6(t *testing.T) {
	s := New(3)
	l, err := s.NewLink("l", LinkConfig{Bandwidth: 10e6, Queue: QueueConfig{Type: "fq_codel"}})
	if err != nil {
		t.Fatal(err)
	}
	delays := map[byte][]time.Duration{}
	l.Ends[1].sink = sinkFunc(func(p *packet) {
		sent := time.Duration(binary.BigEndian.Uint64(p.buf[len(p.buf)-8:]))
		delays[p.buf[14+23]] = append(delays[p.buf[14+23]], s.Now()-sent)
		p.free()
	})
	send := func(src byte, size int, rate float64) {
		gap := time.Duration(float64(size*8) / rate * 1e9)
		for at := time.Duration(0); at < 2*time.Second; at += gap {
			s.At(at, func() {
				p := newPacket(ip6Frame(src, size))
				binary.BigEndian.PutUint64(p.buf[len(p.buf)-8:], uint64(s.Now()))
				l.Ends[0].send(p)
			})
		}
	}
	send(1, 1500, 20e6)
	send(2, 200, 100e3)
	if err := s.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(delays[1]) == 0 || len(delays[2]) == 0 {
		t.Fatal("nothing delivered")
	}
	if m := maxDelay(delays[2]); m > 5*time.Millisecond {
		t.Errorf("sparse IPv6 flow delayed up to %v", m)
	}
}

type sinkFunc func(p *packet)

func (f sinkFunc) recvFrame(_ *Port, p *packet) { f(p) }

// DAD (scenario field dad) holds IPv6 addresses tentative for a virtual
// second: a transfer started at once fails as on Linux (EADDRNOTAVAIL),
// one started at 2 s works; without dad the addresses are usable at 0.
func TestScenarioDAD(t *testing.T) {
	run := func(dad bool, start string) (*Net, *Flow) {
		y := `name: x
hosts: [{name: a}, {name: b}]
links:
  - {a: a, a_addr: "fd00::1/64", b: b, b_addr: "fd00::2/64", bandwidth: 100Mbit, delay: 1ms}
workloads:
  - {type: bulk, from: a, to: b, bytes: 100KB, start: ` + start + `}
`
		if dad {
			y = "dad: true\n" + y
		}
		sc, err := ParseScenario([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		n, err := sc.Build(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Run(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		return n, n.Flows[0]
	}
	n, f := run(false, "0s")
	if !f.Completed || n.Host("a").Stack.Stats().ND.DADStarted.Load() != 0 {
		t.Errorf("no dad: completed %v (%s), DAD started %d", f.Completed, f.Err, n.Host("a").Stack.Stats().ND.DADStarted.Load())
	}
	n, f = run(true, "0s")
	if f.Completed || f.Err != syscall.EADDRNOTAVAIL.Error() || n.Host("a").Stack.Stats().ND.DADStarted.Load() == 0 {
		t.Errorf("dad, start 0: completed %v, error %q, DAD started %d", f.Completed, f.Err, n.Host("a").Stack.Stats().ND.DADStarted.Load())
	}
	_, f = run(true, "2s")
	if !f.Completed {
		t.Errorf("dad, start 2s: %s", f.Err)
	}
}

// IPv6 and dual-stack scenario errors name the line and field.
func TestScenarioErrors6(t *testing.T) {
	hosts := "name: x\nhosts: [{name: a}, {name: b}]\n"
	cases := []struct{ yaml, want string }{
		{hosts + "links:\n  - {a: a, a_addr: \"fd00::1\", b: b, b_addr: \"fd00::2/64\"}\n", `4: a_addr: "fd00::1" is not an IPv4 or IPv6 address with prefix length`},
		{hosts + "links:\n  - name: l\n    a: a\n    a_addr: [10.0.0.1/24, 10.0.1.1/24]\n    b: b\n    b_addr: 10.0.0.2/24\n", "6: a_addr: two IPv4 addresses"},
		{hosts + "links:\n  - {a: a, a_addr: {x: 1}, b: b, b_addr: \"fd00::2/64\"}\n", "4: expected an address or a list of addresses"},
		{"name: x\nhosts:\n  - {name: a, gateway: [\"fd00::9\", \"fd00::8\"]}\n  - {name: b}\nlinks:\n  - {a: a, a_addr: \"fd00::1/64\", b: b, b_addr: \"fd00::2/64\"}\n", "3: gateway: two IPv6 gateways"},
		{"name: x\nhosts:\n  - {name: a}\n  - name: b\n    routes: [{to: \"fd00:9::/64\", via: 10.0.0.1}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\n", "5: routes: route to fd00:9::/64 via 10.0.0.1"},
		{hosts + "links:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\nworkloads:\n  - {type: ping, from: a, to: b, family: ipv6}\n", `6: to: host "b" has no IPv6 address`},
		{hosts + "links:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: [10.0.0.2/24, \"fd00::2/64\"]}\nworkloads:\n  - {type: ping, from: a, to: b, family: ipv6}\n", `6: from: host "a" has no IPv6 address`},
		{hosts + "links:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\nworkloads:\n  - {type: ping, from: a, to: b, family: ip7}\n", `6: family: "ip7" is not ipv4 or ipv6`},
		{hosts + "links:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\nworkloads:\n  - {type: ping, from: a, to: \"fd00::2\"}\n", "6: to: no host has address fd00::2"},
		{hosts + "links:\n  - {a: a, a_addr: [10.0.0.1/24, \"fd00::1/64\"], b: b, b_addr: [10.0.0.2/24, \"fd00::2/64\"]}\nworkloads:\n  - {type: ping, from: a, to: 10.0.0.2, family: ipv6}\n", "6: family: ipv6, but to is the IPv4 address 10.0.0.2"},
		{"name: x\nswitches: [{name: sw}]\ngroups:\n  - {prefix: w, count: 300, switch: sw, subnet: [10.0.0.0/24, \"fd00::/64\"]}\n", "4: count: 300 hosts from offset 10 do not fit in 10.0.0.0/24"},
		{"name: x\nswitches: [{name: sw}]\ngroups:\n  - {prefix: w, count: 3, switch: sw, subnet: \"fd00::/120\", first: 254}\n", "4: count: 3 hosts from offset 254 do not fit in fd00::/120"},
	}
	for _, c := range cases {
		sc, err := ParseScenario([]byte(c.yaml))
		if err == nil {
			_, err = sc.Build(1)
		}
		if err == nil {
			t.Errorf("no error for:\n%s", c.yaml)
			continue
		}
		var se *ScenarioError
		if !errors.As(err, &se) {
			t.Errorf("error %q is not a ScenarioError", err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q does not contain %q", err, c.want)
		}
	}
}

// A dual-stack group: each member gets the same offset in both subnets;
// a workload to a member's IPv6 address (by literal) reaches it.
func TestGroupDualStack(t *testing.T) {
	sc, err := ParseScenario([]byte(`name: x
hosts: [{name: srv}]
switches: [{name: sw}]
groups:
  - {prefix: w, count: 3, switch: sw, subnet: [10.0.0.0/24, "fd00:0:0:1::/64"], first: 255}
links:
  - {a: srv, a_addr: [10.0.0.1/24, "fd00:0:0:1::1/64"], b: sw}
workloads:
  - {type: bulk, from: "w*", to: "fd00:0:0:1::1", bytes: 50KB}
  - {type: ping, from: srv, to: w3, family: ipv6, count: 1}
`))
	if err == nil {
		_, err = sc.Build(1)
	}
	// 255+2 does not fit a /24: the group is refused.
	if err == nil || !strings.Contains(err.Error(), "do not fit in 10.0.0.0/24") {
		t.Fatalf("error %v", err)
	}
	sc.Groups[0].First = 10
	n, err := sc.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	w3 := n.Host("w3")
	if got := w3.AddrOf(4).String() + " " + w3.AddrOf(6).String(); got != "10.0.0.12 fd00:0:0:1::c" {
		t.Errorf("w3 addresses %s", got)
	}
	if err := n.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, f := range n.Flows {
		if !f.Completed {
			t.Errorf("%s from %s: %s", f.Kind, f.From, f.Err)
		}
	}
	if !strings.HasPrefix(n.Flows[0].Server, "[fd00:0:0:1::1]") {
		t.Errorf("server %s", n.Flows[0].Server)
	}
}

// addrPlus carries across bytes and families.
func TestAddrPlus(t *testing.T) {
	for _, c := range []struct {
		a    string
		k    uint64
		want string
	}{{"10.0.0.250", 10, "10.0.1.4"}, {"fd00::ff", 1, "fd00::100"}, {"fd00::", 70000, "fd00::1:1170"}} {
		if got := addrPlus(netip.MustParseAddr(c.a), c.k).String(); got != c.want {
			t.Errorf("%s + %d = %s, want %s", c.a, c.k, got, c.want)
		}
	}
}

// ipv6TCP is a minimal IPv6 TCP segment [fd00::1]:1000 -> [fd00::2]:80
// with n bytes of payload.
func ipv6TCP(seq uint32, n int) []byte {
	p := make([]byte, 60+n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(20+n))
	p[6], p[7] = wire.ProtoTCP, 64
	p[8], p[9], p[23] = 0xfd, 0, 1
	p[24], p[25], p[39] = 0xfd, 0, 2
	binary.BigEndian.PutUint16(p[40:], 1000)
	binary.BigEndian.PutUint16(p[42:], 80)
	binary.BigEndian.PutUint32(p[44:], seq)
	p[52] = 5 << 4
	p[53] = 0x18 // PSH ACK
	return p
}

// IPv6 captures read back from every link type, raw IP ones (101, and
// 229, raw IPv6) by the packet's version, and the connection is found.
func TestReadPcapLinkTypes6(t *testing.T) {
	ip1, ip2 := ipv6TCP(100, 1000), ipv6TCP(1100, 500)
	eth := func(ip []byte) []byte { return append([]byte{12: 0x86, 13: 0xdd}, ip...) }
	sll := func(ip []byte) []byte { h := make([]byte, 16); h[14], h[15] = 0x86, 0xdd; return append(h, ip...) }
	raw := func(ip []byte) []byte { return ip }
	for _, c := range []struct {
		name string
		lt   uint32
		wrap func([]byte) []byte
	}{{"ethernet", 1, eth}, {"raw", 101, raw}, {"raw6", 229, raw}, {"sll", 113, sll}} {
		recs, err := ReadPcap(bytes.NewReader(pcapFile(c.lt, c.wrap(ip1), c.wrap(ip2))), 0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(recs) != 2 || !bytes.Equal(recs[0].Data, eth(ip1)) {
			t.Fatalf("%s: records %d, first %x", c.name, len(recs), recs[0].Data[:20])
		}
		cs := Connections(recs)
		if len(cs) != 1 || cs[0].Bytes != 1500 || cs[0].Dst != netip.MustParseAddrPort("[fd00::2]:80") {
			t.Errorf("%s: connections %v", c.name, cs)
		}
	}
}

// Every workload type runs over IPv6 through a router, and a server that
// crashed and restarted listens on [::] again.
func TestWorkloadsIPv6(t *testing.T) {
	sc, err := ParseScenario([]byte(`name: all6
duration: 60s
hosts:
  - {name: a, gateway: "fd00:1::1"}
  - {name: b, gateway: "fd00:2::1"}
routers: [{name: r}]
links:
  - {a: a, a_addr: "fd00:1::2/64", b: r, b_addr: "fd00:1::1/64", bandwidth: 50Mbit, delay: 2ms}
  - {a: r, a_addr: "fd00:2::1/64", b: b, b_addr: "fd00:2::2/64", bandwidth: 50Mbit, delay: 2ms}
workloads:
  - {name: bulk, type: bulk, from: a, to: b, bytes: 2MB}
  - {name: rr, type: rr, from: a, to: b, count: 10, request: 100, response: 5000}
  - {name: http, type: http, from: a, to: b, count: 5, response: 20000}
  - {name: churn, type: churn, from: a, to: b, count: 10, concurrency: 3}
  - {name: ping, type: ping, from: a, to: b, count: 3, interval: 100ms}
  - {name: udp, type: udp, from: a, to: b, rate: 1Mbit, duration: 1s}
  - {name: trace, type: traceroute, from: a, to: b}
  - {name: late, type: bulk, from: a, to: b, bytes: 100KB, start: 5s}
events:
  - {at: 3s, crash: b}
  - {at: 4s, restart: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(time.Duration(sc.Duration)); err != nil {
		t.Fatal(err)
	}
	for _, f := range n.Flows {
		if !f.Completed || f.Err != "" {
			t.Errorf("%s: completed %v, error %q", f.Workload, f.Completed, f.Err)
		}
		if f.Server != "" && !strings.HasPrefix(f.Server, "[fd00:2::2]:") {
			t.Errorf("%s: server %s", f.Workload, f.Server)
		}
		switch f.Workload {
		case "rr", "http", "churn":
			if f.Requests == 0 || f.FailedConns != 0 {
				t.Errorf("%s: %d requests, %d failed", f.Workload, f.Requests, f.FailedConns)
			}
		case "trace":
			if strings.Join(f.Hops, " ") != "fd00:1::1 fd00:2::2" {
				t.Errorf("hops %v", f.Hops)
			}
		case "udp":
			if f.DgramsRecv == 0 || f.DgramsRecv != f.DgramsSent {
				t.Errorf("udp: %d of %d", f.DgramsRecv, f.DgramsSent)
			}
		}
	}
	if st := n.Host("a").Stack.Stats(); st.IP.OutRequests.Load() != 0 {
		t.Errorf("a sent %d IPv4 packets in an IPv6-only scenario", st.IP.OutRequests.Load())
	}
}
