package tcp

// Memory and orphan limits, like Linux's tcp_mem and tcp_max_orphans.
// Every send and receive ring of every connection is charged to one
// total (Stats().MemBytes): above Config.MemPressure receive windows and
// buffers stop growing; at Config.MemLimit incoming data that would need
// a larger receive ring is dropped (RcvMemDrops) before it is
// acknowledged, so no acknowledged data is ever lost. A ring is charged
// its capacity, whatever the segments that filled it: tiny segments
// cost no more than their bytes, and out-of-order data waits inside the
// same ring (its ranges in a bounded list, maxOOORanges).

// growRing grows r like ring.grow and charges the difference.
func (e *Endpoint) growRing(r *ring, need, keep, limit int) {
	old := len(r.buf)
	// A send ring that queued segments still point into is not pooled
	// (txdefer.go).
	r.growPool(need, keep, limit, r != &e.snd || !e.flushPending())
	if d := len(r.buf) - old; d != 0 {
		e.p.memAdd(d)
	}
}

// releaseRing frees r and uncharges it.
func (e *Endpoint) releaseRing(r *ring) {
	if n := len(r.buf); n > 0 {
		e.p.memAdd(-n)
	}
	if r == &e.snd && e.ringPinned() {
		// A writer may be copying into it with the lock released
		// (sndcopy.go), or queued segments point into it (txdefer.go):
		// it is not pooled, so nobody else gets it meanwhile.
		r.buf, r.head = nil, 0
		return
	}
	r.release()
}

// idleRingMax is the largest empty ring given back at once: a small
// one belongs to a connection exchanging small messages, which may then
// sit idle for long (a million of them would hold gigabytes), and it
// comes back from its pool without allocation; a larger one belongs to
// a bulk flow, which keeps it.
const idleRingMax = 4 << 10

// idleRing gives back r, now empty, if it is small.
func (e *Endpoint) idleRing(r *ring) {
	if n := len(r.buf); n > 0 && n <= idleRingMax {
		e.releaseRing(r)
	}
}

// memAdd changes the total; crossing MemPressure upwards is counted.
func (p *Protocol) memAdd(d int) {
	n := int64(p.st.MemBytes.Add(uint64(int64(d))))
	if d > 0 && n > p.cfg.MemPressure && n-int64(d) <= p.cfg.MemPressure {
		p.st.MemoryPressures.Add(1)
	}
}

func (p *Protocol) memTotal() int64 { return int64(p.st.MemBytes.Load()) }

// memPressure reports whether buffers should stop growing.
func (p *Protocol) memPressure() bool { return p.memTotal() > p.cfg.MemPressure }

// rcvMemRefuse reports (and counts) that data needing the receive ring
// to hold need bytes must be dropped: the ring would have to grow and
// the total is at the hard limit.
func (e *Endpoint) rcvMemRefuse(need int) bool {
	if need <= len(e.rcv.buf) || e.p.memTotal() < e.p.cfg.MemLimit {
		return false
	}
	e.p.st.RcvMemDrops.Add(1)
	return true
}

// memClampWindow limits the window offered under memory pressure to the
// space the receive ring already has (at least a few segments, so the
// connection keeps moving), like Linux clamping rcv_ssthresh.
func (e *Endpoint) memClampWindow(w int) int {
	if !e.p.memPressure() {
		return w
	}
	return min(w, max(len(e.rcv.buf)-e.rcvLen, 4*e.advMSS))
}

// orphanClose runs at the end of Close: a connection that is still
// finishing is an orphan. Beyond MaxOrphans (or at the memory hard
// limit) it is reset at once, as Linux's tcp_check_oom does.
func (e *Endpoint) orphanClose() {
	if e.state == StateClosed || e.orphan {
		return
	}
	e.orphan = true
	n := e.p.st.Orphans.Add(1)
	if int(n) > e.p.cfg.MaxOrphans || e.p.memTotal() >= e.p.cfg.MemLimit {
		e.p.st.AbortOnMemory.Add(1)
		e.sendReset()
		e.abortLocked(nil)
	}
}

// unorphan uncounts an orphan that has closed (setClosed).
func (e *Endpoint) unorphan() {
	if e.orphan {
		e.orphan = false
		e.p.st.Orphans.Add(^uint64(0))
	}
}
