package httpd

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
