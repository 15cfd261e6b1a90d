package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pin of a known difference catches a new divergence inside it.
func TestPinMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "case.txt")
	got := []string{"bind: ok", "recv: EAGAIN"}
	if msg := pinMismatch("case", path, got); !strings.Contains(msg, "without a pinned transcript") {
		t.Fatalf("missing pin: %q", msg)
	}
	if err := os.WriteFile(path, []byte("bind: ok\nrecv: EAGAIN\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := pinMismatch("case", path, got); msg != "" {
		t.Fatalf("same transcript: %q", msg)
	}
	msg := pinMismatch("case", path, []string{"bind: ok", "recv: 0 \"\""})
	if !strings.Contains(msg, "changed inside a known difference") || !strings.Contains(msg, "update-known") {
		t.Fatalf("changed transcript: %q", msg)
	}
}

// Every known difference has a pin and every pin a known difference.
func TestPinsMatchKnownDifferences(t *testing.T) {
	for name := range knownDifferences {
		if _, err := os.Stat(pinPath(name)); err != nil {
			t.Errorf("%s: no pin: %v", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(knownDir, "*.txt"))
	if len(files) != len(knownDifferences) {
		t.Errorf("%d pins for %d known differences", len(files), len(knownDifferences))
	}
}
