package link

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeRing2 is a tp2Ring over anonymous memory instead of a packet
// socket's ring: enough for lend, Release and the batch bookkeeping,
// which never ask the kernel anything (no root needed).
func fakeRing2(tb testing.TB, nslots int) *tp2Ring {
	tb.Helper()
	slot := os.Getpagesize()
	mem, err := mapRaw(-1, nslots*slot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unmapRaw(mem) })
	r := &tp2Ring{mem: mem, rxLen: len(mem), mapLen: len(mem), slotSize: slot, nslots: nslots,
		maxHeld: nslots / 2, evictAhead: nslots / 8, away: make(map[uintptr]int), page: uintptr(slot)}
	r.slots = make([]*ring2Slot, nslots)
	for k := range r.slots {
		r.slots[k] = &ring2Slot{r: r, mem: mem[k*slot : (k+1)*slot : (k+1)*slot]}
	}
	return r
}

// fakeBatch makes the next n slots the batch being delivered, as
// readRing2 does after the kernel has written them: the reader holds
// each, and its frame (at the offset a V2 header leaves) is appended to
// frames.
func fakeBatch(r *tp2Ring, n int, frames [][]byte) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishBatchLocked()
	for range n {
		s := r.slots[r.next]
		*u32at(s.mem, 0) = tpStatusUser
		s.refs.Store(1)
		r.n++
		r.next = (r.next + 1) % r.nslots
		frames = append(frames, s.mem[80:80+1000])
	}
	return frames
}

// TestRing2Lend: lend finds the slot of a frame of the batch being
// delivered, also one mapped anew after an eviction, and no other: not
// a frame of a slot outside the batch, not the evicted copy left at a
// slot's old place, not a copy of a frame. Past the held limit it
// copies, counted. Lending and letting go allocate nothing.
func TestRing2Lend(t *testing.T) {
	r := fakeRing2(t, 64)
	fakeBatch(r, 8, nil) // slots 0-7, delivered and let go
	frames := fakeBatch(r, 8, nil)
	if r.first != 8 || r.n != 8 {
		t.Fatalf("batch %d+%d", r.first, r.n)
	}
	for i, f := range frames {
		if l := r.lend(f[100:200]); l != r.slots[8+i] {
			t.Fatalf("frame %d: lent %v, want slot %d", i, l, 8+i)
		} else {
			l.Release()
		}
	}
	for _, k := range []int{7, 16, 63} {
		if l := r.lend(r.slots[k].mem[80:1080]); l != nil {
			t.Errorf("slot %d, outside the batch, lent", k)
		}
	}
	if l := r.lend(append([]byte(nil), frames[0]...)); l != nil {
		t.Error("a copy of a frame lent")
	}
	if l := r.lend(r.slots[8].mem[len(r.slots[8].mem)-10 : len(r.slots[8].mem) : len(r.slots[8].mem)]); l != r.slots[8] {
		t.Error("the end of slot 8 not lent from slot 8")
	}

	// Slot 9 evicted: its old place holds the copy, the slot is mapped
	// anew elsewhere (here: other anonymous memory).
	away, err := mapRaw(-1, 2*r.slotSize, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmapRaw(away) })
	fresh := away[r.slotSize:]
	old := r.slots[9]
	r.slots[9] = &ring2Slot{r: r, mem: fresh}
	r.slots[9].refs.Store(1)
	r.setAway(fresh, 9)
	if l := r.lend(fresh[80:1080]); l != r.slots[9] {
		t.Errorf("slot 9 mapped anew: lent %v", l)
	} else {
		l.Release()
	}
	if l := r.lend(old.mem[80:1080]); l != nil {
		t.Error("the evicted copy at slot 9's old place lent")
	}
	if l := r.lend(away[80:1080]); l != nil {
		t.Error("memory next to slot 9's new place lent")
	}
	r.setAway(fresh, -1)
	if l := r.lend(fresh[80:1080]); l != nil {
		t.Error("a forgotten away slot lent")
	}
	r.slots[9] = old

	lent := r.st.lent.Load()
	if a := testing.AllocsPerRun(100, func() { r.lend(frames[3]).Release() }); a != 0 {
		t.Errorf("lending and letting go allocate %v a frame", a)
	}
	if d := r.st.lent.Load() - lent; d != 101 {
		t.Errorf("lent counted %d of 101", d)
	}

	r.held.Store(int32(r.maxHeld))
	if l := r.lend(frames[2]); l != nil || r.st.copied.Load() != 1 {
		t.Errorf("at the held limit: lent %v, copied %d", l, r.st.copied.Load())
	}
	r.held.Store(int32(r.maxHeld - 1))
	if l := r.lend(frames[2]); l == nil || r.st.copied.Load() != 1 {
		t.Errorf("under the held limit: lent %v, copied %d", l, r.st.copied.Load())
	} else {
		l.Release()
	}
}

// BenchmarkRing2Lend: lending every frame of a V2 ring's batch, and
// letting go of each once the batch is delivered; an op is a frame.
func BenchmarkRing2Lend(b *testing.B) {
	for _, batch := range []int{8, 128} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			r := fakeRing2(b, 1024)
			loans := make([]Loan, 0, batch)
			frames := make([][]byte, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				frames = fakeBatch(r, batch, frames[:0])
				for _, f := range frames {
					l := r.lend(f)
					if l == nil {
						b.Fatal("not lent")
					}
					loans = append(loans, l)
				}
				r.mu.Lock()
				r.finishBatchLocked()
				r.mu.Unlock()
				for _, l := range loans {
					l.Release()
				}
				loans = loans[:0]
			}
		})
	}
}
