// Command million holds a million TCP connections established at once
// between two sockstack hosts in this process, echoes one byte on every
// one, closes them all, and reports the time to open, the memory per
// idle connection pair and whether every close was clean.
//
//	go run ./perf/million -n 1000000
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/sockstack/sockstack/perf"
)

func main() { os.Exit(run()) }

func run() int {
	n := flag.Int("n", 1000000, "connections")
	ports := flag.Int("ports", 128, "listening ports on the server host (16384 connections per port at most; fewer per port, fewer probes for a free client port)")
	workers := flag.Int("workers", 32, "goroutines that connect, echo and close, one connection at a time each")
	queue := flag.Int("queue", 0, "link queue in frames each way (0: the link's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	memProfile := flag.String("memprofile", "", "write a heap profile here once every connection is open")
	limit := flag.Duration("timeout", 15*time.Minute, "overall time limit: the run fails past it")
	maxOpen := flag.Duration("maxopen", time.Minute, "the run fails if opening takes longer")
	maxMem := flag.Float64("maxmem", 6, "the run fails if the process's peak resident set exceeds this many GiB")
	gcPercent := flag.Int("gc", 100, "GOGC for the run")
	memLimit := flag.Float64("memlimit", 5.6, "the Go runtime's soft memory limit in GiB (debug.SetMemoryLimit; 0: none)")
	flag.Parse()
	// The run is bounded: past the limit it fails, whatever it waits on.
	time.AfterFunc(*limit, func() {
		fmt.Fprintf(os.Stderr, "million: not done after %v\n", *limit)
		os.Exit(2)
	})
	// A million connections are gigabytes of live data: GOGC alone would
	// let the heap double past it; the soft limit makes the collector
	// work harder only as the heap nears the bound.
	debug.SetGCPercent(*gcPercent)
	if *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit * (1 << 30)))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	mc := perf.ManyConfig{Conns: *n, Ports: *ports, Workers: *workers, Queue: *queue}
	if *memProfile != "" {
		mc.Opened = func() {
			f, err := os.Create(*memProfile)
			if err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
	r, err := perf.ManyWith(mc, func(s string) { fmt.Fprintln(os.Stderr, s) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "million:", err)
		return 1
	}
	peak := perf.PeakRSS()
	fmt.Printf("connections %d (GOMAXPROCS %d, GOGC %d, memory limit %.2f GiB)\n", r.Conns, runtime.GOMAXPROCS(0), *gcPercent, *memLimit)
	fmt.Printf("open        %.1f s (%.0f connections/s)\n", r.Open.Seconds(), float64(r.Conns)/r.Open.Seconds())
	fmt.Printf("memory      %.0f bytes per idle connection pair (heap+stacks); process RSS %.2f GiB after opening, peak %.2f GiB\n",
		r.BytesPerConnPair, float64(r.RSS)/(1<<30), float64(peak)/(1<<30))
	fmt.Printf("echo        %.1f s\n", r.Echo.Seconds())
	fmt.Printf("close       %.1f s; resets %d; TIME_WAIT overflow %d\n", r.Close.Seconds(), r.Resets, r.TimeWaitOverflow)
	ok := true
	if r.Resets != 0 || r.TimeWaitOverflow != 0 {
		fmt.Println("FAIL: not every connection closed cleanly")
		ok = false
	}
	if r.Open > *maxOpen {
		fmt.Printf("FAIL: opening took over %v\n", *maxOpen)
		ok = false
	}
	if float64(peak) > *maxMem*(1<<30) {
		fmt.Printf("FAIL: peak resident set over %.1f GiB\n", *maxMem)
		ok = false
	}
	if !ok {
		return 1
	}
	return 0
}
