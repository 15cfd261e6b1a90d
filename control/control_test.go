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
