package interop

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// pyIPOptProbe plays one TCP exchange from the lab's namespace with
// segments carrying IPv4 options (argv[1] is a JSON ipoptSpec) and
// prints each segment the target sent back on that 4-tuple as
// "REPLY flags options-hex". Modes: "syn" sends a SYN with the options
// (a closed port's RST); "data" sends an out-of-window data segment
// with them (a TIME_WAIT ACK); "cookie" sends a SYN without options,
// the handshake's ACK with them, then data without them, and reports
// what followed the ACK (the child's segments).
const pyIPOptProbe = `
import json, sys, threading, logging, time
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPOption, TCP, Raw, sendp, AsyncSniffer, get_if_hwaddr
a = json.loads(sys.argv[1])
iface, dst, src, sport, dport = a["iface"], a["dst"], a["src"], a["sport"], a["dport"]
eth = Ether(src=get_if_hwaddr(iface), dst=a["dmac"])
o = bytes.fromhex(a["opts"])
o += b"\x00" * ((-len(o)) % 4)
def ip(opts):
    return IP(src=src, dst=dst, options=[IPOption(opts)]) if opts else IP(src=src, dst=dst)
seen = []
def mine(p):
    return IP in p and p[IP].src == dst and TCP in p and p[TCP].sport == dport and p[TCP].dport == sport
def on(p):
    seen.append(p)
ready = threading.Event()
sn = AsyncSniffer(iface=iface, lfilter=mine, prn=on, timeout=a["timeout"], started_callback=ready.set, store=False)
sn.start()
if not ready.wait(10):
    print("sniffer did not start")
    sys.exit(1)
def wait(n, t=5):
    end = time.time() + t
    while len(seen) < n and time.time() < end:
        time.sleep(0.02)
def show(ps):
    for p in ps:
        h = bytes(p[IP])
        print("REPLY %s %s" % (p[TCP].flags, h[20:p[IP].ihl*4].hex()), flush=True)
m = a["mode"]
if m == "syn":
    sendp(eth/ip(o)/TCP(sport=sport, dport=dport, flags="S", seq=1000), iface=iface, verbose=0)
    wait(1)
    show(seen[:1])
elif m == "data":
    sendp(eth/ip(o)/TCP(sport=sport, dport=dport, flags="PA", seq=0x80000000, ack=1)/Raw(b"stale"), iface=iface, verbose=0)
    wait(1)
    show(seen[:1])
elif m == "cookie":
    sendp(eth/ip(b"")/TCP(sport=sport, dport=dport, flags="S", seq=1000, options=[("MSS", 1460)]), iface=iface, verbose=0)
    wait(1)
    if not seen or seen[0][TCP].flags != "SA":
        print("no SYN-ACK")
        sys.exit(0)
    sa = seen[0][TCP]
    print("SYNACK %s" % bytes(seen[0][IP])[20:seen[0][IP].ihl*4].hex(), flush=True)
    n = len(seen)
    sendp(eth/ip(o)/TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=sa.seq+1), iface=iface, verbose=0)
    time.sleep(0.3)
    sendp(eth/ip(b"")/TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=sa.seq+1)/Raw(b"hello"), iface=iface, verbose=0)
    wait(n + 2)
    time.sleep(0.3)
    show(seen[n:])
    sendp(eth/ip(b"")/TCP(sport=sport, dport=dport, flags="R", seq=1006), iface=iface, verbose=0)
sn.stop()
`

// pyEchoListener listens (backlog 4) on argv[1]:argv[2] and echoes what
// each connection sends.
const pyEchoListener = `
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
def serve(c):
    c.settimeout(10)
    try:
        while True:
            b = c.recv(4096)
            if not b:
                break
            c.sendall(b)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// ipoptSpec is pyIPOptProbe's argument.
type ipoptSpec struct {
	Iface   string  `json:"iface"`
	DMAC    string  `json:"dmac"`
	Dst     string  `json:"dst"`
	Src     string  `json:"src"`
	Sport   int     `json:"sport"`
	Dport   int     `json:"dport"`
	Mode    string  `json:"mode"`
	Opts    string  `json:"opts"` // hex
	Timeout float64 `json:"timeout"`
}

// ipoptReply is one segment the target sent, its options normalised.
type ipoptReply struct{ flags, opts string }

func (l *lab) ipoptProbe(t *testing.T, spec ipoptSpec) (synack string, out []ipoptReply, raw string) {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	raw = l.run(t, time.Duration(spec.Timeout*float64(time.Second))+30*time.Second, nil, scapyPython, "-c", pyIPOptProbe, string(js))
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "REPLY":
			o := ""
			if len(f) == 3 {
				o = normIPOpts(f[2], spec.Src, spec.Dst)
			}
			out = append(out, ipoptReply{f[1], o})
		case len(f) >= 1 && f[0] == "SYNACK":
			if len(f) == 2 {
				synack = normIPOpts(f[1], spec.Src, spec.Dst)
			}
		}
	}
	return synack, out, raw
}

// normIPOpts describes hex options with the addresses named (S: the
// prober, T: the target) and timestamps shown as "t" when set, so that
// sockstack's and Linux's answers compare: same options, same slots.
func normIPOpts(h, src, dst string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return "bad " + h
	}
	name := func(a []byte) string {
		x := netip.AddrFrom4([4]byte(a)).String()
		switch {
		case x == src:
			return "S"
		case x == dst:
			return "T"
		case x == "0.0.0.0":
			return "-"
		}
		return x
	}
	var parts []string
	for i := 0; i < len(b); {
		switch typ := b[i]; {
		case typ == 0:
			parts = append(parts, "END")
			i = len(b)
		case typ == 1:
			parts = append(parts, "NOP")
			i++
		case i+1 >= len(b) || int(b[i+1]) < 2 || i+int(b[i+1]) > len(b):
			return "malformed " + h
		default:
			d := b[i : i+int(b[i+1])]
			s := fmt.Sprintf("opt%d(len %d", typ, len(d))
			switch {
			case typ == 7 && len(d) >= 3:
				s = fmt.Sprintf("RR(len %d ptr %d", len(d), d[2])
				for j := 3; j+4 <= len(d); j += 4 {
					s += " " + name(d[j:j+4])
				}
			case typ == 68 && len(d) >= 4:
				s = fmt.Sprintf("TS(len %d ptr %d oflw %d flag %d", len(d), d[2], d[3]>>4, d[3]&15)
				for j := 4; j+4 <= len(d); j += 4 {
					if d[j]|d[j+1]|d[j+2]|d[j+3] != 0 {
						s += " t"
					} else {
						s += " -"
					}
				}
			}
			parts = append(parts, s+")")
			i += len(d)
		}
	}
	return strings.Join(parts, " ")
}

const (
	ipoptRR3 = "070f0400000000000000000000000000" // Record Route, three empty slots
	ipoptTS2 = "440c050000000000000000000000"     // Timestamp only, two slots
)

// TestInteropIPOptReply: docs/DECISIONS.md, "IP_OPTIONS on TCP sockets",
// from the wire. scapy in the lab sends segments with Record Route and
// Timestamp options to sockstack on the TAP and the same to Linux
// sockets in a second namespace, and the answers are compared (options
// normalised: addresses named, timestamps set or not):
//   - the RST for a SYN to a closed port;
//   - the ACK a TIME_WAIT end sends for an out-of-window segment;
//   - a SYN-cookie child (sockstack: its SYN queue flooded; Linux:
//     tcp_syncookies=2) whose completing ACK carried the options: the
//     segments it sends after (the ACK of data, the data echoed).
func TestInteropIPOptReply(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "ping", "ss", "sysctl", "nft")
	h := l.startStack("")
	mac := h.nic.HardwareAddr().String()
	p := l.newLinuxPeer(t)
	// The lab's kernel must not reset what scapy's crafted connections
	// draw (its address is their source): it drops TCP to their ports.
	for _, c := range [][]string{
		{"nft", "add", "table", "inet", "ipoptlab"},
		{"nft", "add", "chain", "inet", "ipoptlab", "in", "{ type filter hook input priority 0 ; }"},
		{"nft", "add", "rule", "inet", "ipoptlab", "in", "tcp", "dport", "45000-45999", "drop"},
	} {
		l.run(t, 5*time.Second, nil, c...)
	}
	l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", stackIP.String())
	l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", peerAddr4)
	sock := func(dport, sport int, mode, opts string) ipoptSpec {
		return ipoptSpec{Iface: tapName, DMAC: mac, Dst: stackIP.String(), Src: kernelIP.String(), Sport: sport, Dport: dport, Mode: mode, Opts: opts, Timeout: 10}
	}
	lx := func(dport, sport int, mode, opts string) ipoptSpec {
		return ipoptSpec{Iface: peerIface, DMAC: p.mac, Dst: peerAddr4, Src: peerLab4, Sport: sport, Dport: dport, Mode: mode, Opts: opts, Timeout: 10}
	}
	compare := func(t *testing.T, what string, s, x []ipoptReply, sraw, xraw string) {
		t.Helper()
		t.Logf("%s: sockstack %v; Linux %v", what, s, x)
		if len(s) == 0 || len(x) == 0 {
			t.Fatalf("%s: no answer (sockstack %v, Linux %v)\nsockstack:\n%s\nLinux:\n%s", what, s, x, sraw, xraw)
		}
		if fmt.Sprint(s) != fmt.Sprint(x) {
			t.Errorf("%s: sockstack answered %v, Linux %v", what, s, x)
		}
	}

	t.Run("rst_closed_port", func(t *testing.T) {
		for i, o := range []string{ipoptRR3, ipoptTS2, "0107070400000000"} {
			_, s, sraw := l.ipoptProbe(t, sock(9191, 45100+i, "syn", o))
			_, x, xraw := l.ipoptProbe(t, lx(9191, 45100+i, "syn", o))
			compare(t, "RST to a SYN with "+o, s, x, sraw, xraw)
			if !strings.Contains(s[0].opts, "(") {
				t.Errorf("sockstack's RST carries no option: %v", s)
			}
		}
	})

	t.Run("timewait_ack", func(t *testing.T) {
		l.background(t, scapyPython, "-c", pySinkServer, strconv.Itoa(twPort))
		l.waitListen(t, "tcp", twPort)
		// sockstack: its client closes first.
		c, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetTimeout(10 * time.Second)
		remote := netip.AddrPortFrom(kernelIP, twPort)
		if err := c.Connect(socket.InetAddr(remote)); err != nil {
			t.Fatal(err)
		}
		sa, err := c.GetSockName()
		if err != nil {
			t.Fatal(err)
		}
		local := sa.(*socket.SockaddrInet).AddrPort
		c.SendAll([]byte("bye"), 0)
		c.Close()
		l.waitUntil(t, "sockstack's end is in TIME_WAIT", func() bool { return inTimeWait(h, local, remote) })
		// Linux: the same from the second namespace.
		out := p.run(t, 15*time.Second, nil, scapyPython, "-c", pyHopsClient, peerLab4, strconv.Itoa(twPort))
		var lport int
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "PORT" {
				lport, _ = strconv.Atoi(f[1])
			}
		}
		if lport == 0 {
			t.Fatalf("Linux client printed no port:\n%s", out)
		}
		p.waitUntil(t, "the Linux client's socket is in TIME_WAIT", func() bool {
			o, _ := p.try(5*time.Second, nil, "ss", "-Htan", "state", "time-wait", "sport", "= :"+strconv.Itoa(lport))
			return strings.TrimSpace(o) != ""
		})
		// The lab's kernel would reset the TIME_WAIT ACKs scapy's
		// probes draw (its address and port are their source), which
		// ends TIME_WAIT on both: from now on it drops them.
		l.run(t, 5*time.Second, nil, "nft", "add", "rule", "inet", "ipoptlab", "in", "tcp", "sport", "{ "+strconv.Itoa(int(local.Port()))+", "+strconv.Itoa(lport)+" }", "drop")
		for _, o := range []string{ipoptRR3, ipoptTS2} {
			_, s, sraw := l.ipoptProbe(t, ipoptSpec{Iface: tapName, DMAC: mac, Dst: stackIP.String(), Src: kernelIP.String(),
				Sport: twPort, Dport: int(local.Port()), Mode: "data", Opts: o, Timeout: 10})
			_, x, xraw := l.ipoptProbe(t, ipoptSpec{Iface: peerIface, DMAC: p.mac, Dst: peerAddr4, Src: peerLab4,
				Sport: twPort, Dport: lport, Mode: "data", Opts: o, Timeout: 10})
			compare(t, "TIME_WAIT ACK to a segment with "+o, s, x, sraw, xraw)
			// The rate limit of out-of-window ACKs (500 ms) on both.
			time.Sleep(600 * time.Millisecond)
		}
	})

	t.Run("syncookie_child", func(t *testing.T) {
		const port = 8383
		cookieListener(t, h, port)
		tcpst := h.st.TCP.Stats
		s0 := tcpst()
		var syns [][2]any
		for i := 0; i < 40; i++ {
			syns = append(syns, [2]any{fmt.Sprintf("10.77.0.%d", 100+i%20), 20000 + i})
		}
		l.scapyProbe(t, probeSpec{Iface: tapName, DMAC: mac, Dst: stackIP.String(), Dport: port, Syns: syns, Timeout: 1})
		l.waitUntil(t, "sockstack answers SYNs with cookies", func() bool { return tcpst().SynCookiesSent > s0.SynCookiesSent })
		p.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=2")
		p.background(t, scapyPython, "-c", pyEchoListener, peerAddr4, strconv.Itoa(port))
		p.waitListen(t, "tcp", port)
		for i, o := range []string{ipoptRR3, ipoptTS2} {
			r0 := tcpst().SynCookiesRecv
			ssa, s, sraw := l.ipoptProbe(t, sock(port, 45200+i, "cookie", o))
			if tcpst().SynCookiesRecv == r0 {
				t.Fatalf("sockstack's handshake did not go by cookie\n%s", sraw)
			}
			xsa, x, xraw := l.ipoptProbe(t, lx(port, 45200+i, "cookie", o))
			if ssa != xsa {
				t.Errorf("SYN-ACKs: sockstack %q, Linux %q", ssa, xsa)
			}
			// Linux acknowledges the data at once (quick ACKs of a
			// new connection), sockstack with the echo: the options
			// of every segment are compared, not the ACK pattern.
			if len(s) == 0 || len(x) == 0 {
				t.Fatalf("no segment from a child (sockstack %v, Linux %v)\nsockstack:\n%s\nLinux:\n%s", s, x, sraw, xraw)
			}
			t.Logf("cookie child after an ACK with %s: sockstack %v; Linux %v", o, s, x)
			for _, r := range append(s, x...) {
				if r.opts != x[0].opts {
					t.Errorf("cookie child's segments: sockstack %v, Linux %v: options differ", s, x)
					break
				}
			}
			if !strings.Contains(x[0].opts, "(") {
				t.Errorf("Linux's cookie child carries no option: the probe did not test it")
			}
		}
	})
}
