package interop

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// up --tap NAME refuses a TAP that does not exist (a typo would
// otherwise run a host on a new, unconnected device), unless --create.
func TestInteropToolUpRefusesMissingTAP(t *testing.T) {
	l := newLab(t)
	bin := sockstackBin(t)
	args := []string{"up", "--tap", "tap9", "--netns", l.ns, "--addr", "10.78.0.2/24"}
	out, err := l.sockstack(t, 30*time.Second, nil, args...)
	if err == nil || !strings.Contains(out, "TAP tap9 does not exist in namespace "+l.ns) || !strings.Contains(out, "--create") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	if _, err := l.try(5*time.Second, nil, "ip", "link", "show", "tap9"); err == nil {
		t.Fatal("a refused up made the TAP anyway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--create")...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	running := false
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "running; SIGINT or SIGTERM stops it") {
			running = true
			break
		}
	}
	if running {
		if _, err := l.try(5*time.Second, nil, "ip", "link", "show", "tap9"); err != nil {
			t.Errorf("up --create did not make tap9: %v", err)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	werr := cmd.Wait()
	if !running || werr != nil {
		t.Fatalf("up --create: running %v, exit %v\n%s", running, werr, strings.Join(lines, "\n"))
	}
}
