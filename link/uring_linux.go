package link

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TAP or TUN file takes one frame per write(2), and in this project's
// virtual machine a system call costs more than a microsecond on its
// own: without offloads, where every segment is a frame, that was most
// of what sending cost us beyond the kernel's own work. An io_uring
// submits many writes in one io_uring_enter(2). It is used here in the
// simplest way that keeps the links' contract: every operation is made
// non-blocking (RWF_NOWAIT, so the kernel runs it at once inside the
// call and answers EAGAIN instead of waiting), and the call waits for
// all of them, so no operation outlives the call and no buffer is held
// by the kernel afterwards (BENCHMARKS.md, "Batched writes on TAP and
// TUN").

// io_uring ABI (linux/io_uring.h).
const (
	sysIOURingSetup = 425
	sysIOURingEnter = 426

	uringOffSQRing = 0
	uringOffSQEs   = 0x10000000

	uringFeatSingleMmap = 1 << 0
	uringEnterGetEvents = 1 << 0

	uringOpRead  = 22
	uringOpWrite = 23

	rwfNowait = 0x8
)

// uringParams is struct io_uring_params.
type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	rwFlags  uint32
	userData uint64
	_        [3]uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uring is one io_uring used by one goroutine at a time (a writer
// holding wmu).
type uring struct {
	fd      int
	ring    []byte // the mapped SQ and CQ rings
	sqeMem  []byte
	sqTail  *uint32
	sqMask  uint32
	sqes    []uringSQE
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []uringCQE
	entries int
	n       int     // operations prepared for the next run
	res     []int32 // results of the last run, by position
}

// errURingNoWait: the kernel cannot make the file's operations
// non-blocking.
var errURingNoWait = errors.New("link: io_uring cannot use this file without blocking (RWF_NOWAIT refused)")

// uringSetupHook, when set (tests), replaces io_uring_setup's answer.
var uringSetupHook func() error

// newURing makes an io_uring of entries operations for fd, and checks
// that the kernel runs operations on fd without waiting: a read of
// nothing with RWF_NOWAIT is refused (EOPNOTSUPP) by files that cannot
// (the flag is the file's, for reads and writes alike). It
// returns an error wherever io_uring is missing or forbidden (old
// kernels, kernel.io_uring_disabled, a seccomp filter): the caller then
// makes one system call per frame.
func newURing(fd, entries int) (*uring, error) {
	if uringSetupHook != nil {
		if err := uringSetupHook(); err != nil {
			return nil, err
		}
	}
	var p uringParams
	rfd, _, errno := unix.Syscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, errno
	}
	r := &uring{fd: int(rfd), entries: int(p.sqEntries)}
	fail := func(err error) (*uring, error) {
		r.close()
		return nil, err
	}
	if p.features&uringFeatSingleMmap == 0 {
		return fail(unix.ENOSYS) // before Linux 5.4: not worth a second path
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	m, err := unix.Mmap(r.fd, uringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(err)
	}
	r.ring = m
	s, err := unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(err)
	}
	r.sqeMem = s
	base := unsafe.Pointer(&m[0])
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqTail, r.sqMask = at(p.sqOff.tail), *at(p.sqOff.ringMask)
	r.cqHead, r.cqTail, r.cqMask = at(p.cqOff.head), at(p.cqOff.tail), *at(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&s[0])), p.sqEntries)
	// Slot i of the submission array always names SQE i: entries are
	// filled in ring order, so the indirection is never needed.
	arr := unsafe.Slice(at(p.sqOff.array), p.sqEntries)
	for i := range arr {
		arr[i] = uint32(i)
	}
	r.res = make([]int32, r.entries)
	var none [1]byte
	r.prep(uringOpRead, fd, unsafe.Pointer(&none[0]), 0)
	if err := r.run(); err != nil {
		return fail(err)
	}
	if r.res[0] == -int32(unix.EOPNOTSUPP) || r.res[0] == -int32(unix.EINVAL) {
		return fail(errURingNoWait)
	}
	return r, nil
}

// prep adds a non-blocking read or write of n bytes at p on fd to the
// next run; the caller keeps p alive until run returns and never
// prepares more than entries.
func (r *uring) prep(op uint8, fd int, p unsafe.Pointer, n int) {
	tail := atomic.LoadUint32(r.sqTail) + uint32(r.n)
	r.sqes[tail&r.sqMask] = uringSQE{
		opcode:   op,
		fd:       int32(fd),
		off:      ^uint64(0), // the file position: none for a device
		addr:     uint64(uintptr(p)),
		len:      uint32(n),
		rwFlags:  rwfNowait,
		userData: uint64(r.n),
	}
	r.n++
}

// uringNotRun is the result of an operation that did not run: the ring
// broke before it was submitted or before its completion was seen.
const uringNotRun = int32(-1 << 31)

// uringEnterHook, when set (tests), gives how many of the want entries
// the next io_uring_enter submits, and may break the ring first.
var uringEnterHook func(r *uring, want int) int

// run submits the prepared operations and waits until all have
// completed; res[i] is the result of the i-th (bytes, or -errno). On an
// error the ring is broken: the operations it ran are those before the
// first uringNotRun (submission is in order), the rest did not run.
// Non-blocking operations complete inside the call, so the wait does
// not sleep; it is a raw system call for that reason (nbsys_linux.go).
func (r *uring) run() error {
	n := r.n
	r.n = 0
	if n == 0 {
		return nil
	}
	for i := range r.res[:n] {
		r.res[i] = uringNotRun
	}
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+uint32(n))
	sub, done := 0, 0
	var err error
	for done < n && err == nil {
		k := n - sub
		if uringEnterHook != nil {
			k = uringEnterHook(r, k)
		}
		// Wait for all submitted so far; the kernel does not wait when
		// it submitted fewer than asked, and we come round again.
		got, errno := nbSyscall6(sysIOURingEnter, uintptr(r.fd), uintptr(k), uintptr(sub+k-done), uringEnterGetEvents, 0, 0)
		switch errno {
		case 0:
			sub += int(got)
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			// Interrupted, or the kernel was short of memory for a
			// moment: what was submitted completes; ask again.
		default:
			// A broken ring (never seen but in tests): the caller
			// closes it and goes back to one system call per frame.
			// Entries not submitted are taken back; the completions
			// of those submitted are still read below.
			atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)-uint32(n-sub))
			err = errno
		}
		head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
		for ; head != tail; head++ {
			c := &r.cqes[head&r.cqMask]
			if int(c.userData) < n {
				r.res[c.userData] = c.res
				done++
			}
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return err
}

// close unmaps the rings and closes the io_uring.
func (r *uring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.ring != nil {
		unix.Munmap(r.ring)
	}
	unix.Close(r.fd)
}
