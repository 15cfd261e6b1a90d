package interop

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
)

// CPU per byte: the machine these tests run on is shared, so Gbit/s
// swings with other load; the CPU time the sockstack process (this test
// binary: the stack, its link goroutines and the application reading or
// writing) spends per GiB moved swings much less. getrusage(RUSAGE_SELF)
// counts every thread of the process and none of the kernel-side tools
// (socat runs as a child, in RUSAGE_CHILDREN).

// cpuMark is the process's user and system CPU time, and its context
// switches (a thread's sleeps and wake-ups), at one moment.
type cpuMark struct {
	user, sys time.Duration
	csw       int64
}

func cpuNow(t *testing.T) cpuMark {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return cpuMark{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw}
}

// cpuPerGiB is the CPU the process spent since m, per GiB of n bytes.
type cpuPerGiB struct{ total, user, sys, csw float64 } // seconds (switches) per GiB

func (m cpuMark) since(t *testing.T, n int64) cpuPerGiB {
	now := cpuNow(t)
	gib := float64(n) / (1 << 30)
	u, s := (now.user - m.user).Seconds(), (now.sys - m.sys).Seconds()
	return cpuPerGiB{(u + s) / gib, u / gib, s / gib, float64(now.csw-m.csw) / gib}
}

func (c cpuPerGiB) String() string {
	return fmt.Sprintf("%.3f CPU s/GiB (user %.3f, sys %.3f), %.0f context switches/GiB", c.total, c.user, c.sys, c.csw)
}

// logFrames logs the frames h's link read and wrote since s0: on a
// receiving connection, super-segments in and ACKs out.
func logFrames(t *testing.T, h *host, s0 link.Snapshot) {
	s1 := h.nic.Endpoint().Stats().Snapshot()
	ts := h.st.TCP.Stats()
	t.Logf("link: %d frames read (%.0f bytes each), %d written; TCP payloads kept in the link's buffers so far %d (queue full %d)", s1.RxFrames-s0.RxFrames,
		float64(s1.RxBytes-s0.RxBytes)/float64(max(s1.RxFrames-s0.RxFrames, 1)), s1.TxFrames-s0.TxFrames, ts.LentSegs, ts.LentQueueFull)
}

// callCounter is a link that counts its read and write system calls
// (link.TAP).
type callCounter interface {
	ReadCalls() uint64
	WriteCalls() uint64
}

// linkCount is what a link's system calls carried over a stretch of a
// test; counted false when the link does not count them.
type linkCount struct {
	counted                   bool
	reads, writes, rxFr, txFr uint64
}

func (c linkCount) String() string {
	if !c.counted {
		return ""
	}
	return fmt.Sprintf("link: %d frames read in %d system calls (%.2f each), %d written in %d (%.2f each)",
		c.rxFr, c.reads, c.perRead(), c.txFr, c.writes, c.perWrite())
}

func (c linkCount) perRead() float64  { return float64(c.rxFr) / float64(max(c.reads, 1)) }
func (c linkCount) perWrite() float64 { return float64(c.txFr) / float64(max(c.writes, 1)) }

// linkCalls starts counting h's link's system calls; the function it
// returns tells how many frames each carried since.
func linkCalls(h *host) func() linkCount {
	c, ok := h.nic.Endpoint().(callCounter)
	if !ok {
		return func() linkCount { return linkCount{} }
	}
	st := h.nic.Endpoint().Stats()
	r0, w0, rf0, wf0 := c.ReadCalls(), c.WriteCalls(), st.RxFrames.Load(), st.TxFrames.Load()
	return func() linkCount {
		return linkCount{true, c.ReadCalls() - r0, c.WriteCalls() - w0, st.RxFrames.Load() - rf0, st.TxFrames.Load() - wf0}
	}
}

// uringLink is a link that may write through io_uring (link.TAP).
type uringLink interface{ IOURing() (bool, error) }

// checkWriteBatches fails t when h's link writes through io_uring but
// the stretch counted in c wrote fewer than min frames per system
// call: a bulk sender's segments are held and leave together
// (BENCHMARKS.md, "Batched writes on TAP and TUN").
func checkWriteBatches(t *testing.T, h *host, c linkCount, min float64) {
	t.Helper()
	u, ok := h.nic.Endpoint().(uringLink)
	if !ok || !c.counted {
		return
	}
	if used, why := u.IOURing(); !used {
		t.Logf("writes not batched: no io_uring (%v)", why)
		return
	}
	if c.perWrite() < min {
		t.Errorf("io_uring link wrote %.2f frames per system call, want at least %.0f (%s)", c.perWrite(), min, c)
	}
}
