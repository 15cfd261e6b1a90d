package tcp

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// PeekAt (SO_PEEK_OFF) reads from any offset across the ring and the
// lent buffers behind it, as Read does from the start; past the end it
// is EAGAIN.
func TestPeekAtAcrossLentBuffers(t *testing.T) {
	s, c, iss, b, fl := lendScript(t, Config{RecvBuf: 4 << 20})
	seq, total := uint32(1001), 0
	in := func(n int) {
		s.injectBatch(b, seg{flags: fA, seq: seq, ack: iss + 1, win: 65535, data: pattern(total, n)})
		seq += uint32(n)
		total += n
		b.Flush()
	}
	in(500)      // ring
	in(superSeg) // lent
	in(300)      // copied behind it
	in(superSeg) // lent
	if fl.lent != 2 {
		t.Fatalf("lent %d, want 2", fl.lent)
	}
	buf := make([]byte, 4000)
	for _, off := range []int{0, 1, 499, 500, 501, 500 + superSeg - 1, 500 + superSeg, 800 + superSeg, total - 1} {
		n, err := c.PeekAt(buf, off)
		want := pattern(off, min(len(buf), total-off))
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("peek at %d: %d bytes, %v; equal %v", off, n, err, bytes.Equal(buf[:n], want))
		}
	}
	if _, err := c.PeekAt(buf, total); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("peek at the end: %v, want EAGAIN", err)
	}
	if got := readAll(c); !bytes.Equal(got, pattern(0, total)) {
		t.Fatalf("read after the peeks: %d bytes of %d", len(got), total)
	}
}
