package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// sendAndDeliver writes b on c and runs the pair until s has received it.
func sendAndDeliver(t *testing.T, n *pairNet, c, s *Endpoint, b []byte) {
	t.Helper()
	want := s.Info().BytesReceived + uint64(len(b))
	if k, err := c.Write(b); k != len(b) || err != nil {
		t.Fatalf("write: %d %v", k, err)
	}
	if !n.run(time.Minute, func() bool { return s.Info().BytesReceived >= want }) {
		t.Fatal("data not delivered")
	}
}

func TestRcvLowatReadiness(t *testing.T) {
	n := newPair(1, Config{})
	c, s := n.connect(t)
	c.SetNoDelay(true)
	if v := s.SetRcvLowat(1000); v != 1000 || s.RcvLowat() != 1000 {
		t.Fatalf("SetRcvLowat(1000) kept %d, reads %d", v, s.RcvLowat())
	}
	sendAndDeliver(t, n, c, s, make([]byte, 999))
	if r := s.Readiness(waiter.EventIn); r != 0 {
		t.Fatalf("readable with 999 of 1000 bytes: %v", r)
	}
	sendAndDeliver(t, n, c, s, make([]byte, 1))
	if r := s.Readiness(waiter.EventIn); r == 0 {
		t.Fatal("not readable with 1000 of 1000 bytes")
	}
	// Lowering the mark wakes waiters; raising it makes the bytes
	// unready again.
	s.SetRcvLowat(5000)
	if s.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with 1000 of 5000 bytes")
	}
	e := waiter.NewEntry()
	s.Waiter().Register(e, waiter.EventIn)
	defer s.Waiter().Unregister(e)
	s.SetRcvLowat(0) // 0 means 1
	select {
	case <-e.C:
	default:
		t.Fatal("lowering SO_RCVLOWAT woke no one")
	}
	if s.RcvLowat() != 1 || s.Readiness(waiter.EventIn) == 0 {
		t.Fatalf("mark %d, readiness %v", s.RcvLowat(), s.Readiness(waiter.EventIn))
	}
	// Reading does not depend on the mark: the endpoint returns what
	// there is (the socket layer waits for the target).
	s.SetRcvLowat(5000)
	b := make([]byte, 4000)
	if k, err := s.Read(b, false); k != 1000 || err != nil {
		t.Fatalf("read: %d %v", k, err)
	}
	// FIN makes the socket readable whatever the mark.
	sendAndDeliver(t, n, c, s, make([]byte, 10))
	if s.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with 10 of 5000 bytes")
	}
	c.Shutdown(ShutWr)
	if !n.run(time.Minute, func() bool { return s.Readiness(waiter.EventIn) != 0 }) {
		t.Fatal("not readable after FIN")
	}
}

// A receive buffer more than 7/8 full is readable below the mark: the
// peer cannot send the rest.
func TestRcvLowatBufferPressure(t *testing.T) {
	n := newPair(2, Config{RecvBuf: 16000, MaxRecvBuf: 32000})
	c, s := n.connect(t)
	c.SetNoDelay(true)
	if v := s.SetRcvLowat(-1); v != 16000 {
		t.Fatalf("SO_RCVLOWAT -1 capped at %d, want half of MaxRecvBuf", v)
	}
	sendAndDeliver(t, n, c, s, make([]byte, 13000))
	if s.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with 13000 of 16000 bytes, buffer not under pressure")
	}
	sendAndDeliver(t, n, c, s, make([]byte, 1100)) // 14100 > 16000*7/8
	if s.Readiness(waiter.EventIn) == 0 {
		t.Fatal("not readable with the buffer 7/8 full")
	}
}

// With SO_RCVBUF the cap is half of it, and the buffer is left alone.
func TestRcvLowatCapRecvBuf(t *testing.T) {
	n := newPair(4, Config{})
	_, s := n.connect(t)
	s.SetRecvBuf(8000) // kept doubled: 16000
	before := s.RecvBuf()
	if v := s.SetRcvLowat(1 << 20); v != 8000 || s.RcvLowat() != 8000 {
		t.Fatalf("SO_RCVLOWAT capped at %d, want half of SO_RCVBUF's 16000", v)
	}
	if s.RecvBuf() != before {
		t.Fatalf("receive buffer moved from %d to %d", before, s.RecvBuf())
	}
}

// Without SO_RCVBUF the mark is capped at half of MaxRecvBuf and the
// buffer grows so the window can hold it.
func TestRcvLowatGrowsBuffer(t *testing.T) {
	n := newPair(3, Config{RecvBuf: 64 << 10, MaxRecvBuf: 1 << 20})
	c, s := n.connect(t)
	if v := s.SetRcvLowat(-1); v != 512<<10 {
		t.Fatalf("SetRcvLowat(-1) kept %d, want %d", v, 512<<10)
	}
	if s.RecvBuf() < 512<<10 {
		t.Fatalf("receive buffer %d, below the mark", s.RecvBuf())
	}
	// The peer can fill the mark: the window opens that far.
	c.SetNoDelay(true)
	data := make([]byte, 512<<10)
	sent := 0
	ok := n.run(5*time.Minute, func() bool {
		if sent < len(data) {
			k, _ := c.Write(data[sent:])
			sent += k
		}
		return s.Readiness(waiter.EventIn) != 0
	})
	if !ok {
		t.Fatalf("never readable: %d bytes received of %d sent", s.Info().BytesReceived, sent)
	}
}
