package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Nagle's algorithm in Minshall's variant, as Linux's tcp_nagle_check:
// a short segment waits only while an earlier short segment is
// unacknowledged, not while full-sized ones alone are in flight.

// payloadSizes lists the payload lengths of segments.
func payloadSizes(o []captured) []int {
	n := make([]int, len(o))
	for i, c := range o {
		n[i] = len(c.payload)
	}
	return n
}

// A write of five full segments and a short tail to a peer offering 536
// leaves at once, tail included: nothing short is in flight. (RFC 896's
// rule held the tail until every full segment was acknowledged, a
// delayed ACK's 40 ms with a peer that waits for a second segment.)
func TestNagleWriteTailLeaves(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(wire.TCPOptions{HasMSS: true, MSS: 536})
	if n, err := c.Write(make([]byte, 536*5+320)); n != 536*5+320 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	o := s.out()
	if len(o) != 6 {
		t.Fatalf("sent %v before any ACK, want 5 x 536 and 320", payloadSizes(o))
	}
	for i := 0; i < 5; i++ {
		check(t, "full segment", o[i], fA, iss+1+uint32(i*536), 1001, 536)
	}
	check(t, "the tail", o[5], fPA, iss+1+5*536, 1001, 320)
}

// A short segment waits while an earlier short one is unacknowledged,
// full segments still leave behind it, and the ACK of the short one
// releases the next short one although full segments are still in
// flight.
func TestNagleHoldsBehindShortSegment(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("a"))
	check(t, "first short write", s.expectOne("a"), fPA, iss+1, 1001, 1)
	c.Write(make([]byte, 1460+30))
	o := s.out()
	if len(o) != 1 {
		t.Fatalf("sent %v with a short segment in flight, want the full segment only", payloadSizes(o))
	}
	check(t, "full segment", o[0], fA, iss+2, 1001, 1460)
	c.Write([]byte("bc"))
	s.expectNone("short segment in flight: the 32-byte tail waits")
	// The short segment is acknowledged, the full one not.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	check(t, "tail after the short segment's ACK", s.expectOne("tail"), fPA, iss+2+1460, 1001, 32)
	// That tail is now the short segment in flight: the next waits for
	// it, not for the full segment before it.
	c.Write([]byte("d"))
	s.expectNone("the tail in flight")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2 + 1460, win: 65535})
	s.expectNone("only the full segment acknowledged")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2 + 1460 + 32, win: 65535})
	check(t, "after the tail's ACK", s.expectOne("d"), fPA, iss+2+1460+32, 1001, 1)
}

// Interactive traffic, one short write after another within an RTT,
// still coalesces: one short segment per round trip, carrying what was
// written meanwhile.
func TestNagleInteractiveCoalesces(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	seq := iss + 1
	c.Write([]byte("x"))
	check(t, "first keystroke", s.expectOne("x"), fPA, seq, 1001, 1)
	seq++
	for round := 1; round <= 5; round++ {
		for k := 0; k < round+1; k++ {
			c.Write([]byte("k"))
		}
		s.expectNone("keystrokes while one is unacknowledged")
		s.inject(seg{flags: fA, seq: 1001, ack: seq, win: 65535})
		check(t, "coalesced keystrokes", s.expectOne("keys"), fPA, seq, 1001, round+1)
		seq += uint32(round + 1)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: seq, win: 65535})
	s.expectNone("all acknowledged, nothing left")
}

// TCP_NODELAY sends a short segment behind an unacknowledged short one;
// TCP_CORK holds a tail that Nagle would send (nothing short in flight),
// also with TCP_NODELAY set (Linux: cork wins), until uncorked.
func TestNagleNoDelayAndCork(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetNoDelay(true)
	c.Write([]byte("a"))
	check(t, "nodelay", s.expectOne("a"), fPA, iss+1, 1001, 1)
	c.Write([]byte("b"))
	check(t, "nodelay behind a short segment", s.expectOne("b"), fPA, iss+2, 1001, 1)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 3, win: 65535})
	c.SetNoDelay(false)

	c.SetCork(true)
	c.Write(make([]byte, 1460+100))
	o := s.out()
	if len(o) != 1 || len(o[0].payload) != 1460 {
		t.Fatalf("corked: sent %v, want the full segment only", payloadSizes(o))
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 3 + 1460, win: 65535})
	s.expectNone("corked, all acknowledged")
	c.SetNoDelay(true)
	s.expectNone("corked with TCP_NODELAY")
	c.SetCork(false)
	check(t, "uncorked", s.expectOne("tail"), fPA, iss+3+1460, 1001, 100)
}

// The FIN is not held: a short last write and the FIN leave together
// behind an unacknowledged short segment.
func TestNagleFINNotHeld(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("a"))
	check(t, "short segment", s.expectOne("a"), fPA, iss+1, 1001, 1)
	c.Write([]byte("bye"))
	s.expectNone("held behind the short segment")
	if err := c.Shutdown(ShutWr); err != nil {
		t.Fatal(err)
	}
	check(t, "data and FIN", s.expectOne("FIN"), fF|fPA, iss+2, 1001, 3)
}

// A full segment and a write's short tail, which now leave together, are
// a flight a receiver may hold its ACK for (RFC 5681 4.2: until a second
// full-sized segment; some stacks do): the tail loss probe
// waits as it does for one segment (WCDelAckT), not 2 x SRTT, and does
// not resend what a delayed ACK then covers.
func TestNagleTailFlightNoSpuriousProbe(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	warmRTT(s, c, &una) // SRTT 10 ms
	c.Write(make([]byte, 1460+100))
	if o := s.out(); len(o) != 2 || len(o[1].payload) != 100 {
		t.Fatalf("sent %v, want 1460 and 100", payloadSizes(o))
	}
	for i := 0; i < 40; i++ { // a delayed ACK's 40 ms
		s.clk.Advance(time.Millisecond)
		s.expectNone("probe while the peer may delay its ACK")
	}
	s.inject(seg{flags: fA, seq: 1001, ack: una + 1560, win: 65535})
	if st := s.p.Stats(); st.TLPProbes != 0 || st.RetransSegs != 0 {
		t.Fatalf("probes %d, retransmissions %d", st.TLPProbes, st.RetransSegs)
	}
}
