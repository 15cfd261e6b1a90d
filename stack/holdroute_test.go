package stack_test

import (
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// holdLink is a pipe end that can hold frames (link.Holder) and never
// refuses one (it waits for room), so TCP defers its output to a
// flusher; it counts holds, flushes and the frames written while held.
type holdLink struct {
	link.Endpoint
	room  link.Waiter
	mu    sync.Mutex
	depth int // HoldWrites(true) not yet let go
	holds, flushes,
	heldFrames, frames int
	unbalanced bool // a release without a hold
}

func newHoldLink(ep *link.PipeEnd) *holdLink { return &holdLink{Endpoint: ep, room: ep} }

func (h *holdLink) NeverQueueFull() {}

func (h *holdLink) HoldWrites(start bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if start {
		h.depth++
		h.holds++
		return
	}
	if h.depth == 0 {
		h.unbalanced = true
		return
	}
	h.depth--
}

func (h *holdLink) FlushHeld() {
	h.mu.Lock()
	h.flushes++
	h.mu.Unlock()
}

func (h *holdLink) WriteFrames(fs [][]byte) (int, error) {
	h.mu.Lock()
	h.frames += len(fs)
	if h.depth > 0 {
		h.heldFrames += len(fs)
	}
	h.mu.Unlock()
	done := 0
	for done < len(fs) {
		n, err := h.Endpoint.WriteFrames(fs[done:])
		done += n
		if errors.Is(err, link.ErrQueueFull) {
			h.room.WaitRoom(nil)
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// counts is a snapshot of h's counters.
func (h *holdLink) counts() (holds, flushes, heldFrames, frames int, balanced bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holds, h.flushes, h.heldFrames, h.frames, !h.unbalanced
}

// waitReleased waits, bounded, until every hold of h is let go: a
// flush may still run when a transfer's last byte has arrived.
func (h *holdLink) waitReleased(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		d := h.depth
		h.mu.Unlock()
		if d == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d holds never let go", d)
		}
		runtime.Gosched()
	}
}

// A TCP flush holds the link of its own route and no other: frames of
// connections on another link never wait for it. Host a has two links
// that can hold frames, eth0 to b and eth1 to c. Sending to b holds eth0
// only (its segments leave held); receiving from c flushes eth1 only
// (the ACK goes before the reader is woken).
func TestFlushHoldsRouteLinkOnly(t *testing.T) {
	a0, b0 := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a1, c1 := link.NewPipe(wire.MAC{2, 0, 0, 0, 1, 1}, wire.MAC{2, 0, 0, 0, 1, 2}, 1500)
	a, b, c := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"}), stack.New(stack.Options{Name: "c"})
	t.Cleanup(func() { a.Close(); b.Close(); c.Close() })
	eth0, eth1 := newHoldLink(a0), newHoldLink(a1)
	a.AddNIC("eth0", eth0).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	a.AddNIC("eth1", eth1).AddAddress(netip.MustParsePrefix("10.1.0.1/24"))
	b.AddNIC("eth0", plainLink{b0}).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	c.AddNIC("eth0", plainLink{c1}).AddAddress(netip.MustParsePrefix("10.1.0.2/24"))

	transferTo(t, a, b, "10.0.0.2", 7100, 4<<20)
	h0, f0, held0, n0, ok0 := eth0.counts()
	h1, f1, held1, n1, ok1 := eth1.counts()
	t.Logf("sending by eth0: eth0 %d holds, %d flushes, %d of %d frames held; eth1 %d holds, %d flushes, %d frames",
		h0, f0, held0, n0, h1, f1, n1)
	if !ok0 || !ok1 {
		t.Fatal("a hold was let go twice")
	}
	if h0 == 0 || held0 == 0 {
		t.Fatalf("eth0 carried the flushes but was held %d times, %d frames held", h0, held0)
	}
	if h1 != 0 || f1 != 0 || held1 != 0 {
		t.Fatalf("eth1 carries no connection but was held %d times, flushed %d times", h1, f1)
	}

	transferTo(t, c, a, "10.1.0.1", 7100, 4<<20)
	h0b, f0b, _, _, ok0 := eth0.counts()
	h1, f1, held1, n1, ok1 = eth1.counts()
	t.Logf("receiving by eth1: eth1 %d holds, %d flushes, %d of %d frames held; eth0 %d more holds, %d more flushes",
		h1, f1, held1, n1, h0b-h0, f0b-f0)
	if !ok0 || !ok1 {
		t.Fatal("a hold was let go twice")
	}
	eth0.waitReleased(t)
	eth1.waitReleased(t)
	if f1 == 0 {
		t.Fatal("eth1 carried the ACKs of a receiving connection but was never flushed before a wake-up")
	}
	// The first connection's last segments (the ACK of b's FIN) may
	// still leave by eth0 after sendOver returned: a few holds, where a
	// flush that held every link would add one per flush on eth1.
	if h0b-h0 > 3 || f0b-f0 > 3 || h1 < 8 {
		t.Fatalf("eth0 carries no new connection now but was held %d and flushed %d more times, for %d holds on eth1", h0b-h0, f0b-f0, h1)
	}
}
