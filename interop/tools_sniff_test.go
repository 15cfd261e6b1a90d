package interop

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// sniff --kernel shows both directions of the kernel's interface, like
// tcpdump -i: the kernel's echo requests going out (out) and
// sockstack's replies coming in (in).
func TestInteropToolSniffKernelBothDirections(t *testing.T) {
	l := newLab(t)
	needTools(t, "ping")
	l.startStack("")
	bin := sockstackBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "sniff", "--kernel", "--iface", tapName, "--netns", l.ns, "-c", "4", "icmp")
	stderr, _ := cmd.StderrPipe()
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "both directions") {
			ready = true
			break
		}
		t.Log(sc.Text())
	}
	if !ready {
		cmd.Wait()
		t.Fatalf("sniff did not start:\n%s", out.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	l.run(t, 20*time.Second, nil, "ping", "-c", "2", "-i", "0.2", stackIP.String())
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sniff: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"out IP 10.77.0.1 > 10.77.0.2: ICMP echo request",
		"in  IP 10.77.0.2 > 10.77.0.1: ICMP echo reply",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("sniff --kernel lacks %q:\n%s", want, text)
		}
	}
}
