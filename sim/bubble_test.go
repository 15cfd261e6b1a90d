package sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/tcp"
)

// Ordinary goroutine code (net/http over netconn) runs on simulated
// hosts in a synctest bubble: the 1 MB response crosses a 10 Mbit/s,
// 20 ms link in the virtual time the link model says, while the test
// takes no wall time to speak of.
func TestBubbleHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNet(1)
		n.S.UseBubble()
		a, _ := n.AddHost("client", false, tcp.Config{})
		b, _ := n.AddHost("server", false, tcp.Config{})
		if _, err := n.Connect("ab", LinkConfig{Bandwidth: 10e6, Delay: 10 * time.Millisecond},
			End{Host: a, Addr: netip.MustParsePrefix("10.0.0.1/24")}, End{Host: b, Addr: netip.MustParsePrefix("10.0.0.2/24")}); err != nil {
			t.Fatal(err)
		}
		loopDone := make(chan error, 1)
		go func() { loopDone <- n.S.RunBubble(time.Minute) }()

		ln, err := netconn.Listen(socket.New(b.Stack), "tcp", "10.0.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("x", 1_000_000)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
		go srv.Serve(ln)
		na := socket.New(a.Stack)
		cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netconn.Dial(na, network, addr)
		}}}
		start := time.Now()
		resp, err := cl.Get("http://10.0.0.2/")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(got) != len(body) {
			t.Fatalf("read %d bytes: %v", len(got), err)
		}
		took := time.Since(start)
		// 1 MB at 10 Mbit/s is at least 0.8 s on the wire (plus the
		// handshake and slow start); the virtual clock must show it.
		if took < 800*time.Millisecond || took > 5*time.Second {
			t.Errorf("GET took %v of virtual time, want 0.8..5 s", took)
		}
		st, _ := n.Link("ab").Dir(1)
		if st.TxBytes < 1_000_000 {
			t.Errorf("the link carried %d bytes server→client", st.TxBytes)
		}
		t.Logf("GET of 1 MB: %v virtual, %d events", took, n.S.Events)
		cl.CloseIdleConnections()
		srv.Close()
		n.S.Stop()
		<-loopDone
		for _, h := range n.Hosts {
			h.Stack.Close()
		}
	})
}
