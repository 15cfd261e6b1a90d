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
