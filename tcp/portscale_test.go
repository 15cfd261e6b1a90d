package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// TestConnectPortScales: connects from one address to many destinations
// in turn (as a client with many connections does) find a free port
// almost at once, however many connections already share the
// ephemeral ports. With one global counter, destinations that recur at
// a fixed period began their search at a few points only and probed
// more and more taken ports as connections accumulated.
func TestConnectPortScales(t *testing.T) {
	const dests, per = 128, 400
	p := NewProtocol(newFakeHost(clock.NewManual(time.Unix(1e9, 0)), localIP), Config{Seed: []byte("ports")})
	now := p.now()
	for i := 0; i < dests*per; i++ {
		e := &Endpoint{p: p}
		remote := netip.AddrPortFrom(remoteIP, uint16(10000+i%dests))
		if err := p.bindConnect(e, localIP, remote, now); err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		p.conns.put(connKey{e.local, remote}, e) // as the connect that follows does
	}
	p.mu.Lock()
	avg := float64(p.connectProbes) / (dests * per)
	p.mu.Unlock()
	t.Logf("%.2f ports tried per connect", avg)
	if avg > 1.5 {
		t.Fatalf("%.2f ports tried per connect with %d connections to %d destinations", avg, dests*per, dests)
	}
}
