package tcp

import (
	"errors"
	"syscall"
	"testing"
)

// queues reads InQ, OutQ and OutQNSD, failing on an error.
func queues(t *testing.T, e *Endpoint) (in, out, nsd int) {
	t.Helper()
	var err [3]error
	in, err[0] = e.InQ()
	out, err[1] = e.OutQ()
	nsd, err[2] = e.OutQNSD()
	for _, x := range err {
		if x != nil {
			t.Fatal(x)
		}
	}
	return
}

// SIOCOUTQ counts what is not yet acknowledged, SIOCOUTQNSD what is not
// yet sent (a zero window holds it back), the FIN one each; SIOCINQ
// counts data, not the peer's FIN. The loopback conformance cases
// cannot hold an ACK back: this scripted peer does.
func TestIoctlQueues(t *testing.T) {
	s := newScript(t, Config{})
	l, c, iss := s.passiveOpen(noOpts)
	for _, f := range []func() (int, error){l.InQ, l.OutQ, l.OutQNSD} {
		if _, err := f(); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("listener: %v, want EINVAL", err)
		}
	}
	// TCP_CORK holds the 80-byte tail (Nagle would not: no short
	// segment is in flight).
	c.SetCork(true)
	if n, err := c.Write(make([]byte, 3000)); n != 3000 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	s.out()
	// Two full segments sent, the tail held.
	if in, out, nsd := queues(t, c); in != 0 || out != 3000 || nsd != 80 {
		t.Fatalf("two segments sent: in %d out %d nsd %d, want 0 3000 80", in, out, nsd)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 1460, win: 65535})
	s.out()
	if _, out, nsd := queues(t, c); out != 1540 || nsd != 80 {
		t.Fatalf("one segment acknowledged: out %d nsd %d, want 1540 80", out, nsd)
	}
	// Both acknowledged, the window closed: the tail and new bytes wait,
	// uncorked too.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 2920, win: 0})
	c.SetCork(false)
	if n, err := c.Write(make([]byte, 500)); n != 500 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	s.out()
	if _, out, nsd := queues(t, c); out != 580 || nsd != 580 {
		t.Fatalf("zero window: out %d nsd %d, want 580 580", out, nsd)
	}
	if err := c.Shutdown(1); err != nil { // SHUT_WR
		t.Fatal(err)
	}
	s.out()
	if _, out, nsd := queues(t, c); out != 581 || nsd != 581 {
		t.Fatalf("FIN queued: out %d nsd %d, want 581 581", out, nsd)
	}
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1 + 2920, win: 0, data: make([]byte, 100)})
	s.inject(seg{flags: fFA, seq: 1101, ack: iss + 1 + 2920, win: 0})
	if in, _, _ := queues(t, c); in != 100 {
		t.Fatalf("data and FIN from the peer: in %d, want 100", in)
	}
	if got := len(readAll(c)); got != 100 {
		t.Fatalf("read %d", got)
	}
	if in, _, _ := queues(t, c); in != 0 {
		t.Fatalf("read all: in %d", in)
	}
}
