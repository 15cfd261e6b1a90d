package stack

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/link"
)

// nicRoom tells TCP when a NIC's full transmit queue has room again, so
// that a segment the queue refused is sent then rather than at the
// retransmission timeout.
type nicRoom struct {
	waiting atomic.Bool   // a wait for room is under way
	lastTx  atomic.Uint64 // TxFrames when the last wait began, plus one; 0: none
	lastRef atomic.Uint64 // TxDropped when the last wait ended
	// The waits run on one goroutine per NIC, started by the first and
	// living until the stack closes (a goroutine and closure per wait
	// was an allocation per full queue): req asks it for a wait, whose
	// TxFrames at the start is reqTx.
	start sync.Once
	stop  sync.Once
	req   chan struct{}
	done  chan struct{}
	reqTx atomic.Uint64
}

// roomWaiter runs n's waits for room, one per request, until close.
func (n *NIC) roomWaiter(w link.Waiter, st *link.Stats) {
	for {
		select {
		case <-n.room.req:
		case <-n.room.done:
			return
		}
		w.WaitRoom(nil) // returns when the queue has room or the link closes
		n.room.lastRef.Store(st.TxDropped.Load())
		n.room.lastTx.Store(n.room.reqTx.Load() + 1)
		n.room.waiting.Store(false)
		n.stack.TCP.LinkRoom()
	}
}

// closeRoom ends n's room waiter (Stack.Close).
func (n *NIC) closeRoom() {
	n.room.start.Do(func() {}) // none starts after this
	n.room.stop.Do(func() {
		if n.room.done != nil {
			close(n.room.done)
		}
	})
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
	// once: if a refusal came after the last wait ended and not one frame
	// left since that wait began (the queue was full then), the wait found
	// no room, and waiting again would poll. Say no this once.
	//
	// Both halves matter. A refusal is reported here only after the write
	// returns, so it may predate the wait's end (it was refused while the
	// queue was still full): only a refusal counted after the end
	// (TxDropped moved; the queue counts under its lock, in step with
	// WaitRoom) says the wake-up found no room. And frames are counted
	// from the wait's beginning, not its end: room another writer took
	// just after WaitRoom returned was room all the same. Judged from the
	// end alone, either case took a good wake-up for a useless one, and
	// the refused segment was left to the retransmission timer.
	st := n.ep.Stats()
	tx := st.TxFrames.Load()
	if last := n.room.lastTx.Swap(0); last != 0 && last-1 == tx &&
		st.TxDropped.Load() != n.room.lastRef.Load() {
		n.room.waiting.Store(false)
		return false
	}
	started := false
	n.room.start.Do(func() {
		n.room.req = make(chan struct{}, 1)
		n.room.done = make(chan struct{})
		go n.roomWaiter(w, st)
		started = true
	})
	if n.room.req == nil || !started && isClosed(n.room.done) {
		n.room.waiting.Store(false) // the stack is closing
		return false
	}
	n.room.reqTx.Store(tx)
	n.room.req <- struct{}{} // never blocks: one wait at a time (waiting)
	return true
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
