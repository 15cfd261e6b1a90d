package stack

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

func reasmHarness(t *testing.T, opts Options) (*harness, *DgramEndpoint) {
	h := newHarness(t, opts)
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	e.SetRecvBuf(RmemMax)
	t.Cleanup(func() { e.Close() })
	return h, e
}

// 8,000 eight-byte fragments cost a bounded number of operations per
// fragment in any order: in order and last-first they are reassembled;
// interleaved (every other one first) they would leave 4,000 holes, and
// the datagram is dropped at ReasmMaxRuns instead of being searched
// quadratically.
func TestReassemblyCostShape(t *testing.T) {
	const n = 8000
	for _, c := range []struct {
		name    string
		order   func(fr [][]byte) [][]byte
		deliver bool
	}{
		{"in order", func(fr [][]byte) [][]byte { return fr }, true},
		{"last first", func(fr [][]byte) [][]byte {
			out := make([][]byte, 0, len(fr))
			for i := len(fr) - 1; i >= 0; i-- {
				out = append(out, fr[i])
			}
			return out
		}, true},
		{"evens then odds", func(fr [][]byte) [][]byte {
			var out [][]byte
			for i := 0; i < len(fr); i += 2 {
				out = append(out, fr[i])
			}
			for i := 1; i < len(fr); i += 2 {
				out = append(out, fr[i])
			}
			return out
		}, false},
	} {
		h, e := reasmHarness(t, Options{ReasmMemLimit: 16 << 20})
		fr := c.order(tinyFragments(7, n, false))
		h.nic.DeliverFrames(fr)
		ops := h.s.reasm.ops
		// A binary search over at most 64 runs and a move of at most 64.
		if ops > n*(7+64) {
			t.Errorf("%s: %d operations for %d fragments (%.1f each)", c.name, ops, n, float64(ops)/n)
		}
		got, _, _, err := e.RecvFrom(make([]byte, 65536), false)
		if c.deliver && (err != nil || got != n*8-8) {
			t.Errorf("%s: reassembled %d bytes, %v", c.name, got, err)
		}
		if !c.deliver && err == nil {
			t.Errorf("%s: delivered", c.name)
		}
		holes := h.s.Stats().IP.ReasmTooManyHoles.Load()
		if c.deliver != (holes == 0) {
			t.Errorf("%s: too-many-holes drops %d", c.name, holes)
		}
		t.Logf("%s: %d operations for %d fragments", c.name, ops, n)
	}
}

// Fragments in a random order (a reordering link) still reassemble,
// bytes intact, and the memory charge returns to zero.
func TestReassemblyRandomOrder(t *testing.T) {
	h, e := reasmHarness(t, Options{})
	data := make([]byte, 60000)
	for i := range data {
		data[i] = byte(i * 13)
	}
	fr := fragments(11, udpPayload(peerAddr, hostAddr, 1, 5000, data), 1480)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(fr), func(i, j int) { fr[i], fr[j] = fr[j], fr[i] })
	h.nic.DeliverFrames(fr)
	buf := make([]byte, 65536)
	n, _, _, err := e.RecvFrom(buf, false)
	if err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("reassembled %d bytes, %v", n, err)
	}
	if m := h.s.ReasmMemInUse(); m != 0 {
		t.Fatalf("%d bytes still charged", m)
	}
}

// Each datagram is charged its true size: the buffer capacity it holds,
// plus a fixed overhead per fragment and per datagram. One 8-byte
// fragment at offset 65,000 costs a 64 KiB buffer, not 8 bytes.
func TestReassemblyChargesTrueSize(t *testing.T) {
	h, _ := reasmHarness(t, Options{})
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 1, MF: true}, make([]byte, 8)))
	if got, want := h.s.ReasmMemInUse(), reasmDgramCost+reasmFragOverhead+bufSize0; got != want {
		t.Fatalf("first 8-byte fragment charged %d, want %d", got, want)
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 2, FragOff: 65000, MF: true}, make([]byte, 8)))
	want := 2*(reasmDgramCost+reasmFragOverhead) + bufSize0 + bufSize3
	if got := h.s.ReasmMemInUse(); got != want {
		t.Fatalf("with a fragment at 65000: charged %d, want %d", got, want)
	}
}

// A flood of incomplete datagrams (20,000 sets) stays under the memory
// limit by evicting the oldest, and a fragmented datagram sent during it
// is still reassembled.
func TestReassemblyFloodEvictsOldest(t *testing.T) {
	const limit = 1 << 20
	h, e := reasmHarness(t, Options{ReasmMemLimit: limit})
	src := netip.MustParseAddr("10.0.0.77")
	for i := 0; i < 20000; i++ {
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Src: src, ID: uint16(i), FragOff: 1480 * (i % 40), MF: true}, make([]byte, 1480)))
		if m := h.s.ReasmMemInUse(); m > limit {
			t.Fatalf("after %d fragments: %d bytes charged > %d", i, m, limit)
		}
		if i == 10000 {
			data := bytes.Repeat([]byte("ping"), 1000)
			for _, f := range fragments(4242, udpPayload(peerAddr, hostAddr, 1, 5000, data), 1480) {
				h.ep.inject(f)
			}
			buf := make([]byte, 8000)
			if n, _, _, err := e.RecvFrom(buf, false); err != nil || !bytes.Equal(buf[:n], data) {
				t.Fatalf("datagram during the flood: %d bytes, %v", n, err)
			}
		}
	}
	if h.s.Stats().IP.ReasmEvictions.Load() == 0 {
		t.Fatal("no evictions counted")
	}
	if n := len(h.s.reasm.pending); n > limit/(reasmDgramCost+reasmFragOverhead+bufSize1) {
		t.Fatalf("%d datagrams held", n)
	}
}

// A fragment that does not fit even with nothing older left to evict is
// dropped and counted.
func TestReassemblyMemoryDrop(t *testing.T) {
	h, _ := reasmHarness(t, Options{ReasmMemLimit: 1000})
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, ID: 1, MF: true}, make([]byte, 1480)))
	if h.s.Stats().IP.ReasmMemoryDrops.Load() != 1 {
		t.Fatalf("memory drops %d, want 1", h.s.Stats().IP.ReasmMemoryDrops.Load())
	}
	if m := h.s.ReasmMemInUse(); m > 1000 {
		t.Fatalf("%d bytes charged over the limit", m)
	}
}
