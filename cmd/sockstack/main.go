// Command sockstack runs the sockstack user-space TCP/IP stack: a demo on
// the built-in virtual network, a host on a real link, client tools, and
// benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// exitGrace is how long a command has after SIGINT/SIGTERM to return on
// its own (printing its summary, closing its stacks) before the process
// cleans up what it left in /tmp and exits.
const exitGrace = 2 * time.Second

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	go func() {
		var sig os.Signal
		for sig = range sigs {
			// SIGPIPE also comes from writes to kernel sockets (--kernel),
			// which get EPIPE and are handled; only a reader of our output
			// gone (| head) ends the tool.
			if sig != syscall.SIGPIPE || outputGone() {
				break
			}
		}
		cancel()
		select {
		case <-sigs:
		case <-time.After(exitGrace):
		}
		runAtExit()
		if s, ok := sig.(syscall.Signal); ok {
			os.Exit(128 + int(s))
		}
		os.Exit(1)
	}()
	if err := root.ExecuteContext(ctx); err != nil {
		var q *quietError
		if errors.As(err, &q) {
			return q.code // the command said it all (ping's statistics)
		}
		fmt.Fprintln(os.Stderr, "sockstack:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "sockstack",
		Short:         "A user-space TCP/IP stack with the BSD socket interface",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd())
	root.AddCommand(relayCmd()) // relay.go
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(c, "%s", cleanFlagError(err))
	})
	return root
}

// outputGone tells whether standard output or error is a pipe whose
// reader has gone.
func outputGone() bool {
	fds := []unix.PollFd{{Fd: 1}, {Fd: 2}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 {
		return false
	}
	return fds[0].Revents&unix.POLLERR != 0 || fds[1].Revents&unix.POLLERR != 0
}

// extraCommands lets other files add subcommands.
var extraCommands []func() *cobra.Command

// Cleanups to run when a signal ends the process before the command
// returned (temporary directories of the virtual network).
var (
	exitMu    sync.Mutex
	exitFuncs = map[int]func(){}
	exitNext  int
)

// atExit registers f; the returned function unregisters it.
func atExit(f func()) func() {
	exitMu.Lock()
	defer exitMu.Unlock()
	id := exitNext
	exitNext++
	exitFuncs[id] = f
	return func() {
		exitMu.Lock()
		delete(exitFuncs, id)
		exitMu.Unlock()
	}
}

func runAtExit() {
	exitMu.Lock()
	defer exitMu.Unlock()
	for id, f := range exitFuncs {
		f()
		delete(exitFuncs, id)
	}
}

// usageErr is an argument error with the command's usage line and its
// first example.
func usageErr(c *cobra.Command, format string, a ...any) error {
	msg := fmt.Sprintf("%s: %s\nusage: %s", c.Name(), fmt.Sprintf(format, a...), c.UseLine())
	if ex := strings.TrimSpace(c.Example); ex != "" {
		first, _, _ := strings.Cut(ex, "\n")
		msg += "\nexample: " + strings.TrimSpace(first)
	}
	return errors.New(msg)
}

// usageArgs wraps a positional-argument check so its error carries the
// usage line.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageErr(c, "%v", err)
		}
		return nil
	}
}

var parseNoise = regexp.MustCompile(`: strconv\.\w+: parsing "[^"]*": (invalid syntax|value out of range)`)

// cleanFlagError keeps pflag's message but drops the strconv details.
func cleanFlagError(err error) string {
	s := err.Error()
	if m := parseNoise.FindStringSubmatch(s); m != nil {
		s = parseNoise.ReplaceAllString(s, "")
		if m[1] == "value out of range" {
			s += ": out of range"
		} else {
			s += ": not a number"
		}
	}
	return s
}

// groupDigits writes n with thousands separators (34,680), as people
// read figures.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
