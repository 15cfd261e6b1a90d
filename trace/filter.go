package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sockstack/sockstack/wire"
)

// Filter selects frames for sniffing. The zero Filter matches everything.
type Filter struct {
	terms []term
	expr  string
}

type termKind uint8

const (
	termProto termKind = iota // IP protocol, or ARP
	termHost
	termPort
)

type term struct {
	kind  termKind
	proto uint8 // for termProto; protoARP for arp
	host  netip.Addr
	port  uint16
}

// protoARP stands for ARP among IP protocol numbers (255 is "raw", which a
// filter never names).
const protoARP = 255

// ParseFilter reads space-separated terms that must all hold: tcp, udp,
// icmp, arp, ip, "host A.B.C.D" (source or destination, ARP sender or
// target too) and "port N" (TCP or UDP source or destination).
func ParseFilter(expr string) (Filter, error) {
	f := Filter{expr: strings.Join(strings.Fields(expr), " ")}
	w := strings.Fields(expr)
	for i := 0; i < len(w); i++ {
		switch strings.ToLower(w[i]) {
		case "tcp":
			f.terms = append(f.terms, term{kind: termProto, proto: wire.ProtoTCP})
		case "udp":
			f.terms = append(f.terms, term{kind: termProto, proto: wire.ProtoUDP})
		case "icmp":
			f.terms = append(f.terms, term{kind: termProto, proto: wire.ProtoICMP})
		case "arp":
			f.terms = append(f.terms, term{kind: termProto, proto: protoARP})
		case "ip":
			f.terms = append(f.terms, term{kind: termProto, proto: 0})
		case "and", "&&":
			// Terms are ANDed anyway; accept the word for tcpdump habits.
		case "host":
			if i+1 >= len(w) {
				return Filter{}, fmt.Errorf("filter: host needs an IPv4 address")
			}
			i++
			a, err := netip.ParseAddr(w[i])
			if err != nil || !a.Is4() {
				return Filter{}, fmt.Errorf("filter: bad IPv4 address %q", w[i])
			}
			f.terms = append(f.terms, term{kind: termHost, host: a})
		case "port":
			if i+1 >= len(w) {
				return Filter{}, fmt.Errorf("filter: port needs a number")
			}
			i++
			p, err := strconv.ParseUint(w[i], 10, 16)
			if err != nil {
				return Filter{}, fmt.Errorf("filter: bad port %q", w[i])
			}
			f.terms = append(f.terms, term{kind: termPort, port: uint16(p)})
		default:
			return Filter{}, fmt.Errorf("filter: unknown term %q (want tcp, udp, icmp, arp, ip, host A.B.C.D, port N)", w[i])
		}
	}
	return f, nil
}

// String is the normalised expression.
func (f Filter) String() string { return f.expr }

// packetFacts is what terms look at, read once per frame.
type packetFacts struct {
	isARP, isIP bool
	proto       uint8
	src, dst    netip.Addr
	hasPorts    bool
	sport       uint16
	dport       uint16
}

// Match reports whether frame passes every term. Malformed frames match
// only terms they visibly satisfy (a frame too short to hold ports never
// matches "port").
func (f Filter) Match(frame []byte, ethernet bool) bool {
	if len(f.terms) == 0 {
		return true
	}
	var pf packetFacts
	p := frame
	if ethernet {
		e, err := wire.ParseEthernet(frame)
		if err != nil {
			return false
		}
		p = frame[e.HeaderLen:]
		switch e.EtherType {
		case wire.EtherTypeARP:
			if len(p) < wire.ARPLen {
				return false
			}
			a := wire.ARP(p)
			pf.isARP = true
			pf.src, pf.dst = a.SenderIP(), a.TargetIP()
		case wire.EtherTypeIPv4:
			pf.isIP = true
		default:
			return false
		}
	} else {
		pf.isIP = true
	}
	if pf.isIP {
		if len(p) < wire.IPv4MinHeaderLen || p[0]>>4 != 4 {
			return false
		}
		h := wire.IPv4(p)
		hl := h.HeaderLen()
		pf.proto, pf.src, pf.dst = h.Protocol(), h.Src(), h.Dst()
		if hl >= wire.IPv4MinHeaderLen && hl+4 <= len(p) && h.FragOffset() == 0 &&
			(pf.proto == wire.ProtoTCP || pf.proto == wire.ProtoUDP) {
			pf.hasPorts = true
			pf.sport = binary.BigEndian.Uint16(p[hl:])
			pf.dport = binary.BigEndian.Uint16(p[hl+2:])
		}
	}
	for _, t := range f.terms {
		var ok bool
		switch t.kind {
		case termProto:
			switch t.proto {
			case protoARP:
				ok = pf.isARP
			case 0:
				ok = pf.isIP
			default:
				ok = pf.isIP && pf.proto == t.proto
			}
		case termHost:
			ok = pf.src == t.host || pf.dst == t.host
		case termPort:
			ok = pf.hasPorts && (pf.sport == t.port || pf.dport == t.port)
		}
		if !ok {
			return false
		}
	}
	return true
}
