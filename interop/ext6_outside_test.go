package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// IPv6 extension headers from the outside. Receive: UDP datagrams with
// Hop-by-Hop, Destination Options and routing headers (segments left 0)
// crafted by scapy in the lab's namespace go over the TAP to a sockstack
// socket and over the veth to a Linux socket in a second namespace,
// both with the RFC 3542 receive options on (and a second pair with the
// RFC 2292 ones); their control buffers are compared byte for byte
// (cmsg_outside_test.go's compareCmsgs: interface index and addresses
// checked and masked). Send: sockstack's TCP with sticky Hop-by-Hop and
// Destination Options headers talks to the lab's kernel over the TAP;
// tcpdump's capture shows every sockstack segment with both headers,
// and the data arrives intact both ways.

// pyScapyExt6 sends, from the lab's namespace, the frames argv[1] (a
// JSON list of ext6Frame) lists: Ethernet, IPv6, the extension headers
// in the order given, UDP (checksum by scapy, over the final
// destination), the payload.
const pyScapyExt6 = `
import json, sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IPv6, UDP, Raw, sendp, get_if_hwaddr
from scapy.layers.inet6 import IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, PadN, RouterAlert, HBHOptUnknown
def opts(fill, n):
    # n experimental options (type 0x1e, skipped by receivers) of 4 bytes of fill
    return [HBHOptUnknown(otype=0x1e, optdata=bytes([fill]) * 4) for _ in range(n)]
for f in json.loads(sys.argv[1]):
    p = Ether(src=get_if_hwaddr(f["iface"]), dst=f["dmac"]) / IPv6(src=f["src"], dst=f["dst"], hlim=f["hlim"])
    for h in f["hdrs"] or []:
        k = h["kind"]
        if k == "hop":
            o = opts(h["fill"], h["n"])
            if h.get("ra"):
                o = [RouterAlert(value=0)] + o
            p = p / IPv6ExtHdrHopByHop(options=o)
        elif k == "dst":
            p = p / IPv6ExtHdrDestOpt(options=opts(h["fill"], h["n"]))
        else:
            p = p / IPv6ExtHdrRouting(type=h.get("type", 0), segleft=0, addresses=h.get("addrs") or [])
    p = p / UDP(sport=f["sport"], dport=f["dport"]) / Raw(bytes.fromhex(f["payload"]))
    sendp(p, iface=f["iface"], verbose=0)
print("SENT", flush=True)
`

// ext6Hdr is one extension header of an ext6Frame: "hop" or "dst" with n
// options filled with fill (hop: a router alert first when ra), or "rt",
// a routing header of the type with the addresses.
type ext6Hdr struct {
	Kind  string   `json:"kind"`
	N     int      `json:"n,omitempty"`
	Fill  int      `json:"fill,omitempty"`
	RA    bool     `json:"ra,omitempty"`
	Type  int      `json:"type,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
}

type ext6Frame struct {
	Iface   string    `json:"iface"`
	DMAC    string    `json:"dmac"`
	Src     string    `json:"src"`
	Dst     string    `json:"dst"`
	Hlim    int       `json:"hlim"`
	Hdrs    []ext6Hdr `json:"hdrs"`
	Sport   int       `json:"sport"`
	Dport   int       `json:"dport"`
	Payload string    `json:"payload"`
}

// The RFC 2292 pktinfo carries the interface index too: each side's is
// checked and masked as compareCmsgs does IPV6_PKTINFO's.
func mask2292(t *testing.T, what string, sd cmsgSide, ms []cmsg) []cmsg {
	t.Helper()
	out := make([]cmsg, len(ms))
	for i, m := range ms {
		d := append([]byte(nil), m.data...)
		if m.level == socket.IPPROTO_IPV6 && m.typ == socket.IPV6_2292PKTINFO && len(d) == 20 {
			if got := int(binary.NativeEndian.Uint32(d[16:])); got != sd.ifindex {
				t.Errorf("%s: %s's IPV6_2292PKTINFO names interface %d, want %d", what, sd.name, got, sd.ifindex)
			}
			binary.NativeEndian.PutUint32(d[16:], 0xdddddddd)
		}
		out[i] = cmsg{m.level, m.typ, d}
	}
	return out
}

// TestInteropExt6Recv: crafted datagrams with a Hop-by-Hop header (with
// a router alert), Destination Options, routing headers of type 0 (no
// addresses and one) with no segments left, alone and all together
// (Destination Options before and after the routing header), reach
// sockstack over the TAP and Linux over the veth: with
// IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVHOPOPTS,
// IPV6_RECVDSTOPTS and IPV6_RECVRTHDR on one pair, and the RFC 2292
// options on another, the control buffers are the same byte for byte.
func TestInteropExt6Recv(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "python3")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	p := l.newLinuxPeer(t)
	const port3542, port2292 = 7311, 7312
	ss := cmsgSide{name: "sockstack", ifindex: h.nic.ID(), own: stack6, peer: kernel6}
	ks := cmsgSide{name: "linux", ifindex: p.ifindex(t), own: netip.MustParseAddr(peerAddr6), peer: netip.MustParseAddr(peerLab6)}
	hop := ext6Hdr{Kind: "hop", N: 1, Fill: 0xaa}
	hopRA := ext6Hdr{Kind: "hop", N: 2, Fill: 0xab, RA: true}
	d0, d1 := ext6Hdr{Kind: "dst", N: 1, Fill: 0xd0}, ext6Hdr{Kind: "dst", N: 3, Fill: 0xd1}
	rt0 := ext6Hdr{Kind: "rt", Type: 0, Addrs: []string{}}
	rt1 := ext6Hdr{Kind: "rt", Type: 0, Addrs: []string{"2001:db8::77"}}
	cases := []struct {
		name string
		hdrs []ext6Hdr
	}{
		{"plain", nil},
		{"hop-by-hop", []ext6Hdr{hop}},
		{"hop-by-hop with router alert", []ext6Hdr{hopRA}},
		{"destination options", []ext6Hdr{d1}},
		{"routing header alone", []ext6Hdr{rt0}},
		{"routing header with an address", []ext6Hdr{rt1}},
		{"hop, dst, routing, dst", []ext6Hdr{hop, d0, rt1, d1}},
		{"dst, routing", []ext6Hdr{d0, rt0}},
		{"routing, dst", []ext6Hdr{rt0, d1}},
	}
	opts3542 := [][3]int{
		{socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_RECVHOPOPTS, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_RECVDSTOPTS, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_RECVRTHDR, 1},
	}
	opts2292 := [][3]int{
		{socket.IPPROTO_IPV6, socket.IPV6_2292PKTINFO, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_2292HOPLIMIT, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_2292HOPOPTS, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_2292DSTOPTS, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_2292RTHDR, 1},
		{socket.IPPROTO_IPV6, socket.IPV6_RECVRTHDR, 1},
	}
	n := len(cases)
	s1 := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(stack6, port3542), opts3542)
	k1 := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: peerAddr6, Port: port3542, Opts: opts3542, N: n, Timeout: 10})
	s2 := udpRecvSock(t, h, socket.AF_INET6, netip.AddrPortFrom(stack6, port2292), opts2292)
	k2 := p.startPy(t, pyCmsgRecv, cmsgRecvSpec{V6: true, Addr: peerAddr6, Port: port2292, Opts: opts2292, N: n, Timeout: 10})
	smac := h.nic.HardwareAddr().String()
	var frames []ext6Frame
	for _, dp := range []int{port3542, port2292} {
		for i, c := range cases {
			frames = append(frames,
				ext6Frame{Iface: tapName, DMAC: smac, Src: kernel6.String(), Dst: stack6.String(), Hlim: 33 + i, Hdrs: c.hdrs, Sport: 4100 + i, Dport: dp, Payload: hex.EncodeToString([]byte(c.name))},
				ext6Frame{Iface: peerIface, DMAC: p.mac, Src: peerLab6, Dst: peerAddr6, Hlim: 33 + i, Hdrs: c.hdrs, Sport: 4100 + i, Dport: dp, Payload: hex.EncodeToString([]byte(c.name))})
		}
	}
	// Each receiver answers neighbour solicitations for its address
	// before the burst: the kernel's own ping resolves both (scapy's
	// sendp needs no resolution, but the receivers may solicit back).
	l.resolve(t, stack6.String(), peerAddr6)
	if out := l.run(t, 60*time.Second, nil, scapyPython, "-c", pyScapyExt6, mustJSON(t, frames)); !strings.Contains(out, "SENT") {
		t.Fatalf("scapy: %s", out)
	}
	for _, r := range []struct {
		what string
		s    *socket.Socket
		k    *pyServer
	}{{"RFC 3542 options", s1, k1}, {"RFC 2292 options", s2, k2}} {
		for _, m := range readBoth(t, r.what, n, r.k, r.s, 4096) {
			t.Logf("%s: %s: linux %s", r.what, m.data, cmsgsString(m.kctl))
			what := r.what + ": " + m.data
			sctl, err := parseCmsgs(m.sraw)
			if err != nil {
				t.Fatalf("%s: sockstack's control buffer: %v", what, err)
			}
			compareCmsgs(t, what, ss, layCmsgs(mask2292(t, what, ss, sctl)), m.sflags, ks, mask2292(t, what, ks, m.kctl), m.kflags)
			if m.data != "plain" && len(m.kctl) < 3 {
				t.Errorf("%s: linux gave only %s: the case tests nothing", what, cmsgsString(m.kctl))
			}
		}
	}
}

// TestInteropExt6TCP: a sockstack TCP socket with sticky Hop-by-Hop (16
// bytes) and Destination Options (8 bytes) headers connects to a Linux
// listener in the lab's namespace over the TAP, sends 300 KB and reads
// the kernel's reply (the SHA-256 of what it read, then 64 KB back);
// tcpdump's capture on the TAP shows every segment sockstack sent (SYN,
// data, ACKs, FIN) with Hop-by-Hop, Destination Options, TCP in that
// order and its payload within the MSS less the headers. A Linux client
// connecting to a sockstack listener with a Hop-by-Hop header gets the
// accepted socket's segments with it.
func TestInteropExt6TCP(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "tcpdump", "ss")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	const port, lport, up, down = 7790, 7791, 300 << 10, 64 << 10
	py := fmt.Sprintf(`import socket, hashlib
l=socket.socket(socket.AF_INET6); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
l.bind(('%s',%d)); l.listen(1)
c,_=l.accept(); h=hashlib.sha256(); n=0
while n < %d:
    b=c.recv(65536)
    if not b: break
    h.update(b); n+=len(b)
c.sendall(h.hexdigest().encode()+bytes(i*7%%251 for i in range(%d))); c.close()
`, kernel6, port, up, down)
	l.background(t, "python3", "-c", py)
	l.waitListen(t, "tcp", port)
	capt := l.capture(t, tapName, "ip6")
	hop, dst := ext6Opts(2, 0xaa), ext6Opts(1, 0xbb)
	s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(20 * time.Second)
	for _, o := range []struct {
		name int
		v    []byte
	}{{socket.IPV6_HOPOPTS, hop}, {socket.IPV6_DSTOPTS, dst}} {
		if err := s.SetSockOpt(socket.IPPROTO_IPV6, o.name, o.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Connect(socket.Inet6(kernel6.String(), port)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, up)
	for i := range data {
		data[i] = byte(i*13 + i>>10)
	}
	if err := s.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	reply := readTo(t, s)
	sum := sha256.Sum256(data)
	want := []byte(hex.EncodeToString(sum[:]))
	for i := range down {
		want = append(want, byte(i*7%251))
	}
	if !bytes.Equal(reply, want) {
		t.Fatalf("the kernel read other bytes, or its reply came changed: %d bytes, want %d (%q...)", len(reply), len(want), reply[:min(len(reply), 64)])
	}
	s.Close()

	// The other way: a Linux client to a sockstack listener with a
	// Hop-by-Hop header, which its accepted socket takes.
	ln, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lhop := ext6Opts(1, 0xcc)
	if err := ln.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, lhop); err != nil {
		t.Fatal(err)
	}
	if err := ln.Bind(socket.Inet6(stack6.String(), lport)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(1)
	cli := fmt.Sprintf(`import socket
c=socket.create_connection(('%s',%d)); c.sendall(b'x'*20000); c.shutdown(socket.SHUT_WR)
n=0
while True:
    b=c.recv(65536)
    if not b: break
    n+=len(b)
print(n)
`, stack6, lport)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc := l.cmd(ctx, "python3", "-c", cli)
	var cout syncBuffer
	cc.Stdout, cc.Stderr = &cout, &cout
	cdone := startCmd(t, cc)
	ln.SetTimeout(20 * time.Second)
	a, _, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.SetTimeout(20 * time.Second)
	if got := readTo(t, a); len(got) != 20000 {
		t.Fatalf("accepted socket read %d bytes, want 20000", len(got))
	}
	if err := a.SendAll(make([]byte, 30000), 0); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := <-cdone; err != nil || strings.TrimSpace(cout.String()) != "30000" {
		t.Fatalf("linux client: %v %q", err, cout.String())
	}

	// Every IPv6 TCP segment sockstack sent: Hop-by-Hop, Destination
	// Options, TCP (the client); Hop-by-Hop, TCP (the accepted socket).
	type count struct{ segs, syn, fin, data, maxp int }
	var cl, ac count
	capt.waitFor(t, func(ps []gopacket.Packet) bool {
		cl, ac = count{}, count{}
		for _, pk := range ps {
			ip, _ := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if ip == nil || !ip.SrcIP.Equal(stack6.AsSlice()) {
				continue
			}
			tl, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tl == nil {
				continue
			}
			var chain []gopacket.LayerType
			var hh, do []byte
			for _, ly := range pk.Layers()[1:] {
				chain = append(chain, ly.LayerType())
				switch ly.LayerType() {
				case layers.LayerTypeIPv6HopByHop:
					hh = ly.LayerContents()
				case layers.LayerTypeIPv6Destination:
					do = ly.LayerContents()
				}
				if ly.LayerType() == layers.LayerTypeTCP {
					break
				}
			}
			c, wantChain, wantHop, wantDst := &cl, []gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Destination, layers.LayerTypeTCP}, hop, dst
			if int(tl.SrcPort) == lport {
				c, wantChain, wantHop, wantDst = &ac, []gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6HopByHop, layers.LayerTypeTCP}, lhop, nil
			}
			if fmt.Sprint(chain) != fmt.Sprint(wantChain) || !bytes.Equal(tail(hh), tail(wantHop)) || !bytes.Equal(tail(do), tail(wantDst)) {
				t.Fatalf("sockstack segment %d>%d seq %d flags SYN %v FIN %v: layers %v, Hop-by-Hop %x, Destination Options %x",
					tl.SrcPort, tl.DstPort, tl.Seq, tl.SYN, tl.FIN, chain, hh, do)
			}
			c.segs++
			if tl.SYN {
				c.syn++
			}
			if tl.FIN {
				c.fin++
			}
			c.data += len(tl.Payload)
			c.maxp = max(c.maxp, len(tl.Payload))
		}
		return cl.fin > 0 && ac.fin > 0 && cl.data >= up && ac.data >= 30000
	})
	// The TAP's MTU is 1500: 1500 - 40 - 20 - 12 (timestamps) less the
	// headers (24 and 8).
	if cl.syn != 1 || cl.maxp != 1500-40-20-12-24 || ac.syn != 1 || ac.maxp != 1500-40-20-12-8 {
		t.Fatalf("client %+v, accepted %+v", cl, ac)
	}
	t.Logf("client: %d segments with both headers; accepted socket: %d with Hop-by-Hop", cl.segs, ac.segs)
}

// tail is a header without its next header byte (which the stack
// writes); nil for none.
func tail(h []byte) []byte {
	if len(h) == 0 {
		return nil
	}
	return h[1:]
}

// ext6Opts is an options header of n*8 bytes: per 8 bytes an
// experimental option (0x1e) of 4 or 6 bytes of fill.
func ext6Opts(n int, fill byte) []byte {
	b := make([]byte, n*8)
	b[1], b[2], b[3] = byte(n-1), 0x1e, 4
	for i := 4; i < 8; i++ {
		b[i] = fill
	}
	for i := 8; i < len(b); i += 8 {
		b[i], b[i+1] = 0x1e, 6
		for j := i + 2; j < i+8; j++ {
			b[j] = fill
		}
	}
	return b
}

// readTo reads s to its EOF.
func readTo(t *testing.T, s *socket.Socket) []byte {
	t.Helper()
	var out []byte
	b := make([]byte, 65536)
	for {
		n, err := s.Recv(b, 0)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(out), err)
		}
		if n == 0 {
			return out
		}
		out = append(out, b[:n]...)
	}
}

// waitFor decodes the capture with gopacket until cond holds, bounded
// (tcpdump writes each packet some time after the kernel passed it on).
// Each packet's metadata holds its capture time.
func (c *tcpdumpCap) waitFor(t *testing.T, cond func([]gopacket.Packet) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ps []gopacket.Packet
		if f, err := os.Open(c.path); err == nil {
			if r, err := pcapgo.NewReader(f); err == nil {
				for {
					d, ci, err := r.ReadPacketData()
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Logf("pcap: %v", err)
						}
						break
					}
					p := gopacket.NewPacket(d, layers.LayerTypeEthernet, gopacket.Default)
					p.Metadata().CaptureInfo = ci
					ps = append(ps, p)
				}
			}
			f.Close()
		}
		if cond(ps) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the capture never showed the whole exchange (%d packets)\n%s", len(ps), c.out.String())
		}
		time.Sleep(50 * time.Millisecond) // no event says that tcpdump wrote
	}
}
