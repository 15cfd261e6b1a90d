//go:build race

package perf

// raceEnabled: the race detector is on; its sync.Pool drops a share of
// what is put back, so memory figures of pooled state vary.
const raceEnabled = true
