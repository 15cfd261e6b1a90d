package main

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// The loop: with the TUN carrying the route to the destination, the
// relay's own echo (the host socket's identifier, and the sequence
// number the relay gave it) comes back into the TUN as a new request.
// It is dropped, not relayed again, counted (loops= icmp=), the echo it
// stands for is over (its place under --max-echoes free at once), and
// the warning naming the fix is printed once. An echo that merely
// carries the same identifier, with a sequence number no outstanding
// echo to that destination has, is a client's like any other. Before,
// each round trip through the TUN was relayed again, holding a place
// under --max-echoes each, until the limit.
func TestRelayEchoLoopDetected(t *testing.T) {
	for _, c := range []struct {
		name, dst, client string
		request           uint8
	}{
		{"ipv4", "198.51.100.7", "10.0.0.1", wire.ICMPEcho},
		{"ipv6", "2001:db8:77::7", "fd00::1", wire.ICMPv6EchoRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, r := icmpPair(t, relayICMPOpts{maxEchoes: 1, timeout: time.Minute})
			var warn strings.Builder
			r.warn = &warn
			fake := newFakePing()
			v6 := c.request == wire.ICMPv6EchoRequest
			startFakeEcho(t, r, fake, v6, false)
			const hostID = 0x5151 // the host ping socket's identifier
			f := r.icmp.fams[0]
			f.id, f.idKnown = hostID, true
			dst := netip.MustParseAddr(c.dst)
			to := socket.InetAddr(netip.AddrPortFrom(dst, 0))
			a := pinger(t, client, c.client, 7)
			if _, err := a.SendTo(echoReq(c.request, 1, "ping"), 0, to); err != nil {
				t.Fatal(err)
			}
			out := relayedEcho(t, fake)
			// The relayed echo, back through the TUN: what the host's
			// kernel sent from its address (here the client's) with the
			// host socket's identifier.
			if got := binary.BigEndian.Uint16(out[4:6]); got != hostID {
				t.Fatalf("relayed with identifier %#x, want the host socket's %#x", got, hostID)
			}
			back := pinger(t, client, c.client, hostID)
			if _, err := back.SendTo(out, 0, to); err != nil {
				t.Fatal(err)
			}
			// An ordinary echo after it: relayed (the loop freed the
			// one place); once it is sent the looped one was taken.
			if _, err := a.SendTo(echoReq(c.request, 2, "after"), 0, to); err != nil {
				t.Fatal(err)
			}
			m := relayedEcho(t, fake)
			if string(m[8:]) != "after" {
				t.Fatalf("relayed %q, want the ordinary echo", m[8:])
			}
			st := &r.icmp.stats
			// The relay counts an echo as sent once WriteTo returns,
			// after the fake has handed it over.
			waitUntil(t, func() bool { return st.sent.Load() >= 2 })
			if got := r.stats.loopICMP.Load(); got != 1 || st.requests.Load() != 2 || st.sent.Load() != 2 || st.overLimit.Load() != 0 {
				t.Fatalf("%s; counters %s", r.stats.loopString(), r.icmp)
			}
			// The host's identifier with a sequence number no echo to
			// dst has is no loop: a request like any other (here over
			// --max-echoes 1: "after" holds the place).
			stranger := echoReq(c.request, binary.BigEndian.Uint16(m[6:8])+1, "stranger")
			binary.BigEndian.PutUint16(stranger[4:6], hostID)
			if _, err := back.SendTo(stranger, 0, to); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return st.overLimit.Load() == 1 })
			if got := r.stats.loopICMP.Load(); got != 1 || st.requests.Load() != 3 || len(fake.sent) != 0 {
				t.Fatalf("%s; counters %s; %d more sent", r.stats.loopString(), r.icmp, len(fake.sent))
			}
			if n := strings.Count(warn.String(), "routing loop: ICMP echo"); n != 1 {
				t.Fatalf("%d warnings, want 1:\n%s", n, warn.String())
			}
		})
	}
}

// relayedEcho is the next echo the relay sent through fake; a
// regression that sends none fails after a bound instead of hanging.
func relayedEcho(t *testing.T, fake *fakePing) []byte {
	t.Helper()
	select {
	case m := <-fake.sent:
		<-fake.to
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("the relay sent no echo")
		return nil
	}
}
