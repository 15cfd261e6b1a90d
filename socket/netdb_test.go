package socket

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

func TestProtoAndServiceTables(t *testing.T) {
	for name, num := range map[string]int{"hopopt": 0, "icmp": 1, "IGMP": 2, "tcp": 6, "udp": 17, "ipv6": 41, "ipv6-icmp": 58, "icmpv6": 58, "raw": 255} {
		if got, err := GetProtoByName(name); err != nil || got != num {
			t.Errorf("getprotobyname(%q) = %d %v, want %d", name, got, err, num)
		}
	}
	if n, _ := GetProtoByNumber(17); n != "udp" {
		t.Errorf("getprotobynumber(17) = %q", n)
	}
	if _, err := GetProtoByName("nope"); !errors.Is(err, ErrProtoNotFound) {
		t.Error(err)
	}
	for _, c := range []struct {
		name, proto string
		port        int
	}{{"http", "tcp", 80}, {"www", "", 80}, {"domain", "udp", 53}, {"ssh", "tcp", 22}, {"tftp", "udp", 69}, {"echo", "udp", 7}} {
		if p, err := GetServByName(c.name, c.proto); err != nil || p != c.port {
			t.Errorf("getservbyname(%q,%q) = %d %v", c.name, c.proto, p, err)
		}
	}
	if _, err := GetServByName("tftp", "tcp"); !errors.Is(err, ErrServiceNotFound) {
		t.Error("tftp/tcp found")
	}
	if n, _ := GetServByPort(514, "udp"); n != "syslog" {
		t.Errorf("getservbyport(514, udp) = %q", n)
	}
	if n, _ := GetServByPort(514, "tcp"); n != "shell" {
		t.Errorf("getservbyport(514, tcp) = %q", n)
	}
}

func TestGetAddrInfoLocal(t *testing.T) {
	p := newPair(t, 1500, stackOpts("alpha"))
	n := p.a
	if n.GetHostName() != "alpha" {
		t.Fatalf("gethostname %q", n.GetHostName())
	}
	if a, err := n.GetHostByName("alpha"); err != nil || a != addrA {
		t.Fatalf("own name: %v %v", a, err)
	}
	n.Hosts().Add("db.lan", netip.MustParseAddr("10.0.0.9"))
	if name, _, _, err := n.GetHostByAddr("10.0.0.9"); err != nil || name != "db.lan" {
		t.Fatalf("gethostbyaddr: %q %v", name, err)
	}
	ai, err := n.GetAddrInfo("DB.lan", "ssh", AF_INET, 0, 0, 0)
	if err != nil || len(ai) != 1 || ai[0].Addr.AddrPort.String() != "10.0.0.9:22" || ai[0].Type != SOCK_STREAM {
		t.Fatalf("named service: %+v %v", ai, err)
	}
	ai, err = n.GetAddrInfo("", "8080", AF_INET, 0, 0, AI_PASSIVE)
	if err != nil || len(ai) != 3 || ai[0].Addr.AddrPort.String() != "0.0.0.0:8080" {
		t.Fatalf("passive: %+v %v", ai, err)
	}
	ai, err = n.GetAddrInfo("", "80", AF_UNSPEC, SOCK_STREAM, 0, 0)
	// glibc (Python's getaddrinfo(None, 80, 0, SOCK_STREAM) here): ::1 first.
	if err != nil || len(ai) != 2 || ai[0].Addr.AddrPort.String() != "[::1]:80" || ai[1].Family != AF_INET {
		t.Fatalf("loopback: %+v %v", ai, err)
	}
	ai, err = n.GetAddrInfo("10.1.2.3", "", AF_UNSPEC, SOCK_DGRAM, 0, AI_NUMERICHOST)
	if err != nil || len(ai) != 1 || ai[0].Proto != IPPROTO_UDP {
		t.Fatalf("numeric: %+v %v", ai, err)
	}
	n.Hosts().Remove("db.lan")
	for _, c := range []struct {
		host, serv            string
		fam, typ, proto, flag int
		code                  int
	}{
		{"db.lan", "", AF_INET, 0, 0, AI_NUMERICHOST, EAI_NONAME},
		{"", "", AF_INET, 0, 0, 0, EAI_NONAME},
		{"1.2.3.4", "", AF_PACKET, 0, 0, 0, EAI_FAMILY},
		{"1.2.3.4", "nosuch", AF_INET, 0, 0, 0, EAI_SERVICE},
		{"1.2.3.4", "tftp", AF_INET, SOCK_STREAM, 0, 0, EAI_SERVICE},
		{"1.2.3.4", "", AF_INET, SOCK_SEQPACKET, 0, 0, EAI_SOCKTYPE},
		{"1.2.3.4", "http", AF_INET, 0, 0, AI_NUMERICSERV, EAI_NONAME},
		{"1.2.3.4", "", AF_INET, 0, 0, 0x8000, EAI_BADFLAGS},
		{"db.lan", "", AF_INET, 0, 0, 0, EAI_NONAME}, // removed, no name servers
	} {
		_, err := n.GetAddrInfo(c.host, c.serv, c.fam, c.typ, c.proto, c.flag)
		var ge *GaiError
		if !errors.As(err, &ge) || ge.Code != c.code {
			t.Errorf("getaddrinfo(%q,%q,%d,%d,%d,%#x): %v, want code %d", c.host, c.serv, c.fam, c.typ, c.proto, c.flag, err, c.code)
		}
	}
	if got := (&GaiError{Code: EAI_NONAME}).Error(); got != "[Errno -2] Name or service not known" {
		t.Errorf("message %q", got)
	}
}

func TestDNSCodecRoundTrip(t *testing.T) {
	m := &DNSMessage{ID: 0xbeef, Response: true, Authoritative: true, RecursionDesired: true, RCode: DNSRCodeSuccess,
		Questions: []DNSQuestion{{"www.example.test", DNSTypeA, DNSClassINET}},
		Answers: []DNSRR{
			{Name: "www.example.test", Type: DNSTypeCNAME, Class: DNSClassINET, TTL: 60, Target: "web.example.test"},
			{Name: "web.example.test", Type: DNSTypeA, Class: DNSClassINET, TTL: 60, Addr: netip.MustParseAddr("192.0.2.1")},
			{Name: "web.example.test", Type: DNSTypeAAAA, Class: DNSClassINET, TTL: 60, Addr: netip.MustParseAddr("2001:db8::1")},
			{Name: "web.example.test", Type: DNSTypeTXT, Class: DNSClassINET, TTL: 60, Data: []byte("\x05hello")},
		}}
	b, err := m.Pack(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Compression: "example.test" is written once in full.
	if c := countSub(b, []byte("\x07example\x04test")); c != 1 {
		t.Fatalf("suffix written %d times", c)
	}
	got, err := ParseDNSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || !got.Response || !got.Authoritative || len(got.Answers) != 4 ||
		got.Answers[0].Target != "web.example.test" || got.Answers[1].Addr != m.Answers[1].Addr ||
		got.Answers[2].Addr != m.Answers[2].Addr || string(got.Answers[3].Data) != "\x05hello" {
		t.Fatalf("round trip: %+v", got)
	}
	if c, as := dnsCollect(got, "www.example.test", DNSTypeA); c != "web.example.test" || len(as) != 1 {
		t.Fatalf("cname chain: %q %v", c, as)
	}
	// Malformed: pointer loop, forward pointer, truncation, huge counts.
	bad := [][]byte{
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0, 0, 1, 0, 1},
		b[:len(b)-3],
		{0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1},
	}
	for i, x := range bad {
		if _, err := ParseDNSMessage(x); err == nil {
			t.Errorf("malformed %d parsed", i)
		}
	}
	if a, ok := ParseReverseName(ReverseName(netip.MustParseAddr("10.0.0.80"))); !ok || a.String() != "10.0.0.80" {
		t.Fatalf("reverse name: %v %v", a, ok)
	}
	if ReverseName(netip.MustParseAddr("2001:db8::1"))[:8] != "1.0.0.0." {
		t.Fatal("ip6.arpa name")
	}
}

func countSub(b, sub []byte) int {
	c := 0
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			c++
		}
	}
	return c
}

// FuzzParseDNSMessage: parsing never panics, and what parses re-packs
// into something that parses to the same counts.
func FuzzParseDNSMessage(f *testing.F) {
	m := &DNSMessage{ID: 1, Questions: []DNSQuestion{{"a.example", DNSTypeA, DNSClassINET}},
		Answers: []DNSRR{{Name: "a.example", Type: DNSTypePTR, Class: DNSClassINET, Target: "b.example"}}}
	b, _ := m.Pack(nil)
	f.Add(b)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseDNSMessage(data)
		if err != nil {
			return
		}
		out, err := m.Pack(nil)
		if err != nil {
			return // names with escaped bytes do not re-pack; that is fine
		}
		m2, err := ParseDNSMessage(out)
		if err != nil {
			t.Fatalf("re-packed message does not parse: %v", err)
		}
		if len(m2.Questions) != len(m.Questions) || len(m2.Answers) != len(m.Answers) {
			t.Fatal("counts changed")
		}
	})
}

func stackOpts(name string) stack.Options { return stack.Options{Name: name} }
