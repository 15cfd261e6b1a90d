package perf

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// LinkMode is how a benchmark's in-memory link treats a full queue.
type LinkMode int

const (
	// PushBack: a sender whose link queue is full waits for room (an
	// application's send blocks; TCP sees local congestion, no loss).
	PushBack LinkMode = iota
	// Drop: a frame that finds the queue full is lost, as on a wire; the
	// loss is counted as a link drop and TCP recovers it.
	Drop
)

func (m LinkMode) String() string {
	if m == Drop {
		return "drop"
	}
	return "push back"
}

// Drops are the losses of one run: on the link between the hosts, and
// inside the stacks (a full socket receive queue, say), counted apart so
// that a harness's queue is not charged to a stack.
type Drops struct {
	Link    uint64 // frames that found the link queue full (lost, or refused / held back under push back)
	Stack   uint64
	Retrans uint64 // TCP segments retransmitted (both hosts)
}

// Sockstack returns two sockstack hosts, 10.0.0.1 (A) and 10.0.0.2 (B),
// joined by an in-memory Ethernet pipe with the given IP MTU that pushes
// back when full.
func Sockstack(mtu int) *Env { return SockstackLink(mtu, PushBack) }

// SockstackLink is Sockstack with the given link semantics.
func SockstackLink(mtu int, mode LinkMode) *Env {
	pa, pb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, mtu)
	var ea, eb link.Endpoint = pa, pb
	if mode == Drop {
		ea, eb = &dropLink{PipeEnd: pa}, &dropLink{PipeEnd: pb}
	}
	opts := stack.Options{}
	// TIME_WAIT reuse for the conn benchmark is the stack's normal
	// behaviour (timestamps); no special setting is needed.
	sa, sb := stack.New(opts), stack.New(opts)
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	env := stackEnv("sockstack", "10.0.0.2", sa, sb)
	env.Drops = func() Drops {
		// Frames that found the peer's queue full, under either
		// semantics: lost (drop), or refused with ENOBUFS (push back:
		// TCP keeps a refused data segment queued, a refused ACK is lost).
		dr := Drops{Link: pa.Stats().TxDropped.Load() + pb.Stats().TxDropped.Load()}
		for _, s := range []*stack.Stack{sa, sb} {
			st, tst := s.Stats(), s.TCP.Stats()
			// Not SndbufErrors: a datagram refused with ENOBUFS is the
			// sender's to retry (perf.UDP does), not lost.
			dr.Stack += st.UDP.RcvbufErrors.Load() + st.IP.InDiscards.Load() +
				tst.ListenDrops + tst.OFOQueueDrops + tst.RcvMemDrops
			dr.Retrans += tst.RetransSegs
		}
		return dr
	}
	return env
}

// stackEnv is the Env of two sockstack hosts sa (A) and sb (B, at addrB)
// already joined by a link.
func stackEnv(name, addrB string, sa, sb *stack.Stack) *Env {
	na, nb := socket.New(sa), socket.New(sb)
	d := &netconn.Dialer{Net: na}
	return &Env{
		Name:    name,
		AddrB:   addrB,
		ListenB: func(network, addr string) (net.Listener, error) { return netconn.Listen(nb, network, addr) },
		DialA:   d.DialContext,
		ListenPacket: func(side byte, network, addr string) (net.PacketConn, error) {
			if side == 'A' {
				return netconn.ListenPacket(na, network, addr)
			}
			return netconn.ListenPacket(nb, network, addr)
		},
		Close: func() { sa.Close(); sb.Close() },
	}
}

// dropLink is a pipe end that loses what finds the peer's queue full, as
// a wire does, instead of pushing back: it hides the pipe's WaitRoom, and
// reports a refused frame as sent (and counts it).
type dropLink struct {
	*link.PipeEnd
	dropped atomic.Uint64
}

func (d *dropLink) WriteFrames(frames [][]byte) (int, error) {
	n, err := d.PipeEnd.WriteFrames(frames)
	if err == link.ErrQueueFull {
		d.dropped.Add(uint64(len(frames) - n))
		return len(frames), nil
	}
	return n, err
}

func (d *dropLink) WriteFramesMeta(frames [][]byte, meta []link.Meta) (int, error) {
	n, err := d.PipeEnd.WriteFramesMeta(frames, meta)
	if err == link.ErrQueueFull {
		d.dropped.Add(uint64(len(frames) - n))
		return len(frames), nil
	}
	return n, err
}

// TakeFrameMeta loses a frame the peer's queue refused, as
// WriteFramesMeta does; the buffer, not taken by the pipe, goes back to
// release at once.
func (d *dropLink) TakeFrameMeta(f []byte, m link.Meta, release func([]byte)) error {
	err := d.PipeEnd.TakeFrameMeta(f, m, release)
	if err == link.ErrQueueFull {
		d.dropped.Add(1)
		release(f)
		return nil
	}
	return err
}

// WaitRoom never waits: a dropping link has no push-back.
func (d *dropLink) WaitRoom(done <-chan struct{}) {}

// Kernel is the host kernel's loopback through Go's net.
func Kernel() *Env {
	var d net.Dialer
	return &Env{
		Name:    "linux loopback",
		AddrB:   "127.0.0.1",
		ListenB: net.Listen,
		DialA:   func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
		ListenPacket: func(side byte, network, addr string) (net.PacketConn, error) {
			if addr == ":0" {
				addr = "127.0.0.1:0"
			}
			return net.ListenPacket(network, addr)
		},
		Close: func() {},
	}
}
