package link

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The links' data-path system calls go to non-blocking fds (initFD sets
// O_NONBLOCK; AF_PACKET calls add MSG_DONTWAIT), so they never wait for
// the network. They are made as raw system calls, outside the Go
// scheduler's syscall state: a sendmmsg to a veth runs the kernel's TCP
// for the frames it delivers and can take tens of microseconds, and a
// call in the syscall state that long has the runtime's sysmon hand the
// goroutine's P to another thread and keep polling every 20 µs. At
// kernel speed that was about a third of the process's context
// switches and a tenth of its CPU (BENCHMARKS.md, "Raw system calls on
// the data path"). Only calls that cannot block may use these.

// nbSyscall6 makes a system call that cannot block as a raw one. Its
// callers convert pointers to uintptr in the call itself; the directive
// keeps what they point to on the heap and alive until it returns, as
// the compiler does for a direct call of unix.RawSyscall6.
//
//go:uintptrescapes
func nbSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, unix.Errno) {
	r, _, errno := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	return r, errno
}

// errOf is the error of an errno, nil for 0.
func errOf(errno unix.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

// nbRead is read(2) on a non-blocking fd.
func nbRead(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, errno := nbSyscall6(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return int(r), errOf(errno)
}

// nbWrite is write(2) on a non-blocking fd.
func nbWrite(fd uintptr, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	r, errno := nbSyscall6(unix.SYS_WRITE, fd, uintptr(p), uintptr(len(b)), 0, 0, 0)
	return int(r), errOf(errno)
}
