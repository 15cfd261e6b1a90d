// Package stack is the host: NICs, addresses, routes, the ARP neighbour
// cache, IPv4 in and out with fragmentation and reassembly, ICMP, and the
// demultiplexing of packets to transport endpoints (UDP, ping and raw
// sockets here; TCP in package tcp).
package stack

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Options configure a stack. Zero values give Linux-like defaults.
type Options struct {
	Name       string      // host name
	Clock      clock.Clock // default clock.Real{}
	Forwarding bool        // route packets not addressed to us
	DefaultTTL uint8       // 64
	TCP        tcp.Config

	ARPCacheSize  int // neighbour entries per NIC, default 1024
	ARPPendingLen int // packets queued per unresolved neighbour, default 101 (Linux's unres_qlen)
	// ARPPendingBytes caps the bytes queued per unresolved neighbour, each
	// frame charged its buffer plus a fixed overhead (Linux's
	// unres_qlen_bytes, default 212992): the oldest go first.
	ARPPendingBytes int
	// ARPPendingTotal and ARPPendingTotalBytes cap what all unresolved
	// neighbours of the stack hold together (default 1024 frames, 4 MiB):
	// beyond them a new frame is dropped.
	ARPPendingTotal      int
	ARPPendingTotalBytes int
	ARPLocktime          time.Duration // a reachable entry's MAC is not replaced sooner than this after an update, default 1s
	ARPRetries           int           // requests before failure, default 3
	ARPRetryTime         time.Duration // between requests, default 1s
	ARPReachable         time.Duration // an answer is trusted this long, default 30s
	ARPStaleTimeout      time.Duration // an unused stale entry is removed after this, default 60s

	ReasmTimeout  time.Duration // default 30s
	ReasmMemLimit int           // bytes charged to partial datagrams (true size), default 4 MiB; the oldest are evicted beyond it
	ReasmMaxRuns  int           // separate runs of data (holes + 1) per datagram, default 64

	ICMPRateLimit int // error messages per second, all destinations (icmp_msgs_per_sec), default 1000
	ICMPRateBurst int // default 50 (icmp_msgs_burst)
	// ICMPPeerInterval is the per-destination limit (icmp_ratelimit): one
	// message per interval, ICMPPeerBurst at once. Default 1s; negative
	// disables it.
	ICMPPeerInterval  time.Duration
	ICMPPeerBurst     int    // default 6 (Linux's XRLIM_BURST_FACTOR)
	ICMPRateMask      uint32 // types limited (bit = type), default DefaultICMPRateMask
	ICMPPeerTableSize int    // destinations tracked, default 1024; older ones are evicted

	UDPRecvBuf int // default receive queue limit in bytes, 212992 like Linux

	// BusyPoll is how long a blocking read busy-polls the link its
	// connection receives on before it sleeps, for sockets that do not
	// set SO_BUSY_POLL: Linux's net.core.busy_read. 0 (default): no
	// busy polling. See BusyPoll.
	BusyPoll time.Duration
	// BusyPollSelect is how long socket.Poll, socket.Select and
	// socket.Poller.Wait busy-poll, once per call, before they sleep,
	// when a socket they watch busy-polls (SO_BUSY_POLL or BusyPoll):
	// Linux's net.core.busy_poll. 0 (default): they do not.
	BusyPollSelect time.Duration

	PMTUExpires   time.Duration // a learnt path MTU is forgotten after this, default 10 min (mtu_expires)
	PMTUMin       int           // path MTUs are not set below this, default 552 (min_pmtu)
	PMTUCacheSize int           // destinations with a learnt path MTU, default 1024

	MaxMemberships int // multicast groups one socket may join, default 20 (igmp_max_memberships)
	// IGMPMaxMsf and MLDMaxMsf bound one socket's source list for a
	// group: defaults 10 and 64 (Linux's igmp_max_msf, mld_max_msf).
	IGMPMaxMsf, MLDMaxMsf int
	// ForceIGMPVersion (1, 2, 3) and ForceMLDVersion (1, 2) pin the
	// version, like Linux's force_igmp_version / force_mld_version; 0
	// (default) speaks IGMPv3 / MLDv2 and falls back when an older
	// querier is heard.
	ForceIGMPVersion, ForceMLDVersion int

	// IPv6. Off by default so a stack on an IPv4-only setup sends
	// nothing unasked; ::1 on loopback and AddAddress with an IPv6 prefix
	// work regardless.
	IPv6LinkLocal bool // give every Ethernet NIC a link-local address (EnableIPv6)
	// IPv6StableSecret selects RFC 7217 stable privacy interface
	// identifiers (for link-local and SLAAC addresses); nil: modified EUI-64.
	IPv6StableSecret []byte
	IPv6SLAAC        bool          // accept router advertisements: addresses, default routers, MTU (accept_ra)
	DADTransmits     int           // neighbour solicitations per DAD, default 1 (dad_transmits); negative: no DAD
	NDRetransTime    time.Duration // between solicitations, default 1s (RetransTimer)
	NDReachableTime  time.Duration // base reachable time, default 30s (randomised 0.5–1.5x, RFC 4861 6.3.2)
	NDDelayTime      time.Duration // DELAY_FIRST_PROBE_TIME, default 5s
	NDMcastSolicit   int           // MAX_MULTICAST_SOLICIT, default 3
	NDUcastSolicit   int           // MAX_UNICAST_SOLICIT, default 3
	RSCount          int           // router solicitations sent, default 3 (MAX_RTR_SOLICITATIONS)
	RSInterval       time.Duration // between them, default 4s
	NDCacheSize      int           // neighbour entries per NIC, default 1024; beyond it stale ones are evicted
	IPv6MaxAddrs     int           // addresses per NIC SLAAC may add, default 16 (max_addresses)
	IPv6MaxRouters   int           // default routers remembered per NIC, default 8
	IPv6MaxPrefixes  int           // on-link prefixes learnt from RAs per NIC, default 64; more are ignored (ND.PrefixesFull)
	// AcceptRAWhenForwarding applies router advertisements (IPv6SLAAC)
	// on a forwarding stack too, Linux's accept_ra=2; without it a
	// forwarding stack ignores them, as accept_ra=1 does (ND.RAIgnored).
	AcceptRAWhenForwarding bool

	// Seg6Enabled makes the stack an SRv6 endpoint (RFC 8986 End,
	// seg6.go), Linux's net.ipv6.conf.all.seg6_enabled: a Segment
	// Routing Header addressed here is processed only when it is on and
	// the incoming NIC's own setting (NIC.SetSeg6Enabled, on by default)
	// is on too, as Linux takes the smaller of all and the interface.
	// Off, a packet with an SRH for this host is dropped (IP6.Seg6Disabled).
	Seg6Enabled bool
	// Seg6RequireHMAC is Linux's seg6_require_hmac: 0 checks an SRH's
	// HMAC TLV when present, 1 requires one, -1 ignores it. sockstack
	// has no HMAC keys, so a checked HMAC never verifies: with 0 an SRH
	// carrying one is dropped (IP6.Seg6HMACDrops), as Linux without a key.
	Seg6RequireHMAC int

	// Seed, when set, replaces the random start of the IP identification
	// counter and its key, so a simulated host sends the same bytes on
	// every run (package sim).
	Seed []byte
}

func (o *Options) fill() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Name == "" {
		o.Name = "sockstack"
	}
	if o.DefaultTTL == 0 {
		o.DefaultTTL = 64
	}
	if o.ARPCacheSize == 0 {
		o.ARPCacheSize = 1024
	}
	if o.ARPPendingLen == 0 {
		o.ARPPendingLen = 101
	}
	if o.ARPPendingBytes == 0 {
		o.ARPPendingBytes = 212992
	}
	if o.ARPPendingTotal == 0 {
		o.ARPPendingTotal = 1024
	}
	if o.ARPPendingTotalBytes == 0 {
		o.ARPPendingTotalBytes = 4 << 20
	}
	if o.ARPLocktime == 0 {
		o.ARPLocktime = time.Second
	}
	if o.ARPRetries == 0 {
		o.ARPRetries = 3
	}
	if o.ARPRetryTime == 0 {
		o.ARPRetryTime = time.Second
	}
	if o.ARPReachable == 0 {
		o.ARPReachable = 30 * time.Second
	}
	if o.ARPStaleTimeout == 0 {
		o.ARPStaleTimeout = 60 * time.Second
	}
	if o.ReasmTimeout == 0 {
		o.ReasmTimeout = 30 * time.Second
	}
	if o.ReasmMemLimit == 0 {
		o.ReasmMemLimit = 4 << 20
	}
	if o.ReasmMaxRuns == 0 {
		o.ReasmMaxRuns = 64
	}
	if o.ICMPRateLimit == 0 {
		o.ICMPRateLimit = 1000
	}
	if o.ICMPRateBurst == 0 {
		o.ICMPRateBurst = 50
	}
	if o.ICMPPeerInterval == 0 {
		o.ICMPPeerInterval = time.Second
	}
	if o.ICMPPeerBurst == 0 {
		o.ICMPPeerBurst = 6
	}
	if o.ICMPRateMask == 0 {
		o.ICMPRateMask = DefaultICMPRateMask
	}
	if o.ICMPPeerTableSize == 0 {
		o.ICMPPeerTableSize = 1024
	}
	if o.UDPRecvBuf == 0 {
		o.UDPRecvBuf = 212992
	}
	if o.PMTUExpires == 0 {
		o.PMTUExpires = 10 * time.Minute
	}
	if o.PMTUMin == 0 {
		o.PMTUMin = 552
	}
	if o.PMTUCacheSize == 0 {
		o.PMTUCacheSize = 1024
	}
	if o.IGMPMaxMsf == 0 {
		o.IGMPMaxMsf = 10
	}
	if o.MLDMaxMsf == 0 {
		o.MLDMaxMsf = 64
	}
	if o.MaxMemberships == 0 {
		o.MaxMemberships = 20
	}
	if o.DADTransmits == 0 {
		o.DADTransmits = 1
	}
	if o.NDRetransTime == 0 {
		o.NDRetransTime = time.Second
	}
	if o.NDReachableTime == 0 {
		o.NDReachableTime = 30 * time.Second
	}
	if o.NDDelayTime == 0 {
		o.NDDelayTime = 5 * time.Second
	}
	if o.NDMcastSolicit == 0 {
		o.NDMcastSolicit = 3
	}
	if o.NDUcastSolicit == 0 {
		o.NDUcastSolicit = 3
	}
	if o.RSCount == 0 {
		o.RSCount = 3
	}
	if o.RSInterval == 0 {
		o.RSInterval = 4 * time.Second
	}
	if o.NDCacheSize == 0 {
		o.NDCacheSize = 1024
	}
	if o.IPv6MaxAddrs == 0 {
		o.IPv6MaxAddrs = 16
	}
	if o.IPv6MaxRouters == 0 {
		o.IPv6MaxRouters = 8
	}
	if o.IPv6MaxPrefixes == 0 {
		o.IPv6MaxPrefixes = 64
	}
}

// Stack is one host.
type Stack struct {
	opts  Options
	clock clock.Clock
	stats Stats

	// mcRand draws IGMP/MLD report delays (ssm.go): seeded from
	// Options.Seed when set, so a simulated host's reports are the same
	// on every run.
	mcRandMu sync.Mutex
	mcRand   *mrand.Rand

	mu   sync.RWMutex
	nics []*NIC
	// holders are the NICs' endpoints by NIC id (id-1), nil for those
	// that cannot hold a flush's frames (link.Holder; tcphost.go's
	// HoldOutput), replaced under mu.
	holders atomic.Pointer[[]link.Holder]
	routes  []Route // longest prefix first
	lo      *NIC

	// Copy-on-write snapshots of routes and host addresses, replaced under
	// mu: the per-packet route lookup and address checks read them
	// without a lock (an RWMutex's reader count is a contended atomic when
	// both link goroutines and senders look up at once).
	routeSnap atomic.Pointer[[]Route] // the main table
	ownerSnap atomic.Pointer[[]addrOwner]

	ipID   atomic.Uint32
	idKey  [16]byte
	reasm  *reassembler
	icmpRL *icmpLimiter
	pmtu   pmtuCache
	redir6 redirects // the IPv6 destination cache from redirects (ndp_redirect.go)

	// Frames and bytes waiting for neighbour resolution on all NICs.
	arpPending, arpPendingBytes atomic.Int64

	udp  *udpTable
	ping *udpTable // ping sockets, keyed by echo identifier
	raw  rawTable
	TCP  *tcp.Protocol

	tproxy tproxyTable // transparent divert rules (transparent.go)
	pr     policyState // policy routing rules and tables (route.go)

	hooks struct {
		sync.RWMutex
		taps []*packetTap // AF_PACKET sockets
		n    atomic.Int32
	}
}

// New makes a stack with a loopback interface (127.0.0.1/8).
func New(opts Options) *Stack {
	opts.fill()
	s := &Stack{opts: opts, clock: opts.Clock}
	var b [4]byte
	if opts.Seed != nil {
		h := sha256.Sum256(opts.Seed)
		copy(s.idKey[:], h[:16])
		copy(b[:], h[16:20])
	} else {
		rand.Read(s.idKey[:])
		rand.Read(b[:])
	}
	s.ipID.Store(binary.BigEndian.Uint32(b[:]))
	s.mcRand = newMcRand(opts.Seed)
	s.reasm = newReassembler(s)
	s.icmpRL = newICMPLimiter(&s.opts)
	s.udp = newUDPTable()
	s.ping = newUDPTable()
	s.TCP = tcp.NewProtocol(tcpHost{s}, opts.TCP)

	// Loopback: an IP pipe whose far end is the stack's own receiver, so
	// packets to ourselves are queued rather than delivered recursively
	// (a sender holding a lock must never be re-entered).
	lo := &NIC{stack: s, id: 1, name: "lo", ep: link.NewLoopback(65536), mtu: 65536, loopback: true, groups: map[netip.Addr]int{}}
	lo.rx.tcp = s.TCP.NewBatch()
	lo.rx.tcp.SetInterface(lo.id, true) // SO_BINDTODEVICE's demux (tcp/bindtodev.go)
	lo.ep.Attach(lo)
	s.lo = lo
	s.nics = append(s.nics, lo)
	lo.addrs = append(lo.addrs, netip.MustParsePrefix("127.0.0.1/8"), netip.PrefixFrom(ipv6Loopback, 128))
	lo.storeAddrs()
	s.routes = append(s.routes, Route{Prefix: netip.MustParsePrefix("127.0.0.0/8"), NIC: lo},
		Route{Prefix: netip.PrefixFrom(ipv6Loopback, 128), NIC: lo})
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	return s
}

// addrOwner is one host address and its interface.
type addrOwner struct {
	addr netip.Addr
	nic  *NIC
}

// publishLocked replaces the lock-free snapshots of the route table and
// of the host's addresses; s.mu is held.
func (s *Stack) publishLocked() {
	var routes []Route
	for _, r := range s.routes {
		if r.table() == TableMain {
			routes = append(routes, r)
		}
	}
	s.routeSnap.Store(&routes)
	s.publishPolicyLocked() // route.go
	var owners []addrOwner
	for _, n := range s.nics {
		for _, p := range n.addrSnapshot().prefixes {
			owners = append(owners, addrOwner{p.Addr(), n})
		}
	}
	s.ownerSnap.Store(&owners)
}

// Clock is the stack's clock.
func (s *Stack) Clock() clock.Clock { return s.clock }

// Name is the host name.
func (s *Stack) Name() string { return s.opts.Name }

// Stats are the stack's counters.
func (s *Stack) Stats() *Stats { return &s.stats }

// Options returns the options the stack runs with.
func (s *Stack) Options() Options { return s.opts }

// Close detaches every NIC and stops TCP.
func (s *Stack) Close() {
	s.TCP.Close()
	s.mu.Lock()
	nics := s.nics
	s.mu.Unlock()
	for _, n := range nics {
		n.ep.Close()
		if n.neigh != nil {
			n.neigh.close()
		}
		n.stopReports()
		n.close6()
		n.closeRoom() // room.go
	}
	s.reasm.close()
}

// NIC is a network interface of the stack.
type NIC struct {
	stack    *Stack
	id       int
	name     string
	ep       link.Endpoint
	mac      wire.MAC
	mtu      int
	loopback bool
	ethernet bool
	seg6Off  atomic.Bool // SRv6 off on this NIC (NIC.SetSeg6Enabled)
	neigh    *neighborCache
	rx       rxState     // the endpoint goroutine.s receive state (rxqueue.go)
	offl     nicOffloads // segmentation / receive offload state (gso.go)
	room     nicRoom     // TCP's wake-up when a full transmit queue drains (room.go)

	amu     sync.RWMutex
	addrs   []netip.Prefix
	groups  map[netip.Addr]int // multicast memberships (count of joins)
	promisc atomic.Int32
	snap    atomic.Pointer[nicAddrs] // copy of addrs for lock-free reads

	// One pending IGMP report per joined group (RFC 2236).
	igmpMu     sync.Mutex
	igmpTimers map[netip.Addr]*reportTimer
	mc         mcState // source filters, IGMPv3/MLDv2 state (ssm.go)

	v6 nic6 // IPv6 state: link-local, DAD, ND, SLAAC (ndp.go)
}

// nicAddrs is an immutable copy of a NIC's addresses, replaced whenever
// they change: every received packet checks them, so readers take no lock.
type nicAddrs struct {
	prefixes []netip.Prefix
	bcast    []netip.Addr // directed broadcast addresses (prefixes up to /30)
}

var noAddrs nicAddrs

func (n *NIC) addrSnapshot() *nicAddrs {
	if a := n.snap.Load(); a != nil {
		return a
	}
	return &noAddrs
}

// storeAddrs publishes n.addrs; n.amu is held (or n is not yet shared).
func (n *NIC) storeAddrs() {
	a := &nicAddrs{prefixes: append([]netip.Prefix(nil), n.addrs...)}
	for _, p := range n.addrs {
		if p.Addr().Is4() && p.Bits() < 31 {
			a.bcast = append(a.bcast, DirectedBroadcast(p))
		}
	}
	n.snap.Store(a)
}

// AddNIC attaches an endpoint as a new interface and starts receiving.
func (s *Stack) AddNIC(name string, ep link.Endpoint) *NIC {
	n := &NIC{stack: s, name: name, ep: ep, mac: ep.HardwareAddr(), mtu: ep.MTU(),
		ethernet: ep.Kind() == link.KindEthernet, groups: map[netip.Addr]int{}}
	if n.ethernet {
		n.neigh = newNeighborCache(n)
	}
	n.rx.tcp = s.TCP.NewBatch()
	n.initOffloads()
	s.mu.Lock()
	n.id = len(s.nics) + 1
	n.rx.tcp.SetInterface(n.id, false) // SO_BINDTODEVICE's demux (tcp/bindtodev.go)
	s.nics = append(s.nics, n)
	// holders[id-1] is the NIC's endpoint if it holds frames: a flush
	// holds the link of its own route only (tcp.Route.Hold), read
	// without a lock on every flush.
	var hs []link.Holder
	if old := s.holders.Load(); old != nil {
		hs = append(hs, *old...)
	}
	for len(hs) < n.id-1 {
		hs = append(hs, nil) // the loopback NIC, added without AddNIC
	}
	h, _ := ep.(link.Holder)
	hs = append(hs, h)
	s.holders.Store(&hs)
	s.mu.Unlock()
	n.init6()
	ep.Attach(n)
	if s.opts.IPv6LinkLocal && n.ethernet {
		n.EnableIPv6()
	}
	return n
}

func (n *NIC) Name() string              { return n.name }
func (n *NIC) ID() int                   { return n.id }
func (n *NIC) MTU() int                  { return n.mtu }
func (n *NIC) HardwareAddr() wire.MAC    { return n.mac }
func (n *NIC) Endpoint() link.Endpoint   { return n.ep }
func (n *NIC) IsEthernet() bool          { return n.ethernet }
func (n *NIC) Stack() *Stack             { return n.stack }
func (n *NIC) String() string            { return n.name }
func (n *NIC) Neighbors() []NeighborInfo { return n.neigh.list() }

// Addrs lists the interface's addresses.
func (n *NIC) Addrs() []netip.Prefix {
	n.amu.RLock()
	defer n.amu.RUnlock()
	return append([]netip.Prefix(nil), n.addrs...)
}

// AddAddress assigns addr (with its prefix) to the NIC, adds the
// connected route, and announces it with a gratuitous ARP.
func (n *NIC) AddAddress(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("stack: %v is not a prefix", p)
	}
	if p.Addr().Is6() {
		return n.addAddress6(p, addrManual, 0, 0)
	}
	n.amu.Lock()
	for _, a := range n.addrs {
		if a.Addr() == p.Addr() {
			n.amu.Unlock()
			return syscall.EEXIST
		}
	}
	n.addrs = append(n.addrs, p)
	n.storeAddrs()
	n.amu.Unlock()
	n.stack.AddRoute(Route{Prefix: p.Masked(), NIC: n, Src: p.Addr()})
	if n.neigh != nil {
		n.neigh.announce(p.Addr())
	}
	return nil
}

// hasAddr reports whether a is assigned to the NIC.
func (n *NIC) hasAddr(a netip.Addr) bool {
	for _, p := range n.addrSnapshot().prefixes {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// isBroadcast reports a limited or directed broadcast on this NIC.
func (n *NIC) isBroadcast(a netip.Addr) bool {
	if a == limitedBroadcast {
		return true
	}
	for _, b := range n.addrSnapshot().bcast {
		if a == b {
			return true
		}
	}
	return false
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// DirectedBroadcast is the directed broadcast address of the IPv4
// prefix p: its address with every host bit set (255.255.255.255 for
// /0, the address itself for /32).
func DirectedBroadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// primaryAddr is the address to use as source on this NIC for dst.
func (n *NIC) primaryAddr(dst netip.Addr) netip.Addr {
	if dst.Is6() {
		return n.selectSource6(dst)
	}
	addrs := n.addrSnapshot().prefixes
	for _, p := range addrs {
		if p.Contains(dst) {
			return p.Addr()
		}
	}
	for _, p := range addrs {
		if p.Addr().Is4() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// Route is one entry of the routing table.
type Route struct {
	Prefix  netip.Prefix
	Gateway netip.Addr // invalid for directly connected networks
	NIC     *NIC
	Src     netip.Addr // preferred source (optional)
	MTU     int        // 0: the NIC's MTU
	// Table is the routing table (route.go): 0 or 254 main, 253
	// default, others for rules to look up.
	Table uint32
	// Metric orders routes of one prefix in one table: the lowest wins.
	Metric uint32
}

func (r Route) String() string {
	s := r.Prefix.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	s += " dev " + r.NIC.name
	if r.MTU != 0 {
		s += fmt.Sprintf(" mtu %d", r.MTU)
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	if t := r.table(); t != TableMain {
		s += " table " + tableName(t)
	}
	return s
}

// AddRoute adds r, or replaces the route of the same prefix, NIC,
// gateway, table and metric; routes are kept longest prefix first, then
// lowest metric.
func (s *Stack) AddRoute(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishLocked()
	for i := range s.routes {
		if sameRoute(&s.routes[i], &r) {
			s.routes[i] = r
			return
		}
	}
	s.routes = append(s.routes, r)
	sortRoutes(s.routes) // route.go
}

// SetDefaultGateway routes 0.0.0.0/0 through gw on the NIC that reaches it.
func (s *Stack) SetDefaultGateway(gw netip.Addr) error {
	r, err := s.FindRoute(gw)
	if err != nil {
		return err
	}
	if r.Gateway.IsValid() {
		return syscall.ENETUNREACH
	}
	any := netip.IPv4Unspecified()
	if gw.Is6() {
		any = netip.IPv6Unspecified()
	}
	s.AddRoute(Route{Prefix: netip.PrefixFrom(any, 0), Gateway: gw, NIC: r.NIC})
	return nil
}

// Routes lists the routes of every table.
func (s *Stack) Routes() []Route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Route(nil), s.routes...)
}

// NICs lists the interfaces (loopback first).
func (s *Stack) NICs() []*NIC {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*NIC(nil), s.nics...)
}

// NICByName finds an interface.
func (s *Stack) NICByName(name string) *NIC {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.nics {
		if n.name == name {
			return n
		}
	}
	return nil
}

// NICByID finds an interface by index.
func (s *Stack) NICByID(id int) *NIC {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id < 1 || id > len(s.nics) {
		return nil
	}
	return s.nics[id-1]
}

// ResolvedRoute is a route chosen for one destination.
type ResolvedRoute struct {
	NIC     *NIC
	Src     netip.Addr
	NextHop netip.Addr
	Gateway netip.Addr
	MTU     int
	Local   bool // the destination is this host: goes through loopback
}

// FindRoute picks the route to dst by longest prefix match. Destinations
// that are the host's own addresses go through loopback. With policy
// rules beyond the default ones, they choose the table (route.go), for a
// flow without mark or source.
func (s *Stack) FindRoute(dst netip.Addr) (ResolvedRoute, error) {
	if pol := s.pr.snap.Load(); pol != nil {
		return s.policyRoute(pol, dst, &Flow{}, nil)
	}
	if dst.Is4In6() {
		dst = dst.Unmap()
	}
	if dst.Is6() {
		return s.findRoute6(dst)
	}
	if !dst.Is4() {
		return ResolvedRoute{}, syscall.ENETUNREACH
	}
	if n := s.ownerOf(dst); n != nil {
		return ResolvedRoute{NIC: s.lo, Src: dst, NextHop: dst, MTU: s.lo.mtu, Local: true}, nil
	}
	for _, r := range *s.routeSnap.Load() {
		if r.Prefix.Contains(dst) {
			rr := ResolvedRoute{NIC: r.NIC, NextHop: dst, Gateway: r.Gateway, MTU: r.MTU}
			if r.Gateway.IsValid() {
				rr.NextHop = r.Gateway
			}
			if rr.MTU == 0 || rr.MTU > r.NIC.mtu {
				rr.MTU = r.NIC.mtu
			}
			rr.Src = r.Src
			if !rr.Src.IsValid() {
				rr.Src = r.NIC.primaryAddr(rr.NextHop)
			}
			if r.NIC == s.lo {
				rr.Local = true
			}
			if !rr.Src.IsValid() {
				return ResolvedRoute{}, syscall.EADDRNOTAVAIL
			}
			return rr, nil
		}
	}
	return ResolvedRoute{}, syscall.ENETUNREACH
}

// ownerOf returns the NIC holding dst as an address (lo for 127/8).
func (s *Stack) ownerOf(a netip.Addr) *NIC {
	if a.Is4() && a.As4()[0] == 127 || a == ipv6Loopback {
		return s.lo
	}
	a = a.WithZone("")
	for _, o := range *s.ownerSnap.Load() {
		if o.addr == a {
			return o.nic
		}
	}
	return nil
}

// IsLocal reports whether a is one of the host's addresses.
func (s *Stack) IsLocal(a netip.Addr) bool { return s.ownerOf(a) != nil }

// nextID is the IPv4 identification for an atomic-or-not datagram. A
// per-stack counter started at a random value: unique per (src, dst,
// protocol) for the reassembly lifetime as RFC 6864 asks of fragmentable
// datagrams, and not a cross-connection covert channel worth worrying
// about for a user-space stack.
func (s *Stack) nextID() uint16 { return uint16(s.ipID.Add(1)) }

// tokenBucket is the global ICMP error limit (RFC 1812 4.3.2.8); the
// caller serialises.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
