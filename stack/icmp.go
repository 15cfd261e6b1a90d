package stack

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// receiveICMP handles echo, echo replies and errors.
func (s *Stack) receiveICMP(n *NIC, h wire.IPv4, bcast bool, opts ipOpts) {
	st := &s.stats.ICMP
	st.InMsgs.Add(1)
	m, err := wire.ParseICMPv4(h.Payload())
	if err != nil {
		st.InErrors.Add(1)
		if pe, ok := err.(*wire.ParseError); ok && pe.Reason == wire.ReasonBadChecksum {
			st.InCsumErrors.Add(1)
		}
		return
	}
	switch m.Type() {
	case wire.ICMPEcho:
		st.InEchos.Add(1)
		if bcast {
			// icmp_echo_ignore_broadcasts=1, the Linux default (smurf attacks).
			return
		}
		s.echoReply(h, m, opts)
	case wire.ICMPEchoReply:
		st.InEchoReps.Add(1)
		s.pingDeliver(h, m, int32(n.id))
	case wire.ICMPRedirect:
		// Counted and ignored: an IPv4 redirect cannot be told from a
		// forgery by anyone on the path (docs/DECISIONS.md).
		st.InRedirects.Add(1)
	case wire.ICMPDestUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem, wire.ICMPSourceQuench:
		switch m.Type() {
		case wire.ICMPDestUnreach:
			st.InDestUnreachs.Add(1)
			if m.Code() == wire.ICMPFragNeeded {
				st.InFragNeeded.Add(1)
			}
		case wire.ICMPTimeExceeded:
			st.InTimeExcds.Add(1)
		default:
			st.InOther.Add(1)
		}
		mtu := 0
		var learnt pmtuLearn
		if m.Type() == wire.ICMPDestUnreach && m.Code() == wire.ICMPFragNeeded {
			mtu = m.NextHopMTU()
			if learnt = s.learnPMTU(m.Payload(), mtu); learnt.mtu != 0 {
				mtu = learnt.mtu
			}
		}
		c := ICMPCarrier{Dst: h.Dst(), TTL: h.TTL(), TOS: h.TOS(), NIC: n.id}
		if h.HeaderLen() > wire.IPv4MinHeaderLen {
			c.Opts = s.recvOptions(h) // ipopts_recv.go
		}
		if !s.handleICMPError(m.Payload(), m.Type(), m.Code(), mtu, icmpInfo(m), h.Src(), c, extOrig4(m)) {
			st.InUnmatched.Add(1)
		} else {
			s.commitPMTU(learnt)
		}
	default:
		st.InOther.Add(1)
	}
}

func (s *Stack) echoReply(h wire.IPv4, m wire.ICMPv4, opts ipOpts) {
	// Record Route and Timestamp come back in the reply (RFC 1122 3.2.2.6).
	var options []byte
	if opts.rr != 0 || opts.ts != 0 {
		// A pooled buffer: a local array would escape through OutPacket
		// and cost every echo reply an allocation.
		ob := getBuf(wire.IPv4MaxOptionsLen)
		defer putBuf(ob)
		n, ok := s.echoOptions(h, opts, h.Dst(), (*[wire.IPv4MaxOptionsLen]byte)(ob))
		if !ok {
			s.stats.ICMP.OutEchoOptionErrors.Add(1)
			return
		}
		options = ob[:n]
	}
	reply := getBuf(len(m))
	defer putBuf(reply)
	copy(reply, m)
	r := wire.ICMPv4(reply)
	r.SetType(wire.ICMPEchoReply)
	r.SetCode(0)
	reply[2], reply[3] = 0, 0
	err := s.WritePacket(&OutPacket{Src: h.Dst(), Dst: h.Src(), Proto: wire.ProtoICMP, TOS: h.TOS(), Parts: [3][]byte{reply}, Options: options})
	if err == nil {
		s.stats.ICMP.OutMsgs.Add(1)
		s.stats.ICMP.OutEchoReps.Add(1)
	}
}

// unreach4 is Linux's icmp_err_convert: the errno of each destination
// unreachable code, and whether it is hard (fatal). A connected UDP or
// ping socket without IP_RECVERR hears only the hard ones: Linux drops
// a soft error (net or host unreachable, say: a route may come back).
var unreach4 = [16]struct {
	errno syscall.Errno
	hard  bool
}{
	wire.ICMPNetUnreach:         {syscall.ENETUNREACH, false},
	wire.ICMPHostUnreach:        {syscall.EHOSTUNREACH, false},
	wire.ICMPProtoUnreach:       {syscall.ENOPROTOOPT, true},
	wire.ICMPPortUnreach:        {syscall.ECONNREFUSED, true},
	wire.ICMPFragNeeded:         {syscall.EMSGSIZE, false},
	wire.ICMPSourceRouteFailed:  {syscall.EOPNOTSUPP, false},
	wire.ICMPNetUnknown:         {syscall.ENETUNREACH, true},
	wire.ICMPHostUnknown:        {syscall.EHOSTDOWN, true},
	wire.ICMPSourceHostIsolated: {syscall.ENONET, true},
	wire.ICMPNetProhibited:      {syscall.ENETUNREACH, true},
	wire.ICMPHostProhibited:     {syscall.EHOSTUNREACH, true},
	wire.ICMPNetTOSUnreach:      {syscall.ENETUNREACH, false},
	wire.ICMPHostTOSUnreach:     {syscall.EHOSTUNREACH, false},
	wire.ICMPAdminProhibited:    {syscall.EHOSTUNREACH, true},
	wire.ICMPHostPrecedence:     {syscall.EHOSTUNREACH, true},
	wire.ICMPPrecedenceCutoff:   {syscall.EHOSTUNREACH, true},
}

// errnoFor is the errno of an ICMP error (the hardness aside): what a
// diverted connection's socket is told (transparent.go).
func errnoFor(typ, code uint8) syscall.Errno {
	e, _ := icmpErr4(typ, code)
	return e
}

// icmpErr4 maps an ICMP error to a socket errno (Linux's
// icmp_err_convert, checked against the kernel: a connected UDP socket,
// with and without IP_RECVERR, after each nft reject type) and reports
// whether it is hard: whether a datagram socket without IP_RECVERR
// hears it at all (__udp4_lib_err, ping_err, raw_err). The hard ones are
// the fatal destination unreachables, fragmentation needed (path MTU
// discovery is on by default) and parameter problems; net and host
// unreachable, time exceeded and the rest are soft.
func icmpErr4(typ, code uint8) (syscall.Errno, bool) {
	switch typ {
	case wire.ICMPDestUnreach:
		if code == wire.ICMPFragNeeded {
			return syscall.EMSGSIZE, true
		}
		if int(code) < len(unreach4) {
			return unreach4[code].errno, unreach4[code].hard
		}
		return syscall.EHOSTUNREACH, false
	case wire.ICMPTimeExceeded:
		return syscall.EHOSTUNREACH, false
	case wire.ICMPParamProblem:
		return syscall.EPROTO, true
	}
	return syscall.EHOSTUNREACH, false
}

// icmpInfo is the ee_info Linux gives an ICMPv4 error: the next-hop MTU
// of a fragmentation needed, the pointer of a parameter problem, else 0
// (icmp_unreach).
func icmpInfo(m wire.ICMPv4) uint32 {
	switch {
	case m.Type() == wire.ICMPDestUnreach && m.Code() == wire.ICMPFragNeeded:
		return uint32(m.NextHopMTU())
	case m.Type() == wire.ICMPParamProblem && len(m) >= 5:
		return uint32(m[4])
	}
	return 0
}

// handleICMPError matches an error's invoking packet (our own datagram,
// header and first 8 bytes) to the socket that sent it. info is the
// error's ee_info, from the message offender sent; c describes the ICMP
// packet and extOrig is its RFC 4884 length in bytes (errqueue_rfc4884.go).
func (s *Stack) handleICMPError(inner []byte, typ, code uint8, mtu int, info uint32, from netip.Addr, c ICMPCarrier, extOrig int) bool {
	if len(inner) < wire.IPv4MinHeaderLen || inner[0]>>4 != 4 {
		return false
	}
	ih := wire.IPv4(inner)
	hl := ih.HeaderLen()
	if hl < wire.IPv4MinHeaderLen || len(inner) < hl+8 {
		return false
	}
	t := inner[hl:]
	src, dst := ih.Src(), ih.Dst()
	errno, hard := icmpErr4(typ, code)
	m := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: errno, Origin: EEOriginICMP, Type: typ, Code: code, Info: info}, Offender: from, V4: true,
		carrier: c, extOrig: extOrig, extBody: len(inner)}
	if !s.IsLocal(src) {
		// A diverted connection's packet, or not ours (transparent.go).
		return s.transparentError(ih.Protocol(), t, src, dst, tcpErrorKind(typ, code), m, hard, mtu)
	}
	// Raw sockets of the quoted protocol hear it beside the protocol's
	// own socket (raw_icmp_error, then the protocol's handler).
	raw := s.raw.icmpError(ih.Protocol(), inner, hl, src, dst, m, typ == wire.ICMPSourceQuench)
	switch ih.Protocol() {
	case wire.ProtoUDP:
		u := wire.UDP(t)
		e := s.udp.lookup(src, u.SrcPort(), dst, u.DstPort(), c.errDif())
		if e == nil {
			return raw
		}
		// The owner learns the path MTU even when it hears nothing
		// (ipv4_sk_update_pmtu); a source quench it ignores.
		if typ != wire.ICMPSourceQuench {
			m.Dst = netip.AddrPortFrom(dst, u.DstPort())
			e.icmpError(m, t[wire.UDPHeaderLen:], hard)
		}
		return true
	case wire.ProtoTCP:
		tc := wire.TCP(t)
		local := netip.AddrPortFrom(src, tc.SrcPort())
		remote := netip.AddrPortFrom(dst, tc.DstPort())
		// Linux's errno for the type and code, as tcp_v4_err takes it.
		ne := tcp.NetError{Kind: tcpErrorKind(typ, code), Errno: errno, MTU: mtu,
			Origin: EEOriginICMP, Type: typ, Code: code, Info: info, Offender: from, Quote: t, Ctl: tcpErrCtl(&m, inner, t)}
		return s.TCP.HandleNetError(local, remote, tc.Seq(), &ne) || raw
	case wire.ProtoICMP:
		im := wire.ICMPv4(t)
		if im.Type() != wire.ICMPEcho {
			return raw
		}
		e := s.ping.lookup(src, im.ID(), dst, 0, c.errDif())
		if e == nil {
			return raw
		}
		if typ == wire.ICMPSourceQuench {
			// ping wants to see it: a soft error with an errno of its
			// own (ping_err).
			m.Errno, hard = syscall.EREMOTEIO, false
		}
		m.Dst = netip.AddrPortFrom(dst, 0)
		e.icmpError(m, t, hard) // the payload starts at the echo header
		return true
	}
	return raw
}

// icmpError hands an ICMP error about a packet of protocol proto from
// src to dst to the raw sockets of that protocol bound and connected to
// match (raw_icmp_error, raw_err): the payload starts after the quoted
// IP header, or at it for IP_HDRINCL. A source quench is matched but
// heard by none. It reports whether a socket matched.
func (t *rawTable) icmpError(proto uint8, inner []byte, hl int, src, dst netip.Addr, m ErrQueueMsg, quench bool) bool {
	return t.rawICMPError(false, proto, inner, hl, src, dst, dst, m, rawHard4(m.Type, m.Code), quench)
}

// rawICMPError hands an ICMP error to the raw sockets of family v6 and
// protocol proto bound to src (or to any address) and, if connected,
// connected to dst: the payload is inner from hl on, or all of inner for
// an IPv4 IP_HDRINCL socket; msg_name shows dstShown. A quench is
// matched but heard by none. It reports whether a socket matched.
func (t *rawTable) rawICMPError(v6 bool, proto uint8, inner []byte, hl int, src, dst, dstShown netip.Addr, m ErrQueueMsg, hard, quench bool) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	found := false
	for _, e := range t.eps {
		if e.proto != proto {
			continue
		}
		e.mu.Lock()
		la, conn, ra, ev6, hdrIncl := e.local.Addr(), e.connected, e.remote.Addr(), e.opts.inet6, e.opts.hdrIncl
		e.mu.Unlock()
		if ev6 != v6 || la.IsValid() && !la.IsUnspecified() && la.WithZone("") != src || conn && ra.WithZone("") != dst {
			continue
		}
		found = true
		if quench {
			continue
		}
		payload := inner[hl:]
		if hdrIncl && !v6 {
			payload = inner
		}
		mm := m
		mm.Dst = netip.AddrPortFrom(dstShown, 0)
		e.icmpError(mm, payload, hard)
	}
	return found
}

// rawHard4 is raw_err's hardness: as icmpErr4's.
func rawHard4(typ, code uint8) bool {
	_, hard := icmpErr4(typ, code)
	return hard
}

func tcpErrorKind(typ, code uint8) tcp.ErrorKind {
	switch typ {
	case wire.ICMPDestUnreach:
		switch code {
		case wire.ICMPPortUnreach:
			return tcp.ErrPortUnreach
		case wire.ICMPProtoUnreach:
			return tcp.ErrProtoUnreach
		case wire.ICMPFragNeeded:
			return tcp.ErrFragNeeded
		case wire.ICMPNetUnreach, wire.ICMPNetUnknown, wire.ICMPNetTOSUnreach:
			return tcp.ErrNetUnreach
		default:
			return tcp.ErrHostUnreach
		}
	case wire.ICMPTimeExceeded:
		return tcp.ErrTimeExceeded
	case wire.ICMPSourceQuench:
		return tcp.ErrSourceQuench
	case wire.ICMPParamProblem:
		return tcp.ErrParamProblem
	}
	return tcp.ErrHostUnreach
}

// localError reports an error about one of our own packets without
// sending anything (neighbour resolution failed).
func (s *Stack) localError(h wire.IPv4, typ, code uint8, mtu int) {
	if h.Protocol() == wire.ProtoTCP && len(h.Payload()) >= 8 {
		t := wire.TCP(h.Payload())
		// As the host unreachable Linux sends itself (ipv4_link_failure),
		// from the failed packet's source, for the error queue.
		c := selfCarrier(h.Src())
		ne := tcp.NetError{Kind: tcp.ErrNeighbor, Origin: EEOriginICMP, Type: typ, Code: code, Offender: h.Src(), Quote: t,
			Ctl: tcp.ErrCtl{Dst: c.Dst, TTL: c.TTL, TOS: c.TOS}}
		s.TCP.HandleNetError(netip.AddrPortFrom(h.Src(), t.SrcPort()), netip.AddrPortFrom(h.Dst(), t.DstPort()), t.Seq(), &ne)
		return
	}
	// Linux sends itself a host unreachable from the failed packet's
	// source (ipv4_link_failure): that address is the offender.
	s.handleICMPError(h, typ, code, mtu, 0, h.Src(), selfCarrier(h.Src()), 0)
}

// selfCarrier describes the ICMP error the stack answers itself with
// about a packet of its own from src (a neighbour that never answered):
// to src, on loopback, with the TTL (hop limit) of its ICMP errors and
// the TOS of an IPv4 one.
// errDif is the device an error's socket lookup matches: the NIC the
// error came in on, or any (-1) for an error of our own making, which
// no device carried.
func (c *ICMPCarrier) errDif() int32 {
	if c.NIC == 0 {
		return -1
	}
	return int32(c.NIC)
}

func selfCarrier(src netip.Addr) ICMPCarrier {
	if src.Is6() {
		return ICMPCarrier{Dst: src, TTL: 64}
	}
	return ICMPCarrier{Dst: src, TTL: 64, TOS: 0xc0}
}

// sendICMPError answers a packet with an ICMP error (info is the MTU of
// a fragmentation needed, the pointer of a parameter problem), following RFC 1122
// 3.2.2 (never about an ICMP error, a broadcast or multicast, a non-first
// fragment, or a source that is not a unicast host) and rate-limited as
// RFC 1812 4.3.2.8 asks.
func (s *Stack) sendICMPError(orig wire.IPv4, typ, code uint8, info int) {
	st := &s.stats.ICMP
	if len(orig) < wire.IPv4MinHeaderLen {
		return
	}
	src, dst := orig.Src(), orig.Dst()
	if orig.FragOffset() != 0 || dst.IsMulticast() || dst == limitedBroadcast ||
		src.IsMulticast() || src == limitedBroadcast || src.IsUnspecified() || s.isAnyBroadcast(dst) {
		st.OutSuppressed.Add(1)
		return
	}
	hl := orig.HeaderLen()
	if orig.Protocol() == wire.ProtoICMP && len(orig) > hl {
		if t := orig[hl]; t != wire.ICMPEcho && t != wire.ICMPEchoReply && t != wire.ICMPTimestamp && t != wire.ICMPTimestampReply {
			st.OutSuppressed.Add(1)
			return
		}
	}
	if !s.icmpAllow(typ, src) {
		return
	}
	// Quote as much of the original as fits in 576 bytes (RFC 1812 4.3.2.3).
	q := min(len(orig), 576-wire.IPv4MinHeaderLen-wire.ICMPv4HeaderLen)
	var hdr [wire.ICMPv4HeaderLen]byte
	m := wire.ICMPv4(hdr[:])
	m.SetType(typ)
	m.SetCode(code)
	switch {
	case typ == wire.ICMPDestUnreach && code == wire.ICMPFragNeeded:
		m.SetNextHopMTU(info)
	case typ == wire.ICMPParamProblem:
		m.SetRest(uint32(info) << 24) // the pointer
	}
	from := netip.Addr{}
	if s.IsLocal(dst) {
		from = dst
	}
	// Counted before it leaves, as Linux does, so a peer that reacts to
	// the error never sees the counter behind.
	st.OutMsgs.Add(1)
	switch typ {
	case wire.ICMPDestUnreach:
		st.OutDestUnreachs.Add(1)
	case wire.ICMPTimeExceeded:
		st.OutTimeExcds.Add(1)
	case wire.ICMPParamProblem:
		st.OutParmProbs.Add(1)
	}
	if err := s.WritePacket(&OutPacket{Src: from, Dst: src, Proto: wire.ProtoICMP, TOS: 0xc0, Parts: [3][]byte{hdr[:], orig[:q]}}); err != nil {
		st.OutErrors.Add(1)
	}
}

// isAnyBroadcast reports a directed broadcast address of any NIC.
func (s *Stack) isAnyBroadcast(a netip.Addr) bool {
	if a == limitedBroadcast {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.nics {
		if n.isBroadcast(a) {
			return true
		}
	}
	return false
}

// pingDeliver hands an echo reply to the ping socket whose "port" is the
// echo identifier.
func (s *Stack) pingDeliver(h wire.IPv4, m wire.ICMPv4, dif int32) {
	id := m.ID()
	ep := s.ping.lookup(h.Dst(), id, h.Src(), 0, dif)
	if ep == nil {
		return
	}
	ep.enqueue(m, netip.AddrPortFrom(h.Src(), 0), h, dif)
}

var _ = binary.BigEndian
