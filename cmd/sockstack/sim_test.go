package main

import (
	"bytes"
	"encoding/xml"
	"image"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `sim run` writes the capture, report and charts; `plot` draws the
// graphs of one connection of that capture as PNG and SVG, and only the
// formats asked for.
func TestSimRunAndPlot(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "", "sim", "run", "../../scenarios/dumbbell-droptail.yaml", "--seed", "1", "--until", "2s", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"report.html", "metrics.json", "plots/queues.png", "plots/queues.svg", "plots/tsg-flow0.svg", "plots/tsg-flow0.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	pcaps, _ := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if len(pcaps) == 0 {
		t.Fatal("no capture")
	}
	list, err := runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--list")
	if err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	conn := strings.Fields(list)
	if len(conn) < 3 {
		t.Fatalf("list: %q", list)
	}
	pdir := filepath.Join(dir, "p")
	out, err = runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--conn", conn[0]+"-"+conn[2], "--out", pdir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, kind := range []string{"tsg", "inflight", "rtt", "throughput"} {
		m, _ := filepath.Glob(filepath.Join(pdir, kind+"-*"))
		var svg, png int
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Ext(f) {
			case ".png":
				img, format, err := image.Decode(bytes.NewReader(b))
				if err != nil || format != "png" || img.Bounds().Dx() < 500 {
					t.Errorf("%s: %v %v", f, format, err)
				}
				png++
			case ".svg":
				d := xml.NewDecoder(bytes.NewReader(b))
				for {
					_, err := d.Token()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("%s: %v", f, err)
					}
				}
				svg++
			}
		}
		if png != 1 || svg != 1 {
			t.Errorf("%s: %d PNG and %d SVG files, want one each", kind, png, svg)
		}
	}
	sdir := filepath.Join(dir, "s")
	if out, err := runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--conn", conn[0]+"-"+conn[2], "--format", "svg", "--out", sdir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(sdir, "*.png")); len(m) != 0 {
		t.Errorf("--format svg wrote %v", m)
	}
	if out, err := runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--format", "gif"); err == nil || !strings.Contains(out+err.Error(), "gif") {
		t.Errorf("--format gif: %v %s", err, out)
	}
	// sim run --format png: PNG charts only, and the report shows them.
	pngDir := filepath.Join(dir, "pngonly")
	if out, err := runCLI(t, "", "sim", "run", "../../scenarios/dumbbell-droptail.yaml", "--until", "1s", "--format", "png", "--out", pngDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(pngDir, "plots", "*.svg")); len(m) != 0 {
		t.Errorf("sim run --format png wrote %v", m)
	}
	page, err := os.ReadFile(filepath.Join(pngDir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `<img src="plots/queues.png"`) {
		t.Error("the report does not show the PNG charts")
	}
	if _, err := runCLI(t, "", "sim", "run", "../../scenarios/traceroute.yaml", "--format", "jpeg"); err == nil {
		t.Error("sim run --format jpeg accepted")
	}
}

// The commands the README gives for its picture still work: they run and
// write the file the README copies into docs/ (the picture itself changes
// whenever TCP's behaviour does, so it is not compared).
func TestReadmePictureCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var run, plot, cp []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 3 && f[0] == "go" && f[3] == "sim":
			run = f[3:]
		case len(f) > 3 && f[0] == "go" && f[3] == "plot":
			plot = f[3:]
		case len(f) > 2 && f[0] == "cp" && f[2] == "docs/sim-tsg.svg":
			cp = f
		}
	}
	if run == nil || plot == nil || cp == nil {
		t.Fatalf("README lacks the picture's commands: run %q plot %q cp %q", run, plot, cp)
	}
	dir := t.TempDir()
	subst := func(args []string, from, to string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.Replace(strings.ReplaceAll(a, from, to), "scenarios/", "../../scenarios/", 1)
		}
		return out
	}
	// The README writes to /tmp/wifi and /tmp/plots; the test to its own directory.
	runArgs := subst(run, "/tmp/", dir+"/")
	if out, err := runCLI(t, "", runArgs...); err != nil {
		t.Fatalf("%v: %v\n%s", runArgs, err, out)
	}
	plotArgs := subst(plot, "/tmp/", dir+"/")
	if out, err := runCLI(t, "", plotArgs...); err != nil {
		t.Fatalf("%v: %v\n%s", plotArgs, err, out)
	}
	src := strings.Replace(cp[1], "/tmp/", dir+"/", 1)
	// The README's cp names the file with a shell glob (the client's
	// ephemeral port is not fixed).
	if m, _ := filepath.Glob(src); len(m) == 1 {
		src = m[0]
	}
	b, err = os.ReadFile(src)
	if err != nil {
		t.Fatalf("the README copies %s, which the commands did not write: %v", cp[1], err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
	}
	if _, err := os.Stat(strings.TrimSuffix(src, ".svg") + ".png"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat("../../docs/sim-tsg.png"); err != nil {
		t.Error(err)
	}
}

// `sim grid --markdown` with fewer seeds than Reno cells prints the Reno
// table and no header of an empty second table.
func TestSimGridMarkdownNoEmptyTable(t *testing.T) {
	out, err := runCLI(t, "", "sim", "grid", "--seeds", "2", "--markdown")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "| loss 0.5%, RTT 20ms |") {
		t.Errorf("no Reno row:\n%s", out)
	}
	if strings.Contains(out, "| cell | seeds | passed |") {
		t.Errorf("empty table printed:\n%s", out)
	}
}
