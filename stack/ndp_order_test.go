package stack

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// holdEP is chanEP that holds the write of the datagram "d0" until
// released, telling when it started.
type holdEP struct {
	chanEP
	started, release chan struct{}
}

func (h *holdEP) WriteFrames(fs [][]byte) (int, error) {
	for _, f := range fs {
		if len(f) >= 64 && f[14+6] == wire.ProtoUDP && string(f[62:64]) == "d0" {
			close(h.started)
			<-h.release
		}
	}
	return h.chanEP.WriteFrames(fs)
}

// The datagrams that waited for a neighbour's advertisement go out
// before any sent while they are being written: a send meeting the
// flush joins the queue (seen over a TAP, where the first datagram to a
// new neighbour left after the next ones).
func TestNDQueueKeepsOrder(t *testing.T) {
	ep := &holdEP{chanEP: chanEP{mtu: 1500}, started: make(chan struct{}), release: make(chan struct{})}
	s := New(Options{DADTransmits: -1})
	t.Cleanup(s.Close)
	nic := s.AddNIC("eth0", ep)
	if err := nic.AddAddress(netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	e := udpEP(t, s, true)
	to := netip.AddrPortFrom(peer6, 9)
	if _, err := e.SendTo([]byte("d0"), to, nil); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 32)
	n := wire.PutNA(b, peer6, wire.NAFlagSolicited|wire.NAFlagOverride, peerMAC)
	done := make(chan struct{})
	go func() {
		nic.DeliverFrames([][]byte{frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoICMPv6, 255, b[:n], 0)})
		close(done)
	}()
	<-ep.started // the advertisement's flush is writing d0
	if _, err := e.SendTo([]byte("d1"), to, nil); err != nil {
		t.Fatal(err)
	}
	close(ep.release)
	<-done
	if _, err := e.SendTo([]byte("d2"), to, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range ep.take() {
		if len(f) >= 64 && f[14+6] == wire.ProtoUDP {
			got = append(got, string(f[62:64]))
		}
	}
	if len(got) != 3 || got[0] != "d0" || got[1] != "d1" || got[2] != "d2" {
		t.Fatalf("datagrams left in the order %v, want [d0 d1 d2]", got)
	}
	// Flushed: the entry is on the lock-free path again.
	if v := nic.v6.nd.m[peer6].fast.Load(); v&fastValid == 0 {
		t.Fatal("the entry did not get its fast path back")
	}
}
