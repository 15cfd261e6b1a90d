package link

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// idleRecv holds work after every frame whose first byte is odd and
// records the order of deliveries and Idle calls.
type idleRecv struct {
	told    bool
	holding bool
	events  chan string
}

func (r *idleRecv) HoldForIdle()  { r.told = true }
func (r *idleRecv) Holding() bool { return r.holding }
func (r *idleRecv) Idle() {
	if !r.holding {
		r.events <- "idle without held work"
	}
	r.holding = false
	r.events <- "idle"
}

func (r *idleRecv) next(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery or Idle call within 10 s")
		return ""
	}
}

func (r *idleRecv) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		r.holding = r.holding || f[0]%2 == 1
		r.events <- string(rune('0' + f[0]))
	}
}

// seqpacketEndpoint is an fdEndpoint on one end of a SOCK_SEQPACKET
// pair, a frame per message; the other end is returned for the test to
// write frames into (closed with the test).
func seqpacketEndpoint(t *testing.T) (*fdEndpoint, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	e := &fdEndpoint{name: "pair", mtu: 1500}
	if err := e.initFD(fds[0], "pair", 4, 2048); err != nil {
		t.Fatal(err)
	}
	e.readFn, e.writeFn = e.readEach, e.writeOne
	return e, fds[1]
}

// TestIdleAfterHeldBatch: an fdEndpoint calls Idle when a read finds
// nothing more after a batch that left work held, and only then.
func TestIdleAfterHeldBatch(t *testing.T) {
	e, peer := seqpacketEndpoint(t)
	r := &idleRecv{events: make(chan string, 16)}
	e.Attach(r)
	defer e.Close()
	for _, c := range []struct {
		frame byte
		want  []string
	}{
		{2, []string{"2"}},         // nothing held: no Idle
		{3, []string{"3", "idle"}}, // held: Idle once the socket is empty
		{4, []string{"4"}},
		{5, []string{"5", "idle"}},
	} {
		if _, err := unix.Write(peer, []byte{c.frame, 0, 0}); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if got := r.next(t); got != w {
				t.Fatalf("after frame %d: %q, want %q", c.frame, got, w)
			}
		}
	}
	// A frame after Idle is delivered as before: the loop waits again.
	if _, err := unix.Write(peer, []byte{6, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); got != "6" {
		t.Fatalf("after the last idle: %q", got)
	}
	if !r.told {
		t.Fatal("HoldForIdle was not called")
	}
	select {
	case ev := <-r.events:
		t.Fatalf("unexpected %q", ev)
	default:
	}
}

// An impairment between the endpoint and the receiver passes the idle
// calls on when it delivers on the endpoint's goroutine, and not when
// its scheduler delivers later (Delay).
func TestIdleThroughImpair(t *testing.T) {
	for _, c := range []struct {
		name    string
		cfg     ImpairConfig
		forward bool
	}{
		{"synchronous", ImpairConfig{Seed: 1}, true},
		{"delayed", ImpairConfig{Seed: 1, Delay: time.Millisecond}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, peer := seqpacketEndpoint(t)
			m := NewImpair(e, c.cfg)
			r := &idleRecv{events: make(chan string, 16)}
			m.Attach(r)
			defer m.Close()
			want := []string{"3"}
			if c.forward {
				want = append(want, "idle")
			}
			if _, err := unix.Write(peer, []byte{3, 0, 0}); err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				if got := r.next(t); got != w {
					t.Fatalf("%q, want %q", got, w)
				}
			}
			if _, err := unix.Write(peer, []byte{4, 0, 0}); err != nil {
				t.Fatal(err)
			}
			if got := r.next(t); got != "4" {
				t.Fatalf("%q, want \"4\"", got)
			}
			if r.told != c.forward {
				t.Fatalf("HoldForIdle called %v, want %v", r.told, c.forward)
			}
		})
	}
}
