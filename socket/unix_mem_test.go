package socket

import (
	"errors"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// The truesize formula (unix_mem.go) against SIOCOUTQ of one message as
// Linux 6.18 reported it (docs/DECISIONS.md says how it was measured).
func TestUnixTruesizeModel(t *testing.T) {
	dgram := map[int]int{0: 768, 1: 768, 100: 768, 192: 768, 193: 1280, 1000: 2304, 10000: 16640}
	for n, want := range dgram {
		if got := unixDgramTruesize(n); got != want {
			t.Errorf("datagram of %d bytes: truesize %d, Linux %d", n, got, want)
		}
	}
	// Past 16064 bytes the rest goes in up to 17 pages.
	big := map[int]int{100000: 102656, 1000000: 1118464, 2000000: 2167040, 4200000: 4264192}
	for n, want := range big {
		if got := unixDgramTruesize(n); got != want || unixDgramTooBig(n) {
			t.Errorf("datagram of %d bytes: truesize %d (too big %v), Linux %d", n, got, unixDgramTooBig(n), want)
		}
	}
	// Linux: ENOBUFS once the head passes 4 MiB.
	for _, n := range []int{4300000, 5000000, 8388000} {
		if !unixDgramTooBig(n) {
			t.Errorf("datagram of %d bytes: Linux fails it with ENOBUFS", n)
		}
	}
	// Stream chunks keep at most SKB_MAX_HEAD(0) bytes in the head.
	stream := map[int]int{1: 768, 100: 768, 1000: 2304, 10000: 12544, 2240: 4352}
	for n, want := range stream {
		if got := unixStreamTruesize(n); got != want {
			t.Errorf("stream chunk of %d bytes: truesize %d, Linux %d", n, got, want)
		}
	}
}

// unixFill sends size-byte messages without waiting until one is
// refused; it returns how many went and the error that stopped it.
func unixFill(t *testing.T, s *Socket, size int, to Sockaddr) (int, error) {
	t.Helper()
	b := make([]byte, size)
	for i := 0; i < 1<<20; i++ {
		var err error
		if to != nil {
			_, err = s.SendTo(b, MSG_DONTWAIT, to)
		} else {
			_, err = s.Send(b, MSG_DONTWAIT)
		}
		if err != nil {
			return i, err
		}
	}
	t.Fatal("never refused")
	return 0, nil
}

// Datagram and seqpacket pairs, and a stream pair written a message at a
// time: how many messages SO_SNDBUF takes, as Linux 6.18 took them (0:
// EMSGSIZE). The queue-length limit (11) plays no part between sockets
// connected to each other.
func TestUnixPairCountsAsLinux(t *testing.T) {
	bufs := []int{0, 1, 4096, 16384, 65536} // SO_SNDBUF set (0: default)
	want := map[int][]int{
		1:     {278, 6, 11, 43, 171},
		100:   {278, 6, 11, 43, 171},
		1000:  {93, 2, 4, 15, 57},
		10000: {13, 0, 0, 2, 8},
	}
	for _, typ := range []int{SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM} {
		for size, counts := range want {
			for i, buf := range bufs {
				n := newNet(t)
				a, b, err := n.SocketPair(typ)
				if err != nil {
					t.Fatal(err)
				}
				if buf != 0 {
					a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, buf)
				}
				got, err := unixFill(t, a, size, nil)
				w := counts[i]
				if typ == SOCK_STREAM && size == 10000 {
					// Linux's stream counts: 17 whole writes, then a
					// partial one at the two smallest buffers.
					w = []int{17, 1, 1, 3, 11}[i]
				}
				wantErr := syscall.EAGAIN
				if w == 0 {
					wantErr = syscall.EMSGSIZE
				}
				if got != w || !errors.Is(err, wantErr) {
					t.Errorf("type %d, %d-byte messages, SO_SNDBUF %d: %d sent then %v, want %d then %v", typ, size, buf, got, err, w, wantErr)
				}
				// All of it is charged until read, and nothing after.
				if q, _ := a.Ioctl(SIOCOUTQ, 0); got > 0 && q < a.sndBufOpt(t) {
					t.Errorf("type %d: full with SIOCOUTQ %d under SO_SNDBUF", typ, q)
				}
				rb := make([]byte, 1<<16)
				for {
					if _, err := b.Recv(rb, MSG_DONTWAIT); err != nil {
						break
					}
				}
				if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 0 {
					t.Errorf("type %d: all read, SIOCOUTQ %d", typ, q)
				}
				a.Close()
				b.Close()
			}
		}
	}
}

func (s *Socket) sndBufOpt(t *testing.T) int {
	v, err := s.GetSockOptInt(SOL_SOCKET, SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A stream write stops part way when the charge reaches SO_SNDBUF: at
// 4608 two chunks of 2240 bytes (SO_SNDBUF/2 - 64) go, as on Linux.
func TestUnixStreamPartialWrite(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_STREAM)
	defer a.Close()
	defer b.Close()
	a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1)
	k, err := a.Send(make([]byte, 10000), MSG_DONTWAIT)
	if k != 4480 || err != nil {
		t.Fatalf("10000 bytes at SO_SNDBUF 4608: %d %v, want 4480", k, err)
	}
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 2*4352 {
		t.Fatalf("SIOCOUTQ %d, want %d", q, 2*4352)
	}
	// A chunk read in part stays charged.
	b.Recv(make([]byte, 2000), 0)
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 2*4352 {
		t.Fatalf("part of a chunk read: SIOCOUTQ %d, want %d", q, 2*4352)
	}
	b.Recv(make([]byte, 240), 0)
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 4352 {
		t.Fatalf("first chunk read: SIOCOUTQ %d, want 4352", q)
	}
	b.Close()
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 0 {
		t.Fatalf("reader closed: SIOCOUTQ %d, want 0", q)
	}
}

// A sender whose peer is not connected back is held to max_dgram_qlen
// (11 messages), also in poll, and counted; one connected back is not.
func TestUnixDgramQueueLimitOneWay(t *testing.T) {
	n := newNet(t)
	r := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	name := &SockaddrUnix{Name: "@qlen"}
	if err := r.Bind(name); err != nil {
		t.Fatal(err)
	}
	r.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 1) // plays no part
	w := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	wn := &SockaddrUnix{Name: "@qlen-w"}
	if err := w.Bind(wn); err != nil {
		t.Fatal(err)
	}
	if err := w.Connect(name); err != nil {
		t.Fatal(err)
	}
	before := n.UnixQueueStats()
	got, err := unixFill(t, w, 1000, nil)
	if got != unixMaxDgramQ+1 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("one way: %d then %v, want %d then EAGAIN", got, err, unixMaxDgramQ+1)
	}
	if s := n.UnixQueueStats(); s.QueueFull != before.QueueFull+1 {
		t.Fatalf("QueueFull %d, want %d", s.QueueFull, before.QueueFull+1)
	}
	if w.Readiness(waiter.EventOut) != 0 {
		t.Fatal("writable toward a full receiver not connected back")
	}
	// A sendto from another socket meets the same limit.
	o := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if _, err := o.SendTo([]byte("x"), MSG_DONTWAIT, name); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("sendto a full receiver: %v", err)
	}
	r.Recv(make([]byte, 2000), 0)
	if w.Readiness(waiter.EventOut) == 0 {
		t.Fatal("not writable after the receiver read one")
	}
	// Connected back, the receiver's own peer is limited by SO_SNDBUF
	// only: the 11 still queued do not stop it.
	if err := r.Connect(wn); err != nil {
		t.Fatal(err)
	}
	got, err = unixFill(t, w, 1000, nil)
	if got != 93-10 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("connected back: %d more then %v, want %d then EAGAIN", got, err, 93-10)
	}
	// Bounded: the receiver holds at most what SO_SNDBUF let in.
	r.ep.(*unixEP).mu.Lock()
	queued := r.ep.(*unixEP).rn
	r.ep.(*unixEP).mu.Unlock()
	if queued != 93 {
		t.Fatalf("receiver holds %d datagrams, want 93", queued)
	}
}

// A blocked sender stays blocked until its charge is back to a quarter
// of SO_SNDBUF (Linux wakes it from unix_write_space only then), and
// then sends; a sender blocked on a full one-way queue wakes when one
// message is read.
func TestUnixBlockedSenderWakes(t *testing.T) {
	for _, typ := range []int{SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM} {
		synctest.Test(t, func(t *testing.T) {
			n := New(stack.New(stack.Options{}))
			t.Cleanup(func() { n.Stack().Close() })
			a, b, _ := n.SocketPair(typ)
			a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096) // 8192: 11 messages of 768
			full, err := unixFill(t, a, 1, nil)
			if full != 11 || !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("type %d: filled with %d then %v", typ, full, err)
			}
			done := make(chan error, 1)
			go func() { _, err := a.Send([]byte{9}, 0); done <- err }()
			synctest.Wait()
			one := make([]byte, 1)
			// 11*768 = 8448: writable at (768k+1)*4 <= 8192, k <= 2.
			for read := 1; read <= 9; read++ {
				if _, err := b.Recv(one, 0); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				select {
				case err := <-done:
					if read < 9 {
						t.Fatalf("type %d: sender woke after %d reads, Linux after 9", typ, read)
					}
					if err != nil {
						t.Fatal(err)
					}
				default:
					if read == 9 {
						t.Fatalf("type %d: sender still blocked after 9 reads", typ)
					}
				}
			}
		})
	}
	for _, connected := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			n := New(stack.New(stack.Options{}))
			t.Cleanup(func() { n.Stack().Close() })
			r := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
			name := &SockaddrUnix{Name: "@wake"}
			r.Bind(name)
			w := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
			var to Sockaddr = name
			if connected {
				if err := w.Connect(name); err != nil {
					t.Fatal(err)
				}
				to = nil
			}
			if got, _ := unixFill(t, w, 1, to); got != 11 {
				t.Fatalf("queued %d", got)
			}
			done := make(chan error, 1)
			go func() {
				var err error
				if connected {
					_, err = w.Send([]byte{9}, 0)
				} else {
					_, err = w.SendTo([]byte{9}, 0, name)
				}
				done <- err
			}()
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("connected %v: send to a full queue returned %v", connected, err)
			default:
			}
			r.Recv(make([]byte, 1), 0)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Raising SO_SNDBUF wakes a sender blocked on its charge (Linux's
// sk_write_space from setsockopt).
func TestUnixSndbufRaiseWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(stack.New(stack.Options{}))
		t.Cleanup(func() { n.Stack().Close() })
		a, b, _ := n.SocketPair(SOCK_DGRAM)
		defer b.Close()
		a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1)
		if got, _ := unixFill(t, a, 1, nil); got != 6 {
			t.Fatalf("queued %d", got)
		}
		done := make(chan error, 1)
		go func() { _, err := a.Send([]byte{9}, 0); done <- err }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("send returned %v while full", err)
		default:
		}
		a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 65536)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// A datagram sender whose unread messages take SO_SNDBUF gets EAGAIN
// before the destination is looked at, as Linux allocates first.
func TestUnixDgramSndbufBeforeLookup(t *testing.T) {
	n := newNet(t)
	r := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	name := &SockaddrUnix{Name: "@order"}
	r.Bind(name)
	s := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	s.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1)
	if got, _ := unixFill(t, s, 100, name); got != 6 {
		t.Fatalf("queued %d at SO_SNDBUF 4608, want 6", got)
	}
	_, err := s.SendTo([]byte("x"), MSG_DONTWAIT, &SockaddrUnix{Name: "/missing"})
	wantErr(t, "to a missing path", err, syscall.EAGAIN)
	_, err = s.Send([]byte("x"), MSG_DONTWAIT)
	wantErr(t, "unconnected", err, syscall.EAGAIN)
	_, err = s.SendTo(make([]byte, 5000), MSG_DONTWAIT, name)
	wantErr(t, "too long", err, syscall.EMSGSIZE)
	if st := n.UnixQueueStats(); st.SendBufFull < 2 {
		t.Fatalf("SendBufFull %d, want at least 2", st.SendBufFull)
	}
}

// Concurrent blocking senders and a reader: no wakeup is lost (every
// send completes), and once everything is read the charge is back to 0.
func TestUnixChargeConcurrent(t *testing.T) {
	for _, typ := range []int{SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM} {
		n := newNet(t)
		a, b, _ := n.SocketPair(typ)
		a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1) // 6 small messages
		const senders, each, size = 4, 200, 100
		done := make(chan error, senders)
		for i := 0; i < senders; i++ {
			go func() {
				msg := make([]byte, size)
				for j := 0; j < each; j++ {
					if _, err := a.Send(msg, 0); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		buf := make([]byte, 4096)
		for got := 0; got < senders*each*size; {
			k, err := b.Recv(buf, 0)
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
		for i := 0; i < senders; i++ {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 0 {
			t.Fatalf("type %d: all read, SIOCOUTQ %d", typ, q)
		}
		a.Close()
		b.Close()
	}
}

// A connected datagram socket whose sendto to another, full receiver
// blocks waits for that receiver (readiness must not say writable
// because its own peer has room, or the blocking send would spin).
func TestUnixConnectedSendtoOtherFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New(stack.New(stack.Options{}))
		t.Cleanup(func() { n.Stack().Close() })
		peer := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		peer.Bind(&SockaddrUnix{Name: "@peer"})
		other := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		on := &SockaddrUnix{Name: "@other"}
		other.Bind(on)
		w := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
		if err := w.Connect(&SockaddrUnix{Name: "@peer"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := unixFill(t, w, 1, on); got != 11 {
			t.Fatalf("queued %d at the other", got)
		}
		if w.Readiness(waiter.EventOut) != 0 {
			t.Fatal("writable after a sendto found its receiver full")
		}
		done := make(chan error, 1)
		go func() { _, err := w.SendTo([]byte{9}, 0, on); done <- err }()
		synctest.Wait() // a spinning sender would never let this return
		select {
		case err := <-done:
			t.Fatalf("sendto to a full queue returned %v", err)
		default:
		}
		other.Recv(make([]byte, 1), 0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if w.Readiness(waiter.EventOut) == 0 {
			t.Fatal("not writable once the sendto went")
		}
	})
}

// A datagram Linux could not allocate fails with ENOBUFS and is counted;
// nothing is charged for it.
func TestUnixDgramTooBig(t *testing.T) {
	n := newNet(t)
	a, b, _ := n.SocketPair(SOCK_SEQPACKET)
	defer a.Close()
	defer b.Close()
	a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 3000000)
	_, err := a.Send(make([]byte, 4300000), MSG_DONTWAIT)
	wantErr(t, "4300000 bytes", err, syscall.ENOBUFS)
	if st := n.UnixQueueStats(); st.TooBig != 1 {
		t.Fatalf("TooBig %d, want 1", st.TooBig)
	}
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 0 {
		t.Fatalf("SIOCOUTQ %d after ENOBUFS", q)
	}
	if k, err := a.Send(make([]byte, 4200000), MSG_DONTWAIT); k != 4200000 || err != nil {
		t.Fatalf("4200000 bytes: %d %v", k, err)
	}
}
