package netconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// TestHTTPServerAndClient runs net/http's server on host b and its
// client on host a, joined by a pipe, with nothing but a DialContext.
func TestHTTPServerAndClient(t *testing.T) {
	p := newPair(t)
	l := mustListen(t, p.b, "tcp", ":80")

	body := make([]byte, 10<<20)
	rand.New(rand.NewSource(7)).Read(body)
	sum := sha256.Sum256(body)

	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.RemoteAddr, r.Host)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sum", hex.EncodeToString(sum[:]))
		w.Write(body)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// HTTP/1.x: read the whole body before answering.
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(b)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	d := &Dialer{Net: p.a, Timeout: 10 * time.Second}
	var dials int
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials++
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://10.0.0.2"+path, nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return resp, b
	}

	_, b := get("/hello")
	if !strings.HasPrefix(string(b), "hello 10.0.0.1:") || !strings.HasSuffix(string(b), "from 10.0.0.2") {
		t.Errorf("/hello: %q", b)
	}
	resp, b := get("/big")
	if got := sha256.Sum256(b); len(b) != len(body) || hex.EncodeToString(got[:]) != resp.Header.Get("X-Sum") {
		t.Fatalf("/big: %d bytes, checksum mismatch", len(b))
	}
	// A POST with a body, echoed.
	post := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", "http://10.0.0.2/echo", bytes.NewReader(post))
	presp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := io.ReadAll(presp.Body)
	presp.Body.Close()
	if err != nil || !bytes.Equal(pb, post) {
		t.Fatalf("/echo: %d bytes, %v", len(pb), err)
	}
	get("/hello")

	// Keep-alive: one dial, and every request after the first reused it.
	if dials != 1 {
		t.Errorf("%d dials, want 1 (keep-alive)", dials)
	}
	for i, r := range reused {
		if r != (i > 0) {
			t.Errorf("request %d: reused=%v", i, r)
		}
	}

	// Shutdown closes the listener and idle conns; Serve returns ErrServerClosed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
}
