package tcp

import (
	"sync"
	"syscall"
	"unsafe"
)

// A large write copies the caller's bytes into the send ring with the
// endpoint's lock released. The copy is the one part of a write that
// does not touch the connection's state, and for a bulk sender it is a
// sixth of the process's work: done under the lock, it held off the link's reader
// (ACKs, and the transmissions they clock out) for its whole length, so
// the copy, the link's writes and the ACK processing ran one after the
// other on one core. Released, the reader acknowledges and sends while
// the writer copies (BENCHMARKS.md, "Copying into the send ring
// unlocked").
//
// What makes it safe:
//   - writers take their write lock (wmu) for the whole write, so only
//     one copies, and only writers grow the send ring (write's
//     growRing), so its buffer does not move during the copy (writing
//     tells the others one may be copying);
//   - the bytes copied lie behind sndLen, which nothing else reads or
//     writes: output sends from below sndLen, ACKs drop bytes from the
//     front;
//   - an ACK that empties the ring leaves head where it is while a copy
//     runs (input.go), so the copied bytes stay at sndLen's place;
//   - a ring let go during the copy (reset, close) is not pooled
//     (releaseRing): the copy lands in memory nobody else holds, and the
//     write fails as it would have had it come after.

// unlockedCopyMin is the smallest write copied with the lock released:
// below it the second lock round costs more than the copy it frees.
const unlockedCopyMin = 16 << 10

// sndCopyHook, set by tests, runs between releasing the lock and the
// copy, to make what may happen there happen.
var sndCopyHook func(e *Endpoint)

// writeLocks is the number of writers' locks of a Protocol. Endpoints
// share them, hashed by address, rather than each holding one: a mutex
// in the endpoint would take it into a larger size class (size_test.go).
// Two endpoints sharing one only wait for each other's copy.
const writeLocks = 64

// wmu is e's writers' lock.
func (e *Endpoint) wmu() *sync.Mutex {
	return &e.p.wlocks[e.lockIndex()]
}

// lockIndex is e's write lock and flush queue.
func (e *Endpoint) lockIndex() uint64 {
	return uint64(uintptr(unsafe.Pointer(e))) * 0x9e3779b97f4a7c15 >> 58
}

// writing says a writer may be inside write (its write lock is held),
// so may be copying into the send ring with the lock released. The
// caller holds e's lock. A writer waiting for that lock, or another
// endpoint's sharing the write lock, says yes too, which costs only a
// ring kept, or not pooled, a little longer.
func (e *Endpoint) writing() bool {
	m := e.wmu()
	if m.TryLock() {
		m.Unlock()
		return false
	}
	return true
}

// copyInUnlocked copies b into the send ring at sndLen, which must have
// the room, with e's lock released during the copy; e is locked again
// when it returns. It fails, with the bytes discarded, if the
// connection can no longer take them once the copy is done.
func (e *Endpoint) copyInUnlocked(b []byte) error {
	buf := e.snd.buf
	x, y := e.snd.slices(e.sndLen, len(b))
	e.mu.unlockNoFlush() // the reader may flush queued segments meanwhile (txdefer.go)
	if sndCopyHook != nil {
		sndCopyHook(e)
	}
	n := copy(x, b)
	copy(y, b[n:])
	e.lock()
	// The ring let go meanwhile (reset, close) has no buffer, or a new one.
	lost := len(e.snd.buf) != len(buf) || &e.snd.buf[0] != &buf[0]
	if !lost && !e.wrShut && (e.state == StateEstablished || e.state == StateCloseWait) {
		return nil
	}
	// The connection ended or was shut for writing meanwhile: as if this
	// write had come after that (write's checks).
	if e.err != nil {
		err := e.err
		e.err = nil
		return err
	}
	return syscall.EPIPE
}
