package discard

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/socket"
)

// waitCount waits for the counter to reach want, or fails after a long bound.
func waitCount(t *testing.T, c *Counter, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("discarded %d bytes, want %d", c.Load(), want)
		}
		time.Sleep(time.Millisecond) // polling a counter: there is no event to wait on
	}
	if c.Load() != want {
		t.Fatalf("discarded %d bytes, want %d", c.Load(), want)
	}
}

func TestUDPDiscard(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	var n Counter
	srv, err := ServeCounting(p.B, apptest.Any(Port), Config{NoTCP: true}, &n)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.UDP(t, p.A)
	if err := c.Connect(socket.InetAddr(apptest.Server(Port))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Send(make([]byte, 100), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, &n, 1000)
	// Nothing comes back.
	c.SetTimeout(20 * time.Millisecond)
	if k, err := c.Recv(make([]byte, 10), 0); err == nil {
		t.Fatalf("discard answered %d bytes", k)
	}
}

func TestTCPDiscard(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	var n Counter
	srv, err := ServeCounting(p.B, apptest.Any(Port), Config{NoUDP: true}, &n)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.TCP(t, p.A, apptest.Server(Port))
	if err := c.SendAll(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	waitCount(t, &n, 1<<20)
}
