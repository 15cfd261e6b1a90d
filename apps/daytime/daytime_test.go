package daytime

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/socket"
)

func checkLine(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	if len(s) < 3 || s[len(s)-2:] != "\r\n" {
		t.Fatalf("daytime %q: want a line ending in CR LF", s)
	}
	got, err := time.Parse(Format, s[:len(s)-2])
	if err != nil {
		t.Fatalf("daytime %q: %v", s, err)
	}
	if d := time.Since(got); d < -time.Minute || d > time.Minute {
		t.Fatalf("daytime %v is %v away from now", got, d)
	}
}

func TestUDPDaytime(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.UDP(t, p.A)
	if _, err := c.SendTo(nil, 0, socket.InetAddr(apptest.Server(Port))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	k, err := c.Recv(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkLine(t, buf[:k])
}

func TestTCPDaytime(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoUDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.TCP(t, p.A, apptest.Server(Port))
	var got []byte
	buf := make([]byte, 200)
	for {
		k, err := c.Recv(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break // the server closes after the line
		}
		got = append(got, buf[:k]...)
	}
	checkLine(t, got)
}
