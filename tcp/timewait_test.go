package tcp

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// twCycle makes conns connections from A to a listener on B, each closed
// by the client first so that A keeps its 4-tuple in TIME_WAIT; it
// returns how many TIME_WAIT rows A's table shows.
func twCycle(t testing.TB, n *pairNet, l *Endpoint, conns int) int {
	dst := netip.AddrPortFrom(ipB, 80)
	for i := 0; i < conns; i++ {
		c := n.a.NewEndpoint()
		c.Connect(dst)
		n.flush()
		s, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		n.flush()
		s.Close()
		n.flush()
		if s.State() != StateClosed {
			t.Fatalf("server %v", s.State())
		}
	}
	tw := 0
	for _, r := range n.a.Table() {
		if r.State == StateTimeWait {
			tw++
		}
	}
	return tw
}

// TestTimeWaitMemory: a TIME_WAIT entry is a small record, not the
// endpoint (about 1.1 KB plus a timer before).
func TestTimeWaitMemory(t *testing.T) {
	const conns = 3000
	n := newPair(1, Config{})
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(4096)
	// Warm up the pair's packet pool and the tables.
	twCycle(t, n, l, 10)
	n.clk.Advance(time.Millisecond) // the manual clock drops stopped timers
	before := liveHeap()
	if got := twCycle(t, n, l, conns); got != conns+10 {
		t.Fatalf("%d TIME_WAIT entries, want %d", got, conns+10)
	}
	n.clk.Advance(time.Millisecond)
	per := float64(liveHeap()-before) / conns
	if per <= 0 {
		t.Fatalf("measured %.0f bytes per entry: the measurement is broken", per)
	}
	t.Logf("%.0f bytes per TIME_WAIT entry", per)
	if per > 600 {
		t.Errorf("a TIME_WAIT entry costs %.0f bytes", per)
	}
	runtime.KeepAlive(l)
}

// TestTimeWaitCap: beyond MaxTimeWait a closing connection skips
// TIME_WAIT, counted; expired records free their slots.
func TestTimeWaitCap(t *testing.T) {
	n := newPair(2, Config{MaxTimeWait: 10})
	l := n.b.NewEndpoint()
	l.Bind(netip.AddrPortFrom(ipB, 80))
	l.Listen(64)
	if got := twCycle(t, n, l, 25); got != 10 {
		t.Fatalf("%d TIME_WAIT entries, want 10", got)
	}
	st := n.a.Stats()
	if st.TimeWaitOverflow != 15 || st.TimeWaitRecords != 10 {
		t.Fatalf("overflow %d records %d", st.TimeWaitOverflow, st.TimeWaitRecords)
	}
	n.clk.Advance(2 * 30 * time.Second)
	if st := n.a.Stats(); st.TimeWaitRecords != 0 || len(n.a.Table()) != 0 {
		t.Fatalf("after 2*MSL: records %d table %v", st.TimeWaitRecords, n.a.Table())
	}
	n.a.mu.RLock()
	ports := len(n.a.ports)
	n.a.mu.RUnlock()
	if ports != 0 {
		t.Fatalf("%d ports still held", ports)
	}
	if got := twCycle(t, n, l, 5); got != 5 {
		t.Fatalf("%d TIME_WAIT entries after expiry", got)
	}
}

// TestTimeWaitRecordAnswers: the record re-ACKs a retransmitted FIN
// every time (restarting 2*MSL), rate-limits other answers, keeps PAWS,
// ends on an exact RST, ignores an inexact one, and holds its port
// against bind without SO_REUSEADDR.
func TestTimeWaitRecordAnswers(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(peerSynOpts(100))
	ts := func(v uint32) wire.TCPOptions { return wire.TCPOptions{HasTS: true, TSVal: v} }
	c.Close()
	s.out()
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts(200)})
	a := s.expectOne("ACK of FIN")
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	for i := 0; i < 3; i++ {
		s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts(201)})
		r := s.expectOne("ACK of retransmitted FIN")
		check(t, "re-ACK", r, fA, iss+2, 1002, 0)
		if r.h.Window != a.h.Window || !r.h.Options.HasTS || r.h.Options.TSEcr != 201 || r.h.Options.TSVal-a.h.Options.TSVal > 10 {
			t.Fatalf("re-ACK %v, first %v", r, a)
		}
	}
	// Stray data: one ACK per 500 ms at most.
	for i := 0; i < 100; i++ {
		s.inject(seg{flags: fPA, seq: 5000, ack: iss + 2, win: 65535, opts: ts(202), data: []byte("x")})
	}
	if o := s.out(); len(o) != 1 {
		t.Fatalf("100 stray segments drew %d ACKs", len(o))
	}
	// PAWS: an old timestamp is dropped.
	s.clk.Advance(time.Second)
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts(150)})
	s.expectOne("PAWS ACK")
	if st := s.p.Stats(); st.PAWSDrops != 1 || st.ACKSkippedTimeWait != 99 {
		t.Fatalf("PAWS %d skipped %d", st.PAWSDrops, st.ACKSkippedTimeWait)
	}
	// The port is held: bind without SO_REUSEADDR fails, with it works.
	b := s.p.NewEndpoint()
	if err := b.Bind(c.LocalAddr()); err == nil {
		t.Fatal("bind over a TIME_WAIT record without SO_REUSEADDR")
	}
	b.SetReuseAddr(true)
	b2 := s.p.NewEndpoint()
	b2.SetReuseAddr(true)
	if err := b2.Bind(netip.AddrPortFrom(localIP, 9999)); err != nil {
		t.Fatal(err)
	}
	// An inexact RST is ignored; an exact one ends the record.
	s.inject(seg{flags: fR, seq: 1500})
	if !inTimeWait(c) {
		t.Fatal("inexact RST ended TIME_WAIT")
	}
	s.inject(seg{flags: fR, seq: 1002})
	s.expectNone("RST")
	if s.p.hasTimeWait(c.LocalAddr(), s.remote) || s.p.Stats().TimeWaitRecords != 0 {
		t.Fatal("exact RST did not end TIME_WAIT")
	}
}
