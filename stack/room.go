package stack

import (
	"net/netip"
	"sync/atomic"

	"github.com/sockstack/sockstack/link"
)

// nicRoom tells TCP when a NIC's full transmit queue has room again, so
// that a segment the queue refused is sent then rather than at the
// retransmission timeout.
type nicRoom struct {
	waiting atomic.Bool   // a wait for room is under way
	lastTx  atomic.Uint64 // TxFrames when the last wait ended, plus one; 0: none
}

// NotifyRoom implements tcp.RoomNotifier: one Protocol.LinkRoom call
// follows once the NIC towards remote has room. One goroutine per NIC at
// most waits, and only while its queue is full: the link's Waiter blocks,
// and protocol code must not.
func (h tcpHost) NotifyRoom(remote netip.Addr) bool {
	s := h.s
	r, err := s.FindRoute(remote)
	if err != nil || r.NIC == nil {
		return false
	}
	n := r.NIC
	w, ok := n.ep.(link.Waiter)
	if !ok {
		return false
	}
	if n.room.waiting.Swap(true) {
		return true // the wait under way ends in a LinkRoom call
	}
	// A wrapper may claim Waiter over a link that is not one and return at
	// once: if not one frame left since the last wake-up, the wake-up
	// found no room, and waiting again would poll. Say no this once.
	if last := n.room.lastTx.Swap(0); last != 0 && last-1 == n.ep.Stats().TxFrames.Load() {
		n.room.waiting.Store(false)
		return false
	}
	go func() {
		w.WaitRoom(nil) // returns when the queue has room or the link closes
		n.room.lastTx.Store(n.ep.Stats().TxFrames.Load() + 1)
		n.room.waiting.Store(false)
		s.TCP.LinkRoom()
	}()
	return true
}
