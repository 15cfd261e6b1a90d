package interop

import (
	"os/exec"
	"testing"
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
