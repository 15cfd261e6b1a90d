package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// sockstackBinary builds the command once for the tests that run it as a
// process.
func sockstackBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sockstack-cmdtest-")
		if buildErr != nil {
			return
		}
		os.Chmod(buildDir, 0o755) // other users run it too (TestSniffKernelNamesCapNetRaw)
		buildPath = filepath.Join(buildDir, "sockstack")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// A tool killed by SIGTERM (or SIGINT) leaves no /tmp/sockstack-vnet-*
// behind, also when it is blocked where it does not watch for signals
// (echo reading its standard input).
func TestSignalRemovesVnetDirectory(t *testing.T) {
	bin := sockstackBinary(t)
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		args []string
	}{
		{"echo_stdin_SIGTERM", syscall.SIGTERM, []string{"echo", "server"}},
		{"chat_SIGTERM", syscall.SIGTERM, []string{"chat", "server"}},
		{"ping_SIGINT", syscall.SIGINT, []string{"ping", "server"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command(bin, c.args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			stdin, _ := cmd.StdinPipe() // held open: the tool blocks on it
			defer stdin.Close()
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The announcement comes after the directory is made.
			sc := bufio.NewScanner(stderr)
			announced := false
			for sc.Scan() {
				if strings.Contains(sc.Text(), "built-in virtual network") {
					announced = true
					break
				}
			}
			if !announced {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("no announcement of the virtual network")
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "sockstack-vnet-") {
				t.Fatalf("before the signal: %v", ents)
			}
			cmd.Process.Signal(c.sig)
			go func() {
				for sc.Scan() {
				}
			}()
			err := cmd.Wait()
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Fatalf("left behind after %v (%v): %v", c.sig, err, ents)
			}
		})
	}
}

// A reader of the output that goes away (sockstack ping | head -2) ends
// the tool as SIGPIPE ends iputils ping, and the directory goes too.
func TestBrokenPipeRemovesVnetDirectory(t *testing.T) {
	bin := sockstackBinary(t)
	tmp := t.TempDir()
	cmd := exec.Command(bin, "ping", "-i", "0.2", "server")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for i := 0; i < 2 && sc.Scan(); i++ {
	}
	stdout.Close() // like head exiting after two lines
	err := cmd.Wait()
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left behind after the reader went (%v): %v", err, ents)
	}
	if err == nil {
		t.Fatal("ping went on as if someone read it")
	}
}
