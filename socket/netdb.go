package socket

import (
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"weak"
)

// Names and numbers: protocols, services, hosts, getaddrinfo.

type protoEnt struct {
	name    string
	num     int
	aliases []string
}

// The IANA protocol numbers, with the names /etc/protocols uses.
var protocols = []protoEnt{
	{"ip", 0, []string{"IP"}}, {"hopopt", 0, []string{"HOPOPT"}}, {"icmp", 1, []string{"ICMP"}},
	{"igmp", 2, []string{"IGMP"}}, {"ggp", 3, []string{"GGP"}}, {"ipencap", 4, []string{"IP-ENCAP"}},
	{"st", 5, []string{"ST"}}, {"tcp", 6, []string{"TCP"}}, {"egp", 8, []string{"EGP"}},
	{"igp", 9, []string{"IGP"}}, {"pup", 12, []string{"PUP"}}, {"udp", 17, []string{"UDP"}},
	{"hmp", 20, []string{"HMP"}}, {"xns-idp", 22, []string{"XNS-IDP"}}, {"rdp", 27, []string{"RDP"}},
	{"iso-tp4", 29, []string{"ISO-TP4"}}, {"dccp", 33, []string{"DCCP"}}, {"xtp", 36, []string{"XTP"}},
	{"ddp", 37, []string{"DDP"}}, {"idpr-cmtp", 38, []string{"IDPR-CMTP"}}, {"ipv6", 41, []string{"IPv6"}},
	{"ipv6-route", 43, []string{"IPv6-Route"}}, {"ipv6-frag", 44, []string{"IPv6-Frag"}},
	{"idrp", 45, []string{"IDRP"}}, {"rsvp", 46, []string{"RSVP"}}, {"gre", 47, []string{"GRE"}},
	{"esp", 50, []string{"IPSEC-ESP"}}, {"ah", 51, []string{"IPSEC-AH"}}, {"skip", 57, []string{"SKIP"}},
	{"ipv6-icmp", 58, []string{"IPv6-ICMP", "icmpv6", "ICMPv6"}}, {"ipv6-nonxt", 59, []string{"IPv6-NoNxt"}},
	{"ipv6-opts", 60, []string{"IPv6-Opts"}}, {"rspf", 73, []string{"RSPF", "CPHB"}},
	{"vmtp", 81, []string{"VMTP"}}, {"eigrp", 88, []string{"EIGRP"}}, {"ospf", 89, []string{"OSPFIGP"}},
	{"ax.25", 93, []string{"AX.25"}}, {"ipip", 94, []string{"IPIP"}}, {"etherip", 97, []string{"ETHERIP"}},
	{"encap", 98, []string{"ENCAP"}}, {"pim", 103, []string{"PIM"}}, {"ipcomp", 108, []string{"IPCOMP"}},
	{"vrrp", 112, []string{"VRRP"}}, {"l2tp", 115, []string{"L2TP"}}, {"isis", 124, []string{"ISIS"}},
	{"sctp", 132, []string{"SCTP"}}, {"fc", 133, []string{"FC"}}, {"mobility-header", 135, []string{"Mobility-Header"}},
	{"udplite", 136, []string{"UDPLite"}}, {"mpls-in-ip", 137, []string{"MPLS-in-IP"}},
	{"manet", 138, nil}, {"hip", 139, []string{"HIP"}}, {"shim6", 140, []string{"Shim6"}},
	{"wesp", 141, []string{"WESP"}}, {"rohc", 142, []string{"ROHC"}}, {"ethernet", 143, []string{"Ethernet"}},
	{"raw", 255, []string{"RAW"}},
}

// ErrProtoNotFound, ErrServiceNotFound and ErrPortNotFound are the
// failures of the protocol and service lookups (Python raises OSError
// with these texts).
var (
	ErrProtoNotFound   = errors.New("protocol not found")
	ErrServiceNotFound = errors.New("service/proto not found")
	ErrPortNotFound    = errors.New("port/proto not found")
)

// GetProtoByName is getprotobyname: the IANA number of a protocol name
// or alias (case-insensitive).
func GetProtoByName(name string) (int, error) {
	for _, p := range protocols {
		if strings.EqualFold(p.name, name) {
			return p.num, nil
		}
		for _, a := range p.aliases {
			if strings.EqualFold(a, name) {
				return p.num, nil
			}
		}
	}
	return 0, ErrProtoNotFound
}

// GetProtoByNumber is getprotobynumber: the official name of a protocol number.
func GetProtoByNumber(num int) (string, error) {
	for _, p := range protocols {
		if p.num == num {
			return p.name, nil
		}
	}
	return "", ErrProtoNotFound
}

type servEnt struct {
	name    string
	port    int
	tcp     bool
	udp     bool
	aliases []string
}

// A services table like /etc/services (the commonly used part).
var services = []servEnt{
	{"tcpmux", 1, true, false, nil}, {"echo", 7, true, true, nil},
	{"discard", 9, true, true, []string{"sink", "null"}}, {"systat", 11, true, false, []string{"users"}},
	{"daytime", 13, true, true, nil}, {"netstat", 15, true, false, nil},
	{"qotd", 17, true, false, []string{"quote"}}, {"chargen", 19, true, true, []string{"ttytst", "source"}},
	{"ftp-data", 20, true, false, nil}, {"ftp", 21, true, false, nil}, {"ssh", 22, true, false, nil},
	{"telnet", 23, true, false, nil}, {"smtp", 25, true, false, []string{"mail"}},
	{"time", 37, true, true, []string{"timserver"}}, {"whois", 43, true, false, []string{"nicname"}},
	{"tacacs", 49, true, true, nil}, {"domain", 53, true, true, []string{"nameserver"}},
	{"bootps", 67, false, true, nil}, {"bootpc", 68, false, true, nil}, {"tftp", 69, false, true, nil},
	{"gopher", 70, true, false, nil}, {"finger", 79, true, false, nil},
	{"http", 80, true, true, []string{"www"}}, {"kerberos", 88, true, true, []string{"kerberos5", "krb5", "kerberos-sec"}},
	{"iso-tsap", 102, true, false, []string{"tsap"}}, {"pop3", 110, true, false, []string{"pop-3"}},
	{"sunrpc", 111, true, true, []string{"portmapper"}}, {"auth", 113, true, false, []string{"authentication", "tap", "ident"}},
	{"nntp", 119, true, false, []string{"readnews", "untp"}}, {"ntp", 123, false, true, nil},
	{"epmap", 135, true, false, []string{"loc-srv"}}, {"netbios-ns", 137, false, true, nil},
	{"netbios-dgm", 138, false, true, nil}, {"netbios-ssn", 139, true, false, nil},
	{"imap2", 143, true, false, []string{"imap"}}, {"snmp", 161, true, true, nil},
	{"snmp-trap", 162, true, true, []string{"snmptrap"}}, {"bgp", 179, true, false, nil},
	{"irc", 194, true, false, nil}, {"ldap", 389, true, false, nil},
	{"https", 443, true, true, nil}, {"microsoft-ds", 445, true, false, nil},
	{"kpasswd", 464, true, true, nil}, {"submissions", 465, true, false, []string{"ssmtp", "smtps", "urd"}},
	{"isakmp", 500, false, true, nil}, {"exec", 512, true, false, nil}, {"biff", 512, false, true, []string{"comsat"}},
	{"login", 513, true, false, nil}, {"who", 513, false, true, []string{"whod"}},
	{"shell", 514, true, false, []string{"cmd"}}, {"syslog", 514, false, true, nil},
	{"printer", 515, true, false, []string{"spooler"}}, {"talk", 517, false, true, nil},
	{"ntalk", 518, false, true, nil}, {"route", 520, false, true, []string{"router", "routed"}},
	{"submission", 587, true, false, nil}, {"ipp", 631, true, false, nil},
	{"ldaps", 636, true, false, nil}, {"rsync", 873, true, false, nil},
	{"ftps-data", 989, true, false, nil}, {"ftps", 990, true, false, nil},
	{"telnets", 992, true, false, nil}, {"imaps", 993, true, false, nil}, {"pop3s", 995, true, false, nil},
	{"socks", 1080, true, false, nil}, {"openvpn", 1194, true, true, nil},
	{"ms-sql-s", 1433, true, false, nil}, {"l2f", 1701, false, true, []string{"l2tp"}},
	{"radius", 1812, true, true, nil}, {"radius-acct", 1813, true, true, []string{"radacct"}},
	{"nfs", 2049, true, true, nil}, {"mysql", 3306, true, false, nil},
	{"ms-wbt-server", 3389, true, false, nil}, {"svn", 3690, true, false, []string{"subversion"}},
	{"sip", 5060, true, true, nil}, {"xmpp-client", 5222, true, false, []string{"jabber-client"}},
	{"mdns", 5353, false, true, nil}, {"postgresql", 5432, true, false, []string{"postgres"}},
	{"amqp", 5672, true, false, nil}, {"x11", 6000, true, false, []string{"x11-0"}},
	{"redis", 6379, true, false, nil}, {"http-alt", 8080, true, false, []string{"webcache"}},
	{"git", 9418, true, false, nil},
}

func servMatches(s *servEnt, proto string) bool {
	switch strings.ToLower(proto) {
	case "":
		return true
	case "tcp":
		return s.tcp
	case "udp":
		return s.udp
	}
	return false
}

// GetServByName is getservbyname: the port of a service name or alias
// for proto ("tcp", "udp", or "" for either).
func GetServByName(name, proto string) (int, error) {
	for i := range services {
		s := &services[i]
		if !servMatches(s, proto) {
			continue
		}
		if strings.EqualFold(s.name, name) || slices.ContainsFunc(s.aliases, func(a string) bool { return strings.EqualFold(a, name) }) {
			return s.port, nil
		}
	}
	return 0, ErrServiceNotFound
}

// GetServByPort is getservbyport: the service name of a port for proto.
func GetServByPort(port int, proto string) (string, error) {
	for i := range services {
		s := &services[i]
		if s.port == port && servMatches(s, proto) {
			return s.name, nil
		}
	}
	return "", ErrPortNotFound
}

// Hosts is a hosts table (like /etc/hosts) of one Net. Names are
// case-insensitive and a trailing dot is ignored.
type Hosts struct {
	mu     sync.RWMutex
	byName map[string][]netip.Addr
	canon  map[string]string // lower-case name -> name as added
	byAddr map[netip.Addr][]string
}

// HostEntry is one name of the table with its addresses.
type HostEntry struct {
	Name  string
	Addrs []netip.Addr
}

func newHosts() *Hosts {
	h := &Hosts{byName: map[string][]netip.Addr{}, canon: map[string]string{}, byAddr: map[netip.Addr][]string{}}
	h.Add("localhost", netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
	return h
}

func hostKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// Add maps name to addrs (added to any it already has).
func (h *Hosts) Add(name string, addrs ...netip.Addr) {
	k := hostKey(name)
	if k == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.canon[k]; !ok {
		h.canon[k] = strings.TrimSuffix(name, ".")
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || slices.Contains(h.byName[k], a) {
			continue
		}
		h.byName[k] = append(h.byName[k], a)
		h.byAddr[a] = append(h.byAddr[a], h.canon[k])
	}
}

// Remove deletes name and its addresses from the table.
func (h *Hosts) Remove(name string) {
	k := hostKey(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.canon[k]
	for _, a := range h.byName[k] {
		h.byAddr[a] = slices.DeleteFunc(h.byAddr[a], func(n string) bool { return n == c })
		if len(h.byAddr[a]) == 0 {
			delete(h.byAddr, a)
		}
	}
	delete(h.byName, k)
	delete(h.canon, k)
}

// LookupHost returns the addresses of name (nil when unknown) and
// whether the name is in the table at all.
func (h *Hosts) LookupHost(name string) ([]netip.Addr, bool) {
	k := hostKey(name)
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.canon[k]
	return slices.Clone(h.byName[k]), ok
}

// LookupAddr returns the names of an address, the first added first.
func (h *Hosts) LookupAddr(a netip.Addr) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.byAddr[a.Unmap()])
}

// Entries lists the table, sorted by name.
func (h *Hosts) Entries() []HostEntry {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]HostEntry, 0, len(h.canon))
	for k, c := range h.canon {
		out = append(out, HostEntry{Name: c, Addrs: slices.Clone(h.byName[k])})
	}
	slices.SortFunc(out, func(a, b HostEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// netdbState is the per-Net hosts table and resolver configuration. It
// lives beside Net (keyed weakly, so a dropped Net is collected) because
// Net has no field for it yet.
type netdbState struct {
	hosts *Hosts
	mu    sync.Mutex
	cfg   ResolverConfig
}

var netdbs sync.Map // weak.Pointer[Net] -> *netdbState

func (n *Net) netdb() *netdbState {
	k := weak.Make(n)
	if v, ok := netdbs.Load(k); ok {
		return v.(*netdbState)
	}
	st := &netdbState{hosts: newHosts(), cfg: defaultResolverConfig()}
	v, loaded := netdbs.LoadOrStore(k, st)
	if !loaded {
		runtime.AddCleanup(n, func(k weak.Pointer[Net]) { netdbs.Delete(k) }, k)
	}
	return v.(*netdbState)
}

// Hosts is the Net's hosts table (it starts with localhost).
func (n *Net) Hosts() *Hosts { return n.netdb().hosts }

// GetHostName is gethostname: the stack's name.
func (n *Net) GetHostName() string { return n.st.Name() }

// GaiError is a getaddrinfo-family failure, like Python's socket.gaierror.
type GaiError struct {
	Code int // EAI_*
	Err  error
}

// getaddrinfo error codes (glibc values).
const (
	EAI_BADFLAGS = -1
	EAI_NONAME   = -2
	EAI_AGAIN    = -3
	EAI_FAIL     = -4
	EAI_NODATA   = -5
	EAI_FAMILY   = -6
	EAI_SOCKTYPE = -7
	EAI_SERVICE  = -8
	EAI_SYSTEM   = -11
)

var gaiText = map[int]string{
	EAI_BADFLAGS: "Bad value for ai_flags",
	EAI_NONAME:   "Name or service not known",
	EAI_AGAIN:    "Temporary failure in name resolution",
	EAI_FAIL:     "Non-recoverable failure in name resolution",
	EAI_NODATA:   "No address associated with hostname",
	EAI_FAMILY:   "ai_family not supported",
	EAI_SOCKTYPE: "ai_socktype not supported",
	EAI_SERVICE:  "Servname not supported for ai_socktype",
	EAI_SYSTEM:   "System error",
}

func (e *GaiError) Error() string {
	s := "[Errno " + strconv.Itoa(e.Code) + "] " + gaiText[e.Code]
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
func (e *GaiError) Unwrap() error { return e.Err }

// Is matches another *GaiError with the same code, so
// errors.Is(err, &GaiError{Code: EAI_NONAME}) works.
func (e *GaiError) Is(t error) bool {
	g, ok := t.(*GaiError)
	return ok && g.Code == e.Code
}

func gaiErr(code int, err error) *GaiError { return &GaiError{Code: code, Err: err} }

// getaddrinfo flags (Linux values).
const (
	AI_PASSIVE     = 0x1
	AI_CANONNAME   = 0x2
	AI_NUMERICHOST = 0x4
	AI_V4MAPPED    = 0x8
	AI_ALL         = 0x10
	AI_ADDRCONFIG  = 0x20
	AI_NUMERICSERV = 0x400
)

// getnameinfo flags (Linux values).
const (
	NI_NUMERICHOST = 1
	NI_NUMERICSERV = 2
	NI_NOFQDN      = 4
	NI_NAMEREQD    = 8
	NI_DGRAM       = 16
)

// AddrInfo is one result of GetAddrInfo.
type AddrInfo struct {
	Family, Type, Proto int
	CanonName           string
	Addr                *SockaddrInet
}

// lookupHost resolves a name: the hosts table, the stack's own name,
// then DNS. family filters (AF_UNSPEC: both). It returns the canonical
// name too.
func (n *Net) lookupHost(name string, family int) (string, []netip.Addr, error) {
	if addrs, ok := n.Hosts().LookupHost(name); ok {
		addrs = filterFamily(addrs, family)
		if len(addrs) == 0 {
			return "", nil, gaiErr(EAI_NODATA, nil)
		}
		return strings.TrimSuffix(name, "."), addrs, nil
	}
	if strings.EqualFold(hostKey(name), hostKey(n.GetHostName())) {
		// Like nss-myhostname: the host's own addresses.
		var own []netip.Addr
		for _, nic := range n.st.NICs() {
			for _, p := range nic.Addrs() {
				if !p.Addr().IsLoopback() {
					own = append(own, p.Addr())
				}
			}
		}
		if len(own) == 0 {
			own = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		if own = filterFamily(own, family); len(own) > 0 {
			return n.GetHostName(), own, nil
		}
	}
	return n.resolveDNS(name, family)
}

func filterFamily(addrs []netip.Addr, family int) []netip.Addr {
	if family == AF_UNSPEC {
		return addrs
	}
	return slices.DeleteFunc(addrs, func(a netip.Addr) bool { return a.Is4() != (family == AF_INET) })
}

// GetHostByName is gethostbyname: one IPv4 address of name (a dotted
// quad is returned as is).
func (n *Net) GetHostByName(name string) (netip.Addr, error) {
	_, _, addrs, err := n.GetHostByNameEx(name)
	if err != nil {
		return netip.Addr{}, err
	}
	return addrs[0], nil
}

// GetHostByNameEx is gethostbyname_ex: canonical name, aliases and IPv4 addresses.
func (n *Net) GetHostByNameEx(name string) (string, []string, []netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		if !a.Unmap().Is4() {
			return "", nil, nil, gaiErr(EAI_FAMILY, nil)
		}
		return name, nil, []netip.Addr{a.Unmap()}, nil
	}
	canon, addrs, err := n.lookupHost(name, AF_INET)
	if err != nil {
		return "", nil, nil, err
	}
	var aliases []string
	if !strings.EqualFold(hostKey(canon), hostKey(name)) {
		aliases = []string{name}
	}
	return canon, aliases, addrs, nil
}

// GetHostByAddr is gethostbyaddr: the name of an address from the hosts
// table or a DNS PTR query, with aliases and the address itself.
func (n *Net) GetHostByAddr(addr string) (string, []string, []netip.Addr, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		// Python accepts a name and resolves it first.
		if a, err = n.GetHostByName(addr); err != nil {
			return "", nil, nil, err
		}
	}
	a = a.Unmap()
	names := n.Hosts().LookupAddr(a)
	if len(names) == 0 {
		if names, err = n.resolvePTR(a); err != nil {
			return "", nil, nil, err
		}
	}
	return names[0], names[1:], []netip.Addr{a}, nil
}

// GetAddrInfo is getaddrinfo: the socket addresses for host and service.
// host "" is the wildcard with AI_PASSIVE and loopback without; family
// AF_UNSPEC returns IPv4 and IPv6 answers (IPv6 ones for when the stack
// speaks IPv6); typ and proto 0 mean every kind, as glibc does.
func (n *Net) GetAddrInfo(host, service string, family, typ, proto, flags int) ([]AddrInfo, error) {
	if flags&^(AI_PASSIVE|AI_CANONNAME|AI_NUMERICHOST|AI_V4MAPPED|AI_ALL|AI_ADDRCONFIG|AI_NUMERICSERV) != 0 {
		return nil, gaiErr(EAI_BADFLAGS, nil)
	}
	if family != AF_UNSPEC && family != AF_INET && family != AF_INET6 {
		return nil, gaiErr(EAI_FAMILY, nil)
	}
	if host == "" && service == "" {
		return nil, gaiErr(EAI_NONAME, nil)
	}
	type kind struct{ typ, proto int }
	var kinds []kind
	switch {
	case typ == 0 && proto == 0:
		kinds = []kind{{SOCK_STREAM, IPPROTO_TCP}, {SOCK_DGRAM, IPPROTO_UDP}, {SOCK_RAW, 0}}
	case typ == 0:
		switch proto {
		case IPPROTO_TCP:
			kinds = []kind{{SOCK_STREAM, proto}}
		case IPPROTO_UDP:
			kinds = []kind{{SOCK_DGRAM, proto}}
		default:
			kinds = []kind{{SOCK_RAW, proto}}
		}
	case typ == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP):
		kinds = []kind{{SOCK_STREAM, IPPROTO_TCP}}
	case typ == SOCK_DGRAM && (proto == 0 || proto == IPPROTO_UDP):
		kinds = []kind{{SOCK_DGRAM, IPPROTO_UDP}}
	case typ == SOCK_RAW:
		kinds = []kind{{SOCK_RAW, proto}}
	case typ == SOCK_STREAM || typ == SOCK_DGRAM:
		return nil, gaiErr(EAI_SERVICE, nil)
	default:
		return nil, gaiErr(EAI_SOCKTYPE, nil)
	}

	// Service: a number, or a name looked up for each socket type.
	port := -1
	if service != "" {
		if p, err := strconv.Atoi(service); err == nil {
			if p < 0 || p > 65535 {
				return nil, gaiErr(EAI_SERVICE, nil)
			}
			port = p
		} else if flags&AI_NUMERICSERV != 0 {
			return nil, gaiErr(EAI_NONAME, nil)
		}
	}
	ports := make([]int, 0, len(kinds))
	keep := kinds[:0]
	for _, k := range kinds {
		p := port
		if service == "" {
			p = 0
		} else if p < 0 {
			if k.typ == SOCK_RAW {
				continue // a named service has no meaning for raw sockets
			}
			pn := "tcp"
			if k.typ == SOCK_DGRAM {
				pn = "udp"
			}
			var err error
			if p, err = GetServByName(service, pn); err != nil {
				continue
			}
		}
		keep = append(keep, k)
		ports = append(ports, p)
	}
	kinds = keep
	if len(kinds) == 0 {
		return nil, gaiErr(EAI_SERVICE, nil)
	}

	var addrs []netip.Addr
	canon := host
	switch {
	case host == "":
		if flags&AI_PASSIVE != 0 {
			addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
		} else {
			// glibc: ::1 before 127.0.0.1 (RFC 6724), but 0.0.0.0 before ::.
			addrs = []netip.Addr{netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1")}
		}
		addrs = filterFamily(addrs, family)
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			a = a.Unmap()
			if family == AF_INET && !a.Is4() || family == AF_INET6 && a.Is4() && flags&AI_V4MAPPED == 0 {
				return nil, gaiErr(EAI_ADDRFAMILY, nil)
			}
			if family == AF_INET6 && a.Is4() {
				a = netip.AddrFrom16(a.As16())
			}
			addrs = []netip.Addr{a}
		} else if flags&AI_NUMERICHOST != 0 {
			return nil, gaiErr(EAI_NONAME, nil)
		} else {
			c, as, err := n.lookupHost(host, family)
			if err != nil {
				return nil, err
			}
			canon, addrs = c, as
		}
	}
	var out []AddrInfo
	for _, a := range addrs {
		fam := AF_INET
		if !a.Is4() {
			fam = AF_INET6
		}
		for i, k := range kinds {
			out = append(out, AddrInfo{Family: fam, Type: k.typ, Proto: k.proto,
				Addr: InetAddr(netip.AddrPortFrom(a, uint16(ports[i])))})
		}
	}
	if len(out) > 0 && flags&AI_CANONNAME != 0 {
		out[0].CanonName = canon
	}
	return out, nil
}

// EAI_ADDRFAMILY: the host has no address of the requested family.
const EAI_ADDRFAMILY = -9

func init() { gaiText[EAI_ADDRFAMILY] = "Address family for hostname not supported" }

// GetNameInfo is getnameinfo: host and service names of an address.
func (n *Net) GetNameInfo(sa *SockaddrInet, flags int) (host, serv string, err error) {
	if sa == nil {
		return "", "", gaiErr(EAI_FAMILY, nil)
	}
	a := sa.AddrPort.Addr()
	host = a.String() // a v4-mapped address stays mapped, as glibc prints it
	if flags&NI_NUMERICHOST == 0 {
		if name, _, _, err := n.GetHostByAddr(a.Unmap().WithZone("").String()); err == nil {
			host = name
			if flags&NI_NOFQDN != 0 {
				host, _, _ = strings.Cut(host, ".")
			}
		} else if flags&NI_NAMEREQD != 0 {
			return "", "", gaiErr(EAI_NONAME, nil)
		}
	}
	port := int(sa.AddrPort.Port())
	serv = strconv.Itoa(port)
	if flags&NI_NUMERICSERV == 0 {
		proto := "tcp"
		if flags&NI_DGRAM != 0 {
			proto = "udp"
		}
		if s, err := GetServByPort(port, proto); err == nil {
			serv = s
		}
	}
	return host, serv, nil
}
