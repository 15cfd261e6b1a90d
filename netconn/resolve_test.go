package netconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/dns"
)

// TestDialThroughStackResolver resolves names with the socket layer's
// getaddrinfo: first its hosts table, then a DNS server on the other
// host, and fetches a page by name with net/http.
func TestDialThroughStackResolver(t *testing.T) {
	p := newPair(t)

	// Hosts table of a.
	p.a.Hosts().Add("b.hosts.test", addrB)
	pc, err := ListenPacket(p.b, "udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := Dial(p.a, "udp4", "b.hosts.test:7")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.RemoteAddr().String() != "10.0.0.2:7" {
		t.Errorf("RemoteAddr %v", c.RemoteAddr())
	}

	// DNS: b serves its own hosts table; a asks b.
	p.b.Hosts().Add("www.dns.test", addrB)
	srv, err := dns.Serve(p.b, netip.AddrPortFrom(addrB, 53), p.b.Hosts())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p.a.SetNameservers([]netip.AddrPort{netip.AddrPortFrom(addrB, 53)})

	l := mustListen(t, p.b, "tcp", ":80")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "by name "+r.Host)
	})}
	go hs.Serve(l)
	defer hs.Close()
	d := &Dialer{Net: p.a, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://www.dns.test/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "by name www.dns.test" {
		t.Fatalf("got %q", b)
	}
	if srv.Stats().Answered.Load() == 0 {
		t.Error("the DNS server answered nothing: the name did not go through DNS")
	}

	// An unknown name: NXDOMAIN from the server, a not-found DNSError.
	_, err = d.DialContext(context.Background(), "tcp", "nope.dns.test:80")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("unknown name: %v, want DNSError not found", err)
	}
}
