package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Shared by the tests that probe a running stack with segments crafted
// by scapy from the kernel side of the lab (cookie_scapy_test.go,
// timewait_scapy_test.go), and that put the same probe to a Linux socket
// in a second namespace for comparison.

// scapyPython is the interpreter Debian's python3-scapy is installed for
// (the python3 first on PATH may be another one, without scapy).
const scapyPython = "/usr/bin/python3"

func needScapy(t *testing.T) {
	t.Helper()
	needTools(t, scapyPython)
	if err := exec.Command(scapyPython, "-c", "import scapy.all").Run(); err != nil {
		missing(t, "python3-scapy")
	}
}

// pyScapyProbe sends, from an interface of the namespace it runs in,
// Ethernet frames to one host (argv[1] is a JSON probeSpec) and reports
// what that host answered: a line "TCP sport dport flags ttl tos" for
// each TCP segment from dst on a 4-tuple it was sent on (ttl / tos are
// the hop limit / traffic class for IPv6), and "MARKER" when the echo
// reply to the marker (an ICMP echo request sent after everything else)
// came back. The sniffer is open before the first frame leaves; it stops
// at the marker's reply, at the first TCP answer when asked to, or at
// the timeout.
const pyScapyProbe = `
import json, sys, threading, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, TCP, ICMP, Raw, sendp, AsyncSniffer, get_if_hwaddr
a = json.loads(sys.argv[1])
iface, dst = a["iface"], a["dst"]
v6 = ":" in dst
eth = Ether(src=get_if_hwaddr(iface), dst=a["dmac"])
def l3(src):
    return IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
syns = [eth/l3(s)/TCP(sport=p, dport=a["dport"], flags="S", seq=(p * 7919) & 0xffffffff, options=[("MSS", 1460)]) for s, p in a.get("syns") or []]
if syns:
    sendp(syns, iface=iface, verbose=0)
    print("SYNS", len(syns))
segs = a.get("segs") or []
if not segs and not a.get("marker"):
    sys.exit(0)
pairs = set((s["dport"], s["sport"]) for s in segs)
seen, got = [], {"marker": False}
def mine(p):
    return (IPv6 in p and p[IPv6].src == dst) if v6 else (IP in p and p[IP].src == dst)
def on(p):
    if TCP in p:
        t = p[TCP]
        if (t.sport, t.dport) in pairs:
            ttl, tos = (p[IPv6].hlim, p[IPv6].tc) if v6 else (p[IP].ttl, p[IP].tos)
            seen.append("TCP %d %d %s %d %d" % (t.sport, t.dport, t.flags, ttl, tos))
    elif not v6 and ICMP in p and p[ICMP].type == 0 and p[ICMP].id == a.get("marker"):
        got["marker"] = True
def stop(p):
    return got["marker"] or (a.get("first") and len(seen) > 0)
ready = threading.Event()
sn = AsyncSniffer(iface=iface, lfilter=mine, prn=on, stop_filter=stop, timeout=a["timeout"], started_callback=ready.set, store=False)
sn.start()
if not ready.wait(10):
    print("sniffer did not start")
    sys.exit(1)
fr = []
for s in segs:
    f = eth/l3(s["src"])/TCP(sport=s["sport"], dport=s["dport"], flags=s["flags"], seq=s["seq"], ack=s["ack"])
    if s.get("load"):
        f = f/Raw(s["load"].encode())
    fr.append(f)
if a.get("marker"):
    fr.append(eth/IP(src=a["src"], dst=dst)/ICMP(id=a["marker"], seq=1))
sendp(fr, iface=iface, verbose=0)
sn.join()
for l in seen:
    print(l)
if got["marker"]:
    print("MARKER")
`

// probeSeg is one TCP segment pyScapyProbe sends.
type probeSeg struct {
	Src   string `json:"src"`
	Sport int    `json:"sport"`
	Dport int    `json:"dport"`
	Flags string `json:"flags"`
	Seq   uint32 `json:"seq"`
	Ack   uint32 `json:"ack"`
	Load  string `json:"load,omitempty"`
}

// probeSpec is pyScapyProbe's argument.
type probeSpec struct {
	Iface   string     `json:"iface"`
	DMAC    string     `json:"dmac"`
	Dst     string     `json:"dst"`
	Src     string     `json:"src,omitempty"` // the marker's source
	Dport   int        `json:"dport,omitempty"`
	Syns    [][2]any   `json:"syns,omitempty"` // [source address, source port]: SYNs sent first, not sniffed for
	Segs    []probeSeg `json:"segs,omitempty"`
	Marker  int        `json:"marker,omitempty"` // ICMP echo id; 0: none
	First   bool       `json:"first,omitempty"`  // stop at the first TCP answer
	Timeout float64    `json:"timeout"`
}

// probeReply is one TCP answer pyScapyProbe saw.
type probeReply struct {
	Sport, Dport int
	Flags        string
	TTL, TOS     int
}

// probeResult is what pyScapyProbe printed.
type probeResult struct {
	Replies []probeReply
	Marker  bool
	Out     string
}

// scapyProbe runs pyScapyProbe in the lab's namespace, bounded.
func (l *lab) scapyProbe(t *testing.T, spec probeSpec) probeResult {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := l.run(t, time.Duration(spec.Timeout*float64(time.Second))+30*time.Second, nil, scapyPython, "-c", pyScapyProbe, string(js))
	r := probeResult{Out: out}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "MARKER":
			r.Marker = true
		case len(f) == 6 && f[0] == "TCP":
			var p probeReply
			p.Sport, _ = strconv.Atoi(f[1])
			p.Dport, _ = strconv.Atoi(f[2])
			p.Flags = f[3]
			p.TTL, _ = strconv.Atoi(f[4])
			p.TOS, _ = strconv.Atoi(f[5])
			r.Replies = append(r.Replies, p)
		}
	}
	return r
}

// linuxPeer is a second namespace joined to the lab's by a veth pair:
// vx0 in the lab (10.88.0.1/24, fd88::1/64), vx1 in the peer
// (10.88.0.2/24, fd88::2/64). Linux sockets in the peer answer scapy in
// the lab as sockstack does over the TAP.
type linuxPeer struct {
	*lab        // the peer's namespace (run, background, try work there)
	mac  string // vx1's MAC, for frames crafted in the lab
}

const (
	peerIface = "vx0" // the lab's end
	peerLab4  = "10.88.0.1"
	peerAddr4 = "10.88.0.2"
	peerLab6  = "fd88::1"
	peerAddr6 = "fd88::2"
)

func (l *lab) newLinuxPeer(t *testing.T) *linuxPeer {
	t.Helper()
	p := &linuxPeer{lab: &lab{t: t, ns: l.ns + "-lx"}}
	// Registered after newLab's cleanup, so it runs first: the veth goes
	// with either namespace.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", p.ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if pr, err := os.FindProcess(pid); err == nil {
						pr.Kill()
					}
				}
			}
		}
		exec.Command("ip", "netns", "del", p.ns).Run()
	})
	A, B := l.ns, p.ns
	steps := [][]string{
		{"ip", "netns", "add", B},
		{"ip", "-n", B, "link", "set", "lo", "up"},
		{"ip", "-n", A, "link", "add", peerIface, "type", "veth", "peer", "name", "vx1", "netns", B},
		{"ip", "-n", A, "addr", "add", peerLab4 + "/24", "dev", peerIface},
		{"ip", "-n", A, "-6", "addr", "add", peerLab6 + "/64", "dev", peerIface, "nodad"},
		{"ip", "-n", B, "addr", "add", peerAddr4 + "/24", "dev", "vx1"},
		{"ip", "-n", B, "-6", "addr", "add", peerAddr6 + "/64", "dev", "vx1", "nodad"},
		{"ip", "-n", A, "link", "set", peerIface, "up"},
		{"ip", "-n", B, "link", "set", "vx1", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	mac, err := exec.Command("ip", "netns", "exec", B, "cat", "/sys/class/net/vx1/address").Output()
	if err != nil {
		t.Fatalf("vx1's MAC: %v", err)
	}
	p.mac = strings.TrimSpace(string(mac))
	return p
}

// nstat reads the peer's kernel counters (absolute values, by name).
func (p *linuxPeer) nstat(t *testing.T, names ...string) map[string]int64 {
	t.Helper()
	out := p.run(t, 5*time.Second, nil, append([]string{"nstat", "-az"}, names...)...)
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			m[f[0]] = v
		}
	}
	return m
}

func (r probeResult) String() string {
	var b strings.Builder
	for _, p := range r.Replies {
		fmt.Fprintf(&b, "%d>%d %s ttl %d tos %#x; ", p.Sport, p.Dport, p.Flags, p.TTL, p.TOS)
	}
	if len(r.Replies) == 0 {
		b.WriteString("no TCP answer; ")
	}
	if r.Marker {
		b.WriteString("then the marker's echo reply")
	}
	return strings.TrimSuffix(b.String(), "; ")
}
