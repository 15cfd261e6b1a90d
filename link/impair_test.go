package link

import (
	"bytes"
	"math"
	"math/bits"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// runImpair sends n frames through a synchronous Impair in batches of
// varying size and returns what came out, with the counters.
func runImpair(cfg ImpairConfig, n int) ([][]byte, ImpairSnapshot) {
	rec := &recorder{}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewManual(t0) // hold timers never fire
	}
	m := NewImpair(rec, cfg)
	for i := 0; i < n; {
		k := min(1+i%7, n-i)
		batch := make([][]byte, k)
		for j := range batch {
			batch[j] = frame(macB, macA, uint32(i+j), 100)
		}
		m.WriteFrames(batch)
		i += k
	}
	return rec.frames, m.Egress.Snapshot()
}

func TestImpairSameSeedSameDecisions(t *testing.T) {
	cfg := ImpairConfig{Seed: 42, Loss: 0.1, Duplicate: 0.1, Reorder: 0.1, Corrupt: 0.1}
	out1, st1 := runImpair(cfg, 5000)
	out2, st2 := runImpair(cfg, 5000)
	if st1 != st2 || len(out1) != len(out2) {
		t.Fatalf("same seed, different results: %+v vs %+v", st1, st2)
	}
	for i := range out1 {
		if !bytes.Equal(out1[i], out2[i]) {
			t.Fatalf("frame %d differs between runs", i)
		}
	}
	if st1.Dropped == 0 || st1.Duplicated == 0 || st1.Reordered == 0 || st1.Corrupted == 0 {
		t.Fatalf("some decision never made: %+v", st1)
	}
	cfg.Seed = 43
	out3, st3 := runImpair(cfg, 5000)
	same := len(out3) == len(out1)
	for i := 0; same && i < len(out1); i++ {
		same = bytes.Equal(out1[i], out3[i])
	}
	if same || st3 == st1 {
		t.Fatal("another seed gave the same decisions")
	}
}

func TestImpairRates(t *testing.T) {
	const n = 20000
	check := func(name string, got uint64, p float64) {
		t.Helper()
		mean := n * p
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", name, got, n, mean, 5*sd)
		}
	}
	out, st := runImpair(ImpairConfig{Seed: 1, Loss: 0.1}, n)
	check("loss", st.Dropped, 0.1)
	if len(out) != n-int(st.Dropped) {
		t.Fatalf("%d frames out, %d dropped", len(out), st.Dropped)
	}
	out, st = runImpair(ImpairConfig{Seed: 2, Duplicate: 0.05}, n)
	check("duplicate", st.Duplicated, 0.05)
	if len(out) != n+int(st.Duplicated) {
		t.Fatalf("%d frames out, %d duplicated", len(out), st.Duplicated)
	}
	_, st = runImpair(ImpairConfig{Seed: 3, Corrupt: 0.02}, n)
	check("corrupt", st.Corrupted, 0.02)
	out, st = runImpair(ImpairConfig{Seed: 4, Reorder: 0.2}, n)
	// A frame is held only when none is held already: a little under p.
	if float64(st.Reordered) < 0.8*0.2*n || float64(st.Reordered) > 0.2*n+5*math.Sqrt(n*0.2*0.8) {
		t.Errorf("reordered %d of %d", st.Reordered, n)
	}
	late := 0
	for i := 1; i < len(out); i++ {
		if seqOf(out[i]) < seqOf(out[i-1]) {
			late++
		}
	}
	// The last frame may still be held (the manual clock never fires).
	if late != int(st.Reordered) && late != int(st.Reordered)-1 {
		t.Errorf("%d frames out of order, %d reordered", late, st.Reordered)
	}
}

// Wire corruption hits anywhere in the frame, the Ethernet header too;
// on an Ethernet link the receiver's FCS (CRC-32) drops every such frame,
// on a link without an FCS (TUN) all of them are passed on.
func TestImpairCorruptFlipsBits(t *testing.T) {
	eth := &recorder{}
	m := NewImpair(eth, ImpairConfig{Seed: 9, Corrupt: 1})
	for i := range 500 {
		m.WriteFrames([][]byte{frame(macB, macA, uint32(i), 20+i%100)})
	}
	if st := m.Egress.Snapshot(); len(eth.frames) != 0 || st.Corrupted != 500 || st.FCSDrops != 500 || st.BadDelivered != 0 {
		t.Fatalf("Ethernet: %d frames passed, %+v; want every corrupted frame an FCS drop", len(eth.frames), st)
	}

	tun := &recorder{kind: KindIP}
	m = NewImpair(tun, ImpairConfig{Seed: 9, Corrupt: 1})
	header := 0
	for i := range 500 {
		f := frame(macB, macA, uint32(i), 20+i%100)
		orig := append([]byte(nil), f...)
		m.WriteFrames([][]byte{f})
		if !bytes.Equal(f, orig) {
			t.Fatal("the caller's frame was changed")
		}
		got := tun.frames[i]
		flipped := 0
		for j := range got {
			d := bits.OnesCount8(got[j] ^ orig[j])
			flipped += d
			if j < 14 && d > 0 {
				header++
			}
		}
		if flipped < 1 || flipped > 3 {
			t.Fatalf("frame %d: %d bits flipped", i, flipped)
		}
	}
	// About 14/70 of the bits are in the first 14 bytes.
	if header == 0 {
		t.Fatal("no flip ever hit the first 14 bytes: corruption is not anywhere in the frame")
	}
	if st := m.Egress.Snapshot(); st.Corrupted != 500 || st.FCSDrops != 0 || st.BadDelivered != 500 {
		t.Fatalf("no-FCS link: %+v", st)
	}
}

// ipv4Frame is an Ethernet frame with an IPv4 header claiming total
// bytes, followed by pad bytes of link padding.
func ipv4Frame(total, pad int) []byte {
	b := make([]byte, 14+total+pad)
	wire.PutEthernet(b, macB, macA, wire.EtherTypeIPv4)
	b[14] = 0x45
	b[16], b[17] = byte(total>>8), byte(total)
	for i := 14 + 20; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// Corruption past the FCS stays in one 16-bit word of the IPv4 packet
// (never the Ethernet header or the padding) and leaves other frames alone.
func TestImpairCorruptHost(t *testing.T) {
	rec := &recorder{}
	m := NewImpair(rec, ImpairConfig{Seed: 5, CorruptHost: 1})
	for i := range 500 {
		total := 20 + 2*(i%200)
		f := ipv4Frame(total, i%7)
		m.WriteFrames([][]byte{f})
		got := rec.frames[len(rec.frames)-1]
		var words []int
		flipped := 0
		for j := range got {
			if d := bits.OnesCount8(got[j] ^ f[j]); d > 0 {
				flipped += d
				if j < 14 || j >= 14+total {
					t.Fatalf("frame %d: byte %d flipped, outside the IPv4 packet", i, j)
				}
				words = append(words, (j-14)/2)
			}
		}
		if flipped < 1 || flipped > 3 || words[0] != words[len(words)-1] {
			t.Fatalf("frame %d: %d bits in words %v", i, flipped, words)
		}
	}
	other := frame(macB, macA, 1, 100)
	m.WriteFrames([][]byte{other})
	if !bytes.Equal(rec.frames[len(rec.frames)-1], other) {
		t.Fatal("a non-IPv4 frame was corrupted")
	}
	if st := m.Egress.Snapshot(); st.HostCorrupt != 500 || st.BadDelivered != 500 || st.Corrupted != 0 {
		t.Fatalf("counters %+v", st)
	}
}

func TestImpairReorderHoldsOneFrame(t *testing.T) {
	clk := clock.NewManual(t0)
	rec := &recorder{}
	m := NewImpair(rec, ImpairConfig{Reorder: 1, Clock: clk, ReorderHold: 5 * time.Millisecond})
	for i := range 4 {
		m.WriteFrames([][]byte{frame(macB, macA, uint32(i), 64)})
	}
	var seqs []uint32
	for _, f := range rec.frames {
		seqs = append(seqs, seqOf(f))
	}
	if len(seqs) != 4 || seqs[0] != 1 || seqs[1] != 0 || seqs[2] != 3 || seqs[3] != 2 {
		t.Fatalf("order %v, want [1 0 3 2]", seqs)
	}
	// A held frame with no successor leaves after ReorderHold.
	m.WriteFrames([][]byte{frame(macB, macA, 4, 64)})
	clk.Advance(4 * time.Millisecond)
	if len(rec.frames) != 4 {
		t.Fatal("held frame left early")
	}
	clk.Advance(time.Millisecond)
	if len(rec.frames) != 5 || seqOf(rec.frames[4]) != 4 {
		t.Fatal("held frame not released after ReorderHold")
	}
}

func TestImpairIngressOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		m := NewImpair(a, ImpairConfig{Loss: 1, Apply: ImpairIngress})
		ca, cb := newCollector(), newCollector()
		m.Attach(ca)
		b.Attach(cb)
		m.WriteFrames([][]byte{frame(macB, macA, 1, 64)})
		cb.wait(t, 1) // egress untouched
		b.WriteFrames([][]byte{frame(macA, macB, 2, 64), frame(macA, macB, 3, 64)})
		synctest.Wait() // the pipe goroutine has handed them over
		if m.Ingress.Dropped.Load() != 2 || len(ca.got()) != 0 || m.Egress.Frames.Load() != 0 {
			t.Fatalf("ingress %+v, egress %+v", m.Ingress.Snapshot(), m.Egress.Snapshot())
		}
		m.Close()
		b.Close()
	})
}

func TestImpairDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		m := NewImpair(a, ImpairConfig{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 5})
		cb := newCollector()
		m.Attach(newCollector())
		b.Attach(cb)
		start := time.Now()
		for i := range 20 {
			m.WriteFrames([][]byte{frame(macB, macA, uint32(i), 64)})
		}
		cb.wait(t, 20)
		prev := time.Duration(0)
		for i, f := range cb.got() {
			d := cb.times[i].Sub(start)
			if seqOf(f) != uint32(i) {
				t.Fatalf("jitter reordered: frame %d has seq %d", i, seqOf(f))
			}
			if d < 10*time.Millisecond || d >= 15*time.Millisecond || d < prev {
				t.Fatalf("frame %d after %v", i, d)
			}
			prev = d
		}
		if m.Egress.Delayed.Load() != 20 {
			t.Fatalf("Delayed = %d", m.Egress.Delayed.Load())
		}
		m.Close()
		b.Close()
	})
}

func TestImpairRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		// 1000-byte frames at 1 Mbit/s: one every 8 ms.
		m := NewImpair(a, ImpairConfig{Rate: 1e6, Apply: ImpairEgress})
		cb := newCollector()
		m.Attach(newCollector())
		b.Attach(cb)
		start := time.Now()
		batch := make([][]byte, 5)
		for i := range batch {
			batch[i] = frame(macB, macA, uint32(i), 1000)
		}
		m.WriteFrames(batch)
		cb.wait(t, 5)
		for i := range 5 {
			if d := cb.times[i].Sub(start); d != time.Duration(i+1)*8*time.Millisecond {
				t.Fatalf("frame %d after %v", i, d)
			}
		}
		m.Close()
		b.Close()
	})
}

func TestImpairQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		m := NewImpair(a, ImpairConfig{Delay: 10 * time.Millisecond, QueueLimit: 3, Apply: ImpairEgress})
		cb := newCollector()
		m.Attach(newCollector())
		b.Attach(cb)
		for i := range 10 {
			if n, err := m.WriteFrames([][]byte{frame(macB, macA, uint32(i), 64)}); n != 1 || err != nil {
				t.Fatalf("WriteFrames = %d, %v", n, err)
			}
		}
		cb.wait(t, 3)
		time.Sleep(time.Second) // virtual: anything else would have come by now
		synctest.Wait()
		if len(cb.got()) != 3 || m.Egress.QueueDrops.Load() != 7 {
			t.Fatalf("%d delivered, %d queue drops", len(cb.got()), m.Egress.QueueDrops.Load())
		}
		m.Close()
		b.Close()
	})
}

func TestImpairDelayedIngressAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		m := NewImpair(a, ImpairConfig{Delay: time.Second, Apply: ImpairIngress})
		ca := newCollector()
		m.Attach(ca)
		b.Attach(newCollector())
		start := time.Now()
		b.WriteFrames([][]byte{frame(macA, macB, 1, 64)})
		ca.wait(t, 1)
		if d := ca.times[0].Sub(start); d != time.Second {
			t.Fatalf("delivered after %v", d)
		}
		// Close with a frame still queued: it is dropped, nothing hangs.
		b.WriteFrames([][]byte{frame(macA, macB, 2, 64)})
		synctest.Wait()
		m.Close()
		b.Close()
		if len(ca.got()) != 1 {
			t.Fatal("frame delivered after Close")
		}
	})
}

func TestImpairNoAllocs(t *testing.T) {
	m := NewImpair(&discard{}, ImpairConfig{Seed: 3, Loss: 0.1, Duplicate: 0.1, Reorder: 0.1, Corrupt: 0.1,
		Clock: clock.NewManual(t0), Apply: ImpairEgress})
	batch := [][]byte{frame(macB, macA, 1, 1500), frame(macB, macA, 2, 64), frame(macB, macA, 3, 600)}
	for range 100 { // warm the buffer pool
		m.WriteFrames(batch)
	}
	if a := testing.AllocsPerRun(1000, func() { m.WriteFrames(batch) }); a != 0 {
		t.Fatalf("%v allocs per batch", a)
	}
}

func BenchmarkImpairSync64(b *testing.B) {
	m := NewImpair(&discard{}, ImpairConfig{Seed: 3, Loss: 0.01, Duplicate: 0.01, Reorder: 0.01, Corrupt: 0.01,
		Clock: clock.NewManual(t0), Apply: ImpairEgress})
	batch := [][]byte{frame(macB, macA, 1, 64)}
	b.ReportAllocs()
	for b.Loop() {
		m.WriteFrames(batch)
	}
}
