package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/netconn"
)

// The VXLAN flags are validated with messages that say what to give.
func TestUpVXLANFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--addr", "10.0.0.1/24"}, "--vxlan-local HOST:PORT --vni N"},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--addr", "10.0.0.1/24"}, "VXLAN needs --vni N"},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vni", "1"}, "VXLAN needs --addr CIDR"},
		{[]string{"up", "--vni", "1", "--addr", "10.0.0.1/24"}, "VXLAN needs --vxlan-local HOST:PORT"},
		{[]string{"up", "--vxlan-local", "localhost", "--vni", "1", "--addr", "10.0.0.1/24"}, `--vxlan-local "localhost": want an IPv4 HOST:PORT`},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vxlan-remote", "127.0.0.1:0", "--vni", "1", "--addr", "10.0.0.1/24"}, `--vxlan-remote "127.0.0.1:0"`},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vni", "16777216", "--addr", "10.0.0.1/24"}, "does not fit 24 bits"},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vni", "1", "--tap", "t0", "--addr", "10.0.0.1/24"}, "exclude each other"},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vni", "1", "--create", "--addr", "10.0.0.1/24"}, "--create applies only with --tap"},
		{[]string{"up", "--vxlan-local", "127.0.0.1:0", "--vni", "1", "--addr", "banana"}, `bad address "banana"`},
		{[]string{"ping", "--vxlan-local", "127.0.0.1:0", "--vni", "1", "--kernel", "10.0.0.2"}, "exclude each other"},
	} {
		out, err := runCLI(t, "", c.args...)
		if err == nil || !strings.Contains(out+err.Error(), c.want) {
			t.Errorf("%v: %v %s, want %q", c.args, err, out, c.want)
		}
	}
}

// `up` on a VXLAN segment serves: a second host (the client tools' way
// of joining, in this process) floods ARP to it, learns it, and talks TCP
// to its echo service across the overlay on loopback.
func TestUpVXLANServes(t *testing.T) {
	f := hostFlags{kind: upTool, addr: "192.168.92.1/24", vx: vxlanFlags{local: "127.0.0.1:0", vni: 9, on: true}}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, pw, &f, &canFlags{}, "echo", "", "")
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var lines []string
	port := ""
	re := regexp.MustCompile(`VXLAN vni 9 on udp (127\.0\.0\.1:\d+)`)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
		if strings.Contains(sc.Text(), "running;") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if port == "" {
		cancel()
		t.Fatalf("up did not report its VXLAN address:\n%s", strings.Join(lines, "\n"))
	}
	c := hostFlags{kind: clientTool, addr: "192.168.92.2/24", vx: vxlanFlags{local: "127.0.0.1:0", remotes: []string{port}, vni: 9, on: true}}
	e, err := c.openVXLAN(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	conn, err := netconn.Dial(e.net, "tcp", "192.168.92.1:7")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a failure bound
	msg := strings.Repeat("across the overlay ", 500)
	go io.WriteString(conn, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %v (%d bytes)", err, len(got))
	}
	conn.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
