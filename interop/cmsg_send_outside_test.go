package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// tcpdumpCap is tcpdump writing what crosses one interface of a lab's
// namespace to a pcap file, packet by packet (-U).
type tcpdumpCap struct {
	path string
	out  *syncBuffer
}

// capture starts tcpdump on iface and waits (bounded) until it listens.
func (l *lab) capture(t *testing.T, iface string, filter ...string) *tcpdumpCap {
	t.Helper()
	needTools(t, "tcpdump")
	c := &tcpdumpCap{path: filepath.Join(t.TempDir(), iface+".pcap"), out: &syncBuffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := l.cmd(ctx, append([]string{"tcpdump", "-i", iface, "-n", "-U", "-s", "0", "-w", c.path}, filter...)...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	done := startCmd(t, cmd)
	t.Cleanup(cancel)
	waitTcpdump(t, c.out, done)
	return c
}

// wait reads the capture until cond holds for its packets (tcpdump
// writes each packet some time after the kernel passed it on), bounded.
func (c *tcpdumpCap) wait(t *testing.T, what string, cond func([]wirePkt) bool) []wirePkt {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := c.read(t)
		if cond(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("the capture never showed %s (%d packets)\n%s", what, len(ps), c.out.String())
		}
		time.Sleep(20 * time.Millisecond) // no event says that tcpdump wrote
	}
}

func (c *tcpdumpCap) read(t *testing.T) []wirePkt {
	t.Helper()
	f, err := os.Open(c.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil // not even the file header yet
	}
	var ps []wirePkt
	for {
		d, _, err := r.ReadPacketData()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("pcap: %v", err)
			}
			return ps
		}
		if p, ok := parseWire(d); ok {
			ps = append(ps, p)
		}
	}
}

// wirePkt is an IP packet's header fields as captured.
type wirePkt struct {
	v6           bool
	src, dst     netip.Addr
	ttl, tos     int // hop limit and traffic class for IPv6
	flow         uint32
	df, mf       bool
	off          int // fragment offset in bytes
	id           uint32
	frag         bool // a fragment (IPv4: MF or offset; IPv6: a fragment header)
	opts         []byte
	proto        int
	length       int // IPv4 total length, IPv6 payload length
	sport, dport int
	udpLen       int
	body         []byte // the UDP payload (first fragment) or the ICMP message
}

// parseWire reads an Ethernet frame with IPv4 or IPv6 (and an IPv6
// fragment header).
func parseWire(f []byte) (p wirePkt, ok bool) {
	if len(f) < 14 {
		return p, false
	}
	be := binary.BigEndian
	b := f[14:]
	var l4 []byte
	switch be.Uint16(f[12:]) {
	case 0x0800:
		if len(b) < 20 || int(b[0]&0xf)*4 > len(b) {
			return p, false
		}
		hl := int(b[0]&0xf) * 4
		p.tos, p.length, p.id = int(b[1]), int(be.Uint16(b[2:])), uint32(be.Uint16(b[4:]))
		fo := be.Uint16(b[6:])
		p.df, p.mf, p.off = fo&0x4000 != 0, fo&0x2000 != 0, int(fo&0x1fff)*8
		p.frag = p.mf || p.off != 0
		p.ttl, p.proto = int(b[8]), int(b[9])
		p.src, p.dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		p.opts = append([]byte(nil), b[20:hl]...)
		l4 = b[hl:min(len(b), p.length)]
	case 0x86dd:
		if len(b) < 40 {
			return p, false
		}
		w := be.Uint32(b)
		p.v6, p.tos, p.flow = true, int(w>>20&0xff), w&0xfffff
		p.length, p.proto, p.ttl = int(be.Uint16(b[4:])), int(b[6]), int(b[7])
		p.src, p.dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
		if p.proto == 44 && len(l4) >= 8 {
			fo := be.Uint16(l4[2:])
			p.frag, p.proto, p.off, p.mf, p.id = true, int(l4[0]), int(fo&^7), fo&1 != 0, be.Uint32(l4[4:])
			l4 = l4[8:]
		}
	default:
		return p, false
	}
	if p.off != 0 {
		return p, true
	}
	if p.proto == 17 && len(l4) >= 8 {
		p.sport, p.dport, p.udpLen = int(be.Uint16(l4)), int(be.Uint16(l4[2:])), int(be.Uint16(l4[4:]))
		p.body = l4[8:]
	} else {
		p.body = l4
	}
	return p, true
}

// pySendCtl sends, for each case of argv[1] (a JSON list of sendCase),
// one datagram with sendmsg and the case's ancillary data, from a new
// UDP socket with the case's socket options, and prints "OK n" or
// "ERR errno"; then an END datagram to each destination.
const pySendCtl = `
import json, socket, sys
a = json.loads(sys.argv[1])
for c in a["cases"]:
    s = socket.socket(socket.AF_INET6 if c["v6"] else socket.AF_INET, socket.SOCK_DGRAM)
    for lvl, name, val in c.get("sockopts") or []:
        s.setsockopt(lvl, name, bytes.fromhex(val))
    try:
        n = s.sendmsg([bytes.fromhex(c["data"])], [(l, t, bytes.fromhex(d)) for l, t, d in c.get("anc") or []], 0, (c["dst"], c["port"]))
        print("OK", n, flush=True)
    except OSError as e:
        print("ERR", e.errno, flush=True)
    s.close()
for dst in a["ends"]:
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"END", (dst, a["port"]))
`

// pyUDPSink reads datagrams on a UDP socket per address of argv[1] (a
// JSON object with addrs and port) and prints "family length
// first-8-bytes" for each, until each socket has read END.
const pyUDPSink = `
import json, select, socket, sys
a = json.loads(sys.argv[1])
socks = []
for ad in a["addrs"]:
    s = socket.socket(socket.AF_INET6 if ":" in ad else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ad, a["port"]))
    socks.append(s)
print("READY", flush=True)
left = set(socks)
while left:
    r, _, _ = select.select(list(left), [], [], 15)
    if not r:
        print("TIMEOUT", flush=True)
        sys.exit(1)
    for s in r:
        d = s.recv(65536)
        if d == b"END":
            left.discard(s)
        else:
            print(s.family == socket.AF_INET6 and 6 or 4, len(d), d[:8].decode(errors="replace"), flush=True)
print("DONE", flush=True)
`

// sendCase is one sendmsg of TestInteropCmsgSend, from each side.
type sendCase struct {
	V6       bool     `json:"v6"`
	Dst      string   `json:"dst"`
	Port     int      `json:"port"`
	Data     string   `json:"data"`
	Anc      [][3]any `json:"anc"`      // level, type, data in hex
	SockOpts [][3]any `json:"sockopts"` // level, name, value in hex
	name     string
	ctl      []cmsg
	opts     []cmsg
}

// sendSpec describes a case independently of the sender: ctl and opts
// are functions of the sender's address and interface index.
type sendSpec struct {
	name string
	v6   bool
	size int
	ctl  func(own netip.Addr, ifindex int) []cmsg
	opts []cmsg // setsockopt before the send
	// group: sent to sendGroup with IP_MULTICAST_IF the sender's address
	// (no receiver: the capture compares).
	group bool
	// mapped: an AF_INET6 socket sending to the v4-mapped address (the
	// IPv4 path, which reads SOL_IP and a v4-mapped IPV6_PKTINFO).
	mapped bool
}

var sendGroup = netip.MustParseAddr("239.7.7.8")

func cInt(level, typ, v int) cmsg {
	return cmsg{level, typ, binary.NativeEndian.AppendUint32(nil, uint32(int32(v)))}
}

func ctls(ms ...cmsg) func(netip.Addr, int) []cmsg {
	return func(netip.Addr, int) []cmsg { return ms }
}

var sendSpecs = []sendSpec{
	{name: "IP_TTL 3", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TTL, 3))},
	{name: "IP_TOS int 0x28", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TOS, 0x28))},
	{name: "IP_TOS byte 0xb8", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_TOS, []byte{0xb8}})},
	{name: "IP_RETOPTS record route", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}})},
	{name: "IP_RETOPTS timestamp", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}})},
	{name: "IP_RETOPTS timestamp and address", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}})},
	{name: "IP_RETOPTS unpadded NOP and record route", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{1, 7, 7, 4, 0, 0, 0, 0, 1}})},
	{name: "IP_TTL, IP_TOS and IP_RETOPTS", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TTL, 9), cInt(socket.SOL_IP, socket.IP_TOS, 0x10), cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{1, 7, 7, 4, 0, 0, 0, 0}})},
	{name: "IP_PKTINFO source", size: 100, ctl: func(own netip.Addr, _ int) []cmsg {
		d := make([]byte, 12)
		copy(d[4:], own.AsSlice())
		return []cmsg{{socket.SOL_IP, socket.IP_PKTINFO, d}}
	}},
	{name: "IP_PKTINFO interface", size: 100, ctl: func(_ netip.Addr, ifindex int) []cmsg {
		return []cmsg{{socket.SOL_IP, socket.IP_PKTINFO, binary.NativeEndian.AppendUint32(make([]byte, 0, 12), uint32(ifindex))[:12]}}
	}},
	{name: "IP_OPTIONS set", size: 100, ctl: ctls(), opts: []cmsg{{socket.SOL_IP, socket.IP_OPTIONS, []byte{7, 7, 4, 0, 0, 0, 0, 0}}}},
	{name: "IP_OPTIONS set, IP_RETOPTS empty", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, nil}), opts: []cmsg{{socket.SOL_IP, socket.IP_OPTIONS, []byte{7, 7, 4, 0, 0, 0, 0, 0}}}},
	{name: "IP_TOS int 0x2b (ECN bits)", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TOS, 0x2b))},
	{name: "IP_TTL 0", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TTL, 0))},
	{name: "IP_TTL 256", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TTL, 256))},
	{name: "IP_TOS 256", size: 100, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TOS, 256))},
	{name: "IP_RETOPTS record route with a bad pointer", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{7, 7, 8, 0, 0, 0, 0, 0}})},
	{name: "IP_RETOPTS unknown option", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{0x5e, 4, 1, 2}})},
	{name: "IP_PKTINFO foreign source", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_PKTINFO, []byte{0, 0, 0, 0, 10, 77, 0, 99, 0, 0, 0, 0}})},
	{name: "to a group, IP_OPTIONS record route", size: 100, ctl: ctls(), opts: []cmsg{{socket.SOL_IP, socket.IP_OPTIONS, []byte{7, 7, 4, 0, 0, 0, 0, 0}}}, group: true},
	{name: "to a group, IP_RETOPTS timestamp and address, IP_TTL 3", size: 100, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0}}, cInt(socket.SOL_IP, socket.IP_TTL, 3)), group: true},
	{name: "v4-mapped, IP_TTL 4 and IP_TOS 0x48", size: 100, mapped: true, ctl: ctls(cInt(socket.SOL_IP, socket.IP_TTL, 4), cInt(socket.SOL_IP, socket.IP_TOS, 0x48))},
	{name: "v4-mapped, IPV6_HOPLIMIT and IPV6_TCLASS passed over", size: 100, mapped: true, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, 7), cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x20))},
	{name: "v4-mapped, IPV6_PKTINFO with the mapped source", size: 100, mapped: true, ctl: func(own netip.Addr, _ int) []cmsg {
		a := netip.AddrFrom16(own.As16()).AsSlice()
		return []cmsg{{socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, append(a, 0, 0, 0, 0)}}
	}},
	{name: "v4-mapped, IPV6_PKTINFO with an IPv6 source", size: 100, mapped: true, ctl: ctls(cmsg{socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, append(netip.MustParseAddr("fd00:77::2").AsSlice(), 0, 0, 0, 0)})},
	{name: "v4-mapped, IP_RETOPTS record route", size: 100, mapped: true, ctl: ctls(cmsg{socket.SOL_IP, socket.IP_RETOPTS, []byte{7, 7, 4, 0, 0, 0, 0, 0}})},
	{name: "UDP_SEGMENT 1000 of 4000", size: 4000, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1000)})},
	{name: "UDP_SEGMENT 1000 of 3504, IP_TTL 5", size: 3504, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1000)}, cInt(socket.SOL_IP, socket.IP_TTL, 5))},
	{name: "UDP_SEGMENT 1000 of 600", size: 600, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1000)})},
	{name: "UDP_SEGMENT 504 of 1200 (all within the MTU)", size: 1200, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 504)})},
	{name: "UDP_SEGMENT 1600 of 3200 (above the MTU)", size: 3200, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1600)})},

	{name: "IPV6_HOPLIMIT 5", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, 5))},
	{name: "IPV6_HOPLIMIT -1", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, -1))},
	{name: "IPV6_TCLASS 0x28", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28))},
	{name: "IPV6_TCLASS -1", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, -1))},
	{name: "IPV6_FLOWINFO 0x54321", v6: true, size: 100, ctl: ctls(cmsg{socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, binary.BigEndian.AppendUint32(nil, 0x54321)})},
	{name: "IPV6_FLOWINFO with class bits", v6: true, size: 100, ctl: ctls(cmsg{socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, binary.BigEndian.AppendUint32(nil, 0x0a8fedcb)})},
	{name: "IPV6_HOPLIMIT, IPV6_TCLASS and IPV6_FLOWINFO", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, 17), cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0xb8), cmsg{socket.IPPROTO_IPV6, socket.IPV6_FLOWINFO, binary.BigEndian.AppendUint32(nil, 0xbeef)})},
	{name: "IPV6_DONTFRAG 1, 1000 bytes", v6: true, size: 1000, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1))},
	{name: "IPV6_DONTFRAG 1, 2000 bytes", v6: true, size: 2000, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1))},
	{name: "IPV6_DONTFRAG 0, 2000 bytes", v6: true, size: 2000, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 0))},
	{name: "IPV6_TCLASS 256", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 256))},
	{name: "IPV6_HOPLIMIT 256", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, 256))},
	{name: "IPV6_DONTFRAG 2", v6: true, size: 100, ctl: ctls(cInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 2))},
	{name: "IPV6_PKTINFO foreign source", v6: true, size: 100, ctl: ctls(cmsg{socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, append(netip.MustParseAddr("fd00:77::99").AsSlice(), 0, 0, 0, 0)})},
	{name: "IPV6_PKTINFO source", v6: true, size: 100, ctl: func(own netip.Addr, ifindex int) []cmsg {
		d := make([]byte, 20)
		copy(d, own.AsSlice())
		binary.NativeEndian.PutUint32(d[16:], uint32(ifindex))
		return []cmsg{{socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, d}}
	}},
	{name: "UDP_SEGMENT 1000 of 4000, IPv6", v6: true, size: 4000, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1000)})},
	{name: "UDP_SEGMENT 1000 of 2500, IPV6_HOPLIMIT 3, IPV6_TCLASS 0x10", v6: true, size: 2500, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1000)}, cInt(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, 3), cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x10))},
	{name: "UDP_SEGMENT 1500 of 3000, IPv6 (above the MTU)", v6: true, size: 3000, ctl: ctls(cmsg{socket.SOL_UDP, socket.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1500)})},
}

// sendPayload is size bytes of the case's tag, "cNN-" and four more
// bytes, repeated: every UDP_SEGMENT segment of a multiple of 8 starts
// with the tag.
func sendPayload(i, size int) []byte {
	tag := fmt.Sprintf("c%02d-%04d", i, i*37%10000)
	b := make([]byte, size)
	for j := range b {
		b[j] = tag[j%8]
	}
	return b
}

func cmsgsJSON(ms []cmsg) [][3]any {
	out := [][3]any{}
	for _, m := range ms {
		out = append(out, [3]any{m.level, m.typ, hex.EncodeToString(m.data)})
	}
	return out
}

// TestInteropCmsgSend: sockstack sends over the TAP, with SendMsgControl,
// a datagram per case of sendSpecs (IP_TTL, IP_TOS as an int and as a
// byte, IP_RETOPTS with Record Route and Timestamps, IP_PKTINFO,
// IP_OPTIONS from setsockopt and an empty IP_RETOPTS over it,
// UDP_SEGMENT, IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_FLOWINFO,
// IPV6_DONTFRAG, IPV6_PKTINFO), and the lab's kernel sends the same with
// Python's socket.sendmsg and the same ancillary data. Both results
// (bytes sent or errno) agree, tcpdump on the TAP sees the same headers
// from both (TTL, TOS, DF, options with each sender's own address and
// clock, hop limit, traffic class, flow label, fragments), and each
// receiver (Linux's for sockstack, sockstack's for Linux) reads the same
// datagrams (UDP_SEGMENT's segments). The lab's kernel sends without
// automatic flow labels (net.ipv6.auto_flowlabels=0), as sockstack does.
func TestInteropCmsgSend(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "tcpdump")
	l.enable6(t)
	l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv6.auto_flowlabels=0")
	h := l.startStack6(t, stack.Options{})
	var kIf int
	fmt.Sscan(l.run(t, 5*time.Second, nil, "cat", "/sys/class/net/"+tapName+"/ifindex"), &kIf)
	const port = 7400
	capt := l.capture(t, tapName, "ip", "or", "ip6")
	sink := l.startPy(t, pyUDPSink, map[string]any{"addrs": []string{kernelIP.String(), kernel6.String()}, "port": port})

	// sockstack's receivers of the kernel's sends.
	type got struct {
		lines []string
		err   error
	}
	recvd := make(chan got, 2)
	for _, a := range []netip.Addr{stackIP, stack6} {
		fam := socket.AF_INET
		if a.Is6() {
			fam = socket.AF_INET6
		}
		r := udpRecvSock(t, h, fam, netip.AddrPortFrom(a, port), nil)
		go func() {
			var g got
			buf := make([]byte, 65536)
			for {
				n, err := r.Recv(buf, 0)
				if err != nil {
					g.err = err
					break
				}
				if string(buf[:n]) == "END" {
					break
				}
				g.lines = append(g.lines, fmt.Sprintf("%d %d %s", map[bool]int{false: 4, true: 6}[a.Is6()], n, buf[:min(n, 8)]))
			}
			recvd <- g
		}()
	}

	// sockstack's sends.
	var sRes []string
	for i, c := range sendSpecs {
		fam, own, to := socket.AF_INET, stackIP, kernelIP
		if c.v6 {
			fam, own, to = socket.AF_INET6, stack6, kernel6
		}
		if c.mapped {
			fam, to = socket.AF_INET6, netip.AddrFrom16(to.As16())
		}
		s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range c.opts {
			if err := s.SetSockOpt(o.level, o.typ, o.data); err != nil {
				t.Fatalf("%s: setsockopt: %v", c.name, err)
			}
		}
		if c.group {
			if err := s.SetSockOpt(socket.SOL_IP, socket.IP_MULTICAST_IF, own); err != nil {
				t.Fatal(err)
			}
			to = sendGroup
		}
		n, err := s.SendMsgControl(sendPayload(i, c.size), layCmsgs(c.ctl(own, h.nic.ID())), 0, socket.InetAddr(netip.AddrPortFrom(to, port)))
		var en syscall.Errno
		switch {
		case err == nil:
			sRes = append(sRes, fmt.Sprintf("OK %d", n))
		case errors.As(err, &en):
			sRes = append(sRes, fmt.Sprintf("ERR %d", int(en)))
		default:
			t.Fatalf("%s: %v", c.name, err)
		}
		s.Close()
	}
	for _, to := range []netip.Addr{kernelIP, kernel6} {
		fam := socket.AF_INET
		if to.Is6() {
			fam = socket.AF_INET6
		}
		s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendTo([]byte("END"), 0, socket.InetAddr(netip.AddrPortFrom(to, port))); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}

	// The kernel's.
	var kc []sendCase
	for i, c := range sendSpecs {
		own, to := kernelIP, stackIP
		if c.v6 {
			own, to = kernel6, stack6
		}
		var so [][3]any
		for _, o := range c.opts {
			so = append(so, [3]any{o.level, o.typ, hex.EncodeToString(o.data)})
		}
		if c.group {
			so = append(so, [3]any{socket.SOL_IP, socket.IP_MULTICAST_IF, hex.EncodeToString(own.AsSlice())})
			to = sendGroup
		}
		if c.mapped {
			to = netip.AddrFrom16(to.As16())
		}
		kc = append(kc, sendCase{V6: c.v6 || c.mapped, Dst: to.String(), Port: port, Data: hex.EncodeToString(sendPayload(i, c.size)),
			Anc: cmsgsJSON(c.ctl(own, kIf)), SockOpts: so})
	}
	kout := l.run(t, 15*time.Second, nil, "python3", "-c", pySendCtl, mustJSON(t, map[string]any{"cases": kc, "ends": []string{stackIP.String(), stack6.String()}, "port": port}))
	kRes := strings.Split(strings.TrimSpace(kout), "\n")
	if len(kRes) != len(sendSpecs) {
		t.Fatalf("python said %q", kout)
	}
	for i, c := range sendSpecs {
		if sRes[i] != kRes[i] {
			t.Errorf("%s: sockstack %s, linux %s", c.name, sRes[i], kRes[i])
		}
	}

	// What each receiver read.
	var sink4, sink6 []string
	for {
		line := sink.next(t, 15*time.Second)
		if line == "DONE" || line == "" {
			if line == "" {
				t.Fatalf("the kernel's receiver ended early\n%s", sink.out.String())
			}
			break
		}
		if strings.HasPrefix(line, "6 ") {
			sink6 = append(sink6, line)
		} else {
			sink4 = append(sink4, line)
		}
	}
	// Linux's receiver got each of sockstack's sends that went, cut at
	// its UDP_SEGMENT size.
	var want4, want6 []string
	for i, c := range sendSpecs {
		if !strings.HasPrefix(sRes[i], "OK") || c.group {
			continue
		}
		fam, gso := 4, c.size
		if c.v6 {
			fam = 6
		}
		for _, m := range c.ctl(netip.Addr{}, 0) {
			if m.level == socket.SOL_UDP && m.typ == socket.UDP_SEGMENT {
				gso = int(binary.NativeEndian.Uint16(m.data))
			}
		}
		pl := sendPayload(i, c.size)
		for off := 0; off < len(pl); off += gso {
			line := fmt.Sprintf("%d %d %s", fam, min(gso, len(pl)-off), pl[off:off+8])
			if c.v6 {
				want6 = append(want6, line)
			} else {
				want4 = append(want4, line)
			}
		}
	}
	if strings.Join(sink4, "; ") != strings.Join(want4, "; ") || strings.Join(sink6, "; ") != strings.Join(want6, "; ") {
		t.Errorf("linux's receiver read\n%s\n%s\nwant\n%s\n%s", sink4, sink6, want4, want6)
	}
	for _, want := range [][]string{sink4, sink6} {
		g := <-recvd
		if g.err != nil {
			t.Fatalf("sockstack's receiver: %v", g.err)
		}
		if len(g.lines) > 0 && strings.HasPrefix(g.lines[0], "6 ") {
			want = sink6
		} else if len(g.lines) > 0 {
			want = sink4
		}
		if strings.Join(g.lines, "; ") != strings.Join(want, "; ") {
			t.Errorf("the receivers read different datagrams:\nsockstack's (from linux): %s\nlinux's (from sockstack): %s", strings.Join(g.lines, "; "), strings.Join(want, "; "))
		}
	}

	// What crossed the TAP.
	ends := func(ps []wirePkt) bool {
		n := 0
		for _, p := range ps {
			if p.dport == port && string(p.body) == "END" {
				n++
			}
		}
		return n == 4
	}
	ps := capt.wait(t, "the four END datagrams", ends)
	for i, c := range sendSpecs {
		tag := sendPayload(i, 4)
		var sides [2]string
		for j, src := range []netip.Addr{stackIP, kernelIP} {
			if c.v6 {
				src = []netip.Addr{stack6, kernel6}[j]
			}
			sides[j] = wireSummary(t, c.name, ps, src, tag)
		}
		t.Logf("%s: %s", c.name, sides[0])
		if sides[0] != sides[1] {
			t.Errorf("%s: on the wire\nsockstack: %s\nlinux:     %s", c.name, sides[0], sides[1])
		}
	}
}

// wireSummary describes the packets src sent for the case whose payload
// starts with tag (fragments by their datagram's ID), with src's address
// and clock in IPv4 options replaced by placeholders.
func wireSummary(t *testing.T, what string, ps []wirePkt, src netip.Addr, tag []byte) string {
	t.Helper()
	ids := map[uint32]bool{}
	for _, p := range ps {
		if p.src == src && p.off == 0 && bytes.HasPrefix(p.body, tag) {
			ids[p.id] = true
		}
	}
	var out []string
	for _, p := range ps {
		if p.src != src || !(p.off == 0 && bytes.HasPrefix(p.body, tag) || p.frag && ids[p.id]) {
			continue
		}
		if p.v6 {
			out = append(out, fmt.Sprintf("[hlim %d tc %#x flow %#x frag %v off %d mf %v plen %d udp %d]", p.ttl, p.tos, p.flow, p.frag, p.off, p.mf, p.length, p.udpLen))
			continue
		}
		o := bytes.ReplaceAll(p.opts, src.AsSlice(), tokOwn[:4])
		normTimes(t, what, o)
		out = append(out, fmt.Sprintf("[ttl %d tos %#x df %v mf %v off %d len %d opts %x udp %d]", p.ttl, p.tos, p.df, p.mf, p.off, p.length, o, p.udpLen))
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, " ")
}

// TestInteropCmsgSendFirstInOrder: six datagrams sent back to back with
// SendMsgControl to a kernel address sockstack has not resolved yet
// (a new one each round, IPv4 and IPv6) reach the kernel's socket in
// the order they were sent: those that wait for ARP / NDP go out before
// any sent while they are being written. Before the ND cache did so,
// the first IPv6 one came after the others in 6 to 15 rounds of 40.
func TestInteropCmsgSendFirstInOrder(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	const port, rounds = 7401, 20
	for r := range rounds {
		for _, a := range []netip.Addr{netip.MustParseAddr(fmt.Sprintf("10.77.0.%d", 100+r)), netip.MustParseAddr(fmt.Sprintf("fd00:77::1:%x", r+1))} {
			fam, v, plen, ctl := socket.AF_INET, "4", "/24", layCmsgs([]cmsg{cInt(socket.SOL_IP, socket.IP_TOS, 0x10)})
			if a.Is6() {
				fam, v, plen, ctl = socket.AF_INET6, "6", "/64", layCmsgs([]cmsg{cInt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x10)})
			}
			l.run(t, 5*time.Second, nil, "ip", "addr", "add", a.String()+plen, "dev", tapName, "nodad")
			sink := l.startPy(t, pyUDPSink, map[string]any{"addrs": []string{a.String()}, "port": port})
			s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 6 {
				d := fmt.Sprintf("d%d", i)
				if _, err := s.SendMsgControl([]byte(d), ctl, 0, socket.InetAddr(netip.AddrPortFrom(a, port))); err != nil {
					t.Fatal(err)
				}
				want = append(want, v+" 2 "+d)
			}
			s.SendTo([]byte("END"), 0, socket.InetAddr(netip.AddrPortFrom(a, port)))
			s.Close()
			var got []string
			for line := sink.next(t, 10*time.Second); line != "DONE"; line = sink.next(t, 10*time.Second) {
				if line == "" {
					t.Fatalf("the kernel's receiver ended early\n%s", sink.out.String())
				}
				got = append(got, line)
			}
			if strings.Join(got, "; ") != strings.Join(want, "; ") {
				t.Errorf("round %d, %v: the kernel read %q, want %q", r, a, got, want)
			}
		}
	}
}
