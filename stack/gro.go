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
// TTL, DF (over IPv6: traffic class, flow label, hop limit, and no
// extension header) and byte-identical options (timestamps included);
// only ACK,
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
	iphl    int // IP header bytes: 20 (IPv4 without options) or 40 (IPv6)
	hdrLen  int // ipOff + IP + TCP header
	key     [groKeyLen]byte
	klen    int // 12 (IPv4) or 36 (IPv6)
	nextSeq uint32
	gso     int
	plen    int    // payload bytes coalesced
	sum     uint64 // their checksum sum, aligned to the merged payload
	psh     bool
}

// groKeyLen holds a flow key: both addresses, then both ports.
const groKeyLen = 2*16 + 4

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
func (n *NIC) groBatchOn(rx *rxState, frames [][]byte) [][]byte {
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

func (n *NIC) groValidOn(rx *rxState, i int) bool {
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

// groPkt is a segment that may coalesce, as groParse found it.
type groPkt struct {
	ipOff, iphl, thl int
	ip               []byte // the IP packet, cut to its length
	v6               bool
}

// pseudo is the segment's pseudo-header sum for a TCP length of n.
func (g *groPkt) pseudo(n int) uint64 {
	if g.v6 {
		return wire.PseudoHeaderSum6([16]byte(g.ip[8:24]), [16]byte(g.ip[24:40]), wire.ProtoTCP, n)
	}
	return wire.IPv4(g.ip).PseudoSum(n)
}

// groParse picks out a segment that may coalesce: IPv4 without options
// or fragmentation and with a valid header, or IPv6 with TCP right after
// the fixed header; TCP with only ACK (and PSH) set and a payload.
func (n *NIC) groParse(f []byte) (g groPkt, ok bool) {
	v6 := false
	if n.ethernet {
		if len(f) < wire.EthernetHeaderLen || wire.Ethernet(f).Dst() != n.mac {
			return g, false
		}
		switch wire.Ethernet(f).EtherType() {
		case wire.EtherTypeIPv4:
		case wire.EtherTypeIPv6:
			v6 = true
		default:
			return g, false
		}
		g.ipOff = wire.EthernetHeaderLen
	} else {
		v6 = len(f) > 0 && f[0]>>4 == 6
	}
	ip := f[g.ipOff:]
	if v6 {
		if len(ip) < wire.IPv6HeaderLen+wire.TCPMinHeaderLen || ip[0]>>4 != 6 || ip[6] != wire.ProtoTCP {
			return g, false
		}
		pl := int(binary.BigEndian.Uint16(ip[4:6]))
		if pl < wire.TCPMinHeaderLen || wire.IPv6HeaderLen+pl > len(ip) {
			return g, false
		}
		g.ip, g.iphl, g.v6 = ip[:wire.IPv6HeaderLen+pl], wire.IPv6HeaderLen, true
	} else {
		ip4 := wire.IPv4(ip)
		if len(ip4) < wire.IPv4MinHeaderLen+wire.TCPMinHeaderLen || ip4[0] != 0x45 || ip4.Protocol() != wire.ProtoTCP || ip4.IsFragment() {
			return g, false
		}
		tl := ip4.TotalLen()
		if tl > len(ip4) || tl < wire.IPv4MinHeaderLen+wire.TCPMinHeaderLen || !ip4.VerifyChecksum() {
			return g, false
		}
		g.ip, g.iphl = ip[:tl], wire.IPv4MinHeaderLen
	}
	t := wire.TCP(g.ip[g.iphl:])
	g.thl = t.DataOffset()
	if g.thl < wire.TCPMinHeaderLen || g.thl >= len(t) || t.Flags()&^wire.TCPFlagPSH != wire.TCPFlagACK {
		return g, false
	}
	return g, true
}

func (n *NIC) groOne(rx *rxState, f []byte) {
	g := &rx.gro
	sg, ok := n.groParse(f)
	if !ok {
		// Not coalescable: flush the slots of its flow first so the
		// flow's order holds.
		n.groFlushFlow(rx, f)
		g.emit(f, g.trusted)
		return
	}
	t := wire.TCP(sg.ip[sg.iphl:])
	payload := t[sg.thl:]
	var psum uint64
	if !g.trusted {
		psum = wire.Sum(payload, 0)
		hs := wire.Sum(t[:sg.thl], sg.pseudo(len(t)))
		if wire.Fold(wire.Add(hs, psum)) != 0xffff {
			// A bad checksum: the normal path drops and counts it.
			n.groFlushFlow(rx, f)
			g.emit(f, false)
			return
		}
	}
	var key [groKeyLen]byte
	klen := groKey(&key, sg.ip, sg.iphl, sg.v6)
	if i := g.find(&key, klen, klen); i >= 0 {
		s := &g.slots[i]
		if groMatch(s, f, &sg, len(payload)) && (s.segs > 1 || g.used < groBufs) {
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
	*s = groSlot{used: true, first: f, segs: 1, ipOff: sg.ipOff, iphl: sg.iphl, hdrLen: sg.ipOff + sg.iphl + sg.thl,
		key: key, klen: klen, nextSeq: t.Seq() + uint32(len(payload)), gso: len(payload), plen: len(payload), sum: psum,
		psh: t.Flags()&wire.TCPFlagPSH != 0}
	if s.psh {
		n.groFlush(rx, free)
	}
}

// groKey fills k with the flow key of the IP packet ip (transport header
// at hl): addresses, then ports. It returns the key's length.
func groKey(k *[groKeyLen]byte, ip []byte, hl int, v6 bool) int {
	if v6 {
		copy(k[:32], ip[8:40])
		copy(k[32:], ip[hl:hl+4])
		return 36
	}
	copy(k[:8], ip[12:20])
	copy(k[8:], ip[hl:hl+4])
	return 12
}

// find returns the open slot whose key starts with k[:n] and is klen
// long, or -1.
func (g *groState) find(k *[groKeyLen]byte, klen, n int) int {
	for i := range g.slots {
		s := &g.slots[i]
		if s.used && s.klen == klen && string(s.key[:n]) == string(k[:n]) {
			return i
		}
	}
	return -1
}

// groFlushFlow flushes the open slots of the flow of a frame that passes
// on alone: its addresses and ports when the TCP header is where a slot
// would have it, else every flow between its two addresses (a fragment,
// an IPv6 extension header), so no segment overtakes an earlier one.
func (n *NIC) groFlushFlow(rx *rxState, f []byte) {
	g := &rx.gro
	ipOff := 0
	if n.ethernet {
		ipOff = wire.EthernetHeaderLen
	}
	if len(f) <= ipOff {
		return
	}
	ip := f[ipOff:]
	var key [groKeyLen]byte
	var klen, n4 int
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < wire.IPv4MinHeaderLen || ihl < wire.IPv4MinHeaderLen {
			return
		}
		klen, n4 = 12, 8
		copy(key[:8], ip[12:20])
		if len(ip) >= ihl+4 && !wire.IPv4(ip).IsFragment() {
			copy(key[8:], ip[ihl:ihl+4])
			n4 = 12
		}
	case 6:
		if len(ip) < wire.IPv6HeaderLen {
			return
		}
		klen, n4 = 36, 32
		copy(key[:32], ip[8:40])
		if ip[6] == wire.ProtoTCP && len(ip) >= wire.IPv6HeaderLen+4 {
			copy(key[32:], ip[40:44])
			n4 = 36
		}
	default:
		return
	}
	for {
		i := g.find(&key, klen, n4)
		if i < 0 {
			return
		}
		n.groFlush(rx, i)
	}
}

// groMatch reports whether segment f continues slot s.
func groMatch(s *groSlot, f []byte, sg *groPkt, plen int) bool {
	ipLen := s.hdrLen - s.ipOff + s.plen + plen
	if s.psh || s.hdrLen != sg.ipOff+sg.iphl+sg.thl || plen > s.gso || plen == 0 ||
		s.hdrLen+s.plen+plen > groBufLen || !sg.v6 && ipLen > wire.IPv4MaxLen {
		return false
	}
	a := s.first[s.ipOff:]
	b := f[sg.ipOff:]
	if sg.v6 {
		// Version, traffic class, flow label; hop limit.
		if string(a[:4]) != string(b[:4]) || a[7] != b[7] {
			return false
		}
	} else if a[1] != b[1] || a[6] != b[6] || a[8] != b[8] {
		// TOS, DF/frag word, TTL.
		return false
	}
	ta, tb := a[s.iphl:], b[sg.iphl:]
	thl := sg.thl
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
	ip := s.buf[s.ipOff:]
	var pseudo uint64
	if s.iphl == wire.IPv6HeaderLen {
		wire.IPv6(ip).SetPayloadLen(len(ip) - wire.IPv6HeaderLen)
		if !g.trusted {
			pseudo = wire.PseudoHeaderSum6([16]byte(ip[8:24]), [16]byte(ip[24:40]), wire.ProtoTCP, len(ip)-s.iphl)
		}
	} else {
		ip4 := wire.IPv4(ip)
		ip4.SetTotalLen(len(ip))
		ip4.FillChecksum()
		pseudo = ip4.PseudoSum(len(ip) - s.iphl)
	}
	t := wire.TCP(ip[s.iphl:])
	if s.psh {
		t.SetFlags(t.Flags() | wire.TCPFlagPSH)
	}
	if !g.trusted {
		t.SetChecksum(0)
		hs := wire.Sum(t[:s.hdrLen-s.ipOff-s.iphl], pseudo)
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
	var local, tcp bool
	gsoType := uint8(link.GSOTCPv4)
	switch {
	case len(f) >= off+wire.IPv4MinHeaderLen && f[off]>>4 == 4:
		ip := wire.IPv4(f[off:])
		local = n.loopback || n.stack.IsLocal(ip.Dst()) || n.stack.divertsWhole(n, f[off:]) // transparent.go
		tcp = ip.Protocol() == wire.ProtoTCP && !ip.IsFragment() && tcpCsumAt(m, off+ip.HeaderLen())
	case len(f) >= off+wire.IPv6HeaderLen && f[off]>>4 == 6:
		// TCP right after the fixed header only: with extension headers
		// in between, the checksum is finished (and a super-segment cut)
		// in software, so a trusted sum never skips a header the
		// receive path has not walked.
		ip := wire.IPv6(f[off:])
		local = n.loopback || n.stack.IsLocal(ip.Dst()) || n.stack.divertsWhole(n, f[off:]) // transparent.go
		tcp = ip.NextHeader() == wire.ProtoTCP && tcpCsumAt(m, off+wire.IPv6HeaderLen)
		gsoType = link.GSOTCPv6
	default:
		return false, m.GSOType == link.GSONone && !m.CsumPartial
	}
	switch {
	case !local:
		return false, m.GSOType == link.GSONone && !m.CsumPartial
	case m.GSOType != link.GSONone && (m.GSOType != gsoType || !tcp):
		return false, false
	case tcp:
		return m.CsumPartial || m.CsumValid, true
	case m.CsumPartial:
		return false, false
	}
	return false, true
}

// tcpCsumAt reports whether a partial checksum, if m has one, is the
// TCP checksum of a header at l4 (what a NIC or the kernel sets); one
// anywhere else is not trusted but finished in software and verified.
func tcpCsumAt(m link.Meta, l4 int) bool {
	return !m.CsumPartial || int(m.CsumStart) == l4 && m.CsumOffset == 16
}

func (n *NIC) finishInSoftware(rx *rxState, f []byte, m link.Meta) {
	if m.GSOType == link.GSOUDPL4 && n.takeUDPGSO(f, m) { // gso_udp.go
		return
	}
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
