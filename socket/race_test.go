//go:build race

package socket

// raceEnabled: the race detector is on, and sync.Pool drops a share of
// what is put back, so allocation counts of pooled paths vary.
const raceEnabled = true
