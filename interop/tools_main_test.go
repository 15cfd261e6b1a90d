package interop

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the sockstack command the tests built
// (/tmp/sockstack-interop-*), whatever the outcome.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
