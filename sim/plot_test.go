package sim

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/color"
	_ "image/png"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkSVG parses a whole SVG document and returns its text.
func checkSVG(t *testing.T, b []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var text strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = v.Name.Local
			}
		case xml.CharData:
			text.Write(v)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return text.String()
}

// checkPNG decodes a PNG and returns it.
func checkPNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil || format != "png" {
		t.Fatalf("not a PNG (%q): %v", format, err)
	}
	return img
}

// countColor counts the pixels close to c.
func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	near := func(a uint32, v uint8) bool { d := int(a>>8) - int(v); return d > -40 && d < 40 }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, c.R) && near(g, c.G) && near(bl, c.B) {
				n++
			}
		}
	}
	return n
}

// A connection with a loss: four segments, the second lost and
// retransmitted after a SACK.
func lossyTrace() *ConnTrace {
	ms := time.Millisecond
	return &ConnTrace{
		Segs: []SegPoint{
			{T: 0, Seq: 1, End: 1001}, {T: 1 * ms, Seq: 1001, End: 2001}, {T: 2 * ms, Seq: 2001, End: 3001},
			{T: 3 * ms, Seq: 3001, End: 4001}, {T: 25 * ms, Seq: 1001, End: 2001, Retrans: true},
		},
		Acks: []AckPoint{
			{T: 20 * ms, Ack: 1001, Win: 65536 + 1001}, {T: 22 * ms, Ack: 1001, Win: 65536 + 1001},
			{T: 23 * ms, Ack: 1001, Win: 65536 + 1001}, {T: 45 * ms, Ack: 4001, Win: 65536 + 4001},
		},
		Sacks:   []SackPoint{{T: 22 * ms, Left: 2001, Right: 3001}, {T: 23 * ms, Left: 2001, Right: 4001}},
		Retrans: 1, Bytes: 4001,
	}
}

// The time-sequence graph's data: the ACK and window staircases follow
// the ACKs, the retransmission is apart from the segments, the SACK
// blocks are kept.
func TestTimeSequenceData(t *testing.T) {
	d := TimeSequenceData(lossyTrace())
	if !slices.Equal(d.Ack.Y, []float64{1001, 1001, 1001, 4001}) || !slices.Equal(d.Ack.X, []float64{0.020, 0.022, 0.023, 0.045}) {
		t.Errorf("ACK line %v at %v", d.Ack.Y, d.Ack.X)
	}
	if d.Window.Y[3] != 65536+4001 {
		t.Errorf("window edge %v", d.Window.Y)
	}
	if len(d.Segs) != 4 || len(d.Retrans) != 1 || d.Retrans[0] != [3]float64{0.025, 1001, 2001} {
		t.Errorf("segments %v retransmissions %v", d.Segs, d.Retrans)
	}
	if len(d.Sacks) != 2 || d.Sacks[1] != [3]float64{0.023, 2001, 4001} {
		t.Errorf("SACK blocks %v", d.Sacks)
	}
}

// The chart renders to a PNG of the chart's size with the marks in
// their colours, and to an SVG that parses and names every series.
func TestTimeSequenceChartRenders(t *testing.T) {
	c, err := TimeSequenceChart("tsg", lossyTrace(), "time-sequence: test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Render("png")
	if err != nil {
		t.Fatal(err)
	}
	img := checkPNG(t, b)
	if img.Bounds().Dx() != c.W || img.Bounds().Dy() != c.H {
		t.Errorf("PNG %v, want %dx%d", img.Bounds(), c.W, c.H)
	}
	white := countColor(img, color.RGBA{255, 255, 255, 255})
	if total := c.W * c.H; white > total*99/100 || white < total/2 {
		t.Errorf("%d of %d pixels white", white, total)
	}
	for name, col := range map[string]color.RGBA{"ACK": colAck, "window": colWindow, "retransmission": colRetx, "SACK": colSack} {
		if n := countColor(img, col); n < 20 {
			t.Errorf("%s colour: %d pixels", name, n)
		}
	}
	s, err := c.Render("svg")
	if err != nil {
		t.Fatal(err)
	}
	text := checkSVG(t, s)
	for _, want := range []string{"time-sequence: test", "ACK", "receive window", "SACK", "data segment", "retransmission", "time (s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if _, err := c.Render("gif"); err == nil {
		t.Error("rendering an unsupported format succeeded")
	}
}

func TestParseFormats(t *testing.T) {
	for in, want := range map[string][]string{"png,svg": {"png", "svg"}, "SVG": {"svg"}, "png, png": {"png"}} {
		got, err := ParseFormats(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseFormats(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "pdf", "png,jpg", ","} {
		if _, err := ParseFormats(in); err == nil {
			t.Errorf("ParseFormats(%q) accepted", in)
		}
	}
}

// Sender state, throughput and queue series carry the sampled values.
func TestSeriesExtraction(t *testing.T) {
	ms := time.Millisecond
	samples := []Sample{
		{T: 0, Cwnd: 14600, Ssthresh: -1, InFlight: 0, SRTT: 0},
		{T: 100 * ms, Cwnd: 29200, Ssthresh: 20000, InFlight: 20000, SRTT: 20 * ms, BytesAcked: 125000},
		{T: 200 * ms, Cwnd: 10000, Ssthresh: 10000, InFlight: 9000, SRTT: 22 * ms, BytesAcked: 250000},
	}
	win, srtt := SenderSeries(samples)
	if len(win) != 3 || win[0].Name != "cwnd" || !slices.Equal(win[0].Y, []float64{14600, 29200, 10000}) ||
		!slices.Equal(win[1].Y, []float64{0, 20000, 9000}) || !slices.Equal(win[2].Y, []float64{20000, 10000}) {
		t.Errorf("window series %+v", win)
	}
	if !slices.Equal(srtt.Y, []float64{0, 20, 22}) {
		t.Errorf("srtt %v", srtt.Y)
	}
	th := SampleThroughput("f", samples)
	if !slices.Equal(th.Y, []float64{10, 10}) || !slices.Equal(th.X, []float64{0.1, 0.2}) {
		t.Errorf("throughput %v at %v, want 10 Mbit/s twice", th.Y, th.X)
	}
	l := &Link{Ends: [2]*Port{{Name: "r1"}, {Name: "r2"}}}
	l.qs[0] = []QSample{{T: 0, Bytes: 0}, {T: 10 * ms, Bytes: 3000}}
	l.qs[1] = []QSample{{T: 0}, {T: 10 * ms}}
	qs := QueueSeries([]*Link{l})
	if len(qs) != 1 || qs[0].Name != "r1 → r2" || !slices.Equal(qs[0].Y, []float64{0, 3}) {
		t.Errorf("queue series %+v (the idle direction is left out)", qs)
	}
	fl := lossyTrace().InFlightSeries()
	if len(fl.Y) != 9 || fl.Y[3] != 4001 || fl.Y[4] != 3000 || fl.Y[len(fl.Y)-1] != 0 {
		t.Errorf("in flight %v", fl.Y)
	}
	raw, smooth := SmoothRTT([]RTTSample{{T: ms, RTT: 20 * ms}, {T: 2 * ms, RTT: 28 * ms}})
	if !slices.Equal(raw.Y, []float64{20, 28}) || !slices.Equal(smooth.Y, []float64{20, 21}) {
		t.Errorf("RTT %v smoothed %v", raw.Y, smooth.Y)
	}
	c, err := SeriesChart("q", "queues", "kB", qs, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Render("svg")
	if err != nil {
		t.Fatal(err)
	}
	if text := checkSVG(t, b); !strings.Contains(text, "r1 → r2") {
		t.Error("the queue chart's legend lacks the link")
	}
}

// Drawing a time-sequence graph of 10,000 segments and ACKs, per format.
func BenchmarkTimeSequenceChart(b *testing.B) {
	ct := &ConnTrace{}
	for i := range 10000 {
		t := time.Duration(i) * 100 * time.Microsecond
		ct.Segs = append(ct.Segs, SegPoint{T: t, Seq: int64(i) * 1448, End: int64(i+1) * 1448, Retrans: i%500 == 0})
		ct.Acks = append(ct.Acks, AckPoint{T: t + 20*time.Millisecond, Ack: int64(i+1) * 1448, Win: int64(i+1)*1448 + 65535})
	}
	for _, f := range Formats {
		b.Run(f, func(b *testing.B) {
			var size int
			for range b.N {
				c, err := TimeSequenceChart("tsg", ct, "bench")
				if err != nil {
					b.Fatal(err)
				}
				out, err := c.Render(f)
				if err != nil {
					b.Fatal(err)
				}
				size = len(out)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
