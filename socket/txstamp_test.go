package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// txReport is one report read from the error queue.
type txReport struct {
	payload []byte
	stamp   time.Time // SCM_TIMESTAMPING's software time; zero: none
	ee      SockExtendedErr
	ms      []testCmsg
}

// readTx reads one report of s's error queue.
func readTx(t *testing.T, s *Socket) txReport {
	t.Helper()
	buf, oob := make([]byte, 256), make([]byte, 512)
	n, oobn, rflags, from, err := s.RecvMsgControl(buf, oob, MSG_ERRQUEUE)
	if err != nil {
		t.Fatalf("recvmsg MSG_ERRQUEUE: %v", err)
	}
	if rflags&MSG_ERRQUEUE == 0 || from != nil {
		t.Fatalf("flags %#x, from %v: want MSG_ERRQUEUE and no address", rflags, from)
	}
	r := txReport{payload: buf[:n], ms: parseTestCmsgs(t, oob[:oobn])}
	ne := binary.NativeEndian
	for _, m := range r.ms {
		switch {
		case m.level == SOL_SOCKET && m.typ == SCM_TIMESTAMPING:
			r.stamp = stampOf(m.data, false)
		case m.typ == IP_RECVERR && m.level == SOL_IP || m.typ == IPV6_RECVERR && m.level == IPPROTO_IPV6:
			d := m.data
			r.ee = SockExtendedErr{Errno: syscall.Errno(ne.Uint32(d)), Origin: d[4], Type: d[5], Code: d[6],
				Info: ne.Uint32(d[8:]), Data: ne.Uint32(d[12:])}
		}
	}
	return r
}

// TestTxTimestampReports: TX_SCHED and TX_SOFTWARE each queue a report
// taken at the send (the manual clock's time), SCHED first, with the
// looped frame (Ethernet, IP, UDP, data) and OPT_ID's key; a read gives
// SCM_TIMESTAMPING then the extended error, and POLLERR goes with the
// queue.
func TestTxTimestampReports(t *testing.T) {
	for _, fam := range []int{AF_INET, AF_INET6} {
		g := newStampRig(t, fam)
		s := g.w
		fl := SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID
		if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, fl); err != nil {
			t.Fatal(err)
		}
		if s.Readiness(waiter.EventOut)&waiter.EventErr != 0 {
			t.Fatal("POLLERR before any send")
		}
		sent := g.clk.Now()
		queuedEv(t, s, waiter.EventErr, func() {
			if _, err := s.SendTo([]byte("hello"), 0, g.to); err != nil {
				t.Fatal(err)
			}
		})
		if _, err := s.SendTo([]byte("again"), 0, g.to); err != nil {
			t.Fatal(err)
		}
		g.clk.Advance(time.Second) // the report keeps the send's time
		hdr := 14 + 20 + 8
		if fam == AF_INET6 {
			hdr = 14 + 40 + 8
		}
		for i, want := range []struct {
			data       string
			info, key  uint32
			afterFirst bool
		}{{"hello", SCM_TSTAMP_SCHED, 0, false}, {"hello", SCM_TSTAMP_SND, 0, false}, {"again", SCM_TSTAMP_SCHED, 1, true}, {"again", SCM_TSTAMP_SND, 1, true}} {
			if s.Readiness(waiter.EventIn)&waiter.EventErr == 0 {
				t.Fatalf("%d: no POLLERR with reports queued", i)
			}
			r := readTx(t, s)
			if len(r.payload) != hdr+5 || string(r.payload[hdr:]) != want.data {
				t.Fatalf("%d: payload %x, want %d header bytes then %q", i, r.payload, hdr, want.data)
			}
			if r.ee.Errno != syscall.ENOMSG || r.ee.Origin != SO_EE_ORIGIN_TIMESTAMPING || r.ee.Info != want.info || r.ee.Data != want.key {
				t.Fatalf("%d: %+v, want ENOMSG, origin 4, info %d, data %d", i, r.ee, want.info, want.key)
			}
			if !r.stamp.Equal(sent) {
				t.Fatalf("%d: stamp %v, want the send's %v", i, r.stamp, sent)
			}
			if len(r.ms) != 2 || r.ms[0].typ != SCM_TIMESTAMPING {
				t.Fatalf("%d: messages %+v, want SCM_TIMESTAMPING then the error", i, r.ms)
			}
		}
		if s.Readiness(waiter.EventIn)&waiter.EventErr != 0 {
			t.Fatal("POLLERR with the queue empty")
		}
		if _, _, _, _, err := s.RecvMsgControl(make([]byte, 8), nil, MSG_ERRQUEUE); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("empty queue: %v, want EAGAIN", err)
		}
	}
}

// TestTxTimestampPerSend: an SO_TIMESTAMPING control message asks one
// send's reports on a socket without record flags, SCM_TS_OPT_ID sets
// its key (EINVAL without OPT_ID), and a send that fails takes no key.
func TestTxTimestampPerSend(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	tx := ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_TX_SOFTWARE)
	if _, err := s.SendMsgControl([]byte("k"), ctlInt(SOL_SOCKET, SCM_TS_OPT_ID, 9), 0, g.to); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("SCM_TS_OPT_ID without OPT_ID: %v, want EINVAL", err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_SOFTWARE|SOF_TIMESTAMPING_OPT_ID|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("plain"), 0, g.to); err != nil {
		t.Fatal(err)
	}
	if n := s.ErrQueueLen(); n != 0 {
		t.Fatalf("a send without record flags queued %d reports", n)
	}
	if _, err := s.SendMsgControl(make([]byte, 70000), tx, 0, g.to); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("oversized send: %v", err)
	}
	for _, c := range []struct {
		oob []byte
		key uint32
	}{
		{tx, 0}, // the failed send took no key
		{append(append([]byte(nil), tx...), ctlInt(SOL_SOCKET, SCM_TS_OPT_ID, 1000)...), 1000},
		{tx, 1},
	} {
		if _, err := s.SendMsgControl([]byte("x"), c.oob, 0, g.to); err != nil {
			t.Fatal(err)
		}
		r := readTx(t, s)
		if len(r.payload) != 0 || r.ee.Info != SCM_TSTAMP_SND || r.ee.Data != c.key {
			t.Fatalf("report %+v (%d bytes), want SND with key %d and no payload (OPT_TSONLY)", r.ee, len(r.payload), c.key)
		}
	}
}

// TestTxTimestampBounded: reports are charged against SO_RCVBUF as
// other errors are; what does not fit is dropped and counted, and
// reading makes room again.
func TestTxTimestampBounded(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	if err := s.SetSockOpt(SOL_SOCKET, SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE); err != nil {
		t.Fatal(err)
	}
	before, global := s.ErrQueueDrops(), stack.TxStampDrops()
	const sends = 50
	for i := 0; i < sends; i++ {
		if _, err := s.SendTo([]byte("fill"), 0, g.to); err != nil {
			t.Fatal(err)
		}
	}
	q, dropped := s.ErrQueueLen(), int(s.ErrQueueDrops()-before)
	if q == 0 || q >= sends || q+dropped != sends {
		t.Fatalf("%d queued, %d dropped of %d: want a bounded queue and every other report counted", q, dropped, sends)
	}
	if g := stack.TxStampDrops() - global; g < uint64(dropped) {
		t.Fatalf("process-wide count %d, want at least %d", g, dropped)
	}
	for i := 0; i < q; i++ {
		readTx(t, s)
	}
	if _, err := s.SendTo([]byte("room"), 0, g.to); err != nil {
		t.Fatal(err)
	}
	if s.ErrQueueLen() != 1 {
		t.Fatal("no room after the queue was read")
	}
}

// TestTxTimestampRecvErrOff: turning IP_RECVERR off drops the queued
// ICMP errors but keeps the timestamp reports (skb_errqueue_purge).
func TestTxTimestampRecvErrOff(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	for _, o := range [][3]int{{SOL_IP, IP_RECVERR, 1}, {SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY}} {
		if err := s.SetSockOpt(o[0], o[1], o[2]); err != nil {
			t.Fatal(err)
		}
	}
	g.r.Close() // an ICMP port unreachable follows the report
	e := waiter.Entry{C: make(chan struct{}, 8)}
	s.Waiter().Register(&e, waiter.EventErr)
	defer s.Waiter().Unregister(&e)
	if _, err := s.SendTo([]byte("x"), 0, g.to); err != nil {
		t.Fatal(err)
	}
	for s.ErrQueueLen() < 2 {
		select {
		case <-e.C:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d errors queued, want the report and the ICMP error", s.ErrQueueLen())
		}
	}
	if err := s.SetSockOpt(SOL_IP, IP_RECVERR, 0); err != nil {
		t.Fatal(err)
	}
	if s.ErrQueueLen() != 1 {
		t.Fatalf("%d left, want the report only", s.ErrQueueLen())
	}
	if r := readTx(t, s); r.ee.Origin != SO_EE_ORIGIN_TIMESTAMPING {
		t.Fatalf("left %+v, want the timestamp report", r.ee)
	}
}

// TestTxTimestampKeysConcurrent: concurrent senders each get a key of
// their own, 0..n-1 with none repeated or skipped.
func TestTxTimestampKeysConcurrent(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	if err := s.SetSockOpt(SOL_SOCKET, SO_RCVBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE|SOF_TIMESTAMPING_OPT_ID|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.SendTo([]byte("c"), 0, g.to); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for i := 0; i < workers*each; i++ {
		r := readTx(t, s)
		if r.ee.Data >= workers*each || seen[r.ee.Data] {
			t.Fatalf("key %d repeated or out of range", r.ee.Data)
		}
		seen[r.ee.Data] = true
	}
}

// TestTxTimestampPing: a ping socket's looped copy is the echo request
// as sent, with the socket's identifier.
func TestTxTimestampPing(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := mustSocket(t, g.w.net, AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte{8, 0, 0, 0, 0, 0, 0, 1, 'p'}, 0, Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	name, err := s.GetSockName()
	if err != nil {
		t.Fatal(err)
	}
	id := name.(*SockaddrInet).AddrPort.Port()
	r := readTx(t, s)
	p := r.payload
	if len(p) != 14+20+9 || p[34] != 8 || binary.BigEndian.Uint16(p[38:]) != id || p[42] != 'p' {
		t.Fatalf("looped %x, want an echo request with identifier %d", p, id)
	}
}

// TestTxTimestampPacket: a packet socket's report carries the frame as
// it went on the link (the Ethernet header the stack added), its time
// and PACKET_TX_TIMESTAMP; POLLERR goes with the queue; a full receive
// buffer drops reports and counts them.
func TestTxTimestampPacket(t *testing.T) {
	clk := clockAt(t)
	p := newPair(t, 1500, stack.Options{Clock: clk})
	s := mustSocket(t, p.a, AF_PACKET, SOCK_DGRAM, Htons(0x88b5))
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE|SOF_TIMESTAMPING_OPT_ID); err != nil {
		t.Fatal(err)
	}
	to := &SockaddrPacket{Ifindex: 2, Protocol: 0x88b5, HWAddr: macB}
	sent := clk.Now()
	if _, err := s.SendTo([]byte("frame"), 0, to); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if s.Readiness(waiter.EventIn)&waiter.EventErr == 0 {
		t.Fatal("no POLLERR with a report queued")
	}
	buf, oob := make([]byte, 64), make([]byte, 256)
	n, oobn, rflags, from, err := s.RecvMsgControl(buf, oob, MSG_ERRQUEUE)
	if err != nil || rflags&MSG_ERRQUEUE == 0 || from != nil {
		t.Fatalf("recvmsg: %#x %v %v", rflags, from, err)
	}
	f := buf[:n]
	if n != 14+5 || !bytes.Equal(f[:6], macB[:]) || !bytes.Equal(f[6:12], macA[:]) || binary.BigEndian.Uint16(f[12:]) != 0x88b5 || string(f[14:]) != "frame" {
		t.Fatalf("frame %x, want the one sent", f)
	}
	ms := parseTestCmsgs(t, oob[:oobn])
	if len(ms) != 2 || ms[0].typ != SCM_TIMESTAMPING || !stampOf(ms[0].data, false).Equal(sent) ||
		ms[1].level != SOL_PACKET || ms[1].typ != PACKET_TX_TIMESTAMP || len(ms[1].data) != 16 ||
		binary.NativeEndian.Uint32(ms[1].data) != uint32(syscall.ENOMSG) || ms[1].data[4] != SO_EE_ORIGIN_TIMESTAMPING {
		t.Fatalf("messages %+v", ms)
	}
	if _, _, _, _, err := s.RecvMsgControl(buf, oob, MSG_ERRQUEUE); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("empty queue: %v", err)
	}
	// recvmsg without a control buffer reads the report too, not a frame.
	if _, err := s.SendTo([]byte("plain"), 0, to); err != nil {
		t.Fatal(err)
	}
	if n, rflags, _, err := s.RecvMsg(buf, MSG_ERRQUEUE); err != nil || rflags&MSG_ERRQUEUE == 0 || string(buf[14:n]) != "plain" {
		t.Fatalf("RecvMsg MSG_ERRQUEUE: %q %#x %v", buf[:n], rflags, err)
	}
	if err := s.SetSockOpt(SOL_SOCKET, SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := s.SendTo([]byte("fill"), 0, to); err != nil {
			t.Fatal(err)
		}
	}
	q := 0
	for ; ; q++ {
		if _, _, _, _, err := s.RecvMsgControl(buf, oob, MSG_ERRQUEUE); err != nil {
			break
		}
	}
	if q == 0 || q+int(s.TxStampDrops()) != 20 {
		t.Fatalf("%d queued, %d dropped of 20", q, s.TxStampDrops())
	}
}

func clockAt(t *testing.T) *clock.Manual {
	t.Helper()
	return clock.NewManual(time.Unix(1700000000, 42))
}

// TestTxTimestampSelectErrQueue: with SO_SELECT_ERR_QUEUE a poller
// waiting for POLLPRI alone wakes when a report is queued; without it,
// the report gives POLLERR only.
func TestTxTimestampSelectErrQueue(t *testing.T) {
	g := newStampRig(t, AF_INET)
	s := g.w
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("a"), 0, g.to); err != nil {
		t.Fatal(err)
	}
	if r := s.Readiness(waiter.EventPri); r&waiter.EventPri != 0 || r&waiter.EventErr == 0 {
		t.Fatalf("readiness %#x without the option: want POLLERR only", r)
	}
	readTx(t, s)
	if err := s.SetSockOpt(SOL_SOCKET, SO_SELECT_ERR_QUEUE, 1); err != nil {
		t.Fatal(err)
	}
	p := NewPoller()
	defer p.Close()
	if err := p.Add(s, waiter.EventPri, 7); err != nil {
		t.Fatal(err)
	}
	done := make(chan waiter.EventMask)
	go func() {
		ev := make([]PollEvent, 1)
		n, err := p.Wait(ev, 5*time.Second)
		if err != nil || n != 1 {
			done <- 0
			return
		}
		done <- ev[0].Events
	}()
	if _, err := s.SendTo([]byte("b"), 0, g.to); err != nil {
		t.Fatal(err)
	}
	if ev := <-done; ev&waiter.EventPri == 0 || ev&waiter.EventErr == 0 {
		t.Fatalf("poller woke with %#x, want POLLPRI and POLLERR", ev)
	}
	readTx(t, s)
	if r := s.Readiness(waiter.EventPri); r&(waiter.EventPri|waiter.EventErr) != 0 {
		t.Fatalf("readiness %#x with the queue read", r)
	}
}
