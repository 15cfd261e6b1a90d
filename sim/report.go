package sim

import (
	"fmt"
	"html"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// flowTrace finds a flow's connection in the capture of the sender's
// first link, data direction first.
func (n *Net) flowTrace(f *Flow, dir string) (*ConnTrace, string) {
	h := n.hostByName[f.From]
	if h == nil || len(h.ifaces) == 0 || f.Client == "" || f.Server == "" {
		return nil, ""
	}
	l := h.ifaces[0].Port.link
	file := filepath.Join(dir, l.Name+".pcap")
	fd, err := os.Open(file)
	if err != nil {
		return nil, ""
	}
	defer fd.Close()
	recs, err := ReadPcap(fd, 2_000_000)
	if err != nil && len(recs) == 0 {
		return nil, ""
	}
	c, err1 := netip.ParseAddrPort(f.Client)
	s, err2 := netip.ParseAddrPort(f.Server)
	if err1 != nil || err2 != nil {
		return nil, ""
	}
	src, dst := c, s
	if f.Kind == "rr" || f.Kind == "http" || f.Kind == "churn" {
		src, dst = s, c // the responses carry the bytes
	}
	return TraceConn(recs, src, dst), l.Name + ".pcap"
}

func (n *Net) writeReport(file, dir string, sc *Scenario, m *Metrics) error {
	var b strings.Builder
	name := m.Scenario
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>")
	b.WriteString(html.EscapeString(name))
	b.WriteString(` — sockstack sim</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#080}.bad{color:#b00}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:400px}
figure{margin:10px 0 24px}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", html.EscapeString(name))
	if sc != nil && sc.Description != "" {
		fmt.Fprintf(&b, "<p>%s</p>\n", html.EscapeString(sc.Description))
	}
	t := n.Timing()
	fmt.Fprintf(&b, "<p>Seed %d · simulated %.3f s · %d events · wall %.3f s · simulated-to-wall ratio %.1f · %.0f events/s</p>\n",
		m.Seed, m.SimTimeS, m.Events, t.WallS, t.Ratio, t.EventsPerSec)

	if n.RealTime() {
		b.WriteString("<p><b>Real time:</b> this network has a VXLAN link (a real network port), so it ran on the wall clock and is not deterministic.</p>\n")
	}
	for _, v := range m.VXLAN {
		fmt.Fprintf(&b, "<p>VXLAN port of link %s on udp %s: rx %d frames, tx %d, learned %d MACs, flooded %d, wrong VNI %d, bad header %d.</p>\n",
			html.EscapeString(v.Link), html.EscapeString(v.Local), v.RxFrames, v.TxFrames, v.Learned, v.Flooded, v.WrongVNI, v.BadHeader)
	}
	b.WriteString("<h2>Flows</h2>\n<table><tr><th>id</th><th class=l>workload</th><th class=l>kind</th><th class=l>from → to</th><th>bytes</th><th>received</th><th>duration s</th><th>goodput Mbit/s</th><th>retrans</th><th>srtt ms</th><th>latency p50/p99 ms</th><th class=l>result</th></tr>\n")
	for i, f := range m.Flows {
		if i >= 200 {
			fmt.Fprintf(&b, "<tr><td class=l colspan=12>… %d more in metrics.json</td></tr>\n", len(m.Flows)-i)
			break
		}
		res := `<span class=ok>ok</span>`
		if !f.Completed {
			res = `<span class=bad>` + html.EscapeString(f.Err) + `</span>`
		}
		lat := ""
		if f.LatP50Ms > 0 {
			lat = fmt.Sprintf("%.2f / %.2f", f.LatP50Ms, f.LatP99Ms)
		}
		extra := ""
		if len(f.Hops) > 0 {
			extra = " hops: " + html.EscapeString(strings.Join(f.Hops, " → "))
		}
		fmt.Fprintf(&b, "<tr><td>%d</td><td class=l>%s</td><td class=l>%s</td><td class=l>%s → %s</td><td>%d</td><td>%d</td><td>%.3f</td><td>%.2f</td><td>%d</td><td>%.1f</td><td>%s</td><td class=l>%s%s</td></tr>\n",
			f.ID, html.EscapeString(f.Workload), f.Kind, html.EscapeString(f.From), html.EscapeString(f.To), f.Bytes, f.Received,
			f.DurationS, f.GoodputBps/1e6, f.Retransmits, f.SRTTms, lat, res, extra)
	}
	b.WriteString("</table>\n")

	b.WriteString("<h2>Links</h2>\n<table><tr><th class=l>direction</th><th>frames</th><th>bytes</th><th>util</th><th>queue</th><th>drops full</th><th>drops RED</th><th>drops CoDel</th><th>lost</th><th>corrupt</th><th>dup</th><th>reord</th><th>down</th><th>queue delay mean/max ms</th></tr>\n")
	rows := 0
	for _, l := range m.Links {
		for _, d := range l.Dirs {
			if d.Stats.TxFrames == 0 && d.Queue.Drops() == 0 {
				continue
			}
			if rows++; rows > 200 {
				break
			}
			fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%d</td><td>%d</td><td>%.1f%%</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%.2f / %.2f</td></tr>\n",
				html.EscapeString(d.Path), d.Stats.TxFrames, d.Stats.TxBytes, d.Utilization*100, d.Queue.Kind, d.Queue.Overlimit,
				d.Queue.EarlyDrops, d.Queue.CoDelDrops, d.Stats.Lost, d.Stats.Corrupted, d.Stats.Duplicated, d.Stats.Reordered,
				d.Stats.DownDrops, d.MeanSojournMs, d.MaxSojournMs)
		}
	}
	b.WriteString("</table>\n")

	if err := n.reportCharts(&b, dir); err != nil {
		return err
	}
	if sc != nil && sc.File != "" {
		if src, err := os.ReadFile(sc.File); err == nil {
			fmt.Fprintf(&b, "<h2>Scenario</h2>\n<pre>%s</pre>\n", html.EscapeString(string(src)))
		}
	}
	b.WriteString("<p>Files: metrics.json (per flow and link), timing.json (wall-clock figures), one .pcap per captured link, plots/ (every chart as PNG and SVG).</p>\n</body></html>\n")
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// reportCharts draws the time-sequence graphs and sender state of the
// traced flows, throughput per flow and queue length per link into
// DIR/plots (PNG and SVG) and shows the SVGs in the report.
func (n *Net) reportCharts(b *strings.Builder, dir string) error {
	pdir := filepath.Join(dir, "plots")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return err
	}
	formats := n.PlotFormats
	if len(formats) == 0 {
		formats = Formats
	}
	// The page shows the SVG when there is one, and links the others.
	shown := formats[0]
	for _, f := range formats {
		if f == "svg" {
			shown = f
		}
	}
	show := func(c *Chart, caption string) error {
		if _, err := c.Save(pdir, formats); err != nil {
			return err
		}
		var links []string
		for _, f := range formats {
			if f != shown {
				links = append(links, fmt.Sprintf(" (<a href=\"plots/%s.%s\">%s</a>)", c.Name, f, strings.ToUpper(f)))
			}
		}
		fmt.Fprintf(b, "<figure><img src=\"plots/%s.%s\" alt=\"%s\" width=\"%d\" height=\"%d\"><figcaption>%s%s</figcaption></figure>\n",
			c.Name, shown, html.EscapeString(c.Plot.Title.Text), c.W, c.H, caption, strings.Join(links, ""))
		return nil
	}
	tsgs := 0
	for _, f := range n.traced {
		if tsgs >= 4 {
			break
		}
		ct, pc := n.flowTrace(f, dir)
		if ct == nil || len(ct.Segs) == 0 {
			continue
		}
		tsgs++
		if tsgs == 1 {
			b.WriteString("<h2>Time-sequence graphs</h2>\n")
		}
		c, err := TimeSequenceChart(fmt.Sprintf("tsg-flow%d", f.ID), ct, fmt.Sprintf("time-sequence: flow %d %v → %v", f.ID, ct.Src, ct.Dst))
		if err != nil {
			return err
		}
		if err := show(c, fmt.Sprintf("Flow %d (%s): %v → %v from %s, %d retransmissions. Black: data segments; red: retransmissions; green: cumulative ACK; yellow: receive window edge; purple: SACK blocks.",
			f.ID, html.EscapeString(f.Workload), ct.Src, ct.Dst, pc, ct.Retrans)); err != nil {
			return err
		}
	}
	var thr, rtt []Series
	for i, f := range n.traced {
		if i >= 4 || len(f.Samples) < 2 {
			continue
		}
		if len(thr) == 0 {
			b.WriteString("<h2>Sender state</h2>\n")
		}
		win, srtt := SenderSeries(f.Samples)
		c, err := SeriesChart(fmt.Sprintf("cwnd-flow%d", f.ID), fmt.Sprintf("flow %d: cwnd, ssthresh, bytes in flight", f.ID), "bytes", win, true)
		if err != nil {
			return err
		}
		if err := show(c, fmt.Sprintf("Flow %d: the sender's congestion window, slow-start threshold and bytes in flight, sampled.", f.ID)); err != nil {
			return err
		}
		srtt.Name = fmt.Sprintf("flow %d", f.ID)
		rtt = append(rtt, srtt)
		thr = append(thr, SampleThroughput(fmt.Sprintf("flow %d", f.ID), f.Samples))
	}
	if len(thr) > 0 {
		b.WriteString("<h2>Throughput and RTT</h2>\n")
		c, err := SeriesChart("throughput", "throughput per flow (ACKed bytes per sample)", "Mbit/s", thr, false)
		if err != nil {
			return err
		}
		if err := show(c, "ACKed data rate of each traced flow."); err != nil {
			return err
		}
		if c, err = SeriesChart("srtt", "smoothed RTT per flow", "ms", rtt, false); err != nil {
			return err
		}
		if err := show(c, "The senders' smoothed RTT."); err != nil {
			return err
		}
	}
	if qs := QueueSeries(n.qsampled); len(qs) > 0 {
		b.WriteString("<h2>Queues</h2>\n")
		c, err := SeriesChart("queues", "queue length per link direction", "kB queued", qs, true)
		if err != nil {
			return err
		}
		if err := show(c, "Backlog of each link direction that queued something."); err != nil {
			return err
		}
	}
	return nil
}
