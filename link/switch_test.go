package link

import (
	"errors"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

func TestSwitchLearnsAndFloods(t *testing.T) {
	sw := NewSwitch(1500)
	pa, pb, pc := sw.Port(macA), sw.Port(macB), sw.Port(macC)
	defer pa.Close()
	defer pb.Close()
	defer pc.Close()
	ca, cb, cc := newCollector(), newCollector(), newCollector()
	pa.Attach(ca)
	pb.Attach(cb)
	pc.Attach(cc)

	// 1. Broadcast from A: B and C get it; A is learned.
	pa.WriteFrames([][]byte{frame(wire.BroadcastMAC, macA, 1, 64)})
	cb.wait(t, 1)
	cc.wait(t, 1)
	if sw.Flooded.Load() != 1 || sw.Learned.Load() != 1 {
		t.Fatalf("flooded %d learned %d", sw.Flooded.Load(), sw.Learned.Load())
	}
	// 2. B to A (known): only A; B is learned.
	pb.WriteFrames([][]byte{frame(macA, macB, 2, 64)})
	ca.wait(t, 1)
	// 3. A to B (known now): only B.
	pa.WriteFrames([][]byte{frame(macB, macA, 3, 64)})
	cb.wait(t, 1)
	// 4. A to an unknown MAC: flooded to B and C. Queues are FIFO, so when
	// C has this one, it would have had 2 or 3 before it if they leaked.
	unknown := wire.MAC{2, 0, 0, 0, 0, 0xee}
	pa.WriteFrames([][]byte{frame(unknown, macA, 4, 64)})
	cb.wait(t, 1)
	cc.wait(t, 1)
	// 5. Multicast from C: flooded.
	pc.WriteFrames([][]byte{frame(wire.MAC{1, 0, 0x5e, 0, 0, 1}, macC, 5, 64)})
	ca.wait(t, 1)
	cb.wait(t, 1)

	seqs := func(c *collector) []uint32 {
		var s []uint32
		for _, f := range c.got() {
			s = append(s, seqOf(f))
		}
		return s
	}
	want := map[*collector][]uint32{ca: {2, 5}, cb: {1, 3, 4, 5}, cc: {1, 4}}
	for c, w := range want {
		g := seqs(c)
		if len(g) != len(w) {
			t.Fatalf("got %v want %v", g, w)
		}
		for i := range g {
			if g[i] != w[i] {
				t.Fatalf("got %v want %v", g, w)
			}
		}
	}
	if sw.Flooded.Load() != 3 || sw.Learned.Load() != 3 {
		t.Fatalf("flooded %d learned %d, want 3 3", sw.Flooded.Load(), sw.Learned.Load())
	}
	if s := pa.Stats().Snapshot(); s.TxFrames != 3 || s.RxFrames != 2 {
		t.Fatalf("port A stats %+v", s)
	}
}

func TestSwitchRuntFrameDropped(t *testing.T) {
	sw := NewSwitch(1500)
	pa := sw.Port(macA)
	defer pa.Close()
	pa.WriteFrames([][]byte{{1, 2, 3}})
	if pa.Stats().TxDropped.Load() != 1 {
		t.Fatal("runt frame not counted")
	}
}

func TestSwitchQueueFullDropsCounted(t *testing.T) {
	sw := NewSwitch(1500)
	pa, pb := sw.Port(macA), sw.Port(macB)
	defer pa.Close()
	defer pb.Close()
	frames := make([][]byte, DefaultQueueLen+10)
	for i := range frames {
		frames[i] = frame(wire.BroadcastMAC, macA, uint32(i), 64)
	}
	pa.WriteFrames(frames) // B not attached: its queue fills
	if d := pb.Stats().RxDropped.Load(); d != 10 {
		t.Fatalf("RxDropped = %d, want 10", d)
	}
	// Unicast to a learned port whose queue is full reports ErrQueueFull.
	pb.WriteFrames([][]byte{frame(macA, macB, 0, 64)}) // learn B (A is not attached either)
	for range DefaultQueueLen - 1 {
		pb.WriteFrames([][]byte{frame(macA, macB, 0, 64)})
	}
	if _, err := pb.WriteFrames([][]byte{frame(macA, macB, 0, 64)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("unicast to a full port: %v", err)
	}
	// The refused frame is the sender's drop, reported as not taken.
	if pb.Stats().TxDropped.Load() != 1 {
		t.Fatalf("B TxDropped = %d", pb.Stats().TxDropped.Load())
	}
}

func TestSwitchClosedPort(t *testing.T) {
	sw := NewSwitch(1500)
	pa, pb, pc := sw.Port(macA), sw.Port(macB), sw.Port(macC)
	defer pa.Close()
	defer pc.Close()
	cc := newCollector()
	pc.Attach(cc)
	pb.Attach(newCollector())
	pb.WriteFrames([][]byte{frame(wire.BroadcastMAC, macB, 1, 64)}) // learn B
	cc.wait(t, 1)
	pb.Close()
	if _, err := pb.WriteFrames([][]byte{frame(macA, macB, 1, 64)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write on closed port: %v", err)
	}
	// B was forgotten: a frame to B is flooded again (to C), not lost.
	pa.WriteFrames([][]byte{frame(macB, macA, 2, 64)})
	cc.wait(t, 1)
	if sw.Flooded.Load() != 2 {
		t.Fatalf("Flooded = %d", sw.Flooded.Load())
	}
}
