//go:build race

package interop

// Under -race the relay binary is built with the race detector too, so
// TestInteropRelay checks cmd/sockstack/relay.go's goroutines for races.
func init() { relayRace = true }
