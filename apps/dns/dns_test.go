package dns

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	www   = netip.MustParseAddr("10.0.0.80")
	www6  = netip.MustParseAddr("fd00::80")
)

// setup joins a client host (10.0.0.1) and a server host (10.0.0.2)
// running the DNS server on port 53, by an in-memory pipe.
func setup(t *testing.T) (cli *socket.Net, srvNet *socket.Net, srv *Server) {
	t.Helper()
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	sa, sb := stack.New(stack.Options{Name: "client"}), stack.New(stack.Options{Name: "ns"})
	sa.AddNIC("eth0", ea).AddAddress(netip.PrefixFrom(addrA, 24))
	sb.AddNIC("eth0", eb).AddAddress(netip.PrefixFrom(addrB, 24))
	t.Cleanup(func() { sa.Close(); sb.Close() })
	cli, srvNet = socket.New(sa), socket.New(sb)
	h := srvNet.Hosts()
	h.Add("www.example.test", www, www6)
	h.Add("v6only.example.test", www6)
	for i := 0; i < 60; i++ {
		h.Add("big.example.test", netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}))
	}
	var err error
	if srv, err = Serve(srvNet, netip.AddrPortFrom(addrB, 53), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cli.SetResolverConfig(socket.ResolverConfig{Nameservers: []netip.AddrPort{netip.AddrPortFrom(addrB, 53)}, Timeout: 5 * time.Second})
	return cli, srvNet, srv
}

func TestResolverAgainstServer(t *testing.T) {
	cli, _, srv := setup(t)
	ai, err := cli.GetAddrInfo("www.example.test", "http", socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
	if err != nil {
		t.Fatal(err)
	}
	if len(ai) != 1 || ai[0].Addr.AddrPort != netip.AddrPortFrom(www, 80) || ai[0].CanonName != "www.example.test" ||
		ai[0].Type != socket.SOCK_STREAM || ai[0].Proto != socket.IPPROTO_TCP {
		t.Fatalf("getaddrinfo: %+v", ai)
	}
	// AF_UNSPEC asks for A and AAAA.
	ai, err = cli.GetAddrInfo("WWW.Example.Test.", "53", socket.AF_UNSPEC, socket.SOCK_DGRAM, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Addr
	for _, a := range ai {
		got = append(got, a.Addr.AddrPort.Addr())
	}
	if !slices.Equal(got, []netip.Addr{www, www6}) || ai[1].Family != socket.AF_INET6 {
		t.Fatalf("AF_UNSPEC: %v", got)
	}
	if a, err := cli.GetHostByName("www.example.test"); err != nil || a != www {
		t.Fatalf("gethostbyname: %v %v", a, err)
	}
	name, _, addrs, err := cli.GetHostByAddr("10.0.0.80")
	if err != nil || name != "www.example.test" || addrs[0] != www {
		t.Fatalf("gethostbyaddr (PTR): %q %v %v", name, addrs, err)
	}
	host, serv, err := cli.GetNameInfo(socket.InetAddr(netip.AddrPortFrom(www, 443)), 0)
	if err != nil || host != "www.example.test" || serv != "https" {
		t.Fatalf("getnameinfo: %q %q %v", host, serv, err)
	}
	_, err = cli.GetAddrInfo("nope.example.test", "", socket.AF_INET, 0, 0, 0)
	if !errors.Is(err, &socket.GaiError{Code: socket.EAI_NONAME}) {
		t.Fatalf("NXDOMAIN: %v", err)
	}
	_, err = cli.GetHostByName("v6only.example.test")
	if !errors.Is(err, &socket.GaiError{Code: socket.EAI_NODATA}) {
		t.Fatalf("no A record: %v", err)
	}
	if _, _, _, err := cli.GetHostByAddr("10.9.9.9"); !errors.Is(err, &socket.GaiError{Code: socket.EAI_NONAME}) {
		t.Fatalf("unknown PTR: %v", err)
	}
	st := srv.Stats()
	if st.NXDomain.Load() < 2 || st.Queries.Load() < 6 || st.Malformed.Load() != 0 {
		t.Fatalf("stats: queries %d nxdomain %d malformed %d", st.Queries.Load(), st.NXDomain.Load(), st.Malformed.Load())
	}
}

func TestServerTruncatesAndTCPFallback(t *testing.T) {
	cli, _, srv := setup(t)
	// Over UDP, 60 A records do not fit 512 bytes: TC set, fewer answers.
	s, err := cli.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := &socket.DNSMessage{ID: 7, RecursionDesired: true, Questions: []socket.DNSQuestion{{Name: "big.example.test", Type: socket.DNSTypeA, Class: socket.DNSClassINET}}}
	b, _ := q.Pack(nil)
	s.SetTimeout(5 * time.Second)
	if _, err := s.SendTo(b, 0, socket.InetAddr(netip.AddrPortFrom(addrB, 53))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	k, err := s.Recv(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if k > socket.DNSMaxUDP {
		t.Fatalf("UDP answer of %d bytes", k)
	}
	m, err := socket.ParseDNSMessage(buf[:k])
	if err != nil || !m.Truncated || len(m.Answers) == 0 || len(m.Answers) >= 60 {
		t.Fatalf("truncated answer: %v tc=%v answers=%d", err, m != nil && m.Truncated, len(m.Answers))
	}
	if srv.Stats().Truncated.Load() != 1 {
		t.Fatal("truncation not counted")
	}
	if !srv.TCP() {
		t.Fatal("the DNS server has no TCP listener: the TCP fallback cannot be tested")
	}
	_, _, addrs, err := cli.GetHostByNameEx("big.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 60 {
		t.Fatalf("over TCP: %d addresses, want 60", len(addrs))
	}
}

func TestResolverTimeoutsAndRefusal(t *testing.T) {
	cli, srvNet, _ := setup(t)
	// A server that never answers: each try times out, EAI_AGAIN at the end.
	silent, err := srvNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.Bind(socket.InetAddr(netip.AddrPortFrom(addrB, 5353)))
	cli.SetResolverConfig(socket.ResolverConfig{Nameservers: []netip.AddrPort{netip.AddrPortFrom(addrB, 5353)}, Timeout: 20 * time.Millisecond, Attempts: 3})
	_, err = cli.GetHostByName("www.example.test")
	if !errors.Is(err, &socket.GaiError{Code: socket.EAI_AGAIN}) {
		t.Fatalf("silent server: %v", err)
	}
	silent.SetTimeout(0)
	tries := 0
	for {
		if _, err := silent.Recv(make([]byte, 512), 0); err != nil {
			break
		}
		tries++
	}
	if tries != 3 {
		t.Fatalf("silent server saw %d queries, want 3 attempts", tries)
	}
	// Nobody on the port: ICMP port unreachable ends each try at once;
	// the second server answers.
	cli.SetResolverConfig(socket.ResolverConfig{Nameservers: []netip.AddrPort{
		netip.AddrPortFrom(addrB, 5454), netip.AddrPortFrom(addrB, 53)}, Timeout: 5 * time.Second})
	if a, err := cli.GetHostByName("www.example.test"); err != nil || a != www {
		t.Fatalf("second server: %v %v", a, err)
	}
}

func TestServerDropsGarbage(t *testing.T) {
	cli, _, srv := setup(t)
	s, _ := cli.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	defer s.Close()
	to := socket.InetAddr(netip.AddrPortFrom(addrB, 53))
	for _, g := range [][]byte{{1, 2, 3}, make([]byte, 12), {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}} {
		s.SendTo(g, 0, to)
	}
	// A good query afterwards is answered: the server survived.
	q := &socket.DNSMessage{ID: 9, Questions: []socket.DNSQuestion{{Name: "www.example.test", Type: socket.DNSTypeA, Class: socket.DNSClassINET}}}
	b, _ := q.Pack(nil)
	s.SendTo(b, 0, to)
	s.SetTimeout(5 * time.Second)
	buf := make([]byte, 512)
	for {
		k, err := s.Recv(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := socket.ParseDNSMessage(buf[:k])
		if err == nil && m.ID == 9 {
			if len(m.Answers) != 1 || m.Answers[0].Addr != www || !m.Authoritative {
				t.Fatalf("answer %+v", m)
			}
			break
		}
	}
	// 12 zero bytes is a query with no question: FORMERR, not dropped.
	if srv.Stats().Malformed.Load() != 2 || srv.Stats().Refused.Load() != 1 {
		t.Fatalf("malformed %d refused %d", srv.Stats().Malformed.Load(), srv.Stats().Refused.Load())
	}
}
