package trace

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

var (
	v6A   = netip.MustParseAddr("2001:db8::1")
	v6B   = netip.MustParseAddr("2001:db8::2")
	llA   = netip.MustParseAddr("fe80::1")
	llB   = netip.MustParseAddr("fe80::2")
	macA6 = wire.MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	macB6 = wire.MAC{0x52, 0x54, 0, 0xab, 0xcd, 0xef}
)

// ext6 is one extension header in front of the upper layer.
type ext6 struct {
	typ  uint8
	body []byte // after the next-header byte (length byte included for HBH/DO)
}

// pkt6 builds an Ethernet frame with an IPv6 packet: the extension
// headers, then the upper-layer bytes l4 of protocol proto, whose
// checksum (TCP, UDP, ICMPv6) is filled unless noSum.
func pkt6(src, dst netip.Addr, hop uint8, exts []ext6, proto uint8, l4 []byte, noSum bool) []byte {
	var chain []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		chain = append(chain, next)
		chain = append(chain, e.body...)
	}
	first := proto
	if len(exts) > 0 {
		first = exts[0].typ
	}
	ip := make([]byte, 40+len(chain)+len(l4))
	h := wire.IPv6Header{PayloadLen: len(chain) + len(l4), NextHeader: first, HopLimit: hop, Src: src, Dst: dst}
	h.Put(ip)
	copy(ip[40:], chain)
	t := ip[40+len(chain):]
	copy(t, l4)
	if !noSum {
		ps := wire.PseudoHeaderSum6(src.As16(), dst.As16(), proto, len(t))
		switch proto {
		case wire.ProtoTCP:
			wire.TCP(t).FillChecksum(ps)
		case wire.ProtoUDP:
			wire.UDP(t).FillChecksum(ps)
		case wire.ProtoICMPv6:
			wire.ICMPv6(t).FillChecksum(ps)
		}
	}
	dmac := macB6
	if dst.IsMulticast() {
		dmac = wire.IPv6MulticastMAC(dst)
	}
	f := make([]byte, 14+len(ip))
	wire.PutEthernet(f, dmac, macA6, wire.EtherTypeIPv6)
	copy(f[14:], ip)
	return f
}

func icmp6(typ, code uint8, rest uint32, body []byte) []byte {
	m := make([]byte, 8+len(body))
	m[0], m[1] = typ, code
	wire.ICMPv6(m).SetRest(rest)
	copy(m[8:], body)
	return m
}

func nd(put func(b []byte) int) []byte {
	b := make([]byte, 128)
	return b[:put(b)]
}

func udp6Dgram(sport, dport uint16, payload string) []byte { return udpDgram(sport, dport, payload) }

// v6Frames are the IPv6 frames the decoder and the filter are checked
// on, each against tcpdump.
func v6Frames() []struct {
	name  string
	frame []byte
} {
	echoData := bytes.Repeat([]byte{0xab}, 56)
	inner := pkt6(v6B, v6A, 64, nil, wire.ProtoUDP, udp6Dgram(5000, 9, "hello"), false)[14:]
	syn := tcpSeg(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 64800,
		Options: wire.TCPOptions{MSS: 1440, HasMSS: true}}, "")
	badUDP := udp6Dgram(5000, 6000, "0123456789")
	fragHdr := func(off int, more bool) []byte {
		b := make([]byte, 8)
		wire.PutIPv6Frag(b, wire.ProtoUDP, off, more, 0x1234)
		return b[1:]
	}
	bigUDP := udp6Dgram(5000, 7, strings.Repeat("x", 24))
	hbhRA := []byte{0, 5, 2, 0, 0, 1, 0} // router alert (MLD), PadN
	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	return []struct {
		name  string
		frame []byte
	}{
		{"echo request", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6EchoRequest, 0, 7<<16|1, echoData), false)},
		{"echo reply", pkt6(v6B, v6A, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6EchoReply, 0, 7<<16|1, echoData), false)},
		{"neighbor solicitation", pkt6(llA, wire.SolicitedNode(llB), 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int { return wire.PutNS(b, llB, macA6) }), false)},
		{"DAD solicitation", pkt6(netip.IPv6Unspecified(), wire.SolicitedNode(llA), 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int { return wire.PutNS(b, llA, wire.MAC{}) }), false)},
		{"neighbor advertisement", pkt6(llB, llA, 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int {
			return wire.PutNA(b, llB, wire.NAFlagSolicited|wire.NAFlagOverride, macB6)
		}), false)},
		{"router solicitation", pkt6(llA, wire.IPv6AllRouters, 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int { return wire.PutRS(b, macA6) }), false)},
		{"router advertisement", pkt6(llB, wire.IPv6AllNodes, 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int {
			n := wire.PutRA(b, wire.RAHeader{CurHopLimit: 64, RouterLifetime: 1800})
			n += wire.PutNDPLinkOpt(b[n:], wire.NDPOptSourceLL, macB6)
			n += wire.PutNDPMTUOpt(b[n:], 1500)
			return n + wire.PutNDPPrefixOpt(b[n:], pfx, wire.PrefixFlagOnLink|wire.PrefixFlagAuto, 86400, 14400)
		}), false)},
		{"redirect", pkt6(llB, llA, 255, nil, wire.ProtoICMPv6, nd(func(b []byte) int {
			return wire.PutRedirect(b, netip.MustParseAddr("fe80::3"), netip.MustParseAddr("2001:db8:99::5"))
		}), false)},
		{"udp", pkt6(v6A, v6B, 64, nil, wire.ProtoUDP, udp6Dgram(5000, 6000, "0123456789"), false)},
		{"tcp syn", pkt6(v6A, v6B, 64, nil, wire.ProtoTCP, syn, false)},
		{"port unreachable", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6DestUnreach, wire.ICMPv6PortUnreach, 0, inner), false)},
		{"no route", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6DestUnreach, wire.ICMPv6NoRoute, 0, inner), false)},
		{"packet too big", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6PacketTooBig, 0, 1280, inner), false)},
		{"time exceeded", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6TimeExceeded, 0, 0, inner), false)},
		{"reassembly timeout", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6TimeExceeded, 1, 0, inner), false)},
		{"parameter problem", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6ParamProblem, 1, 40, inner), false)},
		{"mldv2 report", pkt6(llA, netip.MustParseAddr("ff02::16"), 1, []ext6{{wire.ProtoHopByHop, hbhRA}}, wire.ProtoICMPv6, nd(func(b []byte) int {
			return wire.PutMLDv2Report(b, []wire.MLDRecord{{Type: 4, Group: netip.MustParseAddr("ff02::1:ff00:1")}})
		}), false)},
		{"first fragment", pkt6(v6A, v6B, 64, []ext6{{wire.ProtoIPv6Frag, fragHdr(0, true)}}, wire.ProtoUDP, bigUDP[:16], true)},
		{"last fragment", pkt6(v6A, v6B, 64, []ext6{{wire.ProtoIPv6Frag, fragHdr(16, false)}}, wire.ProtoUDP, bigUDP[16:], true)},
		{"bad udp checksum", func() []byte {
			f := pkt6(v6A, v6B, 64, nil, wire.ProtoUDP, badUDP, false)
			f[len(f)-1] ^= 1
			return f
		}()},
		{"no next header", pkt6(v6A, v6B, 64, nil, 59, nil, true)},
		{"prohibited", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited, 0, inner), false)},
		{"beyond scope", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6DestUnreach, wire.ICMPv6BeyondScope, 0, inner), false)},
		{"address unreachable", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6DestUnreach, wire.ICMPv6AddrUnreach, 0, inner), false)},
		{"erroneous header field", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6ParamProblem, 0, 6, inner), false)},
		{"unrecognized option", pkt6(v6A, v6B, 64, nil, wire.ProtoICMPv6, icmp6(wire.ICMPv6ParamProblem, 2, 42, inner), false)},
		{"mld query", pkt6(llA, wire.IPv6AllNodes, 1, []ext6{{wire.ProtoHopByHop, hbhRA}}, wire.ProtoICMPv6, nd(func(b []byte) int {
			return wire.PutMLDQuery(b, netip.IPv6Unspecified(), 10*time.Second)
		}), false)},
		{"tcp after destination options", pkt6(v6A, v6B, 64, []ext6{{wire.ProtoIPv6Opts, []byte{0, 1, 4, 0, 0, 0, 0}}}, wire.ProtoTCP, syn, false)},
		{"echo in a first fragment", pkt6(v6A, v6B, 64, []ext6{{wire.ProtoIPv6Frag, func() []byte {
			b := make([]byte, 8)
			wire.PutIPv6Frag(b, wire.ProtoICMPv6, 0, true, 9)
			return b[1:]
		}()}}, wire.ProtoICMPv6, icmp6(wire.ICMPv6EchoRequest, 0, 1<<16|2, echoData[:8]), true)},
		{"unknown protocol", pkt6(v6A, v6B, 64, nil, 99, []byte{1, 2, 3, 4}, true)},
	}
}

// tcpdumpLines runs tcpdump -nn on a pcap of frames (nil without tcpdump).
func tcpdumpLines(t *testing.T, frames [][]byte, filter string) []string {
	t.Helper()
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil
	}
	path := filepath.Join(t.TempDir(), "f.pcap")
	var buf bytes.Buffer
	w, err := link.NewPcapWriter(&buf, 1, link.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		w.WriteFrame(time.Unix(int64(i), 0), f)
	}
	w.Flush()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-nn", "-t", "-r", path}
	if filter != "" {
		args = append(args, filter)
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("tcpdump %q: %v", filter, err)
	}
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// golden6 is each v6Frames line as tcpdump 4.99 -nn prints it, except
// the bad checksum note (tcpdump shows it only with -v).
var golden6 = map[string]string{
	"echo request":                  "IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 7, seq 1, length 64",
	"echo reply":                    "IP6 2001:db8::2 > 2001:db8::1: ICMP6, echo reply, id 7, seq 1, length 64",
	"neighbor solicitation":         "IP6 fe80::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has fe80::2, length 32",
	"DAD solicitation":              "IP6 :: > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has fe80::1, length 24",
	"neighbor advertisement":        "IP6 fe80::2 > fe80::1: ICMP6, neighbor advertisement, tgt is fe80::2, length 32",
	"router solicitation":           "IP6 fe80::1 > ff02::2: ICMP6, router solicitation, length 16",
	"router advertisement":          "IP6 fe80::2 > ff02::1: ICMP6, router advertisement, length 64",
	"redirect":                      "IP6 fe80::2 > fe80::1: ICMP6, redirect, 2001:db8:99::5 to fe80::3, length 40",
	"udp":                           "IP6 2001:db8::1.5000 > 2001:db8::2.6000: UDP, length 10",
	"tcp syn":                       "IP6 2001:db8::1.40000 > 2001:db8::2.80: Flags [S], seq 1000, win 64800, options [mss 1440], length 0",
	"port unreachable":              "IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, unreachable port, 2001:db8::1 udp port 9, length 61",
	"no route":                      "IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, unreachable route 2001:db8::1, length 61",
	"packet too big":                "IP6 2001:db8::1 > 2001:db8::2: ICMP6, packet too big, mtu 1280, length 61",
	"time exceeded":                 "IP6 2001:db8::1 > 2001:db8::2: ICMP6, time exceeded in-transit for 2001:db8::1, length 61",
	"reassembly timeout":            "IP6 2001:db8::1 > 2001:db8::2: ICMP6, time exceeded in-transit (reassembly), length 61",
	"parameter problem":             "IP6 2001:db8::1 > 2001:db8::2: ICMP6, parameter problem, next header - octet 40, length 61",
	"mldv2 report":                  "IP6 fe80::1 > ff02::16: HBH ICMP6, multicast listener report v2, 1 group record(s), length 28",
	"first fragment":                "IP6 2001:db8::1 > 2001:db8::2: frag (0|16) 5000 > 7: UDP, length 24",
	"last fragment":                 "IP6 2001:db8::1 > 2001:db8::2: frag (16|16)",
	"bad udp checksum":              "IP6 2001:db8::1.5000 > 2001:db8::2.6000: UDP, length 10 [bad udp cksum 0x7453 -> 0x7454]",
	"no next header":                "IP6 2001:db8::1 > 2001:db8::2: no next header",
	"prohibited":                    "IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable,  unreachable prohibited 2001:db8::1, length 61",
	"beyond scope":                  "IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, beyond scope 2001:db8::1, source address 2001:db8::2, length 61",
	"address unreachable":           "IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, unreachable address 2001:db8::1, length 61",
	"erroneous header field":        "IP6 2001:db8::1 > 2001:db8::2: ICMP6, parameter problem, erroneous - octet 6, length 61",
	"unrecognized option":           "IP6 2001:db8::1 > 2001:db8::2: ICMP6, parameter problem, option - octet 42, length 61",
	"mld query":                     "IP6 fe80::1 > ff02::1: HBH ICMP6, multicast listener query v2 [gaddr ::], length 28",
	"tcp after destination options": "IP6 2001:db8::1 > 2001:db8::2: DSTOPT 40000 > 80: Flags [S], seq 1000, win 64800, options [mss 1440], length 0",
	"echo in a first fragment":      "IP6 2001:db8::1 > 2001:db8::2: frag (0|16) ICMP6, echo request, id 1, seq 2, length 16",
	"unknown protocol":              "IP6 2001:db8::1 > 2001:db8::2:  ip-proto-99 4",
}

// The IPv6 lines are tcpdump's; where tcpdump is installed they are
// compared with its live output too (the golden lines came from it).
func TestLine6(t *testing.T) {
	fr := v6Frames()
	var frames [][]byte
	for _, f := range fr {
		want, ok := golden6[f.name]
		if !ok {
			t.Fatalf("no golden line for %s", f.name)
		}
		if got := Line(f.frame, true); got != want {
			t.Errorf("%s:\n got %s\nwant %s", f.name, got, want)
		}
		if got := Line(f.frame[14:], false); got != want {
			t.Errorf("bare %s:\n got %s\nwant %s", f.name, got, want)
		}
		frames = append(frames, f.frame)
	}
	live := tcpdumpLines(t, frames, "")
	if live == nil {
		t.Log("tcpdump not installed: compared with the golden lines only")
		return
	}
	if len(live) != len(fr) {
		t.Fatalf("tcpdump printed %d lines for %d frames", len(live), len(fr))
	}
	for i, f := range fr {
		want := strings.TrimSuffix(golden6[f.name], " [bad udp cksum 0x7453 -> 0x7454]")
		if live[i] != want {
			t.Errorf("%s: tcpdump says\n %s\nwe have\n %s", f.name, live[i], want)
		}
	}
}

// Malformed IPv6 never panics and says what is wrong.
func TestLine6Malformed(t *testing.T) {
	for _, f := range v6Frames() {
		for n := 0; n < len(f.frame); n++ {
			Line(f.frame[:n], true)
			if n >= 14 {
				Line(f.frame[14:n], false)
			}
		}
	}
	short := pkt6(v6A, v6B, 64, nil, wire.ProtoUDP, udp6Dgram(1, 2, "abc"), false)
	if got := Line(short[:60], true); !strings.Contains(got, "truncated") {
		t.Errorf("cut packet: %s", got)
	}
}
