package tcp

import (
	"errors"
	"syscall"
	"testing"
)

// TestPeekAtStopsAtUrgentMark: a peek from an offset (SO_PEEK_OFF)
// stops before the urgent byte as a read does, skips an out-of-band
// urgent byte it starts on, and copies straight through one behind the
// offset. Offsets count the urgent byte. With SO_OOBINLINE the peek
// still stops at the mark but does not skip the byte.
func TestPeekAtStopsAtUrgentMark(t *testing.T) {
	for _, inline := range []bool{false, true} {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(noOpts)
		c.SetOOBInline(inline)
		// "abcdefg" with the urgent byte 'd' (the pointer is the byte after it).
		s.inject(seg{flags: fPA | fU, seq: 1001, ack: iss + 1, win: 65535, urg: 4, data: []byte("abcdefg")})
		atMark := "efg"
		if inline {
			atMark = "defg"
		}
		b := make([]byte, 100)
		for _, tc := range []struct {
			off  int
			size int
			want string
		}{
			{0, 100, "abc"},
			{1, 100, "bc"},
			{2, 1, "c"},
			{3, 100, atMark},
			{4, 100, "efg"},
			{6, 100, "g"},
		} {
			n, err := c.PeekAt(b[:tc.size], tc.off)
			if err != nil || string(b[:n]) != tc.want {
				t.Fatalf("inline %v: peek at %d: %q %v, want %q", inline, tc.off, b[:n], err, tc.want)
			}
		}
		if _, err := c.PeekAt(b, 7); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("inline %v: peek at the end: %v, want EAGAIN", inline, err)
		}
		// The peeks consumed nothing: a read still stops at the mark.
		if n, err := c.Read(b, false); err != nil || string(b[:n]) != "abc" {
			t.Fatalf("inline %v: read %q %v", inline, b[:n], err)
		}
		// One byte on from the mark is past the urgent byte, either way.
		if n, err := c.PeekAt(b, 1); err != nil || string(b[:n]) != "efg" {
			t.Fatalf("inline %v: peek at 1 from the mark: %q %v", inline, b[:n], err)
		}
	}
}

// TestPeekAtOnlyUrgentByte: when nothing but an out-of-band urgent byte
// lies at the offset, the peek has nothing to copy (EAGAIN), before and
// after MSG_OOB took the byte; data behind it is peeked past the hole.
func TestPeekAtOnlyUrgentByte(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fPA | fU, seq: 1001, ack: iss + 1, win: 65535, urg: 4, data: []byte("abcd")})
	b := make([]byte, 100)
	if _, err := c.PeekAt(b, 3); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("peek at the urgent byte: %v, want EAGAIN", err)
	}
	var one [1]byte
	if n, _, err := c.RecvOOB(one[:], false); n != 1 || one[0] != 'd' || err != nil {
		t.Fatalf("MSG_OOB: %d %q %v", n, one[:n], err)
	}
	if _, err := c.PeekAt(b, 3); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("peek at the read urgent byte: %v, want EAGAIN", err)
	}
	s.inject(seg{flags: fPA, seq: 1005, ack: iss + 1, win: 65535, data: []byte("xy")})
	if n, err := c.PeekAt(b, 3); err != nil || string(b[:n]) != "xy" {
		t.Fatalf("peek past the hole: %q %v", b[:n], err)
	}
	if n, err := c.PeekAt(b, 2); err != nil || string(b[:n]) != "c" {
		t.Fatalf("peek before the hole: %q %v", b[:n], err)
	}
}
