package stack

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Transparent proxying: what Linux does with a TPROXY rule and
// IP_TRANSPARENT sockets. A rule diverts inbound TCP segments and UDP
// datagrams addressed to any address in a prefix (usually not ours) to a
// transparent socket on one local port, without rewriting the packet:
// a TCP connection made this way has the original destination as its
// local address, and a UDP datagram carries it to IP_ORIGDSTADDR.
// Replies leave from the original destination (a transparent socket may
// bind and send from an address the host does not have).

// TransparentProto selects the transport protocols a rule diverts.
type TransparentProto uint8

// Protocols for TransparentRule.Proto (they combine).
const (
	TransparentTCP TransparentProto = 1 << iota
	TransparentUDP
	// TransparentICMPEcho diverts echo requests (ICMP type 8, ICMPv6
	// 128) to transparent raw sockets (transparent_icmp.go); ports and
	// ToPort do not apply to them.
	TransparentICMPEcho
)

// MaxTransparentRules bounds the rule table: the receive path walks it
// for every packet that is not plainly ours.
const MaxTransparentRules = 64

// TransparentRule is one divert rule (Linux's `-j TPROXY --on-port`).
type TransparentRule struct {
	Proto TransparentProto
	// Dst is the destination prefix diverted (either family).
	Dst netip.Prefix
	// Ports is the destination port range [lo, hi]; {0, 0} is every port.
	Ports [2]uint16
	// NIC, when set, limits the rule to packets arriving on it.
	NIC *NIC
	// ToPort is the local port of the transparent socket that takes the
	// packets (bound to the wildcard address, or to the packet's
	// destination).
	ToPort uint16
	// Local diverts packets to the host's own addresses too; without it
	// they are delivered as usual.
	Local bool
}

// TransparentStats count what the rules did (Stats.TProxy).
type TransparentStats struct {
	DivertedTCP Counter // TCP segments diverted
	DivertedUDP Counter // UDP datagrams diverted
	UDPNoSocket Counter // diverted datagrams with no IP_TRANSPARENT socket on the port: dropped
	FragNoRule  Counter // fragments held for a rule whose ports the whole datagram did not match: dropped
	RulesFull   Counter // AddTransparentRule refused: MaxTransparentRules reached

	// Echo rules (transparent_icmp.go).
	DivertedEcho Counter // echo requests diverted to transparent raw sockets
	EchoNoSocket Counter // diverted echo requests with no transparent raw socket to take them: dropped
}

// tproxyTable holds the rules: a copy-on-write snapshot read without a
// lock per packet.
type tproxyTable struct {
	mu    sync.Mutex
	rules atomic.Pointer[[]TransparentRule]
}

// active reports whether any rule exists: one atomic load per packet
// when there is none.
func (t *tproxyTable) active() bool { return t.rules.Load() != nil }

func (r *TransparentRule) valid() bool {
	all := TransparentTCP | TransparentUDP | TransparentICMPEcho
	return r.Proto != 0 && r.Proto&^all == 0 && r.Dst.IsValid() &&
		(r.ToPort != 0 || r.Proto&(TransparentTCP|TransparentUDP) == 0) && r.Ports[0] <= r.Ports[1]
}

// AddTransparentRule installs a divert rule. EINVAL for a rule that
// names no protocol, prefix or port; EEXIST for one already there;
// ENOSPC (counted in TProxy.RulesFull) when the table is full.
func (s *Stack) AddTransparentRule(r TransparentRule) error {
	r.Dst = r.Dst.Masked()
	if !r.valid() {
		return syscall.EINVAL
	}
	t := &s.tproxy
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur []TransparentRule
	if p := t.rules.Load(); p != nil {
		cur = *p
	}
	if slices.Contains(cur, r) {
		return syscall.EEXIST
	}
	if len(cur) >= MaxTransparentRules {
		s.stats.TProxy.RulesFull.Add(1)
		return syscall.ENOSPC
	}
	next := append(slices.Clip(cur), r)
	t.rules.Store(&next)
	return nil
}

// RemoveTransparentRule removes a rule equal to r (ENOENT when none).
func (s *Stack) RemoveTransparentRule(r TransparentRule) error {
	r.Dst = r.Dst.Masked()
	t := &s.tproxy
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.rules.Load()
	if p == nil {
		return syscall.ENOENT
	}
	i := slices.Index(*p, r)
	if i < 0 {
		return syscall.ENOENT
	}
	next := slices.Delete(slices.Clone(*p), i, i+1)
	if len(next) == 0 {
		t.rules.Store(nil)
	} else {
		t.rules.Store(&next)
	}
	return nil
}

// TransparentRules lists the rules in the order they are matched.
func (s *Stack) TransparentRules() []TransparentRule {
	if p := s.tproxy.rules.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// match finds the first rule for a packet; with portKnown false (a
// fragment that does not carry the transport header) any port matches.
func (t *tproxyTable) match(proto uint8, dst netip.Addr, port uint16, portKnown bool, n *NIC, local bool) (TransparentRule, bool) {
	p := t.rules.Load()
	if p == nil || n.loopback {
		// The host's own packets looped back are never diverted: the
		// rules are for what comes in from outside, as TPROXY is.
		return TransparentRule{}, false
	}
	var want TransparentProto
	switch proto {
	case wire.ProtoTCP:
		want = TransparentTCP
	case wire.ProtoUDP:
		want = TransparentUDP
	case wire.ProtoICMP, wire.ProtoICMPv6:
		want, portKnown = TransparentICMPEcho, false // echoes have no port
	default:
		return TransparentRule{}, false
	}
	for _, r := range *p {
		if r.Proto&want == 0 || (r.NIC != nil && r.NIC != n) || (local && !r.Local) || !r.Dst.Contains(dst) {
			continue
		}
		if portKnown && r.Ports != [2]uint16{} && (port < r.Ports[0] || port > r.Ports[1]) {
			continue
		}
		return r, true
	}
	return TransparentRule{}, false
}

// anyFor reports whether some rule could take a packet to dst, before
// its headers are walked for the protocol and port.
func (t *tproxyTable) anyFor(dst netip.Addr, n *NIC, local bool) bool {
	p := t.rules.Load()
	if p == nil || n.loopback {
		return false
	}
	for _, r := range *p {
		if (r.NIC == nil || r.NIC == n) && (r.Local || !local) && r.Dst.Contains(dst) {
			return true
		}
	}
	return false
}

// divertable says whether dst may be diverted at all: never a
// broadcast or multicast destination, nor an IPv6 link-local one.
func (s *Stack) divertable(dst netip.Addr) bool {
	if dst.IsMulticast() || dst.IsUnspecified() {
		return false
	}
	if dst.Is6() {
		// A link-local address is valid only on its own link.
		return !dst.IsLinkLocalUnicast()
	}
	if dst == limitedBroadcast {
		return false
	}
	// A directed broadcast of any NIC, from the lock-free snapshot of the
	// host's addresses (isAnyBroadcast takes the stack's lock, per packet).
	for _, o := range *s.ownerSnap.Load() {
		if o.nic.isBroadcast(dst) {
			return false
		}
	}
	return true
}

// dstPort reads a transport header's destination port, if p holds it.
func dstPort(p []byte) (uint16, bool) {
	if len(p) < 4 {
		return 0, false
	}
	return uint16(p[2])<<8 | uint16(p[3]), true
}

// divert4 is the receive path's hook for an IPv4 packet that passed the
// header and martian checks and is not a broadcast or multicast: it
// reports whether a rule took the packet (delivered, held for
// reassembly, or dropped and counted).
func (s *Stack) divert4(n *NIC, rx *rxState, h wire.IPv4, local bool, opts ipOpts) bool {
	proto := h.Protocol()
	if proto == wire.ProtoICMP {
		if s.divertEcho4(n, rx, h, local, opts) { // transparent_icmp.go
			return true
		}
		return !local && s.divertICMP4(n, rx, h, opts)
	}
	if proto != wire.ProtoTCP && proto != wire.ProtoUDP {
		return false
	}
	dst := h.Dst()
	frag := h.IsFragment()
	// Every fragment of a datagram is matched by prefix alone, so that
	// all of them reassemble on one path; the ports decide once it is
	// whole.
	var port uint16
	known := false
	if !frag {
		if port, known = dstPort(h.Payload()); !known {
			return false // too short for a port: the usual path counts it
		}
	}
	r, ok := s.tproxy.match(proto, dst, port, known, n, local)
	if !ok || !s.divertable(dst) {
		return false
	}
	if frag {
		whole, release := s.reasm.add(h)
		if whole == nil {
			return true
		}
		defer release()
		h = whole
		if port, known = dstPort(h.Payload()); known {
			r, ok = s.tproxy.match(proto, dst, port, true, n, local)
		}
		if !known || !ok {
			switch {
			case local:
				s.deliver(n, rx, h, false, opts)
			case s.opts.Forwarding:
				// Whole, as Linux forwards what its netfilter
				// defragmented; forward fragments it again.
				s.forward(h)
			default:
				s.stats.TProxy.FragNoRule.Add(1)
				s.stats.IP.InAddrErrors.Add(1)
			}
			return true
		}
	}
	// Raw sockets get their copy of what is delivered locally, diverted
	// packets too (Linux's ip_protocol_deliver_rcu, before the transport).
	s.raw.deliver(s, h, int32(n.id))
	src := h.Src()
	switch proto {
	case wire.ProtoTCP:
		t, err := wire.ParseTCP(h.Payload(), h.PseudoSum(0), !rx.valid)
		if err != nil {
			s.stats.IP.InDiscards.Add(1)
			s.tcpInErr(err)
			return true
		}
		s.stats.IP.InDelivers.Add(1)
		s.stats.TProxy.DivertedTCP.Add(1)
		if es := s.tcpEchoDiverted(h); es != nil {
			// Its child and replies echo the options (tcp_ipopts_reply.go).
			rx.tcp.HandleDivertedEchoFrom(src, dst, h.TOS(), t, r.ToPort, es)
			break
		}
		rx.tcp.HandleDiverted(src, dst, h.TOS(), t, r.ToPort)
	case wire.ProtoUDP:
		u, err := wire.ParseUDP(h.Payload(), h.PseudoSum(0))
		if err != nil {
			s.udpInErr(err)
			return true
		}
		s.stats.IP.InDelivers.Add(1)
		var o *RecvIPOpts
		if h.HeaderLen() > wire.IPv4MinHeaderLen {
			// This host's slots name the original destination, as for
			// a diverted TCP segment (Linux's route there is local).
			o = recvOptsPool.Get().(*RecvIPOpts)
			*o = s.recvOptionsAs(h, dst)
		}
		s.divertUDP(u, netip.AddrPortFrom(src, u.SrcPort()), dst, h.TTL(), h.TOS(), r.ToPort, o, int32(n.id))
	}
	return true
}

// mayDivert6 is the cheap test before divert6: some rule's prefix
// covers dst and dst may be diverted at all.
func (s *Stack) mayDivert6(n *NIC, dst netip.Addr, local bool) bool {
	return s.tproxy.active() && s.tproxy.anyFor(dst, n, local) && s.divertable(dst)
}

// divert6 is divert4 for IPv6: a packet that is not a multicast
// destination, passed by mayDivert6, whose extension headers WalkIPv6Ext
// accepted into e (up to a fragment header, if any).
func (s *Stack) divert6(n *NIC, rx *rxState, h wire.IPv6, e *wire.IPv6Ext, local bool) bool {
	dst := h.Dst()
	frag := e.Frag // the walk of the whole datagram clears it
	echoMatched := false
	if frag {
		// Linux reassembles before TPROXY looks (nf_defrag_ipv6), so
		// the whole datagram's chain decides. Every fragment must take
		// the same path to be reassembled together: the test uses only
		// what each one carries, the prefix and the fragment header's
		// next header, which may be one more extension header.
		if !s.fragMayDivert6(h[e.FragOff], dst, n, local) {
			return false
		}
		// Named ICMPv6 in the fragment header, it matched an echo rule.
		echoMatched = h[e.FragOff] == wire.ProtoICMPv6
		whole, release := s.reassemble6(h, e, false)
		if whole == nil {
			return true
		}
		defer release()
		h = whole
	}
	if e.Proto == wire.ProtoICMPv6 {
		if s.divertEcho6(n, h, e, local, echoMatched) { // transparent_icmp.go
			return true
		}
		if !local && !frag {
			return s.divertICMP6(n, rx, h, e)
		}
	}
	p := h[e.Offset:]
	var r TransparentRule
	ok := false
	if e.Proto == wire.ProtoTCP || e.Proto == wire.ProtoUDP {
		if port, known := dstPort(p); known {
			r, ok = s.tproxy.match(e.Proto, dst, port, true, n, local)
		}
	}
	if !ok {
		switch {
		case !frag:
			return false
		case local:
			s.deliver6(n, rx, h, e, false, frag)
		default:
			s.stats.TProxy.FragNoRule.Add(1)
			s.stats.IP6.InAddrErrors.Add(1)
		}
		return true
	}
	// Raw sockets get their copy of what is delivered locally, diverted
	// packets too (Linux's ip6_protocol_deliver_rcu, before the transport).
	s.raw.deliver6(s, h, e, int32(n.id))
	src := h.Src()
	switch e.Proto {
	case wire.ProtoTCP:
		t, err := wire.ParseTCP(p, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoTCP, 0), !rx.valid || frag)
		if err != nil {
			s.stats.IP6.InDiscards.Add(1)
			return true
		}
		s.stats.IP6.InDelivers.Add(1)
		s.stats.TProxy.DivertedTCP.Add(1)
		rx.tcp.HandleDiverted(src, dst, h.TrafficClass(), t, r.ToPort)
	case wire.ProtoUDP:
		u, err := wire.ParseUDP(p, wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoUDP, 0))
		if err == nil && u.Checksum() == 0 {
			err = &wire.ParseError{Reason: wire.ReasonBadChecksum}
		}
		if err != nil {
			s.udpInErr(err)
			return true
		}
		s.stats.IP6.InDelivers.Add(1)
		s.divertUDP(u, netip.AddrPortFrom(scoped(src, n), u.SrcPort()), dst, h.HopLimit(), h.TrafficClass(), r.ToPort, nil, int32(n.id))
	}
	return true
}

// fragMayDivert6 decides for a fragment, whose fragment header names
// next: TCP or UDP by a rule's protocol and prefix (any port); another
// extension header, by any TCP or UDP rule's prefix, the protocol
// being known once the datagram is whole; anything else is not diverted.
func (s *Stack) fragMayDivert6(next uint8, dst netip.Addr, n *NIC, local bool) bool {
	switch {
	case next == wire.ProtoTCP, next == wire.ProtoUDP:
		_, ok := s.tproxy.match(next, dst, 0, false, n, local)
		return ok
	case next == wire.ProtoICMPv6:
		_, ok := s.tproxy.match(next, dst, 0, false, n, local) // an echo rule (transparent_icmp.go)
		return ok
	case wire.IsIPv6ExtHeader(next):
		_, ok := s.tproxy.match(wire.ProtoTCP, dst, 0, false, n, local)
		if !ok {
			_, ok = s.tproxy.match(wire.ProtoUDP, dst, 0, false, n, local)
		}
		if !ok {
			_, ok = s.tproxy.match(wire.ProtoICMPv6, dst, 0, false, n, local)
		}
		return ok
	}
	return false
}

// udpInErr counts a datagram that failed its checks.
func (s *Stack) udpInErr(err error) {
	st := &s.stats.UDP
	st.InErrors.Add(1)
	if pe, ok := err.(*wire.ParseError); ok && pe.Reason == wire.ReasonBadChecksum {
		st.InCsumErrors.Add(1)
	} else {
		st.InBadLength.Add(1)
	}
}

// divertUDP queues a diverted datagram, as Linux's TPROXY target finds
// its socket: first a connected transparent socket bound to the
// original destination itself, else the unconnected transparent socket
// on toPort. No socket: dropped and counted (TPROXY drops; no ICMP).
// opts is an IPv4 datagram's received options (nil: none), from
// recvOptsPool: queued with the datagram or given back.
func (s *Stack) divertUDP(u wire.UDP, from netip.AddrPort, dst netip.Addr, ttl, tos uint8, toPort uint16, opts *RecvIPOpts, dif int32) {
	st := &s.stats.UDP
	e := s.udp.lookupTransparent(dst, u.DstPort(), from, true)
	if e == nil {
		e = s.udp.lookupTransparent(dst, toPort, from, false)
	}
	if e == nil {
		putRecvOpts(opts)
		st.NoPorts.Add(1)
		s.stats.TProxy.UDPNoSocket.Add(1)
		return
	}
	s.stats.TProxy.DivertedUDP.Add(1)
	st.InDatagrams.Add(1)
	if !e.enqueueRecv(u.Payload(), from, dst, u.DstPort(), ttl, tos, 0, 0, opts, nil, dif) {
		st.RcvbufErrors.Add(1)
		st.InErrors.Add(1)
	}
}

// lookupTransparent finds a transparent endpoint on port for a diverted
// datagram: connected to from and bound to dst (established), or not
// connected and bound to dst or a wildcard of its family (listener).
func (t *udpTable) lookupTransparent(dst netip.Addr, port uint16, from netip.AddrPort, established bool) *DgramEndpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var pick *DgramEndpoint
	for _, e := range t.ports[port] {
		e.mu.Lock()
		la := e.local.Addr()
		ok := e.opts.transparent && !e.closed
		if established {
			ok = ok && e.connected && la == dst && e.remote.Addr().WithZone("") == from.Addr().WithZone("") && e.remote.Port() == from.Port()
		} else {
			ok = ok && !e.connected && (la == dst || la.IsUnspecified() && (la.Is4() == dst.Is4() || la.Is6() && !e.opts.v6only))
		}
		exact := la == dst
		e.mu.Unlock()
		if !ok {
			continue
		}
		if exact {
			return e
		}
		if pick == nil {
			pick = e
		}
	}
	return pick
}

// SetTransparent sets IP_TRANSPARENT on a datagram endpoint.
func (e *DgramEndpoint) SetTransparent(on bool) {
	e.mu.Lock()
	e.opts.transparent = on
	e.mu.Unlock()
}

// Transparent reports IP_TRANSPARENT.
func (e *DgramEndpoint) Transparent() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.transparent
}

// SetFreebind sets IP_FREEBIND on a datagram endpoint.
func (e *DgramEndpoint) SetFreebind(on bool) {
	e.mu.Lock()
	e.opts.freebind = on
	e.mu.Unlock()
}

// Freebind reports IP_FREEBIND.
func (e *DgramEndpoint) Freebind() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.freebind
}

// nonLocalOK reports whether Bind may take an address the host does not
// have (e.mu held).
func (e *DgramEndpoint) nonLocalOK() bool {
	return e.opts.transparent || e.opts.freebind
}

// divertsWhole reports whether a received IP packet (ip, either family)
// is TCP a rule diverts, so a super-segment or a trusted checksum from
// the link is taken whole for it as for the host's own addresses
// (gro.go); anything else to a foreign address is finished in software.
func (s *Stack) divertsWhole(n *NIC, ip []byte) bool {
	if !s.tproxy.active() || len(ip) < wire.IPv4MinHeaderLen {
		return false
	}
	var dst netip.Addr
	var l4 []byte
	if ip[0]>>4 == 4 {
		h := wire.IPv4(ip)
		hl := int(ip[0]&0xf) * 4
		if h.Protocol() != wire.ProtoTCP || h.IsFragment() || hl < wire.IPv4MinHeaderLen || len(ip) < hl+4 {
			return false
		}
		dst, l4 = h.Dst(), ip[hl:]
	} else {
		if len(ip) < wire.IPv6HeaderLen+4 || wire.IPv6(ip).NextHeader() != wire.ProtoTCP {
			return false
		}
		dst, l4 = wire.IPv6(ip).Dst(), ip[wire.IPv6HeaderLen:]
	}
	port, _ := dstPort(l4)
	_, ok := s.tproxy.match(wire.ProtoTCP, dst, port, true, n, false)
	return ok && s.divertable(dst)
}

// ICMP errors about a diverted connection's packets. Those leave from
// the original destination, an address the host does not have, so a
// router's error about one is addressed there and quotes it as its
// source. Such an error is taken, as Linux's `-m socket` match with
// TPROXY takes it, only when the quoted packet belongs to an existing
// connection or a transparent socket bound to that address; the
// transport's own checks (RFC 5927: a sequence number in flight) then
// apply as for any connection. Anything else stays not ours.

// divertICMP4 is divert4's hook for an ICMP message to an address that
// is not ours: an error quoting a packet a diverted connection sent is
// delivered as if it were addressed to the host.
func (s *Stack) divertICMP4(n *NIC, rx *rxState, h wire.IPv4, opts ipOpts) bool {
	dst := h.Dst()
	if h.IsFragment() || !s.tproxy.anyFor(dst, n, false) || !s.divertable(dst) {
		return false
	}
	m, err := wire.ParseICMPv4(h.Payload())
	if err != nil {
		return false // the usual path counts it
	}
	switch m.Type() {
	case wire.ICMPDestUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem, wire.ICMPSourceQuench:
	default:
		return false
	}
	inner := m.Payload()
	if len(inner) < wire.IPv4MinHeaderLen || inner[0]>>4 != 4 {
		return false
	}
	ih := wire.IPv4(inner)
	hl := ih.HeaderLen()
	if hl < wire.IPv4MinHeaderLen || len(inner) < hl+8 || ih.Src() != dst {
		return false // an error goes back to the quoted packet's source
	}
	if !s.transparentOwns(ih.Protocol(), inner[hl:], ih.Src(), ih.Dst()) {
		return false
	}
	s.deliver(n, rx, h, false, opts)
	return true
}

// divertICMP6 is divertICMP4 for ICMPv6 (h not a fragment, e walked).
func (s *Stack) divertICMP6(n *NIC, rx *rxState, h wire.IPv6, e *wire.IPv6Ext) bool {
	m, err := wire.ParseICMPv6(h[e.Offset:], wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), wire.ProtoICMPv6, 0))
	if err != nil || len(m) < wire.ICMPv6HeaderLen {
		return false
	}
	switch m.Type() {
	case wire.ICMPv6DestUnreach, wire.ICMPv6PacketTooBig, wire.ICMPv6TimeExceeded, wire.ICMPv6ParamProblem:
	default:
		return false
	}
	proto, t, src, dst, ok := quote6(m.Payload())
	if !ok || src != h.Dst() || !s.transparentOwns(proto, t, src, dst) {
		return false
	}
	s.deliver6(n, rx, h, e, false, false)
	return true
}

// quote6 finds the transport header of an ICMPv6 error's quoted packet
// (which may be cut short), stepping over its extension headers by
// their lengths, AH and a first fragment's header included, as Linux's
// icmpv6_notify does. handleICMPv6Error walks quotes with it too.
func quote6(inner []byte) (proto uint8, t []byte, src, dst netip.Addr, ok bool) {
	if len(inner) < wire.IPv6HeaderLen || inner[0]>>4 != 6 {
		return 0, nil, src, dst, false
	}
	ih := wire.IPv6(inner)
	var c wire.IPv6Chain
	if wire.SkipIPv6Chain(ih, ih.NextHeader(), wire.IPv6HeaderLen, 6, wire.ChainSkipAH|wire.ChainThroughFrag, &c) != wire.ChainDone || len(ih) < c.Offset+8 {
		return 0, nil, src, dst, false
	}
	return c.Proto, ih[c.Offset:], ih.Src(), ih.Dst(), true
}

// transparentOwns reports whether a packet from src to dst whose
// transport header starts t, src not an address of the host, was sent by
// an existing TCP connection with that 4-tuple or a UDP socket bound to
// src itself (only IP_TRANSPARENT or IP_FREEBIND make either).
func (s *Stack) transparentOwns(proto uint8, t []byte, src, dst netip.Addr) bool {
	if len(t) < 8 {
		return false
	}
	local := netip.AddrPortFrom(src, uint16(t[0])<<8|uint16(t[1]))
	remote := netip.AddrPortFrom(dst, uint16(t[2])<<8|uint16(t[3]))
	switch proto {
	case wire.ProtoTCP:
		return s.TCP.HasConn(local, remote)
	case wire.ProtoUDP:
		return s.udp.transparentFind(local, remote) != nil
	}
	return false
}

// transparentError is handleICMPError's and handleICMPv6Error's hook for
// a quoted packet whose source is not the host's: the error reaches the
// connection or socket that sent it (what transparentOwns looks for),
// found by one lookup, else nothing. m is the error as a socket's error
// queue shows it, hard whether a socket without RECVERR hears it.
func (s *Stack) transparentError(proto uint8, t []byte, src, dst netip.Addr, kind tcp.ErrorKind, m ErrQueueMsg, hard bool, mtu int) bool {
	if len(t) < 8 {
		return false
	}
	local := netip.AddrPortFrom(src, uint16(t[0])<<8|uint16(t[1]))
	remote := netip.AddrPortFrom(dst, uint16(t[2])<<8|uint16(t[3]))
	switch proto {
	case wire.ProtoUDP:
		e := s.udp.transparentFind(local, remote)
		if e == nil {
			return false
		}
		// The same rule as a socket bound to an address of the host
		// (__udp4_lib_err finds a transparent socket by the same
		// lookup): hard errors to a connected socket, every error to
		// one with RECVERR, queued; a source quench to none.
		if !(m.V4 && m.Type == wire.ICMPSourceQuench) {
			m.Dst = remote
			e.icmpError(m, t[wire.UDPHeaderLen:], hard)
		}
		return true
	case wire.ProtoTCP:
		if src.Is6() && mtu > 0 {
			mtu -= wire.IPv6HeaderLen - wire.IPv4MinHeaderLen // TCP sizes segments by IPv4's header (tcphost.go)
		}
		// HandleError finds no connection for a 4-tuple nobody has.
		ne := tcp.NetError{Kind: kind, Errno: m.Errno, MTU: mtu,
			Origin: m.Origin, Type: m.Type, Code: m.Code, Info: m.Info, Offender: m.Offender, Quote: t}
		return s.TCP.HandleNetError(local, remote, binary.BigEndian.Uint32(t[4:8]), &ne)
	}
	return false
}

// transparentFind finds the UDP socket bound to local itself (not a
// wildcard: local is no address of the host) that sent a datagram to
// remote: the one connected to remote, else an unconnected one; nil if
// none.
func (t *udpTable) transparentFind(local, remote netip.AddrPort) *DgramEndpoint {
	t.mu.RLock()
	var conn, unconn *DgramEndpoint
	for _, e := range t.ports[local.Port()] {
		e.mu.Lock()
		if !e.closed && e.local.Addr().WithZone("") == local.Addr() {
			if !e.connected {
				unconn = e
			} else if e.remote.Addr().WithZone("") == remote.Addr() && e.remote.Port() == remote.Port() {
				conn = e
			}
		}
		e.mu.Unlock()
	}
	t.mu.RUnlock()
	if conn != nil {
		return conn
	}
	return unconn
}
