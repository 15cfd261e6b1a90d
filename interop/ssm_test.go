package interop

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Source-specific multicast against the Linux kernel: the same socket
// calls on sockstack (on the TAP) and on Linux (the peer namespace, on
// its veth) draw the same IGMPv3 state-change reports, group records
// and sources alike; and a kernel sender's datagrams reach a sockstack
// socket only from the sources its filter admits.

var (
	ssmIGroup = netip.MustParseAddr("232.7.7.7")
	ssmIS1    = netip.MustParseAddr("10.99.0.1")
	ssmIS2    = netip.MustParseAddr("10.99.0.2")
	ssmIS3    = netip.MustParseAddr("10.99.0.3")
)

// pySSMCalls makes the calls on the peer: ifaddr and ifindex name its
// interface; a step's report and its retransmission are out 2.5 s
// later (unsolicited report interval 1 s). It prints DONE with the time
// after the last step, before its sockets close.
const pySSMCalls = `
import json, socket, struct, sys, time
a = json.loads(sys.argv[1])
def ip(s): return socket.inet_aton(s)
def ss(addr): return struct.pack("=H2x4s", socket.AF_INET, ip(addr)) + bytes(120)
def greq(idx, g): return struct.pack("=I4x", idx) + ss(g)
def gsreq(idx, g, src): return struct.pack("=I4x", idx) + ss(g) + ss(src)
x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
y = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
G, IF, IDX = a["G"], a["If"], a["Idx"]
S1, S2, S3 = a["S"]
print("READY", flush=True)
steps = [
  (x, 39, ip(G) + ip(IF) + ip(S1)),
  (x, 39, ip(G) + ip(IF) + ip(S2)),
  (x, 40, ip(G) + ip(IF) + ip(S1)),
  (y, 42, greq(IDX, G)),
  (y, 43, gsreq(IDX, G, S3)),
  (y, 45, greq(IDX, G)),
  (x, 41, ip(G) + ip(IF) + struct.pack("=II", 0, 1) + ip(S1)),
  (x, 41, ip(G) + ip(IF) + struct.pack("=II", 0, 2) + ip(S2) + ip(S3)),
  (x, 41, ip(G) + ip(IF) + struct.pack("=II", 1, 1) + ip(S3)),
]
for s, opt, val in steps:
  s.setsockopt(socket.IPPROTO_IP, opt, val)
  time.sleep(2.5)
print("DONE %f" % time.time(), flush=True)
`

// pyIGMPSniff prints the IGMP payloads arriving on an interface, each
// with its time, for a while.
const pyIGMPSniff = `
import json, socket, sys, time, select
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((a["Iface"], 0))
print("READY", flush=True)
end = time.time() + a["Secs"]
while True:
  left = end - time.time()
  if left <= 0: break
  r, _, _ = select.select([s], [], [], left)
  if not r: continue
  f = s.recv(65535)[14:]
  ihl = (f[0] & 15) * 4
  if f[9] == 2:
    print("%f %s" % (time.time(), f[ihl:].hex()), flush=True)
print("END", flush=True)
`

// ssmRecords renders an IGMPv3 report's records for our group, the
// sources of each in order.
func ssmRecords(p []byte) string {
	names := map[uint8]string{1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}
	var out []string
	if len(p) == 0 || p[0] != wire.IGMPv3Report {
		return ""
	}
	wire.ParseIGMPv3Report(p, func(r wire.GroupRecord) {
		if r.Group == ssmIGroup {
			out = append(out, fmt.Sprintf("%s %v", names[r.Type], r.Srcs))
		}
	})
	return strings.Join(out, "; ")
}

// dedupe drops empty reports and each report's retransmissions.
func dedupe(rs []string) []string {
	var out []string
	for _, r := range rs {
		if r != "" && (len(out) == 0 || out[len(out)-1] != r) {
			out = append(out, r)
		}
	}
	return out
}

// ssmStep is one socket call of the report comparisons.
type ssmStep struct {
	s    *socket.Socket
	name int
	v    any
}

// ssmSockets makes two datagram sockets of family on nw, closed at the
// test's end.
func ssmSockets(t *testing.T, nw *socket.Net, family int) (x, y *socket.Socket) {
	t.Helper()
	mk := func() *socket.Socket {
		s, err := nw.Socket(family, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return mk(), mk()
}

// applySSMSteps makes each call at level and collects what it draws from
// reports: the report and its one retransmission (QRV 2), each within
// the unsolicited report interval.
func applySSMSteps(t *testing.T, level int, steps []ssmStep, reports <-chan string) []string {
	t.Helper()
	var ours []string
	for i, s := range steps {
		if err := s.s.SetSockOpt(level, s.name, s.v); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		for n := 0; n < 2; n++ {
			select {
			case r := <-reports:
				ours = append(ours, r)
			case <-time.After(3 * time.Second):
				t.Fatalf("step %d: %d reports, want 2", i+1, n)
			}
		}
	}
	return ours
}

// peerReports reads the reports the sniffer caught from the kernel peer
// while it made its calls: out is the peer script's output, whose DONE
// line stamps the end of the calls; reports after it (the peer's
// sockets closing) are logged and left out. records shows a report.
func peerReports(t *testing.T, sniff *pyServer, out string, limit time.Duration, records func([]byte) string) []string {
	t.Helper()
	var done float64
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "DONE" {
			done, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if done == 0 {
		t.Fatalf("peer: %s", out)
	}
	var linux []string
	for {
		line := sniff.next(t, limit)
		if line == "END" || line == "" {
			break
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		ts, _ := strconv.ParseFloat(f[0], 64)
		b, err := hexBytes(f[1])
		if err != nil {
			continue
		}
		if ts > done {
			t.Logf("after the calls (%.3f > %.3f): %s", ts, done, records(b))
			continue
		}
		linux = append(linux, records(b))
	}
	return linux
}

func TestInteropSSMReports(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	p := l.newLinuxPeer(t)

	// sockstack on the TAP, its IGMP frames captured as they go out.
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan string, 64)
	ep := link.NewSniffer(tap, func(dir link.Direction, fr []byte) {
		if dir == link.In || len(fr) < 14+24 || wire.Ethernet(fr).EtherType() != wire.EtherTypeIPv4 {
			return
		}
		ip := wire.IPv4(fr[14:])
		if ip.Protocol() != wire.ProtoIGMP {
			return
		}
		select {
		case reports <- ssmRecords(fr[14+ip.HeaderLen():]):
		default:
		}
	})
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close)
	nic := st.AddNIC(tapName, ep)
	if err := nic.AddAddress(stackCIDR); err != nil {
		t.Fatal(err)
	}
	x, y := ssmSockets(t, socket.New(st), socket.AF_INET)
	idx := uint32(nic.ID())
	steps := []ssmStep{
		{x, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: ssmIS1}},
		{x, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: ssmIS2}},
		{x, socket.IP_DROP_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: ssmIS1}},
		{y, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: idx, Group: ssmIGroup}},
		{y, socket.MCAST_BLOCK_SOURCE, socket.GroupSourceReq{Interface: idx, Group: ssmIGroup, Source: ssmIS3}},
		{y, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: idx, Group: ssmIGroup}},
		{x, socket.IP_MSFILTER, socket.IPMsfilter{Multiaddr: ssmIGroup, Interface: stackIP, Fmode: socket.MCAST_EXCLUDE, Slist: []netip.Addr{ssmIS1}}},
		// Both source records in one report (EXCLUDE: BLOCK first), then
		// a mode change.
		{x, socket.IP_MSFILTER, socket.IPMsfilter{Multiaddr: ssmIGroup, Interface: stackIP, Fmode: socket.MCAST_EXCLUDE, Slist: []netip.Addr{ssmIS2, ssmIS3}}},
		{x, socket.IP_MSFILTER, socket.IPMsfilter{Multiaddr: ssmIGroup, Interface: stackIP, Fmode: socket.MCAST_INCLUDE, Slist: []netip.Addr{ssmIS3}}},
	}
	ours := applySSMSteps(t, socket.SOL_IP, steps, reports)

	// Linux: the same calls in the peer, its reports captured on the
	// lab's end of the veth.
	// Not startPy: its 20 s bound is shorter than the calls take.
	sniff := l.startPyFor(t, pyIGMPSniff, map[string]any{"Iface": peerIface, "Secs": 2.5*float64(len(steps)) + 4}, 60*time.Second)
	kIdx := p.ifindex(t)
	out := p.run(t, 30*time.Second, nil, "python3", "-c", pySSMCalls, mustJSON(t, map[string]any{
		"G": ssmIGroup.String(), "If": peerAddr4, "Idx": kIdx, "S": []string{ssmIS1.String(), ssmIS2.String(), ssmIS3.String()}}))
	linux := peerReports(t, sniff, out, 40*time.Second, ssmRecords)
	want := []string{"ALLOW [10.99.0.1]", "ALLOW [10.99.0.2]", "BLOCK [10.99.0.1]", "TO_EX []", "BLOCK [10.99.0.3]", "TO_IN [10.99.0.2]", "TO_EX [10.99.0.1]",
		"BLOCK [10.99.0.2 10.99.0.3]; ALLOW [10.99.0.1]", "TO_IN [10.99.0.3]"}
	t.Logf("sockstack reports: %q", ours)
	t.Logf("linux reports:     %q", linux)
	if got := dedupe(ours); !slices.Equal(got, want) {
		t.Errorf("sockstack's distinct reports %q, want %q", got, want)
	}
	if got := dedupe(linux); !slices.Equal(got, dedupe(ours)) {
		t.Errorf("linux's distinct reports %q, sockstack's %q", got, dedupe(ours))
	}
	// Each report went twice on sockstack (QRV 2), as on Linux.
	if len(ours) != 2*len(steps) {
		t.Errorf("sockstack sent %d reports for %d steps", len(ours), len(steps))
	}
}

func hexBytes(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

// pySSMSend sends each (source, payload) to the group from that source
// address, in order.
const pySSMSend = `
import json, socket, sys
a = json.loads(sys.argv[1])
for src, data in a["Sends"]:
  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  s.bind((src, 0))
  s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
  s.sendto(data.encode(), (a["G"], a["Port"]))
  s.close()
`

// A kernel sender's datagrams from an included source reach the
// INCLUDE socket and not the EXCLUDE one; those from the excluded
// source the other way round. Order tells it: each receiver's next two
// datagrams are both from its admitted source.
func TestInteropSSMDelivery(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	h := l.startStack("")
	const port = 7410
	other := netip.MustParseAddr("10.77.0.5")
	l.run(t, 5*time.Second, nil, "ip", "addr", "add", other.String()+"/24", "dev", tapName)
	mk := func() *socket.Socket {
		s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), port))); err != nil {
			t.Fatal(err)
		}
		s.SetTimeout(10 * time.Second)
		return s
	}
	inc, exc := mk(), mk()
	if err := inc.SetSockOpt(socket.SOL_IP, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: kernelIP}); err != nil {
		t.Fatal(err)
	}
	if err := exc.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: ssmIGroup, Interface: stackIP}); err != nil {
		t.Fatal(err)
	}
	if err := exc.SetSockOpt(socket.SOL_IP, socket.IP_BLOCK_SOURCE, socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: kernelIP}); err != nil {
		t.Fatal(err)
	}
	k, o := kernelIP.String(), other.String()
	l.run(t, 10*time.Second, nil, "python3", "-c", pySSMSend, mustJSON(t, map[string]any{
		"G": ssmIGroup.String(), "Port": port, "Sends": [][2]string{{k, "k1"}, {o, "o1"}, {k, "k2"}, {o, "o2"}}}))
	buf := make([]byte, 64)
	read := func(who string, s *socket.Socket) string {
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		return fmt.Sprintf("%s from %v", buf[:n], from.(*socket.SockaddrInet).AddrPort.Addr())
	}
	for _, c := range []struct {
		who  string
		s    *socket.Socket
		want []string
	}{
		{"INCLUDE {10.77.0.1}", inc, []string{"k1 from 10.77.0.1", "k2 from 10.77.0.1"}},
		{"EXCLUDE {10.77.0.1}", exc, []string{"o1 from 10.77.0.5", "o2 from 10.77.0.5"}},
	} {
		got := []string{read(c.who, c.s), read(c.who, c.s)}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s got %q, want %q", c.who, got, c.want)
		}
	}
}

var (
	ssm6Group = netip.MustParseAddr("ff3e::8000:7")
	ssm6S1    = netip.MustParseAddr("2001:db8:99::1")
	ssm6S2    = netip.MustParseAddr("2001:db8:99::2")
	ssm6S3    = netip.MustParseAddr("2001:db8:99::3")
)

// pySSMCalls6 is pySSMCalls for IPv6: MCAST_* at IPPROTO_IPV6.
const pySSMCalls6 = `
import json, socket, struct, sys, time
a = json.loads(sys.argv[1])
def ss(addr): return struct.pack("=H2x4x", socket.AF_INET6) + socket.inet_pton(socket.AF_INET6, addr) + bytes(4) + bytes(100)
def greq(idx, g): return struct.pack("=I4x", idx) + ss(g)
def gsreq(idx, g, src): return struct.pack("=I4x", idx) + ss(g) + ss(src)
def gf(idx, g, mode, srcs): return struct.pack("=I4x", idx) + ss(g) + struct.pack("=II", mode, len(srcs)) + b"".join(ss(s) for s in srcs)
x = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
y = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
G, IDX = a["G"], a["Idx"]
S1, S2, S3 = a["S"]
print("READY", flush=True)
steps = [
  (x, 46, gsreq(IDX, G, S1)),
  (x, 46, gsreq(IDX, G, S2)),
  (x, 47, gsreq(IDX, G, S1)),
  (y, 42, greq(IDX, G)),
  (y, 43, gsreq(IDX, G, S3)),
  (y, 45, greq(IDX, G)),
  (x, 48, gf(IDX, G, 0, [S1])),
  (x, 48, gf(IDX, G, 0, [S2, S3])),
  (x, 48, gf(IDX, G, 1, [S3])),
]
for s, opt, val in steps:
  s.setsockopt(socket.IPPROTO_IPV6, opt, val)
  time.sleep(2.5)
print("DONE %f" % time.time(), flush=True)
`

// pyMLDSniff prints the MLDv2 reports arriving on an interface.
const pyMLDSniff = `
import json, socket, sys, time, select
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind((a["Iface"], 0))
print("READY", flush=True)
end = time.time() + a["Secs"]
while True:
  left = end - time.time()
  if left <= 0: break
  r, _, _ = select.select([s], [], [], left)
  if not r: continue
  f = s.recv(65535)[14:]
  if len(f) < 48 or f[6] != 0: continue
  m = f[40 + (f[41] + 1) * 8:]
  if len(m) > 0 and m[0] == 143:
    print("%f %s" % (time.time(), m.hex()), flush=True)
print("END", flush=True)
`

func ssm6Records(m []byte) string {
	names := map[uint8]string{1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}
	var out []string
	wire.ParseMLDv2Records(wire.ICMPv6(m), func(r wire.GroupRecord) {
		if r.Group == ssm6Group {
			out = append(out, fmt.Sprintf("%s %v", names[r.Type], r.Srcs))
		}
	})
	return strings.Join(out, "; ")
}

// The MLDv2 reports of sockstack and Linux for the same MCAST_* calls
// at IPPROTO_IPV6 are the same, records and sources.
func TestInteropSSMReports6(t *testing.T) {
	l := newLab6(t)
	needTools(t, "python3")
	p := l.newLinuxPeer(t)
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan string, 256)
	ep := link.NewSniffer(tap, func(dir link.Direction, fr []byte) {
		if dir == link.In || len(fr) < 14+48 || wire.Ethernet(fr).EtherType() != wire.EtherTypeIPv6 {
			return
		}
		ip := fr[14:]
		if ip[6] != 0 {
			return
		}
		m := ip[40+(int(ip[41])+1)*8:]
		if len(m) == 0 || m[0] != wire.ICMPv6MLDv2Report {
			return
		}
		if r := ssm6Records(m); r != "" {
			select {
			case reports <- r:
			default:
			}
		}
	})
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close)
	nic := st.AddNIC(tapName, ep)
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	l.waitUntil(t, "sockstack's link-local address leaves DAD", func() bool {
		for _, a := range nic.Addrs6() {
			if a.Prefix.Addr().IsLinkLocalUnicast() && !a.Tentative {
				return true
			}
		}
		return false
	})
	x, y := ssmSockets(t, socket.New(st), socket.AF_INET6)
	idx := uint32(nic.ID())
	steps := []ssmStep{
		{x, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: idx, Group: ssm6Group, Source: ssm6S1}},
		{x, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: idx, Group: ssm6Group, Source: ssm6S2}},
		{x, socket.MCAST_LEAVE_SOURCE_GROUP, socket.GroupSourceReq{Interface: idx, Group: ssm6Group, Source: ssm6S1}},
		{y, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: idx, Group: ssm6Group}},
		{y, socket.MCAST_BLOCK_SOURCE, socket.GroupSourceReq{Interface: idx, Group: ssm6Group, Source: ssm6S3}},
		{y, socket.MCAST_LEAVE_GROUP, socket.GroupReq{Interface: idx, Group: ssm6Group}},
		{x, socket.MCAST_MSFILTER, socket.GroupFilter{Interface: idx, Group: ssm6Group, Fmode: socket.MCAST_EXCLUDE, Slist: []netip.Addr{ssm6S1}}},
		{x, socket.MCAST_MSFILTER, socket.GroupFilter{Interface: idx, Group: ssm6Group, Fmode: socket.MCAST_EXCLUDE, Slist: []netip.Addr{ssm6S2, ssm6S3}}},
		{x, socket.MCAST_MSFILTER, socket.GroupFilter{Interface: idx, Group: ssm6Group, Fmode: socket.MCAST_INCLUDE, Slist: []netip.Addr{ssm6S3}}},
	}
	ours := applySSMSteps(t, socket.IPPROTO_IPV6, steps, reports)
	sniff := l.startPyFor(t, pyMLDSniff, map[string]any{"Iface": peerIface, "Secs": 2.5*float64(len(steps)) + 4}, 60*time.Second)
	out := p.run(t, 40*time.Second, nil, "python3", "-c", pySSMCalls6, mustJSON(t, map[string]any{
		"G": ssm6Group.String(), "Idx": p.ifindex(t), "S": []string{ssm6S1.String(), ssm6S2.String(), ssm6S3.String()}}))
	linux := peerReports(t, sniff, out, 50*time.Second, ssm6Records)
	want := []string{"ALLOW [2001:db8:99::1]", "ALLOW [2001:db8:99::2]", "BLOCK [2001:db8:99::1]", "TO_EX []", "BLOCK [2001:db8:99::3]",
		"TO_IN [2001:db8:99::2]", "TO_EX [2001:db8:99::1]", "BLOCK [2001:db8:99::2 2001:db8:99::3]; ALLOW [2001:db8:99::1]", "TO_IN [2001:db8:99::3]"}
	t.Logf("sockstack reports: %q", ours)
	t.Logf("linux reports:     %q", linux)
	if got := dedupe(ours); !slices.Equal(got, want) {
		t.Errorf("sockstack's distinct reports %q, want %q", got, want)
	}
	if got := dedupe(linux); !slices.Equal(got, dedupe(ours)) {
		t.Errorf("linux's distinct reports %q, sockstack's %q", got, dedupe(ours))
	}
	if len(ours) != 2*len(steps) {
		t.Errorf("sockstack sent %d reports for %d steps", len(ours), len(steps))
	}
}

// pyV2Peer joins source-specifically, says READY once its v3 reports
// are out, and drops the source (a leave) 4 s later.
const pyV2Peer = `
import json, socket, time, sys
a = json.loads(sys.argv[1])
ip = socket.inet_aton
x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
x.setsockopt(socket.IPPROTO_IP, 39, ip(a["G"]) + ip(a["If"]) + ip(a["S"]))
time.sleep(2)
print("READY", flush=True)
time.sleep(4)
x.setsockopt(socket.IPPROTO_IP, 40, ip(a["G"]) + ip(a["If"]) + ip(a["S"]))
time.sleep(1)
print("DONE", flush=True)
`

// pyV2Query sends an IGMPv2 general query (max resp 1 s) with Router
// Alert from each of the given addresses.
const pyV2Query = `
import json, socket, struct, sys
a = json.loads(sys.argv[1])
def csum(b):
  s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
  s = (s >> 16) + (s & 0xffff); s += s >> 16
  return ~s & 0xffff
q = bytearray([0x11, 10, 0, 0, 0, 0, 0, 0])
struct.pack_into("!H", q, 2, csum(bytes(q)))
for src in a["From"]:
  s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
  s.bind((src, 0))
  s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
  s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
  s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x94\x04\x00\x00")
  s.sendto(bytes(q), ("224.0.0.1", 0))
  s.close()
`

// igmpString names an IGMP message about our group: v1/v2 reports and
// leaves by type, v3 reports by their records.
func igmpString(p []byte) string {
	if len(p) < 8 {
		return ""
	}
	g := netip.AddrFrom4([4]byte(p[4:8]))
	switch p[0] {
	case 0x16:
		if g == ssmIGroup {
			return "v2 report"
		}
	case 0x17:
		if g == ssmIGroup {
			return "v2 leave"
		}
	case wire.IGMPv3Report:
		if r := ssmRecords(p); r != "" {
			return "v3 " + r
		}
	}
	return ""
}

// An IGMPv2 querier heard: sockstack, like Linux, answers with an IGMPv2
// report for its source-specific group and leaves it with an IGMPv2
// leave (RFC 3376 7.2.1 compatibility mode).
func TestInteropSSMv2Compat(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	p := l.newLinuxPeer(t)
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 64)
	ep := link.NewSniffer(tap, func(dir link.Direction, fr []byte) {
		if dir == link.In || len(fr) < 14+24 || wire.Ethernet(fr).EtherType() != wire.EtherTypeIPv4 {
			return
		}
		ip := wire.IPv4(fr[14:])
		if ip.Protocol() != wire.ProtoIGMP {
			return
		}
		if m := igmpString(fr[14+ip.HeaderLen():]); m != "" {
			select {
			case msgs <- m:
			default:
			}
		}
	})
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close)
	nic := st.AddNIC(tapName, ep)
	if err := nic.AddAddress(stackCIDR); err != nil {
		t.Fatal(err)
	}
	nw := socket.New(st)
	x, err := nw.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(5 * time.Second):
			t.Fatalf("sockstack sent no %s", what)
		}
		return ""
	}
	mreq := socket.IPMreqSource{Multiaddr: ssmIGroup, Interface: stackIP, Sourceaddr: ssmIS1}
	if err := x.SetSockOpt(socket.SOL_IP, socket.IP_ADD_SOURCE_MEMBERSHIP, mreq); err != nil {
		t.Fatal(err)
	}
	ours := []string{next("report"), next("retransmission")}

	sniff := l.startPyFor(t, pyIGMPSniff, map[string]any{"Iface": peerIface, "Secs": 12}, 30*time.Second)
	peer := p.lab.startPyFor(t, pyV2Peer, map[string]any{"G": ssmIGroup.String(), "If": peerAddr4, "S": ssmIS1.String()}, 30*time.Second)
	l.run(t, 10*time.Second, nil, "python3", "-c", pyV2Query, mustJSON(t, map[string]any{"From": []string{kernelIP.String(), peerLab4}}))
	ours = append(ours, next("answer to the v2 query"))
	if v := nic.IGMPVersion(); v != 2 {
		t.Fatalf("IGMP version after a v2 query: %d", v)
	}
	if err := x.SetSockOpt(socket.SOL_IP, socket.IP_DROP_SOURCE_MEMBERSHIP, mreq); err != nil {
		t.Fatal(err)
	}
	ours = append(ours, next("leave"))
	if l := peer.next(t, 15*time.Second); l != "DONE" {
		t.Fatalf("peer: %q", l)
	}
	var linux []string
	for {
		line := sniff.next(t, 30*time.Second)
		if line == "END" || line == "" {
			break
		}
		if f := strings.Fields(line); len(f) == 2 {
			if b, err := hexBytes(f[1]); err == nil {
				if m := igmpString(b); m != "" {
					linux = append(linux, m)
				}
			}
		}
	}
	t.Logf("sockstack: %q", ours)
	t.Logf("linux:     %q", linux)
	want := []string{"v3 ALLOW [10.99.0.1]", "v3 ALLOW [10.99.0.1]", "v2 report", "v2 leave"}
	if !slices.Equal(ours, want) {
		t.Errorf("sockstack sent %q, want %q", ours, want)
	}
	if !slices.Equal(linux, want) {
		t.Errorf("linux sent %q, sockstack %q", linux, ours)
	}
}
