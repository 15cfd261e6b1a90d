package interop

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
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

// The host side of IGMPv3 / MLDv2 from outside, side by side with Linux:
// sockstack (on the lab's TAP) and the Linux peer (on its veth) hold the
// same memberships; scapy in the lab namespace sends both the same
// crafted queries, valid and malformed, and records what each answers
// (which reports, their group records and sources, and when). Every case
// asserts sockstack's answer (none, or the records) and that Linux gave
// the same, unless the case names a known difference and why; a case
// that must be ignored also names the sockstack counter that moves.
//
//	lab namespace (scapy)                   Linux peer namespace (-lx)
//	tap0 10.77.0.1 fd77::1 ── sockstack 10.77.0.2, link-local
//	vx0  10.88.0.1 fd88::1 ───────────────── vx1 10.88.0.2, link-local

// The memberships, the same on both hosts: an SSM group INCLUDE {S1,S2},
// an any-source group (EXCLUDE {}), and a group EXCLUDE {S3}.
var (
	mcG1 = netip.MustParseAddr("232.7.7.7")
	mcG2 = netip.MustParseAddr("239.7.7.8")
	mcG3 = netip.MustParseAddr("239.7.7.9")
	mcS1 = netip.MustParseAddr("10.99.0.1")
	mcS2 = netip.MustParseAddr("10.99.0.2")
	mcS3 = netip.MustParseAddr("10.99.0.3")
	mcS9 = netip.MustParseAddr("10.99.0.9")  // a source nobody names
	mcGX = netip.MustParseAddr("239.7.7.99") // a group nobody joined

	mcH1 = netip.MustParseAddr("ff3e::8000:7")
	mcH2 = netip.MustParseAddr("ff15::7:8")
	mcH3 = netip.MustParseAddr("ff15::7:9")
	mcT1 = netip.MustParseAddr("2001:db8:99::1")
	mcT2 = netip.MustParseAddr("2001:db8:99::2")
	mcT3 = netip.MustParseAddr("2001:db8:99::3")
	mcT9 = netip.MustParseAddr("2001:db8:99::9")
	mcHX = netip.MustParseAddr("ff15::7:99")

	allHosts4 = netip.MustParseAddr("224.0.0.1")
	querier6  = netip.MustParseAddr("fe80::7:1") // the crafted queries' link-local source
)

// pyMcMembers makes the Linux peer's memberships, waits for its
// state-change reports (and their retransmissions) to be out, says
// READY and keeps the sockets open until it is killed.
const pyMcMembers = `
import json, socket, struct, sys, time
a = json.loads(sys.argv[1])
ip = socket.inet_aton
def ss6(addr): return struct.pack("=H2x4x", socket.AF_INET6) + socket.inet_pton(socket.AF_INET6, addr) + bytes(4) + bytes(100)
def greq(idx, g): return struct.pack("=I4x", idx) + ss6(g)
def gsreq(idx, g, s): return struct.pack("=I4x", idx) + ss6(g) + ss6(s)
IF, IDX = a["If"], a["Idx"]
G1, G2, G3 = a["G4"]
S1, S2, S3 = a["S4"]
H1, H2, H3 = a["G6"]
T1, T2, T3 = a["S6"]
x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
x.setsockopt(socket.IPPROTO_IP, 39, ip(G1) + ip(IF) + ip(S1))
x.setsockopt(socket.IPPROTO_IP, 39, ip(G1) + ip(IF) + ip(S2))
x.setsockopt(socket.IPPROTO_IP, 35, ip(G2) + ip(IF))
x.setsockopt(socket.IPPROTO_IP, 35, ip(G3) + ip(IF))
x.setsockopt(socket.IPPROTO_IP, 38, ip(G3) + ip(IF) + ip(S3))
y = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
y.setsockopt(socket.IPPROTO_IPV6, 46, gsreq(IDX, H1, T1))
y.setsockopt(socket.IPPROTO_IPV6, 46, gsreq(IDX, H1, T2))
y.setsockopt(socket.IPPROTO_IPV6, 42, greq(IDX, H2))
y.setsockopt(socket.IPPROTO_IPV6, 42, greq(IDX, H3))
y.setsockopt(socket.IPPROTO_IPV6, 43, gsreq(IDX, H3, T3))
time.sleep(a["Settle"])
print("READY", flush=True)
time.sleep(a["Life"])
`

// pyMcQuerier builds each case's frames with scapy (the message's
// checksum filled in, or spoilt, here; the IPv4 header with TOS 0xc0 and
// Router Alert, the IPv6 one with a hop-by-hop Router Alert, unless the
// case says otherwise), sends them on both links and prints, for the
// case's window, every IGMP or IPv6 packet that comes in on either:
// "R iface seconds-after-the-send hex-of-the-IP-packet", then "END".
// Packets that came in between cases are printed as "LATE iface hex".
const pyMcQuerier = `
import json, sys, socket, select, time, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, IPv6ExtHdrHopByHop, RouterAlert, IPOption_Router_Alert, Raw, sendp, get_if_hwaddr, checksum
from scapy.layers.inet6 import in6_chksum
a = json.loads(sys.argv[1])
socks = {}
for i in a["Ifaces"]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((i, 0))
    s.setblocking(False)
    socks[s] = i
macs = {i: get_if_hwaddr(i) for i in a["Ifaces"]}
def build(f):
    msg = bytearray.fromhex(f["msg"])
    if f["v6"]:
        u = IPv6(src=f["src"], dst=f["dst"], hlim=f["ttl"])
        c = in6_chksum(58, u, bytes(msg))
    else:
        c = checksum(bytes(msg))
    if f["badsum"]:
        c ^= 0x5555
    if len(msg) >= 4:
        msg[2], msg[3] = c >> 8, c & 0xff
    if f["v6"]:
        if f["ra"] >= 0:
            p = u/IPv6ExtHdrHopByHop(nh=58, options=[RouterAlert(value=f["ra"])])/Raw(bytes(msg))
        else:
            u.nh = 58
            p = u/Raw(bytes(msg))
    else:
        opts = [IPOption_Router_Alert()] if f["ra"] >= 0 else []
        p = IP(src=f["src"], dst=f["dst"], ttl=f["ttl"], tos=0xc0, proto=2, options=opts)/Raw(bytes(msg))
    return Ether(src=macs[f["iface"]], dst=f["dmac"])/p
def wanted(d):
    if len(d) < 34:
        return None
    et = d[12:14]
    if et == b"\x08\x00" and d[23] == 2:
        return d[14:]
    if et == b"\x86\xdd" and d[20] in (0, 58):
        return d[14:]
    return None
def drain():
    for s, i in socks.items():
        while True:
            try:
                d, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] != socket.PACKET_OUTGOING and wanted(d):
                print("LATE", i, wanted(d).hex(), flush=True)
print("READY", flush=True)
for line in sys.stdin:
    c = json.loads(line)
    drain()
    frames = [(f["iface"], build(f)) for f in c["frames"]]
    t0 = time.time()
    for i, fr in frames:
        sendp(fr, iface=i, verbose=0)
    end = t0 + c["window"]
    while True:
        left = end - time.time()
        if left <= 0:
            break
        r, _, _ = select.select(list(socks), [], [], left)
        for s in r:
            try:
                d, addr = s.recvfrom(65536)
            except BlockingIOError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            w = wanted(d)
            if w:
                print("R", socks[s], "%.3f" % (time.time() - t0), w.hex(), flush=True)
    print("END", flush=True)
`

// mcFrame is one frame pyMcQuerier builds.
type mcFrame struct {
	Iface  string `json:"iface"`
	DMAC   string `json:"dmac"`
	V6     bool   `json:"v6"`
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	TTL    int    `json:"ttl"`
	RA     int    `json:"ra"` // Router Alert value; -1: none
	Msg    string `json:"msg"`
	BadSum bool   `json:"badsum"`
}

// mcSide is one host under test as the querier sees it.
type mcSide struct {
	iface     string
	mac       string
	src4, uc4 netip.Addr // the querier's address on the link, the host's
	global6   netip.Addr // the querier's non-link-local address on the link
	uc6       netip.Addr // the host's link-local address
	name      string
}

// Destinations of a case's query.
const (
	toAll       = iota // 224.0.0.1 / ff02::1
	toGroup            // the group the message names (dstAddr when set)
	toUnicast          // the host's own address
	toBroadcast        // the link's IPv4 broadcast address
)

// raNone is a query without Router Alert (the zero value of mcCase.ra
// is the option with value 0, RFC 2113 / RFC 2711's MLD one).
const raNone = -1

// statFn picks one of the stack's counters.
type statFn = func(*stack.Stats) *stack.Counter

// mcCase is one crafted query.
type mcCase struct {
	name    string
	v6      bool
	msg     []byte // checksum left 0: the querier fills it in
	dst     int
	dstAddr netip.Addr // toGroup: this address instead of the message's group
	ttl     int        // 0: 1
	ra      int        // the Router Alert option's value; raNone: no option
	global  bool       // IPv6: from a global source, not link-local
	src     netip.Addr // from this source (on both links) instead
	badSum  bool
	maxResp time.Duration // the query's Max Resp Time as the host should read it; 0: no answer expected
	window  time.Duration // how long answers are collected (0: maxResp + 0.6 s, or 1 s)
	want    []string      // the records sockstack must send (sorted); nil: none
	// counter must move by this case (for an ignored query: the drop's).
	counter statFn
	// known: Linux is allowed to answer differently, for this reason.
	known string
	// ver: the IGMP (MLD for v6) version sockstack speaks after the case; 0: not checked.
	ver int
}

// igmpQ is an IGMP message: type, code, group, then (v3) QRV 2, QQIC
// 125, the source count (nsrcs, or len(srcs) when negative) and the
// sources; v3 false gives the 8-octet v1/v2 form.
func igmpQ(typ, code uint8, group netip.Addr, v3 bool, nsrcs int, srcs ...netip.Addr) []byte {
	b := make([]byte, 8, 12+4*len(srcs))
	b[0], b[1] = typ, code
	if group.IsValid() {
		g := group.As4()
		copy(b[4:8], g[:])
	}
	if !v3 {
		return b
	}
	if nsrcs < 0 {
		nsrcs = len(srcs)
	}
	b = append(b, 2, 125, byte(nsrcs>>8), byte(nsrcs))
	for _, s := range srcs {
		a := s.As4()
		b = append(b, a[:]...)
	}
	return b
}

// mldQ is an MLD query: max response delay in ms, the group, then (v2)
// S/QRV 2, QQIC 125, the source count and the sources; v2 false gives
// the 24-octet MLDv1 form.
func mldQ(typ uint8, mrd uint16, group netip.Addr, v2 bool, nsrcs int, srcs ...netip.Addr) []byte {
	b := make([]byte, 24, 28+16*len(srcs))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:6], mrd)
	if group.IsValid() {
		g := group.As16()
		copy(b[8:24], g[:])
	}
	if !v2 {
		return b
	}
	if nsrcs < 0 {
		nsrcs = len(srcs)
	}
	b = append(b, 2, 125, byte(nsrcs>>8), byte(nsrcs))
	for _, s := range srcs {
		a := s.As16()
		b = append(b, a[:]...)
	}
	return b
}

// mldCode sets an ICMPv6 message's code.
func mldCode(m []byte, code uint8) []byte { m[1] = code; return m }

// mcRecNames are the record types as RFC 3376 names them.
var mcRecNames = map[uint8]string{1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}

var mcOurGroups = []netip.Addr{mcG1, mcG2, mcG3, mcH1, mcH2, mcH3}

// mcRecords renders what one IP packet reports about the test's groups:
// "v3 IS_IN 232.7.7.7 [sources]", "v2 report 239.7.7.8", "mld1 report
// ff15::7:8", ...; other groups (224.0.0.x, solicited-node) are left out.
func mcRecords(ip []byte) []string {
	var out []string
	ours := func(g netip.Addr) bool { return slices.Contains(mcOurGroups, g) }
	rec := func(v string) func(wire.GroupRecord) {
		return func(r wire.GroupRecord) {
			if ours(r.Group) {
				out = append(out, fmt.Sprintf("%s %s %v %v", v, mcRecNames[r.Type], r.Group, r.Srcs))
			}
		}
	}
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4 && ip[9] == wire.ProtoIGMP:
		p := ip[int(ip[0]&15)*4:]
		if len(p) < 8 {
			return nil
		}
		g := netip.AddrFrom4([4]byte(p[4:8]))
		switch p[0] {
		case 0x12:
			if ours(g) {
				out = append(out, "v1 report "+g.String())
			}
		case 0x16:
			if ours(g) {
				out = append(out, "v2 report "+g.String())
			}
		case 0x17:
			if ours(g) {
				out = append(out, "v2 leave "+g.String())
			}
		case wire.IGMPv3Report:
			wire.ParseIGMPv3Report(p, rec("v3"))
		}
	case len(ip) >= 48 && ip[0]>>4 == 6:
		m := ip[40:]
		if ip[6] == 0 {
			l := (int(m[1]) + 1) * 8
			if m[0] != wire.ProtoICMPv6 || len(m) < l {
				return nil
			}
			m = m[l:]
		} else if ip[6] != wire.ProtoICMPv6 {
			return nil
		}
		if len(m) < 24 {
			return nil
		}
		g := netip.AddrFrom16([16]byte(m[8:24]))
		switch m[0] {
		case wire.ICMPv6MLDReport:
			if ours(g) {
				out = append(out, "mld1 report "+g.String())
			}
		case wire.ICMPv6MLDDone:
			if ours(g) {
				out = append(out, "mld1 done "+g.String())
			}
		case wire.ICMPv6MLDv2Report:
			wire.ParseMLDv2Records(wire.ICMPv6(m), rec("mld2"))
		}
	}
	return out
}

// mcAnswer is what one host sent during a case.
type mcAnswer struct {
	recs []string      // sorted
	msgs int           // packets carrying them
	last time.Duration // the latest of them, after the query
}

func (a mcAnswer) String() string {
	if len(a.recs) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%q in %d packet(s), the last %v after the query", a.recs, a.msgs, a.last)
}

// mcQuerier drives pyMcQuerier.
type mcQuerier struct {
	in    io.WriteCloser
	lines chan string
}

func (l *lab) startMcQuerier(t *testing.T, ifaces []string) *mcQuerier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	c := l.cmd(ctx, scapyPython, "-c", pyMcQuerier, mustJSON(t, map[string]any{"Ifaces": ifaces}))
	var stderr syncBuffer
	c.Stderr = &stderr
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	q := &mcQuerier{in: in, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			q.lines <- sc.Text()
		}
		close(q.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		cancel()
		c.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("querier's stderr:\n%s", stderr.String())
		}
	})
	select {
	case line := <-q.lines:
		if line != "READY" {
			t.Fatalf("querier: %q\n%s", line, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("querier not ready\n%s", stderr.String())
	}
	return q
}

// run sends the frames and returns each interface's answers.
func (q *mcQuerier) run(t *testing.T, frames []mcFrame, window time.Duration) map[string]mcAnswer {
	t.Helper()
	js, err := json.Marshal(map[string]any{"frames": frames, "window": window.Seconds()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.in.Write(append(js, '\n')); err != nil {
		t.Fatalf("querier: %v", err)
	}
	res := map[string]mcAnswer{}
	limit := time.After(window + 20*time.Second)
	for {
		var line string
		select {
		case l, ok := <-q.lines:
			if !ok {
				t.Fatal("querier ended")
			}
			line = l
		case <-limit:
			t.Fatal("querier did not finish the case")
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "END":
			for k, a := range res {
				slices.Sort(a.recs)
				res[k] = a
			}
			return res
		case len(f) == 3 && f[0] == "LATE":
			if b, err := hex.DecodeString(f[2]); err == nil {
				if r := mcRecords(b); len(r) > 0 {
					t.Errorf("%s sent %q after the previous case's window", f[1], r)
				}
			}
		case len(f) == 4 && f[0] == "R":
			b, err := hex.DecodeString(f[3])
			if err != nil {
				continue
			}
			r := mcRecords(b)
			if len(r) == 0 {
				continue
			}
			s, _ := strconv.ParseFloat(f[2], 64)
			a := res[f[1]]
			a.recs = append(a.recs, r...)
			a.msgs++
			a.last = max(a.last, time.Duration(s*float64(time.Second)))
			res[f[1]] = a
		}
	}
}

// mcMAC is the Ethernet address of a group (RFC 1112 6.4, RFC 2464 7).
func mcMAC(g netip.Addr) string {
	if g.Is4() {
		a := g.As4()
		return fmt.Sprintf("01:00:5e:%02x:%02x:%02x", a[1]&0x7f, a[2], a[3])
	}
	a := g.As16()
	return fmt.Sprintf("33:33:%02x:%02x:%02x:%02x", a[12], a[13], a[14], a[15])
}

// frame is c's frame to side s.
func (c mcCase) frame(s mcSide) mcFrame {
	f := mcFrame{Iface: s.iface, V6: c.v6, TTL: max(c.ttl, 1), RA: c.ra, Msg: hex.EncodeToString(c.msg), BadSum: c.badSum}
	var dst netip.Addr
	switch c.dst {
	case toAll:
		dst = allHosts4
		if c.v6 {
			dst = wire.IPv6AllNodes
		}
	case toGroup:
		dst = c.dstAddr
		if !dst.IsValid() {
			if c.v6 {
				dst = netip.AddrFrom16([16]byte(c.msg[8:24]))
			} else {
				dst = netip.AddrFrom4([4]byte(c.msg[4:8]))
			}
		}
	case toUnicast:
		dst = s.uc4
		if c.v6 {
			dst = s.uc6
		}
		f.DMAC = s.mac
	case toBroadcast:
		a := s.uc4.As4()
		a[3] = 255 // both links are /24s
		dst, f.DMAC = netip.AddrFrom4(a), "ff:ff:ff:ff:ff:ff"
	}
	if f.DMAC == "" {
		f.DMAC = mcMAC(dst)
	}
	f.Dst = dst.String()
	f.Src = s.src4.String()
	if c.v6 {
		f.Src = querier6.String()
		if c.global {
			f.Src = s.global6.String()
		}
	}
	if c.src.IsValid() {
		f.Src = c.src.String()
	}
	return f
}

func TestInteropSSMCrafted(t *testing.T) {
	l := newLab6(t)
	needScapy(t)
	needTools(t, "python3")
	p := l.newLinuxPeer(t)

	// sockstack on the TAP: IPv4 10.77.0.2/24 and a link-local address.
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close)
	nic := st.AddNIC(tapName, tap)
	if err := nic.AddAddress(stackCIDR); err != nil {
		t.Fatal(err)
	}
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	var ll netip.Addr
	l.waitUntil(t, "sockstack's link-local address leaves DAD", func() bool {
		for _, a := range nic.Addrs6() {
			if a.Prefix.Addr().IsLinkLocalUnicast() && !a.Tentative {
				ll = a.Prefix.Addr()
				return true
			}
		}
		return false
	})

	// The memberships on sockstack.
	nw := socket.New(st)
	x, _ := ssmSockets(t, nw, socket.AF_INET)
	x6, _ := ssmSockets(t, nw, socket.AF_INET6)
	idx := uint32(nic.ID())
	for i, c := range []ssmStep{
		{x, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: mcG1, Interface: stackIP, Sourceaddr: mcS1}},
		{x, socket.IP_ADD_SOURCE_MEMBERSHIP, socket.IPMreqSource{Multiaddr: mcG1, Interface: stackIP, Sourceaddr: mcS2}},
		{x, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: mcG2, Interface: stackIP}},
		{x, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: mcG3, Interface: stackIP}},
		{x, socket.IP_BLOCK_SOURCE, socket.IPMreqSource{Multiaddr: mcG3, Interface: stackIP, Sourceaddr: mcS3}},
	} {
		if err := c.s.SetSockOpt(socket.SOL_IP, c.name, c.v); err != nil {
			t.Fatalf("IPv4 membership %d: %v", i+1, err)
		}
	}
	for i, c := range []ssmStep{
		{x6, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: idx, Group: mcH1, Source: mcT1}},
		{x6, socket.MCAST_JOIN_SOURCE_GROUP, socket.GroupSourceReq{Interface: idx, Group: mcH1, Source: mcT2}},
		{x6, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: idx, Group: mcH2}},
		{x6, socket.MCAST_JOIN_GROUP, socket.GroupReq{Interface: idx, Group: mcH3}},
		{x6, socket.MCAST_BLOCK_SOURCE, socket.GroupSourceReq{Interface: idx, Group: mcH3, Source: mcT3}},
	} {
		if err := c.s.SetSockOpt(socket.IPPROTO_IPV6, c.name, c.v); err != nil {
			t.Fatalf("IPv6 membership %d: %v", i+1, err)
		}
	}

	// The same on Linux; by its READY both hosts' state-change reports
	// and their retransmissions (unsolicited report interval 1 s) are out.
	l.waitUntil(t, "the peer's link-local address leaves DAD", func() bool {
		out, _ := exec.Command("ip", "-n", p.ns, "-6", "-o", "addr", "show", "dev", "vx1", "scope", "link").Output()
		return strings.Contains(string(out), "fe80") && !strings.Contains(string(out), "tentative")
	})
	peerLL := func() netip.Addr {
		out, _ := exec.Command("ip", "-n", p.ns, "-6", "-o", "addr", "show", "dev", "vx1", "scope", "link").Output()
		for _, f := range strings.Fields(string(out)) {
			if pf, err := netip.ParsePrefix(f); err == nil {
				return pf.Addr()
			}
		}
		t.Fatalf("no link-local address on vx1: %s", out)
		return netip.Addr{}
	}()
	p.lab.startPyFor(t, pyMcMembers, map[string]any{
		"If": peerAddr4, "Idx": p.ifindex(t), "Settle": 3, "Life": 600,
		"G4": []string{mcG1.String(), mcG2.String(), mcG3.String()}, "S4": []string{mcS1.String(), mcS2.String(), mcS3.String()},
		"G6": []string{mcH1.String(), mcH2.String(), mcH3.String()}, "S6": []string{mcT1.String(), mcT2.String(), mcT3.String()},
	}, 11*time.Minute)

	sock := mcSide{iface: tapName, mac: nic.HardwareAddr().String(), src4: kernelIP, uc4: stackIP,
		global6: netip.MustParseAddr("fd77::1"), uc6: ll}
	lnx := mcSide{iface: peerIface, mac: p.mac, src4: netip.MustParseAddr(peerLab4), uc4: netip.MustParseAddr(peerAddr4),
		global6: netip.MustParseAddr(peerLab6), uc6: peerLL}
	q := l.startMcQuerier(t, []string{sock.iface, lnx.iface})

	stats := st.Stats()
	const (
		sec    = time.Second
		code1s = 10 // Max Resp Code: 1 s (IGMP, in tenths)
		ms1s   = 1000
	)
	all4 := []string{
		"v3 IS_EX 239.7.7.8 []", "v3 IS_EX 239.7.7.9 [10.99.0.3]", "v3 IS_IN 232.7.7.7 [10.99.0.1 10.99.0.2]",
	}
	all6 := []string{
		"mld2 IS_EX ff15::7:8 []", "mld2 IS_EX ff15::7:9 [2001:db8:99::3]", "mld2 IS_IN ff3e::8000:7 [2001:db8:99::1 2001:db8:99::2]",
	}
	v1All := []string{"v1 report 232.7.7.7", "v1 report 239.7.7.8", "v1 report 239.7.7.9"}
	v3Queries := func(s *stack.Stats) *stack.Counter { return &s.IGMP.InV3Queries }
	badQueries := func(s *stack.Stats) *stack.Counter { return &s.IGMP.InBadQueries }
	mld2Queries := func(s *stack.Stats) *stack.Counter { return &s.IGMP.MLDv2Queries }
	mldBad := func(s *stack.Stats) *stack.Counter { return &s.IGMP.MLDBadQueries }

	cases := []mcCase{
		// IGMPv3, valid.
		{name: "v3 general query", ver: 3, msg: igmpQ(0x11, code1s, netip.Addr{}, true, -1), dst: toAll, maxResp: sec, want: all4, counter: v3Queries},
		{name: "v3 group query, INCLUDE group", msg: igmpQ(0x11, code1s, mcG1, true, -1), dst: toGroup, maxResp: sec,
			want: []string{all4[2]}, counter: v3Queries},
		{name: "v3 group query, EXCLUDE group", msg: igmpQ(0x11, code1s, mcG3, true, -1), dst: toGroup, maxResp: sec,
			want: []string{all4[1]}, counter: v3Queries},
		{name: "v3 group-and-source query, INCLUDE group, one source included", msg: igmpQ(0x11, code1s, mcG1, true, -1, mcS1, mcS9), dst: toGroup, maxResp: sec,
			want: []string{"v3 IS_IN 232.7.7.7 [10.99.0.1]"}, counter: v3Queries},
		{name: "v3 group-and-source query, INCLUDE group, no source included", msg: igmpQ(0x11, code1s, mcG1, true, -1, mcS9), dst: toGroup, maxResp: sec,
			counter: v3Queries},
		{name: "v3 group-and-source query, EXCLUDE group", msg: igmpQ(0x11, code1s, mcG3, true, -1, mcS3, mcS9), dst: toGroup, maxResp: sec,
			want: []string{"v3 IS_IN 239.7.7.9 [10.99.0.9]"}, counter: v3Queries,
			known: "RFC 3376 5.2: a group-and-source query of an EXCLUDE group is answered IS_IN of the queried sources not excluded; Linux (igmp_xmarksources clears gsquery) answers with the group's whole state, IS_EX, and stays silent only when every queried source is excluded, as sockstack does"},
		{name: "v3 group-and-source query, EXCLUDE group, only excluded sources", msg: igmpQ(0x11, code1s, mcG3, true, -1, mcS3), dst: toGroup, maxResp: sec,
			counter: v3Queries},
		{name: "v3 group query to the host's unicast address", msg: igmpQ(0x11, code1s, mcG1, true, -1), dst: toUnicast, maxResp: sec,
			want: []string{all4[2]}, counter: v3Queries},
		{name: "v3 general query without Router Alert", msg: igmpQ(0x11, code1s, netip.Addr{}, true, -1), dst: toAll, ra: raNone, maxResp: sec,
			want: all4, counter: v3Queries},
		{name: "v3 general query with TTL 64", msg: igmpQ(0x11, code1s, netip.Addr{}, true, -1), dst: toAll, ttl: 64, maxResp: sec,
			want: all4, counter: v3Queries},
		{name: "v3 general query to the subnet broadcast", msg: igmpQ(0x11, code1s, netip.Addr{}, true, -1), dst: toBroadcast, maxResp: sec,
			want: all4, counter: v3Queries},
		// RFC 3376 4.1.12 / 6.1: a querier without an address yet.
		{name: "v3 general query from 0.0.0.0", msg: igmpQ(0x11, code1s, netip.Addr{}, true, -1), dst: toAll, src: netip.IPv4Unspecified(), maxResp: sec,
			want: all4, counter: v3Queries},
		// IGMPv3, to be ignored.
		{name: "v3 group query to a group not joined", msg: igmpQ(0x11, 5, mcGX, true, -1), dst: toGroup,
			counter: func(s *stack.Stats) *stack.Counter { return &s.Link.InNotForUs }}, // the group's MAC is not taken
		{name: "v3 query to 224.0.0.1 naming a group not joined", msg: igmpQ(0x11, 5, mcGX, true, -1), dst: toAll, counter: v3Queries},
		{name: "v3 query naming a unicast group", msg: igmpQ(0x11, 5, netip.MustParseAddr("10.1.2.3"), true, -1), dst: toAll, counter: badQueries},
		{name: "v3 general query, bad checksum", msg: igmpQ(0x11, 5, netip.Addr{}, true, -1), dst: toAll, badSum: true,
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InErrors }},
		{name: "IGMP query of 7 octets", msg: igmpQ(0x11, 5, netip.Addr{}, false, 0)[:7], dst: toAll,
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InErrors }},
		{name: "IGMP query of 10 octets", msg: igmpQ(0x11, 5, netip.Addr{}, true, -1)[:10], dst: toAll, counter: badQueries},
		{name: "v3 group-and-source query, source count past the end", msg: igmpQ(0x11, 5, mcG1, true, 3, mcS1), dst: toGroup, counter: badQueries},
		{name: "v3 general query with a source", msg: igmpQ(0x11, 5, netip.Addr{}, true, -1, mcS1), dst: toAll, counter: badQueries},
		{name: "IGMP unknown type 0x30", msg: igmpQ(0x30, 5, netip.Addr{}, true, -1), dst: toAll,
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InOther }},
		{name: "IGMP DVMRP (type 0x13)", msg: igmpQ(0x13, 5, netip.Addr{}, false, 0), dst: toAll,
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InOther }},

		// MLDv2, valid.
		{name: "MLDv2 general query", ver: 2, v6: true, msg: mldQ(130, ms1s, netip.Addr{}, true, -1), dst: toAll, maxResp: sec, want: all6, counter: mld2Queries},
		{name: "MLDv2 group query, INCLUDE group", v6: true, msg: mldQ(130, ms1s, mcH1, true, -1), dst: toGroup, maxResp: sec,
			want: []string{all6[2]}, counter: mld2Queries},
		{name: "MLDv2 group query, EXCLUDE group", v6: true, msg: mldQ(130, ms1s, mcH3, true, -1), dst: toGroup, maxResp: sec,
			want: []string{all6[1]}, counter: mld2Queries},
		{name: "MLDv2 group-and-source query, INCLUDE group", v6: true, msg: mldQ(130, ms1s, mcH1, true, -1, mcT2, mcT9), dst: toGroup, maxResp: sec,
			want: []string{"mld2 IS_IN ff3e::8000:7 [2001:db8:99::2]"}, counter: mld2Queries},
		{name: "MLDv2 group-and-source query, INCLUDE group, no source included", v6: true, msg: mldQ(130, ms1s, mcH1, true, -1, mcT9), dst: toGroup, maxResp: sec,
			counter: mld2Queries},
		{name: "MLDv2 group-and-source query, EXCLUDE group", v6: true, msg: mldQ(130, ms1s, mcH3, true, -1, mcT3, mcT9), dst: toGroup, maxResp: sec,
			want: []string{"mld2 IS_IN ff15::7:9 [2001:db8:99::9]"}, counter: mld2Queries,
			known: "RFC 3810 6.3: IS_IN of the queried sources not excluded; Linux (mld_xmarksources clears MAF_GSQUERY) answers with the group's whole state, IS_EX"},
		{name: "MLDv2 group-and-source query, EXCLUDE group, only excluded sources", v6: true, msg: mldQ(130, ms1s, mcH3, true, -1, mcT3), dst: toGroup, maxResp: sec,
			counter: mld2Queries},
		{name: "MLDv2 group query to the host's link-local address", v6: true, msg: mldQ(130, ms1s, mcH2, true, -1), dst: toUnicast, maxResp: sec,
			want: []string{all6[0]}, counter: mld2Queries},
		// RFC 3810 5.1: the code is ignored by receivers.
		{name: "MLDv2 general query with ICMPv6 code 1", v6: true, msg: mldCode(mldQ(130, ms1s, netip.Addr{}, true, -1), 1), dst: toAll, maxResp: sec,
			want: all6, counter: mld2Queries},
		// MLD, to be ignored (RFC 3810 5.1.14 / 6.2, RFC 9777).
		{name: "MLDv2 general query from a global source", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, global: true, counter: mldBad},
		{name: "MLDv2 general query from ::", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, src: netip.IPv6Unspecified(), counter: mldBad},
		{name: "MLDv2 general query with hop limit 2", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, ttl: 2, counter: mldBad},
		{name: "MLDv2 general query without Router Alert", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, ra: raNone, counter: mldBad},
		{name: "MLDv2 general query with Router Alert value 1", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, ra: 1, counter: mldBad},
		{name: "MLDv2 general query, bad checksum", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1), dst: toAll, badSum: true,
			counter: func(s *stack.Stats) *stack.Counter { return &s.ICMP6.InCsumErrors }},
		{name: "MLD query of 20 octets", v6: true, msg: mldQ(130, 500, netip.Addr{}, false, 0)[:20], dst: toAll, counter: mldBad},
		{name: "MLD query of 26 octets", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1)[:26], dst: toAll, counter: mldBad},
		{name: "MLDv2 group-and-source query, source count past the end", v6: true, msg: mldQ(130, 500, mcH1, true, 2, mcT1), dst: toGroup, counter: mldBad},
		{name: "MLDv2 general query with a source", v6: true, msg: mldQ(130, 500, netip.Addr{}, true, -1, mcT1), dst: toAll, counter: mldBad},
		{name: "MLDv2 group query to a group not joined", v6: true, msg: mldQ(130, 500, mcHX, true, -1), dst: toGroup,
			counter: func(s *stack.Stats) *stack.Counter { return &s.Link.InNotForUs }},
		{name: "MLDv2 query to ff02::1 naming a group not joined", v6: true, msg: mldQ(130, 500, mcHX, true, -1), dst: toAll, counter: mld2Queries},
		{name: "MLDv2 query naming a unicast group", v6: true, msg: mldQ(130, 500, netip.MustParseAddr("2001:db8::1"), true, -1), dst: toAll, counter: mldBad},
		{name: "ICMPv6 unassigned type 160", v6: true, msg: mldQ(160, 500, netip.Addr{}, true, -1), dst: toAll,
			counter: func(s *stack.Stats) *stack.Counter { return &s.ICMP6.InOther }},

		// Older versions, last: each sets a compatibility mode for 260 s.
		{name: "IGMPv2 general query", ver: 2, msg: igmpQ(0x11, code1s, netip.Addr{}, false, 0), dst: toAll, maxResp: sec,
			want:    []string{"v2 report 232.7.7.7", "v2 report 239.7.7.8", "v2 report 239.7.7.9"},
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.V2Compat }},
		{name: "IGMPv2 group query", msg: igmpQ(0x11, code1s, mcG2, false, 0), dst: toGroup, maxResp: sec,
			want: []string{"v2 report 239.7.7.8"}, counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InQueries }},
		{name: "v3 group query in IGMPv2 mode", msg: igmpQ(0x11, code1s, mcG3, true, -1), dst: toGroup, maxResp: sec,
			want: []string{"v2 report 239.7.7.9"}, counter: v3Queries},
		// RFC 2236 2.5: a v2 host ignores what follows the eighth octet.
		{name: "v3 group query in IGMPv2 mode, source count past the end", msg: igmpQ(0x11, code1s, mcG1, true, 3, mcS1), dst: toGroup, maxResp: sec,
			want: []string{"v2 report 232.7.7.7"}, counter: v3Queries},
		{name: "IGMPv1 query", ver: 1, msg: igmpQ(0x11, 0, netip.Addr{}, false, 0), dst: toAll, maxResp: 10 * sec,
			want:    v1All,
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.V1Compat }},
		// An IGMPv1 host answers every query for all its groups in 10 s.
		{name: "IGMPv1 query naming a group", msg: igmpQ(0x11, 0, mcG2, false, 0), dst: toGroup, maxResp: 10 * sec,
			want: v1All, counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.InQueries }},
		{name: "v3 group query in IGMPv1 mode", msg: igmpQ(0x11, code1s, mcG3, true, -1), dst: toGroup, maxResp: 10 * sec,
			want: v1All, counter: v3Queries},
		{name: "MLDv1 general query", ver: 1, v6: true, msg: mldQ(130, ms1s, netip.Addr{}, false, 0), dst: toAll, maxResp: sec,
			want:    []string{"mld1 report ff15::7:8", "mld1 report ff15::7:9", "mld1 report ff3e::8000:7"},
			counter: func(s *stack.Stats) *stack.Counter { return &s.IGMP.MLDv1Compat }},
		{name: "MLDv2 group query in MLDv1 mode", v6: true, msg: mldQ(130, ms1s, mcH1, true, -1), dst: toGroup, maxResp: sec,
			want: []string{"mld1 report ff3e::8000:7"}, counter: func(s *stack.Stats) *stack.Counter { return &s.ICMP6.InMLDQueries }},
	}

	const slack = 400 * time.Millisecond
	start := time.Now()
	for _, c := range cases {
		window := c.window
		if window == 0 {
			window = sec
			if c.maxResp > 0 {
				window = c.maxResp + 600*time.Millisecond
			}
		}
		before := c.counter(stats).Load()
		res := q.run(t, []mcFrame{c.frame(sock), c.frame(lnx)}, window)
		ours, theirs := res[sock.iface], res[lnx.iface]
		t.Logf("%s:\n\tsockstack %v\n\tlinux     %v", c.name, ours, theirs)
		if !slices.Equal(ours.recs, c.want) {
			t.Errorf("%s: sockstack sent %v, want %q", c.name, ours, c.want)
		}
		switch {
		case c.known != "":
			if slices.Equal(theirs.recs, ours.recs) {
				t.Errorf("%s: listed as a known difference, but linux answered as sockstack did", c.name)
			} else {
				t.Logf("%s: known difference: %s", c.name, c.known)
			}
		case !slices.Equal(theirs.recs, ours.recs):
			t.Errorf("%s: linux sent %v, sockstack %v", c.name, theirs, ours)
		}
		if c.maxResp > 0 && len(ours.recs) > 0 && ours.last > c.maxResp+slack {
			t.Errorf("%s: sockstack's answer came %v after the query, Max Resp Time %v", c.name, ours.last, c.maxResp)
		}
		if c.ver != 0 {
			v, proto := nic.IGMPVersion(), "IGMP"
			if c.v6 {
				v, proto = nic.MLDVersion(), "MLD"
			}
			if v != c.ver {
				t.Errorf("%s: sockstack speaks %sv%d after it, want v%d", c.name, proto, v, c.ver)
			}
		}
		if after := c.counter(stats).Load(); after == before {
			t.Errorf("%s: the counter named for it did not move (%d)", c.name, after)
		}
	}
	t.Logf("%d cases in %v; IGMP stats: %+v", len(cases), time.Since(start), ssStatsIGMP(stats))
}

func ssStatsIGMP(s *stack.Stats) string {
	g := &s.IGMP
	return fmt.Sprintf("InQueries %d InV3Queries %d InBadQueries %d InErrors %d InOther %d MLDv2Queries %d MLDBadQueries %d V1Compat %d V2Compat %d MLDv1Compat %d OutV3Reports %d OutReports %d",
		g.InQueries.Load(), g.InV3Queries.Load(), g.InBadQueries.Load(), g.InErrors.Load(), g.InOther.Load(),
		g.MLDv2Queries.Load(), g.MLDBadQueries.Load(), g.V1Compat.Load(), g.V2Compat.Load(), g.MLDv1Compat.Load(),
		g.OutV3Reports.Load(), g.OutReports.Load())
}
