package link

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// TAP and TUN endpoints read and write through io_uring (uring_linux.go)
// where the kernel allows it: the reading goroutine submits several
// reads per call, and a write of several frames (the frames held back
// while a received batch was delivered, holdWrites) is one call.

// uringInit gives e its rings, one for the reading goroutine and one for
// writers under wmu; where io_uring is unavailable e keeps one system
// call per frame, and uringErr says why.
func (e *fdEndpoint) uringInit(fd int) {
	r, err := newURing(fd, len(e.bufs))
	if err != nil {
		e.uringErr = err
		return
	}
	e.rring, e.rwant, e.readFn = r, 2, e.readRing
	if e.vnet.on {
		// Frames with virtio-net headers are written one writev(2)
		// each (writeVnet): the frames the stack hands over one at a
		// time are super-segments, too large to hold back and copy.
		return
	}
	w, err := newURing(fd, len(e.bufs))
	if err != nil {
		e.uringErr = err
		return
	}
	e.wring, e.writeFn = w, e.writeRing
}

// readEach is the read callback without io_uring: one read(2) per frame
// until the batch is full or nothing is left.
func (e *fdEndpoint) readEach(fd uintptr) bool {
	for e.nread < len(e.bufs) {
		b := e.bufs[e.nread]
		e.rcalls.Add(1)
		n, err := nbRead(fd, b[:cap(b)])
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return e.nread > 0
		default:
			e.rerr = err
			return true
		}
		e.took(b, n)
	}
	return true
}

// took files the n bytes read into b, which is bufs[nread], as the next
// frame (or drops them).
func (e *fdEndpoint) took(b []byte, n int) {
	if !e.vnet.on {
		if n <= 0 {
			return
		}
		e.frames[e.nread] = b[:n]
		e.nread++
		return
	}
	if n <= vnetHdrLen {
		return
	}
	m, ok := parseVnetHdr(b[:n], e.netOff())
	if !ok {
		e.stats.RxDropped.Add(1)
		return
	}
	e.frames[e.nread] = b[vnetHdrLen:n]
	e.vnet.metas[e.nread] = m
	e.nread++
}

// readRing is the read callback with io_uring: rwant reads per call.
// rwant adapts to what the file held: it doubles while every read finds
// a frame, and falls to one more than the batch read once one finds
// nothing, so a reader woken for one frame makes one call, not two, and
// one woken for many makes few.
func (e *fdEndpoint) readRing(fd uintptr) bool {
	r := e.rring
	if r == nil {
		return e.readEach(fd)
	}
	for e.nread < len(e.bufs) {
		base := e.nread
		k := min(e.rwant, len(e.bufs)-base, r.entries)
		for i := range k {
			b := e.bufs[base+i]
			r.prep(uringOpRead, int(fd), unsafe.Pointer(unsafe.SliceData(b)), cap(b))
		}
		e.rcalls.Add(1)
		if err := r.run(); err != nil {
			// A broken ring (never seen): one call per frame from now.
			e.rring = nil
			r.close()
			e.ringFailures.Add(1)
			return e.readEach(fd)
		}
		empty := false
		for i, res := range r.res[:k] {
			if res >= 0 {
				// Reads run in order, but one may find nothing and a
				// later one the frame that came meanwhile: frames stay
				// in bufs[:nread].
				if j := base + i; j != e.nread {
					e.bufs[j], e.bufs[e.nread] = e.bufs[e.nread], e.bufs[j]
					if e.lend.on {
						e.lend.arrs[j], e.lend.arrs[e.nread] = e.lend.arrs[e.nread], e.lend.arrs[j]
					}
				}
				e.took(e.bufs[e.nread], int(res))
				continue
			}
			switch errno := unix.Errno(-res); errno {
			case unix.EAGAIN:
				empty = true
			case unix.EINTR:
			default:
				if e.rerr == nil {
					e.rerr = errno
				}
			}
		}
		if e.rerr != nil {
			return true
		}
		if empty {
			e.rwant = min(max(e.nread+1, 2), len(e.bufs))
			return e.nread > 0
		}
		e.rwant = min(2*e.rwant, len(e.bufs))
	}
	return true
}

// writeRing is the write callback of a TAP or TUN without virtio-net
// headers with io_uring: the frames of one call in one io_uring_enter.
func (e *fdEndpoint) writeRing(fd uintptr) bool {
	r := e.wring
	if r == nil || len(e.wframes)-e.wnext < 2 {
		return e.writeOne(fd)
	}
	for e.wnext < len(e.wframes) {
		k := min(len(e.wframes)-e.wnext, r.entries)
		for _, f := range e.wframes[e.wnext : e.wnext+k] {
			r.prep(uringOpWrite, int(fd), unsafe.Pointer(unsafe.SliceData(f)), len(f))
		}
		e.wcalls.Add(1)
		if err := r.run(); err != nil {
			e.wring = nil
			r.close()
			e.ringFailures.Add(1)
			return e.writeOne(fd)
		}
		// A frame the kernel pushed back (EAGAIN; a TAP does not, but
		// the contract is to wait) is written again after the wait,
		// with those after it, unless a later one already went: then
		// it is dropped, as sending it late would reorder the flow.
		last := -1
		for i, res := range r.res[:k] {
			if res >= 0 {
				last = i
			}
		}
		for i, res := range r.res[:k] {
			f := e.wframes[e.wnext]
			switch {
			case res >= 0:
				e.wtaken++
				e.stats.TxFrames.Add(1)
				e.stats.TxBytes.Add(uint64(len(f)))
			case res == -int32(unix.EAGAIN) && i > last:
				return false
			default:
				e.stats.TxDropped.Add(1)
				if e.werr == nil {
					e.werr = unix.Errno(-res)
				}
			}
			e.wnext++
		}
	}
	return true
}

// writeOne is the write callback of TAP/TUN without io_uring: one
// write(2) per frame.
func (e *fdEndpoint) writeOne(fd uintptr) bool {
	for e.wnext < len(e.wframes) {
		f := e.wframes[e.wnext]
		_, err := nbWrite(fd, f)
		e.wcalls.Add(1)
		switch err {
		case nil:
			e.wtaken++
			e.stats.TxFrames.Add(1)
			e.stats.TxBytes.Add(uint64(len(f)))
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until writable
		default:
			e.stats.TxDropped.Add(1)
			if e.werr == nil {
				e.werr = err
			}
		}
		e.wnext++
	}
	return true
}

// closeRings closes the rings once neither the reader nor a writer can
// use them (Close, after the reading goroutine stopped).
func (e *fdEndpoint) closeRings() {
	if e.rring != nil {
		e.rring.close()
		e.rring = nil
	}
	e.wmu.Lock()
	if e.wring != nil {
		e.wring.close()
		e.wring = nil
	}
	e.wmu.Unlock()
}
