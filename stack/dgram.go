package stack

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// DgramKind is the flavour of a datagram endpoint.
type DgramKind uint8

const (
	KindUDP  DgramKind = iota // SOCK_DGRAM / IPPROTO_UDP
	KindPing                  // SOCK_DGRAM / IPPROTO_ICMP: the echo identifier is the port
	KindRaw                   // SOCK_RAW: whole IP packets of one protocol
)

// Ephemeral port range (Linux's ip_local_port_range is 32768–60999; the
// issue asks for the IANA range 49152–65535).
const (
	EphemeralLow  = 49152
	EphemeralHigh = 65535
)

// DgramOverhead is what every queued datagram costs against SO_RCVBUF on
// top of its buffer's capacity: the queue entry and buffer bookkeeping.
// It is Linux's skb overhead (SKB_TRUESIZE(0) on 64-bit: 576 bytes), so a
// small datagram in a 256-byte buffer is charged 832 bytes and the default
// 212,992-byte queue holds 256 of them, as a Linux UDP socket does. Without
// it zero-length datagrams cost nothing and a queue grew without bound.
const DgramOverhead = 576

// Truesize is the charge for a queued buffer b: its capacity (what it
// really pins, whatever its length) plus DgramOverhead.
func Truesize(b []byte) int { return cap(b) + DgramOverhead }

// received is one queued datagram.
type received struct {
	buf  []byte // pooled
	from netip.AddrPort
	dst  netip.Addr
	ttl  uint8
	tos  uint8
	gso  uint16 // a UDP_GRO super-datagram's segment size (gso_udp.go); 0: one datagram
	// dport is a diverted datagram's original destination port
	// (transparent.go); 0: the socket's own port.
	dport uint16
	// ifindex is the NIC the datagram came in on (IP_PKTINFO,
	// IPV6_PKTINFO report it, as Linux reports skb->dev).
	ifindex int32
	// flow is an IPv6 datagram's flow label (IPV6_FLOWINFO); opts an
	// IPv4 one's options as the receive path left them (IP_RECVOPTS,
	// IP_RETOPTS; ipopts_recv.go), nil when it had none: kept apart so
	// that the queue entry of a datagram without options stays small.
	flow uint32
	opts *RecvIPOpts
	// ext is an IPv6 datagram's Hop-by-Hop and Destination Options
	// headers (ext6_recv.go), nil when it had none.
	ext *RecvExt6
	// at is when the datagram was queued, in Unix nanoseconds of the
	// stack's clock, once the socket asked for receive timestamps
	// (dgram_stamp.go); 0: not recorded.
	at int64
}

// DgramEndpoint is a UDP, ping or raw socket's protocol state. It never
// blocks: the socket layer waits on its waiter queue.
type DgramEndpoint struct {
	s     *Stack
	kind  DgramKind
	proto uint8
	table *udpTable
	mark  atomic.Uint32 // SO_MARK, read by every send (route.go)

	mu    sync.Mutex
	local netip.AddrPort
	bound bool
	// userAddr and userPort record an explicit bind (Linux's
	// SOCK_BINDADDR_LOCK / SOCK_BINDPORT_LOCK): a disconnect keeps what the
	// user chose and releases what connect chose.
	userAddr, userPort bool
	remote             netip.AddrPort
	connected          bool
	closed             bool
	shutRd             bool
	shutWr             bool
	softErr            syscall.Errno

	queue   []received // ring
	head, n int
	qbytes  int
	rcvbuf  int
	sndbuf  int
	drops   atomic.Uint64
	// stampRx: record each datagram's arrival time (dgram_stamp.go).
	stampRx atomic.Bool
	// rxDev is the NIC the last queued datagram came in on (0: none
	// yet): where a busy-polling read polls (RxInterface).
	rxDev atomic.Int32
	// rxFlow is the last queued UDP datagram's link.TupleFlowHash, noted
	// once a busy poller asked for it (wantFlow; RxFlow): a multi-queue
	// link polls that flow's queue.
	rxFlow   atomic.Uint32
	wantFlow atomic.Bool

	opts struct {
		broadcast, reuseAddr, reusePort bool
		ttl                             int // -1: default
		tos                             uint8
		hdrIncl                         bool
		mcastTTL                        int
		mcastLoop                       bool
		mcastIf                         *NIC
		// bindDev is SO_BINDTODEVICE's NIC, bindIdx its index: the
		// socket sends through it and takes datagrams that came in on
		// it only. SO_BINDTOIFINDEX may name an index no NIC has (Linux
		// does not look it up): bindIdx set, bindDev nil, and every
		// send fails (devGoneErr).
		bindDev *NIC
		bindIdx int32
		// AF_INET6 (dgram6.go): inet6 marks an IPv6 socket, v6only its
		// IPV6_V6ONLY; csumOff is IPV6_CHECKSUM (-1 off); icmp6Filter
		// ICMP6_FILTER (a set bit blocks the type).
		inet6, v6only bool
		csumOff       int
		// IPV6_UNICAST_HOPS (-1: default), IPV6_MULTICAST_HOPS and
		// IPV6_TCLASS, for IPv6 sends: Linux keeps them apart from
		// IP_TTL, IP_MULTICAST_TTL and IP_TOS, which a dual-stack
		// socket's IPv4 (v4-mapped) sends use.
		hops, mcastHops int
		tclass          uint8
		icmp6Filter     [8]uint32
		// UDP_SEGMENT and UDP_GRO (gso_udp.go).
		gsoSize int
		gro     bool
		// IP_TRANSPARENT and IP_FREEBIND (transparent.go).
		transparent, freebind bool
		// IP_MULTICAST_ALL off (ssm.go); Linux's default is on. mcAll4
		// is an AF_INET6 socket's IP_MULTICAST_ALL, off by default.
		mcAllOff, mcAll4 bool
	}
	groups []membership

	// IP_RECVERR, IPV6_RECVERR and the error queue (errqueue.go): a
	// FIFO, errq[errHead:], charged to qbytes with the receive queue.
	recverr, recverr6 bool
	// IP_RECVERR_RFC4884, IPV6_RECVERR_RFC4884 (errqueue_rfc4884.go).
	rfc4884, rfc4884v6 bool
	errq               []errEntry
	errHead            int
	errDrops           atomic.Uint64
	// IP_MTU_DISCOVER, IPV6_MTU_DISCOVER (PMTUDisc*) and IPV6_DONTFRAG:
	// DO and PROBE send with DF and refuse what does not fit.
	pmtudisc, pmtudisc6 int8
	dontfrag6           bool
	// ipOpts is IP_OPTIONS, the options of every IPv4 datagram sent
	// (ipopts_send.go); replaced, never changed, so a send may keep it.
	ipOpts *SendIPOpts
	// ext6 is the sticky IPv6 extension headers (IPV6_HOPOPTS,
	// IPV6_RTHDRDSTOPTS, IPV6_DSTOPTS; ext6_send.go), replaced whole.
	ext6 *SendExt6

	wq waiter.Queue
}

// NewDgram makes a datagram endpoint; proto is the IP protocol for raw
// endpoints (IPPROTO_RAW = 255 means send-only with IP_HDRINCL).
func (s *Stack) NewDgram(kind DgramKind, proto uint8) *DgramEndpoint {
	e := &DgramEndpoint{s: s, kind: kind, proto: proto, rcvbuf: s.opts.UDPRecvBuf, sndbuf: 212992}
	e.opts.ttl = -1
	e.opts.csumOff = -1
	e.opts.mcastTTL = 1
	e.opts.hops, e.opts.mcastHops = -1, 1
	e.opts.mcastLoop = true
	e.pmtudisc, e.pmtudisc6 = PMTUDiscWant, PMTUDiscWant
	switch kind {
	case KindUDP:
		e.table = s.udp
		e.proto = wire.ProtoUDP
	case KindPing:
		e.table = s.ping
		e.proto = wire.ProtoICMP
	case KindRaw:
		e.opts.hdrIncl = proto == wire.ProtoRaw
		s.raw.add(e)
	}
	return e
}

// Kind is the endpoint's flavour.
func (e *DgramEndpoint) Kind() DgramKind { return e.kind }

// Waiter is the readiness queue.
func (e *DgramEndpoint) Waiter() *waiter.Queue { return &e.wq }

// Readiness reports the events in mask that hold now.
func (e *DgramEndpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r waiter.EventMask
	if e.n > 0 || e.shutRd {
		r |= waiter.EventIn
	}
	if !e.shutWr {
		r |= waiter.EventOut
	}
	if e.softErr != 0 || e.errHead < len(e.errq) {
		r |= waiter.EventErr // POLLERR also for a queued error, as Linux's datagram_poll
	}
	if e.shutRd && e.shutWr {
		r |= waiter.EventHUp
	}
	return r & (mask | waiter.EventErr | waiter.EventHUp)
}

// WaitReadiness is Readiness as a blocking send or receive sees it: a
// queued error alone (IP_RECVERR) does not end the wait, as it does not
// in Linux, where only the pending error does.
func (e *DgramEndpoint) WaitReadiness(mask waiter.EventMask) waiter.EventMask {
	r := e.Readiness(mask)
	if r&waiter.EventErr != 0 {
		e.mu.Lock()
		if e.softErr == 0 {
			r &^= waiter.EventErr
		}
		e.mu.Unlock()
	}
	return r
}

// Bind sets the local address. Port 0 picks an ephemeral port.
func (e *DgramEndpoint) Bind(addr netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return syscall.EBADF
	}
	if e.bound {
		return syscall.EINVAL
	}
	a := addr.Addr()
	if !a.IsValid() {
		a = e.anyAddr()
	}
	if !e.familyOK(a) {
		return syscall.EAFNOSUPPORT
	}
	if !a.IsUnspecified() && !e.s.IsLocal(a) && !a.IsMulticast() && a != limitedBroadcast && !e.s.isAnyBroadcast(a) && !e.nonLocalOK() {
		return syscall.EADDRNOTAVAIL
	}
	if e.kind == KindRaw {
		e.local = netip.AddrPortFrom(a, 0)
		e.bound = true
		return nil
	}
	if err := e.bindLocked(netip.AddrPortFrom(a, addr.Port())); err != nil {
		return err
	}
	e.userAddr = !a.IsUnspecified()
	e.userPort = addr.Port() != 0
	if a.Is6() && !a.IsUnspecified() {
		e.opts.v6only = true // bound to an IPv6 address: IPv6 only, as Linux's inet6_bind
	}
	return nil
}

func (e *DgramEndpoint) bindLocked(addr netip.AddrPort) error {
	port, err := e.table.bind(e, addr.Addr(), addr.Port())
	if err != nil {
		return err
	}
	e.local = netip.AddrPortFrom(addr.Addr(), port)
	e.bound = true
	return nil
}

// Connect fixes the peer; an invalid address (AF_UNSPEC) dissolves the
// association, as connect(2) does for datagram sockets.
func (e *DgramEndpoint) Connect(addr netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return syscall.EBADF
	}
	if !addr.Addr().IsValid() {
		e.disconnectLocked()
		return nil
	}
	if !e.familyOK(addr.Addr()) {
		return syscall.EAFNOSUPPORT
	}
	dst := addr.Addr()
	if dst.Is4() && e.opts.v6only {
		return syscall.ENETUNREACH
	}
	if dst.IsUnspecified() {
		// Linux treats 0.0.0.0 (and ::) as "this host".
		dst = loopbackOf(dst)
	}
	if e.s.isAnyBroadcast(dst) || dst == limitedBroadcast {
		if !e.opts.broadcast {
			return syscall.EACCES
		}
	}
	if e.devGoneLocked() {
		return devGoneErr(dst)
	}
	rdst := dst
	if h, ok := e.ext6.FirstHop(); ok && dst.Is6() && e.kind != KindPing {
		rdst = h // a routing header's next segment (ext6_send.go), as ip6_datagram_connect
	}
	r, err := e.s.FindRouteFlow(rdst, e.flowLocked()) // route.go
	if err != nil && !dst.IsMulticast() && dst != limitedBroadcast {
		return err
	}
	if e.kind != KindRaw && (!e.bound || e.local.Addr().IsUnspecified()) {
		src := e.local.Addr()
		if !src.IsValid() || src.IsUnspecified() {
			src = r.Src
			if !src.IsValid() {
				src = e.anyAddr()
			}
		}
		if !e.bound {
			if err := e.bindLocked(netip.AddrPortFrom(e.anyAddr(), 0)); err != nil {
				return err
			}
		}
		// The socket keeps its wildcard binding in the table but reports
		// the route's source as its name, as Linux does after connect.
		e.table.rebindAddr(e, src)
		e.local = netip.AddrPortFrom(src, e.local.Port())
	}
	e.remote = netip.AddrPortFrom(dst, addr.Port())
	e.connected = true
	e.softErr = 0
	return nil
}

// disconnectLocked dissolves the association (connect with AF_UNSPEC),
// releasing the address and port that connect picked, as Linux's
// __udp_disconnect does.
func (e *DgramEndpoint) disconnectLocked() {
	e.connected = false
	e.remote = netip.AddrPort{}
	if e.kind == KindRaw || !e.bound {
		return
	}
	if !e.userAddr {
		e.local = netip.AddrPortFrom(e.anyAddr(), e.local.Port())
	}
	if !e.userPort {
		e.table.remove(e)
		e.bound = false
		e.local = netip.AddrPortFrom(e.local.Addr(), 0)
	}
}

// LocalAddr is the bound address (zero port when unbound).
func (e *DgramEndpoint) LocalAddr() netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.local.IsValid() {
		return netip.AddrPortFrom(e.anyAddr(), 0)
	}
	return e.local
}

// RemoteAddr is the connected peer; ENOTCONN when none.
func (e *DgramEndpoint) RemoteAddr() (netip.AddrPort, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.connected || (e.kind == KindUDP && e.remote.Port() == 0) {
		return netip.AddrPort{}, syscall.ENOTCONN
	}
	return e.remote, nil
}

// SoError reads and clears the pending error.
func (e *DgramEndpoint) SoError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.softErr
	e.softErr = 0
	if err == 0 {
		return nil
	}
	return err
}

func (e *DgramEndpoint) takeErrLocked() error {
	if e.softErr != 0 {
		err := e.softErr
		e.softErr = 0
		return err
	}
	return nil
}

// Drops is the number of datagrams lost at the full receive queue.
func (e *DgramEndpoint) Drops() uint64 { return e.drops.Load() }

// QueuedBytes is the receive queue's charged size (true sizes, as Linux
// reports a UDP socket's Recv-Q), for netstat.
func (e *DgramEndpoint) QueuedBytes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.qbytes
}

// SendTo sends one datagram to `to` (or the connected peer when to is
// invalid). wait lets a blocking caller wait for room in a full link
// queue instead of losing the datagram.
func (e *DgramEndpoint) SendTo(b []byte, to netip.AddrPort, wait <-chan struct{}) (int, error) {
	return e.SendMsg(b, to, SendOpts{}, wait)
}

// SendMsg is SendTo with per-call overrides (pktinfo.go).
func (e *DgramEndpoint) SendMsg(b []byte, to netip.AddrPort, o SendOpts, wait <-chan struct{}) (int, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, syscall.EBADF
	}
	if e.shutWr {
		e.mu.Unlock()
		return 0, syscall.EPIPE
	}
	// A pending error fails the send, connected or not (Linux's
	// sock_alloc_send_pskb); only IP_RECVERR leaves one on an
	// unconnected socket.
	if err := e.takeErrLocked(); err != nil {
		e.mu.Unlock()
		return 0, err
	}
	if !to.Addr().IsValid() {
		if !e.connected {
			e.mu.Unlock()
			return 0, syscall.EDESTADDRREQ
		}
		to = e.remote
	} else if !e.familyOK(to.Addr()) {
		e.mu.Unlock()
		return 0, syscall.EAFNOSUPPORT
	} else if to.Addr().Is4() && e.opts.v6only {
		e.mu.Unlock()
		return 0, syscall.ENETUNREACH
	}
	if e.kind == KindUDP && to.Port() == 0 {
		e.mu.Unlock()
		return 0, syscall.EINVAL
	}
	if e.devGoneLocked() {
		e.mu.Unlock()
		return 0, devGoneErr(to.Addr())
	}
	dst := to.Addr()
	if dst.IsUnspecified() {
		dst = loopbackOf(dst)
	}
	if (dst == limitedBroadcast || e.s.isAnyBroadcast(dst)) && !e.opts.broadcast {
		e.mu.Unlock()
		return 0, syscall.EACCES
	}
	if e.kind == KindUDP && !e.bound {
		if err := e.bindLocked(netip.AddrPortFrom(e.anyAddr(), 0)); err != nil {
			e.mu.Unlock()
			return 0, err
		}
	}
	if e.kind == KindPing && !e.bound {
		if err := e.bindLocked(netip.AddrPortFrom(e.anyAddr(), 0)); err != nil {
			e.mu.Unlock()
			return 0, err
		}
	}
	src := e.local.Addr()
	sport := e.local.Port()
	ttl, mttl, tos := e.opts.ttl, e.opts.mcastTTL, e.opts.tos
	if dst.Is6() {
		ttl, mttl, tos = e.opts.hops, e.opts.mcastHops, e.opts.tclass
	}
	if dst.IsMulticast() {
		ttl = mttl
	}
	// A per-datagram value wins for unicast and multicast alike, as
	// Linux's ipc.ttl / ipc6.hlimit and ipc.tos / ipc6.tclass.
	if o.TTLSet && o.TTL >= 0 {
		ttl = o.TTL
	}
	if o.TOSSet && o.TOS >= 0 {
		tos = uint8(o.TOS)
	}
	// IPV6_UNICAST_HOPS 0 goes out as hop limit 0, as on Linux.
	hopZero := ttl == 0 && !dst.IsMulticast()
	if ttl < 0 {
		ttl = 0
	}
	iface := e.opts.bindDev
	// A unicast datagram of a socket bound to a device is routed through
	// that device only (routeDev), unless IP_PKTINFO names another.
	oif, boundDev := o.NIC, false
	if oif == nil && e.opts.bindDev != nil {
		oif, boundDev = e.opts.bindDev, true
	}
	if dst.IsMulticast() && e.opts.mcastIf != nil {
		iface = e.opts.mcastIf
	}
	if o.Src.IsValid() && !o.Src.IsUnspecified() {
		src = o.Src
	}
	if o.NIC != nil && dst.IsMulticast() {
		iface = o.NIC
	}
	hdrIncl := e.opts.hdrIncl
	df, probe := e.dfFor(dst.Is6())
	if o.DontFragSet && dst.Is6() {
		// IPV6_DONTFRAG for this datagram replaces the socket's (dfFor).
		df = o.DontFrag || e.pmtudisc6 == PMTUDiscDo || e.pmtudisc6 == PMTUDiscProbe
	}
	// IP_PMTUDISC_WANT, the default: DF on what fits the path, as Linux's
	// __ip_make_skb does (ip_dont_fragment).
	dfWant := !df && !dst.Is6() && e.pmtudisc == PMTUDiscWant
	// The port a local error names: IPv4's is the connected peer's
	// (inet_dport), IPv6's the send's (fl6_dport, which for ICMPv6
	// overlays the type and code).
	errPort := uint16(0)
	if dst.Is4() && e.connected {
		errPort = e.remote.Port()
	} else if dst.Is6() {
		switch {
		case e.kind == KindUDP:
			errPort = to.Port()
		case e.proto == wire.ProtoICMPv6 && len(b) >= 2:
			errPort = uint16(b[0])<<8 | uint16(b[1])
		}
	}
	mcastLoop := e.opts.mcastLoop
	csumOff := e.opts.csumOff
	var ipo *SendIPOpts
	if dst.Is4() && !hdrIncl {
		ipo = e.ipOpts
		if o.IPOptsSet {
			ipo = o.IPOpts
		}
	}
	gso := e.opts.gsoSize
	if o.GSOSet {
		gso = int(o.GSOSize)
	}
	// IPv6 extension headers: UDP and raw (not IPV6_HDRINCL) send them;
	// ping does not (Linux's ping_v6_sendmsg drops them).
	var ext *SendExt6
	if dst.Is6() && !hdrIncl && e.kind != KindPing {
		ext = e.ext6
		if o.Ext6 != nil {
			ext = o.Ext6
		}
	}
	e.mu.Unlock()
	if df && gso == 0 && !hdrIncl {
		n := len(b) + ipo.Len() + ext.counted()
		if e.kind == KindUDP {
			n += wire.UDPHeaderLen
		}
		if err := e.checkDFExt(dst, errPort, n, ext, probe); err != nil {
			return 0, err
		}
	}
	if dst.Is6() {
		return e.sendTo6(b, to, dst, src, sport, ttl, hopZero, tos, o.Flow, iface, oif, boundDev, mcastLoop, csumOff, gso, df, ext, e.sendMark(&o), wait)
	}

	if wait != nil {
		if r, err := e.s.FindRoute(dst); err == nil {
			if w, ok := r.NIC.ep.(link.Waiter); ok {
				w.WaitRoom(wait)
			}
		}
	}

	p := OutPacket{Src: src, Dst: dst, Proto: e.proto, TTL: uint8(ttl), TOS: tos, Iface: iface, Oif: oif, BoundDev: boundDev, DF: df, DFWant: dfWant, Mark: e.sendMark(&o)}
	if ipo != nil {
		// IP_OPTIONS (ipopts_send.go): a source route sends to its first
		// hop; Record Route and Timestamp get this send's source and time.
		if hop, ok := ipo.FirstHop(); ok {
			p.Dst = hop
		}
		osrc := src
		if ipo.NeedSrc() && (!osrc.IsValid() || osrc.IsUnspecified()) {
			if p.Dst == limitedBroadcast || p.Dst.IsMulticast() {
				// The source writePacket gives it: a group needs no route.
				if n := e.s.groupOutNIC(p.Dst, p.Iface); n != nil {
					osrc = n.primaryAddr(p.Dst)
				}
			} else if r, err := e.s.FindRoute(p.Dst); err == nil {
				osrc = r.Src
			}
		}
		ob := getBuf(wire.IPv4MaxOptionsLen)
		defer putBuf(ob)
		p.Options = ipo.build(ob, osrc, dst, e.s.clock.Now())
	}
	if dst.IsMulticast() {
		p.Loop = mcastLoop
		// IP_MULTICAST_TTL 0: stays on this host (looped back only).
		p.LocalOnly = ttl == 0
	}
	switch e.kind {
	case KindUDP:
		if len(b) > wire.IPv4MaxLen-wire.IPv4MinHeaderLen-ipo.Len()-wire.UDPHeaderLen {
			return 0, syscall.EMSGSIZE
		}
		// The header comes from the buffer pool: WritePacket's argument
		// escapes (escape analysis is field-insensitive), so a stack array
		// would be a heap allocation per datagram.
		h := getBuf(wire.UDPHeaderLen)
		defer putBuf(h)
		wire.PutUDP(h, sport, to.Port(), len(b))
		p.Parts = [3][]byte{h, b}
		p.GSOSize = gso
		if err := e.s.WritePacket(&p); err != nil {
			if err != syscall.EINVAL && err != syscall.EMSGSIZE { // UDP_SEGMENT refusals (gso_udp.go)
				e.s.stats.UDP.SndbufErrors.Add(1)
			}
			return 0, err
		}
		e.s.stats.UDP.OutDatagrams.Add(uint64(udpSegments(len(b), gso)))
	case KindPing:
		if len(b) < wire.ICMPv4HeaderLen {
			return 0, syscall.EINVAL
		}
		if b[0] != wire.ICMPEcho || b[1] != 0 {
			return 0, syscall.EINVAL
		}
		h := getBuf(wire.ICMPv4HeaderLen)
		defer putBuf(h)
		copy(h, b)
		wire.ICMPv4(h).SetID(sport)
		p.Parts = [3][]byte{h, b[wire.ICMPv4HeaderLen:]}
		if err := e.s.WritePacket(&p); err != nil {
			return 0, err
		}
		e.s.stats.ICMP.OutMsgs.Add(1)
		e.s.stats.ICMP.OutEchos.Add(1)
	case KindRaw:
		if hdrIncl {
			if err := e.s.writeRawIP(b, iface, e.sendMark(&o)); err != nil {
				if err == syscall.EMSGSIZE && len(b) <= wire.IPv4MaxLen {
					// Over the device MTU (raw_send_hdrinc).
					e.localError(syscall.EMSGSIZE, netip.AddrPortFrom(dst, errPort), e.s.sendMTU(dst, true))
				}
				return 0, err
			}
		} else {
			if e.proto == wire.ProtoRaw {
				return 0, syscall.EINVAL
			}
			p.NoCsum = e.proto != wire.ProtoICMP && e.proto != wire.ProtoIGMP
			if !p.NoCsum {
				// The kernel does not fill ICMP checksums for raw sockets;
				// the application computes them. Keep what it gave.
				p.NoCsum = true
			}
			p.Parts = [3][]byte{b}
			if err := e.s.WritePacket(&p); err != nil {
				return 0, err
			}
		}
		e.s.stats.Raw.OutPackets.Add(1)
	}
	return len(b), nil
}

// RecvFrom takes the next datagram into b. It returns the bytes copied,
// the datagram's full length (larger when truncated), and the sender.
// EAGAIN when the queue is empty, also after SHUT_RD: Linux answers a
// non-blocking receive so and ends only a blocking one with 0 (the
// socket layer does that, see ShutRd).
func (e *DgramEndpoint) RecvFrom(b []byte, peek bool) (n, full int, from netip.AddrPort, err error) {
	return e.recvFrom(b, peek, -1, nil, nil)
}

// recvFrom is RecvFrom; a non-nil info gets the datagram's header
// fields (IPV6_PKTINFO and friends, dgram6.go). A peek with off >= 0
// starts off bytes into the queue, its datagrams end to end
// (SO_PEEK_OFF, PeekFromInfo); full is then what is left of that datagram.
// A non-nil at gets the datagram's arrival time (0: not recorded).
func (e *DgramEndpoint) recvFrom(b []byte, peek bool, off int, info *PacketInfo, at *int64) (n, full int, from netip.AddrPort, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A pending error comes before queued data, as Linux's
	// __skb_try_recv_datagram and __skb_recv_udp check sk_err first.
	if err := e.takeErrLocked(); err != nil {
		return 0, 0, from, err
	}
	if e.n == 0 {
		if e.closed {
			return 0, 0, from, nil
		}
		return 0, 0, from, syscall.EAGAIN
	}
	idx, skip := e.head, 0
	if peek && off > 0 {
		i := 0
		for ; i < e.n; i++ {
			l := len(e.queue[(e.head+i)%len(e.queue)].buf)
			if off < l {
				break
			}
			off -= l
		}
		if i == e.n {
			return 0, 0, from, syscall.EAGAIN // nothing past the offset yet
		}
		idx, skip = (e.head+i)%len(e.queue), off
	}
	r := &e.queue[idx]
	n = copy(b, r.buf[skip:])
	full = len(r.buf) - skip
	from = r.from
	if at != nil {
		*at = r.at
	}
	if info != nil {
		*info = PacketInfo{Dst: r.dst, HopLimit: r.ttl, TClass: r.tos, GSOSize: int(r.gso), DstPort: r.dport, Flow: r.flow, IfIndex: int(r.ifindex)}
		if r.opts != nil {
			info.Opts = *r.opts
		}
		if r.ext != nil {
			// The reader owns it (PutRecvExt6); a peek gets a copy.
			if peek {
				info.Ext6 = r.ext.clone()
			} else {
				info.Ext6, r.ext = r.ext, nil
			}
		}
		if r.dport == 0 {
			info.DstPort = e.local.Port()
		}
		if e.kind != KindUDP {
			info.DstPort, info.DstPortOK = transportPort(r.buf, e.kind == KindRaw && r.dst.Is4())
		}
	}
	if !peek {
		e.qbytes -= Truesize(r.buf)
		putBuf(r.buf)
		putRecvOpts(r.opts)
		PutRecvExt6(r.ext)
		*r = received{}
		e.head = (e.head + 1) % len(e.queue)
		e.n--
	}
	return n, full, from, nil
}

// ShutRd reports whether the endpoint was shut down for reading.
func (e *DgramEndpoint) ShutRd() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.shutRd
}

// enqueue copies a datagram into the receive queue (or drops it when its
// true size would take the queue over SO_RCVBUF, counting the drop in the
// socket; the caller counts it in the stack). An empty queue takes one
// datagram whatever its size, as Linux does.
func (e *DgramEndpoint) enqueue(data []byte, from netip.AddrPort, h wire.IPv4, dif int32) bool {
	if h.HeaderLen() <= wire.IPv4MinHeaderLen {
		return e.enqueueRecv(data, from, h.Dst(), 0, h.TTL(), h.TOS(), 0, 0, nil, nil, dif)
	}
	// Options: rewritten as Linux's receive path leaves them, also in
	// the header a raw socket reads (ipopts_recv.go).
	o := recvOptsPool.Get().(*RecvIPOpts)
	*o = e.s.recvOptions(h)
	return e.enqueueRecv(data, from, h.Dst(), 0, h.TTL(), h.TOS(), 0, 0, o, nil, dif)
}

// enqueueRecv queues a datagram that came in on NIC dif: its header
// fields, a UDP_GRO segment size (gso, gso_udp.go), a diverted
// datagram's original destination port (dport, transparent.go), an IPv6
// flow label, and received IPv4
// options (nil: none; else from recvOptsPool, which a refused datagram
// gives them back to); a raw socket's datagram, which starts with the
// IPv4 header, gets the options as the receive path left them. ext is
// an IPv6 datagram's extension headers (nil: none), given back the same way.
func (e *DgramEndpoint) enqueueRecv(data []byte, from netip.AddrPort, dst netip.Addr, dport uint16, ttl, tos uint8, gso uint16, flow uint32, opts *RecvIPOpts, ext *RecvExt6, dif int32) bool {
	var at int64
	if e.stampRx.Load() {
		at = e.s.arrivalNs() // dgram_stamp.go
	}
	e.mu.Lock()
	if e.closed {
		// Not shutRd: Linux keeps queueing datagrams after SHUT_RD.
		e.mu.Unlock()
		putRecvOpts(opts)
		PutRecvExt6(ext)
		return false
	}
	if e.qbytes+bufCap(len(data))+DgramOverhead > e.rcvbuf && e.n > 0 {
		e.mu.Unlock()
		putRecvOpts(opts)
		PutRecvExt6(ext)
		e.drops.Add(1)
		if e.kind == KindPing {
			e.s.stats.ICMP.PingRcvbufErrors.Add(1)
		}
		return false
	}
	if e.n == len(e.queue) {
		nq := make([]received, max(16, 2*len(e.queue)))
		for i := 0; i < e.n; i++ {
			nq[i] = e.queue[(e.head+i)%len(e.queue)]
		}
		e.queue = nq
		e.head = 0
	}
	buf := getBuf(len(data))
	copy(buf, data)
	if opts != nil && e.kind == KindRaw && len(buf) >= wire.IPv4MinHeaderLen+int(opts.Len) {
		copy(buf[wire.IPv4MinHeaderLen:], opts.Bytes())
	}
	e.queue[(e.head+e.n)%len(e.queue)] = received{buf: buf, from: from, dst: dst, ttl: ttl, tos: tos, gso: gso, dport: dport, ifindex: dif, flow: flow, opts: opts, ext: ext, at: at}
	if dif != 0 && e.rxDev.Load() != dif {
		e.rxDev.Store(dif)
	}
	if e.kind == KindUDP && e.wantFlow.Load() {
		port := dport // a diverted datagram's original port, or ours
		if port == 0 {
			port = e.local.Port()
		}
		if f := link.TupleFlowHash(from, netip.AddrPortFrom(dst, port), wire.ProtoUDP); e.rxFlow.Load() != f {
			e.rxFlow.Store(f)
		}
	}
	e.n++
	e.qbytes += Truesize(buf)
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
	return true
}

func (e *DgramEndpoint) setError(err syscall.Errno) {
	e.mu.Lock()
	e.softErr = err
	e.mu.Unlock()
	e.wq.Notify(waiter.EventErr | waiter.EventIn | waiter.EventOut)
}

// Shutdown marks directions closed (datagram sockets: ENOTCONN unless
// connected, like Linux).
func (e *DgramEndpoint) Shutdown(how int) error {
	e.mu.Lock()
	if !e.connected {
		e.mu.Unlock()
		return syscall.ENOTCONN
	}
	switch how {
	case 0:
		e.shutRd = true
	case 1:
		e.shutWr = true
	case 2:
		e.shutRd, e.shutWr = true, true
	default:
		e.mu.Unlock()
		return syscall.EINVAL
	}
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
	return nil
}

// Close releases the port and the queue.
func (e *DgramEndpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.purgeErrLocked()
	for e.n > 0 {
		putBuf(e.queue[e.head].buf)
		putRecvOpts(e.queue[e.head].opts)
		PutRecvExt6(e.queue[e.head].ext)
		e.queue[e.head] = received{}
		e.head = (e.head + 1) % len(e.queue)
		e.n--
	}
	groups := e.groups
	e.groups = nil
	e.mu.Unlock()
	for _, g := range groups {
		g.nic.dropFilter(e, g.group)
	}
	if e.table != nil {
		e.table.remove(e)
	}
	if e.kind == KindRaw {
		e.s.raw.remove(e)
	}
	e.wq.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
}

// udpTable is the demultiplexing table of UDP (or ping) endpoints by port.
type udpTable struct {
	mu    sync.RWMutex
	ports map[uint16][]*DgramEndpoint
}

func newUDPTable() *udpTable { return &udpTable{ports: map[uint16][]*DgramEndpoint{}} }

// conflicts applies Linux's rules: same port, overlapping addresses and
// overlapping devices (either unbound, or the same one) conflict unless
// both set SO_REUSEADDR or both SO_REUSEPORT.
func (t *udpTable) conflicts(e *DgramEndpoint, a netip.Addr, port uint16) bool {
	for _, o := range t.ports[port] {
		if o == e {
			continue
		}
		if !bindOverlap(a, e.opts.v6only, o.local.Addr(), o.opts.v6only) {
			continue
		}
		if d, od := e.opts.bindIdx, o.devIdx(); d != 0 && od != 0 && d != od {
			continue
		}
		if e.opts.reuseAddr && o.opts.reuseAddr {
			continue
		}
		if e.opts.reusePort && o.opts.reusePort {
			continue
		}
		return true
	}
	return false
}

func (t *udpTable) bind(e *DgramEndpoint, a netip.Addr, port uint16) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if port == 0 {
		span := EphemeralHigh - EphemeralLow + 1
		start := rand.IntN(span)
		for i := 0; i < span; i++ {
			p := uint16(EphemeralLow + (start+i)%span)
			if len(t.ports[p]) == 0 {
				port = p
				break
			}
		}
		if port == 0 {
			return 0, syscall.EADDRINUSE
		}
	} else if t.conflicts(e, a, port) {
		return 0, syscall.EADDRINUSE
	}
	t.ports[port] = append(t.ports[port], e)
	return port, nil
}

func (t *udpTable) rebindAddr(e *DgramEndpoint, a netip.Addr) {}

func (t *udpTable) remove(e *DgramEndpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !e.bound {
		return
	}
	p := e.local.Port()
	l := t.ports[p]
	for i, o := range l {
		if o == e {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(t.ports, p)
	} else {
		t.ports[p] = l
	}
}

// devIdx is the endpoint's bound device index (0: none).
func (e *DgramEndpoint) devIdx() int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.bindIdx
}

// score ranks how specifically e matches a packet that came in on NIC
// dif; -1 means no match. The bound address is read from the binding
// (connect may have narrowed the reported name, but a wildcard bind
// still receives on every address). The weights are Linux's
// (compute_score: address, device 4 each; a connected peer 8).
func (e *DgramEndpoint) score(dst netip.Addr, src netip.Addr, sport uint16, dif int32) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	sc := 0
	if d := e.opts.bindIdx; d != 0 && dif >= 0 {
		if d != dif {
			return -1 // SO_BINDTODEVICE: only what came in on that device
		}
		sc += 2
	}
	la := e.local.Addr()
	if la.Is4() != dst.Is4() && (la.Is4() || e.opts.v6only || !la.IsUnspecified()) {
		return -1 // the other family: only a dual-stack :: socket takes IPv4
	}
	if !la.IsUnspecified() {
		if la != dst && !dst.IsMulticast() && dst != limitedBroadcast {
			if !e.connected {
				return -1
			}
			// connected: local was set from the route; accept only that address
			return -1
		}
		sc += 2
	}
	if e.connected {
		if e.remote.Addr().WithZone("") != src || (e.kind == KindUDP && e.remote.Port() != sport) {
			return -1
		}
		sc += 4
	}
	return sc
}

// lookup finds the best endpoint for a unicast datagram.
func (t *udpTable) lookup(dst netip.Addr, dport uint16, src netip.Addr, sport uint16, dif int32) *DgramEndpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var best *DgramEndpoint
	bestScore := -1
	var same int
	for _, e := range t.ports[dport] {
		sc := e.score(dst, src, sport, dif)
		if sc > bestScore {
			best, bestScore, same = e, sc, 1
		} else if sc == bestScore && sc >= 0 && e.opts.reusePort && best.opts.reusePort {
			// SO_REUSEPORT: spread flows by a hash of the source.
			same++
			a := src.As16()
			h := uint32(a[12])<<24 | uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
			h ^= uint32(sport) * 2654435761
			if int(h%uint32(same)) == 0 {
				best = e
			}
		}
	}
	return best
}

// lookupAll lists every endpoint that wants a broadcast or multicast datagram.
func (t *udpTable) lookupAll(dst netip.Addr, dport uint16, src netip.Addr, sport uint16, dif int32, out []*DgramEndpoint) []*DgramEndpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.ports[dport] {
		// IP_MULTICAST_ALL is on by default in Linux: every socket bound
		// to the port gets the group's datagrams once the host is a member.
		if e.score(dst, src, sport, dif) < 0 {
			continue
		}
		if dst.IsMulticast() {
			// The socket's own source filter (ip_mc_sf_allow).
			e.mu.Lock()
			ok := e.mcAllowsLocked(dst, src, dif)
			e.mu.Unlock()
			if !ok {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// receiveUDP demultiplexes a datagram.
func (s *Stack) receiveUDP(n *NIC, h wire.IPv4, bcast bool) {
	st := &s.stats.UDP
	u, err := wire.ParseUDP(h.Payload(), h.PseudoSum(0))
	if err != nil {
		st.InErrors.Add(1)
		if pe, ok := err.(*wire.ParseError); ok {
			switch pe.Reason {
			case wire.ReasonBadChecksum:
				st.InCsumErrors.Add(1)
			default:
				st.InBadLength.Add(1)
			}
		}
		return
	}
	src, dst := h.Src(), h.Dst()
	from := netip.AddrPortFrom(src, u.SrcPort())
	if !deliverUDP(s, u, src, dst, from, h, bcast, int32(n.id), (*DgramEndpoint).enqueue) {
		s.sendICMPError(h, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0)
	}
}

// deliverUDP hands a checked datagram of either IP version to its
// endpoints: every match when fanout (broadcast, multicast), else the
// best one. False means no endpoint has the unicast port; the caller
// answers port unreachable in its own ICMP.
func deliverUDP[H wire.IPv4 | wire.IPv6](s *Stack, u wire.UDP, src, dst netip.Addr, from netip.AddrPort, h H, fanout bool, dif int32, enqueue func(*DgramEndpoint, []byte, netip.AddrPort, H, int32) bool) bool {
	st := &s.stats.UDP
	if fanout {
		var buf [8]*DgramEndpoint
		eps := s.udp.lookupAll(dst, u.DstPort(), src, u.SrcPort(), dif, buf[:0])
		if len(eps) == 0 {
			st.NoPorts.Add(1)
			return true
		}
		st.InDatagrams.Add(1)
		for _, e := range eps {
			if !enqueue(e, u.Payload(), from, h, dif) {
				st.RcvbufErrors.Add(1)
			}
		}
		return true
	}
	e := s.udp.lookup(dst, u.DstPort(), src, u.SrcPort(), dif)
	if e == nil {
		st.NoPorts.Add(1)
		return false
	}
	st.InDatagrams.Add(1)
	if !enqueue(e, u.Payload(), from, h, dif) {
		st.RcvbufErrors.Add(1)
		st.InErrors.Add(1)
	}
	return true
}

// rawTable holds raw endpoints; each gets a copy of every packet of its protocol.
type rawTable struct {
	mu  sync.RWMutex
	eps []*DgramEndpoint
	// n is len(eps), read without the lock: every packet asks, and
	// almost always there is no raw socket at all.
	n atomic.Int32
}

func (t *rawTable) add(e *DgramEndpoint) {
	t.mu.Lock()
	t.eps = append(t.eps, e)
	t.n.Store(int32(len(t.eps)))
	t.mu.Unlock()
}

func (t *rawTable) remove(e *DgramEndpoint) {
	t.mu.Lock()
	for i, o := range t.eps {
		if o == e {
			t.eps = append(t.eps[:i], t.eps[i+1:]...)
			break
		}
	}
	t.n.Store(int32(len(t.eps)))
	t.mu.Unlock()
}

func (t *rawTable) has(proto uint8) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.eps {
		if e.proto == proto {
			return true
		}
	}
	return false
}

// deliver copies h (IP header included, as Linux raw sockets receive it),
// which came in on NIC dif, to every raw endpoint of its protocol.
func (t *rawTable) deliver(s *Stack, h wire.IPv4, dif int32) {
	if t.n.Load() == 0 {
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.eps {
		if e.proto != h.Protocol() {
			continue
		}
		e.mu.Lock()
		la, conn, ra, v6, dev := e.local.Addr(), e.connected, e.remote.Addr(), e.opts.inet6, e.opts.bindIdx
		mcOK := !h.Dst().IsMulticast() || e.mcAllowsLocked(h.Dst(), h.Src(), dif)
		e.mu.Unlock()
		if !mcOK {
			continue // raw_v4_match: ip_mc_sf_allow
		}
		if v6 {
			continue // AF_INET6 raw sockets never see IPv4
		}
		if dev != 0 && dev != dif {
			continue // raw_v4_match: a bound device must be the one it came in on
		}
		if la.IsValid() && !la.IsUnspecified() && la != h.Dst() {
			continue
		}
		if conn && ra != h.Src() {
			continue
		}
		if e.enqueue(h, netip.AddrPortFrom(h.Src(), 0), h, dif) {
			s.stats.Raw.InDelivers.Add(1)
		} else {
			s.stats.Raw.RcvbufErrors.Add(1)
		}
	}
}

// writeRawIP sends a packet whose IPv4 header the application built
// (IP_HDRINCL): the stack fills the total length and checksum, and an
// identification when it is zero, like Linux's raw_send_hdrinc.
func (s *Stack) writeRawIP(b []byte, iface *NIC, mark uint32) error {
	if len(b) < wire.IPv4MinHeaderLen || b[0]>>4 != 4 {
		return syscall.EINVAL
	}
	hl := int(b[0]&0x0f) * 4
	if hl < wire.IPv4MinHeaderLen || hl > len(b) {
		return syscall.EINVAL
	}
	if len(b) > wire.IPv4MaxLen {
		return syscall.EMSGSIZE
	}
	dst := wire.IPv4(b).Dst()
	r, err := s.FindRouteFlow(dst, Flow{Src: wire.IPv4(b).Src(), Mark: mark, Oif: iface})
	if err != nil {
		return err
	}
	if iface != nil {
		r.NIC = iface
	}
	if len(b) > r.MTU {
		return syscall.EMSGSIZE
	}
	buf := getBuf(wire.EthernetHeaderLen + len(b))
	defer putBuf(buf)
	ip := wire.IPv4(buf[wire.EthernetHeaderLen:])
	copy(ip, b)
	ip.SetTotalLen(len(b))
	if ip.ID() == 0 {
		ip.SetID(s.nextID())
	}
	if !wire.IPv4(b).Src().IsValid() || ip.Src().IsUnspecified() {
		ip.SetSrc(r.Src)
	}
	ip.FillChecksum()
	s.stats.IP.OutRequests.Add(1)
	r.NIC.sendIP(r.NextHop, buf)
	return nil
}

// bufCap is the capacity getBuf(n) returns, without taking a buffer: the
// admission check charges it before copying.
func bufCap(n int) int {
	switch {
	case n <= bufSize0:
		return bufSize0
	case n <= bufSize1:
		return bufSize1
	case n <= bufSize2:
		return bufSize2
	case n <= bufSize3:
		return bufSize3
	}
	return n
}

// transportPort is what Linux's ip_cmsg_recv_dstaddr and
// ip6_datagram_recv_specific_ctl report as IP_ORIGDSTADDR's port for a
// raw or ping socket's datagram: bytes 2-3 of its transport header,
// whatever the protocol (for ICMP its checksum); ok false when the
// datagram is shorter, and Linux leaves the message out. d starts with
// its IPv4 header when hdr is set (an AF_INET raw socket's), else at
// the transport header.
func transportPort(d []byte, hdr bool) (port uint16, ok bool) {
	off := 0
	if hdr {
		if len(d) == 0 {
			return 0, false
		}
		off = int(d[0]&0xf) * 4
	}
	if len(d) < off+4 {
		return 0, false
	}
	return binary.BigEndian.Uint16(d[off+2:]), true
}
