package sim

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A few grid seeds in every run (under -race too): each transfer arrives
// whole, within the bounds.
func TestGridSample(t *testing.T) {
	n := uint64(len(GridCells()))
	// The same cells over IPv4 (first round) and IPv6 (second round).
	seeds := []uint64{0, 3, 16, 22, 40, 51, 77, 94, n + 0, n + 3, n + 22, n + 51, n + 94}
	if raceEnabled {
		seeds = []uint64{0, 3, 16, 22, n + 3, n + 22}
	}
	for _, s := range seeds {
		r := RunGrid(s)
		if !r.OK {
			t.Errorf("seed %d (%v, IPv6 %v): %s", s, GridCells()[r.Cell], r.IPv6, r.Err)
		}
		if r.IPv6 != (s >= n) {
			t.Errorf("seed %d ran over IPv6 %v", s, r.IPv6)
		}
	}
}

// An IPv6 seed's transfer crosses the link as IPv6: the capture holds
// IPv6 TCP segments from the client's address and no IPv4 frame.
func TestGridIPv6Capture(t *testing.T) {
	dir := t.TempDir()
	GridCapture = dir
	defer func() { GridCapture = "" }()
	seed := uint64(len(GridCells())) + 15 // cell 15: no impairment, 1 ms, 1 Mbit/s
	r := RunGrid(seed)
	if !r.OK || !r.IPv6 {
		t.Fatalf("seed %d: ok %v ipv6 %v: %s", seed, r.OK, r.IPv6, r.Err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no capture in %s: %v", dir, err)
	}
	var v4, v6tcp int
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := ReadPcap(fh, 0)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if len(p.Data) < 14+40+20 {
				continue
			}
			switch binary.BigEndian.Uint16(p.Data[12:14]) {
			case 0x0800:
				v4++
			case 0x86dd:
				src := netip.AddrFrom16([16]byte(p.Data[14+8 : 14+24]))
				if p.Data[14+6] == 6 && src == netip.MustParseAddr("fd00:6::1") {
					v6tcp++
				}
			}
		}
	}
	if v4 != 0 || v6tcp == 0 {
		t.Fatalf("capture: %d IPv4 frames, %d IPv6 TCP segments from the client", v4, v6tcp)
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
