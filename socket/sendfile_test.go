package socket

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// sendfileTemp is a file of n bytes (i%251 each), removed after the test.
func sendfileTemp(t *testing.T, n int) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "sendfile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSendFileDatagramLimits: a UDP socket sends what the file has as
// one datagram whatever count is (no limit of its own on count), and
// EMSGSIZE when the file's bytes outgrow a datagram, the offset left
// where it was.
func TestSendFileDatagramLimits(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET)
	w := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := w.Connect(ra); err != nil {
		t.Fatal(err)
	}
	r.SetTimeout(5 * time.Second)
	small := sendfileTemp(t, 100)
	for _, count := range []int{100, 4 << 20, 4<<20 + 1, 1 << 30} {
		off := int64(0)
		if got, err := w.SendFile(small, &off, count); got != 100 || err != nil || off != 100 {
			t.Fatalf("count %d of a 100-byte file: %d %v, offset %d", count, got, err, off)
		}
		b := make([]byte, 200)
		k, err := r.Recv(b, 0)
		if err != nil || k != 100 || b[99] != 99 {
			t.Fatalf("count %d: received %d bytes, %v", count, k, err)
		}
	}
	big := sendfileTemp(t, 200000)
	for _, count := range []int{65508, 64 << 10, 64<<10 + 1, 1 << 30} {
		off := int64(0)
		if got, err := w.SendFile(big, &off, count); !errors.Is(err, syscall.EMSGSIZE) || got != 0 || off != 0 {
			t.Fatalf("count %d of a 200000-byte file: %d %v, offset %d; want EMSGSIZE at 0", count, got, err, off)
		}
	}
	off := int64(200000 - 65507)
	if got, err := w.SendFile(big, &off, 1<<30); got != 65507 || err != nil || off != 200000 {
		t.Fatalf("the last 65507 bytes: %d %v, offset %d", got, err, off)
	}
	b := make([]byte, 70000)
	if k, err := r.Recv(b, 0); k != 65507 || err != nil || b[0] != byte((200000-65507)%251) {
		t.Fatalf("received %d bytes, %v", k, err)
	}
}

// TestSendFileUnixMessages: AF_UNIX datagram and seqpacket sockets get
// the file in messages of 64 KiB and a shorter last one.
func TestSendFileUnixMessages(t *testing.T) {
	n, _, _ := loopReceiver(t, AF_INET)
	f := sendfileTemp(t, 150000)
	for _, typ := range []int{SOCK_DGRAM, SOCK_SEQPACKET} {
		a, b, err := n.SocketPair(typ)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		a.SetTimeout(5 * time.Second)
		off := int64(0)
		if got, err := a.SendFile(f, &off, 1<<30); got != 150000 || err != nil || off != 150000 {
			t.Fatalf("type %d: %d %v, offset %d", typ, got, err, off)
		}
		want := []byte(nil)
		for i := 0; i < 150000; i++ {
			want = append(want, byte(i%251))
		}
		got := []byte(nil)
		for _, size := range []int{65536, 65536, 18928} {
			m := make([]byte, 100000)
			k, err := b.Recv(m, MSG_DONTWAIT)
			if err != nil || k != size {
				t.Fatalf("type %d: message of %d bytes, %v; want %d", typ, k, err, size)
			}
			got = append(got, m[:k]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("type %d: the messages do not make the file", typ)
		}
	}
}
