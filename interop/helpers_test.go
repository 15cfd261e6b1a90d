package interop

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startCmd starts c and returns where its Wait result will arrive, so a
// test can talk to c meanwhile and then wait for it.
func startCmd(t *testing.T, c *exec.Cmd) <-chan error {
	t.Helper()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	return done
}

// waitTcpdump waits until tcpdump, printing to out, says it listens (it
// tells only on its output); it fails the test if tcpdump ends first.
func waitTcpdump(t *testing.T, out *syncBuffer, done <-chan error) {
	t.Helper()
	for !strings.Contains(out.String(), "listening on") {
		select {
		case err := <-done:
			t.Fatalf("tcpdump ended: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
