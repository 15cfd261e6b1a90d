package stack_test

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// refuser is a link without offloads whose queue refuses every
// every-th frame, as a full queue would.
type refuser struct {
	link.Endpoint
	every uint64
	n     atomic.Uint64
}

func (r *refuser) WriteFrames(frames [][]byte) (int, error) {
	for i, f := range frames {
		if r.n.Add(1)%r.every == 0 {
			return i, link.ErrQueueFull
		}
		if _, err := r.Endpoint.WriteFrames([][]byte{f}); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

// A super-segment cut in software in front of a link whose queue takes
// its first segments and refuses the rest: what left counts as sent.
// Reported as refused whole, TCP sent the range again as new data behind
// bytes the receiver already had and acknowledged, took those ACKs for
// data it never sent, and the connection stalled for good (backing off
// its retransmission timer), in the first few MB of a bulk transfer
// over a pipe with its offloads hidden.
//
// The link here refuses every 97th frame, so that refusals fall inside
// super-segments (about 45 segments each) whatever the timing.
func TestOffloadSoftwareTailRefused(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	t.Cleanup(func() { a.Close(); b.Close() })
	a.AddNIC("eth0", &refuser{Endpoint: ea, every: 97}).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", plainLink{eb}).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	ln, _ := socket.New(b).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet("10.0.0.2", 7001)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(4)
	const size = 32 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*13 + i>>11)
	}
	want := sha256.Sum256(data)
	for round := range 2 {
		got := make(chan [32]byte, 1)
		go func() {
			c, _, err := ln.Accept()
			if err != nil {
				got <- [32]byte{}
				return
			}
			defer c.Close()
			h := sha256.New()
			buf := make([]byte, 256<<10)
			for {
				k, err := c.Recv(buf, 0)
				h.Write(buf[:k])
				if err != nil || k == 0 {
					break
				}
			}
			var s [32]byte
			copy(s[:], h.Sum(nil))
			got <- s
		}()
		c, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err := c.Connect(socket.Inet("10.0.0.2", 7001)); err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			err := c.SendAll(data, 0)
			c.Shutdown(socket.SHUT_WR)
			sent <- err
		}()
		// A stall is for good (the timer backs off to minutes): a bound
		// far above the transfer's time tells it from slowness.
		select {
		case s := <-got:
			if !bytes.Equal(s[:], want[:]) {
				t.Fatalf("round %d: the receiver's SHA-256 differs", round)
			}
		case <-time.After(2 * time.Minute):
			info, _ := c.GetSockOpt(socket.IPPROTO_TCP, socket.TCP_INFO)
			t.Fatalf("round %d: stalled; sender %+v; super-segments whose tail the link refused: %d",
				round, info, a.Stats().Link.OutGSOTailDrops.Load())
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if a.Stats().Link.OutGSOTailDrops.Load() == 0 {
		t.Fatal("the link never refused the tail of a super-segment: the case was not exercised")
	}
	t.Logf("super-segments whose tail the link refused: %d; link queue full %d",
		a.Stats().Link.OutGSOTailDrops.Load(), a.Stats().Link.OutQueueFull.Load())
}
