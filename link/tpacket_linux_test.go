package link

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// AF_PACKET rings and fanout, against a plain AF_PACKET socket on the
// other end of a veth pair in a namespace of the test's own.

// vethNS makes a namespace with a veth pair va-vb, both up, without IPv6
// (no stray router solicitations); it returns the namespace and vb's MAC.
func vethNS(t *testing.T) (string, wire.MAC) {
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

// openPeer opens the plain AF_PACKET socket on va with a receive buffer
// large enough for the tests' bursts.
func openPeer(t *testing.T, ns string, offload bool) *AFPacket {
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

// TestAFPacketRingRoundTrip: frames cross the TPACKET_V3 receive ring
// and the transmit ring in order and intact, bursts longer than the
// transmit ring included (its slots are reused).
func TestAFPacketRingRoundTrip(t *testing.T) {
	ns, mac := vethNS(t)
	ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Ring: true, QdiscBypass: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
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
func TestAFPacketRingOffload(t *testing.T) {
	ns, mac := vethNS(t)
	ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Ring: true, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
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
	for _, ring := range []bool{true, false} {
		name := "socket_buffer"
		if ring {
			name = "ring"
		}
		t.Run(name, func(t *testing.T) {
			ns, mac := vethNS(t)
			ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Ring: ring, RingBlockSize: 16 << 10, RingBlocks: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ep.Close() })
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
	for _, ring := range []bool{false, true} {
		name := "recvmmsg"
		if ring {
			name = "ring"
		}
		t.Run(name, func(t *testing.T) {
			ns, mac := vethNS(t)
			ep, err := OpenAFPacket("vb", AFPacketOptions{Netns: ns, Queues: 2, Ring: ring})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ep.Close() })
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
