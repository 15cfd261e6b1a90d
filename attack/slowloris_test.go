package attack

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/apps/httpd"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/stack"
)

// TestSlowloris: twice as many slow clients as the HTTP server's
// connection limit each send a request line and then one header byte
// every 10 s, never finishing the header. The server's header timeout
// (ReadHeaderTimeout, the Config's ReadTimeout, 30 s) closes every one of
// them, the number of connections it serves at once stays at MaxConns,
// and a legitimate client is served meanwhile: it waits for a slot, at
// most one header timeout per MaxConns slow clients ahead of it (the
// server has no per-source limit; docs/SECURITY.md).
func TestSlowloris(t *testing.T) {
	const maxConns, headerTimeout = 64, 30 * time.Second // httpd's defaults
	// Fewer slow clients than slots: the request is served at once.
	t.Run("below MaxConns", func(t *testing.T) {
		wait, _ := slowloris(t, maxConns/2)
		if wait > time.Second {
			t.Errorf("legitimate request waited %v with free slots", wait)
		}
	})
	t.Run("twice MaxConns", func(t *testing.T) {
		slow := 2 * maxConns
		wait, longest := slowloris(t, slow)
		// Slots are handed out in accept order: behind 2*MaxConns slow
		// clients the request waits for two header timeouts at most (a
		// slow client cannot hold a slot longer than one).
		if rounds := time.Duration((slow + maxConns - 1) / maxConns); wait > rounds*headerTimeout+5*time.Second {
			t.Errorf("legitimate request waited %v, more than %d header timeouts", wait, rounds)
		}
		// Each slow client is cut within a header timeout of being
		// accepted, and the last ones wait at most one timeout for a slot.
		if longest > 2*headerTimeout+20*time.Second {
			t.Errorf("a slow client was held %v", longest)
		}
	})
}

// slowloris runs slow slow clients against httpd on the victim, then a
// legitimate request; it returns how long the request waited and how
// long the slowest slow client was held (virtual time).
func slowloris(t *testing.T, slow int) (wait, longest time.Duration) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		cfg := httpd.Config{}
		srv, err := httpd.Serve(l.VNet, netip.AddrPortFrom(netip.IPv4Unspecified(), httpd.Port), cfg)
		must(t, err)
		defer srv.Close()
		const maxConns = 64
		m := begin(t, "slowloris", l.V)

		var mu sync.Mutex
		var wg sync.WaitGroup
		d := &netconn.Dialer{Net: l.CNet}
		for i := 0; i < slow; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := d.Dial("tcp4", "10.0.0.1:80")
				if err != nil {
					t.Errorf("slowloris connect: %v", err)
					return
				}
				defer c.Close()
				start := time.Now()
				if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: victim\r\n")); err != nil {
					return
				}
				for {
					time.Sleep(10 * time.Second)
					if _, err := c.Write([]byte("X")); err != nil {
						break
					}
					if time.Since(start) > time.Hour {
						t.Errorf("a slowloris connection is still open after an hour")
						return
					}
				}
				mu.Lock()
				longest = max(longest, time.Since(start))
				mu.Unlock()
			}()
		}
		// Let the slow clients take every slot, then try a real request.
		time.Sleep(time.Second)
		synctest.Wait()
		served := 0
		for _, c := range l.V.TCP.Table() {
			if c.Local.Port() == httpd.Port && c.Remote.IsValid() {
				served++
			}
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
		start := time.Now()
		resp, err := client.Get("http://10.0.0.1/stats")
		if err != nil {
			t.Fatalf("legitimate request during slowloris: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		wait = time.Since(start)
		wg.Wait()
		synctest.Wait()
		m.end()
		t.Logf("slowloris: %d slow connections against MaxConns %d; %d connections open on the victim; legitimate request: %d after %v; slowest slow client closed after %v",
			slow, maxConns, served, resp.StatusCode, wait, longest)
		if resp.StatusCode != 200 {
			t.Errorf("legitimate request: status %d", resp.StatusCode)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes after the slow clients were cut", g)
		}
	})
	return wait, longest
}
