package socket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

type testCmsg struct {
	level, typ int
	data       []byte
}

func parseTestCmsgs(t *testing.T, b []byte) []testCmsg {
	t.Helper()
	var out []testCmsg
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < 16 {
			t.Fatalf("%d stray control bytes", len(b))
		}
		l := int(ne.Uint64(b))
		if l < 16 || l > len(b) {
			t.Fatalf("cmsg length %d of %d", l, len(b))
		}
		out = append(out, testCmsg{int(int32(ne.Uint32(b[8:]))), int(int32(ne.Uint32(b[12:]))), b[16:l]})
		b = b[min((l+7)&^7, len(b)):]
	}
	return out
}

// stampOf reads the first 16 bytes of a timestamp message as seconds and
// nanoseconds (micro: microseconds).
func stampOf(d []byte, micro bool) time.Time {
	sec := int64(binary.NativeEndian.Uint64(d))
	sub := int64(binary.NativeEndian.Uint64(d[8:]))
	if micro {
		sub *= 1000
	}
	return time.Unix(sec, sub)
}

// stampRig is a stack with a manual clock and two UDP sockets on
// loopback: w sends to r.
type stampRig struct {
	clk  *clock.Manual
	r, w *Socket
	to   Sockaddr
}

func newStampRig(t *testing.T, fam int) *stampRig {
	t.Helper()
	clk := clock.NewManual(time.Unix(1700000000, 123456789))
	st := stack.New(stack.Options{Clock: clk})
	t.Cleanup(st.Close)
	n := New(st)
	lo := Sockaddr(Inet("127.0.0.1", 0))
	if fam == AF_INET6 {
		lo = Inet6("::1", 0)
	}
	g := &stampRig{clk: clk, r: mustSocket(t, n, fam, SOCK_DGRAM, 0), w: mustSocket(t, n, fam, SOCK_DGRAM, 0)}
	if err := g.r.Bind(lo); err != nil {
		t.Fatal(err)
	}
	g.to, _ = g.r.GetSockName()
	return g
}

// send sends msg and waits until r has queued it (loopback delivers on
// another goroutine), so that it arrived at the clock's present time.
func (g *stampRig) send(t *testing.T, msg string) time.Time {
	t.Helper()
	at := g.clk.Now()
	queued(t, g.r, func() {
		if _, err := g.w.SendTo([]byte(msg), 0, g.to); err != nil {
			t.Fatal(err)
		}
	})
	return at
}

// queued runs send and waits for s's next EventIn: a datagram queued.
func queued(t *testing.T, s *Socket, send func()) {
	t.Helper()
	queuedEv(t, s, waiter.EventIn, send)
}

// queuedEv runs send and waits for s's next event of mask.
func queuedEv(t *testing.T, s *Socket, mask waiter.EventMask, send func()) {
	t.Helper()
	e := waiter.Entry{C: make(chan struct{}, 1)}
	s.Waiter().Register(&e, mask)
	defer s.Waiter().Unregister(&e)
	send()
	select {
	case <-e.C:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing queued")
	}
}

func (g *stampRig) recv(t *testing.T, oobLen int) ([]testCmsg, int) {
	t.Helper()
	oob := make([]byte, oobLen)
	_, oobn, rflags, _, err := g.r.RecvMsgControl(make([]byte, 64), oob, MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	return parseTestCmsgs(t, oob[:oobn]), rflags
}

// TestRxTimestampArrival: SO_TIMESTAMP, SO_TIMESTAMPNS, their _NEW
// variants and SO_TIMESTAMPING report when the datagram arrived, not
// when it was read, in the message type and size Linux uses, first and
// alone.
func TestRxTimestampArrival(t *testing.T) {
	for _, c := range []struct {
		name     string
		opt, val int
		typ, len int
		micro    bool
	}{
		{"SO_TIMESTAMP", SO_TIMESTAMP, 1, SCM_TIMESTAMP, 16, true},
		{"SO_TIMESTAMPNS", SO_TIMESTAMPNS, 1, SCM_TIMESTAMPNS, 16, false},
		{"SO_TIMESTAMP_NEW", SO_TIMESTAMP_NEW, 1, SO_TIMESTAMP_NEW, 16, true},
		{"SO_TIMESTAMPNS_NEW", SO_TIMESTAMPNS_NEW, 1, SO_TIMESTAMPNS_NEW, 16, false},
		{"SO_TIMESTAMPING", SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, SCM_TIMESTAMPING, 48, false},
		{"SO_TIMESTAMPING_NEW", SO_TIMESTAMPING_NEW, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, SO_TIMESTAMPING_NEW, 48, false},
	} {
		for _, fam := range []int{AF_INET, AF_INET6} {
			t.Run(fmt.Sprintf("%s/%d", c.name, fam), func(t *testing.T) {
				g := newStampRig(t, fam)
				if err := g.r.SetSockOpt(SOL_SOCKET, c.opt, c.val); err != nil {
					t.Fatal(err)
				}
				arrived := g.send(t, "x")
				g.clk.Advance(3 * time.Second)
				ms, rflags := g.recv(t, 256)
				if len(ms) != 1 || ms[0].level != SOL_SOCKET || ms[0].typ != c.typ || len(ms[0].data) != c.len || rflags&MSG_CTRUNC != 0 {
					t.Fatalf("messages %+v flags %#x", ms, rflags)
				}
				want := arrived
				if c.micro {
					want = want.Truncate(time.Microsecond)
				}
				if got := stampOf(ms[0].data, c.micro); !got.Equal(want) {
					t.Fatalf("time %v, want the arrival %v", got, want)
				}
				if c.len == 48 {
					for _, b := range ms[0].data[16:] {
						if b != 0 {
							t.Fatalf("hardware stamps not empty: % x", ms[0].data)
						}
					}
				}
				// The read gave a message: SIOCGSTAMP's time is not set
				// (ENOENT, as __sock_recv_timestamp leaves sk_stamp).
				if _, err := g.r.IoctlTimestamp(SIOCGSTAMPNS); !errors.Is(err, syscall.ENOENT) {
					t.Fatalf("SIOCGSTAMPNS after the read: %v", err)
				}
			})
		}
	}
}

// TestRxTimestampSIOCGSTAMPArrival: once SIOCGSTAMP has been asked, a
// read records the datagram's arrival, not the read; a datagram queued
// before the first request has no time, and the next request takes its
// own.
func TestRxTimestampSIOCGSTAMPArrival(t *testing.T) {
	g := newStampRig(t, AF_INET)
	g.send(t, "early")
	if _, err := g.r.IoctlTimestamp(SIOCGSTAMPNS); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("fresh: %v", err)
	}
	arrived := g.send(t, "stamped")
	g.clk.Advance(time.Second)
	if _, err := g.r.Recv(make([]byte, 8), 0); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Second)
	asked := g.clk.Now()
	if got, err := g.r.IoctlTimestamp(SIOCGSTAMPNS); err != nil || !got.Equal(asked) {
		t.Fatalf("untimed datagram: %v %v, want the request's %v", got, err, asked)
	}
	g.clk.Advance(time.Second)
	if _, err := g.r.Recv(make([]byte, 8), 0); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Second)
	if got, err := g.r.IoctlTimestamp(SIOCGSTAMPNS); err != nil || !got.Equal(arrived) {
		t.Fatalf("stamped datagram: %v %v, want its arrival %v", got, err, arrived)
	}
}

// TestRxTimestampLateOption: a datagram queued before SO_TIMESTAMP has
// no arrival time: SO_TIMESTAMP gives the read's time (Linux stamps such
// an skb when it is read), SO_TIMESTAMPING alone gives nothing.
func TestRxTimestampLateOption(t *testing.T) {
	g := newStampRig(t, AF_INET)
	g.send(t, "a")
	g.send(t, "b")
	if err := g.r.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Second)
	read := g.clk.Now()
	ms, _ := g.recv(t, 256)
	if len(ms) != 1 || ms[0].typ != SCM_TIMESTAMPNS || !stampOf(ms[0].data, false).Equal(read) {
		t.Fatalf("SO_TIMESTAMPNS: %+v, want the read %v", ms, read)
	}
	if err := g.r.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.r.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE); err != nil {
		t.Fatal(err)
	}
	if ms, _ := g.recv(t, 256); len(ms) != 0 {
		t.Fatalf("SO_TIMESTAMPING, no arrival time: %+v", ms)
	}
}

// TestRxTimestampOrderAndTrunc: the timestamps come before UDP and IP
// messages; a buffer too short gets what fits and MSG_CTRUNC.
func TestRxTimestampOrderAndTrunc(t *testing.T) {
	g := newStampRig(t, AF_INET)
	for _, o := range [][3]int{{SOL_IP, IP_PKTINFO, 1}, {SOL_IP, IP_RECVTTL, 1}, {SOL_SOCKET, SO_TIMESTAMPNS, 1},
		{SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE}} {
		if err := g.r.SetSockOpt(o[0], o[1], o[2]); err != nil {
			t.Fatal(err)
		}
	}
	g.send(t, "x")
	ms, rflags := g.recv(t, 512)
	var got []int
	for _, m := range ms {
		got = append(got, m.level<<16|m.typ)
	}
	want := []int{SOL_SOCKET<<16 | SCM_TIMESTAMPNS, SOL_SOCKET<<16 | SCM_TIMESTAMPING, SOL_IP<<16 | IP_PKTINFO, SOL_IP<<16 | IP_TTL}
	if fmt.Sprint(got) != fmt.Sprint(want) || rflags&MSG_CTRUNC != 0 {
		t.Fatalf("order %x flags %#x, want %x", got, rflags, want)
	}
	g.send(t, "y")
	// 32 bytes for SCM_TIMESTAMPNS, then the header and 8 bytes of
	// SCM_TIMESTAMPING, as put_cmsg cuts a message.
	ms, rflags = g.recv(t, 56)
	if rflags&MSG_CTRUNC == 0 || len(ms) != 2 || ms[0].typ != SCM_TIMESTAMPNS || ms[1].typ != SCM_TIMESTAMPING || len(ms[1].data) != 8 {
		t.Fatalf("56-byte buffer: %+v flags %#x", ms, rflags)
	}
	g.send(t, "z")
	if ms, rflags = g.recv(t, 40); rflags&MSG_CTRUNC == 0 || len(ms) != 1 {
		t.Fatalf("40-byte buffer: %+v flags %#x", ms, rflags)
	}
}

// TestRxTimestampOptions: getsockopt follows sk_getsockopt after each
// setsockopt, and SO_TIMESTAMPING refuses what Linux refuses.
func TestRxTimestampOptions(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.r
	get := func() [6]int {
		var v [6]int
		for i, o := range []int{SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_TIMESTAMPING_OLD, SO_TIMESTAMPING_NEW} {
			x, err := s.GetSockOptInt(SOL_SOCKET, o)
			if err != nil {
				t.Fatal(err)
			}
			v[i] = x
		}
		return v
	}
	for _, c := range []struct {
		set  [][2]int
		want [6]int
	}{ // values read on Linux 6.18
		{[][2]int{{SO_TIMESTAMP, 1}}, [6]int{1, 0, 0, 0, 0, 0}},
		{[][2]int{{SO_TIMESTAMPNS, 1}}, [6]int{0, 1, 0, 0, 0, 0}},
		{[][2]int{{SO_TIMESTAMPNS_NEW, 1}}, [6]int{0, 0, 1, 1, 0, 0}},
		{[][2]int{{SO_TIMESTAMPNS, 1}, {SO_TIMESTAMP, 0}}, [6]int{}},
		{[][2]int{{SO_TIMESTAMP_NEW, 1}, {SO_TIMESTAMP, 7}}, [6]int{1, 0, 0, 0, 0, 0}},
		{[][2]int{{SO_TIMESTAMP, 1}, {SO_TIMESTAMPING_OLD, 0x18}}, [6]int{1, 0, 0, 0, 0x18, 0}},
		{[][2]int{{SO_TIMESTAMP, 1}, {SO_TIMESTAMPING_NEW, 0x18}}, [6]int{0, 0, 1, 0, 0x18, 0x18}},
	} {
		for _, o := range []int{SO_TIMESTAMP, SO_TIMESTAMPNS} {
			s.SetSockOpt(SOL_SOCKET, o, 0)
		}
		s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING_OLD, 0)
		for _, o := range c.set {
			if err := s.SetSockOpt(SOL_SOCKET, o[0], o[1]); err != nil {
				t.Fatal(err)
			}
		}
		if got := get(); got != c.want {
			t.Fatalf("after %v: %v, want %v", c.set, got, c.want)
		}
	}
	for _, c := range []struct {
		v    any
		want error
	}{
		{1 << 12, syscall.EINVAL},         // OPT_STATS without OPT_TSONLY
		{1<<12 | 1<<11, nil},              // with it
		{1 << 16, syscall.EINVAL},         // OPT_ID_TCP without OPT_ID
		{1<<16 | 1<<7, nil},               // with it
		{1 << 19, syscall.EINVAL},         // unknown
		{-1, syscall.EINVAL},              // every bit
		{1 << 15, syscall.EOPNOTSUPP},     // BIND_PHC, unbound
		{[]byte{0x18, 0}, syscall.EINVAL}, // shorter than an int
		{[]byte{0x18, 0, 0, 0, 0, 0, 0, 0}, nil},
	} {
		if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, c.v); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
			t.Fatalf("SO_TIMESTAMPING %v: %v, want %v", c.v, err, c.want)
		}
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP, []byte{1}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("one-byte SO_TIMESTAMP: %v", err)
	}
}

// TestRxTimestampPacket: a packet socket reports a frame's arrival
// (SO_TIMESTAMPNS and SIOCGSTAMP), also for its own outgoing frames.
func TestRxTimestampPacket(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 5))
	p := newPair(t, 1500, stack.Options{Clock: clk})
	sn := mustSocket(t, p.b, AF_PACKET, SOCK_DGRAM, Htons(ETH_P_IP))
	if err := sn.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	arrived := clk.Now()
	queued(t, sn, func() {
		if _, err := cli.SendTo([]byte("stamp me"), 0, ap(addrB, 9)); err != nil {
			t.Fatal(err)
		}
	})
	clk.Advance(time.Second)
	oob := make([]byte, 64)
	n, oobn, rflags, from, err := sn.RecvMsgControl(make([]byte, 10), oob, MSG_DONTWAIT)
	if err != nil || n != 10 || rflags&MSG_TRUNC == 0 || from.(*SockaddrPacket).Protocol != ETH_P_IP {
		t.Fatalf("recvmsg: %d %#x %+v %v", n, rflags, from, err)
	}
	ms := parseTestCmsgs(t, oob[:oobn])
	if len(ms) != 1 || ms[0].typ != SCM_TIMESTAMPNS || !stampOf(ms[0].data, false).Equal(arrived) {
		t.Fatalf("messages %+v, want the arrival %v", ms, arrived)
	}

	raw := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(ETH_P_IP))
	if _, err := raw.IoctlTimestamp(SIOCGSTAMP); !errors.Is(err, syscall.ENOENT) {
		t.Fatal(err)
	}
	arrived = clk.Now()
	queued(t, raw, func() {
		if _, err := cli.SendTo([]byte("again"), 0, ap(addrB, 9)); err != nil {
			t.Fatal(err)
		}
	})
	clk.Advance(time.Second)
	if _, err := raw.Recv(make([]byte, 2048), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := raw.IoctlTimestamp(SIOCGSTAMPNS); err != nil || !got.Equal(arrived) {
		t.Fatalf("SIOCGSTAMPNS: %v %v, want %v", got, err, arrived)
	}
}

// TestRxTimestampPing: an ICMP ping socket gives the reply's arrival
// first, then the IP messages (ping_recvmsg's sock_recv_timestamp).
func TestRxTimestampPing(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 77))
	st := stack.New(stack.Options{Clock: clk})
	t.Cleanup(st.Close)
	s := mustSocket(t, New(st), AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
	for _, o := range [][3]int{{SOL_IP, IP_RECVTTL, 1}, {SOL_SOCKET, SO_TIMESTAMPNS, 1}} {
		if err := s.SetSockOpt(o[0], o[1], o[2]); err != nil {
			t.Fatal(err)
		}
	}
	arrived := clk.Now()
	queued(t, s, func() {
		if _, err := s.SendTo([]byte{8, 0, 0, 0, 0, 0, 0, 1, 'p'}, 0, Inet("127.0.0.1", 0)); err != nil {
			t.Fatal(err)
		}
	})
	clk.Advance(time.Second)
	oob := make([]byte, 128)
	_, oobn, _, _, err := s.RecvMsgControl(make([]byte, 64), oob, MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	ms := parseTestCmsgs(t, oob[:oobn])
	if len(ms) != 2 || ms[0].typ != SCM_TIMESTAMPNS || ms[1].level != SOL_IP || ms[1].typ != IP_TTL ||
		!stampOf(ms[0].data, false).Equal(arrived) {
		t.Fatalf("messages %+v, want SCM_TIMESTAMPNS at %v, IP_TTL", ms, arrived)
	}
}

// TestRxTimestampErrQueue: an MSG_ERRQUEUE read gives the timestamps
// first, with the time the error was queued, then the IP messages.
func TestRxTimestampErrQueue(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	for _, o := range [][3]int{{SOL_IP, IP_RECVERR, 1}, {SOL_IP, IP_PKTINFO, 1}, {SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE}} {
		if err := s.SetSockOpt(o[0], o[1], o[2]); err != nil {
			t.Fatal(err)
		}
	}
	g.r.Close() // its port is closed now: an ICMP port unreachable comes back
	queuedAt := g.clk.Now()
	queuedEv(t, s, waiter.EventErr, func() {
		if _, err := s.SendTo([]byte("x"), 0, g.to); err != nil {
			t.Fatal(err)
		}
	})
	g.clk.Advance(time.Second)
	oob := make([]byte, 256)
	_, oobn, rflags, _, err := s.RecvMsgControl(make([]byte, 64), oob, MSG_ERRQUEUE)
	if err != nil || rflags&MSG_ERRQUEUE == 0 {
		t.Fatalf("recvmsg: %#x %v", rflags, err)
	}
	ms := parseTestCmsgs(t, oob[:oobn])
	if len(ms) != 3 || ms[0].typ != SCM_TIMESTAMPING || ms[1].typ != IP_PKTINFO || ms[2].typ != IP_RECVERR ||
		!stampOf(ms[0].data, false).Equal(queuedAt) {
		t.Fatalf("messages %+v, want SCM_TIMESTAMPING at %v, IP_PKTINFO, IP_RECVERR", ms, queuedAt)
	}
}
