package stack

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Received IPv4 options, checked as Linux's ip_options_compile does:
// a malformed option draws an ICMP parameter problem whose pointer is
// the offending byte (RFC 1122 3.2.2.5), source-routed packets are dropped
// (accept_source_route=0, RFC 7126), and Record Route and Timestamp in an
// echo request are reflected in the reply (RFC 1122 3.2.2.6).

const (
	ipOptRR   = 7
	ipOptTS   = 68
	ipOptLSRR = 131
	ipOptSSRR = 137
	ipOptRA   = 148

	tsOnly     = 0 // timestamps only
	tsAndAddr  = 1 // address, timestamp pairs
	tsPrespec  = 3 // prespecified addresses
	tsOverflow = 15
)

// ipOpts locates the options the host acts on (offsets from the start of
// the IP header; 0 when absent).
type ipOpts struct {
	rr, ts int
	srr    bool
}

// parseIPOptions walks h's options. ptr is 0 when they are well formed,
// else the offset of the offending byte, as Linux reports it: an option's
// type byte for a bad length or a repeated option, the length byte when
// it is too short for the option, the pointer byte for a bad pointer,
// the flags byte for a timestamp overflow counter that would wrap.
func parseIPOptions(h wire.IPv4) (o ipOpts, ptr int) {
	hl := h.HeaderLen()
	for i := wire.IPv4MinHeaderLen; i < hl; {
		t := h[i]
		if t == wire.IPOptEnd {
			break
		}
		if t == wire.IPOptNOP {
			i++
			continue
		}
		if hl-i < 2 {
			return o, i
		}
		l := int(h[i+1])
		if l < 2 || l > hl-i {
			return o, i
		}
		switch t {
		case ipOptLSRR, ipOptSSRR:
			if l < 3 {
				return o, i + 1
			}
			if h[i+2] < 4 {
				return o, i + 2
			}
			if o.srr {
				return o, i
			}
			o.srr = true
		case ipOptRR:
			if o.rr != 0 {
				return o, i
			}
			if l < 3 {
				return o, i + 1
			}
			p := int(h[i+2])
			if p < 4 || p <= l && p+3 > l {
				return o, i + 2
			}
			o.rr = i
		case ipOptTS:
			if o.ts != 0 {
				return o, i
			}
			if l < 4 {
				return o, i + 1
			}
			p, flag := int(h[i+2]), h[i+3]&0xf
			if p < 5 {
				return o, i + 2
			}
			if p <= l {
				if p+3 > l || (flag == tsAndAddr || flag == tsPrespec) && p+7 > l {
					return o, i + 2
				}
			} else if flag != tsPrespec && h[i+3]>>4 == tsOverflow {
				return o, i + 3
			}
			o.ts = i
		case ipOptRA:
			if l < 4 {
				return o, i + 1
			}
		}
		i += l
	}
	return o, 0
}

// receiveOptions checks a well-formed header's options; false means the
// packet was dropped (and counted, and answered when Linux answers).
func (s *Stack) receiveOptions(h wire.IPv4) (ipOpts, bool) {
	o, ptr := parseIPOptions(h)
	if ptr != 0 {
		s.stats.IP.InHdrErrors.Add(1)
		s.stats.IP.InBadOptions.Add(1)
		s.sendICMPError(h, wire.ICMPParamProblem, 0, ptr)
		return o, false
	}
	if o.srr {
		s.stats.IP.InSourceRouted.Add(1)
		return o, false
	}
	return o, true
}

// badOptions answers a header that ParseIPv4 refused for its option
// syntax, once the rest of it (checksum, addresses) proves it genuine.
func (s *Stack) badOptions(n *NIC, b []byte) {
	h := wire.IPv4(b)
	h = h[:h.TotalLen()] // ParseIPv4 checked the lengths before the options
	if !h.VerifyChecksum() || s.martianReason(n, h) != nil {
		return
	}
	if _, ptr := parseIPOptions(h); ptr != 0 {
		s.sendICMPError(h, wire.ICMPParamProblem, 0, ptr)
	}
}

// echoOptions builds in out the options of an echo reply to h (Linux's
// ip_options_echo, after its receive path recorded this host): Record
// Route and Timestamp are copied with this host's address (me) and the
// time added where there is room, once for the request's arrival and
// once for the reply's departure; other options are not echoed. The
// result is padded to a multiple of 4. ok false: the options leave no
// consistent room, and Linux sends no reply.
func (s *Stack) echoOptions(h wire.IPv4, o ipOpts, me netip.Addr, out *[wire.IPv4MaxOptionsLen]byte) (n int, ok bool) {
	addr := me.As4()
	now := s.clock.Now()
	if o.rr != 0 {
		l := int(h[o.rr+1])
		d := out[n : n+l]
		copy(d, h[o.rr:o.rr+l])
		p := int(d[2])
		if p <= l { // the arrival is recorded (room was checked on receive)
			copy(d[p-1:], addr[:])
			p += 4
			if p <= l { // and the reply's departure
				if p+3 > l {
					return 0, false
				}
				copy(d[p-1:], addr[:])
				p += 4
			}
			d[2] = byte(p)
		}
		n += l
	}
	if o.ts != 0 {
		l := int(h[o.ts+1])
		d := out[n : n+l]
		copy(d, h[o.ts:o.ts+l])
		p, flag := int(d[2]), d[3]&0xf
		needAddr, needTime := false, false
		// Arrival.
		if p <= l {
			switch flag {
			case tsOnly:
				putMsTime(d[p-1:], now)
				p += 4
				needTime = true
			case tsAndAddr:
				copy(d[p-1:], addr[:])
				putMsTime(d[p+3:], now)
				p += 8
				needAddr, needTime = true, true
			case tsPrespec:
				if s.unicastElsewhere(netip.AddrFrom4([4]byte(d[p-1 : p+3]))) {
					break
				}
				putMsTime(d[p+3:], now)
				p += 8
				needTime = true
			}
		} else if flag != tsPrespec {
			d[3] = flag | (d[3]>>4+1)<<4 // overflow count (15 was refused on receive)
		}
		d[2] = byte(p)
		// Departure.
		if p <= l {
			addrAt, timeAt := -1, -1
			if needAddr {
				if p+3 > l {
					return 0, false
				}
				addrAt = p - 1
				p += 4
			}
			if needTime {
				if p+3 > l {
					return 0, false
				}
				switch {
				case flag != tsPrespec:
					timeAt = p - 1
					p += 4
				case p+7 <= l && !s.unicastElsewhere(netip.AddrFrom4([4]byte(d[p-1:p+3]))):
					timeAt = p + 3
					p += 8
				}
			}
			if addrAt >= 0 {
				copy(d[addrAt:], addr[:])
			}
			if timeAt >= 0 {
				putMsTime(d[timeAt:], now)
			}
			d[2] = byte(p)
		}
		n += l
	}
	for n&3 != 0 {
		out[n] = wire.IPOptEnd
		n++
	}
	return n, true
}

// unicastElsewhere reports an address that is a unicast host other than
// this one (Linux's inet_addr_type(addr) == RTN_UNICAST).
func (s *Stack) unicastElsewhere(a netip.Addr) bool {
	return !(a.IsUnspecified() || a.IsMulticast() || s.IsLocal(a) || s.isAnyBroadcast(a))
}

// putMsTime writes the RFC 791 timestamp: milliseconds since midnight UT.
func putMsTime(b []byte, t time.Time) {
	t = t.UTC()
	ms := (t.Hour()*3600+t.Minute()*60+t.Second())*1000 + t.Nanosecond()/1e6
	binary.BigEndian.PutUint32(b, uint32(ms))
}
