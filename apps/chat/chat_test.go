package chat

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/socket"
)

type udpUser struct {
	t  *testing.T
	so *socket.Socket
}

func newUDPUser(t *testing.T, p *apptest.Pair) *udpUser {
	so := apptest.UDP(t, p.A)
	if err := so.Connect(socket.InetAddr(apptest.Server(Port))); err != nil {
		t.Fatal(err)
	}
	return &udpUser{t, so}
}

func (u *udpUser) say(s string) {
	u.t.Helper()
	if _, err := u.so.Send([]byte(s), 0); err != nil {
		u.t.Fatal(err)
	}
}

func (u *udpUser) expect(want string) {
	u.t.Helper()
	buf := make([]byte, 2000)
	k, err := u.so.Recv(buf, 0)
	if err != nil {
		u.t.Fatalf("waiting for %q: %v", want, err)
	}
	if got := string(buf[:k]); got != want {
		u.t.Fatalf("got %q, want %q", got, want)
	}
}

func TestUDPChat(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true, MaxClients: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	alice, bob, carol := newUDPUser(t, p), newUDPUser(t, p), newUDPUser(t, p)
	alice.say("/join alice")
	alice.expect("* welcome alice, 1 here")
	bob.say("/join bob")
	bob.expect("* welcome bob, 2 here")
	alice.expect("* bob joined")
	alice.say("hello bob")
	bob.expect("alice: hello bob")
	// A client that never joins is named after its address.
	carol.say("hi all")
	carolName, _ := carol.so.GetSockName()
	an := "10.0.0.1:" + strings.Split(carolName.String(), ":")[1]
	alice.expect("* " + an + " joined")
	alice.expect(an + ": hi all")
	bob.expect("* " + an + " joined")
	bob.expect(an + ": hi all")
	// The room holds three.
	dave := newUDPUser(t, p)
	dave.say("/join dave")
	dave.expect("* room full")
	if srv.Full.Load() != 1 {
		t.Fatalf("full %d", srv.Full.Load())
	}
	bob.say("/who")
	bob.expect("* here: " + strings.Join(srv.Members(), ", "))
	bob.say("/quit")
	bob.expect("* bye")
	alice.expect("* bob left")
	carol.expect("* bob left")
	if got := srv.Members(); len(got) != 2 {
		t.Fatalf("members %v", got)
	}
}

// TestUDPChatTimeout runs in a synctest bubble: the server's clock, its
// expiry tick and the sockets' timeouts are virtual, so the test does not
// depend on how fast the machine runs (it used 20 and 50 ms of wall clock).
func TestUDPChatTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := apptest.New(t, apptest.Options{})
		const timeout = time.Minute
		srv, err := Serve(p.B, apptest.Any(Port), Config{NoTCP: true, ClientTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		alice, bob := newUDPUser(t, p), newUDPUser(t, p)
		alice.say("/join alice")
		alice.expect("* welcome alice, 1 here")
		bob.say("/join bob")
		bob.expect("* welcome bob, 2 here")
		alice.expect("* bob joined")
		// Bob keeps talking; alice is silent and is dropped once she has
		// been silent for the timeout, not before.
		start := time.Now()
		buf := make([]byte, 100)
		bob.so.SetTimeout(timeout / 10)
		for i := 0; ; i++ {
			if i > 100 {
				t.Fatal("alice never timed out")
			}
			bob.say("ping")
			k, err := bob.so.Recv(buf, 0)
			if err != nil {
				continue // nothing for bob in this tenth of the timeout
			}
			if got := string(buf[:k]); got != "* alice timed out" {
				t.Fatalf("bob got %q", got)
			}
			break
		}
		if waited := time.Since(start); waited < timeout {
			t.Fatalf("alice dropped after %v of silence, before the timeout %v", waited, timeout)
		}
		if got := srv.Members(); len(got) != 1 || got[0] != "bob" {
			t.Fatalf("members %v", got)
		}
	})
}

// lockedBuffer is an io.Writer safe for a client goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testClients(t *testing.T, udp bool) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Bob is a raw UDP user who watches; alice uses Client.
	bob := newUDPUser(t, p)
	bob.say("/join bob")
	bob.expect("* welcome bob, 1 here")
	in, inW := io.Pipe()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- Client(context.Background(), p.A, apptest.Server(Port), ClientConfig{UDP: udp, Name: "alice"}, in, &out)
	}()
	bob.expect("* alice joined")
	bob.say("hi alice")
	io.WriteString(inW, "hi bob\n")
	bob.expect("alice: hi bob")
	inW.Close() // end of input: the client quits
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bob.expect("* alice left")
	want := "* welcome alice, 2 here\nbob: hi alice\n* bye\n"
	if got := out.String(); got != want {
		t.Fatalf("client printed %q, want %q", got, want)
	}
}

func TestClientUDP(t *testing.T) { testClients(t, true) }
func TestClientTCP(t *testing.T) { testClients(t, false) }

func TestTCPChatDisconnect(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	srv, err := Serve(p.B, apptest.Any(Port), Config{NoUDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := apptest.TCP(t, p.A, apptest.Server(Port))
	b := apptest.TCP(t, p.A, apptest.Server(Port))
	a.SendAll([]byte("/join a\n"), 0)
	readLine := func(s *socket.Socket) string {
		var line []byte
		c := make([]byte, 1)
		for {
			k, err := s.Recv(c, 0)
			if err != nil || k == 0 {
				t.Fatalf("read: %v (have %q)", err, line)
			}
			if c[0] == '\n' {
				return string(line)
			}
			line = append(line, c[0])
		}
	}
	if got := readLine(a); got != "* welcome a, 1 here" {
		t.Fatalf("a got %q", got)
	}
	b.SendAll([]byte("/join b\nfirst\r\nsecond\n"), 0)
	for _, want := range []string{"* b joined", "b: first", "b: second"} {
		if got := readLine(a); got != want {
			t.Fatalf("a got %q, want %q", got, want)
		}
	}
	b.Close() // without /quit
	if got := readLine(a); got != "* b left" {
		t.Fatalf("a got %q", got)
	}
}
