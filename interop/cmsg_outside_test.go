package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// Control messages tested from the outside: crafted datagrams go over
// the TAP to sockstack and over a veth to a Linux socket in a second
// namespace (linuxPeer), and both sides' control buffers are compared
// byte for byte, once each side's own interface index, addresses and
// clock (IPv4 timestamps) have been checked and replaced by the same
// placeholder. cmsg_send_outside_test.go compares what both send.

// pyCmsgRecv opens a UDP socket (argv[1] is a JSON cmsgRecvSpec), sets
// its options, binds it, prints READY and then one JSON line per
// datagram read with recvmsg: its data, flags and control messages as
// Python parses them (level, type, data: the layout is rebuilt in Go).
// With errto it first sends a datagram there and reads the error queue
// once POLLERR says an error came.
const pyCmsgRecv = `
import json, select, socket, sys
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET6 if a["v6"] else socket.AF_INET, socket.SOCK_DGRAM)
for lvl, name, val in a["opts"]:
    s.setsockopt(lvl, name, val)
for lvl, name, val in a.get("bopts") or []:
    s.setsockopt(lvl, name, bytes.fromhex(val))
anc = a.get("anc") or 4096
s.bind((a["addr"], a["port"]))
print("READY", flush=True)
def out(r):
    data, anc, flags, addr = r
    print(json.dumps({"data": data.hex(), "flags": flags, "anc": [[l, t, d.hex()] for l, t, d in anc]}), flush=True)
if a.get("errto"):
    s.sendto(b"probe", (a["errto"], a["errport"]))
    p = select.poll()
    p.register(s, select.POLLERR)
    if not p.poll(int(a["timeout"] * 1000)):
        print("no error came", flush=True)
        sys.exit(1)
    out(s.recvmsg(2048, anc, socket.MSG_ERRQUEUE))
    sys.exit(0)
s.settimeout(a["timeout"])
for i in range(a["n"]):
    out(s.recvmsg(65536, anc))
`

type cmsgRecvSpec struct {
	V6      bool     `json:"v6"`
	Addr    string   `json:"addr"`
	Port    int      `json:"port"`
	Opts    [][3]int `json:"opts"`            // level, name, value
	BOpts   [][3]any `json:"bopts,omitempty"` // level, name, bytes in hex
	Anc     int      `json:"anc,omitempty"`   // the control buffer's size (4096)
	N       int      `json:"n"`
	Timeout float64  `json:"timeout"`
	ErrTo   string   `json:"errto,omitempty"`
	ErrPort int      `json:"errport,omitempty"`
}

// pyCraftUDP sends UDP datagrams whose IP header it writes itself
// (argv[1] is a JSON list of craftPkt) through the kernel's raw sockets
// (IPPROTO_RAW: IP_HDRINCL, IPV6_HDRINCL), so the kernel routes them,
// resolves the neighbour and sends the header as written (for IPv4 it
// fills in only the header checksum).
const pyCraftUDP = `
import json, socket, struct, sys
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for p in json.loads(sys.argv[1]):
    pl = bytes.fromhex(p["payload"])
    ulen = 8 + len(pl)
    if p["v6"]:
        src, dst = socket.inet_pton(socket.AF_INET6, p["src"]), socket.inet_pton(socket.AF_INET6, p["dst"])
        ph = src + dst + struct.pack("!I3xB", ulen, 17)
    else:
        src, dst = socket.inet_aton(p["src"]), socket.inet_aton(p["dst"])
        ph = src + dst + struct.pack("!xBH", 17, ulen)
    u = struct.pack("!HHHH", p["sport"], p["dport"], ulen, 0) + pl
    c = csum(ph + u) or 0xffff
    u = u[:6] + struct.pack("!H", c) + u[8:]
    if p["v6"]:
        if p.get("mcif"):
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(p["mcif"]))
        h = struct.pack("!IHBB", (6 << 28) | (p["tos"] << 20) | p["flow"], ulen, 17, p["ttl"]) + src + dst
        s6.sendto(h + u, (p["dst"], 0, 0, socket.if_nametoindex(p["scope"])) if p.get("scope") else (p["dst"], 0))
    else:
        if p.get("mcif"):
            s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(p["mcif"]))
        o = bytes.fromhex(p["opts"])
        # frag: cut after that many bytes of UDP; the options (none of
        # them copied) go in the first fragment only.
        cut = p.get("frag") or len(u)
        for off, part, opts in ((0, u[:cut], o), (cut, u[cut:], b"")):
            if not part:
                continue
            fo = off // 8 | (0x2000 if off + len(part) < len(u) else 0)
            h = struct.pack("!BBHHHBBH4s4s", 0x45 + len(opts) // 4, p["tos"], 20 + len(opts) + len(part), 0x2a2a, fo, p["ttl"], 17, 0, src, dst) + opts
            h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
            s4.sendto(h + part, (p["dst"], 0))
print("SENT", flush=True)
`

type craftPkt struct {
	V6      bool   `json:"v6"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	Sport   int    `json:"sport"`
	Dport   int    `json:"dport"`
	TTL     int    `json:"ttl"`  // hop limit for IPv6
	TOS     int    `json:"tos"`  // traffic class for IPv6
	Flow    int    `json:"flow"` // IPv6 flow label
	Opts    string `json:"opts"` // IPv4 options, hex
	Payload string `json:"payload"`
	Scope   string `json:"scope,omitempty"` // IPv6: the interface of a link-local destination
	Frag    int    `json:"frag,omitempty"`  // IPv4: fragments cut after this many bytes of UDP (a multiple of 8)
	McIf    string `json:"mcif,omitempty"`  // a group destination's interface: IPv4 its address, IPv6 its name
}

// pyServer is a Python program running in a namespace that says READY
// on its first line; lines gives the lines after it.
type pyServer struct {
	lines  chan string
	done   chan error
	out    *syncBuffer
	cancel context.CancelFunc
}

// startPy starts script in l's namespace with arg as JSON and waits
// (bounded) for its READY; the program lives at most 20 s.
func (l *lab) startPy(t *testing.T, script string, arg any) *pyServer {
	t.Helper()
	return l.startPyFor(t, script, arg, 20*time.Second)
}

// startPyFor is startPy with limit as the bound on the program's life.
func (l *lab) startPyFor(t *testing.T, script string, arg any, limit time.Duration) *pyServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	c := l.cmd(ctx, "python3", "-c", script, mustJSON(t, arg))
	p := &pyServer{lines: make(chan string, 256), done: make(chan error, 1), out: &syncBuffer{}, cancel: cancel}
	c.Stderr = p.out
	so, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(so)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- c.Wait()
	}()
	t.Cleanup(cancel)
	if l := p.next(t, 15*time.Second); l != "READY" {
		t.Fatalf("python: %q before READY\n%s", l, p.out.String())
	}
	return p
}

// next is the program's next line; "" when it ended.
func (p *pyServer) next(t *testing.T, limit time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			return ""
		}
		return l
	case <-time.After(limit):
		t.Fatalf("python said nothing for %v\n%s", limit, p.out.String())
	}
	return ""
}

// pyMsg is one recvmsg result pyCmsgRecv printed.
type pyMsg struct {
	Data  string  `json:"data"`
	Flags int     `json:"flags"`
	Anc   [][]any `json:"anc"`
}

func (p *pyServer) msg(t *testing.T) (data []byte, flags int, ctl []cmsg) {
	t.Helper()
	line := p.next(t, 15*time.Second)
	var m pyMsg
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("python: %q: %v\n%s", line, err, p.out.String())
	}
	data, _ = hex.DecodeString(m.Data)
	for _, a := range m.Anc {
		d, _ := hex.DecodeString(a[2].(string))
		ctl = append(ctl, cmsg{int(a[0].(float64)), int(a[1].(float64)), d})
	}
	return data, m.Flags, ctl
}

// cmsg is one control message.
type cmsg struct {
	level, typ int
	data       []byte
}

// parseCmsgs splits a control buffer laid out as Linux lays it out on a
// 64-bit host; an error when a header does not hold.
func parseCmsgs(b []byte) ([]cmsg, error) {
	var ms []cmsg
	for len(b) > 0 {
		if len(b) < 16 {
			return ms, fmt.Errorf("%d bytes left after the last message", len(b))
		}
		l := int(binary.NativeEndian.Uint64(b))
		if l < 16 || l > len(b) {
			return ms, fmt.Errorf("cmsg_len %d with %d bytes left", l, len(b))
		}
		ms = append(ms, cmsg{int(int32(binary.NativeEndian.Uint32(b[8:]))), int(int32(binary.NativeEndian.Uint32(b[12:]))), append([]byte(nil), b[16:l]...)})
		b = b[min((l+7)&^7, len(b)):]
	}
	return ms, nil
}

// layCmsgs lays messages out as put_cmsg does (CMSG_SPACE apart, the
// padding zero).
func layCmsgs(ms []cmsg) []byte {
	var b []byte
	for _, m := range ms {
		h := make([]byte, 16)
		binary.NativeEndian.PutUint64(h, uint64(16+len(m.data)))
		binary.NativeEndian.PutUint32(h[8:], uint32(m.level))
		binary.NativeEndian.PutUint32(h[12:], uint32(m.typ))
		b = append(append(b, h...), m.data...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func (m cmsg) String() string { return fmt.Sprintf("(%d,%d)%x", m.level, m.typ, m.data) }

func cmsgsString(ms []cmsg) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, " ")
}

// cmsgSide is what one receiver's control messages legitimately carry
// of its own: its interface index and addresses.
type cmsgSide struct {
	name    string
	ifindex int
	own     netip.Addr // the receiver's address
	peer    netip.Addr // the lab kernel's address on that link (the ICMP's source)
	bcast   netip.Addr // the link's broadcast address
	// flow is the flow label the packet had on the wire, where the
	// sender chose it (Linux's automatic labels of ICMPv6 errors).
	flow      uint32
	flowKnown bool
}

// Placeholders for each side's own values.
var (
	tokOwn   = bytes.Repeat([]byte{0xa0}, 16)
	tokPeer  = bytes.Repeat([]byte{0xb0}, 16)
	tokBcast = bytes.Repeat([]byte{0xc0}, 16)
	tokTime  = []byte{0xee, 0xee, 0xee, 0xee}
)

// normalize checks the fields that are the side's own (the interface
// index of IP_PKTINFO / IPV6_PKTINFO; IPv4 timestamps near the clock)
// and replaces them, and every occurrence of the side's addresses, by
// placeholders common to both sides. It fails t for a wrong index or a
// timestamp far from now.
func (sd cmsgSide) normalize(t *testing.T, what string, ms []cmsg) []cmsg {
	t.Helper()
	out := make([]cmsg, len(ms))
	for i, m := range ms {
		d := append([]byte(nil), m.data...)
		switch {
		case m.level == socket.SOL_IP && m.typ == socket.IP_PKTINFO && len(d) == 12,
			m.level == socket.IPPROTO_IPV6 && m.typ == socket.IPV6_PKTINFO && len(d) == 20:
			at := 0
			if len(d) == 20 {
				at = 16
			}
			if got := int(binary.NativeEndian.Uint32(d[at:])); got != sd.ifindex {
				t.Errorf("%s: %s's pktinfo names interface %d, want %d (%s)", what, sd.name, got, sd.ifindex, m)
			}
			binary.NativeEndian.PutUint32(d[at:], 0xdddddddd)
		case m.level == socket.IPPROTO_IPV6 && m.typ == socket.IPV6_RECVERR && len(d) == 44 && d[24] == 0xfe && d[25]&0xc0 == 0x80:
			// A link-local offender's sin6_scope_id is the interface.
			if got := int(binary.NativeEndian.Uint32(d[40:])); got != sd.ifindex {
				t.Errorf("%s: %s's offender has scope %d, want %d (%s)", what, sd.name, got, sd.ifindex, m)
			}
			binary.NativeEndian.PutUint32(d[40:], 0xdddddddd)
		case m.level == socket.SOL_IP && (m.typ == socket.IP_RECVOPTS || m.typ == socket.IP_RETOPTS):
			normTimes(t, what+" "+sd.name, d)
		case m.level == socket.IPPROTO_IPV6 && m.typ == socket.IPV6_FLOWINFO && len(d) == 4 && sd.flowKnown:
			w := binary.BigEndian.Uint32(d)
			if w&0xfffff != sd.flow {
				t.Errorf("%s: %s's IPV6_FLOWINFO %#x, the packet's label was %#x", what, sd.name, w, sd.flow)
			}
			binary.BigEndian.PutUint32(d, w&^0xfffff|0xabcde)
		}
		for _, a := range []struct {
			addr netip.Addr
			tok  []byte
		}{{sd.own, tokOwn}, {sd.peer, tokPeer}, {sd.bcast, tokBcast}} {
			if !a.addr.IsValid() {
				continue
			}
			ab := a.addr.AsSlice()
			d = bytes.ReplaceAll(d, ab, a.tok[:len(ab)])
		}
		out[i] = cmsg{m.level, m.typ, d}
	}
	return out
}

// normTimes replaces, in IPv4 options, each Timestamp option's filled
// time slot that is within a minute of this host's clock (ms since
// midnight UT) by a placeholder; other values stay to be compared.
func normTimes(t *testing.T, what string, b []byte) {
	t.Helper()
	now := time.Now().UTC()
	ms := int64(now.Hour()*3600+now.Minute()*60+now.Second())*1000 + int64(now.Nanosecond()/1e6)
	for i := 0; i < len(b); {
		switch {
		case b[i] == 0:
			return
		case b[i] == 1:
			i++
			continue
		case i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b):
			return
		}
		l := int(b[i+1])
		if b[i] == 68 && l >= 4 {
			step, at := 4, 0
			if f := b[i+3] & 0xf; f == 1 || f == 3 {
				step, at = 8, 4
			}
			end := min(int(b[i+2])-1, l)
			for p := 4; p+step <= end; p += step {
				s := b[i+p+at : i+p+at+4]
				v := int64(binary.BigEndian.Uint32(s))
				if dt := v - ms; dt > -60000 && dt < 60000 {
					copy(s, tokTime)
				} else {
					t.Logf("%s: timestamp %d, %d ms from the clock: compared as it is", what, v, dt)
				}
			}
		}
		i += l
	}
}

// compareCmsgs checks that a sockstack control buffer (raw, as
// RecvMsgControl wrote it) is laid out as Linux lays out messages and
// equals the kernel's (as Python parsed it), side fields aside.
func compareCmsgs(t *testing.T, what string, ss cmsgSide, raw []byte, sflags int, ks cmsgSide, kctl []cmsg, kflags int) {
	t.Helper()
	sctl, err := parseCmsgs(raw)
	if err != nil {
		t.Errorf("%s: sockstack's control buffer %x: %v", what, raw, err)
		return
	}
	// A message cut at the buffer's end (MSG_CTRUNC) has no padding.
	if lay := layCmsgs(sctl); !bytes.Equal(raw, lay[:min(len(lay), len(raw))]) || len(lay)-len(raw) >= 8 {
		t.Errorf("%s: sockstack's control buffer %x is not laid out as put_cmsg lays out %s", what, raw, cmsgsString(sctl))
	}
	a, b := layCmsgs(ss.normalize(t, what, sctl)), layCmsgs(ks.normalize(t, what, kctl))
	if !bytes.Equal(a, b) || sflags&socket.MSG_CTRUNC != kflags&socket.MSG_CTRUNC {
		t.Errorf("%s: control messages differ\nsockstack (flags %#x): %s\nlinux     (flags %#x): %s\nnormalized:\nsockstack %x\nlinux     %x",
			what, sflags, cmsgsString(sctl), kflags, cmsgsString(kctl), a, b)
	}
}

// peerIfindex is vx1's interface index in the peer's namespace.
func (p *linuxPeer) ifindex(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.ns, "cat", "/sys/class/net/vx1/ifindex").Output()
	if err != nil {
		t.Fatalf("vx1's ifindex: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ipOptCase is one crafted IPv4 datagram of TestInteropCmsgRecv4:
// options is a function of the receiver's address (a prespecified
// timestamp names it).
type ipOptCase struct {
	name     string
	ttl, tos int
	opts     func(own netip.Addr) []byte
	frag     int // sent in two fragments, cut after this many bytes of UDP
}

func fixedOpts(b ...byte) func(netip.Addr) []byte { return func(netip.Addr) []byte { return b } }

var recv4Cases = []ipOptCase{
	{"plain", 7, 0x28, fixedOpts(), 0},
	{"tos with ECN, ttl 255", 255, 0xb9, fixedOpts(), 0},
	{"record route, 2 slots", 64, 0, fixedOpts(7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0},
	{"NOP then record route, 1 slot", 64, 0x10, fixedOpts(1, 7, 7, 4, 0, 0, 0, 0), 0},
	{"record route full", 64, 0, fixedOpts(7, 7, 8, 10, 9, 8, 7, 0), 0},
	{"timestamp only", 33, 0, fixedOpts(68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0},
	{"timestamp and address", 33, 0, fixedOpts(68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0},
	{"timestamp prespecified", 33, 0, func(own netip.Addr) []byte {
		a := own.As4()
		return []byte{68, 12, 5, 3, a[0], a[1], a[2], a[3], 0, 0, 0, 0}
	}, 0},
	{"timestamp prespecified elsewhere", 33, 0, fixedOpts(68, 12, 5, 3, 10, 99, 0, 1, 0, 0, 0, 0), 0},
	{"timestamp full (overflow)", 33, 0, fixedOpts(68, 8, 9, 0, 0, 0, 0, 1), 0},
	{"record route and timestamp", 20, 0x04, fixedOpts(7, 7, 4, 0, 0, 0, 0, 68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 0},
	{"unknown option and router alert", 64, 0, fixedOpts(0x5e, 4, 0xab, 0xcd, 148, 4, 0, 0), 0},
	{"bytes after end of options", 64, 0, fixedOpts(1, 0, 68, 7), 0},
	{"fragmented, record route in the first fragment", 64, 0x08, fixedOpts(7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0), 304},
	{"fragmented, timestamp and address in the first", 64, 0, fixedOpts(68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 304},
}

// recv4Opts are the options both receivers of TestInteropCmsgRecv4 turn on.
var recv4Opts = [][3]int{
	{socket.SOL_IP, socket.IP_PKTINFO, 1},
	{socket.SOL_IP, socket.IP_RECVTTL, 1},
	{socket.SOL_IP, socket.IP_RECVTOS, 1},
	{socket.SOL_IP, socket.IP_RECVOPTS, 1},
	{socket.SOL_IP, socket.IP_RETOPTS, 1},
}

// recv4DualOpts are those of the AF_INET6 receivers of IPv4 datagrams.
var recv4DualOpts = append([][3]int{{socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1}}, recv4Opts...)

func setOptsList(t *testing.T, s *socket.Socket, opts [][3]int) {
	t.Helper()
	for _, o := range opts {
		if err := s.SetSockOpt(o[0], o[1], o[2]); err != nil {
			t.Fatalf("setsockopt(%d, %d, %d): %v", o[0], o[1], o[2], err)
		}
	}
}

// TestInteropCmsgRecv4: IPv4 datagrams crafted in the lab's namespace
// (raw socket: chosen TTL and TOS, Record Route, Timestamp of each kind,
// NOPs, an unknown option, bytes after End of Options, options in the
// first of two fragments) reach a sockstack UDP socket over the TAP and
// a Linux UDP socket over a veth, both with IP_PKTINFO, IP_RECVTTL,
// IP_RECVTOS, IP_RECVOPTS and IP_RETOPTS on; also an AF_INET6 socket of
// each bound to :: with IPV6_RECVPKTINFO, a 100-byte control buffer
// (MSG_CTRUNC), the broadcast address and a group: each datagram's
// control buffer is Linux's byte for byte, the interface index, the
// receiver's addresses and its clock's timestamps checked against each
// side's own.
func TestInteropCmsgRecv4(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	h := l.startStack("")
	p := l.newLinuxPeer(t)
	const port, dualPort, smallPort, bcastPort, mcastPort = 7301, 7302, 7305, 7306, 7307
	group := netip.MustParseAddr("239.7.7.7")
	// The third pair reads with 100 bytes of control buffer: IP_PKTINFO,
	// IP_TTL and IP_TOS take 80, IP_RECVOPTS is cut (MSG_CTRUNC).
	const small = 100
	kIf := p.ifindex(t)
	ss := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: stackIP, peer: kernelIP, bcast: netip.MustParseAddr("10.77.0.255")}
	ks := cmsgSide{name: "linux", ifindex: kIf, own: netip.MustParseAddr(peerAddr4), peer: netip.MustParseAddr(peerLab4), bcast: netip.MustParseAddr("10.88.0.255")}
	s := udpRecvSock(t, h, socket.AF_INET, netip.AddrPortFrom(stackIP, port), recv4Opts)
	s6 := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(netip.IPv6Unspecified(), dualPort), recv4DualOpts)
	n := len(recv4Cases)
	k := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{Addr: peerAddr4, Port: port, Opts: recv4Opts, N: n, Timeout: 10})
	k6 := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: "::", Port: dualPort, Opts: recv4DualOpts, N: n, Timeout: 10})
	sSmall := udpRecvSock(t, h, socket.AF_INET, netip.AddrPortFrom(stackIP, smallPort), recv4Opts)
	kSmall := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{Addr: peerAddr4, Port: smallPort, Opts: recv4Opts, N: n, Timeout: 10, Anc: small})
	// The fourth pair, bound to 0.0.0.0, gets the datagrams sent to the
	// link's broadcast address: IP_PKTINFO names it and the address a
	// reply goes from (ipi_spec_dst), Record Route the latter.
	sBcast := udpRecvSock(t, h, socket.AF_INET, netip.AddrPortFrom(netip.IPv4Unspecified(), bcastPort), recv4Opts)
	kBcast := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{Addr: "0.0.0.0", Port: bcastPort, Opts: recv4Opts, N: n, Timeout: 10})
	// The fifth, in a group on each side's link: the same with a
	// multicast destination.
	sMcast := udpRecvSock(t, h, socket.AF_INET, netip.AddrPortFrom(netip.IPv4Unspecified(), mcastPort), recv4Opts)
	if err := sMcast.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: group, Interface: stackIP}); err != nil {
		t.Fatal(err)
	}
	kMcast := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{Addr: "0.0.0.0", Port: mcastPort, Opts: recv4Opts, N: n, Timeout: 10,
		BOpts: [][3]any{{socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, hex.EncodeToString(append(group.AsSlice(), ks.own.AsSlice()...))}}})
	var pkts []craftPkt
	for _, dp := range []int{port, dualPort, smallPort, bcastPort, mcastPort} {
		for i, c := range recv4Cases {
			to := []struct{ src, dst netip.Addr }{{kernelIP, stackIP}, {ks.peer, ks.own}}
			if dp == bcastPort {
				to[0].dst, to[1].dst = ss.bcast, ks.bcast
			}
			if dp == mcastPort {
				to[0].dst, to[1].dst = group, group
			}
			for _, to := range to {
				pl := []byte(c.name)
				if c.frag > 0 {
					pl = append(pl, bytes.Repeat([]byte{'.'}, 600)...)
				}
				pk := craftPkt{Src: to.src.String(), Dst: to.dst.String(), Sport: 4000 + i, Dport: dp, Frag: c.frag,
					TTL: c.ttl, TOS: c.tos, Opts: hex.EncodeToString(c.opts(to.dst)), Payload: hex.EncodeToString(pl)}
				if dp == mcastPort {
					pk.McIf = pk.Src
				}
				pkts = append(pkts, pk)
			}
		}
	}
	// The lab's kernel resolves both receivers first: a burst to an
	// unresolved neighbour waits in (and may overflow) its queue.
	l.resolve(t, stackIP.String(), peerAddr4)
	l.run(t, 15*time.Second, nil, "python3", "-c", pyCraftUDP, mustJSON(t, pkts))
	for _, r := range []struct {
		what string
		s    *socket.Socket
		k    *pyServer
		anc  int
	}{{"AF_INET", s, k, 4096}, {"AF_INET6 bound to ::", s6, k6, 4096}, {"AF_INET, 100-byte control buffer", sSmall, kSmall, small}, {"AF_INET, to the broadcast address", sBcast, kBcast, 4096}, {"AF_INET, to a group", sMcast, kMcast, 4096}} {
		for _, m := range readBoth(t, r.what, len(recv4Cases), r.k, r.s, r.anc) {
			// The 4-byte address stands in IP_PKTINFO and, v4-mapped, in
			// IPV6_PKTINFO: one placeholder covers both.
			name := strings.TrimRight(m.data, ".") // the fragmented cases' padding
			t.Logf("%s: %s: linux %s", r.what, name, cmsgsString(m.kctl))
			compareCmsgs(t, r.what+": "+name, ss, m.sraw, m.sflags, ks, m.kctl, m.kflags)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// udpRecvSock is a sockstack UDP socket bound to ap with opts on.
func udpRecvSock(t *testing.T, h *host, family int, ap netip.AddrPort, opts [][3]int) *socket.Socket {
	t.Helper()
	s, err := h.net.Socket(family, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	setOptsList(t, s, opts)
	if err := s.Bind(socket.InetAddr(ap)); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(10 * time.Second)
	return s
}

// bothRead is one datagram as each side's receiver read it.
type bothRead struct {
	data           string
	kctl           []cmsg
	kflags, sflags int
	sraw           []byte
}

// resolve pings each address once from the lab's namespace, so that
// the kernel knows their link-layer addresses.
func (l *lab) resolve(t *testing.T, addrs ...string) {
	t.Helper()
	needTools(t, "ping")
	for _, a := range addrs {
		l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", a)
	}
}

// readBoth reads n datagrams on each side and pairs them by payload, in
// the kernel's order: the first datagrams to a neighbour being resolved
// may arrive out of order (Linux's neighbour queue has that window), and
// order is not what is compared.
func readBoth(t *testing.T, what string, n int, k *pyServer, s *socket.Socket, anc int) []bothRead {
	t.Helper()
	var out []bothRead
	byData := map[string]int{}
	for range n {
		data, kflags, kctl := k.msg(t)
		byData[string(data)] = len(out)
		out = append(out, bothRead{data: string(data), kctl: kctl, kflags: kflags, sflags: -1})
	}
	for range n {
		data, sraw, sflags := recvCtlOut(t, s, anc)
		i, ok := byData[string(data)]
		if !ok || out[i].sflags != -1 {
			t.Fatalf("%s: sockstack read %q, which linux did not (or twice)", what, data)
		}
		out[i].sraw, out[i].sflags = sraw, sflags
	}
	return out
}

// recvCtlOut reads one datagram with a control buffer of anc bytes.
func recvCtlOut(t *testing.T, s *socket.Socket, anc int) (data, ctl []byte, rflags int) {
	t.Helper()
	p, oob := make([]byte, 65536), make([]byte, anc)
	n, oobn, rflags, _, err := s.RecvMsgControl(p, oob, 0)
	if err != nil {
		t.Fatalf("sockstack RecvMsgControl: %v", err)
	}
	return p[:n], oob[:oobn], rflags
}

// recv6Opts are the options both receivers of TestInteropCmsgRecv6 turn on.
var recv6Opts = [][3]int{
	{socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1},
	{socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1},
	{socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1},
	{socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, 1},
}

// TestInteropCmsgRecv6: IPv6 datagrams crafted in the lab's namespace
// with chosen hop limits, traffic classes (ECN bits too) and flow
// labels reach a sockstack UDP socket over the TAP and a Linux one over
// a veth, both with IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT,
// IPV6_RECVTCLASS and IPV6_FLOWINFO on: the control buffers are
// Linux's byte for byte (no IPV6_FLOWINFO for a zero flow word), the
// interface index and the address checked against each side's own; to
// a global address, to a group (ff15::77) and to a link-local address.
func TestInteropCmsgRecv6(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	p := l.newLinuxPeer(t)
	const port, groupPort, llPort = 7303, 7308, 7309
	ss := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: stack6, peer: kernel6}
	ks := cmsgSide{name: "linux", ifindex: p.ifindex(t), own: netip.MustParseAddr(peerAddr6), peer: netip.MustParseAddr(peerLab6)}
	cases := []struct {
		name           string
		hlim, tc, flow int
	}{
		{"hop limit 9 class 0x28 label 0x12345", 9, 0x28, 0x12345},
		{"all zero but the hop limit", 255, 0, 0},
		{"class 0xb9 (ECN 01) label 0xfffff", 1, 0xb9, 0xfffff},
		{"label 1 only", 64, 0, 1},
		{"class 0x03 only (CE)", 64, 3, 0},
	}
	s := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(stack6, port), recv6Opts)
	k := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: peerAddr6, Port: port, Opts: recv6Opts, N: len(cases), Timeout: 10})
	// A second pair, bound to ::, in a group on each side's link.
	group := netip.MustParseAddr("ff15::77")
	sg := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(netip.IPv6Unspecified(), groupPort), recv6Opts)
	if err := sg.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.IPv6Mreq{Multiaddr: group, Interface: h.nic.ID()}); err != nil {
		t.Fatal(err)
	}
	mreq := binary.NativeEndian.AppendUint32(group.AsSlice(), uint32(ks.ifindex))
	kg := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: "::", Port: groupPort, Opts: recv6Opts, N: len(cases), Timeout: 10,
		BOpts: [][3]any{{socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, hex.EncodeToString(mreq)}}})
	// A third, bound to ::, gets datagrams to each side's link-local
	// address from the lab's on that link.
	llLab, llPeer := netip.MustParseAddr("fe80::88:1"), netip.MustParseAddr("fe80::88:2")
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", llLab.String()+"/64", "dev", peerIface, "nodad")
	p.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", llPeer.String()+"/64", "dev", "vx1", "nodad")
	sLL, kLL := linkLocal(h.nic), l.kernelLL(t)
	sl := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(netip.IPv6Unspecified(), llPort), recv6Opts)
	kl := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: "::", Port: llPort, Opts: recv6Opts, N: len(cases), Timeout: 10})
	var pkts []craftPkt
	for _, dp := range []int{port, groupPort, llPort} {
		for i, c := range cases {
			for j, to := range []struct{ src, dst netip.Addr }{{kernel6, stack6}, {ks.peer, ks.own}} {
				pk := craftPkt{V6: true, Src: to.src.String(), Dst: to.dst.String(), Sport: 4000 + i, Dport: dp,
					TTL: c.hlim, TOS: c.tc, Flow: c.flow, Payload: hex.EncodeToString([]byte(c.name))}
				switch dp {
				case groupPort:
					pk.Dst, pk.McIf = group.String(), []string{tapName, peerIface}[j]
				case llPort:
					pk.Src, pk.Dst = []netip.Addr{kLL, llLab}[j].String(), []netip.Addr{sLL, llPeer}[j].String()
					pk.Scope = []string{tapName, peerIface}[j]
				}
				pkts = append(pkts, pk)
			}
		}
	}
	l.resolve(t, stack6.String(), peerAddr6, sLL.String()+"%"+tapName, llPeer.String()+"%"+peerIface)
	l.run(t, 15*time.Second, nil, "python3", "-c", pyCraftUDP, mustJSON(t, pkts))
	for _, r := range []struct {
		what string
		s    *socket.Socket
		k    *pyServer
	}{{"unicast", s, k}, {"to a group", sg, kg}, {"link-local", sl, kl}} {
		ss, ks := ss, ks
		if r.s == sl {
			ss.own, ss.peer, ks.own, ks.peer = sLL, kLL, llPeer, llLab
		}
		for _, m := range readBoth(t, r.what, len(cases), r.k, r.s, 4096) {
			t.Logf("%s: %s: linux %s", r.what, m.data, cmsgsString(m.kctl))
			compareCmsgs(t, r.what+": "+m.data, ss, m.sraw, m.sflags, ks, m.kctl, m.kflags)
		}
	}
}

// errQueueCase is one side-by-side run of TestInteropCmsgErrQueue.
type errQueueCase struct {
	name     string
	family   int
	opts     [][3]int
	ss, ks   cmsgSide
	sTo, kTo netip.Addr // the closed port's host, as each sender sees it
	ipOpts   []byte     // IP_OPTIONS of both senders
	any      bool       // bound to :: (else to the side's own address)
}

// TestInteropCmsgErrQueue: a sockstack UDP socket with IP_RECVERR and
// IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVOPTS, IP_RETOPTS on (IPv6:
// IPV6_RECVERR, IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS,
// IPV6_FLOWINFO) sends to a closed port of the lab's kernel over the
// TAP, and a Linux socket with the same options in the peer namespace
// to a closed port of the same kernel over the veth; the kernel's port
// unreachable comes back to each, and the error queue's read gives the
// same payload, flags and control messages (the ICMP packet's and
// IP_RECVERR / IPV6_RECVERR with the offender), interface index and
// addresses checked against each side's own. Cases: IPv4, IPv6 to a
// global and to a link-local address (the offender's scope), IPv4 with
// IP_OPTIONS (echoed in the port unreachable), IPv4 on an AF_INET6
// socket.
func TestInteropCmsgErrQueue(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "tcpdump")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	p := l.newLinuxPeer(t)
	kIf := p.ifindex(t)
	opts4 := [][3]int{
		{socket.SOL_IP, socket.IP_RECVERR, 1},
		{socket.SOL_IP, socket.IP_PKTINFO, 1},
		{socket.SOL_IP, socket.IP_RECVTTL, 1},
		{socket.SOL_IP, socket.IP_RECVTOS, 1},
		{socket.SOL_IP, socket.IP_RECVOPTS, 1},
		{socket.SOL_IP, socket.IP_RETOPTS, 1},
	}
	opts6 := append([][3]int{{socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1}}, recv6Opts...)
	s4 := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: stackIP, peer: kernelIP}
	k4 := cmsgSide{name: "linux", ifindex: kIf, own: netip.MustParseAddr(peerAddr4), peer: netip.MustParseAddr(peerLab4)}
	s6 := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: stack6, peer: kernel6}
	k6 := cmsgSide{name: "linux", ifindex: kIf, own: netip.MustParseAddr(peerAddr6), peer: netip.MustParseAddr(peerLab6)}
	// Link-local: the lab's kernel answers from its link-local address.
	llLab, llPeer := netip.MustParseAddr("fe80::88:1"), netip.MustParseAddr("fe80::88:2")
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", llLab.String()+"/64", "dev", peerIface, "nodad")
	p.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", llPeer.String()+"/64", "dev", "vx1", "nodad")
	sLL := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: linkLocal(h.nic), peer: l.kernelLL(t)}
	kLL := cmsgSide{name: "linux", ifindex: kIf, own: llPeer, peer: llLab}
	cases := []errQueueCase{
		{name: "IPv4", family: socket.AF_INET, opts: opts4, ss: s4, ks: k4, sTo: s4.peer, kTo: k4.peer},
		{name: "IPv6 link-local", family: socket.AF_INET6, opts: opts6, ss: sLL, ks: kLL, any: true,
			sTo: sLL.peer.WithZone(tapName), kTo: llLab.WithZone("vx1")},
		{name: "IPv6", family: socket.AF_INET6, opts: opts6, ss: s6, ks: k6, sTo: s6.peer, kTo: k6.peer},
		// The port unreachable echoes the options (Record Route with the
		// sender's and the kernel's address), quoted after them.
		{name: "IPv4 with IP_OPTIONS record route", family: socket.AF_INET, opts: opts4, ss: s4, ks: k4, sTo: s4.peer, kTo: k4.peer,
			ipOpts: []byte{1, 7, 15, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "IPv4 on an AF_INET6 socket", family: socket.AF_INET6, any: true, ss: s4, ks: k4,
			opts: append([][3]int{{socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1}, {socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1}}, opts4...),
			sTo:  netip.AddrFrom16(s4.peer.As16()), kTo: netip.AddrFrom16(k4.peer.As16())},
	}
	const port, closed = 7304, 7399
	// Linux labels its ICMPv6 errors with a hash of their flow: each
	// side's label is checked against its packet on the wire.
	capTap, capVeth := l.capture(t, tapName, "icmp6"), l.capture(t, peerIface, "icmp6")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kBind, sBind := c.ks.own.String(), c.ss.own
			if c.any {
				kBind, sBind = "::", netip.IPv6Unspecified()
			}
			var bopts [][3]any
			if c.ipOpts != nil {
				bopts = [][3]any{{socket.SOL_IP, socket.IP_OPTIONS, hex.EncodeToString(c.ipOpts)}}
			}
			k := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: c.family == socket.AF_INET6, Addr: kBind, Port: port, Opts: c.opts, BOpts: bopts,
				Timeout: 10, ErrTo: c.kTo.String(), ErrPort: closed})
			s := udpRecvSock(t, h, c.family, netip.AddrPortFrom(sBind, port), c.opts)
			if c.ipOpts != nil {
				if err := s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, c.ipOpts); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.SendTo([]byte("probe"), 0, socket.InetAddr(netip.AddrPortFrom(c.sTo, closed))); err != nil {
				t.Fatal(err)
			}
			// The error is first the socket's pending error.
			if _, err := s.Recv(make([]byte, 16), 0); err != syscall.ECONNREFUSED {
				t.Fatalf("sockstack's recv: %v, want the port unreachable's ECONNREFUSED", err)
			}
			buf, oob := make([]byte, 2048), make([]byte, 4096)
			n, oobn, sflags, _, err := s.RecvMsgControl(buf, oob, socket.MSG_ERRQUEUE)
			if err != nil {
				t.Fatalf("sockstack's error queue: %v", err)
			}
			kdata, kflags, kctl := k.msg(t)
			t.Logf("linux: %s", cmsgsString(kctl))
			if c.sTo.Is6() && !c.sTo.Is4In6() {
				for _, x := range []struct {
					c  *tcpdumpCap
					sd *cmsgSide
				}{{capTap, &c.ss}, {capVeth, &c.ks}} {
					unreach := func(p wirePkt) bool {
						return p.v6 && p.proto == 58 && p.dst == x.sd.own && len(p.body) > 0 && p.body[0] == 1
					}
					ps := x.c.wait(t, "the port unreachable to "+x.sd.own.String(), func(ps []wirePkt) bool { return slices.ContainsFunc(ps, unreach) })
					x.sd.flow, x.sd.flowKnown = ps[slices.IndexFunc(ps, unreach)].flow, true
				}
			}
			if string(buf[:n]) != string(kdata) || sflags != kflags {
				t.Errorf("payload %q flags %#x, linux %q flags %#x", buf[:n], sflags, kdata, kflags)
			}
			compareCmsgs(t, c.name, c.ss, oob[:oobn], sflags, c.ks, kctl, kflags)
		})
	}
}
