package conformance

import (
	"strconv"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// AF_UNIX queue limits (socket/unix_mem.go, docs/DECISIONS.md): every
// message is charged to its sender's SO_SNDBUF with the truesize of
// Linux's skb until it is read; a datagram receiver holds at most
// max_dgram_qlen+1 messages from senders it is not connected to; poll
// reports a socket writable while its charge is at most a quarter of
// SO_SNDBUF. sockstack models the truesize exactly (it matched every
// length tried), so the counts and SIOCOUTQ figures are compared as they
// are.

var unixQueueBufs = []int{0, 1, 4096, 16384, 65536} // SO_SNDBUF set (0: default)

// unixQueueFill sends size-byte messages on s without waiting until one
// is refused (at most limit) and logs how many went, how the last one
// ended (a stream write may go in part), SIOCOUTQ of s and SIOCINQ of
// peer.
func (t *T) unixQueueFill(step string, s, peer sockapi.Sock, size int, to socket.Sockaddr) int {
	b := make([]byte, size)
	n, last := 0, ""
	for ; n < 100000; n++ {
		var k int
		var err error
		if to != nil {
			k, err = s.SendTo(b, socket.MSG_DONTWAIT, to)
		} else {
			k, err = s.Send(b, socket.MSG_DONTWAIT)
		}
		if err != nil {
			last = ErrName(err)
			break
		}
		if k != size {
			last = "partial"
			t.Logf("%s: write %d took %d bytes", step, n+1, k)
			n++
			break
		}
	}
	outq, _ := s.Ioctl(socket.SIOCOUTQ, 0)
	inq := -1
	if peer != nil {
		inq, _ = peer.Ioctl(socket.SIOCINQ, 0)
	}
	t.Logf("%s: %d sent then %s, SIOCOUTQ %d, peer SIOCINQ %d", step, n, last, outq, inq)
	return n
}

// unixSetSndbuf sets SO_SNDBUF (0: leaves the default) and logs it.
func (t *T) unixSetSndbuf(s sockapi.Sock, v int) string {
	if v != 0 {
		t.Check("SO_SNDBUF", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, v))
	}
	got, _ := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF)
	return "SO_SNDBUF " + strconv.Itoa(got)
}

// unixDrain reads s without waiting until nothing is left, and returns
// the number of reads and of bytes.
func unixDrain(s sockapi.Sock) (reads, bytes int) {
	b := make([]byte, 1<<17)
	for ; reads < 100000; reads++ {
		k, err := s.Recv(b, socket.MSG_DONTWAIT)
		if err != nil {
			break
		}
		bytes += k
	}
	return reads, bytes
}

// unixRead reads one message (or up to 64 KiB of a stream) without
// waiting and logs its length.
func (t *T) unixRead(step string, s sockapi.Sock) {
	k, err := s.Recv(make([]byte, 1<<16), socket.MSG_DONTWAIT)
	t.Logf("%s: %d %s", step, k, ErrName(err))
}

// unixWritable reports whether poll says s is writable now.
func unixWritable(s sockapi.Sock) bool {
	switch v := s.(type) {
	case sockapi.StackSock:
		return v.Readiness(waiter.EventOut) != 0
	case sockapi.HostSock:
		fds := []unix.PollFd{{Fd: int32(v.Fileno()), Events: unix.POLLOUT}}
		unix.Poll(fds, 0)
		return fds[0].Revents&unix.POLLOUT != 0
	}
	return false
}

// unixBound is a datagram socket bound to a fresh abstract name.
func (t *T) unixBound() (sockapi.Sock, *socket.SockaddrUnix) {
	s := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
	name := unixName()
	t.Must("bind", s.Bind(name))
	return s, name
}

// unixBlockedSend starts a blocking send of one byte on s and returns
// its outcome's channel.
func unixBlockedSend(s sockapi.Sock, to socket.Sockaddr) chan error {
	done := make(chan error, 1)
	s.SetBlocking(true)
	go func() {
		var err error
		if to != nil {
			_, err = s.SendTo([]byte{9}, 0, to)
		} else {
			_, err = s.Send([]byte{9}, 0)
		}
		done <- err
	}()
	return done
}

// unixAwait logs the outcome of a blocked send. The bound only keeps a
// broken stack from hanging the run; the send has been made possible
// before this is called.
func (t *T) unixAwait(step string, done chan error) {
	select {
	case err := <-done:
		t.Logf("%s: blocked send returned %s", step, ErrName(err))
	case <-time.After(10 * time.Second):
		t.Logf("%s: blocked send still blocked", step)
	}
}

func unixQueueCases() []Case {
	sizes := []int{1, 100, 1000, 10000}
	pairCounts := func(ty int) func(t *T) {
		return func(t *T) {
			for _, size := range sizes {
				for _, buf := range unixQueueBufs {
					a, b := t.unixPair(ty)
					step := strconv.Itoa(size) + "-byte messages, " + t.unixSetSndbuf(a, buf)
					t.unixQueueFill(step, a, b, size, nil)
					unixDrain(b)
					t.unixOutq(step+", all read", a)
				}
			}
		}
	}
	return []Case{
		{"unix/queue dgram socketpair by SO_SNDBUF", false, pairCounts(socket.SOCK_DGRAM)},
		{"unix/queue seqpacket socketpair by SO_SNDBUF", false, pairCounts(socket.SOCK_SEQPACKET)},
		{"unix/queue stream socketpair writes by SO_SNDBUF", false, pairCounts(socket.SOCK_STREAM)},
		{"unix/queue dgram connected both ways", false, func(t *T) {
			for _, size := range []int{1, 1000} {
				for _, buf := range []int{0, 4096} {
					a, an := t.unixBound()
					b, bn := t.unixBound()
					t.Must("connect a", a.Connect(bn))
					t.Must("connect b", b.Connect(an))
					step := strconv.Itoa(size) + "-byte datagrams, " + t.unixSetSndbuf(a, buf)
					t.unixQueueFill(step, a, b, size, nil)
				}
			}
		}},
		{"unix/queue stream chunk read in part", false, func(t *T) {
			a, b := t.unixPair(socket.SOCK_STREAM)
			t.Send("write 100", a, make([]byte, 100), 0, nil)
			t.Send("write 100", a, make([]byte, 100), 0, nil)
			q, _ := a.Ioctl(socket.SIOCOUTQ, 0)
			t.Logf("two writes: SIOCOUTQ %d", q)
			for _, size := range []int{50, 100, 50} {
				k, err := b.Recv(make([]byte, size), socket.MSG_DONTWAIT)
				q, _ := a.Ioctl(socket.SIOCOUTQ, 0)
				in, _ := b.Ioctl(socket.SIOCINQ, 0)
				t.Logf("read: %d %s, SIOCOUTQ %d, peer SIOCINQ %d", k, ErrName(err), q, in)
			}
			a.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
			k, err := a.Send(make([]byte, 10000), socket.MSG_DONTWAIT)
			q, _ = a.Ioctl(socket.SIOCOUTQ, 0)
			t.Logf("10000 bytes at the smallest SO_SNDBUF: %d %s, SIOCOUTQ %d", k, ErrName(err), q)
			b.Close()
			q, _ = a.Ioctl(socket.SIOCOUTQ, 0)
			t.Logf("reader closed: SIOCOUTQ %d", q)
		}},
		{"unix/queue dgram one way max_dgram_qlen", false, func(t *T) {
			for _, size := range []int{0, 1, 1000, 10000} {
				r, rn := t.unixBound()
				r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1) // no part in it
				w, wn := t.unixBound()
				t.Must("connect", w.Connect(rn))
				step := strconv.Itoa(size) + "-byte datagrams one way"
				t.unixQueueFill(step, w, r, size, nil)
				t.Logf("writable %v", unixWritable(w))
				t.unixRead("read one", r)
				t.Logf("writable %v", unixWritable(w))
				t.unixQueueFill(step+" after one read", w, r, size, nil)
				// Connected back, only SO_SNDBUF holds w.
				t.Must("connect back", r.Connect(wn))
				t.Logf("connected back: writable %v", unixWritable(w))
				t.unixQueueFill(step+" connected back", w, r, size, nil)
			}
			// SO_SNDBUF can stop a one-way sender first.
			r, rn := t.unixBound()
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.Must("connect", w.Connect(rn))
			step := "1000-byte datagrams one way, " + t.unixSetSndbuf(w, 1)
			t.unixQueueFill(step, w, r, 1000, nil)
			// Unconnected senders meet the queue limit too, and the
			// queue counts every sender's messages.
			r, rn = t.unixBound()
			u := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.unixQueueFill("sendto 100-byte datagrams", u, r, 100, rn)
			v := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.unixQueueFill("another sender", v, r, 100, rn)
			t.Logf("reads: %d", first(unixDrain(r)))
		}},
		{"unix/queue dgram SO_SNDBUF full before the destination", false, func(t *T) {
			r, rn := t.unixBound()
			s := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.unixQueueFill("100-byte datagrams, "+t.unixSetSndbuf(s, 1), s, r, 100, rn)
			t.Send("sendto a missing path", s, []byte("x"), socket.MSG_DONTWAIT, &socket.SockaddrUnix{Name: "/nonexistent-sockstack-q"})
			t.Send("sendto a missing abstract name", s, []byte("x"), socket.MSG_DONTWAIT, unixName())
			t.Send("send unconnected", s, []byte("x"), socket.MSG_DONTWAIT, nil)
			t.Send("sendto too long", s, make([]byte, 5000), socket.MSG_DONTWAIT, rn)
			t.Check("shutdown", s.Shutdown(socket.SHUT_WR))
			t.Send("sendto after SHUT_WR", s, []byte("x"), socket.MSG_DONTWAIT, rn)
		}},
		{"unix/queue poll writable at a quarter of SO_SNDBUF", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_STREAM} {
				for _, buf := range []int{0, 4096} {
					a, b := t.unixPair(ty)
					step := t.unixSetSndbuf(a, buf)
					sent, off := 0, -1
					for ; sent < 100000; sent++ {
						if off < 0 && !unixWritable(a) {
							off = sent
						}
						if _, err := a.Send([]byte{1}, socket.MSG_DONTWAIT); err != nil {
							break
						}
					}
					reads := 0
					for ; reads < sent && !unixWritable(a); reads++ {
						b.Recv(make([]byte, 1), socket.MSG_DONTWAIT)
					}
					t.Logf("type %d %s: not writable after %d of %d sends; writable again after %d reads", ty, step, off, sent, reads)
				}
			}
		}},
		{"unix/queue accepted stream socket's buffers", false, func(t *T) {
			l := t.Socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
			l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, 3000)
			l.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 5000)
			name := unixName()
			t.Must("bind", l.Bind(name))
			t.Must("listen", l.Listen(5))
			c := t.Socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
			c.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
			c.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 10000)
			t.Must("connect", c.Connect(name))
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			sb, _ := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF)
			rb, _ := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF)
			t.Logf("accepted: SO_SNDBUF %d, SO_RCVBUF %d", sb, rb)
			t.unixQueueFill("accepted, 1-byte writes", s, c, 1, nil)
			t.unixQueueFill("client, 1-byte writes", c, s, 1, nil)
		}},
		{"unix/queue descriptors and credentials cost nothing more", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_STREAM} {
				a, b := t.unixPair(ty)
				t.Check("SO_PASSCRED", b.SetSockOptInt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1))
				x := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0).Fileno()
				t.Check("one descriptor", unixSendFDs(a, []int{x}))
				t.unixOutq("type "+strconv.Itoa(ty), a)
				q, _ := a.Ioctl(socket.SIOCOUTQ, 0)
				t.Check("four descriptors", unixSendFDs(a, []int{x, x, x, x}))
				q2, _ := a.Ioctl(socket.SIOCOUTQ, 0)
				t.Logf("SIOCOUTQ %d, then %d", q, q2)
				unixDrain(b)
			}
		}},
		{"unix/queue datagrams of megabytes", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET} {
				a, b := t.unixPair(ty)
				step := t.unixSetSndbuf(a, 3000000)
				for _, size := range []int{100000, 1000000, 4200000, 4300000, 5000000} {
					k, err := a.Send(make([]byte, size), socket.MSG_DONTWAIT)
					q, _ := a.Ioctl(socket.SIOCOUTQ, 0)
					t.Logf("type %d %s, %d bytes: %d %s, SIOCOUTQ %d", ty, step, size, k, ErrName(err), q)
					unixDrain(b)
				}
			}
		}},
		{"unix/queue poll of a full sender after SHUT_WR", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_STREAM} {
				a, b := t.unixPair(ty)
				t.unixQueueFill("type "+strconv.Itoa(ty), a, b, 1, nil)
				t.Check("shutdown", a.Shutdown(socket.SHUT_WR))
				t.PollEvents("after SHUT_WR", a)
				t.Send("send", a, []byte{1}, socket.MSG_DONTWAIT, nil)
				unixDrain(b)
				t.PollEvents("all read", a)
			}
		}},
		{"unix/queue blocked sender wakes when read", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_STREAM} {
				a, b := t.unixPair(ty)
				t.unixQueueFill("1-byte messages, "+t.unixSetSndbuf(a, 1), a, b, 1, nil)
				done := unixBlockedSend(a, nil)
				// Everything queued is read: the sender is writable.
				// (Its byte may come in this drain or the next.)
				_, got := unixDrain(b)
				t.unixAwait("pair type "+strconv.Itoa(ty), done)
				_, more := unixDrain(b)
				t.Logf("bytes read in all: %d", got+more)
			}
			// A larger SO_SNDBUF lets a blocked sender go on.
			a, b := t.unixPair(socket.SOCK_DGRAM)
			t.unixQueueFill("1-byte datagrams, "+t.unixSetSndbuf(a, 1), a, b, 1, nil)
			done := unixBlockedSend(a, nil)
			t.Check("SO_SNDBUF", a.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536))
			t.unixAwait("SO_SNDBUF raised", done)
			t.Logf("reads: %d", first(unixDrain(b)))
			// Held by the receiver's queue: one read lets it go.
			r, rn := t.unixBound()
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.Must("connect", w.Connect(rn))
			t.unixQueueFill("one way", w, r, 1, nil)
			done = unixBlockedSend(w, nil)
			t.unixRead("read one", r)
			t.unixAwait("one way", done)
			t.Logf("then reads: %d", first(unixDrain(r)))
			u := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.unixQueueFill("sendto", u, r, 1, rn)
			done = unixBlockedSend(u, rn)
			t.unixRead("read one", r)
			t.unixAwait("sendto", done)
			t.Logf("then reads: %d", first(unixDrain(r)))
		}},
	}
}

func first(a, _ int) int { return a }
