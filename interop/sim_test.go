package interop

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/sim"
)

// The simulator's HTML report renders in headless Chromium: a screenshot
// with charts on it (many non-white pixels) and no console messages.
func TestInteropSimReportChromium(t *testing.T) {
	needTools(t, "chromium")
	sc, err := sim.LoadScenario("../scenarios/dumbbell-droptail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.CaptureScenario(dir); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.WriteResults(dir, sc); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "report.png")
	cmd := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
		"--window-size=1200,3000", "--screenshot="+shot, "file://"+filepath.Join(dir, "report.html"))
	cmd.Env = append(os.Environ(), "HOME="+dir)
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	out, err := cmd.CombinedOutput()
	timer.Stop()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ":CONSOLE(") || strings.Contains(line, "Uncaught") {
			t.Errorf("console message: %s", line)
		}
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xc000 || g < 0xc000 || bl < 0xc000 {
				ink++
			}
		}
	}
	if ink < 20000 {
		t.Errorf("screenshot %dx%d has %d inked sample pixels; the report looks empty", b.Dx(), b.Dy(), ink)
	}
	// The charts are image files: a missing one raises no console
	// message, so look for their ink. The first series colour (blue,
	// #1f77b4) and the receive-window line (#c9a400) appear nowhere else.
	for _, c := range []struct {
		name    string
		r, g, b int
	}{{"series blue", 0x1f, 0x77, 0xb4}, {"window yellow", 0xc9, 0xa4, 0}} {
		n := 0
		near := func(a uint32, v int) bool { d := int(a>>8) - v; return d > -30 && d < 30 }
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				if near(r, c.r) && near(g, c.g) && near(bl, c.b) {
					n++
				}
			}
		}
		if n < 200 {
			t.Errorf("%d pixels of the charts' %s: the chart images did not load", n, c.name)
		}
	}
	t.Logf("screenshot %dx%d, %d inked sample pixels", b.Dx(), b.Dy(), ink)
}
