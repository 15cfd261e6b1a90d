package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sim"
)

func plotCmd() *cobra.Command {
	var conn, out, format string
	var list bool
	var from, to time.Duration
	c := &cobra.Command{
		Use:   "plot FILE.pcap",
		Short: "Draw a TCP connection's time-sequence graph (tcptrace style), RTT samples and throughput from a capture (PNG and SVG)",
		Example: `  sockstack plot /tmp/db/bottleneck.pcap --out /tmp/plots
  sockstack plot capture.pcap --conn 10.0.0.1:40000-10.0.0.2:80 --out /tmp/plots`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			formats, err := sim.ParseFormats(format)
			if err != nil {
				return usageErr(cmd, "--format: %v", err)
			}
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
				src, err1 := parseConnEnd(a)
				dst, err2 := parseConnEnd(b)
				if !ok || err1 != nil || err2 != nil {
					return usageErr(cmd, "--conn wants SRC[:PORT]-DST[:PORT], got %q", conn)
				}
				if src.Port() == 0 || dst.Port() == 0 {
					// An address without a port: the largest matching
					// connection (an ephemeral port changes from run to run).
					m, ok := matchConn(conns, src, dst)
					if !ok {
						return fmt.Errorf("no TCP connection in %s matches %s (--list shows them)", args[0], conn)
					}
					src, dst = m.Src, m.Dst
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
				base := strings.NewReplacer(":", "_", ".", "_", "[", "", "]", "").Replace(fmt.Sprintf("%v-%v", p.Src, p.Dst))
				charts, err := captureCharts(ct, base, p)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%v -> %v: %d segments, %d retransmissions, %d bytes\n", p.Src, p.Dst, len(ct.Segs), ct.Retrans, ct.Bytes)
				for _, c := range charts {
					files, err := c.Save(out, formats)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "  %s\n", strings.Join(files, " "))
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&conn, "conn", "", "connection SRC[:PORT]-DST[:PORT] (data direction; an end without a port matches any, the largest such is drawn); default: the largest four")
	c.Flags().StringVar(&out, "out", "", "output directory (default .)")
	c.Flags().StringVar(&format, "format", "png,svg", "picture formats: png, svg or png,svg")
	c.Flags().BoolVar(&list, "list", false, "list the connections and exit")
	c.Flags().DurationVar(&from, "from", 0, "draw from this time after the connection's first packet")
	c.Flags().DurationVar(&to, "to", 0, "draw up to this time (0: the end)")
	return c
}

// captureCharts draws what a capture shows of one data direction: the
// time-sequence graph, bytes in flight, RTT samples with their smoothed
// RTT (RFC 6298) and the ACKed throughput.
func captureCharts(ct *sim.ConnTrace, base string, p sim.ConnSummary) ([]*sim.Chart, error) {
	var out []*sim.Chart
	c, err := sim.TimeSequenceChart("tsg-"+base, ct, fmt.Sprintf("time-sequence: %v → %v", p.Src, p.Dst))
	if err != nil {
		return nil, err
	}
	out = append(out, c)
	if fl := ct.InFlightSeries(); len(fl.X) > 1 {
		if c, err = sim.SeriesChart("inflight-"+base, fmt.Sprintf("bytes in flight: %v → %v", p.Src, p.Dst), "bytes", []sim.Series{fl}, true); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if rs := ct.RTTSamples(); len(rs) > 1 {
		raw, smooth := sim.SmoothRTT(rs)
		if c, err = sim.SeriesChart("rtt-"+base, fmt.Sprintf("RTT: %v → %v", p.Src, p.Dst), "ms", []sim.Series{raw, smooth}, false); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(ct.Acks) > 1 {
		span := ct.Acks[len(ct.Acks)-1].T - ct.Acks[0].T
		bin := max(span/200, time.Millisecond)
		ts, bps := ct.Throughput(bin)
		th := sim.Series{Name: "ACKed throughput"}
		for i, v := range bps {
			th.X, th.Y = append(th.X, ts[i].Seconds()), append(th.Y, v/1e6)
		}
		if len(th.X) > 0 {
			if c, err = sim.SeriesChart("throughput-"+base, fmt.Sprintf("throughput (%v bins): %v → %v", bin, p.Src, p.Dst), "Mbit/s", []sim.Series{th}, true); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// parseConnEnd reads ADDR:PORT, [V6]:PORT or a bare address (port 0:
// any).
func parseConnEnd(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, 0), nil
}

// matchConn is the largest connection (conns come largest first) whose
// ends match src and dst, a port of 0 matching any.
func matchConn(conns []sim.ConnSummary, src, dst netip.AddrPort) (sim.ConnSummary, bool) {
	same := func(want, got netip.AddrPort) bool {
		return want.Addr() == got.Addr() && (want.Port() == 0 || want.Port() == got.Port())
	}
	for _, c := range conns {
		if same(src, c.Src) && same(dst, c.Dst) {
			return c, true
		}
	}
	return sim.ConnSummary{}, false
}
