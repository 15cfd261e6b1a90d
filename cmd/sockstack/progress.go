package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// meter reports one transfer: on a terminal a bar redrawn in place with
// the rate and the time left; elsewhere (a pipe, a log) only the final
// summary line, so logs stay readable.
type meter struct {
	w     io.Writer
	label string
	start time.Time
	mu    sync.Mutex
	bar   *progressbar.ProgressBar // nil when w is not a terminal
	total int64
	// lastAt is when the last bytes moved: the rate excludes what comes
	// after (TFTP's wait for a retransmitted last block, a close).
	lastAt time.Time
}

// forceBar makes every meter draw its bar (tests of the drawing).
var forceBar bool

func newMeter(w io.Writer, label string, total int64, quiet bool) *meter {
	m := &meter{w: w, label: label, start: time.Now(), total: total}
	if quiet || !(forceBar || isTerminal(w)) {
		return m
	}
	m.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true), // [elapsed:left]
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSpinnerType(14),
	)
	return m
}

// set records done bytes of total (-1: unknown).
func (m *meter) set(done, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastAt = time.Now()
	if m.bar == nil {
		return
	}
	if total >= 0 && total != m.total {
		m.total = total
		m.bar.ChangeMax64(total)
	}
	m.bar.Set64(done)
}

// done ends the bar and prints the summary line: what moved, how long it
// took and the rate, with extra (e.g. the block size) appended.
func (m *meter) done(verb string, n int64, extra string) {
	m.mu.Lock()
	if m.bar != nil {
		if m.total > 0 && n >= m.total {
			m.bar.Finish()
		} else {
			m.bar.Exit()
			fmt.Fprintln(m.w)
		}
	}
	end := m.lastAt
	m.mu.Unlock()
	if end.IsZero() || n == 0 {
		end = time.Now()
	}
	d := end.Sub(m.start)
	shown := d.Round(time.Millisecond)
	if d < 10*time.Millisecond {
		shown = d.Round(time.Microsecond)
	}
	fmt.Fprintf(m.w, "%s: %s %s bytes in %v (%s)%s\n", m.label, verb, groupDigits(n), shown, rate(n, d), extra)
}

// fail ends the bar without a summary.
func (m *meter) fail() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil {
		m.bar.Exit()
		fmt.Fprintln(m.w)
	}
}

func rate(n int64, d time.Duration) string {
	bps := float64(n) * 8 / max(d.Seconds(), 1e-9)
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	}
	return fmt.Sprintf("%.1f kbit/s", bps/1e3)
}

// isTerminal tells whether w is a terminal (a bar redrawn with carriage
// returns only makes sense there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
