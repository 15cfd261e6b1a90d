package echo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/socket"
)

func TestUDPEcho(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := apptest.UDP(t, p.A)
	buf := make([]byte, 2000)
	for _, msg := range []string{"hello", "", strings.Repeat("x", 1472)} {
		if _, err := c.SendTo([]byte(msg), 0, socket.InetAddr(apptest.Server(Port))); err != nil {
			t.Fatal(err)
		}
		k, from, err := c.RecvFrom(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:k]) != msg {
			t.Fatalf("echo %d bytes: got %d bytes", len(msg), k)
		}
		if from.(*socket.SockaddrInet).AddrPort != apptest.Server(Port) {
			t.Fatalf("reply from %v", from)
		}
	}
}

func TestClientUDP(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var out bytes.Buffer
	in := "one\ntwo\n\nthree"
	err = Client(context.Background(), p.A, apptest.Server(Port), ClientConfig{UDP: true}, strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "one\ntwo\n\nthree\n"; got != want {
		t.Fatalf("client printed %q, want %q", got, want)
	}
}

func TestClientUDPNoServer(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	// Nothing listens: the ICMP port unreachable comes back as ECONNREFUSED
	// on the connected socket, or the wait times out.
	err := Client(context.Background(), p.A, apptest.Server(Port), ClientConfig{UDP: true, Timeout: 50 * time.Millisecond, Retries: 1},
		strings.NewReader("x\n"), new(bytes.Buffer))
	if err == nil {
		t.Fatal("client succeeded without a server")
	}
}

func TestTCPEchoAndClient(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoUDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Several clients at once.
	const clients = 5
	errs := make(chan error, clients)
	outs := make([]bytes.Buffer, clients)
	var in strings.Builder
	for i := 0; i < 200; i++ {
		in.WriteString(strings.Repeat("abcdefghij", i%50))
		in.WriteByte('\n')
	}
	for i := 0; i < clients; i++ {
		go func(i int) {
			errs <- Client(context.Background(), p.A, apptest.Server(Port), ClientConfig{}, strings.NewReader(in.String()), &outs[i])
		}(i)
	}
	for i := 0; i < clients; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range outs {
		if outs[i].String() != in.String() {
			t.Fatalf("client %d: echoed text differs (%d bytes, want %d)", i, outs[i].Len(), in.Len())
		}
	}
}

func TestTCPMaxClients(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoUDP: true, MaxClients: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c1 := apptest.TCP(t, p.A, apptest.Server(Port))
	buf := make([]byte, 10)
	if err := c1.SendAll([]byte("hi"), 0); err != nil {
		t.Fatal(err)
	}
	if k, err := c1.Recv(buf, 0); err != nil || string(buf[:k]) != "hi" {
		t.Fatalf("first client: %q %v", buf[:k], err)
	}
	// The second one is accepted by the stack and closed by the server.
	c2 := apptest.TCP(t, p.A, apptest.Server(Port))
	k, err := c2.Recv(buf, 0)
	if err == nil && k != 0 {
		t.Fatalf("second client got %q, want the connection closed", buf[:k])
	}
	if srv.Refused.Load() != 1 {
		t.Fatalf("refused %d, want 1", srv.Refused.Load())
	}
}

func TestCloseEndsServing(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The port is free again.
	s2, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true})
	if err != nil {
		t.Fatalf("port still taken after Close: %v", err)
	}
	s2.Close()
}
