package sim

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// svgPlot draws a line/segment chart as inline SVG: axes with round
// ticks, a title, labels and a legend. Coordinates are data units.
type svgPlot struct {
	W, H                  int
	Title, XLabel, YLabel string
	x0, x1, y0, y1        float64
	left, right, top, bot float64
	body                  strings.Builder
	legend                []legendItem
}

type legendItem struct{ name, color string }

func newPlot(title, xl, yl string, x0, x1, y0, y1 float64) *svgPlot {
	if x1 <= x0 {
		x1 = x0 + 1
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	return &svgPlot{W: 900, H: 380, Title: title, XLabel: xl, YLabel: yl, x0: x0, x1: x1, y0: y0, y1: y1,
		left: 80, right: 20, top: 34, bot: 50}
}

func (p *svgPlot) px(x float64) float64 {
	return p.left + (x-p.x0)/(p.x1-p.x0)*(float64(p.W)-p.left-p.right)
}

func (p *svgPlot) py(y float64) float64 {
	return float64(p.H) - p.bot - (y-p.y0)/(p.y1-p.y0)*(float64(p.H)-p.top-p.bot)
}

func (p *svgPlot) addLegend(name, color string) {
	for _, l := range p.legend {
		if l.name == name {
			return
		}
	}
	p.legend = append(p.legend, legendItem{name, color})
}

// seg draws a segment in data coordinates.
func (p *svgPlot) seg(x1, y1, x2, y2 float64, color string, w float64) {
	fmt.Fprintf(&p.body, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`,
		p.px(x1), p.py(y1), p.px(x2), p.py(y2), color, w)
	p.body.WriteByte('\n')
}

// tick draws a short horizontal mark at (x, y), as tcptrace ends segments.
func (p *svgPlot) tick(x, y float64, color string) {
	X, Y := p.px(x), p.py(y)
	fmt.Fprintf(&p.body, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`, X-2, Y, X+2, Y, color)
}

// poly draws a polyline; step makes it a staircase (hold until the next x).
func (p *svgPlot) poly(xs, ys []float64, color, name string, step bool) {
	if len(xs) == 0 {
		return
	}
	p.addLegend(name, color)
	fmt.Fprintf(&p.body, `<polyline fill="none" stroke="%s" stroke-width="1.3" points="`, color)
	for i := range xs {
		if step && i > 0 {
			fmt.Fprintf(&p.body, "%.1f,%.1f ", p.px(xs[i]), p.py(ys[i-1]))
		}
		fmt.Fprintf(&p.body, "%.1f,%.1f ", p.px(xs[i]), p.py(ys[i]))
	}
	p.body.WriteString(`"/>` + "\n")
}

// niceTicks returns round tick values covering [a, b].
func niceTicks(a, b float64, n int) []float64 {
	span := b - a
	if span <= 0 {
		return []float64{a}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var t []float64
	for v := math.Ceil(a/step) * step; v <= b+step*1e-9; v += step {
		t = append(t, v)
	}
	return t
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trimZeros(fmt.Sprintf("%.2f", v/1e9)) + "G"
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e3:
		return trimZeros(fmt.Sprintf("%.2f", v/1e3)) + "k"
	}
	return trimZeros(fmt.Sprintf("%.3f", v))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func (p *svgPlot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", p.W, p.H, p.W, p.H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`, p.W, p.H)
	fmt.Fprintf(&b, `<text x="%d" y="18" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", p.W/2, html.EscapeString(p.Title))
	// Grid and ticks.
	for _, t := range niceTicks(p.x0, p.x1, 8) {
		X := p.px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, X, p.top, X, float64(p.H)-p.bot)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", X, float64(p.H)-p.bot+15, fmtNum(t))
	}
	for _, t := range niceTicks(p.y0, p.y1, 6) {
		Y := p.py(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, p.left, Y, float64(p.W)-p.right, Y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", p.left-5, Y+4, fmtNum(t))
	}
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n",
		p.left, p.top, float64(p.W)-p.left-p.right, float64(p.H)-p.top-p.bot)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", (p.left+float64(p.W)-p.right)/2, p.H-12, html.EscapeString(p.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
		(p.top+float64(p.H)-p.bot)/2, (p.top+float64(p.H)-p.bot)/2, html.EscapeString(p.YLabel))
	fmt.Fprintf(&b, `<svg x="%.1f" y="%.1f" width="%.1f" height="%.1f" overflow="hidden"><g transform="translate(%.1f %.1f)">`,
		p.left, p.top, float64(p.W)-p.left-p.right, float64(p.H)-p.top-p.bot, -p.left, -p.top)
	b.WriteString(p.body.String())
	b.WriteString("</g></svg>\n")
	for i, l := range p.legend {
		x := p.left + 10 + float64(i%4)*200
		y := p.top + 14 + float64(i/4)*14
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			x, y-9, l.color, x+14, y, html.EscapeString(l.name))
	}
	b.WriteString("</svg>")
	return b.String()
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// TimeSequenceSVG draws a connection as tcptrace does: each data
// segment a vertical bar from its first to its last byte (retransmissions
// red), the cumulative ACK (green) and the receive window's right edge
// (yellow) as staircases, and SACK blocks (purple).
func TimeSequenceSVG(ct *ConnTrace, title string) string {
	tmin, tmax := math.Inf(1), 0.0
	ymin, ymax := int64(math.MaxInt64), int64(0)
	for _, s := range ct.Segs {
		tmin, tmax = min(tmin, s.T.Seconds()), max(tmax, s.T.Seconds())
		ymin, ymax = min(ymin, s.Seq), max(ymax, s.End)
	}
	for _, a := range ct.Acks {
		tmax = max(tmax, a.T.Seconds())
		ymax = max(ymax, a.Win)
	}
	if math.IsInf(tmin, 1) || tmin < 0.05*tmax {
		tmin, ymin = 0, 0
	}
	pad := (tmax - tmin) * 0.02
	p := newPlot(title, "time (s)", "sequence offset (bytes)", tmin, tmax+pad, float64(ymin), float64(ymax)+float64(ymax-ymin)*0.05)
	const maxDraw = 40000
	var ax, ay, wx, wy []float64
	for i, a := range ct.Acks {
		if i > maxDraw {
			break
		}
		ax, ay = append(ax, a.T.Seconds()), append(ay, float64(a.Ack))
		wx, wy = append(wx, a.T.Seconds()), append(wy, float64(a.Win))
	}
	p.poly(wx, wy, "#c9a400", "receive window", true)
	p.poly(ax, ay, "#2ca02c", "ACK", true)
	for i, sb := range ct.Sacks {
		if i > maxDraw {
			break
		}
		p.seg(sb.T.Seconds(), float64(sb.Left), sb.T.Seconds(), float64(sb.Right), "#9467bd", 1.5)
		p.addLegend("SACK", "#9467bd")
	}
	for i, s := range ct.Segs {
		if i > maxDraw {
			break
		}
		c := "#000"
		if s.Retrans {
			c = "#d62728"
			p.addLegend("retransmission", c)
		} else {
			p.addLegend("data segment", c)
		}
		x := s.T.Seconds()
		p.seg(x, float64(s.Seq), x, float64(s.End), c, 1)
		p.tick(x, float64(s.Seq), c)
		p.tick(x, float64(s.End), c)
	}
	return p.String()
}
