package sim

import (
	"os"
	"strconv"
	"testing"
)

// A few grid seeds in every run (under -race too): each transfer arrives
// whole, within the bounds.
func TestGridSample(t *testing.T) {
	seeds := []uint64{0, 3, 16, 22, 40, 51, 77, 94}
	if raceEnabled {
		seeds = seeds[:4]
	}
	for _, s := range seeds {
		r := RunGrid(s)
		if !r.OK {
			t.Errorf("seed %d (%v): %s", s, GridCells()[r.Cell], r.Err)
		}
	}
}

// The whole grid: SIM_GRID_SEEDS seeds (scripts/test.sh runs 1,000).
func TestFullGrid(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SIM_GRID_SEEDS"))
	if n <= 0 {
		t.Skip("set SIM_GRID_SEEDS=N (scripts/test.sh sets 1000) to run the torture grid")
	}
	failed := 0
	for s := range uint64(n) {
		r := RunGrid(s)
		if !r.OK {
			failed++
			t.Errorf("seed %d (%v): %s", s, GridCells()[r.Cell], r.Err)
		}
	}
	t.Logf("%d seeds, %d failed", n, failed)
}
