package main

import (
	"bytes"
	"context"
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
	f := &hostFlags{serveRoot: root}
	srv := netip.MustParseAddr("10.9.8.7")
	e, err := f.open(&log, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !strings.Contains(log.String(), "server host 10.9.8.7/24") {
		t.Errorf("the virtual network is not announced: %q", log.String())
	}
	ctx := context.Background()

	t.Run("ping", func(t *testing.T) {
		var out bytes.Buffer
		if err := runPing(ctx, &out, e.api, srv, pingOpts{count: 2, size: 100, interval: 10 * time.Millisecond, wait: time.Second}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		for _, w := range []string{"108 bytes from 10.9.8.7: icmp_seq=1 ttl=64", "2 packets transmitted, 2 received, 0% packet loss", "rtt min/avg/max/mdev"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("ping output lacks %q:\n%s", w, out.String())
			}
		}
	})
	t.Run("ping_unreachable_host_fails", func(t *testing.T) {
		var out bytes.Buffer
		err := runPing(ctx, &out, e.api, netip.MustParseAddr("10.9.8.99"), pingOpts{count: 1, size: 56, interval: 10 * time.Millisecond, wait: 200 * time.Millisecond})
		if err == nil || !strings.Contains(out.String(), "1 packets transmitted, 0 received") {
			t.Errorf("err %v, output:\n%s", err, out.String())
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
			if err := echoBulk(&out, e.api, netip.AddrPortFrom(srv, 7), udp, 300000, 2*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("tftp_get_put_blksize", func(t *testing.T) {
		want, _ := os.ReadFile(filepath.Join(root, "1MiB.bin"))
		var got bytes.Buffer
		n, bs, err := tftpGet(e.api, netip.AddrPortFrom(srv, 69), "1MiB.bin", &got, tftpOpts{blksize: 1428, timeout: time.Second, retries: 3}, func(int64, int64) {})
		if err != nil || n != int64(len(want)) || bs != 1428 || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("get: n %d blksize %d err %v, identical %v", n, bs, err, bytes.Equal(got.Bytes(), want))
		}
		n, bs, err = tftpPut(e.api, netip.AddrPortFrom(srv, 69), "copy.bin", bytes.NewReader(want[:100000]), 100000, tftpOpts{blksize: 512, timeout: time.Second, retries: 3}, func(int64, int64) {})
		if err != nil || n != 100000 || bs != 512 {
			t.Fatalf("put: n %d blksize %d err %v", n, bs, err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "copy.bin")); !bytes.Equal(b, want[:100000]) {
			t.Fatal("put: the server's copy differs")
		}
		_, _, err = tftpGet(e.api, netip.AddrPortFrom(srv, 69), "missing.bin", &got, tftpOpts{blksize: 512, timeout: time.Second, retries: 1}, func(int64, int64) {})
		if err == nil || !strings.Contains(err.Error(), "server error 1") {
			t.Errorf("get of a missing file: %v", err)
		}
	})
	t.Run("http_get", func(t *testing.T) {
		var body, log bytes.Buffer
		u, _ := url.Parse("http://10.9.8.7/files/hello.txt")
		if err := httpGet(&log, &body, e.api, netip.AddrPortFrom(srv, 80), u, false, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if body.String() != "Hello, world\n" || !strings.Contains(log.String(), "200 OK") {
			t.Errorf("body %q, log %q", body.String(), log.String())
		}
		u, _ = url.Parse("http://10.9.8.7/files/nope")
		if err := httpGet(&log, &body, e.api, netip.AddrPortFrom(srv, 80), u, false, 5*time.Second); err == nil {
			t.Error("a 404 is not an error")
		}
	})
}
