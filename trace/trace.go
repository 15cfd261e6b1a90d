// Package trace prints one line per packet, in the style of tcpdump -n:
// addresses as numbers, absolute TCP sequence numbers, and a note on every
// defect found (truncation, bad lengths, bad checksums) instead of a panic.
package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sockstack/sockstack/wire"
)

// Line describes frame in one line. With ethernet false, frame is a bare
// IP packet (as read from a TUN device).
func Line(frame []byte, ethernet bool) string {
	var b strings.Builder
	if !ethernet {
		ipLine(&b, frame)
		return b.String()
	}
	e, err := wire.ParseEthernet(frame)
	if err != nil {
		return fmt.Sprintf("Ethernet truncated, length %d", len(frame))
	}
	if e.Tagged {
		fmt.Fprintf(&b, "vlan %d, p %d, ", e.VLAN, e.Priority)
	}
	p := frame[e.HeaderLen:]
	switch e.EtherType {
	case wire.EtherTypeARP:
		arpLine(&b, p)
	case wire.EtherTypeIPv4:
		ipLine(&b, p)
	case wire.EtherTypeIPv6:
		ip6Line(&b, p)
	default:
		fmt.Fprintf(&b, "ethertype 0x%04x, length %d", e.EtherType, len(p))
	}
	return b.String()
}

func arpLine(b *strings.Builder, p []byte) {
	a, err := wire.ParseARP(p)
	switch {
	case err != nil && len(p) < wire.ARPLen:
		fmt.Fprintf(b, "ARP truncated, length %d", len(p))
	case err != nil:
		v := wire.ARP(p)
		fmt.Fprintf(b, "ARP, unsupported hardware type %d, protocol 0x%04x, length %d", v.HType(), v.PType(), len(p))
	case a.Op == wire.ARPRequest:
		fmt.Fprintf(b, "ARP, Request who-has %s tell %s, length %d", a.TargetIP, a.SenderIP, len(p))
	case a.Op == wire.ARPReply:
		fmt.Fprintf(b, "ARP, Reply %s is-at %s, length %d", a.SenderIP, a.SenderMAC, len(p))
	default:
		fmt.Fprintf(b, "ARP, op %d, length %d", a.Op, len(p))
	}
}

// protoName is how tcpdump names IP protocols in fragment lines.
func protoName(p uint8) string {
	switch p {
	case wire.ProtoICMP:
		return "ICMP"
	case wire.ProtoIGMP:
		return "IGMP"
	case wire.ProtoTCP:
		return "TCP"
	case wire.ProtoUDP:
		return "UDP"
	}
	return fmt.Sprintf("ip-proto-%d", p)
}

func ipLine(b *strings.Builder, p []byte) {
	if len(p) < 1 {
		b.WriteString("IP truncated, length 0")
		return
	}
	if v := p[0] >> 4; v != 4 {
		if v == 6 {
			ip6Line(b, p) // ip6.go
		} else {
			fmt.Fprintf(b, "IP bad version %d, length %d", v, len(p))
		}
		return
	}
	if len(p) < wire.IPv4MinHeaderLen {
		fmt.Fprintf(b, "IP truncated, length %d", len(p))
		return
	}
	h := wire.IPv4(p)
	src, dst := h.Src(), h.Dst()
	_, err := wire.ParseIPv4(p)
	badSum := false
	if err != nil {
		switch reason(err) {
		case wire.ReasonBadChecksum:
			badSum = true // everything else checked out: decode on
		case wire.ReasonBadHeaderLen:
			fmt.Fprintf(b, "IP %s > %s: bad header length %d (IHL %d), length %d", src, dst, h.HeaderLen(), h.HeaderLen()/4, len(p))
			return
		case wire.ReasonBadLength:
			if h.TotalLen() > len(p) {
				fmt.Fprintf(b, "IP %s > %s: truncated, total length %d > %d captured", src, dst, h.TotalLen(), len(p))
			} else {
				fmt.Fprintf(b, "IP %s > %s: bad total length %d < header %d", src, dst, h.TotalLen(), h.HeaderLen())
			}
			return
		case wire.ReasonBadOption:
			fmt.Fprintf(b, "IP %s > %s: bad options, length %d", src, dst, h.TotalLen())
			return
		default:
			fmt.Fprintf(b, "IP %s > %s: %v", src, dst, err)
			return
		}
	}
	h = h[:h.TotalLen()]
	payload := h.Payload()
	switch {
	case h.IsFragment() && h.FragOffset() > 0:
		fmt.Fprintf(b, "IP %s > %s: %s %s", src, dst, protoName(h.Protocol()), fragNote(h))
	case h.IsFragment():
		// First fragment: ports are there, lengths and checksums cannot be checked.
		if (h.Protocol() == wire.ProtoTCP || h.Protocol() == wire.ProtoUDP) && len(payload) >= 4 {
			fmt.Fprintf(b, "IP %s > %s: %s %s", hostPort(src, payload[0:2]), hostPort(dst, payload[2:4]), protoName(h.Protocol()), fragNote(h))
		} else {
			fmt.Fprintf(b, "IP %s > %s: %s %s", src, dst, protoName(h.Protocol()), fragNote(h))
		}
	default:
		switch h.Protocol() {
		case wire.ProtoICMP:
			icmpLine(b, src, dst, payload)
		case wire.ProtoUDP:
			udpLine(b, l3of4(h), payload)
		case wire.ProtoTCP:
			tcpLine(b, l3of4(h), payload)
		case wire.ProtoIGMP:
			igmpLine(b, src, dst, payload)
		default:
			fmt.Fprintf(b, "IP %s > %s: ip-proto-%d, length %d", src, dst, h.Protocol(), len(payload))
		}
	}
	if badSum {
		want := wantSum(wire.Sum(h[:h.HeaderLen()], 0), h.Checksum())
		fmt.Fprintf(b, " [bad ip cksum 0x%04x -> 0x%04x]", h.Checksum(), want)
	}
}

// reason is the Reason of a parse error, 0 for none.
func reason(err error) wire.Reason {
	var pe *wire.ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return 0
}

func fragNote(h wire.IPv4) string {
	more := "last"
	if h.MF() {
		more = "more"
	}
	return fmt.Sprintf("frag (id %d, offset %d, length %d, %s)", h.ID(), h.FragOffset(), len(h.Payload()), more)
}

func hostPort(a netip.Addr, port []byte) string {
	return fmt.Sprintf("%s.%d", a, binary.BigEndian.Uint16(port))
}

// wantSum is the checksum field value that would make the data verify.
func wantSum(sum uint64, field uint16) uint16 {
	return ^wire.Fold(wire.Add(sum, uint64(^field)))
}

// l3 is what the transport lines need of the IP header of either family.
type l3 struct {
	tag      string // "IP" or "IP6"
	src, dst netip.Addr
	pseudo   func(n int) uint64 // the pseudo-header sum for n transport bytes
	// bare: the line has its addresses already (after IPv6 extension
	// headers, where tcpdump shows the ports alone).
	bare bool
}

func l3of4(h wire.IPv4) l3 { return l3{tag: "IP", src: h.Src(), dst: h.Dst(), pseudo: h.PseudoSum} }

// head starts a TCP or UDP line: "IP a.1 > b.2: ", or "1 > 2: " when bare.
func (h l3) head(b *strings.Builder, p []byte) {
	if h.bare {
		fmt.Fprintf(b, "%d > %d: ", binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]))
		return
	}
	fmt.Fprintf(b, "%s %s > %s: ", h.tag, hostPort(h.src, p[0:2]), hostPort(h.dst, p[2:4]))
}

func udpLine(b *strings.Builder, h l3, p []byte) {
	src, dst := h.src, h.dst
	if len(p) < wire.UDPHeaderLen {
		fmt.Fprintf(b, "%s %s > %s: UDP truncated, length %d", h.tag, src, dst, len(p))
		return
	}
	u := wire.UDP(p)
	h.head(b, p)
	b.WriteString("UDP, ")
	_, err := wire.ParseUDP(p, h.pseudo(0))
	if reason(err) == wire.ReasonBadLength {
		fmt.Fprintf(b, "bad length %d (IP payload %d)", u.Length(), len(p))
		return
	}
	fmt.Fprintf(b, "length %d", u.Length()-wire.UDPHeaderLen)
	if err != nil {
		u = u[:u.Length()]
		s := wire.Sum(u, h.pseudo(len(u)))
		fmt.Fprintf(b, " [bad udp cksum 0x%04x -> 0x%04x]", u.Checksum(), wantSum(s, u.Checksum()))
	}
}

// tcpFlags spells flags the way tcpdump does, in its order.
func tcpFlags(f uint8) string {
	var s []byte
	for _, x := range []struct {
		bit uint8
		c   byte
	}{
		{wire.TCPFlagFIN, 'F'}, {wire.TCPFlagSYN, 'S'}, {wire.TCPFlagRST, 'R'}, {wire.TCPFlagPSH, 'P'},
		{wire.TCPFlagACK, '.'}, {wire.TCPFlagURG, 'U'}, {wire.TCPFlagECE, 'E'}, {wire.TCPFlagCWR, 'W'},
	} {
		if f&x.bit != 0 {
			s = append(s, x.c)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return string(s)
}

func tcpLine(b *strings.Builder, h l3, p []byte) {
	src, dst := h.src, h.dst
	if len(p) < wire.TCPMinHeaderLen {
		fmt.Fprintf(b, "%s %s > %s: TCP truncated, length %d", h.tag, src, dst, len(p))
		return
	}
	h.head(b, p)
	t, err := wire.ParseTCP(p, h.pseudo(0), false)
	if err != nil {
		fmt.Fprintf(b, "TCP bad data offset %d, length %d", wire.TCP(p).DataOffset(), len(p))
		return
	}
	n := len(t.Payload())
	fmt.Fprintf(b, "Flags [%s], seq %d", tcpFlags(t.Flags()), t.Seq())
	if n > 0 {
		fmt.Fprintf(b, ":%d", t.Seq()+uint32(n))
	}
	if t.Flags()&wire.TCPFlagACK != 0 {
		fmt.Fprintf(b, ", ack %d", t.Ack())
	}
	fmt.Fprintf(b, ", win %d", t.Window())
	if t.Flags()&wire.TCPFlagURG != 0 {
		fmt.Fprintf(b, ", urg %d", t.Urgent())
	}
	if o := t.Options(); len(o) > 0 {
		b.WriteString(", options [")
		tcpOptions(b, o)
		b.WriteString("]")
	}
	fmt.Fprintf(b, ", length %d", n)
	if s := wire.Sum(t, h.pseudo(len(t))); wire.Fold(s) != 0xffff {
		fmt.Fprintf(b, " [bad tcp cksum 0x%04x -> 0x%04x]", t.Checksum(), wantSum(s, t.Checksum()))
	}
}

// tcpOptions lists options in wire order, NOPs included, like tcpdump.
func tcpOptions(b *strings.Builder, o []byte) {
	for i := 0; i < len(o); {
		if i > 0 {
			b.WriteByte(',')
		}
		kind := o[i]
		switch kind {
		case wire.TCPOptEnd:
			b.WriteString("eol")
			return
		case wire.TCPOptNOP:
			b.WriteString("nop")
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			b.WriteString("bad opts")
			return
		}
		l := int(o[i+1])
		v := o[i+2 : i+l]
		switch {
		case kind == wire.TCPOptMSS && l == 4:
			fmt.Fprintf(b, "mss %d", binary.BigEndian.Uint16(v))
		case kind == wire.TCPOptWScale && l == 3:
			fmt.Fprintf(b, "wscale %d", v[0])
		case kind == wire.TCPOptSACKPermitted && l == 2:
			b.WriteString("sackOK")
		case kind == wire.TCPOptTimestamps && l == 10:
			fmt.Fprintf(b, "TS val %d ecr %d", binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:]))
		case kind == wire.TCPOptSACK && (l-2)%8 == 0:
			fmt.Fprintf(b, "sack %d ", (l-2)/8)
			for j := 0; j+8 <= len(v); j += 8 {
				fmt.Fprintf(b, "{%d:%d}", binary.BigEndian.Uint32(v[j:]), binary.BigEndian.Uint32(v[j+4:]))
			}
		default:
			fmt.Fprintf(b, "opt-%d len %d", kind, l)
		}
		i += l
	}
}

func icmpLine(b *strings.Builder, src, dst netip.Addr, p []byte) {
	fmt.Fprintf(b, "IP %s > %s: ", src, dst)
	if len(p) < wire.ICMPv4HeaderLen {
		fmt.Fprintf(b, "ICMP truncated, length %d", len(p))
		return
	}
	m := wire.ICMPv4(p)
	b.WriteString("ICMP ")
	switch m.Type() {
	case wire.ICMPEcho, wire.ICMPEchoReply:
		what := "request"
		if m.Type() == wire.ICMPEchoReply {
			what = "reply"
		}
		fmt.Fprintf(b, "echo %s, id %d, seq %d", what, m.ID(), m.Seq())
	case wire.ICMPDestUnreach:
		unreach(b, m)
	case wire.ICMPTimeExceeded:
		if m.Code() == wire.ICMPReassemblyExceeded {
			b.WriteString("ip reassembly time exceeded")
		} else {
			b.WriteString("time exceeded in-transit")
		}
	case wire.ICMPSourceQuench:
		b.WriteString("source quench")
	case wire.ICMPRedirect:
		fmt.Fprintf(b, "redirect, code %d, gateway %s", m.Code(), netip.AddrFrom4([4]byte(p[4:8])))
	case wire.ICMPParamProblem:
		fmt.Fprintf(b, "parameter problem - octet %d", p[4])
	case wire.ICMPTimestamp:
		fmt.Fprintf(b, "time stamp query id %d seq %d", m.ID(), m.Seq())
	case wire.ICMPTimestampReply:
		fmt.Fprintf(b, "time stamp reply id %d seq %d", m.ID(), m.Seq())
	default:
		fmt.Fprintf(b, "type %d, code %d", m.Type(), m.Code())
	}
	fmt.Fprintf(b, ", length %d", len(p))
	if s := wire.Sum(p, 0); wire.Fold(s) != 0xffff {
		fmt.Fprintf(b, " [bad icmp cksum 0x%04x -> 0x%04x]", m.Checksum(), wantSum(s, m.Checksum()))
	}
}

// unreach names the destination of the datagram that could not be
// delivered, from the IP header quoted in the message.
func unreach(b *strings.Builder, m wire.ICMPv4) {
	q := m.Payload()
	if len(q) < wire.IPv4MinHeaderLen || q[0]>>4 != 4 || int(q[0]&15)*4 < wire.IPv4MinHeaderLen {
		fmt.Fprintf(b, "dest unreachable, code %d (quoted header truncated)", m.Code())
		return
	}
	in := wire.IPv4(q)
	d := in.Dst()
	switch m.Code() {
	case wire.ICMPNetUnreach:
		fmt.Fprintf(b, "net %s unreachable", d)
	case wire.ICMPHostUnreach:
		fmt.Fprintf(b, "host %s unreachable", d)
	case wire.ICMPProtoUnreach:
		fmt.Fprintf(b, "%s protocol %d unreachable", d, in.Protocol())
	case wire.ICMPPortUnreach:
		hl := in.HeaderLen()
		if (in.Protocol() == wire.ProtoUDP || in.Protocol() == wire.ProtoTCP) && len(q) >= hl+4 {
			fmt.Fprintf(b, "%s %s port %d unreachable", d, strings.ToLower(protoName(in.Protocol())), binary.BigEndian.Uint16(q[hl+2:]))
		} else {
			fmt.Fprintf(b, "%s port unreachable", d)
		}
	case wire.ICMPFragNeeded:
		fmt.Fprintf(b, "%s unreachable - need to frag (mtu %d)", d, m.NextHopMTU())
	case wire.ICMPNetProhibited, wire.ICMPHostProhibited, wire.ICMPAdminProhibited:
		fmt.Fprintf(b, "host %s unreachable - admin prohibited", d)
	default:
		fmt.Fprintf(b, "%s unreachable, code %d", d, m.Code())
	}
}

func igmpLine(b *strings.Builder, src, dst netip.Addr, p []byte) {
	fmt.Fprintf(b, "IP %s > %s: ", src, dst)
	if len(p) < 8 {
		fmt.Fprintf(b, "IGMP truncated, length %d", len(p))
		return
	}
	group := netip.AddrFrom4([4]byte(p[4:8]))
	switch p[0] {
	case 0x11:
		fmt.Fprintf(b, "igmp query %s", group)
	case 0x12:
		fmt.Fprintf(b, "igmp v1 report %s", group)
	case 0x16:
		fmt.Fprintf(b, "igmp v2 report %s", group)
	case 0x17:
		fmt.Fprintf(b, "igmp leave %s", group)
	case 0x22:
		b.WriteString("igmp v3 report")
	default:
		fmt.Fprintf(b, "igmp type 0x%02x", p[0])
	}
	fmt.Fprintf(b, ", length %d", len(p))
	if s := wire.Sum(p, 0); wire.Fold(s) != 0xffff {
		fmt.Fprintf(b, " [bad igmp cksum 0x%04x -> 0x%04x]", binary.BigEndian.Uint16(p[2:]), wantSum(s, binary.BigEndian.Uint16(p[2:])))
	}
}
