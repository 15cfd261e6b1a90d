package tftp

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// ProgressBar returns a ClientConfig.Progress that draws a one-line bar
// on w (a terminal), redrawn in place with a carriage return, at most
// once per percent (or per 64 KiB when the total is unknown). Call the
// returned done function at the end to finish the line.
func ProgressBar(w io.Writer, label string) (progress func(done, total int64), finish func()) {
	var mu sync.Mutex
	lastPct, lastBytes := -1, int64(-1)
	var last string
	draw := func(done, total int64) {
		if total > 0 {
			pct := int(done * 100 / total)
			if pct > 100 {
				pct = 100
			}
			if pct == lastPct {
				return
			}
			lastPct = pct
			bar := strings.Repeat("=", pct*30/100)
			if len(bar) < 30 {
				bar += ">" + strings.Repeat(" ", 29-len(bar))
			}
			last = fmt.Sprintf("\r%s [%s] %3d%% %s", label, bar, pct, human(done))
		} else {
			if lastBytes >= 0 && done-lastBytes < 64<<10 {
				return
			}
			lastBytes = done
			last = fmt.Sprintf("\r%s %s", label, human(done))
		}
		io.WriteString(w, last)
	}
	progress = func(done, total int64) {
		mu.Lock()
		draw(done, total)
		mu.Unlock()
	}
	finish = func() {
		mu.Lock()
		if last != "" {
			io.WriteString(w, "\n")
		}
		mu.Unlock()
	}
	return progress, finish
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
