package interop

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// An attacker's pass over IPv6 input from outside: crafted frames sent
// from the lab namespace (AF_PACKET) to sockstack on its TAP and, side
// by side, to a Linux peer in a second namespace on a veth. What each
// sends back is captured on the kernel side of its link; sockstack's
// counters and state (neighbours, routers, addresses, path MTUs) are
// asserted through its API, Linux's reaction (replies, nstat deltas,
// `ip -6 neigh/route`) is logged as the reference.
//
//	lab namespace                          Linux peer namespace (-lx)
//	tap0 fd00:77::1 ── sockstack fd00:77::2
//	tap1 (no address) ── sockstack's second NIC (link-local only)
//	va   fd00:78::1 ─────────────────────── vb fd00:78::2
//	vc   ────────────────────────────────── vd (link-local only)

// v6target is one stack under attack, seen from the lab namespace.
type v6target struct {
	name     string
	ifname   string // the lab's interface on the target's link
	mac      wire.MAC
	ip, ll   netip.Addr
	kmac     wire.MAC // the lab kernel's MAC on that link
	kip, kll netip.Addr
	net      string // the link's /64, as "fd00:77:" for spoofed addresses
	other    netip.Addr
	otherIf  string // the lab's interface on the target's second link
	otherMAC wire.MAC
}

func (v *v6target) addr(suffix string) netip.Addr { return netip.MustParseAddr(v.net + ":" + suffix) }

type attackLab struct {
	*lab
	ns2       string
	h         *host
	nic2      *stack.NIC
	sock, lnx *v6target
	seq       int
}

// pyProbe sends the frames on stdin (hex, one a line; the last is the
// marker, an echo request) on an interface and prints every frame that
// arrives on it until the marker's echo reply does: the target handles
// frames in order, so everything it answered to the probe is printed
// before. The marker is sent again every 250 ms (a flood may fill the
// link's queue); a flood is paced so the TAP's queue of 1000 keeps up.
const pyProbe = `
import socket, sys, time, errno
ifname, mark = sys.argv[1], bytes.fromhex(sys.argv[2])
frames = [bytes.fromhex(l) for l in sys.stdin.read().split()]
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
r.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
r.bind((ifname, 0))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
def send(f):
    while True:
        try:
            s.send(f)
            return
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise
            time.sleep(0.001)
sent = set(frames)
for i, f in enumerate(frames[:-1]):
    send(f)
    if i % 100 == 99:
        time.sleep(0.003)
deadline, nextmark, seen = time.time() + 10, 0, False
while time.time() < deadline and not seen:
    if time.time() >= nextmark:
        send(frames[-1])
        nextmark = time.time() + 0.25
    r.settimeout(max(0.01, min(nextmark, deadline) - time.time()))
    try:
        data, addr = r.recvfrom(65536)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        # The kernel's own neighbour solicitations, so that an answer to
        # one is not taken for an answer to the probe.
        if data not in sent and len(data) > 54 and data[20] == 58 and data[54] == 135:
            print("tx", data.hex())
        continue
    print("rx", data.hex())
    if len(data) > 54 and data[20] == 58 and data[54] == 129 and mark in data:
        seen = True
print("mark", "seen" if seen else "missing", flush=True)
`

const markID = 0xa77a

func newAttackLab(t *testing.T) *attackLab {
	t.Helper()
	l := newLab(t)
	needTools(t, "python3", "nstat", "sysctl", "ss", "ping")
	l.enable6(t)
	a := &attackLab{lab: l, ns2: l.ns + "-lx"}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", a.ns2).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", f).Run()
			}
		}
		exec.Command("ip", "netns", "del", a.ns2).Run()
	})
	sysctl := func(ns, dev string, kv ...string) [][]string {
		var o [][]string
		for _, x := range kv {
			o = append(o, []string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf." + dev + "." + x})
		}
		return o
	}
	steps := [][]string{
		{"ip", "netns", "add", a.ns2},
		{"ip", "-n", a.ns2, "link", "set", "lo", "up"},
		{"ip", "-n", l.ns, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", a.ns2},
		{"ip", "-n", l.ns, "link", "add", "vc", "type", "veth", "peer", "name", "vd", "netns", a.ns2},
		{"ip", "-n", l.ns, "tuntap", "add", "dev", "tap1", "mode", "tap"},
	}
	for _, d := range []string{"va", "vc", "tap1", tapName} {
		steps = append(steps, sysctl(l.ns, d, "accept_dad=0", "dad_transmits=0", "router_solicitations=0", "accept_ra=0")...)
	}
	for _, d := range []string{"vb", "vd"} {
		steps = append(steps, sysctl(a.ns2, d, "accept_dad=0", "dad_transmits=0", "router_solicitations=0", "accept_ra=1", "disable_ipv6=0")...)
	}
	steps = append(steps,
		[]string{"ip", "-n", l.ns, "-6", "addr", "add", "fd00:78::1/64", "dev", "va", "nodad"},
		[]string{"ip", "-n", a.ns2, "-6", "addr", "add", "fd00:78::2/64", "dev", "vb", "nodad"},
		[]string{"ip", "-n", l.ns, "link", "set", "va", "up"},
		[]string{"ip", "-n", l.ns, "link", "set", "vc", "up"},
		[]string{"ip", "-n", l.ns, "link", "set", "tap1", "up"},
		[]string{"ip", "-n", a.ns2, "link", "set", "vb", "up"},
		[]string{"ip", "-n", a.ns2, "link", "set", "vd", "up"},
	)
	// Extra kernel addresses: ICMPv6 errors to each have a fresh rate
	// limit bucket, so one probe's errors do not starve the next.
	for i := 71; i <= 76; i++ {
		steps = append(steps,
			[]string{"ip", "-n", l.ns, "-6", "addr", "add", fmt.Sprintf("fd00:77::%d/128", i), "dev", tapName, "nodad"},
			[]string{"ip", "-n", l.ns, "-6", "addr", "add", fmt.Sprintf("fd00:78::%d/128", i), "dev", "va", "nodad"})
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	a.h = l.startStack6(t, stack.Options{IPv6SLAAC: true})
	tap2, err := link.OpenTAP("tap1", link.TAPOptions{Netns: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	a.nic2 = a.h.st.AddNIC("tap1", tap2)
	if err := a.nic2.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	waitDAD(t, a.nic2)
	ping6(t, a.h, kernel6, 8)

	macOf := func(ns, dev string) wire.MAC {
		out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/address").Output()
		if err != nil {
			t.Fatalf("mac of %s: %v", dev, err)
		}
		m, err := wire.ParseMAC(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	llOf := func(ns, dev string) netip.Addr {
		var ll netip.Addr
		l.waitUntil(t, dev+" has a link-local address", func() bool {
			out, _ := exec.Command("ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link").Output()
			for _, f := range strings.Fields(string(out)) {
				if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() && !strings.Contains(string(out), "tentative") {
					ll = p.Addr()
					return true
				}
			}
			return false
		})
		return ll
	}
	a.sock = &v6target{name: "sockstack", ifname: tapName, mac: a.h.nic.HardwareAddr(), ip: stack6, ll: linkLocal(a.h.nic),
		kmac: macOf(l.ns, tapName), kip: kernel6, kll: llOf(l.ns, tapName), net: "fd00:77:",
		other: linkLocal(a.nic2), otherIf: "tap1", otherMAC: a.nic2.HardwareAddr()}
	a.lnx = &v6target{name: "linux", ifname: "va", mac: macOf(a.ns2, "vb"), ip: netip.MustParseAddr("fd00:78::2"), ll: llOf(a.ns2, "vb"),
		kmac: macOf(l.ns, "va"), kip: netip.MustParseAddr("fd00:78::1"), kll: llOf(l.ns, "va"), net: "fd00:78:",
		other: llOf(a.ns2, "vd"), otherIf: "vc", otherMAC: macOf(a.ns2, "vd")}
	// Both targets learn the extra kernel addresses first, so errors to
	// them leave at once instead of waiting in a resolution queue.
	for i := 71; i <= 76; i++ {
		l.run(t, 10*time.Second, nil, "ping", "-6", "-c", "1", "-W", "2", "-I", fmt.Sprintf("fd00:77::%d", i), stack6.String())
		l.run(t, 10*time.Second, nil, "ping", "-6", "-c", "1", "-W", "2", "-I", fmt.Sprintf("fd00:78::%d", i), "fd00:78::2")
	}
	return a
}

// ---- frames ----

func eth6(dmac, smac wire.MAC, src, dst netip.Addr, nh, hop uint8, pl []byte) []byte {
	f := make([]byte, 14+40+len(pl))
	wire.PutEthernet(f, dmac, smac, wire.EtherTypeIPv6)
	h := wire.IPv6Header{PayloadLen: len(pl), NextHeader: nh, HopLimit: hop, Src: src, Dst: dst}
	h.Put(f[14:])
	copy(f[54:], pl)
	return f
}

// csum6 fills the checksum of an ICMPv6, UDP or TCP message m.
func csum6(src, dst netip.Addr, proto uint8, m []byte) []byte {
	at := map[uint8]int{wire.ProtoICMPv6: 2, wire.ProtoUDP: 6, wire.ProtoTCP: 16}[proto]
	m[at], m[at+1] = 0, 0
	c := ^wire.Fold(wire.Sum(m, wire.PseudoHeaderSum6(src.As16(), dst.As16(), proto, len(m))))
	m[at], m[at+1] = byte(c>>8), byte(c)
	return m
}

// icmp6Frame is an ICMPv6 message (type, code, then body) from src to dst.
func icmp6Frame(dmac, smac wire.MAC, src, dst netip.Addr, hop, typ, code uint8, body []byte) []byte {
	m := append([]byte{typ, code, 0, 0}, body...)
	return eth6(dmac, smac, src, dst, wire.ProtoICMPv6, hop, csum6(src, dst, wire.ProtoICMPv6, m))
}

func udp6Msg(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8+len(data))
	wire.PutUDP(u, sport, dport, len(data))
	copy(u[8:], data)
	return csum6(src, dst, wire.ProtoUDP, u)
}

func tcp6Msg(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8) []byte {
	b := make([]byte, 20)
	th := wire.TCPHeader{SrcPort: sport, DstPort: dport, Seq: seq, Ack: ack, Flags: flags, Window: 65535}
	th.Put(b)
	return csum6(src, dst, wire.ProtoTCP, b)
}

func echoReq(id, seq uint16, data []byte) []byte {
	b := make([]byte, 4+len(data))
	b[0], b[1], b[2], b[3] = byte(id>>8), byte(id), byte(seq>>8), byte(seq)
	copy(b[4:], data)
	return b
}

func macOpt(typ uint8, m wire.MAC) []byte { return append([]byte{typ, 1}, m[:]...) }

// ---- replies ----

type reply6 struct {
	src, dst     netip.Addr
	proto        uint8
	typ, code    uint8
	info         uint32
	flags        uint8 // TCP
	seq, ack     uint32
	sport, dport uint16
	target       netip.Addr // NS / NA
	id           uint16     // echo
	smac, dmac   wire.MAC
	hop          uint8
	raw          []byte
}

func (r reply6) String() string {
	switch {
	case r.proto == wire.ProtoICMPv6 && (r.typ == wire.ICMPv6NeighborSolic || r.typ == wire.ICMPv6NeighborAdvert):
		return fmt.Sprintf("%v > %v ICMPv6 %d target %v", r.src, r.dst, r.typ, r.target)
	case r.proto == wire.ProtoICMPv6:
		return fmt.Sprintf("%v > %v ICMPv6 type %d code %d info %d", r.src, r.dst, r.typ, r.code, r.info)
	case r.proto == wire.ProtoTCP:
		return fmt.Sprintf("%v.%d > %v.%d TCP flags %#x seq %d ack %d", r.src, r.sport, r.dst, r.dport, r.flags, r.seq, r.ack)
	}
	return fmt.Sprintf("%v > %v proto %d", r.src, r.dst, r.proto)
}

func parseReply6(f []byte) (reply6, bool) {
	info, err := wire.ParseEthernet(f)
	if err != nil || info.EtherType != wire.EtherTypeIPv6 {
		return reply6{}, false
	}
	ip, err := wire.ParseIPv6(f[info.HeaderLen:])
	if err != nil {
		return reply6{}, false
	}
	r := reply6{src: ip.Src(), dst: ip.Dst(), smac: info.Src, dmac: info.Dst, hop: ip.HopLimit(), raw: f}
	var e wire.IPv6Ext
	if wire.WalkIPv6Ext(ip, &e) != nil {
		return r, true
	}
	r.proto = e.Proto
	p := ip[e.Offset:]
	if e.Frag && wire.IPv6Frag(ip[e.FragOff:]).Offset() == 0 {
		// A first fragment: what follows is the upper layer's start.
		r.proto, p = wire.IPv6Frag(ip[e.FragOff:]).NextHeader(), ip[e.FragOff+wire.IPv6FragHeaderLen:]
	}
	switch {
	case r.proto == wire.ProtoICMPv6 && len(p) >= 8:
		r.typ, r.code, r.info = p[0], p[1], wire.ICMPv6(p).Pointer()
		r.id = wire.ICMPv6(p).ID()
		if (r.typ == wire.ICMPv6NeighborSolic || r.typ == wire.ICMPv6NeighborAdvert) && len(p) >= 24 {
			r.target = netip.AddrFrom16([16]byte(p[8:24]))
		}
	case r.proto == wire.ProtoTCP && len(p) >= 20:
		t := wire.TCP(p)
		r.flags, r.seq, r.ack, r.sport, r.dport = t.Flags(), t.Seq(), t.Ack(), t.SrcPort(), t.DstPort()
	}
	return r, true
}

// probe sends frames to target v on its link and returns what v sent
// back (MLD reports, router solicitations and the marker's replies left
// out).
func (a *attackLab) probe(t *testing.T, v *v6target, frames ...[]byte) []reply6 {
	t.Helper()
	return a.probeOn(t, v, v.ifname, frames...)
}

func (a *attackLab) probeOn(t *testing.T, v *v6target, ifname string, frames ...[]byte) []reply6 {
	t.Helper()
	a.seq++
	tag := []byte(fmt.Sprintf("attack-mark-%s-%06d", v.name, a.seq))
	mark := icmp6Frame(v.mac, v.kmac, v.kip, v.ip, 64, wire.ICMPv6EchoRequest, 0, echoReq(markID, uint16(a.seq), tag))
	var in strings.Builder
	for _, f := range append(frames, mark) {
		in.WriteString(hex.EncodeToString(f))
		in.WriteByte('\n')
	}
	out, err := a.try(60*time.Second, []byte(in.String()), "python3", "-c", pyProbe, ifname, hex.EncodeToString(tag))
	if err != nil {
		t.Fatalf("probe %s: %v\n%s", v.name, err, lastLines(out, 20))
	}
	if !strings.Contains(out, "mark seen") {
		t.Fatalf("%s did not answer the marker echo request after the probe (hung, or its route to %v is broken)\n%s", v.name, v.kip, lastLines(out, 20))
	}
	var rs []reply6
	// The lab kernel's own solicitations (its NUD for the target), seen in
	// the capture: the target's advertisements answering them are not
	// answers to the probe.
	kernelNS := map[[2]netip.Addr]bool{}
	for _, line := range strings.Split(out, "\n") {
		if hx, ok := strings.CutPrefix(line, "tx "); ok {
			if b, err := hex.DecodeString(hx); err == nil {
				if r, ok := parseReply6(b); ok && r.smac == v.kmac && r.proto == wire.ProtoICMPv6 && r.typ == wire.ICMPv6NeighborSolic {
					kernelNS[[2]netip.Addr{r.src, r.target}] = true
				}
			}
		}
	}
	for _, line := range strings.Split(out, "\n") {
		hx, ok := strings.CutPrefix(line, "rx ")
		if !ok {
			continue
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			continue
		}
		r, ok := parseReply6(b)
		if !ok || r.smac != v.mac {
			continue
		}
		if r.proto == wire.ProtoICMPv6 && r.typ == wire.ICMPv6NeighborAdvert && r.dmac == v.kmac && kernelNS[[2]netip.Addr{r.dst, r.target}] {
			t.Logf("%s answered the lab kernel's own solicitation (not the probe): %v", v.name, r)
			continue
		}
		if r.proto == wire.ProtoICMPv6 && (r.typ == wire.ICMPv6EchoReply && r.id == markID ||
			r.typ == wire.ICMPv6MLDReport || r.typ == wire.ICMPv6MLDv2Report || r.typ == wire.ICMPv6MLDDone || r.typ == wire.ICMPv6RouterSolicit) {
			continue
		}
		rs = append(rs, r)
	}
	return rs
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func pick(rs []reply6, keep func(reply6) bool) []reply6 {
	var o []reply6
	for _, r := range rs {
		if keep(r) {
			o = append(o, r)
		}
	}
	return o
}

func icmpErrors(rs []reply6) []reply6 {
	return pick(rs, func(r reply6) bool { return r.proto == wire.ProtoICMPv6 && r.typ < 128 })
}

func ofType(typ uint8) func(reply6) bool {
	return func(r reply6) bool { return r.proto == wire.ProtoICMPv6 && r.typ == typ }
}

func isTCP(r reply6) bool { return r.proto == wire.ProtoTCP }

// ---- state and counters ----

type counters map[string]uint64

func (a *attackLab) counters() counters {
	c := counters{}
	for _, s := range a.h.st.Stats().Snapshot() {
		c[s.Section+"."+s.Name] = s.Value
	}
	return c
}

func (c counters) delta(after counters, name string) uint64 { return after[name] - c[name] }

// sockState is sockstack's IPv6 state an attack must not move: default
// routers, addresses, routes, redirects; neighbours separately.
func (a *attackLab) sockState() (string, map[string]wire.MAC) {
	var b strings.Builder
	neigh := map[string]wire.MAC{}
	for _, n := range []*stack.NIC{a.h.nic, a.nic2} {
		for _, e := range n.Neighbors6() {
			neigh[n.Name()+" "+e.Addr.String()] = e.MAC
		}
		for _, r := range n.DefaultRouters() {
			fmt.Fprintf(&b, "router %s %v\n", n.Name(), r)
		}
		for _, x := range n.Addrs6() {
			fmt.Fprintf(&b, "addr %s %v\n", n.Name(), x.Prefix)
		}
	}
	for _, r := range a.h.st.Routes() {
		fmt.Fprintf(&b, "route %v\n", r)
	}
	for d, nh := range a.h.st.Redirects6() {
		fmt.Fprintf(&b, "redirect %v %v\n", d, nh)
	}
	return b.String(), neigh
}

// neighMoved lists neighbour entries a probe made or changed: a new
// entry (other than the lab kernel's own, which it may make by its own
// solicitations) or a changed MAC. Entries that expired are not moves.
func neighMoved(before, after map[string]wire.MAC, kmac wire.MAC) []string {
	var o []string
	for k, m := range after {
		old, ok := before[k]
		switch {
		case !ok && m != kmac:
			o = append(o, fmt.Sprintf("new %s %v", k, m))
		case ok && old != m:
			o = append(o, fmt.Sprintf("changed %s %v -> %v", k, old, m))
		}
	}
	sort.Strings(o)
	return o
}

// linuxState is the same for the Linux peer (neighbour states left out).
func (a *attackLab) linuxState(t *testing.T) string {
	var b strings.Builder
	out, _ := exec.Command("ip", "-n", a.ns2, "-6", "neigh", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[3] == "lladdr" {
			fmt.Fprintf(&b, "neigh %s %s %s\n", f[2], f[0], f[4])
		}
	}
	for _, c := range [][]string{{"-6", "route", "show", "table", "main"}, {"-6", "addr", "show"}} {
		out, _ := exec.Command("ip", append([]string{"-n", a.ns2}, c...)...).Output()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "inet6") || strings.Contains(line, "via") || strings.Contains(line, "proto") {
				fields := strings.Fields(line)
				// Lifetimes count down: not state.
				for i, f := range fields {
					if f == "valid_lft" || f == "preferred_lft" || f == "expires" {
						fields = fields[:i]
						break
					}
				}
				fmt.Fprintln(&b, strings.Join(fields, " "))
			}
		}
	}
	return b.String()
}

// linuxNstat resets (reset) or reads the Linux peer's nstat deltas,
// keeping the IPv6 / ICMPv6 / TCP error, drop and output counters.
func (a *attackLab) linuxNstat(reset bool) string {
	if reset {
		exec.Command("ip", "netns", "exec", a.ns2, "nstat", "-n").Run()
		return ""
	}
	out, _ := exec.Command("ip", "netns", "exec", a.ns2, "nstat").Output()
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n := f[0]
		if strings.HasPrefix(n, "Ip6") || strings.HasPrefix(n, "Icmp6") || strings.HasPrefix(n, "Tcp") || strings.HasPrefix(n, "TcpExt") || strings.HasPrefix(n, "Udp6") {
			if strings.HasPrefix(n, "Ip6InOctets") || strings.HasPrefix(n, "Ip6OutOctets") || strings.Contains(n, "McastOctets") {
				continue
			}
			keep = append(keep, n+"="+f[1])
		}
	}
	return strings.Join(keep, " ")
}

// side runs one probe against both stacks: do sends and asserts for
// sockstack (fatal on failure), then the same frames go to Linux and
// its reaction is logged.
type sideResult struct {
	replies []reply6
	before  counters
	after   counters
	stateOK bool
}

func (a *attackLab) side(t *testing.T, what string, build func(v *v6target) [][]byte, check func(t *testing.T, r sideResult)) {
	t.Helper()
	// sockstack
	st0, n0 := a.sockState()
	c0 := a.counters()
	rs := a.probe(t, a.sock, build(a.sock)...)
	c1 := a.counters()
	st1, n1 := a.sockState()
	for _, r := range rs {
		t.Logf("sockstack sent: %v", r)
	}
	moved := neighMoved(n0, n1, a.sock.kmac)
	check(t, sideResult{replies: rs, before: c0, after: c1, stateOK: st0 == st1 && len(moved) == 0})
	if st0 != st1 || len(moved) != 0 {
		t.Logf("sockstack state changed:\n%s\n%s", diffLines(st0, st1), strings.Join(moved, "\n"))
	}
	// Linux, for the log
	l0 := a.linuxState(t)
	a.linuxNstat(true)
	lr := a.probe(t, a.lnx, build(a.lnx)...)
	ln := a.linuxNstat(false)
	l1 := a.linuxState(t)
	var got []string
	for _, r := range lr {
		got = append(got, r.String())
	}
	sort.Strings(got)
	changed := "unchanged"
	if l0 != l1 {
		changed = "CHANGED:\n" + diffLines(l0, l1)
	}
	t.Logf("linux (%s): sent %d: %s\n  nstat: %s\n  state %s", what, len(lr), strings.Join(got, "; "), ln, changed)
}

func diffLines(a, b string) string {
	in := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		in[l]--
	}
	for _, l := range strings.Split(b, "\n") {
		in[l]++
	}
	var o []string
	for l, n := range in {
		if n > 0 {
			o = append(o, "  + "+l)
		} else if n < 0 {
			o = append(o, "  - "+l)
		}
	}
	sort.Strings(o)
	return strings.Join(o, "\n")
}

func wantNone(t *testing.T, what string, rs []reply6) {
	t.Helper()
	if len(rs) != 0 {
		t.Errorf("sockstack answered %s: %v", what, rs)
	}
}

func wantDelta(t *testing.T, r sideResult, name string, min uint64) {
	t.Helper()
	if d := r.before.delta(r.after, name); d < min {
		t.Errorf("counter %s moved by %d, want >= %d", name, d, min)
	}
}

func wantState(t *testing.T, r sideResult) {
	t.Helper()
	if !r.stateOK {
		t.Error("sockstack's neighbours, routers, addresses or routes changed")
	}
}

// ---- the probes ----

func TestInteropIPv6Attack(t *testing.T) {
	a := newAttackLab(t)
	t.Run("ndp_validity", a.ndpValidity)
	t.Run("neighbor_poisoning", a.neighborPoisoning)
	t.Run("fragments", a.fragments)
	t.Run("icmpv6_error_rules", a.errorRules)
	t.Run("tcp_over_ipv6", a.tcpInput)
	t.Run("packet_too_big", a.packetTooBig)
	t.Run("ns_flood", a.nsFlood)
	t.Run("neighbor_scan", a.neighborScan)
	t.Run("fragment_flood", a.fragmentFlood)
	t.Run("ra_prefix_flood", a.raPrefixFlood)
	t.Run("ra_with_1ms_timers", a.raTinyTimers)
}

// ndMsg finishes an ND message built by wire.Put*: code, checksum, frame.
func ndMsg(dmac, smac wire.MAC, src, dst netip.Addr, hop, code uint8, m []byte) []byte {
	m[1] = code
	return eth6(dmac, smac, src, dst, wire.ProtoICMPv6, hop, csum6(src, dst, wire.ProtoICMPv6, m))
}

func nsMsg(target netip.Addr, mac wire.MAC) []byte {
	b := make([]byte, 32)
	return b[:wire.PutNS(b, target, mac)]
}

func naMsg(target netip.Addr, flags uint8, mac wire.MAC) []byte {
	b := make([]byte, 32)
	return b[:wire.PutNA(b, target, flags, mac)]
}

// raMsg: hop limit 64, router lifetime 1800 s, the sender's MAC, prefix
// fd00:99::/64 on-link and autonomous.
func raMsg(smac wire.MAC) []byte {
	b := []byte{wire.ICMPv6RouterAdvert, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
	b = append(b, macOpt(1, smac)...)
	b = append(b, 3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0)
	p := netip.MustParseAddr("fd00:99::").As16()
	return append(b, p[:]...)
}

// redirectMsg: dst is better reached through target (a router on the link).
func redirectMsg(target, dst netip.Addr, tmac wire.MAC) []byte {
	b := []byte{wire.ICMPv6Redirect, 0, 0, 0, 0, 0, 0, 0}
	t, d := target.As16(), dst.As16()
	b = append(append(b, t[:]...), d[:]...)
	return append(b, macOpt(2, tmac)...)
}

// atomicND is an ND message (checksum filled) behind a fragment header
// with offset 0 and M=0, hop limit 255.
func atomicND(dmac, smac wire.MAC, src, dst netip.Addr, m []byte) []byte {
	pl := make([]byte, 8+len(m))
	wire.PutIPv6Frag(pl, wire.ProtoICMPv6, 0, false, 6980)
	copy(pl[8:], m)
	return eth6(dmac, smac, src, dst, wire.ProtoIPv6Frag, 255, pl)
}

var (
	allNodes    = wire.IPv6AllNodes
	allNodesMAC = wire.IPv6MulticastMAC(wire.IPv6AllNodes)
	fakeMAC     = wire.MAC{0x02, 0xaa, 0, 0, 0, 0x66}
)

func (a *attackLab) ndpValidity(t *testing.T) {
	cases := []struct {
		name    string
		counter string
		build   func(v *v6target) []byte
	}{
		{"RA_hop_limit_64", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(allNodesMAC, v.kmac, v.kll, allNodes, 64, 0, raMsg(v.kmac))
		}},
		{"RA_from_a_global_source", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(allNodesMAC, v.kmac, v.kip, allNodes, 255, 0, raMsg(v.kmac))
		}},
		{"RA_code_1", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(allNodesMAC, v.kmac, v.kll, allNodes, 255, 1, raMsg(v.kmac))
		}},
		{"NS_hop_limit_64", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(v.mac, fakeMAC, v.addr("50"), v.ip, 64, 0, nsMsg(v.ip, fakeMAC))
		}},
		{"NS_from_unspecified_with_source_link-layer_option", "ICMP6.InNDBad", func(v *v6target) []byte {
			sn := wire.SolicitedNode(v.ip)
			return ndMsg(wire.IPv6MulticastMAC(sn), fakeMAC, netip.IPv6Unspecified(), sn, 255, 0, nsMsg(v.ip, fakeMAC))
		}},
		{"NS_code_1", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(v.mac, fakeMAC, v.addr("50"), v.ip, 255, 1, nsMsg(v.ip, fakeMAC))
		}},
		{"NA_solicited_to_all_nodes", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(allNodesMAC, fakeMAC, v.kip, allNodes, 255, 0, naMsg(v.kip, wire.NAFlagSolicited|wire.NAFlagOverride, fakeMAC))
		}},
		{"NA_override_hop_limit_64", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(v.mac, fakeMAC, v.kip, v.ip, 64, 0, naMsg(v.kip, wire.NAFlagOverride, fakeMAC))
		}},
		{"NA_override_code_1", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(v.mac, fakeMAC, v.kip, v.ip, 255, 1, naMsg(v.kip, wire.NAFlagOverride, fakeMAC))
		}},
		{"RS_with_source_link-layer_option_to_all_nodes", "ICMP6.InRouterSolicits", func(v *v6target) []byte {
			b := make([]byte, 16)
			return ndMsg(allNodesMAC, fakeMAC, netip.MustParseAddr("fe80::77"), allNodes, 255, 0, b[:wire.PutRS(b, fakeMAC)])
		}},
		{"NS_with_a_zero-length_option", "ICMP6.InNDBad", func(v *v6target) []byte {
			return ndMsg(v.mac, fakeMAC, v.addr("50"), v.ip, 255, 0, append(nsMsg(v.ip, fakeMAC), 14, 0, 0, 0, 0, 0, 0, 0))
		}},
		{"NA_with_an_option_past_the_end", "ICMP6.InNDBad", func(v *v6target) []byte {
			m := naMsg(v.kip, wire.NAFlagOverride, fakeMAC)
			m[len(m)-7] = 2 // the target link-layer option claims 16 bytes
			return ndMsg(v.mac, fakeMAC, v.kip, v.ip, 255, 0, m)
		}},
		{"NS_in_an_atomic_fragment_RFC_6980", "ICMP6.InNDBad", func(v *v6target) []byte {
			src := v.addr("50")
			return atomicND(v.mac, fakeMAC, src, v.ip, csum6(src, v.ip, wire.ProtoICMPv6, nsMsg(v.ip, fakeMAC)))
		}},
		{"RA_in_an_atomic_fragment_RFC_6980", "ICMP6.InNDBad", func(v *v6target) []byte {
			return atomicND(allNodesMAC, v.kmac, v.kll, allNodes, csum6(v.kll, allNodes, wire.ProtoICMPv6, raMsg(v.kmac)))
		}},
		{"Redirect_hop_limit_64", "Redirect6.BadHopLimit", func(v *v6target) []byte {
			return ndMsg(v.mac, v.kmac, v.kll, v.ip, 64, 0, redirectMsg(netip.MustParseAddr("fe80::99"), v.kip, fakeMAC))
		}},
		{"Redirect_from_a_global_source", "Redirect6.BadSource", func(v *v6target) []byte {
			return ndMsg(v.mac, v.kmac, v.kip, v.ip, 255, 0, redirectMsg(netip.MustParseAddr("fe80::99"), v.kip, fakeMAC))
		}},
		{"Redirect_code_1", "Redirect6.BadCode", func(v *v6target) []byte {
			return ndMsg(v.mac, v.kmac, v.kll, v.ip, 255, 1, redirectMsg(netip.MustParseAddr("fe80::99"), v.kip, fakeMAC))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a.side(t, c.name, func(v *v6target) [][]byte { return [][]byte{c.build(v)} }, func(t *testing.T, r sideResult) {
				wantNone(t, c.name, pick(r.replies, func(x reply6) bool {
					return x.proto == wire.ProtoICMPv6 && (x.typ < 128 || x.typ == wire.ICMPv6NeighborAdvert)
				}))
				wantDelta(t, r, c.counter, 1)
				wantState(t, r)
			})
		})
	}
}

// linuxNeigh is the Linux peer's entry for addr.
func (a *attackLab) linuxNeigh(addr netip.Addr) string {
	out, _ := exec.Command("ip", "-n", a.ns2, "-6", "neigh", "show", addr.String(), "dev", "vb").Output()
	return strings.TrimSpace(string(out))
}

func (a *attackLab) neighborPoisoning(t *testing.T) {
	m1, m2, m3 := wire.MAC{2, 0xaa, 0, 0, 0, 0x61}, wire.MAC{2, 0xaa, 0, 0, 0, 0x62}, wire.MAC{2, 0xaa, 0, 0, 0, 0x63}
	for _, v := range []*v6target{a.sock, a.lnx} {
		nb := v.addr("60")
		state := func() string {
			if v == a.lnx {
				return a.linuxNeigh(nb)
			}
			i, ok := a.h.nic.Neighbor6(nb)
			if !ok {
				return "none"
			}
			return fmt.Sprintf("%v %v", i.MAC, i.State)
		}
		want := func(step, s string) {
			t.Logf("%s after %s: %s", v.name, step, s)
			if v == a.sock && !strings.HasPrefix(state(), s) {
				t.Errorf("sockstack after %s: %s, want %s", step, state(), s)
			}
		}
		reachable := func(mac wire.MAC) {
			// NS from the neighbour (the target learns it, STALE), then
			// a solicited NA: REACHABLE.
			a.probe(t, v, ndMsg(v.mac, mac, nb, v.ip, 255, 0, nsMsg(v.ip, mac)),
				ndMsg(v.mac, mac, nb, v.ip, 255, 0, naMsg(nb, wire.NAFlagSolicited|wire.NAFlagOverride, mac)))
		}
		reachable(m1)
		want("NS + solicited NA", m1.String()+" REACHABLE")
		// RFC 4861 7.2.5: an unsolicited NA with override and another
		// MAC replaces the MAC and makes the entry STALE.
		a.probe(t, v, ndMsg(v.mac, m2, nb, v.ip, 255, 0, naMsg(nb, wire.NAFlagOverride, m2)))
		want("unsolicited NA with override, new MAC", m2.String()+" STALE")
		reachable(m2)
		want("NS + solicited NA again", m2.String()+" REACHABLE")
		// Without override the MAC stays; the entry is only suspect.
		a.probe(t, v, ndMsg(v.mac, m3, nb, v.ip, 255, 0, naMsg(nb, 0, m3)))
		want("unsolicited NA without override, new MAC", m2.String()+" STALE")
		// An NA for a neighbour the target never knew makes no entry.
		unknown := v.addr("61")
		a.probe(t, v, ndMsg(v.mac, m3, unknown, v.ip, 255, 0, naMsg(unknown, wire.NAFlagOverride, m3)))
		if v == a.sock {
			if i, ok := a.h.nic.Neighbor6(unknown); ok {
				t.Errorf("sockstack made an entry from an unsolicited NA: %+v", i)
			}
		} else {
			t.Logf("linux after an NA for an unknown neighbour: %q", a.linuxNeigh(unknown))
		}
	}
	// The kernel's own entry kept its MAC through all this.
	if i, ok := a.h.nic.Neighbor6(kernel6); !ok || i.MAC != a.sock.kmac {
		t.Errorf("sockstack's entry for the kernel: %+v %v", i, ok)
	}
}

// frag is an IPv6 packet with a fragment header.
func fragFrame(v *v6target, src netip.Addr, nh uint8, off int, more bool, id uint32, data []byte) []byte {
	pl := make([]byte, 8+len(data))
	wire.PutIPv6Frag(pl, nh, off, more, id)
	copy(pl[8:], data)
	return eth6(v.mac, v.kmac, src, v.ip, wire.ProtoIPv6Frag, 64, pl)
}

func (a *attackLab) fragments(t *testing.T) {
	src := func(v *v6target) netip.Addr { return v.addr("72") }
	t.Run("first_fragment_without_the_whole_chain", func(t *testing.T) {
		a.side(t, "RFC 7112", func(v *v6target) [][]byte {
			tcp := tcp6Msg(src(v), v.ip, 40000, 7200, 1, 0, wire.TCPFlagSYN)
			return [][]byte{fragFrame(v, src(v), wire.ProtoTCP, 0, true, 0x7112, tcp[:8])}
		}, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			if len(e) != 1 || e[0].typ != wire.ICMPv6ParamProblem || e[0].code != wire.ICMPv6IncompleteHeaderChain || e[0].info != 0 {
				t.Errorf("want Parameter Problem code 3 pointer 0, got %v", e)
			}
			wantDelta(t, r, "IP6.InIncompleteChain", 1)
		})
	})
	t.Run("atomic_fragment_processed_whole", func(t *testing.T) {
		a.side(t, "RFC 6946", func(v *v6target) [][]byte {
			m := csum6(src(v), v.ip, wire.ProtoICMPv6, append([]byte{wire.ICMPv6EchoRequest, 0, 0, 0}, echoReq(0x6946, 1, []byte("atomic"))...))
			return [][]byte{fragFrame(v, src(v), wire.ProtoICMPv6, 0, false, 0x6946, m)}
		}, func(t *testing.T, r sideResult) {
			if e := pick(r.replies, func(x reply6) bool {
				return x.proto == wire.ProtoICMPv6 && x.typ == wire.ICMPv6EchoReply && x.id == 0x6946
			}); len(e) != 1 {
				t.Errorf("want one echo reply to the atomic fragment, got %v", r.replies)
			}
			wantDelta(t, r, "IP6.InAtomicFrags", 1)
		})
	})
	t.Run("reassembled_size_over_65535", func(t *testing.T) {
		a.side(t, "over 65535", func(v *v6target) [][]byte {
			return [][]byte{fragFrame(v, src(v), wire.ProtoUDP, 65528, false, 0xffff, make([]byte, 16))}
		}, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			if len(e) != 1 || e[0].typ != wire.ICMPv6ParamProblem || e[0].code != wire.ICMPv6ErroneousField || e[0].info != 42 {
				t.Errorf("want Parameter Problem code 0 pointer 42 (fragment offset), got %v", e)
			}
			wantDelta(t, r, "IP.ReasmTooBig", 1)
		})
	})
	t.Run("M=1_length_not_a_multiple_of_8", func(t *testing.T) {
		a.side(t, "odd length", func(v *v6target) [][]byte {
			u := udp6Msg(src(v), v.ip, 40001, 9, []byte("odd!odd!"))
			return [][]byte{fragFrame(v, src(v), wire.ProtoUDP, 0, true, 0x0dd, u[:12])}
		}, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			if len(e) != 1 || e[0].typ != wire.ICMPv6ParamProblem || e[0].code != wire.ICMPv6ErroneousField || e[0].info != 4 {
				t.Errorf("want Parameter Problem code 0 pointer 4, got %v", e)
			}
			wantDelta(t, r, "IP.ReasmBadFragment", 1)
		})
	})
}

func (a *attackLab) errorRules(t *testing.T) {
	src := func(v *v6target) netip.Addr { return v.addr("73") }
	udp := func(v *v6target, s, d netip.Addr, dmac wire.MAC) []byte {
		return eth6(dmac, v.kmac, s, d, wire.ProtoUDP, 64, udp6Msg(s, d, 40002, 9, []byte("closed")))
	}
	t.Run("udp_to_a_closed_port", func(t *testing.T) {
		a.side(t, "baseline", func(v *v6target) [][]byte { return [][]byte{udp(v, src(v), v.ip, v.mac)} }, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			if len(e) != 1 || e[0].typ != wire.ICMPv6DestUnreach || e[0].code != wire.ICMPv6PortUnreach {
				t.Errorf("want one port unreachable, got %v", e)
			}
		})
	})
	t.Run("icmpv6_error_behind_an_option_of_action_10", func(t *testing.T) {
		a.side(t, "error about an error", func(v *v6target) [][]byte {
			du := csum6(src(v), v.ip, wire.ProtoICMPv6, append([]byte{wire.ICMPv6DestUnreach, 4, 0, 0, 0, 0, 0, 0}, make([]byte, 48)...))
			pl := append([]byte{wire.ProtoICMPv6, 0, 0x9e, 2, 0, 0, 1, 0}, du...)
			return [][]byte{eth6(v.mac, v.kmac, src(v), v.ip, wire.ProtoIPv6Opts, 64, pl)}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "an ICMPv6 error", icmpErrors(r.replies))
			wantDelta(t, r, "ICMP6.OutSuppressed", 1)
		})
	})
	t.Run("udp_closed_port_to_all_nodes", func(t *testing.T) {
		a.side(t, "multicast dst", func(v *v6target) [][]byte { return [][]byte{udp(v, src(v), allNodes, allNodesMAC)} }, func(t *testing.T, r sideResult) {
			wantNone(t, "a datagram to ff02::1", icmpErrors(r.replies))
		})
	})
	t.Run("unknown_next_header_to_all_nodes", func(t *testing.T) {
		a.side(t, "multicast dst", func(v *v6target) [][]byte {
			return [][]byte{eth6(allNodesMAC, v.kmac, src(v), allNodes, 253, 64, make([]byte, 8))}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "an unknown next header to ff02::1", icmpErrors(r.replies))
			wantDelta(t, r, "ICMP6.OutSuppressed", 1)
		})
	})
	t.Run("option_of_action_10_to_all_nodes_is_answered", func(t *testing.T) {
		a.side(t, "RFC 4443 2.4(e.3)", func(v *v6target) [][]byte {
			pl := append([]byte{wire.ProtoUDP, 0, 0x9e, 2, 0, 0, 1, 0}, udp6Msg(src(v), allNodes, 40003, 9, nil)...)
			return [][]byte{eth6(allNodesMAC, v.kmac, src(v), allNodes, wire.ProtoIPv6Opts, 64, pl)}
		}, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			if len(e) != 1 || e[0].typ != wire.ICMPv6ParamProblem || e[0].code != wire.ICMPv6UnrecognizedOption || e[0].info != 42 {
				t.Errorf("want Parameter Problem code 2 pointer 42, got %v", e)
			}
		})
	})
	t.Run("udp_closed_port_from_unspecified", func(t *testing.T) {
		a.side(t, ":: source", func(v *v6target) [][]byte { return [][]byte{udp(v, netip.IPv6Unspecified(), v.ip, v.mac)} }, func(t *testing.T, r sideResult) {
			wantNone(t, "a datagram from ::", icmpErrors(r.replies))
			wantDelta(t, r, "ICMP6.OutSuppressed", 1)
		})
	})
	t.Run("udp_closed_port_from_multicast", func(t *testing.T) {
		a.side(t, "multicast source", func(v *v6target) [][]byte { return [][]byte{udp(v, allNodes, v.ip, v.mac)} }, func(t *testing.T, r sideResult) {
			wantNone(t, "a datagram from ff02::1", icmpErrors(r.replies))
			wantDelta(t, r, "IP6.InBadSource", 1)
		})
	})
	t.Run("rate_limit_under_a_burst_of_50", func(t *testing.T) {
		a.side(t, "burst", func(v *v6target) [][]byte {
			var fs [][]byte
			for i := 0; i < 50; i++ {
				fs = append(fs, udp(v, v.addr("71"), v.ip, v.mac))
			}
			return fs
		}, func(t *testing.T, r sideResult) {
			e := icmpErrors(r.replies)
			// Per destination: a burst of 6, then one a second (the
			// burst takes well under a second; one more may slip in).
			if len(e) < 1 || len(e) > 7 {
				t.Errorf("sockstack sent %d errors to one destination in a burst of 50, want 6 (at most 7)", len(e))
			}
			wantDelta(t, r, "ICMP6.OutRateLimited", 43)
			t.Logf("sockstack: %d port unreachables for 50 datagrams, %d rate limited", len(e), r.before.delta(r.after, "ICMP6.OutRateLimited"))
		})
	})
}

func (a *attackLab) tcpInput(t *testing.T) {
	ls, err := a.h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	if err := ls.Bind(socket.Inet6("::", 7200)); err != nil {
		t.Fatal(err)
	}
	if err := ls.Listen(64); err != nil {
		t.Fatal(err)
	}
	a.background(t, "ip", "netns", "exec", a.ns2, "python3", "-c",
		"import socket,time\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('::',7200))\ns.listen(64)\ntime.sleep(120)")
	a.waitUntil(t, "the Linux peer listens on 7200", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", a.ns2, "ss", "-Hltn", "sport", "= :7200").Output()
		return strings.TrimSpace(string(out)) != ""
	})
	port := uint16(41000)
	syn := func(v *v6target, src, dst netip.Addr) []byte {
		port++
		return eth6(v.mac, v.kmac, src, dst, wire.ProtoTCP, 64, tcp6Msg(src, dst, port, 7200, 1000, 0, wire.TCPFlagSYN))
	}
	synAck := func(x reply6) bool { return x.proto == wire.ProtoTCP && x.flags&wire.TCPFlagSYN != 0 }
	t.Run("syn_to_its_own_link-local_is_answered", func(t *testing.T) {
		a.side(t, "control", func(v *v6target) [][]byte { return [][]byte{syn(v, v.kll, v.ll)} }, func(t *testing.T, r sideResult) {
			if len(pick(r.replies, synAck)) != 1 {
				t.Errorf("no SYN-ACK to a SYN for the link's own link-local address: %v", r.replies)
			}
		})
	})
	t.Run("syn_to_another_links_link-local_wrong_zone", func(t *testing.T) {
		a.side(t, "wrong zone", func(v *v6target) [][]byte { return [][]byte{syn(v, v.kll, v.other)} }, func(t *testing.T, r sideResult) {
			wantNone(t, "a SYN for another link's link-local address", pick(r.replies, isTCP))
			wantDelta(t, r, "IP6.InAddrErrors", 1)
		})
	})
	for _, c := range []struct {
		name, counter string
		src           func(v *v6target) netip.Addr
	}{
		{"syn_from_v4-mapped_source", "IP6.InBadSource", func(v *v6target) netip.Addr { return netip.MustParseAddr("::ffff:10.77.0.9") }},
		{"syn_from_its_own_address", "IP6.InBadSource", func(v *v6target) netip.Addr { return v.ip }},
		{"syn_from_multicast_source", "IP6.InBadSource", func(v *v6target) netip.Addr { return allNodes }},
		{"syn_from_unspecified_source", "", func(v *v6target) netip.Addr { return netip.IPv6Unspecified() }},
		{"syn_from_loopback_source", "IP6.InBadSource", func(v *v6target) netip.Addr { return netip.IPv6Loopback() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ld := a.h.st.TCP.Stats().ListenDrops
			a.side(t, c.name, func(v *v6target) [][]byte { return [][]byte{syn(v, c.src(v), v.ip)} }, func(t *testing.T, r sideResult) {
				wantNone(t, c.name, pick(r.replies, isTCP))
				if c.counter != "" {
					wantDelta(t, r, c.counter, 1)
				} else if d := a.h.st.TCP.Stats().ListenDrops - ld; d != 1 {
					// No route back to ::: dropped by the listener, counted as Linux does.
					t.Errorf("TCP ListenDrops moved by %d, want 1", d)
				}
			})
			if c.counter == "" {
				for _, ci := range a.h.st.TCP.Table() {
					if ci.Remote.Addr().IsUnspecified() && ci.Remote.Port() != 0 {
						t.Errorf("sockstack keeps a connection from ::: %+v", ci)
					}
				}
			}
		})
	}
}

// ptbFrame is a Packet Too Big from src to v quoting quote.
func ptbFrame(v *v6target, src netip.Addr, mtu uint32, quote []byte) []byte {
	body := append([]byte{byte(mtu >> 24), byte(mtu >> 16), byte(mtu >> 8), byte(mtu)}, quote...)
	return icmp6Frame(v.mac, v.kmac, src, v.ip, 64, wire.ICMPv6PacketTooBig, 0, body)
}

// quoteTCP is the start of a TCP segment v sent from sport to dst:dport.
func quoteTCP(v *v6target, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	q := make([]byte, 40+20)
	h := wire.IPv6Header{PayloadLen: 1400, NextHeader: wire.ProtoTCP, HopLimit: 64, Src: v.ip, Dst: dst}
	h.Put(q)
	th := wire.TCPHeader{SrcPort: sport, DstPort: dport, Seq: seq, Flags: wire.TCPFlagACK, Window: 1000}
	th.Put(q[40:])
	return q
}

func (a *attackLab) packetTooBig(t *testing.T) {
	// A kernel listener in the lab holding connections from both targets.
	a.background(t, "python3", "-c",
		"import socket,time\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('::',7100))\ns.listen(8)\nk=[]\nwhile True:\n  c,_=s.accept()\n  k.append(c)")
	a.waitListen(t, "tcp", 7100)
	c, err := a.h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(socket.InetAddr(netip.AddrPortFrom(kernel6, 7100))); err != nil {
		t.Fatal(err)
	}
	if err := c.SendAll([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	sa, err := c.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	ports := map[*v6target]uint16{a.sock: sa.(*socket.SockaddrInet).AddrPort.Port()}
	a.background(t, "ip", "netns", "exec", a.ns2, "python3", "-c",
		"import socket,time\ns=socket.socket(socket.AF_INET6)\ns.connect(('fd00:78::1',7100))\ns.send(b'hello')\ntime.sleep(120)")
	a.waitUntil(t, "the Linux peer's connection to the lab", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", a.ns2, "ss", "-Htn", "state", "established", "( dport = :7100 )").Output()
		for _, f := range strings.Fields(string(out)) {
			if ap, err := netip.ParseAddrPort(f); err == nil && ap.Addr() == a.lnx.ip {
				ports[a.lnx] = ap.Port()
				return true
			}
		}
		return false
	})
	// Learn each target's SND.NXT: an out-of-window ACK draws an ACK
	// carrying it.
	sndNxt := map[*v6target]uint32{}
	for _, v := range []*v6target{a.sock, a.lnx} {
		rs := a.probe(t, v, eth6(v.mac, v.kmac, v.kip, v.ip, wire.ProtoTCP, 64, tcp6Msg(v.kip, v.ip, 7100, ports[v], 1, 1, wire.TCPFlagACK)))
		acks := pick(rs, func(x reply6) bool { return isTCP(x) && x.sport == ports[v] })
		if len(acks) == 0 {
			t.Fatalf("%s did not answer an out-of-window ACK: %v", v.name, rs)
		}
		sndNxt[v] = acks[len(acks)-1].seq
	}
	router := func(v *v6target) netip.Addr { return v.addr("75") }
	far := func(v *v6target) netip.Addr { return v.addr("74") }
	linuxRoute := func(dst netip.Addr) string {
		out, _ := exec.Command("ip", "-n", a.ns2, "-6", "route", "get", dst.String()).Output()
		return strings.TrimSpace(string(out))
	}
	t.Run("ptb_for_no_connection", func(t *testing.T) {
		a.side(t, "no connection", func(v *v6target) [][]byte {
			return [][]byte{ptbFrame(v, router(v), 1300, quoteTCP(v, far(v), 45000, 7999, 1))}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "a Packet Too Big", icmpErrors(r.replies))
			wantDelta(t, r, "ICMP6.InUnmatched", 1)
			if m := a.h.st.PathMTU(far(a.sock)); m != 1500 {
				t.Errorf("path MTU to %v is %d after a Packet Too Big for no connection, want 1500", far(a.sock), m)
			}
		})
		t.Logf("linux route to %v: %s", far(a.lnx), linuxRoute(far(a.lnx)))
	})
	t.Run("ptb_with_a_truncated_quote", func(t *testing.T) {
		a.side(t, "truncated", func(v *v6target) [][]byte {
			q := quoteTCP(v, far(v), ports[v], 7100, 1)
			return [][]byte{ptbFrame(v, router(v), 1300, q[:40]), ptbFrame(v, router(v), 1300, q[:20]), ptbFrame(v, router(v), 1300, nil)}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "a truncated Packet Too Big", icmpErrors(r.replies))
			if d := r.before.delta(r.after, "ICMP6.InUnmatched") + r.before.delta(r.after, "ICMP6.InErrors"); d != 3 {
				t.Errorf("3 truncated Packet Too Big counted %d times (unmatched or errors)", d)
			}
			if m := a.h.st.PathMTU(far(a.sock)); m != 1500 {
				t.Errorf("path MTU to %v is %d, want 1500", far(a.sock), m)
			}
		})
	})
	t.Run("ptb_below_1280_for_a_connection", func(t *testing.T) {
		a.side(t, "MTU 500", func(v *v6target) [][]byte {
			return [][]byte{ptbFrame(v, router(v), 500, quoteTCP(v, v.kip, ports[v], 7100, sndNxt[v]))}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "a Packet Too Big", icmpErrors(r.replies))
			if m := a.h.st.PathMTU(kernel6); m != 1280 {
				t.Errorf("path MTU to the kernel after a Packet Too Big of 500: %d, want 1280 (RFC 8201 4)", m)
			}
			wantDelta(t, r, "IP6.PMTUBelowMin", 1)
		})
		t.Logf("linux route to %v: %s", a.lnx.kip, linuxRoute(a.lnx.kip))
	})
	t.Run("port_unreachable_for_an_established_connection", func(t *testing.T) {
		// RFC 5927: a forged hard error must not reset a synchronized
		// connection, even quoting its exact SND.NXT.
		a.side(t, "blind ICMPv6 reset", func(v *v6target) [][]byte {
			body := append([]byte{0, 0, 0, 0}, quoteTCP(v, v.kip, ports[v], 7100, sndNxt[v])...)
			return [][]byte{icmp6Frame(v.mac, v.kmac, v.kip, v.ip, 64, wire.ICMPv6DestUnreach, wire.ICMPv6PortUnreach, body)}
		}, func(t *testing.T, r sideResult) {
			wantNone(t, "a port unreachable", icmpErrors(r.replies))
			wantDelta(t, r, "ICMP6.InDestUnreachs", 1)
			est := false
			for _, ci := range a.h.st.TCP.Table() {
				if ci.Remote == netip.AddrPortFrom(kernel6, 7100) && ci.Local.Port() == ports[a.sock] {
					est = ci.State.String() == "ESTABLISHED"
					t.Logf("sockstack's connection after the error: %v", ci.State)
				}
			}
			if !est {
				t.Error("a forged port unreachable ended an established connection")
			}
			if err := c.SendAll([]byte("still here"), 0); err != nil {
				t.Errorf("send after a forged port unreachable: %v", err)
			}
		})
		out, _ := exec.Command("ip", "netns", "exec", a.ns2, "ss", "-Htn", "state", "established", "( dport = :7100 )").Output()
		t.Logf("linux's connection after the error: %q", strings.TrimSpace(string(out)))
	})
	// The connection still carries data after it.
	if err := c.SendAll(make([]byte, 4000), 0); err != nil {
		t.Errorf("send after the Packet Too Big: %v", err)
	}
}

func (a *attackLab) nsFlood(t *testing.T) {
	const n = 5000
	// The kernel's entry is refreshed first (REACHABLE entries are never
	// evicted), so the flood cannot push it out.
	ping6(t, a.h, kernel6, 8)
	build := func(v *v6target) [][]byte {
		fs := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			src := v.addr(fmt.Sprintf("1:%x", i))
			mac := wire.MAC{2, 0xbb, 0, 0, byte(i >> 8), byte(i)}
			fs = append(fs, ndMsg(v.mac, mac, src, v.ip, 255, 0, nsMsg(v.ip, mac)))
		}
		return fs
	}
	c0 := a.counters()
	rs := a.probe(t, a.sock, build(a.sock)...)
	c1 := a.counters()
	size := len(a.h.nic.Neighbors6())
	t.Logf("sockstack: %d NS received of %d sent, %d NA sent back, neighbour table %d (limit 1024), cache full %d, evictions %d",
		c0.delta(c1, "ICMP6.InNeighborSolicits"), n, len(pick(rs, ofType(wire.ICMPv6NeighborAdvert))), size,
		c0.delta(c1, "ND.CacheFull"), c0.delta(c1, "ND.CacheEvictions"))
	if size > 1024 {
		t.Errorf("neighbour table at %d entries, over its limit of 1024", size)
	}
	if c0.delta(c1, "ICMP6.InNeighborSolicits") > 1024 && c0.delta(c1, "ND.CacheFull")+c0.delta(c1, "ND.CacheEvictions") == 0 {
		t.Error("the table limit was hit but nothing counted it")
	}
	if c0.delta(c1, "ICMP6.InNeighborSolicits") <= 1024 {
		t.Errorf("only %d of %d NS reached sockstack: the limit was not tested", c0.delta(c1, "ICMP6.InNeighborSolicits"), n)
	}
	if i, ok := a.h.nic.Neighbor6(kernel6); !ok || i.MAC != a.sock.kmac {
		t.Errorf("the kernel's entry after the flood: %+v %v", i, ok)
	}
	a.linuxNstat(true)
	lr := a.probe(t, a.lnx, build(a.lnx)...)
	out, _ := exec.Command("ip", "-n", a.ns2, "-6", "neigh", "show", "dev", "vb").Output()
	t.Logf("linux: %d NA sent back, neighbour table %d lines, nstat: %s", len(pick(lr, ofType(wire.ICMPv6NeighborAdvert))),
		len(strings.Split(strings.TrimSpace(string(out)), "\n")), a.linuxNstat(false))
}

func (a *attackLab) fragmentFlood(t *testing.T) {
	const n = 3000
	build := func(v *v6target) [][]byte {
		src := v.addr("76")
		fs := make([][]byte, 0, n+2)
		for i := 0; i < n; i++ {
			fs = append(fs, fragFrame(v, src, wire.ProtoUDP, 0, true, uint32(0x10000+i), udp6Msg(src, v.ip, 40004, 9, make([]byte, 1224))[:1232]))
		}
		// Then a datagram that completes: an echo request in two fragments.
		m := csum6(v.kip, v.ip, wire.ProtoICMPv6, append([]byte{wire.ICMPv6EchoRequest, 0, 0, 0}, echoReq(0xf10d, 1, make([]byte, 2000))...))
		f1 := fragFrame(v, v.kip, wire.ProtoICMPv6, 0, true, 0xf10d, m[:1232])
		f2 := fragFrame(v, v.kip, wire.ProtoICMPv6, 1232, false, 0xf10d, m[1232:])
		for _, f := range [][]byte{f1, f2} {
			wire.PutEthernet(f, v.mac, v.kmac, wire.EtherTypeIPv6)
		}
		return append(fs, f1, f2)
	}
	c0 := a.counters()
	rs := a.probe(t, a.sock, build(a.sock)...)
	c1 := a.counters()
	mem := a.h.st.ReasmMemInUse()
	t.Logf("sockstack: %d first fragments, reassembly memory %d bytes (limit %d), evictions %d, memory drops %d",
		n, mem, 4<<20, c0.delta(c1, "IP.ReasmEvictions"), c0.delta(c1, "IP.ReasmMemoryDrops"))
	if mem > 4<<20 {
		t.Errorf("reassembly holds %d bytes, over its limit of %d", mem, 4<<20)
	}
	if c0.delta(c1, "IP.ReasmEvictions")+c0.delta(c1, "IP.ReasmMemoryDrops") == 0 {
		t.Error("the reassembly memory limit was not reached (or not counted)")
	}
	if len(pick(rs, func(x reply6) bool {
		return x.proto == wire.ProtoICMPv6 && x.typ == wire.ICMPv6EchoReply && x.id == 0xf10d
	})) != 1 {
		t.Errorf("no echo reply to a fragmented echo request after the flood: %v (reassembled %d)", rs, c0.delta(c1, "IP.ReasmOKs"))
	}
	exec.Command("ip", "netns", "exec", a.ns2, "nstat", "-n").Run()
	lr := a.probe(t, a.lnx, build(a.lnx)...)
	frag, _ := exec.Command("ip", "netns", "exec", a.ns2, "cat", "/proc/net/sockstat6").Output()
	t.Logf("linux: echo replies %d, %s, nstat: %s", len(pick(lr, func(x reply6) bool {
		return x.proto == wire.ProtoICMPv6 && x.typ == wire.ICMPv6EchoReply && x.id == 0xf10d
	})),
		strings.ReplaceAll(strings.TrimSpace(string(frag)), "\n", "; "), a.linuxNstat(false))
}

// raPrefixFlood: 100 valid router advertisements (link-local source, hop
// limit 255, router lifetime 0) of 8 on-link prefixes each.
func (a *attackLab) raPrefixFlood(t *testing.T) {
	const ras = 100
	inFlood := netip.MustParsePrefix("fd00:a000::/24")
	build := func(v *v6target) [][]byte {
		var fs [][]byte
		for i := 0; i < ras; i++ {
			b := []byte{wire.ICMPv6RouterAdvert, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			for j := 0; j < 8; j++ {
				b = append(b, 3, 4, 64, 0x80, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0)
				p := netip.AddrFrom16([16]byte{0xfd, 0x00, 0xa0, byte(i), byte(j)}).As16()
				b = append(b, p[:]...)
			}
			fs = append(fs, ndMsg(allNodesMAC, v.kmac, v.kll, allNodes, 255, 0, b))
		}
		return fs
	}
	count := func() int {
		n := 0
		for _, r := range a.h.st.Routes() {
			if inFlood.Contains(r.Prefix.Addr()) {
				n++
			}
		}
		return n
	}
	c0 := a.counters()
	a.probe(t, a.sock, build(a.sock)...)
	c1 := a.counters()
	t.Logf("sockstack: %d on-link prefixes offered, %d routes kept (limit 64), %d ignored", ras*8, count(), c0.delta(c1, "ND.PrefixesFull"))
	if n := count(); n > 64 {
		t.Errorf("%d on-link prefix routes from RAs, over the limit of 64", n)
	}
	if c0.delta(c1, "ND.PrefixesFull") == 0 {
		t.Error("the on-link prefix limit was not reached (or not counted)")
	}
	a.probe(t, a.lnx, build(a.lnx)...)
	out, _ := exec.Command("ip", "-n", a.ns2, "-6", "route", "show", "dev", "vb").Output()
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "fd00:a0") {
			n++
		}
	}
	t.Logf("linux: %d on-link prefix routes from the same RAs", n)
}

// raTinyTimers: a valid RA (router lifetime 0) with a reachable time and
// a retransmit timer of 1 ms; both stacks raise them to their floors.
func (a *attackLab) raTinyTimers(t *testing.T) {
	build := func(v *v6target) []byte {
		b := []byte{wire.ICMPv6RouterAdvert, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}
		return ndMsg(allNodesMAC, v.kmac, v.kll, allNodes, 255, 0, b)
	}
	c0 := a.counters()
	a.probe(t, a.sock, build(a.sock))
	if d := c0.delta(a.counters(), "ND.RATimersClamped"); d != 1 {
		t.Errorf("ND.RATimersClamped moved by %d, want 1", d)
	}
	a.probe(t, a.lnx, build(a.lnx))
	out, _ := exec.Command("ip", "-n", a.ns2, "ntable", "show", "dev", "vb", "name", "ndisc_cache").Output()
	var keep []string
	for _, f := range strings.Fields(string(out)) {
		keep = append(keep, f)
	}
	t.Logf("linux ndisc_cache on vb after the RA: %s", strings.Join(keep, " "))
}
