package link

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// TAP and TUN endpoints without virtio-net headers write through
// io_uring (uring_linux.go) where the kernel allows it: a write of
// several frames (those held back while a received batch is delivered
// or while TCP hands over a flush, hold_linux.go) is one call. They
// read one frame per read(2): batched reads drained the device faster
// than the kernel filled it, so the stack took smaller batches, each
// with its ACK and its wake-up, and received slower (BENCHMARKS.md,
// "Batched writes on TAP and TUN").

// uringInit gives e its ring, used by writers under wmu; where io_uring
// is unavailable e keeps one system call per frame, and uringErr says
// why.
func (e *fdEndpoint) uringInit(fd int) {
	w, err := newURing(fd, len(e.bufs))
	if err != nil {
		e.uringErr = err
		return
	}
	e.wring, e.writeFn = w, e.writeRing
}

// readEach is the read callback of TAP and TUN: one read(2) per frame
// until the batch is full or nothing is left.
func (e *fdEndpoint) readEach(fd uintptr) bool {
	for limit := e.readLimit(len(e.bufs)); e.nread < limit; {
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
		failed := r.run() != nil
		if failed {
			// A broken ring: one write(2) per frame from now, starting
			// at the first frame it did not write (below).
			e.wring = nil
			r.close()
			e.ringFailures.Add(1)
		}
		// A frame the kernel pushed back (EAGAIN; a TAP does not, but
		// the contract is to wait) is written again after the wait,
		// with those after it, unless a later one already went: then
		// it is dropped, as sending it late would reorder the flow.
		ran, last := k, -1
		for i, res := range r.res[:k] {
			if res == uringNotRun {
				ran = i
				break
			}
			if res >= 0 {
				last = i
			}
		}
		for i, res := range r.res[:ran] {
			var err error
			switch {
			case res >= 0:
			case res == -int32(unix.EAGAIN) && i > last:
				return false
			default:
				err = unix.Errno(-res)
			}
			e.wrote(err, len(e.wframes[e.wnext]))
		}
		if failed {
			return e.writeOne(fd)
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
		if e.wrote(err, len(f)) {
			return false // wait until writable
		}
	}
	return true
}

// wrote accounts for the write of frame wnext (n bytes) that ended with
// err, and moves on to the next frame unless the write is to be made
// again: at once after EINTR, or after waiting (EAGAIN; it says so).
// Other errors drop the frame, counted, the first one kept in werr.
func (e *fdEndpoint) wrote(err error, n int) (wait bool) {
	switch err {
	case nil:
		e.wtaken++
		e.stats.TxFrames.Add(1)
		e.stats.TxBytes.Add(uint64(n))
	case unix.EINTR:
		return false
	case unix.EAGAIN:
		return true
	default:
		e.stats.TxDropped.Add(1)
		if e.werr == nil {
			e.werr = err
		}
	}
	e.wnext++
	return false
}

// closeRings closes the ring once no writer can use it (Close).
func (e *fdEndpoint) closeRings() {
	e.wmu.Lock()
	if e.wring != nil {
		e.wring.close()
		e.wring = nil
	}
	e.wmu.Unlock()
}
