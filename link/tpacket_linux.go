package link

import (
	"encoding/binary"
	"fmt"
	"sync"
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
// A sender's ACKs are such segments (a bbr sender reading them here ran
// at a tenth of the link), hence the TPACKET_V2 ring of
// tpacket2_linux.go, which has no timer and is Ring's default.
//
// Lending. A receiver may keep frames of the block being delivered
// (Lender): TCP queues a super-segment's payload where it lies until the
// application has read it. Each block counts its holders (the reader
// while it delivers the block, plus one per lent frame) and goes back to
// the kernel when the last lets go, blocks in any order. The kernel,
// though, fills blocks strictly in order and stops at the first one we
// still own, dropping everything until that one is back
// (prb_dispatch_next_block freezes the queue). So what is held is
// bounded two ways:
//   - while half the blocks (tpRing.maxHeld) are held, frames are not
//     lent (the receiver copies them, counted in RingStats.Copied);
//   - a held block the kernel is about to reach (within an eighth of the
//     ring, tpRing.evictAhead, of the block it fills) is evicted: a
//     private copy of it is moved over its address (mremap), so the lent
//     slices stay valid and unchanged, and the ring's block, reached
//     through a fresh mapping of the ring, goes back to the kernel. The
//     copy is unmapped when its last frame is released. A receiver that
//     never lets go thus costs memory and copies, never the ring's
//     progress.

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

	// Offsets in a block's descriptor (struct tpacket_block_desc).
	bdStatus   = 8
	bdNumPkts  = 12
	bdFirstPkt = 16
	bdSeq      = 24 // seq_num: 1 for the first block the kernel fills, then +1 per block

	ringRetireMs = 1

	// DefaultRingBlockSize holds a 64 KB super-segment with its headers:
	// up to four (a 65,226-byte frame takes 65,320 bytes of a block
	// with its tpacket3_hdr, sockaddr_ll and virtio-net header; a block
	// starts with a 48-byte descriptor), fewer when the block timer
	// closes it early.
	DefaultRingBlockSize = 256 << 10
	// DefaultRingBlocks is the receive ring's length in blocks: 18 MiB.
	// Half of it (the most lent frames may hold), 36 blocks, holds
	// 108–144 super-segments of 65,160 payload bytes, 6.7–9.4 MB:
	// TCP's largest receive window (tcp.Config.MaxRecvBuf, 6 MiB)
	// fits in it lent, with room for blocks part-read.
	DefaultRingBlocks = 72
	// ringTxSlots is how many frames the transmit ring holds.
	ringTxSlots = 64
)

// tpRing is the receive and transmit ring of one AF_PACKET socket.
type tpRing struct {
	mem    []byte // the first mapping of both rings: receive blocks, then transmit blocks
	mapLen int    // len(mem)

	// Receive: blocks of rxBlockSize; reading goroutine only.
	rxBlockSize, rxBlocks int
	blks                  []*ringBlk // each block as mapped now
	blk                   int        // block being read, or the next to wait for
	nextSeq               uint64     // seq_num the block at blk has when the kernel handed it over in this lap
	inBlk                 bool
	pkt, pkts             int // next packet of the block, and how many it holds
	off                   int // offset of that packet in the block

	// Lending (see above).
	maxHeld, evictAhead int
	held                atomic.Int32 // blocks read to the end and still held by lent frames
	mu                  sync.Mutex   // orders giving a block back against close unmapping it
	closed              bool         // under mu
	st                  ringCounters
	sp                  ringSpare // where evicted blocks' places in the ring are mapped anew
	// idle, if set (tests), runs when the reader has caught up with the
	// kernel and waits: every block before is finished, near ones evicted.
	idle func()

	rxLen int   // length of the receive ring in mem; the transmit ring follows
	tx    *tpTx // the transmit ring
}

// tpTx is a transmit ring (TPACKET_V3 or V2: the slot header differs):
// slots of slotSize in blocks of blockSize; under wmu.
type tpTx struct {
	mem                          []byte // the ring, part of the rings' mapping
	slotSize, slotsPerBlk, slots int
	blockSize                    int
	statusOff, lenOff, dataOff   int  // a slot's tp_status, tp_len, and where its frame starts
	v3                           bool // a slot has tp_next_offset (cleared)
	next                         int
	pending                      bool // slots marked but not yet kicked
}

// ringSpare is a second mapping of a receive ring (the kernel maps only
// a whole ring), whose units (blocks, or V2 frame slots, all of unit
// bytes) evictions take (has[k]: unit k is still mapped there), so an
// eviction maps the ring anew only once per units evicted.
type ringSpare struct {
	mem           []byte
	has           []bool
	unit          int
	mapLen, rxLen int // the rings' mapping, and its receive part
}

// ringCounters count what the receive ring lent.
type ringCounters struct {
	lent, copied, evicted, evictFail atomic.Uint64
	heldMax                          atomic.Int32
}

// ringBlk is a receive block and its holders. Lent frames point into
// mem; after an eviction mem is the private copy at the same address and
// the ring's block has a new ringBlk.
type ringBlk struct {
	r       *tpRing
	mem     []byte
	refs    atomic.Int32 // the reader while it delivers the block, plus one per lent frame
	evicted atomic.Bool
}

// Release is Loan.Release: one lent frame of the block let go.
func (b *ringBlk) Release() {
	if b.refs.Add(-1) == 0 {
		b.r.giveBack(b)
	}
}

// hold takes one more reference if the block still has holders (once
// the count is zero the block is on its way back to the kernel).
func (b *ringBlk) hold() bool {
	for {
		n := b.refs.Load()
		if n <= 0 {
			return false
		}
		if b.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// setupRing makes and maps the rings of fd (PACKET_VERSION, PACKET_RX_RING,
// PACKET_TX_RING if withTx, mmap); retireMs is the block timer (0:
// ringRetireMs).
func setupRing(fd int, blockSize, blocks, maxFrame, retireMs int, withTx bool) (*tpRing, error) {
	if blockSize <= 0 {
		blockSize = DefaultRingBlockSize
	}
	if blocks <= 0 {
		blocks = DefaultRingBlocks
	}
	if retireMs <= 0 {
		retireMs = ringRetireMs
	}
	page := unix.Getpagesize()
	if blockSize%page != 0 || blockSize < maxFrame+tp3HdrLen+64 {
		return nil, fmt.Errorf("ring block size %d: want a multiple of %d of at least %d", blockSize, page, maxFrame+tp3HdrLen+64)
	}
	// Frame size only bounds the packet count here; blocks are what count.
	rx := unix.TpacketReq3{Block_size: uint32(blockSize), Block_nr: uint32(blocks),
		Frame_size: 2048, Frame_nr: uint32(blockSize / 2048 * blocks), Retire_blk_tov: uint32(retireMs)}
	mem, tx, err := openRings(fd, unix.TPACKET_V3, &rx, maxFrame, withTx)
	if err != nil {
		return nil, err
	}
	r := &tpRing{rxBlockSize: blockSize, rxBlocks: blocks, nextSeq: 1,
		maxHeld: max(blocks/2, 1), evictAhead: max(blocks/8, 2),
		mem: mem, tx: tx, rxLen: blockSize * blocks, mapLen: len(mem)}
	r.sp = ringSpare{has: make([]bool, blocks), unit: blockSize, mapLen: r.mapLen, rxLen: r.rxLen}
	r.blks = make([]*ringBlk, blocks)
	for k := range r.blks {
		r.blks[k] = &ringBlk{r: r, mem: mem[k*blockSize : (k+1)*blockSize : (k+1)*blockSize]}
	}
	return r, nil
}

// openRings sets fd's TPACKET version and its receive ring rx, adds the
// transmit ring (setupTx) if withTx, and maps both, the receive ring
// first: the setup the V2 and V3 rings share. The mapping is made
// without x/sys's bookkeeping (unix.Mmap) because pieces of it are
// unmapped or replaced one block or slot at a time.
func openRings(fd, version int, rx *unix.TpacketReq3, maxFrame int, withTx bool) ([]byte, *tpTx, error) {
	name := map[int]string{unix.TPACKET_V2: "TPACKET_V2", unix.TPACKET_V3: "TPACKET_V3"}[version]
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return nil, nil, fmt.Errorf("PACKET_VERSION %s: %w", name, err)
	}
	if err := setsockoptReq3(fd, unix.PACKET_RX_RING, rx); err != nil {
		return nil, nil, fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	tx, txLen, err := setupTx(fd, version == unix.TPACKET_V3, maxFrame, withTx)
	if err != nil {
		return nil, nil, err
	}
	rxLen := int(rx.Block_size) * int(rx.Block_nr)
	mem, err := mapRaw(fd, rxLen+txLen, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap of the rings: %w", err)
	}
	if tx != nil {
		tx.mem = mem[rxLen:]
	}
	return mem, tx, nil
}

// setupTx sets up the transmit ring of fd (PACKET_TX_RING) for the
// version set on it, with slots of ringTxSlots frames of maxFrame; it
// returns the ring, unmapped, and its length in the mapping (nil and 0
// unless on).
func setupTx(fd int, v3 bool, maxFrame int, on bool) (*tpTx, int, error) {
	if !on {
		return nil, 0, nil
	}
	page := unix.Getpagesize()
	// A slot's frame starts at tp_hdrlen - sizeof(struct sockaddr_ll).
	t := &tpTx{v3: v3, statusOff: 20, lenOff: 16, dataOff: tpTxDataOff}
	if !v3 {
		t.statusOff, t.lenOff, t.dataOff = 0, 4, tp2TxDataOff
	}
	t.slotSize = (t.dataOff + maxFrame + 15) &^ 15
	t.blockSize = (t.slotSize*4 + page - 1) / page * page
	t.slotsPerBlk = t.blockSize / t.slotSize
	txBlocks := (ringTxSlots + t.slotsPerBlk - 1) / t.slotsPerBlk
	t.slots = txBlocks * t.slotsPerBlk
	tx := unix.TpacketReq3{Block_size: uint32(t.blockSize), Block_nr: uint32(txBlocks),
		Frame_size: uint32(t.slotSize), Frame_nr: uint32(t.slots)}
	if err := setsockoptReq3(fd, unix.PACKET_TX_RING, &tx); err != nil {
		return nil, 0, fmt.Errorf("PACKET_TX_RING: %w", err)
	}
	return t, t.blockSize * txBlocks, nil
}

// mapRaw maps n bytes of fd (-1: anonymous memory) read-write.
func mapRaw(fd, n, flags int) ([]byte, error) {
	p, err := unix.MmapPtr(fd, 0, nil, uintptr(n), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), n), nil
}

func unmapRaw(b []byte) {
	if len(b) > 0 {
		unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
	}
}

// setsockoptReq3 sets a ring; before TPACKET_V3 the kernel reads only
// the fields of struct tpacket_req, which req3 begins with.
func setsockoptReq3(fd, opt int, req *unix.TpacketReq3) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_PACKET, uintptr(opt),
		uintptr(unsafe.Pointer(req)), unsafe.Sizeof(*req), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func u32at(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func u64at(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

// close unmaps the rings once the reading goroutine has stopped and no
// writer is inside. Blocks still held by lent frames are evicted first,
// so the receiver's slices stay good until it releases them.
func (r *tpRing) close() {
	if r.mem == nil {
		return
	}
	if r.inBlk {
		r.inBlk = false
		r.finishBlock()
	}
	r.mu.Lock()
	r.closed = true // a block whose last holder lets go now stays as it is
	r.mu.Unlock()
	for k, b := range r.blks {
		if !r.evict(k, -1) && b.refs.Load() == 0 {
			unmapRaw(b.mem) // (a held block whose copy failed stays mapped)
		}
	}
	r.sp.drop()
	if r.tx != nil {
		unmapRaw(r.tx.mem)
	}
	r.mem = nil
}

// finishBlock lets go of the block the reader has delivered to the end:
// back to the kernel at once if nothing of it was lent, else counted as
// held until its last frame is released.
func (r *tpRing) finishBlock() {
	b := r.blks[r.blk]
	h := r.held.Add(1)
	if b.refs.Add(-1) == 0 {
		r.giveBack(b)
		return
	}
	if h > r.st.heldMax.Load() {
		r.st.heldMax.Store(h)
	}
}

// giveBack runs when the last holder of b lets go: the ring's block goes
// back to the kernel; an evicted block's copy is unmapped.
func (r *tpRing) giveBack(b *ringBlk) {
	if b.evicted.Load() {
		unmapRaw(b.mem)
		return
	}
	r.mu.Lock()
	if !r.closed {
		atomic.StoreUint32(u32at(b.mem, bdStatus), tpStatusKernel)
	}
	r.held.Add(-1)
	r.mu.Unlock()
}

// lend is the ring's side of Lender: a frame of the block being
// delivered stays where it is, the block held for it.
func (r *tpRing) lend(p []byte) Loan {
	if !r.inBlk {
		return nil
	}
	b := r.blks[r.blk]
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))
	if at < base || at+uintptr(len(p)) > base+uintptr(len(b.mem)) {
		return nil // not a frame of the ring (a copy made on the way)
	}
	if int(r.held.Load()) >= r.maxHeld {
		r.st.copied.Add(1)
		return nil
	}
	b.refs.Add(1)
	r.st.lent.Add(1)
	return b
}

// evictNear evicts the held blocks the kernel is about to reach: it
// fills the blocks after the ones handed over to us in this lap, in
// order, and would stop at a held one.
func (r *tpRing) evictNear(fd int) {
	w, seq := r.blk, r.nextSeq
	for range r.rxBlocks {
		m := r.blks[w].mem
		if atomic.LoadUint32(u32at(m, bdStatus))&tpStatusUser == 0 || *u64at(m, bdSeq) != seq {
			break // the kernel fills w now, or waits at it
		}
		w, seq = (w+1)%r.rxBlocks, seq+1
	}
	for k, b := range r.blks {
		if (k-w+r.rxBlocks)%r.rxBlocks <= r.evictAhead && b.refs.Load() > 0 {
			r.evict(k, fd)
		}
	}
}

// take is unit k of the ring at a new address: taken from the spare
// mapping, made anew when that has no unit k left.
func (s *ringSpare) take(k, fd int) ([]byte, error) {
	if s.mem == nil || !s.has[k] {
		s.drop()
		v, err := mapRaw(fd, s.mapLen, unix.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		unmapRaw(v[s.rxLen:]) // its transmit ring is not needed
		s.mem = v[:s.rxLen]
		for i := range s.has {
			s.has[i] = true
		}
	}
	s.has[k] = false
	lo, hi := k*s.unit, (k+1)*s.unit
	return s.mem[lo:hi:hi], nil
}

// drop unmaps what is left of the spare mapping, in runs of units.
func (s *ringSpare) drop() {
	for i := 0; i < len(s.has); {
		if !s.has[i] || s.mem == nil {
			i++
			continue
		}
		j := i
		for j < len(s.has) && s.has[j] {
			s.has[j] = false
			j++
		}
		unmapRaw(s.mem[i*s.unit : j*s.unit])
		i = j
	}
	s.mem = nil
}

// evict moves block k's lent frames out of the ring: a private copy of
// the block is moved over its address (mremap replaces the mapping in
// one step, so a reader of the frames sees the same bytes throughout),
// and the ring's block, mapped anew at another address, goes back to the
// kernel. With fd < 0 (closing) the ring's block is just dropped. False:
// nothing held it, or the kernel refused memory (counted; the block
// stays held and is tried again).
func (r *tpRing) evict(k, fd int) bool {
	b := r.blks[k]
	if !b.hold() {
		return false
	}
	defer b.Release()
	fresh, ok := r.sp.moveOut(b.mem, k, fd, &r.st)
	if !ok {
		return false
	}
	b.evicted.Store(true) // before our reference goes: the last Release unmaps the copy
	r.held.Add(-1)
	r.st.evicted.Add(1)
	if fresh != nil {
		r.blks[k] = &ringBlk{r: r, mem: fresh}
		atomic.StoreUint32(u32at(fresh, bdStatus), tpStatusKernel)
	}
	return true
}

// moveOut puts a private copy of mem, unit k of the receive ring, over
// mem's address and returns unit k mapped anew from the spare mapping
// (nil with fd < 0). False: the kernel refused memory, counted in st,
// and nothing changed.
func (s *ringSpare) moveOut(mem []byte, k, fd int, st *ringCounters) (fresh []byte, ok bool) {
	cp, err := mapRaw(-1, len(mem), unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		st.evictFail.Add(1)
		return nil, false
	}
	copy(cp, mem)
	if fd >= 0 {
		if fresh, err = s.take(k, fd); err != nil {
			unmapRaw(cp)
			st.evictFail.Add(1)
			return nil, false
		}
	}
	_, err = unix.MremapPtr(unsafe.Pointer(unsafe.SliceData(cp)), uintptr(len(cp)),
		unsafe.Pointer(unsafe.SliceData(mem)), uintptr(len(mem)), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED)
	if err != nil {
		unmapRaw(cp)
		unmapRaw(fresh)
		st.evictFail.Add(1)
		return nil, false
	}
	return fresh, true
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

// readRing is the read callback with a receive ring: it lets go of the
// block whose frames were all delivered, then delivers frames of the
// next block the kernel handed over, up to a batch at a time, straight
// from the ring (they stay valid until this is called again, or until
// released if lent).
func (a *AFPacket) readRing(fd uintptr) bool {
	r := a.ring
	for {
		if r.inBlk && r.pkt >= r.pkts {
			r.finishBlock()
			r.inBlk = false
			r.blk = (r.blk + 1) % r.rxBlocks
			r.nextSeq++
			if r.held.Load() > 0 {
				r.evictNear(int(fd))
			}
		}
		b := r.blks[r.blk]
		m := b.mem
		if !r.inBlk {
			st := atomic.LoadUint32(u32at(m, bdStatus))
			if st&tpStatusUser == 0 {
				if r.idle != nil {
					r.idle()
				}
				return false // the kernel still fills it: wait for the poller
			}
			if seq := *u64at(m, bdSeq); seq != r.nextSeq {
				if int64(seq-r.nextSeq) < 0 {
					// Ours from the last lap, still held: the kernel
					// waits here. Once the block is back (evicted now, or
					// released) the poller wakes us when it is full again.
					if b.refs.Load() > 0 {
						r.evict(r.blk, int(fd))
					}
					if r.idle != nil {
						r.idle()
					}
					return false
				}
				r.nextSeq = seq // never seen: the kernel skipped none so far
			}
			if st&tpStatusLosing != 0 {
				a.collectDrops(int(fd))
			}
			b.refs.Add(1) // the reader's hold
			r.inBlk = true
			r.pkt, r.pkts = 0, int(*u32at(m, bdNumPkts))
			r.off = int(*u32at(m, bdFirstPkt))
		}
		for limit := a.readLimit(len(a.frames)); r.pkt < r.pkts && a.nread < limit; {
			po := r.off
			if po < 0 || po+tp3HdrLen+sllPkttype >= r.rxBlockSize {
				r.pkt = r.pkts // a corrupt block: leave it
				a.stats.RxDropped.Add(1)
				break
			}
			h := po
			next := int(*u32at(m, h))
			snap, wlen := int(*u32at(m, h+12)), int(*u32at(m, h+16))
			mac := int(binary.NativeEndian.Uint16(m[h+24:]))
			r.pkt++
			r.off += next
			if m[h+tp3HdrLen+sllPkttype] == unix.PACKET_OUTGOING {
				continue
			}
			if snap < wlen || po+mac+snap > r.rxBlockSize || (a.vnet.on && mac < tp3HdrLen+vnetHdrLen) {
				a.stats.RxDropped.Add(1) // cut short: useless
				continue
			}
			f := m[h+mac : h+mac+snap : h+mac+snap]
			if a.vnet.on {
				meta, ok := parseVnetHdr(m[h+mac-vnetHdrLen:h+mac], 14)
				if !ok {
					a.stats.RxDropped.Add(1)
					continue
				}
				a.vnet.metas[a.nread] = meta
			}
			a.frames[a.nread] = f
			a.nread++
		}
		if a.nread > 0 {
			return true
		}
	}
}

// slot is the offset of transmit slot i in mem.
func (t *tpTx) slot(i int) int {
	return i/t.slotsPerBlk*t.blockSize + i%t.slotsPerBlk*t.slotSize
}

func (t *tpTx) status(s int) *uint32 { return u32at(t.mem, s+t.statusOff) }

// writeRing is the write callback with a transmit ring: frames are
// copied into free slots, then one sendto kicks the kernel. A full ring
// waits for the poller (the kernel frees slots as it sends them).
func (a *AFPacket) writeRing(fd uintptr) bool {
	t := a.tx
	// A slot holds the frame, after a virtio-net header only with
	// Offload (setupTx sized it so).
	hdr := 0
	if a.vnet.on {
		hdr = vnetHdrLen
	}
	for a.wnext < len(a.wframes) {
		f := a.wframes[a.wnext]
		if len(f) == 0 || len(f)+hdr > t.slotSize-t.dataOff {
			a.stats.TxDropped.Add(1)
			a.wnext++
			continue
		}
		s := t.slot(t.next)
		switch atomic.LoadUint32(t.status(s)) {
		case tpStatusAvailable:
		case tpStatusWrongFormat:
			a.stats.TxDropped.Add(1) // the kernel refused it; the slot is ours
		case tpStatusSendRequest:
			// Marked and not taken by the last kick (the kernel stopped
			// on an error): ask again; if it still will not, the rest
			// of this call is lost, counted, rather than waiting for a
			// wake-up that may never come.
			errno := a.kick(fd)
			if atomic.LoadUint32(t.status(s)) == tpStatusSendRequest {
				a.stats.TxDropped.Add(uint64(len(a.wframes) - a.wnext))
				if a.werr == nil && errno != 0 {
					a.werr = errno
				}
				a.wnext = len(a.wframes)
				return true
			}
			continue
		default: // in flight
			if t.pending {
				a.kick(fd)
				continue
			}
			return false // the kernel wakes the poller when it frees a slot
		}
		d := s + t.dataOff
		n := len(f)
		if a.vnet.on {
			var m Meta
			if a.vnet.wmeta != nil {
				m = a.vnet.wmeta[a.wnext]
			}
			putVnetHdr(t.mem[d:d+vnetHdrLen], m)
			d += vnetHdrLen
			n += vnetHdrLen
		}
		copy(t.mem[d:], f)
		*u32at(t.mem, s+t.lenOff) = uint32(n) // tp_len
		if t.v3 {
			*u32at(t.mem, s) = 0 // tp_next_offset
		}
		atomic.StoreUint32(t.status(s), tpStatusSendRequest)
		t.next = (t.next + 1) % t.slots
		t.pending = true
		a.wtaken++
		a.stats.TxFrames.Add(1)
		a.stats.TxBytes.Add(uint64(len(f)))
		a.wnext++
	}
	if t.pending && a.holding == 0 {
		a.kick(fd)
	}
	return true
}

// kick asks the kernel to send every marked slot.
func (a *AFPacket) kick(fd uintptr) unix.Errno {
	a.tx.pending = false
	for {
		_, errno := nbSyscall6(unix.SYS_SENDTO, fd, 0, 0, unix.MSG_DONTWAIT, 0, 0)
		a.wcalls.Add(1)
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

// RingStats are what the receive rings of an endpoint lent (summed over
// its sockets; HeldMax the largest of any).
type RingStats struct {
	Lent    uint64 // frames lent to the receiver in place
	Copied  uint64 // frames the receiver would have kept, copied because half the ring was held
	HeldMax int    // most blocks (TPACKET_V2: frame slots) held at once by lent frames
	Evicted uint64 // held blocks (slots) moved out of the ring so the kernel could go on filling it
	// EvictFailed counts evictions the kernel refused memory for (the
	// block stayed held; tried again later).
	EvictFailed uint64
	Blocks      int // blocks (TPACKET_V2: frame slots) in each receive ring
}

// RingStats reads the lending counters (zero without Ring).
func (a *AFPacket) RingStats() RingStats {
	var s RingStats
	for _, q := range a.afQueues() {
		var st *ringCounters
		switch {
		case q.ring != nil:
			st, s.Blocks = &q.ring.st, q.ring.rxBlocks
		case q.ring2 != nil:
			st, s.Blocks = &q.ring2.st, q.ring2.nslots
		default:
			continue
		}
		s.Lent += st.lent.Load()
		s.Copied += st.copied.Load()
		s.HeldMax = max(s.HeldMax, int(st.heldMax.Load()))
		s.Evicted += st.evicted.Load()
		s.EvictFailed += st.evictFail.Load()
	}
	return s
}

// afQueues are the sockets of the endpoint.
func (a *AFPacket) afQueues() []*AFPacket {
	if a.all == nil {
		return []*AFPacket{a}
	}
	return a.all
}
