package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The client tools against the virtual network's server host.
func TestToolsOnVirtualNetwork(t *testing.T) {
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
	if !strings.Contains(log.String(), "server 10.0.0.2") || !strings.Contains(log.String(), "web 10.0.0.7") {
		t.Errorf("the virtual network is not announced: %q", log.String())
	}
	srv := vnetServer
	ctx := context.Background()

	t.Run("names", func(t *testing.T) {
		// The hosts table, the resolver (DNS on the server host), and
		// nothing for a name nobody gave.
		for name, want := range map[string]string{"localhost": "127.0.0.1", "server": "10.0.0.2", "web": "10.0.0.7", "10.0.0.9": "10.0.0.9"} {
			a, err := e.resolve(name)
			if err != nil || a.String() != want {
				t.Errorf("%s: %v %v, want %s", name, a, err, want)
			}
		}
		if _, err := e.resolve("banana"); err == nil || strings.Contains(err.Error(), "ParseAddr") {
			t.Errorf("banana: %v", err)
		}
	})
	t.Run("ping", func(t *testing.T) {
		var out bytes.Buffer
		if err := runPing(ctx, &out, e.api, srv, pingOpts{count: 2, size: 100, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1, name: "server"}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		for _, w := range []string{"PING server (10.0.0.2) 100(128) bytes", "108 bytes from server (10.0.0.2): icmp_seq=1 ttl=64", "2 packets transmitted, 2 received, 0% packet loss", "rtt min/avg/max/mdev"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("ping output lacks %q:\n%s", w, out.String())
			}
		}
	})
	t.Run("ping_localhost", func(t *testing.T) {
		var out bytes.Buffer
		if err := runPing(ctx, &out, e.api, netip.MustParseAddr("127.0.0.1"), pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1, name: "localhost"}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "64 bytes from localhost (127.0.0.1): icmp_seq=1") {
			t.Errorf("%s", out.String())
		}
	})
	t.Run("ping_nobody_there_is_host_unreachable", func(t *testing.T) {
		// No host was named at 10.0.0.99: ARP fails, as on a LAN.
		var out bytes.Buffer
		err := runPing(ctx, &out, e.api, netip.MustParseAddr("10.0.0.99"), pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: 5 * time.Second, ttl: -1, self: vnetSelf})
		if err == nil || !strings.Contains(out.String(), "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable") ||
			!strings.Contains(out.String(), "1 packets transmitted, 0 received, +1 errors, 100% packet loss") {
			t.Errorf("err %v, output:\n%s", err, out.String())
		}
	})
	t.Run("ping_off_net_is_network_unreachable", func(t *testing.T) {
		var out bytes.Buffer
		err := runPing(ctx, &out, e.api, netip.MustParseAddr("1.2.3.4"), pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: time.Second, ttl: -1})
		if err == nil || err.Error() != "ping: connect: Network is unreachable" {
			t.Errorf("err %v, output:\n%s", err, out.String())
		}
	})
	t.Run("ping_port_unreachable_and_ttl_exceeded_words", func(t *testing.T) {
		// An ICMP error quoting our request, as a router would send it.
		for _, c := range []struct {
			typ, code uint8
			want      string
		}{{3, 3, "Destination Port Unreachable"}, {11, 0, "Time to live exceeded"}, {3, 1, "Destination Host Unreachable"}} {
			pkt := icmpErrorFor(netip.MustParseAddr("21.4.4.81"), vnetSelf, netip.MustParseAddr("10.9.9.9"), c.typ, c.code, 0x1234, 1)
			r, ok := parsePingReply(pkt, true, 0x1234, netip.MustParseAddr("10.9.9.9"))
			if !ok || r.err != c.want || r.seq != 1 || r.from.String() != "21.4.4.81" {
				t.Errorf("type %d code %d: %+v %v", c.typ, c.code, r, ok)
			}
		}
	})
	for _, udp := range []bool{false, true} {
		name := map[bool]string{false: "echo_tcp", true: "echo_udp"}[udp]
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := echoLines(&out, e.api, netip.AddrPortFrom(srv, 7), udp, strings.NewReader("one\ntwo\n"), 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if out.String() != "one\ntwo\n" {
				t.Errorf("echo: %q", out.String())
			}
			out.Reset()
			if err := echoBulk(&out, e.api, netip.AddrPortFrom(srv, 7), udp, 300000, 2*time.Second, false); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "echoed 300,000 bytes in") {
				t.Errorf("summary: %q", out.String())
			}
		})
	}
	t.Run("echo_long_line_is_a_clear_error", func(t *testing.T) {
		var out bytes.Buffer
		err := echoLines(&out, e.api, netip.AddrPortFrom(srv, 7), true, strings.NewReader(strings.Repeat("x", 70000)+"\n"), 2*time.Second)
		if err == nil || strings.Contains(err.Error(), "bufio") || !strings.Contains(err.Error(), "longer than 65000 bytes") {
			t.Errorf("%v", err)
		}
	})
	t.Run("tftp_get_put_sizes", func(t *testing.T) {
		// Sizes 0 and multiples of the block size are where the old
		// client's nil-slice bug hung until it gave up.
		for _, bs := range []int{512, 1428} {
			for _, size := range []int{0, 1, 511, 512, 513, 1024, 1428, 2856, 100000} {
				want := bytes.Repeat([]byte{byte(size)}, size)
				name := filepath.Join(root, "sz.bin")
				os.WriteFile(name, want, 0o644)
				var got bytes.Buffer
				res, err := tftpGet(ctx, e.api, netip.AddrPortFrom(srv, 69), "sz.bin", &got, tftpOpts{blksize: bs, timeout: time.Second, retries: 3}, func(int64, int64) {})
				if err != nil || res.Bytes != int64(size) || res.Blksize != bs || !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("get %d bytes blksize %d: %+v err %v", size, bs, res, err)
				}
				res, err = tftpPut(ctx, e.api, netip.AddrPortFrom(srv, 69), fmt.Sprintf("copy-%d-%d.bin", bs, size), bytes.NewReader(want), int64(size), tftpOpts{blksize: bs, timeout: time.Second, retries: 3}, func(int64, int64) {})
				if err != nil || res.Bytes != int64(size) {
					t.Fatalf("put %d bytes blksize %d: %+v err %v", size, bs, res, err)
				}
				if b, _ := os.ReadFile(filepath.Join(root, fmt.Sprintf("copy-%d-%d.bin", bs, size))); !bytes.Equal(b, want) {
					t.Fatalf("put %d: the server's copy differs", size)
				}
			}
		}
		var got bytes.Buffer
		_, err := tftpGet(ctx, e.api, netip.AddrPortFrom(srv, 69), "missing.bin", &got, tftpOpts{blksize: 512, timeout: time.Second, retries: 1}, func(int64, int64) {})
		if err = tftpError(netip.AddrPortFrom(srv, 69), err); err == nil || !strings.Contains(err.Error(), "(error 1)") {
			t.Errorf("get of a missing file: %v", err)
		}
	})
	t.Run("http_get", func(t *testing.T) {
		var body, log bytes.Buffer
		u, _ := url.Parse("http://server/hello.txt")
		if err := httpGet(&log, &body, e.api, netip.AddrPortFrom(srv, 80), u, false, 5*time.Second, true); err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if body.String() != "Hello, world\n" || !strings.Contains(log.String(), "200 OK") {
			t.Errorf("body %q, log %q", body.String(), log.String())
		}
		u, _ = url.Parse("http://server/nope")
		if err := httpGet(&log, &body, e.api, netip.AddrPortFrom(srv, 80), u, false, 5*time.Second, true); err == nil {
			t.Error("a 404 is not an error")
		}
	})
}

// icmpErrorFor builds an IPv4 ICMP error from router to self quoting an
// echo request self sent to dst.
func icmpErrorFor(router, self, dst netip.Addr, typ, code uint8, id, seq uint16) []byte {
	inner := make([]byte, 20+8)
	inner[0] = 0x45
	inner[8], inner[9] = 1, 1 // ttl 1, ICMP
	copy(inner[12:16], self.AsSlice())
	copy(inner[16:20], dst.AsSlice())
	inner[20] = 8 // echo request
	inner[24], inner[25] = byte(id>>8), byte(id)
	inner[26], inner[27] = byte(seq>>8), byte(seq)
	pkt := make([]byte, 20+8+len(inner))
	pkt[0] = 0x45
	pkt[8], pkt[9] = 64, 1
	copy(pkt[12:16], router.AsSlice())
	copy(pkt[16:20], self.AsSlice())
	pkt[20], pkt[21] = typ, code
	copy(pkt[28:], inner)
	return pkt
}

// --hosts names more hosts of the virtual network; their names, aliases
// included, reach this host through the server host's DNS.
func TestVnetHostsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(p, []byte("# lab\n10.0.0.5 printer lp\n10.0.0.6 nas\n"), 0o644)
	e, err := (&hostFlags{hostsFile: p}).open(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for name, want := range map[string]string{"printer": "10.0.0.5", "lp": "10.0.0.5", "nas": "10.0.0.6"} {
		if a, err := e.resolve(name); err != nil || a.String() != want {
			t.Errorf("%s: %v %v", name, a, err)
		}
	}
	var out bytes.Buffer
	if err := runPing(context.Background(), &out, e.api, netip.MustParseAddr("10.0.0.6"), pingOpts{count: 1, size: 56, interval: time.Millisecond, wait: 2 * time.Second, ttl: -1}); err != nil {
		t.Fatalf("the named host does not answer: %v\n%s", err, out.String())
	}
	for _, bad := range []string{"10.0.0.5\n", "banana nas\n", "10.0.1.5 far\n", "10.0.0.1 me\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := (&hostFlags{hostsFile: p}).vnetHosts(); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
