package tcp

import "testing"

// A flight that empties gives its record array back, and the next flight
// takes it, and the larger ones it grows into, from the pools: a bulk
// sender whose flight drains now and then allocates nothing for it
// (before, every regrowth past 16 records allocated, and so did giving
// the smallest array back).
func TestTxQueueRegrowsWithoutAllocating(t *testing.T) {
	var q txQueue
	cycle := func() {
		for i := 0; i < 200; i++ {
			q.push(txRec{start: uint32(i)})
		}
		for i := 0; i < 200; i++ {
			if got := q.at(i).start; got != uint32(i) {
				t.Fatalf("record %d holds %d", i, got)
			}
		}
		q.release()
	}
	cycle()
	// 5 arrays per cycle (16 to 256 records); the race detector drops a
	// quarter of sync.Pool puts, so allow some, far below 5.
	if a := testing.AllocsPerRun(100, cycle); a >= 3 {
		t.Fatalf("%.2f allocations per flight", a)
	}
	if q.r != nil {
		t.Fatal("an empty queue still holds its array")
	}
}
