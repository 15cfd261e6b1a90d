//go:build race

package examples_test

// Under go test -race the examples are built with the race detector too,
// so a data race in the stack that an example provokes fails the test.
func init() { buildFlags = append(buildFlags, "-race") }
