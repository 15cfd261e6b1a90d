package tcp

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"
)

// onCopy runs f while e's next large write copies with the lock
// released (sndCopyHook), once.
func onCopy(t *testing.T, e *Endpoint, f func()) *bool {
	t.Helper()
	ran := new(bool)
	sndCopyHook = func(x *Endpoint) {
		if x != e || *ran {
			return
		}
		*ran = true
		f()
	}
	t.Cleanup(func() { sndCopyHook = nil })
	return ran
}

// copyPattern is n bytes that tell their offset and their write apart.
func copyPattern(n int, tag byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ tag
	}
	return b
}

// readUntil reads what s has until want bytes, or EOF, arrived.
func readUntil(t *testing.T, n *pairNet, s *Endpoint, want int) ([]byte, bool) {
	t.Helper()
	var got []byte
	eof := false
	buf := make([]byte, 64<<10)
	n.run(time.Minute, func() bool {
		for {
			k, err := s.Read(buf, false)
			got = append(got, buf[:k]...)
			if k == 0 && err == nil {
				eof = true
			}
			if k == 0 {
				break
			}
		}
		return eof || len(got) >= want
	})
	return got, eof
}

// An ACK that empties the send ring while a write copies into it
// leaves the ring's head where the copied bytes are: they go out as
// written, after the acknowledged ones. The lock is free during the copy.
func TestWriteCopyUnlockedAckEmptiesRing(t *testing.T) {
	n := newPair(1, Config{})
	c, s := n.connect(t)
	a, b := copyPattern(32<<10, 0x11), copyPattern(64<<10, 0x22)
	if k, err := c.Write(a); k != len(a) || err != nil {
		t.Fatalf("first write: %d, %v", k, err)
	}
	ran := onCopy(t, c, func() {
		if !c.mu.m.TryLock() {
			t.Error("the endpoint is locked during the copy")
		} else {
			c.mu.m.Unlock()
		}
		// Deliver the first write and its ACK: the ring is empty now.
		if !n.run(time.Minute, func() bool { return c.sndUna == c.sndMax }) {
			t.Error("the first write was not acknowledged")
		}
	})
	if k, err := c.Write(b); k != len(b) || err != nil {
		t.Fatalf("second write: %d, %v", k, err)
	}
	if !*ran {
		t.Fatal("the write did not copy with the lock released")
	}
	got, _ := readUntil(t, n, s, len(a)+len(b))
	if want := append(append([]byte{}, a...), b...); !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, not the %d written in order (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A reset arriving during the copy fails the write with ECONNRESET, as
// a write after it would, and the ring it let go is not handed to
// anybody else while the copy still writes into it.
func TestWriteCopyUnlockedReset(t *testing.T) {
	// A send buffer of a pooled size (buffer.go's classes).
	n := newPair(2, Config{SendBuf: 128 << 10})
	c, s := n.connect(t)
	a := copyPattern(32<<10, 0x33)
	if k, err := c.Write(a); k != len(a) || err != nil {
		t.Fatalf("first write: %d, %v", k, err)
	}
	if !n.run(time.Minute, func() bool { q, _ := s.InQ(); return q > 0 }) {
		t.Fatal("nothing arrived")
	}
	var ring []byte
	onCopy(t, c, func() {
		ring = c.snd.buf
		if poolClass(len(ring)) < 0 {
			t.Errorf("a ring of %d bytes is never pooled: the test proves nothing", len(ring))
		}
		s.Close() // unread data: Close resets
		if !n.run(time.Minute, func() bool { return c.State() == StateClosed }) {
			t.Error("the reset did not close the connection")
		}
		for range 4 {
			if b := getBuf(len(ring)); &b[0] == &ring[0] {
				t.Error("the ring being copied into went back to its pool")
			}
		}
	})
	k, err := c.Write(copyPattern(64<<10, 0x44))
	if k != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write across a reset: %d, %v; want 0, ECONNRESET", k, err)
	}
	if ring == nil {
		t.Fatal("the write did not copy with the lock released")
	}
	if k, err := c.Write(a); k != 0 || err == nil {
		t.Fatalf("write after the reset: %d, %v", k, err)
	}
}

// shutdown(SHUT_WR) during the copy puts the FIN after the bytes
// already queued: the write fails with EPIPE and the peer reads the
// earlier bytes, then EOF.
func TestWriteCopyUnlockedShutdown(t *testing.T) {
	n := newPair(3, Config{})
	c, s := n.connect(t)
	a := copyPattern(40<<10, 0x55)
	if k, err := c.Write(a); k != len(a) || err != nil {
		t.Fatalf("first write: %d, %v", k, err)
	}
	ran := onCopy(t, c, func() {
		if err := c.Shutdown(ShutWr); err != nil {
			t.Error(err)
		}
	})
	k, err := c.Write(copyPattern(64<<10, 0x66))
	if !*ran {
		t.Fatal("the write did not copy with the lock released")
	}
	if k != 0 || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write across shutdown: %d, %v; want 0, EPIPE", k, err)
	}
	got, eof := readUntil(t, n, s, len(a)+1)
	if !eof || !bytes.Equal(got, a) {
		t.Fatalf("peer read %d bytes (eof %v), want the %d before the shutdown, then EOF (first difference at %d)", len(got), eof, len(a), firstDiff(got, a))
	}
}

// Writes below unlockedCopyMin copy under the lock: the hook never runs.
func TestWriteCopySmallLocked(t *testing.T) {
	n := newPair(4, Config{})
	c, s := n.connect(t)
	ran := onCopy(t, c, func() {})
	small := copyPattern(unlockedCopyMin-1, 0x77)
	if k, err := c.Write(small); k != len(small) || err != nil {
		t.Fatalf("write: %d, %v", k, err)
	}
	if *ran {
		t.Fatal("a small write released the lock")
	}
	got, _ := readUntil(t, n, s, len(small))
	if !bytes.Equal(got, small) {
		t.Fatalf("received %d bytes, want %d", len(got), len(small))
	}
}
