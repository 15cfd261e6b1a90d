package socket

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A DNS stub resolver (RFC 1035) over the stack's own sockets: UDP
// first, TCP when the answer comes back truncated, a timeout per try and
// a number of rounds over the name servers (like resolv.conf's
// "options timeout:N attempts:N"). The message codec is exported so the
// DNS server app (apps/dns) shares it.

// ResolverConfig configures a Net's resolver.
type ResolverConfig struct {
	Nameservers []netip.AddrPort
	Timeout     time.Duration // per try; default 5s
	Attempts    int           // rounds over the servers; default 2
}

func defaultResolverConfig() ResolverConfig {
	return ResolverConfig{Timeout: 5 * time.Second, Attempts: 2}
}

// SetNameservers sets the DNS servers the Net's resolver asks, in order.
func (n *Net) SetNameservers(servers []netip.AddrPort) {
	st := n.netdb()
	st.mu.Lock()
	st.cfg.Nameservers = slices.Clone(servers)
	st.mu.Unlock()
}

// SetResolverConfig replaces the whole resolver configuration (zero
// Timeout and Attempts take the defaults).
func (n *Net) SetResolverConfig(c ResolverConfig) {
	d := defaultResolverConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.Attempts <= 0 {
		c.Attempts = d.Attempts
	}
	c.Nameservers = slices.Clone(c.Nameservers)
	st := n.netdb()
	st.mu.Lock()
	st.cfg = c
	st.mu.Unlock()
}

// ResolverConfig returns the current configuration.
func (n *Net) ResolverConfig() ResolverConfig {
	st := n.netdb()
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.cfg
	c.Nameservers = slices.Clone(c.Nameservers)
	return c
}

// DNS record types, classes and response codes.
const (
	DNSTypeA     = 1
	DNSTypeNS    = 2
	DNSTypeCNAME = 5
	DNSTypeSOA   = 6
	DNSTypePTR   = 12
	DNSTypeMX    = 15
	DNSTypeTXT   = 16
	DNSTypeAAAA  = 28
	DNSTypeANY   = 255
	DNSClassINET = 1

	DNSRCodeSuccess  = 0
	DNSRCodeFormErr  = 1
	DNSRCodeServFail = 2
	DNSRCodeNXDomain = 3
	DNSRCodeNotImp   = 4
	DNSRCodeRefused  = 5

	DNSMaxUDP = 512 // RFC 1035 4.2.1: larger answers set TC
)

// DNSQuestion is one entry of the question section.
type DNSQuestion struct {
	Name        string // dotted, without the final dot
	Type, Class uint16
}

// DNSRR is a resource record. Data is the raw RDATA for types the codec
// does not know; A and AAAA fill Addr, and NS, CNAME and PTR fill Target
// (their names may be compressed, so they are decoded at parse time).
type DNSRR struct {
	Name        string
	Type, Class uint16
	TTL         uint32
	Addr        netip.Addr
	Target      string
	Data        []byte
}

// DNSMessage is a whole DNS message.
type DNSMessage struct {
	ID                                   uint16
	Response, Authoritative, Truncated   bool
	RecursionDesired, RecursionAvailable bool
	Opcode, RCode                        uint8
	Questions                            []DNSQuestion
	Answers, Authorities, Additionals    []DNSRR
}

var errDNSFormat = errors.New("dns: malformed message")

// ParseDNSMessage decodes b, following name compression pointers
// (only backwards, so loops are impossible). It never panics; any
// inconsistency is an error.
func ParseDNSMessage(b []byte) (*DNSMessage, error) {
	if len(b) < 12 {
		return nil, errDNSFormat
	}
	m := &DNSMessage{ID: binary.BigEndian.Uint16(b)}
	f := binary.BigEndian.Uint16(b[2:])
	m.Response = f&0x8000 != 0
	m.Opcode = uint8(f>>11) & 0xf
	m.Authoritative = f&0x0400 != 0
	m.Truncated = f&0x0200 != 0
	m.RecursionDesired = f&0x0100 != 0
	m.RecursionAvailable = f&0x0080 != 0
	m.RCode = uint8(f & 0xf)
	qd := int(binary.BigEndian.Uint16(b[4:]))
	counts := [3]int{int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint16(b[8:])), int(binary.BigEndian.Uint16(b[10:]))}
	off := 12
	// Each entry takes at least 5 bytes: a bound before allocating.
	if qd*5 > len(b) || (counts[0]+counts[1]+counts[2])*11 > len(b) {
		return nil, errDNSFormat
	}
	for i := 0; i < qd; i++ {
		name, n, err := dnsReadName(b, off)
		if err != nil {
			return nil, err
		}
		off = n
		if off+4 > len(b) {
			return nil, errDNSFormat
		}
		m.Questions = append(m.Questions, DNSQuestion{name, binary.BigEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off+2:])})
		off += 4
	}
	secs := [3]*[]DNSRR{&m.Answers, &m.Authorities, &m.Additionals}
	for s, cnt := range counts {
		for i := 0; i < cnt; i++ {
			var rr DNSRR
			var err error
			if rr, off, err = dnsReadRR(b, off); err != nil {
				return nil, err
			}
			*secs[s] = append(*secs[s], rr)
		}
	}
	return m, nil
}

func dnsReadRR(b []byte, off int) (DNSRR, int, error) {
	var rr DNSRR
	name, off, err := dnsReadName(b, off)
	if err != nil {
		return rr, 0, err
	}
	if off+10 > len(b) {
		return rr, 0, errDNSFormat
	}
	rr.Name = name
	rr.Type = binary.BigEndian.Uint16(b[off:])
	rr.Class = binary.BigEndian.Uint16(b[off+2:])
	rr.TTL = binary.BigEndian.Uint32(b[off+4:])
	rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
	off += 10
	if off+rdlen > len(b) {
		return rr, 0, errDNSFormat
	}
	rd := b[off : off+rdlen]
	switch rr.Type {
	case DNSTypeA:
		if rdlen != 4 {
			return rr, 0, errDNSFormat
		}
		rr.Addr = netip.AddrFrom4([4]byte(rd))
	case DNSTypeAAAA:
		if rdlen != 16 {
			return rr, 0, errDNSFormat
		}
		rr.Addr = netip.AddrFrom16([16]byte(rd))
	case DNSTypeNS, DNSTypeCNAME, DNSTypePTR:
		t, end, err := dnsReadName(b, off)
		if err != nil || end != off+rdlen {
			return rr, 0, errDNSFormat
		}
		rr.Target = t
	default:
		rr.Data = slices.Clone(rd)
	}
	return rr, off + rdlen, nil
}

// dnsReadName reads a possibly compressed name at off and returns it
// with the offset just after it in the original position.
func dnsReadName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	end := -1
	total := 0
	limit := off // compression pointers must point before this
	for {
		if off >= len(b) {
			return "", 0, errDNSFormat
		}
		l := int(b[off])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				if end < 0 {
					end = off + 1
				}
				return sb.String(), end, nil
			}
			if off+1+l > len(b) {
				return "", 0, errDNSFormat
			}
			total += l + 1
			if total > 254 {
				return "", 0, errDNSFormat
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			for _, c := range b[off+1 : off+1+l] {
				// Escape what would make the dotted form ambiguous.
				if c == '.' || c == '\\' || c < 0x21 || c > 0x7e {
					sb.WriteByte('\\')
					sb.WriteString(strconv.Itoa(int(c) + 1000)[1:])
					continue
				}
				sb.WriteByte(c)
			}
			off += 1 + l
		case 0xc0:
			if off+2 > len(b) {
				return "", 0, errDNSFormat
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if end < 0 {
				end = off + 2
			}
			if ptr >= limit {
				return "", 0, errDNSFormat
			}
			off, limit = ptr, ptr
		default:
			return "", 0, errDNSFormat // 0x40, 0x80: extended label types
		}
	}
}

// dnsAppendName appends name in wire form, compressing against names
// already in the message (comp maps a lower-case suffix to its offset).
func dnsAppendName(b []byte, name string, comp map[string]int) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	if len(name) > 253 {
		return nil, errDNSFormat
	}
	for name != "" {
		key := strings.ToLower(name)
		if p, ok := comp[key]; ok {
			return binary.BigEndian.AppendUint16(b, 0xc000|uint16(p)), nil
		}
		if comp != nil && len(b) < 0x3fff {
			comp[key] = len(b)
		}
		label, rest, _ := strings.Cut(name, ".")
		if len(label) == 0 || len(label) > 63 {
			return nil, errDNSFormat
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
		name = rest
	}
	return append(b, 0), nil
}

// Pack encodes m (with name compression), appending to b.
func (m *DNSMessage) Pack(b []byte) ([]byte, error) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, m.ID)
	var f uint16
	if m.Response {
		f |= 0x8000
	}
	f |= uint16(m.Opcode&0xf) << 11
	if m.Authoritative {
		f |= 0x0400
	}
	if m.Truncated {
		f |= 0x0200
	}
	if m.RecursionDesired {
		f |= 0x0100
	}
	if m.RecursionAvailable {
		f |= 0x0080
	}
	f |= uint16(m.RCode & 0xf)
	b = binary.BigEndian.AppendUint16(b, f)
	for _, c := range []int{len(m.Questions), len(m.Answers), len(m.Authorities), len(m.Additionals)} {
		if c > 0xffff {
			return nil, errDNSFormat
		}
		b = binary.BigEndian.AppendUint16(b, uint16(c))
	}
	comp := map[string]int{}
	// Offsets in comp are relative to the message start.
	rel := func(bb []byte, name string) ([]byte, error) {
		head := bb[:start]
		out, err := dnsAppendName(bb[start:], name, comp)
		if err != nil {
			return nil, err
		}
		return append(head, out...), nil
	}
	var err error
	for _, q := range m.Questions {
		if b, err = rel(b, q.Name); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint16(b, q.Type)
		b = binary.BigEndian.AppendUint16(b, q.Class)
	}
	for _, sec := range [][]DNSRR{m.Answers, m.Authorities, m.Additionals} {
		for _, rr := range sec {
			if b, err = rel(b, rr.Name); err != nil {
				return nil, err
			}
			b = binary.BigEndian.AppendUint16(b, rr.Type)
			b = binary.BigEndian.AppendUint16(b, rr.Class)
			b = binary.BigEndian.AppendUint32(b, rr.TTL)
			lenAt := len(b)
			b = append(b, 0, 0)
			switch rr.Type {
			case DNSTypeA:
				if !rr.Addr.Is4() {
					return nil, errDNSFormat
				}
				a := rr.Addr.As4()
				b = append(b, a[:]...)
			case DNSTypeAAAA:
				if !rr.Addr.Is6() {
					return nil, errDNSFormat
				}
				a := rr.Addr.As16()
				b = append(b, a[:]...)
			case DNSTypeNS, DNSTypeCNAME, DNSTypePTR:
				if b, err = rel(b, rr.Target); err != nil {
					return nil, err
				}
			default:
				b = append(b, rr.Data...)
			}
			rdlen := len(b) - lenAt - 2
			if rdlen > 0xffff {
				return nil, errDNSFormat
			}
			binary.BigEndian.PutUint16(b[lenAt:], uint16(rdlen))
		}
	}
	return b, nil
}

// ReverseName is the in-addr.arpa (or ip6.arpa) name of a.
func ReverseName(a netip.Addr) string {
	a = a.Unmap()
	var sb strings.Builder
	if a.Is4() {
		b := a.As4()
		for i := 3; i >= 0; i-- {
			sb.WriteString(strconv.Itoa(int(b[i])))
			sb.WriteByte('.')
		}
		sb.WriteString("in-addr.arpa")
		return sb.String()
	}
	b := a.As16()
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa")
	return sb.String()
}

// ParseReverseName is the inverse of ReverseName (IPv4 only).
func ParseReverseName(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 || (len(p) > 1 && p[0] == '0') {
			return netip.Addr{}, false
		}
		b[3-i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// errNXDomain and friends classify the outcome of one exchange.
var (
	errNXDomain  = errors.New("dns: no such name")
	errServFail  = errors.New("dns: server failure")
	errDNSNoAnsw = errors.New("dns: no usable answer")
)

// Query asks the configured servers for (name, qtype) and returns the
// answer message. Truncated UDP answers are asked again over TCP. The
// error is a *GaiError: EAI_NONAME for NXDOMAIN, EAI_AGAIN when no
// server answered in time or all failed.
func (n *Net) Query(name string, qtype uint16) (*DNSMessage, error) {
	cfg := n.ResolverConfig()
	if len(cfg.Nameservers) == 0 {
		return nil, gaiErr(EAI_NONAME, errors.New("no name servers configured"))
	}
	var idb [2]byte
	rand.Read(idb[:])
	q := &DNSMessage{ID: binary.BigEndian.Uint16(idb[:]), RecursionDesired: true,
		Questions: []DNSQuestion{{Name: strings.TrimSuffix(name, "."), Type: qtype, Class: DNSClassINET}}}
	wireQ, err := q.Pack(make([]byte, 0, 512))
	if err != nil {
		return nil, gaiErr(EAI_NONAME, err)
	}
	last := error(syscall.ETIMEDOUT)
	for attempt := 0; attempt < cfg.Attempts; attempt++ {
		for _, ns := range cfg.Nameservers {
			m, err := n.exchangeUDP(ns, wireQ, q, cfg.Timeout)
			if err == nil && m.Truncated {
				m, err = n.exchangeTCP(ns, wireQ, q, cfg.Timeout)
			}
			if err == nil {
				switch m.RCode {
				case DNSRCodeSuccess:
					return m, nil
				case DNSRCodeNXDomain:
					return nil, gaiErr(EAI_NONAME, errNXDomain)
				default:
					err = errServFail
				}
			}
			last = err
		}
	}
	return nil, gaiErr(EAI_AGAIN, last)
}

// dnsMatch checks that resp answers q (RFC 5452: ID and question).
func dnsMatch(resp *DNSMessage, q *DNSMessage) bool {
	if !resp.Response || resp.ID != q.ID || len(resp.Questions) != 1 {
		return false
	}
	a, b := resp.Questions[0], q.Questions[0]
	return a.Type == b.Type && a.Class == b.Class && strings.EqualFold(a.Name, b.Name)
}

func (n *Net) exchangeUDP(ns netip.AddrPort, wireQ []byte, q *DNSMessage, timeout time.Duration) (*DNSMessage, error) {
	s, err := n.Socket(AF_INET, SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	// Connected, so an ICMP port unreachable ends the try at once.
	if err := s.Connect(InetAddr(ns)); err != nil {
		return nil, err
	}
	if _, err := s.Send(wireQ, 0); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, syscall.ETIMEDOUT
		}
		s.SetTimeout(left)
		k, err := s.Recv(buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return nil, syscall.ETIMEDOUT
			}
			return nil, err
		}
		m, err := ParseDNSMessage(buf[:k])
		if err != nil || !dnsMatch(m, q) {
			continue // spoofed or garbled: keep waiting for the real answer
		}
		return m, nil
	}
}

func (n *Net) exchangeTCP(ns netip.AddrPort, wireQ []byte, q *DNSMessage, timeout time.Duration) (*DNSMessage, error) {
	s, err := n.Socket(AF_INET, SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetTimeout(timeout)
	if err := s.Connect(InetAddr(ns)); err != nil {
		return nil, err
	}
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wireQ)), uint16(len(wireQ)))
	if err := s.SendAll(append(msg, wireQ...), 0); err != nil {
		return nil, err
	}
	var lb [2]byte
	if k, err := s.Recv(lb[:], MSG_WAITALL); err != nil || k != 2 {
		return nil, errDNSNoAnsw
	}
	buf := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if k, err := s.Recv(buf, MSG_WAITALL); err != nil || k != len(buf) {
		return nil, errDNSNoAnsw
	}
	m, err := ParseDNSMessage(buf)
	if err != nil || !dnsMatch(m, q) {
		return nil, errDNSNoAnsw
	}
	return m, nil
}

// resolveDNS looks name up with A (and, for AF_UNSPEC or AF_INET6, AAAA)
// queries, following CNAMEs inside the answer.
func (n *Net) resolveDNS(name string, family int) (string, []netip.Addr, error) {
	var types []uint16
	switch family {
	case AF_INET:
		types = []uint16{DNSTypeA}
	case AF_INET6:
		types = []uint16{DNSTypeAAAA}
	default:
		types = []uint16{DNSTypeA, DNSTypeAAAA}
	}
	canon := strings.TrimSuffix(name, ".")
	var addrs []netip.Addr
	var firstErr error
	for i, t := range types {
		m, err := n.Query(name, t)
		if err != nil {
			if i == 0 {
				firstErr = err
				if errors.Is(err, &GaiError{Code: EAI_NONAME}) {
					return "", nil, err
				}
			}
			continue
		}
		c, as := dnsCollect(m, canon, t)
		if len(as) > 0 && len(addrs) == 0 {
			canon = c
		}
		addrs = append(addrs, as...)
	}
	if len(addrs) == 0 {
		if firstErr != nil {
			return "", nil, firstErr
		}
		return "", nil, gaiErr(EAI_NODATA, nil)
	}
	return canon, addrs, nil
}

// dnsCollect follows the CNAME chain from name and returns the final
// name and its addresses of type t.
func dnsCollect(m *DNSMessage, name string, t uint16) (string, []netip.Addr) {
	for hops := 0; hops < 8; hops++ {
		next := ""
		for _, rr := range m.Answers {
			if rr.Type == DNSTypeCNAME && strings.EqualFold(rr.Name, name) {
				next = rr.Target
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	var out []netip.Addr
	for _, rr := range m.Answers {
		if rr.Type == t && rr.Class == DNSClassINET && strings.EqualFold(rr.Name, name) {
			out = append(out, rr.Addr)
		}
	}
	return name, out
}

func (n *Net) resolvePTR(a netip.Addr) ([]string, error) {
	m, err := n.Query(ReverseName(a), DNSTypePTR)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, rr := range m.Answers {
		if rr.Type == DNSTypePTR {
			names = append(names, rr.Target)
		}
	}
	if len(names) == 0 {
		return nil, gaiErr(EAI_NONAME, errDNSNoAnsw)
	}
	return names, nil
}
