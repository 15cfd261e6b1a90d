package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command line in this process and returns what it
// printed and its error.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// Bad input gets a message a user can act on: the usage line with an
// example for argument errors, and never an internal message.
func TestCommandErrors(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "nope")
	for _, c := range []struct {
		args  []string
		stdin string
		want  []string
	}{
		{[]string{"ping"}, "", []string{"ping: accepts 1 arg(s), received 0", "usage: sockstack ping [flags] HOST", "example: sockstack ping -c 3 server"}},
		{[]string{"ping", "--root", "/tmp", "server"}, "", []string{"unknown flag: --root", "usage: sockstack ping"}},
		{[]string{"ping", "-c", "0", "server"}, "", []string{"invalid argument: '0': out of range: 1 <= value"}},
		{[]string{"ping", "-c", "abc", "server"}, "", []string{`invalid argument "abc" for "-c, --count" flag: not a number`}},
		{[]string{"ping", "-s", "70000", "server"}, "", []string{"packet size 70000 is too large. Maximum is 65507"}},
		{[]string{"ping", "-i", "x", "server"}, "", []string{"want seconds, like 0.2"}},
		{[]string{"ping", "-t", "300", "server"}, "", []string{"out of range: 0 <= value <= 255"}},
		{[]string{"ping", "-c", "1", "banana"}, "", []string{"banana: Name or service not known"}},
		{[]string{"ping", "--addr", "10.0.0.5/24", "server"}, "", []string{"--addr applies only with --tap"}},
		{[]string{"ping", "--busy-poll", "50us", "server"}, "", []string{"--busy-poll applies only with --tap"}},
		{[]string{"echo", "--tap", "tap0", "--busy-poll", "fast", "server"}, "", []string{`invalid argument "fast" for "--busy-poll" flag`}},
		{[]string{"ping", "--kernel", "--tap", "tap0", "server"}, "", []string{"--kernel and --tap exclude each other"}},
		{[]string{"ping", "--kernel", "--tun", "tun0", "server"}, "", []string{"--kernel and --tun exclude each other"}},
		{[]string{"ping", "--tap", "tap0", "--tun", "tun0", "server"}, "", []string{"--tap and --tun exclude each other"}},
		{[]string{"up", "--serve", "echo"}, "", []string{"up needs --tap NAME or --tun NAME"}},
		{[]string{"echo", "--kernel", "--vhost", "a=10.0.0.3", "server"}, "", []string{"--vhost and --hosts apply only to the virtual network"}},
		{[]string{"echo", "--vhost", "a=1.2.3.4", "server"}, "", []string{`--vhost "1.2.3.4": want a host address in 10.0.0.0/24`}},
		{[]string{"echo", "--udp", "server"}, strings.Repeat("x", 70000) + "\n", []string{"echo: an input line is longer than 65000 bytes"}},
		{[]string{"chat", "server"}, strings.Repeat("x", 70000) + "\n", []string{"chat: an input line is longer than 65000 bytes"}},
		{[]string{"echo", "--port", "70000", "server"}, "", []string{"--port 70000 outside 1..65535"}},
		{[]string{"tftp", "get", "server"}, "", []string{"accepts between 3 and 4 arg(s)", "usage: sockstack tftp get|put", "example: sockstack tftp get server hello.txt"}},
		{[]string{"tftp", "fetch", "server", "x"}, "", []string{`want get or put, not "fetch"`}},
		{[]string{"tftp", "get", "--blksize", "4", "server", "x"}, "", []string{"--blksize 4 outside 8..65464"}},
		{[]string{"tftp", "get", "-q", "server", "nosuch.bin", filepath.Join(t.TempDir(), "x")}, "", []string{"file not found (error 1)"}},
		{[]string{"tftp", "get", "-q", "--retries", "1", "--timeout", "200ms", "10.0.0.50", "x", filepath.Join(t.TempDir(), "x")}, "", []string{"tftp: no answer from 10.0.0.50:69 (no such host, or no TFTP server there)"}},
		{[]string{"http", "get", "ftp://server/"}, "", []string{`want an http:// URL, got "ftp://server/"`, "usage: sockstack http get URL"}},
		{[]string{"http", "post", "http://server/"}, "", []string{`only get is supported, not "post"`}},
		{[]string{"mcast", "send", "10.0.0.1:5"}, "", []string{"want GROUP:PORT with a multicast group"}},
		{[]string{"mcast", "listen", "--loop", "239.1.1.1:5000"}, "", []string{"--loop applies to send"}},
		{[]string{"chat", "--bots", "100", "server"}, "", []string{"--bots 100 outside 0..16"}},
		{[]string{"bench", "--runs", "0"}, "", []string{"--runs 0: want at least 1", "usage: sockstack bench"}},
		{[]string{"bench", "--rr", "-5"}, "", []string{"--rr -5: want at least 1 round trip"}},
		{[]string{"bench", "--only", "bogus"}, "", []string{`--only "bogus": not a figure; valid: bulk1500, bulk65000, rr, conn, mem, udp`}},
		{[]string{"up", "--kernel"}, "", []string{"unknown flag: --kernel", "usage: sockstack up"}},
		{[]string{"up", "--addr", "10.77.0.2/24"}, "", []string{"up needs --tap NAME"}},
		{[]string{"up", "--tap", "nosuchtap9", "--addr", "10.77.0.2/24"}, "", []string{"TAP nosuchtap9 does not exist", "--create"}},
		{[]string{"up", "--tap", "t0", "--addr", "banana"}, "", []string{`bad address "banana": want CIDRs like 10.77.0.2/24`}},
		{[]string{"up", "--tap", "t0", "--addr", "10.77.0.2/24", "--serve", "http", "--root", missingDir}, "", []string{"--root " + missingDir + ": no such directory"}},
		{[]string{"up", "--tap", "t0", "--addr", "10.77.0.2/24", "--root", "/tmp"}, "", []string{"--root applies only with --serve"}},
		{[]string{"up", "--tap", "t0", "--netns", "nosuchns9", "--addr", "10.77.0.2/24"}, "", []string{"--netns nosuchns9: no such network namespace"}},
		{[]string{"netstat"}, "", []string{"netstat: needs --control PATH", "example: sockstack netstat --control /tmp/sockstack.ctl"}},
		{[]string{"demo", "extra"}, "", []string{`unknown command "extra"`, "usage: sockstack demo"}},
		{[]string{"sniff", "tcp", "and"}, "", []string{"expression ends early", "usage: sockstack sniff"}},
		{[]string{"sniff", "--iface", "lo"}, "", []string{"--iface applies only with --kernel"}},
		{[]string{"sniff", "--kernel"}, "", []string{"--kernel needs --iface NAME"}},
		{[]string{"sniff", "--kernel", "--iface", "nosuch9"}, "", []string{"no interface nosuch9"}},
		{[]string{"sniff", "--serve", "echo"}, "", []string{"--serve applies only with --tap"}},
	} {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			out, err := runCLI(t, c.stdin, c.args...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, leak := range []string{"strconv", "ParseAddr", "bufio.Scanner", "route ip+net", "panic", "goroutine"} {
				if strings.Contains(msg+out, leak) {
					t.Errorf("internal message %q leaks:\n%s\n%s", leak, msg, out)
				}
			}
		})
	}
}

// The virtual network leaves nothing in /tmp.
func TestVnetRemovesItsDirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := runCLI(t, "", "ping", "-c", "1", "-q", "server"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}
