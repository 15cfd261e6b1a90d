package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Filter selects frames for sniffing, in tcpdump's (pcap-filter's)
// language: "host", "net", "port" with "src"/"dst" and the protocols ip,
// arp, tcp, udp and icmp as qualifiers, combined with and/or/not (&&, ||,
// !) and parentheses. As in tcpdump, "not" binds tightest while "and"
// and "or" have equal precedence and group from the left, and an ID
// without a keyword repeats the previous qualifiers ("port 53 or 67").
// The expression is compiled once into a tree of closures; the zero
// Filter matches everything.
type Filter struct {
	match func(*facts) bool
	expr  string
}

// facts is what a frame shows the matchers, read once per frame at the
// byte offsets tcpdump's compiled filter reads (Ethernet type, IPv4
// protocol, addresses and ports of first fragments, ARP protocol
// addresses). A field too short to read is not valid and matches nothing.
type facts struct {
	ip, arp        bool // by Ethernet type (or a bare IPv4 packet)
	ipAddrs        bool // the IPv4 addresses are readable
	proto          uint8
	hasProto       bool
	src, dst       netip.Addr
	ports          bool // a TCP/UDP first fragment whose ports are readable
	sport, dport   uint16
	arpSrc, arpDst netip.Addr
	arpAddrs       bool
}

// Ethernet types and IP protocols the language names.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// Match reports whether frame passes the filter. ethernet says whether
// the frame starts with an Ethernet header or is a bare IPv4 packet.
func (f Filter) Match(frame []byte, ethernet bool) bool {
	if f.match == nil {
		return true
	}
	var fc facts
	fc.read(frame, ethernet)
	return f.match(&fc)
}

func (fc *facts) read(frame []byte, ethernet bool) {
	p := frame
	if ethernet {
		if len(frame) < 14 {
			return
		}
		// No VLAN tag is looked through: tcpdump needs the "vlan"
		// keyword for that, which this language does not have.
		switch binary.BigEndian.Uint16(frame[12:14]) {
		case etherIPv4:
			fc.ip = true
		case etherARP:
			fc.arp = true
		default:
			return
		}
		p = frame[14:]
	} else {
		if len(p) < 1 || p[0]>>4 != 4 {
			return
		}
		fc.ip = true
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
	proto string // "", ip, arp, tcp, udp, icmp
	dir   string // "", src, dst, "src or dst", "src and dst"
	typ   string // host, net, port
}

type parser struct {
	toks []string
	pos  int
	last *qual
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
	}
	return p.primitive()
}

func isProto(s string) bool {
	switch s {
	case "ip", "arp", "tcp", "udp", "icmp":
		return true
	}
	return false
}

func isType(s string) bool { return s == "host" || s == "net" || s == "port" }

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
	case "port":
		return portMatcher(q, id)
	default:
		return addrMatcher(q, id)
	}
}

func protoMatcher(proto string) matcher {
	switch proto {
	case "ip":
		return func(f *facts) bool { return f.ip }
	case "arp":
		return func(f *facts) bool { return f.arp }
	}
	n := map[string]uint8{"tcp": protoTCP, "udp": protoUDP, "icmp": protoICMP}[proto]
	return func(f *facts) bool { return f.ip && f.hasProto && f.proto == n }
}

// ports names the services people write in filters; others by number.
var portNames = map[string]uint16{
	"echo": 7, "discard": 9, "daytime": 13, "chargen": 19, "ftp": 21, "ssh": 22, "telnet": 23,
	"smtp": 25, "domain": 53, "bootps": 67, "bootpc": 68, "tftp": 69, "http": 80, "https": 443,
}

func portMatcher(q qual, id string) (matcher, error) {
	var port uint16
	if n, ok := portNames[strings.ToLower(id)]; ok {
		port = n
	} else {
		v, err := strconv.ParseUint(id, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port %q: want 0..65535 or a service name", id)
		}
		port = uint16(v)
	}
	var protoOK func(f *facts) bool
	switch q.proto {
	case "":
		protoOK = func(f *facts) bool { return true }
	case "tcp", "udp":
		n := map[string]uint8{"tcp": protoTCP, "udp": protoUDP}[q.proto]
		protoOK = func(f *facts) bool { return f.proto == n }
	default:
		return nil, fmt.Errorf("port does not apply to %s", q.proto)
	}
	var dirOK func(f *facts) bool
	switch q.dir {
	case "src":
		dirOK = func(f *facts) bool { return f.sport == port }
	case "dst":
		dirOK = func(f *facts) bool { return f.dport == port }
	case "src and dst":
		dirOK = func(f *facts) bool { return f.sport == port && f.dport == port }
	default:
		dirOK = func(f *facts) bool { return f.sport == port || f.dport == port }
	}
	return func(f *facts) bool { return f.ports && protoOK(f) && dirOK(f) }, nil
}

// parseNet reads "10.0.0.0/8", "10.0.0" (tcpdump's abbreviated network:
// /24) or a full address (/32).
func parseNet(id string) (netip.Prefix, error) {
	if strings.Contains(id, "/") {
		pf, err := netip.ParsePrefix(id)
		if err != nil || !pf.Addr().Is4() {
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
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("bad host %q: want an IPv4 address", id)
		}
		pf = netip.PrefixFrom(a, 32)
	}
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
