package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// The attacker's pass on held SYNs (tcp/holdsyn.go, docs/transparent.md)
// from the wire: scapy in the lab's namespace crafts the segments a
// client or a spoofer could send to a held transparent listener of a
// stack on the TAP, and reads what comes back; the test process plays
// the application (it takes, completes and rejects the requests) and
// checks the counters. Where Linux has the same situation, the same
// packets go to a Linux listener in a second namespace.

// pyHeldScapy is a scapy session driven line by line on stdin (JSON):
//
//	{"op":"send","pkts":[...]}   sends the segments (pktSpec)
//	{"op":"flood",...}           n SYNs from spoofed on-link sources
//	{"op":"sync","src","dst","id"} sends an echo request and waits for its
//	                             reply (the host answers in order, so
//	                             every answer to what was sent before it
//	                             has been seen), then prints one JSON line:
//	                             the packets seen since the last sync.
//
// It answers ARP and neighbour solicitations for the client addresses
// (nothing else owns them, so no kernel resets the stack's answers).
const pyHeldScapy = `
import json, sys, threading, logging, time, random
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import *
a = json.loads(sys.argv[1])
iface, dmac = a["iface"], a["dmac"]
me = get_if_hwaddr(iface)
fake4, fake6 = a["fake4"], in6_ptop(a["fake6"])
lock = threading.Lock()
seen, marks = [], set()
def l3(src, dst, tc=0):
    return IPv6(src=src, dst=dst, tc=tc) if ":" in dst else IP(src=src, dst=dst, tos=tc)
def tcpd(t):
    mss = [o[1] for o in t.options if o[0] == "MSS"]
    return {"sport": t.sport, "dport": t.dport, "flags": str(t.flags), "seq": t.seq, "ack": t.ack,
            "win": t.window, "len": len(bytes(t.payload)), "opts": [o[0] for o in t.options], "mss": mss[0] if mss else 0}
def on(p):
    if Ether not in p or p[Ether].src == me:
        return
    if ARP in p:
        if p[ARP].op == 1 and p[ARP].pdst == fake4:
            sendp(Ether(src=me, dst=p[ARP].hwsrc)/ARP(op=2, hwsrc=me, psrc=fake4, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc), iface=iface, verbose=0)
        return
    if ICMPv6ND_NS in p:
        if in6_ptop(p[ICMPv6ND_NS].tgt) == fake6:
            sendp(Ether(src=me, dst=p[Ether].src)/IPv6(src=fake6, dst=p[IPv6].src)/ICMPv6ND_NA(tgt=fake6, R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr=me), iface=iface, verbose=0)
        return
    if IPv6 in p:
        src, dst = p[IPv6].src, p[IPv6].dst
    elif IP in p:
        src, dst = p[IP].src, p[IP].dst
    else:
        return
    d = {"src": src, "dst": dst}
    if ICMP in p and p[ICMP].type == 0:
        with lock: marks.add(p[ICMP].id)
        return
    if ICMPv6EchoReply in p:
        with lock: marks.add(p[ICMPv6EchoReply].id)
        return
    if TCPerror in p:
        d["kind"] = "icmp"
        if ICMP in p:
            d["type"], d["code"] = p[ICMP].type, p[ICMP].code
        elif ICMPv6DestUnreach in p:
            d["type"], d["code"] = p[ICMPv6DestUnreach].type, p[ICMPv6DestUnreach].code
        d["quote"] = tcpd(p[TCPerror])
        d["qdst"] = p[IPerror6].dst if IPerror6 in p else p[IPerror].dst
    elif TCP in p:
        d["kind"] = "tcp"
        d.update(tcpd(p[TCP]))
    else:
        return
    with lock: seen.append(d)
def opts(o):
    r = []
    for k, v in o or []:
        if k == "SAckOK": v = b""
        if k == "Timestamp": v = tuple(v)
        r.append((k, v))
    return r
def build(s):
    if s.get("icmp"):
        # An ICMP error quoting a segment from qsrc to qdst.
        q = TCP(sport=s["sport"], dport=s["dport"], flags=s["flags"], seq=s["seq"])
        e = Ether(src=me, dst=dmac)
        if ":" in s["dst"]:
            err = ICMPv6PacketTooBig(mtu=s["mtu"]) if s["icmp"] == "ptb" else ICMPv6DestUnreach(code=s["code"])
            return e/IPv6(src=s["src"], dst=s["dst"])/err/IPv6(src=s["qsrc"], dst=s["qdst"])/q
        err = ICMP(type=3, code=s["code"], nexthopmtu=s.get("mtu", 0))
        return e/IP(src=s["src"], dst=s["dst"])/err/IP(src=s["qsrc"], dst=s["qdst"], flags="DF")/q
    t = TCP(sport=s["sport"], dport=s["dport"], flags=s["flags"], seq=s["seq"], ack=s.get("ack", 0), window=s.get("win", 64240), options=opts(s.get("opts")))
    f = Ether(src=me, dst=dmac)/l3(s["src"], s["dst"], s.get("tc", 0))
    raw = bytes.fromhex(s.get("rawopts", ""))
    if raw:
        t.dataofs = 5 + len(raw)//4
        t = t/Raw(raw + s.get("load", "").encode())
    elif s.get("load"):
        t = t/Raw(s["load"].encode())
    return f/t
ready = threading.Event()
sn = AsyncSniffer(iface=iface, prn=on, store=False, started_callback=ready.set)
sn.start()
if not ready.wait(10):
    print("sniffer did not start", flush=True)
    sys.exit(1)
print("READY", flush=True)
for line in sys.stdin:
    c = json.loads(line)
    if c["op"] == "send":
        sendp([build(s) for s in c["pkts"]], iface=iface, verbose=0)
        print("{}", flush=True)
    elif c["op"] == "flood":
        fr = [Ether(src=me, dst=dmac)/IP(src="%s%d" % (c["prefix"], 100 + i % 100), dst=c["dst"])/TCP(sport=10000 + i, dport=c["dport"], flags="S", seq=random.getrandbits(32), options=[("MSS", 1460)]) for i in range(c["n"])]
        sendp(fr, iface=iface, verbose=0)
        print("{}", flush=True)
    elif c["op"] == "sync":
        ping = Ether(src=me, dst=dmac)/(IPv6(src=c["src"], dst=c["dst"])/ICMPv6EchoRequest(id=c["id"]) if ":" in c["dst"] else IP(src=c["src"], dst=c["dst"])/ICMP(id=c["id"]))
        ok, end = False, time.time() + 10
        while time.time() < end and not ok:
            sendp(ping, iface=iface, verbose=0)
            for _ in range(20):
                with lock: ok = c["id"] in marks
                if ok: break
                time.sleep(0.05)
        with lock:
            out, seen[:] = list(seen), []
        print(json.dumps({"marker": ok, "pkts": out}), flush=True)
`

// pktSpec is one segment pyHeldScapy sends.
type pktSpec struct {
	Src     string  `json:"src"`
	Dst     string  `json:"dst"`
	Sport   int     `json:"sport"`
	Dport   int     `json:"dport"`
	Flags   string  `json:"flags"`
	Seq     uint32  `json:"seq"`
	Ack     uint32  `json:"ack,omitempty"`
	Win     int     `json:"win,omitempty"`
	Opts    [][]any `json:"opts,omitempty"`
	RawOpts string  `json:"rawopts,omitempty"` // hex, a multiple of 4 bytes
	Load    string  `json:"load,omitempty"`
	// An ICMP error ("unreach" or "ptb") quoting a TCP header from QSrc
	// to QDst (Sport, Dport, Flags, Seq) instead of the segment.
	ICMP string `json:"icmp,omitempty"`
	Code int    `json:"code,omitempty"`
	MTU  int    `json:"mtu,omitempty"`
	QSrc string `json:"qsrc,omitempty"`
	QDst string `json:"qdst,omitempty"`
}

// seenPkt is a packet pyHeldScapy saw from the host.
type seenPkt struct {
	Kind  string   `json:"kind"` // tcp or icmp
	Src   string   `json:"src"`
	Dst   string   `json:"dst"`
	Sport int      `json:"sport"`
	Dport int      `json:"dport"`
	Flags string   `json:"flags"`
	Seq   uint32   `json:"seq"`
	Ack   uint32   `json:"ack"`
	Len   int      `json:"len"`
	Opts  []string `json:"opts"`
	MSS   int      `json:"mss"`
	Type  int      `json:"type"`
	Code  int      `json:"code"`
	Quote *seenPkt `json:"quote"`
	QDst  string   `json:"qdst"`
}

func (p seenPkt) String() string {
	if p.Kind == "icmp" {
		return fmt.Sprintf("ICMP %d/%d %s>%s quoting %d>%d seq %d", p.Type, p.Code, p.Src, p.Dst, p.Quote.Sport, p.Quote.Dport, p.Quote.Seq)
	}
	return fmt.Sprintf("%s:%d>%s:%d [%s] seq %d ack %d len %d", p.Src, p.Sport, p.Dst, p.Dport, p.Flags, p.Seq, p.Ack, p.Len)
}

// heldScapy is a running pyHeldScapy on one interface of the lab.
type heldScapy struct {
	t       *testing.T
	in      io.Writer
	out     *bufio.Scanner
	c4, c6  string // the client addresses it answers ARP / ND for
	s4, s6  string // the host's addresses, for the sync echo
	markers int
}

func (l *lab) startHeldScapy(t *testing.T, iface, dmac, c4, c6, s4, s6 string) *heldScapy {
	t.Helper()
	js, _ := json.Marshal(map[string]string{"iface": iface, "dmac": dmac, "fake4": c4, "fake6": c6})
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.cmd(ctx, scapyPython, "-c", pyHeldScapy, string(js))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cancel()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("scapy on %s: %s", iface, stderr.String())
		}
	})
	s := &heldScapy{t: t, in: in, out: bufio.NewScanner(outR), c4: c4, c6: c6, s4: s4, s6: s6}
	s.out.Buffer(make([]byte, 1<<20), 1<<24)
	if line := s.line(); line != "READY" {
		t.Fatalf("scapy on %s: %q\n%s", iface, line, stderr.String())
	}
	return s
}

// line reads scapy's next line, bounded (a stuck scapy ends the test).
func (s *heldScapy) line() string {
	s.t.Helper()
	ch := make(chan string, 1)
	go func() {
		if s.out.Scan() {
			ch <- s.out.Text()
		}
		close(ch)
	}()
	select {
	case l, ok := <-ch:
		if !ok {
			s.t.Fatalf("scapy exited: %v", s.out.Err())
		}
		return l
	case <-time.After(60 * time.Second):
		s.t.Fatal("scapy did not answer in 60 s")
	}
	return ""
}

func (s *heldScapy) do(cmd map[string]any) string {
	s.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := s.in.Write(append(b, '\n')); err != nil {
		s.t.Fatal(err)
	}
	return s.line()
}

func (s *heldScapy) send(pkts ...pktSpec) {
	s.t.Helper()
	s.do(map[string]any{"op": "send", "pkts": pkts})
}

// sync waits until the host has answered everything sent so far (v6:
// through an ICMPv6 echo) and returns what it sent since the last sync
// to the client ports given (every port when none is: the other cases'
// half-open connections retransmit meanwhile).
func (s *heldScapy) sync(v6 bool, ports ...int) []seenPkt {
	s.t.Helper()
	s.markers++
	src, dst := s.c4, s.s4
	if v6 {
		src, dst = s.c6, s.s6
	}
	var r struct {
		Marker bool
		Pkts   []seenPkt
	}
	if err := json.Unmarshal([]byte(s.do(map[string]any{"op": "sync", "src": src, "dst": dst, "id": 0x4800 + s.markers})), &r); err != nil {
		s.t.Fatal(err)
	}
	if !r.Marker {
		s.t.Fatalf("the echo reply from %s never came (the host is stuck?)", dst)
	}
	if len(ports) == 0 {
		return r.Pkts
	}
	var out []seenPkt
	for _, p := range r.Pkts {
		cp := p.Dport
		if p.Quote != nil {
			cp = p.Quote.Sport
		}
		for _, want := range ports {
			if cp == want {
				out = append(out, p)
			}
		}
	}
	return out
}

// synAck reports a SYN-ACK (ECE allowed).
func synAck(p seenPkt) bool {
	return p.Kind == "tcp" && strings.Contains(p.Flags, "S") && strings.Contains(p.Flags, "A") && !strings.Contains(p.Flags, "R")
}

// abort closes c with a reset (SO_LINGER 0).
func abort(c *tcp.Endpoint) {
	c.SetLinger(true, 0)
	c.Close()
}

// Addresses: the clients are made up (scapy answers ARP / ND for them);
// the original destinations are diverted to the held listeners.
const (
	heldClient4 = "10.77.0.50"
	heldClient6 = "fd00:77::50"
	heldDst4    = "198.51.100.7"
	heldDst6    = "2001:db8:77::7"
	heldPort    = 9000 // the transparent listeners
	heldBacklog = 16
	lxClient4   = "10.88.0.50"
	lxClient6   = "fd88::50"
)

// heldApp is the application side: the two held listeners.
type heldApp struct {
	t      *testing.T
	st     *stack.Stack
	l4, l6 *tcp.Endpoint
}

func newHeldApp(t *testing.T, st *stack.Stack) *heldApp {
	a := &heldApp{t: t, st: st}
	for _, pf := range []string{"198.51.100.0/24", "2001:db8:77::/48"} {
		if err := st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP, Dst: netip.MustParsePrefix(pf), ToPort: heldPort}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v6 := range []bool{false, true} {
		l := st.TCP.NewEndpoint()
		any := netip.IPv4Unspecified()
		if v6 {
			l.SetInet6()
			l.SetV6Only(true)
			any = netip.IPv6Unspecified()
		}
		l.SetTransparent(true)
		if err := l.SetHoldSYN(true, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Bind(netip.AddrPortFrom(any, heldPort)); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(heldBacklog); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		if v6 {
			a.l6 = l
		} else {
			a.l4 = l
		}
	}
	return a
}

// reqs takes every queued request of the family's listener.
func (a *heldApp) reqs(v6 bool) []*tcp.SynRequest {
	l := a.l4
	if v6 {
		l = a.l6
	}
	var rs []*tcp.SynRequest
	for {
		r, err := l.NextSynRequest()
		if err != nil {
			if err != syscall.EAGAIN {
				a.t.Fatalf("NextSynRequest: %v", err)
			}
			return rs
		}
		rs = append(rs, r)
	}
}

// one takes the single queued request, from client port sport.
func (a *heldApp) one(v6 bool, sport int) *tcp.SynRequest {
	a.t.Helper()
	rs := a.reqs(v6)
	if len(rs) != 1 || rs[0].Remote().Port() != uint16(sport) {
		a.t.Fatalf("requests %v, want one from port %d", reqList(rs), sport)
	}
	return rs[0]
}

func reqList(rs []*tcp.SynRequest) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Remote().String()+">"+r.Local().String())
	}
	return s
}

func (a *heldApp) hs() tcp.HoldSYNStats { return a.st.TCP.HoldSYNStats() }

// wantNone fails on any answer.
func wantNoAnswer(t *testing.T, what string, got []seenPkt) {
	t.Helper()
	if len(got) != 0 {
		t.Errorf("%s: answered %v, want nothing", what, got)
	}
}

// wantOne returns the single answer.
func wantOneAnswer(t *testing.T, what string, got []seenPkt) seenPkt {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s: answered %v, want one packet", what, got)
	}
	return got[0]
}

var synOpts = [][]any{{"MSS", 1460}, {"SAckOK", ""}, {"Timestamp", []uint32{12345, 0}}, {"NOP", nil}, {"WScale", 7}}

// fam is one address family's addresses for a case.
type fam struct {
	v6             bool
	client, dst    string
	lxClient, lxTo string // the same, towards the Linux peer
}

var fams = []fam{
	{false, heldClient4, heldDst4, lxClient4, peerAddr4},
	{true, heldClient6, heldDst6, lxClient6, peerAddr6},
}

func (f fam) name() string {
	if f.v6 {
		return "v6"
	}
	return "v4"
}

// TestInteropHeldSYN: see the comment at the top of the file; each
// subtest says its case.
func TestInteropHeldSYN(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "ss", "nstat", "sysctl")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	app := newHeldApp(t, h.st)
	sc := l.startHeldScapy(t, tapName, h.nic.HardwareAddr().String(), heldClient4, heldClient6, stackIP.String(), stack6.String())
	sc.sync(false)
	sc.sync(true)
	tcpst := func() tcp.StatsSnapshot { return h.st.TCP.Stats() }

	// The Linux peer listens on port 443 with a backlog of 64 (never
	// accepting), tcp_syncookies left at its default (1).
	p := l.newLinuxPeer(t)
	lx := l.startHeldScapy(t, peerIface, p.mac, lxClient4, lxClient6, peerAddr4, peerAddr6)
	p.background(t, scapyPython, "-c", pyIdleListener6, "443", "64")
	p.waitListen(t, "tcp", 443)
	lx.sync(false)
	lx.sync(true)

	port := 30000
	next := func() int { port++; return port }
	syn := func(src, dst string, sport int, seq uint32) pktSpec {
		return pktSpec{Src: src, Dst: dst, Sport: sport, Dport: 443, Flags: "S", Seq: seq, Opts: synOpts}
	}

	// A held SYN draws nothing, nor does its retransmission (absorbed,
	// with its newer timestamp); Complete sends one SYN-ACK from the
	// original destination acknowledging it, whose timestamp echo is
	// the retransmission's; the client's ACK establishes.
	t.Run("hold_retransmit_complete", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			h0 := app.hs()
			s := syn(f.client, f.dst, sp, 1000)
			sc.send(s)
			wantNoAnswer(t, f.name()+" held SYN", sc.sync(f.v6, sp))
			s.Opts = [][]any{{"MSS", 1460}, {"SAckOK", ""}, {"Timestamp", []uint32{13345, 0}}, {"NOP", nil}, {"WScale", 7}}
			sc.send(s)
			wantNoAnswer(t, f.name()+" retransmitted SYN", sc.sync(f.v6, sp))
			if d := app.hs(); d.Held-h0.Held != 1 || d.Retrans-h0.Retrans != 1 {
				t.Fatalf("%s: Held +%d Retrans +%d, want +1 +1", f.name(), d.Held-h0.Held, d.Retrans-h0.Retrans)
			}
			c, err := app.one(f.v6, sp).Complete()
			if err != nil {
				t.Fatal(err)
			}
			sa := wantOneAnswer(t, f.name()+" Complete", sc.sync(f.v6, sp))
			if sa.Kind != "tcp" || sa.Flags != "SA" || sa.Ack != 1001 || sa.Src != f.dst || sa.Sport != 443 || sa.Dport != sp {
				t.Fatalf("%s: Complete sent %v, want a SYN-ACK from %s:443 acknowledging 1001", f.name(), sa, f.dst)
			}
			sc.send(pktSpec{Src: f.client, Dst: f.dst, Sport: sp, Dport: 443, Flags: "A", Seq: 1001, Ack: sa.Seq + 1})
			wantNoAnswer(t, f.name()+" handshake ACK", sc.sync(f.v6, sp))
			if c.State() != tcp.StateEstablished {
				t.Fatalf("%s: after the ACK the connection is %v", f.name(), c.State())
			}
			abort(c)
			sc.sync(f.v6, sp) // its reset
		}
	})

	// A SYN with data: the data is neither kept nor acknowledged (the
	// SYN-ACK acknowledges the SYN alone), as a Linux listener without
	// Fast Open does; a reset rejection acknowledges the data, as a
	// Linux (and sockstack) closed port's reset does.
	t.Run("syn_with_data", func(t *testing.T) {
		for _, f := range fams {
			d0 := app.hs().SynData
			sp := next()
			s := syn(f.client, f.dst, sp, 5000)
			s.Load = "data on the SYN"
			sc.send(s)
			wantNoAnswer(t, f.name(), sc.sync(f.v6, sp))
			if _, err := app.one(f.v6, sp).Complete(); err != nil {
				t.Fatal(err)
			}
			sa := wantOneAnswer(t, f.name()+" Complete", sc.sync(f.v6, sp))
			lsp := next()
			s.Src, s.Dst, s.Sport = f.lxClient, f.lxTo, lsp
			lx.send(s)
			lsa := wantOneAnswer(t, f.name()+" Linux", lx.sync(f.v6, lsp))
			if !synAck(sa) || sa.Ack != 5001 || !synAck(lsa) || lsa.Ack != 5001 {
				t.Errorf("%s: SYN-ACK %v; Linux %v; want both acknowledging 5001", f.name(), sa, lsa)
			}
			// Reset.
			sp = next()
			s = syn(f.client, f.dst, sp, 7000)
			s.Load = "0123456789"
			sc.send(s)
			sc.sync(f.v6, sp)
			if err := app.one(f.v6, sp).Reject(tcp.RejectReset); err != nil {
				t.Fatal(err)
			}
			rst := wantOneAnswer(t, f.name()+" reset", sc.sync(f.v6, sp))
			lsp = next()
			s.Src, s.Dst, s.Sport, s.Dport = f.lxClient, f.lxTo, lsp, 444 // closed
			lx.send(s)
			lrst := wantOneAnswer(t, f.name()+" Linux closed port", lx.sync(f.v6, lsp))
			if rst.Flags != "RA" || rst.Ack != 7011 || lrst.Flags != "RA" || lrst.Ack != 7011 {
				t.Errorf("%s: reset %v; Linux closed port %v; want both RST|ACK acknowledging 7011", f.name(), rst, lrst)
			}
			if d := app.hs().SynData - d0; d != 2 {
				t.Errorf("%s: SynData +%d, want +2", f.name(), d)
			}
		}
	})

	// A RST|ACK for a held request draws nothing and leaves it held
	// (it acknowledges nothing that was sent); the client's in-window
	// RST drops it, draws nothing, and the client's next SYN is a new
	// request, as Linux drops its SYN_RECV request on an in-window RST
	// (its handshake ACK then finds no request and is reset).
	t.Run("rst_while_pending", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			sc.send(syn(f.client, f.dst, sp, 9000))
			sc.sync(f.v6, sp)
			in0, rs0 := tcpst().InSegs, app.hs().ClientReset
			sc.send(pktSpec{Src: f.client, Dst: f.dst, Sport: sp, Dport: 443, Flags: "RA", Seq: 9001, Ack: 12345})
			wantNoAnswer(t, f.name()+" RST|ACK", sc.sync(f.v6, sp))
			sc.send(pktSpec{Src: f.client, Dst: f.dst, Sport: sp, Dport: 443, Flags: "R", Seq: 9001})
			wantNoAnswer(t, f.name()+" RST", sc.sync(f.v6, sp))
			if d := tcpst().InSegs - in0; d < 2 {
				t.Fatalf("%s: the RSTs did not reach TCP (InSegs +%d)", f.name(), d)
			}
			if d := app.hs().ClientReset - rs0; d != 1 {
				t.Fatalf("%s: ClientReset +%d, want +1", f.name(), d)
			}
			if rs := app.reqs(f.v6); len(rs) != 0 {
				t.Fatalf("%s: requests %v after the client's RST, want none", f.name(), reqList(rs))
			}
			sc.send(syn(f.client, f.dst, sp, 9500))
			sc.sync(f.v6, sp)
			r := app.one(f.v6, sp) // the next attempt
			if _, err := r.Complete(); err != nil {
				t.Fatal(err)
			}
			if sa := wantOneAnswer(t, f.name()+" Complete", sc.sync(f.v6, sp)); sa.Flags != "SA" || sa.Ack != 9501 {
				t.Fatalf("%s: %v", f.name(), sa)
			}
			// Linux.
			lsp := next()
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "S", Seq: 9000, Opts: synOpts})
			lsa := wantOneAnswer(t, f.name()+" Linux SYN", lx.sync(f.v6, lsp))
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "R", Seq: 9001})
			wantNoAnswer(t, f.name()+" Linux RST", lx.sync(f.v6, lsp))
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "A", Seq: 9001, Ack: lsa.Seq + 1})
			if got := wantOneAnswer(t, f.name()+" Linux ACK after RST", lx.sync(f.v6, lsp)); got.Flags != "R" {
				t.Errorf("%s: Linux answers the handshake ACK after a RST in SYN_RECV with %v, want a RST (the request dropped)", f.name(), got)
			}
		}
	})

	// An ACK on a held request's 4-tuple (nothing acknowledgeable was
	// sent) is reset as any stray ACK to a listener, as Linux does; the
	// request is untouched.
	t.Run("ack_never_synacked", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			sc.send(syn(f.client, f.dst, sp, 11000))
			sc.sync(f.v6, sp)
			sc.send(pktSpec{Src: f.client, Dst: f.dst, Sport: sp, Dport: 443, Flags: "A", Seq: 11001, Ack: 0xabcdef})
			rst := wantOneAnswer(t, f.name()+" ACK", sc.sync(f.v6, sp))
			lsp := next()
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "A", Seq: 11001, Ack: 0xabcdef})
			lrst := wantOneAnswer(t, f.name()+" Linux ACK", lx.sync(f.v6, lsp))
			if rst.Flags != "R" || rst.Seq != 0xabcdef || lrst.Flags != "R" || lrst.Seq != 0xabcdef {
				t.Errorf("%s: %v; Linux %v; want both RST seq %d", f.name(), rst, lrst, 0xabcdef)
			}
			if err := app.one(f.v6, sp).Reject(tcp.RejectSilent); err != nil {
				t.Fatal(err)
			}
		}
	})

	// Flag combinations on a SYN: SYN|FIN and SYN|RST are dropped and
	// counted in InErrs (Linux drops them too); SYN|URG|PSH and
	// SYN|ECE|CWR are held (Linux answers them); SYN|ACK is reset (as
	// by Linux).
	t.Run("flag_combinations", func(t *testing.T) {
		for _, f := range fams {
			for _, c := range []struct {
				flags string
				held  bool
			}{{"SF", false}, {"SR", false}, {"SUP", true}, {"SEC", true}, {"SA", false}, {"SFUP", false}} {
				sp, lsp := next(), next()
				h0, e0 := app.hs().Held, tcpst().InErrs
				s := syn(f.client, f.dst, sp, 13000)
				s.Flags = c.flags
				sc.send(s)
				got := sc.sync(f.v6, sp)
				s.Src, s.Dst, s.Sport = f.lxClient, f.lxTo, lsp
				lx.send(s)
				lgot := lx.sync(f.v6, lsp)
				held := app.hs().Held - h0
				rs := app.reqs(f.v6)
				for _, r := range rs {
					r.Reject(tcp.RejectSilent)
				}
				t.Logf("%s SYN flags %s: sockstack held %d, answered %v, InErrs +%d; Linux answered %v", f.name(), c.flags, held, got, tcpst().InErrs-e0, lgot)
				switch {
				case c.held && (held != 1 || len(got) != 0 || len(rs) != 1):
					t.Errorf("%s %s: held %d, answered %v; want held, unanswered", f.name(), c.flags, held, got)
				case c.held && (len(lgot) != 1 || !synAck(lgot[0])):
					t.Errorf("%s %s: Linux answered %v, want a SYN-ACK", f.name(), c.flags, lgot)
				case !c.held && held != 0:
					t.Errorf("%s %s: held", f.name(), c.flags)
				case c.flags == "SA" && (len(got) != 1 || got[0].Flags != "R" || len(lgot) != 1 || lgot[0].Flags != "R"):
					t.Errorf("%s SYN|ACK: %v; Linux %v; want both a RST", f.name(), got, lgot)
				case !c.held && c.flags != "SA" && (len(got) != 0 || len(lgot) != 0 || tcpst().InErrs-e0 != 1):
					t.Errorf("%s %s: %v, InErrs +%d; Linux %v; want no answers, InErrs +1", f.name(), c.flags, got, tcpst().InErrs-e0, lgot)
				}
			}
		}
	})

	// Odd options. A malformed list (an option longer than the header)
	// is dropped and counted (InErrs); Linux stops parsing and answers:
	// a documented difference. MSS 0, a window scale of 200 and an
	// unknown option are held; Complete's SYN-ACK answers as Linux's does
	// (MSS present; window scale clamped to 14 by the receiver).
	t.Run("odd_options", func(t *testing.T) {
		for _, f := range fams {
			sp, lsp := next(), next()
			e0, h0 := tcpst().InErrs, app.hs().Held
			s := syn(f.client, f.dst, sp, 15000)
			s.Opts, s.RawOpts = nil, "020705b4" // MSS, length 7 in 4 bytes
			sc.send(s)
			got := sc.sync(f.v6, sp)
			if len(got) != 0 || tcpst().InErrs-e0 != 1 || app.hs().Held != h0 {
				t.Errorf("%s malformed options: %v, InErrs +%d, Held +%d; want dropped and counted", f.name(), got, tcpst().InErrs-e0, app.hs().Held-h0)
			}
			s.Src, s.Dst, s.Sport = f.lxClient, f.lxTo, lsp
			lx.send(s)
			t.Logf("%s malformed options: Linux answers %v (sockstack drops, InErrs)", f.name(), lx.sync(f.v6, lsp))

			sp, lsp = next(), next()
			s = syn(f.client, f.dst, sp, 17000)
			s.Opts = [][]any{{"MSS", 0}, {"WScale", 200}}
			sc.send(s)
			sc.sync(f.v6, sp)
			c, err := app.one(f.v6, sp).Complete()
			if err != nil {
				t.Fatal(err)
			}
			sa := wantOneAnswer(t, f.name()+" odd options Complete", sc.sync(f.v6, sp))
			s.Src, s.Dst, s.Sport = f.lxClient, f.lxTo, lsp
			lx.send(s)
			lsa := wantOneAnswer(t, f.name()+" Linux odd options", lx.sync(f.v6, lsp))
			t.Logf("%s MSS 0, wscale 200: sockstack %v opts %v; Linux %v opts %v", f.name(), sa, sa.Opts, lsa, lsa.Opts)
			if !synAck(sa) || !synAck(lsa) || sa.Ack != 17001 {
				t.Errorf("%s: %v; Linux %v", f.name(), sa, lsa)
			}
			abort(c)
			sc.sync(f.v6, sp)
		}
	})

	// A second SYN on a held request's 4-tuple with another sequence
	// number (a spoofer who guessed the client's port) is dropped and
	// counted (SeqMismatch): the SYN-ACK acknowledges the first. Linux
	// keeps its request too and answers such a SYN with an ACK
	// (logged).
	t.Run("other_isn", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			m0 := app.hs().SeqMismatch
			sc.send(syn(f.client, f.dst, sp, 20000))
			sc.sync(f.v6, sp)
			sc.send(syn(f.client, f.dst, sp, 0x7000000))
			wantNoAnswer(t, f.name()+" other ISN", sc.sync(f.v6, sp))
			if d := app.hs().SeqMismatch - m0; d != 1 {
				t.Errorf("%s: SeqMismatch +%d, want +1", f.name(), d)
			}
			if _, err := app.one(f.v6, sp).Complete(); err != nil {
				t.Fatal(err)
			}
			if sa := wantOneAnswer(t, f.name()+" Complete", sc.sync(f.v6, sp)); sa.Flags != "SA" || sa.Ack != 20001 {
				t.Errorf("%s: Complete sent %v, want a SYN-ACK acknowledging the first SYN (20001)", f.name(), sa)
			}
			lsp := next()
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "S", Seq: 20000, Opts: synOpts})
			lx.sync(f.v6, lsp)
			lx.send(pktSpec{Src: f.lxClient, Dst: f.lxTo, Sport: lsp, Dport: 443, Flags: "S", Seq: 0x7000000, Opts: synOpts})
			t.Logf("%s: Linux answers a SYN with another ISN in SYN_RECV with %v", f.name(), lx.sync(f.v6, lsp))
		}
	})

	// ICMP rejections quote the client's SYN (its sequence number) to
	// the original destination, from the stack's address; answering
	// again is EALREADY and sends nothing more.
	t.Run("reject_icmp_quotes_the_syn", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			sc.send(syn(f.client, f.dst, sp, 22000))
			sc.sync(f.v6, sp)
			r := app.one(f.v6, sp)
			if err := r.Reject(tcp.RejectPortUnreach); err != nil {
				t.Fatal(err)
			}
			// A second answer is EALREADY and sends nothing.
			if err := r.Reject(tcp.RejectReset); err != syscall.EALREADY {
				t.Errorf("%s: a second Reject: %v, want EALREADY", f.name(), err)
			}
			if _, err := r.Complete(); err != syscall.EALREADY {
				t.Errorf("%s: Complete after Reject: %v, want EALREADY", f.name(), err)
			}
			e := wantOneAnswer(t, f.name()+" port unreachable", sc.sync(f.v6, sp))
			wantType, wantCode, own := 3, 3, stackIP.String()
			if f.v6 {
				wantType, wantCode, own = 1, 4, stack6.String()
			}
			if e.Kind != "icmp" || e.Type != wantType || e.Code != wantCode || e.Src != own || e.QDst != f.dst ||
				e.Quote.Seq != 22000 || e.Quote.Sport != sp || e.Quote.Dport != 443 || e.Quote.Flags != "S" {
				t.Errorf("%s: %v (quote to %s), want ICMP %d/%d from %s quoting the SYN", f.name(), e, e.QDst, wantType, wantCode, own)
			}
		}
	})

	// ICMP errors quoting what a held request's connection would send
	// (from the original destination to the client: a fragmentation
	// needed / packet too big with a small MTU, a port unreachable), or
	// the client's SYN itself, sent to the stack's address and to the
	// original destination, touch nothing: no answer, the request is
	// still held, and Complete's SYN-ACK carries the full MSS.
	t.Run("icmp_errors_quoting_the_held_syn", func(t *testing.T) {
		for _, f := range fams {
			sp := next()
			sc.send(syn(f.client, f.dst, sp, 24000))
			sc.sync(f.v6, sp)
			own := stackIP.String()
			if f.v6 {
				own = stack6.String()
			}
			e0 := tcpst().ICMPErrors
			var errs []pktSpec
			for _, to := range []string{own, f.dst} {
				ptb := pktSpec{Src: f.client, Dst: to, ICMP: "unreach", Code: 4, MTU: 576, QSrc: f.dst, QDst: f.client, Sport: 443, Dport: sp, Flags: "SA", Seq: 1}
				if f.v6 {
					ptb.ICMP, ptb.MTU = "ptb", 1280
				}
				errs = append(errs, ptb,
					pktSpec{Src: f.client, Dst: to, ICMP: "unreach", Code: 3, QSrc: f.dst, QDst: f.client, Sport: 443, Dport: sp, Flags: "SA", Seq: 1},
					pktSpec{Src: f.client, Dst: to, ICMP: "unreach", Code: 1, QSrc: f.client, QDst: f.dst, Sport: sp, Dport: 443, Flags: "S", Seq: 24000})
			}
			sc.send(errs...)
			wantNoAnswer(t, f.name()+" ICMP errors", sc.sync(f.v6, sp))
			t.Logf("%s: 6 ICMP errors: TCP ICMPErrors +%d", f.name(), tcpst().ICMPErrors-e0)
			if _, err := app.one(f.v6, sp).Complete(); err != nil {
				t.Fatal(err)
			}
			sa := wantOneAnswer(t, f.name()+" Complete", sc.sync(f.v6, sp))
			wantMSS := 1460
			if f.v6 {
				wantMSS = 1440
			}
			if !synAck(sa) || sa.Ack != 24001 || sa.MSS != wantMSS {
				t.Errorf("%s: Complete sent %v MSS %d, want a SYN-ACK acknowledging 24001 with MSS %d", f.name(), sa, sa.MSS, wantMSS)
			}
		}
	})

	// Expiry with a timeout shortened while a request waits (it kept
	// the old timeout before): the request goes silently, a late
	// Complete is ETIMEDOUT, and the client's retransmission is a new
	// request.
	t.Run("expiry", func(t *testing.T) {
		sp := next()
		sc.send(syn(heldClient4, heldDst4, sp, 26000))
		sc.sync(false, sp)
		r := app.one(false, sp)
		x0 := app.hs().Expired
		if err := app.l4.SetHoldSYN(true, time.Second); err != nil {
			t.Fatal(err)
		}
		defer app.l4.SetHoldSYN(true, 0)
		l.waitUntil(t, "the request expires", func() bool { return app.hs().Expired > x0 })
		wantNoAnswer(t, "expiry", sc.sync(false, sp))
		if _, err := r.Complete(); err != syscall.ETIMEDOUT {
			t.Fatalf("Complete after expiry: %v, want ETIMEDOUT", err)
		}
		sc.send(syn(heldClient4, heldDst4, sp, 26000))
		sc.sync(false, sp)
		app.one(false, sp).Reject(tcp.RejectSilent)
	})

	// SYNs from sources no client has (broadcast, unspecified,
	// loopback, multicast, the stack's own address, v4-mapped) must not
	// become requests: an application would act on them (a relay
	// dials) and its answer could not go back, or would go to a
	// broadcast or to the stack itself. A SYN from :: was held (the IP
	// layer lets it through; Complete then failed): now dropped and
	// counted (NoRoute). Logged with what Linux answers the same.
	t.Run("martian_sources", func(t *testing.T) {
		for _, f := range fams {
			srcs := []string{"255.255.255.255", "10.77.0.255", "0.0.0.0", "127.0.0.1", "224.0.0.1", stackIP.String()}
			lsrcs := []string{"255.255.255.255", "10.88.0.255", "0.0.0.0", "127.0.0.1", "224.0.0.1", peerAddr4}
			if f.v6 {
				srcs = []string{"::", "::1", "ff02::1", stack6.String(), "::ffff:10.77.0.50"}
				lsrcs = []string{"::", "::1", "ff02::1", peerAddr6, "::ffff:10.88.0.50"}
			}
			nr0 := app.hs().NoRoute
			for i, src := range srcs {
				sp, lsp := next(), next()
				h0 := app.hs().Held
				sc.send(syn(src, f.dst, sp, 28000))
				got := sc.sync(f.v6, sp)
				rs := app.reqs(f.v6)
				for _, r := range rs {
					r.Reject(tcp.RejectSilent)
				}
				lx.send(syn(lsrcs[i], f.lxTo, lsp, 28000))
				lgot := lx.sync(f.v6, lsp)
				t.Logf("%s SYN from %s: sockstack held %d (%v), answered %v; Linux (from %s) answered %v", f.name(), src, app.hs().Held-h0, reqList(rs), got, lsrcs[i], lgot)
				if len(rs) != 0 {
					t.Errorf("%s: a SYN from %s became a request", f.name(), src)
				}
			}
			if f.v6 && app.hs().NoRoute-nr0 != 1 {
				t.Errorf("v6: NoRoute +%d, want +1 (the SYN from ::)", app.hs().NoRoute-nr0)
			}
		}
	})

	// Many clients to one destination: each 4-tuple is its own request.
	t.Run("many_clients_one_destination", func(t *testing.T) {
		var ps []pktSpec
		for i := range 5 {
			ps = append(ps, syn(heldClient4, heldDst4, 31000+i, uint32(i)*1000))
		}
		sc.send(ps...)
		wantNoAnswer(t, "5 clients", sc.sync(false, 31000, 31001, 31002, 31003, 31004))
		rs := app.reqs(false)
		if len(rs) != 5 {
			t.Fatalf("%d requests for 5 clients: %v", len(rs), reqList(rs))
		}
		for _, r := range rs {
			r.Reject(tcp.RejectSilent)
		}
	})

	// A spoofed flood (2000 SYNs from 100 on-link addresses nobody
	// owns) fills the listener's backlog (16) of requests; the SYNs
	// beyond are answered with SYN cookies (Cookies), as Linux's full
	// SYN queue falls back to cookies, so a genuine client's SYN still
	// draws a SYN-ACK while the application sits on the spoofed
	// requests. Linux (backlog 64, syncookies 1) answers the genuine SYN
	// with a cookie during the same flood.
	t.Run("spoofed_flood", func(t *testing.T) {
		const n = 2000
		h0, s0 := app.hs(), tcpst()
		sc.do(map[string]any{"op": "flood", "n": n, "prefix": "10.77.0.", "dst": heldDst4, "dport": 443})
		sc.sync(false)
		sp := next()
		sc.send(syn(heldClient4, heldDst4, sp, 40000))
		got := sc.sync(false, sp)
		if len(got) != 1 || !synAck(got[0]) {
			t.Fatalf("the genuine SYN during the flood drew %v, want a cookie SYN-ACK", got)
		}
		h1, s1 := app.hs(), tcpst()
		t.Logf("flood of %d: Held +%d, Cookies +%d, QueueFull +%d, ListenDrops +%d", n, h1.Held-h0.Held, h1.Cookies-h0.Cookies, h1.QueueFull-h0.QueueFull, s1.ListenDrops-s0.ListenDrops)
		if h1.Held-h0.Held != heldBacklog || h1.Cookies-h0.Cookies != n+1-heldBacklog || h1.QueueFull != h0.QueueFull || s1.ListenDrops != s0.ListenDrops {
			t.Errorf("want Held +%d, Cookies +%d, no QueueFull or ListenDrops", heldBacklog, n+1-heldBacklog)
		}
		rs := app.reqs(false)
		if len(rs) != heldBacklog {
			t.Fatalf("%d requests queued, want %d", len(rs), heldBacklog)
		}
		for _, r := range rs {
			if r.Remote().Port() == uint16(sp) {
				t.Fatal("the genuine SYN was held")
			}
			r.Reject(tcp.RejectSilent)
		}
		// The client completes the cookie's handshake: its connection
		// comes from NextSynRequest established, and a rejection can
		// only reset it.
		sc.send(pktSpec{Src: heldClient4, Dst: heldDst4, Sport: sp, Dport: 443, Flags: "A", Seq: 40001, Ack: got[0].Seq + 1, Win: 502})
		sc.sync(false)
		r := app.one(false, sp)
		if !r.Established() {
			t.Fatal("the cookie's connection is not established")
		}
		r.Reject(tcp.RejectSilent)
		if got := sc.sync(false, sp); len(got) != 1 || !strings.Contains(got[0].Flags, "R") {
			t.Errorf("rejecting the cookie's connection sent %v, want a reset", got)
		}

		c0 := p.nstat(t, "TcpExtSyncookiesSent", "TcpExtListenDrops")
		lx.do(map[string]any{"op": "flood", "n": n, "prefix": "10.88.0.", "dst": peerAddr4, "dport": 443})
		lx.sync(false)
		lsp := next()
		lx.send(pktSpec{Src: lxClient4, Dst: peerAddr4, Sport: lsp, Dport: 443, Flags: "S", Seq: 40000, Opts: synOpts})
		lgot := lx.sync(false, lsp)
		c1 := p.nstat(t, "TcpExtSyncookiesSent", "TcpExtListenDrops")
		t.Logf("Linux, same flood: the genuine SYN drew %v; SyncookiesSent +%d, ListenDrops +%d", lgot,
			c1["TcpExtSyncookiesSent"]-c0["TcpExtSyncookiesSent"], c1["TcpExtListenDrops"]-c0["TcpExtListenDrops"])
		if len(lgot) != 1 || !synAck(lgot[0]) {
			t.Errorf("Linux answered the genuine SYN during the flood with %v, want a (cookie) SYN-ACK", lgot)
		}
	})

	t.Logf("sockstack held-SYN counters: %+v", app.hs())
}

// pyIdleListener6 listens on [::]:port (dual stack, backlog argv[2])
// and never accepts.
const pyIdleListener6 = `
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(int(sys.argv[2]))
print("listening", flush=True)
time.sleep(600)
`
