package link

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory-mapped AF_PACKET rings (TPACKET_V3). The kernel writes received
// frames into blocks of a ring shared with us and hands over a block when
// it is full or its timer (ringRetireMs) fires; we deliver the frames
// straight from the ring, with no system call and no copy of our own,
// and give the block back. Frames to send are copied into the slots of a
// second ring and one sendto(2) asks the kernel to send every slot
// marked; a slot is ours again when the kernel has sent it.
//
// With PACKET_VNET_HDR (Offload) a virtio-net header sits just before
// each received frame's link header and at the start of each slot we
// send, so super-segments cross the rings whole both ways (the kernel
// has taken virtio-net headers on TPACKET_V3 receive rings and on
// transmit rings since Linux 4.x; it refuses the option once a ring
// exists, so it is set first).
//
// The price of TPACKET_V3 is latency when traffic is sparse: a block
// that does not fill is handed over only when its timer fires (1 ms),
// so a lone segment may wait that long; in bulk, blocks fill far sooner.

const (
	tpStatusKernel      = 0
	tpStatusUser        = 1
	tpStatusLosing      = 1 << 2
	tpStatusSendRequest = 1
	tpStatusAvailable   = 0
	tpStatusWrongFormat = 4

	tp3HdrLen   = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	tpTxDataOff = 48 // tp_hdrlen - sizeof(struct sockaddr_ll): where a slot's frame starts
	sllPkttype  = 10 // offset of sll_pkttype in struct sockaddr_ll

	ringRetireMs = 1

	// DefaultRingBlockSize holds a 64 KB super-segment with its headers.
	DefaultRingBlockSize = 256 << 10
	// DefaultRingBlocks is the receive ring's length in blocks.
	DefaultRingBlocks = 32
	// ringTxSlots is how many frames the transmit ring holds.
	ringTxSlots = 64
)

// tpRing is the receive and transmit ring of one AF_PACKET socket.
type tpRing struct {
	mem []byte // both rings: receive blocks, then transmit blocks

	// Receive: blocks of rxBlockSize; reading goroutine only.
	rxBlockSize, rxBlocks int
	blk                   int // block being read, or the next to wait for
	inBlk                 bool
	pkt, pkts             int // next packet of the block, and how many it holds
	off                   int // offset of that packet in the block

	// Transmit: slots of txSlotSize in blocks of txBlockSize; under wmu.
	tx                                 int // offset of the transmit ring in mem
	txSlotSize, txSlotsPerBlk, txSlots int
	txBlockSize                        int
	txNext                             int
	txPending                          bool // slots marked but not yet kicked
}

// setupRing makes and maps the rings of fd (PACKET_VERSION, PACKET_RX_RING,
// PACKET_TX_RING, mmap).
func setupRing(fd int, blockSize, blocks, maxFrame int) (*tpRing, error) {
	if blockSize <= 0 {
		blockSize = DefaultRingBlockSize
	}
	if blocks <= 0 {
		blocks = DefaultRingBlocks
	}
	page := unix.Getpagesize()
	if blockSize%page != 0 || blockSize < maxFrame+tp3HdrLen+64 {
		return nil, fmt.Errorf("ring block size %d: want a multiple of %d of at least %d", blockSize, page, maxFrame+tp3HdrLen+64)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V3: %w", err)
	}
	// Frame size only bounds the packet count here; blocks are what count.
	rx := unix.TpacketReq3{Block_size: uint32(blockSize), Block_nr: uint32(blocks),
		Frame_size: 2048, Frame_nr: uint32(blockSize / 2048 * blocks), Retire_blk_tov: ringRetireMs}
	if err := setsockoptReq3(fd, unix.PACKET_RX_RING, &rx); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	r := &tpRing{rxBlockSize: blockSize, rxBlocks: blocks}
	r.txSlotSize = (tpTxDataOff + maxFrame + 15) &^ 15
	r.txBlockSize = (r.txSlotSize*4 + page - 1) / page * page
	r.txSlotsPerBlk = r.txBlockSize / r.txSlotSize
	txBlocks := (ringTxSlots + r.txSlotsPerBlk - 1) / r.txSlotsPerBlk
	r.txSlots = txBlocks * r.txSlotsPerBlk
	tx := unix.TpacketReq3{Block_size: uint32(r.txBlockSize), Block_nr: uint32(txBlocks),
		Frame_size: uint32(r.txSlotSize), Frame_nr: uint32(r.txSlots)}
	if err := setsockoptReq3(fd, unix.PACKET_TX_RING, &tx); err != nil {
		return nil, fmt.Errorf("PACKET_TX_RING: %w", err)
	}
	r.tx = blockSize * blocks
	mem, err := unix.Mmap(fd, 0, r.tx+r.txBlockSize*txBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap of the rings: %w", err)
	}
	r.mem = mem
	return r, nil
}

func setsockoptReq3(fd, opt int, req *unix.TpacketReq3) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_PACKET, uintptr(opt),
		uintptr(unsafe.Pointer(req)), unsafe.Sizeof(*req), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func (r *tpRing) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

func (r *tpRing) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
}

// collectDrops adds the kernel's count of frames it dropped at the full
// ring or socket buffer (PACKET_STATISTICS, which resets it) to the
// counters.
func (a *AFPacket) collectDrops(fd int) {
	var st unix.TpacketStatsV3
	l := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
	if errno == 0 && st.Drops > 0 {
		a.kdrops.Add(uint64(st.Drops))
		a.stats.RxDropped.Add(uint64(st.Drops))
	}
}

// KernelDrops is how many received frames the kernel dropped because a
// receive ring or socket buffer was full, over all sockets (they are in
// Stats().RxDropped too).
func (a *AFPacket) KernelDrops() uint64 {
	var n uint64
	for _, q := range a.afQueues() {
		if !q.closed.Load() {
			q.rc.Control(func(fd uintptr) { q.collectDrops(int(fd)) })
		}
		n += q.kdrops.Load()
	}
	return n
}

// readRing is the read callback with a receive ring: it gives back the
// block whose frames were all delivered, then delivers frames of the
// next block the kernel handed over, up to a batch at a time, straight
// from the ring (they stay valid until this is called again).
func (a *AFPacket) readRing(fd uintptr) bool {
	r := a.ring
	for {
		if r.inBlk && r.pkt >= r.pkts {
			// Every frame of it was delivered: the kernel may reuse it.
			atomic.StoreUint32(r.u32(r.blk*r.rxBlockSize+8), tpStatusKernel)
			r.inBlk = false
			r.blk = (r.blk + 1) % r.rxBlocks
		}
		base := r.blk * r.rxBlockSize
		if !r.inBlk {
			st := atomic.LoadUint32(r.u32(base + 8))
			if st&tpStatusUser == 0 {
				return false // the kernel still fills it: wait for the poller
			}
			if st&tpStatusLosing != 0 {
				a.collectDrops(int(fd))
			}
			r.inBlk = true
			r.pkt, r.pkts = 0, int(*r.u32(base + 12))
			r.off = int(*r.u32(base + 16))
		}
		for r.pkt < r.pkts && a.nread < len(a.frames) {
			po := r.off
			if po < 0 || po+tp3HdrLen+sllPkttype >= r.rxBlockSize {
				r.pkt = r.pkts // a corrupt block: leave it
				a.stats.RxDropped.Add(1)
				break
			}
			h := base + po
			next := int(*r.u32(h))
			snap, wlen := int(*r.u32(h + 12)), int(*r.u32(h + 16))
			mac := int(binary.NativeEndian.Uint16(r.mem[h+24:]))
			r.pkt++
			r.off += next
			if r.mem[h+tp3HdrLen+sllPkttype] == unix.PACKET_OUTGOING {
				continue
			}
			if snap < wlen || po+mac+snap > r.rxBlockSize || (a.vnet.on && mac < tp3HdrLen+vnetHdrLen) {
				a.stats.RxDropped.Add(1) // cut short: useless
				continue
			}
			f := r.mem[h+mac : h+mac+snap : h+mac+snap]
			if a.vnet.on {
				m, ok := parseVnetHdr(r.mem[h+mac-vnetHdrLen:h+mac], 14)
				if !ok {
					a.stats.RxDropped.Add(1)
					continue
				}
				a.vnet.metas[a.nread] = m
			}
			a.frames[a.nread] = f
			a.nread++
		}
		if a.nread > 0 {
			return true
		}
	}
}

// txSlot is the offset of transmit slot i in mem.
func (r *tpRing) txSlot(i int) int {
	return r.tx + i/r.txSlotsPerBlk*r.txBlockSize + i%r.txSlotsPerBlk*r.txSlotSize
}

// writeRing is the write callback with a transmit ring: frames are
// copied into free slots, then one sendto kicks the kernel. A full ring
// waits for the poller (the kernel frees slots as it sends them).
func (a *AFPacket) writeRing(fd uintptr) bool {
	r := a.ring
	for a.wnext < len(a.wframes) {
		f := a.wframes[a.wnext]
		if len(f) == 0 || len(f)+vnetHdrLen > r.txSlotSize-tpTxDataOff {
			a.stats.TxDropped.Add(1)
			a.wnext++
			continue
		}
		s := r.txSlot(r.txNext)
		switch atomic.LoadUint32(r.u32(s + 20)) {
		case tpStatusAvailable:
		case tpStatusWrongFormat:
			a.stats.TxDropped.Add(1) // the kernel refused it; the slot is ours
		case tpStatusSendRequest:
			// Marked and not taken by the last kick (the kernel stopped
			// on an error): ask again; if it still will not, the rest
			// of this call is lost, counted, rather than waiting for a
			// wake-up that may never come.
			errno := a.kick(fd)
			if atomic.LoadUint32(r.u32(s+20)) == tpStatusSendRequest {
				a.stats.TxDropped.Add(uint64(len(a.wframes) - a.wnext))
				if a.werr == nil && errno != 0 {
					a.werr = errno
				}
				a.wnext = len(a.wframes)
				return true
			}
			continue
		default: // in flight
			if r.txPending {
				a.kick(fd)
				continue
			}
			return false // the kernel wakes the poller when it frees a slot
		}
		d := s + tpTxDataOff
		n := len(f)
		if a.vnet.on {
			var m Meta
			if a.vnet.wmeta != nil {
				m = a.vnet.wmeta[a.wnext]
			}
			putVnetHdr(r.mem[d:d+vnetHdrLen], m)
			d += vnetHdrLen
			n += vnetHdrLen
		}
		copy(r.mem[d:], f)
		*r.u32(s + 16) = uint32(n) // tp_len
		*r.u32(s) = 0              // tp_next_offset
		atomic.StoreUint32(r.u32(s+20), tpStatusSendRequest)
		r.txNext = (r.txNext + 1) % r.txSlots
		r.txPending = true
		a.wtaken++
		a.stats.TxFrames.Add(1)
		a.stats.TxBytes.Add(uint64(len(f)))
		a.wnext++
	}
	if r.txPending {
		a.kick(fd)
	}
	return true
}

// kick asks the kernel to send every marked slot.
func (a *AFPacket) kick(fd uintptr) unix.Errno {
	a.ring.txPending = false
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, fd, 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case 0, unix.EAGAIN, unix.ENOBUFS:
		default:
			if a.werr == nil {
				a.werr = errno
			}
		}
		return errno
	}
}

// afQueues are the sockets of the endpoint.
func (a *AFPacket) afQueues() []*AFPacket {
	if a.all == nil {
		return []*AFPacket{a}
	}
	return a.all
}
