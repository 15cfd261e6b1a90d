package torture

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// TestTortureImpairedBothWaysIPv6 is the same grid over IPv6: loss,
// reordering, duplication and wire corruption (dropped by the modelled
// FCS), both directions at once, with neighbour discovery instead of ARP.
// The link's past-the-FCS corruption model covers IPv4 only (link/impair.go),
// so here the wire corruption is what the receiver must survive.
func TestTortureImpairedBothWaysIPv6(t *testing.T) {
	n := size()
	for seed := 1; seed <= seeds(); seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { runSeed6(t, int64(seed), n) })
	}
}

func runSeed6(t *testing.T, seed int64, n int) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	imp := link.NewImpair(ea, link.ImpairConfig{Seed: seed, Loss: 0.05, Reorder: 0.03, Duplicate: 0.01,
		Corrupt: 0.002, CorruptHost: 0.005, Apply: link.ImpairBoth})
	opts := stack.Options{DADTransmits: -1}
	sa, sb := stack.New(opts), stack.New(opts)
	defer sa.Close()
	defer sb.Close()
	sa.AddNIC("eth0", imp).AddAddress(netip.MustParsePrefix("fd00::1/64"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("fd00::2/64"))
	a, b := socket.New(sa), socket.New(sb)

	l, err := b.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Bind(socket.Inet6("fd00::2", 5000))
	l.Listen(1)
	c, err := a.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(30 * time.Second)
	if err := c.Connect(socket.Inet6("fd00::2", 5000)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	l.SetTimeout(30 * time.Second)
	s, _, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer s.Close()
	dataA, dataB := make([]byte, n), make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for i := range dataA {
		dataA[i] = byte(r.Uint32())
		dataB[i] = byte(r.Uint32())
	}
	c.SetTimeout(60 * time.Second)
	s.SetTimeout(60 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var gotA, gotB [32]byte
	send := func(sk *socket.Socket, d []byte) {
		defer wg.Done()
		if err := sk.SendAll(d, 0); err != nil {
			errs <- fmt.Errorf("send: %w", err)
			return
		}
		if err := sk.Shutdown(socket.SHUT_WR); err != nil {
			errs <- fmt.Errorf("shutdown: %w", err)
		}
	}
	recv := func(sk *socket.Socket, out *[32]byte) {
		defer wg.Done()
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			k, err := sk.Recv(buf, 0)
			if err != nil {
				errs <- fmt.Errorf("recv: %w", err)
				return
			}
			if k == 0 {
				break
			}
			h.Write(buf[:k])
		}
		copy(out[:], h.Sum(nil))
	}
	start := time.Now()
	wg.Add(4)
	go send(c, dataA)
	go send(s, dataB)
	go recv(s, &gotA)
	go recv(c, &gotB)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if gotA != sha256.Sum256(dataA) {
		t.Errorf("A→B: received bytes differ from sent bytes")
	}
	if gotB != sha256.Sum256(dataB) {
		t.Errorf("B→A: received bytes differ from sent bytes")
	}
	eg, in := imp.Egress.Snapshot(), imp.Ingress.Snapshot()
	for _, d := range []struct {
		name string
		st   link.ImpairSnapshot
	}{{"A→B", eg}, {"B→A", in}} {
		if d.st.FCSDrops != d.st.Corrupted {
			t.Errorf("%s: %d frames corrupted on the wire, %d dropped by the FCS", d.name, d.st.Corrupted, d.st.FCSDrops)
		}
	}
	if sa.Stats().IP6.InReceives.Load() == 0 || sa.Stats().IP.InReceives.Load() != 0 {
		t.Errorf("not over IPv6: IPv6 in %d, IPv4 in %d", sa.Stats().IP6.InReceives.Load(), sa.Stats().IP.InReceives.Load())
	}
	ia, ib := sa.TCP.Stats(), sb.TCP.Stats()
	t.Logf("seed %d over IPv6: %d MiB each way in %v; dropped %d dup %d reordered %d; corrupted on the wire %d (FCS drops %d); retransmitted %d+%d",
		seed, n>>20, time.Since(start).Round(time.Millisecond), eg.Dropped+in.Dropped, eg.Duplicated+in.Duplicated,
		eg.Reordered+in.Reordered, eg.Corrupted+in.Corrupted, eg.FCSDrops+in.FCSDrops, ia.RetransSegs, ib.RetransSegs)
}
