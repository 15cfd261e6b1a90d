package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sim"
)

func plotCmd() *cobra.Command {
	var conn, out string
	var list bool
	var from, to time.Duration
	c := &cobra.Command{
		Use:   "plot FILE.pcap",
		Short: "Draw the tcptrace-style time-sequence graph of a TCP connection in a capture (SVG)",
		Example: `  sockstack plot /tmp/db/bottleneck.pcap --out /tmp/plots
  sockstack plot capture.pcap --conn 10.0.0.1:40000-10.0.0.2:80 --out /tmp/plots`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			recs, err := sim.ReadPcap(f, 5_000_000)
			f.Close()
			if err != nil && len(recs) == 0 {
				return err
			}
			conns := sim.Connections(recs)
			w := cmd.OutOrStdout()
			if list || len(conns) == 0 {
				if len(conns) == 0 {
					return fmt.Errorf("%s: no TCP data in the capture", args[0])
				}
				for _, c := range conns {
					fmt.Fprintln(w, c)
				}
				return nil
			}
			var picks []sim.ConnSummary
			if conn != "" {
				a, b, ok := strings.Cut(conn, "-")
				src, err1 := netip.ParseAddrPort(a)
				dst, err2 := netip.ParseAddrPort(b)
				if !ok || err1 != nil || err2 != nil {
					return usageErr(cmd, "--conn wants SRC:PORT-DST:PORT, got %q", conn)
				}
				picks = append(picks, sim.ConnSummary{Src: src, Dst: dst})
			} else {
				picks = conns[:min(len(conns), 4)]
			}
			if out == "" {
				out = "."
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			for _, p := range picks {
				ct := sim.TraceConn(recs, p.Src, p.Dst)
				if from > 0 || to > 0 {
					ct = ct.Window(from, to)
				}
				if len(ct.Segs) == 0 {
					return fmt.Errorf("no data segments from %v to %v", p.Src, p.Dst)
				}
				name := strings.NewReplacer(":", "_", ".", "_").Replace(fmt.Sprintf("tsg-%v-%v", p.Src, p.Dst)) + ".svg"
				file := filepath.Join(out, name)
				svg := sim.TimeSequenceSVG(ct, fmt.Sprintf("time-sequence: %v → %v", p.Src, p.Dst))
				if err := os.WriteFile(file, []byte(svg), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(w, "%s: %d segments, %d retransmissions, %d bytes\n", file, len(ct.Segs), ct.Retrans, ct.Bytes)
			}
			return nil
		},
	}
	c.Flags().StringVar(&conn, "conn", "", "connection SRC:PORT-DST:PORT (data direction); default: the largest four")
	c.Flags().StringVar(&out, "out", "", "output directory (default .)")
	c.Flags().BoolVar(&list, "list", false, "list the connections and exit")
	c.Flags().DurationVar(&from, "from", 0, "draw from this time after the connection's first packet")
	c.Flags().DurationVar(&to, "to", 0, "draw up to this time (0: the end)")
	return c
}
