package control

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

func TestNetstatAndStatsOverUnixSocket(t *testing.T) {
	st := stack.New(stack.Options{Name: "ctl"})
	defer st.Close()
	n := socket.New(st)
	u, err := n.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Bind(socket.Inet("127.0.0.1", 7)); err != nil {
		t.Fatal(err)
	}
	l, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(socket.Inet("0.0.0.0", 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(5); err != nil {
		t.Fatal(err)
	}
	// One datagram to ourselves, so a counter moves.
	c, _ := n.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	defer c.Close()
	if _, err := c.SendTo([]byte("x"), 0, socket.Inet("127.0.0.1", 7)); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "ctl.sock")
	srv, err := Listen(path, Source{Net: n})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	var rows []SocketInfo
	if err := Query(path, "netstat", &rows); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	FormatNetstat(&buf, rows)
	out := buf.String()
	for _, want := range []string{"tcp", "0.0.0.0:80", "LISTEN", "udp", "127.0.0.1:7"} {
		if !strings.Contains(out, want) {
			t.Errorf("netstat lacks %q:\n%s", want, out)
		}
	}
	if rows[0].Proto != "tcp" {
		t.Errorf("tcp rows should come first:\n%s", out)
	}

	var stats []stack.Stat
	if err := Query(path, "stats", &stats); err != nil {
		t.Fatal(err)
	}
	var outDgrams, tcpSeen bool
	for _, s := range stats {
		if s.Section == "UDP" && s.Name == "OutDatagrams" && s.Value >= 1 {
			outDgrams = true
		}
		if s.Section == "TCP" {
			tcpSeen = true
		}
	}
	if !outDgrams || !tcpSeen {
		t.Errorf("stats: UDP OutDatagrams>=1 %v, TCP section %v", outDgrams, tcpSeen)
	}
	if err := Query(path, "bogus", &stats); err == nil || !strings.Contains(err.Error(), "unknown request") {
		t.Errorf("bogus request: %v", err)
	}
	srv.Close()
	if err := Query(path, "stats", &stats); err == nil {
		t.Error("query after Close succeeded")
	}
}

// IPv6 sockets: a listener appears once (from TCP's table, not again from
// the socket layer) with an IPv6 wildcard peer, and a UDP socket as udp.
func TestNetstatIPv6(t *testing.T) {
	st := stack.New(stack.Options{Name: "ctl6"})
	defer st.Close()
	n := socket.New(st)
	l, err := n.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(socket.Inet6("::", 7)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(5); err != nil {
		t.Fatal(err)
	}
	u, err := n.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Bind(socket.Inet6("::", 53)); err != nil {
		t.Fatal(err)
	}
	rows := Table(n)
	var tcpRows, udpRows int
	for _, r := range rows {
		switch {
		case r.Proto == "tcp" && r.Local == "[::]:7":
			tcpRows++
			if r.State != "LISTEN" || r.Remote != "[::]:*" {
				t.Errorf("listener row %+v", r)
			}
		case r.Proto == "udp" && r.Local == "[::]:53":
			udpRows++
			if r.Remote != "[::]:*" {
				t.Errorf("udp row %+v", r)
			}
		}
	}
	if tcpRows != 1 || udpRows != 1 {
		t.Errorf("tcp [::]:7 rows %d, udp [::]:53 rows %d, want 1 and 1: %+v", tcpRows, udpRows, rows)
	}
}
