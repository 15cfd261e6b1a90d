package link

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdingReceiver is an IdleReceiver that holds work after its first
// batch, as TCP does when a batch ends with a hole in a flow, and stops
// holding when a frame it was told to expect arrives (the hole filled).
type holdingReceiver struct {
	*collector
	mu       sync.Mutex
	batches  int
	firstAt  time.Time
	holding  atomic.Bool
	idles    chan time.Time
	fillWith []byte // the frame that fills the hole
}

func newHoldingReceiver() *holdingReceiver {
	return &holdingReceiver{collector: newCollector(), idles: make(chan time.Time, 16)}
}

func (h *holdingReceiver) DeliverFrames(frames [][]byte) {
	h.mu.Lock()
	h.batches++
	if h.batches == 1 {
		h.firstAt = time.Now()
		h.holding.Store(true)
	}
	for _, f := range frames {
		if h.fillWith != nil && bytes.Equal(f, h.fillWith) {
			h.holding.Store(false)
		}
	}
	h.mu.Unlock()
	h.collector.DeliverFrames(frames)
}

func (h *holdingReceiver) HoldForIdle()  {}
func (h *holdingReceiver) Holding() bool { return h.holding.Load() }
func (h *holdingReceiver) Idle() {
	h.holding.Store(false)
	h.idles <- time.Now()
}

// waitWaits waits for the endpoint to have started n reorder waits.
func waitWaits(t *testing.T, ep *AFPacket, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ep.ReorderWaitStats().Waits < n {
		if time.Now().After(deadline) {
			t.Fatalf("the reader started %d reorder waits, want %d", ep.ReorderWaitStats().Waits, n)
		}
		time.Sleep(time.Millisecond) // polling a counter; the wait itself is long
	}
}

// A read that finds nothing while the receiver holds a hole's ACK waits
// for more frames: a frame sent during the wait is read and delivered
// before the receiver is told the link went idle, so the hole it fills
// is never reported (ReorderWait).
func TestAFPacketReorderWaitWoken(t *testing.T) {
	ep, ns, peerMAC := openOnVeth(t, AFPacketOptions{ReorderWait: MaxReorderWait})
	peer := openPeer(t, ns, false)
	r := newHoldingReceiver()
	first, second := testFrame(ep.HardwareAddr(), peerMAC, 1), testFrame(ep.HardwareAddr(), peerMAC, 2)
	r.fillWith = second
	ep.Attach(r)
	peer.Attach(newCollector())
	if _, err := peer.WriteFrames([][]byte{first}); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 1)
	// The reader is now waiting for the missing frame; send it.
	waitWaits(t, ep, 1)
	if _, err := peer.WriteFrames([][]byte{second}); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 1)
	if got := r.got(); len(got) != 2 || !bytes.Equal(got[1], second) {
		t.Fatalf("delivered %d frames, want the two sent", len(got))
	}
	select {
	case <-r.idles:
		t.Fatal("Idle was called although the missing frame came within the wait")
	default:
	}
	if s := ep.ReorderWaitStats(); s.Waits != 1 || s.Woken != 1 {
		t.Fatalf("reorder waits %+v, want 1 started, 1 woken by a frame", s)
	}
}

// With nothing more to read, the wait runs its whole length and the
// receiver is then told the link is idle (its held ACK goes out); a
// negative ReorderWait tells it at once.
func TestAFPacketReorderWaitExpires(t *testing.T) {
	const wait = 30 * time.Millisecond
	for _, tc := range []struct {
		name      string
		opt       time.Duration
		wantWaits uint64
	}{{"wait", wait, 1}, {"off", -1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ep, ns, peerMAC := openOnVeth(t, AFPacketOptions{ReorderWait: tc.opt})
			peer := openPeer(t, ns, false)
			r := newHoldingReceiver()
			ep.Attach(r)
			peer.Attach(newCollector())
			if _, err := peer.WriteFrames([][]byte{testFrame(ep.HardwareAddr(), peerMAC, 1)}); err != nil {
				t.Fatal(err)
			}
			r.wait(t, 1)
			var idleAt time.Time
			select {
			case idleAt = <-r.idles:
			case <-time.After(10 * time.Second):
				t.Fatal("Idle was never called")
			}
			r.mu.Lock()
			waited := idleAt.Sub(r.firstAt)
			r.mu.Unlock()
			if tc.wantWaits > 0 && waited < wait {
				t.Fatalf("Idle came %v after the batch, before the %v wait was up", waited, wait)
			}
			if s := ep.ReorderWaitStats(); s.Waits != tc.wantWaits || s.Woken != 0 {
				t.Fatalf("reorder waits %+v, want %d started, none woken by a frame", s, tc.wantWaits)
			}
		})
	}
}

// The default applies when the option is zero; a wait past the bound is
// refused; Close ends a wait in progress within a slice.
func TestAFPacketReorderWaitDefault(t *testing.T) {
	ep, ns, peerMAC := openOnVeth(t, AFPacketOptions{})
	if ep.reorderWait != DefaultReorderWait {
		t.Fatalf("reorder wait %v, want the default %v", ep.reorderWait, DefaultReorderWait)
	}
	if _, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, ReorderWait: MaxReorderWait + 1}); err == nil {
		t.Fatal("a reorder wait past MaxReorderWait was taken")
	}
	long, err := OpenAFPacket("va", AFPacketOptions{Netns: ns, ReorderWait: MaxReorderWait})
	if err != nil {
		t.Fatal(err)
	}
	r := newHoldingReceiver()
	long.Attach(r)
	if _, err := ep.WriteFrames([][]byte{testFrame(long.HardwareAddr(), peerMAC, 1)}); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 1)
	waitWaits(t, long, 1)
	start := time.Now()
	if err := long.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returns before the read loop ends; the loop ends within a
	// slice of the wait, not after the whole second.
	<-long.readDone
	if d := time.Since(start); d >= MaxReorderWait/2 {
		t.Fatalf("the reader ended %v after Close: it waited out the wait", d)
	}
}
