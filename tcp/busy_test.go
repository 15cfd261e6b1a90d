package tcp

import (
	"testing"
	"time"
)

// A connection with SO_RCVBUF set goes idle after reading like any
// other: the bytes read this RTT (epBusy.copied), which only the
// receive auto-tuning reads and SO_RCVBUF turns off, no longer keep its
// epBusy. Before, a read left them counted for good.
func TestIdleReleasesBusyRcvBuf(t *testing.T) {
	n := newPair(11, Config{})
	n.delay = time.Millisecond
	c, s := n.connect(t)
	if err := s.SetRecvBuf(256 << 10); err != nil {
		t.Fatal(err)
	}
	msg := []byte("request")
	for round := range 3 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		got := 0
		if !n.run(time.Minute, func() bool {
			k, _ := s.Read(b[got:], false)
			got += k
			return got == len(msg)
		}) {
			t.Fatalf("round %d: read %d of %d bytes", round, got, len(msg))
		}
		if string(b[:got]) != string(msg) {
			t.Fatalf("round %d: read %q", round, b[:got])
		}
		n.run(5*time.Second, func() bool { return false }) // delayed ACK, then idle
		if holdsBusy(s) {
			s.mu.m.Lock()
			t.Logf("server: copied %d, ackPending %d, dackAt %v", s.copied, s.ackPending, s.dackAt)
			s.mu.m.Unlock()
			t.Fatalf("round %d: idle connection with SO_RCVBUF still holds its epBusy", round)
		}
	}
	if got := s.RecvBuf(); got != 512<<10 {
		t.Fatalf("SO_RCVBUF reads %d, want %d (twice the value set, not tuned)", got, 512<<10)
	}
}
