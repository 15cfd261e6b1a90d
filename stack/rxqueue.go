package stack

import (
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/tcp"
)

// Receive queues. An endpoint with several receive queues (a multi-queue
// TAP, AF_PACKET sockets in a fanout group, link.RSS) delivers from one
// goroutine per queue at once. What the receive path keeps between the
// frames of a batch (the deferred ACKs, receive coalescing, which
// checksums are already known good) is per goroutine, in an rxState; all
// else it touches is shared and locked (connections, tables, counters).
// Each queue's goroutine asks the NIC for a receiver of its own
// (link.MultiReceiver); the NIC's own DeliverFrames uses the NIC's state.

// rxState is the receive state of one delivering goroutine.
type rxState struct {
	tcp *tcp.Batch // ACKs deferred to the end of the batch
	gro groState   // receive coalescing (gro.go)
	seg []byte     // scratch of software segmentation on receive
	// valid: the frame being delivered has a checksum that needs no
	// verification (a trusted partial checksum, or coalesced from
	// verified segments).
	valid bool
}

// rxQueue is the receiver of one more delivering goroutine of a NIC.
type rxQueue struct {
	n  *NIC
	rx rxState
}

func (q *rxQueue) DeliverFrames(frames [][]byte) { q.n.deliverFrames(&q.rx, frames) }

func (q *rxQueue) DeliverFramesMeta(frames [][]byte, metas []link.Meta) {
	q.n.deliverFramesMeta(&q.rx, frames, metas)
}

// RxQueue returns a receiver with its own receive state, for one more
// goroutine delivering frames of this NIC at the same time as others
// (link.MultiReceiver).
func (n *NIC) RxQueue() link.Receiver {
	q := &rxQueue{n: n, rx: rxState{tcp: n.stack.TCP.NewBatch()}}
	q.rx.tcp.SetInterface(n.id, n.loopback) // SO_BINDTODEVICE's demux (tcp/bindtodev.go)
	return q
}

// groBatch and groValid coalesce on the NIC's own receive state.
func (n *NIC) groBatch(frames [][]byte) [][]byte { return n.groBatchOn(&n.rx, frames) }
func (n *NIC) groValid(i int) bool               { return n.groValidOn(&n.rx, i) }

// Lending links (link.Lender): TCP may keep the buffer a super-segment
// was read into instead of copying its payload (tcp/lend.go).

// tcpLender gives TCP a link's buffers.
type tcpLender struct{ l link.Lender }

func (t tcpLender) Lend(p []byte) tcp.Loan {
	if b := t.l.Lend(p); b != nil {
		return b
	}
	return nil
}

// SetLender is link.LendingReceiver for a queue's own receive state.
func (q *rxQueue) SetLender(l link.Lender) { q.rx.tcp.SetLender(tcpLender{l}) }

// SetLender is link.LendingReceiver for the NIC's receive state.
func (n *NIC) SetLender(l link.Lender) { n.rx.tcp.SetLender(tcpLender{l}) }

// Out-of-order ACKs held to the next batch (link.IdleReceiver): the
// endpoint calls Idle before it waits for more frames.

func (q *rxQueue) HoldForIdle()  { q.rx.tcp.SetHold(true) }
func (q *rxQueue) Holding() bool { return q.rx.tcp.Holding() }
func (q *rxQueue) Idle()         { q.rx.tcp.Idle() }

// HoldForIdle, Holding and Idle are link.IdleReceiver for the NIC's own
// receive state.
func (n *NIC) HoldForIdle()  { n.rx.tcp.SetHold(true) }
func (n *NIC) Holding() bool { return n.rx.tcp.Holding() }
func (n *NIC) Idle()         { n.rx.tcp.Idle() }
