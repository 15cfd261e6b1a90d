package stack_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Several goroutines delivering into one NIC at once (link.MultiReceiver:
// multi-queue TAP, AF_PACKET fanout, link.RSS). Run under -race: each
// queue's receive state is its own, the rest of the receive path shared.

// patternByte is byte off of connection conn's stream: a reordered,
// lost or duplicated byte shows.
func patternByte(conn int, off int64) byte { return byte(off*131 + off>>11 + int64(conn)*17) }

// sinkConns accepts n connections on ln and checks each stream carries
// size bytes of its pattern (the connection's index is its first byte).
func sinkConns(t *testing.T, ln *socket.Socket, n int, size int64) chan error {
	errs := make(chan error, n)
	for range n {
		c, _, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			c.SetTimeout(time.Minute)
			buf := make([]byte, 64<<10)
			conn := -1
			var off int64
			for {
				k, err := c.Recv(buf, 0)
				if err != nil {
					errs <- fmt.Errorf("after %d bytes: %w", off, err)
					return
				}
				if k == 0 {
					break
				}
				b := buf[:k]
				if conn < 0 {
					conn = int(b[0])
					b = b[1:]
				}
				for _, x := range b {
					if x != patternByte(conn, off) {
						errs <- fmt.Errorf("connection %d: byte %d is %#x, want %#x", conn, off, x, patternByte(conn, off))
						return
					}
					off++
				}
			}
			if off != size {
				errs <- fmt.Errorf("connection %d: %d bytes, want %d", conn, off, size)
				return
			}
			errs <- nil
		}()
	}
	return errs
}

// sendPattern writes connection conn's stream through send.
func sendPattern(conn int, size int64, send func([]byte) error) error {
	buf := make([]byte, 32<<10)
	if err := send([]byte{byte(conn)}); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		k := min(int64(len(buf)), size-off)
		for i := range k {
			buf[i] = patternByte(conn, off+i)
		}
		if err := send(buf[:k]); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// TestRSSStackConcurrentReceive: stack b's link is wrapped in link.RSS
// with 2 workers, so its NIC takes frames of 8 TCP connections from two
// goroutines at once; every stream arrives whole and in order.
func TestRSSStackConcurrentReceive(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	rss := link.NewRSS(eb, 2, 1024)
	t.Cleanup(func() { a.Close(); b.Close() })
	a.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", rss).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	ln, _ := socket.New(b).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet("10.0.0.2", 7100)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(16)
	const conns, size = 8, 1 << 20
	var wg sync.WaitGroup
	sendErrs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
			defer c.Close()
			c.SetTimeout(time.Minute)
			// Fixed ports: the flow hash has no key, so which worker takes
			// which flow is the same every run (random ephemeral ports put
			// all 8 on one worker once in 128 runs).
			if err := c.Bind(socket.Inet("10.0.0.1", 41000+i)); err != nil {
				sendErrs <- err
				return
			}
			if err := c.Connect(socket.Inet("10.0.0.2", 7100)); err != nil {
				sendErrs <- err
				return
			}
			sendErrs <- sendPattern(i, size, func(b []byte) error { return c.SendAll(b, 0) })
			c.Shutdown(socket.SHUT_WR)
		}()
	}
	errs := sinkConns(t, ln, conns, size)
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	close(sendErrs)
	for err := range sendErrs {
		if err != nil {
			t.Error(err)
		}
	}
	d0, d1 := rss.Delivered(0), rss.Delivered(1)
	t.Logf("frames per worker: %d, %d; dropped at full worker queues %d", d0, d1, rss.Dropped())
	if d0 == 0 || d1 == 0 {
		t.Errorf("one worker had all the flows (%d, %d)", d0, d1)
	}
}

// TestRSSStackConcurrentUDPFragments: fragmented UDP datagrams from 8
// sockets and single-frame ones from 8 more reach one receiving socket
// through link.RSS with 2 workers (reassembly, UDP demultiplexing and
// the socket's queue from two goroutines at once); every datagram that
// arrives is whole, and each sender's arrive in order.
func TestRSSStackConcurrentUDPFragments(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	rss := link.NewRSS(eb, 2, 4096) // room for every frame: none dropped
	t.Cleanup(func() { a.Close(); b.Close() })
	a.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", rss).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	rcv, _ := socket.New(b).Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	defer rcv.Close()
	if err := rcv.Bind(socket.Inet("10.0.0.2", 7300)); err != nil {
		t.Fatal(err)
	}
	// Room for every datagram: none is dropped at the socket.
	if err := rcv.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16<<20); err != nil {
		t.Fatal(err)
	}
	// Resolve b's address first: datagrams waiting for ARP are few.
	warm, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	warm.SendTo([]byte{0xfe}, 0, socket.Inet("10.0.0.2", 7300))
	warm.Close()
	rcv.SetTimeout(20 * time.Second)
	if _, _, err := rcv.RecvFrom(make([]byte, 16), 0); err != nil {
		t.Fatal(err)
	}
	// 800 frames in all (8 senders × 25 × 3 fragments + 8 × 25), fewer
	// than the pipe's DefaultQueueLen: however late the workers run, the
	// link never drops one (UDP does not wait for link room).
	const senders, per = 16, 25
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
			defer s.Close()
			// Fixed ports, as in TestRSSStackConcurrentReceive: the same
			// spread over the workers every run.
			if err := s.Bind(socket.Inet("10.0.0.1", 42000+i)); err != nil {
				t.Error(err)
				return
			}
			size := 200
			if i%2 == 0 {
				size = 4000 // three fragments at MTU 1500
			}
			buf := make([]byte, size)
			for seq := range per {
				buf[0], buf[1] = byte(i), byte(seq)
				for k := 2; k < size; k++ {
					buf[k] = byte(k*7 + i + seq)
				}
				s.SendTo(buf, 0, socket.Inet("10.0.0.2", 7300))
			}
		}()
	}
	last := map[int]int{}
	got := 0
	buf := make([]byte, 8192)
	for got < senders*per {
		n, _, err := rcv.RecvFrom(buf, 0)
		if err != nil {
			t.Fatalf("after %d datagrams: %v (receive buffer errors %d, reassembly fails %d, link drops %d)", got, err,
				b.Stats().UDP.RcvbufErrors.Load(), b.Stats().IP.ReasmFails.Load(), ea.Stats().TxDropped.Load()+eb.Stats().RxDropped.Load())
		}
		i, seq := int(buf[0]), int(buf[1])
		want := 200
		if i%2 == 0 {
			want = 4000
		}
		if n != want {
			t.Fatalf("sender %d datagram %d: %d bytes, want %d", i, seq, n, want)
		}
		for k := 2; k < n; k++ {
			if buf[k] != byte(k*7+i+seq) {
				t.Fatalf("sender %d datagram %d: byte %d wrong", i, seq, k)
			}
		}
		if p, ok := last[i]; ok && seq <= p {
			t.Fatalf("sender %d: datagram %d after %d", i, seq, p)
		}
		last[i] = seq
		got++
	}
	wg.Wait()
	t.Logf("%d of %d datagrams arrived; dropped at full worker queues %d; per worker %d, %d",
		got, senders*per, rss.Dropped(), rss.Delivered(0), rss.Delivered(1))
	if rss.Delivered(0) == 0 || rss.Delivered(1) == 0 {
		t.Error("one worker had every flow")
	}
}
