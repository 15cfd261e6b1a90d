package tcp

import "sync"

// ring is a byte ring that grows on demand up to a limit the caller
// enforces, so idle connections hold no buffer memory.
type ring struct {
	buf  []byte
	head int // index of the first byte
}

const (
	ringMinAlloc    = 1 << 10
	ringPoolClasses = 8 // 1 KiB .. 128 KiB buffers are recycled
)

// ringPools recycle ring buffers by power-of-two size so that short
// connections do not allocate their buffers anew.
var ringPools [ringPoolClasses]sync.Pool

func poolClass(n int) int {
	c := 0
	for s := ringMinAlloc; s < n; s <<= 1 {
		c++
	}
	if c >= ringPoolClasses || ringMinAlloc<<c != n {
		return -1
	}
	return c
}

func getBuf(n int) []byte {
	if c := poolClass(n); c >= 0 {
		if b := ringPools[c].Get(); b != nil {
			return poolSlice(b)
		}
	}
	return make([]byte, n)
}

// poolSlice and poolPtr convert between a pooled buffer and the array
// pointer the pool holds: a pointer to the array, not to a slice header,
// so that putting a buffer back allocates nothing.
func poolSlice(b any) []byte {
	switch p := b.(type) {
	case *[1 << 10]byte:
		return p[:]
	case *[2 << 10]byte:
		return p[:]
	case *[4 << 10]byte:
		return p[:]
	case *[8 << 10]byte:
		return p[:]
	case *[16 << 10]byte:
		return p[:]
	case *[32 << 10]byte:
		return p[:]
	case *[64 << 10]byte:
		return p[:]
	case *[128 << 10]byte:
		return p[:]
	}
	return nil
}

func poolPtr(b []byte) any {
	switch len(b) {
	case 1 << 10:
		return (*[1 << 10]byte)(b)
	case 2 << 10:
		return (*[2 << 10]byte)(b)
	case 4 << 10:
		return (*[4 << 10]byte)(b)
	case 8 << 10:
		return (*[8 << 10]byte)(b)
	case 16 << 10:
		return (*[16 << 10]byte)(b)
	case 32 << 10:
		return (*[32 << 10]byte)(b)
	case 64 << 10:
		return (*[64 << 10]byte)(b)
	case 128 << 10:
		return (*[128 << 10]byte)(b)
	}
	return nil
}

// release gives the buffer back; the ring is empty afterwards.
func (r *ring) release() {
	if c := poolClass(len(r.buf)); c >= 0 && cap(r.buf) == len(r.buf) {
		ringPools[c].Put(poolPtr(r.buf))
	}
	r.buf = nil
	r.head = 0
}

// grow makes room for at least need bytes from head, keeping the first
// keep bytes.
func (r *ring) grow(need, keep, limit int) { r.growPool(need, keep, limit, true) }

// growPool is grow; pool false drops the old buffer to the collector
// instead of its pool, for one that somebody may still read.
func (r *ring) growPool(need, keep, limit int, pool bool) {
	if need <= len(r.buf) {
		return
	}
	n := max(len(r.buf)*2, ringMinAlloc)
	for n < need {
		n *= 2
	}
	if n > limit {
		n = max(limit, need)
	}
	nb := getBuf(n)
	r.copyOut(nb[:keep], 0)
	old := *r
	r.buf = nb
	r.head = 0
	if pool {
		old.release()
	}
}

// copyOut copies len(b) bytes starting off bytes after head.
func (r *ring) copyOut(b []byte, off int) {
	if len(b) == 0 {
		return
	}
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	n := copy(b, r.buf[i:])
	if n < len(b) {
		copy(b[n:], r.buf)
	}
}

// copyIn writes b at off bytes after head (room must exist).
func (r *ring) copyIn(b []byte, off int) {
	if len(b) == 0 {
		return
	}
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	n := copy(r.buf[i:], b)
	if n < len(b) {
		copy(r.buf, b[n:])
	}
}

// slices returns the n bytes at off as up to two slices (no copy).
func (r *ring) slices(off, n int) (a, b []byte) {
	if n == 0 {
		return nil, nil
	}
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	if i+n <= len(r.buf) {
		return r.buf[i : i+n], nil
	}
	return r.buf[i:], r.buf[:n-(len(r.buf)-i)]
}

// consume drops n bytes from the front.
func (r *ring) consume(n int) {
	r.head += n
	if len(r.buf) > 0 && r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
}

// oooRange is a block of out-of-order data held in the receive ring.
type oooRange struct {
	start, end uint32 // sequence numbers [start, end)
	recent     uint32 // larger = more recently updated (SACK order)
}

// maxOOORanges bounds the out-of-order bookkeeping; beyond it segments
// that would open a new hole are dropped (and counted).
const maxOOORanges = 32

func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqGEQ(a, b uint32) bool { return int32(a-b) >= 0 }
func seqMax(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}
func seqMin(a, b uint32) uint32 {
	if seqLT(a, b) {
		return a
	}
	return b
}

// sackBlock is one range the peer has SACKed.
type sackBlock struct{ start, end uint32 }

// maxScoreboard bounds the SACK scoreboard.
const maxScoreboard = 32

// scoreboard holds the SACKed ranges above SND.UNA, sorted, disjoint.
type scoreboard struct {
	blocks  []sackBlock
	sacked  int    // bytes covered
	highest uint32 // highest SACKed sequence (end), valid if len>0
}

func (s *scoreboard) reset() {
	s.blocks = s.blocks[:0]
	s.sacked = 0
}

// add merges [a,b) into the board; it reports whether it added bytes.
func (s *scoreboard) add(a, b uint32) bool {
	if !seqLT(a, b) {
		return false
	}
	before := s.sacked
	// Find the insertion point, then merge overlapping / adjacent blocks.
	i := 0
	for i < len(s.blocks) && seqLT(s.blocks[i].end, a) {
		i++
	}
	j := i
	na, nb := a, b
	for j < len(s.blocks) && seqLEQ(s.blocks[j].start, nb) {
		na = seqMin(na, s.blocks[j].start)
		nb = seqMax(nb, s.blocks[j].end)
		j++
	}
	// Replace blocks[i:j] by [na,nb).
	removed := 0
	for k := i; k < j; k++ {
		removed += int(s.blocks[k].end - s.blocks[k].start)
	}
	if j-i == 1 {
		s.blocks[i] = sackBlock{na, nb}
	} else if j-i > 1 {
		s.blocks[i] = sackBlock{na, nb}
		s.blocks = append(s.blocks[:i+1], s.blocks[j:]...)
	} else {
		if len(s.blocks) >= maxScoreboard {
			// Full: forget the highest block, it is the least useful.
			if i == len(s.blocks) {
				return false
			}
			last := s.blocks[len(s.blocks)-1]
			s.sacked -= int(last.end - last.start)
			s.blocks = s.blocks[:len(s.blocks)-1]
		}
		s.blocks = append(s.blocks, sackBlock{})
		copy(s.blocks[i+1:], s.blocks[i:])
		s.blocks[i] = sackBlock{na, nb}
	}
	s.sacked += int(nb-na) - removed
	s.highest = s.blocks[len(s.blocks)-1].end
	return s.sacked > before
}

// ackTo drops everything below una.
func (s *scoreboard) ackTo(una uint32) {
	n := 0
	for n < len(s.blocks) && seqLEQ(s.blocks[n].end, una) {
		s.sacked -= int(s.blocks[n].end - s.blocks[n].start)
		n++
	}
	if n > 0 {
		s.blocks = append(s.blocks[:0], s.blocks[n:]...)
	}
	if len(s.blocks) > 0 && seqLT(s.blocks[0].start, una) {
		s.sacked -= int(una - s.blocks[0].start)
		s.blocks[0].start = una
	}
}

// isSacked reports whether seq is covered, and if so the block end;
// otherwise the start of the next block above seq (or 0,false,false).
func (s *scoreboard) lookup(seq uint32) (sacked bool, end uint32, nextStart uint32, hasNext bool) {
	for _, b := range s.blocks {
		if seqLT(seq, b.start) {
			return false, 0, b.start, true
		}
		if seqLT(seq, b.end) {
			return true, b.end, 0, false
		}
	}
	return false, 0, 0, false
}

// holeBytes counts unSACKed bytes in [from, to).
func (s *scoreboard) holeBytes(from, to uint32) int {
	if !seqLT(from, to) {
		return 0
	}
	n := int(to - from)
	for _, b := range s.blocks {
		a, e := seqMax(b.start, from), seqMin(b.end, to)
		if seqLT(a, e) {
			n -= int(e - a)
		}
	}
	return n
}
