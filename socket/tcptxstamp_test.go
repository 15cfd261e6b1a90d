package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

// waitEv waits up to 5 s for s to show an event of mask after do ran.
func waitEv(t *testing.T, s *Socket, mask waiter.EventMask, do func()) bool {
	t.Helper()
	e := waiter.Entry{C: make(chan struct{}, 1)}
	s.Waiter().Register(&e, mask)
	defer s.Waiter().Unregister(&e)
	do()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for s.Readiness(mask)&mask == 0 {
		select {
		case <-e.C:
		case <-timer.C:
			return false
		}
	}
	return true
}

// tcpTxRead reads one report: its ee_info and ee_data.
func tcpTxRead(t *testing.T, s *Socket) (info, data uint32) {
	t.Helper()
	_, _, _, ee, err := s.RecvErr(make([]byte, 64), MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("read of the error queue: %v", err)
	}
	if ee.Origin != SO_EE_ORIGIN_TIMESTAMPING || ee.Errno != 42 {
		t.Fatalf("report %+v, want origin %d errno ENOMSG", ee, SO_EE_ORIGIN_TIMESTAMPING)
	}
	return ee.Info, ee.Data
}

// TestTCPTxStampAckReport: TX_ACK alone queues its report when the
// peer's ACK comes, and POLLERR shows it.
func TestTCPTxStampAckReport(t *testing.T) {
	clk, cli, srv := tcpStampRig(t, 1, nil)
	c, s := cli[0], srv[0]
	if err := c.SetSockOptInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_TX_ACK|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	queuedEv(t, s, waiter.EventIn, func() {
		if _, err := c.Send([]byte("x"), 0); err != nil {
			t.Fatal(err)
		}
	})
	if !waitEv(t, c, waiter.EventErr, func() { clk.Advance(time.Second) }) {
		t.Fatalf("no report; queue %d", c.ErrQueueLen())
	}
	if info, _ := tcpTxRead(t, c); info != SCM_TSTAMP_ACK {
		t.Fatalf("ee_info %d, want SCM_TSTAMP_ACK", info)
	}
}

// TestTCPTxStampControlMessage: an SO_TIMESTAMPING control message asks
// one send's reports in place of the socket's flags; a send without one
// uses the socket's (here none).
func TestTCPTxStampControlMessage(t *testing.T) {
	_, cli, _ := tcpStampRig(t, 1, nil)
	c := cli[0]
	if err := c.SetSockOptInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	send := func(oob []byte) {
		t.Helper()
		if n, err := c.SendMsgControl([]byte("ab"), oob, 0, nil); n != 2 || err != nil {
			t.Fatalf("sendmsg: %d, %v", n, err)
		}
	}
	if !waitEv(t, c, waiter.EventErr, func() { send(ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_TX_SOFTWARE)) }) {
		t.Fatal("no report")
	}
	if info, _ := tcpTxRead(t, c); info != SCM_TSTAMP_SND {
		t.Fatalf("ee_info %d, want SCM_TSTAMP_SND", info)
	}
	if _, err := c.Send([]byte("plain"), 0); err != nil {
		t.Fatal(err)
	}
	send(ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, 0))
	// Reports queue in order: one for the sends before would come first.
	if !waitEv(t, c, waiter.EventErr, func() { send(ctlInt(SOL_SOCKET, SO_TIMESTAMPING_NEW, SOF_TIMESTAMPING_TX_SCHED)) }) {
		t.Fatal("no report")
	}
	if info, _ := tcpTxRead(t, c); info != SCM_TSTAMP_SCHED {
		t.Fatalf("ee_info %d, want SCM_TSTAMP_SCHED", info)
	}
	if n := c.ErrQueueLen(); n != 0 {
		t.Fatalf("%d more queued", n)
	}
	// The report set no pending error: a read finds no data, not an error.
	if _, err := c.Recv(make([]byte, 8), MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("recv: %v, want EAGAIN", err)
	}
}

// TestTCPTxStampRxOnly: a socket with receive timestamps only queues no
// transmit report.
func TestTCPTxStampRxOnly(t *testing.T) {
	_, cli, srv := tcpStampRig(t, 1, nil)
	c, s := cli[0], srv[0]
	if err := c.SetSockOptInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_RX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE); err != nil {
		t.Fatal(err)
	}
	queuedEv(t, s, waiter.EventIn, func() {
		if _, err := c.Send([]byte("x"), 0); err != nil {
			t.Fatal(err)
		}
	})
	if n := c.ErrQueueLen(); n != 0 {
		t.Fatalf("%d reports queued", n)
	}
}

// TestTCPTxFlags: the SO_TIMESTAMPING bits the endpoint acts on.
func TestTCPTxFlags(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want tcp.TxStampFlags
	}{
		{SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_ACK, tcp.TxStampSched | tcp.TxStampSnd | tcp.TxStampAck},
		{SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_OPT_ID, tcp.TxStampKey | tcp.TxStampID},
		{SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_ID_TCP | SOF_TIMESTAMPING_TX_COMPLETION, tcp.TxStampID | tcp.TxStampIDTCP | tcp.TxStampKey},
		{SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY, tcp.TxStampTSOnly},
		{SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, 0},
	} {
		if got := tcpTxFlags(c.in); got != c.want {
			t.Errorf("%#x: %#x, want %#x", c.in, got, c.want)
		}
	}
}

// TestTCPTxStampOneReportPerSend: a send that has to wait for room in
// between still makes one report, for its last byte, as Linux's
// tcp_sendmsg marks only the tail at its end; a non-blocking send that
// queued part of its bytes marks the last byte it queued, if that has
// not left yet.
func TestTCPTxStampOneReportPerSend(t *testing.T) {
	_, cli, srv := tcpStampRig(t, 1, nil)
	c, s := cli[0], srv[0]
	if err := c.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSockOptInt(SOL_SOCKET, SO_TIMESTAMPING_OLD,
		SOF_TIMESTAMPING_TX_SCHED|SOF_TIMESTAMPING_OPT_TSONLY|SOF_TIMESTAMPING_OPT_ID|SOF_TIMESTAMPING_OPT_ID_TCP); err != nil {
		t.Fatal(err)
	}
	// Non-blocking, more than the buffer holds: part is queued.
	big := make([]byte, 1<<20)
	n1, err := c.Send(big, MSG_DONTWAIT)
	if err != nil || n1 <= 0 || n1 >= len(big) {
		t.Fatalf("non-blocking send: %d, %v; want part of %d", n1, err, len(big))
	}
	// Blocking, far more than the buffer: it waits for the reader many
	// times over.
	const n2 = 300 << 10
	done := make(chan error, 1)
	go func() {
		s.SetTimeout(10 * time.Second)
		buf := make([]byte, 64<<10)
		for got := 0; got < n1+n2; {
			k, err := s.Recv(buf, 0)
			if err != nil {
				done <- err
				return
			}
			got += k
		}
		done <- nil
	}()
	c.SetTimeout(10 * time.Second)
	if err := c.SendAll(make([]byte, n2), 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var keys []uint32
	for c.ErrQueueLen() > 0 {
		info, data := tcpTxRead(t, c)
		if info != SCM_TSTAMP_SCHED {
			t.Fatalf("ee_info %d, want SCM_TSTAMP_SCHED", info)
		}
		keys = append(keys, data)
	}
	// The non-blocking send's last byte has a report only if it had not
	// left when the send returned (as Linux); the blocking one's always.
	last := uint32(n1 + n2 - 1)
	switch {
	case len(keys) == 1 && keys[0] == last:
	case len(keys) == 2 && keys[0] == uint32(n1-1) && keys[1] == last:
	default:
		t.Fatalf("reports with keys %v, want [%d] or [%d %d] (one per send, its last byte)", keys, last, n1-1, last)
	}
}

// A report on the error queue is no pending error: a blocking send that
// fills the send buffer and waits for room goes on to its end though
// the socket shows POLLERR meanwhile, as tcp_sendmsg stops only for
// sk_err. It returned a short count before.
func TestTCPTxStampReportDoesNotCutSend(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	cli, srv := tcpConn(t, p, 7402, nil)
	if err := cli.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := cli.SetSockOptInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_TX_SCHED|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Send([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	// The report stays unread: the socket shows POLLERR from here on,
	// and Poll says so without being asked.
	fds := []PollFD{{Socket: cli}}
	if n, err := Poll(fds, time.Second); n != 1 || err != nil || fds[0].Revents&waiter.EventErr == 0 {
		t.Fatalf("poll of a socket with a report queued: %d %v %#x, want POLLERR", n, err, fds[0].Revents)
	}
	const size = 1 << 20
	got := make(chan int, 1)
	go func() {
		b, total := make([]byte, 64<<10), 0
		for total < size+1 {
			n, err := srv.Recv(b, 0)
			if err != nil || n == 0 {
				break
			}
			total += n
		}
		got <- total
	}()
	if n, err := cli.Send(make([]byte, size), 0); n != size || err != nil {
		t.Fatalf("blocking send of %d bytes through a 4 KB buffer: %d, %v", size, n, err)
	}
	if n := <-got; n != size+1 {
		t.Fatalf("peer read %d bytes, want %d", n, size+1)
	}
	if cli.ErrQueueLen() < 2 {
		t.Fatalf("%d reports queued, want the first send's and the second's", cli.ErrQueueLen())
	}
}
