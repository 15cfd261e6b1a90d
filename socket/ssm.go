package socket

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// Source-specific multicast options (RFC 3678, Linux's numbers and
// layouts). Each takes its Go struct below or the raw bytes of the
// uapi struct ([]byte, native byte order for the integers), which is
// checked for length the way Linux checks optlen.

const (
	IP_UNBLOCK_SOURCE         = 37
	IP_BLOCK_SOURCE           = 38
	IP_ADD_SOURCE_MEMBERSHIP  = 39
	IP_DROP_SOURCE_MEMBERSHIP = 40
	IP_MSFILTER               = 41
	MCAST_JOIN_GROUP          = 42
	MCAST_BLOCK_SOURCE        = 43
	MCAST_UNBLOCK_SOURCE      = 44
	MCAST_LEAVE_GROUP         = 45
	MCAST_JOIN_SOURCE_GROUP   = 46
	MCAST_LEAVE_SOURCE_GROUP  = 47
	MCAST_MSFILTER            = 48
	IP_MULTICAST_ALL          = 49
	IPV6_MULTICAST_ALL        = 29

	MCAST_EXCLUDE = stack.ModeExclude
	MCAST_INCLUDE = stack.ModeInclude
)

// Sizes of the uapi structs.
const (
	SizeofIPMreqSource   = 12  // struct ip_mreq_source
	SizeofGroupReq       = 136 // struct group_req
	SizeofGroupSourceReq = 264 // struct group_source_req
	sizeofSockaddrStore  = 128
	ipMsfilterHdr        = 16  // IP_MSFILTER_SIZE(0)
	groupFilterHdr       = 144 // GROUP_FILTER_SIZE(0)
)

// IPMreqSource is struct ip_mreq_source (IP_ADD/DROP_SOURCE_MEMBERSHIP,
// IP_BLOCK/UNBLOCK_SOURCE).
type IPMreqSource struct {
	Multiaddr, Interface, Sourceaddr netip.Addr
}

// GroupReq is struct group_req (MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP).
type GroupReq struct {
	Interface uint32
	Group     netip.Addr // its family is the sockaddr's
}

// GroupSourceReq is struct group_source_req (MCAST_*_SOURCE*).
type GroupSourceReq struct {
	Interface     uint32
	Group, Source netip.Addr
}

// IPMsfilter is struct ip_msfilter (IP_MSFILTER).
type IPMsfilter struct {
	Multiaddr, Interface netip.Addr
	Fmode                uint32
	Slist                []netip.Addr
}

// GroupFilter is struct group_filter (MCAST_MSFILTER).
type GroupFilter struct {
	Interface uint32
	Group     netip.Addr
	Fmode     uint32
	Slist     []netip.Addr
}

var ne = binary.NativeEndian

func in4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

// storageAddr reads a sockaddr_storage's address; an unknown family
// gives the zero Addr.
func storageAddr(b []byte) netip.Addr {
	switch ne.Uint16(b) {
	case AF_INET:
		return netip.AddrFrom4([4]byte(b[4:8]))
	case AF_INET6:
		return netip.AddrFrom16([16]byte(b[8:24]))
	}
	return netip.Addr{}
}

func putStorage(b []byte, a netip.Addr) {
	clear(b[:sizeofSockaddrStore])
	if a.Is4() {
		ne.PutUint16(b, AF_INET)
		x := a.As4()
		copy(b[4:8], x[:])
	} else if a.Is6() {
		ne.PutUint16(b, AF_INET6)
		x := a.As16()
		copy(b[8:24], x[:])
	}
}

// decodeSSM turns a raw option value into its struct, with Linux's
// optlen checks (EINVAL for a wrong size, ENOBUFS for a source count
// past the sysctl limit).
func decodeSSM(name int, v any, maxMsf int) (any, error) {
	b, ok := v.([]byte)
	if !ok {
		return v, nil
	}
	switch name {
	case IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_UNBLOCK_SOURCE:
		if len(b) != SizeofIPMreqSource {
			return nil, syscall.EINVAL
		}
		return IPMreqSource{Multiaddr: in4(b), Interface: in4(b[4:]), Sourceaddr: in4(b[8:])}, nil
	case MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP:
		if len(b) < SizeofGroupReq {
			return nil, syscall.EINVAL
		}
		return GroupReq{Interface: ne.Uint32(b), Group: storageAddr(b[8:])}, nil
	case MCAST_JOIN_SOURCE_GROUP, MCAST_LEAVE_SOURCE_GROUP, MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE:
		if len(b) != SizeofGroupSourceReq {
			return nil, syscall.EINVAL
		}
		return GroupSourceReq{Interface: ne.Uint32(b), Group: storageAddr(b[8:]), Source: storageAddr(b[136:])}, nil
	case IP_MSFILTER:
		if len(b) < ipMsfilterHdr {
			return nil, syscall.EINVAL
		}
		n := ne.Uint32(b[12:])
		if n > uint32(maxMsf) {
			return nil, syscall.ENOBUFS
		}
		if ipMsfilterHdr+4*max(int(n), 1) > len(b) {
			return nil, syscall.EINVAL
		}
		m := IPMsfilter{Multiaddr: in4(b), Interface: in4(b[4:]), Fmode: ne.Uint32(b[8:])}
		for i := 0; i < int(n); i++ {
			m.Slist = append(m.Slist, in4(b[16+4*i:]))
		}
		return m, nil
	case MCAST_MSFILTER:
		if len(b) < groupFilterHdr {
			return nil, syscall.EINVAL
		}
		n := ne.Uint32(b[140:])
		if n > uint32(maxMsf) {
			return nil, syscall.ENOBUFS
		}
		if groupFilterHdr+sizeofSockaddrStore*int(n) > len(b) {
			return nil, syscall.EINVAL
		}
		f := GroupFilter{Interface: ne.Uint32(b), Group: storageAddr(b[8:]), Fmode: ne.Uint32(b[136:])}
		for i := 0; i < int(n); i++ {
			f.Slist = append(f.Slist, storageAddr(b[144+128*i:]))
		}
		return f, nil
	}
	return v, nil
}

// ssmOpt reports the source-specific options of level (SOL_IP or
// SOL_IPV6).
func ssmOpt(level, name int) bool {
	switch name {
	case MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP, MCAST_JOIN_SOURCE_GROUP, MCAST_LEAVE_SOURCE_GROUP,
		MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE, MCAST_MSFILTER:
		return level == SOL_IP || level == IPPROTO_IPV6
	case IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_UNBLOCK_SOURCE, IP_MSFILTER, IP_MULTICAST_ALL:
		return level == SOL_IP
	case IPV6_MULTICAST_ALL:
		return level == IPPROTO_IPV6
	}
	return false
}

// setSSMOpt sets one of the options above on a datagram socket, with
// the errors of Linux's do_ip_setsockopt / do_ipv6_setsockopt.
func (d *dgramEP) setSSMOpt(level, name int, v any) error {
	if d.v6 && name == IP_MULTICAST_ALL {
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i != 1 {
			return syscall.EINVAL
		}
		d.ep.SetMulticastAll4(i != 0)
		return nil
	}
	return setSSM(d.ep, level, name, v)
}

// sourceCall is what a source call does: the filter mode it works in,
// whether it adds or removes the source, and whether it may join the
// group first (the IP_* and the MCAST_* names alike).
func sourceCall(name int) (mode int, add, join bool) {
	switch name {
	case IP_BLOCK_SOURCE, MCAST_BLOCK_SOURCE:
		return stack.ModeExclude, true, false
	case IP_UNBLOCK_SOURCE, MCAST_UNBLOCK_SOURCE:
		return stack.ModeExclude, false, false
	case IP_ADD_SOURCE_MEMBERSHIP, MCAST_JOIN_SOURCE_GROUP:
		return stack.ModeInclude, true, true
	}
	return stack.ModeInclude, false, false // IP_DROP_SOURCE_MEMBERSHIP, MCAST_LEAVE_SOURCE_GROUP
}

// setSSM sets a source-specific option on e (a datagram socket's
// endpoint, or the membership holder of a TCP socket).
func setSSM(e *stack.DgramEndpoint, level, name int, v any) error {
	st := e.Stack()
	v6 := level == IPPROTO_IPV6
	maxMsf := st.Options().IGMPMaxMsf
	if v6 {
		maxMsf = st.Options().MLDMaxMsf
	}
	if name == IP_MULTICAST_ALL || name == IPV6_MULTICAST_ALL {
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i != 1 && !v6 {
			return syscall.EINVAL
		}
		e.SetMulticastAll(i != 0)
		return nil
	}
	v, err := decodeSSM(name, v, maxMsf)
	if err != nil {
		if err == syscall.ENOBUFS {
			st.Stats().IGMP.SourceLimit.Add(1)
		}
		return err
	}
	fam := func(a netip.Addr) bool { return a.IsValid() && a.Is6() == v6 }
	switch m := v.(type) {
	case IPMreqSource:
		g := m.Multiaddr
		mode, add, join := sourceCall(name)
		if join && !g.IsMulticast() {
			return syscall.EINVAL
		}
		n, err := st.GroupNIC(g, 0, m.Interface)
		if err != nil {
			return err
		}
		return e.ChangeSource(n, g, m.Sourceaddr, mode, add, join)
	case GroupReq:
		if !fam(m.Group) {
			if v6 {
				return syscall.EADDRNOTAVAIL
			}
			return syscall.EINVAL
		}
		g := m.Group.WithZone("")
		if !g.IsMulticast() {
			return syscall.EINVAL
		}
		n, err := st.GroupNIC(g, int(m.Interface), netip.Addr{})
		if err != nil {
			return err
		}
		if name == MCAST_JOIN_GROUP {
			return e.JoinGroupOn(n, g)
		}
		return e.LeaveGroupOn(n, g)
	case GroupSourceReq:
		if !fam(m.Group) || !fam(m.Source) {
			return syscall.EADDRNOTAVAIL
		}
		g := m.Group.WithZone("")
		mode, add, join := sourceCall(name)
		if !g.IsMulticast() {
			return syscall.EINVAL
		}
		n, err := st.GroupNIC(g, int(m.Interface), netip.Addr{})
		if err != nil {
			return err
		}
		return e.ChangeSource(n, g, m.Source.WithZone(""), mode, add, join)
	case IPMsfilter:
		if name != IP_MSFILTER {
			return syscall.EINVAL
		}
		return setMsfilter(e, m.Multiaddr, 0, m.Interface, int(m.Fmode), m.Slist, maxMsf)
	case GroupFilter:
		if name != MCAST_MSFILTER {
			return syscall.EINVAL
		}
		if !fam(m.Group) {
			return syscall.EADDRNOTAVAIL
		}
		return setMsfilter(e, m.Group.WithZone(""), int(m.Interface), netip.Addr{}, int(m.Fmode), m.Slist, maxMsf)
	}
	return syscall.EINVAL
}

func setMsfilter(e *stack.DgramEndpoint, g netip.Addr, ifindex int, ifAddr netip.Addr, mode int, srcs []netip.Addr, maxMsf int) error {
	if len(srcs) > maxMsf {
		e.Stack().Stats().IGMP.SourceLimit.Add(1)
		return syscall.ENOBUFS
	}
	if !g.IsMulticast() || mode != MCAST_INCLUDE && mode != MCAST_EXCLUDE {
		return syscall.EINVAL
	}
	n, err := e.Stack().GroupNIC(g, ifindex, ifAddr)
	if err != nil {
		return err
	}
	list := make([]netip.Addr, len(srcs))
	for i, s := range srcs {
		list[i] = s.WithZone("")
	}
	return e.SetMsfilter(n, g, mode, list)
}

// getSSMOpt reads IP_MULTICAST_ALL / IPV6_MULTICAST_ALL (the filters
// are read with GetMsfilter or GetSockOptBuf: their getsockopt takes
// input).
func (d *dgramEP) getSSMOpt(level, name int) (any, error) {
	switch name {
	case IP_MULTICAST_ALL:
		if d.v6 {
			return b2i(d.ep.MulticastAll4()), nil
		}
		return b2i(d.ep.MulticastAll()), nil
	case IPV6_MULTICAST_ALL:
		return b2i(d.ep.MulticastAll()), nil
	case IP_MSFILTER, MCAST_MSFILTER:
		return nil, syscall.EINVAL // needs the request: GetSockOptBuf
	}
	return nil, syscall.ENOPROTOOPT
}

// GetMsfilter reads the socket's filter for group on the interface with
// index ifindex (0: the one ifAddr names, else the route's; for IPv6
// the route's): Linux's ip_mc_msfget / ip6_mc_msfget.
func (s *Socket) GetMsfilter(group netip.Addr, ifindex int, ifAddr netip.Addr) (mode int, srcs []netip.Addr, err error) {
	e := s.mcEndpoint()
	if e == nil {
		return 0, nil, syscall.EADDRNOTAVAIL
	}
	if !group.IsMulticast() {
		return 0, nil, syscall.EINVAL
	}
	n, err := e.Stack().GroupNIC(group, ifindex, ifAddr)
	if err != nil {
		return 0, nil, err
	}
	return e.Msfilter(n, group.WithZone(""))
}

// SetMsfilter sets the socket's whole filter for group (IP_MSFILTER /
// MCAST_MSFILTER): mode MCAST_INCLUDE or MCAST_EXCLUDE.
func (s *Socket) SetMsfilter(group netip.Addr, ifindex int, ifAddr netip.Addr, mode int, srcs []netip.Addr) error {
	d, ok := s.ep.(*dgramEP)
	if !ok {
		return syscall.ENOPROTOOPT
	}
	max := d.ep.Stack().Options().IGMPMaxMsf
	if group.Is6() {
		max = d.ep.Stack().Options().MLDMaxMsf
	}
	return setMsfilter(d.ep, group.WithZone(""), ifindex, ifAddr, mode, srcs, max)
}

// GetSockOptBuf is getsockopt(2) with a value-result buffer, for the
// options whose request travels in it: IP_MSFILTER (struct ip_msfilter)
// and MCAST_MSFILTER (struct group_filter) at SOL_IP or SOL_IPV6. It
// returns the optlen Linux writes back.
func (s *Socket) GetSockOptBuf(level, name int, buf []byte) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	e := s.mcEndpoint()
	if e == nil {
		if _, ok := s.ep.(*tcpEP); !ok {
			return 0, syscall.ENOPROTOOPT
		}
		// A TCP socket that never joined: its filters are all absent.
		e = s.net.st.NewDgram(stack.KindUDP, 17)
		defer e.Close()
	}
	switch {
	case level == SOL_IP && name == IP_MSFILTER:
		if len(buf) < ipMsfilterHdr {
			return 0, syscall.EINVAL
		}
		want := int(ne.Uint32(buf[12:]))
		mode, srcs, err := s.GetMsfilter(in4(buf), 0, in4(buf[4:]))
		if err != nil {
			return 0, err
		}
		ne.PutUint32(buf[8:], uint32(mode))
		ne.PutUint32(buf[12:], uint32(len(srcs)))
		k := min(want, len(srcs))
		for i := 0; i < k && 16+4*i+4 <= len(buf); i++ {
			a := srcs[i].As4()
			copy(buf[16+4*i:], a[:])
		}
		return ipMsfilterHdr + 4*k, nil // IP_MSFILTER_SIZE(copycount) of the flex-array struct
	case (level == SOL_IP || level == IPPROTO_IPV6) && name == MCAST_MSFILTER:
		if len(buf) < groupFilterHdr {
			return 0, syscall.EINVAL
		}
		want := int(ne.Uint32(buf[140:]))
		g := storageAddr(buf[8:])
		v6 := level == IPPROTO_IPV6
		if v6 && (!g.IsValid() || !g.Is6()) {
			return 0, syscall.EADDRNOTAVAIL
		}
		if !g.IsMulticast() || g.Is6() != v6 {
			return 0, syscall.EINVAL
		}
		idx := int(ne.Uint32(buf))
		if idx == 0 && !v6 {
			return 0, syscall.EADDRNOTAVAIL // ip_mc_gsfget matches the index as given
		}
		n, err := e.Stack().NICByIndex(idx)
		if err != nil || n == nil {
			if v6 {
				return 0, syscall.ENODEV
			}
			return 0, syscall.EADDRNOTAVAIL
		}
		mode, srcs, err := e.Msfilter(n, g.WithZone(""))
		if err != nil {
			return 0, err
		}
		ne.PutUint32(buf[136:], uint32(mode))
		ne.PutUint32(buf[140:], uint32(len(srcs)))
		k := min(want, len(srcs))
		for i := 0; i < k && 144+128*i+128 <= len(buf); i++ {
			putStorage(buf[144+128*i:], srcs[i])
		}
		return groupFilterHdr + sizeofSockaddrStore*k, nil
	}
	return 0, syscall.ENOPROTOOPT
}

// Marshal encodes the struct in its uapi layout.
func (m IPMreqSource) Marshal() []byte {
	b := make([]byte, SizeofIPMreqSource)
	put4(b, m.Multiaddr)
	put4(b[4:], m.Interface)
	put4(b[8:], m.Sourceaddr)
	return b
}

// Marshal encodes the struct in its uapi layout.
func (m GroupReq) Marshal() []byte {
	b := make([]byte, SizeofGroupReq)
	ne.PutUint32(b, m.Interface)
	putStorage(b[8:], m.Group)
	return b
}

// Marshal encodes the struct in its uapi layout.
func (m GroupSourceReq) Marshal() []byte {
	b := make([]byte, SizeofGroupSourceReq)
	ne.PutUint32(b, m.Interface)
	putStorage(b[8:], m.Group)
	putStorage(b[136:], m.Source)
	return b
}

// Marshal encodes the struct in its uapi layout (IP_MSFILTER_SIZE).
func (m IPMsfilter) Marshal() []byte {
	b := make([]byte, ipMsfilterHdr+4*max(len(m.Slist), 1))
	put4(b, m.Multiaddr)
	put4(b[4:], m.Interface)
	ne.PutUint32(b[8:], m.Fmode)
	ne.PutUint32(b[12:], uint32(len(m.Slist)))
	for i, a := range m.Slist {
		put4(b[16+4*i:], a)
	}
	return b
}

// Marshal encodes the struct in its uapi layout (GROUP_FILTER_SIZE).
func (m GroupFilter) Marshal() []byte {
	b := make([]byte, groupFilterHdr+sizeofSockaddrStore*max(len(m.Slist), 1))
	ne.PutUint32(b, m.Interface)
	putStorage(b[8:], m.Group)
	ne.PutUint32(b[136:], m.Fmode)
	ne.PutUint32(b[140:], uint32(len(m.Slist)))
	for i, a := range m.Slist {
		putStorage(b[144+128*i:], a)
	}
	return b
}

func put4(b []byte, a netip.Addr) {
	if a.Is4() || a.Is4In6() {
		x := a.Unmap().As4()
		copy(b, x[:])
	}
}

// MarshalSSM encodes a source-specific option's Go struct for the
// kernel (hostsock); ok false for any other value.
func MarshalSSM(v any) ([]byte, bool) {
	switch m := v.(type) {
	case IPMreqSource:
		return m.Marshal(), true
	case GroupReq:
		return m.Marshal(), true
	case GroupSourceReq:
		return m.Marshal(), true
	case IPMsfilter:
		return m.Marshal(), true
	case GroupFilter:
		return m.Marshal(), true
	case []byte:
		return m, true
	}
	return nil, false
}

// mcEndpoint is the endpoint holding the socket's memberships: a
// datagram socket's own, a TCP socket's holder (nil before its first
// source-specific call).
func (s *Socket) mcEndpoint() *stack.DgramEndpoint {
	switch e := s.ep.(type) {
	case *dgramEP:
		return e.ep
	case *tcpEP:
		return e.mc.Load()
	}
	return nil
}

// mcHolder is a TCP socket's membership holder, made on first use:
// Linux lets a TCP socket join source-specifically (only
// IP_ADD_MEMBERSHIP is EPROTO there), and keeps the memberships until
// close. An unbound datagram endpoint holds them; it receives nothing.
func (t *tcpEP) mcHolder() *stack.DgramEndpoint {
	if e := t.mc.Load(); e != nil {
		return e
	}
	e := t.net.st.NewDgram(stack.KindUDP, 17)
	if t.v6 {
		e.SetInet6() // IPv6 groups, as the AF_INET6 socket's own
	}
	if t.mc.CompareAndSwap(nil, e) {
		return e
	}
	e.Close()
	return t.mc.Load()
}

// setSSMOptTCP is a source-specific option at SOL_IP on a TCP socket.
func (t *tcpEP) setSSMOpt(name int, v any) error {
	if name == IP_MULTICAST_ALL {
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if i != 0 && i != 1 {
			return syscall.EINVAL
		}
		if t.v6 {
			// An AF_INET6 socket's IPv4 flag, apart from
			// IPV6_MULTICAST_ALL (inet->mc_all and np->mc_all).
			t.mcHolder().SetMulticastAll4(i != 0)
			return nil
		}
		t.mcHolder().SetMulticastAll(i != 0)
		return nil
	}
	return setSSM(t.mcHolder(), SOL_IP, name, v)
}

// multicastAll4 is IP_MULTICAST_ALL at SOL_IP: an AF_INET6 socket's
// IPv4 flag (off until set) or an AF_INET socket's flag.
func (t *tcpEP) multicastAll4() int {
	if !t.v6 {
		return t.multicastAll()
	}
	if e := t.mc.Load(); e != nil {
		return b2i(e.MulticastAll4())
	}
	return 0
}

// setSSMOpt6 is a source-specific option at SOL_IPV6 on an AF_INET6
// TCP socket: Linux's do_ipv6_setsockopt takes the MCAST_* calls and
// IPV6_MULTICAST_ALL from any socket type.
func (t *tcpEP) setSSMOpt6(name int, v any) error {
	return setSSM(t.mcHolder(), IPPROTO_IPV6, name, v)
}

func (t *tcpEP) multicastAll() int {
	if e := t.mc.Load(); e != nil {
		return b2i(e.MulticastAll())
	}
	return 1
}
