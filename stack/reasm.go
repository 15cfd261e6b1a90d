package stack

import (
	"net/netip"
	"sync"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Reassembly (RFC 791, RFC 815). The data of a datagram is copied at its
// offset into one buffer that grows (by pool size class) to the highest
// end seen; what has arrived is a sorted list of runs (contiguous
// ranges), so a fragment costs a binary search and at most a move of the
// run list, whatever the order: no quadratic work. A fragment inside an
// existing run is a duplicate and ignored; any other overlap drops the
// whole datagram (RFC 5722's safe choice, Linux's for IPv4 since 2018).
//
// Limits: at most ReasmMaxRuns runs (holes + 1) per datagram; every
// datagram is charged its true size (buffer capacity plus a fixed
// overhead per fragment and per datagram) against ReasmMemLimit, and
// when that is reached the oldest datagrams are evicted (Linux instead
// refuses new fragments above ipfrag_high_thresh: docs/DECISIONS.md);
// each datagram times out after ReasmTimeout.

const (
	reasmHeadroom     = 60  // room for the first fragment's header (20 + 40 of options)
	reasmFragOverhead = 64  // charged per fragment kept
	reasmDgramCost    = 512 // charged per datagram in progress: its record, map entry, timer and header copies (measured ~480 bytes)
)

// reasmKey names a datagram: (src, dst, id, protocol) for IPv4 (RFC
// 791), (src, dst, id) for IPv6 (RFC 8200 4.5, protocol 0): the addresses
// keep the families apart.
type reasmKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type run struct{ start, end int }

type partial struct {
	key      reasmKey
	buf      []byte // pooled; data at reasmHeadroom+offset
	runs     []run
	frags    int
	total    int    // payload length, known once the last fragment arrived (-1 before)
	header   []byte // header of the first fragment (offset 0), for the result
	firstPkt []byte // first fragment's header + 8 bytes, for time exceeded
	mem      int
	timer    clock.Timer
	// Oldest-first list of datagrams in progress, for eviction.
	prev, next *partial
}

type reassembler struct {
	s       *Stack
	mu      sync.Mutex
	pending map[reasmKey]*partial
	oldest  *partial
	newest  *partial
	mem     int
	closed  bool
	ops     int // search steps and run moves, for the cost-shape test
}

func newReassembler(s *Stack) *reassembler {
	return &reassembler{s: s, pending: map[reasmKey]*partial{}}
}

func (r *reassembler) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for p := r.oldest; p != nil; p = r.oldest {
		r.removeLocked(p)
	}
}

// ReasmMemInUse is the bytes charged to partial datagrams.
func (s *Stack) ReasmMemInUse() int {
	s.reasm.mu.Lock()
	defer s.reasm.mu.Unlock()
	return s.reasm.mem
}

// add takes one fragment; when it completes a datagram, the whole packet
// is returned with a release function for its buffer.
func (r *reassembler) add(h wire.IPv4) (wire.IPv4, func()) {
	hl := h.HeaderLen()
	key := reasmKey{h.Src(), h.Dst(), uint32(h.ID()), h.Protocol()}
	out, buf := r.addFrag(key, h[:hl], h[hl:], h.FragOffset(), h.MF(), h[:min(len(h), hl+8)], wire.IPv4MaxLen-hl)
	if out == nil {
		return nil, nil
	}
	ip := wire.IPv4(out)
	ip.SetTotalLen(len(out))
	ip.SetFragment(0, ip.DF(), false)
	ip.FillChecksum()
	return ip, func() { putBuf(buf) }
}

// addFrag is the family-independent part: hdr is what goes in front of
// the reassembled data (kept from the first fragment), data the
// fragment's data at byte offset off, first what an ICMP time exceeded
// quotes, maxData the largest payload the family can carry. A complete
// datagram comes back as header+data in one pooled buffer (buf), the
// header fields for the caller to finish.
func (r *reassembler) addFrag(key reasmKey, hdr, data []byte, off int, more bool, first []byte, maxData int) (out, buf []byte) {
	s := r.s
	st := &s.stats.IP
	st.ReasmReqds.Add(1)
	end := off + len(data)
	if more && len(data)%8 != 0 || (len(data) == 0 && more) || len(hdr) > reasmHeadroom {
		st.ReasmBadFragment.Add(1)
		st.ReasmFails.Add(1)
		return nil, nil
	}
	if end > maxData {
		st.ReasmTooBig.Add(1)
		st.ReasmFails.Add(1)
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil
	}
	p := r.pending[key]
	if p == nil {
		if !r.reserveLocked(reasmDgramCost, nil) {
			return nil, nil
		}
		p = &partial{key: key, total: -1, mem: reasmDgramCost}
		r.mem += reasmDgramCost
		r.pending[key] = p
		r.linkLocked(p)
		p.timer = s.clock.AfterFunc(s.opts.ReasmTimeout, func() { r.expire(key, p) })
	}

	// Where does it go? i is the first run starting after off.
	lo, hi := 0, len(p.runs)
	for lo < hi {
		r.ops++
		m := (lo + hi) / 2
		if p.runs[m].start <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	if i > 0 && p.runs[i-1].end > off {
		if end <= p.runs[i-1].end {
			st.ReasmDuplicates.Add(1)
			return nil, nil
		}
		st.ReasmOverlaps.Add(1)
		r.dropLocked(p)
		return nil, nil
	}
	if i < len(p.runs) && p.runs[i].start < end {
		st.ReasmOverlaps.Add(1)
		r.dropLocked(p)
		return nil, nil
	}
	if !more {
		if p.total >= 0 && p.total != end || len(p.runs) > 0 && p.runs[len(p.runs)-1].end > end {
			st.ReasmBadFragment.Add(1)
			r.dropLocked(p)
			return nil, nil
		}
		p.total = end
	}
	if p.total >= 0 && end > p.total {
		st.ReasmBadFragment.Add(1)
		r.dropLocked(p)
		return nil, nil
	}
	joinPrev := i > 0 && p.runs[i-1].end == off
	joinNext := i < len(p.runs) && p.runs[i].start == end
	if !joinPrev && !joinNext && len(p.runs) >= s.opts.ReasmMaxRuns {
		st.ReasmTooManyHoles.Add(1)
		r.dropLocked(p)
		return nil, nil
	}

	// Charge the fragment and any growth of the buffer, then copy.
	need := reasmHeadroom + end
	grow := 0
	if need > cap(p.buf) {
		grow = bufClass(need) - cap(p.buf)
	}
	if !r.reserveLocked(reasmFragOverhead+grow, p) {
		return nil, nil
	}
	if grow > 0 {
		nb := getBuf(need)
		nb = nb[:cap(nb)]
		for _, ru := range p.runs {
			copy(nb[reasmHeadroom+ru.start:], p.buf[reasmHeadroom+ru.start:reasmHeadroom+ru.end])
		}
		if p.buf != nil {
			putBuf(p.buf)
		}
		p.buf = nb
	}
	copy(p.buf[reasmHeadroom+off:], data)
	p.frags++
	p.mem += reasmFragOverhead + grow
	r.mem += reasmFragOverhead + grow
	if off == 0 {
		p.header = append(p.header[:0], hdr...)
		p.firstPkt = append(p.firstPkt[:0], first...)
	}
	switch {
	case joinPrev && joinNext:
		p.runs[i-1].end = p.runs[i].end
		r.ops += len(p.runs) - i
		p.runs = append(p.runs[:i], p.runs[i+1:]...)
	case joinPrev:
		p.runs[i-1].end = end
	case joinNext:
		p.runs[i].start = off
	default:
		r.ops += len(p.runs) - i
		p.runs = append(p.runs, run{})
		copy(p.runs[i+1:], p.runs[i:])
		p.runs[i] = run{off, end}
	}
	if p.total < 0 || p.header == nil || len(p.runs) != 1 || p.runs[0].start != 0 || p.runs[0].end != p.total {
		return nil, nil
	}
	// Complete: the header goes in front of the data in the same buffer.
	hl0 := len(p.header)
	buf = p.buf
	p.buf = nil
	out = buf[reasmHeadroom-hl0 : reasmHeadroom+p.total]
	copy(out, p.header)
	r.removeLocked(p)
	st.ReasmOKs.Add(1)
	return out, buf
}

// bufClass is the capacity getBuf gives for n bytes.
func bufClass(n int) int {
	switch {
	case n <= bufSize0:
		return bufSize0
	case n <= bufSize1:
		return bufSize1
	case n <= bufSize2:
		return bufSize2
	case n <= bufSize3:
		return bufSize3
	}
	return n
}

// reserveLocked makes room for n more bytes under the memory limit by
// evicting the oldest datagrams other than keep; false (counted) when
// even that is not enough.
func (r *reassembler) reserveLocked(n int, keep *partial) bool {
	st := &r.s.stats.IP
	for r.mem+n > r.s.opts.ReasmMemLimit {
		victim := r.oldest
		if victim == keep {
			victim = victim.next
		}
		if victim == nil {
			st.ReasmMemoryDrops.Add(1)
			st.ReasmFails.Add(1)
			return false
		}
		st.ReasmEvictions.Add(1)
		r.dropLocked(victim)
	}
	return true
}

func (r *reassembler) linkLocked(p *partial) {
	p.prev = r.newest
	if r.newest != nil {
		r.newest.next = p
	} else {
		r.oldest = p
	}
	r.newest = p
}

func (r *reassembler) removeLocked(p *partial) {
	p.timer.Stop()
	delete(r.pending, p.key)
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		r.oldest = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		r.newest = p.prev
	}
	p.prev, p.next = nil, nil
	r.mem -= p.mem
	p.mem = 0
	if p.buf != nil {
		putBuf(p.buf)
		p.buf = nil
	}
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
	switch {
	case first == nil:
	case key.src.Is4():
		r.s.sendICMPError(wire.IPv4(first), wire.ICMPTimeExceeded, wire.ICMPReassemblyExceeded, 0)
	default:
		r.s.sendICMPv6Error(first, wire.ICMPv6TimeExceeded, wire.ICMPv6ReassemblyTimeout, 0)
	}
}
