package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bench prints figures as people write them, never in e-notation.
func TestBenchFigures(t *testing.T) {
	for v, want := range map[float64]string{
		34680.4: "34,680", 1234567: "1,234,567", 999.4: "999", 42.26: "42.3", 3.14159: "3.14", 0.0421: "0.042", 1000: "1,000",
	} {
		if got := figure(v); got != want {
			t.Errorf("figure(%v) = %q, want %q", v, got, want)
		}
	}
	if got := groupDigits(-1234); got != "-1,234" {
		t.Errorf("groupDigits(-1234) = %q", got)
	}
}

// ping refuses what iputils refuses; below 2 ms only with privilege.
func TestPingRefusesLikeIputils(t *testing.T) {
	ok := pingOpts{size: 56, interval: 200 * time.Millisecond, ttl: -1}
	if err := ok.check(); err != nil {
		t.Fatalf("-i 0.2: %v", err)
	}
	for _, c := range []struct {
		o    pingOpts
		want string
	}{
		{pingOpts{size: 56, interval: time.Millisecond, ttl: -1}, "cannot flood; minimal interval allowed for user is 2ms"},
		{pingOpts{size: 65508, interval: time.Second, ttl: -1}, "packet size 65508 is too large. Maximum is 65507"},
		{pingOpts{size: -1, interval: time.Second, ttl: -1}, "out of range: 0 <= value <= 2147483647"},
		{pingOpts{size: 56, interval: time.Second, ttl: 256}, "out of range: 0 <= value <= 255"},
	} {
		if err := c.o.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	root := pingOpts{size: 56, interval: time.Millisecond, ttl: -1, root: true}
	if err := root.check(); err != nil {
		t.Errorf("root may go below 2 ms: %v", err)
	}
}

// With --kernel, names go to the system's resolver.
func TestKernelResolvesNames(t *testing.T) {
	e := &env{}
	a, err := e.resolve("localhost")
	if err != nil || a.String() != "127.0.0.1" {
		t.Fatalf("localhost: %v %v", a, err)
	}
	if _, err := e.resolve("no-such-host.invalid"); err == nil || !strings.Contains(err.Error(), "Name or service not known") {
		t.Errorf("unknown name: %v", err)
	}
}

// Without CAP_NET_RAW, sniff --kernel says which capability it needs.
func TestSniffKernelNamesCapNetRaw(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the command as another user")
	}
	bin := sockstackBinary(t)
	cmd := exec.Command(bin, "sniff", "--kernel", "--iface", "lo", "-c", "1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_NET_RAW") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

// -i takes seconds as iputils does ("0.2"); nonsense is refused.
func TestSecondsFlag(t *testing.T) {
	var s seconds
	if err := s.Set("0.2"); err != nil || time.Duration(s) != 200*time.Millisecond {
		t.Fatalf("0.2: %v %v", time.Duration(s), err)
	}
	for _, bad := range []string{"-1", "abc", "NaN", "Inf", "1e9"} {
		if err := s.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
