package tcp_test

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// TestLinkQueueFullBackpressure: over a link whose queue holds one frame,
// nearly every segment is refused at first. A refused segment is not in
// flight, and the connection sends it again when the link has room, so a
// bulk transfer finishes without a retransmission timeout (in virtual
// time, well before the 200 ms minimum RTO would let it resume).
// roomPair is two stacks joined by a pipe whose queues hold one frame
// each way; call it inside synctest.Test.
func roomPair(t *testing.T) (sa, sb *stack.Stack, ka, kb *socket.Net, pa *link.PipeEnd) {
	return linkPair(t, 1, nil)
}

// linkPair is two stacks on clk (nil: the real one) joined by a pipe of
// queue frames each way.
func linkPair(t *testing.T, queue int, clk clock.Clock) (sa, sb *stack.Stack, ka, kb *socket.Net, pa *link.PipeEnd) {
	macA, macB := wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}
	pa, pb := link.NewPipeQueue(macA, macB, 1500, queue)
	sa = stack.New(stack.Options{Name: "a", Clock: clk})
	sb = stack.New(stack.Options{Name: "b", Clock: clk})
	t.Cleanup(sa.Close)
	t.Cleanup(sb.Close)
	na := sa.AddNIC("eth0", pa)
	nb := sb.AddNIC("eth0", pb)
	if err := na.AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := nb.AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	na.SetStatic(netip.MustParseAddr("10.0.0.2"), macB)
	nb.SetStatic(netip.MustParseAddr("10.0.0.1"), macA)
	return sa, sb, socket.New(sa), socket.New(sb), pa
}

// roomConns opens n connections from ka to kb.
func roomConns(t *testing.T, ka, kb *socket.Net, n int) (cs, ss []*socket.Socket) {
	l, err := kb.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Bind(socket.Inet("10.0.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(n); err != nil {
		t.Fatal(err)
	}
	for range n {
		c, err := ka.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Connect(socket.Inet("10.0.0.2", 80)); err != nil {
			t.Fatal(err)
		}
		s, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cs, ss = append(cs, c), append(ss, s)
	}
	return cs, ss
}

// TestLinkQueueFullIdleConns: many idle connections each send one byte
// at once into a link queue of one frame, so most find the queue full
// with nothing of theirs in flight. Before, such a segment counted as
// sent and only a timer (the tail loss probe or the RTO) sent it again;
// now it waits, unsent, for the link to have room: no retransmission at
// all, and every byte arrives in virtual time far below the minimum RTO.
func TestLinkQueueFullIdleConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sa, _, ka, kb, pa := roomPair(t)
		const n = 64
		cs, ss := roomConns(t, ka, kb, n)
		synctest.Wait() // the handshakes' last ACKs are delivered
		before := sa.TCP.Stats()
		dropped := pa.Stats().TxDropped.Load()
		start := time.Now()
		for i, c := range cs {
			if _, err := c.Send([]byte{byte(i)}, 0); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range ss {
			var b [1]byte
			s.SetTimeout(time.Second) // virtual: a failure ends, not hangs
			if k, err := s.Recv(b[:], 0); k != 1 || err != nil || b[0] != byte(i) {
				t.Fatalf("conn %d: %d %v %d", i, k, err, b[0])
			}
		}
		elapsed := time.Since(start)
		st := sa.TCP.Stats()
		if r := st.RetransSegs - before.RetransSegs; r != 0 || st.Timeouts != before.Timeouts {
			t.Fatalf("%d retransmissions, %d timeouts, %d probes: refused segments were taken for lost",
				r, st.Timeouts-before.Timeouts, st.TLPProbes-before.TLPProbes)
		}
		if elapsed >= 200*time.Millisecond {
			t.Fatalf("one byte on each of %d connections took %v of virtual time", n, elapsed)
		}
		if st.LinkQueueFull == before.LinkQueueFull || st.LinkRoomWakeups == before.LinkRoomWakeups ||
			pa.Stats().TxDropped.Load() == dropped {
			t.Fatalf("queue-full refusals %d, wake-ups %d: the link never pushed back",
				st.LinkQueueFull-before.LinkQueueFull, st.LinkRoomWakeups-before.LinkRoomWakeups)
		}
	})
}

// TestLinkQueueFullBulk: a bulk transfer through a link queue of one
// frame finishes without a retransmission timeout.
func TestLinkQueueFullBulk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sa, _, ka, kb, _ := roomPair(t)
		cs, ss := roomConns(t, ka, kb, 1)
		c, s := cs[0], ss[0]

		const size = 1 << 20
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		before := sa.TCP.Stats()
		start := time.Now()
		sent := make(chan error, 1)
		go func() {
			_, err := c.Send(data, 0)
			sent <- err
		}()
		got := make([]byte, 0, size)
		buf := make([]byte, 64<<10)
		for len(got) < size {
			k, err := s.Recv(buf, 0)
			if err != nil || k == 0 {
				t.Fatalf("recv after %d bytes: %d %v", len(got), k, err)
			}
			got = append(got, buf[:k]...)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if !bytes.Equal(got, data) {
			t.Fatal("data differ")
		}
		st := sa.TCP.Stats()
		if st.Timeouts != before.Timeouts {
			t.Fatalf("%d retransmission timeouts", st.Timeouts-before.Timeouts)
		}
		if elapsed >= 200*time.Millisecond {
			t.Fatalf("transfer took %v of virtual time", elapsed)
		}
	})
}

// roomThief is a link that, once armed, lets another writer take the
// room a wait found, just after WaitRoom returns and before the woken
// connections send.
type roomThief struct {
	*link.PipeEnd
	armed atomic.Bool
}

func (r *roomThief) WaitRoom(done <-chan struct{}) {
	r.PipeEnd.WaitRoom(done)
	if r.armed.Swap(false) {
		// A frame the peer drops (no IP in it): it only fills the queue.
		junk := make([]byte, 60)
		copy(junk, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
		r.PipeEnd.WriteFrames([][]byte{junk})
	}
}

// TestLinkQueueFullRoomTaken: room a wake-up found but another writer
// took first was room all the same. The first connection woken is
// refused again; it must wait for the next wake-up rather than be told
// that the link cannot tell and count its segment lost (which before
// left it to the tail loss probe).
func TestLinkQueueFullRoomTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		macA, macB := wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}
		pa, pb := link.NewPipeQueue(macA, macB, 1500, 1)
		thief := &roomThief{PipeEnd: pa}
		sa := stack.New(stack.Options{Name: "a"})
		sb := stack.New(stack.Options{Name: "b"})
		t.Cleanup(sa.Close)
		t.Cleanup(sb.Close)
		na := sa.AddNIC("eth0", thief)
		nb := sb.AddNIC("eth0", pb)
		if err := na.AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
			t.Fatal(err)
		}
		if err := nb.AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
			t.Fatal(err)
		}
		na.SetStatic(netip.MustParseAddr("10.0.0.2"), macB)
		nb.SetStatic(netip.MustParseAddr("10.0.0.1"), macA)
		const n = 64
		cs, ss := roomConns(t, socket.New(sa), socket.New(sb), n)
		synctest.Wait()
		before := sa.TCP.Stats()
		thief.armed.Store(true)
		for i, c := range cs {
			if _, err := c.Send([]byte{byte(i)}, 0); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range ss {
			var b [1]byte
			s.SetTimeout(time.Second)
			if k, err := s.Recv(b[:], 0); k != 1 || err != nil || b[0] != byte(i) {
				t.Fatalf("conn %d: %d %v %d", i, k, err, b[0])
			}
		}
		st := sa.TCP.Stats()
		if thief.armed.Load() {
			t.Fatal("no wait for room: the link never pushed back")
		}
		if r := st.RetransSegs - before.RetransSegs; r != 0 || st.TLPProbes != before.TLPProbes {
			t.Fatalf("%d retransmissions, %d probes: a wake-up whose room was taken was taken for none",
				r, st.TLPProbes-before.TLPProbes)
		}
	})
}
