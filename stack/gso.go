package stack

import (
	"net/netip"
	"sync"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// Segmentation offload on transmit. TCP hands a super-segment (one IP
// packet with up to 64 KB of payload and a segment size) when the route's
// NIC declared it can carry one (link.Offloader). The NIC then sends it
// whole, with its offload state for links that take it (link.MetaWriter),
// or, in front of a link that cannot (a plain link, or one wrapped in
// capture or impairment middleware), the stack cuts it here into the
// segments a wire carries, each with complete checksums. The AF_PACKET
// taps of the stack see what the NIC is handed, super-segments included,
// as Linux's tcpdump does; a pcap writer wrapping a link declares no
// offloads and so records the cut segments.

// nicOffloads is what a NIC's endpoint declared at AddNIC.
type nicOffloads struct {
	off  link.Offloads
	meta link.MetaWriter // nil unless off.NeedsMeta
	take link.FrameTaker // nil unless meta is set and the link takes buffers
	vec  link.VecWriter  // set with meta and partial checksums when the link gathers (txvec.go)
	back *txBufs         // buffers take's link gave back; set with take
	// release is back.put, made once: a method value made per frame
	// would allocate.
	release func([]byte)
}

// txBufs holds super-segment buffers a NIC's link gave back after
// delivery (link.FrameTaker), last in first out: the next super-segment
// is built in the buffer whose bytes the peer read last, still in cache,
// where the shared pool would hand this goroutine the oldest buffer
// another core put back. Beyond txBufsMax they go back to the pool.
type txBufs struct {
	mu   sync.Mutex
	bufs [txBufsMax]*[bufSize3]byte
	n    int
}

// txBufsMax bounds what a NIC keeps: 1 MiB, a send buffer's flight.
const txBufsMax = 16

// put is the release function handed to the link with every frame.
func (t *txBufs) put(f []byte) {
	if cap(f) != bufSize3 {
		putBuf(f)
		return
	}
	t.mu.Lock()
	if t.n < txBufsMax {
		t.bufs[t.n] = (*[bufSize3]byte)(f[:bufSize3])
		t.n++
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	putBuf(f)
}

// txBuf is getBuf for a packet of n bytes that leaves through nic:
// a large one takes the buffer its link gave back last.
func (nic *NIC) txBuf(n int) []byte {
	if nic == nil {
		return getBuf(n)
	}
	if t := nic.offl.back; t != nil && n > bufSize2 && n <= bufSize3 {
		t.mu.Lock()
		if t.n > 0 {
			t.n--
			b := t.bufs[t.n]
			t.bufs[t.n] = nil
			t.mu.Unlock()
			return b[:n]
		}
		t.mu.Unlock()
	}
	return getBuf(n)
}

// initOffloads reads the endpoint's offload capabilities.
func (n *NIC) initOffloads() {
	o, ok := n.ep.(link.Offloader)
	if !ok {
		return
	}
	n.offl.off = o.Offloads()
	if mw, ok := n.ep.(link.MetaWriter); ok && n.offl.off.NeedsMeta {
		n.offl.meta = mw
		if n.offl.take, _ = n.ep.(link.FrameTaker); n.offl.take != nil {
			n.offl.back = new(txBufs)
			n.offl.release = n.offl.back.put // one method value per NIC
		}
		if vw, ok := n.ep.(link.VecWriter); ok && n.offl.take == nil && n.offl.off.PartialCsum {
			n.offl.vec = vw
		}
	} else {
		n.offl.off.NeedsMeta = false
		n.offl.off.PartialCsum = false
	}
	if n.offl.off.GSOMax > wire.IPv4MaxLen {
		n.offl.off.GSOMax = wire.IPv4MaxLen
	}
}

// gsoMax is the largest super-segment (IP bytes) routes through n take;
// 0 on loopback, whose MTU is already 64 KB. A NIC whose link carries
// none still takes them and cuts them in software just before the link
// (Linux's software GSO): TCP's per-segment work is done once per
// super-segment either way.
func (n *NIC) gsoMax() int {
	if n.loopback {
		return 0
	}
	if n.offl.off.GSOMax > n.mtu {
		return n.offl.off.GSOMax
	}
	if n.mtu < wire.IPv4MaxLen {
		return wire.IPv4MaxLen
	}
	return 0
}

// gsoFrame frames the super-packet pkt, which sits in buf just past room
// for an Ethernet header, for a link that takes it whole: f is the frame
// and off the IP header's offset in it. ok is false while the next hop's
// link-layer address is not usable on the fast path (not resolved, or
// over IPv6 not REACHABLE): the caller cuts the packet and sends the
// pieces through the neighbour machinery.
func (n *NIC) gsoFrame(buf, pkt []byte, nextHop netip.Addr, v6 bool, total int) (f []byte, off int, ok bool) {
	if !n.ethernet {
		return pkt, 0, true
	}
	var mac wire.MAC
	et := uint16(wire.EtherTypeIPv4)
	if v6 {
		mac, ok = n.v6.nd.gsoMAC(nextHop)
		et = wire.EtherTypeIPv6
	} else {
		mac, ok = n.neigh.lookupFast(nextHop)
	}
	if !ok {
		return nil, 0, false
	}
	wire.PutEthernet(buf, mac, n.mac, et)
	return buf[:wire.EthernetHeaderLen+total], wire.EthernetHeaderLen, true
}

// overGSO reports a TCP packet (IP header of hl bytes) whose payload is
// over its segment size gso: a super-segment to cut even when it fits
// the MTU, as it does under a small MSS (the peer's, or TCP_MAXSEG).
func overGSO(ip []byte, hl, gso int) bool {
	if gso <= 0 || len(ip) < hl+wire.TCPMinHeaderLen {
		return false
	}
	return len(ip)-hl-wire.TCP(ip[hl:]).DataOffset() > gso
}

// sendGSO sends the TCP super-segment in buf[14:14+total] (an IPv4
// packet, or an IPv6 one whose TCP header follows the fixed header, as
// TCP builds them; transport checksum not yet filled) as segments of mss
// payload bytes. taken says that the link took buf (a pool buffer of
// getBuf) whole and gives it back to the pool itself.
func (s *Stack) sendGSO(r *ResolvedRoute, buf []byte, total, mss int) (taken bool, err error) {
	n := r.NIC
	pkt := buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total]
	v6 := pkt[0]>>4 == 6
	hl, gsoType := 0, uint8(link.GSOTCPv4)
	if v6 {
		hl, gsoType = wire.IPv6HeaderLen, link.GSOTCPv6
	} else {
		hl = wire.IPv4(pkt).HeaderLen()
	}
	thl := wire.TCP(pkt[hl:]).DataOffset()
	if hl+thl+mss > r.MTU || thl < wire.TCPMinHeaderLen || hl+thl > total {
		if v6 {
			s.stats.IP6.OutTooBig.Add(1)
		} else {
			s.stats.IP.OutTooBig.Add(1)
		}
		return false, syscall.EMSGSIZE
	}
	if !v6 {
		// The segments take consecutive IP IDs (as a TSO NIC gives them).
		segs := (total - hl - thl + mss - 1) / mss
		s.ipID.Add(uint32(segs - 1))
	}
	if n.offl.meta != nil && total <= n.offl.off.GSOMax {
		if f, off, ok := n.gsoFrame(buf, pkt, r.NextHop, v6, total); ok {
			m := link.Meta{GSOType: gsoType, GSOSize: uint16(mss), HdrLen: uint16(off + hl + thl),
				NetOff: uint8(off), CsumStart: uint16(off + hl), CsumOffset: 16}
			switch {
			case n.offl.off.PartialCsum && v6:
				link.PartialTCPChecksum6(wire.IPv6(pkt))
				m.CsumPartial = true
			case n.offl.off.PartialCsum:
				link.PartialTCPChecksum(wire.IPv4(pkt))
				m.CsumPartial = true
			case v6:
				fillTransportChecksum6(wire.IPv6(pkt), wire.ProtoTCP, wire.IPv6HeaderLen)
			default:
				fillTransportChecksum(wire.IPv4(pkt), wire.ProtoTCP)
			}
			if n.offl.take != nil && cap(f) == bufSize3 {
				// The whole pool buffer: the link queues it as it is and
				// gives it back to the pool once delivered (no copy).
				return n.takeFrameMeta(f, m)
			}
			return false, n.writeFrameMeta(f, m)
		}
		// The next hop is not resolved yet (or, over IPv6, not REACHABLE:
		// STALE wants the state machine's DELAY): the frames go through
		// the normal path, whose neighbour queue holds plain frames only.
	}
	scratch := getBuf(wire.EthernetHeaderLen + hl + thl + mss)
	defer putBuf(scratch)
	sent := 0
	if v6 {
		err = link.SegmentL4(buf[:wire.EthernetHeaderLen+total], wire.EthernetHeaderLen, wire.EthernetHeaderLen+hl, mss, false, scratch, func(seg []byte) error {
			s.stats.Link.OutGSOSegs.Add(1)
			err := n.sendIP6(r.NextHop, seg)
			if err == nil {
				sent++
			}
			return err
		})
	} else {
		err = link.SegmentTCP(buf[:wire.EthernetHeaderLen+total], wire.EthernetHeaderLen, mss, scratch, func(seg []byte) error {
			s.stats.Link.OutGSOSegs.Add(1)
			err := n.sendIP(r.NextHop, seg)
			if err == nil {
				sent++
			}
			return err
		})
	}
	if err == link.ErrBadOffload {
		s.stats.IP.OutDiscards.Add(1)
		return false, syscall.EINVAL
	}
	if err == syscall.ENOBUFS && sent > 0 {
		// The link took the first segments and its queue refused the
		// rest. ENOBUFS would tell TCP that nothing left and have it
		// send the whole range again as new data, behind bytes the peer
		// already has and acknowledges: ACKs for data TCP thinks it never
		// sent are not taken, and the connection stalls. What left did
		// leave; the refused tail is lost as on the wire, and TCP's loss
		// recovery sends it again.
		s.stats.Link.OutGSOTailDrops.Add(1)
		return false, nil
	}
	return false, err
}

// takeFrameMeta is writeFrameMeta handing the link f's buffer, which
// goes back to the pool through putBuf once delivered; taken is false
// when the link refused it (the caller still owns it).
func (n *NIC) takeFrameMeta(f []byte, m link.Meta) (taken bool, err error) {
	s := n.stack
	n.tapFrame(f, true)
	if err := n.offl.take.TakeFrameMeta(f, m, n.offl.release); err != nil {
		if err == link.ErrQueueFull {
			s.stats.Link.OutQueueFull.Add(1)
			return false, syscall.ENOBUFS
		}
		s.stats.Link.OutErrors.Add(1)
		return false, syscall.ENETDOWN
	}
	s.stats.Link.OutFrames.Add(1)
	if m.GSOSize > 0 {
		s.stats.Link.OutGSOFrames.Add(1)
	}
	return true, nil
}

// takeTCP sends the TCP packet in buf[14:14+total], which fits the MTU,
// as takeFrameMeta does a super-segment: whole, in the pool buffer it was
// built in, with its checksum left partial (a jumbo segment on an
// in-memory link is then neither copied nor summed twice). ok is false
// when it cannot go so (no such link, a buffer of another size, the next
// hop not resolved on the fast path): the caller sends it the normal way.
func (s *Stack) takeTCP(r *ResolvedRoute, buf []byte, total int) (taken, ok bool, err error) {
	n := r.NIC
	if n == nil || n.offl.take == nil || !n.offl.off.PartialCsum || cap(buf) != bufSize3 {
		return false, false, nil
	}
	pkt := buf[wire.EthernetHeaderLen : wire.EthernetHeaderLen+total]
	v6 := pkt[0]>>4 == 6
	hl := wire.IPv6HeaderLen
	if !v6 {
		hl = wire.IPv4(pkt).HeaderLen()
	}
	if hl+wire.TCPMinHeaderLen > total {
		return false, false, nil
	}
	f, off, fast := n.gsoFrame(buf, pkt, r.NextHop, v6, total)
	if !fast {
		return false, false, nil
	}
	if v6 {
		link.PartialTCPChecksum6(wire.IPv6(pkt))
	} else {
		link.PartialTCPChecksum(wire.IPv4(pkt))
	}
	thl := wire.TCP(pkt[hl:]).DataOffset()
	m := link.Meta{HdrLen: uint16(off + hl + thl), NetOff: uint8(off),
		CsumPartial: true, CsumStart: uint16(off + hl), CsumOffset: 16}
	taken, err = n.takeFrameMeta(f, m)
	return taken, true, err
}

// writeFrameMeta is writeFrame for a frame with offload state.
func (n *NIC) writeFrameMeta(f []byte, m link.Meta) error {
	s := n.stack
	n.tapFrame(f, true)
	fv := frameVecs.Get().(*[1][]byte)
	mv := metaVecs.Get().(*[1]link.Meta)
	fv[0], mv[0] = f, m
	_, err := n.offl.meta.WriteFramesMeta(fv[:], mv[:])
	fv[0] = nil
	frameVecs.Put(fv)
	metaVecs.Put(mv)
	if err != nil {
		return s.linkWriteErr(err)
	}
	s.stats.Link.OutFrames.Add(1)
	s.stats.Link.OutGSOFrames.Add(1)
	return nil
}

// gsoMAC is the neighbour lookup of the super-segment path: the MAC
// of a when its entry is usable as it is (REACHABLE, PERMANENT, DELAY or
// PROBE), lock-free when it is the entry last resolved. An entry that
// is missing, INCOMPLETE or STALE gives false: the caller goes through
// resolve, which queues plain frames and runs the NUD state machine.
func (c *ndCache) gsoMAC(a netip.Addr) (wire.MAC, bool) {
	if e := c.last.Load(); e != nil && e.addr == a {
		if v := e.fast.Load(); v&fastValid != 0 {
			return wire.MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[a]
	if e == nil || e.flushing {
		return wire.MAC{}, false
	}
	switch e.state {
	case NeighReachable, NeighPermanent, NeighDelay, NeighProbe:
		c.last.Store(e)
		return e.mac, true
	}
	return wire.MAC{}, false
}
