package interop

import (
	"bufio"
	"fmt"
	"image/png"
	"io"
	"net"
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
	dir := t.TempDir()
	if _, err := sc.RunReport(1, 3*time.Second, dir); err != nil {
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

// `sockstack plot` reads real captures: tcpdump on the loopback device
// (Ethernet frames) and on "any" (Linux cooked frames) records a 2 MB
// transfer between two kernel sockets on 127.0.0.1, and plot finds the
// connection with all its bytes and draws its charts from each.
func TestInteropPlotTcpdumpCapture(t *testing.T) {
	needRoot(t)
	needTools(t, "tcpdump")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	var dumps []*exec.Cmd
	var tails []*syncBuffer // what each tcpdump says at its end ("N packets dropped by kernel")
	for _, iface := range []string{"lo", "any"} {
		// -B 32768: a 32 MiB capture buffer, so a loaded machine (CI runs
		// this beside other tests) does not make the kernel drop packets
		// tcpdump had no time to read.
		cmd := exec.Command("tcpdump", "-i", iface, "-B", "32768", "--immediate-mode", "-U", "-s", "256", "-w", filepath.Join(dir, iface+".pcap"), "tcp", "port", fmt.Sprint(port))
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// tcpdump says "listening on" once its filter is in place;
		// immediate mode hands every packet over at once (TPACKET_V3
		// would hold the last block, and an interrupt loses it).
		sc := bufio.NewScanner(stderr)
		ready := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready = true
				break
			}
		}
		if !ready {
			t.Fatalf("tcpdump -i %s did not start", iface)
		}
		tail := &syncBuffer{}
		go io.Copy(tail, stderr)
		dumps = append(dumps, cmd)
		tails = append(tails, tail)
	}
	body := make([]byte, 2_000_000)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(body)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a failure bound
	n, err := io.Copy(io.Discard, c)
	c.Close()
	if err != nil || n != int64(len(body)) {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	// tcpdump writes each packet as it reads it (-U) but drops what is
	// still in its buffer when interrupted: wait until each capture holds
	// the whole transfer (or 15 s) before stopping it.
	bin := sockstackBin(t)
	for _, iface := range []string{"lo", "any"} {
		file := filepath.Join(dir, iface+".pcap")
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			out, _ := exec.Command(bin, "plot", file, "--list").CombinedOutput()
			if strings.Contains(string(out), " 2000000 bytes") {
				break
			}
		}
	}
	for _, d := range dumps {
		d.Process.Signal(os.Interrupt)
		d.Wait()
	}
	for i, iface := range []string{"lo", "any"} {
		file := filepath.Join(dir, iface+".pcap")
		out, err := exec.Command(bin, "plot", file, "--list").CombinedOutput()
		if err != nil {
			fi, _ := os.Stat(file)
			t.Fatalf("plot --list %s (capture of %d bytes): %v\n%s", iface, fi.Size(), err, out)
		}
		want := fmt.Sprintf("127.0.0.1:%d -> 127.0.0.1:", port)
		first, _, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(first, want) || !strings.Contains(first, " 2000000 bytes") {
			t.Fatalf("-i %s: the largest connection is %q, want %s... with 2000000 bytes (tcpdump said: %s)", iface, first, want, strings.TrimSpace(tails[i].String()))
		}
		f := strings.Fields(first)
		pdir := filepath.Join(dir, "plots-"+iface)
		if out, err := exec.Command(bin, "plot", file, "--conn", f[0]+"-"+f[2], "--out", pdir).CombinedOutput(); err != nil {
			t.Fatalf("plot %s: %v\n%s", iface, err, out)
		}
		pngs, _ := filepath.Glob(filepath.Join(pdir, "tsg-*.png"))
		if len(pngs) != 1 {
			t.Fatalf("-i %s: time-sequence PNGs %v", iface, pngs)
		}
		fd, err := os.Open(pngs[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(fd)
		fd.Close()
		if err != nil {
			t.Fatalf("%s: %v", pngs[0], err)
		}
	}
}
