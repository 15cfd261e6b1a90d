package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sockstack/sockstack/wire"
)

// IPv6, ICMPv6 and neighbour discovery lines, as tcpdump -n prints them
// (tcpdump 4.99): "IP6 a > b: ICMP6, neighbor solicitation, who has
// x, length 32". Extension headers show as tcpdump names them (HBH,
// DSTOPT, srcrt, frag); a defect tcpdump would only show with -v (a bad
// checksum) is noted in brackets, as for IPv4.

func ip6Line(b *strings.Builder, p []byte) {
	if len(p) < wire.IPv6HeaderLen {
		fmt.Fprintf(b, "IP6 truncated, length %d", len(p))
		return
	}
	h := wire.IPv6(p)
	src, dst := h.Src(), h.Dst()
	if pl := h.PayloadLen(); wire.IPv6HeaderLen+pl > len(p) {
		fmt.Fprintf(b, "IP6 %s > %s: truncated, payload length %d > %d captured", src, dst, pl, len(p)-wire.IPv6HeaderLen)
		return
	}
	h = h[:wire.IPv6HeaderLen+h.PayloadLen()]
	nh, off := h.NextHeader(), wire.IPv6HeaderLen
	var ext strings.Builder
	fragFirst := false
walk:
	for {
		switch nh {
		case wire.ProtoHopByHop, wire.ProtoIPv6Opts, wire.ProtoIPv6Route:
			if off+2 > len(h) || off+8*(int(h[off+1])+1) > len(h) {
				fmt.Fprintf(b, "IP6 %s > %s: %s[|%s]", src, dst, ext.String(), extName(nh))
				return
			}
			if nh == wire.ProtoIPv6Route {
				fmt.Fprintf(&ext, "srcrt (len=%d, type=%d, segleft=%d) ", h[off+1], h[off+2], h[off+3])
			} else {
				ext.WriteString(extName(nh) + " ")
			}
			nh, off = h[off], off+8*(int(h[off+1])+1)
		case wire.ProtoIPv6Frag:
			if off+wire.IPv6FragHeaderLen > len(h) {
				fmt.Fprintf(b, "IP6 %s > %s: %s[|frag]", src, dst, ext.String())
				return
			}
			f := wire.IPv6Frag(h[off:])
			fmt.Fprintf(&ext, "frag (%d|%d)", f.Offset(), len(h)-off-wire.IPv6FragHeaderLen)
			if f.Offset() != 0 {
				// No upper-layer header in a later fragment.
				fmt.Fprintf(b, "IP6 %s > %s: %s", src, dst, ext.String())
				return
			}
			ext.WriteString(" ")
			nh, off = f.NextHeader(), off+wire.IPv6FragHeaderLen
			fragFirst = true
			break walk
		default:
			break walk
		}
	}
	hdr := l3{tag: "IP6", src: src, dst: dst, pseudo: func(n int) uint64 { return wire.PseudoHeaderSum6(h.Src16(), h.Dst16(), nh, n) }}
	u := h[off:]
	if (nh == wire.ProtoUDP || nh == wire.ProtoTCP) && !fragFirst {
		// "IP6 a.port > b.port: ..." from the shared transport lines;
		// after extension headers the ports follow the addresses alone.
		if ext.Len() > 0 {
			fmt.Fprintf(b, "IP6 %s > %s: %s", src, dst, ext.String())
			hdr.bare = true
		}
		if nh == wire.ProtoUDP {
			udpLine(b, hdr, u)
		} else {
			tcpLine(b, hdr, u)
		}
		return
	}
	fmt.Fprintf(b, "IP6 %s > %s: %s", src, dst, ext.String())
	switch nh {
	case wire.ProtoICMPv6:
		icmp6Line(b, hdr, u, fragFirst)
	case wire.ProtoUDP, wire.ProtoTCP:
		// A first fragment: ports only, nothing to checksum (tcpdump
		// prints them without addresses here).
		if len(u) < 4 {
			b.WriteString(protoName(nh))
			return
		}
		sp, dp := binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:])
		if nh == wire.ProtoUDP && len(u) >= wire.UDPHeaderLen {
			fmt.Fprintf(b, "%d > %d: UDP, length %d", sp, dp, int(wire.UDP(u).Length())-wire.UDPHeaderLen)
		} else {
			fmt.Fprintf(b, "%d > %d: %s", sp, dp, protoName(nh))
		}
	case wire.ProtoIPv6NoNext:
		b.WriteString("no next header")
	default:
		// tcpdump's spelling, two spaces included.
		fmt.Fprintf(b, " ip-proto-%d %d", nh, len(u))
	}
}

func extName(nh uint8) string {
	switch nh {
	case wire.ProtoHopByHop:
		return "HBH"
	case wire.ProtoIPv6Opts:
		return "DSTOPT"
	}
	return "srcrt"
}

var icmp6Names = map[uint8]string{
	wire.ICMPv6DestUnreach: "destination unreachable", wire.ICMPv6PacketTooBig: "packet too big",
	wire.ICMPv6TimeExceeded: "time exceeded in-transit", wire.ICMPv6ParamProblem: "parameter problem",
	wire.ICMPv6EchoRequest: "echo request", wire.ICMPv6EchoReply: "echo reply",
	wire.ICMPv6MLDQuery: "multicast listener query", wire.ICMPv6MLDReport: "multicast listener report",
	wire.ICMPv6MLDDone: "multicast listener done", wire.ICMPv6RouterSolicit: "router solicitation",
	wire.ICMPv6RouterAdvert: "router advertisement", wire.ICMPv6NeighborSolic: "neighbor solicitation",
	wire.ICMPv6NeighborAdvert: "neighbor advertisement", wire.ICMPv6Redirect: "redirect",
	wire.ICMPv6MLDv2Report: "multicast listener report v2",
}

var unreach6Names = map[uint8]string{
	wire.ICMPv6NoRoute: "unreachable route", wire.ICMPv6AdminProhibited: "unreachable prohibited",
	wire.ICMPv6BeyondScope: "beyond scope", wire.ICMPv6AddrUnreach: "unreachable address",
	wire.ICMPv6PortUnreach: "unreachable port",
}

var param6Names = map[uint8]string{
	wire.ICMPv6ErroneousField: "erroneous", wire.ICMPv6UnrecognizedNextHeader: "next header",
	wire.ICMPv6UnrecognizedOption: "option",
}

// icmp6Line is an ICMPv6 message, as tcpdump prints it without -v.
func icmp6Line(b *strings.Builder, h l3, p []byte, frag bool) {
	if len(p) < 4 {
		fmt.Fprintf(b, "ICMP6 truncated, length %d", len(p))
		return
	}
	m := wire.ICMPv6(p)
	name, ok := icmp6Names[m.Type()]
	if !ok {
		name = fmt.Sprintf("unknown icmp6 type (%d)", m.Type())
	}
	fmt.Fprintf(b, "ICMP6, %s", name)
	// The quoted packet's destination (and transport) for errors.
	quoted := func() (wire.IPv6, bool) {
		if len(p) < wire.ICMPv6HeaderLen+wire.IPv6HeaderLen {
			return nil, false
		}
		return wire.IPv6(p[wire.ICMPv6HeaderLen:]), true
	}
	// Fixed parts each type needs; shorter is truncated.
	need := map[uint8]int{wire.ICMPv6EchoRequest: 8, wire.ICMPv6EchoReply: 8, wire.ICMPv6PacketTooBig: 8,
		wire.ICMPv6ParamProblem: 8}[m.Type()]
	if n := wire.NDPMinLen(m.Type()); n > need {
		need = n
	}
	if len(p) < need {
		fmt.Fprintf(b, " [|icmp6], length %d", len(p))
		return
	}
	switch m.Type() {
	case wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply:
		fmt.Fprintf(b, ", id %d, seq %d", m.ID(), m.Seq())
	case wire.ICMPv6DestUnreach:
		code, ok := unreach6Names[m.Code()]
		if !ok {
			code = fmt.Sprintf("unknown unreach code (%d)", m.Code())
		}
		sep := ", "
		if m.Code() == wire.ICMPv6AdminProhibited {
			sep = ",  " // tcpdump's doubled space
		}
		b.WriteString(sep + code)
		q, ok := quoted()
		if !ok {
			break
		}
		switch m.Code() {
		case wire.ICMPv6PortUnreach:
			var x wire.IPv6Ext
			if len(q) >= wire.IPv6HeaderLen && wire.WalkIPv6Ext(q[:min(len(q), wire.IPv6HeaderLen+q.PayloadLen())], &x) == nil &&
				x.Offset+4 <= len(q) && (x.Proto == wire.ProtoUDP || x.Proto == wire.ProtoTCP) {
				fmt.Fprintf(b, ", %s %s port %d", q.Dst(), strings.ToLower(protoName(x.Proto)), binary.BigEndian.Uint16(q[x.Offset+2:]))
			} else {
				fmt.Fprintf(b, ", %s", q.Dst())
			}
		case wire.ICMPv6BeyondScope:
			fmt.Fprintf(b, " %s, source address %s", q.Dst(), q.Src())
		default:
			fmt.Fprintf(b, " %s", q.Dst())
		}
	case wire.ICMPv6PacketTooBig:
		fmt.Fprintf(b, ", mtu %d", m.MTU())
	case wire.ICMPv6TimeExceeded:
		if m.Code() == wire.ICMPv6ReassemblyTimeout {
			b.WriteString(" (reassembly)")
		} else if q, ok := quoted(); ok && m.Code() == wire.ICMPv6HopLimitExceeded {
			fmt.Fprintf(b, " for %s", q.Dst())
		} else if m.Code() != wire.ICMPv6HopLimitExceeded {
			fmt.Fprintf(b, ", unknown code (%d)", m.Code())
		}
	case wire.ICMPv6ParamProblem:
		code, ok := param6Names[m.Code()]
		if !ok {
			code = fmt.Sprintf("code-#%d", m.Code())
		}
		fmt.Fprintf(b, ", %s - octet %d", code, m.Pointer())
	case wire.ICMPv6NeighborSolic:
		fmt.Fprintf(b, ", who has %s", wire.NDP(p).Target())
	case wire.ICMPv6NeighborAdvert:
		fmt.Fprintf(b, ", tgt is %s", wire.NDP(p).Target())
	case wire.ICMPv6Redirect:
		d := wire.NDP(p)
		fmt.Fprintf(b, ", %s to %s", d.RedirectDst(), d.Target())
	case wire.ICMPv6MLDv2Report:
		if len(p) >= 8 {
			fmt.Fprintf(b, ", %d group record(s)", binary.BigEndian.Uint16(p[6:8]))
		}
	case wire.ICMPv6MLDQuery, wire.ICMPv6MLDReport, wire.ICMPv6MLDDone:
		if len(p) >= 24 {
			if m.Type() == wire.ICMPv6MLDQuery && len(p) >= 28 {
				fmt.Fprintf(b, " v2 [gaddr %s]", netip.AddrFrom16([16]byte(p[8:24])))
			} else {
				fmt.Fprintf(b, " max resp delay: %d addr: %s", binary.BigEndian.Uint16(p[4:6]), netip.AddrFrom16([16]byte(p[8:24])))
			}
		}
	}
	fmt.Fprintf(b, ", length %d", len(p))
	if frag {
		return
	}
	if s := wire.Sum(p, h.pseudo(len(p))); wire.Fold(s) != 0xffff {
		fmt.Fprintf(b, " [bad icmp6 cksum 0x%04x -> 0x%04x]", m.Checksum(), wantSum(s, m.Checksum()))
	}
}
