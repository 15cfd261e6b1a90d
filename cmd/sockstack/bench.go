package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/perf"
)

func init() { extraCommands = append(extraCommands, benchCmd) }

func benchCmd() *cobra.Command {
	var runs int
	var bulkMiB int64
	var rrN, memN, udpN int
	var connDur time.Duration
	var only string
	var kernel bool
	c := &cobra.Command{
		Use:     "bench",
		Short:   "Measure the figures of docs/benchmarks.md (bulk, rr, conn, mem, udp) for sockstack and, with --kernel, Linux loopback",
		Example: "  sockstack bench --only rr --runs 1 --rr 5000",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := benchConfig{runs, bulkMiB << 20, rrN, connDur, memN, udpN, only}
			if err := cfg.check(); err != nil {
				return usageErr(cmd, "%v", err)
			}
			envs := []func(int) *perf.Env{perf.Sockstack}
			if kernel {
				envs = append(envs, func(int) *perf.Env { return perf.Kernel() })
			}
			return runBench(cmd.OutOrStdout(), cfg, envs)
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "runs per figure (the median is reported with min-max)")
	c.Flags().Int64Var(&bulkMiB, "bulk-mib", 1024, "MiB sent per bulk run")
	c.Flags().IntVar(&rrN, "rr", 50000, "timed round trips (after 1,000 warm-up)")
	c.Flags().DurationVar(&connDur, "conn-time", 5*time.Second, "duration of the conn figure")
	c.Flags().IntVar(&memN, "mem", 10000, "idle connections for the mem figure")
	c.Flags().IntVar(&udpN, "udp", 1000000, "datagrams for the udp figure")
	c.Flags().StringVar(&only, "only", "", "one figure: "+strings.Join(benchFigures, ", "))
	c.Flags().BoolVar(&kernel, "kernel", false, "also measure Linux loopback with Go's net")
	return c
}

type benchConfig struct {
	runs      int
	bulkBytes int64
	rr        int
	conn      time.Duration
	mem       int
	udp       int
	only      string
}

// benchFigures are the names --only takes, in the order they run.
var benchFigures = []string{"bulk1500", "bulk65000", "rr", "conn", "mem", "udp"}

// check refuses settings that would measure nothing.
func (c benchConfig) check() error {
	switch {
	case c.runs < 1:
		return fmt.Errorf("--runs %d: want at least 1", c.runs)
	case c.bulkBytes < 1<<20 || c.bulkBytes > 1<<40:
		return fmt.Errorf("--bulk-mib %d: want 1..1048576", c.bulkBytes>>20)
	case c.rr < 1:
		return fmt.Errorf("--rr %d: want at least 1 round trip", c.rr)
	case c.conn <= 0:
		return fmt.Errorf("--conn-time %v: want a positive duration", c.conn)
	case c.mem < 1:
		return fmt.Errorf("--mem %d: want at least 1 connection", c.mem)
	case c.udp < 1:
		return fmt.Errorf("--udp %d: want at least 1 datagram", c.udp)
	case c.only != "" && !slices.Contains(benchFigures, c.only):
		return fmt.Errorf("--only %q: not a figure; valid: %s", c.only, strings.Join(benchFigures, ", "))
	}
	return nil
}

// figure prints a measurement without e-notation: grouped digits from
// 1,000 up (34,680 conn/s), three significant digits below.
func figure(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case math.Abs(v) >= 999.5:
		return groupDigits(int64(math.Round(v)))
	case math.Abs(v) >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 0.9995:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func median(xs []float64) (med, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

func runBench(w io.Writer, cfg benchConfig, envs []func(int) *perf.Env) error {
	if err := cfg.check(); err != nil {
		return err
	}
	type fig struct {
		name string
		mtu  int
		run  func(env *perf.Env) (string, float64, error)
	}
	figs := []fig{
		{"bulk1500", 1500, func(e *perf.Env) (string, float64, error) {
			r, err := perf.Bulk(e, cfg.bulkBytes)
			return fmt.Sprintf("%.2f cores", r.Cores()), r.Gbps(), err
		}},
		{"bulk65000", 65000, func(e *perf.Env) (string, float64, error) {
			r, err := perf.Bulk(e, cfg.bulkBytes)
			return fmt.Sprintf("%.2f cores", r.Cores()), r.Gbps(), err
		}},
		{"rr", 1500, func(e *perf.Env) (string, float64, error) {
			r, err := perf.RR(e, 1000, cfg.rr)
			return fmt.Sprintf("mean %.1f p99 %.1f µs", us(r.Mean), us(r.P99)), us(r.P50), err
		}},
		{"conn", 1500, func(e *perf.Env) (string, float64, error) {
			r, err := perf.Conn(e, cfg.conn)
			return "", r, err
		}},
		{"mem", 1500, func(e *perf.Env) (string, float64, error) {
			r, err := perf.Mem(e, cfg.mem)
			return "", r, err
		}},
		{"udp", 1500, func(e *perf.Env) (string, float64, error) {
			r, err := perf.UDP(e, cfg.udp)
			return fmt.Sprintf("loss %.2f%%", r.Loss()), r.Rate(), err
		}},
	}
	units := map[string]string{"bulk1500": "Gbit/s", "bulk65000": "Gbit/s", "rr": "µs p50", "conn": "conn/s", "mem": "B/conn", "udp": "dgram/s"}
	fmt.Fprintf(w, "%-10s %-16s %-30s %s\n", "figure", "stack", "median [min-max]", "notes (last run)")
	for _, f := range figs {
		if cfg.only != "" && cfg.only != f.name {
			continue
		}
		for _, mk := range envs {
			var vals []float64
			var note, name string
			for i := 0; i < cfg.runs; i++ {
				env := mk(f.mtu)
				name = env.Name
				n, v, err := f.run(env)
				env.Close()
				if err != nil {
					return fmt.Errorf("%s on %s: %w", f.name, env.Name, err)
				}
				vals = append(vals, v)
				note = n
			}
			m, lo, hi := median(vals)
			fmt.Fprintf(w, "%-10s %-16s %-30s %s\n", f.name, name, fmt.Sprintf("%s [%s-%s] %s", figure(m), figure(lo), figure(hi), units[f.name]), note)
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
