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

	// Time-sequence graphs.
	shown := 0
	for _, f := range n.traced {
		if shown >= 4 {
			break
		}
		ct, pc := n.flowTrace(f, dir)
		if ct == nil || len(ct.Segs) == 0 {
			continue
		}
		shown++
		if shown == 1 {
			b.WriteString("<h2>Time-sequence graphs</h2>\n")
		}
		fmt.Fprintf(&b, "<figure>%s<figcaption>Flow %d (%s): %v → %v from %s, %d retransmissions. Black: data segments; red: retransmissions; green: cumulative ACK; yellow: receive window edge; purple: SACK blocks.</figcaption></figure>\n",
			TimeSequenceSVG(ct, fmt.Sprintf("time-sequence: flow %d %v → %v", f.ID, ct.Src, ct.Dst)), f.ID, html.EscapeString(f.Workload), ct.Src, ct.Dst, pc, ct.Retrans)
	}
	// Congestion state.
	for i, f := range n.traced {
		if i >= 4 || len(f.Samples) < 2 {
			continue
		}
		if i == 0 {
			b.WriteString("<h2>Sender state</h2>\n")
		}
		var tmax, ymax float64
		for _, s := range f.Samples {
			tmax = max(tmax, s.T.Seconds())
			ymax = max(ymax, float64(s.Cwnd), float64(s.InFlight))
			if s.Ssthresh > 0 && float64(s.Ssthresh) < 4*ymax {
				ymax = max(ymax, float64(s.Ssthresh))
			}
		}
		p := newPlot(fmt.Sprintf("flow %d: cwnd, ssthresh, bytes in flight", f.ID), "time (s)", "bytes", f.Start.Seconds(), tmax, 0, ymax*1.1)
		var xs, cw, ss, fl []float64
		for _, s := range f.Samples {
			xs = append(xs, s.T.Seconds())
			cw = append(cw, float64(s.Cwnd))
			fl = append(fl, float64(s.InFlight))
			st := float64(s.Ssthresh)
			if s.Ssthresh < 0 || st > ymax*1.1 {
				st = ymax * 1.1
			}
			ss = append(ss, st)
		}
		p.poly(xs, cw, palette[0], "cwnd", true)
		p.poly(xs, ss, palette[1], "ssthresh", true)
		p.poly(xs, fl, palette[2], "bytes in flight", true)
		fmt.Fprintf(&b, "<figure>%s</figure>\n", p.String())
	}
	n.seriesCharts(&b)
	if sc != nil && sc.File != "" {
		if src, err := os.ReadFile(sc.File); err == nil {
			fmt.Fprintf(&b, "<h2>Scenario</h2>\n<pre>%s</pre>\n", html.EscapeString(string(src)))
		}
	}
	b.WriteString("<p>Files: metrics.json (per flow and link), timing.json (wall-clock figures), one .pcap per captured link.</p>\n</body></html>\n")
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// seriesCharts draws srtt and throughput per traced flow and the
// backlog of the sampled queues.
func (n *Net) seriesCharts(b *strings.Builder) {
	var tmax, rttMax, thrMax float64
	type series struct {
		name   string
		xs, ys []float64
	}
	var rtts, thrs []series
	for i, f := range n.traced {
		if i >= len(palette) || len(f.Samples) < 2 {
			continue
		}
		var r, th series
		r.name = fmt.Sprintf("flow %d", f.ID)
		th.name = r.name
		for k, s := range f.Samples {
			x := s.T.Seconds()
			tmax = max(tmax, x)
			r.xs, r.ys = append(r.xs, x), append(r.ys, ms(s.SRTT))
			rttMax = max(rttMax, ms(s.SRTT))
			if k > 0 {
				prev := f.Samples[k-1]
				dt := (s.T - prev.T).Seconds()
				if dt > 0 {
					v := float64(s.BytesAcked-prev.BytesAcked) * 8 / dt / 1e6
					th.xs, th.ys = append(th.xs, x), append(th.ys, v)
					thrMax = max(thrMax, v)
				}
			}
		}
		rtts, thrs = append(rtts, r), append(thrs, th)
	}
	if len(thrs) > 0 {
		b.WriteString("<h2>Throughput and RTT</h2>\n")
		p := newPlot("throughput per flow (ACKed bytes per sample)", "time (s)", "Mbit/s", 0, tmax, 0, thrMax*1.1)
		for i, s := range thrs {
			p.poly(s.xs, s.ys, palette[i%len(palette)], s.name, false)
		}
		fmt.Fprintf(b, "<figure>%s</figure>\n", p.String())
		p = newPlot("smoothed RTT per flow", "time (s)", "ms", 0, tmax, 0, rttMax*1.1)
		for i, s := range rtts {
			p.poly(s.xs, s.ys, palette[i%len(palette)], s.name, false)
		}
		fmt.Fprintf(b, "<figure>%s</figure>\n", p.String())
	}
	var qmax, qt float64
	type qser struct {
		name   string
		xs, ys []float64
	}
	var qs []qser
	for _, l := range n.qsampled {
		for d := range 2 {
			var s qser
			s.name = l.Ends[d].Name + " → " + l.Ends[1-d].Name
			peak := 0
			for _, v := range l.qs[d] {
				s.xs = append(s.xs, v.T.Seconds())
				s.ys = append(s.ys, float64(v.Bytes)/1000)
				peak = max(peak, v.Bytes)
				qt = max(qt, v.T.Seconds())
			}
			if peak > 0 && len(qs) < len(palette) {
				qs = append(qs, s)
				qmax = max(qmax, float64(peak)/1000)
			}
		}
	}
	if len(qs) > 0 {
		b.WriteString("<h2>Queues</h2>\n")
		p := newPlot("queue length per link direction", "time (s)", "kB queued", 0, qt, 0, qmax*1.1)
		for i, s := range qs {
			p.poly(s.xs, s.ys, palette[i], s.name, true)
		}
		fmt.Fprintf(b, "<figure>%s</figure>\n", p.String())
	}
}
