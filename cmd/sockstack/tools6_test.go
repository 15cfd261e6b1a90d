package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/httpd"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// The client tools over IPv6 on the virtual network: the server host is
// also fd00::2 (and has a link-local address); names resolve to either
// family, -6 picks IPv6.
func TestToolsIPv6OnVirtualNetwork(t *testing.T) {
	root := t.TempDir()
	if err := fillDemoRoot(root); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	f := &hostFlags{serveRoot: root, vhosts: []string{"web=10.0.0.7"}}
	e, err := f.open(&log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !strings.Contains(log.String(), "server 10.0.0.2 fd00::2") {
		t.Errorf("the IPv6 addresses are not announced: %q", log.String())
	}
	srv6 := netip.MustParseAddr("fd00::2")
	ctx := context.Background()

	t.Run("names", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			family int
			want   string
		}{
			{"server", 6, "fd00::2"}, {"server", 4, "10.0.0.2"}, {"server", 0, "10.0.0.2"},
			{"web", 6, "fd00::7"}, // through the server host's DNS (AAAA)
			{"fd00::2", 0, "fd00::2"}, {"fe80::1%eth0", 6, "fe80::1%eth0"}, {"::ffff:10.0.0.2", 0, "10.0.0.2"},
		} {
			a, err := e.resolveIn(c.name, c.family)
			if err != nil || a.String() != c.want {
				t.Errorf("%s -%d: %v %v, want %s", c.name, c.family, a, err, c.want)
			}
		}
		for _, c := range []struct {
			name   string
			family int
		}{{"fd00::2", 4}, {"10.0.0.2", 6}, {"fe80::1%nosuch", 0}, {"[fd00::2]", 0}} {
			if a, err := e.resolveIn(c.name, c.family); err == nil {
				t.Errorf("%s -%d: %v, want an error", c.name, c.family, a)
			}
		}
	})
	t.Run("ping6", func(t *testing.T) {
		var out bytes.Buffer
		if err := runPing(ctx, &out, e.api, srv6, pingOpts{count: 2, size: 100, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1, name: "server"}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		for _, w := range []string{"PING server(fd00::2) 100 data bytes", "108 bytes from server (fd00::2): icmp_seq=1 ttl=64", "2 packets transmitted, 2 received, 0% packet loss"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("ping output lacks %q:\n%s", w, out.String())
			}
		}
	})
	t.Run("ping6_raw_socket", func(t *testing.T) {
		// Without ICMPv6 ping sockets ping falls back to a raw socket.
		var out bytes.Buffer
		if err := runPing(ctx, &out, noPingSockets{e.api}, srv6, pingOpts{count: 2, size: 56, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "64 bytes from fd00::2: icmp_seq=2 ttl=64") {
			t.Errorf("%s", out.String())
		}
	})
	t.Run("ping6_link_local_with_zone", func(t *testing.T) {
		ll := serverLinkLocal(t, e)
		var out bytes.Buffer
		if err := runPing(ctx, &out, e.api, ll, pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: time.Second, ttl: 7}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "64 bytes from "+ll.String()+": icmp_seq=1 ttl=64") {
			t.Errorf("%s", out.String())
		}
	})
	for _, udp := range []bool{false, true} {
		t.Run(map[bool]string{false: "echo_tcp6", true: "echo_udp6"}[udp], func(t *testing.T) {
			var out bytes.Buffer
			if err := echoLines(&out, e.api, netip.AddrPortFrom(srv6, 7), udp, strings.NewReader("six\n"), 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if out.String() != "six\n" {
				t.Errorf("echo: %q", out.String())
			}
		})
	}
	t.Run("tftp6", func(t *testing.T) {
		want := bytes.Repeat([]byte("v6"), 3000)
		os.WriteFile(filepath.Join(root, "six.bin"), want, 0o644)
		var got bytes.Buffer
		res, err := tftpGet(ctx, e.api, netip.AddrPortFrom(srv6, 69), "six.bin", &got, tftpOpts{blksize: 1024, timeout: time.Second, retries: 3}, func(int64, int64) {})
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("get: %+v %v", res, err)
		}
		if _, err := tftpPut(ctx, e.api, netip.AddrPortFrom(srv6, 69), "six-copy.bin", bytes.NewReader(want), int64(len(want)), tftpOpts{blksize: 512, timeout: time.Second, retries: 3}, func(int64, int64) {}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "six-copy.bin")); !bytes.Equal(b, want) {
			t.Fatal("put over IPv6: the server's copy differs")
		}
	})
	t.Run("http_get_v6_literal_and_zone", func(t *testing.T) {
		ll := serverLinkLocal(t, e)
		for _, raw := range []string{"http://[fd00::2]/hello.txt", "http://[" + ll.WithZone("").String() + "%eth0]:80/hello.txt"} {
			u, err := url.Parse(zoneEscaped(raw))
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			dst, err := e.resolveIn(u.Hostname(), 0)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			var body, log bytes.Buffer
			if err := httpGet(&log, &body, e.api, netip.AddrPortFrom(dst, 80), u, false, 5*time.Second, true); err != nil {
				t.Fatalf("%s: %v\n%s", raw, err, log.String())
			}
			if body.String() != "Hello, world\n" {
				t.Errorf("%s: body %q", raw, body.String())
			}
			if h := hostHeader(u); strings.Contains(h, "%") || !strings.HasPrefix(h, "[") {
				t.Errorf("%s: Host header %q", raw, h)
			}
		}
	})
	t.Run("chat6", func(t *testing.T) {
		var out bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := runChat(cctx, &out, e.api, netip.AddrPortFrom(srv6, 7321), "six", false, strings.NewReader("hello over six\n")); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "six") {
			t.Errorf("chat output %q", out.String())
		}
	})
}

// netstat and stats of the server host (what 'sockstack netstat' and
// 'stats' print) show its IPv6 sockets as tcp6 / udp6 and its IPv6 and
// ICMPv6 counters.
func TestNetstatStatsIPv6(t *testing.T) {
	root := t.TempDir()
	fillDemoRoot(root)
	var log bytes.Buffer
	e, err := (&hostFlags{serveRoot: root}).open(&log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out bytes.Buffer
	if err := runPing(context.Background(), &out, e.api, netip.MustParseAddr("fd00::2"), pingOpts{count: 1, size: 8, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	found := map[string]bool{}
	for _, r := range httpd.Table(e.peer) {
		found[r.Proto+" "+r.Local+" "+r.State] = true
	}
	for _, w := range []string{"tcp6 *:80 LISTEN", "tcp *:80 LISTEN", "udp6 *:7 ", "udp *:7 "} {
		if !found[w] {
			t.Errorf("netstat lacks %q: %v", w, found)
		}
	}
	var stats = map[string]uint64{}
	for _, st := range httpd.Stats(e.peer, false) {
		stats[st.Section+"."+st.Name] = st.Value
	}
	for _, k := range []string{"ICMP6.InEchos", "ICMP6.OutEchoReplies", "IP6.OutRequests"} {
		if stats[k] == 0 {
			t.Errorf("stats %s is 0 after a ping6", k)
		}
	}
	if _, ok := stats["Redirect6.NotFirstHop"]; !ok {
		t.Error("stats lack the redirect counters")
	}
}

// serverLinkLocal is the server host's link-local address, zoned by
// this host's NIC.
func serverLinkLocal(t *testing.T, e *env) netip.Addr {
	t.Helper()
	for _, a := range e.peer.Stack().NICs() {
		for _, p := range a.Addrs() {
			if p.Addr().IsLinkLocalUnicast() {
				return p.Addr().WithZone(e.nic.Name())
			}
		}
	}
	t.Fatal("the server host has no link-local address")
	return netip.Addr{}
}

// ping -6 --kernel to ::1: the host kernel's ping socket, or its raw
// ICMPv6 socket as root (only loopback traffic).
func TestPing6Kernel(t *testing.T) {
	var out bytes.Buffer
	err := runPing(context.Background(), &out, sockapi.Host(), netip.IPv6Loopback(), pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: 2 * time.Second, ttl: -1})
	if err != nil && strings.Contains(err.Error(), "ping: socket") && os.Geteuid() != 0 {
		t.Skipf("not root and no ICMPv6 ping sockets for this group: %v", err)
	}
	if err != nil || !strings.Contains(out.String(), "PING ::1(::1) 56 data bytes") || !strings.Contains(out.String(), "64 bytes from ::1: icmp_seq=1 ttl=64") {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// A raw ICMPv6 socket sees every echo reply: only ours count.
func TestParsePing6Reply(t *testing.T) {
	m := []byte{wire.ICMPv6EchoReply, 0, 0, 0, 0x12, 0x34, 0, 7, 1, 2}
	if r, ok := parsePing6Reply(m, 64, true, 0x1234); !ok || r.seq != 7 || r.bytes != 10 || r.ttl != 64 {
		t.Errorf("ours: %+v %v", r, ok)
	}
	if _, ok := parsePing6Reply(m, 64, true, 0x9999); ok {
		t.Error("another identifier taken on a raw socket")
	}
	if _, ok := parsePing6Reply(m, 64, false, 0x9999); !ok {
		t.Error("a ping socket's reply refused (the socket matched it already)")
	}
	m[0] = wire.ICMPv6EchoRequest
	if _, ok := parsePing6Reply(m, 64, true, 0x1234); ok {
		t.Error("an echo request taken for a reply")
	}
}

// noPingSockets refuses ICMPv6 ping sockets, as a kernel whose
// ping_group_range leaves the user out does.
type noPingSockets struct{ sockapi.API }

func (n noPingSockets) Socket(f, ty, p int) (sockapi.Sock, error) {
	if ty == socket.SOCK_DGRAM && p == socket.IPPROTO_ICMPV6 {
		return nil, syscall.EACCES
	}
	return n.API.Socket(f, ty, p)
}

// A TAP host gets IPv6 when a tool's destination is IPv6: its
// link-local address, usable (DAD over) when ready6 returns.
func TestReady6(t *testing.T) {
	a, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 9, 1}, wire.MAC{2, 0, 0, 0, 9, 2}, 1500)
	st := stack.New(stack.Options{Name: "tap"})
	defer st.Close()
	nic := st.AddNIC("tap0", a)
	nic.AddAddress(netip.MustParsePrefix("10.77.0.2/24"))
	e := &env{st: st, nic: nic}
	e.ready6(netip.MustParseAddr("10.77.0.1"))
	if len(nic.Addrs6()) != 0 {
		t.Fatalf("IPv6 turned on for an IPv4 destination: %+v", nic.Addrs6())
	}
	e.ready6(netip.MustParseAddr("fe80::1%tap0"))
	as := nic.Addrs6()
	if len(as) != 1 || !as[0].Prefix.Addr().IsLinkLocalUnicast() || as[0].Tentative {
		t.Fatalf("after ready6: %+v", as)
	}
}

// With IPv6 on already (an IPv6 --addr) ready6 still waits until
// duplicate address detection is over, so the first connect has a source.
func TestReady6WaitsForDAD(t *testing.T) {
	a, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 9, 1}, wire.MAC{2, 0, 0, 0, 9, 2}, 1500)
	st := stack.New(stack.Options{Name: "tap"})
	defer st.Close()
	nic := st.AddNIC("tap0", a)
	if err := nic.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	nic.AddAddress(netip.MustParsePrefix("fd78::2/64"))
	e := &env{st: st, nic: nic}
	e.ready6(netip.MustParseAddr("fe80::1%tap0"))
	for _, a := range nic.Addrs6() {
		if a.Tentative {
			t.Errorf("after ready6: %v still tentative", a.Prefix)
		}
	}
}

// mcast over IPv6: the server host joins a link-scope group on its NIC
// (the zone), this host sends to it; and a site-scope group without a
// zone, looped back to a listener on this host.
func TestMcastIPv6(t *testing.T) {
	e, err := (&hostFlags{}).open(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct {
		group string
		peer  bool
	}{{"[ff02::4242%eth0]:5008", true}, {"[ff05::4242]:5009", false}} {
		gp := netip.MustParseAddrPort(c.group)
		out := newWatchBuffer()
		done := make(chan error, 1)
		api, ifindex := e.api, e.nic.ID()
		if c.peer {
			api, ifindex = sockapi.Stack(e.peer), e.peer.Stack().NICs()[1].ID()
		}
		go func() { done <- mcastListen(context.Background(), out, api, gp, ifindex, 1, 10*time.Second) }()
		if !out.waitFor(10*time.Second, "joined ff0") {
			t.Fatalf("%s: the listener did not join:\n%s", c.group, out.String())
		}
		if err := mcastSend(context.Background(), io.Discard, e.api, gp, "to the group", 1, 1, time.Millisecond, true); err != nil {
			t.Fatalf("%s: %v", c.group, err)
		}
		if err := <-done; err != nil || !strings.Contains(out.String(), `"to the group"`) || !strings.Contains(out.String(), "from [fd00::1]:") && !strings.Contains(out.String(), "from [fe80::") {
			t.Fatalf("%s: %v\n%s", c.group, err, out.String())
		}
	}
	if zoneIndex(e.st, "nosuch") != 0 || zoneIndex(e.st, "eth0") != e.nic.ID() || zoneIndex(nil, "7") != 7 {
		t.Error("zoneIndex")
	}
}
