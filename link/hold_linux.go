package link

// While the reading goroutine delivers a batch (holding, under wmu),
// what the receiver writes in answer (TCP's data on an ACK, its ACKs)
// is held back and sent in one system call when the batch is done: a
// sendmmsg on AF_PACKET, an io_uring_enter on a TAP or TUN. The stack
// hands the link one frame per call, so this is where writes become
// batches. Frames are copied into pend, so only endpoints whose frames
// are of the MTU hold them (not with virtio-net headers, where they may
// be 64 KB, nor with AF_PACKET's transmit ring, whose slots hold them).

// TCP's flusher holds writes too (HoldWrites, through the stack): the
// segments it hands over one at a time leave together.

// holdState is the held frames of an fdEndpoint, under wmu.
type holdState struct {
	holding int      // holders: the reading goroutine, flushers (HoldWrites)
	pend    [][]byte // held frames, pend[:npend]; nil when frames are not held
	npend   int
}

// initHold makes room to hold n frames of up to maxFrame bytes.
func (e *fdEndpoint) initHold(n, maxFrame int) {
	e.pend = make([][]byte, n)
	for i := range e.pend {
		e.pend[i] = make([]byte, 0, maxFrame)
	}
}

// holdWrites is the deliverHook of an endpoint that holds frames:
// writes are held from the start of a delivered batch to its end, then
// sent, unless another holder still holds them.
func (e *fdEndpoint) holdWrites(start bool) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.hold(start) {
		e.flushHeld()
	}
}

// hold counts a holder in (start) or out (wmu held); it says the last
// one left. A release with no holder (a stack that gained the link
// while a flusher held its others) counts for nothing: at worst frames
// leave early, never late.
func (e *fdEndpoint) hold(start bool) bool {
	if start {
		e.holding++
		return false
	}
	if e.holding == 0 {
		return false
	}
	e.holding--
	return e.holding == 0
}

// FlushHeld is link.Holder's: the held frames leave now.
func (e *fdEndpoint) FlushHeld() {
	if e.pend == nil {
		return
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.flushHeld()
}

// HoldWrites is link.Holder: between HoldWrites(true) and
// HoldWrites(false) the frames written may be held and sent together.
// Only endpoints that hold frames while a batch is delivered do.
func (e *fdEndpoint) HoldWrites(start bool) {
	if e.pend != nil {
		e.holdWrites(start)
	}
}

// flushHeld sends the held frames (wmu held); what the kernel refuses
// is counted in TxDropped.
func (e *fdEndpoint) flushHeld() error {
	k := e.npend
	e.npend = 0
	if k == 0 {
		return nil
	}
	_, err := e.writeLocked(e.pend[:k])
	return err
}

// writeHeld is WriteFrames while holding (wmu held).
func (e *fdEndpoint) writeHeld(frames [][]byte) (int, error) {
	n := 0
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for i, f := range frames {
		if len(f) == 0 || len(f) > cap(e.pend[0]) {
			// Not one to hold (the write refuses it, counted): in
			// order, after what is held.
			keep(e.flushHeld())
			k, err := e.writeLocked(frames[i : i+1])
			n += k
			keep(err)
			continue
		}
		if e.npend == len(e.pend) {
			keep(e.flushHeld())
		}
		// Copied: a caller may reuse f once WriteFrames returns
		// (Endpoint.WriteFrames), and the stack does. Frames here are
		// of the MTU, so the copy is small.
		e.pend[e.npend] = append(e.pend[e.npend][:0], f...)
		e.npend++
		n++
	}
	return n, first
}
