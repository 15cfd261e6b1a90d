//go:build race

package attack

// raceEnabled scales the floods down under the race detector, which
// makes every packet about ten times slower; the defences are the same.
const raceEnabled = true
