package link

import (
	"bytes"
	"errors"
	"testing"
)

func TestPipeDeliversInOrderAndCounts(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	ca, cb := newCollector(), newCollector()
	a.Attach(ca)
	b.Attach(cb)
	var sent [][]byte
	for i := range 100 {
		f := frame(macB, macA, uint32(i), 60+i)
		sent = append(sent, f)
	}
	if n, err := a.WriteFrames(sent[:50]); n != 50 || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	for _, f := range sent[50:] {
		if n, err := a.WriteFrames([][]byte{f}); n != 1 || err != nil {
			t.Fatalf("WriteFrames = %d, %v", n, err)
		}
	}
	cb.wait(t, 100)
	got := cb.got()
	var total uint64
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs", i)
		}
		total += uint64(len(sent[i]))
	}
	sa, sb := a.Stats().Snapshot(), b.Stats().Snapshot()
	if sa.TxFrames != 100 || sa.TxBytes != total || sb.RxFrames != 100 || sb.RxBytes != total {
		t.Fatalf("stats a=%+v b=%+v", sa, sb)
	}
	if len(ca.got()) != 0 {
		t.Fatal("sender got its own frames")
	}
	// The other way too.
	if _, err := b.WriteFrames([][]byte{frame(macA, macB, 7, 64)}); err != nil {
		t.Fatal(err)
	}
	ca.wait(t, 1)
	if seqOf(ca.got()[0]) != 7 {
		t.Fatal("wrong frame back")
	}
}

func TestPipeQueueFullDropsCounted(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	frames := make([][]byte, DefaultQueueLen+76)
	for i := range frames {
		frames[i] = frame(macB, macA, uint32(i), 64)
	}
	// b is not attached yet: nothing drains its queue.
	n, err := a.WriteFrames(frames)
	if n != DefaultQueueLen || !errors.Is(err, ErrQueueFull) {
		t.Fatalf("WriteFrames = %d, %v; want %d, ErrQueueFull", n, err, DefaultQueueLen)
	}
	if d := a.Stats().TxDropped.Load(); d != 76 {
		t.Fatalf("TxDropped = %d, want 76", d)
	}
	// WaitRoom returns once the queue drains.
	waited := make(chan struct{})
	go func() { a.WaitRoom(nil); close(waited) }()
	cb := newCollector()
	b.Attach(cb)
	cb.wait(t, DefaultQueueLen)
	<-waited
	got := cb.got()
	for i, f := range got {
		if seqOf(f) != uint32(i) {
			t.Fatalf("frame %d has seq %d", i, seqOf(f))
		}
	}
}

func TestPipeWaitRoomDone(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	frames := make([][]byte, DefaultQueueLen)
	for i := range frames {
		frames[i] = frame(macB, macA, uint32(i), 64)
	}
	a.WriteFrames(frames)
	done := make(chan struct{})
	close(done)
	a.WaitRoom(done) // must not block: done is closed
}

func TestPipeClose(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	cb := newCollector()
	b.Attach(cb)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if n, err := a.WriteFrames([][]byte{frame(macB, macA, 1, 64)}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("write to closed peer = %d, %v", n, err)
	}
	if a.Stats().TxDropped.Load() != 1 {
		t.Fatal("drop to closed peer not counted")
	}
	a.Close()
	if _, err := a.WriteFrames([][]byte{frame(macB, macA, 1, 64)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write on closed end: %v", err)
	}
	// Closing an end that was never attached must not hang.
	c, d := NewPipe(macA, macB, 1500)
	c.Close()
	d.Close()
}

func TestIPPipe(t *testing.T) {
	a, b := NewIPPipe(1400)
	defer a.Close()
	defer b.Close()
	if a.Kind() != KindIP || a.MTU() != 1400 || a.HardwareAddr() != ([6]byte{}) {
		t.Fatal("IP pipe attributes")
	}
	cb := newCollector()
	b.Attach(cb)
	pkt := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	a.WriteFrames([][]byte{pkt})
	cb.wait(t, 1)
	if !bytes.Equal(cb.got()[0], pkt) {
		t.Fatal("packet differs")
	}
}
