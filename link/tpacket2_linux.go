package link

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TPACKET_V2 receive ring (AFPacketOptions.RingVersion 2). The kernel
// writes each received frame into the next slot of the ring, a slot a
// frame, sets the slot's tp_status to TP_STATUS_USER and wakes the
// socket at once: a frame is ours as soon as it is written, where a
// TPACKET_V3 block is handed over only when it is full or its timer
// (ringRetireMs) fires. That timer is what held a sender's ACKs back for
// up to a millisecond each (a bbr sender then paced at a tenth of the
// link); V2 has none. The price is memory: a slot holds the largest
// frame (64 KB with Offload) whatever the frame's size.
//
// Lending works as on the V3 ring (tpacket_linux.go), a slot in place
// of a block. Slots are whole pages, so a held one can be evicted the
// same way. The reader holds the slots of the batch it delivers; the
// kernel fills slots strictly in order and drops everything while the
// slot at its head is still ours (packet_current_rx_frame), so:
//   - while half the slots are held by lent frames, frames are copied
//     (RingStats.Copied);
//   - a held slot within an eighth of the ring of the kernel's head is
//     evicted (RingStats.Evicted).
//
// Unlike a V3 block a slot carries no sequence number, so the reader
// cannot tell from the slot alone a frame the kernel just wrote from one
// of its own of the last lap still lent: both say TP_STATUS_USER. The
// reference counts tell, and they and the status change together under
// mu: a slot with no holder has been given back, so USER there is the
// kernel's. The one change outside mu is lend's: it adds a holder to a
// slot of the batch being delivered, which the reader holds, so its
// count never reaches zero that way.
//
// lend finds a frame's slot from its address: slot k lies at k slot
// sizes into the ring's mapping, or, once evicted and mapped anew, at an
// address of a spare mapping, which away records page by page.

const (
	tp2HdrLen    = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
	tp2TxDataOff = 32 // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
	// tp2Room is what a slot needs beyond the frame: the header,
	// sockaddr_ll, the kernel's alignment of the network header (at
	// most 16 bytes) and the virtio-net header (counted in maxFrame).
	tp2Room = 96

	// DefaultRing2Bytes is about how much a V2 receive ring takes;
	// DefaultRing2MinFrames the fewest slots it has: with Offload a slot
	// is 68 KiB, so 256 slots (17.8 MiB, as the V3 ring's 18 MiB), half
	// of them (the most lent frames may hold) 128 super-segments of
	// 65,160 payload bytes, 8.3 MB: TCP's largest receive window
	// (tcp.Config.MaxRecvBuf, 6 MiB) fits lent. Without Offload a slot
	// is a page, and the ring 4,096 of them.
	DefaultRing2Bytes     = 16 << 20
	DefaultRing2MinFrames = 256
	// ring2BlockBytes is the most slots of a kernel block take: the
	// kernel allocates a block in one piece (of a power of two pages).
	ring2BlockBytes = 1 << 20
)

// tp2Ring is a TPACKET_V2 receive ring, and the transmit ring mapped
// with it.
type tp2Ring struct {
	mem              []byte // the first mapping of both rings: receive slots, then the transmit ring
	rxLen, mapLen    int
	slotSize, nslots int
	tx               *tpTx

	// Reading goroutine only (and close after it).
	slots    []*ring2Slot // each slot as mapped now (an eviction maps it anew)
	next     int          // next slot to read
	first, n int          // the batch being delivered: slots first.. first+n-1
	sp       ringSpare
	// away is the slot of each page of the slots mapped anew after an
	// eviction (outside mem), by page number (address / page).
	away map[uintptr]int
	page uintptr

	mu                  sync.Mutex   // every slot's refs (but lend's additions) and evicted; held's changes; closed
	held                atomic.Int32 // slots delivered and still held by lent frames
	closed              bool
	maxHeld, evictAhead int
	st                  ringCounters
	// idle, if set (tests), runs when the reader has caught up with the
	// kernel and waits.
	idle func()
}

// ring2Slot is a receive slot and its holders; after an eviction mem is
// a private copy at the same address and the ring's slot has a new
// ring2Slot.
type ring2Slot struct {
	r       *tp2Ring
	mem     []byte
	refs    atomic.Int32 // the reader while it delivers the slot, plus one per lent frame
	evicted bool
}

// Release is Loan.Release: the lent frame of the slot let go.
func (s *ring2Slot) Release() {
	r := s.r
	r.mu.Lock()
	if s.refs.Add(-1) == 0 {
		r.giveBackLocked(s)
	}
	r.mu.Unlock()
}

// setupRing2 makes and maps the rings of fd with TPACKET_V2 (the
// transmit ring if withTx); frames is the number of receive slots (0:
// the default).
func setupRing2(fd, frames, maxFrame int, withTx bool) (*tp2Ring, error) {
	page := unix.Getpagesize()
	slot := (tp2Room + maxFrame + page - 1) / page * page
	perBlk := max(1, ring2BlockBytes/slot)
	if frames <= 0 {
		frames = max(DefaultRing2MinFrames, DefaultRing2Bytes/slot)
	}
	perBlk = min(perBlk, frames)
	blocks := (frames + perBlk - 1) / perBlk
	frames = blocks * perBlk
	// A block is whole slots, so slot k starts at k*slot in the mapping.
	rx := unix.TpacketReq3{Block_size: uint32(slot * perBlk), Block_nr: uint32(blocks),
		Frame_size: uint32(slot), Frame_nr: uint32(frames)}
	mem, tx, err := openRings(fd, unix.TPACKET_V2, &rx, maxFrame, withTx)
	if err != nil {
		return nil, err
	}
	r := &tp2Ring{rxLen: slot * frames, mapLen: len(mem), mem: mem, slotSize: slot, nslots: frames, tx: tx,
		maxHeld: max(frames/2, 1), evictAhead: max(frames/8, 2),
		away: make(map[uintptr]int), page: uintptr(page)}
	r.sp = ringSpare{has: make([]bool, frames), unit: slot, mapLen: r.mapLen, rxLen: r.rxLen}
	r.slots = make([]*ring2Slot, frames)
	for k := range r.slots {
		r.slots[k] = &ring2Slot{r: r, mem: mem[k*slot : (k+1)*slot : (k+1)*slot]}
	}
	return r, nil
}

// batch is the read batch for this ring: the reader holds its slots
// while it delivers them, so at most an eighth of the ring.
func (r *tp2Ring) batch(want int) int {
	if want <= 0 {
		want = 128
	}
	return max(1, min(want, r.nslots/8))
}

// giveBackLocked runs when the last holder of s lets go (mu held): the
// slot goes back to the kernel; an evicted slot's copy is unmapped.
func (r *tp2Ring) giveBackLocked(s *ring2Slot) {
	if s.evicted {
		unmapRaw(s.mem)
		return
	}
	if !r.closed {
		atomic.StoreUint32(u32at(s.mem, 0), tpStatusKernel)
	}
	r.held.Add(-1)
}

// finishBatchLocked lets go of the reader's hold on the slots of the
// batch just delivered (mu held).
func (r *tp2Ring) finishBatchLocked() {
	for i := range r.n {
		s := r.slots[(r.first+i)%r.nslots]
		r.held.Add(1)
		if s.refs.Add(-1) == 0 {
			r.giveBackLocked(s)
		}
	}
	if h := r.held.Load(); h > r.st.heldMax.Load() {
		r.st.heldMax.Store(h)
	}
	r.first, r.n = r.next, 0
}

// lend is the ring's side of Lender: a frame of the batch being
// delivered stays in its slot, the slot held for it. It runs on the
// reading goroutine, between readRing2's calls, so it reads the batch
// and the slots without mu.
func (r *tp2Ring) lend(p []byte) Loan {
	s := r.batchSlot(p)
	if s == nil {
		return nil // not a frame of the batch (a copy made on the way)
	}
	if int(r.held.Load()) >= r.maxHeld {
		r.st.copied.Add(1)
		return nil
	}
	s.refs.Add(1) // the reader holds s: never from zero
	r.st.lent.Add(1)
	return s
}

// batchSlot is the slot of the batch being delivered that p lies in
// wholly, or nil.
func (r *tp2Ring) batchSlot(p []byte) *ring2Slot {
	if len(p) == 0 || r.n == 0 {
		return nil
	}
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	var k int
	if off := at - uintptr(unsafe.Pointer(unsafe.SliceData(r.mem))); off < uintptr(r.rxLen) {
		k = int(off / uintptr(r.slotSize))
	} else if j, ok := r.away[at/r.page]; ok {
		k = j
	} else {
		return nil
	}
	if (k-r.first+r.nslots)%r.nslots >= r.n {
		return nil // a slot outside the batch
	}
	// Slot k may be mapped elsewhere now, its place in mem holding the
	// copy of an evicted slot's frames: those are not the batch's.
	s := r.slots[k]
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	if at < base || at+uintptr(len(p)) > base+uintptr(len(s.mem)) {
		return nil
	}
	return s
}

// setAway records (k >= 0) or forgets (k < 0) m, a slot's memory
// outside the ring's first mapping, in away.
func (r *tp2Ring) setAway(m []byte, k int) {
	at := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	if off := at - uintptr(unsafe.Pointer(unsafe.SliceData(r.mem))); off < uintptr(r.rxLen) {
		return // in the ring's first mapping: found by its offset
	}
	for pg := at / r.page; pg < (at+uintptr(len(m))+r.page-1)/r.page; pg++ {
		if k >= 0 {
			r.away[pg] = k
		} else {
			delete(r.away, pg)
		}
	}
}

// evictNearLocked evicts the held slots the kernel is about to reach:
// its head is the first slot after those it filled for us in this lap.
func (r *tp2Ring) evictNearLocked(fd int) {
	w := r.next
	for range r.nslots {
		s := r.slots[w]
		if s.refs.Load() > 0 || atomic.LoadUint32(u32at(s.mem, 0))&tpStatusUser == 0 {
			break // the kernel writes w next, or waits at it
		}
		w = (w + 1) % r.nslots
	}
	for i := range r.evictAhead + 1 {
		k := (w + i) % r.nslots
		if r.slots[k].refs.Load() > 0 {
			r.evictLocked(k, fd)
		}
	}
}

// evictLocked moves slot k's lent frame out of the ring as evict does a
// V3 block (mu held). False: nothing held it, or the kernel refused
// memory (counted; the slot stays held and is tried again).
func (r *tp2Ring) evictLocked(k, fd int) bool {
	s := r.slots[k]
	if s.refs.Load() == 0 {
		return false
	}
	fresh, ok := r.sp.moveOut(s.mem, k, fd, &r.st)
	if !ok {
		return false
	}
	s.evicted = true
	r.held.Add(-1)
	r.st.evicted.Add(1)
	r.setAway(s.mem, -1) // the copy's now, if it was away
	if fresh != nil {
		r.slots[k] = &ring2Slot{r: r, mem: fresh}
		r.setAway(fresh, k)
		atomic.StoreUint32(u32at(fresh, 0), tpStatusKernel)
	}
	return true
}

// close unmaps the rings once the reading goroutine has stopped and no
// writer is inside; slots still held are evicted first, so the
// receiver's frames stay good until it releases them.
func (r *tp2Ring) close() {
	if r.mem == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishBatchLocked()
	r.closed = true
	for k, s := range r.slots {
		if !r.evictLocked(k, -1) && s.refs.Load() == 0 {
			unmapRaw(s.mem) // (a held slot whose copy failed stays mapped)
		}
	}
	r.sp.drop()
	if r.tx != nil {
		unmapRaw(r.tx.mem)
	}
	r.mem = nil
}

// readRing2 is the read callback with a V2 receive ring: it lets go of
// the slots of the batch delivered last, then delivers the frames the
// kernel has written since, up to a batch, straight from their slots.
func (a *AFPacket) readRing2(fd uintptr) bool {
	r := a.ring2
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishBatchLocked()
	if r.held.Load() > 0 {
		r.evictNearLocked(int(fd))
	}
	for {
		for limit := a.readLimit(len(a.frames)); a.nread < limit; {
			s := r.slots[r.next]
			if s.refs.Load() > 0 {
				// Ours from the last lap, still lent: the kernel waits
				// here. Evicted, it is the kernel's again, and the
				// poller wakes us once it has filled it.
				r.evictLocked(r.next, int(fd))
				break
			}
			m := s.mem
			st := atomic.LoadUint32(u32at(m, 0))
			if st&tpStatusUser == 0 {
				break // the kernel's: not written yet
			}
			if st&tpStatusLosing != 0 {
				a.collectDrops(int(fd))
			}
			s.refs.Store(1) // the reader's hold, until the batch is delivered
			r.n++
			r.next = (r.next + 1) % r.nslots
			wlen, snap := int(*u32at(m, 4)), int(*u32at(m, 8))
			mac := int(binary.NativeEndian.Uint16(m[12:]))
			if m[tp2HdrLen+sllPkttype] == unix.PACKET_OUTGOING {
				continue
			}
			if snap < wlen || mac < tp2HdrLen || mac+snap > len(m) || (a.vnet.on && mac < tp2HdrLen+vnetHdrLen) {
				a.stats.RxDropped.Add(1) // cut short, or a header out of the slot: useless
				continue
			}
			f := m[mac : mac+snap : mac+snap]
			if a.vnet.on {
				meta, ok := parseVnetHdr(m[mac-vnetHdrLen:mac], 14)
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
		if r.n == 0 {
			if r.idle != nil {
				r.idle()
			}
			return false // wait for the poller
		}
		r.finishBatchLocked() // nothing to deliver in them: let go, look again
	}
}
