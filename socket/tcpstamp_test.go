package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// tcpStampRig is a stack with a manual clock, a listener l and n
// clients connected to it, accepted as srv (lopts runs on the listener
// before the connections).
func tcpStampRig(t *testing.T, n int, lopts func(l *Socket)) (clk *clock.Manual, cli, srv []*Socket) {
	t.Helper()
	clk = clock.NewManual(time.Unix(1700000000, 5))
	st := stack.New(stack.Options{Clock: clk})
	t.Cleanup(st.Close)
	net := New(st)
	l := mustSocket(t, net, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	if lopts != nil {
		lopts(l)
	}
	if err := l.Listen(n); err != nil {
		t.Fatal(err)
	}
	a, _ := l.GetSockName()
	for i := 0; i < n; i++ {
		c := mustSocket(t, net, AF_INET, SOCK_STREAM, 0)
		if err := c.Connect(a); err != nil {
			t.Fatal(err)
		}
		l.SetTimeout(5 * time.Second)
		s, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cli, srv = append(cli, c), append(srv, s)
	}
	return clk, cli, srv
}

// tcpStampRead sends msg from c at the clock's time, waits for s to
// have it, moves the clock on and reads it with a control buffer: the
// messages and the arrival time.
func tcpStampRead(t *testing.T, clk *clock.Manual, c, s *Socket, msg string) ([]testCmsg, time.Time) {
	t.Helper()
	sent := clk.Now()
	queuedEv(t, s, waiter.EventIn, func() {
		if _, err := c.Send([]byte(msg), 0); err != nil {
			t.Fatal(err)
		}
	})
	clk.Advance(time.Second) // the report is the arrival's, not the read's
	oob := make([]byte, 256)
	buf := make([]byte, 64)
	n, oobn, _, _, err := s.RecvMsgControl(buf, oob, MSG_DONTWAIT)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("recvmsg %q, %v; want %q", buf[:n], err, msg)
	}
	return parseTestCmsgs(t, oob[:oobn]), sent
}

// TestTCPRxTimestamp: SO_TIMESTAMPNS and SO_TIMESTAMPING on an
// established TCP socket report when the data arrived; without them a
// read gives no message.
func TestTCPRxTimestamp(t *testing.T) {
	clk, cli, srv := tcpStampRig(t, 1, nil)
	c, s := cli[0], srv[0]
	if ms, _ := tcpStampRead(t, clk, c, s, "plain"); len(ms) != 0 {
		t.Fatalf("messages %+v without the options", ms)
	}
	for _, o := range [][2]int{{SO_TIMESTAMPNS, 1}, {SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE}} {
		if err := s.SetSockOpt(SOL_SOCKET, o[0], o[1]); err != nil {
			t.Fatal(err)
		}
	}
	ms, sent := tcpStampRead(t, clk, c, s, "stamped")
	if len(ms) != 2 || ms[0].typ != SCM_TIMESTAMPNS || ms[1].typ != SCM_TIMESTAMPING ||
		!stampOf(ms[0].data, false).Equal(sent) || !stampOf(ms[1].data, false).Equal(sent) {
		t.Fatalf("messages %+v, want SCM_TIMESTAMPNS and SCM_TIMESTAMPING at %v", ms, sent)
	}
	if v, err := s.GetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS); err != nil || v != 1 {
		t.Fatalf("SO_TIMESTAMPNS reads %v %v", v, err)
	}
	// The client asked for nothing: it stays without a record.
	if r := c.ep.(*tcpEP).stamp.Load(); r != nil {
		t.Fatal("a socket that never asked has a timestamp record")
	}
	if v, err := c.GetSockOpt(SOL_SOCKET, SO_TIMESTAMPING); err != nil || v != 0 || c.ep.(*tcpEP).stamp.Load() != nil {
		t.Fatalf("getsockopt on a socket that never asked: %v %v, or it made a record", v, err)
	}
}

// TestTCPRxTimestampAccepted: children of a listener that asked inherit
// the option, each with its own arrival time.
func TestTCPRxTimestampAccepted(t *testing.T) {
	clk, cli, srv := tcpStampRig(t, 2, func(l *Socket) {
		if err := l.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP_NEW, 1); err != nil {
			t.Fatal(err)
		}
	})
	ms0, at0 := tcpStampRead(t, clk, cli[0], srv[0], "zero")
	ms1, at1 := tcpStampRead(t, clk, cli[1], srv[1], "one")
	if at0.Equal(at1) {
		t.Fatal("the two sends share a time: the test shows nothing")
	}
	for i, c := range []struct {
		ms []testCmsg
		at time.Time
	}{{ms0, at0}, {ms1, at1}} {
		if len(c.ms) != 1 || c.ms[0].typ != SO_TIMESTAMP_NEW || !stampOf(c.ms[0].data, true).Equal(c.at.Truncate(time.Microsecond)) {
			t.Fatalf("child %d: messages %+v, want SO_TIMESTAMP_NEW at %v", i, c.ms, c.at)
		}
	}
	// The first child's time is its own data's, not the second's.
	oob := make([]byte, 64)
	queuedEv(t, srv[0], waiter.EventIn, func() { cli[0].Send([]byte("again"), 0) })
	again := clk.Now()
	_, oobn, _, _, err := srv[0].RecvMsgControl(make([]byte, 16), oob, MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	if ms := parseTestCmsgs(t, oob[:oobn]); len(ms) != 1 || !stampOf(ms[0].data, true).Equal(again.Truncate(time.Microsecond)) {
		t.Fatalf("messages %+v, want the latest arrival %v", ms, again)
	}
}

// TestTCPTimestampOptID: OPT_ID is refused on an unconnected or
// listening TCP socket, taken on a connected one.
func TestTCPTimestampOptID(t *testing.T) {
	_, cli, _ := tcpStampRig(t, 1, func(l *Socket) {
		if err := l.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_OPT_ID); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("OPT_ID on a bound socket: %v, want EINVAL", err)
		}
	})
	if err := cli[0].SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_OPT_ID|SOF_TIMESTAMPING_SOFTWARE); err != nil {
		t.Fatalf("OPT_ID connected: %v", err)
	}
}

// TestTCPRxTimestampOwnRecord: connections keep their own arrival
// times, whether each set the option or all inherited it from their
// listener (whose record a child must not share).
func TestTCPRxTimestampOwnRecord(t *testing.T) {
	on := func(s *Socket) {
		if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, inherited := range []bool{false, true} {
		var lopts func(*Socket)
		if inherited {
			lopts = on
		}
		clk, cli, srv := tcpStampRig(t, 2, lopts)
		if !inherited {
			on(srv[0])
			on(srv[1])
		}
		first := clk.Now()
		queuedEv(t, srv[0], waiter.EventIn, func() { cli[0].Send([]byte("first"), 0) })
		clk.Advance(time.Second)
		second := clk.Now()
		queuedEv(t, srv[1], waiter.EventIn, func() { cli[1].Send([]byte("second"), 0) })
		clk.Advance(time.Second)
		for i, want := range []time.Time{first, second} {
			oob := make([]byte, 64)
			_, oobn, _, _, err := srv[i].RecvMsgControl(make([]byte, 16), oob, MSG_DONTWAIT)
			if err != nil {
				t.Fatal(err)
			}
			if ms := parseTestCmsgs(t, oob[:oobn]); len(ms) != 1 || !stampOf(ms[0].data, false).Equal(want) {
				t.Fatalf("inherited %v, connection %d: messages %+v, want its own arrival %v", inherited, i, ms, want)
			}
		}
	}
}
