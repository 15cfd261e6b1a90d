package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

type canRec struct {
	frames []wire.CANFrame
	local  []bool
	origin []any
}

func (r *canRec) ReceiveCAN(_ *CANIf, f *wire.CANFrame, local bool, origin any) {
	r.frames = append(r.frames, *f)
	r.local = append(r.local, local)
	r.origin = append(r.origin, origin)
}

func (r *canRec) ids() []uint32 {
	var out []uint32
	for _, f := range r.frames {
		out = append(out, f.ID)
	}
	return out
}

func eqIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCANBusDeliveryAndEcho(t *testing.T) {
	bus := NewCANBus("b", CANBusOptions{})
	a, b, c := bus.Attach("a"), bus.Attach("b"), bus.Attach("c")
	var ra, rb, rc canRec
	a.AddReceiver(&ra)
	b.AddReceiver(&rb)
	c.AddReceiver(&rc)
	tok := new(int)
	f := wire.CANFrame{ID: 0x123, Len: 2, Data: [64]byte{1, 2}}
	if err := a.Send(&f, tok, true); err != nil {
		t.Fatal(err)
	}
	if len(rb.frames) != 1 || len(rc.frames) != 1 || rb.local[0] || rb.frames[0] != f {
		t.Fatalf("others got %+v %+v", rb, rc)
	}
	if len(ra.frames) != 1 || !ra.local[0] || ra.origin[0] != tok {
		t.Fatalf("echo: %+v", ra)
	}
	// Without loopback the sender's node hears nothing.
	if err := a.Send(&f, tok, false); err != nil {
		t.Fatal(err)
	}
	if len(ra.frames) != 1 || len(rb.frames) != 2 {
		t.Fatalf("no-loop: a %d b %d", len(ra.frames), len(rb.frames))
	}
	if a.TxFrames.Load() != 2 || b.RxFrames.Load() != 2 || bus.Frames.Load() != 2 {
		t.Fatal("counters")
	}
	b.SetDown(true)
	if err := b.Send(&f, nil, true); !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("down: %v", err)
	}
}

// sendOnRx makes each node in nodes send its frame when the trigger
// arrives, so several frames are pending at once.
type sendOnRx struct {
	nodes  []*CANIf
	frames []wire.CANFrame
	done   bool
}

func (s *sendOnRx) ReceiveCAN(_ *CANIf, f *wire.CANFrame, _ bool, _ any) {
	if s.done || f.ID != 0x7FF {
		return
	}
	s.done = true
	for i, n := range s.nodes {
		_ = n.Send(&s.frames[i], nil, true)
	}
}

func TestCANBusArbitrationInstant(t *testing.T) {
	bus := NewCANBus("b", CANBusOptions{})
	var nodes []*CANIf
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		nodes = append(nodes, bus.Attach(n))
	}
	var rec canRec
	nodes[0].AddReceiver(&rec)
	trig := &sendOnRx{nodes: nodes[1:], frames: []wire.CANFrame{
		{ID: 0x300}, {ID: 0x100 | wire.CANRtrFlag}, {ID: 0x100<<18 | wire.CANEffFlag}, {ID: 0x100},
	}}
	nodes[1].AddReceiver(trig)
	_ = nodes[4].Send(&wire.CANFrame{ID: 0x7FF}, nil, false)
	want := []uint32{0x7FF, 0x100, 0x100 | wire.CANRtrFlag, 0x100<<18 | wire.CANEffFlag, 0x300}
	if !eqIDs(rec.ids(), want) {
		t.Fatalf("order %x, want %x", rec.ids(), want)
	}
}

func TestCANBusArbitrationTimed(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	bus := NewCANBus("b", CANBusOptions{Clock: clk, Bitrate: 500000})
	a, b, c, d := bus.Attach("a"), bus.Attach("b"), bus.Attach("c"), bus.Attach("d")
	var rec canRec
	d.AddReceiver(&rec)
	_ = a.Send(&wire.CANFrame{ID: 0x300}, nil, false) // takes the idle bus
	_ = b.Send(&wire.CANFrame{ID: 0x200}, nil, false)
	_ = c.Send(&wire.CANFrame{ID: 0x100}, nil, false)
	_ = a.Send(&wire.CANFrame{ID: 0x050}, nil, false) // behind 0x300 in a's FIFO
	if len(rec.frames) != 0 {
		t.Fatal("delivered before its bits were sent")
	}
	clk.Advance(time.Second)
	// 0x300 was on the bus already; then a's next (0x050), 0x100, 0x200.
	want := []uint32{0x300, 0x050, 0x100, 0x200}
	if !eqIDs(rec.ids(), want) {
		t.Fatalf("order %x, want %x", rec.ids(), want)
	}
}

func TestCANBusLoadMatchesFrameTime(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	bus := NewCANBus("b", CANBusOptions{Clock: clk, Bitrate: 500000})
	a, b := bus.Attach("a"), bus.Attach("b")
	var rec canRec
	b.AddReceiver(&rec)
	// Id 0, no data: 34 zero bits up to the CRC, 6 stuff bits, 13 fixed
	// bits = 53 bits, 106 µs at 500 kbit/s.
	analytic := 53 * time.Second / 500000
	var f wire.CANFrame
	if got := bus.FrameTime(&f); got != analytic {
		t.Fatalf("frame time %v, want %v", got, analytic)
	}
	const n = 50
	for range n {
		if err := a.Send(&f, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	// Frames go back to back: after n frame times all arrived, and the
	// bus was busy all the time.
	clk.Advance(n*analytic - time.Nanosecond)
	if len(rec.frames) != n-1 {
		t.Fatalf("%d frames before the last one's end", len(rec.frames))
	}
	clk.Advance(time.Nanosecond)
	if len(rec.frames) != n {
		t.Fatalf("%d frames", len(rec.frames))
	}
	if l := bus.Load(); math.Abs(l-1) > 0.01 {
		t.Fatalf("load %.4f, want 1", l)
	}
	// Over twice the time the load halves.
	clk.Advance(n * analytic)
	if l := bus.Load(); math.Abs(l-0.5) > 0.005 {
		t.Fatalf("load %.4f, want 0.5", l)
	}
	// An 8-byte frame: its bits lie between the unstuffed count (111) and
	// the worst case, and busy time follows them exactly.
	bus.ResetLoad()
	g := wire.CANFrame{ID: 0x555, Len: 8, Data: [64]byte{0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}}
	nom, _ := wire.CANFrameBits(&g)
	if nom < 111 || nom > 111+24 {
		t.Fatalf("8-byte frame %d bits", nom)
	}
	for range 10 {
		_ = a.Send(&g, nil, false)
	}
	clk.Advance(time.Second)
	want := 10 * time.Duration(nom) * 2 * time.Microsecond
	if got := bus.Busy(); math.Abs(float64(got-want)) > 0.01*float64(want) {
		t.Fatalf("busy %v want %v", got, want)
	}
}

func TestCANBusQueueFull(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	bus := NewCANBus("b", CANBusOptions{Clock: clk, Bitrate: 125000, TxQueueLen: 4})
	a := bus.Attach("a")
	bus.Attach("b")
	var err error
	sent := 0
	for range 10 {
		if err = a.Send(&wire.CANFrame{ID: 1}, nil, false); err != nil {
			break
		}
		sent++
	}
	if !errors.Is(err, syscall.ENOBUFS) || sent != 4 || a.TxDropped.Load() != 1 {
		t.Fatalf("sent %d err %v dropped %d", sent, err, a.TxDropped.Load())
	}
	clk.Advance(time.Second)
	if a.TxFrames.Load() != 4 {
		t.Fatalf("tx %d", a.TxFrames.Load())
	}
}

func TestCANBusErrorsAndBusOff(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	bus := NewCANBus("b", CANBusOptions{Clock: clk, Bitrate: 500000, ErrorRate: 1, RestartDelay: 100 * time.Millisecond})
	a, b := bus.Attach("a"), bus.Attach("b")
	var ra, rb canRec
	a.AddReceiver(&ra)
	b.AddReceiver(&rb)
	_ = a.Send(&wire.CANFrame{ID: 0x10}, nil, false)
	_ = a.Send(&wire.CANFrame{ID: 0x11}, nil, false)
	clk.Advance(50 * time.Millisecond)
	// Every attempt fails: +8 each, bus-off after the 32nd (TEC 256).
	if a.State() != CANStateBusOff || a.BusErrors.Load() != 32 || a.BusOffs.Load() != 1 || a.TxFlushed.Load() != 2 {
		t.Fatalf("state %s errors %d busoffs %d flushed %d", a.State(), a.BusErrors.Load(), a.BusOffs.Load(), a.TxFlushed.Load())
	}
	if err := a.Send(&wire.CANFrame{ID: 1}, nil, false); !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("send while bus-off: %v", err)
	}
	_, rec := b.ErrorCounters()
	if rec != 32 || b.State() != CANStateActive {
		t.Fatalf("receiver rec %d state %s", rec, b.State())
	}
	var sawWarn, sawPassive, sawOff bool
	for _, f := range ra.frames {
		if !f.IsErr() {
			t.Fatalf("data frame delivered: %+v", f)
		}
		sawWarn = sawWarn || f.Data[1]&wire.CANErrCrtlTxWarning != 0
		sawPassive = sawPassive || f.Data[1]&wire.CANErrCrtlTxPassive != 0
		sawOff = sawOff || f.ID&wire.CANErrBusOff != 0
	}
	if !sawWarn || !sawPassive || !sawOff || len(rb.frames) != 32 {
		t.Fatalf("error frames: warn %v passive %v off %v; b got %d", sawWarn, sawPassive, sawOff, len(rb.frames))
	}
	clk.Advance(100 * time.Millisecond)
	if a.State() != CANStateActive {
		t.Fatalf("not restarted: %s", a.State())
	}
	last := ra.frames[len(ra.frames)-1]
	if last.ID != wire.CANErrFlag|wire.CANErrRestarted {
		t.Fatalf("last error frame %#x", last.ID)
	}
}

func TestCANBusSeededErrorsRepeat(t *testing.T) {
	run := func(seed uint64) (uint64, uint64) {
		bus := NewCANBus("b", CANBusOptions{ErrorRate: 0.2, Seed: seed})
		a := bus.Attach("a")
		bus.Attach("b")
		for i := range 200 {
			_ = a.Send(&wire.CANFrame{ID: uint32(i & 0x7FF)}, nil, false)
		}
		return bus.ErrorFrames.Load(), bus.Frames.Load()
	}
	e1, f1 := run(7)
	e2, f2 := run(7)
	if e1 != e2 || f1 != f2 || e1 == 0 || f1 != 200 {
		t.Fatalf("seed 7: %d/%d vs %d/%d", e1, f1, e2, f2)
	}
}

func TestCANPcap(t *testing.T) {
	var buf bytes.Buffer
	bus := NewCANBus("b", CANBusOptions{Clock: clock.NewManual(time.Unix(5, 0))})
	a := bus.Attach("a")
	p, err := NewCANPcap(bus, &buf)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Send(&wire.CANFrame{ID: 0x123, Len: 1, Data: [64]byte{9}}, nil, false)
	_ = a.Send(&wire.CANFrame{ID: 0x456, Len: 12, Flags: wire.CANFDFDF}, nil, false)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if binary.LittleEndian.Uint32(b[20:]) != 227 {
		t.Fatal("link type")
	}
	b = b[24:]
	var sizes []int
	var ids []uint32
	for len(b) >= 16 {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		var f wire.CANFrame
		if err := wire.ParseSocketCANPcap(b[16:16+n], &f); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		ids = append(ids, f.ID)
		b = b[16+n:]
	}
	if len(sizes) != 2 || sizes[0] != 16 || sizes[1] != 72 || ids[0] != 0x123 || ids[1] != 0x456 {
		t.Fatalf("records %v %x", sizes, ids)
	}
}

type nopRx struct{ n int }

func (r *nopRx) ReceiveCAN(*CANIf, *wire.CANFrame, bool, any) { r.n++ }

func benchBus(b *testing.B, nodes int) {
	bus := NewCANBus("b", CANBusOptions{})
	var ifs []*CANIf
	for i := range nodes {
		n := bus.Attach("n")
		n.AddReceiver(&nopRx{})
		_ = i
		ifs = append(ifs, n)
	}
	f := wire.CANFrame{ID: 0x123, Len: 8}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ifs[i%nodes].Send(&f, nil, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkCANBus2(b *testing.B)  { benchBus(b, 2) }
func BenchmarkCANBus8(b *testing.B)  { benchBus(b, 8) }
func BenchmarkCANBus32(b *testing.B) { benchBus(b, 32) }
