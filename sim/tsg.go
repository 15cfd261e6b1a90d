package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// ConnTrace is one TCP connection's data direction as seen in a capture,
// in sequence numbers relative to the sender's ISN: what tcptrace's
// time-sequence graph draws.
type ConnTrace struct {
	Src, Dst netip.AddrPort // data sender and receiver
	Start    time.Time
	Segs     []SegPoint
	Acks     []AckPoint
	Sacks    []SackPoint
	Retrans  int
	Bytes    int64 // highest sequence sent
}

// SegPoint is a data segment: [Seq, End) sent at T.
type SegPoint struct {
	T        time.Duration
	Seq, End int64
	Retrans  bool
}

// AckPoint is an ACK: the cumulative ACK and the right window edge.
type AckPoint struct {
	T        time.Duration
	Ack, Win int64
}

// SackPoint is one SACK block of an ACK.
type SackPoint struct {
	T           time.Duration
	Left, Right int64
}

type tuple struct{ a, b netip.AddrPort }

type tcpPkt struct {
	t        time.Time
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	win      uint16
	payload  int
	wscale   int // -1 none
	sacks    [][2]uint32
}

func parseTCPFrame(r PcapRecord) (tcpPkt, bool) {
	var p tcpPkt
	b := r.Data
	if len(b) < 14+20 {
		return p, false
	}
	ip := b[14:]
	var src, dst netip.Addr
	var ihl, tot int
	switch binary.BigEndian.Uint16(b[12:]) {
	case wire.EtherTypeIPv4:
		ihl = int(ip[0]&0xf) * 4
		if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+20 || ip[9] != wire.ProtoTCP {
			return p, false
		}
		// The payload length comes from the IP header: a capture with a
		// snap length keeps only the headers of a segment. A total length
		// too small to be true (0 in some offloaded captures) falls back to
		// what was captured.
		tot = int(binary.BigEndian.Uint16(ip[2:]))
		if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return p, false // non-first fragment
		}
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
	case wire.EtherTypeIPv6:
		// TCP right after the fixed header; a segment behind extension
		// headers is not drawn.
		ihl = wire.IPv6HeaderLen
		if ip[0]>>4 != 6 || len(ip) < ihl+20 || ip[6] != wire.ProtoTCP {
			return p, false
		}
		tot = ihl + int(binary.BigEndian.Uint16(ip[4:]))
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	default:
		return p, false
	}
	if tot < ihl+20 {
		tot = len(ip)
	}
	captured := min(tot, len(ip))
	t := ip[ihl:captured]
	doff := int(t[12]>>4) * 4
	if doff < 20 || doff > len(t) {
		return p, false
	}
	p.t = r.T
	p.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:]))
	p.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:]))
	p.seq = binary.BigEndian.Uint32(t[4:])
	p.ack = binary.BigEndian.Uint32(t[8:])
	p.flags = t[13]
	p.win = binary.BigEndian.Uint16(t[14:])
	p.payload = tot - ihl - doff
	p.wscale = -1
	opts := t[20:doff]
	for len(opts) > 0 {
		k := opts[0]
		if k == 0 {
			break
		}
		if k == 1 {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
			break
		}
		o := opts[:opts[1]]
		switch {
		case k == 3 && len(o) == 3:
			p.wscale = int(o[2])
		case k == 5:
			for i := 2; i+8 <= len(o); i += 8 {
				p.sacks = append(p.sacks, [2]uint32{binary.BigEndian.Uint32(o[i:]), binary.BigEndian.Uint32(o[i+4:])})
			}
		}
		opts = opts[len(o):]
	}
	return p, true
}

// ConnSummary lists a connection found in a capture. Bytes is the
// sequence space the data covered, so a retransmission does not count
// twice; Retrans counts the segments that resent earlier data.
type ConnSummary struct {
	Src, Dst netip.AddrPort
	Bytes    int64
	Segments int
	Retrans  int
}

func (c ConnSummary) String() string {
	s := fmt.Sprintf("%v -> %v  %d bytes in %d segments", c.Src, c.Dst, c.Bytes, c.Segments)
	if c.Retrans > 0 {
		s += fmt.Sprintf(" (%d retransmitted)", c.Retrans)
	}
	return s
}

// connSpan follows one direction's sequence numbers, unwrapped to 64
// bits so a transfer past 4 GiB keeps counting.
type connSpan struct {
	sum     *ConnSummary
	lastSeq uint32
	pos, lo int64 // pos: unwrapped lastSeq; lo: the first data byte
	hi      int64 // the end of the highest data seen
	seen    bool
}

// Connections lists the TCP data directions in a capture, largest first.
func Connections(recs []PcapRecord) []ConnSummary {
	m := map[tuple]*connSpan{}
	var order []tuple
	for _, r := range recs {
		p, ok := parseTCPFrame(r)
		if !ok {
			continue
		}
		k := tuple{p.src, p.dst}
		c := m[k]
		if c == nil {
			c = &connSpan{sum: &ConnSummary{Src: p.src, Dst: p.dst}}
			m[k] = c
			order = append(order, k)
		}
		if p.payload == 0 {
			continue
		}
		seq := p.seq
		if p.flags&wire.TCPFlagSYN != 0 {
			seq++ // data on a SYN starts after it
		}
		if !c.seen {
			c.seen, c.lastSeq, c.pos, c.lo, c.hi = true, seq, 0, 0, 0
		}
		c.pos += int64(int32(seq - c.lastSeq))
		c.lastSeq = seq
		s, e := c.pos, c.pos+int64(p.payload)
		if s < c.hi {
			c.sum.Retrans++
		}
		c.lo, c.hi = min(c.lo, s), max(c.hi, e)
		c.sum.Segments++
	}
	var out []ConnSummary
	for _, k := range order {
		c := m[k]
		if c.seen {
			c.sum.Bytes = c.hi - c.lo
			out = append(out, *c.sum)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out
}

// TraceConn extracts the time-sequence data of src→dst (its data
// segments, and the ACKs, windows and SACK blocks dst→src).
func TraceConn(recs []PcapRecord, src, dst netip.AddrPort) *ConnTrace {
	ct := &ConnTrace{Src: src, Dst: dst}
	var isn uint32
	haveISN := false
	sndScale, rcvScale := -1, -1
	var hi int64
	var start time.Time
	for _, r := range recs {
		p, ok := parseTCPFrame(r)
		if !ok {
			continue
		}
		fwd := p.src == src && p.dst == dst
		rev := p.src == dst && p.dst == src
		if !fwd && !rev {
			continue
		}
		if start.IsZero() {
			start = p.t
			ct.Start = start
		}
		t := p.t.Sub(start)
		if fwd {
			if p.flags&wire.TCPFlagSYN != 0 {
				isn, haveISN = p.seq, true
				sndScale = p.wscale
			}
			if !haveISN {
				// Capture started mid-connection: the first segment is the origin.
				isn, haveISN = p.seq-1, true
			}
			if p.payload == 0 && p.flags&wire.TCPFlagFIN == 0 {
				continue
			}
			s := int64(p.seq - isn)
			e := s + int64(p.payload)
			if p.flags&wire.TCPFlagFIN != 0 {
				e++
			}
			re := s < hi
			if re {
				ct.Retrans++
			}
			hi = max(hi, e)
			ct.Segs = append(ct.Segs, SegPoint{T: t, Seq: s, End: e, Retrans: re})
			continue
		}
		if p.flags&wire.TCPFlagSYN != 0 {
			rcvScale = p.wscale
			continue
		}
		if !haveISN || p.flags&wire.TCPFlagACK == 0 {
			continue
		}
		ack := int64(p.ack - isn)
		sh := 0
		if sndScale >= 0 && rcvScale >= 0 {
			sh = rcvScale
		}
		ct.Acks = append(ct.Acks, AckPoint{T: t, Ack: ack, Win: ack + int64(p.win)<<sh})
		for _, sb := range p.sacks {
			ct.Sacks = append(ct.Sacks, SackPoint{T: t, Left: int64(sb[0] - isn), Right: int64(sb[1] - isn)})
		}
	}
	ct.Bytes = hi
	return ct
}

// Window keeps what happened between from and to (to 0: the end).
func (ct *ConnTrace) Window(from, to time.Duration) *ConnTrace {
	in := func(t time.Duration) bool { return t >= from && (to <= 0 || t <= to) }
	w := &ConnTrace{Src: ct.Src, Dst: ct.Dst, Start: ct.Start}
	for _, s := range ct.Segs {
		if in(s.T) {
			w.Segs = append(w.Segs, s)
			if s.Retrans {
				w.Retrans++
			}
			w.Bytes = max(w.Bytes, s.End)
		}
	}
	for _, a := range ct.Acks {
		if in(a.T) {
			w.Acks = append(w.Acks, a)
		}
	}
	for _, s := range ct.Sacks {
		if in(s.T) {
			w.Sacks = append(w.Sacks, s)
		}
	}
	return w
}

// RTTSample is one round-trip measurement taken from a capture.
type RTTSample struct {
	T   time.Duration
	RTT time.Duration
}

// RTTSamples pairs each data segment that was sent once with the first
// ACK that acknowledges exactly its end (Karn: retransmitted ranges give
// no sample). From a
// capture at the sender this is the RTT the sender sees.
func (ct *ConnTrace) RTTSamples() []RTTSample {
	// Merged ranges that were ever retransmitted (a retransmission may
	// cut the bytes differently from the original segments).
	var rs [][2]int64
	var rtimes []time.Duration // in capture order, so sorted
	for _, s := range ct.Segs {
		if s.Retrans {
			rs = append(rs, [2]int64{s.Seq, s.End})
			rtimes = append(rtimes, s.T)
		}
	}
	// An ACK that came after a retransmission may have been released by
	// the repair of a hole below the segment: no sample either.
	repairBetween := func(a, b time.Duration) bool {
		i := sort.Search(len(rtimes), func(i int) bool { return rtimes[i] > a })
		return i < len(rtimes) && rtimes[i] < b
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
	var merged [][2]int64
	for _, r := range rs {
		if k := len(merged); k > 0 && r[0] <= merged[k-1][1] {
			merged[k-1][1] = max(merged[k-1][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	retransmitted := func(a, b int64) bool {
		i := sort.Search(len(merged), func(i int) bool { return merged[i][1] > a })
		return i < len(merged) && merged[i][0] < b
	}
	var out []RTTSample
	ai := 0
	for _, s := range ct.Segs {
		if s.Retrans || retransmitted(s.Seq, s.End) {
			continue
		}
		for ai < len(ct.Acks) && (ct.Acks[ai].T < s.T || ct.Acks[ai].Ack < s.End) {
			if ct.Acks[ai].Ack >= s.End && ct.Acks[ai].T >= s.T {
				break
			}
			ai++
		}
		if ai == len(ct.Acks) {
			break
		}
		// Only an ACK of exactly this segment's end: a cumulative jump
		// after a hole was repaired measures the repair, not the path.
		if ct.Acks[ai].Ack == s.End && !repairBetween(s.T, ct.Acks[ai].T) {
			out = append(out, RTTSample{T: ct.Acks[ai].T, RTT: ct.Acks[ai].T - s.T})
		}
	}
	return out
}

// Throughput is the acknowledged data rate in bins of width bin.
func (ct *ConnTrace) Throughput(bin time.Duration) (ts []time.Duration, bps []float64) {
	if len(ct.Acks) == 0 || bin <= 0 {
		return nil, nil
	}
	var prevAck int64
	start := ct.Acks[0].T
	cur := start
	var acked int64
	flush := func(upto time.Duration) {
		for cur+bin <= upto {
			ts = append(ts, cur+bin)
			bps = append(bps, float64(acked)*8/bin.Seconds())
			acked = 0
			cur += bin
		}
	}
	for _, a := range ct.Acks {
		flush(a.T)
		if a.Ack > prevAck {
			if prevAck > 0 {
				acked += a.Ack - prevAck
			}
			prevAck = a.Ack
		}
	}
	flush(ct.Acks[len(ct.Acks)-1].T + bin)
	return ts, bps
}
