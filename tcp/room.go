package tcp

import (
	"net/netip"
	"sync"
)

// Backpressure from a full link queue, as Linux treats a qdisc that
// refuses a packet (NET_XMIT_DROP with TSQ): the refused segment never
// left, so it is neither counted as sent nor in flight, and the
// connection sends again when the link has room, instead of waiting for
// its retransmission timer (200 ms at least) as for a loss on the wire.

// RoomNotifier is implemented by hosts whose links can say when a full
// transmit queue has room again.
type RoomNotifier interface {
	// NotifyRoom asks for one Protocol.LinkRoom call once the link
	// towards remote has room. It returns false when that link cannot
	// tell; the refused segment then counts as lost on the wire. It must
	// not call into TCP synchronously.
	NotifyRoom(remote netip.Addr) bool
}

// roomQueue holds the endpoints a full link refused.
type roomQueue struct {
	host  RoomNotifier // nil: the host cannot tell
	pass  sync.Mutex   // one LinkRoom pass at a time
	mu    sync.Mutex
	q     []*Endpoint
	spare []*Endpoint
}

// linkFull records that the link refused a segment of e (e.mu held) and
// reports whether a LinkRoom wake-up will come.
func (e *Endpoint) linkFull() bool {
	p := e.p
	p.st.LinkQueueFull.Add(1)
	if p.room.host == nil {
		return false
	}
	if e.roomWait {
		return true // already queued; the coming wake-up serves this too
	}
	p.room.mu.Lock()
	p.room.q = append(p.room.q, e)
	p.room.mu.Unlock()
	// Queued before asking, so a wake-up that follows finds e.
	if !p.room.host.NotifyRoom(e.remote.Addr()) {
		p.room.mu.Lock()
		for i, x := range p.room.q {
			if x == e {
				p.room.q = append(p.room.q[:i], p.room.q[i+1:]...)
				break
			}
		}
		p.room.mu.Unlock()
		return false
	}
	e.roomWait = true
	return true
}

// LinkRoom is called by the host when a link that refused segments has
// room. The waiting connections send in the order they were refused,
// until one is refused again: the rest keep their place for the next
// wake-up, so a link with room for a few frames does not wake thousands
// of connections only to refuse them (and the first refused is the first
// served).
func (p *Protocol) LinkRoom() {
	// Passes run one at a time. A pass that stops at a refusal puts the
	// rest back after that refusal asked for its wake-up; a second pass
	// run by that wake-up meanwhile would take the queue without them,
	// and they would wait for a wake-up nobody asked for.
	p.room.pass.Lock()
	defer p.room.pass.Unlock()
	p.room.mu.Lock()
	q := p.room.q
	p.room.q = p.room.spare[:0]
	p.room.spare = nil
	p.room.mu.Unlock()
	if len(q) == 0 {
		return
	}
	p.st.LinkRoomWakeups.Add(1)
	done := len(q)
	for i, e := range q {
		e.lock()
		e.roomWait = false
		now := p.now()
		if e.ackRefused {
			e.ackRefused = false
			if e.ackPending > 0 || e.dackAt != 0 {
				e.ackNow = true
			}
		}
		if e.synRefused {
			e.synRefused = false
			if e.state == StateSynSent || e.state == StateSynRcvd && e.inSynQ {
				e.sendSYN(now, false) // it never left: not a retransmission
			}
		}
		if e.state != StateSynSent && e.state != StateSynRcvd {
			e.output(now)
		}
		again := e.roomWait
		e.unlock()
		q[i] = nil
		if again {
			done = i + 1
			break
		}
	}
	rest := q[done:]
	p.room.mu.Lock()
	if len(rest) > 0 {
		// Ahead of those refused since (the last one served among them).
		p.room.q = append(rest[:len(rest):len(rest)], p.room.q...)
	} else if p.room.spare == nil {
		p.room.spare = q[:0]
	}
	p.room.mu.Unlock()
}
