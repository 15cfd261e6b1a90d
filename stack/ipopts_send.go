package stack

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// IP_OPTIONS: the IPv4 options every datagram (or TCP segment) the
// socket sends carries, compiled when set as Linux's ip_options_compile
// does for a socket (no packet): padded with End to a multiple of 4,
// bytes after End made End, Record Route and Timestamp pointers moved
// past the slots the send fills (this host's address, the time), a
// source route's first hop taken out as the datagram's destination
// (the final one goes in the route's last slot when sending).

// SendIPOpts is a compiled IP_OPTIONS value; never changed once made.
type SendIPOpts struct {
	b           [wire.IPv4MaxOptionsLen]byte
	n           int
	rr, ts, srr int // offsets in b; -1: none
	flags       uint8
	faddr       netip.Addr // a source route's first hop
}

// CompileIPOptions checks and compiles an IP_OPTIONS value: EINVAL
// where Linux's ip_options_compile refuses it (more than 40 bytes, a bad
// length or pointer, a repeated option, a full Timestamp whose overflow
// counter would wrap, a source route whose pointer is not 4 or whose
// length is not 3 plus whole addresses, a CIPSO option: no DOI is
// configured). Options the stack does not know pass, as Linux lets a
// privileged socket send them. nil, nil for no options.
func (s *Stack) CompileIPOptions(opt []byte) (*SendIPOpts, error) {
	if len(opt) > wire.IPv4MaxOptionsLen {
		return nil, syscall.EINVAL
	}
	if len(opt) == 0 {
		return nil, nil
	}
	o := &SendIPOpts{rr: -1, ts: -1, srr: -1}
	o.n = (len(opt) + 3) &^ 3
	copy(o.b[:], opt)
	b := o.b[:o.n]
	for i := 0; i < len(b); {
		t := b[i]
		if t == wire.IPOptEnd {
			clear(b[i:])
			break
		}
		if t == wire.IPOptNOP {
			i++
			continue
		}
		if len(b)-i < 2 {
			return nil, syscall.EINVAL
		}
		l := int(b[i+1])
		if l < 2 || l > len(b)-i {
			return nil, syscall.EINVAL
		}
		d := b[i : i+l]
		switch t {
		case ipOptLSRR, ipOptSSRR:
			if l < 3 || d[2] < 4 || o.srr >= 0 {
				return nil, syscall.EINVAL
			}
			if d[2] != 4 || l < 7 || (l-3)&3 != 0 {
				return nil, syscall.EINVAL
			}
			o.faddr = netip.AddrFrom4([4]byte(d[3:7]))
			copy(d[3:], d[7:]) // the first hop leaves the list
			o.srr = i
		case ipOptRR:
			if o.rr >= 0 || l < 3 || d[2] < 4 {
				return nil, syscall.EINVAL
			}
			if p := int(d[2]); p <= l {
				if p+3 > l {
					return nil, syscall.EINVAL
				}
				d[2] += 4
				o.flags |= optRRNeedAddr
			}
			o.rr = i
		case ipOptTS:
			if o.ts >= 0 || l < 4 || d[2] < 5 {
				return nil, syscall.EINVAL
			}
			p, flag := int(d[2]), d[3]&0xf
			if p <= l {
				if p+3 > l {
					return nil, syscall.EINVAL
				}
				switch flag {
				case tsOnly:
					o.flags |= optTSNeedTime
					d[2] += 4
				case tsAndAddr:
					if p+7 > l {
						return nil, syscall.EINVAL
					}
					o.flags |= optTSNeedAddr | optTSNeedTime
					d[2] += 8
				case tsPrespec:
					if p+7 > l {
						return nil, syscall.EINVAL
					}
					if !s.unicastElsewhere(netip.AddrFrom4([4]byte(d[p-1 : p+3]))) {
						o.flags |= optTSNeedTime
						d[2] += 8
					}
				}
			} else if flag != tsPrespec && d[3]>>4 == tsOverflow {
				return nil, syscall.EINVAL
			}
			o.ts = i
		case ipOptRA:
			if l < 4 {
				return nil, syscall.EINVAL
			}
		case ipOptCIPSO:
			return nil, syscall.EINVAL
		}
		i += l
	}
	return o, nil
}

// ipOptCIPSO is the CIPSO option's type (RFC draft, Linux's IPOPT_CIPSO).
const ipOptCIPSO = 134

// Len is the options' length in the header.
func (o *SendIPOpts) Len() int {
	if o == nil {
		return 0
	}
	return o.n
}

// Value is what getsockopt(IP_OPTIONS) reads: the options with what
// compiling did undone (Linux's ip_options_undo: the first hop back in
// the source route, the slots a send fills emptied).
func (o *SendIPOpts) Value() []byte {
	if o == nil {
		return nil
	}
	v := make([]byte, o.n)
	copy(v, o.b[:o.n])
	if o.srr >= 0 {
		d := v[o.srr : o.srr+int(v[o.srr+1])]
		copy(d[7:], d[3:len(d)-4])
		a := o.faddr.As4()
		copy(d[3:], a[:])
	}
	if o.flags&optRRNeedAddr != 0 {
		d := v[o.rr:]
		d[2] -= 4
		clear(d[d[2]-1 : d[2]+3])
	}
	if o.ts >= 0 {
		d := v[o.ts:]
		if o.flags&optTSNeedTime != 0 {
			d[2] -= 4
			clear(d[d[2]-1 : d[2]+3])
			if d[3]&0xf == tsPrespec {
				d[2] -= 4
			}
		}
		if o.flags&optTSNeedAddr != 0 {
			d[2] -= 4
			clear(d[d[2]-1 : d[2]+3])
		}
	}
	return v
}

// FirstHop is a source route's first hop: where the datagram goes.
func (o *SendIPOpts) FirstHop() (netip.Addr, bool) {
	if o == nil || o.srr < 0 {
		return netip.Addr{}, false
	}
	return o.faddr, true
}

// NeedSrc reports whether a send writes its source address in.
func (o *SendIPOpts) NeedSrc() bool {
	return o != nil && o.flags&(optRRNeedAddr|optTSNeedAddr) != 0
}

// build writes into out the options of one datagram from src to its
// final destination dst (Linux's ip_options_build for a datagram's first
// fragment) and returns them.
func (o *SendIPOpts) build(out []byte, src, dst netip.Addr, now time.Time) []byte {
	b := out[:o.n]
	copy(b, o.b[:o.n])
	if o.srr >= 0 {
		a := dst.As4()
		copy(b[o.srr+int(b[o.srr+1])-4:], a[:])
	}
	s4 := src.Unmap()
	if o.flags&optRRNeedAddr != 0 && s4.Is4() {
		a := s4.As4()
		copy(b[o.rr+int(b[o.rr+2])-5:], a[:])
	}
	if o.flags&optTSNeedAddr != 0 && s4.Is4() {
		a := s4.As4()
		copy(b[o.ts+int(b[o.ts+2])-9:], a[:])
	}
	if o.flags&optTSNeedTime != 0 {
		putMsTime(b[o.ts+int(b[o.ts+2])-5:], now)
	}
	return b
}

// SetIPOptions sets IP_OPTIONS (nil: none).
func (e *DgramEndpoint) SetIPOptions(o *SendIPOpts) {
	e.mu.Lock()
	e.ipOpts = o
	e.mu.Unlock()
}

// IPOptions reports IP_OPTIONS (nil: none).
func (e *DgramEndpoint) IPOptions() *SendIPOpts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ipOpts
}
