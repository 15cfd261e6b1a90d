package socket

import "github.com/sockstack/sockstack/stack"

// The IP-level control messages a read of the error queue carries
// before IP_RECVERR / IPV6_RECVERR, as Linux's ip_recv_error and
// ipv6_recv_error give them: for an error of ICMP origin, the ones the
// socket asked for, describing the ICMP packet that carried the error
// (its destination, the NIC it came in on, its hop limit and traffic
// class); for a local error, none. Of the options Linux has there,
// sockstack's sockets take IP_PKTINFO, IP_RECVORIGDSTADDR,
// IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS and
// IPV6_RECVORIGDSTADDR.

// IP_RECVERR_RFC4884 and IPV6_RECVERR_RFC4884 (Linux's numbers): an
// ICMP error with an RFC 4884 length reports in ee_rfc4884 where its
// extension structure starts in the payload.
const (
	IP_RECVERR_RFC4884   = 26
	IPV6_RECVERR_RFC4884 = 31

	// SO_EE_RFC4884_FLAG_INVALID: the extension structure is malformed.
	SO_EE_RFC4884_FLAG_INVALID = stack.EERFC4884FlagInvalid
)

// errAncillary is the control messages Linux puts before IP_RECVERR
// (IPV6_RECVERR) for an ICMP error carried by c: v6sock is the socket's
// family, bits its recvInfo options, v4 the error's family. As Linux's
// ipv6_recv_error: IPV6_PKTINFO (ip6_datagram_recv_common_ctl) when
// asked for, then the IPv6 header's messages for an ICMPv6 error, the
// IPv4 header's (ip_cmsg_recv) for an ICMPv4 one (inet_recvopts.go).
// IP_PKTINFO's ipi_spec_dst is left zero, as Linux leaves it for a
// packet that no socket's receive path saw.
func errAncillary(st *stack.Stack, v6sock bool, bits uint32, c *stack.ICMPCarrier, v4 bool) []byte {
	if !c.Dst.IsValid() {
		return nil
	}
	m := rxMeta{dst: c.Dst, ifindex: c.NIC, ttl: c.TTL, tos: c.TOS, flow: c.Flow, opts: &c.Opts, port: c.Port, portOK: c.PortOK}
	var buf [512]byte
	w := cmsgWriter{b: buf[:]}
	ctlRecv(&w, st, v6sock, bits, &m, v4)
	if w.n == 0 {
		return nil
	}
	return append([]byte(nil), buf[:w.n]...)
}
