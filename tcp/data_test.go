package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

func TestDelayedAck(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	a, el := s.waitOne(time.Second)
	check(t, "delayed ACK", a, fA, iss+1, 1101, 0)
	if !near(el, 40*time.Millisecond) {
		t.Fatalf("delayed ACK after %v", el)
	}
	// Every second full-sized segment is acknowledged at once.
	s.inject(seg{flags: fA, seq: 1101, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("first full segment")
	s.inject(seg{flags: fA, seq: 2561, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	check(t, "second full segment", s.expectOne("ACK"), fA, iss+1, 4021, 0)
	// Out-of-order data is acknowledged at once.
	s.inject(seg{flags: fA, seq: 5000, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	check(t, "ooo", s.expectOne("dup ACK"), fA, iss+1, 4021, 0)
	if got := len(readAll(c)); got != 3020 {
		t.Fatalf("read %d", got)
	}
}

// More than one full segment unacknowledged is acknowledged at once, as
// Linux's __tcp_ack_snd_check: a full segment and a write's short tail
// (what a sender using Minshall's Nagle sends together) get their ACK
// without the delayed-ACK timer, a full segment alone does not.
func TestAckFullSegmentAndTail(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("one full segment")
	s.inject(seg{flags: fPA, seq: 2461, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	check(t, "full segment and tail", s.expectOne("ACK"), fA, iss+1, 2561, 0)
	// Exactly one full segment's worth waits for the timer.
	s.inject(seg{flags: fA, seq: 2561, ack: iss + 1, win: 65535, data: make([]byte, 1360)})
	s.inject(seg{flags: fPA, seq: 3921, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("1460 bytes in two segments")
	a, el := s.waitOne(time.Second)
	check(t, "delayed ACK", a, fA, iss+1, 4021, 0)
	if !near(el, 40*time.Millisecond) {
		t.Fatalf("delayed ACK after %v", el)
	}
}

// TestAckRidesOnReply: the first request of a connection is
// acknowledged at once (quickack mode); the reply, sent within the ACK
// timeout of the request, enters pingpong mode, and from then on the
// reply carries the ACK of each request (Linux's tcp_event_data_sent).
func TestAckRidesOnReply(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	for i := uint32(0); i < 3; i++ {
		s.inject(seg{flags: fPA, seq: 1001 + i, ack: iss + 1 + i, win: 65535, data: []byte{'q'}})
		if i == 0 {
			check(t, "first request", s.expectOne("ACK at once (quickack)"), fA, iss+1, 1002, 0)
			if c.QuickAck() != true {
				t.Fatal("pingpong mode before any reply")
			}
		} else {
			s.expectNone("request")
		}
		s.clk.Advance(5 * time.Millisecond)
		b := make([]byte, 10)
		if n, _ := c.Read(b, false); n != 1 {
			t.Fatal(n)
		}
		c.Write([]byte{'r'})
		r := s.expectOne("reply")
		check(t, "reply carries the ACK", r, fPA, iss+1+i, 1002+i, 1)
		if c.QuickAck() {
			t.Fatal("a reply within the ACK timeout did not enter pingpong mode")
		}
	}
	s.inject(seg{flags: fA, seq: 1004, ack: iss + 4, win: 65535})
	s.clk.Advance(time.Second)
	s.expectNone("no extra ACK")
}

func TestNagle(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("a"))
	check(t, "first small write", s.expectOne("a"), fPA, iss+1, 1001, 1)
	c.Write([]byte("b"))
	c.Write([]byte("c"))
	s.expectNone("Nagle holds small segments while one is in flight")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	check(t, "coalesced", s.expectOne("bc"), fPA, iss+2, 1001, 2)
	// A full segment is not held.
	c.Write(make([]byte, 1460))
	check(t, "full", s.expectOne("full"), fPA, iss+4, 1001, 1460)
	c.SetNoDelay(true)
	c.Write([]byte("d"))
	check(t, "nodelay", s.expectOne("d"), fPA, iss+4+1460, 1001, 1)
	c.Write([]byte("e"))
	check(t, "nodelay", s.expectOne("e"), fPA, iss+5+1460, 1001, 1)
	if !c.NoDelay() {
		t.Fatal("NoDelay")
	}
	// TCP_CORK holds partial segments until uncorked.
	c.SetNoDelay(false)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 6 + 1460, win: 65535})
	c.SetCork(true)
	c.Write([]byte("fg"))
	s.expectNone("corked")
	c.SetCork(false)
	check(t, "uncorked", s.expectOne("fg"), fPA, iss+6+1460, 1001, 2)
}

func TestRTOBackoffAndTimeout(t *testing.T) {
	s := newScript(t, Config{Retries2: 4})
	_, c, iss := s.passiveOpen(noOpts)
	rto := c.Info().RTO
	c.Write([]byte("hello"))
	s.expectOne("data")
	want := rto
	for i := 0; i < 4; i++ {
		r, el := s.waitOne(3 * time.Minute)
		check(t, "retransmission", r, fPA, iss+1, 1001, 5)
		if !near(el, want) {
			t.Fatalf("retransmission %d after %v, want %v", i, el, want)
		}
		if c.Info().Backoff != i+1 {
			t.Fatalf("backoff %d", c.Info().Backoff)
		}
		want *= 2
	}
	r, el := s.waitOne(3 * time.Minute)
	if r.h.Flags&fR == 0 || !near(el, want) {
		t.Fatalf("want RST after %v, got %v after %v", want, r, el)
	}
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
	if _, err := c.Read(make([]byte, 1), false); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("read: %v", err)
	}
	if st := s.p.Stats(); st.Timeouts != 4 || st.RetransSegs != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInitialRTO(t *testing.T) {
	s := newScript(t, Config{})
	// Peer handshake RTT of 0 gives the 200 ms floor; data RTO backs off from there.
	_, c, _ := s.passiveOpen(noOpts)
	if rto := c.Info().RTO; rto < minRTO || rto > minRTO+time.Millisecond {
		t.Fatalf("RTO %v", rto)
	}
}

func TestFastRetransmitNewReno(t *testing.T) {
	s := newScript(t, Config{CongestionControl: "newreno"})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write(make([]byte, 10*1460))
	if o := s.out(); len(o) != 10 {
		t.Fatalf("initial window: %d segments", len(o))
	}
	una := iss + 1
	// Segment 1 is lost; the peer sends duplicate ACKs for segments 2..4.
	for i := 0; i < 2; i++ {
		s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535})
		s.expectNone("dup ack")
	}
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535})
	r := s.expectOne("fast retransmit")
	check(t, "fast retransmit", r, fA, una, 1001, 1460)
	i := c.Info()
	if i.SndSsthresh != 5 || i.SndCwnd != 8 {
		t.Fatalf("ssthresh %d cwnd %d", i.SndSsthresh, i.SndCwnd)
	}
	// Partial ACK: segment 2 arrived before, segment 3 also lost:
	// the next hole is resent at once (RFC 6582).
	s.inject(seg{flags: fA, seq: 1001, ack: una + 2*1460, win: 65535})
	var got *captured
	for _, o := range s.out() {
		if o.h.Seq == una+2*1460 {
			o := o
			got = &o
		}
	}
	if got == nil {
		t.Fatal("partial ACK did not retransmit the next hole")
	}
	// Full ACK ends recovery with cwnd = ssthresh-ish.
	s.inject(seg{flags: fA, seq: 1001, ack: una + 10*1460, win: 65535})
	if st := s.p.Stats(); st.FastRetrans != 1 || st.RenoRecovery != 1 {
		t.Fatalf("stats %+v", st)
	}
	if i := c.Info(); i.SndCwnd > 6 || i.SndCwnd < 2 {
		t.Fatalf("cwnd after recovery %d", i.SndCwnd)
	}
}

func TestSACKGeneration(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	s.inject(seg{flags: fA, seq: 2001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	a := s.expectOne("SACK")
	if a.h.Ack != 1001 || a.h.Options.NumSACK != 1 || a.h.Options.SACK[0] != (wire.SACKBlock{Left: 2001, Right: 2101}) {
		t.Fatalf("SACK %v", a)
	}
	s.inject(seg{flags: fA, seq: 2201, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	a = s.expectOne("SACK 2")
	if a.h.Options.NumSACK != 2 || a.h.Options.SACK[0] != (wire.SACKBlock{Left: 2201, Right: 2301}) || a.h.Options.SACK[1] != (wire.SACKBlock{Left: 2001, Right: 2101}) {
		t.Fatalf("SACK %v", a)
	}
	// Filling the first hole advances the ACK and leaves one block.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1000)})
	a = s.expectOne("filled")
	if a.h.Ack != 2101 || a.h.Options.NumSACK != 1 || a.h.Options.SACK[0] != (wire.SACKBlock{Left: 2201, Right: 2301}) {
		t.Fatalf("after fill %v", a)
	}
	s.inject(seg{flags: fA, seq: 2101, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	a = s.expectOne("all filled")
	if a.h.Ack != 2301 || a.h.Options.NumSACK != 0 {
		t.Fatalf("after fill %v", a)
	}
	if n := len(readAll(c)); n != 1300 {
		t.Fatalf("read %d", n)
	}
}

func TestSACKRetransmit(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	c.Write(make([]byte, 10*1460))
	s.out()
	una := iss + 1
	sack := func(blocks ...wire.SACKBlock) wire.TCPOptions {
		o := wire.TCPOptions{NumSACK: len(blocks)}
		copy(o.SACK[:], blocks)
		return o
	}
	// Segments 1 and 3 lost; 2, 4, 5, 6 SACKed.
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sack(wire.SACKBlock{Left: una + 1460, Right: una + 2*1460})})
	s.expectNone("one SACK")
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sack(wire.SACKBlock{Left: una + 3*1460, Right: una + 4*1460}, wire.SACKBlock{Left: una + 1460, Right: una + 2*1460})})
	s.expectNone("two SACKs")
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sack(wire.SACKBlock{Left: una + 3*1460, Right: una + 6*1460}, wire.SACKBlock{Left: una + 1460, Right: una + 2*1460})})
	o := s.out()
	if len(o) == 0 || o[0].h.Seq != una || len(o[0].payload) != 1460 {
		t.Fatalf("SACK recovery did not resend the first hole: %v", o)
	}
	seen3 := false
	for _, x := range o[1:] {
		if x.h.Seq == una+2*1460 {
			seen3 = true
		}
		if x.h.Seq == una+1460 || x.h.Seq == una+3*1460 {
			t.Fatalf("resent SACKed data: %v", x)
		}
	}
	if !seen3 {
		t.Fatalf("second hole not resent: %v", o)
	}
	if st := s.p.Stats(); st.SACKRecovery != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestZeroWindowPersist(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 0})
	c.Write([]byte("blocked"))
	s.expectNone("zero window")
	rto := c.Info().RTO
	want := rto
	for i := 0; i < 3; i++ {
		p, el := s.waitOne(time.Minute)
		check(t, "probe", p, fA, iss, 1001, 0)
		if !near(el, want) {
			t.Fatalf("probe %d after %v, want %v", i, el, want)
		}
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 0}) // still closed
		s.expectNone("still closed")
		want *= 2
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 1000})
	check(t, "window opened", s.expectOne("data"), fPA, iss+1, 1001, 7)
	if st := s.p.Stats(); st.ZeroWindowProbes != 3 {
		t.Fatalf("probes %d", st.ZeroWindowProbes)
	}
}

func TestReceiveWindowAndWriteReadiness(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4096})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.inject(seg{flags: fA, seq: 2461, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	a := s.expectOne("ack")
	if a.h.Window != 4096-2920 {
		t.Fatalf("window %d", a.h.Window)
	}
	// Data beyond the window is not accepted.
	s.inject(seg{flags: fA, seq: 3921, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	a = s.expectOne("ack")
	if a.h.Ack != 3921+1176 {
		t.Fatalf("ack %v", a)
	}
	if a.h.Window != 0 {
		t.Fatalf("window %d", a.h.Window)
	}
	// Reading opens the window with an update.
	if n := len(readAll(c)); n != 4096 {
		t.Fatal(n)
	}
	a = s.expectOne("window update")
	if a.h.Window != 4096 {
		t.Fatalf("update %v", a)
	}
	if c.Readiness(waiter.EventOut) == 0 {
		t.Fatal("not writable")
	}
}

func TestWriteBufferWakeup(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetSendBuf(4096)
	total := 0
	for {
		n, err := c.Write(make([]byte, 10000))
		total += n
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatal(err)
			}
			break
		}
	}
	if total != 8192 {
		t.Fatalf("buffered %d", total)
	}
	if c.Readiness(waiter.EventOut) != 0 {
		t.Fatal("writable when full")
	}
	en := waiter.NewEntry()
	c.Waiter().Register(en, waiter.EventOut)
	s.out()
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 4*1460, win: 65535})
	select {
	case <-en.C:
	default:
		t.Fatal("no EventOut after ACK freed space")
	}
	if c.Readiness(waiter.EventOut) == 0 {
		t.Fatal("not writable after ACK")
	}
}

func TestPAWS(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(peerSynOpts(1000))
	ts := func(v uint32) wire.TCPOptions { return wire.TCPOptions{HasTS: true, TSVal: v} }
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("new"), opts: ts(2000)})
	s.clk.Advance(time.Second)
	s.out()
	s.inject(seg{flags: fPA, seq: 1004, ack: iss + 1, win: 65535, data: []byte("old"), opts: ts(1500)})
	a := s.expectOne("PAWS ACK")
	if a.h.Ack != 1004 || a.h.Options.TSEcr != 2000 {
		t.Fatalf("PAWS answer %v", a)
	}
	if got := string(readAll(c)); got != "new" {
		t.Fatalf("read %q", got)
	}
	if st := s.p.Stats(); st.PAWSDrops != 1 {
		t.Fatalf("PAWSDrops %d", st.PAWSDrops)
	}
}

func TestRSTAndChallengeACK(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	// In window but not RCV.NXT: challenge ACK.
	s.inject(seg{flags: fR, seq: 1500})
	check(t, "challenge", s.expectOne("challenge ACK"), fA, iss+1, 1001, 0)
	// Out of window: ignored.
	s.inject(seg{flags: fR, seq: 1001 + 200000})
	s.expectNone("out of window RST")
	// SYN on an established connection: a challenge ACK, but not within
	// 500 ms of the last one on this connection (tcp_invalid_ratelimit).
	s.inject(seg{flags: fS, seq: 5555, win: 100})
	s.expectNone("rate-limited")
	s.clk.Advance(500 * time.Millisecond)
	s.inject(seg{flags: fS, seq: 5555, win: 100})
	check(t, "challenge", s.expectOne("challenge ACK for SYN"), fA, iss+1, 1001, 0)
	s.inject(seg{flags: fR, seq: 1600})
	s.expectNone("rate-limited")
	if st := s.p.Stats(); st.ChallengeACKs != 2 || st.ChallengeACKsLimited != 2 {
		t.Fatalf("stats %+v", st)
	}
	// ACK for data never sent: challenge ACK (after the limit resets).
	s.clk.Advance(time.Second)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 5000, win: 65535, data: []byte("x")})
	check(t, "challenge", s.expectOne("challenge ACK for bad ACK"), fA, iss+1, 1001, 0)
	if n := len(readAll(c)); n != 0 {
		t.Fatal("data with a bad ACK was accepted")
	}
	// Out-of-window data: dup ACK.
	s.clk.Advance(time.Second)
	s.inject(seg{flags: fPA, seq: 1001 + 500000, ack: iss + 1, win: 65535, data: []byte("x")})
	check(t, "dup ack", s.expectOne("out of window"), fA, iss+1, 1001, 0)
	// Exact RST: reset.
	s.inject(seg{flags: fR, seq: 1001})
	s.expectNone("after RST")
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
	if _, err := c.Read(make([]byte, 1), false); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after RST: %v", err)
	}
	if n, err := c.Read(make([]byte, 1), false); n != 0 || err != nil {
		t.Fatalf("second read: %d %v", n, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after RST: %v", err)
	}
}

func TestCloseFromEstablished(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("bye"))
	s.out()
	c.Close()
	check(t, "FIN", s.expectOne("FIN"), fFA, iss+4, 1001, 0)
	if c.State() != StateFinWait1 {
		t.Fatal(c.State())
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 5, win: 65535})
	if c.State() != StateFinWait2 {
		t.Fatal(c.State())
	}
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 5, win: 65535})
	check(t, "ACK of FIN", s.expectOne("ACK"), fA, iss+5, 1002, 0)
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	// A retransmitted FIN is acknowledged again.
	s.clk.Advance(30 * time.Second)
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 5, win: 65535})
	check(t, "ACK of FIN again", s.expectOne("ACK"), fA, iss+5, 1002, 0)
	// 2*MSL (60 s) after the last FIN.
	s.clk.Advance(60*time.Second - time.Millisecond)
	if !inTimeWait(c) {
		t.Fatal("TIME_WAIT ended early")
	}
	s.clk.Advance(time.Millisecond)
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
	if len(s.p.Table()) != 1 { // the listener
		t.Fatalf("table %v", s.p.Table())
	}
}

func TestPeerClosesFirst(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fFA | fP, seq: 1001, ack: iss + 1, win: 65535, data: []byte("end")})
	check(t, "ACK of FIN", s.expectOne("ACK"), fA, iss+1, 1005, 0)
	if c.State() != StateCloseWait {
		t.Fatal(c.State())
	}
	if c.Readiness(waiter.EventIn|waiter.EventRdHUp) != waiter.EventIn|waiter.EventRdHUp {
		t.Fatal("readiness")
	}
	if got := string(readAll(c)); got != "end" {
		t.Fatal(got)
	}
	if n, err := c.Read(make([]byte, 4), false); n != 0 || err != nil {
		t.Fatal("no EOF", n, err)
	}
	// Half-close: we may still send.
	c.Write([]byte("more"))
	check(t, "data in CLOSE_WAIT", s.expectOne("data"), fPA, iss+1, 1005, 4)
	c.Close()
	check(t, "FIN", s.expectOne("FIN"), fFA, iss+5, 1005, 0)
	if c.State() != StateLastAck {
		t.Fatal(c.State())
	}
	s.inject(seg{flags: fA, seq: 1005, ack: iss + 6, win: 65535})
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
}

func TestSimultaneousClose(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Shutdown(ShutWr)
	check(t, "FIN", s.expectOne("FIN"), fFA, iss+1, 1001, 0)
	// The peer's FIN crosses ours (does not ack it).
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 1, win: 65535})
	check(t, "ACK", s.expectOne("ACK"), fA, iss+2, 1002, 0)
	if c.State() != StateClosing {
		t.Fatal(c.State())
	}
	s.inject(seg{flags: fA, seq: 1002, ack: iss + 2, win: 65535})
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
}

func TestHalfCloseReceive(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Shutdown(ShutWr)
	s.out()
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	if c.State() != StateFinWait2 {
		t.Fatal(c.State())
	}
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 2, win: 65535, data: []byte("still here")})
	if got := string(readAll(c)); got != "still here" {
		t.Fatal(got)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after SHUT_WR: %v", err)
	}
	// FIN in FIN_WAIT2 -> TIME_WAIT, with FIN+ACK in FIN_WAIT1 covered by the close test.
	s.inject(seg{flags: fFA, seq: 1011, ack: iss + 2, win: 65535})
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
}

func TestFinWait1FinAck(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Shutdown(ShutWr)
	s.out()
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535})
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	check(t, "ACK", s.expectOne("ACK"), fA, iss+2, 1002, 0)
}

func TestCloseWithUnreadDataSendsRST(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("unread")})
	s.out()
	c.Close()
	r := s.expectOne("RST")
	if r.h.Flags&fR == 0 || r.h.Seq != iss+1 {
		t.Fatalf("want RST: %v", r)
	}
	if st := s.p.Stats(); st.AbortOnClose != 1 {
		t.Fatal(st.AbortOnClose)
	}
}

func TestLingerZeroSendsRST(t *testing.T) {
	s := newScript(t, Config{})
	_, c, _ := s.passiveOpen(noOpts)
	c.SetLinger(true, 0)
	c.Close()
	if r := s.expectOne("RST"); r.h.Flags&fR == 0 {
		t.Fatalf("want RST: %v", r)
	}
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
}

func TestTimeWaitReuse(t *testing.T) {
	s := newScript(t, Config{})
	l, c, iss := s.passiveOpen(peerSynOpts(100))
	ts := func(v uint32) wire.TCPOptions { return wire.TCPOptions{HasTS: true, TSVal: v} }
	c.Close()
	s.out()
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts(200)})
	s.out()
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	// A SYN with an older timestamp gets an ACK.
	s.inject(seg{flags: fS, seq: 9000, win: 65535, opts: peerSynOpts(150)})
	check(t, "old SYN", s.expectOne("ACK"), fA, iss+2, 1002, 0)
	// A newer timestamp takes over the 4-tuple.
	s.inject(seg{flags: fS, seq: 9000, win: 65535, opts: peerSynOpts(300)})
	sa := s.expectOne("SYN-ACK")
	if sa.h.Flags != fSA || sa.h.Ack != 9001 {
		t.Fatalf("%v", sa)
	}
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
	if st := s.p.Stats(); st.TimeWaitReused != 1 {
		t.Fatal(st.TimeWaitReused)
	}
	_ = l
}

// TestSynCookies runs on a route where segments may leave after the
// lock too (txdefer.go): the cookie's endpoint is never locked, and its
// SYN-ACK must still leave.
func TestSynCookies(t *testing.T) {
	for _, deferOut := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "deferred"}[deferOut], func(t *testing.T) { synCookies(t, deferOut) })
	}
}

func synCookies(t *testing.T, deferOut bool) {
	s := newScript(t, Config{})
	if deferOut {
		deferHosts(t, s.h)
	}
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(1)
	// One SYN fills the SYN queue (backlog 1).
	s.inject(seg{flags: fS, seq: 100, win: 65535, opts: peerSynOpts(7)})
	if first := s.expectOne("SYN-ACK"); first.h.Flags != fSA {
		t.Fatal(first)
	}
	// The next SYN (another port) gets a cookie.
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	s.inject(seg{flags: fS, seq: 5000, win: 65535, opts: peerSynOpts(9)})
	ck := s.expectOne("cookie SYN-ACK")
	if ck.h.Flags != fSA || ck.h.Ack != 5001 || !ck.h.Options.HasTS || ck.h.Options.TSVal&0x3f != 0x17 {
		t.Fatalf("cookie SYN-ACK %v", ck)
	}
	if st := s.p.Stats(); st.SynCookiesSent != 1 {
		t.Fatal(st.SynCookiesSent)
	}
	// A forged ACK from a third port is dropped (while cookies are in
	// use a failed cookie is not answered: see TestSynCookieLostFirstData).
	s.remote = netip.AddrPortFrom(remoteIP, 40002)
	s.inject(seg{flags: fA, seq: 5001, ack: ck.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 10, TSEcr: ck.h.Options.TSVal}})
	s.expectNone("forged cookie ACK")
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatal("connection from a bad cookie")
	}
	// The right ACK creates the connection, with the options recovered.
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	s.inject(seg{flags: fPA, seq: 5001, ack: ck.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 10, TSEcr: ck.h.Options.TSVal}, data: []byte("hi")})
	c, ra, err := l.Accept()
	if err != nil || ra != s.remote {
		t.Fatal(err, ra)
	}
	i := c.Info()
	if i.State != StateEstablished || i.SndMSS != 1448 || i.SndWScale != 7 || !i.SACKOK || !i.TimestampsOK || i.SndWnd != 100<<7 {
		t.Fatalf("cookie connection %+v", i)
	}
	if got := string(readAll(c)); got != "hi" {
		t.Fatal(got)
	}
	if st := s.p.Stats(); st.SynCookiesRecv != 1 || st.SynCookiesFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestListenAcceptQueueOverflow(t *testing.T) {
	s := newScript(t, Config{NoSynCookies: true})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(0) // Linux: one connection may wait
	s.inject(seg{flags: fS, seq: 100, win: 65535})
	s.expectNone("SYN queue of size 0 without cookies drops")
	if st := s.p.Stats(); st.ListenDrops != 1 {
		t.Fatal(st.ListenDrops)
	}
}

func TestICMPFragNeeded(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write(make([]byte, 3000))
	o := s.out()
	if len(o) != 3 || len(o[0].payload) != 1460 || len(o[1].payload) != 1460 || len(o[2].payload) != 80 {
		t.Fatalf("%v", o) // no short segment in flight: the 80-byte tail leaves too (Nagle, Minshall's variant)
	}
	// Wrong sequence number: ignored.
	s.p.HandleError(s.local, s.remote, iss+100000, ErrFragNeeded, 1000)
	s.expectNone("bad seq")
	s.p.HandleError(s.local, s.remote, iss+1, ErrFragNeeded, 1000)
	o = s.out()
	if len(o) == 0 || o[0].h.Seq != iss+1 || len(o[0].payload) != 960 {
		t.Fatalf("after frag needed: %v", o)
	}
	if i := c.Info(); i.SndMSS != 960 || i.PMTU != 1000 {
		t.Fatalf("info %+v", i)
	}
}

func TestICMPUnreachDuringConnect(t *testing.T) {
	for _, tc := range []struct {
		kind ErrorKind
		err  error
	}{{ErrPortUnreach, syscall.ECONNREFUSED}, {ErrHostUnreach, syscall.EHOSTUNREACH}, {ErrNeighbor, syscall.EHOSTUNREACH}, {ErrNetUnreach, syscall.ENETUNREACH}} {
		s := newScript(t, Config{})
		e := s.p.NewEndpoint()
		e.Connect(s.remote)
		syn := s.expectOne("SYN")
		s.p.HandleError(syn.local, s.remote, syn.h.Seq, tc.kind, 0)
		if e.State() != StateClosed {
			t.Fatalf("%v: %v", tc.kind, e.State())
		}
		if err := e.SoError(); !errors.Is(err, tc.err) {
			t.Fatalf("%v: %v", tc.kind, err)
		}
	}
	// Later, host unreachable is a soft error.
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("x"))
	s.p.HandleError(s.local, s.remote, iss+1, ErrHostUnreach, 0)
	if c.State() != StateEstablished {
		t.Fatal(c.State())
	}
	if err := c.SoError(); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatal(err)
	}
}

func TestConnectNoRoute(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if err := e.Connect(netip.MustParseAddrPort("10.99.0.1:80")); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatal(err)
	}
}

func TestKeepalive(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetKeepIdle(10 * time.Second)
	c.SetKeepIntvl(5 * time.Second)
	c.SetKeepCnt(3)
	c.SetKeepAlive(true)
	p, el := s.waitOne(time.Minute)
	check(t, "keepalive", p, fA, iss, 1001, 0)
	if !near(el, 10*time.Second) {
		t.Fatalf("first probe after %v", el)
	}
	// An answer resets the count.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	p, el = s.waitOne(time.Minute)
	if !near(el, 10*time.Second) {
		t.Fatalf("probe after answer: %v", el)
	}
	for i := 0; i < 2; i++ {
		p, el = s.waitOne(time.Minute)
		check(t, "keepalive", p, fA, iss, 1001, 0)
		if !near(el, 5*time.Second) {
			t.Fatalf("probe interval %v", el)
		}
	}
	p, el = s.waitOne(time.Minute)
	if p.h.Flags&fR == 0 || !near(el, 5*time.Second) {
		t.Fatalf("want RST after 3 probes: %v after %v", p, el)
	}
	if err := c.SoError(); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatal(err)
	}
	if st := s.p.Stats(); st.KeepaliveTimeouts != 1 {
		t.Fatal(st.KeepaliveTimeouts)
	}
}

func TestOptionValidation(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if e.SetKeepCnt(0) == nil || e.SetKeepIdle(0) == nil || e.SetTTL(256) == nil || e.SetMaxSeg(10) == nil || e.SetCongestion("nope") == nil {
		t.Fatal("out of range accepted")
	}
	e.SetRecvBuf(1000)
	if e.RecvBuf() != 2304 {
		t.Fatal(e.RecvBuf())
	}
	e.SetRecvBuf(100000)
	if e.RecvBuf() != 200000 {
		t.Fatal(e.RecvBuf())
	}
	if e.TTL() != 64 {
		t.Fatal(e.TTL())
	}
	if err := e.SetCongestion("newreno"); err != nil || e.Congestion() != "newreno" {
		t.Fatal(err)
	}
	// Linux's answers: an alias reads back as set, IP_TOS keeps the low
	// byte less the ECN bits, negative sizes and times are "as large as
	// allowed".
	if err := e.SetCongestion("reno"); err != nil || e.Congestion() != "reno" {
		t.Fatal(err, e.Congestion())
	}
	if err := e.SetTOS(-1); err != nil || e.TOS() != 252 {
		t.Fatal(err, e.TOS())
	}
	if err := e.SetTOS(256); err != nil || e.TOS() != 0 {
		t.Fatal(err, e.TOS())
	}
	if err := e.SetSendBuf(-1); err != nil || e.SendBuf() != 8<<20 {
		t.Fatal(err, e.SendBuf())
	}
	if err := e.SetRecvBuf(-1); err != nil || e.RecvBuf() != 8<<20 {
		t.Fatal(err, e.RecvBuf())
	}
	if err := e.SetLinger(true, -time.Second); err != nil {
		t.Fatal(err)
	}
	if on, d := e.Linger(); !on || d >= 0 {
		t.Fatal(on, d)
	}
}

func TestLocalQueueFull(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	sent := 0
	s.h.fail = func(seg *Segment) error {
		if len(seg.Payload[0])+len(seg.Payload[1]) > 0 {
			if sent == 4 {
				return syscall.ENOBUFS
			}
			sent++
		}
		return nil
	}
	c.Write(make([]byte, 10*1460))
	if o := s.out(); len(o) != 4 {
		t.Fatalf("sent %d segments", len(o))
	}
	if i := c.Info(); i.SndCwnd != 4 {
		t.Fatalf("cwnd %d after a local drop", i.SndCwnd)
	}
	s.h.fail = nil
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 2*1460, win: 65535})
	o := s.out()
	if len(o) == 0 || o[0].h.Seq != iss+1+4*1460 {
		t.Fatalf("the refused segment was not sent next: %v", o)
	}
	if st := s.p.Stats(); st.RetransSegs != 0 {
		t.Fatal("a local drop counted as a retransmission")
	}
}

func TestAckRetriedAfterLocalDrop(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	drops := 0
	s.h.fail = func(seg *Segment) error {
		if drops < 2 {
			drops++
			return syscall.ENOBUFS
		}
		return nil
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.inject(seg{flags: fA, seq: 2461, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.expectNone("refused ACK")
	a, el := s.waitOne(time.Second)
	check(t, "retried ACK", a, fA, iss+1, 3921, 0)
	if drops != 2 || !near(el, 80*time.Millisecond) {
		t.Fatalf("ACK after %v, %d refusals", el, drops)
	}
}
