package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// TestRTOWithFINSACKed: the peer SACKed our last data and the FIN (a
// Linux receiver's SACK blocks include a FIN it queued out of order),
// the hole below is lost again, and the retransmission timer sends from
// SND.UNA: the go-back-N walk skips the SACKed range, FIN included, and
// ends. It used to stop at the end of the data, where the SACK block
// covering the FIN sent it back to the same place for ever, holding the
// connection's lock (a hung transfer in the lossy interop test).
func TestRTOWithFINSACKed(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	const mss = 1460
	warmRTT(s, c, &una)
	c.Write(make([]byte, 3*mss))
	if err := c.Shutdown(ShutWr); err != nil {
		t.Fatal(err)
	}
	o := s.out()
	if len(o) < 3 || o[len(o)-1].h.Flags&wire.TCPFlagFIN == 0 {
		t.Fatalf("flight: %v", o)
	}
	fin := una + 3*mss + 1 // SND.MAX
	s.inject(seg{flags: fA, seq: 1001, ack: una, win: 65535, opts: sackOf(wire.SACKBlock{Left: una + mss, Right: fin})})
	// Nothing more arrives: the reordering timer, the probe and then the
	// retransmission timer resend the hole, and only the hole.
	for i := 0; i < 30 && s.p.Stats().Timeouts == 0; i++ {
		s.clk.Advance(100 * time.Millisecond)
		for _, x := range s.out() {
			if seqGEQ(x.h.Seq, una+mss) || x.h.Flags&wire.TCPFlagFIN != 0 {
				t.Fatalf("resent %v, which the peer SACKed", x)
			}
		}
	}
	if st := s.p.Stats(); st.Timeouts == 0 {
		t.Fatal("no retransmission timeout in 3 s")
	}
	s.inject(seg{flags: fA, seq: 1001, ack: fin, win: 65535})
	if st := c.State(); st != StateFinWait2 {
		t.Fatalf("state %v after everything was acknowledged, want FIN-WAIT-2", st)
	}
}

// TestRACKTailFINNotSACKed: the last segment carries data and the FIN,
// and a receiver that SACKs data but not a FIN (sockstack's own; others
// too: RFC 2018 leaves it open) reports the data; the segment before it
// was lost. The SACKed front of the record is delivered for RACK, so the
// hole is lost after the reordering window and resent, with no probe of
// the tail and no retransmission timeout. Before, the record counted as
// SACKed only with the FIN, RACK saw nothing delivered after the hole,
// the probe resent the tail that had arrived, and only the timeout
// (200 ms at least) resent the hole.
func TestRACKTailFINNotSACKed(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	una := iss + 1
	const mss = 1460
	warmRTT(s, c, &una)
	// Three full segments leave; TCP_CORK holds the 100-byte tail until
	// the FIN goes with it (Nagle would not: no short segment is in
	// flight).
	c.SetCork(true)
	c.Write(make([]byte, 3*mss+100))
	if o := s.out(); len(o) != 3 {
		t.Fatalf("flight: %v", o)
	}
	if err := c.Shutdown(ShutWr); err != nil {
		t.Fatal(err)
	}
	o := s.out()
	if len(o) != 1 || len(o[0].payload) != 100 || o[0].h.Flags&wire.TCPFlagFIN == 0 {
		t.Fatalf("tail: %v", o)
	}
	tail := una + 3*mss
	// The third segment is lost: the first two are acknowledged, the
	// tail's data SACKed, its FIN not.
	s.inject(seg{flags: fA, seq: 1001, ack: una + 2*mss, win: 65535, opts: sackOf(wire.SACKBlock{Left: tail, Right: tail + 100})})
	var resent []captured
	for i := 0; i < 10; i++ { // 10 ms: half the probe timeout
		resent = append(resent, s.out()...)
		s.clk.Advance(time.Millisecond)
	}
	resent = append(resent, s.out()...)
	if len(resent) == 0 || resent[0].h.Seq != una+2*mss || len(resent[0].payload) != mss {
		t.Fatalf("within 10 ms sent %v; want the lost segment at %d", resent, una+2*mss)
	}
	for _, x := range resent {
		if seqGEQ(x.h.Seq, tail) {
			t.Fatalf("resent the tail %v, which the peer SACKed", x)
		}
	}
	if st := s.p.Stats(); st.TLPProbes != 0 || st.Timeouts != 0 || st.SACKRecovery != 1 {
		t.Fatalf("probes %d, timeouts %d, recoveries %d", st.TLPProbes, st.Timeouts, st.SACKRecovery)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: tail + 101, win: 65535})
	if st := c.State(); st != StateFinWait2 {
		t.Fatalf("state %v after everything was acknowledged, want FIN-WAIT-2", st)
	}
}
