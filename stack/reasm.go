package stack

import (
	"net/netip"
	"sort"
	"sync"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Reassembly (RFC 791, RFC 815). Fragments of one datagram are kept as
// copies sorted by offset. Exact duplicates are ignored; any other
// overlap drops the whole datagram (the safe choice of RFC 5722, also
// taken by Linux for IPv4 since 2018). Memory held by partial datagrams
// is bounded globally; each datagram times out after ReasmTimeout.

type reasmKey struct {
	src, dst netip.Addr
	id       uint16
	proto    uint8
}

type fragment struct {
	off  int
	data []byte
}

type partial struct {
	key      reasmKey
	frags    []fragment
	total    int    // payload length, known once the last fragment arrived (-1 before)
	header   []byte // header of the first fragment (offset 0), for the result and for ICMP
	firstPkt []byte // first fragment's header + 8 bytes, for time exceeded
	mem      int
	timer    clock.Timer
}

type reassembler struct {
	s       *Stack
	mu      sync.Mutex
	pending map[reasmKey]*partial
	mem     int
	closed  bool
}

func newReassembler(s *Stack) *reassembler {
	return &reassembler{s: s, pending: map[reasmKey]*partial{}}
}

func (r *reassembler) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k, p := range r.pending {
		p.timer.Stop()
		delete(r.pending, k)
	}
	r.mem = 0
}

// MemInUse is the bytes held by partial datagrams.
func (s *Stack) ReasmMemInUse() int {
	s.reasm.mu.Lock()
	defer s.reasm.mu.Unlock()
	return s.reasm.mem
}

// add takes one fragment; when it completes a datagram, the whole packet
// is returned with a release function for its buffer.
func (r *reassembler) add(h wire.IPv4) (wire.IPv4, func()) {
	s := r.s
	st := &s.stats.IP
	st.ReasmReqds.Add(1)
	hl := h.HeaderLen()
	data := h[hl:]
	off := h.FragOffset()
	more := h.MF()
	if more && len(data)%8 != 0 || (len(data) == 0 && more) {
		st.ReasmBadFragment.Add(1)
		st.ReasmFails.Add(1)
		return nil, nil
	}
	if off+len(data)+hl > wire.IPv4MaxLen {
		st.ReasmTooBig.Add(1)
		st.ReasmFails.Add(1)
		return nil, nil
	}
	key := reasmKey{h.Src(), h.Dst(), h.ID(), h.Protocol()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil
	}
	p := r.pending[key]
	cost := len(data) + 64
	if r.mem+cost > s.opts.ReasmMemLimit {
		st.ReasmMemoryDrops.Add(1)
		st.ReasmFails.Add(1)
		return nil, nil
	}
	if p == nil {
		p = &partial{key: key, total: -1}
		r.pending[key] = p
		p.timer = s.clock.AfterFunc(s.opts.ReasmTimeout, func() { r.expire(key, p) })
	}
	// Duplicate or overlap?
	for _, f := range p.frags {
		fe, e := f.off+len(f.data), off+len(data)
		if off < fe && f.off < e {
			if f.off == off && len(f.data) == len(data) {
				st.ReasmDuplicates.Add(1)
				return nil, nil
			}
			st.ReasmOverlaps.Add(1)
			r.dropLocked(p)
			return nil, nil
		}
	}
	if !more {
		end := off + len(data)
		if p.total >= 0 && p.total != end {
			st.ReasmBadFragment.Add(1)
			r.dropLocked(p)
			return nil, nil
		}
		p.total = end
	}
	if p.total >= 0 && off+len(data) > p.total {
		st.ReasmBadFragment.Add(1)
		r.dropLocked(p)
		return nil, nil
	}
	if off == 0 {
		p.header = append([]byte(nil), h[:hl]...)
		p.firstPkt = append([]byte(nil), h[:min(len(h), hl+8)]...)
	}
	p.frags = append(p.frags, fragment{off: off, data: append([]byte(nil), data...)})
	p.mem += cost
	r.mem += cost
	sort.Slice(p.frags, func(i, j int) bool { return p.frags[i].off < p.frags[j].off })
	if p.total < 0 || p.header == nil {
		return nil, nil
	}
	next := 0
	for _, f := range p.frags {
		if f.off != next {
			return nil, nil
		}
		next += len(f.data)
	}
	if next != p.total {
		return nil, nil
	}
	// Complete.
	hl0 := len(p.header)
	buf := getBuf(hl0 + p.total)
	copy(buf, p.header)
	o := hl0
	for _, f := range p.frags {
		o += copy(buf[o:], f.data)
	}
	out := wire.IPv4(buf)
	out.SetTotalLen(hl0 + p.total)
	out.SetFragment(0, out.DF(), false)
	out.FillChecksum()
	r.removeLocked(p)
	st.ReasmOKs.Add(1)
	return out, func() { putBuf(buf) }
}

func (r *reassembler) removeLocked(p *partial) {
	p.timer.Stop()
	delete(r.pending, p.key)
	r.mem -= p.mem
}

func (r *reassembler) dropLocked(p *partial) {
	r.removeLocked(p)
	r.s.stats.IP.ReasmFails.Add(1)
}

// expire frees a datagram that did not complete in time, sending ICMP
// time exceeded (code 1) when its first fragment had arrived (RFC 792).
func (r *reassembler) expire(key reasmKey, p *partial) {
	r.mu.Lock()
	if r.pending[key] != p {
		r.mu.Unlock()
		return
	}
	r.removeLocked(p)
	first := p.firstPkt
	r.mu.Unlock()
	st := &r.s.stats.IP
	st.ReasmTimeout.Add(1)
	st.ReasmFails.Add(1)
	if first != nil {
		r.s.sendICMPError(wire.IPv4(first), wire.ICMPTimeExceeded, wire.ICMPReassemblyExceeded, 0)
	}
}
