package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

var (
	nbAddr = netip.MustParseAddr("10.0.0.3")
	nbMAC  = wire.MAC{2, 0, 0, 0, 0, 3}
)

func hasNeighbor(n *NIC, a netip.Addr) bool {
	for _, e := range n.Neighbors() {
		if e.Addr == a {
			return true
		}
	}
	return false
}

// splitOut sorts captured frames into ARP and IPv4.
func splitOut(t *testing.T, frames [][]byte) (arp []wire.ARPInfo, ip []wire.IPv4, dsts []wire.MAC) {
	t.Helper()
	for _, f := range frames {
		switch wire.Ethernet(f).EtherType() {
		case wire.EtherTypeARP:
			a, err := wire.ParseARP(f[14:])
			if err != nil {
				t.Fatal(err)
			}
			arp = append(arp, a)
		case wire.EtherTypeIPv4:
			ip = append(ip, parseOut(t, f))
			dsts = append(dsts, wire.Ethernet(f).Dst())
		}
	}
	return
}

// An ARP reply nobody asked for makes no entry (Linux, arp_accept=0): the
// next send to that address still has to resolve it. A gratuitous
// request for an unknown address makes none either.
func TestARPUnsolicitedReplyMakesNoEntry(t *testing.T) {
	h := newHarness(t, Options{})
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	h.ep.inject(arpFrame(wire.ARPRequest, nbMAC, nbAddr, wire.MAC{}, nbAddr, wire.BroadcastMAC))
	if hasNeighbor(h.nic, nbAddr) {
		t.Fatal("an unsolicited reply created a cache entry")
	}
	if got := h.s.Stats().ARP.InUnsolicited.Load(); got != 1 {
		t.Fatalf("InUnsolicited = %d, want 1", got)
	}
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("%d frames in answer to unsolicited ARP", len(out))
	}
	if err := h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 8)}}); err != nil {
		t.Fatal(err)
	}
	arp, ip, _ := splitOut(t, h.ep.take())
	if len(arp) != 1 || arp[0].Op != wire.ARPRequest || arp[0].TargetIP != nbAddr || len(ip) != 0 {
		t.Fatalf("send after a forged reply: %d ARP, %d IP frames; want one request, no data", len(arp), len(ip))
	}
	// The solicited reply is taken and releases the datagram.
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	if _, ip, dsts := splitOut(t, h.ep.take()); len(ip) != 1 || dsts[0] != nbMAC {
		t.Fatalf("solicited reply: %d frames", len(ip))
	}
}

// Frames queued for resolution leave in order, and a frame sent while
// the queue is being flushed goes after it, not before (the fast path is
// published only once the queue is empty).
func TestARPFlushKeepsOrder(t *testing.T) {
	h := newHarness(t, Options{})
	send := func(seq byte) {
		if err := h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoUDP, Parts: [3][]byte{{0, 1, 0, 2, 0, 9, 0, 0, seq}}}); err != nil {
			t.Error(err)
		}
	}
	for i := byte(0); i < 5; i++ {
		send(i)
	}
	h.ep.take()
	next := byte(5)
	h.ep.onWrite = func(f []byte) {
		// Every frame the flush writes provokes a new send (as another
		// goroutine would), until 10 frames were sent.
		if next < 10 {
			next++
			send(next - 1)
		}
	}
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	h.ep.onWrite = nil
	_, ip, _ := splitOut(t, h.ep.take())
	var got []byte
	for _, p := range ip {
		got = append(got, p.Payload()[8])
	}
	if len(got) != 10 {
		t.Fatalf("%d datagrams out, want 10: %v", len(got), got)
	}
	for i, v := range got {
		if v != byte(i) {
			t.Fatalf("order %v: new sends overtook the queue", got)
		}
	}
}

// A 64 KB ping's 44 fragments all wait for resolution (Linux's
// unres_qlen_bytes), then leave in order.
func TestARPQueuesAllFragmentsOfBigPing(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoICMP, Parts: [3][]byte{echoPayload(1, 1, make([]byte, 65000))}}); err != nil {
		t.Fatal(err)
	}
	h.ep.take()
	if d := h.s.Stats().ARP.PendingDrops.Load(); d != 0 {
		t.Fatalf("%d fragments dropped while resolving", d)
	}
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	_, ip, _ := splitOut(t, h.ep.take())
	if len(ip) != 44 {
		t.Fatalf("%d fragments sent after resolution, want 44", len(ip))
	}
	off := 0
	for i, p := range ip {
		if p.FragOffset() != off {
			t.Fatalf("fragment %d at offset %d, want %d", i, p.FragOffset(), off)
		}
		off += len(p.Payload())
	}
	if off != 65008 {
		t.Fatalf("fragments carry %d bytes", off)
	}
	if h.s.arpPending.Load() != 0 || h.s.arpPendingBytes.Load() != 0 {
		t.Fatalf("pending charge left: %d frames, %d bytes", h.s.arpPending.Load(), h.s.arpPendingBytes.Load())
	}
}

// One neighbour holds at most ARPPendingBytes (each frame charged its
// buffer plus overhead): the oldest are dropped and counted.
func TestARPPendingBytesPerNeighbour(t *testing.T) {
	h := newHarness(t, Options{})
	for i := 0; i < 200; i++ {
		p := make([]byte, 1480)
		p[8] = byte(i)
		if err := h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoUDP, NoCsum: true, Parts: [3][]byte{p}}); err != nil {
			t.Fatal(err)
		}
	}
	h.ep.take()
	per := bufSize1 + pendingOverhead
	keep := 212992 / per
	st := &h.s.Stats().ARP
	if int(st.PendingQueueFull.Load()) != 200-keep || int(h.s.arpPendingBytes.Load()) != keep*per {
		t.Fatalf("queue-full drops %d (want %d), %d bytes held (want %d)", st.PendingQueueFull.Load(), 200-keep, h.s.arpPendingBytes.Load(), keep*per)
	}
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	_, ip, _ := splitOut(t, h.ep.take())
	if len(ip) != keep || ip[0].Payload()[8] != byte(200-keep) || ip[keep-1].Payload()[8] != 199 {
		t.Fatalf("%d sent after resolution, first #%d", len(ip), ip[0].Payload()[8])
	}
}

// All unresolved neighbours together hold at most ARPPendingTotal
// frames; the charge is released when resolution fails.
func TestARPPendingGlobalCap(t *testing.T) {
	h := newHarness(t, Options{ARPPendingTotal: 10})
	for n := 0; n < 3; n++ {
		dst := netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + n)})
		for i := 0; i < 5; i++ {
			h.s.WritePacket(&OutPacket{Dst: dst, Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 8)}})
		}
	}
	st := &h.s.Stats().ARP
	if h.s.arpPending.Load() != 10 || st.PendingGlobalFull.Load() != 5 || st.PendingDrops.Load() != 5 {
		t.Fatalf("held %d, global-full drops %d, drops %d; want 10, 5, 5", h.s.arpPending.Load(), st.PendingGlobalFull.Load(), st.PendingDrops.Load())
	}
	for i := 0; i < 3; i++ {
		h.clk.Advance(time.Second)
	}
	if h.s.arpPending.Load() != 0 || h.s.arpPendingBytes.Load() != 0 || st.PendingResolveFailed.Load() != 10 {
		t.Fatalf("after failure: %d frames, %d bytes held, %d resolve-failed", h.s.arpPending.Load(), h.s.arpPendingBytes.Load(), st.PendingResolveFailed.Load())
	}
}

// ARPPendingTotalBytes bounds the bytes all unresolved neighbours hold.
func TestARPPendingGlobalBytesCap(t *testing.T) {
	per := bufSize1 + pendingOverhead
	h := newHarness(t, Options{ARPPendingTotalBytes: 5 * per})
	for n := 0; n < 4; n++ {
		dst := netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + n)})
		for i := 0; i < 2; i++ {
			h.s.WritePacket(&OutPacket{Dst: dst, Proto: wire.ProtoUDP, Parts: [3][]byte{make([]byte, 1000)}})
		}
	}
	if h.s.arpPendingBytes.Load() != int64(5*per) || h.s.Stats().ARP.PendingGlobalFull.Load() != 3 {
		t.Fatalf("held %d bytes (want %d), global-full drops %d (want 3)", h.s.arpPendingBytes.Load(), 5*per, h.s.Stats().ARP.PendingGlobalFull.Load())
	}
}

// ARP from impossible senders or for impossible targets is dropped,
// counted, unanswered, and leaves no entry; a duplicate-address probe
// (sender 0.0.0.0) is still answered.
func TestARPMartians(t *testing.T) {
	h := newHarness(t, Options{})
	a := netip.MustParseAddr
	for _, c := range []struct{ sender, target netip.Addr }{
		{a("127.0.0.1"), hostAddr},
		{a("224.0.0.5"), hostAddr},
		{a("255.255.255.255"), hostAddr},
		{a("0.1.2.3"), hostAddr},
		{hostAddr, hostAddr}, // someone claims our address
		{nbAddr, a("127.0.0.1")},
		{nbAddr, a("239.1.1.1")},
	} {
		before := h.s.Stats().ARP.InMartian.Load()
		h.ep.inject(arpFrame(wire.ARPRequest, nbMAC, c.sender, wire.MAC{}, c.target, wire.BroadcastMAC))
		if h.s.Stats().ARP.InMartian.Load() != before+1 {
			t.Errorf("%v asking for %v: not counted", c.sender, c.target)
		}
		if out := h.ep.take(); len(out) != 0 {
			t.Errorf("%v asking for %v: answered", c.sender, c.target)
		}
		if hasNeighbor(h.nic, c.sender) {
			t.Errorf("%v asking for %v: entry made", c.sender, c.target)
		}
	}
	h.ep.inject(arpFrame(wire.ARPRequest, nbMAC, netip.IPv4Unspecified(), wire.MAC{}, hostAddr, wire.BroadcastMAC))
	arp, _, _ := splitOut(t, h.ep.take())
	if len(arp) != 1 || arp[0].Op != wire.ARPReply || arp[0].SenderIP != hostAddr {
		t.Fatalf("duplicate-address probe: %+v", arp)
	}
}

// Senders on several goroutines while the reply arrives: each sender's
// datagrams leave in the order it sent them (none overtakes the queue).
func TestARPFlushOrderConcurrent(t *testing.T) {
	h := newHarness(t, Options{})
	const senders, each = 4, 40
	start := make(chan struct{})
	done := make(chan struct{})
	for g := 0; g < senders; g++ {
		go func(g byte) {
			defer func() { done <- struct{}{} }()
			<-start
			for i := byte(0); i < each; i++ {
				h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoUDP, NoCsum: true, Parts: [3][]byte{{0, 1, 0, 2, 0, 10, 0, 0, g, i}}})
			}
		}(byte(g))
	}
	// Resolution starts (the request goes out), then the senders race
	// the reply.
	h.s.WritePacket(&OutPacket{Dst: nbAddr, Proto: wire.ProtoUDP, NoCsum: true, Parts: [3][]byte{{0, 1, 0, 2, 0, 10, 0, 0, senders, 0}}})
	close(start)
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nbAddr, hostMAC, hostAddr, hostMAC))
	for g := 0; g < senders; g++ {
		<-done
	}
	_, ip, dsts := splitOut(t, h.ep.take())
	next := make([]byte, senders+1)
	for k, p := range ip {
		if dsts[k] != nbMAC {
			t.Fatalf("datagram to %v", dsts[k])
		}
		g, i := p.Payload()[8], p.Payload()[9]
		if i < next[g] {
			t.Fatalf("sender %d: datagram %d after %d", g, i, next[g]-1)
		}
		next[g] = i + 1
	}
	if len(ip)+int(h.s.Stats().ARP.PendingDrops.Load()) != senders*each+1 {
		t.Fatalf("%d sent, %d dropped, of %d", len(ip), h.s.Stats().ARP.PendingDrops.Load(), senders*each+1)
	}
}
