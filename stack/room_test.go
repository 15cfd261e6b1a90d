package stack

import (
	"runtime"
	"testing"
)

// roomEP is a link whose queue always has room: a wait returns at once
// and says so on entered.
type roomEP struct {
	chanEP
	entered chan struct{}
}

func (r *roomEP) WaitRoom(done <-chan struct{}) { r.entered <- struct{}{} }

// Waits for link room run on one goroutine per NIC, not a goroutine
// and closure each (an allocation per full queue); after Close the NIC
// asks for none.
func TestRoomWaiterLongLived(t *testing.T) {
	s := New(Options{})
	ep := &roomEP{chanEP: chanEP{mtu: 1500}, entered: make(chan struct{})}
	nic := s.AddNIC("eth0", ep)
	nic.AddAddress(netip4("10.1.0.1/24"))
	nic.SetStatic(peer4("10.1.0.2"), peerMAC)
	h := tcpHost{s}
	wait := func() {
		if !h.NotifyRoom(peer4("10.1.0.2")) {
			t.Fatal("NotifyRoom: the link cannot tell")
		}
		<-ep.entered
		for nic.room.waiting.Load() {
			runtime.Gosched() // the wait's last steps, after WaitRoom
		}
	}
	wait() // starts the waiter
	if a := testing.AllocsPerRun(100, wait); a != 0 {
		t.Fatalf("%v allocations per wait for room, want 0", a)
	}
	s.Close()
	if h.NotifyRoom(peer4("10.1.0.2")) {
		t.Fatal("a closed stack still waits for room")
	}
	if !isClosed(nic.room.done) {
		t.Fatal("the room waiter was not told to stop")
	}
}
