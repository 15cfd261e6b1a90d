package socket

import (
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// Sticky IPv6 extension headers (RFC 3542 9.2, Linux's
// ipv6_set_opt_hdr): setsockopt(IPPROTO_IPV6, IPV6_HOPOPTS /
// IPV6_RTHDRDSTOPTS / IPV6_DSTOPTS) with a whole header as the value
// (a string or []byte); an empty value removes it; getsockopt gives it
// back (empty: none). TCP sockets send them on every segment (below);
// UDP and raw sockets send them (ping sockets keep
// them and send none, as Linux's ping_v6_sendmsg); sendmsg control
// messages of the same names replace them for one datagram (sendctl.go).
// IPV6_RTHDR takes a Segment Routing Header (RFC 8754, type 4) checked
// as Linux's seg6_validate_srh (checkRthdr); other types are EINVAL, as
// on a kernel without Mobile IPv6. With it, IPV6_RTHDRDSTOPTS is sent in
// front of it, and packets go to its segments[segments_left] with the
// destination in segments[0] (stack.SendExt6). As a control message
// Linux's ip6_datagram_send_ctl takes only type 2 (Mobile IPv6), so
// sendmsg refuses any routing header with EINVAL (sendctl.go), as the
// kernel does (conformance/srv6_cases.go).

// optHdr checks a sticky header value as Linux does: none when empty;
// else at least 2 bytes, a multiple of 8, at most 2040, and its
// (hdrlen+1)*8 not past the value (EINVAL). The header kept is that
// length, a copy.
func optHdr(v any) ([]byte, error) {
	var b []byte
	switch x := v.(type) {
	case nil:
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return nil, syscall.EINVAL
	}
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < 2 || len(b)%8 != 0 || len(b) > 8*255 {
		return nil, syscall.EINVAL
	}
	l := (int(b[1]) + 1) * 8
	if l > len(b) {
		return nil, syscall.EINVAL
	}
	return append([]byte(nil), b[:l]...), nil
}

// setExt6 is setsockopt of a sticky header on a datagram socket.
func (d *dgramEP) setExt6(name int, v any) error {
	x, err := renewExt6(d.ep.Ext6(), name, v)
	if err != nil {
		return err
	}
	d.ep.SetExt6(x)
	return nil
}

// renewExt6 is cur (nil: none) with header name replaced by the
// setsockopt value v (Linux's ipv6_renew_options): a new set, or nil
// when none is left. cur is not changed (it may be in use).
func renewExt6(cur *stack.SendExt6, name int, v any) (*stack.SendExt6, error) {
	h, err := optHdr(v)
	if err != nil {
		return nil, err
	}
	if name == IPV6_RTHDR && h != nil && !checkRthdr(h, optLen(v)) {
		return nil, syscall.EINVAL
	}
	var x stack.SendExt6
	if cur != nil {
		x = *cur
	}
	switch name {
	case IPV6_HOPOPTS:
		x.Hop = h
	case IPV6_RTHDRDSTOPTS:
		x.RthdrDst = h
	case IPV6_RTHDR:
		x.Rt = h
	default:
		x.Dst = h
	}
	if x.Hop == nil && x.RthdrDst == nil && x.Rt == nil && x.Dst == nil {
		return nil, nil
	}
	return &x, nil
}

// setExt6 is setsockopt of a sticky header on an AF_INET6 stream socket:
// every segment carries the headers (Hop-by-Hop, then Destination
// Options; IPV6_RTHDRDSTOPTS is kept and, with no routing header, not
// sent, though it takes its room off the MSS as on Linux), an accepted
// socket takes its listener's, and on a connection the next segment
// has them with the MSS cut to fit (tcp/ext6.go).
func (t *tcpEP) setExt6(name int, v any) error {
	cur, _ := t.ep.IPv6Ext().(*stack.SendExt6)
	x, err := renewExt6(cur, name, v)
	if err != nil {
		return err
	}
	if x == nil {
		t.ep.SetIPv6Ext(nil) // an untyped nil: none
		return nil
	}
	t.ep.SetIPv6Ext(x)
	return nil
}

// getExt6 is getsockopt of a sticky header of a stream socket.
func (t *tcpEP) getExt6(name int) string {
	x, _ := t.ep.IPv6Ext().(*stack.SendExt6)
	return ext6Hdr(x, name)
}

// getExt6 is getsockopt of a sticky header: the header, or "" for none.
func (d *dgramEP) getExt6(name int) string {
	return ext6Hdr(d.ep.Ext6(), name)
}

// ext6Hdr is header name of x (nil: none), "" for none.
func ext6Hdr(x *stack.SendExt6, name int) string {
	if x == nil {
		return ""
	}
	switch name {
	case IPV6_HOPOPTS:
		return string(x.Hop)
	case IPV6_RTHDRDSTOPTS:
		return string(x.RthdrDst)
	case IPV6_RTHDR:
		return string(x.Rt)
	}
	return string(x.Dst)
}

// optLen is the length of a setsockopt value optHdr took.
func optLen(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return len(x)
	}
	return 0
}

// checkRthdr checks a sticky routing header h given in an n-byte value
// as Linux's ipv6_set_opt_hdr does: only a Segment Routing Header (type
// 4) that passes seg6_validate_srh. That is: the value exactly the
// header's (hdrlen+1)*8 bytes; segments_left at most last_entry
// (first_segment), last_entry within the segment room hdrlen/2 - 1; and
// whatever follows the last_entry+1 segments a run of TLVs, each a type
// byte, a length byte and that many bytes, ending at the header's end
// (Linux reads a Pad1 as a two-byte TLV too). The HMAC TLV is not
// computed (Linux fills it only with CONFIG_IPV6_SEG6_HMAC and a key set
// with seg6's netlink): the header goes out as given.
func checkRthdr(h []byte, n int) bool {
	if len(h) < 8 || h[2] != 4 {
		return false
	}
	hdrLen, left, last := int(h[1]), int(h[3]), int(h[4])
	if (hdrLen+1)*8 != n || len(h) != n {
		return false
	}
	if left > last || last > hdrLen/2-1 {
		return false
	}
	at := 8 + (last+1)*16
	if at > len(h) {
		return false
	}
	for at < len(h) {
		if len(h)-at < 2 {
			return false
		}
		at += 2 + int(h[at+1])
		if at > len(h) {
			return false
		}
	}
	return true
}
