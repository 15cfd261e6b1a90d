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
// connection limit, all from one source address, each send a request line
// and then one header byte every 10 s, never finishing the header. The
// server holds at most MaxPerSource (16) of them; the rest are closed on
// accept (counted), and its header timeout (ReadHeaderTimeout, the
// Config's ReadTimeout, 30 s) closes the held ones. A legitimate client
// from another address is served at once.
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
		// The slow source holds 16 slots at most: the request from
		// another source finds a free one.
		if wait > time.Second {
			t.Errorf("legitimate request waited %v behind %d slow clients of one source (per-source cap 16)", wait, slow)
		}
		// Each held slow client is cut within a header timeout (plus
		// the 10 s between its writes).
		if longest > headerTimeout+20*time.Second {
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
		// The slow clients come from a second address of the client host.
		slowIP := netip.MustParseAddr("10.0.0.3")
		must(t, l.C.NICByName("eth0").AddAddress(netip.PrefixFrom(slowIP, 24)))
		m := begin(t, "slowloris", l.V)

		var mu sync.Mutex
		var wg sync.WaitGroup
		sd := &netconn.Dialer{Net: l.CNet, LocalAddr: &net.TCPAddr{IP: slowIP.AsSlice()}}
		d := &netconn.Dialer{Net: l.CNet, LocalAddr: &net.TCPAddr{IP: clientIP.AsSlice()}}
		for i := 0; i < slow; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := sd.Dial("tcp4", "10.0.0.1:80")
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
		t.Logf("slowloris: %d slow connections from one source against MaxConns %d; %d connections on the victim; %d refused over the per-source cap; legitimate request: %d after %v; slowest slow client closed after %v",
			slow, maxConns, served, srv.Refused(), resp.StatusCode, wait, longest)
		if want := uint64(max(slow-16, 0)); srv.Refused() != want {
			t.Errorf("%d slow connections refused over the per-source cap, want %d", srv.Refused(), want)
		}
		if resp.StatusCode != 200 {
			t.Errorf("legitimate request: status %d", resp.StatusCode)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes after the slow clients were cut", g)
		}
	})
	return wait, longest
}
