package socket

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

func TestPollerBasics(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_DGRAM)
	defer a.Close()
	defer b.Close()
	p := NewPoller()
	defer p.Close()
	if err := p.Add(b, waiter.EventIn, 42); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "add twice", p.Add(b, waiter.EventIn, 0), syscall.EEXIST)
	wantErr(t, "modify unknown", p.Modify(a, waiter.EventIn, 0), syscall.ENOENT)
	ev := make([]PollEvent, 8)
	if k, err := p.Wait(ev, 0); k != 0 || err != nil {
		t.Fatalf("idle: %d %v", k, err)
	}
	a.Send([]byte("x"), 0)
	k, err := p.Wait(ev, -1)
	if err != nil || k != 1 || ev[0].Socket != b || ev[0].Data != 42 || ev[0].Events != waiter.EventIn {
		t.Fatalf("wait: %d %v %+v", k, err, ev[0])
	}
	// Level-triggered: still readable until read.
	if k, _ := p.Wait(ev, 0); k != 1 {
		t.Fatalf("level-triggered: %d", k)
	}
	b.Recv(make([]byte, 4), 0)
	if k, _ := p.Wait(ev, 0); k != 0 {
		t.Fatalf("after read: %d", k)
	}
	// Modify to writability.
	if err := p.Modify(b, waiter.EventOut, 7); err != nil {
		t.Fatal(err)
	}
	if k, _ := p.Wait(ev, 0); k != 1 || ev[0].Events != waiter.EventOut || ev[0].Data != 7 {
		t.Fatalf("after modify: %d %+v", k, ev[0])
	}
	// Timeout with nothing ready.
	p.Modify(b, waiter.EventIn, 0)
	if k, err := p.Wait(ev, time.Millisecond); k != 0 || err != nil {
		t.Fatalf("timeout: %d %v", k, err)
	}
	// A blocked Wait wakes when data arrives from another goroutine.
	go a.Send([]byte("y"), 0)
	if k, err := p.Wait(ev, -1); k != 1 || err != nil {
		t.Fatalf("wakeup: %d %v", k, err)
	}
	if err := p.Remove(b); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "remove twice", p.Remove(b), syscall.ENOENT)
	if k, _ := p.Wait(ev, 0); k != 0 {
		t.Fatalf("after remove: %d", k)
	}
	// Closed sockets leave the set.
	p.Add(a, waiter.EventOut, 0)
	a.Close()
	p.Wait(ev, 0)
	if p.Len() != 0 {
		t.Fatalf("closed socket still watched: %d", p.Len())
	}
	p.Close()
	if _, err := p.Wait(ev, 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("wait after close: %v", err)
	}
}

func TestPollerShortBufferIsFair(t *testing.T) {
	n := newNet(t)
	p := NewPoller()
	defer p.Close()
	const N = 10
	for i := 0; i < N; i++ {
		a, b, _ := n.SocketPair(SOCK_DGRAM)
		t.Cleanup(func() { a.Close(); b.Close() })
		a.Send([]byte("x"), 0)
		p.Add(b, waiter.EventIn, uint64(i))
	}
	seen := map[uint64]bool{}
	ev := make([]PollEvent, 3)
	for round := 0; round < 4; round++ {
		k, _ := p.Wait(ev, 0)
		if k != 3 {
			t.Fatalf("round %d: %d events", round, k)
		}
		for _, e := range ev[:k] {
			seen[e.Data] = true
		}
	}
	if len(seen) != N {
		t.Fatalf("4 rounds of 3 reported %d distinct sockets of %d", len(seen), N)
	}
}

func TestSelectAndPoll(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_STREAM)
	defer a.Close()
	defer b.Close()
	rr, wr, xr, err := Select([]*Socket{a, b}, []*Socket{a}, []*Socket{b}, 0)
	if err != nil || len(rr) != 0 || len(wr) != 1 || wr[0] != a || len(xr) != 0 {
		t.Fatalf("select: %v %v %v %v", rr, wr, xr, err)
	}
	go b.Send([]byte("hi"), 0)
	rr, _, _, err = Select([]*Socket{a, b}, nil, nil, -1)
	if err != nil || len(rr) != 1 || rr[0] != a {
		t.Fatalf("select readable: %v %v", rr, err)
	}
	if rr, _, _, _ := Select([]*Socket{b}, nil, nil, time.Millisecond); len(rr) != 0 {
		t.Fatal("select timeout reported a socket")
	}
	fds := []PollFD{{Socket: a, Events: waiter.EventIn}, {Socket: b, Events: waiter.EventIn}, {Socket: nil}}
	k, err := Poll(fds, 0)
	if err != nil || k != 2 || fds[0].Revents != waiter.EventIn || fds[1].Revents != 0 || fds[2].Revents != PollNVal {
		t.Fatalf("poll: %d %v %+v", k, err, fds)
	}
	// Peer closes: hang-up is reported without being asked for.
	b.Close()
	fds = fds[:1]
	fds[0].Events = 0
	if k, _ := Poll(fds, -1); k != 1 || fds[0].Revents&waiter.EventHUp == 0 {
		t.Fatalf("hang-up: %d %#x", k, fds[0].Revents)
	}
	if _, _, _, err := Select([]*Socket{b}, nil, nil, 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("select on closed: %v", err)
	}
}

// One goroutine serves 2000 non-blocking UDP sockets through a Poller.
func TestPollerServes2000UDPSockets(t *testing.T) {
	const N = 2000
	pr := newPair(t, 1500, stack.Options{})
	p := NewPoller()
	defer p.Close()
	for i := 0; i < N; i++ {
		s := mustSocket(t, pr.b, AF_INET, SOCK_DGRAM, 0)
		if err := s.Bind(ap(addrB, 20000+i)); err != nil {
			t.Fatal(err)
		}
		s.SetBlocking(false)
		if err := p.Add(s, waiter.EventIn, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	served := make(chan int, 1)
	go func() {
		ev := make([]PollEvent, 128)
		buf := make([]byte, 64)
		count := 0
		defer func() { served <- count }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			k, err := p.Wait(ev, 50*time.Millisecond)
			if err != nil {
				return
			}
			for _, e := range ev[:k] {
				for {
					m, from, err := e.Socket.RecvFrom(buf, 0)
					if err != nil {
						break
					}
					// Echo, prefixed with the index the poller gave us.
					reply := fmt.Appendf(nil, "%d:%s", e.Data, buf[:m])
					e.Socket.SendTo(reply, 0, from)
					count++
				}
			}
		}
	}()
	cli := mustSocket(t, pr.a, AF_INET, SOCK_DGRAM, 0)
	cli.SetTimeout(10 * time.Second)
	buf := make([]byte, 64)
	// Resolve ARP first: the neighbour queue holds only a few packets.
	if _, err := cli.SendTo([]byte("warm"), 0, ap(addrB, 20000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli.RecvFrom(buf, 0); err != nil {
		t.Fatal(err)
	}
	const window = 100 // stay inside the link and socket queues
	for base := 0; base < N; base += window {
		for i := base; i < base+window; i++ {
			if _, err := cli.SendTo(fmt.Appendf(nil, "m%d", i), 0, ap(addrB, 20000+i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := base; i < base+window; i++ {
			m, from, err := cli.RecvFrom(buf, 0)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			port := int(from.(*SockaddrInet).AddrPort.Port())
			idx := port - 20000
			if want := fmt.Sprintf("%d:m%d", idx, idx); string(buf[:m]) != want {
				t.Fatalf("reply from port %d: %q, want %q", port, buf[:m], want)
			}
		}
	}
	close(stop)
	if c := <-served; c != N+1 {
		t.Fatalf("served %d datagrams, want %d", c, N+1)
	}
}

// One goroutine accepts and echoes many TCP connections through a Poller.
func TestPollerServesTCP(t *testing.T) {
	const N = 200
	pr := newPair(t, 1500, stack.Options{})
	ln := mustSocket(t, pr.b, AF_INET, SOCK_STREAM, 0)
	if err := ln.Bind(ap(addrB, 7)); err != nil {
		t.Fatal(err)
	}
	if err := ln.Listen(N); err != nil {
		t.Fatal(err)
	}
	ln.SetBlocking(false)
	p := NewPoller()
	defer p.Close()
	p.Add(ln, waiter.EventIn, 0)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ev := make([]PollEvent, 64)
		buf := make([]byte, 256)
		var conns []*Socket
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			k, err := p.Wait(ev, 50*time.Millisecond)
			if err != nil {
				done <- err
				return
			}
			for _, e := range ev[:k] {
				if e.Socket == ln {
					for {
						c, _, err := ln.Accept()
						if err != nil {
							break
						}
						c.SetBlocking(false)
						conns = append(conns, c)
						p.Add(c, waiter.EventIn, 1)
					}
					continue
				}
				m, err := e.Socket.Recv(buf, 0)
				if err == nil && m == 0 || e.Events&(waiter.EventHUp|waiter.EventErr) != 0 && m == 0 {
					p.Remove(e.Socket)
					continue
				}
				if err == nil {
					e.Socket.Send(buf[:m], 0) // small: fits the send buffer
				}
			}
		}
	}()
	clients := make([]*Socket, N)
	for i := range clients {
		c := mustSocket(t, pr.a, AF_INET, SOCK_STREAM, 0)
		c.SetTimeout(10 * time.Second)
		if err := c.Connect(ap(addrB, 7)); err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		clients[i] = c
	}
	for i, c := range clients {
		if err := c.SendAll(fmt.Appendf(nil, "conn%04d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8)
	for i, c := range clients {
		m, err := c.Recv(buf, MSG_WAITALL)
		if err != nil || string(buf[:m]) != fmt.Sprintf("conn%04d", i) {
			t.Fatalf("echo %d: %q %v", i, buf[:m], err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func BenchmarkPollerWait2000Idle(b *testing.B) {
	n := newNet(b)
	p := NewPoller()
	defer p.Close()
	var hot *Socket
	for i := 0; i < 2000; i++ {
		a, s, _ := n.SocketPair(SOCK_DGRAM)
		b.Cleanup(func() { a.Close(); s.Close() })
		p.Add(s, waiter.EventIn, 0)
		if i == 0 {
			hot = a
		}
	}
	ev := make([]PollEvent, 16)
	buf := make([]byte, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hot.Send([]byte("x"), 0)
		k, _ := p.Wait(ev, -1)
		ev[0].Socket.Recv(buf[:k], 0)
	}
}
