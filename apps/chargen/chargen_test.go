package chargen

import (
	"bytes"
	"testing"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/socket"
)

func TestLine(t *testing.T) {
	want0 := "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n"
	if got := string(Line(0)); got != want0 {
		t.Fatalf("line 0 %q", got)
	}
	if got := Line(1); got[0] != '"' || got[71] != 'i' {
		t.Fatalf("line 1 %q", got)
	}
	if !bytes.Equal(Line(95), Line(0)) {
		t.Fatal("the pattern does not repeat after 95 lines")
	}
	// Line 30 wraps from '~' to ' '.
	l := Line(30)
	if i := bytes.IndexByte(l, '~'); i < 0 || l[i+1] != ' ' {
		t.Fatalf("line 30 %q does not wrap", l)
	}
}

func TestUDPChargen(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.UDP(t, p.A)
	buf := make([]byte, 2000)
	line := 0
	for i := 0; i < 3; i++ {
		if _, err := c.SendTo([]byte("x"), 0, socket.InetAddr(apptest.Server(Port))); err != nil {
			t.Fatal(err)
		}
		k, err := c.Recv(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if k > 512 || k != UDPLines*74 {
			t.Fatalf("datagram of %d bytes", k)
		}
		for j := 0; j < UDPLines; j++ {
			if !bytes.Equal(buf[j*74:(j+1)*74], Line(line)) {
				t.Fatalf("datagram %d line %d: %q", i, j, buf[j*74:(j+1)*74])
			}
			line++
		}
	}
}

func TestTCPChargen(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoUDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.TCP(t, p.A, apptest.Server(Port))
	const lines = 1000
	buf := make([]byte, lines*74)
	k, err := c.Recv(buf, socket.MSG_WAITALL)
	if err != nil || k != len(buf) {
		t.Fatalf("read %d of %d: %v", k, len(buf), err)
	}
	for i := 0; i < lines; i++ {
		if !bytes.Equal(buf[i*74:(i+1)*74], Line(i)) {
			t.Fatalf("line %d: %q", i, buf[i*74:(i+1)*74])
		}
	}
	c.Close()
	srv.Close() // must not hang with the sender blocked
}
