// Package link holds the Endpoint interface a NIC sends and receives
// frames through, the in-memory links (pipe, switch), links to real
// networks (TAP, TUN, AF_PACKET) and middleware that wraps any endpoint
// (pcap capture, impairment).
package link

import (
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// Kind says what a frame starts with.
type Kind uint8

const (
	KindEthernet Kind = iota // Ethernet II header
	KindIP                   // a bare IP packet (TUN)
)

// Receiver takes frames from an endpoint. A frame is valid only during the
// call: endpoints reuse their buffers. DeliverFrames runs on the endpoint's
// goroutine and should run the frames to completion there.
type Receiver interface {
	DeliverFrames(frames [][]byte)
}

// Endpoint is one attachment to a network.
type Endpoint interface {
	// MTU is the largest IP packet the link carries (no link header).
	MTU() int
	// Kind tells whether frames carry an Ethernet header.
	Kind() Kind
	// HardwareAddr is the endpoint's MAC (zero for KindIP).
	HardwareAddr() wire.MAC
	// Attach sets the receiver and starts delivery. Call once.
	Attach(r Receiver)
	// WriteFrames sends frames; their bytes are copied or written before
	// it returns. It returns how many were taken; frames refused because a
	// queue was full are counted in Stats().TxDropped and reported with
	// ErrQueueFull.
	WriteFrames(frames [][]byte) (int, error)
	// Stats are the endpoint's counters.
	Stats() *Stats
	// Close stops delivery and releases resources.
	Close() error
}

// Waiter is implemented by endpoints whose transmit queue can fill: a
// sender that may block (an application's send call, never the receive
// path) waits for room instead of losing the frame.
type Waiter interface {
	// WaitRoom blocks until the transmit queue has room or done is closed.
	WaitRoom(done <-chan struct{})
}

// NeverQueueFull is implemented by endpoints whose WriteFrames never
// refuses a frame with ErrQueueFull: a kernel queue that is full makes
// the write wait for room (AF_PACKET) or the kernel drops and counts the
// frame (TAP, TUN). A sender on such a link loses nothing by writing
// after it has let go of its own locks, where a refusal it could no
// longer take back would be a loss (stack: tcp.Route.Defer).
type NeverQueueFull interface {
	NeverQueueFull()
}

// Holder is implemented by endpoints that can send the frames written
// between HoldWrites(true) and HoldWrites(false) together, in one system
// call, at the end (the TAP and TUN without virtio-net headers through
// io_uring, AF_PACKET with sendmmsg or its transmit ring). Holds nest:
// the frames leave when the last holder lets go. A holder must let go
// soon: held frames wait for it. TCP's flusher holds while it hands a
// connection's queued segments over one by one (stack, tcp.OutputHolder).
type Holder interface {
	HoldWrites(start bool)
	// FlushHeld sends what is held now; the holds stay. TCP calls it
	// (through the stack) before it wakes a reader, so an ACK does not
	// wait for the rest of the delivery.
	FlushHeld()
}

// Stats are frame and byte counters of an endpoint.
type Stats struct {
	TxFrames, TxBytes, TxDropped atomic.Uint64
	RxFrames, RxBytes, RxDropped atomic.Uint64
}

// Snapshot is a plain copy of Stats.
type Snapshot struct {
	TxFrames, TxBytes, TxDropped uint64
	RxFrames, RxBytes, RxDropped uint64
}

// Snapshot reads all counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{s.TxFrames.Load(), s.TxBytes.Load(), s.TxDropped.Load(),
		s.RxFrames.Load(), s.RxBytes.Load(), s.RxDropped.Load()}
}

type errString string

func (e errString) Error() string { return string(e) }

// ErrQueueFull is returned by WriteFrames when frames were dropped at a full queue.
const ErrQueueFull = errString("link: transmit queue full")

// ErrClosed is returned after Close.
const ErrClosed = errString("link: endpoint closed")
