package attack

import (
	"testing"

	"github.com/sockstack/sockstack/tcp"
)

// twCap is the TIME_WAIT cap of the flood's victim, below the number of
// connections so that the flood meets it.
func twCap() int { return scaled(2000, 2) }

// twConfig is the victim's TCP configuration for the TIME_WAIT flood.
func twConfig() tcp.Config { return tcp.Config{MaxTimeWait: twCap()} }

// checkTimeWaitCap checks the number of TIME_WAIT entries against the cap
// and that the connections beyond it were counted (TimeWaitOverflow).
func checkTimeWaitCap(t *testing.T, tw, n int, m *measure) {
	t.Helper()
	if tw > twCap() {
		t.Errorf("%d TIME_WAIT entries, cap %d", tw, twCap())
	}
	// Every closing either holds a record or is counted as an overflow.
	if got := m.moved.get("TCP.TimeWaitOverflow"); got == 0 || got+uint64(tw) != uint64(n) {
		t.Errorf("%d connections, %d in TIME_WAIT, TimeWaitOverflow %d: closings not accounted for", n, tw, got)
	}
}
