package link

import (
	"bytes"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// TestAFPacketRingFullSizeFrames: without Offload the transmit ring's
// slots hold a frame of the MTU and no virtio-net header, and frames of
// exactly the MTU go out (they were refused as too long for the slot,
// counted in TxDropped, when the check added a header never written).
func TestAFPacketRingFullSizeFrames(t *testing.T) {
	ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: true, QdiscBypass: true})
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
}

// TestAFPacketWritesInDeliveryBatched: what the receiver writes while a
// received batch is delivered leaves in one system call at the batch's
// end (sendmmsg, or one sendto for the transmit ring), in order, not in
// one system call per frame.
func TestAFPacketWritesInDeliveryBatched(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(map[bool]string{false: "mmsg", true: "ring"}[ring], func(t *testing.T) {
			ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: ring, QdiscBypass: true})
			peer := openPeer(t, ns, false)
			got := newMetaCollector()
			peer.Attach(got)
			const n = 100
			e := &echoer{ep: ep, release: make(chan struct{})}
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
