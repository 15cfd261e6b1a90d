package socket

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// TestIoctlTimestamp follows sock_gettstamp's rules on UDP sockets of
// a stack with a manual clock: ENOENT until a datagram is read; a read
// before the first request gets the time of that request, kept
// afterwards; once asked (even answered ENOENT), every read (a peek
// too) records the arrival time of its datagram; a failed read changes
// nothing; SIOCGSTAMP is SIOCGSTAMPNS cut to microseconds.
func TestIoctlTimestamp(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 123456789))
	st := stack.New(stack.Options{Clock: clk})
	t.Cleanup(st.Close)
	n := New(st)
	r := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	w := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := r.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	to, _ := r.GetSockName()
	if err := w.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	wa, _ := w.GetSockName()
	r.SetTimeout(5 * time.Second)
	stamp := func(step string, req uint, want time.Time, wantErr error) {
		t.Helper()
		got, err := r.IoctlTimestamp(req)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s: %v %v, want %v", step, got, err, wantErr)
			}
			return
		}
		if err != nil || !got.Equal(want) {
			t.Fatalf("%s: %v %v, want %v", step, got, err, want)
		}
	}
	exchange := func(msg string, flags int) {
		t.Helper()
		if _, err := w.SendTo([]byte(msg), 0, to); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 16)
		if n, err := r.Recv(b, flags); err != nil || string(b[:n]) != msg {
			t.Fatalf("recv %q: %q %v", msg, b[:n], err)
		}
	}

	exchange("a", 0)
	clk.Advance(time.Second)
	asked := clk.Now()
	stamp("read before the first request", SIOCGSTAMPNS, asked, nil)
	clk.Advance(time.Second)
	stamp("asked again", SIOCGSTAMPNS, asked, nil)
	stamp("timeval", SIOCGSTAMP, asked.Truncate(time.Microsecond), nil)

	clk.Advance(time.Second)
	read := clk.Now()
	exchange("b", 0)
	clk.Advance(time.Second)
	stamp("read with timestamps on", SIOCGSTAMPNS, read, nil)

	clk.Advance(time.Second)
	peeked := clk.Now()
	exchange("c", MSG_PEEK)
	clk.Advance(time.Second)
	stamp("peek", SIOCGSTAMPNS, peeked, nil)
	if _, err := r.Recv(make([]byte, 16), 0); err != nil { // the datagram peeked
		t.Fatal(err)
	}
	if _, err := r.Recv(make([]byte, 16), MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("recv of nothing: %v", err)
	}
	clk.Advance(time.Second)
	stamp("after a failed read", SIOCGSTAMPNS, peeked, nil) // the peeked one's arrival

	// The sender read nothing: ENOENT, and that request turned its
	// timestamps on, so the next datagram's arrival is recorded (not
	// the time of its read, as for one that came before they were on).
	for _, req := range []uint{SIOCGSTAMPNS, SIOCGSTAMP} {
		if _, err := w.IoctlTimestamp(req); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("sender that read nothing: %v", err)
		}
	}
	clk.Advance(time.Second)
	warrived := clk.Now()
	if _, err := r.SendTo([]byte("d"), 0, wa); err != nil {
		t.Fatal(err)
	}
	// Loopback delivers on its own goroutine: the clock moves on only
	// once the datagram is queued.
	if n, err := Poll([]PollFD{{Socket: w, Events: waiter.EventIn}}, 5*time.Second); n != 1 || err != nil {
		t.Fatalf("datagram to the sender not queued: %d %v", n, err)
	}
	clk.Advance(time.Second)
	if _, err := w.Recv(make([]byte, 16), MSG_DONTWAIT); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got, err := w.IoctlTimestamp(SIOCGSTAMPNS); err != nil || !got.Equal(warrived) {
		t.Fatalf("read after an ENOENT request: %v %v, want the arrival %v", got, err, warrived)
	}
	stamp("another request", SIOCINQ, time.Time{}, syscall.ENOTTY)
	r.Close()
	stamp("closed", SIOCGSTAMPNS, time.Time{}, syscall.EBADF)
}

// TestIoctlTimestampOtherSockets: TCP knows the requests but its reads
// never set the time (ENOENT); AF_UNIX does not know them (ENOTTY).
func TestIoctlTimestampOtherSockets(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	t.Cleanup(n.Stack().Close)
	l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	la, _ := l.GetSockName()
	c := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(5 * time.Second)
	if err := c.SendAll([]byte("hi"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(make([]byte, 8), 0); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Socket{l, c, s} {
		if _, err := x.IoctlTimestamp(SIOCGSTAMP); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("tcp: %v, want ENOENT", err)
		}
	}
	u := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	if _, err := u.IoctlTimestamp(SIOCGSTAMPNS); !errors.Is(err, syscall.ENOTTY) {
		t.Fatalf("unix: %v, want ENOTTY", err)
	}
}

// TestIoctlTimestampTCPErrQueue: on TCP only a MSG_ERRQUEUE read sets
// the time (Linux's ip_recv_error records it; tcp_recvmsg never does).
func TestIoctlTimestampTCPErrQueue(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	p := newPair(t, 1500, stack.Options{Clock: clk})
	s := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := s.SetSockOpt(SOL_IP, IP_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(0)
	if err := s.Connect(ap(netip.MustParseAddr("10.0.0.9"), 80)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	// ARP gives up after its retries: the connect ends on an error.
	for i := 0; i < 100 && s.ErrQueueLen() == 0; i++ {
		clk.Advance(time.Second)
	}
	if s.ErrQueueLen() != 1 {
		t.Fatalf("%d queued", s.ErrQueueLen())
	}
	if _, err := s.IoctlTimestamp(SIOCGSTAMPNS); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("before the read: %v, want ENOENT", err)
	}
	clk.Advance(time.Second)
	read := clk.Now()
	if _, _, _, _, err := s.RecvErr(make([]byte, 128), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got, err := s.IoctlTimestamp(SIOCGSTAMPNS); err != nil || !got.Equal(read) {
		t.Fatalf("after the read: %v %v, want %v", got, err, read)
	}
}
