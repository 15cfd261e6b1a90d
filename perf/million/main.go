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

	"github.com/sockstack/sockstack/perf"
)

func main() {
	n := flag.Int("n", 1000000, "connections")
	ports := flag.Int("ports", 64, "listening ports on the server host (16384 connections per port at most)")
	workers := flag.Int("workers", 256, "goroutines that connect and echo")
	flag.Parse()
	r, err := perf.Many(*n, *ports, *workers, func(s string) { fmt.Fprintln(os.Stderr, s) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "million:", err)
		os.Exit(1)
	}
	fmt.Printf("connections %d (GOMAXPROCS %d)\n", r.Conns, runtime.GOMAXPROCS(0))
	fmt.Printf("open        %.1f s (%.0f connections/s)\n", r.Open.Seconds(), float64(r.Conns)/r.Open.Seconds())
	fmt.Printf("memory      %.0f bytes per idle connection pair (heap+stacks); process RSS %.2f GiB\n", r.BytesPerConnPair, float64(r.RSS)/(1<<30))
	fmt.Printf("echo        %.1f s\n", r.Echo.Seconds())
	fmt.Printf("close       %.1f s; resets %d; TIME_WAIT overflow %d\n", r.Close.Seconds(), r.Resets, r.TimeWaitOverflow)
	if r.Resets != 0 || r.TimeWaitOverflow != 0 {
		os.Exit(1)
	}
}
