package interop

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/chat"
)

// tmuxSession drives the interactive tools on a terminal of a private
// tmux server, as a person would, and reads the screen.
type tmuxSession struct {
	t    *testing.T
	sock string
}

func (s *tmuxSession) cmd(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen(win string) string {
	return s.cmd("capture-pane", "-p", "-J", "-t", "t:"+win)
}

// waitScreen waits until window win shows every string. tmux tells
// nobody when a pane changes, so the screen is read again every 50 ms,
// for at most 30 s.
func (s *tmuxSession) waitScreen(win string, want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scr := s.screen(win)
		missing := ""
		for _, w := range want {
			if !strings.Contains(scr, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("window %s never showed %q; screen:\n%s", win, missing, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The interactive tools on a terminal: two people in a chat room (the
// sockstack chat client on the kernel's sockets, sockstack's chat server
// on the TAP), a TFTP download with its progress bar, and ping stopped
// with Ctrl-C printing its statistics as iputils does.
func TestInteropToolsOnATerminal(t *testing.T) {
	l := newLab(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		missing(t, "tmux")
	}
	h := l.startStack("")
	srv, err := chat.Serve(h.net, netip.AddrPortFrom(netip.IPv4Unspecified(), chat.Port), chat.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bin := sockstackBin(t)
	s := &tmuxSession{t: t, sock: "sockstack-" + l.ns}
	s.cmd("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "160", "-y", "40")
	t.Cleanup(func() { exec.Command("tmux", "-L", s.sock, "kill-server").Run() })
	s.cmd("set-option", "-g", "remain-on-exit", "on")
	work := t.TempDir()

	t.Run("chat_two_clients", func(t *testing.T) {
		s.t = t
		for _, who := range []string{"alice", "bob"} {
			s.cmd("new-window", "-t", "t:", "-n", who,
				fmt.Sprintf("ip netns exec %s %s chat --kernel --name %s %v", l.ns, bin, who, stackIP))
			s.waitScreen(who, "* welcome "+who)
		}
		s.cmd("send-keys", "-t", "t:alice", "hello from alice", "Enter")
		s.waitScreen("bob", "alice: hello from alice")
		s.cmd("send-keys", "-t", "t:bob", "hi alice", "Enter")
		s.waitScreen("alice", "bob: hi alice")
		s.cmd("send-keys", "-t", "t:bob", "/who", "Enter")
		s.waitScreen("bob", "* here: alice, bob")
	})
	t.Run("tftp_progress_bar", func(t *testing.T) {
		s.t = t
		// Small blocks, so the transfer lasts long enough to be watched.
		s.cmd("new-window", "-t", "t:", "-n", "tftp", "-c", work,
			fmt.Sprintf("%s tftp get --blksize 16 server 1MiB.bin got.bin", bin))
		// While it runs: bytes so far of the total, the rate, and
		// [elapsed:left].
		mid := s.waitScreen("tftp", "tftp get 1MiB.bin ", " KiB/1.0 MiB, ", "/s) [")
		if !regexp.MustCompile(`\[\d+s:\d+s\]`).MatchString(mid) {
			t.Errorf("no [elapsed:left] on the bar:\n%s", mid)
		}
		scr := s.waitScreen("tftp", "received 1,048,576 bytes in", "blksize 16")
		// The bar ended full.
		if !strings.Contains(scr, "tftp get 1MiB.bin 100% |") || !strings.Contains(scr, "(1.0/1.0 MiB, ") {
			t.Errorf("the bar did not end full:\n%s", scr)
		}
	})
	t.Run("ping_ctrl-c_summary", func(t *testing.T) {
		s.t = t
		s.cmd("new-window", "-t", "t:", "-n", "ping", fmt.Sprintf("%s ping -i 0.2 server", bin))
		s.waitScreen("ping", "PING server (10.0.0.2) 56(84) bytes of data.", "64 bytes from server (10.0.0.2): icmp_seq=3 ttl=64")
		s.cmd("send-keys", "-t", "t:ping", "C-c")
		scr := s.waitScreen("ping", "--- server ping statistics ---", "rtt min/avg/max/mdev")
		if !regexp.MustCompile(`\d+ packets transmitted, \d+ received, .*packet loss, time \d+ms`).MatchString(scr) {
			t.Errorf("no statistics line:\n%s", scr)
		}
	})
}
