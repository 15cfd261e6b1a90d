package stack

import (
	"encoding/binary"
	"sync"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Receive offload. Before the frames of one receive batch reach IP,
// consecutive in-order segments of one TCP flow are coalesced into one
// larger segment, so TCP does its per-segment work once for many (as
// Linux's GRO, tcp_gro_receive, does). Segments merge only when nothing
// TCP looks at differs: same addresses, ports, ACK number, window, TOS,
// TTL, DF and byte-identical options (timestamps included); only ACK,
// and PSH on the last, may be set; the sequence numbers must continue
// and no segment may be longer than the first (which sets the segment
// size); a shorter or PSH segment ends the merge. Each segment's checksum
// is verified as it is merged, so the coalesced packet needs no second
// pass; a segment that fails passes on alone and is dropped and counted
// by the normal path. Super-segments from a link that carries them
// (link.MetaReceiver) are taken whole.

const (
	groSlots  = 8 // flows coalesced at once per batch (Linux's MAX_GRO_SKBS)
	groBufLen = wire.EthernetHeaderLen + wire.IPv4MaxLen
	// groBufs bounds the coalesced packets of one batch (each holds its
	// own buffer until the batch is delivered); beyond it segments pass
	// on as they came.
	groBufs = 64
)

var metaVecs = sync.Pool{New: func() any { return new([1]link.Meta) }}

type groSlot struct {
	used    bool
	first   []byte // the first frame, still in the link's buffer
	buf     []byte // the coalesced frame once a second segment joins
	segs    int
	ipOff   int
	hdrLen  int // ipOff + IP + TCP header
	key     [12]byte
	nextSeq uint32
	gso     int
	plen    int    // payload bytes coalesced
	sum     uint64 // their checksum sum, aligned to the merged payload
	psh     bool
}

// groState is a NIC's coalescing state; receive goroutine only.
type groState struct {
	slots   [groSlots]groSlot
	bufs    [][]byte // coalescing buffers; bufs[:used] hold this batch's packets
	used    int
	out     [][]byte
	valid   []bool
	trusted bool // the batch's checksums need no verification
	active  bool // out/valid describe the current batch
}

// groBatch coalesces frames; the result is valid during the delivery of
// this batch. groValid(i) tells whether frame i's transport checksum is
// already known good.
func (n *NIC) groBatch(rx *rxState, frames [][]byte) [][]byte {
	g := &rx.gro
	g.active = false
	if n.loopback || len(frames) < 2 {
		return frames
	}
	g.active = true
	g.used = 0
	g.out = g.out[:0]
	g.valid = g.valid[:0]
	for _, f := range frames {
		n.groOne(rx, f)
	}
	for i := range g.slots {
		n.groFlush(rx, i)
	}
	return g.out
}

func (n *NIC) groValid(rx *rxState, i int) bool {
	g := &rx.gro
	if !g.active {
		return g.trusted
	}
	return g.valid[i]
}

func (g *groState) emit(f []byte, valid bool) {
	g.out = append(g.out, f)
	g.valid = append(g.valid, valid)
}

// groParse picks out a segment that may coalesce: IPv4 without options
// or fragmentation, a valid IP header, TCP with only ACK (and PSH) set
// and a payload. It returns the IP offset and header lengths.
func (n *NIC) groParse(f []byte) (ipOff, thl int, ok bool) {
	if n.ethernet {
		if len(f) < wire.EthernetHeaderLen || wire.Ethernet(f).Dst() != n.mac || wire.Ethernet(f).EtherType() != wire.EtherTypeIPv4 {
			return 0, 0, false
		}
		ipOff = wire.EthernetHeaderLen
	}
	ip := wire.IPv4(f[ipOff:])
	if len(ip) < wire.IPv4MinHeaderLen+wire.TCPMinHeaderLen || ip[0] != 0x45 || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
		return 0, 0, false
	}
	tl := ip.TotalLen()
	if tl > len(ip) || tl < wire.IPv4MinHeaderLen+wire.TCPMinHeaderLen || !ip.VerifyChecksum() {
		return 0, 0, false
	}
	t := wire.TCP(ip[wire.IPv4MinHeaderLen:tl])
	thl = t.DataOffset()
	if thl < wire.TCPMinHeaderLen || thl >= len(t) || t.Flags()&^wire.TCPFlagPSH != wire.TCPFlagACK {
		return 0, 0, false
	}
	return ipOff, thl, true
}

func (n *NIC) groOne(rx *rxState, f []byte) {
	g := &rx.gro
	ipOff, thl, ok := n.groParse(f)
	if !ok {
		// Not coalescable: flush the slot of its flow first so the flow's
		// order holds.
		if i := n.groFind(rx, f); i >= 0 {
			n.groFlush(rx, i)
		}
		g.emit(f, g.trusted)
		return
	}
	ip := wire.IPv4(f[ipOff:])
	tl := ip.TotalLen()
	t := wire.TCP(ip[wire.IPv4MinHeaderLen:tl])
	payload := t[thl:]
	var psum uint64
	if !g.trusted {
		psum = wire.Sum(payload, 0)
		hs := wire.Sum(t[:thl], ip.PseudoSum(len(t)))
		if wire.Fold(wire.Add(hs, psum)) != 0xffff {
			// A bad checksum: the normal path drops and counts it.
			if i := n.groFind(rx, f); i >= 0 {
				n.groFlush(rx, i)
			}
			g.emit(f, false)
			return
		}
	}
	if i := n.groFind(rx, f); i >= 0 {
		s := &g.slots[i]
		if n.groMatch(s, f, ipOff, thl, len(payload)) && (s.segs > 1 || g.used < groBufs) {
			n.groAppend(rx, i, payload, psum, t.Flags()&wire.TCPFlagPSH != 0)
			if len(payload) < s.gso || s.psh {
				n.groFlush(rx, i) // the flow's burst ended here
			}
			return
		}
		n.groFlush(rx, i)
	}
	// Open a slot for the flow (the oldest goes out when all are busy).
	free := -1
	for i := range g.slots {
		if !g.slots[i].used {
			free = i
			break
		}
	}
	if free < 0 {
		n.groFlush(rx, 0)
		free = 0
	}
	s := &g.slots[free]
	*s = groSlot{used: true, first: f, segs: 1, ipOff: ipOff, hdrLen: ipOff + wire.IPv4MinHeaderLen + thl,
		nextSeq: t.Seq() + uint32(len(payload)), gso: len(payload), plen: len(payload), sum: psum,
		psh: t.Flags()&wire.TCPFlagPSH != 0}
	copy(s.key[:8], ip[12:20])
	copy(s.key[8:], t[:4])
	if s.psh {
		n.groFlush(rx, free)
	}
}

// groFind returns the open slot of f's flow, or -1.
func (n *NIC) groFind(rx *rxState, f []byte) int {
	g := &rx.gro
	ipOff := 0
	if n.ethernet {
		ipOff = wire.EthernetHeaderLen
	}
	if len(f) < ipOff+wire.IPv4MinHeaderLen+4 || f[ipOff]>>4 != 4 {
		return -1
	}
	ihl := int(f[ipOff]&0x0f) * 4
	if len(f) < ipOff+ihl+4 {
		return -1
	}
	for i := range g.slots {
		s := &g.slots[i]
		if s.used && string(s.key[:8]) == string(f[ipOff+12:ipOff+20]) && string(s.key[8:]) == string(f[ipOff+ihl:ipOff+ihl+4]) {
			return i
		}
	}
	return -1
}

// groMatch reports whether segment f continues slot s.
func (n *NIC) groMatch(s *groSlot, f []byte, ipOff, thl, plen int) bool {
	if s.psh || s.hdrLen != ipOff+wire.IPv4MinHeaderLen+thl || plen > s.gso || plen == 0 ||
		s.hdrLen+s.plen+plen > groBufLen || s.hdrLen-ipOff+s.plen+plen > wire.IPv4MaxLen {
		return false
	}
	a := s.first[ipOff:]
	b := f[ipOff:]
	// TOS, DF/frag word, TTL, protocol.
	if a[1] != b[1] || a[6] != b[6] || a[8] != b[8] {
		return false
	}
	ta, tb := a[wire.IPv4MinHeaderLen:], b[wire.IPv4MinHeaderLen:]
	if binary.BigEndian.Uint32(tb[4:8]) != s.nextSeq {
		return false
	}
	// ACK number, data offset, window, urgent pointer, then the options
	// byte for byte; the flags may differ only in PSH.
	if string(ta[8:13]) != string(tb[8:13]) || string(ta[14:16]) != string(tb[14:16]) || string(ta[18:thl]) != string(tb[18:thl]) {
		return false
	}
	return (ta[13]^tb[13])&^wire.TCPFlagPSH == 0
}

func (n *NIC) groAppend(rx *rxState, i int, payload []byte, psum uint64, psh bool) {
	g := &rx.gro
	s := &g.slots[i]
	if s.segs == 1 {
		// A buffer of its own: packets emitted earlier in this batch
		// still point into theirs until the batch is delivered.
		if g.used == len(g.bufs) {
			g.bufs = append(g.bufs, make([]byte, groBufLen))
		}
		s.buf = g.bufs[g.used][:s.hdrLen+s.plen]
		g.used++
		copy(s.buf, s.first[:s.hdrLen+s.plen])
	}
	if !g.trusted {
		if s.plen&1 != 0 {
			// The payload lands at an odd offset: its 16-bit sum swaps bytes.
			v := wire.Fold(psum)
			psum = uint64(v<<8 | v>>8)
		}
		s.sum = wire.Add(s.sum, psum)
	}
	s.buf = append(s.buf, payload...)
	s.plen += len(payload)
	s.nextSeq += uint32(len(payload))
	s.segs++
	s.psh = s.psh || psh
}

// groFlush emits slot i: the first frame as it came, or the coalesced
// packet with its lengths, flags and checksums made whole.
func (n *NIC) groFlush(rx *rxState, i int) {
	g := &rx.gro
	s := &g.slots[i]
	if !s.used {
		return
	}
	s.used = false
	if s.segs == 1 {
		g.emit(s.first, true)
		s.first = nil
		return
	}
	ip := wire.IPv4(s.buf[s.ipOff:])
	ip.SetTotalLen(len(ip))
	ip.FillChecksum()
	t := wire.TCP(ip[wire.IPv4MinHeaderLen:])
	if s.psh {
		t.SetFlags(t.Flags() | wire.TCPFlagPSH)
	}
	if !g.trusted {
		t.SetChecksum(0)
		hs := wire.Sum(t[:s.hdrLen-s.ipOff-wire.IPv4MinHeaderLen], ip.PseudoSum(len(t)))
		t.SetChecksum(^wire.Fold(wire.Add(hs, s.sum)))
	}
	n.stack.stats.Link.InGROFrames.Add(1)
	n.stack.stats.Link.InGROSegs.Add(uint64(s.segs))
	g.emit(s.buf, true)
	s.first, s.buf = nil, nil
}

// DeliverFramesMeta takes frames with their offload state (in-memory
// links, TAP with virtio-net headers). A super-segment or a trusted
// checksum for this host is taken whole; one to be forwarded, or a
// partial checksum of another protocol, is finished in software first
// so the rest of the stack sees plain packets.
func (n *NIC) DeliverFramesMeta(frames [][]byte, metas []link.Meta) {
	n.deliverFramesMeta(&n.rx, frames, metas)
}

func (n *NIC) deliverFramesMeta(rx *rxState, frames [][]byte, metas []link.Meta) {
	start := 0
	runValid := false
	flush := func(end int) {
		if start < end {
			rx.gro.trusted = runValid
			n.deliverFrames(rx, frames[start:end])
			rx.gro.trusted = false
		}
	}
	for i, f := range frames {
		m := metas[i]
		valid, plain := false, true
		if m != (link.Meta{}) {
			valid, plain = n.offloadClass(f, m)
		}
		if m.GSOSize > 0 && plain {
			n.stack.stats.Link.InGSOFrames.Add(1)
		}
		if !plain {
			flush(i)
			start = i + 1
			n.finishInSoftware(rx, f, m)
			continue
		}
		if valid != runValid && start < i {
			flush(i)
			start = i
		}
		if start == i {
			runValid = valid
		}
	}
	flush(len(frames))
}

// offloadClass decides how a frame with offload state goes in: whole
// with a trusted checksum (valid), whole to be verified, or (not plain)
// finished in software.
func (n *NIC) offloadClass(f []byte, m link.Meta) (valid, plain bool) {
	off := int(m.NetOff)
	if len(f) < off+wire.IPv4MinHeaderLen || f[off]>>4 != 4 {
		return false, m.GSOType == link.GSONone && !m.CsumPartial
	}
	ip := wire.IPv4(f[off:])
	local := n.loopback || n.stack.IsLocal(ip.Dst())
	tcp := ip.Protocol() == wire.ProtoTCP && !ip.IsFragment()
	switch {
	case !local:
		return false, m.GSOType == link.GSONone && !m.CsumPartial
	case m.GSOType != link.GSONone && (m.GSOType != link.GSOTCPv4 || !tcp):
		return false, false
	case tcp:
		return m.CsumPartial || m.CsumValid, true
	case m.CsumPartial:
		return false, false
	}
	return false, true
}

func (n *NIC) finishInSoftware(rx *rxState, f []byte, m link.Meta) {
	if rx.seg == nil {
		rx.seg = make([]byte, groBufLen+64)
	}
	one := frameVecs.Get().(*[1][]byte)
	defer frameVecs.Put(one)
	err := link.FinishFrame(f, m, rx.seg, func(b []byte) error {
		one[0] = b
		n.deliverFrames(rx, one[:])
		one[0] = nil
		return nil
	})
	if err != nil {
		n.stack.stats.Link.InBadOffload.Add(1)
	}
}
