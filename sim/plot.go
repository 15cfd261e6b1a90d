package sim

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The pictures are drawn with gonum/plot, which renders the same plot to
// PNG and SVG. Chart builders take plain data (ConnTrace, Series) so the
// extraction that feeds them is testable on its own.

// Formats are the picture formats a Chart renders to.
var Formats = []string{"png", "svg"}

// ParseFormats reads a comma-separated list of formats ("png,svg").
func ParseFormats(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch f {
		case "":
			continue
		case "png", "svg":
			dup := false
			for _, o := range out {
				dup = dup || o == f
			}
			if !dup {
				out = append(out, f)
			}
		default:
			return nil, fmt.Errorf("format %q: want png or svg", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no format in %q: want png, svg or png,svg", s)
	}
	return out, nil
}

// Chart is a plot and the file name it is saved under (without extension).
type Chart struct {
	Name string
	Plot *plot.Plot
	W, H int // size in pixels at 96 dpi (the PNG's size)
}

// Render draws the chart as "png" or "svg".
func (c *Chart) Render(format string) ([]byte, error) {
	// gonum sizes in points (1/72 inch); its PNG canvas uses 96 dpi.
	w, h := vg.Length(c.W)*vg.Inch/96, vg.Length(c.H)*vg.Inch/96
	wt, err := c.Plot.WriterTo(w, h, format)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Save writes DIR/NAME.FORMAT for each format and returns the paths.
func (c *Chart) Save(dir string, formats []string) ([]string, error) {
	var files []string
	for _, f := range formats {
		b, err := c.Render(f)
		if err != nil {
			return files, err
		}
		p := filepath.Join(dir, c.Name+"."+f)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return files, err
		}
		files = append(files, p)
	}
	return files, nil
}

// Series is one named curve: X in seconds. Points draws it as dots
// (samples) rather than a line.
type Series struct {
	Name   string
	X, Y   []float64
	Points bool
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 255}, {0xd6, 0x27, 0x28, 255}, {0x2c, 0xa0, 0x2c, 255}, {0xff, 0x7f, 0x0e, 255},
	{0x94, 0x67, 0xbd, 255}, {0x8c, 0x56, 0x4b, 255}, {0xe3, 0x77, 0xc2, 255}, {0x17, 0xbe, 0xcf, 255},
	{0x7f, 0x7f, 0x7f, 255}, {0xbc, 0xbd, 0x22, 255},
}

var (
	colSeg    = color.RGBA{0, 0, 0, 255}
	colRetx   = color.RGBA{0xd6, 0x27, 0x28, 255}
	colAck    = color.RGBA{0x2c, 0xa0, 0x2c, 255}
	colWindow = color.RGBA{0xc9, 0xa4, 0x00, 255}
	colSack   = color.RGBA{0x94, 0x67, 0xbd, 255}
)

func newGonumPlot(title, xl, yl string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xl
	p.Y.Label.Text = yl
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.ThumbnailWidth = vg.Points(14)
	p.BackgroundColor = color.White
	return p
}

// headroom raises the y range by a fifth so the legend (top left) does
// not cover the data.
func headroom(p *plot.Plot) {
	if p.Y.Max > p.Y.Min {
		p.Y.Max += (p.Y.Max - p.Y.Min) / 5
	}
}

// maxDraw bounds the marks one chart draws (a long capture stays readable
// and its SVG bounded); the first maxDraw are kept.
const maxDraw = 40000

// lineOf adds a curve; step holds each value until the next x.
func lineOf(p *plot.Plot, s Series, c color.Color, step bool) error {
	n := min(len(s.X), len(s.Y), maxDraw)
	if n == 0 {
		return nil
	}
	xy := make(plotter.XYs, n)
	for i := range n {
		xy[i].X, xy[i].Y = s.X[i], s.Y[i]
		if math.IsNaN(xy[i].Y) || math.IsInf(xy[i].Y, 0) {
			xy[i].Y = 0
		}
	}
	if s.Points {
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p.Legend.Add(s.Name, sc)
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.2)
	if step {
		l.StepStyle = plotter.PostStep
	}
	p.Add(l)
	p.Legend.Add(s.Name, l)
	return nil
}

// SeriesChart draws curves over time on one chart.
func SeriesChart(name, title, ylabel string, ss []Series, step bool) (*Chart, error) {
	p := newGonumPlot(title, "time (s)", ylabel)
	p.Y.Min = 0
	for i, s := range ss {
		if err := lineOf(p, s, palette[i%len(palette)], step); err != nil {
			return nil, err
		}
	}
	headroom(p)
	return &Chart{Name: name, Plot: p, W: 900, H: 380}, nil
}

// bars draws vertical bars from Lo to Hi at X with short horizontal ends,
// as tcptrace draws segments and SACK blocks.
type bars struct {
	x, lo, hi []float64
	style     draw.LineStyle
	ends      bool
}

func (b *bars) add(x, lo, hi float64) {
	b.x, b.lo, b.hi = append(b.x, x), append(b.lo, lo), append(b.hi, hi)
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	e := vg.Points(2)
	for i := range b.x {
		x, y0, y1 := tx(b.x[i]), ty(b.lo[i]), ty(b.hi[i])
		c.StrokeLine2(b.style, x, y0, x, y1)
		if b.ends {
			c.StrokeLine2(b.style, x-e, y0, x+e, y0)
			c.StrokeLine2(b.style, x-e, y1, x+e, y1)
		}
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for i := range b.x {
		xmin, xmax = min(xmin, b.x[i]), max(xmax, b.x[i])
		ymin, ymax = min(ymin, b.lo[i]), max(ymax, b.hi[i])
	}
	return
}

func (b *bars) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(b.style, c.Min.X, y, c.Max.X, y)
}

// TSGData is what a time-sequence graph draws, in seconds and sequence
// offsets: the ACK and window staircases and the bars.
type TSGData struct {
	Ack, Window   Series
	Segs, Retrans [][3]float64 // time, first byte, end
	Sacks         [][3]float64
}

// TimeSequenceData extracts the time-sequence graph's marks from a trace.
func TimeSequenceData(ct *ConnTrace) TSGData {
	d := TSGData{Ack: Series{Name: "ACK"}, Window: Series{Name: "receive window"}}
	for i, a := range ct.Acks {
		if i >= maxDraw {
			break
		}
		t := a.T.Seconds()
		d.Ack.X, d.Ack.Y = append(d.Ack.X, t), append(d.Ack.Y, float64(a.Ack))
		d.Window.X, d.Window.Y = append(d.Window.X, t), append(d.Window.Y, float64(a.Win))
	}
	for i, s := range ct.Segs {
		if i >= maxDraw {
			break
		}
		v := [3]float64{s.T.Seconds(), float64(s.Seq), float64(s.End)}
		if s.Retrans {
			d.Retrans = append(d.Retrans, v)
		} else {
			d.Segs = append(d.Segs, v)
		}
	}
	for i, s := range ct.Sacks {
		if i >= maxDraw {
			break
		}
		d.Sacks = append(d.Sacks, [3]float64{s.T.Seconds(), float64(s.Left), float64(s.Right)})
	}
	return d
}

// TimeSequenceChart draws a connection as tcptrace does: each data
// segment a vertical bar from its first to its last byte (retransmissions
// red), the cumulative ACK (green) and the receive window's right edge
// (yellow) as staircases, and SACK blocks (purple).
func TimeSequenceChart(name string, ct *ConnTrace, title string) (*Chart, error) {
	d := TimeSequenceData(ct)
	p := newGonumPlot(title, "time (s)", "sequence offset (bytes)")
	if err := lineOf(p, d.Window, colWindow, true); err != nil {
		return nil, err
	}
	if err := lineOf(p, d.Ack, colAck, true); err != nil {
		return nil, err
	}
	add := func(v [][3]float64, c color.Color, w float64, label string) {
		if len(v) == 0 {
			return
		}
		b := &bars{style: draw.LineStyle{Color: c, Width: vg.Points(w)}, ends: label != "SACK"}
		for _, s := range v {
			b.add(s[0], s[1], s[2])
		}
		p.Add(b)
		p.Legend.Add(label, b)
	}
	add(d.Sacks, colSack, 1.5, "SACK")
	add(d.Segs, colSeg, 0.8, "data segment")
	add(d.Retrans, colRetx, 1.2, "retransmission")
	headroom(p)
	return &Chart{Name: name, Plot: p, W: 1000, H: 500}, nil
}

// SenderSeries extracts a traced flow's sender state: cwnd, ssthresh
// (while it is below 4 times the largest window, else it would flatten
// the picture) and bytes in flight, in bytes; and the smoothed RTT in ms.
func SenderSeries(samples []Sample) (win []Series, srtt Series) {
	cw, ss, fl := Series{Name: "cwnd"}, Series{Name: "ssthresh"}, Series{Name: "bytes in flight"}
	srtt = Series{Name: "smoothed RTT"}
	var top float64
	for _, s := range samples {
		top = max(top, float64(s.Cwnd), float64(s.InFlight))
	}
	for _, s := range samples {
		x := s.T.Seconds()
		cw.X, cw.Y = append(cw.X, x), append(cw.Y, float64(s.Cwnd))
		fl.X, fl.Y = append(fl.X, x), append(fl.Y, float64(s.InFlight))
		if s.Ssthresh > 0 && float64(s.Ssthresh) <= 4*top {
			ss.X, ss.Y = append(ss.X, x), append(ss.Y, float64(s.Ssthresh))
		}
		srtt.X, srtt.Y = append(srtt.X, x), append(srtt.Y, ms(s.SRTT))
	}
	win = []Series{cw, fl}
	if len(ss.X) > 0 {
		win = append(win, ss)
	}
	return win, srtt
}

// SampleThroughput is a flow's ACKed rate between consecutive samples,
// in Mbit/s.
func SampleThroughput(name string, samples []Sample) Series {
	s := Series{Name: name}
	for k := 1; k < len(samples); k++ {
		dt := (samples[k].T - samples[k-1].T).Seconds()
		if dt <= 0 {
			continue
		}
		s.X = append(s.X, samples[k].T.Seconds())
		s.Y = append(s.Y, float64(samples[k].BytesAcked-samples[k-1].BytesAcked)*8/dt/1e6)
	}
	return s
}

// QueueSeries extracts the sampled backlog (kB) of each link direction
// that ever queued something.
func QueueSeries(links []*Link) []Series {
	var out []Series
	for _, l := range links {
		for d := range 2 {
			s := Series{Name: l.Ends[d].Name + " → " + l.Ends[1-d].Name}
			peak := 0
			for _, v := range l.qs[d] {
				s.X = append(s.X, v.T.Seconds())
				s.Y = append(s.Y, float64(v.Bytes)/1000)
				peak = max(peak, v.Bytes)
			}
			if peak > 0 && len(out) < len(palette) {
				out = append(out, s)
			}
		}
	}
	return out
}

// InFlightSeries is the data outstanding as a capture shows it: the
// highest byte sent minus the cumulative ACK, after each segment and ACK.
func (ct *ConnTrace) InFlightSeries() Series {
	s := Series{Name: "bytes in flight"}
	var hi, ack int64
	i, j := 0, 0
	for i < len(ct.Segs) || j < len(ct.Acks) {
		var t time.Duration
		if j >= len(ct.Acks) || (i < len(ct.Segs) && ct.Segs[i].T <= ct.Acks[j].T) {
			t, hi = ct.Segs[i].T, max(hi, ct.Segs[i].End)
			i++
		} else {
			t, ack = ct.Acks[j].T, max(ack, ct.Acks[j].Ack)
			j++
		}
		s.X = append(s.X, t.Seconds())
		s.Y = append(s.Y, float64(max(hi-ack, 0)))
	}
	return s
}

// SmoothRTT runs RFC 6298's estimator (alpha 1/8) over RTT samples and
// returns the raw samples and the smoothed RTT, in ms.
func SmoothRTT(rs []RTTSample) (raw, smooth Series) {
	raw, smooth = Series{Name: "RTT sample", Points: true}, Series{Name: "smoothed RTT"}
	var srtt float64
	for i, r := range rs {
		v := float64(r.RTT) / 1e6
		if i == 0 {
			srtt = v
		} else {
			srtt += (v - srtt) / 8
		}
		x := r.T.Seconds()
		raw.X, raw.Y = append(raw.X, x), append(raw.Y, v)
		smooth.X, smooth.Y = append(smooth.X, x), append(smooth.Y, srtt)
	}
	return raw, smooth
}
