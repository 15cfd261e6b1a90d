package stack

import (
	"net/netip"
	"sync"

	"github.com/sockstack/sockstack/wire"
)

// IPv4 options as a receiving socket sees them (IP_RECVOPTS, IP_RETOPTS):
// Linux's receive path (ip_options_compile with the packet's route)
// rewrites the header's options in place before any socket gets the
// packet: Record Route gets this host's address in its next slot,
// Timestamp this host's time (and address), an overflowing Timestamp its
// counter raised, and every byte after End of Options becomes End. A raw
// socket reads that rewritten header too (its checksum left stale).

// Flags of RecvIPOpts: what the receive path filled in (Linux's
// rr_needaddr, ts_needaddr, ts_needtime), which IP_RETOPTS needs.
const (
	optRRNeedAddr = 1 << iota
	optTSNeedAddr
	optTSNeedTime
)

// RecvIPOpts is a received IPv4 header's options after the receive path
// rewrote them; Len 0 for none.
type RecvIPOpts struct {
	Len   uint8
	flags uint8
	B     [wire.IPv4MaxOptionsLen]byte
}

// recvOptsPool holds the queue's copies of received options: only
// datagrams with options take one, and a read, a refusal or Close gives
// it back.
var recvOptsPool = sync.Pool{New: func() any { return new(RecvIPOpts) }}

// putRecvOpts gives o (nil: none) back to recvOptsPool.
func putRecvOpts(o *RecvIPOpts) {
	if o != nil {
		recvOptsPool.Put(o)
	}
}

// Bytes is the options (padding included).
func (o *RecvIPOpts) Bytes() []byte { return o.B[:min(int(o.Len), len(o.B))] }

// recvOptions copies h's options as Linux's receive path leaves them for
// a local socket. h's options were checked on input (parseIPOptions), so
// this only rewrites; it reads the clock only for a timestamp.
func (s *Stack) recvOptions(h wire.IPv4) RecvIPOpts { return s.recvOptionsAs(h, netip.Addr{}) }

// recvOptionsAs is recvOptions with spec, when valid, as the address
// this host fills in: a diverted packet's original destination, as
// Linux's fib_compute_spec_dst gives for a TPROXY route (local).
func (s *Stack) recvOptionsAs(h wire.IPv4, spec0 netip.Addr) (o RecvIPOpts) {
	hl := h.HeaderLen()
	if hl <= wire.IPv4MinHeaderLen || hl > len(h) {
		return o
	}
	o.Len = uint8(copy(o.B[:], h[wire.IPv4MinHeaderLen:hl]))
	b := o.B[:o.Len]
	var spec [4]byte
	specSet := false
	specDst := func() []byte {
		if !specSet {
			a := spec0
			if !a.IsValid() {
				a = s.specDst(h.Dst(), h.Src())
			}
			spec, specSet = a.As4(), true
		}
		return spec[:]
	}
	for i := 0; i < len(b); {
		t := b[i]
		if t == wire.IPOptEnd {
			clear(b[i:]) // END: the rest becomes END too
			break
		}
		if t == wire.IPOptNOP {
			i++
			continue
		}
		if len(b)-i < 2 || int(b[i+1]) < 2 || int(b[i+1]) > len(b)-i {
			break // not for here: checked on input
		}
		l := int(b[i+1])
		d := b[i : i+l]
		switch t {
		case ipOptRR:
			if l < 3 {
				break
			}
			if p := int(d[2]); p >= 4 && p+3 <= l {
				copy(d[p-1:], specDst())
				d[2] += 4
				o.flags |= optRRNeedAddr
			}
		case ipOptTS:
			if l < 4 {
				break
			}
			p, flag := int(d[2]), d[3]&0xf
			if p < 5 {
				break // refused on input
			}
			if p > l {
				if flag != tsPrespec && d[3]>>4 < tsOverflow {
					d[3] = flag | (d[3]>>4+1)<<4
				}
				break
			}
			if p+3 > l {
				break
			}
			switch flag {
			case tsOnly:
				putMsTime(d[p-1:], s.clock.Now())
				d[2] += 4
				o.flags |= optTSNeedTime
			case tsAndAddr:
				if p+7 > l {
					break
				}
				copy(d[p-1:], specDst())
				putMsTime(d[p+3:], s.clock.Now())
				d[2] += 8
				o.flags |= optTSNeedAddr | optTSNeedTime
			case tsPrespec:
				if p+7 > l || s.unicastElsewhere(netip.AddrFrom4([4]byte(d[p-1:p+3]))) {
					break
				}
				putMsTime(d[p+3:], s.clock.Now())
				d[2] += 8
				o.flags |= optTSNeedTime
			}
		}
		i += l
	}
	return o
}

// specDst is the address this host answers a packet from src to dst
// from (Linux's fib_compute_spec_dst): dst itself when it is one of
// ours, else (a broadcast or a group) the source of the route back to
// src; the route to dst when there is none (a group needs no route).
func (s *Stack) specDst(dst, src netip.Addr) netip.Addr {
	if s.IsLocal(dst) {
		return dst
	}
	for _, a := range [2]netip.Addr{src, dst} {
		if !a.IsValid() || a.IsUnspecified() {
			continue
		}
		if r, err := s.FindRoute(a); err == nil && r.Src.Is4() {
			return r.Src
		}
	}
	return netip.IPv4Unspecified()
}

// RetOpts builds in out the options a reply to the packet o came with
// would carry (IP_RETOPTS: Linux's __ip_options_echo, then
// ip_options_undo, which leaves the reply's own slots empty): Record
// Route and Timestamp copied with a slot kept for the reply where the
// received packet had one, other options not echoed (source routes never
// reach a socket here; CIPSO is not known), padded to a multiple of 4.
// ok false: a slot does not fit, and Linux gives MSG_CTRUNC instead.
func (s *Stack) RetOpts(o *RecvIPOpts, out *[wire.IPv4MaxOptionsLen]byte) (n int, ok bool) {
	b := o.Bytes()
	rr, ts := -1, -1
	for i := 0; i < len(b); {
		t := b[i]
		if t == wire.IPOptEnd {
			break
		}
		if t == wire.IPOptNOP {
			i++
			continue
		}
		if len(b)-i < 2 || int(b[i+1]) < 2 || int(b[i+1]) > len(b)-i {
			break
		}
		switch l := int(b[i+1]); {
		case t == ipOptRR && l >= 3 && b[i+2] >= 4:
			rr = i
		case t == ipOptTS && l >= 4 && b[i+2] >= 5:
			ts = i
		}
		i += int(b[i+1])
	}
	if rr >= 0 {
		l := int(b[rr+1])
		d := out[n : n+l]
		copy(d, b[rr:rr+l])
		if p := int(d[2]); o.flags&optRRNeedAddr != 0 && p <= l {
			if p+3 > l {
				return 0, false
			}
			// The echo takes the next slot and undo gives it back empty.
			clear(d[p-1 : p+3])
		}
		n += l
	}
	if ts >= 0 {
		l := int(b[ts+1])
		d := out[n : n+l]
		copy(d, b[ts:ts+l])
		p := int(d[2])
		if p <= l {
			if o.flags&optTSNeedAddr != 0 {
				if p+3 > l {
					return 0, false
				}
				p += 4
			}
			if o.flags&optTSNeedTime != 0 {
				if p+3 > l {
					return 0, false
				}
				if d[3]&0xf != tsPrespec {
					clear(d[p-1 : p+3])
				} else if p+7 <= l && !s.unicastElsewhere(netip.AddrFrom4([4]byte(d[p-1:p+3]))) {
					clear(d[p+3 : p+7])
				}
			}
			if o.flags&optTSNeedAddr != 0 {
				clear(d[p-5 : p-1])
			}
		}
		n += l
	}
	for n&3 != 0 {
		out[n] = wire.IPOptEnd
		n++
	}
	return n, true
}
