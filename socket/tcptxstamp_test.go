package socket

import (
	"testing"
	"time"

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
