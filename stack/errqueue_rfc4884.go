package stack

import (
	"encoding/binary"
	"net/netip"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// What a read of the error queue says beyond sock_extended_err: the
// IP-level control messages describing the ICMP packet that carried an
// error (Linux's ip_recv_error and ipv6_recv_error call ip_cmsg_recv and
// ip6_datagram_recv_*_ctl on the ICMP's own headers), and RFC 4884's
// ee_rfc4884 under IP_RECVERR_RFC4884 / IPV6_RECVERR_RFC4884.

// SO_EE_RFC4884_FLAG_INVALID marks a malformed extension structure.
const EERFC4884FlagInvalid = 1

// ICMPCarrier describes the ICMP packet that brought an error.
type ICMPCarrier struct {
	Dst      netip.Addr // its IP destination (one of ours), no zone
	TTL, TOS uint8      // TTL and TOS, or hop limit and traffic class
	Flow     uint32     // IPv6 flow label
	Opts     RecvIPOpts // IPv4 options, as the receive path left them (IP_RECVOPTS)
	NIC      int        // the NIC it came in on (IP_PKTINFO's ipi_ifindex)
	// Port is what IP_ORIGDSTADDR reports as the port: bytes 2-3 of the
	// error's payload, which Linux takes for a transport header's
	// destination port (ip_cmsg_recv_dstaddr); PortOK false when the
	// payload is shorter, and Linux leaves the message out.
	Port   uint16
	PortOK bool
}

// setPort fills Port from the payload queued.
func (c *ICMPCarrier) setPort(payload []byte) {
	if c.Dst.IsValid() && len(payload) >= 4 {
		c.Port, c.PortOK = binary.BigEndian.Uint16(payload[2:]), true
	}
}

// SetRecvErrRFC4884 turns IP_RECVERR_RFC4884 (v6 false) or
// IPV6_RECVERR_RFC4884 on or off.
func (e *DgramEndpoint) SetRecvErrRFC4884(v6, on bool) {
	e.mu.Lock()
	if v6 {
		e.rfc4884v6 = on
	} else {
		e.rfc4884 = on
	}
	e.mu.Unlock()
}

// RecvErrRFC4884 reports IP_RECVERR_RFC4884 (v6 false) or
// IPV6_RECVERR_RFC4884.
func (e *DgramEndpoint) RecvErrRFC4884(v6 bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v6 {
		return e.rfc4884v6
	}
	return e.rfc4884
}

// rfc4884For is the option that governs an error of the family given:
// IPv4 errors need IP_RECVERR_RFC4884 also on an AF_INET6 socket, as in
// Linux (ip_icmp_error tests the IPv4 bit, ipv6_icmp_error the IPv6 one).
func (e *DgramEndpoint) rfc4884For(v4 bool) bool {
	if v4 {
		return e.rfc4884
	}
	return e.rfc4884v6
}

// rfc4884Locked fills m's ee_rfc4884 for the payload the socket queues.
func (e *DgramEndpoint) rfc4884Locked(m *ErrQueueMsg, payload []byte) {
	n, flags, ok := RFC4884Ext(m.extOrig, m.extBody-len(payload), payload)
	if !ok {
		return
	}
	m.RFC4884Len, m.RFC4884Flags = n, flags
	if flags&EERFC4884FlagInvalid != 0 {
		e.s.stats.ICMP.RFC4884Invalid.Add(1)
	}
}

// RFC4884Ext is Linux's ip_icmp_error_rfc4884: orig is the original
// datagram's length the ICMP header claims (bytes from the quoted IP
// header on), hlen how many of those bytes the socket strips before
// its payload. It reports ee_rfc4884: the offset in payload where the
// extension structure starts, and SO_EE_RFC4884_FLAG_INVALID when the
// structure is malformed; ok false when there is none to report (RFC
// 4884's minimum of 128 bytes not met, or no room for its header).
func RFC4884Ext(orig, hlen int, payload []byte) (n uint16, flags uint8, ok bool) {
	if orig < 128 || orig < hlen {
		return 0, 0, false
	}
	off := orig - hlen
	if off+4 > len(payload) || off > 0xffff {
		return 0, 0, false
	}
	if !rfc4884Valid(payload[off:]) {
		flags = EERFC4884FlagInvalid
	}
	return uint16(off), flags, true
}

// rfc4884Valid checks an extension structure as Linux does
// (ip_icmp_error_rfc4884_validate): a version other than 2 is not
// checked at all; a nonzero checksum must hold over the whole
// structure; the objects must each be at least their 4-byte header and
// end within it.
func rfc4884Valid(ext []byte) bool {
	if len(ext) < 4 {
		return false
	}
	if ext[0]>>4 != 2 {
		return true
	}
	if binary.BigEndian.Uint16(ext[2:]) != 0 && wire.Checksum(ext) != 0 {
		return false
	}
	for off := 4; off < len(ext); {
		if off+4 > len(ext) {
			return false
		}
		olen := int(binary.BigEndian.Uint16(ext[off:]))
		if olen < 4 {
			return false
		}
		off += olen
		if off > len(ext) {
			return false
		}
	}
	return true
}

// extOrig4 is the RFC 4884 length of an ICMPv4 error in bytes: its
// sixth byte counts 32-bit words, for the three types RFC 4884 covers.
func extOrig4(m wire.ICMPv4) int {
	switch m.Type() {
	case wire.ICMPDestUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
		if len(m) >= 8 {
			return int(m[5]) * 4
		}
	}
	return 0
}

// extOrig6 is the RFC 4884 length of an ICMPv6 error in bytes: its
// fifth byte counts 64-bit words, for destination unreachable and time
// exceeded only.
func extOrig6(m wire.ICMPv6) int {
	switch m.Type() {
	case wire.ICMPv6DestUnreach, wire.ICMPv6TimeExceeded:
		if len(m) >= 8 {
			return int(m[4]) * 8
		}
	}
	return 0
}

// tcpErrCtl is m's ICMP packet and RFC 4884 structure for a TCP socket,
// whose payload is the quote t from its TCP header on (inner is the
// quote from its IP header): TCP decides by its own option whether it
// keeps ee_rfc4884 (tcp/errqueue.go).
func tcpErrCtl(m *ErrQueueMsg, inner, t []byte) tcp.ErrCtl {
	c := m.carrier
	ctl := tcp.ErrCtl{Dst: c.Dst, TTL: c.TTL, TOS: c.TOS, Flow: c.Flow, NIC: c.NIC,
		IPOpts: c.Opts.B, IPOptsLen: c.Opts.Len, IPOptsFlags: c.Opts.flags}
	if m.extOrig > 0 {
		ctl.RFC4884Len, ctl.RFC4884Flags, ctl.HasRFC4884 = RFC4884Ext(m.extOrig, len(inner)-len(t), t)
	}
	return ctl
}

// TCPErrCarrier is the ICMP packet a TCP socket's queued error came in,
// as the control messages of its read describe it: the same as a
// datagram socket's (Linux's ip_recv_error and ipv6_recv_error call the
// same cmsg code for both), the flow label and IPv4 options included.
func TCPErrCarrier(ctl *tcp.ErrCtl) ICMPCarrier {
	return ICMPCarrier{Dst: ctl.Dst, TTL: ctl.TTL, TOS: ctl.TOS, Flow: ctl.Flow, NIC: ctl.NIC,
		Opts: RecvIPOpts{Len: ctl.IPOptsLen, flags: ctl.IPOptsFlags, B: ctl.IPOpts}, Port: ctl.Port, PortOK: ctl.PortOK}
}
