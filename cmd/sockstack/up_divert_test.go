package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/stack"
)

func TestParseDivert(t *testing.T) {
	tcp, udp := stack.TransparentTCP, stack.TransparentUDP
	for _, c := range []struct {
		in   string
		want stack.TransparentRule
	}{
		{"tcp:10.0.0.0/8:1234", stack.TransparentRule{Proto: tcp, Dst: netip.MustParsePrefix("10.0.0.0/8"), ToPort: 1234}},
		{"udp:198.51.100.7/32:53:5353", stack.TransparentRule{Proto: udp, Dst: netip.MustParsePrefix("198.51.100.7/32"), Ports: [2]uint16{53, 53}, ToPort: 5353}},
		{"tcp+udp:0.0.0.0/0:1-1024:9000", stack.TransparentRule{Proto: tcp | udp, Dst: netip.MustParsePrefix("0.0.0.0/0"), Ports: [2]uint16{1, 1024}, ToPort: 9000}},
		{"TCP:10.1.2.3/8:7", stack.TransparentRule{Proto: tcp, Dst: netip.MustParsePrefix("10.0.0.0/8"), ToPort: 7}},
		{"tcp:2001:db8::/32:1234", stack.TransparentRule{Proto: tcp, Dst: netip.MustParsePrefix("2001:db8::/32"), ToPort: 1234}},
		{"udp+tcp:2001:db8:77::/48:80-443:7", stack.TransparentRule{Proto: tcp | udp, Dst: netip.MustParsePrefix("2001:db8:77::/48"), Ports: [2]uint16{80, 443}, ToPort: 7}},
		{"tcp:[::/0]:9000", stack.TransparentRule{Proto: tcp, Dst: netip.MustParsePrefix("::/0"), ToPort: 9000}},
	} {
		r, err := parseDivert(c.in)
		if err != nil || r != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.in, r, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"tcp", "want PROTO:PREFIX[:PORTS]:TOPORT"},
		{"sctp:10.0.0.0/8:1", `protocol "sctp": want tcp, udp or tcp+udp`},
		{"tcp:10.0.0.1:1234", `"10.0.0.1": want a prefix with its length`},
		{"tcp:10.0.0.0/8", "no port to divert to"},
		{"tcp:10.0.0.0/33:1", `"10.0.0.0/33" is not a prefix`},
		{"tcp:banana/8:1", `"banana/8" is not a prefix`},
		{"tcp:10.0.0.0/8:0", `port "0": want 1..65535`},
		{"tcp:10.0.0.0/8:70000", `port "70000": want 1..65535`},
		{"tcp:10.0.0.0/8:x:1", `ports "x": want N or LO-HI`},
		{"tcp:10.0.0.0/8:443-80:1", `ports "443-80"`},
		{"tcp:2001:db8::/32", "no port to divert to"},
		{"tcp:[2001:db8::/32:1", "want PROTO:PREFIX"},
	} {
		_, err := parseDivert(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `--divert "`+c.in+`"`) {
			t.Errorf("%s: %v, want an error naming the value with %q", c.in, err, c.want)
		}
	}
}

// A bad --divert is a usage error before any device is opened.
func TestUpDivertFlagError(t *testing.T) {
	_, err := runCLI(t, "", "up", "--tap", "t0", "--addr", "10.77.0.2/24", "--divert", "tcp:10.0.0.0/8")
	if err == nil || !strings.Contains(err.Error(), `--divert "tcp:10.0.0.0/8": no port to divert to`) || !strings.Contains(err.Error(), "usage: sockstack up") {
		t.Fatalf("%v", err)
	}
}

// `up --divert` on a VXLAN segment: a second host routes 198.51.100.0/24
// and 2001:db8:77::/48 to it, connects to addresses there, and reaches
// the echo service, made transparent, which sees the original
// destination as its own address.
func TestUpDivertServes(t *testing.T) {
	f := hostFlags{kind: upTool, addr: "192.168.93.1/24,fd00:93::1/64", vx: vxlanFlags{local: "127.0.0.1:0", vni: 11, on: true},
		diverts: []string{"tcp+udp:198.51.100.0/24:7", "tcp:2001:db8:77::/48:1-1000:7"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, pw, &f, &canFlags{}, "echo", "", "")
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var lines []string
	port := ""
	re := regexp.MustCompile(`VXLAN vni 11 on udp (127\.0\.0\.1:\d+)`)
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
	all := strings.Join(lines, "\n")
	if port == "" {
		t.Fatalf("up did not report its VXLAN address:\n%s", all)
	}
	for _, w := range []string{"divert tcp+udp 198.51.100.0/24 all ports -> port 7 (to the service there)", "divert tcp 2001:db8:77::/48 ports 1-1000 -> port 7 (to the service there)"} {
		if !strings.Contains(all, w) {
			t.Errorf("output lacks %q:\n%s", w, all)
		}
	}
	c := hostFlags{kind: clientTool, addr: "192.168.93.2/24,fd00:93::2/64", vx: vxlanFlags{local: "127.0.0.1:0", remotes: []string{port}, vni: 11, on: true}}
	e, err := c.openVXLAN(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.st.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("192.168.93.1"), NIC: e.nic})
	e.st.AddRoute(stack.Route{Prefix: netip.MustParsePrefix("2001:db8:77::/48"), Gateway: netip.MustParseAddr("fd00:93::1"), NIC: e.nic})
	for _, dst := range []string{"198.51.100.9:443", "[2001:db8:77::7]:80"} {
		e.ready6(netip.MustParseAddrPort(dst).Addr())
		conn, err := netconn.Dial(e.net, "tcp", dst)
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second)) // a failure bound
		msg := "diverted to " + dst
		go io.WriteString(conn, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("%s: echo %q: %v", dst, got, err)
		}
		conn.Close()
	}
	// UDP reaches the echo service too, whose answer leaves from the
	// host's own address (it does not read IP_ORIGDSTADDR).
	pc, err := netconn.ListenPacket(e.net, "udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(30 * time.Second)) // a failure bound
	if _, err := pc.WriteTo([]byte("udp diverted"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.9:7"))); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, from, err := pc.ReadFrom(b)
	if err != nil || string(b[:n]) != "udp diverted" || from.String() != "192.168.93.1:7" {
		t.Fatalf("udp echo %q from %v: %v", b[:n], from, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The same rule twice is refused, naming the value, and so is a rule
// past the stack's table (stack.MaxTransparentRules, counted).
func TestUpDivertRefused(t *testing.T) {
	f := hostFlags{kind: upTool, addr: "192.168.94.1/24", vx: vxlanFlags{local: "127.0.0.1:0", vni: 12, on: true},
		diverts: []string{"tcp:198.51.100.0/24:7", "tcp:198.51.100.9/24:7"}}
	err := runUp(context.Background(), io.Discard, &f, &canFlags{}, "", "", "")
	if err == nil || !strings.Contains(err.Error(), `--divert "tcp:198.51.100.9/24:7": given twice`) {
		t.Fatalf("%v", err)
	}
	f.diverts = nil
	for i := 0; i <= stack.MaxTransparentRules; i++ {
		f.diverts = append(f.diverts, fmt.Sprintf("tcp:198.51.100.%d/32:7", i))
	}
	err = runUp(context.Background(), io.Discard, &f, &canFlags{}, "", "", "")
	want := fmt.Sprintf(`--divert "tcp:198.51.100.%d/32:7": at most %d rules`, stack.MaxTransparentRules, stack.MaxTransparentRules)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%v, want %q", err, want)
	}
}
