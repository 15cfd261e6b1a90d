package link

import (
	"encoding/json"
	"errors"
	"os/exec"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// gateReceiver blocks the reading goroutine in its first delivery until
// released, so that frames pile up in the device meanwhile, and answers
// every frame with one of its own (seq | answerBit) written from inside
// the delivery, as TCP answers data with ACKs.
type gateReceiver struct {
	ep      Endpoint
	entered chan struct{}
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	seqs []uint32
	errs []error
	got  chan struct{}
}

const answerBit = 1 << 31

func (g *gateReceiver) DeliverFrames(frames [][]byte) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	for _, f := range frames {
		if len(f) < wire.EthernetHeaderLen+4 || wire.Ethernet(f).EtherType() != 0x88b5 {
			continue // the kernel's own frames, if any
		}
		eth, _ := wire.ParseEthernet(f)
		s := seqOf(f)
		ans := frame(eth.Src, g.ep.HardwareAddr(), s|answerBit, 200)
		_, err := g.ep.WriteFrames([][]byte{ans})
		g.mu.Lock()
		g.seqs = append(g.seqs, s)
		if err != nil {
			g.errs = append(g.errs, err)
		}
		g.mu.Unlock()
		g.got <- struct{}{}
	}
}

// qdiscSent is how many frames dev's root qdisc in ns handed to the
// device: for a TAP, the frames queued for the endpoint to read (the
// device's own TX counter counts them only once read).
func qdiscSent(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev, "root").Output()
	if err != nil {
		t.Fatalf("tc -s qdisc show dev %s: %v", dev, err)
	}
	var qs []struct {
		Packets uint64 `json:"packets"`
	}
	if err := json.Unmarshal(out, &qs); err != nil || len(qs) != 1 {
		t.Fatalf("tc -j qdisc show dev %s: %v %s", dev, err, out)
	}
	return qs[0].Packets
}

// TestTAPIOURingBatches: the answers written while frames piled up in a
// TAP are delivered leave in one io_uring call per batch, all in order;
// with NoIOURing, with Offload, or where io_uring_setup is refused,
// every frame costs a write of its own, and the same frames flow. Reads
// are one per frame in every case.
func TestTAPIOURingBatches(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name   string
		opts   TAPOptions
		refuse bool
		wbatch bool // answers batched
	}{
		{name: "iouring", wbatch: true},
		{name: "offload", opts: TAPOptions{Offload: true}},
		{name: "NoIOURing", opts: TAPOptions{NoIOURing: true}},
		{name: "setup-refused", refuse: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.refuse {
				uringSetupHook = func() error { return unix.EPERM }
				t.Cleanup(func() { uringSetupHook = nil })
			}
			ns, x := newNetns(t)
			opts := c.opts
			opts.Netns = ns
			opts.MAC = wire.MAC{0x02, 0x55, 0x52, 0, 0, x}
			tap, err := OpenTAP("sstu0", opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tap.Close() })
			used, why := tap.IOURing()
			switch {
			case c.refuse && (used || !errors.Is(why, unix.EPERM)):
				t.Fatalf("IOURing() = %v, %v with io_uring_setup refused", used, why)
			case c.opts.NoIOURing && (used || !errors.Is(why, errNoIOURing)):
				t.Fatalf("IOURing() = %v, %v with NoIOURing", used, why)
			case c.opts.Offload && (used || !errors.Is(why, errURingOffload)):
				t.Fatalf("IOURing() = %v, %v with Offload", used, why)
			case c.wbatch && !used:
				t.Fatalf("io_uring not used: %v", why)
			}
			run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.sstu0.disable_ipv6=1")
			run(t, "ip", "-n", ns, "link", "set", "sstu0", "up")
			waitUp(t, ns, "sstu0")
			peer, err := OpenAFPacket("sstu0", AFPacketOptions{Netns: ns})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { peer.Close() })
			answers := newCollector()
			peer.Attach(answers)
			g := &gateReceiver{ep: tap, entered: make(chan struct{}), release: make(chan struct{}), got: make(chan struct{}, 1024)}
			tap.Attach(g)
			released := false
			t.Cleanup(func() {
				if !released {
					close(g.release)
				}
			})

			const n = 96
			kmac := wire.MAC{0x02, 0x55, 0x52, 0, 1, x}
			tx0 := qdiscSent(t, ns, "sstu0")
			if _, err := peer.WriteFrames([][]byte{frame(opts.MAC, kmac, 0, 100)}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-g.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the first frame never reached the receiver")
			}
			frames := make([][]byte, n)
			for i := range frames {
				frames[i] = frame(opts.MAC, kmac, uint32(i+1), 100+i)
			}
			if k, err := peer.WriteFrames(frames); k != n || err != nil {
				t.Fatalf("peer wrote %d of %d: %v", k, n, err)
			}
			// All of them queued in the TAP before the reader goes on.
			deadline := time.Now().Add(10 * time.Second)
			for qdiscSent(t, ns, "sstu0")-tx0 < n+1 {
				if time.Now().After(deadline) {
					t.Fatalf("the kernel sent %d of %d frames into the TAP", qdiscSent(t, ns, "sstu0")-tx0, n+1)
				}
				time.Sleep(time.Millisecond) // polling the kernel's counter
			}
			r0, w0 := tap.ReadCalls(), tap.WriteCalls()
			released = true
			close(g.release)
			for i := 0; i < n; i++ {
				select {
				case <-g.got:
				case <-time.After(10 * time.Second):
					t.Fatalf("received %d of %d frames", i, n)
				}
			}
			<-g.got // the first one
			answers.wait(t, n+1)
			// The peer may read the last frames while the write that
			// carried them is still being accounted, under wmu.
			tap.wmu.Lock()
			tap.wmu.Unlock()
			reads, writes := tap.ReadCalls()-r0, tap.WriteCalls()-w0

			g.mu.Lock()
			defer g.mu.Unlock()
			for i, s := range g.seqs {
				if s != uint32(i) {
					t.Fatalf("frame %d delivered as seq %d: %v", i, s, g.seqs)
				}
			}
			if len(g.errs) > 0 {
				t.Fatalf("answers failed: %v", g.errs)
			}
			for i, f := range answers.got() {
				if seqOf(f) != uint32(i)|answerBit {
					t.Fatalf("answer %d arrived as %#x", i, seqOf(f))
				}
			}
			t.Logf("%d frames read in %d calls, %d answers written in %d calls", n, reads, n+1, writes)
			if reads < n {
				t.Errorf("%d read calls for %d frames, want one per frame", reads, n)
			}
			if c.wbatch {
				if writes > n/4 {
					t.Errorf("%d write calls for %d answers, want at most %d", writes, n+1, n/4)
				}
			} else if writes < n {
				t.Errorf("%d write calls for %d answers without batching, want one per frame", writes, n+1)
			}
			if s := tap.Stats().Snapshot(); s.TxFrames != n+1 || s.TxDropped != 0 || s.RxDropped != 0 {
				t.Errorf("stats %+v, want %d frames sent, none dropped", s, n+1)
			}
			if !c.wbatch {
				return
			}
			// A holder (TCP's flusher, through the stack) gets the same:
			// frames written one by one while it holds leave together
			// when it lets go, or when FlushHeld asks, and not before.
			const m = 20
			w0, f0 := tap.WriteCalls(), tap.Stats().TxFrames.Load()
			write := func(from, to int) {
				for i := from; i < to; i++ {
					if _, err := tap.WriteFrames([][]byte{frame(kmac, opts.MAC, uint32(1000+i), 120)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			tap.HoldWrites(true)
			write(0, m/2)
			if f := tap.Stats().TxFrames.Load() - f0; f != 0 {
				t.Fatalf("%d of %d frames left while held", f, m/2)
			}
			tap.FlushHeld()
			if f, w := tap.Stats().TxFrames.Load()-f0, tap.WriteCalls()-w0; f != m/2 || w != 1 {
				t.Fatalf("FlushHeld sent %d of %d held frames in %d calls, want all in 1", f, m/2, w)
			}
			write(m/2, m)
			if f := tap.Stats().TxFrames.Load() - f0; f != m/2 {
				t.Fatalf("%d of %d frames left while held after FlushHeld", f-m/2, m/2)
			}
			tap.HoldWrites(false)
			answers.wait(t, m)
			if w := tap.WriteCalls() - w0; w != 2 {
				t.Errorf("%d frames written one by one while held took %d calls, want 2", m, w)
			}
			for i, f := range answers.got()[n+1:] {
				if seqOf(f) != uint32(1000+i) {
					t.Fatalf("held frame %d arrived as %d", i, seqOf(f))
				}
			}

			// A ring that fails in use (here: its fd made invalid in the
			// middle of a call, after it took the call's first two
			// frames) is given up: the frames it did not write go one
			// write(2) each, none twice, and so do later calls; IOURing
			// says so.
			ringFD, enters := -1, 0
			uringEnterHook = func(r *uring, want int) int {
				enters++
				if enters == 1 {
					return min(want, 2)
				}
				ringFD, r.fd = r.fd, -1
				return want
			}
			defer func() {
				uringEnterHook = nil
				if ringFD >= 0 {
					unix.Close(ringFD)
				}
			}()
			batch := make([][]byte, 5)
			for i := range batch {
				batch[i] = frame(kmac, opts.MAC, uint32(2000+i), 120)
			}
			before := len(answers.got())
			for round := range 2 {
				w0 := tap.WriteCalls()
				if k, err := tap.WriteFrames(batch); k != len(batch) || err != nil {
					t.Fatalf("round %d: wrote %d of %d after the ring failed: %v", round, k, len(batch), err)
				}
				answers.wait(t, len(batch))
				// The failed call counts once for the ring's two frames,
				// then one per frame.
				want := uint64(len(batch))
				if round == 0 {
					want = 1 + uint64(len(batch)-2)
				}
				if w := tap.WriteCalls() - w0; w != want {
					t.Errorf("round %d: %d write calls for %d frames, want %d", round, w, len(batch), want)
				}
			}
			if enters != 2 {
				t.Fatalf("the ring was entered %d times, want 2 (then given up)", enters)
			}
			got := answers.got()
			if len(got)-before != 2*len(batch) {
				t.Fatalf("%d frames arrived for %d written after the ring failed", len(got)-before, 2*len(batch))
			}
			for i, f := range got[before:] {
				if want := uint32(2000 + i%len(batch)); seqOf(f) != want {
					t.Fatalf("frame %d after the ring failed arrived as %d, want %d", i, seqOf(f), want)
				}
			}
			if used, why := tap.IOURing(); used || !errors.Is(why, errURingFailed) {
				t.Fatalf("IOURing() = %v, %v after the ring failed", used, why)
			}
		})
	}
}

// BenchmarkTAPWrite writes 1514-byte frames into a plain TAP, 32 per
// WriteFrames call, with one write(2) per frame (each) and one
// io_uring_enter per call (iouring); the kernel drops them early (they
// are addressed to another host). ns/op is per frame. Needs root.
func BenchmarkTAPWrite(b *testing.B) {
	for _, c := range []struct {
		name string
		off  bool
	}{{"each", true}, {"iouring", false}} {
		b.Run(c.name, func(b *testing.B) {
			needRoot(b)
			ns, x := newNetns(b)
			tap, err := OpenTAP("sstb0", TAPOptions{Netns: ns, MAC: wire.MAC{0x02, 0x42, 0, 0, 0, x}, NoIOURing: c.off})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { tap.Close() })
			run(b, "ip", "-n", ns, "link", "set", "sstb0", "up")
			frames := make([][]byte, 32)
			for i := range frames {
				frames[i] = frame(wire.MAC{0x02, 0x42, 0, 0, 1, x}, tap.HardwareAddr(), uint32(i), 1514)
			}
			b.SetBytes(1514)
			b.ResetTimer()
			for done := 0; done < b.N; done += len(frames) {
				k := min(len(frames), b.N-done)
				if _, err := tap.WriteFrames(frames[:k]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s := tap.Stats().Snapshot(); s.TxFrames != uint64(b.N) {
				b.Fatalf("%d of %d frames written", s.TxFrames, b.N)
			}
		})
	}
}
