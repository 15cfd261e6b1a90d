package link

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// AF_PACKET rings and fanout, against a plain AF_PACKET socket on the
// other end of a veth pair in a namespace of the test's own.

// vethNS makes a namespace with a veth pair va-vb, both up, without IPv6
// (no stray router solicitations); it returns the namespace and vb's MAC.
func vethNS(t testing.TB) (string, wire.MAC) {
	t.Helper()
	needRoot(t)
	ns, _ := newNetns(t)
	run(t, "ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	for _, dev := range []string{"va", "vb"} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf."+dev+".disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", dev, "up")
	}
	waitUp(t, ns, "va")
	waitUp(t, ns, "vb")
	var mac wire.MAC
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("vb")
		if err == nil {
			mac = wire.MAC(ifi.HardwareAddr)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ns, mac
}

// openOnVeth opens the endpoint under test with opts on "vb", one end of
// a fresh veth pair (vethNS), closed when the test ends; it returns the
// namespace and the other end's MAC as vethNS does.
func openOnVeth(t testing.TB, opts AFPacketOptions) (*AFPacket, string, wire.MAC) {
	t.Helper()
	ns, mac := vethNS(t)
	opts.Netns = ns
	ep, err := OpenAFPacket("vb", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep, ns, mac
}

// openPeer opens the plain AF_PACKET socket on va with a receive buffer
// large enough for the tests' bursts.
func openPeer(t testing.TB, ns string, offload bool) *AFPacket {
	t.Helper()
	p, err := OpenAFPacket("va", AFPacketOptions{Netns: ns, Offload: offload})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	})
	return p
}

// ringVersions are the receive rings' kinds the ring tests run on
// (AFPacketOptions.RingVersion), by subtest name.
var ringVersions = []struct {
	name string
	v    int
}{{"v3", 3}, {"v2", 2}}

// forRings runs f as a subtest on each kind of ring.
func forRings(t *testing.T, f func(t *testing.T, v int)) {
	for _, rv := range ringVersions {
		t.Run(rv.name, func(t *testing.T) { f(t, rv.v) })
	}
}

// setRingIdle sets the ring's idle hook (whichever kind it is).
func setRingIdle(ep *AFPacket, f func()) {
	if ep.ring != nil {
		ep.ring.idle = f
	} else {
		ep.ring2.idle = f
	}
}

// ringHeld is how many blocks (slots) lent frames hold now.
func ringHeld(ep *AFPacket) int {
	if ep.ring != nil {
		return int(ep.ring.held.Load())
	}
	ep.ring2.mu.Lock()
	defer ep.ring2.mu.Unlock()
	return int(ep.ring2.held.Load())
}

// loanStatus is the tp_status of the block (slot) a loan holds.
func loanStatus(l Loan) uint32 {
	switch b := l.(type) {
	case *ringBlk:
		return atomic.LoadUint32(u32at(b.mem, bdStatus))
	case *ring2Slot:
		return atomic.LoadUint32(u32at(b.mem, 0))
	}
	panic("not a ring's loan")
}

// metaCollector keeps copies of frames and their offload state.
type metaCollector struct {
	mu     sync.Mutex
	frames [][]byte
	metas  []Meta
	ch     chan struct{}
}

func newMetaCollector() *metaCollector { return &metaCollector{ch: make(chan struct{}, 1<<16)} }

func (c *metaCollector) DeliverFrames(frames [][]byte) {
	c.DeliverFramesMeta(frames, make([]Meta, len(frames)))
}

func (c *metaCollector) DeliverFramesMeta(frames [][]byte, metas []Meta) {
	c.mu.Lock()
	for i, f := range frames {
		if len(f) < 14 || (f[12] != 0x88 && f[12] != 0x08) {
			continue // neither the tests' EtherType nor IPv4
		}
		c.frames = append(c.frames, append([]byte(nil), f...))
		c.metas = append(c.metas, metas[i])
		c.ch <- struct{}{}
	}
	c.mu.Unlock()
}

func (c *metaCollector) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("%d of %d frames arrived", i, n)
		}
	}
}

// TestAFPacketRingRoundTrip: frames cross the receive ring (V3, V2)
// and the transmit ring in order and intact, bursts longer than the
// transmit ring included (its slots are reused).
func TestAFPacketRingRoundTrip(t *testing.T) { forRings(t, testRingRoundTrip) }

func testRingRoundTrip(t *testing.T, v int) {
	ringRoundTrip(t, AFPacketOptions{Ring: true, RingVersion: v, QdiscBypass: true})
}

// TestAFPacketRingNoTx: with RingNoTx the receive ring (either kind)
// reads and sendmmsg sends, no transmit ring; the round trip and the
// super-segments as with both rings.
func TestAFPacketRingNoTx(t *testing.T) {
	forRings(t, func(t *testing.T, v int) {
		t.Run("frames", func(t *testing.T) {
			ringRoundTrip(t, AFPacketOptions{Ring: true, RingVersion: v, RingNoTx: true, QdiscBypass: true})
		})
		t.Run("offload", func(t *testing.T) {
			ringOffload(t, AFPacketOptions{Ring: true, RingVersion: v, RingNoTx: true, Offload: true})
		})
	})
}

// ringRoundTrip is TestAFPacketRingRoundTrip with opts.
func ringRoundTrip(t *testing.T, opts AFPacketOptions) {
	ep, ns, mac := openOnVeth(t, opts)
	if (ep.tx == nil) != opts.RingNoTx || ep.ring == nil && ep.ring2 == nil {
		t.Fatalf("rings: receive V3 %v, V2 %v, transmit %v", ep.ring != nil, ep.ring2 != nil, ep.tx != nil)
	}
	peer := openPeer(t, ns, false)
	got, peerGot := newMetaCollector(), newMetaCollector()
	ep.Attach(got)
	peer.Attach(peerGot)

	const n = 500
	var sent [][]byte
	for i := range n {
		sent = append(sent, frame(mac, macA, uint32(i), 60+i%1400))
	}
	for i := 0; i < n; i += 50 {
		if k, err := peer.WriteFrames(sent[i : i+50]); k != 50 || err != nil {
			t.Fatalf("peer wrote %d: %v", k, err)
		}
	}
	got.wait(t, n)
	for i, f := range got.frames {
		if !bytes.Equal(f, sent[i]) {
			t.Fatalf("received frame %d (seq %d, %d bytes) differs from the one sent", i, seqOf(f), len(f))
		}
	}

	var out [][]byte
	for i := range n {
		out = append(out, frame(macA, mac, uint32(i), 60+(i*7)%1400))
	}
	if k, err := ep.WriteFrames(out); k != n || err != nil {
		t.Fatalf("wrote %d of %d: %v", k, n, err)
	}
	peerGot.wait(t, n)
	for i, f := range peerGot.frames {
		if !bytes.Equal(f, out[i]) {
			t.Fatalf("peer's frame %d (seq %d) differs from the one sent", i, seqOf(f))
		}
	}
	s := ep.Stats().Snapshot()
	if s.RxFrames != n || s.TxFrames != n || s.TxDropped != 0 || s.RxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	if d := ep.KernelDrops(); d != 0 {
		t.Errorf("%d ring drops", d)
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ep.WriteFrames(out[:1]); err != ErrClosed {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestAFPacketRingOffload: with PACKET_VNET_HDR a TCP super-segment
// crosses both rings whole, its offload state with it.
func TestAFPacketRingOffload(t *testing.T) { forRings(t, testRingOffload) }

func testRingOffload(t *testing.T, v int) {
	ringOffload(t, AFPacketOptions{Ring: true, RingVersion: v, Offload: true})
}

// ringOffload is TestAFPacketRingOffload with opts.
func ringOffload(t *testing.T, opts AFPacketOptions) {
	ep, ns, mac := openOnVeth(t, opts)
	peer := openPeer(t, ns, true)
	got, peerGot := newMetaCollector(), newMetaCollector()
	ep.Attach(got)
	peer.Attach(peerGot)
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	f := superFrame(40 * 1448)
	copy(f[0:6], mac[:])
	if k, err := peer.WriteFramesMeta([][]byte{f}, []Meta{m}); k != 1 || err != nil {
		t.Fatalf("peer wrote %d: %v", k, err)
	}
	got.wait(t, 1)
	if !bytes.Equal(got.frames[0], f) || got.metas[0].GSOType != GSOTCPv4 || got.metas[0].GSOSize != 1448 {
		t.Fatalf("ring received %d bytes (sent %d), meta %+v", len(got.frames[0]), len(f), got.metas[0])
	}
	g := superFrame(30 * 1448)
	copy(g[0:6], macA[:])
	copy(g[6:12], mac[:])
	if k, err := ep.WriteFramesMeta([][]byte{g}, []Meta{m}); k != 1 || err != nil {
		t.Fatalf("ring wrote %d: %v", k, err)
	}
	peerGot.wait(t, 1)
	if !bytes.Equal(peerGot.frames[0], g) || peerGot.metas[0].GSOSize != 1448 {
		t.Fatalf("peer received %d bytes (sent %d), meta %+v", len(peerGot.frames[0]), len(g), peerGot.metas[0])
	}
}

// TestAFPacketFullCounted: with nobody reading, a small ring (or,
// without a ring, a small socket buffer) fills; the kernel's drops are
// counted (KernelDrops, RxDropped), and what it held is delivered once
// reading starts: held + dropped = sent.
func TestAFPacketFullCounted(t *testing.T) {
	for _, m := range []struct {
		name    string
		ring    bool
		version int
	}{{"ring", true, 3}, {"ring_v2", true, 2}, {"socket_buffer", false, 0}} {
		name, ring := m.name, m.ring
		t.Run(name, func(t *testing.T) {
			// 32 KiB of ring: two V3 blocks, or eight V2 slots of a page.
			ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: ring, RingVersion: m.version,
				RingBlockSize: 16 << 10, RingBlocks: 2, RingFrames: 8})
			if !ring {
				ep.rc.Control(func(fd uintptr) {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<10)
				})
			}
			peer := openPeer(t, ns, false)
			const n = 400
			var sent [][]byte
			for i := range n {
				sent = append(sent, frame(mac, macA, uint32(i), 1000))
			}
			if k, err := peer.WriteFrames(sent); k != n || err != nil {
				t.Fatalf("peer wrote %d: %v", k, err)
			}
			got := newMetaCollector()
			ep.Attach(got)
			deadline := time.After(20 * time.Second)
			for delivered := 0; delivered+int(ep.KernelDrops()) < n; {
				select {
				case <-got.ch:
					delivered++
				case <-time.After(50 * time.Millisecond): // look at the drop count again
				case <-deadline:
					t.Fatalf("delivered %d, dropped %d, sent %d", delivered, ep.KernelDrops(), n)
				}
			}
			drops := ep.KernelDrops()
			if drops == 0 || drops >= n {
				t.Fatalf("%d of %d dropped at a 32 KiB %s", drops, n, name)
			}
			if rx := ep.Stats().RxDropped.Load(); rx != drops {
				t.Errorf("RxDropped %d, kernel drops %d", rx, drops)
			}
			// What arrived is in order.
			for i := 1; i < len(got.frames); i++ {
				if seqOf(got.frames[i]) <= seqOf(got.frames[i-1]) {
					t.Fatalf("frame %d: seq %d after %d", i, seqOf(got.frames[i]), seqOf(got.frames[i-1]))
				}
			}
			t.Logf("%s held %d, dropped %d", name, len(got.frames), drops)
		})
	}
}

// TestAFPacketFanout: 2 sockets in a fanout group (with and without
// rings); 16 flows sent into the interface land on both sockets, each
// flow on one socket, in order.
func TestAFPacketFanout(t *testing.T) {
	for _, m := range []struct {
		name    string
		ring    bool
		version int
	}{{"recvmmsg", false, 0}, {"ring", true, 3}, {"ring_v2", true, 2}} {
		t.Run(m.name, func(t *testing.T) {
			ep, ns, mac := openOnVeth(t, AFPacketOptions{Queues: 2, Ring: m.ring, RingVersion: m.version})
			if g, ok := ep.FanoutGroup(); ep.Queues() != 2 || !ok {
				t.Fatalf("%d queues, group %d %v", ep.Queues(), g, ok)
			}
			for _, q := range ep.queues {
				// Without a ring the socket buffer bounds a burst.
				q.rc.Control(func(fd uintptr) {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
				})
			}
			peer := openPeer(t, ns, false)
			sink := newUDPSink(KindEthernet)
			ep.Attach(sink)
			const flows, per = 16, 30
			var batch [][]byte
			for seq := range per {
				for fl := range flows {
					f := flowFrame(fl, uint32(seq))
					copy(f[0:6], mac[:])
					batch = append(batch, f)
				}
			}
			for i := 0; i < len(batch); i += 32 {
				end := min(i+32, len(batch))
				if k, err := peer.WriteFrames(batch[i:end]); k != end-i || err != nil {
					t.Fatalf("peer wrote %d: %v", k, err)
				}
			}
			sink.check(t, flows*per)
			sink.verify(t, flows, 2)
			for i := range 2 {
				if q := ep.QueueStats(i); q.RxFrames == 0 {
					t.Errorf("socket %d received nothing", i)
				}
			}
			// Transmission spreads by flow too, every frame counted once.
			if k, err := ep.WriteFrames(batch); k != len(batch) || err != nil {
				t.Fatalf("wrote %d of %d: %v", k, len(batch), err)
			}
			t0, t1 := ep.QueueStats(0).TxFrames, ep.QueueStats(1).TxFrames
			if t0 == 0 || t1 == 0 || t0+t1 != uint64(len(batch)) {
				t.Errorf("sent %d and %d, want %d over both", t0, t1, len(batch))
			}
		})
	}
}

// ringKeeper asks to keep every test frame delivered (Lender) and keeps
// what it is lent; a copy of each frame as delivered too.
type ringKeeper struct {
	l      Lender
	mu     sync.Mutex
	copies [][]byte // every frame, as delivered
	views  [][]byte // the frame where it lies, if lent (else nil)
	loans  []Loan   // its loan, if lent (else nil)
	ch     chan struct{}
	ep     *AFPacket   // for its counters when frames do not come
	noLend atomic.Bool // copy everything
	// delivered counts the frames delivered; idle gets that count each
	// time the ring's reader has caught up and waits.
	delivered atomic.Int64
	idle      chan int64
}

// newRingKeeper attaches a keeper to the ring endpoint ep.
func newRingKeeper(ep *AFPacket) *ringKeeper {
	k := &ringKeeper{ch: make(chan struct{}, 1<<16), ep: ep, idle: make(chan int64, 1)}
	setRingIdle(ep, func() {
		n := k.delivered.Load()
		select {
		case k.idle <- n:
		default:
			select { // replace a stale count
			case <-k.idle:
			default:
			}
			select {
			case k.idle <- n:
			default:
			}
		}
	})
	ep.Attach(k)
	return k
}

func (k *ringKeeper) SetLender(l Lender) { k.l = l }

func (k *ringKeeper) DeliverFrames(frames [][]byte) {
	k.mu.Lock()
	for _, f := range frames {
		if len(f) < 18 || f[12] != 0x88 {
			continue // not a test frame
		}
		k.copies = append(k.copies, append([]byte(nil), f...))
		var loan Loan
		if !k.noLend.Load() {
			loan = k.l.Lend(f)
		}
		if loan != nil {
			k.views = append(k.views, f)
		} else {
			k.views = append(k.views, nil)
		}
		k.loans = append(k.loans, loan)
		k.delivered.Add(1)
		k.ch <- struct{}{}
	}
	k.mu.Unlock()
}

func (k *ringKeeper) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-k.ch:
		case <-deadline:
			t.Fatalf("%d of %d frames arrived; kernel drops %d, %+v", i, n, k.ep.KernelDrops(), k.ep.RingStats())
		}
	}
}

// caughtUp waits until the ring's reader has caught up with everything
// delivered so far.
func (k *ringKeeper) caughtUp(t *testing.T) {
	t.Helper()
	want := k.delivered.Load()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case n := <-k.idle:
			if n >= want {
				return
			}
		case <-deadline:
			t.Fatalf("the ring's reader did not catch up")
		}
	}
}

// sendBursts has peer send bursts of per frames (sequence numbers from
// seq0 on), each once the last was delivered and the ring's reader has
// caught up, so the ring never overflows for want of reading and the
// kernel is never more than per blocks (a frame a block at worst, when
// the block timer fires between frames) ahead of the reader's last look
// for held blocks in its way (evictAhead is 2 or more, so per is 3 at
// most): any loss is the ring's own.
func sendBursts(t *testing.T, peer *AFPacket, k *ringKeeper, dst wire.MAC, seq0, bursts, per, size int) (sent [][]byte) {
	t.Helper()
	for b := range bursts {
		var burst [][]byte
		for i := range per {
			burst = append(burst, frame(dst, macA, uint32(seq0+b*per+i), size))
		}
		if n, err := peer.WriteFrames(burst); n != per || err != nil {
			t.Fatalf("peer wrote %d: %v", n, err)
		}
		k.wait(t, per)
		k.caughtUp(t)
		sent = append(sent, burst...)
	}
	return sent
}

// smallRing opens a ring endpoint on vb: with version 3 of blocks
// blocks of 16 KiB (about 14 frames of 1000 bytes a block), with
// version 2 of 2*blocks slots of a page (a frame each); half of them
// held at most.
func smallRing(t *testing.T, ns string, v, blocks int) *AFPacket {
	t.Helper()
	ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Ring: true, RingVersion: v,
		RingBlockSize: 16 << 10, RingBlocks: blocks, RingFrames: 2 * blocks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// TestAFPacketRingLendHeld: a receiver that keeps every frame it is lent
// and never lets go (an application that does not read) holds blocks of
// the ring; the ring keeps delivering over many laps, nothing lost: past
// half the ring held, frames are copied instead (counted), and held
// blocks the kernel comes back to are moved out of its way, the lent
// frames intact. After Close they are still readable; released, the
// copies go.
func TestAFPacketRingLendHeld(t *testing.T) { forRings(t, testRingLendHeld) }

func testRingLendHeld(t *testing.T, v int) {
	ns, mac := vethNS(t)
	ep := smallRing(t, ns, v, 8)
	peer := openPeer(t, ns, false)
	k := newRingKeeper(ep)
	if k.l == nil {
		t.Fatal("the receiver was not told its lender")
	}
	const bursts, per = 64, 3 // a burst a block or more: 8 laps of the ring or more
	sent := sendBursts(t, peer, k, mac, 0, bursts, per, 1000)

	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.copies) != len(sent) {
		t.Fatalf("delivered %d of %d", len(k.copies), len(sent))
	}
	lent := 0
	for i, f := range k.copies {
		if !bytes.Equal(f, sent[i]) {
			t.Fatalf("frame %d delivered as seq %d, or changed", i, seqOf(f))
		}
		if k.views[i] != nil {
			lent++
		}
	}
	st := ep.RingStats()
	t.Logf("lent %d, copied %d, held at most %d of %d blocks, evicted %d", st.Lent, st.Copied, st.HeldMax, st.Blocks, st.Evicted)
	if d := ep.KernelDrops(); d != 0 {
		t.Errorf("the kernel dropped %d frames", d)
	}
	if s := ep.Stats().Snapshot(); s.RxDropped != 0 {
		t.Errorf("RxDropped %d", s.RxDropped)
	}
	if st.Lent != uint64(lent) || st.Lent+st.Copied != uint64(len(sent)) {
		t.Errorf("lent %d (receiver kept %d), copied %d, of %d", st.Lent, lent, st.Copied, len(sent))
	}
	// Half the ring, plus what one batch lent (a V3 block is one
	// batch, the V2 ring's batch is an eighth of its slots).
	most := st.Blocks / 2
	if v == 2 {
		most += st.Blocks / 8
	}
	if st.Copied == 0 || st.Evicted == 0 || st.HeldMax > most || st.EvictFailed != 0 {
		t.Errorf("want copies, evictions and at most %d held: %+v", most, st)
	}
	checkViews := func(when string) {
		t.Helper()
		for i, v := range k.views {
			if v != nil && !bytes.Equal(v, sent[i]) {
				t.Fatalf("%s: lent frame %d (seq %d) was overwritten", when, i, seqOf(sent[i]))
			}
		}
	}
	checkViews("after 8 laps")
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	checkViews("after Close")
	for _, l := range k.loans {
		if l != nil {
			l.Release()
		}
	}
}

// TestAFPacketRingLendOutOfOrder: lent frames released in an order of
// their own, from another goroutine while the ring goes on delivering
// (and copying, and evicting); a block goes back to the kernel when its
// last frame is released, whatever the blocks before it do, and no lent
// frame is overwritten while held.
func TestAFPacketRingLendOutOfOrder(t *testing.T) { forRings(t, testRingLendOutOfOrder) }

func testRingLendOutOfOrder(t *testing.T, v int) {
	ns, mac := vethNS(t)
	ep := smallRing(t, ns, v, 8)
	peer := openPeer(t, ns, false)
	k := newRingKeeper(ep)

	// Frames A, B, C, a block each, lent; B released first goes back
	// while A is held.
	sent := sendBursts(t, peer, k, mac, 0, 3, 1, 1000)
	k.mu.Lock()
	for i, l := range k.loans {
		if l == nil {
			t.Fatalf("frame %d not lent", i)
		}
	}
	a, b := k.loans[0], k.loans[1]
	if a == b || k.loans[2] == b {
		t.Fatal("bursts shared a block")
	}
	k.loans[1].Release()
	if st := loanStatus(b); st != tpStatusKernel {
		t.Errorf("block B released: status %d, want the kernel's", st)
	}
	if st := loanStatus(a); st&tpStatusUser == 0 {
		t.Errorf("block A still held: status %d", st)
	}
	if h := ringHeld(ep); h < 1 {
		t.Errorf("%d blocks held, want A at least", h)
	}
	k.loans[0].Release()
	if st := loanStatus(a); st != tpStatusKernel {
		t.Errorf("block A released: status %d, want the kernel's", st)
	}
	rest, restViews := k.loans[2:3], k.views[2:3]
	k.mu.Unlock()

	// Then groups of three blocks, each released in a shuffled order by
	// another goroutine while the next group is delivered.
	type group struct {
		loans []Loan
		views [][]byte
		want  [][]byte
	}
	groups := make(chan group, 4)
	done := make(chan string)
	go func() {
		bad := ""
		release := func(g group) {
			rng := rand.New(rand.NewPCG(uint64(len(g.loans)), 7))
			for _, i := range rng.Perm(len(g.loans)) {
				if g.loans[i] == nil {
					continue
				}
				if bad == "" && !bytes.Equal(g.views[i], g.want[i]) {
					bad = fmt.Sprintf("lent frame seq %d overwritten before its release", seqOf(g.want[i]))
				}
				g.loans[i].Release()
			}
		}
		// A group is released once the next has come: six blocks held
		// at times, past the bound, so frames are copied and held blocks
		// evicted while releases race with them.
		var prev *group
		for g := range groups {
			if prev != nil {
				release(*prev)
			}
			prev = &g
		}
		if prev != nil {
			release(*prev)
		}
		done <- bad
	}()
	groups <- group{loans: rest, views: restViews, want: sent[2:3]}
	next := 3
	for range 20 {
		s := sendBursts(t, peer, k, mac, next, 3, 3, 1000)
		k.mu.Lock()
		groups <- group{loans: k.loans[next : next+9], views: k.views[next : next+9], want: s}
		k.mu.Unlock()
		sent = append(sent, s...)
		next += 9
	}
	close(groups)
	if bad := <-done; bad != "" {
		t.Fatal(bad)
	}
	// One more burst, not lent: once it is delivered the reader is done
	// with every block before it, so none may be held.
	k.noLend.Store(true)
	sent = append(sent, sendBursts(t, peer, k, mac, next, 1, 3, 1000)...)
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, f := range k.copies {
		if !bytes.Equal(f, sent[i]) {
			t.Fatalf("frame %d delivered as seq %d, or changed", i, seqOf(f))
		}
	}
	st := ep.RingStats()
	t.Logf("%d frames: lent %d, copied %d, held at most %d blocks, evicted %d", len(sent), st.Lent, st.Copied, st.HeldMax, st.Evicted)
	if d := ep.KernelDrops(); d != 0 {
		t.Errorf("the kernel dropped %d frames", d)
	}
	if st.Lent == 0 || st.Lent+st.Copied != uint64(len(sent)-3) {
		t.Errorf("lent %d + copied %d, want %d", st.Lent, st.Copied, len(sent)-3)
	}
	// Everything was released.
	if h := ringHeld(ep); h != 0 {
		t.Errorf("%d blocks still held", h)
	}
}

// benchRecv consumes 64 KB super-segments the way TCP and an
// application do: kept where they lie if lent (the application then
// copies them out and lets go), else copied into a receive buffer and
// from there into the application's.
type benchRecv struct {
	l        Lender
	lend     bool
	tcp, app []byte
	got      atomic.Int64
	tick     chan struct{}
}

func (r *benchRecv) SetLender(l Lender)            { r.l = l }
func (r *benchRecv) DeliverFrames(frames [][]byte) { r.DeliverFramesMeta(frames, nil) }

func (r *benchRecv) DeliverFramesMeta(frames [][]byte, _ []Meta) {
	for _, f := range frames {
		if len(f) < 60000 {
			continue // not a test frame
		}
		var loan Loan
		if r.lend && r.l != nil {
			loan = r.l.Lend(f)
		}
		if loan == nil {
			copy(r.tcp, f)
			copy(r.app, r.tcp[:len(f)])
		} else {
			copy(r.app, f)
			loan.Release()
		}
		r.got.Add(1)
	}
	select {
	case r.tick <- struct{}{}:
	default:
	}
}

// BenchmarkAFPacketReceive64K: 64 KB TCP super-segments (45 × 1448
// bytes) sent by a plain AF_PACKET socket into the other end of a veth,
// at most 64 in flight, received with recvmmsg into lent buffers, from
// a ring with a copy (before ring lending), and lent from a ring. The
// sender is in the same process, so the CPU per GiB (cpu-s/GiB, user +
// system of the whole process) holds the kernel's copy into the ring,
// which runs in the sender's system call, as well as the one recvmmsg
// makes in the receiver's.
func BenchmarkAFPacketReceive64K(b *testing.B) {
	for _, m := range []struct {
		name       string
		ring, lend bool
		version    int
	}{
		{"recvmmsg_lend", false, true, 0},
		{"ring_copy", true, false, 3},
		{"ring_lend", true, true, 3},
		{"ring_v2_lend", true, true, 2},
	} {
		b.Run(m.name, func(b *testing.B) {
			ns, mac := vethNS(b)
			ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Offload: true, Ring: m.ring, RingVersion: m.version})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { ep.Close() })
			peer := openPeer(b, ns, true)
			r := &benchRecv{lend: m.lend, tcp: make([]byte, LendBufLen), app: make([]byte, LendBufLen), tick: make(chan struct{}, 1)}
			ep.Attach(r)
			f := superFrame(45 * 1448)
			copy(f[0:6], mac[:])
			meta := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
			frames := [][]byte{f, f, f, f, f, f, f, f}
			metas := []Meta{meta, meta, meta, meta, meta, meta, meta, meta}
			b.SetBytes(int64(len(f)))
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				for int64(sent)-r.got.Load() >= 64 {
					<-r.tick
				}
				k := min(len(frames), b.N-sent)
				n, err := peer.WriteFramesMeta(frames[:k], metas[:k])
				if err != nil {
					b.Fatal(err)
				}
				sent += n
			}
			deadline := time.After(10 * time.Second)
			for r.got.Load()+int64(ep.KernelDrops()) < int64(b.N) {
				select {
				case <-r.tick:
				case <-deadline:
					b.Fatalf("received %d of %d, the kernel dropped %d", r.got.Load(), b.N, ep.KernelDrops())
				}
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*float64(len(f))/(1<<30)), "cpu-s/GiB")
			b.ReportMetric(float64(ep.KernelDrops())/float64(b.N), "dropped/op")
			if m.ring {
				st := ep.RingStats()
				b.ReportMetric(float64(st.Lent)/float64(b.N), "lent/op")
			}
		})
	}
}

// TestAFPacketRingLoneFrame: a lone small frame (an ACK to a sender,
// say) is delivered from a TPACKET_V2 ring as soon as the kernel has
// written it, each of several before the next is sent; a V3 ring keeps
// it in the block it fills until the block is full or its timer fires
// (made an hour here: once the kernel has put the frame in the block,
// the block is still not handed over and nothing was delivered). With
// the V3 ring's usual 1 ms timer every such frame waits up to 1 ms,
// which is what held a bbr sender over V3 rings to a tenth of the link.
func TestAFPacketRingLoneFrame(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: true, RingVersion: 2, Offload: true})
		peer := openPeer(t, ns, false)
		got := newMetaCollector()
		ep.Attach(got)
		const n = 5
		for i := range n {
			if k, err := peer.WriteFrames([][]byte{frame(mac, macA, uint32(i), 60)}); k != 1 || err != nil {
				t.Fatalf("peer wrote %d: %v", k, err)
			}
			got.wait(t, 1)
		}
		for i, f := range got.frames {
			if seqOf(f) != uint32(i) {
				t.Fatalf("frame %d has seq %d", i, seqOf(f))
			}
		}
	})
	t.Run("v3_block_timer", func(t *testing.T) {
		ep, ns, mac := openOnVeth(t, AFPacketOptions{Ring: true, RingVersion: 3, Offload: true, retireMs: 3600_000})
		peer := openPeer(t, ns, false)
		got := newMetaCollector()
		ep.Attach(got)
		if k, err := peer.WriteFrames([][]byte{frame(mac, macA, 0, 60)}); k != 1 || err != nil {
			t.Fatalf("peer wrote %d: %v", k, err)
		}
		// The kernel counts the frame in the first block as it fills it.
		blk := ep.ring.blks[0].mem
		deadline := time.After(20 * time.Second)
		for atomic.LoadUint32(u32at(blk, bdNumPkts)) == 0 {
			select {
			case <-deadline:
				t.Fatal("the kernel did not put the frame in the ring")
			case <-time.After(time.Millisecond): // look again
			}
		}
		if st := atomic.LoadUint32(u32at(blk, bdStatus)); st&tpStatusUser != 0 {
			t.Fatalf("block handed over (status %#x) before its timer with one frame in it", st)
		}
		if n := ep.Stats().RxFrames.Load(); n != 0 {
			t.Fatalf("%d frames delivered", n)
		}
	})
}
