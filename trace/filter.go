package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Filter selects frames for sniffing, in tcpdump's (pcap-filter's)
// language: "host", "net", "port", "portrange" with "src"/"dst" and the
// protocols ip, ip6, arp, tcp, udp, icmp, icmp6 and ether ("ether host
// 52:54:00:12:34:56") as qualifiers, "vlan [ID]" (after which, as in
// libpcap, the rest of the expression looks inside the 802.1Q tag), combined with and/or/not (&&, ||,
// !) and parentheses. Hosts and nets are IPv4 or IPv6 ("host fe80::1",
// "net 2001:db8::/32"); as in libpcap, "tcp", "udp" and "icmp6" look
// through one IPv6 fragment header, ports over IPv6 are read right after
// the fixed header only. As in tcpdump, "not" binds tightest while "and"
// and "or" have equal precedence and group from the left, and an ID
// without a keyword repeats the previous qualifiers ("port 53 or 67").
// The expression is compiled once into a tree of closures; the zero
// Filter matches everything.
type Filter struct {
	match func(*facts) bool
	expr  string
	vlan  bool // the expression says "vlan": read the tagged frame's inside too
}

// facts is what a frame shows the matchers, read once per frame at the
// byte offsets tcpdump's compiled filter reads (Ethernet type, IPv4
// protocol, addresses and ports of first fragments, ARP protocol
// addresses). A field too short to read is not valid and matches nothing.
type facts struct {
	ip, arp        bool // by Ethernet type (or a bare IPv4 packet)
	ip6            bool // by Ethernet type (or a bare IPv6 packet)
	ipAddrs        bool // the IP addresses (of either family) are readable
	proto          uint8
	hasProto       bool
	fragProto      uint8 // IPv6: the header after a fragment header (libpcap's look-through)
	hasFragProto   bool
	macs           bool // Ethernet addresses (not on a bare packet)
	srcMAC, dstMAC [6]byte
	src, dst       netip.Addr
	ports          bool // a TCP/UDP first fragment whose ports are readable
	sport, dport   uint16
	arpSrc, arpDst netip.Addr
	arpAddrs       bool
	tagged         bool   // an 802.1Q frame
	vid            uint16 // its VLAN id
	inner          *facts // what follows the tag (libpcap's offsets after "vlan")
}

// Ethernet types and IP protocols the language names.
const (
	etherIPv4   = 0x0800
	etherARP    = 0x0806
	etherIPv6   = 0x86dd
	etherVLAN   = 0x8100
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoFrag6  = 44
	protoICMPv6 = 58
)

// Match reports whether frame passes the filter. ethernet says whether
// the frame starts with an Ethernet header or is a bare IPv4 packet.
func (f Filter) Match(frame []byte, ethernet bool) bool {
	if f.match == nil {
		return true
	}
	var fc, in facts
	fc.read(frame, ethernet)
	if f.vlan && fc.tagged {
		// The rest of the frame from the tag's EtherType on, with the
		// same Ethernet addresses.
		in.read(frame[4:], true)
		in.srcMAC, in.dstMAC = fc.srcMAC, fc.dstMAC
		fc.inner = &in
	}
	return f.match(&fc)
}

func (fc *facts) read(frame []byte, ethernet bool) {
	p := frame
	if ethernet {
		if len(frame) < 14 {
			return
		}
		fc.macs = true
		fc.dstMAC, fc.srcMAC = [6]byte(frame[0:6]), [6]byte(frame[6:12])
		// A VLAN tag is looked through only after the "vlan" keyword
		// (Match reads the inside then), as tcpdump does.
		switch binary.BigEndian.Uint16(frame[12:14]) {
		case etherIPv4:
			fc.ip = true
		case etherARP:
			fc.arp = true
		case etherIPv6:
			fc.ip6 = true
		case etherVLAN:
			if len(frame) >= 18 {
				fc.tagged, fc.vid = true, binary.BigEndian.Uint16(frame[14:16])&0x0fff
			}
			return
		default:
			return
		}
		p = frame[14:]
	} else {
		switch {
		case len(p) >= 1 && p[0]>>4 == 4:
			fc.ip = true
		case len(p) >= 1 && p[0]>>4 == 6:
			fc.ip6 = true
		default:
			return
		}
	}
	if fc.ip6 {
		fc.read6(p)
		return
	}
	if fc.arp {
		if len(p) >= 28 {
			fc.arpAddrs = true
			fc.arpSrc = netip.AddrFrom4([4]byte(p[14:18]))
			fc.arpDst = netip.AddrFrom4([4]byte(p[24:28]))
		}
		return
	}
	if len(p) >= 10 {
		fc.proto, fc.hasProto = p[9], true
	}
	if len(p) >= 20 {
		fc.ipAddrs = true
		fc.src = netip.AddrFrom4([4]byte(p[12:16]))
		fc.dst = netip.AddrFrom4([4]byte(p[16:20]))
	}
	if fc.hasProto && (fc.proto == protoTCP || fc.proto == protoUDP) && len(p) >= 8 &&
		binary.BigEndian.Uint16(p[6:8])&0x1fff == 0 {
		hl := int(p[0]&0x0f) * 4
		if len(p) >= hl+4 {
			fc.ports = true
			fc.sport = binary.BigEndian.Uint16(p[hl:])
			fc.dport = binary.BigEndian.Uint16(p[hl+2:])
		}
	}
}

// read6 reads an IPv6 packet at the offsets libpcap's IPv6 code reads.
func (fc *facts) read6(p []byte) {
	if len(p) >= 7 {
		fc.proto, fc.hasProto = p[6], true
	}
	if len(p) >= 40 {
		fc.ipAddrs = true
		fc.src = netip.AddrFrom16([16]byte(p[8:24]))
		fc.dst = netip.AddrFrom16([16]byte(p[24:40]))
	}
	if fc.hasProto && fc.proto == protoFrag6 && len(p) >= 41 {
		fc.fragProto, fc.hasFragProto = p[40], true
	}
	if fc.hasProto && (fc.proto == protoTCP || fc.proto == protoUDP) && len(p) >= 44 {
		fc.ports = true
		fc.sport = binary.BigEndian.Uint16(p[40:])
		fc.dport = binary.BigEndian.Uint16(p[42:])
	}
}

// String is the normalised expression.
func (f Filter) String() string { return f.expr }

// ParseFilter compiles an expression; an empty one matches everything.
func ParseFilter(expr string) (Filter, error) {
	toks := tokenize(expr)
	f := Filter{expr: strings.Join(toks, " ")}
	if len(toks) == 0 {
		return f, nil
	}
	p := &parser{toks: toks}
	m, err := p.expr()
	if err != nil {
		return Filter{}, fmt.Errorf("filter %q: %w", f.expr, err)
	}
	if p.pos < len(toks) {
		return Filter{}, fmt.Errorf("filter %q: unexpected %q", f.expr, toks[p.pos])
	}
	f.match = m
	f.vlan = p.vlan
	return f, nil
}

// tokenize splits on spaces and around parentheses and ! (tcpdump lets
// them touch their neighbours: "(port 53)", "!tcp").
func tokenize(s string) []string {
	var out []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '(' || c == ')':
			flush()
			out = append(out, string(c))
		case c == '!' && cur.Len() == 0:
			out = append(out, "!")
		case (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c:
			flush()
			out = append(out, s[i:i+2])
			i++
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

type matcher = func(*facts) bool

// qual is the qualifiers of a primitive, kept for a following bare ID.
type qual struct {
	proto string // "", ip, ip6, arp, ether, tcp, udp, icmp, icmp6
	dir   string // "", src, dst, "src or dst", "src and dst"
	typ   string // host, net, port
}

type parser struct {
	toks []string
	pos  int
	last *qual
	vlan bool // a "vlan" was read: later primitives look inside the tag
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return strings.ToLower(p.toks[p.pos])
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

// expr: term { (and|or) term }, left to right with equal precedence.
func (p *parser) expr() (matcher, error) {
	m, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		switch p.peek() {
		case "and", "&&":
			p.next()
			r, err := p.term()
			if err != nil {
				return nil, err
			}
			l := m
			m = func(f *facts) bool { return l(f) && r(f) }
		case "or", "||":
			p.next()
			r, err := p.term()
			if err != nil {
				return nil, err
			}
			l := m
			m = func(f *facts) bool { return l(f) || r(f) }
		default:
			return m, nil
		}
	}
}

func (p *parser) term() (matcher, error) {
	switch t := p.peek(); t {
	case "":
		return nil, fmt.Errorf("expression ends early")
	case "not", "!":
		p.next()
		m, err := p.term()
		if err != nil {
			return nil, err
		}
		return func(f *facts) bool { return !m(f) }, nil
	case "(":
		p.next()
		m, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return m, nil
	case ")", "and", "or", "&&", "||":
		return nil, fmt.Errorf("unexpected %q", t)
	case "vlan":
		p.next()
		if p.vlan {
			return nil, fmt.Errorf("a second vlan (stacked tags) is not supported")
		}
		p.vlan = true
		id := -1
		if v, err := strconv.ParseUint(p.peek(), 10, 16); err == nil {
			if v > 4095 {
				return nil, fmt.Errorf("VLAN id %d: want 0..4095", v)
			}
			id = int(v)
			p.next()
		}
		return func(f *facts) bool { return f.tagged && (id < 0 || int(f.vid) == id) }, nil
	}
	inside := p.vlan
	m, err := p.primitive()
	if err != nil || !inside {
		return m, err
	}
	// After "vlan", as libpcap: the primitive reads the tagged frame's
	// inside (and nothing in an untagged frame).
	return func(f *facts) bool { return f.inner != nil && m(f.inner) }, nil
}

func isProto(s string) bool {
	switch s {
	case "ip", "ip6", "arp", "ether", "tcp", "udp", "icmp", "icmp6":
		return true
	}
	return false
}

func isType(s string) bool { return s == "host" || s == "net" || s == "port" || s == "portrange" }

func (p *parser) primitive() (matcher, error) {
	var q qual
	explicit := false
	if t := p.peek(); isProto(t) {
		q.proto = p.next()
		explicit = true
	}
	if t := p.peek(); t == "src" || t == "dst" {
		q.dir = p.next()
		explicit = true
		// "src or dst port 53", "src and dst host X"
		if c := p.peek(); (c == "or" || c == "and") && p.pos+1 < len(p.toks) {
			if o := strings.ToLower(p.toks[p.pos+1]); (o == "src" || o == "dst") && o != q.dir {
				p.pos += 2
				q.dir = "src " + c + " dst"
			}
		}
	}
	if t := p.peek(); isType(t) {
		q.typ = p.next()
		explicit = true
	}
	if q.typ == "" {
		if q.dir == "" && q.proto != "" {
			// A protocol alone: "tcp", "arp".
			if id := p.peek(); id == "" || id == ")" || id == "and" || id == "or" || id == "&&" || id == "||" {
				return protoMatcher(q.proto), nil
			}
		}
		if !explicit && p.last != nil {
			q = *p.last // a bare ID repeats the previous qualifiers
		}
		if q.typ == "" {
			q.typ = "host"
		}
	}
	id := p.next()
	if id == "" || id == ")" || id == "(" {
		return nil, fmt.Errorf("%s needs a value", strings.TrimSpace(q.proto+" "+q.dir+" "+q.typ))
	}
	p.last = &q
	switch q.typ {
	case "port", "portrange":
		return portMatcher(q, id)
	}
	if q.proto == "ether" {
		return etherMatcher(q, id)
	}
	return addrMatcher(q, id)
}

func protoMatcher(proto string) matcher {
	switch proto {
	case "ip":
		return func(f *facts) bool { return f.ip }
	case "ip6":
		return func(f *facts) bool { return f.ip6 }
	case "arp":
		return func(f *facts) bool { return f.arp }
	case "ether":
		return func(f *facts) bool { return f.macs }
	case "icmp":
		return func(f *facts) bool { return f.ip && f.hasProto && f.proto == protoICMP }
	case "icmp6":
		return proto6(protoICMPv6)
	}
	n := map[string]uint8{"tcp": protoTCP, "udp": protoUDP}[proto]
	v6 := proto6(n)
	return func(f *facts) bool { return f.ip && f.hasProto && f.proto == n || v6(f) }
}

// proto6 is libpcap's "ip6 proto n": the next header, or the one after
// a fragment header.
func proto6(n uint8) matcher {
	return func(f *facts) bool {
		return f.ip6 && f.hasProto && (f.proto == n || f.proto == protoFrag6 && f.hasFragProto && f.fragProto == n)
	}
}

// ports names the services people write in filters; others by number.
var portNames = map[string]uint16{
	"echo": 7, "discard": 9, "daytime": 13, "chargen": 19, "ftp": 21, "ssh": 22, "telnet": 23,
	"smtp": 25, "domain": 53, "bootps": 67, "bootpc": 68, "tftp": 69, "http": 80, "https": 443,
}

func parsePort(id string) (uint16, error) {
	if n, ok := portNames[strings.ToLower(id)]; ok {
		return n, nil
	}
	v, err := strconv.ParseUint(id, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q: want 0..65535 or a service name", id)
	}
	return uint16(v), nil
}

// portMatcher is "port N" and "portrange N-M" (either order, as libpcap).
func portMatcher(q qual, id string) (matcher, error) {
	var lo, hi uint16
	if q.typ == "portrange" {
		a, b, ok := strings.Cut(id, "-")
		if !ok {
			return nil, fmt.Errorf("bad port range %q: want N-M", id)
		}
		var err error
		if lo, err = parsePort(a); err != nil {
			return nil, err
		}
		if hi, err = parsePort(b); err != nil {
			return nil, err
		}
		if lo > hi {
			lo, hi = hi, lo
		}
	} else {
		p, err := parsePort(id)
		if err != nil {
			return nil, err
		}
		lo, hi = p, p
	}
	in := func(p uint16) bool { return lo <= p && p <= hi }
	var protoOK func(f *facts) bool
	switch q.proto {
	case "":
		protoOK = func(f *facts) bool { return true }
	case "tcp", "udp":
		n := map[string]uint8{"tcp": protoTCP, "udp": protoUDP}[q.proto]
		protoOK = func(f *facts) bool { return f.proto == n }
	default:
		return nil, fmt.Errorf("%s does not apply to %s", q.typ, q.proto)
	}
	var dirOK func(f *facts) bool
	switch q.dir {
	case "src":
		dirOK = func(f *facts) bool { return in(f.sport) }
	case "dst":
		dirOK = func(f *facts) bool { return in(f.dport) }
	case "src and dst":
		dirOK = func(f *facts) bool { return in(f.sport) && in(f.dport) }
	default:
		dirOK = func(f *facts) bool { return in(f.sport) || in(f.dport) }
	}
	return func(f *facts) bool { return f.ports && protoOK(f) && dirOK(f) }, nil
}

// etherMatcher is "ether host|src|dst MAC".
func etherMatcher(q qual, id string) (matcher, error) {
	if q.typ != "host" {
		return nil, fmt.Errorf("%s does not apply to ether", q.typ)
	}
	var mac [6]byte
	parts := strings.FieldsFunc(id, func(r rune) bool { return r == ':' || r == '-' || r == '.' })
	if len(parts) != 6 {
		return nil, fmt.Errorf("bad MAC address %q", id)
	}
	for i, x := range parts {
		v, err := strconv.ParseUint(x, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad MAC address %q", id)
		}
		mac[i] = byte(v)
	}
	switch q.dir {
	case "src":
		return func(f *facts) bool { return f.macs && f.srcMAC == mac }, nil
	case "dst":
		return func(f *facts) bool { return f.macs && f.dstMAC == mac }, nil
	case "src and dst":
		return func(f *facts) bool { return f.macs && f.srcMAC == mac && f.dstMAC == mac }, nil
	}
	return func(f *facts) bool { return f.macs && (f.srcMAC == mac || f.dstMAC == mac) }, nil
}

// parseNet reads "10.0.0.0/8", "2001:db8::/32", "10.0.0" (tcpdump's
// abbreviated network: /24) or a full address (/32, /128).
func parseNet(id string) (netip.Prefix, error) {
	if strings.Contains(id, ":") && !strings.Contains(id, "/") {
		a, err := netip.ParseAddr(id)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad network %q", id)
		}
		return netip.PrefixFrom(a, 128), nil
	}
	if strings.Contains(id, "/") {
		pf, err := netip.ParsePrefix(id)
		if err != nil || pf.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad network %q", id)
		}
		if pf.Masked() != pf {
			return netip.Prefix{}, fmt.Errorf("non-network bits set in %q", id)
		}
		return pf, nil
	}
	parts := strings.Split(id, ".")
	if len(parts) > 4 {
		return netip.Prefix{}, fmt.Errorf("bad network %q", id)
	}
	var b [4]byte
	for i, s := range parts {
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad network %q", id)
		}
		b[i] = byte(v)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), nil
}

func addrMatcher(q qual, id string) (matcher, error) {
	var pf netip.Prefix
	if q.typ == "net" {
		var err error
		if pf, err = parseNet(id); err != nil {
			return nil, err
		}
	} else {
		a, err := netip.ParseAddr(id)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return nil, fmt.Errorf("bad host %q: want an IPv4 or IPv6 address", id)
		}
		pf = netip.PrefixFrom(a, a.BitLen())
	}
	v6 := pf.Addr().Is6()
	match := func(s, d netip.Addr) bool {
		switch q.dir {
		case "src":
			return pf.Contains(s)
		case "dst":
			return pf.Contains(d)
		case "src and dst":
			return pf.Contains(s) && pf.Contains(d)
		}
		return pf.Contains(s) || pf.Contains(d)
	}
	if v6 {
		ip6M := func(f *facts) bool { return f.ip6 && f.ipAddrs && match(f.src, f.dst) }
		switch q.proto {
		case "", "ip6":
			return ip6M, nil
		}
		return nil, fmt.Errorf("an IPv6 %s does not apply to %s", q.typ, q.proto)
	}
	ipM := func(f *facts) bool { return f.ip && f.ipAddrs && match(f.src, f.dst) }
	arpM := func(f *facts) bool { return f.arp && f.arpAddrs && match(f.arpSrc, f.arpDst) }
	switch q.proto {
	case "":
		return func(f *facts) bool { return ipM(f) || arpM(f) }, nil
	case "ip":
		return ipM, nil
	case "arp":
		return arpM, nil
	}
	return nil, fmt.Errorf("%s does not apply to %s", q.typ, q.proto)
}
