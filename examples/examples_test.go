package examples_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildFlags gains -race when the test itself runs under the race detector.
var buildFlags []string

// Every example is built once and run as a user would run it; the test
// asserts on what it prints. The kernel runs use 127.0.0.1 only.
var cases = []struct {
	name   string
	args   []string
	expect []string
}{
	{"tcpecho", nil, []string{"server: connected by 10.0.0.2:", `client: received "Hello, world"`, "server: client closed the connection"}},
	{"tcpecho", []string{"-kernel"}, []string{"server: connected by 127.0.0.1:", `client: received "Hello, world"`}},
	{"udpecho", nil, []string{"server: 5 bytes from 10.0.0.2:", `client: "hello" from 10.0.0.1:20007`, `client: "datagrams keep their boundaries" from 10.0.0.1:20007`, `client: "bye"`, "server: stopped"}},
	{"udpecho", []string{"-kernel"}, []string{`client: "bye" from 127.0.0.1:20007`}},
	{"udpchat", nil, []string{
		"alice sees: * bob joined", "bob   sees: <alice> hi bob", "carol sees: * carol joined",
		"alice sees: * bob left", "alice sees: <carol> bob has gone", "carol sees: * alice left",
		"server: * carol left (0 member(s))"}},
	{"udpchat", []string{"-kernel"}, []string{"bob   sees: <alice> hi bob", "server: * carol left (0 member(s))"}},
	{"selectchat", nil, []string{
		"server: new connection from 10.0.0.2 (1 connected)", "bob   sees: <alice> hi bob", "carol sees: * carol joined",
		"alice sees: <bob> hello carol\nalice sees: <bob> I have to go", "carol sees: * bob left",
		"server: carol hung up (0 connected)", "server: all 3 clients have left"}},
	{"selectchat", []string{"-kernel"}, []string{"server: new connection from 127.0.0.1 (1 connected)", "alice sees: <carol> bob has gone", "server: all 3 clients have left"}},
	{"gaiecho", nil, []string{
		"server: getaddrinfo: AF_INET 0.0.0.0:20007, AF_INET6 [::]:20007",
		"server: listening on AF_INET 0.0.0.0:20007",
		"client: getaddrinfo: AF_INET6 [fd00::1]:20007, AF_INET 10.0.0.1:20007",
		"client: AF_INET6 [fd00::1]:20007: connect: connection refused (skipped)",
		"client: connected to AF_INET 10.0.0.1:20007", `client: received "Hello, world"`}},
	{"nonblocking", nil, []string{`c1: echoed "message 1 from c1"`, `c2: echoed "message 2 from c2"`, `c3: echoed "message 3 from c3"`,
		"server: accepted 10.0.0.4:", "server: closed 10.0.0.2:", "server: served 3 clients from one goroutine"}},
	{"ifinfo", nil, []string{"1: lo: flags=0x49<UP,LOOPBACK,RUNNING> mtu 65536", "inet 127.0.0.1 netmask 255.0.0.0 hwaddr 00:00:00:00:00:00 (type 772)",
		"2: eth0: flags=0x1043<UP,BROADCAST,RUNNING,MULTICAST> mtu 1500", "inet 10.0.0.1 netmask 255.255.255.0 hwaddr 02:00:00:00:00:01 (type 1)",
		"server: FIONREAD said 5 bytes, recvfrom read 5", "server: FIONREAD said 360 bytes, recvfrom read 360"}},
	{"ifinfo", []string{"-kernel"}, []string{"1: lo: flags=0x49<UP,LOOPBACK,RUNNING> mtu 65536", "server: FIONREAD said 360 bytes, recvfrom read 360"}},
	{"timeout", nil, []string{`talker: got "pong" (<nil>)`, "server: 10.0.0.2:", "said goodbye", "server: 10.0.0.3:", "sent nothing for 300ms, closing", "sleeper: the server closed the connection"}},
	{"timeout", []string{"-kernel"}, []string{"sent nothing for 300ms, closing", "sleeper: the server closed the connection"}},
	{"rawping", nil, []string{"PING 10.0.0.1: 32 data bytes", "40 bytes from 10.0.0.1: icmp_seq=1 ttl=64", "icmp_seq=2 ttl=64", "icmp_seq=3 ttl=64"}},
	{"sniffer", nil, []string{
		"out 02:00:00:00:00:02 > ff:ff:ff:ff:ff:ff ARP who-has 10.0.0.1 tell 10.0.0.2",
		"in  02:00:00:00:00:01 > 02:00:00:00:00:02 ARP reply 10.0.0.1 is-at 02:00:00:00:00:01",
		`> 10.0.0.1:20011 UDP len 2 ttl 64 "hi"`, `IP 10.0.0.1:20011 > 10.0.0.2:`,
		"> 10.0.0.1:20012 TCP [S] seq", "IP 10.0.0.1:20012 > 10.0.0.2:", "TCP [S.]", "TCP [P.]", "len 5", "TCP [F.]"}},
	{"multicast", nil, []string{
		`sender's host: "hello group" from 10.0.0.1:`, `r1           : "hello group"`, `r2           : "hello group"`,
		"-- send with IP_MULTICAST_LOOP off\n  sender's host: nothing\n  r1           : \"not for my own host\"",
		"-- r2 leaves the group\n  sender's host: nothing\n  r1           : \"after the leave\" from 10.0.0.1:",
		"  r2           : nothing\nIGMPv3 report on r1's join: true, on r2's leave: true"}},
	{"structpack", nil, []string{"sender: 69 bytes for 3 records",
		`receiver: sensor 1 "kitchen": 21.50 °C, flags 000`, `receiver: sensor 2 "freezer": -12.75 °C, flags 001`,
		`receiver: sensor 70000 "greenhouse, south side": 37.00 °C, flags 011`, "receiver: 3 records in "}},
	{"structpack", []string{"-kernel"}, []string{`receiver: sensor 70000 "greenhouse, south side": 37.00 °C, flags 011`}},
	{"halfclose", nil, []string{"client: send after shutdown(SHUT_WR): broken pipe",
		"server: request of 43 bytes complete (peer sent FIN)", `client: reply "9 words: THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"`}},
	{"router", nil, []string{
		"traceroute to 10.0.2.2, 30 hops max\n 1  10.0.1.1  time exceeded\n 2  10.0.2.2  port unreachable",
		"traceroute to fd00:2::2, 30 hops max\n 1  fd00:1::1  hop limit exceeded\n 2  fd00:2::2  port unreachable",
		`tcp echo from 10.0.2.2: "across the router over IPv4"`, `tcp echo from fd00:2::2: "across the router over IPv6"`,
		"TTL ran out for 1 IPv4 and 1 IPv6 probes"}},
	{"fdpass", nil, []string{"acceptor: worker connected, SO_PEERCRED is this process: true",
		`worker: got a descriptor with "connection 1 from 10.0.0.2:`, `c1: reply "served by the worker: hello from c1", then end of stream`,
		`worker: got a descriptor with "connection 2 from 10.0.0.3:`, `c2: reply "served by the worker: hello from c2", then end of stream`,
		"worker: the acceptor closed the channel", "acceptor: descriptors still in flight: 0"}},
	{"halfclose", []string{"-kernel"}, []string{`client: reply "9 words: THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"`}},
}

func TestExamples(t *testing.T) {
	bin := t.TempDir()
	args := append([]string{"build"}, buildFlags...)
	build := exec.Command("go", append(args, "-o", bin+string(filepath.Separator), "./...")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/...: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.name] = true
		t.Run(strings.Join(append([]string{c.name}, c.args...), "_"), func(t *testing.T) {
			// A bound, not a timing assertion: a hung example fails
			// instead of stalling the suite.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(bin, c.name), c.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", c.name, c.args, err, out)
			}
			for _, want := range c.expect {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	// An example without -kernel (the README's table says "no") rejects
	// the flag instead of silently running on sockstack.
	for _, name := range []string{"gaiecho", "nonblocking", "rawping", "sniffer", "multicast", "can", "fdpass"} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, filepath.Join(bin, name), "-kernel").CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("%s -kernel ran, want a flag error:\n%s", name, out)
		}
	}
	// Every example directory has a case here, or a test of its own.
	dirs, _ := filepath.Glob("*/main.go")
	for _, d := range dirs {
		own, _ := filepath.Glob(filepath.Join(filepath.Dir(d), "*_test.go"))
		if name := filepath.Dir(d); !seen[name] && len(own) == 0 {
			t.Errorf("example %s is not run by this test", name)
		}
	}
}
