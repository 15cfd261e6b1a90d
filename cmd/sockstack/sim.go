package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sim"
)

func init() { extraCommands = append(extraCommands, simCmd, plotCmd) }

func simCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sim",
		Short: "Run whole networks in virtual time from a scenario file",
	}
	c.AddCommand(simRunCmd(), simCheckCmd(), simGridCmd())
	return c
}

func simRunCmd() *cobra.Command {
	var seed uint64
	var out, format string
	var until time.Duration
	var seedSet bool
	c := &cobra.Command{
		Use:   "run SCENARIO.yaml",
		Short: "Run a scenario; write pcaps, metrics.json, report.html and its charts (plots/, PNG and SVG) into --out",
		Example: `  sockstack sim run scenarios/dumbbell-droptail.yaml --seed 1 --out /tmp/db
  sockstack sim run scenarios/satellite.yaml --out /tmp/sat
  sockstack sim run scenarios/dumbbell-dualstack.yaml --out /tmp/ds   # IPv4 and IPv6 flows`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seedSet = cmd.Flags().Changed("seed")
			formats, err := sim.ParseFormats(format)
			if err != nil {
				return usageErr(cmd, "--format: %v", err)
			}
			sc, err := sim.LoadScenario(args[0])
			if err != nil {
				return err
			}
			if !seedSet {
				seed = sc.Seed
			}
			n, err := sc.Build(seed)
			if err != nil {
				return err
			}
			n.PlotFormats = formats
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := n.CaptureScenario(out); err != nil {
					return err
				}
			}
			bound := until
			if bound == 0 {
				bound = time.Duration(sc.Duration)
			}
			if bound == 0 {
				bound = 60 * time.Second
			}
			n.S.MaxWall = 30 * time.Minute
			if err := n.Run(bound); err != nil {
				return err
			}
			m := n.Metrics(sc.Name)
			t := n.Timing()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: seed %d, simulated %.3fs in %.3fs wall (ratio %.1f), %d events (%.0f/s)\n",
				sc.Name, seed, t.SimTimeS, t.WallS, t.Ratio, t.Events, t.EventsPerSec)
			fmt.Fprintf(w, "flows: %d completed, %d failed\n", m.Completed, m.Failed)
			for i, f := range m.Flows {
				if i >= 20 {
					fmt.Fprintf(w, "  ... %d more\n", len(m.Flows)-i)
					break
				}
				res := "ok"
				if !f.Completed {
					res = f.Err
				}
				line := fmt.Sprintf("  %-4d %-10s %-10s %s -> %s  %d bytes  %.3fs  %.2f Mbit/s", f.ID, f.Workload, f.Kind, f.From, f.To, f.Received, f.DurationS, f.GoodputBps/1e6)
				if f.LatP50Ms > 0 {
					line += fmt.Sprintf("  p50 %.2fms p99 %.2fms", f.LatP50Ms, f.LatP99Ms)
				}
				if len(f.Hops) > 0 {
					line += fmt.Sprintf("  hops %v", f.Hops)
				}
				fmt.Fprintf(w, "%s  %s\n", line, res)
			}
			if out != "" {
				if err := n.WriteResults(out, sc); err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %s\n", filepath.Join(out, "report.html"))
			}
			return nil
		},
	}
	c.Flags().Uint64Var(&seed, "seed", 0, "random seed (default: the scenario's)")
	c.Flags().StringVar(&out, "out", "", "directory for pcaps, metrics.json, timing.json, report.html and plots/")
	c.Flags().DurationVar(&until, "until", 0, "virtual-time bound (default: the scenario's duration, else 60s)")
	c.Flags().StringVar(&format, "format", "png,svg", "chart formats in plots/: png, svg or png,svg")
	return c
}

func simCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check SCENARIO.yaml...",
		Short: "Validate scenario files",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				sc, err := sim.LoadScenario(a)
				if err != nil {
					return err
				}
				if _, err := sc.Build(sc.Seed); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", a)
			}
			return nil
		},
	}
}
