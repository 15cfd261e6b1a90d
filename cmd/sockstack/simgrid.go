package main

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sim"
)

func simGridCmd() *cobra.Command {
	var seeds uint64
	var markdown bool
	c := &cobra.Command{
		Use:   "grid",
		Short: "Run the virtual-time torture grid: bulk transfers checked by hash across loss, reordering, duplication, corruption, RTT and bandwidth",
		Example: `  sockstack sim grid --seeds 1000
  sockstack sim grid --seeds 1000 --markdown`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cells := sim.GridCells()
			type agg struct {
				n, ok    int
				goodput  []float64
				wall     time.Duration
				sim      time.Duration
				events   uint64
				failures []string
			}
			// per[2*cell+family]: family 0 IPv4, 1 IPv6 (sim.GridIPv6).
			per := make([]agg, 2*len(cells))
			w := cmd.OutOrStdout()
			start := time.Now()
			var events uint64
			var simT time.Duration
			failed := 0
			for s := range seeds {
				r := sim.RunGrid(s)
				fam := 0
				if r.IPv6 {
					fam = 1
				}
				a := &per[2*r.Cell+fam]
				a.n++
				a.wall += r.Wall
				a.sim += r.SimTime
				events += r.Events
				simT += r.SimTime
				if r.OK {
					a.ok++
					a.goodput = append(a.goodput, r.GoodputBps)
				} else {
					failed++
					a.failures = append(a.failures, fmt.Sprintf("seed %d: %s", s, r.Err))
					fmt.Fprintf(w, "FAIL seed %d (%v, %s): %s\n", s, cells[r.Cell], famName(fam), r.Err)
				}
			}
			wall := time.Since(start)
			fmt.Fprintf(w, "%d seeds in %d cells: %d passed, %d failed; %.1fs wall, %.0fs simulated (ratio %.0f), %.0f events/s\n",
				seeds, len(cells), int(seeds)-failed, failed, wall.Seconds(), simT.Seconds(), simT.Seconds()/wall.Seconds(), float64(events)/wall.Seconds())
			if markdown {
				// A table is printed only with rows: a few seeds run only
				// the first (Reno) cells, and a bare header reads as a bug.
				header := func(printed *bool, lines ...string) {
					if !*printed {
						*printed = true
						for _, l := range lines {
							fmt.Fprintln(w, l)
						}
					}
				}
				var mathisTable, otherTable bool
				for i := range per {
					c, fam, a := cells[i/2], i%2, per[i]
					if !c.Mathis || len(a.goodput) == 0 {
						continue
					}
					header(&mathisTable, "\n| cell (Reno, random loss both ways, 100 Mbit/s) | family | seeds | goodput Mbit/s (median) | Mathis Mbit/s | measured / Mathis |", "|---|---|---:|---:|---:|---:|")
					g := simMedian(a.goodput)
					m := c.MathisBps(sim.GridMSS(fam == 1))
					fmt.Fprintf(w, "| loss %.1f%%, RTT %v | %s | %d | %.3f | %.3f | %.2f |\n", c.Loss*100, c.RTT, famName(fam), len(a.goodput), g/1e6, m/1e6, g/m)
				}
				for i := range per {
					c, fam, a := cells[i/2], i%2, per[i]
					if c.Mathis || a.n == 0 {
						continue
					}
					header(&otherTable, "\n| cell | family | seeds | passed | goodput Mbit/s (median) |", "|---|---|---:|---:|---:|")
					g := math.NaN()
					if len(a.goodput) > 0 {
						g = simMedian(a.goodput) / 1e6
					}
					fmt.Fprintf(w, "| %v | %s | %d | %d | %.3f |\n", c, famName(fam), a.n, a.ok, g)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d seeds failed", failed, seeds)
			}
			return nil
		},
	}
	c.Flags().Uint64Var(&seeds, "seeds", 1000, "number of seeds (seed i runs cell i mod cells, over IPv4 in even rounds of the cells and IPv6 in odd ones)")
	c.Flags().BoolVar(&markdown, "markdown", false, "print per-cell tables (goodput, Mathis model for the Reno cells)")
	return c
}

func famName(fam int) string {
	if fam == 1 {
		return "IPv6"
	}
	return "IPv4"
}

func simMedian(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
