package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func arpFrame(op uint16, sMAC wire.MAC, sIP netip.Addr, tMAC wire.MAC, tIP netip.Addr, dst wire.MAC) []byte {
	f := make([]byte, 42)
	wire.PutEthernet(f, dst, sMAC, wire.EtherTypeARP)
	i := wire.ARPInfo{Op: op, SenderMAC: sMAC, SenderIP: sIP, TargetMAC: tMAC, TargetIP: tIP}
	i.Put(f[14:])
	return f
}

func TestARPAnswersRequestsForOurAddress(t *testing.T) {
	h := newHarness(t, Options{})
	other := netip.MustParseAddr("10.0.0.7")
	otherMAC := wire.MAC{2, 0, 0, 0, 0, 7}
	h.ep.inject(arpFrame(wire.ARPRequest, otherMAC, other, wire.MAC{}, hostAddr, wire.BroadcastMAC))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	a, err := wire.ParseARP(out[0][14:])
	if err != nil || a.Op != wire.ARPReply || a.SenderIP != hostAddr || a.SenderMAC != hostMAC || a.TargetIP != other || a.TargetMAC != otherMAC {
		t.Fatalf("reply %+v %v", a, err)
	}
	// The requester was learnt (RFC 826 merge).
	found := false
	for _, n := range h.nic.Neighbors() {
		found = found || (n.Addr == other && n.MAC == otherMAC)
	}
	if !found {
		t.Fatal("requester not learnt")
	}
	// A request for someone else: no answer, counted.
	h.ep.inject(arpFrame(wire.ARPRequest, otherMAC, other, wire.MAC{}, netip.MustParseAddr("10.0.0.99"), wire.BroadcastMAC))
	if len(h.ep.take()) != 0 || h.s.Stats().ARP.InNotForUs.Load() != 1 {
		t.Fatal("answered a request for another address")
	}
	// Malformed ARP.
	h.ep.inject(arpFrame(wire.ARPRequest, otherMAC, other, wire.MAC{}, hostAddr, wire.BroadcastMAC)[:30])
	if h.s.Stats().ARP.InMalformed.Load() != 1 {
		t.Fatal("truncated ARP not counted")
	}
}

func TestARPResolveQueueAndFailure(t *testing.T) {
	h := newHarness(t, Options{ARPPendingLen: 4})
	ghost := netip.MustParseAddr("10.0.0.66")
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	// A host unreachable is soft: only IP_RECVERR hears it, as in Linux.
	e.SetRecvErr(false, true)
	if err := e.Connect(netip.AddrPortFrom(ghost, 9)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if _, err := e.SendTo([]byte{byte(i)}, netip.AddrPort{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames, want one ARP request", len(out))
	}
	if a, _ := wire.ParseARP(out[0][14:]); a.TargetIP != ghost || a.Op != wire.ARPRequest {
		t.Fatalf("bad request %+v", a)
	}
	if h.s.Stats().ARP.PendingDrops.Load() != 2 {
		t.Fatalf("pending drops %d, want 2 (queue of 4)", h.s.Stats().ARP.PendingDrops.Load())
	}
	// Retries 1 s apart, then failure.
	h.clk.Advance(time.Second)
	h.clk.Advance(time.Second)
	if n := len(h.ep.take()); n != 2 {
		t.Fatalf("%d retries, want 2", n)
	}
	h.clk.Advance(time.Second)
	if h.s.Stats().ARP.ResolveFailures.Load() != 1 {
		t.Fatal("no failure")
	}
	if _, _, _, err := e.RecvFrom(make([]byte, 10), false); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("sender sees %v, want EHOSTUNREACH", err)
	}
}

func TestARPReplyFlushesQueue(t *testing.T) {
	h := newHarness(t, Options{})
	nb := netip.MustParseAddr("10.0.0.8")
	nbMAC := wire.MAC{2, 0, 0, 0, 0, 8}
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	e.SendTo([]byte("a"), netip.AddrPortFrom(nb, 9), nil)
	e.SendTo([]byte("b"), netip.AddrPortFrom(nb, 9), nil)
	h.ep.take()
	h.ep.inject(arpFrame(wire.ARPReply, nbMAC, nb, hostMAC, hostAddr, hostMAC))
	out := h.ep.take()
	if len(out) != 2 {
		t.Fatalf("%d frames flushed, want 2", len(out))
	}
	for _, f := range out {
		if wire.Ethernet(f).Dst() != nbMAC {
			t.Fatalf("queued frame sent to %v", wire.Ethernet(f).Dst())
		}
	}
}

func TestGratuitousARPOnAddAddress(t *testing.T) {
	h := newHarness(t, Options{})
	h.nic.AddAddress(netip.MustParsePrefix("10.0.1.1/24"))
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	a, _ := wire.ParseARP(out[0][14:])
	if a.SenderIP != a.TargetIP || a.SenderIP != netip.MustParseAddr("10.0.1.1") || wire.Ethernet(out[0]).Dst() != wire.BroadcastMAC {
		t.Fatalf("not a gratuitous ARP: %+v", a)
	}
}

func TestARPCacheBounded(t *testing.T) {
	h := newHarness(t, Options{ARPCacheSize: 8})
	for i := 0; i < 20; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + i)})
		h.ep.inject(arpFrame(wire.ARPRequest, wire.MAC{2, 1, 0, 0, 0, byte(i)}, a, wire.MAC{}, hostAddr, wire.BroadcastMAC))
	}
	if n := len(h.nic.Neighbors()); n > 8 {
		t.Fatalf("cache holds %d > 8", n)
	}
	if h.s.Stats().ARP.CacheEvictions.Load()+h.s.Stats().ARP.CacheFull.Load() == 0 {
		t.Fatal("no eviction counted")
	}
}

func TestLoopbackDoesNotTouchWire(t *testing.T) {
	h := newHarness(t, Options{Clock: nil})
	a := h.s.NewDgram(KindUDP, 17)
	b := h.s.NewDgram(KindUDP, 17)
	defer a.Close()
	defer b.Close()
	b.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 4000))
	for _, dst := range []string{"127.0.0.1", "10.0.0.1"} {
		if _, err := a.SendTo([]byte("hi"), netip.AddrPortFrom(netip.MustParseAddr(dst), 4000), nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, _, _, err := b.RecvFrom(make([]byte, 10), false)
			if err == nil && n == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("loopback to %s: %v", dst, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("%d frames on the wire for local traffic", len(out))
	}
}
