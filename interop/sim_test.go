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
	t.Logf("screenshot %dx%d, %d inked sample pixels", b.Dx(), b.Dy(), ink)
}
