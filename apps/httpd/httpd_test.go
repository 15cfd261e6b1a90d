package httpd

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
)

func setup(t *testing.T) (*http.Client, string, *apptest.Pair) {
	t.Helper()
	p := apptest.New(t, apptest.Options{})
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello, world\n"), 0o644)
	big := make([]byte, 300000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	srv, err := Serve(p.B, apptest.Any(Port), Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	d := &netconn.Dialer{Net: p.A}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, outside, p
}

func get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("http://10.0.0.2" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestStatusAndFiles(t *testing.T) {
	c, _, p := setup(t)
	// A UDP socket on the server host shows up in the table.
	u, err := p.B.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Bind(socket.Inet("0.0.0.0", 5353))

	code, body := get(t, c, "/status")
	if code != 200 || !strings.Contains(body, "<td>tcp</td><td>*:80</td>") || !strings.Contains(body, "LISTEN") ||
		!strings.Contains(body, "<td>udp</td><td>*:5353</td>") {
		t.Fatalf("status page %d:\n%s", code, body)
	}
	// The connection carrying this very request is in the table.
	if !strings.Contains(body, "10.0.0.2:80</td><td>10.0.0.1:") || !strings.Contains(body, "ESTABLISHED") {
		t.Fatalf("status page lacks the request's connection:\n%s", body)
	}
	code, body = get(t, c, "/stats")
	if code != 200 || !strings.Contains(body, "Proto") || !strings.Contains(body, "TCP:") || !strings.Contains(body, "InSegs") {
		t.Fatalf("/stats %d:\n%s", code, body)
	}
	code, body = get(t, c, "/hello.txt")
	if code != 200 || body != "hello, world\n" {
		t.Fatalf("hello.txt %d %q", code, body)
	}
	code, body = get(t, c, "/big.bin")
	if code != 200 || len(body) != 300000 {
		t.Fatalf("big.bin %d, %d bytes", code, len(body))
	}
	r := rand.New(rand.NewPCG(1, 2))
	exp := make([]byte, 300000)
	for i := range exp {
		exp[i] = byte(r.Uint32())
	}
	if sha256.Sum256([]byte(body)) != sha256.Sum256(exp) {
		t.Fatal("big.bin content differs")
	}
	// The root is listed as python3 -m http.server lists it.
	code, body = get(t, c, "/")
	if code != 200 || !strings.Contains(body, "<title>Directory listing for /</title>") ||
		!strings.Contains(body, `<li><a href="hello.txt">hello.txt</a></li>`) {
		t.Fatalf("listing %d %q", code, body)
	}
	for _, path := range []string{"/../secret", "/%2e%2e/secret", "/..%2fsecret", "/nope"} {
		code, body = get(t, c, path)
		if code == 200 || strings.Contains(body, "secret") {
			t.Fatalf("%s: %d %q", path, code, body)
		}
	}
}

// One source holding connections open cannot take every slot: beyond
// MaxPerSource its connections are closed on accept (counted), and a
// request from another source is served at once, not after header
// timeouts.
func TestPerSourceCap(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	slowAddr := netip.MustParseAddr("10.0.0.3")
	if err := p.A.Stack().NICByName("eth0").AddAddress(netip.PrefixFrom(slowAddr, 24)); err != nil {
		t.Fatal(err)
	}

	const maxConns, perSource = 4, 2
	// A header timeout far beyond the test's bounds: a request that waits
	// for one fails the test.
	srv, err := Serve(p.B, apptest.Any(Port), Config{MaxConns: maxConns, MaxPerSource: perSource, ReadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	slow := &netconn.Dialer{Net: p.A, LocalAddr: &net.TCPAddr{IP: slowAddr.AsSlice()}}
	closed := make(chan int, maxConns)
	for i := 0; i < maxConns; i++ {
		c, err := slow.Dial("tcp4", "10.0.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			// Never sends a request: the server either holds the
			// connection (a slot) or closes it at once (over the cap).
			n, _ := c.Read(make([]byte, 1))
			closed <- n
		}()
	}
	bound := time.NewTimer(time.Minute) // a failure bound, not a wait
	defer bound.Stop()
	for i := 0; i < maxConns-perSource; i++ {
		select {
		case n := <-closed:
			if n != 0 {
				t.Fatalf("refused connection read %d bytes", n)
			}
		case <-bound.C:
			t.Fatalf("the slow source holds %d connections open, cap %d", maxConns-i, perSource)
		}
	}
	if n := srv.Refused(); n != maxConns-perSource {
		t.Fatalf("Refused %d, want %d", n, maxConns-perSource)
	}
	d := &netconn.Dialer{Net: p.A, LocalAddr: &net.TCPAddr{IP: apptest.AddrA.AsSlice()}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	resp, err := client.Get("http://10.0.0.2/stats")
	if err != nil {
		t.Fatalf("request from a second source behind a slow one: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
