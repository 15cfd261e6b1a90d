package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// crashingCases are known differences in which sockstack crashes the
// process (a panic on one of its own goroutines, which Run cannot
// recover). Their sockstack side runs in a child process: the case's
// transcript is then the single line "crash: <panic message>", pinned
// like any other known difference, and a case that stops crashing shows
// up as a changed pin. Each one is also in knownDifferences.
var crashingCases = map[string]bool{}

const crashCaseEnv = "CONFORMANCE_CRASH_CASE"

// runCrashing runs c on a fresh sockstack host in a child test process
// and returns its transcript, or the crash.
func runCrashing(t *testing.T, c Case) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashingCaseChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashCaseEnv+"="+c.Name)
	out, err := cmd.CombinedOutput()
	if m := regexp.MustCompile(`(?m)^panic: (.*)$`).FindSubmatch(out); m != nil {
		return []string{"crash: panic: " + string(m[1])}
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "transcript: "); ok {
			lines = append(lines, rest)
		}
	}
	if err != nil && lines == nil {
		return []string{fmt.Sprintf("crash: %v", err)}
	}
	return lines
}

// TestCrashingCaseChild is the child process of runCrashing.
func TestCrashingCaseChild(t *testing.T) {
	name := os.Getenv(crashCaseEnv)
	if name == "" {
		return // only meaningful as runCrashing's child
	}
	for _, c := range Cases() {
		if c.Name == name {
			se := StackEnv()
			for _, l := range Run(se, c) {
				fmt.Printf("transcript: %s\n", l)
			}
			se.Close()
			return
		}
	}
	t.Fatalf("no case %q", name)
}

func TestCrashingCasesAreKnown(t *testing.T) {
	for name := range crashingCases {
		if _, ok := knownDifferences[name]; !ok {
			t.Errorf("%s crashes sockstack but is not in knownDifferences", name)
		}
	}
}
