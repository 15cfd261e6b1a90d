package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// openAnother completes a handshake from peer port on listener l (which
// listens on s.local) and returns the accepted endpoint and our ISN.
func (s *script) openAnother(l *Endpoint, port uint16, opts wire.TCPOptions) (*Endpoint, uint32) {
	s.t.Helper()
	s.remote = netip.AddrPortFrom(remoteIP, port)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: opts})
	sa := s.expectOne("SYN-ACK")
	ack := wire.TCPOptions{}
	if opts.HasTS {
		ack.HasTS, ack.TSVal, ack.TSEcr = true, opts.TSVal+1, sa.h.Options.TSVal
	}
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 65535, opts: ack})
	s.expectNone("after handshake ACK")
	c, _, err := l.Accept()
	if err != nil {
		s.t.Fatalf("accept: %v", err)
	}
	return c, sa.h.Seq
}

// TestChallengeAckPerConnection: RSTs on one connection (CVE-2016-5696)
// must not use up the challenge ACKs of another.
func TestChallengeAckPerConnection(t *testing.T) {
	s := newScript(t, Config{})
	l, _, issA := s.passiveOpen(noOpts)
	portA := s.remote.Port()
	_, issB := s.openAnother(l, 40100, noOpts)
	s.remote = netip.AddrPortFrom(remoteIP, portA)
	for i := 0; i < 1000; i++ {
		s.inject(seg{flags: fR, seq: 1500 + uint32(i)})
	}
	if n := len(s.out()); n != 1 {
		t.Fatalf("1000 in-window RSTs within a second drew %d challenge ACKs, want 1", n)
	}
	s.remote = netip.AddrPortFrom(remoteIP, 40100)
	s.inject(seg{flags: fR, seq: 1500})
	check(t, "challenge on B", s.expectOne("challenge ACK on the other connection"), fA, issB+1, 1001, 0)
	if st := s.p.Stats(); st.ChallengeACKs != 2 || st.ChallengeACKsLimited != 999 {
		t.Fatalf("ChallengeACKs %d limited %d", st.ChallengeACKs, st.ChallengeACKsLimited)
	}
	_ = issA
}

// TestOutOfWindowAckRateLimit: a flood of out-of-window segments draws
// an ACK at most every 500 ms, while a plausible duplicate is still
// acknowledged at once and the connection keeps working.
func TestOutOfWindowAckRateLimit(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(peerSynOpts(100))
	ts := wire.TCPOptions{HasTS: true, TSVal: 200}
	sent := 0
	// 10,000 segments over 2 s of virtual time: data beyond the window,
	// pure ACKs with a wild sequence number, and PAWS-rejected data.
	for i := 0; i < 10000; i++ {
		switch i % 3 {
		case 0:
			s.inject(seg{flags: fPA, seq: 1001 + 1<<20 + uint32(i)*7919, ack: iss + 1, win: 65535, opts: ts, data: []byte("x")})
		case 1:
			s.inject(seg{flags: fA, seq: 1001 + 1<<31 + uint32(i), ack: iss + 1, win: 65535, opts: ts})
		case 2:
			s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, opts: wire.TCPOptions{HasTS: true, TSVal: 50}, data: []byte("y")})
		}
		sent += len(s.out())
		s.clk.Advance(200 * time.Microsecond)
	}
	if sent > 5 {
		t.Fatalf("10,000 out-of-window segments drew %d ACKs", sent)
	}
	if sent == 0 {
		t.Fatal("no ACK at all for invalid segments")
	}
	st := s.p.Stats()
	if st.ACKSkippedSeq+st.ACKSkippedPAWS != uint64(10000-sent) {
		t.Fatalf("skipped seq %d paws %d, sent %d", st.ACKSkippedSeq, st.ACKSkippedPAWS, sent)
	}
	// Real data still flows and is acknowledged.
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, opts: ts, data: []byte("hello")})
	s.clk.Advance(time.Second)
	if o := s.out(); len(o) != 1 || o[0].h.Ack != 1006 {
		t.Fatalf("data after the flood: %v", o)
	}
	if got := string(readAll(c)); got != "hello" {
		t.Fatalf("read %q", got)
	}
	// A duplicate of data we took is answered at once, limit or not.
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, opts: ts, data: []byte("hello")})
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, opts: ts, data: []byte("hello")})
	if o := s.out(); len(o) != 2 || o[0].h.Ack != 1006 || o[1].h.Ack != 1006 {
		t.Fatalf("duplicates: %v", o)
	}
}

// TestTimestampOffset: TSval does not reveal the stack's uptime; each
// 4-tuple gets its own offset, the same 4-tuple the same one, and RTT
// measurement and PAWS still work.
func TestTimestampOffset(t *testing.T) {
	synAckTS := func(cfg Config, port uint16) (uint32, uint32) {
		s := newScript(t, cfg)
		s.remote = netip.AddrPortFrom(remoteIP, port)
		l := s.p.NewEndpoint()
		l.Bind(s.local)
		l.Listen(8)
		s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(5)})
		sa := s.expectOne("SYN-ACK")
		return sa.h.Options.TSVal, uint32(s.p.now()/time.Millisecond) + 1
	}
	raw, up := synAckTS(Config{NoTimestampOffset: true}, 40000)
	if raw != up {
		t.Fatalf("without offset TSval %d, uptime %d", raw, up)
	}
	a, up := synAckTS(Config{}, 40000)
	b, _ := synAckTS(Config{}, 40001)
	a2, _ := synAckTS(Config{}, 40000)
	offA, offB := a-up, b-up
	if offA == offB || offA == 0 || offB == 0 {
		t.Fatalf("offsets %d and %d", offA, offB)
	}
	if a != a2 {
		t.Fatalf("the same 4-tuple got offsets %d and %d", offA, a2-up)
	}
	// Timestamps still measure RTT and protect against old duplicates
	// (a lossy transfer relies on both).
	n := newPair(3, Config{})
	n.delay = 5 * time.Millisecond
	n.loss = 0.02
	transfer(t, n, 200<<10, 10*time.Minute)
	n = newPair(4, Config{})
	n.delay = 5 * time.Millisecond
	c, srv := n.connect(t)
	c.Write([]byte("ping"))
	n.run(time.Second, func() bool { return c.Info().BytesAcked >= 4 })
	ci, si := c.Info(), srv.Info()
	if !ci.TimestampsOK || ci.RTT < 10*time.Millisecond || ci.RTT > 20*time.Millisecond {
		t.Fatalf("client RTT %v ts %v", ci.RTT, ci.TimestampsOK)
	}
	if c.tsOffset == srv.tsOffset {
		t.Fatalf("both ends have offset %d", c.tsOffset)
	}
	_ = si
}

// TestAcceptQueueFull: with the accept queue full, a SYN is dropped and
// the final ACK of a handshake is dropped too (no RST), so the client
// retries and gets in once accept makes room, as in Linux.
func TestAcceptQueueFull(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(2) // 3 connections may wait
	syn := func(port uint16) uint32 {
		s.remote = netip.AddrPortFrom(remoteIP, port)
		s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
		sa := s.expectOne("SYN-ACK")
		if sa.h.Flags != fSA {
			t.Fatalf("port %d: %v", port, sa)
		}
		return sa.h.Seq
	}
	ack := func(port uint16, iss uint32) {
		s.remote = netip.AddrPortFrom(remoteIP, port)
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	}
	issA := syn(1)
	issB := syn(2)
	ack(2, issB)
	issC := syn(3)
	ack(3, issC)
	issD := syn(4) // a cookie: the SYN queue (2) is full
	ack(4, issD)
	s.expectNone("handshakes")
	if st := s.p.Stats(); st.ListenOverflows != 0 {
		t.Fatalf("overflows %d before the queue is full", st.ListenOverflows)
	}
	// The queue holds 3: A's final ACK is dropped, not answered by a RST.
	ack(1, issA)
	s.expectNone("final ACK with the accept queue full")
	// A new SYN is dropped.
	s.remote = netip.AddrPortFrom(remoteIP, 5)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	s.expectNone("SYN with the accept queue full")
	if st := s.p.Stats(); st.ListenOverflows != 2 || st.ListenDrops != 2 {
		t.Fatalf("overflows %d drops %d", st.ListenOverflows, st.ListenDrops)
	}
	// Accept one; A's SYN-ACK is retransmitted, its ACK now completes.
	if _, _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	s.remote = netip.AddrPortFrom(remoteIP, 1)
	r, _ := s.waitOne(2 * time.Second)
	if r.h.Flags != fSA || r.h.Seq != issA {
		t.Fatalf("retransmitted SYN-ACK %v", r)
	}
	ack(1, issA)
	s.expectNone("completion")
	got := map[uint16]bool{}
	for {
		c, ra, err := l.Accept()
		if err != nil {
			break
		}
		if c.State() != StateEstablished {
			t.Fatal(c.State())
		}
		got[ra.Port()] = true
	}
	if !got[1] || !got[3] || !got[4] || len(got) != 3 {
		t.Fatalf("accepted %v", got)
	}
}

// inTimeWait reports whether e's connection ended in a TIME_WAIT record
// (the endpoint itself is CLOSED then, as in Linux).
func inTimeWait(e *Endpoint) bool {
	e.lock()
	st, l, r := e.state, e.local, e.remote
	e.unlock()
	return st == StateClosed && e.p.hasTimeWait(l, r)
}

// TestDSACKGeneration: a duplicate segment is acknowledged at once with
// a D-SACK block first (RFC 2883), for data below RCV.NXT (whole or
// partly) and for data already held out of order; it is reported once.
func TestDSACKGeneration(t *testing.T) {
	s := newScript(t, Config{})
	_, _, iss := s.passiveOpen(sackOpts)
	data := func(seq uint32, n int) {
		s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, n)})
	}
	blocks := func(c captured) []wire.SACKBlock { return c.h.Options.SACK[:c.h.Options.NumSACK] }
	data(1001, 1000)
	s.clk.Advance(time.Second)
	s.out()
	// The whole segment again.
	data(1001, 1000)
	a := s.expectOne("ACK of a duplicate")
	if b := blocks(a); a.h.Ack != 2001 || len(b) != 1 || b[0] != (wire.SACKBlock{Left: 1001, Right: 2001}) {
		t.Fatalf("duplicate: %v", a)
	}
	// Partly old: [1501,2501) reports [1501,2001).
	data(1501, 1000)
	a = s.expectOne("ACK of a partial duplicate")
	if b := blocks(a); a.h.Ack != 2501 || len(b) != 1 || b[0] != (wire.SACKBlock{Left: 1501, Right: 2001}) {
		t.Fatalf("partial duplicate: %v", a)
	}
	// Out of order, then the same again: D-SACK first, then the SACK.
	data(3001, 500)
	a = s.expectOne("ACK of out-of-order data")
	if b := blocks(a); len(b) != 1 || b[0] != (wire.SACKBlock{Left: 3001, Right: 3501}) {
		t.Fatalf("out of order: %v", a)
	}
	data(3001, 500)
	a = s.expectOne("ACK of an out-of-order duplicate")
	if b := blocks(a); a.h.Ack != 2501 || len(b) != 2 || b[0] != (wire.SACKBlock{Left: 3001, Right: 3501}) || b[1] != b[0] {
		t.Fatalf("out-of-order duplicate: %v", a)
	}
	// Reported once: the next ACK has only the SACK block.
	data(4001, 100)
	a = s.expectOne("ACK")
	if b := blocks(a); len(b) != 2 || b[0] != (wire.SACKBlock{Left: 4001, Right: 4101}) || b[1] != (wire.SACKBlock{Left: 3001, Right: 3501}) {
		t.Fatalf("after the D-SACK: %v", a)
	}
	if st := s.p.Stats(); st.DSACKOldSent != 2 || st.DSACKOfoSent != 1 {
		t.Fatalf("old %d ofo %d", st.DSACKOldSent, st.DSACKOfoSent)
	}
}

// TestDSACKUndo: an RTO whose retransmission the peer reports as a
// duplicate (the original was only delayed) has its cwnd and ssthresh
// reduction undone.
func TestDSACKUndo(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	before := c.Info()
	c.Write(make([]byte, 1000))
	s.out()
	for i := 0; i < 5000 && s.p.Stats().Timeouts == 0; i++ {
		s.clk.Advance(time.Millisecond)
	}
	s.out()
	if i := c.Info(); i.SndCwnd != 1 {
		t.Fatalf("after the RTO: cwnd %d", i.SndCwnd)
	}
	// The original arrived after all: the ACK carries a D-SACK for the
	// retransmission.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1001, win: 65535,
		opts: wire.TCPOptions{NumSACK: 1, SACK: [4]wire.SACKBlock{{Left: iss + 1, Right: iss + 1001}}}})
	i := c.Info()
	if i.SndCwnd < before.SndCwnd || i.SndSsthresh != before.SndSsthresh {
		t.Fatalf("not undone: cwnd %d ssthresh %d, before %d %d", i.SndCwnd, i.SndSsthresh, before.SndCwnd, before.SndSsthresh)
	}
	if st := s.p.Stats(); st.DSACKUndo != 1 {
		t.Fatalf("DSACKUndo %d", st.DSACKUndo)
	}
}

// TestBacklogSequentialClients is the conformance suite's backlog case
// with each handshake given time to finish before the next connect (as
// Linux's synchronous loopback does): backlog+1 clients connect, the
// others' SYNs are dropped and they stay in SYN_SENT.
func TestBacklogSequentialClients(t *testing.T) {
	for _, tc := range []struct{ backlog, clients int }{{0, 3}, {1, 5}, {3, 7}} {
		n := newPair(7, Config{})
		l := n.b.NewEndpoint()
		l.Bind(netip.AddrPortFrom(ipB, 80))
		l.Listen(tc.backlog)
		connected := 0
		var cs []*Endpoint
		for i := 0; i < tc.clients; i++ {
			c := n.a.NewEndpoint()
			c.Connect(netip.AddrPortFrom(ipB, 80))
			if n.run(300*time.Millisecond, func() bool { return c.State() == StateEstablished }) {
				connected++
			}
			cs = append(cs, c)
		}
		accepted := 0
		for {
			if _, _, err := l.Accept(); err != nil {
				break
			}
			accepted++
		}
		if connected != tc.backlog+1 || accepted != tc.backlog+1 {
			t.Errorf("backlog %d clients %d: connected %d accepted %d, Linux %d %d", tc.backlog, tc.clients, connected, accepted, tc.backlog+1, tc.backlog+1)
		}
		for _, c := range cs[tc.backlog+1:] {
			if c.State() != StateSynSent {
				t.Errorf("backlog %d: a client beyond the queue is %v", tc.backlog, c.State())
			}
		}
		if st := n.b.Stats(); st.ListenOverflows == 0 {
			t.Errorf("backlog %d: no ListenOverflows", tc.backlog)
		}
	}
}
