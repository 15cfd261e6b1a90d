package link

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// TestAFPacketRingFullSizeFrames: without Offload the transmit ring's
// slots hold a frame of the MTU and no virtio-net header, and frames of
// exactly the MTU go out (they were refused as too long for the slot,
// counted in TxDropped, when the check added a header never written).
func TestAFPacketRingFullSizeFrames(t *testing.T) { forRings(t, testRingFullSizeFrames) }

func testRingFullSizeFrames(t *testing.T, v int) {
	ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: true, RingVersion: v, QdiscBypass: true})
	peer := openPeer(t, ns, false)
	got := newMetaCollector()
	peer.Attach(got)
	const n = 64
	full := ep.MTU() + wire.EthernetHeaderLen
	var out [][]byte
	for i := range n {
		out = append(out, frame(macA, mac, uint32(i), full))
	}
	if k, err := ep.WriteFrames(out); k != n || err != nil {
		t.Fatalf("wrote %d of %d frames of %d bytes: %v (stats %+v)", k, n, full, err, ep.Stats().Snapshot())
	}
	got.wait(t, n)
	for i, f := range got.frames {
		if !bytes.Equal(f, out[i]) {
			t.Fatalf("peer's frame %d (seq %d, %d bytes) differs from the one sent", i, seqOf(f), len(f))
		}
	}
	if s := ep.Stats().Snapshot(); s.TxFrames != n || s.TxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	if w := ep.WriteCalls(); w == 0 || w > n {
		t.Errorf("%d frames written in %d system calls", n, w)
	}
}

// echoer answers every frame it is delivered with a frame of its own,
// one WriteFrames call each, as the stack's TCP answers segments; its
// first delivery waits for release, so the rest arrive in batches.
type echoer struct {
	ep      *AFPacket
	release chan struct{}
	first   bool
	out     [][]byte
	sent    int
	batches int // deliveries that wrote more than one frame
	calls   int // deliveries that wrote
	// done is closed at the end of the delivery that wrote the last
	// frame: the counters are final (the peer may have every frame
	// before, when a full transmit ring was kicked on the way).
	done chan struct{}
}

func (e *echoer) DeliverFrames(frames [][]byte) {
	if !e.first {
		e.first = true
		<-e.release
	}
	k := 0
	for range frames {
		if e.sent < len(e.out) {
			e.ep.WriteFrames(e.out[e.sent : e.sent+1])
			e.sent++
			k++
		}
	}
	if k > 0 {
		e.calls++
	}
	if k > 1 {
		e.batches++
	}
	if k > 0 && e.sent == len(e.out) {
		close(e.done)
	}
}

// TestAFPacketWritesInDeliveryBatched: what the receiver writes while a
// received batch is delivered leaves in one system call at the batch's
// end (sendmmsg, or one sendto for the transmit ring), in order, not in
// one system call per frame.
func TestAFPacketWritesInDeliveryBatched(t *testing.T) {
	for _, m := range []struct {
		name       string
		ring, noTx bool
		version    int
	}{{"mmsg", false, false, 0}, {"ring", true, false, 3}, {"ring_v2", true, false, 2}, {"ring_v2_notx", true, true, 2}} {
		t.Run(m.name, func(t *testing.T) {
			ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: m.ring, RingVersion: m.version, RingNoTx: m.noTx, QdiscBypass: true})
			peer := openPeer(t, ns, false)
			got := newMetaCollector()
			peer.Attach(got)
			const n = 100
			e := &echoer{ep: ep, release: make(chan struct{}), done: make(chan struct{})}
			var in [][]byte
			for i := range n {
				in = append(in, frame(mac, macA, uint32(i), 1000))
				e.out = append(e.out, frame(macA, mac, uint32(i), 60+i*13))
			}
			ep.Attach(e)
			if k, err := peer.WriteFrames(in); k != n || err != nil {
				t.Fatalf("peer wrote %d: %v", k, err)
			}
			close(e.release)
			got.wait(t, n)
			<-e.done
			// The peer may have every frame before the link has
			// counted the last system call's: wait for the count.
			deadline := time.After(20 * time.Second)
			for s := ep.Stats(); s.TxFrames.Load()+s.TxDropped.Load() < n; {
				select {
				case <-deadline:
					t.Fatalf("stats %+v", s.Snapshot())
				case <-time.After(time.Millisecond): // look again
				}
			}
			for i, f := range got.frames {
				if !bytes.Equal(f, e.out[i]) {
					t.Fatalf("peer's frame %d (seq %d) differs from the one sent", i, seqOf(f))
				}
			}
			if s := ep.Stats().Snapshot(); s.TxFrames != n || s.TxDropped != 0 {
				t.Errorf("stats %+v", s)
			}
			// One system call per delivery that wrote, plus one per
			// batch-sized run without a ring (the held frames fill
			// its batch of DefaultReadBatch).
			w := ep.WriteCalls()
			if e.batches == 0 {
				t.Fatalf("no delivery of more than one frame (%d deliveries): nothing to batch", e.calls)
			}
			if most := uint64(e.calls + n/DefaultReadBatch); w > most {
				t.Errorf("%d frames written in %d system calls, in %d deliveries (%d of several frames): want at most %d", n, w, e.calls, e.batches, most)
			}
			t.Logf("%d frames in %d deliveries, %d system calls", n, e.calls, w)
		})
	}
}

// burster answers the first test frame it is delivered with a burst of
// frames, one WriteFrames call each, and records the endpoint's count
// of write system calls after each.
type burster struct {
	ep    *AFPacket
	out   [][]byte
	calls []uint64 // WriteCalls after each frame of the burst
	done  chan struct{}
}

func (b *burster) DeliverFrames(frames [][]byte) {
	if b.calls != nil {
		return
	}
	for _, f := range b.out {
		if k, err := b.ep.WriteFrames([][]byte{f}); k != 1 || err != nil {
			panic(fmt.Sprintf("wrote %d: %v", k, err))
		}
		b.calls = append(b.calls, b.ep.WriteCalls())
	}
	close(b.done)
}

// TestAFPacketHeldWritesFlushWhenFull: without a ring or Offload, frames
// written during a delivery are held in DefaultReadBatch buffers; a
// burst longer than that leaves a full batch in one sendmmsg as soon as
// the buffers are full (the next frame finds no room), the rest at the
// delivery's end, every frame once and in order.
func TestAFPacketHeldWritesFlushWhenFull(t *testing.T) {
	ep, ns, mac := openOnVeth(t, AFPacketOptions{QdiscBypass: true})
	if len(ep.pend) != DefaultReadBatch {
		t.Fatalf("%d held buffers, want %d", len(ep.pend), DefaultReadBatch)
	}
	peer := openPeer(t, ns, false)
	got := newMetaCollector()
	peer.Attach(got)
	const n = 100
	b := &burster{ep: ep, done: make(chan struct{})}
	for i := range n {
		b.out = append(b.out, frame(macA, mac, uint32(i), 60+i*13))
	}
	ep.Attach(b)
	if k, err := peer.WriteFrames([][]byte{frame(mac, macA, 0, 100)}); k != 1 || err != nil {
		t.Fatalf("peer wrote %d: %v", k, err)
	}
	got.wait(t, n)
	<-b.done
	for i, f := range got.frames {
		if !bytes.Equal(f, b.out[i]) {
			t.Fatalf("peer's frame %d (seq %d) differs from the one sent", i, seqOf(f))
		}
	}
	// A call for each full batch, made when the frame after it came.
	for i, c := range b.calls {
		if want := uint64(i / DefaultReadBatch); c != want {
			t.Fatalf("after frame %d of the burst %d write system calls, want %d (calls after each: %v)", i+1, c, want, b.calls)
		}
	}
	deadline := time.After(20 * time.Second)
	for ep.Stats().TxFrames.Load() < n { // the last flush's count
		select {
		case <-deadline:
			t.Fatalf("stats %+v", ep.Stats().Snapshot())
		case <-time.After(time.Millisecond): // look again
		}
	}
	if w, want := ep.WriteCalls(), uint64((n+DefaultReadBatch-1)/DefaultReadBatch); w != want {
		t.Errorf("%d write system calls for %d frames, want %d", w, n, want)
	}
}
