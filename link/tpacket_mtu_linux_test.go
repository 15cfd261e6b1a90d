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
	ns, mac := vethNS(t)
	ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Ring: true, QdiscBypass: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
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
