package link

import "github.com/sockstack/sockstack/wire"

// Offloads: a link may carry more than MTU-sized frames with finished
// checksums. TCP hands the stack super-segments (one IP packet holding
// several segments' worth of payload, cut at GSOSize); a link that
// declares GSOMax carries them whole, and the stack cuts them in software
// only in front of a link that does not. Middleware (pcap capture,
// impairment) declares nothing, so what it sees is what a wire carries.

// Offloads are what a link can carry beyond plain frames.
type Offloads struct {
	// GSOMax is the largest IP packet (IP header included) the link takes
	// as one TCP super-segment; 0 means nothing above the MTU.
	GSOMax int
	// NeedsMeta: the link wants each frame's Meta (WriteFramesMeta),
	// e.g. a TAP with a virtio-net header telling the kernel where to cut
	// and where to finish the checksum. Links without it carry super-
	// segments as plain (large) IP packets with full checksums.
	NeedsMeta bool
	// PartialCsum: the link accepts a transport checksum left partial
	// (pseudo-header sum only), finished by whoever sends it on.
	PartialCsum bool
	// UDPGSO: the link also carries UDP super-datagrams (GSO_UDP_L4,
	// Linux's USO) up to GSOMax; needs NeedsMeta.
	UDPGSO bool
}

// Offloader is implemented by endpoints that carry more than MTU frames.
type Offloader interface {
	Offloads() Offloads
}

// GSO types of Meta.GSOType (the virtio-net values).
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
)

// Meta is the offload state of one frame.
type Meta struct {
	GSOType uint8
	GSOSize uint16 // payload bytes per segment; 0: not a super-segment
	HdrLen  uint16 // link + IP + transport header bytes
	NetOff  uint8  // where the IP header starts: 0 on IP links, 14 on Ethernet
	// A partial checksum: the sum is still to be taken from CsumStart to
	// the end of the frame and stored at CsumStart+CsumOffset.
	CsumPartial           bool
	CsumStart, CsumOffset uint16
	// CsumValid (receive): the checksum need not be verified again; the
	// kernel vouched for it (virtio-net DATA_VALID) or the frame was made
	// by the local kernel with a partial checksum.
	CsumValid bool
}

// MetaWriter is implemented by endpoints with Offloads().NeedsMeta.
type MetaWriter interface {
	WriteFramesMeta(frames [][]byte, meta []Meta) (int, error)
}

// VecWriter is implemented by endpoints that gather a frame from its
// parts in the write system call (writev on a TAP/TUN, sendmsg on a
// packet socket), so a sender need not copy a payload it already holds
// into one buffer: head is the link, IP and transport headers, tail the
// payload in up to two pieces (a ring may wrap), m the offload state.
// ok false means nothing was written because the endpoint cannot take a
// gathered frame in its present mode (a ring, writes held during a
// delivery): the caller then writes the frame whole. The parts are
// written or copied before WriteFrameVec returns.
type VecWriter interface {
	WriteFrameVec(head []byte, tail [2][]byte, m Meta) (ok bool, err error)
}

// MetaReceiver is implemented by receivers that take frames with their
// offload state; an endpoint whose frames carry any uses it when the
// receiver has it, and finishes checksums itself otherwise.
type MetaReceiver interface {
	DeliverFramesMeta(frames [][]byte, meta []Meta)
}

// InMemoryGSOMax is what the in-memory links carry as one frame: the
// largest IPv4 packet.
const InMemoryGSOMax = 65535

// Offloads of the in-memory links: anything up to 64 KB, with its
// offload state carried alongside (a receiving stack takes a super-
// segment whole and trusts a partial checksum, as Linux's loopback does;
// anything else gets it finished in software on delivery).
func (p *PipeEnd) Offloads() Offloads {
	return Offloads{GSOMax: InMemoryGSOMax, NeedsMeta: true, PartialCsum: true, UDPGSO: true}
}

func (p *SwitchPort) Offloads() Offloads {
	return Offloads{GSOMax: InMemoryGSOMax, NeedsMeta: true, PartialCsum: true, UDPGSO: true}
}

func (l *Loopback) Offloads() Offloads {
	return Offloads{GSOMax: InMemoryGSOMax, NeedsMeta: true, PartialCsum: true, UDPGSO: true}
}

// WriteFramesMeta queues frames with their offload state for the peer.
func (p *PipeEnd) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	return pushCountedMeta(p.peer.in, frames, meta, &p.stats)
}

// WriteFramesMeta queues packets with their offload state.
func (l *Loopback) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	return pushCountedMeta(l.q, frames, meta, &l.stats)
}

// WriteFramesMeta forwards frames with their offload state: a frame the
// switch knows the port of goes there whole; a flooded frame (unknown or
// group destination) is finished in software first, one plain copy for
// every port.
func (p *SwitchPort) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	for i := range frames {
		if meta[i] == (Meta{}) {
			if _, err := p.WriteFrames(frames[i : i+1]); err != nil {
				return i, err
			}
			continue
		}
		if p.closed.Load() {
			return i, ErrClosed
		}
		f := frames[i]
		if len(f) < wire.EthernetHeaderLen {
			p.stats.TxDropped.Add(1)
			continue
		}
		dst := wire.Ethernet(f).Dst()
		p.sw.mu.RLock()
		out := p.sw.table[dst]
		p.sw.mu.RUnlock()
		if out == nil || dst.IsMulticast() || out.closed.Load() {
			var sg segmenter
			var werr error
			if err := sg.finish(f, meta[i], func(b []byte) error {
				_, werr = p.WriteFrames([][]byte{b})
				return werr
			}); err != nil && werr == nil {
				p.stats.TxDropped.Add(1)
			}
			continue
		}
		if out == p {
			continue
		}
		if _, err := pushCountedMeta(out.in, frames[i:i+1], meta[i:i+1], &p.stats); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

// segmenter holds the scratch buffer of software segmentation on a
// receive path.
type segmenter struct {
	buf []byte
	one [1][]byte
}

// deliverMeta hands frames with offload state to r: whole when r takes
// Meta, else finished in software first (cut into segments, checksums
// completed), so a receiver that knows nothing of offloads sees what a
// wire would carry. Frames whose state is malformed are dropped and
// counted in st.RxDropped.
func deliverMeta(r Receiver, frames [][]byte, metas []Meta, sg *segmenter, st *Stats) {
	if mr, ok := r.(MetaReceiver); ok {
		mr.DeliverFramesMeta(frames, metas)
		return
	}
	start := 0
	for i, f := range frames {
		m := metas[i]
		if m == (Meta{}) {
			continue
		}
		if start < i {
			r.DeliverFrames(frames[start:i])
		}
		start = i + 1
		if err := sg.finish(f, m, func(b []byte) error {
			sg.one[0] = b
			r.DeliverFrames(sg.one[:])
			sg.one[0] = nil
			return nil
		}); err != nil {
			st.RxDropped.Add(1)
		}
	}
	if start < len(frames) {
		r.DeliverFrames(frames[start:])
	}
}

// finish turns one frame with offload state into plain frames for emit.
func (sg *segmenter) finish(f []byte, m Meta, emit func([]byte) error) error {
	if sg.buf == nil {
		sg.buf = make([]byte, 65536+64)
	}
	return FinishFrame(f, m, sg.buf, emit)
}

// FinishFrame turns one frame with offload state into the plain frames a
// wire would carry (a super-segment cut at its segment size, a partial
// checksum completed), built in scratch (64 KiB + 64 bytes) or in place,
// and hands each to emit.
func FinishFrame(f []byte, m Meta, scratch []byte, emit func([]byte) error) error {
	ipOff := int(m.NetOff)
	switch m.GSOType {
	case GSOTCPv4:
		return SegmentTCP(f, ipOff, int(m.GSOSize), scratch, emit)
	case GSOTCPv6, GSOUDPL4:
		// TCP over IPv6 (the stack's, or a kernel's TSO6) and UDP (a
		// kernel's USO) for a receiver that takes no Meta.
		return SegmentL4(f, ipOff, int(m.CsumStart), int(m.GSOSize), m.GSOType == GSOUDPL4, scratch, emit)
	case GSONone:
		if m.CsumPartial {
			if err := finishPartial(f, m); err != nil {
				return err
			}
		}
		return emit(f)
	}
	return ErrBadOffload
}

// finishPartial completes the partial checksum of a frame that is not a
// super-segment.
func finishPartial(f []byte, m Meta) error {
	udp := int(m.CsumOffset) == 6
	return FinishChecksum(f, int(m.CsumStart), int(m.CsumOffset), udp)
}

// NewPipeQueue is NewPipe with qlen frames of queue per direction (a
// benchmark holding a million connections bursts far beyond
// DefaultQueueLen in one delivery round).
func NewPipeQueue(macA, macB wire.MAC, mtu, qlen int) (*PipeEnd, *PipeEnd) {
	a := &PipeEnd{mac: macA, mtu: mtu}
	b := &PipeEnd{mac: macB, mtu: mtu}
	a.in = newQueue(qlen, mtu+wire.EthernetHeaderLen+4, &a.stats)
	b.in = newQueue(qlen, mtu+wire.EthernetHeaderLen+4, &b.stats)
	a.peer, b.peer = b, a
	return a, b
}

// FrameTaker is implemented by in-memory links that can queue a frame's
// buffer itself instead of a copy of it: for a 64 KB super-segment the
// copy is a large part of the cost of a byte. The writer gives up f;
// once the frame has been delivered, the link hands f to release and
// never touches it again. A frame refused with an error is not taken.
type FrameTaker interface {
	TakeFrameMeta(f []byte, m Meta, release func([]byte)) error
}

// TakeFrameMeta queues f itself for the peer (FrameTaker).
func (p *PipeEnd) TakeFrameMeta(f []byte, m Meta, release func([]byte)) error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.peer.in.take(f, m, release, &p.stats)
}
